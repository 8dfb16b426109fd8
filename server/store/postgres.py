"""PostgreSQL store for several gateway nodes (``--store postgresql://…``), with group commit.

The edits of a short tick (``commit_tick_ms``) from every document on this node go to
PostgreSQL in one transaction: one compare-and-set ``UPDATE documents`` over all of
them, one multi-row ``INSERT INTO edits``, the snapshots and client sequence numbers,
then ``COMMIT``. Only when COMMIT has returned is each operation's future resolved, and
only then does the service send its ``ack``.

Fencing: ``documents.version`` only moves from ``first - 1`` to ``last`` of a batch, and
``edits`` has the primary key ``(doc, version)``. When two nodes both think they own a
document (after a rebalance), the second one's compare-and-set finds no row: its
operations fail with :class:`~server.store.base.Fenced` and its service reloads the
document. Idempotent resend: ``client_seqs (doc, client)`` keeps the last ``seq`` each
client had applied, committed with the edit.

The asyncpg pool and the committer run on a thread of their own with its own event
loop, so the service's synchronous calls (open, observe) can wait for a read, and group
commit goes on while the service's loop works. A DSN with several hosts and
``target_session_attrs=read-write`` follows a promoted standby.

Fault hooks (settings ``fault_hook`` / ``fault_after_edits``; off by default) kill the
process with SIGKILL at the given edit: ``crash_before_commit`` (after the INSERT, before
COMMIT), ``crash_before_ack`` (after COMMIT, before any ack) and the control
``ack_before_commit`` (the service acks first, the process dies before COMMIT).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import asyncpg
import orjson

from server.store.base import Fenced, StorageError, StoredDocument, apply_logged
from server.store.batch import CAS, Entry, settle_all, write_rows

__all__ = ["SCHEMA", "PostgresStore"]

log = logging.getLogger("inkstone.store.postgres")
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    key TEXT PRIMARY KEY, name TEXT NOT NULL, owner TEXT NOT NULL, class_id TEXT NOT NULL,
    lang TEXT NOT NULL, version INTEGER NOT NULL, snapshot_version INTEGER NOT NULL,
    snapshot_text TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL, log_bytes BIGINT NOT NULL DEFAULT 0,
    stored_bytes BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS documents_by_class ON documents(class_id, updated);
CREATE INDEX IF NOT EXISTS documents_by_owner ON documents(class_id, owner);
CREATE TABLE IF NOT EXISTS edits (
    doc TEXT NOT NULL, version INTEGER NOT NULL, op TEXT NOT NULL, payload BYTEA NOT NULL,
    client TEXT, seq BIGINT, created DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (doc, version)
);
CREATE TABLE IF NOT EXISTS client_seqs (
    doc TEXT NOT NULL, client TEXT NOT NULL, seq BIGINT NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (doc, client)
);
CREATE TABLE IF NOT EXISTS dismissals (
    doc TEXT NOT NULL, hint TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (doc, hint)
);
CREATE TABLE IF NOT EXISTS analyses (
    doc TEXT PRIMARY KEY, version INTEGER NOT NULL, hints BYTEA NOT NULL, scores BYTEA,
    updated DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, doc TEXT NOT NULL, "user" TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL
);
"""


