"""Durable storage in SQLite (WAL): documents, an edit log compacted behind snapshots,
the latest hints and scores, dismissals, and sessions.

Every applied operation is committed before it is acknowledged. With WAL and
``synchronous=NORMAL`` a commit survives ``kill -9`` of the server process
(the OS still has the WAL pages); ``synchronous=FULL`` also survives power
loss at the cost of an fsync per edit. A document's text is its latest
snapshot with the later log entries replayed.

Documents are keyed by ``class/owner/name`` (:mod:`server.docids`). Each edit is
logged as the changes it made (a ``replace`` as the one change that turns the old
text into the new, never the whole text twice); a snapshot is written every
``snapshot_every`` edits or once the log since the last snapshot outweighs the
text, and the log behind a snapshot is deleted in the same transaction, so a
document's storage stays near the size of its text. ``stored_bytes`` per document
(snapshot + log) backs the per-student storage quota.

Schema versions (``PRAGMA user_version``): 0/1 = release 4 (documents keyed by a
global id; replaces stored in full); 2 = this module. Opening an older database
migrates it in place in one transaction (:func:`migrate`).

All calls happen on the event-loop thread; each is one short transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson

from server.docids import doc_key
from server.store.base import StorageError, StoredDocument, apply_logged

__all__ = ["SCHEMA_VERSION", "SQLiteStore", "migrate", "transaction"]

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    key TEXT PRIMARY KEY,          -- class/owner/name, escaped (server.docids.doc_key)
    name TEXT NOT NULL,            -- the student's name for it
    owner TEXT NOT NULL,
    class_id TEXT NOT NULL,
    lang TEXT NOT NULL,
    version INTEGER NOT NULL,
    snapshot_version INTEGER NOT NULL,
    snapshot_text TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    log_bytes INTEGER NOT NULL DEFAULT 0,     -- payload bytes logged since the snapshot
    stored_bytes INTEGER NOT NULL DEFAULT 0   -- snapshot + log bytes (storage quota)
);
CREATE INDEX IF NOT EXISTS documents_by_class ON documents(class_id, updated);
CREATE INDEX IF NOT EXISTS documents_by_owner ON documents(class_id, owner);
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
CREATE TABLE IF NOT EXISTS client_seqs (  -- the last operation of each client (idempotent resend)
    doc TEXT NOT NULL,
    client TEXT NOT NULL,
    seq INTEGER NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (doc, client)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    user TEXT NOT NULL,
    created REAL NOT NULL
);
"""


def migrate(db: sqlite3.Connection) -> int:
    """Bring an older database to :data:`SCHEMA_VERSION` in one transaction; returns the
    version found. Release 4 keyed documents by the student's own id: each becomes
    ``class/owner/id`` with ``name = id``, and every edit, dismissal, analysis and
    session follows its document. Nothing is dropped."""
    found = int(db.execute("PRAGMA user_version").fetchone()[0])
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if found >= SCHEMA_VERSION or "documents" not in tables:
        return found
    columns = {r[1] for r in db.execute("PRAGMA table_info(documents)")}
    if "key" in columns:  # created by this module but never stamped
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        return found
    db.create_function("doc_key", 3, doc_key, deterministic=True)
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("ALTER TABLE documents RENAME TO documents_v1")
        db.execute("DROP INDEX IF EXISTS documents_by_class")
        for statement in SCHEMA.split(";"):  # executescript would commit: one at a time
            if "ON documents" in statement or "TABLE IF NOT EXISTS documents" in statement:
                db.execute(statement)
        db.execute(
            "INSERT INTO documents SELECT doc_key(class_id, owner, id), id, owner, class_id, "
            "lang, version, snapshot_version, snapshot_text, created, updated, "
            "COALESCE((SELECT SUM(LENGTH(payload)) FROM edits e "
            "          WHERE e.doc = d.id AND e.version > d.snapshot_version), 0), "
            "LENGTH(CAST(snapshot_text AS BLOB)) "
            "  + COALESCE((SELECT SUM(LENGTH(payload)) FROM edits e WHERE e.doc = d.id), 0) "
            "FROM documents_v1 d"
        )
        for table in ("edits", "dismissals", "analyses", "sessions"):
            db.execute(
                f"UPDATE {table} SET doc = (SELECT key FROM documents WHERE name = {table}.doc) "
                "WHERE doc IN (SELECT id FROM documents_v1)"
            )
        db.execute("DROP TABLE documents_v1")
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise
    return found


