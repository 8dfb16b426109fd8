"""The VS Code extension (editors/vscode): compiled with tsc, its logic tested with
``node --test``, packaged with @vscode/vsce. VS Code itself cannot be downloaded here
(@vscode/test-electron fetches it at run time), so the extension is not run inside VS Code;
its language features are the bridge's, tested in test_lsp.py and test_neovim.py.

The npm packages come from editors/vscode/package-lock.json (``npm ci``, git-ignored
node_modules); tests/install-deps.sh installs them, and this test does when they are missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from editors.lsp.settings import Settings
from tests.conftest import ROOT

EXT = ROOT / "editors" / "vscode"
NODE, NPM = shutil.which("node"), shutil.which("npm")
pytestmark = pytest.mark.skipif(NODE is None or NPM is None, reason="needs node and npm")


def sh(*cmd: str, timeout: float = 120) -> str:
    done = subprocess.run(
        cmd, cwd=EXT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def built() -> Path:
    if not (EXT / "node_modules" / "typescript").is_dir():
        assert NPM is not None
        sh(NPM, "ci", "--no-audit", "--no-fund", timeout=300)
    assert NODE is not None
    shutil.rmtree(EXT / "out", ignore_errors=True)
    sh(NODE, "node_modules/typescript/bin/tsc", "-p", ".")
    return EXT / "out"


def test_logic_passes_node_test(built: Path) -> None:
    assert NODE is not None
    out = sh(NODE, "--test", "out/test/")
    passed = re.search(r"^# pass (\d+)$", out, re.MULTILINE)
    assert "# fail 0" in out and passed is not None and int(passed.group(1)) >= 5, out


def test_vsce_packages_the_extension(built: Path, tmp_path: Path) -> None:
    assert NODE is not None
    vsix = tmp_path / "inkstone.vsix"
    sh(
        NODE,
        "node_modules/@vscode/vsce/vsce",
        "package",
        "--allow-missing-repository",
        "--out",
        str(vsix),
    )
    names = set(zipfile.ZipFile(vsix).namelist())
    manifest = json.loads(zipfile.ZipFile(vsix).read("extension/package.json"))
    assert f"extension/{manifest['main'].removeprefix('./')}" in names
    assert "extension/node_modules/vscode-languageclient/package.json" in names
    assert not any("/typescript/" in n or n.startswith("extension/src/") for n in names)
    main = zipfile.ZipFile(vsix).read("extension/out/src/extension.js").decode()
    assert 'require("vscode-languageclient/node")' in main


def test_contributed_settings_are_the_bridges() -> None:
    """Every inkstone.* setting but `path` (the extension's own) changes the bridge's Settings."""
    manifest = json.loads((EXT / "package.json").read_text())
    properties = manifest["contributes"]["configuration"]["properties"]
    samples = {"string": "zh", "number": 7, "object": {"style": "off"}}
    for key, spec in properties.items():
        name = key.removeprefix("inkstone.")
        if name == "path":
            continue
        value = spec["enum"][-1] if "enum" in spec else samples[spec["type"]]
        if name == "server":
            value = "ws://example:1/v1/ws"
        assert Settings().merged({name: value}) != Settings(), key
