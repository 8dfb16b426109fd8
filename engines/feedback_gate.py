"""The release gate of a feedback fine-tune (see :mod:`engines.feedback`): valid metrics of
the new sentence model against the released one, unchanged embeddings, and the INT8 copy's
precision checked with the two-sample Kolmogorov–Smirnov statistic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engines.jsonl import read_jsonl
from engines.runtime import OnnxModels

__all__ = ["HEADLINE", "fixed", "gate", "ks_statistic"]

HEADLINE = {
    "csc_sighan": ("detect_f1", "correct_f1", "char_detect_f1"),
    "csc_lemon_ecspell": ("detect_f1", "correct_f1", "char_detect_f1"),
    "sent_fcgec": ("auc", "f1", "mcc", "accuracy"),
    "sent_nacgec": ("auc", "f1", "mcc", "accuracy"),
}


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov–Smirnov statistic: the largest gap between the two ECDFs."""
    a, b = np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64))
    grid = np.concatenate([a, b])
    gap = np.abs(
        np.searchsorted(a, grid, side="right") / len(a)
        - np.searchsorted(b, grid, side="right") / len(b)
    )
    return float(gap.max()) if len(grid) else 0.0


def _valid_metrics(models: OnnxModels, data: Path, limit: int) -> dict[str, dict[str, float]]:
    from engines.evaluate import eval_faulty, eval_spelling

    out = {}
    for ds in HEADLINE:
        records = list(read_jsonl(data / "zh" / ds / "valid.jsonl"))[:limit]
        run = eval_spelling if ds.startswith("csc") else eval_faulty
        out[ds] = {
            k: float(v) for k, v in run(models, records).items() if isinstance(v, (int, float))
        }
    return out


def gate(
    old: OnnxModels,
    new: OnnxModels,
    int8: OnnxModels,
    data: Path,
    limit: int,
    tolerance: float,
    ks_max: float,
) -> dict[str, Any]:
    before, after = _valid_metrics(old, data, limit), _valid_metrics(new, data, limit)
    drops = {
        f"{ds}.{k}": round(before[ds][k] - after[ds][k], 4)
        for ds, keys in HEADLINE.items()
        for k in keys
        if np.isfinite(before[ds][k]) and np.isfinite(after[ds][k])  # AUC of one class: NaN
    }
    texts = [
        r["text"] for r in list(read_jsonl(data / "zh" / "csc_sighan" / "valid.jsonl"))[:limit]
    ]
    batch = new.sentence.encode(texts[:64])
    a, b = old.run_sentences(batch), new.run_sentences(batch)
    embedding_gap = float(np.abs(a["embedding"] - b["embedding"]).max())
    fp32_scores, int8_scores = _flag_scores(new, texts), _flag_scores(int8, texts)
    ks = ks_statistic(fp32_scores, int8_scores)
    worst = max(drops.values())
    return {
        "valid_limit": limit,
        "tolerance": tolerance,
        "before": before,
        "after": after,
        "drops": drops,
        "worst_drop": worst,
        "embedding_max_abs_diff": embedding_gap,
        "int8_ks": round(ks, 4),
        "int8_ks_max": ks_max,
        "int8_default": ks < ks_max,
        "passed": worst <= tolerance and embedding_gap < 1e-4,
    }


def _flag_scores(models: OnnxModels, texts: list[str]) -> np.ndarray:
    from engines.runtime import spelling_scores

    out = []
    for s in range(0, len(texts), 32):
        batch = models.sentence.encode(texts[s : s + 32])
        change, _ = spelling_scores(models.run_sentences(batch)["spell_cand_probs"])
        out.append(change[batch.feeds["attention_mask"].astype(bool)])
    return np.concatenate(out) if out else np.zeros(0)


def fixed(models: OnnxModels, feedback: Path) -> dict[str, int]:
    """How many feedback spelling records the model now gets as the teacher said."""
    records = list(read_jsonl(feedback / "csc.jsonl")) if (feedback / "csc.jsonl").exists() else []
    preds = models.predict_sentences([r["text"] for r in records]) if records else []
    right = 0
    for r, p in zip(records, preds, strict=True):
        want = {int(e["pos"]): e["correct"] for e in r.get("errors") or []}
        right += {f.start: f.suggestion for f in p.spelling} == want
    return {"records": len(records), "as_teacher_said": right}
