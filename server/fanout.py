"""Who hears about a document, and in what words: observers, labels, bounded frames.

:class:`Fanout` is the part of :class:`server.service.Inkstone` that sends a document's
news to its audience (the student's other editors, the teachers observing it or its
class). Every message names the document as its reader knows it (:meth:`label`), large
hint sets go out in parts of ``hints_frame_sentences`` sentences, and a class's snapshots
are streamed at the reader's pace (``Peer.stream``), so any class size works and no
single document can flood a teacher's socket.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson

from protocol import (
    Change,
    ErrorCode,
    Hints,
    PeerError,
    Presence,
    Scores,
    SentenceHints,
    Snapshot,
    Update,
    apply_changes,
)
from protocol.codec import decode_server
from server.docids import doc_key, split_teacher_id
from server.documents import Analysis, Document, SentenceState, to_wire_sentences

if TYPE_CHECKING:
    from server.config import Settings
    from server.review import Reviews
    from server.service import Peer
    from server.store import DocumentStore

__all__ = ["Fanout", "diff_change"]

log = logging.getLogger("inkstone.fanout")


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix, by binary search over slice comparisons (done in C:
    a 50,000-character replace costs microseconds, not a Python loop per character)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def diff_change(old: str, new: str) -> tuple[int, int, str]:
    """The single change (code points) that turns ``old`` into ``new``."""
    prefix = _common_prefix(old, new)
    limit = min(len(old), len(new)) - prefix
    suffix = _common_prefix(old[::-1][:limit], new[::-1][:limit])
    return prefix, len(old) - suffix, new[prefix : len(new) - suffix]


def hints_frames(
    version: int,
    sentences: tuple[SentenceHints, ...],
    removed: tuple[str, ...],
    doc: str,
    timing: dict[str, float] | None,
    size: int,
) -> list[Hints]:
    """One ``hints`` message, or several at the same version when it is large."""
    if len(sentences) <= size and len(removed) <= 4 * size:
        return [Hints(version, sentences, removed, doc, timing)]
    frames = [
        Hints(version, (), removed[i : i + 4 * size], doc) for i in range(0, len(removed), 4 * size)
    ]
    frames += [
        Hints(version, sentences[i : i + size], (), doc) for i in range(0, len(sentences), size)
    ]
    if not frames:
        frames.append(Hints(version, (), (), doc))
    frames[0] = replace(frames[0], timing=timing)
    return frames


class Fanout:
    """Observers and the messages they get (mixed into the service)."""

    settings: Settings
    store: DocumentStore
    documents: dict[str, Document]
    doc_observers: dict[str, set[Peer]]
    class_observers: dict[str, set[Peer]]
    reviews: Reviews
    bus: Any

    def _load(self, key: str) -> Document | None:
        raise NotImplementedError

    def _maybe_evict(self, doc: Document) -> None:
        raise NotImplementedError

    @staticmethod
    def label(peer: Peer, doc: Document) -> str:
        """The document's id as ``peer`` knows it: its name for the student who owns it,
        ``owner/name`` for the class's teachers."""
        return doc.teacher_id if peer.identity.role == "teacher" else doc.name

    def _audience(self, doc: Document, exclude: Peer | None = None) -> list[Peer]:
        peers: list[Peer] = [p for p in doc.editors if p is not exclude]
        peers.extend(self.doc_observers.get(doc.id, ()))
        peers.extend(self.class_observers.get(doc.class_id, ()))
        return peers

    # ------------------------------------------------------------ snapshots

    def scores_message(self, wire: dict[str, Any], doc: str) -> Scores:
        message = decode_server(orjson.dumps(wire))
        assert isinstance(message, Scores)
        return replace(message, doc=doc)

    def _snapshot(self, doc: Document, peer: Peer, msg_id: Any = None) -> list[Any]:
        """A snapshot (text, hints, scores) then, when it is large, the rest of its hints,
        then the edits made since the analysis it shows."""
        label = self.label(peer, doc)
        a = doc.analysis
        if a is None:
            return [
                Snapshot(
                    doc=label,
                    student=doc.owner,
                    version=doc.version,
                    text=doc.text,
                    hints=(),
                    scores=None,
                    presence=doc.presence,  # type: ignore[arg-type]
                    lang=doc.lang,
                    id=msg_id,
                ),
                *self.reviews.snapshot_tail(doc, peer),
            ]
        size = self.settings.hints_frame_sentences
        sentences = to_wire_sentences(a, a.sentences, peer.encoding, doc.dismissed)
        out: list[Any] = [
            Snapshot(
                doc=label,
                student=doc.owner,
                version=a.version,
                text=a.text,
                hints=sentences[:size],
                scores=None if doc.scores is None else self.scores_message(doc.scores, label),
                presence=doc.presence,  # type: ignore[arg-type]
                lang=a.lang,
                id=msg_id,
            )
        ]
        if len(sentences) > size:
            out += hints_frames(a.version, sentences[size:], (), label, None, size)
        if a.version != doc.version:
            start, end, inserted = diff_change(a.text, doc.text)
            _, applied = apply_changes(a.text, [Change(start, end, inserted)], "utf-32")
            out.append(
                Update(
                    doc=label,
                    version=doc.version,
                    changes=(applied[0].as_change(peer.encoding),),
                    student=doc.owner,
                )
            )
        out += self.reviews.snapshot_tail(doc, peer)
        return out

    def _class_snapshots(self, peer: Peer, class_id: str, msg_id: Any) -> Iterator[Any]:
        """Every document of the class, newest first, loaded only when the reader is ready."""
        for key, _, _ in self.store.docs_in_class(class_id):
            if class_id not in peer.observing_classes:
                return  # unobserved meanwhile
            doc = self._load(key)
            if doc is not None:
                yield from self._snapshot(doc, peer, msg_id)
                self._maybe_evict(doc)

    def observe(self, peer: Peer, doc_id: str | None, class_id: str | None, msg_id: Any) -> None:
        me = peer.identity
        if class_id is not None:
            if class_id != me.class_id:
                raise PeerError(ErrorCode.FORBIDDEN, "teachers may observe only their own class")
            self.class_observers.setdefault(class_id, set()).add(peer)
            peer.observing_classes.add(class_id)
            self.bus.watch(class_id)
            peer.stream(self._class_snapshots(peer, class_id, msg_id))
            return
        assert doc_id is not None
        doc = self._find(me.class_id, doc_id)
        if doc is None:
            raise PeerError(ErrorCode.NOT_FOUND, f"no document {doc_id!r} in your class")
        self.doc_observers.setdefault(doc.id, set()).add(peer)
        peer.observing_docs.add(doc.id)
        self.bus.watch(doc.class_id)
        for m in self._snapshot(doc, peer, msg_id):
            peer.send(m)

    def _find(self, class_id: str, doc_id: str) -> Document | None:
        """A teacher's ``owner/name``; a bare name (release 4 ids) if one student has it."""
        parts = split_teacher_id(doc_id)
        if parts is not None:
            return self._load(doc_key(class_id, *parts))
        keys = [key for key, _, name in self.store.docs_in_class(class_id) if name == doc_id]
        return self._load(keys[0]) if len(keys) == 1 else None

    def unobserve(self, peer: Peer, doc_id: str | None, class_id: str | None) -> None:
        if doc_id is not None:
            doc = self._find(peer.identity.class_id, doc_id)
            if doc is not None:
                self.doc_observers.get(doc.id, set()).discard(peer)
                peer.observing_docs.discard(doc.id)
        if class_id is not None:
            self.class_observers.get(class_id, set()).discard(peer)
            peer.observing_classes.discard(class_id)

    def _notify_class_new_doc(self, doc: Document) -> None:
        for peer in self.class_observers.get(doc.class_id, ()):
            for m in self._snapshot(doc, peer):
                peer.send(m)

    def _set_presence(self, doc: Document, state: str) -> None:
        if doc.presence == state:
            return
        doc.presence = state
        if doc.editors or state == "offline":
            self.bus.presence(doc, state)
        message = Presence(doc=doc.teacher_id, student=doc.owner, state=state)  # type: ignore[arg-type]
        for peer in self.doc_observers.get(doc.id, ()):
            peer.send(message)
        for peer in self.class_observers.get(doc.class_id, ()):
            peer.send(message)

    # ------------------------------------------------------------ results

    def _send_scores(self, doc: Document, scores: Scores, peers: Iterable[Peer]) -> None:
        by_label: dict[str, Scores] = {}
        for peer in peers:
            label = self.label(peer, doc)
            message = by_label.get(label)
            if message is None:
                message = by_label[label] = replace(scores, doc=label)
            peer.send(message)

    def _send_all_hints(self, peer: Peer, doc: Document, analysis: Analysis) -> None:
        sentences = to_wire_sentences(analysis, analysis.sentences, peer.encoding, doc.dismissed)
        for m in hints_frames(
            analysis.version,
            sentences,
            (),
            self.label(peer, doc),
            None,
            self.settings.hints_frame_sentences,
        ):
            peer.send(m)

    def _broadcast_hints(
        self,
        doc: Document,
        analysis: Analysis,
        changed: list[SentenceState],
        removed: list[str],
        timing: dict[str, float] | None,
    ) -> None:
        size = self.settings.hints_frame_sentences
        cache: dict[tuple[str, str], list[Hints]] = {}
        for peer in self._audience(doc):
            label = self.label(peer, doc)
            if peer.full_hints_due:
                peer.full_hints_due = False
                everything = to_wire_sentences(
                    analysis, analysis.sentences, peer.encoding, doc.dismissed
                )
                for m in hints_frames(
                    analysis.version, everything, tuple(removed), label, timing, size
                ):
                    peer.send(m)
                continue
            frames = cache.get((peer.encoding, label))
            if frames is None:
                sentences = to_wire_sentences(analysis, changed, peer.encoding, doc.dismissed)
                frames = cache[(peer.encoding, label)] = hints_frames(
                    analysis.version, sentences, tuple(removed), label, timing, size
                )
            for m in frames:
                peer.send(m)
