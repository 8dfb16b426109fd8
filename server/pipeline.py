"""The analysis pipeline: debounced documents → segments → hints → scores.

:class:`Pipeline` is the part of :class:`server.service.Inkstone` that turns a document's
text into hints and scores. ``_on_debounce`` submits the document to the fair gate
(:mod:`server.fairgate`); ``analyse`` segments the text, reuses every unchanged sentence
by id, asks the models only for new sentences (cache, then scheduler, at the owner's
priority level; at most ``max_model_sentences_per_analysis`` per analysis), builds hints
(capped per sentence and per document, :mod:`server.hintcaps`), sends ``hints`` for the
changed sentences, then re-scores the essay from cached embeddings (at most every
``score_interval_ms``) and sends ``scores``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from engines.language import detect_lang
from engines.segment import segment
from protocol import Error, ErrorCode, to_wire
from server.documents import Analysis, Document, SentenceState
from server.hintcaps import cap_sentence
from server.hints import hint_id, sentence_hints, sentence_id
from server.scheduler import Overloaded
from server.scoring import build_scores
from server.store import StorageError

if TYPE_CHECKING:
    from server.config import Settings
    from server.debounce import Debouncer
    from server.fairgate import FairGate
    from server.hints import HintPolicy
    from server.metrics import Metrics

__all__ = ["Pipeline"]

log = logging.getLogger("inkstone.service")
CLAUSE_ENDS = (";", ":", ",", "；", "：", "，")
# A last sentence not ending like this is still being typed (its prediction is not cached).
SENTENCE_ENDS = tuple("。！？；…!?.;”’」』\"')）")


class Pipeline:
    """Analysis and scoring (mixed into the service)."""

    settings: Settings
    documents: dict[str, Document]
    models: Any
    metrics: Metrics
    policy: HintPolicy
    debouncer: Debouncer[str]
    gate: FairGate
    tasks: set[asyncio.Task[None]]

    def _on_debounce(self, doc_id: str) -> None:
        doc = self.documents.get(doc_id)
        if doc is None:
            return
        if doc.analysing:
            doc.dirty = True
            return
        self._submit_analysis(doc)

    @staticmethod
    def _cost(doc: Document) -> float:
        """What analysing or scoring ``doc`` costs, for the fair gate (≈ its size)."""
        return 1.0 + len(doc.text) / 1000

    def _submit_analysis(self, doc: Document) -> None:
        doc.analysing = True  # from now until it ran (queued or running)
        self.gate.run((doc.class_id, doc.owner), self._cost(doc), lambda: self.analyse(doc))

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
            if doc.dirty:
                doc.dirty = False
                self._submit_analysis(doc)
            else:
                doc.analysing = False
                self._maybe_evict(doc)

    async def _analyse(self, doc: Document) -> None:
        started = self.clock.now()
        due, doc.debounce_due = doc.debounce_due, None
        version, text = doc.version, doc.text
        edit_at, doc.first_unanalysed_at = doc.first_unanalysed_at, None
        lang = self.resolve_lang(doc, text)
        # the models of this analysis, to its end (a reload swaps self.models meanwhile)
        models = self.models
        model_id = getattr(models, "sentence_model", "")
        # an analysis by other models (before a reload) is not reused sentence by sentence
        reuse = doc.analysis is not None and doc.analysis.model == model_id
        previous = {s.id: s for s in doc.analysis.sentences} if doc.analysis and reuse else {}
        segments = segment(text)
        seen: Counter[str] = Counter()
        ids = []
        for seg in segments:
            ids.append(sentence_id(seg.text, seen[seg.text]))
            seen[seg.text] += 1
        use_model = models is not None and lang == "zh"
        need = [
            seg.text
            for seg, sid in zip(segments, ids, strict=True)
            if use_model and (sid not in previous or previous[sid].embedding is None)
        ]
        if len(need) > self.settings.max_model_sentences_per_analysis:
            # a huge new text: the model sees it in slices, one per analysis, so it
            # cannot hold the inference queue (the rest get rule hints meanwhile)
            need = need[: self.settings.max_model_sentences_per_analysis]
            doc.dirty = True
        predictions: dict[str, Any] = {}
        timing: dict[str, float] = {}
        if need:
            try:
                last = segments[-1].text
                transient = () if last.endswith(SENTENCE_ENDS) else (last,)
                level = self.gate.level((doc.class_id, doc.owner))
                predictions, report = await models.predict(need, transient, level)  # type: ignore[union-attr]
            except Overloaded as exc:
                self._overloaded(doc, exc, edit_at)
                return
            timing.update(queue_ms=report.queued_ms, inference_ms=report.compute_ms)
            self.metrics.cache_hits.inc(report.hits)
            self.metrics.cache_misses.inc(report.misses)
            self.metrics.cache_hit_rate.set(models.cache.hit_rate)  # type: ignore[union-attr]
        last_of_paragraph = {seg.paragraph: i for i, seg in enumerate(segments)}
        states: list[SentenceState] = []
        changed: list[SentenceState] = []
        for i, (seg, sid) in enumerate(zip(segments, ids, strict=True)):
            after_clause = (
                i > 0
                and segments[i - 1].paragraph == seg.paragraph
                and segments[i - 1].text.rstrip("\"'”’)").endswith(CLAUSE_ENDS)
            )
            context = (last_of_paragraph[seg.paragraph] == i, i == len(segments) - 1, after_clause)
            old = previous.get(sid)
            prediction = predictions.get(seg.text)
            embedding = prediction.embedding if prediction is not None else None
            if (
                old is not None
                and old.context == context
                and (old.embedding is not None or prediction is None)
            ):
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
                if len(changed) % 32 == 31:
                    await asyncio.sleep(0)  # a huge new text: let sockets be served meanwhile
                drafts = sentence_hints(
                    seg.text,
                    seg.start,
                    lang,
                    prediction,
                    policy=self.policy,
                    model=model_id,
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
                    cap_sentence(
                        sid,
                        [(hint_id(sid, h, h.start - seg.start), h) for h in drafts],
                        lang,
                        seg.start,
                        per_sentence=self.settings.max_hints_per_sentence,
                        per_code=self.settings.max_hints_per_code,
                    ),
                    embedding if embedding is not None else (old.embedding if old else None),
                )
                changed.append(state)
            states.append(state)
        budgets = {sid: (old.shown, old.overflow) for sid, old in previous.items()}
        changed += self._rebudget(doc, states, budgets, {s.id for s in changed})
        current = {s.id for s in states}
        removed = [sid for sid in previous if sid not in current]
        if not reuse and doc.analysis is not None:
            removed = [s.id for s in doc.analysis.sentences if s.id not in current]
        analysis = Analysis(version, text, lang, states, model=model_id)
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
        self.bus.hints(doc, analysis, changed, removed, timing)
        self._request_score(doc)

    # ------------------------------------------------------------ essay scores

    def _request_score(self, doc: Document) -> None:
        """Score the latest analysis now, or when the per-document interval allows."""
        if doc.scoring or doc.score_timer is not None:
            doc.score_dirty = True
            return
        due = doc.last_scored_at + self.settings.score_interval_ms / 1000
        if self.clock.now() >= due:
            self._submit_scoring(doc)
            return

        def fire() -> None:
            doc.score_timer = None
            self._submit_scoring(doc)

        doc.score_timer = self.clock.call_at(due, fire)

    def _submit_scoring(self, doc: Document) -> None:
        doc.scoring = True  # queued or running
        self.gate.run((doc.class_id, doc.owner), self._cost(doc), lambda: self._score_latest(doc))

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
        models = self.models
        use_model = models is not None and analysis.lang == "zh"
        essay_model = getattr(models, "essay_model", "")
        if use_model and analysis.sentences:
            from engines.runtime import EssaySentence

            sentences = [
                EssaySentence(s.text, s.paragraph, s.embedding)
                for s in analysis.sentences
                if s.embedding is not None
            ]
            if sentences:
                prediction, _ = await models.score(sentences, analysis.text)  # type: ignore[union-attr]
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
        self._send_scores(doc, scores, self._audience(doc))
        self.bus.scores(doc, doc.scores)
        try:
            self.store.save_analysis(doc.id, analysis.version, analysis.to_json(), doc.scores)
        except StorageError:
            log.warning("could not store the analysis of %s", doc.id)
        self.reviews.on_scored(doc)

    def _overloaded(self, doc: Document, exc: Overloaded, edit_at: float | None) -> None:
        if doc.first_unanalysed_at is None:
            doc.first_unanalysed_at = edit_at
        error = Error(
            code=ErrorCode.OVERLOADED,
            message="the analysis queue is full; feedback for this draft is delayed",
            retry_after_ms=exc.retry_after_ms,
            doc=doc.name,
            version=doc.version,
        )
        self.metrics.errors.labels(code="overloaded").inc()
        for peer in doc.editors:
            peer.send(error)
        retry_at = self.clock.now() + exc.retry_after_ms / 1000
        self.clock.call_at(retry_at, lambda: self.debouncer.touch(doc.id))

    # ------------------------------------------------------------ model releases