class PostgresStore:
    """Documents in PostgreSQL; edits group-committed on a thread of their own."""

    def __init__(
        self,
        dsn: str,
        *,
        snapshot_every: int = 100,
        commit_tick_ms: float = 10.0,
        max_batch: int = 500,
        timeout_s: float = 5.0,
        fault_hook: str = "",
        fault_after_edits: int = 0,
    ) -> None:
        self.dsn = dsn
        self.snapshot_every = snapshot_every
        self.tick_s = commit_tick_ms / 1000
        self.max_batch = max_batch
        self.timeout_s = timeout_s
        self.fault_hook = fault_hook
        self.fault_after = fault_after_edits
        self.stats = {"commits": 0, "rows": 0, "fenced": 0, "failed_batches": 0}
        self._sizes: dict[str, tuple[int, int]] = {}  # key -> (log bytes, stored bytes)
        self._queue: list[Entry] = []
        self._incoming: collections.deque[Entry] = collections.deque()
        self._kicked = False
        self._submitted = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pg-store", daemon=True)
        self._thread.start()
        self._wake = asyncio.Event()
        self.pool: asyncpg.Pool = self._call(self._connect(), timeout=30)
        self._committer = asyncio.run_coroutine_threadsafe(self._commit_loop(), self._loop)

    async def _connect(self) -> asyncpg.Pool:
        self._wake = asyncio.Event()  # bound to the store's loop
        pool = await asyncpg.create_pool(
            self.dsn, min_size=2, max_size=4, command_timeout=self.timeout_s, reset=_no_reset
        )
        async with pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock(4242)")  # nodes starting together
            try:
                await conn.execute(SCHEMA)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(4242)")
        return pool

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the store's loop and wait for it (synchronous callers)."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(self.timeout_s + 1 if timeout is None else timeout)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StorageError(f"{type(exc).__name__}: {exc}") from exc
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise StorageError("the database did not answer in time") from exc

    # ------------------------------------------------------------ group commit

    def append_later(
        self,
        key: str,
        version: int,
        changes: list[tuple[int, int, str]],
        text_after: str,
        origin: tuple[str, int] | None = None,
    ) -> asyncio.Future[int]:
        """Queue one operation for the next group commit (call on the service's loop);
        the future gives the bytes the document takes once COMMIT has returned."""
        loop = asyncio.get_running_loop()
        payload = orjson.dumps([list(c) for c in changes])
        log_bytes, stored = self._sizes.get(key, (0, 0))
        log_bytes += len(payload)
        text_bytes = len(text_after.encode())
        snapshot = None
        if version % self.snapshot_every == 0 or log_bytes > max(4096, text_bytes):
            snapshot, log_bytes, stored = text_after, 0, text_bytes
        else:
            stored += len(payload)
        self._sizes[key] = (log_bytes, stored)
        entry = Entry(
            key, version, payload, origin, snapshot, stored, log_bytes, loop.create_future(), loop
        )
        self._incoming.append(entry)  # deque: appends are thread-safe
        if not self._kicked:  # one wake-up of the store's loop per tick, not per edit
            self._kicked = True
            self._loop.call_soon_threadsafe(self._take_incoming)
        return entry.done

    def append(
        self,
        key: str,
        version: int,
        changes: list[tuple[int, int, str]],
        text_after: str,
        origin: tuple[str, int] | None = None,
    ) -> int:
        """Synchronous :meth:`append_later` (tools and tests; the service uses the latter)."""

        async def one() -> int:
            return await self.append_later(key, version, changes, text_after, origin)

        return self._call(one())

    def _take_incoming(self) -> None:
        self._kicked = False
        while self._incoming:
            self._queue.append(self._incoming.popleft())
        if self._queue:
            self._wake.set()

    async def _commit_loop(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.tick_s)  # a tick's edits go in one COMMIT
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            self._take_incoming()
            if not self._queue:
                self._wake.clear()
            if batch:
                await self._commit(batch)

    def _fault(self, point: str, batch: list[Entry]) -> None:
        if self.fault_hook == point and self._submitted >= self.fault_after:
            log.error("fault hook %s: killing the process (edit %d)", point, self._submitted)
            os.kill(os.getpid(), signal.SIGKILL)

    async def _commit(self, batch: list[Entry]) -> None:
        self._submitted += len(batch)
        spans: dict[str, tuple[int, int]] = {}
        for e in batch:
            first, _ = spans.get(e.key, (e.version, e.version))
            spans[e.key] = (first, e.version)
        keys = list(spans)
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                won = {
                    r[0]
                    for r in await conn.fetch(
                        CAS,
                        keys,
                        [spans[k][0] for k in keys],
                        [spans[k][1] for k in keys],
                        time.time(),
                    )
                }
                rows = [e for e in batch if e.key in won]
                if rows:
                    await write_rows(conn, rows)
                if self.fault_hook == "ack_before_commit":
                    await asyncio.sleep(0.3)  # the acks are on the wire by now
                self._fault("crash_before_commit", batch)
                self._fault("ack_before_commit", batch)
        except Exception as exc:  # unreachable, refused, timed out… or a bug: never hang
            if not isinstance(
                exc, (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
            ):
                log.exception("group commit failed unexpectedly")
            self.stats["failed_batches"] += 1
            log.warning("group commit of %d edits failed: %s", len(batch), exc)
            error = StorageError(f"{type(exc).__name__}: {exc}")
            for e in batch:
                self._sizes.pop(e.key, None)
            settle_all([(e, None, error) for e in batch])
            return
        self._fault("crash_before_ack", batch)
        self.stats["commits"] += 1
        self.stats["rows"] += len(rows)
        outcomes: list[tuple[Entry, int | None, Exception | None]] = []
        for e in batch:
            if e.key in won:
                outcomes.append((e, e.stored, None))
            else:
                self.stats["fenced"] += 1
                self._sizes.pop(e.key, None)
                fenced = Fenced(f"version {e.version} of this document was written elsewhere")
                outcomes.append((e, None, fenced))
        settle_all(outcomes)

    # ------------------------------------------------------------ other writes

    def _run(self, sql: str, *args: Any) -> None:
        async def go() -> None:
            await self.pool.execute(sql, *args)

        self._call(go())

    def _later(self, what: str, sql: str, *args: Any) -> None:
        """A write nobody waits for (analyses, sessions, language): it must not hold the
        service's loop for a COMMIT's fsync; a failure is logged, as SQLite's would be."""

        async def go() -> None:
            await self.pool.execute(sql, *args)

        def done(future: concurrent.futures.Future[None]) -> None:
            if not future.cancelled() and future.exception() is not None:
                log.warning("could not store %s: %s", what, future.exception())

        asyncio.run_coroutine_threadsafe(go(), self._loop).add_done_callback(done)

    def create(self, key: str, name: str, owner: str, class_id: str, lang: str) -> None:
        now = time.time()
        self._run(
            "INSERT INTO documents VALUES ($1, $2, $3, $4, $5, 0, 0, '', $6, $6, 0, 0)",
            key,
            name,
            owner,
            class_id,
            lang,
            now,
        )
        self._sizes[key] = (0, 0)

    def set_lang(self, key: str, lang: str) -> None:
        self._later("a language", "UPDATE documents SET lang=$2 WHERE key=$1", key, lang)

    def dismiss(self, key: str, hint: str) -> None:
        self._run(
            "INSERT INTO dismissals VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            key,
            hint,
            time.time(),
        )

    def save_analysis(
        self, key: str, version: int, analysis: dict[str, Any], scores: dict[str, Any] | None
    ) -> None:
        self._later(
            "an analysis",
            "INSERT INTO analyses VALUES ($1, $2, $3, $4, $5) ON CONFLICT (doc) DO UPDATE SET "
            "version=EXCLUDED.version, hints=EXCLUDED.hints, scores=EXCLUDED.scores, "
            "updated=EXCLUDED.updated WHERE analyses.version <= EXCLUDED.version",
            key,
            version,
            orjson.dumps(analysis),
            None if scores is None else orjson.dumps(scores),
            time.time(),
        )

    def add_session(self, session: str, key: str, user: str) -> None:
        self._later(
            "a session",
            "INSERT INTO sessions VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            session,
            key,
            user,
            time.time(),
        )

    # ------------------------------------------------------------ reads

    def load(self, key: str) -> StoredDocument | None:
        stored = self._call(self._load(key))
        if stored is not None:
            self._sizes[key] = (
                stored.stored_bytes - len(stored.text.encode()),
                stored.stored_bytes,
            )
        return stored

    async def _load(self, key: str) -> StoredDocument | None:
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            row = await conn.fetchrow(
                "SELECT name, owner, class_id, lang, version, snapshot_version, snapshot_text, "
                "stored_bytes FROM documents WHERE key=$1",
                key,
            )
            if row is None:
                return None
            text = row["snapshot_text"]
            for op, payload in await conn.fetch(
                "SELECT op, payload FROM edits WHERE doc=$1 AND version>$2 AND version<=$3 "
                "ORDER BY version",
                key,
                row["snapshot_version"],
                row["version"],
            ):
                text = apply_logged(text, op, payload)
            stored = StoredDocument(
                key, row["name"], row["owner"], row["class_id"], row["lang"], row["version"], text
            )
            stored.stored_bytes = row["stored_bytes"]
            stored.dismissed = {
                r[0] for r in await conn.fetch("SELECT hint FROM dismissals WHERE doc=$1", key)
            }
            stored.client_seqs = {
                r[0]: (r[1], r[2])
                for r in await conn.fetch(
                    "SELECT client, seq, version FROM client_seqs WHERE doc=$1", key
                )
            }
            analysis = await conn.fetchrow(
                "SELECT version, hints, scores FROM analyses WHERE doc=$1", key
            )
            if analysis is not None:
                stored.analysis_version = analysis[0]
                stored.analysis = orjson.loads(analysis[1])
                stored.scores = None if analysis[2] is None else orjson.loads(analysis[2])
            return stored

    def _fetch(self, sql: str, *args: Any) -> list[Any]:
        async def go() -> list[Any]:
            return list(await self.pool.fetch(sql, *args))

        return self._call(go())

    def session_doc(self, session: str) -> tuple[str, str] | None:
        rows = self._fetch('SELECT doc, "user" FROM sessions WHERE id=$1', session)
        return None if not rows else (rows[0][0], rows[0][1])

    def docs_in_class(self, class_id: str) -> list[tuple[str, str, str]]:
        rows = self._fetch(
            "SELECT key, owner, name FROM documents WHERE class_id=$1 ORDER BY updated DESC",
            class_id,
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def docs_of(self, class_id: str, owner: str) -> tuple[int, int]:
        rows = self._fetch(
            "SELECT COUNT(*), COALESCE(SUM(stored_bytes), 0) FROM documents "
            "WHERE class_id=$1 AND owner=$2",
            class_id,
            owner,
        )
        return int(rows[0][0]), int(rows[0][1])

    def versions(self, keys: list[str]) -> dict[str, int]:
        """The committed version of each document (teacher views check for gaps)."""
        rows = self._fetch("SELECT key, version FROM documents WHERE key = ANY($1)", keys)
        return {r[0]: r[1] for r in rows}

    def close(self) -> None:
        async def shut() -> None:
            self._committer.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pool.close(), 3)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Connections go back to the pool as they are: this module never leaves session state
    behind (asyncpg's default reset would cost a round trip and a transaction each time)."""
