"""Fine-tune the released sentence model on teachers' feedback, on a CPU, then gate it.

    python -m engines.train --feedback DIR [--out .runs/feedback] [--install DIR]

DIR is what ``inkstone export-feedback`` wrote (csc.jsonl, faulty.jsonl, essay.jsonl).
Reads top to bottom: the released weights (rebuilt in torch from the shipped ONNX file,
checked to reproduce it), the data (the feedback records, repeated, mixed with a sample of
the original training records of ../shared/data), one loop, export, the release gate,
the manifest.

What is fine-tuned: the spelling-candidate head (``cand_query``, ``cand_slot_bias``) and
the 病句 head (``faulty_head``) over the frozen encoder. Only these can be trained from the
release alone — its encoder is the product of a GPU pre-training run whose optimiser
state is not shipped — and a few hundred CPU steps over cached encoder states take
seconds. A frozen encoder also keeps every sentence embedding bit-identical, so the essay
model (which reads only those embeddings) and every essay score are unchanged by
construction; teachers' score corrections are exported (essay.jsonl) and counted in the
manifest but not trained on here.

The gate (:func:`gate`): on the valid splits (the first ``valid_limit`` records of each,
the same records for both models) no headline metric of the new model may be more than
``tolerance`` (default 0.01, one point) below the released model's; the embeddings must
match; the INT8 copy becomes the default only if the two-sample Kolmogorov–Smirnov
statistic between its flag scores and FP32's on those records is below ``ks_max`` (it is
kept FP32 otherwise). Only a release that passes is installed; its manifest records the
feedback set's sha256 digest and size, the parent release, and the gate's numbers.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from engines.feedback_essay import essay_step
from engines.feedback_gate import fixed, gate
from engines.jsonl import read_jsonl
from engines.runtime import OnnxModels, load_manifest, manifest_root

__all__ = ["feedback_digest", "load_released", "run_feedback"]

FILES = ("csc.jsonl", "faulty.jsonl", "essay.jsonl")


def feedback_digest(folder: Path) -> tuple[str, dict[str, int]]:
    """sha256 over the three files (name, NUL, bytes) and their record counts."""
    digest, counts = hashlib.sha256(), {}
    for name in FILES:
        body = (folder / name).read_bytes() if (folder / name).exists() else b""
        digest.update(name.encode() + b"\0" + body)
        counts[name] = body.count(b"\n")
    return digest.hexdigest(), counts


# ----------------------------------------------------------------------------- released weights


def load_released(manifest: dict[str, Any]) -> Any:
    """The released sentence model as a torch ``SentenceModel``, rebuilt from its FP32 ONNX
    file: named initializers load by name; the weights constant folding renamed
    (``onnx::MatMul_N``, stored transposed) load in graph order, checked by shape."""
    import onnx
    import torch
    from onnx import numpy_helper

    from engines.model import EncoderConfig, SentenceModel

    path = manifest_root(manifest) / manifest["artifacts"]["sentence_fp32"]["file"]
    graph = onnx.load(str(path)).graph
    named = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    hp = manifest["training"]["hyperparameters"]
    vocab, d_model = named["tok_emb.weight"].shape
    n_layer = 1 + max(int(m.group(1)) for k in named if (m := re.match(r"blocks\.(\d+)\.", k)))
    cfg = EncoderConfig(
        vocab_size=vocab,
        max_len=named["pos_emb.weight"].shape[0],
        n_layer=n_layer,
        n_head=int(hp["n_head"]),
        d_model=d_model,
        d_ff=named["blocks.0.mlp.0.bias"].shape[0],
        dropout=0.0,
        n_types=named["faulty_head.2.bias"].shape[0] - 1,
        n_cand=named["cand_slot_bias"].shape[0],
    )
    model = SentenceModel(cfg, torch.from_numpy(named["confusion"].astype(np.int64)))
    state = {k: torch.from_numpy(v.copy()) for k, v in named.items() if not k.startswith("onnx::")}
    folded = sorted(
        (k for k in named if k.startswith("onnx::MatMul_")), key=lambda k: int(k.rsplit("_", 1)[1])
    )
    targets = [
        f"blocks.{i}.{part}.weight"
        for i in range(n_layer)
        for part in ("attn.qkv", "attn.proj", "mlp.0", "mlp.2")
    ] + ["detect_head.weight", "cand_query.weight"]
    if len(folded) != len(targets):
        raise ValueError(f"{path}: {len(folded)} folded weights, expected {len(targets)}")
    params = dict(model.named_parameters())
    for name, target in zip(folded, targets, strict=True):
        weight = torch.from_numpy(named[name].T.copy())
        if weight.shape != params[target].shape:
            raise ValueError(f"{name} {tuple(weight.shape)} does not fit {target}")
        state[target] = weight
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"ged_head.weight", "ged_head.bias", "mlm_bias"}:
        raise ValueError(f"released weights do not fit: missing {missing}, extra {unexpected}")
    return model.eval()


# ----------------------------------------------------------------------------- data


def _rows(models: OnnxModels, records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Token ids with labels: spelling (token → candidate slot, -1 = unlabelled) or 病句."""
    tok, confusion = models.sentence.tokenizer, None
    out = []
    for r in records:
        limit = models.sentence.max_tokens if r.get("_weight", 1.0) > 1.0 else 64
        enc = tok.encode(r["text"], limit)
        row: dict[str, Any] = {"ids": list(enc.ids), "kind": kind, "weight": r.get("_weight", 1.0)}
        if kind == "csc":
            if confusion is None:
                confusion = _confusion(models)
            errors = {int(e["pos"]): e["correct"] for e in r.get("errors") or []}
            slots = []
            for t, ((s, e), is_char) in enumerate(zip(enc.spans, enc.is_char, strict=True)):
                if not is_char or e - s != 1:
                    slots.append(-1)
                    continue
                want = errors.get(s)
                if want is None:
                    slots.append(0)  # keep the character
                    continue
                cands = confusion[enc.ids[t]]
                hit = np.nonzero(cands == tok.piece_to_id(want))[0]
                slots.append(int(hit[0]) if len(hit) and hit[0] > 0 else -1)
            row["slots"] = slots
        else:
            row["faulty"] = float(r.get("is_error", 0))
            row["types"] = [float(c in (r.get("error_types") or [])) for c in models.sentence.types]
        out.append(row)
    return out


