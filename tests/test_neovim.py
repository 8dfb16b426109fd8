"""A real editor: Debian's Neovim 0.7 (headless) runs ``inkstone lsp`` against a real
server with the shipped models. The script (tests/neovim_lsp.lua) types Chinese with a
misspelling through real buffer edits, waits for the diagnostic, runs Neovim's own
``vim.lsp.buf.code_action()`` (picking the preferred fix in ``vim.ui.select``), and checks
the corrected text and that the diagnostic is gone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, LiveServer

NVIM = shutil.which("nvim")
CLEAN = "天空中飘着朵朵白云，景色十分美丽，令人心旷神怡。"
TYPED = "我门一起去公园玩。"


def run_neovim(script: Path, tmp_path: Path, env: dict[str, str], timeout: float = 60) -> dict:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    result = tmp_path / "result.json"
    full_env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "INKSTONE_RESULT": str(result),
        "INKSTONE_PYTHON": sys.executable,
        "INKSTONE_ROOT": str(ROOT),
        **env,
    }
    assert NVIM is not None
    done = subprocess.run(
        [NVIM, "--headless", "--clean", "-S", str(script)],
        env=full_env,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    assert result.exists(), done.stderr.decode()[-2000:]
    data = json.loads(result.read_text())
    assert data["ok"], (data.get("error"), data["steps"])
    assert done.returncode == 0
    return data


@pytest.mark.skipif(NVIM is None, reason="needs Debian's neovim (tests/install-deps.sh)")
def test_neovim_types_sees_the_misspelling_and_applies_the_fix(
    model_server: LiveServer, tmp_path: Path
) -> None:
    essay = tmp_path / "作文.txt"
    essay.write_text("\n" + CLEAN + "\n", encoding="utf-8")
    expected = TYPED.replace("门", "们") + "\n" + CLEAN
    data = run_neovim(
        ROOT / "tests" / "neovim_lsp.lua",
        tmp_path,
        {
            "INKSTONE_URL": model_server.url,
            "INKSTONE_TOKEN": model_server.token("nvim-student"),
            "INKSTONE_FILE": str(essay),
            "INKSTONE_TYPE": TYPED,
            "INKSTONE_EXPECTED": expected,
        },
    )
    assert data["offset_encoding"] == "utf-16"  # 0.7 offers no other
    d = data["diagnostic"]
    # vim.diagnostic works in bytes: 门 is the second character, bytes 3..6 of line 1
    assert (d["lnum"], d["col"], d["end_col"]) == (0, 3, 6)
    assert d["source"] == "inkstone" and d["message"].startswith("错别字：")
    # Neovim 0.7 echoes byte columns as `character` (3; UTF-16 would be 1): the bridge
    # went by data.hint instead
    echoed = [e for e in data["echoed"] if e.get("code") == "misspelling"]
    assert echoed and echoed[0]["range"]["start"]["character"] in (1, 3)
    assert echoed[0]["data"]["hint"].startswith("h")
    assert data["titles"][0] == "改为“们”" and "忽略此提示" in data["titles"]
    assert data["text"] == expected
    assert data["remaining"] == 0
