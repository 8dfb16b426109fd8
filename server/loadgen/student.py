"""One simulated student: a real WebSocket client typing an essay, measured.

Built on :class:`server.wsclient.StudentClient` (and so on the sans-I/O
:class:`protocol.DocumentClient`): edits, acks, resume after a dropped
connection and re-sending unacknowledged edits are the project's own client
logic; this module adds timing, pacing, reconnects and the final check.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from protocol import Ack, Edit, Error, Hints, Scores, ServerMessage, Welcome
from server.loadgen.corpus import Essay
from server.loadgen.typing import TypingModel
from server.wsclient import SocketSession, StudentClient

__all__ = ["Samples", "SimStudent", "verify_stored"]


@dataclass(slots=True)
class Samples:
    """Raw measurements of one load-generator process (merged by the report)."""

    edit_to_ack_ms: list[float] = field(default_factory=list)
    edit_to_hints_ms: list[float] = field(default_factory=list)
    server_edit_to_hints_ms: list[float] = field(default_factory=list)  # timing.since_edit_ms
    # client-side, debounce excluded: hints arrival − when the debounce was due to fire
    # (min(last covered edit + quiet, first covered edit + max wait)); unlike analysis_ms it
    # also counts event-loop lag before the debounce callback runs
    edit_to_hints_after_debounce_ms: list[float] = field(default_factory=list)
    server_analysis_ms: list[float] = field(default_factory=list)  # timing.analysis_ms
    server_analysis_at: list[float] = field(default_factory=list)  # when (monotonic s)
    edit_to_ack_at: list[float] = field(default_factory=list)
    server_queue_ms: list[float] = field(default_factory=list)
    server_debounce_lag_ms: list[float] = field(default_factory=list)  # if the server says
    server_inference_ms: list[float] = field(default_factory=list)
    edit_to_observer_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)  # server error frames by code
    events: Counter[str] = field(default_factory=Counter)  # connect failures, closes by code
    edits_sent: int = 0
    edits_acked: int = 0
    chars_typed: int = 0
    hints_received: int = 0
    scores_received: int = 0
    versions_edited: int = 0
    versions_hinted: int = 0
    reconnects: int = 0
    students: int = 0
    connected: int = 0
    lost_edits: int = 0
    unacked_at_end: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    observer_messages: int = 0
    observer_mismatches: int = 0
    keystroke_kinds: Counter[str] = field(default_factory=Counter)


class _Inbox(asyncio.Queue):  # type: ignore[type-arg]
    """Keeps messages only while someone waits for the welcome (a run can last hours)."""

    keep = True

    def put_nowait(self, item: Any) -> None:
        if self.keep:
            super().put_nowait(item)


class _Pacer:
    """Client-side token bucket below the server's announced rate (no self-inflicted 429s)."""

    def __init__(self, rate: float = 30.0, burst: float = 40.0) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, time.monotonic()

    def configure(self, rate: float, burst: int) -> None:
        self.rate, self.burst = 0.75 * rate, max(1.0, 0.5 * burst)
        self.tokens = min(self.tokens, self.burst)

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self.tokens) / self.rate)


class MeasuredClient(StudentClient):
    """A StudentClient that timestamps edits and reads timing from replies."""

    def __init__(
        self, url: str, token: str, doc: str, lang: Any, samples: Samples, in_flight: int = 1
    ) -> None:
        # in_flight 1: keystrokes typed while an edit awaits its ack are composed into the
        # next edit (0: every keystroke is its own edit, as before issue 12)
        super().__init__(url, token, doc, lang=lang, max_in_flight=in_flight or None)
        self.samples = samples
        self.sent_at: dict[Any, float] = {}  # message id → send time
        self.version_sent_at: dict[int, float] = {}  # resulting version → send time
        self.hinted_version = 0
        self.last_ack_version = 0
        self.quiet_s = 0.3
        self.max_wait_s = 1.0

    async def connect(self, timeout: float = 10.0) -> Welcome:
        session = SocketSession(self.url)
        inbox = session.inbox = _Inbox()
        session.on_message = self._on_message
        self.session = session
        await session.open()
        await session.send(self.state.hello())
        message = await session.wait_for(lambda m: m.TYPE in ("welcome", "error"), timeout)
        inbox.keep = False
        while not inbox.empty():
            inbox.get_nowait()
        if not isinstance(message, Welcome):
            raise ConnectionError(f"hello refused: {message}")
        self.welcome = message
        if message.debounce_ms:
            self.quiet_s = message.debounce_ms / 1000
        max_ms = getattr(message, "debounce_max_ms", 0)  # announced by newer servers
        if max_ms:
            self.max_wait_s = max_ms / 1000
        return message

    def _on_message(self, message: ServerMessage) -> None:
        now = time.monotonic()
        s = self.samples
        if isinstance(message, Ack):
            sent = self.sent_at.pop(message.id, None)
            if sent is not None:
                s.edit_to_ack_ms.append((now - sent) * 1000)
                s.edit_to_ack_at.append(now)
            s.edits_acked += 1
            self.last_ack_version = message.version
        elif isinstance(message, Hints):
            s.hints_received += 1
            if message.timing is not None and message.version > self.hinted_version:
                covered = [v for v in self.version_sent_at if v <= message.version]
                if covered:
                    oldest = min(self.version_sent_at[v] for v in covered)
                    newest = max(self.version_sent_at[v] for v in covered)
                    s.edit_to_hints_ms.append((now - oldest) * 1000)
                    due = min(newest + self.quiet_s, oldest + self.max_wait_s)
                    s.edit_to_hints_after_debounce_ms.append((now - due) * 1000)
                    for v in covered:
                        del self.version_sent_at[v]
                t = message.timing
                if "since_edit_ms" in t:
                    s.server_edit_to_hints_ms.append(float(t["since_edit_ms"]))
                if "analysis_ms" in t:
                    s.server_analysis_ms.append(float(t["analysis_ms"]))
                    s.server_analysis_at.append(now)
                if "debounce_lag_ms" in t:
                    s.server_debounce_lag_ms.append(float(t["debounce_lag_ms"]))
                if "queue_ms" in t:
                    s.server_queue_ms.append(float(t["queue_ms"]))
                if "inference_ms" in t:
                    s.server_inference_ms.append(float(t["inference_ms"]))
                s.versions_hinted += 1
                self.hinted_version = message.version
        elif isinstance(message, Scores):
            s.scores_received += 1
        elif isinstance(message, Error):
            s.errors[message.code] += 1
        super()._on_message(message)

    async def send_op(self, start: int, end: int, text: str) -> None:
        edit = self.state.change(start, end, text)
        if edit is None:  # composed into the next edit, or waiting to resync
            return
        await self._send_quietly(edit)

    async def _send_quietly(self, message: Any) -> None:
        if isinstance(message, Edit) and message.id not in self.sent_at:
            self._sent(message)
        await super()._send_quietly(message)

    def _sent(self, edit: Edit) -> None:
        now = time.monotonic()
        self.sent_at[edit.id] = now
        # the version this edit will create (teachers' updates and hints are matched on it)
        self.version_sent_at[edit.base + 1] = now
        self.samples.edits_sent += 1
        self.samples.versions_edited += 1


