"""The precision gate: a lower-precision path ships only if it agrees with FP32 on valid.

    python -m engines.release --compare onnx:engines/zh/sentence_int8.onnx
    python -m engines.release --compare gpu_fp16_predictions.json   # from bench/gpu.py

Both sides run the whole serving pipeline (codec → sentence model → essay model on the
sentence embeddings) over the valid sets and are compared on what a student sees:

* hint agreement: the share of valid sentences whose hints are identical (the 病句 flag, the
  flagged error types and every spelling flag with its suggestion);
* grade agreement: the share of (essay, trait) grades that are identical, coherence included;
* a two-sample Kolmogorov–Smirnov test on each trait's expected-score distribution.

The gate passes when both agreements are ≥ 99% and every K-S p-value is ≥ 0.05. A path is
a *runner* ``(model, feeds) -> outputs`` — onnxruntime here; the server's GPU backends
plug in the same way (bench/gpu.py), so engines/ imports nothing from server/.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engines.jsonl import read_jsonl
from engines.runtime import EssayCodec, EssaySentence, SentenceCodec

__all__ = [
    "GATE",
    "Predictions",
    "collect",
    "compare",
    "ks_2samp",
    "load_predictions",
    "onnx_runner",
    "valid_texts",
]

Runner = Callable[[str, dict[str, np.ndarray]], dict[str, np.ndarray]]
GATE = {"hint_agreement": 0.99, "grade_agreement": 0.99, "ks_p": 0.05}
SENTENCE_SETS = ("sent_fcgec", "sent_nacgec", "csc_sighan", "csc_lemon_ecspell")
ESSAY_SETS = ("essay_oe_traits", "essay_cedcc_coherence")


@dataclass(slots=True)
class Predictions:
    """What a student would see, per valid sentence and per valid essay."""

    label: str
    hints: list[str]  # one canonical string per sentence
    grades: dict[str, list[str]]  # trait (and "coherence") -> grade per essay
    scores: dict[str, list[float]]  # trait -> expected score per essay
    # The inputs ({"sentences": [...], "essays": [...]}), so a saved FP32 reference can be
    # replayed elsewhere (bench/gpu.py on a GPU machine without the data folder).
    texts: dict[str, list[str]] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), ensure_ascii=False), encoding="utf-8")


def load_predictions(path: Path) -> Predictions:
    return Predictions(**json.loads(path.read_text(encoding="utf-8")))


def valid_texts(data: Path, limit: int | None = None) -> tuple[list[str], list[str]]:
    """Valid sentences (病句 and spelling sets) and valid essays, in a fixed order."""
    sentences: list[str] = []
    for name in SENTENCE_SETS:
        rows = [r["text"] for r in read_jsonl(data / "zh" / name / "valid.jsonl")]
        sentences += [t for t in rows if isinstance(t, str)][:limit]
    essays: list[str] = []
    for name in ESSAY_SETS:
        rows = [r["text"] for r in read_jsonl(data / "zh" / name / "valid.jsonl")]
        essays += [t for t in rows if isinstance(t, str)][:limit]
    return sentences, essays


def onnx_runner(sentence_file: Path, essay_file: Path, threads: int = 1) -> Runner:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    cpu = ["CPUExecutionProvider"]
    sessions = {
        "sentence": ort.InferenceSession(str(sentence_file), opts, providers=cpu),
        "essay": ort.InferenceSession(str(essay_file), opts, providers=cpu),
    }

    def run(model: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        s = sessions[model]
        names = [o.name for o in s.get_outputs()]
        return dict(zip(names, s.run(None, feeds), strict=True))

    return run


def _hint(codec: SentenceCodec, pred: Any) -> str:
    types = sorted(t for t, p in pred.types.items() if p >= 0.5)
    faulty = pred.faulty_prob >= codec.faulty_threshold
    spelling = [(f.start, f.suggestion) for f in pred.spelling]
    return json.dumps([bool(faulty), types if faulty else [], spelling], ensure_ascii=False)


def _predict(run: Runner, codec: SentenceCodec, texts: Sequence[str], batch: int) -> list[Any]:
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[Any] = [None] * len(texts)
    for s in range(0, len(order), batch):
        idx = order[s : s + batch]
        encoded = codec.encode([texts[i] for i in idx])
        for i, p in zip(idx, codec.decode(encoded, run("sentence", encoded.feeds)), strict=True):
            out[i] = p
    return out


def collect(
    run: Runner,
    sentences: Sequence[str],
    essays: Sequence[str],
    label: str,
    manifest: dict[str, Any] | None = None,
    batch: int = 32,
) -> Predictions:
    """Run the serving pipeline with ``run`` over the texts."""
    from engines.segment import segment

    codec, essay_codec = SentenceCodec(manifest), EssayCodec(manifest)
    hints = [_hint(codec, p) for p in _predict(run, codec, sentences, batch)]
    grades: dict[str, list[str]] = {t: [] for t in (*essay_codec.traits, "coherence")}
    scores: dict[str, list[float]] = {t: [] for t in essay_codec.traits}
    for text in essays:
        segs = segment(text)
        preds = _predict(run, codec, [s.text for s in segs], batch)
        sents = [
            EssaySentence(s.text, s.paragraph, p.embedding)
            for s, p in zip(segs, preds, strict=True)
        ]
        result = essay_codec.decode(run("essay", essay_codec.encode(sents, text)))
        for trait, tp in result.traits.items():
            grades[trait].append(tp.grade)
            scores[trait].append(tp.score)
        grades["coherence"].append(str(result.coherence_grade))
    texts = {"sentences": list(sentences), "essays": list(essays)}
    return Predictions(label, hints, grades, scores, texts)


def ks_2samp(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov statistic D and its asymptotic p-value."""
    x, y = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        return 0.0, 1.0
    grid = np.concatenate([x, y])
    d = float(
        np.max(
            np.abs(np.searchsorted(x, grid, "right") / n - np.searchsorted(y, grid, "right") / m)
        )
    )
    en = math.sqrt(n * m / (n + m))
    lam = (en + 0.12 + 0.11 / en) * d
    if lam < 1e-3:
        return d, 1.0
    p = 2 * sum((-1) ** (j - 1) * math.exp(-2 * j * j * lam * lam) for j in range(1, 101))
    return d, float(min(1.0, max(0.0, p)))


def compare(reference: Predictions, candidate: Predictions) -> dict[str, Any]:
    """The three checks and the verdict; both sides must cover the same texts."""
    if len(reference.hints) != len(candidate.hints):
        raise ValueError("reference and candidate cover different sentences")
    hint = float(np.mean([a == b for a, b in zip(reference.hints, candidate.hints, strict=True)]))
    same = [
        a == b
        for trait in reference.grades
        for a, b in zip(reference.grades[trait], candidate.grades[trait], strict=True)
    ]
    grade = float(np.mean(same)) if same else 1.0
    ks = {}
    for trait in reference.scores:
        d, p = ks_2samp(reference.scores[trait], candidate.scores[trait])
        ks[trait] = {"D": round(d, 4), "p": round(p, 4)}
    passed = (
        hint >= GATE["hint_agreement"]
        and grade >= GATE["grade_agreement"]
        and all(v["p"] >= GATE["ks_p"] for v in ks.values())
    )
    return {
        "reference": reference.label,
        "candidate": candidate.label,
        "sentences": len(reference.hints),
        "essays": len(next(iter(reference.scores.values()), [])),
        "hint_agreement": round(hint, 4),
        "grade_agreement": round(grade, 4),
        "ks": ks,
        "gate": GATE,
        "passed": passed,
    }
