"""A simulated teacher: observes a whole class live and mirrors every document.

The mirror (snapshot, then each ``update`` applied in order) must end equal
to the students' texts; the edit→update delay is measured against the
student's send time of the same version.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from protocol import Error, Hints, Observe, Scores, ServerMessage, Snapshot, Update, apply_changes
from server.docids import split_teacher_id
from server.loadgen.student import MeasuredClient, Samples
from server.wsclient import Observer

__all__ = ["SimTeacher"]


class SimTeacher:
    def __init__(
        self,
        url: str,
        token: str,
        class_id: str,
        samples: Samples,
        registry: dict[str, MeasuredClient],
    ) -> None:
        self.url, self.token, self.class_id = url, token, class_id
        self.samples = samples
        self.registry = registry
        self.mirror: dict[str, tuple[int, str]] = {}  # doc → (version, text)
        self.gaps = 0
        self.observer: Observer | None = None
        self.closing = False

    def _on_message(self, message: ServerMessage) -> None:
        s = self.samples
        s.observer_messages += 1
        if isinstance(message, Snapshot):
            self.mirror[message.doc] = (message.version, message.text)
        elif isinstance(message, Update):
            version, text = self.mirror.get(message.doc, (0, ""))
            if message.version != version + 1:
                self.gaps += 1  # missed something; the next snapshot repairs it
                return
            text, _ = apply_changes(text, message.changes, "utf-32")
            self.mirror[message.doc] = (message.version, text)
            parts = split_teacher_id(message.doc)  # teachers see owner/name
            student = self.registry.get(parts[1] if parts else message.doc)
            if student is not None:
                sent = student.version_sent_at.get(message.version)
                if sent is not None:
                    s.edit_to_observer_ms.append((time.monotonic() - sent) * 1000)
        elif isinstance(message, Error):
            s.errors[f"teacher:{message.code}"] += 1
        elif isinstance(message, (Hints, Scores)):
            pass

    async def _open(self) -> None:
        observer = Observer(self.url, self.token)
        observer.session.on_message = self._on_message
        await observer.connect()
        # the session queue would keep every message of a long run: stop filling it
        observer.session.inbox = _Discard()
        await observer.session.send(Observe(class_id=self.class_id, id="lg"))
        self.observer = observer

    async def run(self, until: float) -> None:
        while not self.closing and time.monotonic() < until:
            try:
                await self._open()
            except Exception as exc:
                self.samples.events[f"teacher_connect_failed:{type(exc).__name__}"] += 1
                await asyncio.sleep(1.0)
                continue
            assert self.observer is not None
            closed = asyncio.ensure_future(self.observer.session.closed.wait())
            await asyncio.wait([closed], timeout=max(0.0, until - time.monotonic()))
            if not closed.done():
                closed.cancel()
                return
            if not self.closing:
                self.samples.reconnects += 1

    def check(self, final: dict[str, tuple[int, str]]) -> int:
        """Documents whose mirror differs from the students' final (version, text)."""
        return sum(1 for doc, vt in self.mirror.items() if doc in final and final[doc] != vt)

    async def close(self) -> None:
        self.closing = True
        if self.observer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.observer.close(), 5)


class _Discard(asyncio.Queue):  # type: ignore[type-arg]
    def put_nowait(self, item: Any) -> None:
        return None
