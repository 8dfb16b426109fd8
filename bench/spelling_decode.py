"""Which spelling score should decide a flag: the detection head or the candidate head?

    python bench/spelling_decode.py [--data ../shared/data/zh] [--model sentence_fp32]

Runs the shipped ONNX sentence model once over the spelling dev carve-out of train (the one
engines.train tunes thresholds on) and over the valid splits, then, for each score, tunes the
flag threshold for sentence-level correction F1 on dev and reports valid at that threshold:
  detect   spell_detect_prob (the detection head)
  change   1 - spell_cand_probs[..., 0] (the candidate head's probability of replacing the
           character; what engines.runtime flags on)
The suggestion is the best non-keep candidate either way. Prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from engines.jsonl import read_jsonl
from engines.metrics import sighan_scores
from engines.prepare import is_dev
from engines.runtime import OnnxModels, load_manifest, spelling_scores

SETS = ("csc_sighan", "csc_lemon_ecspell")
GRID = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995)


def usable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        r
        for r in records
        if isinstance(r.get("text"), str)
        and r.get("substitution_only", True)
        and len(r.get("correct", r["text"])) == len(r["text"])
    ]


def candidates(models: OnnxModels, texts: list[str]) -> list[list[tuple[int, str, float, float]]]:
    """Per text: (code-point offset, suggestion, detect score, change score) of every
    character that has confusion candidates."""
    out: list[list[tuple[int, str, float, float]]] = []
    for s in range(0, len(texts), 64):
        batch = models.sentence.encode(texts[s : s + 64])
        o = models.run_sentences(batch)
        det, ci = o["spell_detect_prob"], o["spell_cand_ids"]
        change, best = spelling_scores(o["spell_cand_probs"])
        for b in range(len(batch.texts)):
            rows = []
            for t, (start, _) in enumerate(batch.spans[b]):
                if not batch.is_char[b][t] or ci[b, t, 1] == 0:
                    continue
                piece = models.sentence.tokenizer.id_to_piece(int(ci[b, t, best[b, t]]))
                rows.append((start, piece, float(det[b, t]), float(change[b, t])))
            out.append(rows)
    return out


def correct_f1(gold: list[dict[int, str]], cands: list[Any], score: int, thr: float) -> float:
    pred = [{pos: sug for pos, sug, *sc in rows if sc[score] >= thr} for rows in cands]
    return float(sighan_scores(gold, pred)["correct_f1"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/zh"))
    ap.add_argument("--model", default="sentence_fp32", help="artifact key in the manifest")
    args = ap.parse_args()
    manifest = load_manifest()
    models = OnnxModels(
        manifest,
        threads=2,
        sentence_file=Path("engines") / manifest["artifacts"][args.model]["file"],
    )
    splits: dict[str, list[dict[str, Any]]] = {"dev": [], "valid": []}
    for name in SETS:
        splits["dev"] += [r for r in read_jsonl(args.data / name / "train.jsonl") if is_dev(r)]
        splits["valid"] += list(read_jsonl(args.data / name / "valid.jsonl"))
    result: dict[str, Any] = {"model": args.model}
    data = {}
    for split, records in splits.items():
        recs = usable(records)
        gold = [{int(e["pos"]): e["correct"] for e in r.get("errors") or []} for r in recs]
        data[split] = (gold, candidates(models, [r["text"] for r in recs]))
        result[f"n_{split}"] = len(recs)
    for score, name in ((0, "detect"), (1, "change")):
        dev = [correct_f1(*data["dev"], score, t) for t in GRID]
        thr = GRID[int(np.argmax(dev))]
        result[name] = {
            "threshold": thr,
            "dev_correct_f1": round(max(dev), 4),
            "valid_correct_f1": round(correct_f1(*data["valid"], score, thr), 4),
        }
        print(f"{name:7s} dev-tuned threshold {thr}: {result[name]}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