def _confusion(models: OnnxModels) -> np.ndarray:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(models.sentence.fp32_file)).graph
    return next(numpy_helper.to_array(i) for i in graph.initializer if i.name == "confusion")


def _mix(
    feedback: Path, data: Path, repeat: int, originals: int, seed: int
) -> dict[str, list[dict[str, Any]]]:
    """Feedback records (each ``repeat`` times) with ``originals`` original train records."""
    rng = np.random.default_rng(seed)
    mixed: dict[str, list[dict[str, Any]]] = {"csc": [], "faulty": []}
    sources = {
        "csc": ("csc.jsonl", ("csc_sighan", "csc_lemon_ecspell")),
        "faulty": ("faulty.jsonl", ("sent_fcgec", "sent_nacgec")),
    }
    for kind, (name, sets) in sources.items():
        fb = list(read_jsonl(feedback / name)) if (feedback / name).exists() else []
        mixed[kind] += [dict(r, _weight=float(repeat)) for r in fb]
        for ds in sets:
            path = data / "zh" / ds / "train.jsonl"
            if not path.exists() or not fb:
                continue
            train = [r for r in read_jsonl(path) if r.get("substitution_only", True)]
            pick = rng.choice(len(train), size=min(originals, len(train)), replace=False)
            mixed[kind] += [train[i] for i in pick]
    return mixed


# ----------------------------------------------------------------------------- one loop


