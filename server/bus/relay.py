"""Apply what other nodes published to this node's copies of their documents.

A teacher here may observe a student whose socket is on another node. This node keeps
a read-only copy of that document (loaded from the store when observed, kept while its
class is observed) and the relay brings it forward: an update at ``version + 1`` is
applied and sent on as ``update``; an older one is ignored; a newer one (a gap: pub/sub
dropped something) makes the node re-read the document from the store and send fresh
snapshots. Hints and scores are taken as computed by the owning node. Nothing here runs
the models: the node that holds the student's socket analyses.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from protocol import Change, Presence, Update, apply_changes
from server.documents import Analysis, Document
from server.store.base import StorageError

if TYPE_CHECKING:
    from server.service import Inkstone

__all__ = ["Relay"]

log = logging.getLogger("inkstone.relay")


class Relay:
    def __init__(self, service: Inkstone, bus: Any) -> None:
        self.service = service
        self.bus = bus
        self.presence: dict[str, str] = {}  # doc key -> state, for students on other nodes
        self.stats = {"updates": 0, "gaps": 0, "rereads": 0}
        # Hints/scores computed on text whose updates have not arrived yet (the owner
        # analyses its latest text while the COMMIT is in flight): applied once they have.
        self.ahead: dict[str, list[dict[str, Any]]] = {}

    def _introduce(self, key: str, class_id: str) -> None:
        """A document of an observed class this node has no copy of (new, or its news was
        lost): load it from the store and show it to the class's teachers."""
        service = self.service
        if key in service.documents or not service.class_observers.get(class_id):
            return
        try:
            doc = service._load(key)
        except StorageError as exc:
            log.warning("could not load %s: %s", key, exc)
            return
        if doc is not None:
            service._notify_class_new_doc(doc)

    def receive(self, body: dict[str, Any]) -> None:
        key = body["k"]
        class_id = key.split("/", 1)[0].replace("%2F", "/").replace("%25", "%")
        kind = body["t"]
        doc = self.service.documents.get(key)
        if doc is None:
            self._introduce(key, class_id)  # at the store's version: this message is in it
            return
        if kind == "d" or doc.editors:
            # not watched here, or (a rebalance) edited here too: the store decides
            return
        version = body.get("v")
        if kind == "u":
            self._update(doc, version, body["c"])
        elif kind in ("h", "s") and version is not None and version > doc.version:
            waiting = self.ahead.setdefault(key, [])
            waiting[:] = [b for b in waiting if b["t"] != kind] + [body]
        elif kind == "h":
            self._hints(doc, body)
        elif kind == "s":
            doc.scores = body["w"]
            if doc.analysis is not None and doc.analysis.version == version:
                doc.analysis.scores = body["w"]
            message = self.service.scores_message(body["w"], "")
            self.service._send_scores(doc, message, self.service._audience(doc))
        elif kind == "p":
            self.presence[key] = body["s"]
            self._set_presence(doc, body["s"])
        self._catch_up(doc)

    def _catch_up(self, doc: Document) -> None:
        """Apply hints/scores that were waiting for the updates now applied."""
        waiting = self.ahead.get(doc.id)
        if not waiting or any(b["v"] > doc.version for b in waiting):
            return
        del self.ahead[doc.id]
        for body in waiting:
            self.receive(body)

    def _update(self, doc: Document, version: int, raw: list[list[Any]]) -> None:
        if version <= doc.version:
            return
        if version != doc.version + 1:
            self.stats["gaps"] += 1
            self.reread(doc)
            return
        changes = [Change(int(s), int(e), str(t)) for s, e, t in raw]
        doc.text, applied = apply_changes(doc.text, changes, "utf-32")
        doc.version = version
        self.stats["updates"] += 1
        for peer in self.service._audience(doc):
            peer.send(
                Update(
                    doc=self.service.label(peer, doc),
                    version=version,
                    changes=tuple(a.as_change(peer.encoding) for a in applied),
                    student=doc.owner,
                )
            )

    def _hints(self, doc: Document, body: dict[str, Any]) -> None:
        version = body["v"]
        if doc.analysis is not None and doc.analysis.version > version:
            return
        analysis = self.service._capped(Analysis.from_json(body["a"], doc.scores), doc)
        doc.analysis = analysis
        wanted = set(body["ch"])
        changed = [s for s in analysis.sentences if s.id in wanted]
        self.service._broadcast_hints(doc, analysis, changed, list(body["rm"]), body.get("tm"))

    def _set_presence(self, doc: Document, state: str) -> None:
        if doc.presence == state:
            return
        doc.presence = state
        message = Presence(doc=doc.teacher_id, student=doc.owner, state=state)  # type: ignore[arg-type]
        service = self.service
        for peer in (
            *service.doc_observers.get(doc.id, ()),
            *service.class_observers.get(doc.class_id, ()),
        ):
            peer.send(message)

    def presence_seen(self, states: dict[str, str]) -> None:
        """Presence read from Redis (students on other nodes, dead nodes' as offline)."""
        self.presence.update(states)
        for key, state in states.items():
            doc = self.service.documents.get(key)
            if doc is not None and not doc.editors:
                self._set_presence(doc, state)

    def on_load(self, doc: Document) -> None:
        state = self.presence.get(doc.id)
        if state is not None and not doc.editors:
            doc.presence = state

    def reread(self, doc: Document) -> None:
        """The store is the truth: reload the copy and send its observers a snapshot."""
        self.stats["rereads"] += 1
        try:
            stored = self.service.store.load(doc.id)
        except StorageError as exc:
            log.warning("could not re-read %s: %s", doc.id, exc)
            return
        if stored is None or stored.version < doc.version:
            return
        doc.text, doc.version = stored.text, stored.version
        if stored.analysis is not None:
            doc.analysis = self.service._capped(
                Analysis.from_json(stored.analysis, stored.scores), doc
            )
            doc.scores = stored.scores
        for peer in self.service._audience(doc):
            for message in self.service._snapshot(doc, peer):
                peer.send(message)

    async def resync(self, classes: list[str]) -> None:
        """After the bus lost messages: compare every copy here with the store, and load
        the observed classes' documents this node has not seen."""
        service = self.service
        for class_id in classes:
            try:
                keys = [key for key, _, _ in service.store.docs_in_class(class_id)]
            except StorageError:
                continue
            for key in keys:
                self._introduce(key, class_id)
        copies = [
            d for d in list(service.documents.values()) if d.class_id in classes and not d.editors
        ]
        versions = getattr(service.store, "versions", None)
        if not copies or versions is None:
            return
        try:
            current = versions([d.id for d in copies])
        except StorageError:
            return
        for doc in copies:
            if current.get(doc.id, doc.version) > doc.version:
                self.stats["gaps"] += 1
                self.reread(doc)
