"""How often a model hint is right, by confidence threshold, on the valid splits.

Serving thresholds (server/hints.py HintPolicy) are chosen from this table:
students' drafts hold fewer errors than the benchmark sets, so the server favours
precision. Run: python bench/hint_precision.py [--data ../shared/data/zh]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from engines.runtime import OnnxModels
from engines.segment import segment

THRESHOLDS = (0.5, 0.65, 0.8, 0.85, 0.9, 0.95)
# the spelling score (1 - P(keep)) sits near 1 for flagged characters, so its grid is finer there
SPELLING_THRESHOLDS = (0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995)


def spelling(models: OnnxModels, path: Path) -> None:
    records = [json.loads(line) for line in path.open(encoding="utf-8")]
    records = [r for r in records if r.get("substitution_only", True)]
    models.sentence.spelling_threshold = min(SPELLING_THRESHOLDS)
    predictions = models.predict_sentences([r["text"] for r in records])
    rows = []
    for record, prediction in zip(records, predictions, strict=True):
        gold = {e["pos"]: e["correct"] for e in record["errors"]}
        for flag in prediction.spelling:
            rows.append(
                (flag.confidence, flag.start in gold, gold.get(flag.start) == flag.suggestion)
            )
    table = np.array(rows, dtype=float).reshape(-1, 3)
    errors = sum(len(r["errors"]) for r in records)
    print(f"\n{path.parent.name} valid: {len(records)} sentences, {errors} wrong characters")
    print("| threshold | flags | flag is an error | suggestion is the fix | errors found |")
    print("|---:|---:|---:|---:|---:|")
    for t in SPELLING_THRESHOLDS:
        sel = table[:, 0] >= t
        if sel.any():
            print(
                f"| {t} | {int(sel.sum())} | {table[sel, 1].mean():.3f} | "
                f"{table[sel, 2].mean():.3f} | {table[sel, 1].sum() / errors:.3f} |"
            )


def faulty(models: OnnxModels, path: Path) -> None:
    records = [json.loads(line) for line in path.open(encoding="utf-8")]
    texts = [r["text"] for r in records] + [c for r in records for c in r["corrections"][:1]]
    labels = np.array([r["is_error"] for r in records] + [0] * (len(texts) - len(records)))
    probs = np.array([p.faulty_prob for p in models.predict_sentences(texts)])
    print(
        f"\n{path.parent.name} valid + first corrections: {len(texts)} sentences, "
        f"{labels.mean():.2f} faulty"
    )
    print("| threshold | flagged share | precision |")
    print("|---:|---:|---:|")
    for t in THRESHOLDS:
        sel = probs >= t
        if sel.any():
            print(f"| {t} | {sel.mean():.3f} | {labels[sel].mean():.3f} |")


def essays(models: OnnxModels, path: Path, limit: int = 30) -> None:
    texts = [json.loads(line)["text"] for line in path.open(encoding="utf-8")][:limit]
    sentences = [s.text for t in texts for s in segment(t)]
    models.sentence.spelling_threshold = min(SPELLING_THRESHOLDS)
    predictions = models.predict_sentences(sentences)
    print(
        f"\nstudent essays ({path.parent.name}, {limit} essays, {len(sentences)} sentences): "
        "hints per 100 sentences"
    )
    print("| spelling threshold | misspelling flags |")
    print("|---:|---:|")
    for t in SPELLING_THRESHOLDS:
        spell = sum(sum(f.confidence >= t for f in p.spelling) for p in predictions)
        print(f"| {t} | {100 * spell / len(sentences):.1f} |")
    print("| 病句 threshold | 病句 flags |")
    print("|---:|---:|")
    for t in THRESHOLDS:
        bad = sum(p.faulty_prob >= t for p in predictions)
        print(f"| {t} | {100 * bad / len(sentences):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/zh"
    )
    args = parser.parse_args()
    models = OnnxModels()
    spelling(models, args.data / "csc_sighan/valid.jsonl")
    spelling(models, args.data / "csc_lemon_ecspell/valid.jsonl")
    faulty(models, args.data / "sent_fcgec/valid.jsonl")
    essays(models, args.data / "essay_oe_traits/valid.jsonl")


if __name__ == "__main__":
    main()
