"""Release (CPU): checkpoint -> ONNX FP32 + INT8 -> verified -> evaluated on valid -> manifest.

    python -m engines.release --ckpt .runs/full/ckpt.pt --pack .pack --data ../shared/data
    python -m engines.release --essay-only .runs/essay/essay.pt --data ../shared/data

The INT8 sentence model becomes the default (`sentence_model.model_file`) only if no
headline valid metric is more than 1 point (0.01) worse than with FP32.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from engines.runtime import ENGINES_DIR, MANIFEST_FILE, OnnxModels

__all__ = ["release", "release_essay"]

SNAPSHOT_FILE = ENGINES_DIR.parent / "tests" / "fixtures" / "engines_snapshot.json"
SNAPSHOT_TEXTS = (
    "我们在老师的带领下参观了博物馆，收获很大。",
    "通过这次活动，使我们明白了团结的重要性。",
    "他的成绩在班里名列前矛，大家都很佩服他。",
    "今天天气很好",
    "Hello world, 这是一个 mixed 句子 2024 年。",
    "𠀀字很罕见。",
)
VALID_SETS = (
    ("zh-faulty", "sent_fcgec"),
    ("zh-faulty", "sent_nacgec"),
    ("zh-spelling", "csc_sighan"),
    ("zh-spelling", "csc_lemon_ecspell"),
    ("zh-essay", "essay_oe_traits"),
    ("zh-coherence", "essay_cedcc_coherence"),
)
HEADLINE = {
    "zh-faulty": ("auc", "mcc", "f1", "accuracy"),
    "zh-spelling": ("detect_f1", "correct_f1", "char_detect_f1"),
    "zh-essay": ("qwk_mean",),
    "zh-coherence": ("qwk", "pearson"),
}
DATASETS = (
    "unlabeled_student_essays",
    "corpus_modern",
    "sent_fcgec",
    "sent_nacgec",
    "csc_sighan",
    "csc_lemon_ecspell",
    "essay_oe_traits",
    "essay_cedcc_coherence",
)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def io_spec(path: Path) -> dict[str, list[dict[str, Any]]]:
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph
    init = {i.name for i in g.initializer}

    def one(v: Any) -> dict[str, Any]:
        t = v.type.tensor_type
        return {
            "name": v.name,
            "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
            "shape": [d.dim_param or d.dim_value for d in t.shape.dim],
        }

    return {
        "inputs": [one(v) for v in g.input if v.name not in init],
        "outputs": [one(v) for v in g.output],
    }


def artifact(path: Path) -> dict[str, Any]:
    entry = {
        "file": str(path.relative_to(ENGINES_DIR)),
        "sha256": sha256(path),
        "size": path.stat().st_size,
    }
    if path.suffix == ".onnx":
        entry.update(io_spec(path))
        entry["opset"] = 17
    return entry


def count_records(data: Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for name in DATASETS:
        folder = data / "zh" / name
        for f in sorted(folder.glob("*.jsonl*")):
            split = f.name.split(".")[0]
            opener = __import__("gzip").open if f.suffix == ".gz" else open
            with opener(f, "rt", encoding="utf-8") as fh:
                out.setdefault(name, {})[split] = sum(1 for line in fh if line.strip())
    return out


def baselines(data: Path) -> dict[str, Any]:
    """Trivial baselines on the valid splits: majority class / predicting the train mean."""
    from engines.jsonl import read_jsonl
    from engines.metrics import binary_scores, qwk

    out: dict[str, Any] = {}
    for name in ("sent_fcgec", "sent_nacgec"):
        y = np.array([r["is_error"] for r in read_jsonl(data / "zh" / name / "valid.jsonl")], bool)
        b = binary_scores(y, np.ones_like(y))
        out[name] = {"rule": "all faulty", **b, "auc": 0.5}
    for name in ("csc_sighan", "csc_lemon_ecspell"):
        out[name] = {
            "rule": "flag nothing",
            "detect_f1": 0.0,
            "correct_f1": 0.0,
            "char_detect_f1": 0.0,
        }
    oe = list(read_jsonl(data / "zh/essay_oe_traits/valid.jsonl"))
    g = {"Bad": 0, "Medium": 1, "Great": 2}
    out["essay_oe_traits"] = {
        "rule": "majority grade (Medium) for every trait",
        "qwk_mean": 0.0,
        "accuracy_overall": float(
            np.mean([r["traits"]["overall"] == "Medium" for r in oe if r.get("traits")])
        ),
    }
    tr = list(read_jsonl(data / "zh/essay_cedcc_coherence/train.jsonl"))
    va = list(read_jsonl(data / "zh/essay_cedcc_coherence/valid.jsonl"))
    major = int(np.bincount([r["coherence_grade"] for r in tr]).argmax())
    mean = float(np.mean([r["coherence_score"] for r in tr]))
    out["essay_cedcc_coherence"] = {
        "rule": f"majority grade ({major}) / train-mean score ({mean:.2f})",
        "qwk": qwk([r["coherence_grade"] for r in va], [major] * len(va), 3),
        "pearson": 0.0,
        "score_rmse": float(np.sqrt(np.mean([(r["coherence_score"] - mean) ** 2 for r in va]))),
    }
    del g
    return out


def snapshot(models: OnnxModels) -> dict[str, Any]:
    batch = models.sentence.encode(list(SNAPSHOT_TEXTS))
    out = models.run_sentences(batch)
    return {
        "texts": list(SNAPSHOT_TEXTS),
        "model_file": models.sentence_file.name,
        "input_ids": batch.feeds["input_ids"].tolist(),
        "outputs": {
            k: np.asarray(v).tolist()
            for k, v in out.items()
            if k in ("faulty_prob", "type_probs", "spell_detect_prob", "embedding")
        },
    }


def release(
    ckpt_file: Path, pack: Path, data: Path, extra_metrics: Path | None = None
) -> dict[str, Any]:
    import torch

    from engines.evaluate import evaluate
    from engines.export import (
        export_essay,
        export_sentence,
        load_models,
        quantize_int8,
        verify_sentence,
    )
    from engines.segment import SEGMENTER_NAME

    sm, em, ckpt = load_models(ckpt_file)
    if em is None:
        raise SystemExit(f"{ckpt_file} has no essay model: run `engines.train --stage essay` first")
    zh = ENGINES_DIR / "zh"
    zh.mkdir(exist_ok=True)
    shutil.copy(pack / "tokenizer.model", zh / "tokenizer.model")
    fp32, int8, essay = zh / "sentence_fp32.onnx", zh / "sentence_int8.onnx", zh / "essay.onnx"
    export_sentence(sm, fp32)
    tolerance = 1e-4
    max_diff = verify_sentence(sm, fp32, atol=tolerance)
    quantize_int8(fp32, int8)
    export_essay(em, essay)
    pack_meta = json.loads((pack / "pack.json").read_text())
    res = ckpt["results"]
    manifest: dict[str, Any] = {
        "schema": 1,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "language": "zh",
        "tokenizer": {
            **artifact(zh / "tokenizer.model"),
            "kind": "sentencepiece unigram, byte fallback; "
            "one piece per CJK character (user-defined), sub-words for non-CJK runs (zh+en)",
            "vocab_size": pack_meta["vocab_size"],
            "max_tokens": pack_meta["max_len"],
            "pad_id": 0,
            "mask_id": 4,
            "truncation": "sentences are cut to max_tokens tokens",
        },
        "artifacts": {
            "sentence_fp32": artifact(fp32),
            "sentence_int8": artifact(int8),
            "essay": artifact(essay),
        },
        "sentence_model": {
            "model_file": "sentence_fp32",
            "outputs": [o["name"] for o in io_spec(fp32)["outputs"]],
            "types": list(pack_meta["types"]),
            "type_names_zh": {
                "IWO": "语序不当",
                "IWC": "搭配不当",
                "CM": "成分残缺",
                "CR": "成分赘余",
                "SC": "结构混乱",
                "ILL": "不合逻辑",
                "AM": "表意不明",
            },
            "faulty_threshold": res["sentence"]["faulty_threshold"],
            "spelling_threshold": res["sentence"]["spelling_threshold"],
            "spelling_score": "1 - spell_cand_probs[..., 0]: the candidate head's probability "
            "of replacing the character (slot 0 = keep); a character is flagged at "
            "spelling_threshold or above and the best other candidate is the suggestion",
            "spelling_candidates": "per character, a choice among n_cand confusion-set "
            "candidates (slot 0 = keep): spelling pairs mined from the train splits, similar "
            "shape (pycorrector same_stroke), same pinyin (pycorrector same_pinyin, pypinyin)",
            "config": ckpt["sentence_cfg"],
            "onnx_vs_pytorch_max_abs_diff": max_diff,
            "onnx_tolerance": tolerance,
        },
        "essay_model": {
            "traits": [t for t, _ in pack_meta["traits"]],
            "trait_sources": {t: s for t, s in pack_meta["traits"]},
            "grades": list(pack_meta["grades"]),
            "max_sentences": res["hparams"]["max_sentences"],
            "embedding_dim": ckpt["sentence_cfg"]["d_model"],
            "outputs": [o["name"] for o in io_spec(essay)["outputs"]],
            "segmenter": SEGMENTER_NAME,
            "config": ckpt["essay_cfg"],
            "decode": {
                **res["essay"]["decode"],
                "rule": "grade = number of cut points <= expected grade (sum of g * p_g); "
                "cut points tuned for QWK on out-of-fold predictions of the K-fold ensemble",
            },
        },
        "training": {
            "hyperparameters": res["hparams"],
            "device": res.get("gpu", res["device"]),
            "train_seconds": round(res["train_seconds"], 1),
            "data_records": count_records(data),
            "pack_shapes": pack_meta["shapes"],
            "dev_split": "6% of train (by split_group) for thresholds; essays: 5 folds, "
            "each member's epoch and the grade cut points from out-of-fold predictions",
        },
        "metrics": {
            "torch_training_run": {
                k: res[k] for k in ("sentence", "no_pretrain", "essay") if k in res
            }
        },
    }
    MANIFEST_FILE.write_text(json.dumps(manifest, indent=1, ensure_ascii=False))

    valid: dict[str, Any] = {"fp32": {}, "int8": {}}
    for variant, path in (("fp32", fp32), ("int8", int8)):
        models = OnnxModels(manifest, threads=2, sentence_file=path)
        for task, name in VALID_SETS:
            f = data / "zh" / name / "valid.jsonl"
            valid[variant][name] = evaluate(task, f, models)
            print(variant, name, json.dumps(valid[variant][name]), flush=True)
    # "Within 1 point" is about lost quality: a metric INT8 improves does not count against it.
    worst = max(
        valid["fp32"][n][k] - valid["int8"][n][k] for t, n in VALID_SETS for k in HEADLINE[t]
    )
    int8_ok = worst <= 0.01
    manifest["sentence_model"]["model_file"] = "sentence_int8" if int8_ok else "sentence_fp32"
    manifest["sentence_model"]["int8_qualified"] = int8_ok
    manifest["sentence_model"]["int8_max_metric_drop"] = worst
    manifest["metrics"]["valid"] = valid
    manifest["metrics"]["baselines_valid"] = baselines(data)
    if extra_metrics is not None:  # e.g. the pre-training ablation of an earlier run
        manifest["metrics"].update(json.loads(extra_metrics.read_text()))
    MANIFEST_FILE.write_text(json.dumps(manifest, indent=1, ensure_ascii=False))

    models = OnnxModels(manifest, threads=1)
    SNAPSHOT_FILE.parent.mkdir(parents=True, exist_ok=True)
    snaps = {
        "fp32": snapshot(OnnxModels(manifest, sentence_file=fp32)),
        "default": snapshot(models),
    }
    SNAPSHOT_FILE.write_text(json.dumps(snaps))
    del torch
    return manifest


def release_essay(essay_ckpt: Path, data: Path) -> dict[str, Any]:
    """Ship a new essay model on top of the shipped sentence model (whose embeddings it was
    trained on, see bench/essay_ablation.py): export, verify against PyTorch, evaluate on the
    essay valid sets with the FP32 and INT8 sentence files, update the manifest (essay
    artifact, config, cut points, metrics) and re-apply the INT8 rule."""
    import torch

    from engines.evaluate import evaluate
    from engines.export import export_essay
    from engines.model import EssayConfig, EssayEnsemble, EssayModel

    ckpt = torch.load(essay_ckpt, map_location="cpu", weights_only=False)
    cfg = EssayConfig(**ckpt["essay_cfg"])
    es = ckpt["essay_state"]
    n = int(ckpt["essay_members"])
    em: EssayModel | EssayEnsemble
    if n == 1:
        em = EssayModel(cfg, es["feat_mean"], es["feat_std"])
    else:
        mean, std = es["members.0.feat_mean"], es["members.0.feat_std"]
        em = EssayEnsemble([EssayModel(cfg, mean, std) for _ in range(n)])
    em.load_state_dict(es)
    em.eval()
    essay = ENGINES_DIR / "zh" / "essay.onnx"
    export_essay(em, essay)
    max_diff = verify_essay(em, essay)
    res = ckpt["results"]
    manifest = json.loads(MANIFEST_FILE.read_text())
    manifest["artifacts"]["essay"] = artifact(essay)
    manifest["essay_model"]["config"] = ckpt["essay_cfg"]
    manifest["essay_model"]["onnx_vs_pytorch_max_abs_diff"] = max_diff
    manifest["essay_model"]["decode"] = {
        **res["essay"]["decode"],
        "rule": manifest["essay_model"]["decode"]["rule"],
    }
    hp = manifest["training"]["hyperparameters"]
    hp.update(res["essay_hparams"])
    manifest["metrics"]["torch_training_run"]["essay"] = res["essay"]
    valid = manifest["metrics"]["valid"]
    art = manifest["artifacts"]
    for variant in ("fp32", "int8"):
        models = OnnxModels(  # one thread: a shared CPU makes thread pools spin
            manifest, threads=1, sentence_file=ENGINES_DIR / art[f"sentence_{variant}"]["file"]
        )
        for task, name in VALID_SETS:
            if task in ("zh-essay", "zh-coherence"):
                f = data / "zh" / name / "valid.jsonl"
                valid[variant][name] = evaluate(task, f, models)
                print(variant, name, json.dumps(valid[variant][name]), flush=True)
    worst = max(
        valid["fp32"][n_][k] - valid["int8"][n_][k] for t, n_ in VALID_SETS for k in HEADLINE[t]
    )
    sm = manifest["sentence_model"]
    sm["int8_qualified"] = worst <= 0.01
    sm["int8_max_metric_drop"] = worst
    sm["model_file"] = "sentence_int8" if worst <= 0.01 else "sentence_fp32"
    manifest["created_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    MANIFEST_FILE.write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    return manifest


def verify_essay(em: Any, path: Path, atol: float = 1e-4) -> dict[str, float]:
    """Essay ONNX vs PyTorch on random inputs at a few shapes; raises beyond `atol`."""
    import onnxruntime as ort
    import torch

    from engines.model import ESSAY_OUTPUTS

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(0)
    c = em.cfg
    worst = dict.fromkeys(ESSAY_OUTPUTS, 0.0)
    for B, S in ((1, 1), (1, 30), (3, 7), (2, 96)):
        x = (
            torch.randn(B, S, c.d_in, generator=g) * 0.3,
            torch.rand(B, S, c.n_sent_feats, generator=g),
            torch.ones(B, S, dtype=torch.int64),
            torch.randn(B, c.n_essay_feats, generator=g),
        )
        if B > 1:
            x[2][-1, S // 2 + 1 :] = 0
        with torch.no_grad():
            ref = [r.numpy() for r in em(*x)]
        names = ("sent_emb", "sent_feats", "sent_mask", "essay_feats")
        got = sess.run(None, {n: t.numpy() for n, t in zip(names, x, strict=True)})
        for n, r, o in zip(ESSAY_OUTPUTS, ref, got, strict=True):
            worst[n] = max(worst[n], float(np.abs(r.astype(np.float64) - o).max()))
    bad = {k: v for k, v in worst.items() if v > atol}
    if bad:
        raise AssertionError(f"essay ONNX differs from PyTorch beyond {atol}: {bad}")
    return worst


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", type=Path, default=Path(".runs/full/ckpt.pt"))
    ap.add_argument("--pack", type=Path, default=Path(".pack"))
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument(
        "--extra-metrics", type=Path, default=None, help="JSON object merged into manifest.metrics"
    )
    ap.add_argument(
        "--compare",
        default=None,
        help="precision gate instead of a release: onnx:FILE (a sentence ONNX run with "
        "onnxruntime) or a predictions JSON (bench/gpu.py); compared with --reference",
    )
    ap.add_argument("--reference", default="onnx:fp32", help="onnx:fp32 (default) or a JSON")
    ap.add_argument("--limit", type=int, default=None, help="first N records per valid set")
    ap.add_argument("--save", type=Path, default=None, help="write the candidate's predictions")
    ap.add_argument(
        "--essay-only",
        type=Path,
        default=None,
        metavar="ESSAY_CKPT",
        help="ship only a new essay model (bench/essay_ablation.py --save) on the shipped "
        "sentence model",
    )
    args = ap.parse_args(argv)
    if args.compare:
        raise SystemExit(compare_main(args))
    if args.essay_only is not None:
        release_essay(args.essay_only, args.data)
    else:
        release(args.ckpt, args.pack, args.data, args.extra_metrics)


def compare_main(args: argparse.Namespace) -> int:
    """The precision gate (engines.precision); exit status 0 only if it passes."""
    from engines.precision import collect, compare, load_predictions, onnx_runner, valid_texts
    from engines.runtime import EssayCodec, SentenceCodec, load_manifest

    manifest = load_manifest()
    sentences, essays = valid_texts(args.data, args.limit)

    def predictions(spec: str) -> Any:
        if not spec.startswith("onnx:"):
            return load_predictions(Path(spec))
        target = spec.removeprefix("onnx:")
        file = SentenceCodec(manifest).fp32_file if target == "fp32" else Path(target)
        run = onnx_runner(file, EssayCodec(manifest).model_file)
        return collect(run, sentences, essays, f"onnxruntime {file.name}", manifest)

    candidate = predictions(args.compare)
    if args.save:
        candidate.save(args.save)
    reference = candidate if args.reference == args.compare else predictions(args.reference)
    report = compare(reference, candidate)
    print(json.dumps(report, ensure_ascii=False))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    main()
