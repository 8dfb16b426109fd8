"""Serving-side codecs for the shipped ONNX models (numpy, sentencepiece, onnxruntime, jieba).

The server owns the onnxruntime sessions and runs::

    batch = codec.encode(texts)
    outputs = dict(zip(output_names, session.run(None, batch.feeds)))
    predictions = codec.decode(batch, outputs)

:class:`OnnxModels` does the same for ``engines.evaluate`` and the tests. Never imports torch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.essay_features import essay_features, sentence_features
from engines.ordinal import apply_cuts, expected_grade
from engines.tokenizer import ZhTokenizer

__all__ = [
    "ARTIFACTS_DIR",
    "MANIFEST_FILE",
    "EncodedBatch",
    "EssayCodec",
    "EssayPrediction",
    "EssaySentence",
    "OnnxModels",
    "SentenceCodec",
    "SentencePrediction",
    "SpellingFlag",
    "TraitPrediction",
    "load_manifest",
    "spelling_scores",
]

ENGINES_DIR = Path(__file__).resolve().parent
ARTIFACTS_DIR = ENGINES_DIR / "zh"
MANIFEST_FILE = ENGINES_DIR / "manifest.json"
GRADES = ("Bad", "Medium", "Great")  # ordinal 0..2, the order of the essay model's outputs


def load_manifest(path: Path | None = None) -> dict[str, Any]:
    """The shipped manifest, or another release's (its artifacts beside it: ``_root``)."""
    manifest = dict(json.loads((path or MANIFEST_FILE).read_text(encoding="utf-8")))
    if path is not None:
        manifest["_root"] = str(path.resolve().parent)
    return manifest


def manifest_root(manifest: dict[str, Any]) -> Path:
    """The folder a manifest's artifact paths are relative to (engines/ when shipped)."""
    return Path(manifest.get("_root") or ENGINES_DIR)


def _artifact(manifest: dict[str, Any], key: str) -> Path:
    """Artifact paths in the manifest are relative to its folder (engines/ when shipped)."""
    return manifest_root(manifest) / manifest["artifacts"][key]["file"]


@dataclass(frozen=True, slots=True)
class SpellingFlag:
    start: int  # code-point offsets into the sentence text
    end: int
    wrong: str
    suggestion: str | None
    confidence: float


@dataclass(frozen=True, slots=True)
class SentencePrediction:
    faulty_prob: float
    types: dict[str, float]
    spelling: tuple[SpellingFlag, ...]
    embedding: np.ndarray  # float32 (D,)


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    feeds: dict[str, np.ndarray]  # input_ids, attention_mask: (B, T) int64
    texts: tuple[str, ...]
    spans: tuple[tuple[tuple[int, int], ...], ...]  # per text, per token: code-point span
    is_char: tuple[tuple[bool, ...], ...]  # per text, per token: a single CJK character