def finetune(
    model: Any, rows: list[dict[str, Any]], steps: int, lr: float, seed: int
) -> list[float]:
    """Train the candidate and 病句 heads over cached (frozen) encoder states.

    Each step takes half its characters (and sentences) from the feedback, on the
    teachers' labels, and half from the original records, distilled from the released
    heads (their probabilities are the targets), so the model moves where teachers said
    and as little as possible elsewhere. Only the sampled characters' candidate scores
    are computed: (B_chars, K, C), not (B, T, K, C)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    for p in model.parameters():
        p.requires_grad_(False)
    heads = [model.cand_query.weight, model.cand_query.bias, model.cand_slot_bias]
    heads += list(model.faulty_head.parameters())
    for p in heads:
        p.requires_grad_(True)
    T = max(len(r["ids"]) for r in rows)
    ids = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r["ids"])] = torch.tensor(r["ids"])
    mask = (ids != 0).long()
    h = torch.zeros((len(rows), T, model.cfg.d_model))  # (N, T, C)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["ids"]))
    with torch.no_grad():  # length-sorted batches: little padding
        for s in range(0, len(order), 64):
            b = torch.tensor(order[s : s + 64])
            n = int(mask[b].sum(1).max())
            h[b, :n] = model.encode(ids[b, :n], mask[b, :n])
        m = mask.unsqueeze(-1).float()
        pooled = torch.cat([(h * m).sum(1) / m.sum(1), (h + (m - 1.0) * 1e4).max(1).values], -1)
        ref_faulty = torch.sigmoid(model.faulty_head(pooled)[:, 0])  # (N,)
    feedback = np.array([r["weight"] > 1.0 for r in rows])
    # characters with a label: (row, token, slot)
    chars = [
        (i, t, slot)
        for i, r in enumerate(rows)
        if r["kind"] == "csc"
        for t, slot in enumerate(r["slots"])
        if slot >= 0
    ]
    where = torch.tensor([(i, t) for i, t, _ in chars], dtype=torch.long).reshape(-1, 2)
    slot = torch.tensor([x for _, _, x in chars], dtype=torch.long)
    char_fb = np.array([feedback[i] for i, _, _ in chars], dtype=bool)
    with torch.no_grad():
        ref_cand = (
            torch.cat(
                [
                    torch.softmax(
                        model.candidate_logits(h[w[:, 0], w[:, 1]], ids[w[:, 0], w[:, 1]])[0], -1
                    )
                    for w in where.split(4096)
                ]
            )
            if len(chars)
            else torch.zeros((0, model.cfg.n_cand))
        )  # (M, K)
    sentences = np.array([i for i, r in enumerate(rows) if r["kind"] == "faulty" or feedback[i]])
    labels = torch.tensor([float(r.get("faulty", -1.0)) for r in rows])
    opt = torch.optim.AdamW(heads, lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)

    def pick(pool: np.ndarray, n: int) -> np.ndarray:
        return rng.choice(pool, size=min(n, len(pool)), replace=False) if len(pool) else pool

    losses = []
    for _ in range(steps):
        loss = torch.zeros(())
        for from_feedback in (True, False):
            pool = np.nonzero(char_fb == from_feedback)[0]
            k = torch.from_numpy(pick(pool, 256).astype(np.int64))
            if len(k):
                w = where[k]
                logits, _ = model.candidate_logits(h[w[:, 0], w[:, 1]], ids[w[:, 0], w[:, 1]])
                logp = torch.log_softmax(logits, -1).clamp(min=-1e4)  # (B, K)
                if from_feedback:
                    loss = loss + F.nll_loss(logp, slot[k])
                else:
                    loss = loss - (ref_cand[k] * logp).sum(-1).mean()
            rows_pool = np.array(
                [i for i in sentences if feedback[i] == from_feedback], dtype=np.int64
            )
            rows_k = torch.from_numpy(pick(rows_pool, 64).astype(np.int64))
            if len(rows_k):
                target = labels[rows_k] if from_feedback else ref_faulty[rows_k]
                keep = target >= 0
                if keep.any():
                    logit = model.faulty_head(pooled[rows_k])[:, 0]
                    loss = loss + F.binary_cross_entropy_with_logits(logit[keep], target[keep])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


# ----------------------------------------------------------------------------- run


def run_feedback(
    feedback: Path,
    out: Path,
    data: Path,
    *,
    install: Path | None = None,
    steps: int = 120,
    lr: float = 1e-3,
    repeat: int = 20,
    originals: int = 150,
    valid_limit: int = 400,
    tolerance: float = 0.01,
    ks_max: float = 0.05,
    seed: int = 1337,
    essay_steps: int = 60,
    essay_limit: int = 60,
    log: Any = print,
) -> dict[str, Any]:
    """Fine-tune, export, gate, write ``out`` (manifest + artifacts); install if it passes."""
    from engines.export import export_sentence, quantize_int8

    t0 = time.time()

    def say(message: str) -> None:
        log(f"[{time.time() - t0:6.1f}s] {message}")

    parent_path = (
        install / "manifest.json" if install and (install / "manifest.json").exists() else None
    )
    parent = load_manifest(parent_path)
    digest, counts = feedback_digest(feedback)
    old = OnnxModels(parent)
    model = load_released(parent)
    zh = out / "zh"
    zh.mkdir(parents=True, exist_ok=True)
    export_sentence(model, zh / "parity.onnx")
    check = OnnxModels(parent, sentence_file=zh / "parity.onnx")
    batch = old.sentence.encode(["我们在老师的带领下参观了博物馆。", "他的成绩名列前矛。"])
    gap = max(
        float(np.abs(old.run_sentences(batch)[k] - check.run_sentences(batch)[k]).max())
        for k in ("spell_cand_probs", "faulty_prob", "embedding")
    )
    (zh / "parity.onnx").unlink()
    if gap > 1e-4:
        raise RuntimeError(f"the rebuilt model does not reproduce the release (max diff {gap})")
    say(f"released weights rebuilt in torch; max output diff vs ONNX {gap:.2e}")
    mixed = _mix(feedback, data, repeat, originals, seed)
    say(f"data: {len(mixed['csc'])} spelling and {len(mixed['faulty'])} 病句 records")
    rows = _rows(old, mixed["csc"], "csc") + _rows(old, mixed["faulty"], "faulty")
    if not rows:
        raise RuntimeError(f"no spelling or 病句 feedback in {feedback}")
    losses = finetune(model, rows, steps, lr, seed)
    say(
        f"fine-tuned {steps} steps on {len(rows)} rows: "
        f"loss {losses[0]:.3f} -> {np.mean(losses[-20:]):.3f}"
    )
    fp32, int8 = zh / "sentence_fp32.onnx", zh / "sentence_int8.onnx"
    export_sentence(model.eval(), fp32)
    quantize_int8(fp32, int8)
    root = manifest_root(parent)
    for key in ("essay", "tokenizer"):
        src = root / (
            parent["artifacts"][key]["file"] if key == "essay" else parent["tokenizer"]["file"]
        )
        shutil.copy2(src, zh / src.name)
    manifest = {k: v for k, v in parent.items() if k != "_root"}
    manifest["artifacts"] = dict(manifest["artifacts"])
    for key, path in (("sentence_fp32", fp32), ("sentence_int8", int8)):
        manifest["artifacts"][key] = dict(
            manifest["artifacts"][key],
            file=f"zh/{path.name}",
            sha256=_sha(path),
            size=path.stat().st_size,
        )
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
    new, new8 = (
        OnnxModels(load_manifest(out / "manifest.json")),
        OnnxModels(load_manifest(out / "manifest.json"), sentence_file=int8),
    )
    say("exported FP32 and INT8; gating on the valid splits")
    result = gate(old, new, new8, data, valid_limit, tolerance, ks_max)
    manifest["sentence_model"] = dict(
        manifest["sentence_model"],
        model_file="sentence_int8" if result["int8_default"] else "sentence_fp32",
    )
    manifest["created_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest["feedback"] = {
        "sha256": digest,
        "records": counts,
        "parent_sentence_fp32": parent["artifacts"]["sentence_fp32"]["sha256"],
        "trained": "cand_query, cand_slot_bias, faulty_head (encoder frozen)",
        "steps": steps,
        "lr": lr,
        "repeat": repeat,
        "original_records_per_set": originals,
        "rows": len(rows),
        "loss": [round(losses[0], 4), round(float(np.mean(losses[-20:])), 4)],
        "fixed_before": fixed(old, feedback),
        "fixed_after": fixed(new, feedback),
        "gate": result,
    }
    manifest["feedback"]["essay"] = essay_step(
        parent, manifest, old, out, feedback, data, essay_steps, essay_limit, tolerance, seed, say
    )
    manifest["feedback"]["seconds"] = round(time.time() - t0, 1)
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
    verdict = "passed" if result["passed"] else "FAILED"
    say(
        f"gate: {verdict} (worst drop {result['worst_drop']:+.4f}, tolerance {tolerance}; "
        f"INT8 K-S {result['int8_ks']})"
    )
    if install is not None and result["passed"]:
        install.mkdir(parents=True, exist_ok=True)
        staged = install / ".incoming"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(out / "zh", staged / "zh")
        shutil.copy2(out / "manifest.json", staged / "manifest.json")
        shutil.rmtree(install / "zh", ignore_errors=True)
        (staged / "zh").rename(install / "zh")
        (staged / "manifest.json").replace(install / "manifest.json")
        staged.rmdir()
        say(f"installed in {install}")
    return manifest


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
