"""One open document's socket: hello, edits, resume after a drop, and what comes back.

The protocol state (versions, operations in flight, resume arithmetic) is
:class:`protocol.DocumentClient`; this module adds the asyncio socket, the
reconnect loop with back-off, the text of every acknowledged version (so hints
computed for an older version can be placed on the current text), the server's
document-size limit, and a status for progress reports. The socket speaks code
points (``position_encoding: "utf-32"``); the editor's encoding is the LSP layer's
business.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from editors.lsp.settings import TokenError
from editors.lsp.text import TextChange, diff_change
from protocol import (
    SUBPROTOCOL,
    Ack,
    ClientMessage,
    Dismiss,
    DocumentClient,
    Error,
    Hints,
    Lang,
    Limits,
    PeerError,
    Reauthed,
    Scores,
    ServerMessage,
    Welcome,
    decode_server,
    encode,
)

__all__ = ["DocumentSession", "SessionEvents", "Status"]

log = logging.getLogger("inkstone.lsp")
Status = Literal["connecting", "pending", "idle", "overloaded", "offline"]
HISTORY = 256  # acknowledged versions whose text is kept
MAX_IN_FLIGHT = 4  # operations awaiting their ack; later typing is coalesced (see _flush)
# and edits are paced to half the server's announced message rate (see _wait)
AUTH_ERRORS = ("unauthorized", "token_expired", "forbidden", "too_many_documents")
# refusals the student should hear about (once per kind in a row, not per keystroke)
TOLD_ERRORS = ("doc_too_large", "storage", "storage_quota", "rate_limited", "frame_too_large")


class SessionEvents(Protocol):
    def on_hints(
        self, session: DocumentSession, message: Hints, texts: list[str] | None, full: bool
    ) -> None: ...
    def on_scores(self, session: DocumentSession, message: Scores) -> None: ...
    def on_status(self, session: DocumentSession, status: Status, detail: str) -> None: ...
    def on_problem(self, session: DocumentSession, level: str, text: str) -> None: ...


class DocumentSession:
    """The socket side of one open document (code point offsets throughout)."""

    def __init__(
        self,
        url: str,
        doc: str,
        text: str,
        *,
        lang: Lang,
        token: Callable[[], Awaitable[str]],
        events: SessionEvents,
        invalidate_token: Callable[[], None] = lambda: None,
    ) -> None:
        self.url = url
        self.doc = doc
        self.events = events
        self._token = token
        self._invalidate_token = invalidate_token
        self.state = DocumentClient("", doc, lang=lang, encoding="utf-32")
        self.state.text = text
        self.local_text = text  # the editor's (masked) text; state.text lags while over limit
        self.history: dict[int, str] = {}
        self.limits: Limits | None = None
        self.lang: str = "zh" if lang == "auto" else lang  # the welcome says which
        self.over_limit = False
        self.status: Status = "connecting"
        self.scores: Scores | None = None
        self.connects = 0
        self._ws: ClientConnection | None = None
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._welcomed = False
        self._full_due = True
        self._closed = False
        self._overloaded = False
        self._refused = False
        self._said_unreachable = False
        self._last_told: str | None = None
        self._last_edit_at = 0.0
        self._retry_after = 0.0
        self._flush_handle: asyncio.TimerHandle | None = None
        self._resync_handle: asyncio.TimerHandle | None = None
        self._reauth_handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        self._closed = True
        for handle in (self._resync_handle, self._reauth_handle, self._flush_handle):
            if handle is not None:
                handle.cancel()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _run(self) -> None:
        backoff = 0.1
        while not self._closed:
            try:
                token = await self._token()
                self.state.token = token
                async with connect(
                    self.url,
                    subprotocols=[Subprotocol(SUBPROTOCOL)],
                    open_timeout=10,
                    max_size=2**24,
                ) as ws:
                    self._ws, self._welcomed = ws, False
                    self._outbox = asyncio.Queue()
                    await ws.send(encode(self.state.hello()).decode())
                    writer = asyncio.get_running_loop().create_task(self._write(ws))
                    writer.add_done_callback(_ignore_result)  # a failed send ends the read too
                    try:
                        async for frame in ws:
                            if isinstance(frame, str) and self._receive(decode_server(frame)):
                                backoff = 0.1
                    finally:
                        writer.cancel()
            except TokenError as exc:
                self.events.on_problem(self, "error", str(exc))
                backoff = max(backoff, 5.0)
            except (OSError, TimeoutError, websockets.WebSocketException, PeerError) as exc:
                log.info("%s: socket closed (%s)", self.doc, exc)
                received = getattr(exc, "rcvd", None)
                if getattr(received, "code", None) in (1008, 1009):
                    # closed for misbehaving (e.g. a burst over the rate limit): never
                    # reconnect at once, which would resend the same burst
                    backoff = max(backoff, 2.0)
                    if self._last_told != "closed":
                        self._last_told = "closed"
                        reason = getattr(received, "reason", "") or "policy"
                        self.events.on_problem(
                            self,
                            "warning",
                            f"{self.doc}: the server closed the connection "
                            f"({reason}); reconnecting in {backoff:g} s",
                        )
                if self.connects == 0 and not self._said_unreachable:
                    self._said_unreachable = True
                    self.events.on_problem(
                        self,
                        "warning",
                        f"cannot reach the Inkstone server at {self.url} "
                        f"({exc or type(exc).__name__}); retrying",
                    )
            finally:
                was_open = self._welcomed
                self._ws, self._welcomed = None, False
            if self._closed:
                break
            if was_open:
                self.events.on_problem(self, "info", f"{self.doc}: connection lost; reconnecting")
            if self._refused:
                self._refused, backoff = False, 30.0  # a new token or setting may fix it
            if self._retry_after:
                backoff, self._retry_after = max(backoff, self._retry_after), 0.0
            self._set_status("offline", "reconnecting to the Inkstone server")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max(backoff, 5.0))

    # ------------------------------------------------------------ outgoing

    def change(self, change: TextChange | None, new_text: str) -> None:
        """The editor's (masked) text became ``new_text`` by ``change`` (None: unknown)."""
        previous, self.local_text = self.local_text, new_text
        if self.limits is not None and len(new_text) > self.limits.max_document_chars:
            if not self.over_limit:
                self.over_limit = True
                self.events.on_problem(self, "warning", self._limit_text(len(new_text)))
            return
        if self.over_limit:
            self.over_limit = False
            self.events.on_problem(self, "info", f"{self.doc}: under the limit again; checking")
        in_step = self.state.text == previous and len(self.state.pending) < MAX_IN_FLIGHT
        if change is not None and in_step and self._can_send() and self._wait() <= 0:
            self._send_edit(change)
            self._update_status()
        else:
            self._flush()

    def dismiss(self, hint_id: str) -> None:
        self._send(Dismiss(hint=hint_id))

    def _can_send(self) -> bool:
        return self.state.version is not None and self.state.resync_due_ms is None

    def _flush(self) -> None:
        """Bring the server up to the local text with one edit (the diff of everything not
        sent yet), once fewer than ``MAX_IN_FLIGHT`` operations await their ack. Typing
        faster than the acks come back is coalesced instead of queued message by message,
        so a burst never runs into the server's rate limit."""
        if not self._can_send() or self.over_limit:
            if self.state.version is None or self.state.resync_due_ms is not None:
                self.state.text = self.local_text  # goes out with the welcome's or the resync's
        elif self.state.text != self.local_text and len(self.state.pending) < MAX_IN_FLIGHT:
            wait = self._wait()
            if wait > 0:
                if self._flush_handle is None:
                    loop = asyncio.get_running_loop()
                    self._flush_handle = loop.call_later(wait, self._flush_later)
            else:
                self._send_edit(diff_change(self.state.text, self.local_text))
        self._update_status()

    def _flush_later(self) -> None:
        self._flush_handle = None
        self._flush()

    def _wait(self) -> float:
        """Seconds until the next edit may go: half the announced message rate, since the
        budget is shared by all of the user's connections (one per open document)."""
        rate = self.limits.max_messages_per_second if self.limits is not None else 40.0
        interval = 2.0 / max(rate, 1.0)
        return self._last_edit_at + interval - time.monotonic()

    def _send_edit(self, change: TextChange) -> None:
        edit = self.state.change(change.start, change.end, change.text)
        if edit is not None:
            self._last_edit_at = time.monotonic()
            self._send(edit)

    def _send(self, message: ClientMessage) -> None:
        if self._ws is None or not self._welcomed:
            return  # kept in state.pending: the resume after the next welcome sends it
        self._outbox.put_nowait(encode(message).decode())

    async def _write(self, ws: ClientConnection) -> None:
        while True:
            frame = await self._outbox.get()
            await ws.send(frame)

    # ------------------------------------------------------------ incoming

    def _receive(self, message: ServerMessage) -> bool:
        """Handle one server message; True on a welcome."""
        flush = False
        if isinstance(message, Welcome):
            self.limits = message.limits
            self.lang = message.lang if message.lang in ("zh", "en") else self.lang
            first = self.state.version is None
            if first and len(self.local_text) > message.limits.max_document_chars:
                self.state.text = message.text  # keep the server's text; nothing is sent
                self.over_limit = True
                self.events.on_problem(self, "warning", self._limit_text(len(self.local_text)))
        replies = self.state.receive(message)
        if isinstance(message, Welcome):
            self._welcomed, self._full_due = True, True
            self.connects += 1
            self.history[message.version] = message.text
        elif isinstance(message, Ack) and self.state.version == message.version:
            self._last_told = None  # stored again: a new refusal will be told
            flush = True
            self.history[message.version] = self.state.confirmed_text
            while len(self.history) > HISTORY:
                del self.history[min(self.history)]
        elif isinstance(message, Hints):
            full, self._full_due = self._full_due, False
            self._overloaded = False
            if not self.over_limit:
                self.events.on_hints(self, message, self.texts_since(message.version), full)
        elif isinstance(message, Scores):
            self.scores = message
            self.events.on_scores(self, message)
        elif isinstance(message, Error):
            self._on_error(message)
        if isinstance(message, Welcome | Reauthed) and message.token_expires:
            self._schedule_reauth(message.token_expires)
        if isinstance(message, Reauthed):
            until = time.strftime("%H:%M UTC", time.gmtime(message.token_expires))
            self.events.on_problem(self, "info", f"{self.doc}: token renewed (until {until})")
        for reply in replies:
            self._send(reply)
        if flush:
            self._flush()
        if isinstance(message, Welcome) and self.over_limit is False:
            self._flush()  # typed while offline beyond what the resume replays
        self._schedule_resync()
        self._update_status()
        return isinstance(message, Welcome)

    def _on_error(self, error: Error) -> None:
        if not self._welcomed and error.code not in AUTH_ERRORS and self._ws is not None:
            # the hello itself was refused (e.g. too many sessions opened at once): try
            # again when the server says, on a new socket
            self._retry_after = (error.retry_after_ms or 1000) / 1000
            task = asyncio.get_running_loop().create_task(self._ws.close())
            task.add_done_callback(_ignore_result)
        if error.code == "overloaded":
            self._overloaded = True
            retry = f" (retry in {error.retry_after_ms} ms)" if error.retry_after_ms else ""
            self._set_status("overloaded", f"the server is busy; feedback is delayed{retry}")
        elif error.code in TOLD_ERRORS:
            if error.code != self._last_told:
                self._last_told = error.code
                told = f"{self.doc}: {error.code}: {error.message}"
                self.events.on_problem(self, "warning", told)
        elif error.code in AUTH_ERRORS and not self._welcomed:
            self._invalidate_token()
            self._refused = True
            self.events.on_problem(self, "error", f"{self.doc}: {error.code}: {error.message}")
            if self._ws is not None:
                task = asyncio.get_running_loop().create_task(self._ws.close())
                task.add_done_callback(_ignore_result)
        elif error.code != "version_mismatch":
            log.warning("%s: server error %s: %s", self.doc, error.code, error.message)

    def _schedule_reauth(self, expires: float) -> None:
        """A minute before the session's token expires, present a fresh one (from
        ``tokenCommand`` or the dev server) on the open socket, keeping the session."""
        if self._reauth_handle is not None:
            self._reauth_handle.cancel()
        delay = max(1.0, expires - time.time() - 60)
        loop = asyncio.get_running_loop()
        self._reauth_handle = loop.call_later(delay, self._spawn_reauth)

    def _spawn_reauth(self) -> None:
        self._reauth_handle = None
        task = asyncio.get_running_loop().create_task(self._reauth())
        task.add_done_callback(_ignore_result)

    async def _reauth(self) -> None:
        old = self.state.token
        self._invalidate_token()
        try:
            token = await self._token()
        except TokenError as exc:
            self.events.on_problem(self, "warning", f"{self.doc}: no fresh token: {exc}")
            return
        if token != old and self._welcomed:
            self._send(self.state.reauth(token))
        elif token == old:
            self.events.on_problem(
                self, "warning", f"{self.doc}: the token expires soon; configure a new one"
            )

    def _schedule_resync(self) -> None:
        if self.state.resync_due_ms is None or self._resync_handle is not None:
            return

        def fire() -> None:
            self._resync_handle = None
            if self.state.resync_due_ms is not None and self._welcomed:
                self.state.text = self.local_text
                self._send(self.state.resync())

        loop = asyncio.get_running_loop()
        self._resync_handle = loop.call_later(self.state.resync_due_ms / 1000, fire)

    def texts_since(self, version: int) -> list[str] | None:
        """The text at ``version``, at each later version, and now; None if not known."""
        if version not in self.history:
            return None
        texts = [self.history[v] for v in sorted(self.history) if v >= version]
        texts.extend(p.text_after for p in self.state.pending)
        texts.append(self.local_text)
        return texts

    # ------------------------------------------------------------ status

    def _update_status(self) -> None:
        if self._ws is None or not self._welcomed:
            return
        if self._overloaded:
            return
        behind = (
            not self.state.synced
            or self.state.version is None
            or self.state.hints_version < self.state.version
        )
        if behind and not self.over_limit:
            self._set_status("pending", "checking the draft")
        else:
            self._set_status("idle", "")

    def _set_status(self, status: Status, detail: str) -> None:
        if status != self.status:
            self.status = status
            self.events.on_status(self, status, detail)

    def _limit_text(self, chars: int) -> str:
        limit = self.limits.max_document_chars if self.limits else 0
        return (
            f"{self.doc}: the document has {chars} characters; the Inkstone server checks at "
            f"most {limit}. It is not checked until it is shorter."
        )


def _ignore_result(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()
