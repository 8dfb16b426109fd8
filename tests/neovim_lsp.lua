-- Drives Debian's Neovim 0.7 headless against `inkstone lsp` (see test_neovim.py).
-- Everything goes through Neovim's own LSP client: start_client + buf_attach_client,
-- real buffer edits (incremental didChange), vim.diagnostic, vim.lsp.buf.code_action()
-- itself (only vim.ui.select, the menu, is answered by the script), workspace/executeCommand
-- and workspace/applyEdit.
local env = vim.env
local result = { steps = {} }

local function finish(ok, err)
  result.ok = ok
  result.error = err
  local f = assert(io.open(env.INKSTONE_RESULT, "w"))
  f:write(vim.fn.json_encode(result))
  f:close()
  vim.cmd(ok and "qa!" or "cq!")
end

local function step(name)
  table.insert(result.steps, name)
end

local function wait(ms, pred, what)
  if not vim.wait(ms, pred, 50) then
    error("timed out waiting for " .. what)
  end
end

local function run()
  local client_id = vim.lsp.start_client({
    name = "inkstone",
    cmd = { env.INKSTONE_PYTHON, "-m", "editors.lsp", "--stdio" },
    cmd_cwd = env.INKSTONE_ROOT,
    cmd_env = { PYTHONPATH = env.INKSTONE_ROOT },
    root_dir = vim.fn.fnamemodify(env.INKSTONE_FILE, ":h"),
    init_options = { server = env.INKSTONE_URL, token = env.INKSTONE_TOKEN, lang = "zh" },
  })
  assert(client_id, "start_client failed")
  vim.cmd("edit " .. vim.fn.fnameescape(env.INKSTONE_FILE))
  local bufnr = vim.api.nvim_get_current_buf()
  assert(vim.lsp.buf_attach_client(bufnr, client_id), "buf_attach_client failed")
  local client = vim.lsp.get_client_by_id(client_id)
  wait(15000, function() return client.initialized end, "initialize")
  result.offset_encoding = client.offset_encoding
  step("attached")

  -- type the sentence at the start of line 1, one character per edit (as an IME commits)
  local typed = env.INKSTONE_TYPE
  local col = 0
  for _, ch in ipairs(vim.fn.split(typed, "\\zs")) do
    vim.api.nvim_buf_set_text(bufnr, 0, col, 0, col, { ch })
    col = col + #ch
    vim.wait(40)
  end
  step("typed")

  local function spelling()
    for _, d in ipairs(vim.diagnostic.get(bufnr)) do
      if d.code == "misspelling" then return d end
    end
  end
  wait(30000, function() return spelling() ~= nil end, "a misspelling diagnostic")
  local d = spelling()
  result.diagnostic = {
    lnum = d.lnum, col = d.col, end_col = d.end_col, message = d.message,
    source = d.source, severity = d.severity,
  }
  step("diagnostic")

  -- Neovim's own vim.lsp.buf.code_action() on the diagnostic's line: it sends the line's
  -- diagnostics (echoing byte columns) and the cursor range, then shows vim.ui.select;
  -- the "user" picks the preferred action, which 0.7's apply_action sends as
  -- workspace/executeCommand; the bridge answers with workspace/applyEdit
  vim.api.nvim_win_set_cursor(0, { d.lnum + 1, d.col })
  local request_all = vim.lsp.buf_request_all
  vim.lsp.buf_request_all = function(b, method, params, handler)
    if method == "textDocument/codeAction" then result.echoed = params.context.diagnostics end
    return request_all(b, method, params, handler)
  end
  local chosen = false
  vim.ui.select = function(items, opts, on_choice)
    result.titles = vim.tbl_map(opts.format_item, items)
    for _, item in ipairs(items) do
      if item[2].isPreferred then
        chosen = true
        return on_choice(item)
      end
    end
    on_choice(nil)
  end
  vim.lsp.buf.code_action()
  wait(10000, function() return result.titles ~= nil end, "the code action menu")
  assert(chosen, "no preferred quick fix among " .. vim.inspect(result.titles))
  step("actions")
  local expected = env.INKSTONE_EXPECTED
  wait(10000, function()
    return table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), "\n") == expected
  end, "the corrected text")
  step("applied")
  wait(15000, function() return spelling() == nil end, "the diagnostic to go")
  result.text = table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), "\n")
  result.remaining = #vim.diagnostic.get(bufnr)
  step("cleared")
  vim.lsp.stop_client(client_id)
end

local ok, err = xpcall(run, debug.traceback)
finish(ok, err)
