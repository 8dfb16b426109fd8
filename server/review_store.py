"""Durable teacher review state in its own SQLite file (WAL): comments, verdicts on hints,
teacher grades and submissions, each with who and when.

It lives beside the document store (``<data dir>/review.sqlite3``) rather than inside it,
so the document store can change engines without touching it, and the export and report
code read it without the live server. Offsets are code points. All calls are short
transactions on the event-loop thread (or a CLI process: WAL lets both read at once).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import orjson

from server.store.sqlite import transaction

__all__ = ["CommentRow", "GradeRow", "ReviewStore", "SubmissionRow", "VerdictRow"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS comments (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL,             -- document key class/owner/name
    author TEXT NOT NULL,
    start INTEGER NOT NULL,        -- code points at the document's current version
    end INTEGER NOT NULL,
    text TEXT NOT NULL,
    suggestion TEXT,
    quote TEXT NOT NULL,           -- the text commented on, when made
    version INTEGER NOT NULL,      -- the version it was made at
    created REAL NOT NULL,
    state TEXT NOT NULL,           -- open | resolved | deleted (its text was deleted)
    closed REAL,
    closed_by TEXT
);
CREATE INDEX IF NOT EXISTS comments_by_doc ON comments(doc, state);
CREATE TABLE IF NOT EXISTS verdicts (
    doc TEXT NOT NULL,
    hint TEXT NOT NULL,
    author TEXT NOT NULL,
    verdict TEXT NOT NULL,         -- agree | disagree
    code TEXT NOT NULL,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,          -- rule or the model id that made the hint
    quote TEXT NOT NULL,           -- the hint's span text
    sentence TEXT NOT NULL,        -- the sentence it was in
    offset INTEGER NOT NULL,       -- span start within the sentence (code points)
    suggestions TEXT NOT NULL,     -- JSON list: what the hint suggested
    corrected_kind TEXT,
    suggestion TEXT,
    note TEXT,
    version INTEGER NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (doc, hint)
);
CREATE TABLE IF NOT EXISTS grades (
    doc TEXT NOT NULL,
    trait TEXT NOT NULL,
    author TEXT NOT NULL,
    score REAL NOT NULL,
    max REAL NOT NULL,
    reason TEXT NOT NULL,
    submission INTEGER,            -- the submission it grades (latest when given), if any
    model_score REAL,              -- the model's score for the trait at that moment
    version INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS grades_by_doc ON grades(doc, trait, created);
CREATE TABLE IF NOT EXISTS submissions (
    doc TEXT NOT NULL,
    n INTEGER NOT NULL,
    class_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    text TEXT NOT NULL,
    scores BLOB,                   -- the model's scores message (wire form) at that version
    hints BLOB NOT NULL,           -- JSON [[kind, code, start, end, quote, suggestions], ...]
    created REAL NOT NULL,
    embedding BLOB,                -- float32 mean of the sentence embeddings (models on)
    PRIMARY KEY (doc, n)
);
CREATE INDEX IF NOT EXISTS submissions_by_class ON submissions(class_id, owner, created);
"""


@dataclass(slots=True)
class CommentRow:
    id: str
    doc: str
    author: str
    start: int
    end: int
    text: str
    suggestion: str | None
    quote: str
    version: int
    created: float
    state: str = "open"


@dataclass(frozen=True, slots=True)
class VerdictRow:
    doc: str
    hint: str
    author: str
    verdict: str
    code: str
    kind: str
    source: str
    quote: str
    sentence: str
    offset: int
    suggestions: tuple[str, ...]
    corrected_kind: str | None
    suggestion: str | None
    note: str | None
    version: int
    created: float


@dataclass(frozen=True, slots=True)
class GradeRow:
    doc: str
    trait: str
    author: str
    score: float
    max: float
    reason: str
    submission: int | None
    model_score: float | None
    version: int
    created: float


@dataclass(frozen=True, slots=True)
class SubmissionRow:
    doc: str
    n: int
    class_id: str
    owner: str
    name: str
    version: int
    text: str
    scores: dict[str, Any] | None
    hints: list[list[Any]]
    created: float
    embedding: bytes | None = None


class ReviewStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=2000")
        self.db.executescript(SCHEMA)

    def _write(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        transaction(self.db, statements)

    # ------------------------------------------------------------ comments

    def add_comment(self, c: CommentRow) -> None:
        self._write(
            [
                (
                    "INSERT INTO comments VALUES (?,?,?,?,?,?,?,?,?,?,?,NULL,NULL)",
                    astuple(c),
                )
            ]
        )

    def move_comments(self, moved: list[CommentRow], closed: list[CommentRow], by: str) -> None:
        """Store new spans of ``moved`` and close ``closed`` (state set by the caller)."""
        now = time.time()
        self._write(
            [
                ("UPDATE comments SET start=?, end=? WHERE id=?", (c.start, c.end, c.id))
                for c in moved
            ]
            + [
                (
                    "UPDATE comments SET state=?, closed=?, closed_by=? WHERE id=?",
                    (c.state, now, by, c.id),
                )
                for c in closed
            ]
        )

    def open_comments(self, doc: str) -> list[CommentRow]:
        return [
            CommentRow(*row)
            for row in self.db.execute(
                "SELECT id, doc, author, start, end, text, suggestion, quote, version, created, "
                "state FROM comments WHERE doc=? AND state='open' ORDER BY start, created",
                (doc,),
            )
        ]

    # ------------------------------------------------------------ verdicts

    def set_verdict(self, v: VerdictRow) -> None:
        self._write(
            [
                (
                    "INSERT OR REPLACE INTO verdicts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    tuple(
                        orjson.dumps(list(value)).decode() if isinstance(value, tuple) else value
                        for value in astuple(v)
                    ),
                )
            ]
        )

    def verdicts(self, doc: str | None = None) -> list[VerdictRow]:
        sql = "SELECT * FROM verdicts" + (" WHERE doc=?" if doc else "") + " ORDER BY created"
        rows = self.db.execute(sql, (doc,) if doc else ())
        return [
            VerdictRow(*r[:10], tuple(orjson.loads(r[10])), *r[11:])  # type: ignore[arg-type]
            for r in rows
        ]

    def withdrawn(self, doc: str) -> set[str]:
        """Hints a teacher disagreed with: hidden from the student."""
        return {
            h
            for (h,) in self.db.execute(
                "SELECT hint FROM verdicts WHERE doc=? AND verdict='disagree'", (doc,)
            )
        }

    # ------------------------------------------------------------ grades

    def add_grade(self, g: GradeRow) -> None:
        self._write(
            [
                (
                    "INSERT INTO grades VALUES (?,?,?,?,?,?,?,?,?,?)",
                    astuple(g),
                )
            ]
        )

    def grades(self, doc: str | None = None) -> list[GradeRow]:
        """Every grade (of ``doc``), oldest first: the last per trait is the current one."""
        sql = "SELECT * FROM grades" + (" WHERE doc=?" if doc else "") + " ORDER BY created"
        return [GradeRow(*r) for r in self.db.execute(sql, (doc,) if doc else ())]

    # ------------------------------------------------------------ submissions

    def add_submission(self, s: SubmissionRow) -> None:
        self._write(
            [
                (
                    "INSERT INTO submissions VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        *astuple(s)[:7],
                        None if s.scores is None else orjson.dumps(s.scores),
                        orjson.dumps(s.hints),
                        s.created,
                        s.embedding,
                    ),
                )
            ]
        )

    def next_submission(self, doc: str) -> int:
        row = self.db.execute("SELECT MAX(n) FROM submissions WHERE doc=?", (doc,)).fetchone()
        return int(row[0] or 0) + 1

    def _submissions(self, where: str, args: tuple[Any, ...]) -> Iterator[SubmissionRow]:
        for r in self.db.execute(
            f"SELECT * FROM submissions WHERE {where} ORDER BY created, doc, n", args
        ):
            yield SubmissionRow(
                *r[:7],
                None if r[7] is None else orjson.loads(r[7]),
                orjson.loads(r[8]),
                r[9],
                r[10],
            )

    def submissions(self, doc: str) -> list[SubmissionRow]:
        return list(self._submissions("doc=?", (doc,)))

    def submissions_of(self, class_id: str, owner: str | None = None) -> list[SubmissionRow]:
        """A class's submissions (of one student), oldest first."""
        if owner is None:
            return list(self._submissions("class_id=?", (class_id,)))
        return list(self._submissions("class_id=? AND owner=?", (class_id, owner)))

    def all_submissions(self) -> list[SubmissionRow]:
        return list(self._submissions("1=1", ()))

    def reviewed(self, doc: str) -> set[int]:
        """Submissions of ``doc`` a teacher has graded ``overall`` for."""
        return {
            n
            for (n,) in self.db.execute(
                "SELECT DISTINCT submission FROM grades WHERE doc=? AND trait='overall' "
                "AND submission IS NOT NULL",
                (doc,),
            )
        }

    def queue(self, class_id: str) -> list[SubmissionRow]:
        """The class's latest submission of each document, where not graded yet."""
        return list(
            self._submissions(
                "class_id=? AND n = (SELECT MAX(n) FROM submissions s2 WHERE s2.doc = "
                "submissions.doc) AND NOT EXISTS (SELECT 1 FROM grades g WHERE g.doc = "
                "submissions.doc AND g.trait='overall' AND g.submission = submissions.n)",
                (class_id,),
            )
        )

    def close(self) -> None:
        self.db.close()
