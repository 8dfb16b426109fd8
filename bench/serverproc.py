"""Start and stop ``inkstone serve`` for the bench scripts (optionally pinned with taskset)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["ROOT", "BenchServer", "pinned", "run_loadgen"]


# Bench processes run at this nice level (INKSTONE_BENCH_NICE, e.g. -10 as root) so that
# other work sharing the machine disturbs the measurement less; 0 leaves it alone.
NICE = int(os.environ.get("INKSTONE_BENCH_NICE", "0"))


def pinned(cores: str | None, cmd: list[str]) -> list[str]:
    """Prefix ``cmd`` with ``taskset -c cores`` (no pinning when cores is empty) and nice."""
    cmd = ["taskset", "-c", cores, *cmd] if cores else cmd
    return ["nice", "-n", str(NICE), *cmd] if NICE else cmd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BenchServer:
    def __init__(
        self,
        data_dir: Path,
        *extra: str,
        cores: str | None = None,
        log: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/v1/ws"
        self.data_dir, self.extra, self.cores = data_dir, extra, cores
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> None:
        cmd = pinned(
            self.cores,
            [
                sys.executable,
                "-m",
                "server.cli",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                *self.extra,
            ],
        )
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            if self.health() is not None:
                return
            time.sleep(0.2)
        raise RuntimeError("server did not become healthy")

    def health(self) -> dict[str, Any] | None:
        try:
            url = f"http://127.0.0.1:{self.port}/healthz"
            with urllib.request.urlopen(url, timeout=2) as r:
                return dict(json.loads(r.read()))
        except OSError:
            return None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def run_loadgen(
    url: str,
    out: Path,
    *args: str,
    cores: str | None = None,
    server_pid: int | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run ``inkstone loadgen`` as a process; return its JSON report."""
    cmd = [sys.executable, "-m", "server.cli", "loadgen", "--url", url, "--json", str(out), *args]
    if server_pid is not None:
        cmd += ["--server-pid", str(server_pid)]
    proc = subprocess.run(
        pinned(cores, cmd), cwd=ROOT, timeout=timeout, capture_output=True, text=True
    )
    sys.stdout.write(proc.stdout)
    if not out.exists():
        raise RuntimeError(f"loadgen wrote no report (rc={proc.returncode}): {proc.stderr[-2000:]}")
    return dict(json.loads(out.read_text()))
