"""Evaluate the shipped ONNX models (onnxruntime, CPU) on a JSONL file in the shared-data format.

    python -m engines.evaluate --task zh-faulty --data ../shared/data/zh/sent_fcgec/valid.jsonl

Tasks: zh-faulty, zh-spelling, zh-essay, zh-coherence. Prints one JSON object on the last line
of stdout. Unknown fields are ignored; a malformed line is reported on stderr and skipped.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engines.jsonl import read_jsonl
from engines.metrics import auc, binary_scores, macro_f1_multilabel, pearson, qwk, sighan_scores
from engines.runtime import OnnxModels, load_manifest

__all__ = ["TASKS", "evaluate", "main"]

TASKS = ("zh-faulty", "zh-spelling", "zh-essay", "zh-coherence")
TRAIT_SOURCES = {
    "content": "topic",
    "structure": "structure",
    "logic": "logic",
    "language": "language",
    "overall": "overall",
}
GRADE_INDEX = {"Bad": 0, "Medium": 1, "Great": 2}


def eval_faulty(models: OnnxModels, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    records = [r for r in records if isinstance(r.get("text"), str) and "is_error" in r]
    preds = models.predict_sentences([r["text"] for r in records])
    y = np.array([bool(r["is_error"]) for r in records])
    p = np.array([pr.faulty_prob for pr in preds])
    codes = models.sentence.types
    m: dict[str, Any] = {"n": len(records)}
    m.update(binary_scores(y, p >= models.sentence.faulty_threshold))
    m["auc"] = auc(y, p)
    gold_t = np.array([[c in (r.get("error_types") or []) for c in codes] for r in records])
    pred_t = np.array([[pr.types[c] >= 0.5 for c in codes] for pr in preds])
    m["type_macro_f1"] = macro_f1_multilabel(gold_t[y], pred_t[y]) if y.any() else 0.0
    return m


def eval_spelling(models: OnnxModels, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """SIGHAN metrics over substitution-only records (others are counted as skipped)."""
    usable = [
        r
        for r in records
        if isinstance(r.get("text"), str)
        and r.get("substitution_only", True)
        and len(r.get("correct", r["text"])) == len(r["text"])
    ]
    preds = models.predict_sentences([r["text"] for r in usable])
    gold, pred = [], []
    for r, pr in zip(usable, preds, strict=True):
        gold.append(
            {
                int(e["pos"]): e["correct"]
                for e in r.get("errors") or []
                if e.get("op", "replace") == "replace"
            }
        )
        pred.append({f.start: f.suggestion or "" for f in pr.spelling})
    m: dict[str, Any] = {"n": len(usable), "skipped_not_substitution": len(records) - len(usable)}
    m.update(sighan_scores(gold, pred))
    return m


def eval_essay(models: OnnxModels, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    records = [
        r for r in records if isinstance(r.get("text"), str) and isinstance(r.get("traits"), dict)
    ]
    preds = [models.score_essay(r["text"]) for r in records]
    m: dict[str, Any] = {"n": len(records)}
    for trait, src in TRAIT_SOURCES.items():
        pairs = [
            (GRADE_INDEX[r["traits"][src]], GRADE_INDEX[p.traits[trait].grade])
            for r, p in zip(records, preds, strict=True)
            if r["traits"].get(src) in GRADE_INDEX
        ]
        m[f"qwk_{trait}"] = qwk([a for a, _ in pairs], [b for _, b in pairs], 3) if pairs else 0.0
    m["qwk_mean"] = float(np.mean([m[f"qwk_{t}"] for t in TRAIT_SOURCES]))
    return m


def eval_coherence(models: OnnxModels, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    records = [r for r in records if isinstance(r.get("text"), str) and "coherence_grade" in r]
    preds = [models.score_essay(r["text"]) for r in records]
    return {
        "n": len(records),
        "qwk": qwk(
            [int(r["coherence_grade"]) for r in records], [p.coherence_grade for p in preds], 3
        ),
        "pearson": pearson(
            np.array([float(r.get("coherence_score", 0.0)) for r in records]),
            np.array([p.coherence_score for p in preds]),
        ),
    }


EVALUATORS = {
    "zh-faulty": eval_faulty,
    "zh-spelling": eval_spelling,
    "zh-essay": eval_essay,
    "zh-coherence": eval_coherence,
}


def evaluate(task: str, data: Path, models: OnnxModels | None = None) -> dict[str, Any]:
    models = models or OnnxModels(load_manifest())
    result = EVALUATORS[task](models, list(read_jsonl(data)))
    result["task"] = task
    result["sentence_model_file"] = models.sentence_file.name
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", required=True, choices=TASKS)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--manifest", type=Path, default=None)
    ap.add_argument("--fp32", action="store_true", help="run the FP32 sentence model")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    manifest = load_manifest(args.manifest)
    models = OnnxModels(manifest, threads=args.threads)
    if args.fp32:
        models = OnnxModels(manifest, threads=args.threads, sentence_file=models.sentence.fp32_file)
    result = evaluate(args.task, args.data, models)
    # strict JSON: an undefined metric (e.g. AUC on a one-class file) is printed as null
    result = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in result.items()}
    print(json.dumps(result, ensure_ascii=False, allow_nan=False))


if __name__ == "__main__":
    main()
