"""Choose the store and the bus from the settings: SQLite and in-process by default,
PostgreSQL (``--store postgresql://…``) and Redis (``--bus redis://…``) across nodes."""

from __future__ import annotations

import os
import socket
from typing import Any

from server.bus import LocalBus
from server.config import Settings
from server.store import DocumentStore, Store

__all__ = ["open_bus", "open_store"]


def open_store(s: Settings) -> DocumentStore:
    if s.store.startswith(("postgresql://", "postgres://")):
        from server.store.postgres import PostgresStore

        return PostgresStore(
            s.store,
            snapshot_every=s.snapshot_every,
            commit_tick_ms=s.commit_tick_ms,
            fault_hook=s.fault_hook,
            fault_after_edits=s.fault_after_edits,
        )
    if s.store:
        raise ValueError(f"unknown store {s.store!r}: give postgresql://… or nothing (SQLite)")
    return Store(
        s.data_dir / "inkstone.sqlite3",
        synchronous=s.sqlite_synchronous,
        snapshot_every=s.snapshot_every,
        max_pages=s.sqlite_max_pages,
    )


def open_bus(s: Settings) -> Any:
    if s.bus.startswith(("redis://", "rediss://")):
        from server.bus.redis import RedisBus

        node = s.node_id or f"{socket.gethostname()}:{s.port}:{os.getpid()}"
        return RedisBus(s.bus, node)
    if s.bus:
        raise ValueError(f"unknown bus {s.bus!r}: give redis://… or nothing (in-process)")
    return LocalBus()
