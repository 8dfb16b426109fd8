"""Issue 9, findings 5 and 10: connection caps, the handshake deadline, rate-limited logs.

Every attack runs through real sockets against ``inkstone serve`` as a child
process on loopback (settings through ``INKSTONE_*`` variables, which an older
server simply ignores). The attacker's connections come from 127.0.0.2/.3 (all
of 127/8 is loopback on Linux), so the per-IP cap can tell the attacker from the
well-behaved client on 127.0.0.1.

``INKSTONE_TEST_SERVER_ROOT=/path/to/checkout`` runs the same attacks against
another checkout's server: that is how they were seen to fail on 74543a6.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import websockets

from protocol import SUBPROTOCOL, Hello, encode
from server.auth import mint_token
from server.logs import RateLimitFilter
from server.netguard import is_loopback
from server.wsclient import StudentClient
from tests.conftest import ROOT, free_socket, run

SERVER_ROOT = Path(os.environ.get("INKSTONE_TEST_SERVER_ROOT", str(ROOT)))
ATTACKER, ATTACKER_2 = "127.0.0.2", "127.0.0.3"


@contextmanager
def serve(
    tmp: Path, settings: dict[str, Any], *, nofile: int | None = None, extra: tuple[str, ...] = ()
) -> Iterator[Served]:
    served = Served(tmp, settings, nofile=nofile, extra=extra)
    try:
        served.start()
        yield served
    finally:
        served.stop()


class Served:
    """``inkstone serve --no-models`` in a child process; its log goes to a file."""

    def __init__(
        self, tmp: Path, settings: dict[str, Any], *, nofile: int | None, extra: tuple[str, ...]
    ) -> None:
        sock = free_socket()
        self.port = sock.getsockname()[1]
        sock.close()
        self.log_path = tmp / "server.log"
        self.env = {**os.environ, "PYTHONPATH": str(SERVER_ROOT)}
        self.env.pop("INKSTONE_SECRET", None)
        self.env.update({f"INKSTONE_{k.upper()}": str(v) for k, v in settings.items()})
        self.cmd = [sys.executable, "-m", "server.cli", "serve", "--no-models"]
        self.cmd += ["--port", str(self.port), "--data-dir", str(tmp / "data"), *extra]
        self.nofile = nofile
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"ws://127.0.0.1:{self.port}/v1/ws"

    def _limit(self) -> None:  # runs in the child before exec
        if self.nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=SERVER_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self._limit,
            )
        deadline = time.monotonic() + 60
        while self.health(timeout=1) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{self.log()}")
            time.sleep(0.1)

    def health(self, timeout: float = 3.0) -> dict[str, Any] | None:
        try:
            url = f"http://127.0.0.1:{self.port}/healthz"
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return dict(json.loads(r.read()))
        except OSError:
            return None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> str:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.log()


# ---------------------------------------------------------------- raw sockets


def connect_from(src: str, port: int) -> socket.socket:
    """A TCP connection from ``src`` that sends nothing (yet)."""
    return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(src, 0))


def open_many(src: str, port: int, n: int) -> tuple[list[socket.socket], int]:
    """``n`` idle connections from ``src``: those still open, and how many the server reset
    before ``connect`` even returned (a refusal at accept can be that quick)."""
    opened: list[socket.socket] = []
    reset = 0
    for _ in range(n):
        try:
            opened.append(connect_from(src, port))
        except ConnectionResetError:
            reset += 1
    return opened, reset


def closed_by_peer(sock: socket.socket) -> bool:
    """True once the server closed or reset ``sock`` (never blocks)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1024, socket.MSG_DONTWAIT) == b""
    except ConnectionResetError:
        return True
    except BlockingIOError:
        return False


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


