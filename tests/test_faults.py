"""Fault tests on real server processes: kill -9 under load, a slow consumer, a garbage
flood, and a full disk. No mocks: ``inkstone serve`` as a child process, real sockets,
the load generator's simulated students (the project's protocol client underneath).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import websockets

from protocol import SUBPROTOCOL, Error, Hello, Observe, decode_server, encode
from server.auth import mint_token
from server.loadgen.corpus import load_corpus
from server.loadgen.student import Samples, SimStudent, verify_stored
from server.loadgen.typing import TypingModel
from server.wsclient import StudentClient
from tests.conftest import ProcessServer, run

FIXTURES = Path(__file__).parent / "fixtures" / "loadgen"
ESSAYS = load_corpus(FIXTURES)


class LoggedServer(ProcessServer):
    """A ProcessServer whose output is drained on a thread (a full pipe would stall it)."""

    def __init__(self, data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        super().__init__(data_dir, "--no-models", *extra, env=env)
        self.lines: list[str] = []

    def start(self) -> None:
        super().start()
        assert self.proc is not None and self.proc.stdout is not None
        stream = self.proc.stdout
        threading.Thread(target=self._drain, args=(stream,), daemon=True).start()

    def _drain(self, stream: Any) -> None:
        for line in iter(stream.readline, b""):
            self.lines.append(line.decode(errors="replace"))

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def rss_mb(self) -> float:
        assert self.proc is not None
        return float(psutil.Process(self.proc.pid).memory_info().rss) / 2**20


def students(
    url: str, n: int, samples: Samples, *, speed: float = 3.0, tag: str = "f", lang: str = "zh"
) -> list[SimStudent]:
    out = []
    registry: dict[str, Any] = {}
    for i in range(n):
        rng = random.Random(i)
        token = mint_token(None, user=f"{tag}-u{i}", role="student", class_id=f"{tag}-c")
        out.append(
            SimStudent(
                i,
                url,
                token,
                f"{tag}-doc{i}",
                ESSAYS[lang],
                TypingModel(rng, speed=speed, think_prob=0.0),
                rng,
                samples,
                lang=lang,
                registry=registry,
            )
        )
    return out


async def type_for(group: list[SimStudent], seconds: float) -> None:
    until = time.monotonic() + seconds
    await asyncio.gather(*(s.run(until) for s in group))


async def finish_and_verify(group: list[SimStudent], samples: Samples) -> list[dict[str, Any]]:
    await asyncio.gather(*(s.finish(20) for s in group))
    problems = await asyncio.gather(*(verify_stored(s) for s in group))
    return [p for p in problems if p is not None]


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * 0.99) - 1)]


# ---------------------------------------------------------------- kill -9


def test_kill_9_while_50_students_type(tmp_path: Path) -> None:
    server = LoggedServer(tmp_path)
    server.start()
    samples = Samples()
    try:

        async def scenario() -> None:
            group = students(server.url, 50, samples, speed=4.0, tag="k9")
            typing = asyncio.ensure_future(type_for(group, 7.0))
            await asyncio.sleep(3.0)
            acked_before = {s.doc: s.client.state.version or 0 for s in group}
            assert sum(acked_before.values()) > 200  # real typing happened
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, server.kill9)
            await loop.run_in_executor(None, server.start)
            await typing
            problems = await finish_and_verify(group, samples)
            assert problems == [], problems
            for s in group:
                # every edit acked before the crash is in the resumed document
                assert s.client.state.version is not None
                assert s.client.state.version >= acked_before[s.doc]
                assert (
                    s.client.welcome is not None and s.client.welcome.version >= acked_before[s.doc]
                )

        run(scenario())
        assert samples.reconnects >= 50  # everyone was cut off and came back
        assert samples.connected == 50
        assert samples.unacked_at_end == 0
        assert set(samples.errors) <= {"version_mismatch"}, samples.errors
    finally:
        server.stop()


# ---------------------------------------------------------------- slow consumer


async def raw_socket(url: str, token: str, doc: str | None = None, **kw: Any) -> Any:
    ws = await websockets.connect(url, subprotocols=[SUBPROTOCOL], max_size=2**24, **kw)
    await ws.send(encode(Hello(token=token, doc=doc, position_encoding="utf-32")).decode())
    welcome = decode_server(await ws.recv())
    assert welcome.TYPE == "welcome", welcome
    return ws


def noise(chars: int) -> str:
    rng = random.Random(5)
    return "".join(
        "。" if i % 20 == 19 else chr(0x4E00 + rng.randrange(0x5000)) for i in range(chars)
    )


def test_slow_consumer_is_dropped_with_1008_and_others_are_unaffected(tmp_path: Path) -> None:
    # a smaller queue than the default 512 frames keeps the test short; same mechanism
    server = LoggedServer(tmp_path, env={"INKSTONE_SEND_QUEUE_LIMIT": "64"})
    server.start()
    samples = Samples()
    try:

        async def scenario() -> None:
            # a long document whose snapshots are large frames
            author = StudentClient(
                server.url,
                mint_token(None, user="big", role="student", class_id="slow-c"),
                "big-doc",
                lang="zh",
            )
            await author.connect()
            await author.replace(noise(20_000))  # incompressible: deflate would hide it
            await author.wait_synced()
            await author.close()
            rss_before = server.rss_mb()

            teacher = await raw_socket(
                server.url,
                mint_token(None, user="lazy", role="teacher", class_id="slow-c"),
                max_queue=1,
            )
            group = students(server.url, 8, samples, speed=2.0, tag="slow")
            typing = asyncio.ensure_future(type_for(group, 10.0))
            # the teacher watches the typing class, asks for snapshot after snapshot of the
            # long document, and never reads a thing
            await teacher.send(encode(Observe(class_id="slow-c")).decode())
            sent = 0
            deadline = time.monotonic() + 12
            while time.monotonic() < deadline and "slow consumer" not in server.log:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(teacher.send(encode(Observe(doc="big-doc")).decode()), 1)
                    sent += 1
                await asyncio.sleep(1 / 35)  # under the rate limit: not abuse, just slow
            assert "slow consumer" in server.log, f"not dropped after {sent} requests"
            rss_peak = server.rss_mb()
            # now read what is buffered: it ends with the close frame, code 1008
            code = None
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(teacher.recv(), 10)
            code = teacher.close_code
            assert code == 1008, code
            await typing
            problems = await finish_and_verify(group, samples)
            assert problems == []
            assert samples.errors == {}
            assert p99(samples.edit_to_ack_ms) < 500
            assert samples.hints_received > 0
            # bounded: at most send_queue_limit frames (64 × ~60 KB) were ever buffered
            assert rss_peak - rss_before < 60, (rss_before, rss_peak)

        run(scenario())
    finally:
        server.stop()


# ---------------------------------------------------------------- garbage flood


def test_garbage_flood_is_rate_limited_and_closed(tmp_path: Path) -> None:
    server = LoggedServer(tmp_path)
    server.start()
    samples = Samples()
    try:

        async def scenario() -> None:
            group = students(server.url, 6, samples, speed=2.0, tag="gf", lang="en")
            typing = asyncio.ensure_future(type_for(group, 6.0))
            await asyncio.sleep(1.0)
            ws = await raw_socket(
                server.url,
                mint_token(None, user="vandal", role="student", class_id="gf-c"),
                doc="vandal-doc",
            )
            rng = random.Random(0)
            garbage = [
                '{"type": "edit", "base": "x"',
                "\x00\x01",
                "[]",
                '{"type":"nope"}',
                "null",
                '{"type":"edit","base":0,"changes":[{"start":-5,"end":9}]}',
            ]
            sent = 0
            with contextlib.suppress(websockets.ConnectionClosed):
                for _ in range(2000):
                    await ws.send(rng.choice(garbage) + " " * rng.randrange(50))
                    sent += 1
            errors: dict[str, int] = {}
            with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
                while True:
                    message = decode_server(await asyncio.wait_for(ws.recv(), 5))
                    if isinstance(message, Error):
                        errors[message.code] = errors.get(message.code, 0) + 1
            assert ws.close_code == 1008, (ws.close_code, sent, errors)
            assert sum(errors.values()) <= 100  # closed after a bounded number of errors
            assert set(errors) <= {
                "bad_json",
                "bad_message",
                "unknown_type",
                "bad_offsets",
                "rate_limited",
            }
            await typing
            problems = await finish_and_verify(group, samples)
            assert problems == []
            assert samples.errors == {}
            assert p99(samples.edit_to_ack_ms) < 500

        run(scenario())
        assert server.proc is not None and server.proc.poll() is None
    finally:
        server.stop()


# ---------------------------------------------------------------- storage full


def set_file_limit(pid: int, limit: int) -> None:
    """RLIMIT_FSIZE on the running server: writes past ``limit`` fail with EFBIG, as on a
    full disk (Python ignores SIGXFSZ, so the process is not killed). Works as root too."""
    psutil.Process(pid).rlimit(psutil.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


def test_storage_full_rejects_edits_then_recovers(tmp_path: Path) -> None:
    server = LoggedServer(tmp_path)
    server.start()
    assert server.proc is not None
    try:

        async def scenario() -> None:
            token = mint_token(None, user="d1", role="student", class_id="df-c")
            client = StudentClient(server.url, token, "full-doc", lang="zh")
            errors: list[Error] = []
            await client.connect()
            base_handler = client.session.on_message

            def spy(message: Any) -> None:
                if isinstance(message, Error):
                    errors.append(message)
                if base_handler is not None:
                    base_handler(message)

            client.session.on_message = spy
            for ch in "今天天气很好。":
                await client.type_text(ch)
            await client.wait_synced()
            stored_version = client.state.version

            set_file_limit(server.proc.pid, 1)  # "disk full"
            for ch in "我们去":
                await client.type_text(ch)
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            assert errors and {e.code for e in errors} <= {"storage", "version_mismatch"}
            assert any(e.code == "storage" for e in errors)
            assert not client.state.synced
            assert client.session.close_code is None  # not dropped for the server's trouble
            assert server.proc.poll() is None  # no crash

            set_file_limit(server.proc.pid, resource.RLIM_INFINITY)  # space returns
            await client.type_text("公园。")
            await client.wait_synced(10)
            assert client.state.text == "今天天气很好。我们去公园。"
            assert client.state.version is not None and client.state.version > stored_version
            await client.close()
            fresh = StudentClient(server.url, token, "full-doc")
            welcome = await fresh.connect()
            assert welcome.text == "今天天气很好。我们去公园。"
            await fresh.close()

        run(scenario())
        # and it is on disk: survives a kill -9
        server.kill9()
        server.start()

        async def reread() -> str:
            fresh = StudentClient(
                server.url, mint_token(None, user="d1", role="student", class_id="df-c"), "full-doc"
            )
            welcome = await fresh.connect()
            await fresh.close()
            return welcome.text

        assert run(reread()) == "今天天气很好。我们去公园。"
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _quiet_websockets_logs() -> None:
    import logging

    logging.getLogger("websockets").setLevel(logging.ERROR)
