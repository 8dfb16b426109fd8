"""The core of the server, with no socket in sight: documents, edits, analysis, observers.

A connection (see :mod:`server.connection`) calls into :class:`Inkstone` with
decoded messages; Inkstone answers with messages and pushes others through
each peer's ``send``. The data path of one edit:

1. ``apply`` checks the base version, the per-student quota, applies the changes
   atomically, commits them to the store (SQLite, or PostgreSQL in group commits),
   bumps the version and returns the ``ack``; observers get an ``update``.
2. The debouncer fires ``analyse`` after a quiet period (or a max wait), through the
   fair gate.
3. The analysis pipeline (:mod:`server.pipeline`) turns the text into hints and scores;
   who hears about it, and in what words, is :mod:`server.fanout`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Iterator
from typing import Any, Protocol

from protocol import (
    Ack,
    Change,
    Edit,
    ErrorCode,
    Hello,
    Limits,
    PeerError,
    Replace,
    Update,
    Welcome,
    apply_changes,
)
from protocol.positions import Encoding
from server.auth import Identity
from server.budgets import UserBudgets
from server.bus import LocalBus
from server.clock import Clock
from server.commits import GroupCommits
from server.config import Settings
from server.debounce import Debouncer
from server.docids import doc_key
from server.documents import Analysis, Document, SentenceState
from server.fairgate import FairGate
from server.fanout import Fanout, diff_change
from server.hintcaps import apply_document_budget, cap_sentence
from server.hints import HintPolicy
from server.metrics import Metrics
from server.pipeline import Pipeline
from server.review import Reviews
from server.review_store import ReviewStore
from server.store import DocumentStore, StorageError

__all__ = ["Inkstone", "Peer"]

log = logging.getLogger("inkstone.service")


class Peer(Protocol):
    """What the service needs from a connection."""

    identity: Identity
    encoding: Encoding
    doc: Document | None
    observing_docs: set[str]
    observing_classes: set[str]
    full_hints_due: bool  # the next hints message must carry every sentence
    client_id: str | None  # hello.client (idempotent resend with edit.seq)

    def send(self, message: Any) -> None: ...

    def stream(self, messages: Iterator[Any]) -> None:
        """Send ``messages`` paced by the reader (lazily, while the outbox is short)."""


class Inkstone(Fanout, Pipeline):
    def __init__(
        self,
        settings: Settings,
        store: DocumentStore,
        models: Any | None,
        metrics: Metrics,
        clock: Clock,
        bus: Any = None,
    ) -> None:
        self.settings = settings
        self.store = store
        # Other gateway nodes (server.bus); LocalBus: this process is the whole audience.
        self.bus = bus if bus is not None else LocalBus()
        # A store that commits in groups acks after its COMMIT (server.commits).
        self.commits = (
            GroupCommits(self, ack_before_commit=settings.fault_hook == "ack_before_commit")
            if hasattr(store, "append_later")
            else None
        )
        self.models = models
        self.metrics = metrics
        self.clock = clock
        self.policy = HintPolicy()
        self.documents: dict[str, Document] = {}
        self.doc_observers: dict[str, set[Peer]] = {}
        self.class_observers: dict[str, set[Peer]] = {}
        self.debouncer: Debouncer[str] = Debouncer(
            clock,
            self._on_debounce,
            quiet_s=settings.debounce_quiet_ms / 1000,
            max_wait_s=settings.debounce_max_ms / 1000,
        )
        self.tasks: set[asyncio.Task[None]] = set()
        self.gate = FairGate(
            clock,
            self.spawn,
            concurrency=settings.analysis_concurrency,
            half_life_s=settings.fairness_half_life_s,
            heavy_slots=settings.heavy_analysis_slots,
        )
        self.limits = Limits(
            max_message_bytes=settings.max_message_bytes,
            max_document_chars=settings.max_document_chars,
            max_messages_per_second=settings.max_messages_per_second,
            max_changes_per_edit=settings.max_changes_per_edit,
            burst=settings.rate_burst,
            max_bytes_per_second=settings.max_bytes_per_second,
            byte_burst=settings.byte_burst,
            max_documents=settings.max_documents_per_student,
            storage_quota_bytes=settings.storage_quota_bytes,
            max_hints_per_sentence=settings.max_hints_per_sentence,
            max_hints_per_document=settings.max_hints_per_document,
        )
        self.budgets = UserBudgets(
            settings.max_messages_per_second,
            settings.rate_burst,
            settings.max_bytes_per_second,
            settings.byte_burst,
            settings.max_sessions_per_second,
            settings.session_burst,
        )
        # bytes each (class, student) stores, loaded on first use, kept by apply()
        self.usage: dict[tuple[str, str], int] = {}
        # teacher review (issue 14): its own store beside the documents
        self.reviews = Reviews(self, ReviewStore(settings.data_dir / "review.sqlite3"))

    # ------------------------------------------------------------ documents

    def _load(self, key: str) -> Document | None:
        doc = self.documents.get(key)
        if doc is not None:
            return doc
        stored = self.store.load(key)
        if stored is None:
            return None
        doc = Document(
            stored.key,
            stored.name,
            stored.owner,
            stored.class_id,
            stored.lang,
            stored.text,
            stored.version,
            dismissed=stored.dismissed | self.reviews.withdrawn(stored.key),
            stored_bytes=stored.stored_bytes,
            client_seqs=stored.client_seqs,
        )
        if stored.analysis is not None:
            doc.analysis = self._capped(Analysis.from_json(stored.analysis, stored.scores), doc)
            doc.scores = stored.scores
        self.documents[key] = doc
        self.metrics.documents.set(len(self.documents))
        self.bus.on_load(doc)
        # with other nodes, the node holding the student's socket analyses (open_student)
        stale = doc.analysis is None or doc.analysis.version != doc.version
        if stale and not self.bus.distributed:
            self.debouncer.touch(doc.id)
        return doc

    def _maybe_evict(self, doc: Document) -> None:
        if (
            not doc.editors
            and not doc.analysing
            and not doc.scoring
            and doc.score_timer is None
            and not self.debouncer.pending(doc.id)
            and not self.doc_observers.get(doc.id)
            and not (self.bus.distributed and self.class_observers.get(doc.class_id))
            and not (self.commits is not None and doc.id in self.commits.committed)
        ):
            self.documents.pop(doc.id, None)
            self.metrics.documents.set(len(self.documents))
            self.reviews.open.pop(doc.id, None)  # its comments are reloaded with it

    def _capped(self, analysis: Analysis, doc: Document) -> Analysis:
        """Apply the hint caps to an analysis stored before they existed (or with others)."""
        s = self.settings
        for state in analysis.sentences:
            state.hints = cap_sentence(
                state.id,
                state.hints,
                analysis.lang,
                state.start,
                per_sentence=s.max_hints_per_sentence,
                per_code=s.max_hints_per_code,
            )
        apply_document_budget(analysis.sentences, s.max_hints_per_document, doc.dismissed)
        return analysis

    def welcome(self, peer: Peer, hello: Hello, doc: Document | None) -> Welcome:
        return Welcome(
            session=secrets.token_urlsafe(12),
            doc=None if doc is None else doc.name,
            version=0 if doc is None else doc.version,
            text="" if doc is None else doc.text,
            limits=self.limits,
            models=self.models.describe() if self.models is not None else {"zh": None, "en": None},
            dev_mode=self.settings.dev_mode,
            role=peer.identity.role,  # type: ignore[arg-type]
            user=peer.identity.user,
            class_id=peer.identity.class_id,
            lang=doc.lang if doc is not None else hello.lang,
            position_encoding=peer.encoding,
            debounce_ms=self.settings.debounce_quiet_ms,
            debounce_max_ms=self.settings.debounce_max_ms,
            token_expires=peer.identity.expires,
            id=hello.id,
        )

    def open_student(self, peer: Peer, hello: Hello) -> Welcome:
        if hello.doc is None or not hello.doc.strip():
            raise PeerError(ErrorCode.BAD_MESSAGE, "a student hello needs 'doc'")
        me = peer.identity
        key = doc_key(me.class_id, me.user, hello.doc)
        if hello.resume is not None:
            owner = self.store.session_doc(hello.resume.session)
            if owner is not None and owner != (key, me.user):
                raise PeerError(ErrorCode.FORBIDDEN, "that session belongs to someone else")
        doc = self._load(key)
        if doc is not None and self.bus.distributed and not doc.editors:
            self._refresh(doc)  # a copy another node kept up to date may lag the store
        if doc is None:
            count, _ = self.store.docs_of(me.class_id, me.user)
            if count >= self.settings.max_documents_per_student:
                raise PeerError(
                    ErrorCode.TOO_MANY_DOCUMENTS,
                    f"you already have {count} documents in this class (the limit is "
                    f"{self.settings.max_documents_per_student}); open one of them instead",
                )
            try:
                self.store.create(key, hello.doc, me.user, me.class_id, hello.lang)
            except StorageError as exc:
                raise PeerError(
                    ErrorCode.STORAGE, f"could not create the document: {exc}"
                ) from None
            doc = Document(key, hello.doc, me.user, me.class_id, hello.lang, "", 0)
            self.documents[doc.id] = doc
            self.metrics.documents.set(len(self.documents))
            self._notify_class_new_doc(doc)
            self.bus.new_doc(doc)
        if hello.lang != "auto" and hello.lang != doc.lang:
            doc.lang = hello.lang
            try:
                self.store.set_lang(doc.id, doc.lang)
            except StorageError:
                log.warning("could not store the language of %s", doc.id)
        welcome = self.welcome(peer, hello, doc)
        try:
            self.store.add_session(welcome.session, doc.id, me.user)
        except StorageError:
            log.warning("could not record session for %s", doc.id)
        peer.doc = doc
        doc.editors.add(peer)
        self._set_presence(doc, "online")
        if self.bus.distributed:
            self.bus.presence(doc, "online")  # this node holds the student now
            if doc.analysis is None or doc.analysis.version != doc.version:
                self.debouncer.touch(doc.id)
        return welcome

    def _refresh(self, doc: Document) -> None:
        """Bring an in-memory copy to the store's version before a student edits it here."""
        try:
            stored = self.store.load(doc.id)
        except StorageError as exc:
            raise PeerError(
                ErrorCode.STORAGE, f"could not read the document: {exc}", retry_after_ms=1000
            ) from None
        if stored is not None and stored.version != doc.version:
            doc.text, doc.version = stored.text, stored.version
            doc.client_seqs = stored.client_seqs

    def after_welcome(self, peer: Peer) -> None:
        """Send the current analysis to a newly opened editor."""
        doc = peer.doc
        if doc is None or doc.analysis is None:
            return
        a = doc.analysis
        if a.version != doc.version:
            # Offsets at an older version cannot be mapped by a client that has no edits
            # since: send the whole set with the next analysis instead.
            peer.full_hints_due = True
            if not doc.analysing and not self.debouncer.pending(doc.id):
                self.debouncer.touch(doc.id)
            self.reviews.after_welcome(peer)
            return
        self._send_all_hints(peer, doc, a)
        if doc.scores is not None:
            peer.send(self.scores_message(doc.scores, doc.name))
        self.reviews.after_welcome(peer)

    # ------------------------------------------------------------ edits

    def apply(self, peer: Peer, message: Edit | Replace) -> Ack | Awaitable[Ack]:
        """Apply an operation; the ``ack`` (or, with a group-committing store, an awaitable
        that gives it once COMMIT has returned)."""
        doc = peer.doc
        if doc is None:
            raise PeerError(ErrorCode.NO_SESSION, "no document is open")
        client = peer.client_id
        origin = None if client is None or message.seq is None else (client, message.seq)
        if origin is not None:
            done = self._already_applied(doc, origin, message.id)
            if done is not None:
                return done
        if message.base is not None and message.base != doc.version:
            raise PeerError(
                ErrorCode.VERSION_MISMATCH,
                f"{message.TYPE} is based on version {message.base}; "
                f"the document is at {doc.version}",
                version=doc.version,
            )
        if isinstance(message, Edit):
            if len(message.changes) > self.settings.max_changes_per_edit:
                raise PeerError(
                    ErrorCode.BAD_MESSAGE,
                    f"at most {self.settings.max_changes_per_edit} changes per edit",
                )
            text, applied = apply_changes(
                doc.text,
                message.changes,
                peer.encoding,
                max_chars=self.settings.max_document_chars,
            )
        else:
            if len(message.text) > self.settings.max_document_chars:
                raise PeerError(
                    ErrorCode.DOC_TOO_LARGE,
                    f"the text has {len(message.text)} characters; "
                    f"the limit is {self.settings.max_document_chars}",
                )
            text = message.text
            # stored, and mirrored to observers, as the one change that turns old into new
            _, applied = apply_changes(doc.text, [Change(*diff_change(doc.text, text))], "utf-32")
        changes = [(a.start, a.end, a.text) for a in applied]
        self._check_quota(doc, changes, len(text) < len(doc.text))
        version = doc.version + 1
        if self.commits is not None:  # group commit: ack once COMMIT returned
            return self.commits.submit(peer, doc, message.id, version, text, applied, origin)
        try:
            stored = self.store.append(doc.id, version, changes, text, origin)
        except StorageError as exc:
            raise PeerError(
                ErrorCode.STORAGE,
                f"the edit could not be stored and was not applied: {exc}",
                version=doc.version,
                retry_after_ms=1000,
            ) from None
        doc.text, doc.version = text, version
        self.committed(peer, doc, version, applied, stored, origin)
        return Ack(version=version, id=message.id, doc=doc.name)

    def _already_applied(
        self, doc: Document, origin: tuple[str, int], msg_id: Any
    ) -> Ack | Awaitable[Ack] | None:
        """A re-sent operation (same client and seq) is acknowledged, never applied twice."""
        last = doc.client_seqs.get(origin[0])
        if last is not None and origin[1] <= last[0]:
            if origin[1] == last[0]:
                return Ack(version=last[1], id=msg_id, doc=doc.name)
            raise PeerError(
                ErrorCode.VERSION_MISMATCH,
                f"operation {origin[1]} of this client was applied before",
                version=doc.version,
            )
        if self.commits is not None:
            return self.commits.in_flight(doc, origin)
        return None

    def committed(
        self,
        peer: Peer,
        doc: Document,
        version: int,
        applied: list[Any],
        stored: int,
        origin: tuple[str, int] | None,
    ) -> None:
        """An operation is durable: account for it, schedule analysis, tell the audience."""
        if origin is not None:
            doc.client_seqs[origin[0]] = (origin[1], version)
        usage = self.usage.get((doc.class_id, doc.owner))
        if usage is not None:
            self.usage[(doc.class_id, doc.owner)] = usage + stored - doc.stored_bytes
        doc.stored_bytes = stored
        now = self.clock.now()
        doc.last_edit_at = now
        if doc.first_unanalysed_at is None:
            doc.first_unanalysed_at = now
        self.metrics.edits.inc()
        doc.debounce_due = self.debouncer.touch(doc.id)
        if doc.presence != "online":
            self._set_presence(doc, "online")
        for other in self._audience(doc, exclude=peer):
            wire = tuple(a.as_change(other.encoding) for a in applied)
            other.send(
                Update(doc=self.label(other, doc), version=version, changes=wire, student=doc.owner)
            )
        self.reviews.on_edit(doc, applied, peer.identity.user)
        self.bus.updated(doc, version, applied)

    def _check_quota(
        self, doc: Document, changes: list[tuple[int, int, str]], shrinks: bool
    ) -> None:
        """Refuse an edit that adds text once the owner's documents fill their quota
        (deleting is always allowed, so a student can get under it again)."""
        if shrinks or not any(text for _, _, text in changes):
            return
        owner = (doc.class_id, doc.owner)
        usage = self.usage.get(owner)
        if usage is None:
            usage = self.usage[owner] = self.store.docs_of(*owner)[1]
        added = sum(len(text.encode()) + 16 for _, _, text in changes)
        quota = self.settings.storage_quota_bytes
        if usage + added > quota:
            raise PeerError(
                ErrorCode.STORAGE_QUOTA,
                f"your documents in this class use {usage} of {quota} bytes; delete text or "
                "documents you no longer need (deleting is always allowed)",
                version=doc.version,
            )

    def dismiss(self, peer: Peer, hint: str) -> None:
        doc = peer.doc
        if doc is None:
            raise PeerError(ErrorCode.NO_SESSION, "no document is open")
        if doc.analysis is None:
            raise PeerError(ErrorCode.NOT_FOUND, f"no hint {hint!r} in this document")
        owner = next((s for s in doc.analysis.sentences for hid, _ in s.hints if hid == hint), None)
        if owner is None:
            raise PeerError(ErrorCode.NOT_FOUND, f"no hint {hint!r} in this document")
        try:
            self.store.dismiss(doc.id, hint)
        except StorageError as exc:
            raise PeerError(ErrorCode.STORAGE, f"could not store the dismissal: {exc}") from None
        self.hide_hint(doc, hint)

    def hide_hint(self, doc: Document, hint: str) -> None:
        """Hide ``hint`` (dismissed, or withdrawn by a teacher) and tell the audience."""
        doc.dismissed.add(hint)
        if doc.analysis is None:
            return
        owner = next(s for s in doc.analysis.sentences for hid, _ in s.hints if hid == hint)
        states = doc.analysis.sentences
        before = {st.id: (st.shown, st.overflow) for st in states}
        moved = self._rebudget(doc, states, before, {owner.id})
        self._broadcast_hints(doc, doc.analysis, [owner, *moved], [], None)
        self.bus.hints(doc, doc.analysis, [owner, *moved], [], None)

    def _rebudget(
        self,
        doc: Document,
        states: list[SentenceState],
        previous: dict[str, tuple[int, int]],
        already: set[str],
    ) -> list[SentenceState]:
        """Apply the document's hint budget; the sentences (beyond ``already``) whose
        visible hints it changed compared with ``previous``."""
        apply_document_budget(states, self.settings.max_hints_per_document, doc.dismissed)
        moved = []
        for st in states:
            old = previous.get(st.id)
            if st.id in already or old is None:
                continue
            if old != (st.shown, st.overflow):
                moved.append(st)
        return moved

    # ------------------------------------------------------------ observers

    def sweep_idle(self) -> None:
        """Mark documents idle when their students stopped typing for a while (and forget
        the budgets of users who stopped sending)."""
        now = self.clock.now()
        self.budgets.sweep(now)
        for doc in list(self.documents.values()):
            if (
                doc.editors
                and doc.presence == "online"
                and now - doc.last_edit_at > self.settings.idle_after_s
            ):
                self._set_presence(doc, "idle")

    def disconnect(self, peer: Peer) -> None:
        for d in list(peer.observing_docs):
            self.doc_observers.get(d, set()).discard(peer)
        for c in list(peer.observing_classes):
            self.class_observers.get(c, set()).discard(peer)
        doc = peer.doc
        if doc is not None:
            doc.editors.discard(peer)
            if not doc.editors:
                self._set_presence(doc, "offline")
            self._maybe_evict(doc)

    def use_models(self, models: Any) -> None:
        """Serve a new model release from now on: analyses in flight finish on the models
        they started with; every open document is analysed again with the new ones."""
        self.models = models
        for doc in self.documents.values():
            if doc.editors or self.doc_observers.get(doc.id):
                self.debouncer.touch(doc.id)

    # ------------------------------------------------------------ shutdown

    async def drain(self, timeout: float = 5.0) -> None:
        """Finish analyses in flight (best effort) before shutdown."""
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)
