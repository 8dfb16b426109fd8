"""What the multi-node tests share: typists that remember every ack they saw, teachers
that mirror what they are shown, and the check that compares both with PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from protocol import Ack, Observe, Presence, ServerMessage, Snapshot, Update, apply_changes
from server.auth import mint_token
from server.docids import doc_key
from server.wsclient import Observer, StudentClient
from tests.services import Postgres


@dataclass
class Acked:
    version: int
    seq: int | None


class Typist(StudentClient):
    """A student who types and reconnects, and keeps every ack the server sent it."""

    def __init__(self, url: str, user: str, class_id: str, doc: str = "essay") -> None:
        token = mint_token(None, user=user, role="student", class_id=class_id, ttl_s=3600)
        super().__init__(f"{url}?class={class_id}", token, doc, lang="en")
        self.user, self.class_id, self.doc = user, class_id, doc
        self.acked: list[Acked] = []
        self.errors: list[str] = []

    def _on_message(self, message: ServerMessage) -> None:
        if isinstance(message, Ack) and self.state.pending:
            head = self.state.pending[0].message
            if message.id is None or head.id == message.id:
                self.acked.append(Acked(message.version, head.seq))
        if message.TYPE == "error":
            self.errors.append(str(getattr(message, "code", "")))
        super()._on_message(message)

    @property
    def key(self) -> str:
        return doc_key(self.class_id, self.user, self.doc)

    async def type_slowly(self, text: str, gap_s: float = 0.01) -> None:
        for ch in text:
            await self.type_text(ch)
            await asyncio.sleep(gap_s)

    async def reconnect(self, url: str | None = None, timeout: float = 20.0) -> None:
        """Reconnect (through ``url`` or the same one) until a welcome comes back."""
        if url is not None:
            self.url = f"{url}?class={self.class_id}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.connect(timeout=3)
                return
            except (OSError, ConnectionError, TimeoutError, Exception):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


class Teacher(Observer):
    """A teacher observing a class: the latest text, version and presence of each doc."""

    def __init__(self, url: str, user: str, class_id: str) -> None:
        token = mint_token(None, user=user, role="teacher", class_id=class_id, ttl_s=3600)
        super().__init__(f"{url}?class={class_id}", token)
        self.class_id = class_id
        self.texts: dict[str, str] = {}
        self.versions: dict[str, int] = {}
        self.presence: dict[str, list[str]] = {}
        self.snapshots = 0
        self.changed = asyncio.Event()

    async def watch(self) -> None:
        await self.connect()
        self.session.on_message = self._seen
        await self.session.send(Observe(class_id=self.class_id, id="o"))

    def _seen(self, m: ServerMessage) -> None:
        if isinstance(m, Snapshot):
            self.snapshots += 1
            self.texts[m.doc], self.versions[m.doc] = m.text, m.version
            self.presence.setdefault(m.doc, []).append(m.presence)
        elif isinstance(m, Update) and m.doc in self.texts:
            self.texts[m.doc], _ = apply_changes(self.texts[m.doc], m.changes, "utf-32")
            self.versions[m.doc] = m.version
        elif isinstance(m, Presence):
            seen = self.presence.setdefault(m.doc, [])
            if not seen or seen[-1] != m.state:
                seen.append(m.state)
        self.changed.set()

    async def until(self, predicate: object, timeout: float) -> float:
        """Wait until ``predicate()``; the seconds it took."""
        start = time.monotonic()
        while not predicate():  # type: ignore[operator]
            remaining = timeout - (time.monotonic() - start)
            if remaining <= 0:
                raise TimeoutError(f"teacher of {self.class_id}: {self.texts} {self.presence}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.1))
        return time.monotonic() - start


@dataclass
class Loss:
    lost: list[str] = field(default_factory=list)  # acked edits PostgreSQL does not have
    duplicates: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)  # final texts that differ


def audit(pg: Postgres, typists: list[Typist], *, final: bool = True) -> Loss:
    """Every acked edit in PostgreSQL exactly once; final texts equal the clients'."""
    loss = Loss()
    for t in typists:
        rows = pg.sql(
            f"SELECT version, client, seq FROM edits WHERE doc = '{t.key}' ORDER BY version"
        )
        head = pg.sql(f"SELECT version FROM documents WHERE key = '{t.key}'")
        stored_version = int(head[0][0]) if head else -1
        by_seq: dict[str, int] = {}
        for _, client, seq in rows:
            if client == t.state.client_id:
                by_seq[seq] = by_seq.get(seq, 0) + 1
        for a in t.acked:
            if a.version > stored_version:
                loss.lost.append(f"{t.key} v{a.version} (stored up to v{stored_version})")
            elif a.seq is not None and str(a.seq) not in by_seq:
                loss.lost.append(f"{t.key} seq {a.seq} v{a.version} not in edits")
        loss.duplicates += [f"{t.key} seq {s} ×{n}" for s, n in by_seq.items() if n > 1]
        if final:
            text = stored_text(pg, t.key)
            if text != t.state.text:
                loss.diverged.append(f"{t.key}: stored {text!r} != client {t.state.text!r}")
    return loss


def stored_text(pg: Postgres, key: str) -> str | None:
    """Replay the document as PostgreSQL has it (snapshot + edit log)."""
    from server.store.base import apply_logged

    head = pg.sql(
        "SELECT snapshot_version, version, encode(convert_to(snapshot_text, 'UTF8'), 'hex') "
        f"FROM documents WHERE key = '{key}'"
    )
    if not head:
        return None
    snap, version, hex_text = head[0]
    text = bytes.fromhex(hex_text).decode()
    for (payload,) in pg.sql(
        f"SELECT encode(payload, 'hex') FROM edits WHERE doc = '{key}' "
        f"AND version > {snap} AND version <= {version} ORDER BY version"
    ):
        text = apply_logged(text, "edit", bytes.fromhex(payload))
    return text
