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
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from protocol import (
    Ack,
    Comment,
    Dismiss,
    Edit,
    Error,
    ErrorCode,
    Grade,
    Hello,
    Lifecycle,
    Observe,
    PeerError,
    Phase,
    Ping,
    Pong,
    Reauth,
    Reauthed,
    Replace,
    Resolve,
    Submit,
    Unobserve,
    Verdict,
    decode_client,
    encode,
)
from protocol.positions import Encoding
from server.auth import Identity, verify_token
from server.clock import Clock, TimerHandle
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
        self.client_id: str | None = None  # hello.client: with edit.seq, idempotent resend
        self._acks: set[asyncio.Task[None]] = set()
        self.queued_bytes = 0  # bytes in the outbox; the writer subtracts what it sent
        self.outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.last_progress = clock.now()  # a frame was written, or the outbox was empty
        self._streams: deque[Iterator[Any]] = deque()
        self._tokens = float(self.settings.rate_burst)  # before hello: this socket's own
        self._refilled = clock.now()
        self._expiry: TimerHandle | None = None
        self._violations: deque[float] = deque()
        self.closing = False
        self._counted_role: str | None = None

    # ------------------------------------------------------------ output

    def send(self, message: Any) -> None:
        if self.closing:
            return
        frame = encode(message)
        now = self.clock.now()
        if self.outbox.empty():
            self.last_progress = now
        limit = self.settings.send_queue_bytes
        # Slow is a backlog that is not being read, not a large frame: the backlog must
        # exceed the limit with nothing written for a grace period (or grow to 4 × it).
        if (
            self.outbox.qsize() >= self.settings.send_queue_limit
            or self.queued_bytes > 4 * limit
            or (
                self.queued_bytes > limit
                and now - self.last_progress > self.settings.slow_consumer_grace_s
            )
        ):
            self.close(CLOSE_POLICY, "slow consumer: too many unread messages")
            return
        self.queued_bytes += len(frame)
        self.outbox.put_nowait(frame)
        self.metrics.sent.labels(type=message.TYPE).inc()

    def stream(self, messages: Iterator[Any]) -> None:
        """Send ``messages`` at the reader's pace: pulled while few frames wait unread."""
        self._streams.append(messages)
        self._pump()

    def on_sent(self, nbytes: int) -> None:
        """The writer put a frame on the socket."""
        self.queued_bytes -= nbytes
        self.last_progress = self.clock.now()
        if self._streams:
            self._pump()

    def _pump(self) -> None:
        while self._streams and not self.closing:
            if self.outbox.qsize() >= self.settings.stream_low_water:
                return
            try:
                message = next(self._streams[0])
            except StopIteration:
                self._streams.popleft()
                continue
            except Exception:
                log.exception("a streamed reply to %r failed", self.identity.user)
                self._streams.popleft()
                continue
            self.send(message)

    def close(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        self._streams.clear()
        if self._expiry is not None:
            self._expiry.cancel()
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

    def _rate_ok(self, nbytes: int) -> int | None:
        """None if allowed; otherwise milliseconds until one message is allowed again.

        After hello the budgets are the user's, shared by all their connections (so
        reconnecting does not refill them): messages per second and bytes per second."""
        now = self.clock.now()
        if self._counted_role is not None:
            user = (self.identity.class_id, self.identity.role, self.identity.user)
            budgets = self.service.budgets
            return budgets.message(user, now) or budgets.text(user, nbytes, now)
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
        nbytes = len(text) if text.isascii() else len(text.encode())
        if nbytes > limit:
            self._error(
                PeerError(ErrorCode.FRAME_TOO_LARGE, f"frames are limited to {limit} bytes")
            )
            return
        wait = self._rate_ok(nbytes)
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
                result = service.apply(self, message)
            except PeerError as exc:
                raise exc.with_id(message.id) from None
            if isinstance(result, Ack):
                self.send(result)
            else:  # group commit: the ack goes out once COMMIT returned
                task = asyncio.ensure_future(self._ack_later(result, message.id))
                self._acks.add(task)
                task.add_done_callback(self._acks.discard)
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
            if message.class_id is not None:
                self.send(service.reviews.queue_message(message.class_id, message.id))
        elif isinstance(message, (Comment, Resolve, Verdict, Grade, Submit)):
            self._review(message)
        elif isinstance(message, Unobserve):
            service.unobserve(self, message.doc, message.class_id)
        elif isinstance(message, Reauth):
            self._reauth(message)

    def _review(self, message: Comment | Resolve | Verdict | Grade | Submit) -> None:
        reviews = self.service.reviews
        try:
            if isinstance(message, Comment):
                reviews.comment(self, message)
            elif isinstance(message, Resolve):
                reviews.resolve(self, message)
            elif isinstance(message, Verdict):
                reviews.verdict(self, message)
            elif isinstance(message, Grade):
                reviews.grade(self, message)
            else:
                reviews.submit(self, message.id)
        except PeerError as exc:
            raise exc.with_id(message.id) from None

    async def _ack_later(self, pending: Awaitable[Ack], msg_id: Any) -> None:
        try:
            self.send(await pending)
        except PeerError as exc:
            self._error(exc.with_id(msg_id))

    # ------------------------------------------------------------ token lifetime

    def _verify(self, token: str) -> Identity:
        return verify_token(
            self.settings.secret, token, max_lifetime_s=self.settings.max_token_lifetime_s
        )

    def _schedule_expiry(self) -> None:
        """End the session when the token expires (unless a reauth comes first)."""
        if self._expiry is not None:
            self._expiry.cancel()
        left = self.identity.expires - time.time()
        self._expiry = self.clock.call_at(self.clock.now() + max(0.0, left), self._expired)

    def _expired(self) -> None:
        if self.closing:
            return
        if self.identity.expires > time.time():  # a clock step: not yet
            self._schedule_expiry()
            return
        self.send(
            Error(
                code=str(ErrorCode.TOKEN_EXPIRED),
                message="your token expired; reconnect with a fresh one (or send 'reauth' "
                "before it expires to keep this session)",
            )
        )
        self.metrics.errors.labels(code=str(ErrorCode.TOKEN_EXPIRED)).inc()
        self.close(CLOSE_POLICY, "token expired")

    def _reauth(self, message: Reauth) -> None:
        try:
            fresh = self._verify(message.token)
        except PeerError as exc:
            raise exc.with_id(message.id) from None
        me = self.identity
        if (fresh.user, fresh.role, fresh.class_id) != (me.user, me.role, me.class_id):
            raise PeerError(
                ErrorCode.FORBIDDEN,
                "the new token is for another user, role or class; reconnect with it instead",
                msg_id=message.id,
            )
        self.identity = fresh
        self._schedule_expiry()
        self.send(Reauthed(token_expires=fresh.expires, id=message.id))

    def _hello(self, hello: Hello) -> None:
        try:
            identity = self._verify(hello.token)
            if identity.role == "parent":
                raise PeerError(
                    ErrorCode.FORBIDDEN, "parent tokens read reports only (GET /v1/reports/…)"
                )
            user = (identity.class_id, identity.role, identity.user)
            wait = self.service.budgets.session(user, self.clock.now())
            if wait is not None:
                raise PeerError(
                    ErrorCode.RATE_LIMITED,
                    "too many sessions opened; wait before reconnecting",
                    retry_after_ms=wait,
                )
            self.identity = identity
            self.encoding = hello.position_encoding
            self.client_id = hello.client
            if self.identity.role == "student":
                welcome = self.service.open_student(self, hello)
                self.lifecycle.fire("open_student")
                self._count("student")
                self._schedule_expiry()
                self.send(welcome)
                self.service.after_welcome(self)
            else:
                welcome = self.service.welcome(self, hello, None)
                self.lifecycle.fire("open_teacher")
                self._count("teacher")
                self._schedule_expiry()
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
        self._streams.clear()
        if self._expiry is not None:
            self._expiry.cancel()
        self.service.disconnect(self)
