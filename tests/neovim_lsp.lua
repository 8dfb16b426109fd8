-- Drives Debian's Neovim 0.7 headless against `inkstone lsp` (see test_neovim.py).
-- Everything goes through Neovim's own LSP client: start_client + buf_attach_client,
-- real buffer edits (incremental didChange), vim.diagnostic, the code-action request as
-- vim.lsp.buf.code_action builds it, workspace/executeCommand and workspace/applyEdit.
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

  -- vim.lsp.buf.code_action() in 0.7: the cursor line's diagnostics + the cursor range
  vim.api.nvim_win_set_cursor(0, { d.lnum + 1, d.col })
  local params = vim.lsp.util.make_range_params()
  params.context = { diagnostics = vim.lsp.diagnostic.get_line_diagnostics(bufnr) }
  result.echoed = params.context.diagnostics
  local responses = vim.lsp.buf_request_sync(bufnr, "textDocument/codeAction", params, 10000)
  local actions = {}
  for _, response in pairs(responses or {}) do
    for _, action in ipairs(response.result or {}) do table.insert(actions, action) end
  end
  result.titles = vim.tbl_map(function(a) return a.title end, actions)
  local chosen
  for _, action in ipairs(actions) do
    if action.isPreferred then chosen = action break end
  end
  assert(chosen, "no preferred quick fix among " .. vim.inspect(result.titles))
  step("actions")

  -- apply_action() in 0.7: an action's command goes to workspace/executeCommand
  local command = type(chosen.command) == "table" and chosen.command or chosen
  local done = false
  client.request("workspace/executeCommand", {
    command = command.command, arguments = command.arguments,
  }, function(err, res)
    result.execute = { err = err, res = res }
    done = true
  end, bufnr)
  wait(10000, function() return done end, "executeCommand")
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
