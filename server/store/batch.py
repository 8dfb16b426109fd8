"""One group commit's SQL: the compare-and-set that fences, the multi-row INSERT, the
snapshots and the clients' sequence numbers, and handing the outcomes back to the loops
that wait for them. :class:`server.store.postgres.PostgresStore` decides when to run it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import asyncpg

__all__ = ["CAS", "Entry", "settle_all", "write_rows"]

# Move each document of the batch from (first - 1) to last; the rows returned won.
CAS = """
UPDATE documents d SET version = b.last, updated = $4
FROM unnest($1::text[], $2::int[], $3::int[]) AS b(key, first, last)
WHERE d.key = b.key AND d.version = b.first - 1
RETURNING d.key
"""
INSERT_EDITS = """
INSERT INTO edits (doc, version, op, payload, client, seq, created)
SELECT k, v, 'edit', p, c, s, $6
FROM unnest($1::text[], $2::int[], $3::bytea[], $4::text[], $5::bigint[]) AS r(k, v, p, c, s)
"""
SNAPSHOT = """
UPDATE documents d SET snapshot_version = s.v, snapshot_text = s.t, log_bytes = 0,
    stored_bytes = s.b
FROM unnest($1::text[], $2::int[], $3::text[], $4::bigint[]) AS s(k, v, t, b)
WHERE d.key = s.k
"""
DROP_LOG = """
DELETE FROM edits e USING unnest($1::text[], $2::int[]) AS s(k, v)
WHERE e.doc = s.k AND e.version <= s.v
"""
LOG_SIZES = """
UPDATE documents d SET log_bytes = s.l, stored_bytes = s.b
FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS s(k, l, b) WHERE d.key = s.k
"""
CLIENT_SEQS = """
INSERT INTO client_seqs SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[])
ON CONFLICT (doc, client) DO UPDATE SET seq = EXCLUDED.seq, version = EXCLUDED.version
"""


@dataclass(slots=True)
class Entry:
    """One operation waiting for its group commit."""

    key: str
    version: int
    payload: bytes
    origin: tuple[str, int] | None
    snapshot: str | None  # the text, when this operation writes a snapshot
    stored: int
    log_bytes: int
    done: asyncio.Future[int]  # on the service's loop
    loop: asyncio.AbstractEventLoop = field(repr=False)


async def write_rows(conn: asyncpg.Connection, rows: list[Entry]) -> None:
    """Everything a batch's winning rows change, in the open transaction."""
    await conn.execute(
        INSERT_EDITS,
        [e.key for e in rows],
        [e.version for e in rows],
        [e.payload for e in rows],
        [None if e.origin is None else e.origin[0] for e in rows],
        [None if e.origin is None else e.origin[1] for e in rows],
        time.time(),
    )
    last: dict[str, Entry] = {e.key: e for e in rows}
    snaps: dict[str, Entry] = {e.key: e for e in rows if e.snapshot is not None}
    if snaps:
        s = list(snaps.values())
        await conn.execute(
            SNAPSHOT,
            [e.key for e in s],
            [e.version for e in s],
            [e.snapshot for e in s],
            [e.stored for e in s],
        )
        await conn.execute(DROP_LOG, [e.key for e in s], [e.version for e in s])
    sized = [e for e in last.values() if e.snapshot is None]
    if sized:
        await conn.execute(
            LOG_SIZES,
            [e.key for e in sized],
            [e.log_bytes for e in sized],
            [e.stored for e in sized],
        )
    seqs: dict[tuple[str, str], Entry] = {
        (e.key, e.origin[0]): e for e in rows if e.origin is not None
    }
    if seqs:
        s = list(seqs.values())
        await conn.execute(
            CLIENT_SEQS,
            [e.key for e in s],
            [e.origin[0] for e in s if e.origin],
            [e.origin[1] for e in s if e.origin],
            [e.version for e in s],
        )


def settle_all(outcomes: list[tuple[Entry, int | None, Exception | None]]) -> None:
    """Resolve a batch's futures with one wake-up of each waiting loop, in batch order."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Entry, int | None, Exception | None]]]
    by_loop = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, items in by_loop.items():
        loop.call_soon_threadsafe(_settle, items)


def _settle(items: list[tuple[Entry, int | None, Exception | None]]) -> None:
    for entry, result, error in items:
        if entry.done.done():
            continue
        if error is not None:
            entry.done.set_exception(error)
        else:
            entry.done.set_result(result or 0)
