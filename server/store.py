"""Durable storage in SQLite (WAL): documents, an append-only edit log with
periodic full-text snapshots, the latest hints and scores, and dismissals.

Every applied operation is committed before it is acknowledged. With WAL and
``synchronous=NORMAL`` a commit survives ``kill -9`` of the server process
(the OS still has the WAL pages); ``synchronous=FULL`` also survives power
loss at the cost of an fsync per edit. A document's text is its latest
snapshot with the later log entries replayed.

All calls happen on the event-loop thread; each is one short transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

__all__ = ["StorageError", "Store", "StoredDocument"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    class_id TEXT NOT NULL,
    lang TEXT NOT NULL,
    version INTEGER NOT NULL,
    snapshot_version INTEGER NOT NULL,
    snapshot_text TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_by_class ON documents(class_id);
CREATE TABLE IF NOT EXISTS edits (
    doc TEXT NOT NULL,
    version INTEGER NOT NULL,
    op TEXT NOT NULL,  -- 'edit': [[start, end, text], ...] in code points; 'replace': text
    payload BLOB NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (doc, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dismissals (
    doc TEXT NOT NULL,
    hint TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (doc, hint)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS analyses (
    doc TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    hints BLOB NOT NULL,
    scores BLOB,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    user TEXT NOT NULL,
    created REAL NOT NULL
);
"""


class StorageError(Exception):
    """The database refused a write (disk full, read-only, locked…)."""


@dataclass(slots=True)
class StoredDocument:
    id: str
    owner: str
    class_id: str
    lang: str
    version: int
    text: str
    dismissed: set[str] = field(default_factory=set)
    analysis: dict[str, Any] | None = None  # the last scored analysis (Analysis.to_json)
    scores: dict[str, Any] | None = None
    analysis_version: int = -1


def apply_logged(text: str, op: str, payload: bytes) -> str:
    """Replay one edit-log entry."""
    if op == "replace":
        return payload.decode("utf-8")
    for start, end, inserted in orjson.loads(payload):
        text = text[:start] + inserted + text[end:]
    return text


class Store:
    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "NORMAL",
        snapshot_every: int = 100,
        max_pages: int = 0,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.snapshot_every = snapshot_every
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.db.execute("PRAGMA busy_timeout=2000")
        self.db.executescript(SCHEMA)
        if max_pages > 0:
            self.set_max_pages(max_pages)

    def set_max_pages(self, pages: int) -> None:
        """Cap the database at ``pages`` pages (writes beyond fail as if the disk were full)."""
        self.db.execute(f"PRAGMA max_page_count={int(pages)}")

    # ------------------------------------------------------------ writes

    def _write(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    self.db.execute(sql, args)
                self.db.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back (e.g. disk full at COMMIT)
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc

    def create(self, doc: str, owner: str, class_id: str, lang: str) -> None:
        now = time.time()
        self._write(
            [
                (
                    "INSERT INTO documents VALUES (?, ?, ?, ?, 0, 0, '', ?, ?)",
                    (doc, owner, class_id, lang, now, now),
                )
            ]
        )

    def append(self, doc: str, version: int, op: str, payload: bytes, text_after: str) -> None:
        """Log one applied operation (``version`` is the new version) in one transaction."""
        now = time.time()
        statements: list[tuple[str, tuple[Any, ...]]] = [
            ("INSERT INTO edits VALUES (?, ?, ?, ?, ?)", (doc, version, op, payload, now)),
        ]
        if op == "replace" or version % self.snapshot_every == 0:
            statements.append(
                (
                    "UPDATE documents SET version=?, snapshot_version=?, snapshot_text=?, "
                    "updated=? WHERE id=?",
                    (version, version, text_after, now, doc),
                )
            )
        else:
            statements.append(
                ("UPDATE documents SET version=?, updated=? WHERE id=?", (version, now, doc))
            )
        self._write(statements)

    def set_lang(self, doc: str, lang: str) -> None:
        self._write([("UPDATE documents SET lang=? WHERE id=?", (lang, doc))])

    def dismiss(self, doc: str, hint: str) -> None:
        self._write(
            [("INSERT OR IGNORE INTO dismissals VALUES (?, ?, ?)", (doc, hint, time.time()))]
        )

    def save_analysis(
        self, doc: str, version: int, analysis: dict[str, Any], scores: dict[str, Any] | None
    ) -> None:
        self._write(
            [
                (
                    "INSERT OR REPLACE INTO analyses VALUES (?, ?, ?, ?, ?)",
                    (
                        doc,
                        version,
                        orjson.dumps(analysis),
                        None if scores is None else orjson.dumps(scores),
                        time.time(),
                    ),
                )
            ]
        )

    def add_session(self, session: str, doc: str, user: str) -> None:
        self._write(
            [
                (
                    "INSERT OR IGNORE INTO sessions VALUES (?, ?, ?, ?)",
                    (session, doc, user, time.time()),
                )
            ]
        )

    # ------------------------------------------------------------ reads

    def load(self, doc: str) -> StoredDocument | None:
        row = self.db.execute(
            "SELECT owner, class_id, lang, version, snapshot_version, snapshot_text "
            "FROM documents WHERE id=?",
            (doc,),
        ).fetchone()
        if row is None:
            return None
        owner, class_id, lang, version, snap_version, text = row
        for op, payload in self.db.execute(
            "SELECT op, payload FROM edits WHERE doc=? AND version>? ORDER BY version",
            (doc, snap_version),
        ):
            text = apply_logged(text, op, payload)
        stored = StoredDocument(doc, owner, class_id, lang, version, text)
        stored.dismissed = {
            h for (h,) in self.db.execute("SELECT hint FROM dismissals WHERE doc=?", (doc,))
        }
        analysis = self.db.execute(
            "SELECT version, hints, scores FROM analyses WHERE doc=?", (doc,)
        ).fetchone()
        if analysis is not None:
            stored.analysis_version = analysis[0]
            stored.analysis = orjson.loads(analysis[1])
            stored.scores = None if analysis[2] is None else orjson.loads(analysis[2])
        return stored

    def session_owner(self, session: str) -> tuple[str, str] | None:
        row = self.db.execute("SELECT doc, user FROM sessions WHERE id=?", (session,)).fetchone()
        return None if row is None else (row[0], row[1])

    def docs_in_class(self, class_id: str) -> list[tuple[str, str]]:
        return list(
            self.db.execute(
                "SELECT id, owner FROM documents WHERE class_id=? ORDER BY updated DESC",
                (class_id,),
            )
        )

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self.db.close()
