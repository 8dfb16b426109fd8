"""Teacher review, live: comments anchored to spans, verdicts on hints, teacher grades,
and student submissions with the class's review queue.

:class:`Reviews` sits beside the service (``service.reviews``) and is called by it at a
few points: an applied edit moves the comments (:func:`protocol.review.map_span`) and
closes those whose text was deleted; a loaded document hides the hints a teacher
disagreed with; a snapshot or a welcome is followed by the document's ``review``; a
finished scoring completes submissions waiting for it. Everything a teacher or student
does here is stored (:mod:`server.review_store`) with who and when before anyone hears
of it. Permissions are the observers' rules: only a teacher of the document's class.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from protocol import (
    Comment,
    Error,
    ErrorCode,
    Grade,
    HintVerdict,
    PeerError,
    PositionIndex,
    QueueItem,
    Resolve,
    Review,
    ReviewQueue,
    Submission,
    Submitted,
    TeacherComment,
    TeacherGrade,
    Verdict,
    map_span,
)
from protocol.edits import AppliedChange
from protocol.review import GRADED_TRAITS
from server.review_store import CommentRow, GradeRow, ReviewStore, SubmissionRow, VerdictRow
from server.scoring import TRAITS

if TYPE_CHECKING:
    from server.documents import Document
    from server.service import Inkstone, Peer

__all__ = ["Reviews"]

log = logging.getLogger("inkstone.review")


def _storage_error(exc: sqlite3.Error) -> PeerError:
    return PeerError(ErrorCode.STORAGE, f"could not store it: {exc}", retry_after_ms=1000)


class Reviews:
    def __init__(self, service: Inkstone, store: ReviewStore) -> None:
        self.service = service
        self.store = store
        self.open: dict[str, list[CommentRow]] = {}  # doc key → open comments (loaded lazily)
        self.waiting: dict[str, list[tuple[Peer, Any]]] = {}  # submits waiting for scores

    # ------------------------------------------------------------ hooks from the service

    def withdrawn(self, doc_key: str) -> set[str]:
        return self.store.withdrawn(doc_key)

    def _comments(self, doc: Document) -> list[CommentRow]:
        found = self.open.get(doc.id)
        if found is None:
            found = self.open[doc.id] = self.store.open_comments(doc.id)
        return found

    def on_edit(self, doc: Document, applied: Sequence[AppliedChange], by: str) -> None:
        """Move the document's open comments through an applied edit (code points)."""
        comments = self._comments(doc)
        if not comments:
            return
        moved, closed = [], []
        for c in comments:
            span: tuple[int, int] | None = (c.start, c.end)
            for a in applied:
                if span is None:
                    break
                span = map_span(span[0], span[1], a.start, a.end, len(a.text))
            if span is None:
                c.state = "deleted"
                closed.append(c)
            elif span != (c.start, c.end):
                c.start, c.end = span
                moved.append(c)
        if closed:
            comments[:] = [c for c in comments if c.state == "open"]
        try:
            self.store.move_comments(moved, closed, by)
        except sqlite3.Error:
            log.exception("could not store the comments of %s", doc.id)
        if closed:  # after the ack of this edit has gone out
            self.service.clock.call_at(self.service.clock.now(), lambda: self.broadcast(doc))

    def after_welcome(self, peer: Peer) -> None:
        doc = peer.doc
        if doc is not None and self.has_state(doc):
            peer.send(self.message(doc, peer))

    def snapshot_tail(self, doc: Document, peer: Peer) -> list[Review]:
        """What follows a teacher's snapshot of ``doc``: its review, if it has one."""
        return [self.message(doc, peer)] if self.has_state(doc) else []

    def on_scored(self, doc: Document) -> None:
        """Scores at the current version exist: record the submissions waiting for them."""
        waiting = self.waiting.pop(doc.id, None)
        if waiting and self._ready(doc):
            self._record(doc, waiting)
        elif waiting:
            self.waiting[doc.id] = waiting

    # ------------------------------------------------------------ messages

    def has_state(self, doc: Document) -> bool:
        return bool(
            self._comments(doc) or self.store.verdicts(doc.id) or self.store.grades(doc.id)
        ) or bool(self.store.submissions(doc.id))

    def message(self, doc: Document, peer: Peer, msg_id: Any = None) -> Review:
        """The document's review state for ``peer`` (its label and position encoding)."""
        index = PositionIndex(doc.text, peer.encoding)
        comments = tuple(
            TeacherComment(
                id=c.id,
                start=index.to_wire(c.start),
                end=index.to_wire(c.end),
                message=c.text,
                author=c.author,
                created=c.created,
                quote=c.quote,
                suggestions=() if c.suggestion is None else (c.suggestion,),
                source=f"teacher:{c.author}",
            )
            for c in self._comments(doc)
        )
        verdicts = tuple(
            HintVerdict(
                v.hint,
                v.verdict,
                v.author,
                v.created,
                v.code,
                v.kind,
                v.quote,  # type: ignore[arg-type]
                v.corrected_kind,
                v.suggestion,
                v.note,
            )
            for v in self.store.verdicts(doc.id)
        )
        grades: dict[str, TeacherGrade] = {}
        for g in self.store.grades(doc.id):  # oldest first: the last one per trait wins
            label = TRAITS.get(g.trait, ("总评", "Overall"))[0 if doc.lang != "en" else 1]
            grades[g.trait] = TeacherGrade(
                g.score, g.max, f"teacher:{g.author}", g.reason, g.created, g.submission, label
            )
        reviewed = self.store.reviewed(doc.id)
        submissions = tuple(
            Submission(s.n, s.version, s.created, len(s.text), s.n in reviewed)
            for s in self.store.submissions(doc.id)
        )
        return Review(
            doc=self.service.label(peer, doc),
            version=doc.version,
            comments=comments,
            verdicts=verdicts,
            grades=grades,
            submissions=submissions,
            id=msg_id,
        )

    def broadcast(self, doc: Document, actor: Peer | None = None, msg_id: Any = None) -> None:
        """Send the document's review to everyone who sees it (and to the acting peer)."""
        audience = self.service._audience(doc)
        if actor is not None and actor not in audience:
            audience.append(actor)
        for peer in audience:
            peer.send(self.message(doc, peer, msg_id if peer is actor else None))

    def queue_message(self, class_id: str, msg_id: Any = None) -> ReviewQueue:
        from server.docids import teacher_id

        items = tuple(
            QueueItem(teacher_id(s.owner, s.name), s.owner, s.n, s.version, s.created)
            for s in self.store.queue(class_id)
        )
        return ReviewQueue(class_id=class_id, items=items, id=msg_id)

    def send_queue(self, class_id: str) -> None:
        peers = self.service.class_observers.get(class_id, ())
        if peers:
            message = self.queue_message(class_id)
            for peer in peers:
                peer.send(message)

    # ------------------------------------------------------------ teacher actions

    def _doc(self, peer: Peer, doc_id: str | None) -> Document:
        if doc_id is None:
            raise PeerError(ErrorCode.BAD_MESSAGE, "name the document ('doc': owner/name)")
        doc = self.service._find(peer.identity.class_id, doc_id)
        if doc is None:
            raise PeerError(ErrorCode.NOT_FOUND, f"no document {doc_id!r} in your class")
        return doc

    def comment(self, peer: Peer, message: Comment) -> None:
        doc = self._doc(peer, message.doc)
        if message.version is not None and message.version != doc.version:
            raise PeerError(
                ErrorCode.VERSION_MISMATCH,
                f"the comment is for version {message.version}; the document is at {doc.version}",
                version=doc.version,
            )
        index = PositionIndex(doc.text, peer.encoding)
        start, end = index.to_code_points(message.start), index.to_code_points(message.end)
        if start >= end:
            raise PeerError(ErrorCode.BAD_OFFSETS, "a comment needs a non-empty span")
        row = CommentRow(
            "c" + secrets.token_hex(8),
            doc.id,
            peer.identity.user,
            start,
            end,
            message.text,
            message.suggestion,
            doc.text[start:end],
            doc.version,
            time.time(),
        )
        try:
            self.store.add_comment(row)
        except sqlite3.Error as exc:
            raise _storage_error(exc) from None
        self._comments(doc).append(row)
        self._comments(doc).sort(key=lambda c: (c.start, c.created))
        self.broadcast(doc, peer, message.id)

    def resolve(self, peer: Peer, message: Resolve) -> None:
        if peer.identity.role == "student":
            doc = peer.doc
            if doc is None:
                raise PeerError(ErrorCode.NO_SESSION, "no document is open")
        else:
            doc = self._doc(peer, message.doc)
        comments = self._comments(doc)
        found = next((c for c in comments if c.id == message.comment), None)
        if found is None:
            raise PeerError(ErrorCode.NOT_FOUND, f"no open comment {message.comment!r}")
        found.state = "resolved"
        try:
            self.store.move_comments([], [found], peer.identity.user)
        except sqlite3.Error as exc:
            found.state = "open"
            raise _storage_error(exc) from None
        comments.remove(found)
        self.broadcast(doc, peer, message.id)

    def verdict(self, peer: Peer, message: Verdict) -> None:
        doc = self._doc(peer, message.doc)
        a = doc.analysis
        hit = None
        if a is not None:
            hit = next(
                ((s, h) for s in a.sentences for hid, h in s.hints if hid == message.hint), None
            )
        if a is None or hit is None:
            raise PeerError(ErrorCode.NOT_FOUND, f"no hint {message.hint!r} in this document")
        sentence, hint = hit
        row = VerdictRow(
            doc.id,
            message.hint,
            peer.identity.user,
            message.verdict,
            hint.code,
            hint.kind,
            hint.source,
            a.text[hint.start : hint.end],
            sentence.text,
            hint.start - sentence.start,
            hint.suggestions,
            message.kind,
            message.suggestion,
            message.note,
            a.version,
            time.time(),
        )
        try:
            self.store.set_verdict(row)
        except sqlite3.Error as exc:
            raise _storage_error(exc) from None
        if message.verdict == "disagree":
            self.service.hide_hint(doc, message.hint)
        self.broadcast(doc, peer, message.id)

    def grade(self, peer: Peer, message: Grade) -> None:
        doc = self._doc(peer, message.doc)
        submissions = self.store.submissions(doc.id)
        model = None
        if doc.scores is not None:
            part = (
                doc.scores.get("overall")
                if message.trait == "overall"
                else doc.scores.get("traits", {}).get(message.trait)
            )
            # live scores hold Score/Trait objects; scores loaded from the store, dicts
            value = part.get("score") if isinstance(part, dict) else getattr(part, "score", None)
            model = None if value is None else float(value)
        row = GradeRow(
            doc.id,
            message.trait,
            peer.identity.user,
            message.score,
            GRADED_TRAITS[message.trait],
            message.reason,
            submissions[-1].n if submissions else None,
            model,
            doc.version,
            time.time(),
        )
        try:
            self.store.add_grade(row)
        except sqlite3.Error as exc:
            raise _storage_error(exc) from None
        self.broadcast(doc, peer, message.id)
        if message.trait == "overall":
            self.send_queue(doc.class_id)

    # ------------------------------------------------------------ student submits

    def _ready(self, doc: Document) -> bool:
        a = doc.analysis
        return a is not None and a.version == doc.version and a.scores is not None

    def submit(self, peer: Peer, msg_id: Any) -> None:
        doc = peer.doc
        if doc is None:
            raise PeerError(ErrorCode.NO_SESSION, "no document is open")
        if not doc.text.strip():
            raise PeerError(ErrorCode.BAD_MESSAGE, "there is nothing to submit yet")
        latest = self.store.submissions(doc.id)[-1:]
        if latest and latest[0].version == doc.version:  # a resend: the same submission
            peer.send(
                Submitted(doc=doc.name, submission=latest[0].n, version=doc.version, id=msg_id)
            )
            return
        if self._ready(doc):
            self._record(doc, [(peer, msg_id)])
            return
        # feedback for the latest edits is on its way: record the submission with it
        self.waiting.setdefault(doc.id, []).append((peer, msg_id))
        if not doc.analysing and not self.service.debouncer.pending(doc.id):
            self.service.debouncer.touch(doc.id)

    def _record(self, doc: Document, requests: list[tuple[Peer, Any]]) -> None:
        a = doc.analysis
        assert a is not None
        hints = [
            [h.kind, h.code, h.start, h.end, a.text[h.start : h.end], list(h.suggestions)]
            for s in a.sentences
            for hid, h in s.hints
            if hid not in doc.dismissed
        ]
        vectors = [s.embedding for s in a.sentences if s.embedding is not None]
        embedding = (
            np.mean(np.stack(vectors), axis=0).astype(np.float32).tobytes() if vectors else None
        )
        row = SubmissionRow(
            doc.id,
            self.store.next_submission(doc.id),
            doc.class_id,
            doc.owner,
            doc.name,
            doc.version,
            doc.text,
            a.scores,
            hints,
            time.time(),
            embedding,
        )
        try:
            self.store.add_submission(row)
        except sqlite3.Error as exc:
            for peer, msg_id in requests:
                peer.send(Error(code=ErrorCode.STORAGE, message=str(exc), id=msg_id, doc=doc.name))
            return
        for peer, msg_id in requests:
            peer.send(Submitted(doc=doc.name, submission=row.n, version=row.version, id=msg_id))
        self.broadcast(doc)
        self.send_queue(doc.class_id)
