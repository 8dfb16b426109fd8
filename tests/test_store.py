"""SQLite store: log + snapshots replay to the same text; a full database refuses cleanly."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from server.store import StorageError, Store


def test_log_and_snapshots_replay(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3", snapshot_every=3)
    store.create("d", "s1", "c1", "zh")
    text = ""
    for version in range(1, 11):
        start = len(text) // 2
        text = text[:start] + f"{version}字" + text[start:]
        payload = orjson.dumps([[start, start, f"{version}字"]])
        store.append("d", version, "edit", payload, text)
    store.append("d", 11, "replace", "全新".encode(), "全新")
    store.append("d", 12, "edit", orjson.dumps([[2, 2, "的文本"]]), "全新的文本")
    store.close()
    loaded = Store(tmp_path / "db.sqlite3").load("d")
    assert loaded is not None
    assert (loaded.text, loaded.version, loaded.owner, loaded.class_id) == (
        "全新的文本",
        12,
        "s1",
        "c1",
    )


def test_full_database_refuses_and_recovers(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    store.create("d", "s1", "c1", "zh")
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.set_max_pages(pages)
    with pytest.raises(StorageError):
        for version in range(1, 200):
            store.append("d", version, "edit", orjson.dumps([[0, 0, "x" * 500]]), "x")
    stored = store.load("d")
    assert stored is not None
    committed = stored.version
    store.set_max_pages(1_000_000)
    store.append("d", committed + 1, "edit", orjson.dumps([[0, 0, "y"]]), "y")
    reloaded = store.load("d")
    assert reloaded is not None and reloaded.version == committed + 1
