"""SQLite store: log + snapshots replay to the same text, the log is compacted behind
snapshots, a full database refuses cleanly, and a release-4 database migrates in place."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import orjson
import pytest

from server.docids import doc_key, split_teacher_id, teacher_id
from server.store import SCHEMA_VERSION, StorageError, Store

FIXTURES = Path(__file__).parent / "fixtures"
KEY = doc_key("c1", "s1", "d")


def test_log_and_snapshots_replay(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3", snapshot_every=3)
    store.create(KEY, "d", "s1", "c1", "zh")
    text = ""
    for version in range(1, 11):
        start = len(text) // 2
        text = text[:start] + f"{version}字" + text[start:]
        store.append(KEY, version, [(start, start, f"{version}字")], text)
    store.append(KEY, 11, [(0, len(text), "全新")], "全新")
    store.append(KEY, 12, [(2, 2, "的文本")], "全新的文本")
    store.close()
    loaded = Store(tmp_path / "db.sqlite3").load(KEY)
    assert loaded is not None
    assert (loaded.text, loaded.version, loaded.owner, loaded.class_id, loaded.name) == (
        "全新的文本",
        12,
        "s1",
        "c1",
        "d",
    )


def test_replaces_are_stored_as_changes_and_the_log_is_compacted(tmp_path: Path) -> None:
    """A replace costs the change it makes, not the whole text twice; the log behind a
    snapshot is deleted, so a document takes about the size of its text."""
    store = Store(tmp_path / "db.sqlite3", snapshot_every=100)
    store.create(KEY, "d", "s1", "c1", "en")
    base = "word " * 10_000  # 50k characters
    stored = store.append(KEY, 1, [(0, 0, base)], base)
    assert stored == len(base)  # log outweighs the text: snapshot, log dropped
    text = base
    for version in range(2, 202):  # 200 replaces that change one character each
        text = text[:-1] + chr(97 + version % 26)
        stored = store.append(KEY, version, [(len(text) - 1, len(text), text[-1])], text)
    rows = store.db.execute("SELECT COUNT(*), SUM(LENGTH(payload)) FROM edits").fetchone()
    assert rows[0] < 100 and rows[1] < 5_000  # compacted at the 100th and 200th version
    assert stored < len(base) + 5_000
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = (tmp_path / "db.sqlite3").stat().st_size
    assert size < 1_000_000  # release 4 stored each replace twice in full: ~20 MB here
    assert store.load(KEY).text == text  # type: ignore[union-attr]
    assert store.docs_of("c1", "s1") == (1, stored)


def test_full_database_refuses_and_recovers(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    store.create(KEY, "d", "s1", "c1", "zh")
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.set_max_pages(pages)
    text = ""
    with pytest.raises(StorageError):
        for version in range(1, 200):
            text = "x" * 500 + text
            store.append(KEY, version, [(0, 0, "x" * 500)], text)
    stored = store.load(KEY)
    assert stored is not None
    committed = stored.version
    store.set_max_pages(1_000_000)
    store.append(KEY, committed + 1, [(0, 0, "y")], "y" + stored.text)
    reloaded = store.load(KEY)
    assert reloaded is not None and reloaded.version == committed + 1


def _rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    db = sqlite3.connect(path)
    try:
        return {
            t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
            for t in ("documents", "edits", "dismissals", "analyses", "sessions")
        }
    finally:
        db.close()


def test_release4_database_migrates_in_place_losslessly(tmp_path: Path) -> None:
    """tests/fixtures/release4.sqlite3 was written by the release-4 server (commit 74543a6)
    through its socket: 4 documents in 2 classes, edits, snapshots, a dismissal, analyses
    and sessions. Every document keeps its text, version, dismissals, analysis and sessions
    under its new (class, owner, name) key; no row is lost."""
    path = tmp_path / "inkstone.sqlite3"
    shutil.copy(FIXTURES / "release4.sqlite3", path)
    before = _rows(path)
    old = sqlite3.connect(path)
    texts = {}
    for doc_id, owner, class_id, version in old.execute(
        "SELECT id, owner, class_id, version FROM documents"
    ):
        text = old.execute(
            "SELECT snapshot_text, snapshot_version FROM documents WHERE id=?", (doc_id,)
        ).fetchone()
        body, snap = text
        for op, payload in old.execute(
            "SELECT op, payload FROM edits WHERE doc=? AND version>? ORDER BY version",
            (doc_id, snap),
        ):
            body = payload.decode() if op == "replace" else body
            if op == "edit":
                for s, e, t in orjson.loads(payload):
                    body = body[:s] + t + body[e:]
        texts[doc_id] = (owner, class_id, version, body)
    old.close()

    store = Store(path)
    assert store.migrated_from == 0
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    after = _rows(path)
    for table in ("edits", "dismissals", "analyses", "sessions"):
        assert len(after[table]) == len(before[table]), table
    assert len(after["documents"]) == len(before["documents"]) == 4
    for doc_id, (owner, class_id, version, body) in texts.items():
        loaded = store.load(doc_key(class_id, owner, doc_id))
        assert loaded is not None
        assert (loaded.text, loaded.version, loaded.name) == (body, version, doc_id)
        assert loaded.analysis is not None and loaded.analysis_version == version
    essay = store.load(doc_key("c1", "alice", "alice-essay"))
    assert essay is not None and essay.dismissed == {"h1f3a2f1debf75a3c"}
    assert {doc for doc, _ in [store.session_doc(r[0]) or ("", "") for r in after["sessions"]]} == {
        doc_key(c, o, d) for d, (o, c, _, _) in texts.items()
    }
    # the same name for another student or class is another document
    assert store.load(doc_key("c2", "alice", "alice-essay")) is None
    store.close()
    # opening again is a no-op
    again = Store(path)
    assert again.migrated_from == SCHEMA_VERSION and _rows(path) == after
    again.close()


def test_document_ids_escape_their_parts() -> None:
    assert doc_key("c/1", "a%b", "my/essay") == "c%2F1/a%25b/my%2Fessay"
    assert split_teacher_id(teacher_id("a/b", "c/d%")) == ("a/b", "c/d%")
    assert split_teacher_id("plain-name") is None
    assert doc_key("c1", "a/b", "c") != doc_key("c1", "a", "b/c")
