"""Server memory per idle connection and per active document (RSS deltas).

Starts a fresh server, then on N sockets measures the server's RSS after:
(A) the WebSocket is open (no hello yet), (B) a student ``hello`` opened an
empty document and the socket sits idle, (C) M of those documents hold an
essay that was analysed (hints and scores received). Per-item cost is the
RSS delta divided by the count, so it includes allocator slack; Python
rarely returns memory to the OS, which makes deltas an upper bound.

    python bench/memory.py --connections 1000 --active 200 --json bench/results/memory.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from serverproc import BenchServer

from protocol import Hello, Replace, Scores, Welcome
from server.auth import mint_token
from server.loadgen.corpus import load_corpus
from server.loadgen.options import DEFAULT_DATA
from server.wsclient import SocketSession


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


async def settle(pid: int, seconds: float = 3.0) -> float:
    await asyncio.sleep(seconds)
    return rss_mb(pid)


class PlainSession(SocketSession):
    """A session that does not offer permessage-deflate (as if the server disabled it)."""

    async def open(self) -> None:
        import websockets

        from protocol import SUBPROTOCOL

        self.closed.clear()
        self.ws = await websockets.connect(
            self.url, subprotocols=[SUBPROTOCOL], max_size=self.max_size, compression=None
        )
        self._reader = asyncio.create_task(self._read())


async def measure(args: argparse.Namespace, server: BenchServer) -> dict[str, Any]:
    """RSS slopes: each step is measured on the second half of the items, so one-time
    costs (first connection, first inference, arenas) fall into the first half."""
    pid = server.pid
    essays = load_corpus(args.data, "zh")["zh"]
    n, m = args.connections - args.connections % 2, args.active - args.active % 2
    result: dict[str, Any] = {"connections": n, "active": m, "compression": not args.plain}
    rss: dict[str, float] = {"start": await settle(pid)}
    kind = PlainSession if args.plain else SocketSession
    sessions = [kind(server.url) for _ in range(n)]
    halves = (sessions[: n // 2], sessions[n // 2 :])

    async def open_all(group: list[SocketSession]) -> None:
        for i in range(0, len(group), 100):
            await asyncio.gather(*(s.open() for s in group[i : i + 100]))

    async def hello_all(group: list[SocketSession], offset: int) -> None:
        for i in range(0, len(group), 100):
            batch = group[i : i + 100]
            for j, s in enumerate(batch, offset + i):
                token = mint_token(None, user=f"mem-u{j}", role="student", class_id=f"c{j // 30}")
                await s.send(
                    Hello(token=token, doc=f"mem-doc{j}", lang="zh", position_encoding="utf-32")
                )
            for s in batch:
                message = await s.wait_for(lambda m: m.TYPE in ("welcome", "error"), 30)
                assert isinstance(message, Welcome), message

    async def activate(group: list[SocketSession], offset: int) -> int:
        chars = 0
        for i in range(0, len(group), 20):
            batch = group[i : i + 20]
            for j, s in enumerate(batch, offset + i):
                text = essays[j % len(essays)].text
                chars += len(text)
                await s.send(Replace(text=text, id=2))
            for s in batch:
                await s.wait_for(lambda m: isinstance(m, Scores), 120)
        return chars

    await open_all(halves[0])
    rss["open_half"] = await settle(pid)
    await open_all(halves[1])
    rss["open_all"] = await settle(pid)
    await hello_all(halves[0], 0)
    rss["hello_half"] = await settle(pid)
    await hello_all(halves[1], n // 2)
    rss["hello_all"] = await settle(pid)
    chars = await activate(sessions[: m // 2], 0)
    rss["active_half"] = await settle(pid, 5.0)
    chars += await activate(sessions[m // 2 : m], m // 2)
    rss["active_all"] = await settle(pid, 5.0)
    await asyncio.gather(*(s.close() for s in sessions))
    rss["after_close"] = await settle(pid, 5.0)
    result["rss_mb"] = {k: round(v, 1) for k, v in rss.items()}
    result["essay_chars_mean"] = round(chars / max(1, m))
    kb, half = 1024.0, n / 2
    result["kb_per_open_socket"] = round((rss["open_all"] - rss["open_half"]) * kb / half, 1)
    result["kb_per_hello_session"] = round((rss["hello_all"] - rss["hello_half"]) * kb / half, 1)
    result["kb_per_idle_connection"] = round(
        result["kb_per_open_socket"] + result["kb_per_hello_session"], 1
    )
    result["kb_per_active_document"] = round(
        (rss["active_all"] - rss["active_half"]) * kb / max(1, m / 2), 1
    )
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--active", type=int, default=200)
    ap.add_argument("--no-models", action="store_true")
    ap.add_argument("--plain", action="store_true", help="clients refuse permessage-deflate")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="inkstone-mem-"))
    server = BenchServer(data, *(["--no-models"] if args.no_models else []))
    server.start()
    try:
        started = time.time()
        result = asyncio.run(measure(args, server))
        result["models"] = not args.no_models
        result["date_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
        result["command"] = " ".join(sys.argv)
    finally:
        server.stop()
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