def raw_websocket(port: int) -> socket.socket:
    """Finish a WebSocket opening handshake by hand (so we may send invalid frames)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def masked_frame(opcode: int, payload: bytes) -> bytes:
    assert len(payload) < 126
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


async def well_behaved_student(url: str, user: str = "good") -> None:
    """A normal client still gets in and gets its edit acknowledged."""
    token = mint_token(None, user=user, role="student", class_id="c1")
    client = StudentClient(url, token, f"{user}-essay", lang="en")
    try:
        await client.connect(timeout=5)
        await client.type_text("A well-behaved student writes a sentence.")
        await client.wait_synced(5)
    finally:
        await client.close()


async def hello_from(src: str, url: str, user: str) -> Any:
    """A WebSocket from ``src`` that has said hello and got its welcome."""
    ws = await websockets.connect(
        url, subprotocols=[SUBPROTOCOL], open_timeout=5, local_addr=(src, 0)
    )
    token = mint_token(None, user=user, role="student", class_id="c1")
    await ws.send(encode(Hello(token=token, doc=f"{user}-essay")).decode())
    reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert reply["type"] == "welcome", reply
    return ws


# ---------------------------------------------------------------- finding 5


def test_slow_and_silent_handshakes_are_closed_after_the_timeout(tmp_path: Path) -> None:
    """Slowloris: connections that never finish their request headers are closed, even
    while they keep dribbling header bytes; an upgraded WebSocket is not affected."""
    with serve(tmp_path, {"handshake_timeout_s": 1.0}) as server:
        silent = [connect_from(ATTACKER, server.port) for _ in range(5)]
        dribbling = [connect_from(ATTACKER, server.port) for _ in range(5)]
        for s in dribbling:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        try:
            time.sleep(0.5)
            assert not any(closed_by_peer(s) for s in silent + dribbling)  # not at accept
            closed: set[int] = set()
            deadline = time.monotonic() + 4.0
            while len(closed) < 10 and time.monotonic() < deadline:
                for i, s in enumerate(silent + dribbling):
                    if i in closed:
                        continue
                    if closed_by_peer(s):
                        closed.add(i)
                    elif i >= 5:
                        try:
                            s.sendall(b"X-Slow: 1\r\n")
                        except OSError:
                            closed.add(i)
                time.sleep(0.25)
            assert len(closed) == 10, f"{10 - len(closed)} half-open connections still held"
        finally:
            close_all(silent + dribbling)

        async def upgraded_survives() -> None:
            ws = await hello_from("127.0.0.1", server.url, "patient")
            try:
                await ws.ping()
                await asyncio.sleep(1.5)  # longer than the handshake timeout
                pong = await ws.ping()
                await pong
            finally:
                await ws.close()

        run(upgraded_survives())
        health = server.health()
        assert health is not None and health["network"]["handshake_timeouts"] >= 10


def test_a_keep_alive_connection_cannot_dribble_its_next_request(tmp_path: Path) -> None:
    """After one complete request, the next request's headers have the same deadline
    (uvicorn's keep-alive timer stops at the first byte of a new request)."""
    with serve(tmp_path, {"handshake_timeout_s": 1.0}) as server:
        sock = connect_from(ATTACKER, server.port)
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = b""
            while b'"status"' not in reply:
                chunk = sock.recv(4096)
                assert chunk, "closed before answering the first request"
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 200")
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            deadline = time.monotonic() + 4.0
            closed = False
            while not closed and time.monotonic() < deadline:
                time.sleep(0.25)
                closed = closed_by_peer(sock)
                if not closed:
                    try:
                        sock.sendall(b"X-Slow: 1\r\n")
                    except OSError:
                        closed = True
            assert closed, "a dribbled second request kept the connection"
        finally:
            sock.close()


def test_one_peer_cannot_take_every_descriptor(tmp_path: Path) -> None:
    """With the fd limit at 256, 300 idle connections from one peer used to take /healthz and
    every handshake down (and flood the log with EMFILE tracebacks)."""
    settings = {"max_connections_per_ip": 40, "handshake_timeout_s": 30}
    with serve(tmp_path, settings, nofile=256) as server:
        flood, reset_at_connect = open_many(ATTACKER, server.port, 300)
        try:
            time.sleep(1.0)
            health = server.health(timeout=3)
            assert health is not None, "/healthz did not answer while one peer floods"
            run(well_behaved_student(server.url))
            refused = reset_at_connect + sum(closed_by_peer(s) for s in flood)
            assert refused >= 300 - 40
            net = server.health()
            assert net is not None
            assert net["network"]["refused_ip_cap"] >= 260
            assert net["network"]["max_connections"] <= 256 - 100  # below the fd limit
        finally:
            close_all(flood)
        log = server.stop()
    assert "Traceback" not in log
    assert len(log) < 20_000, f"{len(log)} bytes of log for one flood"


def test_global_cap_counts_every_peer(tmp_path: Path) -> None:
    settings = {"max_connections": 30, "max_connections_per_ip": 20, "handshake_timeout_s": 30}
    with serve(tmp_path, settings) as server:
        first, first_reset = open_many(ATTACKER, server.port, 20)
        time.sleep(0.3)
        second, second_reset = open_many(ATTACKER_2, server.port, 20)
        try:
            time.sleep(0.7)
            assert first_reset + sum(closed_by_peer(s) for s in first) == 0
            refused = second_reset + sum(closed_by_peer(s) for s in second)
            assert refused == 10  # 20 + 10 = the cap of 30
        finally:
            close_all(first)
        time.sleep(0.3)
        try:
            health = server.health()
            assert health is not None
            assert health["network"]["refused_global_cap"] == 10
            assert health["network"]["open"] <= 10 + 1  # the 10 left from .3, and this request
        finally:
            close_all(second)


def test_websockets_count_toward_the_cap_until_closed(tmp_path: Path) -> None:
    settings = {"max_connections": 50, "max_connections_per_ip": 5, "handshake_timeout_s": 30}
    with serve(tmp_path, settings) as server:

        async def scenario() -> None:
            open_ = [await hello_from(ATTACKER, server.url, f"s{i}") for i in range(5)]
            try:
                with pytest.raises((OSError, websockets.WebSocketException, TimeoutError)):
                    await hello_from(ATTACKER, server.url, "s5")  # a sixth: over the cap
                await well_behaved_student(server.url)  # another peer is not affected
                await open_.pop().close()
                await asyncio.sleep(0.2)
                open_.append(await hello_from(ATTACKER, server.url, "s6"))  # slot released
            finally:
                for ws in open_:
                    await ws.close()

        run(scenario())


def test_dev_mode_refuses_a_network_address(tmp_path: Path) -> None:
    """One clear line and a non-zero exit, before binding anything."""
    for host in ("0.0.0.0", "::"):
        proc = subprocess.run(
            [sys.executable, "-m", "server.cli", "serve", "--no-models", "--host", host],
            cwd=SERVER_ROOT,
            env={**os.environ, "PYTHONPATH": str(SERVER_ROOT), "INKSTONE_SECRET": ""},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "--allow-dev-mode-on-network" in lines[0], proc.stderr
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")


# ---------------------------------------------------------------- finding 10 + rate limit


def test_invalid_utf8_frames_are_logged_at_a_bounded_rate(tmp_path: Path) -> None:
    """Each invalid UTF-8 text frame logged an ERROR traceback (uvicorn.error)."""
    with serve(tmp_path, {"log_burst": 5, "log_interval_s": 600}) as server:
        for _ in range(30):
            sock = raw_websocket(server.port)
            try:
                sock.sendall(masked_frame(0x1, b"\xc3\x28 not utf-8"))
                reply = sock.recv(64)
                assert reply[:1] == b"\x88" and reply[2:4] == (1007).to_bytes(2, "big")
            finally:
                sock.close()
        run(well_behaved_student(server.url))
        log = server.stop()
    assert log.count("ERROR uvicorn.error: Invalid UTF-8 sequence") == 5, log[-3000:]
    assert log.count("Traceback") == 5
    assert (
        "WARNING inkstone.logs: suppressed 25 similar messages in 600 s from uvicorn.error: "
        "Invalid UTF-8 sequence received from client." in log
    )


def test_rate_limit_filter_sums_up_what_it_suppressed() -> None:
    now = [0.0]
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    limiter = RateLimitFilter(handler, burst=3, interval_s=10, clock=lambda: now[0])
    handler.addFilter(limiter)
    logger = logging.getLogger("test.netguard.flood")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for i in range(10):
            logger.error("accept failed: fd %d", i)
        logger.error("another message")
        assert out.getvalue().count("accept failed") == 3
        assert "another message" in out.getvalue()
        now[0] = 11.0
        logger.error("accept failed: fd %d", 99)
        lines = out.getvalue().splitlines()
        assert lines[-2] == (
            "inkstone.logs suppressed 7 similar messages in 10 s from test.netguard.flood: "
            "accept failed: fd %d"
        )
        assert lines[-1] == "test.netguard.flood accept failed: fd 99"
        for _ in range(5):
            logger.error("accept failed: fd %d", 1)
        limiter.flush()
        assert out.getvalue().splitlines()[-1].startswith("inkstone.logs suppressed 3 similar")
    finally:
        logger.removeHandler(handler)


def test_caps_stay_below_the_descriptor_limit() -> None:
    from server.config import Settings
    from server.netguard import effective_caps

    roomy = Settings(max_connections=10_000, max_connections_per_ip=2_000, fd_reserve=128)
    assert effective_caps(roomy, 1 << 20) == (10_000, 2_000)
    assert effective_caps(roomy, 1024) == (1024 - 128 - 1, (1024 - 128 - 1) // 2)
    tight = Settings(max_connections=100, max_connections_per_ip=100)
    assert effective_caps(tight, 1 << 20) == (100, 50)  # one peer never gets every slot
