"""The shipped models behind the scheduler, with the prediction cache shared by all documents.

Only sentences the cache has not seen go to the model; identical sentences
requested concurrently by several documents share one inference.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.backends import Backend, BackendUnavailable, create_backend
from server.cache import LRUCache
from server.config import Settings
from server.scheduler import InferenceScheduler, Timing

__all__ = ["InferenceReport", "ModelService"]

log = logging.getLogger("inkstone.models")


@dataclass(slots=True)
class InferenceReport:
    hits: int = 0
    misses: int = 0
    queued_ms: float = 0.0
    compute_ms: float = 0.0
    batch_size: int = 0

    def add(self, timing: Timing | None) -> None:
        if timing is not None:
            self.queued_ms = max(self.queued_ms, timing.queued_ms)
            self.compute_ms = max(self.compute_ms, timing.compute_ms)
            self.batch_size = max(self.batch_size, timing.batch_size)


def with_sentence_model(manifest: dict[str, Any], key: str) -> dict[str, Any]:
    """The manifest with another shipped sentence model file as the one to run."""
    choices = sorted(k for k in manifest["artifacts"] if k.startswith("sentence_"))
    if key not in choices:
        raise ValueError(f"unknown sentence model {key!r}; choose one of {', '.join(choices)}")
    return {**manifest, "sentence_model": {**manifest["sentence_model"], "model_file": key}}


def backend_options(settings: Settings, name: str, max_tokens: int) -> dict[str, Any]:
    """Constructor options for backend ``name`` from the settings."""
    if name == "torch":
        return {
            "device": settings.device,
            "precision": settings.precision,
            "graphs": settings.cuda_graphs,
            "max_batch": settings.max_batch_sentences,
            "max_tokens": max_tokens,
        }
    if name == "tensorrt":
        return {"engine_dir": settings.engine_cache, "max_batch": settings.max_batch_sentences}
    return {"threads": settings.threads}


def open_backend(
    settings: Settings, codec: Any, essay_file: Any
) -> tuple[Backend, dict[str, str] | None]:
    """The configured backend with both models loaded, or the fallback backend (with a
    warning and a note for /healthz) when it cannot run and ``fallback_backend`` is set."""

    def attempt(name: str) -> Backend:
        # GPU backends derive their precision from the FP32 graph, never from the INT8 file.
        sentence = codec.model_file if name == "onnxruntime" else codec.fp32_file
        backend = create_backend(name, **backend_options(settings, name, codec.max_tokens))
        backend.load({"sentence": sentence, "essay": essay_file})
        return backend

    try:
        return attempt(settings.backend), None
    except BackendUnavailable as exc:
        if not settings.fallback_backend or settings.fallback_backend == settings.backend:
            raise
        log.warning("%s; falling back to %s", exc, settings.fallback_backend)
        note = {"requested": settings.backend, "reason": str(exc)}
        return attempt(settings.fallback_backend), note


class ModelService:
    def __init__(self, settings: Settings, on_batch: Any = None) -> None:
        from engines.runtime import EssayCodec, SentenceCodec, load_manifest

        release = Path(settings.models_dir) / "manifest.json" if settings.models_dir else None
        self.manifest = load_manifest(release if release and release.exists() else None)
        if settings.sentence_model:
            self.manifest = with_sentence_model(self.manifest, settings.sentence_model)
        self.sentence_codec = SentenceCodec(self.manifest)
        self.essay_codec = EssayCodec(self.manifest)
        self.backend, self.fallback = open_backend(
            settings, self.sentence_codec, self.essay_codec.model_file
        )
        digest = hashlib.sha256(self.sentence_codec.model_file.read_bytes()).hexdigest()[:12]
        self.sentence_model = f"zh-sentence@{digest}"
        essay_digest = hashlib.sha256(self.essay_codec.model_file.read_bytes()).hexdigest()[:12]
        self.essay_model = f"zh-essay@{essay_digest}"
        self.cache: LRUCache[bytes, Any] = LRUCache(settings.cache_size)
        self._inflight: dict[bytes, asyncio.Future[tuple[Any, Timing]]] = {}
        self.scheduler = InferenceScheduler(
            self.backend,
            self._run_sentences,
            self._run_essay,
            queue_limit=settings.queue_limit,
            window_s=settings.batch_window_ms / 1000,
            max_batch=settings.max_batch_sentences,
            max_tokens=settings.max_batch_tokens,
            on_batch=on_batch,
        )
        self._warm_up()
        self.scheduler.start()

    def _warm_up(self) -> None:
        from engines.runtime import EssaySentence

        predictions = self._run_sentences(["今天天气很好。", "我们一起去公园散步，看见了许多花。"])
        self._run_essay(
            (
                [EssaySentence("今天天气很好。", 0, predictions[0].embedding)],
                "今天天气很好。",
            )
        )

    # ------------------------------------------------------------ worker-thread side

    def _run_sentences(self, texts: list[str]) -> list[Any]:
        batch = self.sentence_codec.encode(texts)
        outputs = self.backend.run("sentence", batch.feeds)
        return list(self.sentence_codec.decode(batch, outputs))

    def _run_essay(self, payload: tuple[Sequence[Any], str]) -> Any:
        sentences, text = payload
        feeds = self.essay_codec.encode(sentences, text)
        return self.essay_codec.decode(self.backend.run("essay", feeds))

    # ------------------------------------------------------------ event-loop side

    def key(self, text: str) -> bytes:
        """Cache key: the sentence model's digest and the text, so a prediction of one
        release is never served for another (reload-models swaps releases live)."""
        return hashlib.blake2b(
            self.sentence_model.encode() + b"\0" + text.encode(), digest_size=16
        ).digest()

    async def predict(
        self, texts: Sequence[str], transient: Collection[str] = (), level: int = 0
    ) -> tuple[dict[str, Any], InferenceReport]:
        """Predictions for ``texts`` (deduplicated); raises ``Overloaded`` before queueing any.

        ``transient`` texts (a sentence still being typed) are predicted but not cached:
        every keystroke makes a new one, and caching them would evict finished sentences.
        """
        report = InferenceReport()
        results: dict[str, Any] = {}
        waiting: dict[str, asyncio.Future[tuple[Any, Timing]]] = {}
        missing: list[tuple[str, bytes]] = []
        for text in dict.fromkeys(texts):
            key = self.key(text)
            cached = self.cache.get(key)
            if cached is not None:
                results[text] = cached
                report.hits += 1
            elif key in self._inflight:
                waiting[text] = self._inflight[key]
                report.hits += 1
            else:
                missing.append((text, key))
        if missing:
            report.misses += len(missing)
            futures = self.scheduler.submit_sentences(
                [(text, self.sentence_codec.count_tokens(text)) for text, _ in missing], level
            )
            for (text, key), future in zip(missing, futures, strict=True):
                self._inflight[key] = future
                future.add_done_callback(lambda _f, k=key: self._inflight.pop(k, None))
                waiting[text] = future
        for text, future in waiting.items():
            prediction, timing = await asyncio.shield(future)
            if text not in transient:
                self.cache.put(self.key(text), prediction)
            results[text] = prediction
            report.add(timing)
        return results, report

    async def score(self, sentences: Sequence[Any], text: str) -> tuple[Any, Timing]:
        return await self.scheduler.submit_essay((list(sentences), text))

    def describe(self) -> dict[str, Any]:
        backend = self.backend.describe()
        if self.fallback:
            backend["fallback"] = self.fallback
        return {
            "zh": {
                "sentence": self.sentence_model,
                "essay": self.essay_model,
                "backend": backend,
            },
            "en": None,  # no English model ships yet: English gets rule hints and stats only
        }

    def close(self) -> None:
        self.scheduler.close()
