"""Connection admission for uvicorn: caps at accept, a deadline for request headers, fd limits.

Issue 9 (finding 5): sockets that never finish their HTTP upgrade were held
forever, so one client could hold every file descriptor and take /healthz and
every handshake down. This module keeps the server reachable for others:

- a **global cap** and a **per-IP cap** on open connections, checked inside
  ``accept`` (:class:`GuardedListener`, before anything is read): a connection
  over a cap is reset there and then, so its descriptor is freed before the
  next one is accepted. An upgraded WebSocket keeps counting until it closes
  (the count is held by the transport, not by the protocol object that owns it);
- a **handshake deadline**: while a connection owes us request headers (a new
  connection, or a keep-alive connection between requests) it has
  ``handshake_timeout_s`` to send them, and an upgraded WebSocket has the same
  time to finish its opening handshake; otherwise it is aborted (slowloris);
- at start the soft ``RLIMIT_NOFILE`` is raised to the hard limit and the
  global cap is kept ``fd_reserve`` descriptors below it (SQLite, model files,
  logs), so ``accept`` never fails with EMFILE because of clients.

:func:`uvicorn_config` builds the one :class:`uvicorn.Config` used by
``inkstone serve`` and by the tests' servers, and :func:`listen` its listening
socket (``server.run(sockets=[listen(config)])``), so tests exercise the real setup.
It also refuses dev mode on a non-loopback address unless asked explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import resource
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from server.config import Settings

__all__ = [
    "Guard",
    "NetworkPolicyError",
    "check_bind",
    "is_loopback",
    "listen",
    "raise_fd_limit",
    "uvicorn_config",
]

log = logging.getLogger("inkstone.netguard")
REFUSALS_PER_ACCEPT = 256  # refused connections handled in one accept() before yielding


class NetworkPolicyError(ValueError):
    """The settings ask for something unsafe (e.g. dev mode on a public address)."""


Peer = tuple[Any, ...]  # a socket address as accept() and getpeername() give it


@dataclass
class Guard:
    """Open connections by peer IP; decides admission. One per server (event loop).

    A connection is counted from ``accept`` (:class:`GuardedListener`) or, for a socket
    accepted elsewhere, from ``connection_made``, until its transport is lost.
    """

    max_total: int
    max_per_ip: int
    handshake_timeout_s: float
    total: int = 0
    per_ip: dict[str, int] = field(default_factory=dict)
    refused_total_cap: int = 0
    refused_ip_cap: int = 0
    handshake_timeouts: int = 0
    _owners: dict[Any, str] = field(default_factory=dict)  # transport → peer IP
    # accepted, protocol not yet told: peer → (IP, when); connection_made claims them
    _accepted: dict[Peer, tuple[str, float]] = field(default_factory=dict)

    def _take(self, ip: str) -> bool:
        if self.total >= self.max_total:
            self.refused_total_cap += 1
            log.warning("connection refused: %d connections open (global cap)", self.total)
            return False
        if self.per_ip.get(ip, 0) >= self.max_per_ip:
            self.refused_ip_cap += 1
            log.warning("connection refused: per-IP cap of %d reached by %s", self.max_per_ip, ip)
            return False
        self.per_ip[ip] = self.per_ip.get(ip, 0) + 1
        self.total += 1
        return True

    def _give(self, ip: str) -> None:
        self.total -= 1
        left = self.per_ip[ip] - 1
        if left:
            self.per_ip[ip] = left
        else:
            del self.per_ip[ip]

    def on_accept(self, peer: Peer) -> bool:
        """Count a just-accepted socket in, or refuse it (the listener resets it)."""
        now = time.monotonic()
        # a socket asyncio failed to wrap never reaches connection_made: drop it after 30 s
        while self._accepted:
            oldest = next(iter(self._accepted))
            ip, at = self._accepted[oldest]
            if now - at < 30.0:
                break
            del self._accepted[oldest]
            self._give(ip)
        ip = _ip(peer)
        if not self._take(ip):
            return False
        stale = self._accepted.pop(peer, None)  # the same address again: the old one is gone
        if stale is not None:
            self._give(stale[0])
        self._accepted[peer] = (ip, now)
        return True

    def admit(self, transport: asyncio.BaseTransport) -> bool:
        """Claim the count taken at accept, or take one now (a socket accepted elsewhere)."""
        peer = transport.get_extra_info("peername")
        claimed = self._accepted.pop(peer, None) if isinstance(peer, tuple) else None
        if claimed is not None:
            self._owners[transport] = claimed[0]
            return True
        ip = _ip(peer)
        if not self._take(ip):
            return False
        self._owners[transport] = ip
        return True

    def release(self, transport: asyncio.BaseTransport) -> None:
        """Count ``transport`` out (idempotent: HTTP and WebSocket protocols both call it)."""
        ip = self._owners.pop(transport, None)
        if ip is not None:
            self._give(ip)

    def snapshot(self) -> dict[str, int | float]:
        """What /healthz reports."""
        return {
            "open": self.total,
            "peers": len(self.per_ip),
            "max_connections": self.max_total,
            "max_connections_per_ip": self.max_per_ip,
            "handshake_timeout_s": self.handshake_timeout_s,
            "refused_global_cap": self.refused_total_cap,
            "refused_ip_cap": self.refused_ip_cap,
            "handshake_timeouts": self.handshake_timeouts,
        }


def _ip(peer: object) -> str:
    return str(peer[0]) if isinstance(peer, tuple) and peer else "unix"


class GuardedListener(socket.socket):
    """A listening socket whose ``accept`` applies the caps.

    asyncio accepts up to ``backlog`` sockets per wake-up before any protocol sees one;
    refusing them later (in ``connection_made``) would let one peer's burst hold every
    descriptor meanwhile. Here a refused connection is reset and its descriptor freed
    inside ``accept`` itself, before the next one is taken, and before anything is read.
    """

    guard: Guard

    def accept(self) -> tuple[socket.socket, Any]:
        for _ in range(REFUSALS_PER_ACCEPT):
            conn, peer = super().accept()  # BlockingIOError: none left, asyncio waits
            if self.guard.on_accept(peer):
                return conn, peer
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # RST: nothing lingers in TIME_WAIT or in our descriptor table
        # a flood: let the event loop run other work; asyncio retries on the next wake-up
        raise BlockingIOError(errno.EAGAIN, "refused a batch of connections")


def listen(config: uvicorn.Config, sock: socket.socket | None = None) -> socket.socket:
    """The listening socket to pass to ``uvicorn.Server.run(sockets=[...])``: ``sock`` (or
    a new one bound to the config's host and port) with :class:`GuardedListener`'s accept."""
    guard = getattr(config.http, "guard", None)
    if not isinstance(guard, Guard):
        raise TypeError("listen() needs a config made by uvicorn_config()")
    sock = sock if sock is not None else config.bind_socket()
    listener = GuardedListener(sock.family, sock.type, sock.proto, fileno=sock.detach())
    listener.guard = guard
    return listener


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with admission at accept and a request-header deadline."""

    guard: ClassVar[Guard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._admitted = False
        self._upgraded = False
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if not self.guard.admit(transport):
            transport.abort()  # frees the descriptor now; nothing was read
            return
        self._admitted = True
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if not self._admitted:
            return
        self.guard.release(self.transport)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._track()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._upgraded = True
        self._disarm()  # the WebSocket protocol takes over the transport and the count
        super().handle_websocket_upgrade(event)

    # the deadline runs exactly while the peer owes us request headers
    def _track(self) -> None:
        if self._upgraded or self.transport.is_closing():
            self._disarm()
        elif self.conn.their_state is h11.IDLE:
            self._arm()
        else:
            self._disarm()

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.guard.handshake_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self._upgraded or self.transport.is_closing():
            return
        self.guard.handshake_timeouts += 1
        log.info("closed a connection that sent no complete request headers in time")
        self.transport.abort()


class GuardedWebSocketsProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol: releases the count on close; handshake deadline."""

    guard: ClassVar[Guard]
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._deadline = self.loop.call_later(self.guard.handshake_timeout_s, self._expired)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.guard.release(self.transport)
        super().connection_lost(exc)

    def _expired(self) -> None:
        self._deadline = None
        if not self.handshake_complete and not self.transport.is_closing():
            self.guard.handshake_timeouts += 1
            log.info("closed a WebSocket whose opening handshake did not finish in time")
            self.transport.abort()


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (where allowed); return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return int(soft if soft != resource.RLIM_INFINITY else target)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, exc)
        return int(soft)
    return int(target)


def effective_caps(settings: Settings, fd_limit: int) -> tuple[int, int]:
    """(global cap, per-IP cap). Connections are counted from ``accept`` and a refused one
    is closed inside it, so connections never hold more than the global cap (+1) descriptors:
    keeping that ``fd_reserve`` below the limit keeps ``accept`` clear of EMFILE. The per-IP
    cap stays below the global one (else one peer could still take every slot)."""
    total = max(1, min(settings.max_connections, fd_limit - settings.fd_reserve - 1))
    if total < settings.max_connections:
        log.warning(
            "max_connections lowered to %d: the open-files limit is %d and %d are reserved",
            total,
            fd_limit,
            settings.fd_reserve,
        )
    per_ip = settings.max_connections_per_ip
    if per_ip >= total:
        per_ip = max(1, total // 2)
        log.warning(
            "max_connections_per_ip (%d) must be below max_connections (%d); using %d",
            settings.max_connections_per_ip,
            total,
            per_ip,
        )
    return total, per_ip


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost: could resolve to anything


def check_bind(settings: Settings) -> None:
    """Dev mode signs tokens with a public secret: never on the network unless asked."""
    if (
        settings.dev_mode
        and not is_loopback(settings.host)
        and not settings.allow_dev_mode_on_network
    ):
        raise NetworkPolicyError(
            f"refusing to serve dev mode (no secret: anyone can mint tokens) on {settings.host}; "
            "set --secret, bind to 127.0.0.1, or pass --allow-dev-mode-on-network"
        )


def uvicorn_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """The one uvicorn configuration of an Inkstone server (``overrides`` win).

    Raises :class:`NetworkPolicyError` for dev mode on a non-loopback address.
    """
    check_bind(settings)
    total, per_ip = effective_caps(settings, raise_fd_limit())
    guard = Guard(total, per_ip, settings.handshake_timeout_s)
    http = type("InkstoneH11Protocol", (GuardedH11Protocol,), {"guard": guard})
    ws = type("InkstoneWebSocketsProtocol", (GuardedWebSocketsProtocol,), {"guard": guard})
    state = getattr(app, "state", None)
    if state is not None:
        state.netguard = guard
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "http": http,
        "ws": ws,
        "ws_max_size": max(4 * settings.max_message_bytes, 1 << 20),
        "ws_ping_interval": 20,
        "ws_ping_timeout": 20,
        "ws_per_message_deflate": False,  # halves idle-connection memory (docs/benchmarks.md)
        "timeout_keep_alive": 5,
        "log_config": None,
        "timeout_graceful_shutdown": 5,
        "lifespan": "on",
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)
