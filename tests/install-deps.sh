#!/usr/bin/env bash
# Installs what the test-suite needs beyond pip: Debian packages (never a browser download),
# and the VS Code extension's npm packages (editors/vscode/package-lock.json).
# Idempotent and quiet when everything is already there; needs root (or sudo) the first time.
set -euo pipefail
# postgresql, redis-server, haproxy: the multi-node tests (tests/test_scale_*.py) start their own
packages=(chromium fonts-noto-cjk neovim postgresql redis-server haproxy)
# node and npm may come from elsewhere (e.g. NodeSource, whose nodejs bundles npm)
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing test dependencies: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
ext="$(dirname "$0")/../editors/vscode"
if [ ! -d "$ext/node_modules/typescript" ]; then
    echo "installing the VS Code extension's npm packages (npm ci)"
    (cd "$ext" && npm ci --no-audit --no-fund --loglevel=error)
fi
# PyTorch for the tests that run the torch backend on CPU: the CPU build, never the CUDA one
# (a local CPU wheel where the machine image ships one, else PyTorch's CPU index).
if ! python3 -c "import torch" >/dev/null 2>&1; then
    wheel=$(ls /opt/wheels/torch-*+cpu-cp3*-manylinux*_x86_64.whl 2>/dev/null | head -n 1 || true)
    echo "installing PyTorch (CPU build) for the tests"
    if [ -n "$wheel" ]; then
        python3 -m pip install -q "$wheel"
    else
        python3 -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu \
            || python3 -m pip install -q torch
    fi
fi
