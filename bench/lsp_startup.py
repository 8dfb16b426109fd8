"""Start-up time of the LSP bridge: process start → ``initialize`` answered.

Spawns the bridge the way an editor does (stdio), sends ``initialize`` at once and
times the reply (wall clock, and the CPU the process used by then, which a busy
machine inflates less); repeats and prints min / median / max. Also lists which heavy
modules the bridge process mapped (none of the model stack may appear).

    python3 bench/lsp_startup.py                       # python -m editors.lsp
    python3 bench/lsp_startup.py --cmd inkstone lsp    # through the console script
    python3 bench/lsp_startup.py --baseline            # a bare Python responder: the floor
    python3 bench/lsp_startup.py --pygls               # pygls with no features: its own cost
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The floor: a bare Python process that answers initialize (what any Python LSP costs here).
BASELINE = r"""
import json, sys
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    length = 0
    while (line := inp.readline()) not in (b"\r\n", b"\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    if not length:
        break
    message = json.loads(inp.read(length))
    if message.get("method") == "exit":
        break
    if "id" in message:
        body = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": {}}).encode()
        out.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        out.flush()
"""
# A pygls server with no features: what pygls itself costs (the issue mandates pygls).
PYGLS = "from pygls.lsp.server import LanguageServer; LanguageServer('bare', '0').start_io()"
HEAVY = ("onnxruntime", "numpy", "jieba", "sentencepiece", "uvicorn", "starlette")


def frame(message: dict[str, object]) -> bytes:
    body = json.dumps(message).encode()
    return f"Content-Length: {len(body)}\r\n\r\n".encode() + body


def read_message(stream: object) -> dict[str, object]:
    length = 0
    while True:
        line = stream.readline()  # type: ignore[attr-defined]
        if not line:
            raise EOFError("the bridge closed stdout")
        if line in (b"\r\n", b"\n"):
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return json.loads(stream.read(length))  # type: ignore[attr-defined,no-any-return]


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def once(cmd: list[str], env: dict[str, str]) -> tuple[float, float, list[str]]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert proc.stdin is not None and proc.stdout is not None
    init = {"processId": os.getpid(), "rootUri": None, "capabilities": {}}
    proc.stdin.write(frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}))
    proc.stdin.flush()
    while read_message(proc.stdout).get("id") != 1:
        pass
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(proc.pid)
    # ask the running bridge which heavy modules it holds (a custom command would be
    # intrusive; /proc maps of the process show loaded extension modules instead)
    maps = Path(f"/proc/{proc.pid}/maps").read_text() if sys.platform == "linux" else ""
    loaded = sorted({h for h in HEAVY if f"/{h}/" in maps or f"/{h}." in maps})
    for message in (
        {"jsonrpc": "2.0", "id": 2, "method": "shutdown"},
        {"jsonrpc": "2.0", "method": "exit"},
    ):
        proc.stdin.write(frame(message))
        proc.stdin.flush()
    proc.wait(10)
    return elapsed, cpu, loaded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--baseline", action="store_true", help="time a bare Python responder")
    parser.add_argument("--pygls", action="store_true", help="time a featureless pygls server")
    parser.add_argument("--cmd", nargs=argparse.REMAINDER, default=None)
    args = parser.parse_args()
    cmd = args.cmd or [sys.executable, "-m", "editors.lsp"]
    if args.baseline:
        cmd = [sys.executable, "-c", BASELINE]
    if args.pygls:
        cmd = [sys.executable, "-c", PYGLS]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    once(cmd, env)  # warm the page cache and .pyc files
    times, cpus, loaded = [], [], set()
    for _ in range(args.runs):
        elapsed, cpu, heavy = once(cmd, env)
        times.append(elapsed)
        cpus.append(cpu)
        loaded.update(heavy)
    ms = lambda values, f: f"{f(values) * 1000:.0f}"  # noqa: E731
    load = os.getloadavg()[0]
    name = "baseline (bare Python)" if args.baseline else " ".join(cmd)
    if args.pygls:
        name = "featureless pygls server"
    print(
        f"{name} ({args.runs} runs, {os.cpu_count()} CPUs, load {load:.1f}):\n"
        f"  initialize answered after: min {ms(times, min)} ms, median "
        f"{ms(times, statistics.median)} ms, max {ms(times, max)} ms (wall clock)\n"
        f"  CPU used by then: min {ms(cpus, min)} ms, median {ms(cpus, statistics.median)} ms\n"
        f"  heavy modules mapped: {sorted(loaded) or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