def transaction(db: sqlite3.Connection, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Run ``statements`` in one ``BEGIN IMMEDIATE`` transaction (autocommit connection);
    roll back and re-raise on any failure."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for sql, args in statements:
            db.execute(sql, args)
        db.execute("COMMIT")
    except BaseException:
        # SQLite may already have rolled back (e.g. disk full at COMMIT)
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise


class SQLiteStore:
    """The one-machine store: one SQLite file, every write its own short transaction."""

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
        self.migrated_from = migrate(self.db)
        self.db.executescript(SCHEMA)
        self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        if max_pages > 0:
            self.set_max_pages(max_pages)

    def set_max_pages(self, pages: int) -> None:
        """Cap the database at ``pages`` pages (writes beyond fail as if the disk were full)."""
        self.db.execute(f"PRAGMA max_page_count={int(pages)}")

    # ------------------------------------------------------------ writes

    def _write(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        try:
            transaction(self.db, statements)
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc

    def create(self, key: str, name: str, owner: str, class_id: str, lang: str) -> None:
        now = time.time()
        self._write(
            [
                (
                    "INSERT INTO documents VALUES (?, ?, ?, ?, ?, 0, 0, '', ?, ?, 0, 0)",
                    (key, name, owner, class_id, lang, now, now),
                )
            ]
        )

    def append(
        self,
        key: str,
        version: int,
        changes: list[tuple[int, int, str]],
        text_after: str,
        origin: tuple[str, int] | None = None,
    ) -> int:
        """Log one applied operation (``version`` is the new version) in one transaction;
        returns the bytes the document now takes (snapshot + log). ``origin`` (client id,
        client seq) is remembered with it, so a re-sent operation is recognised."""
        now = time.time()
        payload = orjson.dumps([list(c) for c in changes])
        row = self.db.execute(
            "SELECT log_bytes, stored_bytes FROM documents WHERE key=?", (key,)
        ).fetchone()
        log_bytes, stored = (0, 0) if row is None else row
        log_bytes += len(payload)
        text_bytes = len(text_after.encode())
        statements: list[tuple[str, tuple[Any, ...]]] = [
            ("INSERT INTO edits VALUES (?, ?, 'edit', ?, ?)", (key, version, payload, now)),
        ]
        if version % self.snapshot_every == 0 or log_bytes > max(4096, text_bytes):
            # snapshot, and drop the log behind it: replay stays short, storage ~ the text
            stored = text_bytes
            statements += [
                (
                    "UPDATE documents SET version=?, snapshot_version=?, snapshot_text=?, "
                    "updated=?, log_bytes=0, stored_bytes=? WHERE key=?",
                    (version, version, text_after, now, stored, key),
                ),
                ("DELETE FROM edits WHERE doc=? AND version<=?", (key, version)),
            ]
        else:
            stored += len(payload)
            statements.append(
                (
                    "UPDATE documents SET version=?, updated=?, log_bytes=?, stored_bytes=? "
                    "WHERE key=?",
                    (version, now, log_bytes, stored, key),
                )
            )
        if origin is not None:
            statements.append(
                (
                    "INSERT OR REPLACE INTO client_seqs VALUES (?, ?, ?, ?)",
                    (key, origin[0], origin[1], version),
                )
            )
        self._write(statements)
        return stored

    def set_lang(self, key: str, lang: str) -> None:
        self._write([("UPDATE documents SET lang=? WHERE key=?", (lang, key))])

    def dismiss(self, key: str, hint: str) -> None:
        self._write(
            [("INSERT OR IGNORE INTO dismissals VALUES (?, ?, ?)", (key, hint, time.time()))]
        )

    def save_analysis(
        self, key: str, version: int, analysis: dict[str, Any], scores: dict[str, Any] | None
    ) -> None:
        self._write(
            [
                (
                    "INSERT OR REPLACE INTO analyses VALUES (?, ?, ?, ?, ?)",
                    (
                        key,
                        version,
                        orjson.dumps(analysis),
                        None if scores is None else orjson.dumps(scores),
                        time.time(),
                    ),
                )
            ]
        )

    def add_session(self, session: str, key: str, user: str) -> None:
        self._write(
            [
                (
                    "INSERT OR IGNORE INTO sessions VALUES (?, ?, ?, ?)",
                    (session, key, user, time.time()),
                )
            ]
        )

    # ------------------------------------------------------------ reads

    def load(self, key: str) -> StoredDocument | None:
        row = self.db.execute(
            "SELECT name, owner, class_id, lang, version, snapshot_version, snapshot_text, "
            "stored_bytes FROM documents WHERE key=?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        name, owner, class_id, lang, version, snap_version, text, stored_bytes = row
        for op, payload in self.db.execute(
            "SELECT op, payload FROM edits WHERE doc=? AND version>? ORDER BY version",
            (key, snap_version),
        ):
            text = apply_logged(text, op, payload)
        stored = StoredDocument(key, name, owner, class_id, lang, version, text)
        stored.stored_bytes = stored_bytes
        stored.dismissed = {
            h for (h,) in self.db.execute("SELECT hint FROM dismissals WHERE doc=?", (key,))
        }
        stored.client_seqs = {
            client: (seq, ver)
            for client, seq, ver in self.db.execute(
                "SELECT client, seq, version FROM client_seqs WHERE doc=?", (key,)
            )
        }
        analysis = self.db.execute(
            "SELECT version, hints, scores FROM analyses WHERE doc=?", (key,)
        ).fetchone()
        if analysis is not None:
            stored.analysis_version = analysis[0]
            stored.analysis = orjson.loads(analysis[1])
            stored.scores = None if analysis[2] is None else orjson.loads(analysis[2])
        return stored

    def session_doc(self, session: str) -> tuple[str, str] | None:
        """``(document key, user)`` of a session id."""
        row = self.db.execute("SELECT doc, user FROM sessions WHERE id=?", (session,)).fetchone()
        return None if row is None else (row[0], row[1])

    def docs_in_class(self, class_id: str) -> list[tuple[str, str, str]]:
        """``(key, owner, name)`` of the class's documents, most recently updated first."""
        return list(
            self.db.execute(
                "SELECT key, owner, name FROM documents WHERE class_id=? ORDER BY updated DESC",
                (class_id,),
            )
        )

    def docs_of(self, class_id: str, owner: str) -> tuple[int, int]:
        """How many documents ``owner`` has in ``class_id``, and the bytes they take."""
        count, stored = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(stored_bytes), 0) FROM documents "
            "WHERE class_id=? AND owner=?",
            (class_id, owner),
        ).fetchone()
        return int(count), int(stored)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self.db.close()