def spelling_scores(cand_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The spelling flag rule's inputs from `spell_cand_probs` (..., K), slot 0 = keep:
    the flag score, i.e. the candidate head's probability of replacing the character
    (1 - P(keep); on dev it separates errors far better than `spell_detect_prob`, see
    engines/README.md), and the slot of the best replacement (1..K-1), both (...)."""
    return 1.0 - cand_probs[..., 0], 1 + np.argmax(cand_probs[..., 1:], axis=-1)


class SentenceCodec:
    """Tokenisation and post-processing for the sentence model.

    Sentences longer than ``max_tokens`` tokens are truncated: the 病句 probability and the
    embedding see only the first ``max_tokens`` tokens and spelling flags cover only that part.
    """

    def __init__(self, manifest: dict[str, Any] | None = None) -> None:
        self.manifest = manifest if manifest is not None else load_manifest()
        sm = self.manifest["sentence_model"]
        self.tokenizer = ZhTokenizer(
            manifest_root(self.manifest) / self.manifest["tokenizer"]["file"]
        )
        self.fp32_file: Path = _artifact(self.manifest, "sentence_fp32")
        self.model_file: Path = _artifact(self.manifest, sm["model_file"])
        self.max_tokens: int = int(self.manifest["tokenizer"]["max_tokens"])
        self.types: tuple[str, ...] = tuple(sm["types"])
        self.spelling_threshold: float = float(sm["spelling_threshold"])
        self.faulty_threshold: float = float(sm["faulty_threshold"])
        self.output_names: tuple[str, ...] = tuple(sm["outputs"])

    def count_tokens(self, text: str) -> int:
        """Tokens the model will run for `text` (after truncation, at least 1)."""
        return max(1, min(len(self.tokenizer.encode(text).ids), self.max_tokens))

    def encode(self, texts: Sequence[str]) -> EncodedBatch:
        encs = [self.tokenizer.encode(t, self.max_tokens) for t in texts]
        T = max([len(e.ids) for e in encs] + [1])
        ids = np.zeros((len(encs), T), dtype=np.int64)
        mask = np.zeros((len(encs), T), dtype=np.int64)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        return EncodedBatch(
            feeds={"input_ids": ids, "attention_mask": mask},
            texts=tuple(texts),
            spans=tuple(tuple(e.spans) for e in encs),
            is_char=tuple(tuple(e.is_char) for e in encs),
        )

    def decode(
        self, batch: EncodedBatch, outputs: dict[str, np.ndarray]
    ) -> list[SentencePrediction]:
        faulty = outputs["faulty_prob"]  # (B,)
        types = outputs["type_probs"]  # (B, n_types)
        change, best = spelling_scores(outputs["spell_cand_probs"])  # (B, T) each
        cand_i = outputs["spell_cand_ids"]  # (B, T, K)
        emb = outputs["embedding"]  # (B, D)
        preds = []
        for b, text in enumerate(batch.texts):
            flags = []
            for t in np.nonzero(change[b, : len(batch.spans[b])] >= self.spelling_threshold)[0]:
                if not batch.is_char[b][t] or cand_i[b, t, 1] == 0:
                    continue  # not a character, or no candidate known for it
                start, end = batch.spans[b][t]
                suggestion = self.tokenizer.id_to_piece(int(cand_i[b, t, best[b, t]]))
                flags.append(
                    SpellingFlag(start, end, text[start:end], suggestion, float(change[b, t]))
                )
            preds.append(
                SentencePrediction(
                    faulty_prob=float(faulty[b]),
                    types={c: float(p) for c, p in zip(self.types, types[b], strict=True)},
                    spelling=tuple(flags),
                    embedding=np.asarray(emb[b], dtype=np.float32),
                )
            )
        return preds


@dataclass(frozen=True, slots=True)
class EssaySentence:
    text: str
    paragraph: int
    embedding: np.ndarray


@dataclass(frozen=True, slots=True)
class TraitPrediction:
    grade: str  # Great / Medium / Bad
    probs: dict[str, float]
    score: float  # expected value on 0..2 (Bad=0, Medium=1, Great=2)


@dataclass(frozen=True, slots=True)
class EssayPrediction:
    traits: dict[str, TraitPrediction]  # content, structure, logic, language, overall
    coherence_grade: int  # 0 incoherent, 1 moderate, 2 excellent
    coherence_probs: tuple[float, float, float]
    coherence_score: float  # 0..5


class EssayCodec:
    """Features for the essay model. Essays longer than ``max_sentences`` sentences are scored
    on their first ``max_sentences`` sentences (the whole-essay features see all the text)."""

    def __init__(self, manifest: dict[str, Any] | None = None) -> None:
        self.manifest = manifest if manifest is not None else load_manifest()
        em = self.manifest["essay_model"]
        self.model_file: Path = _artifact(self.manifest, "essay")
        self.traits: tuple[str, ...] = tuple(em["traits"])
        self.max_sentences: int = int(em["max_sentences"])
        self.embedding_dim: int = int(em["embedding_dim"])
        self.output_names: tuple[str, ...] = tuple(em["outputs"])
        # grades: the expected grade cut at these points (engines.ordinal)
        self.trait_cuts: tuple[tuple[float, ...], ...] = tuple(
            tuple(c) for c in em["decode"]["trait_cuts"]
        )
        self.coherence_cuts: tuple[float, ...] = tuple(em["decode"]["coherence_cuts"])

    def encode(self, sentences: Sequence[EssaySentence], text: str) -> dict[str, np.ndarray]:
        sents = list(sentences)
        ef = essay_features(text, [s.text for s in sents], [s.paragraph for s in sents])
        all_sf = sentence_features([len(s.text) for s in sents], [s.paragraph for s in sents])
        sents = sents[: self.max_sentences]
        S = max(len(sents), 1)
        emb = np.zeros((1, S, self.embedding_dim), np.float32)
        mask = np.zeros((1, S), np.int64)
        sf = np.zeros((1, S, all_sf.shape[1]), np.float32)
        if sents:
            emb[0, : len(sents)] = np.stack([s.embedding for s in sents])
            mask[0, : len(sents)] = 1
            sf[0, : len(sents)] = all_sf[: len(sents)]
        return {"sent_emb": emb, "sent_feats": sf, "sent_mask": mask, "essay_feats": ef[None]}

    def decode(self, outputs: dict[str, np.ndarray]) -> EssayPrediction:
        tp = outputs["trait_probs"][0]  # (n_traits, 3) in GRADES order
        traits = {}
        for t, (name, p) in enumerate(zip(self.traits, tp, strict=True)):
            score = float(expected_grade(p))
            traits[name] = TraitPrediction(
                grade=GRADES[int(apply_cuts(score, self.trait_cuts[t]))],
                probs={g: float(x) for g, x in zip(GRADES, p, strict=True)},
                score=score,
            )
        cp = outputs["coherence_probs"][0]
        return EssayPrediction(
            traits=traits,
            coherence_grade=int(apply_cuts(expected_grade(cp), self.coherence_cuts)),
            coherence_probs=(float(cp[0]), float(cp[1]), float(cp[2])),
            coherence_score=float(outputs["coherence_score"][0]),
        )


class OnnxModels:
    """onnxruntime CPU sessions for both models (used by engines.evaluate and the tests)."""

    def __init__(
        self,
        manifest: dict[str, Any] | None = None,
        threads: int = 1,
        sentence_file: Path | None = None,
    ) -> None:
        import onnxruntime as ort

        self.manifest = manifest if manifest is not None else load_manifest()
        self.sentence = SentenceCodec(self.manifest)
        self.essay = EssayCodec(self.manifest)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        cpu = ["CPUExecutionProvider"]
        self.sentence_file = Path(sentence_file or self.sentence.model_file)
        self.sentence_session = ort.InferenceSession(str(self.sentence_file), opts, providers=cpu)
        self.essay_session = ort.InferenceSession(str(self.essay.model_file), opts, providers=cpu)

    def run_sentences(self, batch: EncodedBatch) -> dict[str, np.ndarray]:
        names = [o.name for o in self.sentence_session.get_outputs()]
        return dict(zip(names, self.sentence_session.run(None, batch.feeds), strict=True))

    def predict_sentences(
        self, texts: Sequence[str], batch_size: int = 32
    ) -> list[SentencePrediction]:
        # Length-sorted batches waste less padding; results come back in input order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[SentencePrediction | None] = [None] * len(texts)
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            batch = self.sentence.encode([texts[i] for i in idx])
            for i, p in zip(
                idx, self.sentence.decode(batch, self.run_sentences(batch)), strict=True
            ):
                out[i] = p
        return [p for p in out if p is not None]

    def score_essay(self, text: str) -> EssayPrediction:
        from engines.segment import segment

        segs = segment(text)
        preds = self.predict_sentences([s.text for s in segs])
        sents = [
            EssaySentence(s.text, s.paragraph, p.embedding)
            for s, p in zip(segs, preds, strict=True)
        ]
        feeds = self.essay.encode(sents, text)
        names = [o.name for o in self.essay_session.get_outputs()]
        return self.essay.decode(dict(zip(names, self.essay_session.run(None, feeds), strict=True)))