class SimStudent:
    def __init__(
        self,
        index: int,
        url: str,
        token: str,
        doc: str,
        essays: list[Essay],
        model: TypingModel,
        rng: random.Random,
        samples: Samples,
        *,
        lang: str,
        registry: dict[str, MeasuredClient],
        in_flight: int = 1,
    ) -> None:
        self.index = index
        self.url, self.token, self.doc = url, token, doc
        self.essays, self.model, self.rng = essays, model, rng
        self.samples = samples
        self.lang = lang
        self.client = MeasuredClient(url, token, doc, lang, samples, in_flight)
        registry[doc] = self.client
        self.pacer = _Pacer()
        self.stop = asyncio.Event()
        self.watchdog: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.closing = False

    async def _connect_with_retry(self, deadline: float) -> bool:
        delay = 0.1
        while not self.closing and time.monotonic() < deadline:
            try:
                welcome = await self.client.connect()
                self.pacer.configure(welcome.limits.max_messages_per_second, welcome.limits.burst)
                self.connected.set()
                return True
            except Exception as exc:  # refused, reset, timeout: the server may be restarting
                self.samples.events[f"connect_failed:{type(exc).__name__}"] += 1
                await asyncio.sleep(delay + self.rng.random() * delay)
                delay = min(2.0, delay * 2)
        return False

    async def _watch(self) -> None:
        """Reconnect (and so resume) whenever the socket drops."""
        while not self.closing:
            await self.client.session.closed.wait()
            if self.closing:
                return
            self.connected.clear()
            self.samples.reconnects += 1
            code = self.client.session.close_code
            self.samples.events[f"closed:{code}"] += 1
            if not await self._connect_with_retry(time.monotonic() + 120):
                return

    async def run(self, typing_until: float) -> None:
        if not await self._connect_with_retry(typing_until):
            return
        self.samples.connected += 1
        self.watchdog = asyncio.create_task(self._watch())
        state = self.client.state
        while time.monotonic() < typing_until:
            essay = self.rng.choice(self.essays)
            for ks in self.model.keystrokes(essay.text, state.text):
                wait = min(ks.delay_s, typing_until - time.monotonic())
                if wait > 0:
                    await asyncio.sleep(wait)
                if time.monotonic() >= typing_until:
                    return
                if ks.kind == "pause":
                    continue
                await self.pacer.take()
                self.samples.keystroke_kinds[ks.kind] += 1
                self.samples.chars_typed += len(ks.insert)
                await self.client.send_op(ks.start, ks.end, ks.insert)
            # essay finished: think, select all, delete, start the next one
            await asyncio.sleep(self.model.pause() * 3)
            if state.text and time.monotonic() < typing_until:
                await self.pacer.take()
                self.samples.keystroke_kinds["clear"] += 1
                await self.client.send_op(0, len(state.text), "")

    async def finish(self, timeout: float) -> None:
        """Wait until every edit is acknowledged (reconnecting if needed), then close."""
        with contextlib.suppress(TimeoutError):
            await self.client.wait_synced(timeout)
        self.closing = True
        if self.watchdog is not None:
            self.watchdog.cancel()
        self.samples.unacked_at_end += len(self.client.state.pending)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.close(), 5)


async def verify_stored(student: SimStudent) -> dict[str, Any] | None:
    """Open a fresh session on the document: the server's text must equal the client's."""
    state = student.client.state
    if state.version is None:
        return None  # never connected; counted as an error, not as a loss
    fresh = StudentClient(student.url, student.token, student.doc, lang=student.lang)  # type: ignore[arg-type]
    try:
        welcome = await fresh.connect()
    except Exception as exc:
        return {"student": student.doc, "problem": f"verify failed: {exc!r}"}
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(fresh.close(), 5)
    if welcome.text == state.text and welcome.version == state.version and not state.pending:
        return None
    return {
        "student": student.doc,
        "client_version": state.version,
        "server_version": welcome.version,
        "client_chars": len(state.text),
        "server_chars": len(welcome.text),
        "unacked": len(state.pending),
        "same_text": welcome.text == state.text,
    }
