"""How a gateway tells other gateways about its documents: the bus.

This package owns everything that crosses between gateway nodes except storage. The
one-machine default is :class:`LocalBus`: every observer is in this process, so it does
nothing. :class:`server.bus.redis.RedisBus` (``--bus redis://…``) carries updates, hints,
scores and presence over Redis 7 sharded pub/sub (a channel per class) to teachers whose
socket is on another node, and keeps presence in Redis (per-node TTL keys and a hash per
class); :mod:`server.bus.relay` applies what arrives to this node's read-only copies
of those documents. Every message carries the document version: the store is the truth,
so a receiver that sees a gap re-reads the document from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.documents import Analysis, Document, SentenceState

__all__ = ["LocalBus"]


class LocalBus:
    """One process: all observers are local, nothing to carry."""

    distributed = False

    def updated(self, doc: Document, version: int, applied: list[Any]) -> None:
        pass

    def hints(
        self,
        doc: Document,
        analysis: Analysis,
        changed: list[SentenceState],
        removed: list[str],
        timing: dict[str, float] | None,
    ) -> None:
        pass

    def scores(self, doc: Document, wire: dict[str, Any]) -> None:
        pass

    def presence(self, doc: Document, state: str) -> None:
        pass

    def new_doc(self, doc: Document) -> None:
        pass

    def watch(self, class_id: str) -> None:
        pass

    def on_load(self, doc: Document) -> None:
        pass

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass
