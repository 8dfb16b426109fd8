"""The core of the server, with no socket in sight: documents, edits, analysis, observers.

A connection (see :mod:`server.connection`) calls into :class:`Inkstone` with
decoded messages; Inkstone answers with messages and pushes others through
each peer's ``send``. The data path of one edit:

1. ``apply`` checks the base version, applies the changes atomically,
   commits them to SQLite, bumps the version and returns the ``ack``;
   observers get an ``update``.
2. The debouncer fires ``analyse`` after a quiet period (or a max wait).
3. ``analyse`` segments the text, reuses every unchanged sentence by id,
   asks the models only for new sentences (cache, then scheduler), builds
   hints, sends ``hints`` for the changed sentences, then re-scores the
   essay from cached embeddings and sends ``scores``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter
from typing import Any, Protocol

import orjson

from protocol import (
    Ack,
    Change,
    Edit,
    Error,
    ErrorCode,
    Hello,
    Hints,
    Limits,
    PeerError,
    Presence,
    Replace,
    Scores,
    Snapshot,
    Update,
    Welcome,
    apply_changes,
    to_wire,
)
from protocol.codec import decode_server
from protocol.positions import Encoding
from server.auth import Identity
from server.clock import Clock
from server.config import Settings
from server.debounce import Debouncer
from server.documents import Analysis, Document, SentenceState, to_wire_sentences
from server.hints import HintPolicy, hint_id, sentence_hints, sentence_id
from server.language import detect_lang
from server.metrics import Metrics
from server.scheduler import Overloaded
from server.scoring import build_scores
from server.segmenter import segment
from server.store import StorageError, Store

__all__ = ["Inkstone", "Peer"]

log = logging.getLogger("inkstone.service")
CLAUSE_ENDS = (";", ":", ",", "；", "：", "，")
# A last sentence not ending like this is still being typed (its prediction is not cached).
SENTENCE_ENDS = tuple("。！？；…!?.;”’」』\"')）")


class Peer(Protocol):
    """What the service needs from a connection."""

    identity: Identity
    encoding: Encoding
    doc: Document | None
    observing_docs: set[str]
    observing_classes: set[str]
    full_hints_due: bool  # the next hints message must carry every sentence

    def send(self, message: Any) -> None: ...


def diff_change(old: str, new: str) -> tuple[int, int, str]:
    """The single change (code points) that turns ``old`` into ``new``."""
    limit = min(len(old), len(new))
    prefix = 0
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    return prefix, len(old) - suffix, new[prefix : len(new) - suffix]


class Inkstone:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        models: Any | None,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.store = store
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
        self.limits = Limits(
            max_message_bytes=settings.max_message_bytes,
            max_document_chars=settings.max_document_chars,
            max_messages_per_second=settings.max_messages_per_second,
            max_changes_per_edit=settings.max_changes_per_edit,
            burst=settings.rate_burst,
        )

    # ------------------------------------------------------------ documents

    def _load(self, doc_id: str) -> Document | None:
        doc = self.documents.get(doc_id)
        if doc is not None:
            return doc
        stored = self.store.load(doc_id)
        if stored is None:
            return None
        doc = Document(
            stored.id,
            stored.owner,
            stored.class_id,
            stored.lang,
            stored.text,
            stored.version,
            dismissed=stored.dismissed,
        )
        if stored.analysis is not None:
            doc.analysis = Analysis.from_json(stored.analysis, stored.scores)
            doc.scores = stored.scores
        self.documents[doc_id] = doc
        self.metrics.documents.set(len(self.documents))
        if doc.analysis is None or doc.analysis.version != doc.version:
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
        ):
            self.documents.pop(doc.id, None)
            self.metrics.documents.set(len(self.documents))

    def welcome(self, peer: Peer, hello: Hello, doc: Document | None) -> Welcome:
        return Welcome(
            session=secrets.token_urlsafe(12),
            doc=None if doc is None else doc.id,
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
            id=hello.id,
        )

    def open_student(self, peer: Peer, hello: Hello) -> Welcome:
        if hello.doc is None or not hello.doc.strip():
            raise PeerError(ErrorCode.BAD_MESSAGE, "a student hello needs 'doc'")
        me = peer.identity
        if hello.resume is not None:
            owner = self.store.session_owner(hello.resume.session)
            if owner is not None and (owner[1] != me.user or owner[0] != hello.doc):
                raise PeerError(ErrorCode.FORBIDDEN, "that session belongs to someone else")
        doc = self._load(hello.doc)
        if doc is None:
            try:
                self.store.create(hello.doc, me.user, me.class_id, hello.lang)
            except StorageError as exc:
                raise PeerError(
                    ErrorCode.STORAGE, f"could not create the document: {exc}"
                ) from None
            doc = Document(hello.doc, me.user, me.class_id, hello.lang, "", 0)
            self.documents[doc.id] = doc
            self.metrics.documents.set(len(self.documents))
            self._notify_class_new_doc(doc)
        elif doc.owner != me.user:
            raise PeerError(ErrorCode.FORBIDDEN, "students may open only their own documents")
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
        return welcome

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
            return
        peer.send(
            Hints(
                version=a.version,
                sentences=to_wire_sentences(a, a.sentences, peer.encoding, doc.dismissed),
                doc=doc.id,
            )
        )
        if doc.scores is not None:
            peer.send(self._scores_message(doc.scores))

    # ------------------------------------------------------------ edits

    def apply(self, peer: Peer, message: Edit | Replace) -> Ack:
        doc = peer.doc
        if doc is None:
            raise PeerError(ErrorCode.NO_SESSION, "no document is open")
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
            op = "edit"
            payload = orjson.dumps([[a.start, a.end, a.text] for a in applied])
        else:
            if len(message.text) > self.settings.max_document_chars:
                raise PeerError(
                    ErrorCode.DOC_TOO_LARGE,
                    f"the text has {len(message.text)} characters; "
                    f"the limit is {self.settings.max_document_chars}",
                )
            text, op, payload = message.text, "replace", message.text.encode()
            # observers mirror a replace as the one change that turns the old text into the new
            _, applied = apply_changes(doc.text, [Change(*diff_change(doc.text, text))], "utf-32")
        version = doc.version + 1
        try:
            self.store.append(doc.id, version, op, payload, text)
        except StorageError as exc:
            raise PeerError(
                ErrorCode.STORAGE,
                f"the edit could not be stored and was not applied: {exc}",
                version=doc.version,
                retry_after_ms=1000,
            ) from None
        doc.text, doc.version = text, version
        now = self.clock.now()
        doc.last_edit_at = now
        if doc.first_unanalysed_at is None:
            doc.first_unanalysed_at = now
        self.metrics.edits.inc()
        doc.debounce_due = self.debouncer.touch(doc.id)
        if doc.presence != "online":
            self._set_presence(doc, "online")
        for other in self._audience(doc, exclude=peer):
            changes = tuple(a.as_change(other.encoding) for a in applied)
            other.send(Update(doc=doc.id, version=version, changes=changes, student=doc.owner))
        return Ack(version=version, id=message.id, doc=doc.id)

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
        doc.dismissed.add(hint)
        self._broadcast_hints(doc, doc.analysis, [owner], [], None)

    # ------------------------------------------------------------ observers

    def _audience(self, doc: Document, exclude: Peer | None = None) -> list[Peer]:
        peers: list[Peer] = [p for p in doc.editors if p is not exclude]
        peers.extend(self.doc_observers.get(doc.id, ()))
        peers.extend(self.class_observers.get(doc.class_id, ()))
        return peers

    def _snapshot(self, doc: Document, peer: Peer, msg_id: Any = None) -> list[Any]:
        a = doc.analysis
        if a is None:
            return [
                Snapshot(
                    doc=doc.id,
                    student=doc.owner,
                    version=doc.version,
                    text=doc.text,
                    hints=(),
                    scores=None,
                    presence=doc.presence,  # type: ignore[arg-type]
                    lang=doc.lang,
                    id=msg_id,
                )
            ]
        out: list[Any] = [
            Snapshot(
                doc=doc.id,
                student=doc.owner,
                version=a.version,
                text=a.text,
                hints=to_wire_sentences(a, a.sentences, peer.encoding, doc.dismissed),
                scores=None if doc.scores is None else self._scores_message(doc.scores),
                presence=doc.presence,  # type: ignore[arg-type]
                lang=a.lang,
                id=msg_id,
            )
        ]
        if a.version != doc.version:
            start, end, inserted = diff_change(a.text, doc.text)
            _, applied = apply_changes(a.text, [Change(start, end, inserted)], "utf-32")
            out.append(
                Update(
                    doc=doc.id,
                    version=doc.version,
                    changes=(applied[0].as_change(peer.encoding),),
                    student=doc.owner,
                )
            )
        return out

    def observe(self, peer: Peer, doc_id: str | None, class_id: str | None, msg_id: Any) -> None:
        me = peer.identity
        if class_id is not None:
            if class_id != me.class_id:
                raise PeerError(ErrorCode.FORBIDDEN, "teachers may observe only their own class")
            self.class_observers.setdefault(class_id, set()).add(peer)
            peer.observing_classes.add(class_id)
            docs = [d for d, _ in self.store.docs_in_class(class_id)]
            for d in docs:
                doc = self._load(d)
                if doc is not None:
                    for m in self._snapshot(doc, peer, msg_id):
                        peer.send(m)
            return
        assert doc_id is not None
        doc = self._load(doc_id)
        if doc is None:
            raise PeerError(ErrorCode.NOT_FOUND, f"no document {doc_id!r}")
        if doc.class_id != me.class_id:
            self._maybe_evict(doc)
            raise PeerError(ErrorCode.FORBIDDEN, "that document belongs to another class")
        self.doc_observers.setdefault(doc.id, set()).add(peer)
        peer.observing_docs.add(doc.id)
        for m in self._snapshot(doc, peer, msg_id):
            peer.send(m)

    def unobserve(self, peer: Peer, doc_id: str | None, class_id: str | None) -> None:
        if doc_id is not None:
            self.doc_observers.get(doc_id, set()).discard(peer)
            peer.observing_docs.discard(doc_id)
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
        message = Presence(doc=doc.id, student=doc.owner, state=state)  # type: ignore[arg-type]
        for peer in self.doc_observers.get(doc.id, ()):
            peer.send(message)
        for peer in self.class_observers.get(doc.class_id, ()):
            peer.send(message)

    def sweep_idle(self) -> None:
        """Mark documents idle when their students stopped typing for a while."""
        now = self.clock.now()
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

    # ------------------------------------------------------------ analysis

    def _on_debounce(self, doc_id: str) -> None:
        doc = self.documents.get(doc_id)
        if doc is None:
            return
        if doc.analysing:
            doc.dirty = True
            return
        self.spawn(self.analyse(doc))

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def resolve_lang(self, doc: Document, text: str) -> str:
        return doc.lang if doc.lang in ("zh", "en") else detect_lang(text)

    async def analyse(self, doc: Document) -> None:
        doc.analysing = True
        try:
            await self._analyse(doc)
        except Exception:
            log.exception("analysis of %s failed", doc.id)
        finally:
            doc.analysing = False
            if doc.dirty:
                doc.dirty = False
                self.spawn(self.analyse(doc))
            else:
                self._maybe_evict(doc)

    async def _analyse(self, doc: Document) -> None:
        started = self.clock.now()
        due, doc.debounce_due = doc.debounce_due, None
        version, text = doc.version, doc.text
        edit_at, doc.first_unanalysed_at = doc.first_unanalysed_at, None
        lang = self.resolve_lang(doc, text)
        previous = {s.id: s for s in doc.analysis.sentences} if doc.analysis else {}
        segments = segment(text)
        seen: Counter[str] = Counter()
        ids = []
        for seg in segments:
            ids.append(sentence_id(seg.text, seen[seg.text]))
            seen[seg.text] += 1
        use_model = self.models is not None and lang == "zh"
        need = [
            seg.text
            for seg, sid in zip(segments, ids, strict=True)
            if use_model and (sid not in previous or previous[sid].embedding is None)
        ]
        predictions: dict[str, Any] = {}
        timing: dict[str, float] = {}
        if need:
            try:
                last = segments[-1].text
                transient = () if last.endswith(SENTENCE_ENDS) else (last,)
                predictions, report = await self.models.predict(need, transient)  # type: ignore[union-attr]
            except Overloaded as exc:
                self._overloaded(doc, exc, edit_at)
                return
            timing.update(queue_ms=report.queued_ms, inference_ms=report.compute_ms)
            self.metrics.cache_hits.inc(report.hits)
            self.metrics.cache_misses.inc(report.misses)
            self.metrics.cache_hit_rate.set(self.models.cache.hit_rate)  # type: ignore[union-attr]
        last_of_paragraph = {seg.paragraph: i for i, seg in enumerate(segments)}
        states: list[SentenceState] = []
        changed: list[SentenceState] = []
        for i, (seg, sid) in enumerate(zip(segments, ids, strict=True)):
            after_clause = (
                i > 0
                and segments[i - 1].paragraph == seg.paragraph
                and segments[i - 1]
                .text.rstrip("\"'”’)")
                .endswith((";", ":", ",", "；", "：", "，"))
            )
            context = (last_of_paragraph[seg.paragraph] == i, i == len(segments) - 1, after_clause)
            old = previous.get(sid)
            prediction = predictions.get(seg.text)
            embedding = prediction.embedding if prediction is not None else None
            if old is not None and old.context == context:
                delta = seg.start - old.start
                state = SentenceState(
                    sid,
                    seg.start,
                    seg.end,
                    seg.text,
                    seg.paragraph,
                    context,
                    tuple((hid, h.shifted(delta)) for hid, h in old.hints),
                    old.embedding if embedding is None else embedding,
                )
            else:
                drafts = sentence_hints(
                    seg.text,
                    seg.start,
                    lang,
                    prediction,
                    policy=self.policy,
                    model=getattr(self.models, "sentence_model", ""),
                    is_last_in_paragraph=context[0],
                    is_last_in_text=context[1],
                    after_clause=after_clause,
                )
                state = SentenceState(
                    sid,
                    seg.start,
                    seg.end,
                    seg.text,
                    seg.paragraph,
                    context,
                    tuple((hint_id(sid, h, h.start - seg.start), h) for h in drafts),
                    embedding if embedding is not None else (old.embedding if old else None),
                )
                changed.append(state)
            states.append(state)
        current = {s.id for s in states}
        removed = [sid for sid in previous if sid not in current]
        analysis = Analysis(version, text, lang, states)
        doc.analysis = analysis
        now = self.clock.now()
        timing["analysis_ms"] = round((now - started) * 1000, 3)
        if due is not None:  # how late the debounce callback ran (event loop busy)
            timing["debounce_lag_ms"] = round(max(0.0, started - due) * 1000, 3)
        if edit_at is not None:
            timing["since_edit_ms"] = round((now - edit_at) * 1000, 3)
            self.metrics.edit_to_hints.observe(now - edit_at)
        self.metrics.analysis.observe(now - started)
        self._broadcast_hints(doc, analysis, changed, removed, timing)
        self._request_score(doc)

    # ------------------------------------------------------------ essay scores

    def _request_score(self, doc: Document) -> None:
        """Score the latest analysis now, or when the per-document interval allows."""
        if doc.scoring or doc.score_timer is not None:
            doc.score_dirty = True
            return
        due = doc.last_scored_at + self.settings.score_interval_ms / 1000
        if self.clock.now() >= due:
            self.spawn(self._score_latest(doc))
            return

        def fire() -> None:
            doc.score_timer = None
            self.spawn(self._score_latest(doc))

        doc.score_timer = self.clock.call_at(due, fire)

    async def _score_latest(self, doc: Document) -> None:
        doc.scoring, doc.score_dirty = True, False
        try:
            analysis = doc.analysis
            if analysis is not None and analysis.scores is None:
                await self._score(doc, analysis)
        except Overloaded:
            doc.score_dirty = True  # try again after the interval
        except Exception:
            log.exception("scoring %s failed", doc.id)
        finally:
            doc.scoring = False
            doc.last_scored_at = self.clock.now()
            if doc.score_dirty:
                self._request_score(doc)
            else:
                self._maybe_evict(doc)

    async def _score(self, doc: Document, analysis: Analysis) -> None:
        prediction = None
        use_model = self.models is not None and analysis.lang == "zh"
        essay_model = getattr(self.models, "essay_model", "")
        if use_model and analysis.sentences:
            from engines.runtime import EssaySentence

            sentences = [
                EssaySentence(s.text, s.paragraph, s.embedding)
                for s in analysis.sentences
                if s.embedding is not None
            ]
            if sentences:
                prediction, _ = await self.models.score(sentences, analysis.text)  # type: ignore[union-attr]
        scores = build_scores(
            doc=doc.id,
            version=analysis.version,
            text=analysis.text,
            sentences=len(analysis.sentences),
            paragraphs=[s.paragraph for s in analysis.sentences],
            lang=analysis.lang,
            prediction=prediction,
            model=essay_model,
        )
        analysis.scores = doc.scores = to_wire(scores)
        for peer in self._audience(doc):
            peer.send(scores)
        try:
            self.store.save_analysis(doc.id, analysis.version, analysis.to_json(), doc.scores)
        except StorageError:
            log.warning("could not store the analysis of %s", doc.id)

    def _scores_message(self, wire: dict[str, Any]) -> Scores:
        message = decode_server(orjson.dumps(wire))
        assert isinstance(message, Scores)
        return message

    def _broadcast_hints(
        self,
        doc: Document,
        analysis: Analysis,
        changed: list[SentenceState],
        removed: list[str],
        timing: dict[str, float] | None,
    ) -> None:
        by_encoding: dict[str, Hints] = {}
        for peer in self._audience(doc):
            if peer.full_hints_due:
                peer.full_hints_due = False
                peer.send(
                    Hints(
                        version=analysis.version,
                        sentences=to_wire_sentences(
                            analysis, analysis.sentences, peer.encoding, doc.dismissed
                        ),
                        removed=tuple(removed),
                        doc=doc.id,
                        timing=timing,
                    )
                )
                continue
            message = by_encoding.get(peer.encoding)
            if message is None:
                message = by_encoding[peer.encoding] = Hints(
                    version=analysis.version,
                    sentences=to_wire_sentences(analysis, changed, peer.encoding, doc.dismissed),
                    removed=tuple(removed),
                    doc=doc.id,
                    timing=timing,
                )
            peer.send(message)

    def _overloaded(self, doc: Document, exc: Overloaded, edit_at: float | None) -> None:
        if doc.first_unanalysed_at is None:
            doc.first_unanalysed_at = edit_at
        error = Error(
            code=ErrorCode.OVERLOADED,
            message="the analysis queue is full; feedback for this draft is delayed",
            retry_after_ms=exc.retry_after_ms,
            doc=doc.id,
            version=doc.version,
        )
        self.metrics.errors.labels(code="overloaded").inc()
        for peer in doc.editors:
            peer.send(error)
        retry_at = self.clock.now() + exc.retry_after_ms / 1000
        self.clock.call_at(retry_at, lambda: self.debouncer.touch(doc.id))

    # ------------------------------------------------------------ shutdown

    async def drain(self, timeout: float = 5.0) -> None:
        """Finish analyses in flight (best effort) before shutdown."""
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)
