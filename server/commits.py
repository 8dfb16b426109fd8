"""Edits waiting for a group commit: ack after COMMIT, roll back or reload when it fails.

With a store that commits in groups (:class:`server.store.postgres.PostgresStore`) the
service applies an edit to its in-memory document at once, so the next edit of a
pipelining client finds the right base, but tells nobody until the store's COMMIT has
returned: then the editor gets its ``ack`` and the audience its ``update``. If the commit
fails, the document goes back to the last committed text (every later edit of that
document fails too, by the store's compare-and-set), the editor gets a ``storage`` error
with ``retry_after_ms`` and resends. If another node won the version (``Fenced``), the
document is reloaded from the store, the truth.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from protocol import Ack, ErrorCode, PeerError
from server.documents import Document
from server.store.base import Fenced, StorageError

if TYPE_CHECKING:
    from server.service import Inkstone, Peer

__all__ = ["GroupCommits"]

log = logging.getLogger("inkstone.commits")


@dataclass(slots=True)
class _Committed:
    """The last committed state of a document with operations in flight."""

    text: str
    version: int
    in_flight: int = 0
    epoch: int = 0  # bumped by each rollback: older operations no longer match memory


class GroupCommits:
    def __init__(self, service: Inkstone, *, ack_before_commit: bool = False) -> None:
        self.service = service
        self.store: Any = service.store
        # The fault-hook control run (tests only): ack at once, commit later.
        self.ack_before_commit = ack_before_commit
        self.committed: dict[str, _Committed] = {}
        self.origins: dict[tuple[str, str, int], asyncio.Future[Ack]] = {}

    def submit(
        self,
        peer: Peer,
        doc: Document,
        message_id: Any,
        version: int,
        text: str,
        applied: list[Any],
        origin: tuple[str, int] | None,
    ) -> Ack | Awaitable[Ack]:
        state = self.committed.get(doc.id)
        if state is None:
            state = self.committed[doc.id] = _Committed(doc.text, doc.version)
        state.in_flight += 1
        changes = [(a.start, a.end, a.text) for a in applied]
        stored = self.store.append_later(doc.id, version, changes, text, origin)
        doc.text, doc.version = text, version
        ack = Ack(version=version, id=message_id, doc=doc.name)
        task = asyncio.ensure_future(
            self._finish(peer, doc, stored, state, state.epoch, text, applied, origin, ack)
        )
        if origin is not None:
            self.origins[(doc.id, *origin)] = task
        if self.ack_before_commit:
            task.add_done_callback(lambda t: t.exception())  # nobody awaits it
            return ack
        return task

    def in_flight(self, doc: Document, origin: tuple[str, int]) -> Awaitable[Ack] | None:
        """The pending commit of a re-sent operation, if it is still in flight here."""
        return self.origins.get((doc.id, *origin))

    async def _finish(
        self,
        peer: Peer,
        doc: Document,
        stored: asyncio.Future[int],
        state: _Committed,
        epoch: int,
        text: str,
        applied: list[Any],
        origin: tuple[str, int] | None,
        ack: Ack,
    ) -> Ack:
        try:
            size = await stored
        except StorageError as exc:
            self._failed(doc, state, epoch, isinstance(exc, Fenced))
            raise PeerError(
                ErrorCode.STORAGE,
                f"the edit could not be stored and was not applied: {exc}",
                version=doc.version,
                retry_after_ms=1000,
            ) from None
        finally:
            state.in_flight -= 1
            if state.in_flight == 0 and self.committed.get(doc.id) is state:
                del self.committed[doc.id]  # kept in memory until now (_maybe_evict)
                self.service._maybe_evict(doc)
            if origin is not None:
                self.origins.pop((doc.id, *origin), None)
        if epoch == state.epoch:
            state.text, state.version = text, ack.version
            self.service.committed(peer, doc, ack.version, applied, size, origin)
        return ack

    def _failed(self, doc: Document, state: _Committed, epoch: int, fenced: bool) -> None:
        if epoch != state.epoch:
            return  # an operation after one that failed already: memory was rolled back
        state.epoch += 1
        doc.text, doc.version = state.text, state.version
        if fenced:  # another node wrote it: the store has the truth
            try:
                fresh = self.store.load(doc.id)
            except StorageError:
                log.warning("could not reload %s after losing a version", doc.id)
                return
            if fresh is not None:
                doc.text, doc.version = fresh.text, fresh.version
                doc.client_seqs = fresh.client_seqs
                state.text, state.version = fresh.text, fresh.version
