"""One WebSocket connection's protocol handling, without the socket.

The endpoint in :mod:`server.app` feeds frames in (``on_text`` /
``on_binary``) and drains :attr:`Connection.outbox`; everything in between —
size limits, rate limiting, decoding, the lifecycle table, dispatch to the
service, errors with stable codes, and closing abusive or slow peers — lives
here and is tested without a socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from protocol import (
    Dismiss,
    Edit,
    Error,
    ErrorCode,
    Hello,
    Lifecycle,
    Observe,
    PeerError,
    Phase,
    Ping,
    Pong,
    Replace,
    Unobserve,
    decode_client,
    encode,
)
from protocol.positions import Encoding
from server.auth import Identity, verify_token
from server.clock import Clock
from server.documents import Document
from server.service import Inkstone

__all__ = ["CLOSE_GOING_AWAY", "CLOSE_POLICY", "CLOSE_TOO_BIG", "Connection"]

log = logging.getLogger("inkstone.connection")

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
# Errors that are a normal part of editing, or the server's own fault: not abuse.
_BENIGN = {
    ErrorCode.VERSION_MISMATCH,
    ErrorCode.OVERLOADED,
    ErrorCode.NOT_FOUND,
    ErrorCode.STORAGE,
    ErrorCode.INTERNAL,
}


class Connection:
    def __init__(
        self,
        service: Inkstone,
        clock: Clock,
        close: Callable[[int, str], None],
    ) -> None:
        self.service = service
        self.settings = service.settings
        self.metrics = service.metrics
        self.clock = clock
        self._close = close
        self.lifecycle = Lifecycle()
        self.identity = Identity("", "", "", 0)
        self.encoding: Encoding = "utf-16"
        self.doc: Document | None = None
        self.observing_docs: set[str] = set()
        self.observing_classes: set[str] = set()
        self.full_hints_due = False
        self.queued_bytes = 0  # bytes in the outbox; the writer subtracts what it sent
        self.outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._tokens = float(self.settings.rate_burst)
        self._refilled = clock.now()
        self._violations: deque[float] = deque()
        self.closing = False
        self._counted_role: str | None = None

    # ------------------------------------------------------------ output

    def send(self, message: Any) -> None:
        if self.closing:
            return
        frame = encode(message)
        if (
            self.outbox.qsize() >= self.settings.send_queue_limit
            or self.queued_bytes + len(frame) > self.settings.send_queue_bytes
        ):
            self.close(CLOSE_POLICY, "slow consumer: too many unread messages")
            return
        self.queued_bytes += len(frame)
        self.outbox.put_nowait(frame)
        self.metrics.sent.labels(type=message.TYPE).inc()

    def close(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        if self.lifecycle.phase is not Phase.CLOSING:
            self.lifecycle.fire("close")
        log.info("closing connection of %r: %d %s", self.identity.user, code, reason)
        self.outbox.put_nowait(None)
        self._close(code, reason)

    def _error(self, exc: PeerError) -> None:
        self.metrics.errors.labels(code=str(exc.code)).inc()
        self.send(
            Error(
                code=str(exc.code),
                message=exc.message,
                id=exc.msg_id,
                version=exc.version,
                retry_after_ms=exc.retry_after_ms,
                doc=self.doc.id if self.doc is not None else None,
            )
        )
        if exc.code in _BENIGN:
            return
        now = self.clock.now()
        self._violations.append(now)
        while self._violations and now - self._violations[0] > 10.0:
            self._violations.popleft()
        if len(self._violations) > self.settings.max_violations:
            code = CLOSE_TOO_BIG if exc.code == ErrorCode.FRAME_TOO_LARGE else CLOSE_POLICY
            self.close(code, f"too many bad messages ({exc.code})")

    # ------------------------------------------------------------ input

    def _rate_ok(self) -> int | None:
        """None if allowed; otherwise milliseconds until one message is allowed again."""
        now = self.clock.now()
        rate = self.settings.max_messages_per_second
        self._tokens = min(
            float(self.settings.rate_burst), self._tokens + (now - self._refilled) * rate
        )
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return max(1, int((1.0 - self._tokens) / rate * 1000))

    def on_binary(self, data: bytes) -> None:
        self._error(PeerError(ErrorCode.BINARY_FRAME, "send JSON in text frames, not binary"))

    def on_text(self, text: str) -> None:
        if self.closing:
            return
        limit = self.settings.max_message_bytes
        if len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit):
            self._error(
                PeerError(ErrorCode.FRAME_TOO_LARGE, f"frames are limited to {limit} bytes")
            )
            return
        wait = self._rate_ok()
        if wait is not None:
            self._error(PeerError(ErrorCode.RATE_LIMITED, "too many messages", retry_after_ms=wait))
            return
        try:
            message = decode_client(text)
            self.metrics.messages.labels(type=message.TYPE).inc()
            self.lifecycle.check(message.TYPE)
            self._dispatch(message)
        except PeerError as exc:
            self._error(exc)
        except Exception:
            log.exception("bug while handling a message from %r", self.identity.user)
            self._error(PeerError(ErrorCode.INTERNAL, "internal error; the document is unchanged"))

    def _dispatch(self, message: Any) -> None:
        service = self.service
        if isinstance(message, Ping):
            self.send(Pong(id=message.id))
        elif isinstance(message, Hello):
            self._hello(message)
        elif isinstance(message, (Edit, Replace)):
            try:
                self.send(service.apply(self, message))
            except PeerError as exc:
                raise exc.with_id(message.id) from None
        elif isinstance(message, Dismiss):
            try:
                service.dismiss(self, message.hint)
            except PeerError as exc:
                raise exc.with_id(message.id) from None
        elif isinstance(message, Observe):
            try:
                service.observe(self, message.doc, message.class_id, message.id)
            except PeerError as exc:
                raise exc.with_id(message.id) from None
        elif isinstance(message, Unobserve):
            service.unobserve(self, message.doc, message.class_id)

    def _hello(self, hello: Hello) -> None:
        try:
            self.identity = verify_token(self.service.settings.secret, hello.token)
            self.encoding = hello.position_encoding
            if self.identity.role == "student":
                welcome = self.service.open_student(self, hello)
                self.lifecycle.fire("open_student")
                self._count("student")
                self.send(welcome)
                self.service.after_welcome(self)
            else:
                welcome = self.service.welcome(self, hello, None)
                self.lifecycle.fire("open_teacher")
                self._count("teacher")
                self.send(welcome)
        except PeerError as exc:
            raise exc.with_id(hello.id) from None

    def _count(self, role: str) -> None:
        self._counted_role = role
        self.metrics.connections.labels(role=role).inc()

    def on_disconnect(self) -> None:
        if self._counted_role is not None:
            self.metrics.connections.labels(role=self._counted_role).dec()
            self._counted_role = None
        self.closing = True
        self.service.disconnect(self)
