"""Teachers' score corrections → the essay model's trait head, fine-tuned on a CPU.

Part of ``python -m engines.train --feedback`` (see :mod:`engines.feedback`). The released
essay ensemble is rebuilt in torch from its ONNX file (checked to reproduce it); the trait
head of every member is trained, over the frozen rest of the model, on the grade nearest
each teacher score (essay.jsonl) and, for as many original training essays, on the
released model's own trait probabilities (distillation), so scores move for essays like
the corrected ones and as little as possible elsewhere. Its gate: QWK on the valid essays
(traits and coherence) may not drop by more than the tolerance; a release whose essay part
fails keeps the parent's essay model.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from engines.jsonl import read_jsonl
from engines.runtime import GRADES, EssaySentence, OnnxModels, load_manifest, manifest_root

__all__ = ["essay_gate", "essay_step", "finetune_essay", "load_released_essay"]


def load_released_essay(manifest: dict[str, Any]) -> Any:
    """The released essay ensemble in torch, from its ONNX file (``inp.1.weight`` of each
    member was constant-folded into ``onnx::MatMul_N``, transposed, in member order)."""
    import onnx
    import torch
    from onnx import numpy_helper

    from engines.model import EssayConfig, EssayEnsemble, EssayModel

    path = manifest_root(manifest) / manifest["artifacts"]["essay"]["file"]
    named = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    cfg = EssayConfig(**manifest["essay_model"]["config"])
    n = 1 + max(int(m.group(1)) for k in named if (m := re.match(r"members\.(\d+)\.", k)))
    # the members share one feature normalisation; the exporter kept one copy of it
    mean, std = (
        torch.from_numpy(named[f"members.0.{x}"].copy()) for x in ("feat_mean", "feat_std")
    )
    model = EssayEnsemble([EssayModel(cfg, mean, std) for _ in range(n)])
    state = {k: torch.from_numpy(v.copy()) for k, v in named.items() if not k.startswith("onnx::")}
    for k in range(1, n):
        state[f"members.{k}.feat_mean"], state[f"members.{k}.feat_std"] = mean, std
    folded = sorted(
        (k for k in named if k.startswith("onnx::MatMul_")), key=lambda k: int(k.rsplit("_", 1)[1])
    )
    if len(folded) != n:
        raise ValueError(f"{path}: {len(folded)} folded weights for {n} members")
    for k, name in enumerate(folded):
        state[f"members.{k}.inp.1.weight"] = torch.from_numpy(named[name].T.copy())
    model.load_state_dict(state, strict=True)
    return model.eval()


def _feeds(models: OnnxModels, texts: list[str]) -> list[dict[str, np.ndarray]]:
    from engines.segment import segment

    out = []
    for text in texts:
        segs = segment(text)
        preds = models.predict_sentences([s.text for s in segs])
        sents = [
            EssaySentence(s.text, s.paragraph, p.embedding)
            for s, p in zip(segs, preds, strict=True)
        ]
        out.append(models.essay.encode(sents, text))
    return out


def finetune_essay(
    model: Any,
    models: OnnxModels,
    feedback: list[dict[str, Any]],
    originals: list[dict[str, Any]],
    steps: int,
    lr: float,
    seed: int,
    distill_batch: int = 8,
) -> list[float]:
    """Train the members' trait heads: teacher grades (hard) and originals (distilled)."""
    import torch

    torch.manual_seed(seed)
    traits = models.essay.traits
    fb_feeds = _feeds(models, [r["text"] for r in feedback])
    og_feeds = _feeds(models, [r["text"] for r in originals])
    as_t = [{k: torch.from_numpy(v) for k, v in f.items()} for f in fb_feeds + og_feeds]
    order = ("sent_emb", "sent_feats", "sent_mask", "essay_feats")
    with torch.no_grad():
        ref = [model(*(f[k] for k in order))[0][0] for f in as_t]  # (n_traits, 3) each
    targets = []
    for r in feedback:
        want = r.get("traits") or {}
        sources = {"content": "topic"}
        targets.append(
            [
                GRADES.index(want[sources.get(t, t)])
                if want.get(sources.get(t, t)) in GRADES
                else -1
                for t in traits
            ]
        )
    for p in model.parameters():
        p.requires_grad_(False)
    heads = [p for m in model.members for p in m.trait_head.parameters()]
    for p in heads:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(heads, lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    losses = []
    n_fb = len(feedback)
    for _ in range(steps):
        loss = torch.zeros(())
        for i in range(n_fb):  # every corrected essay, every step
            probs = model(*(as_t[i][k] for k in order))[0][0]
            for t, g in enumerate(targets[i]):
                if g >= 0:
                    loss = loss - torch.log(probs[t, g].clamp(min=1e-6)) / n_fb
        batch = rng.choice(len(originals), size=min(distill_batch, len(originals)), replace=False)
        for i in batch:
            j = n_fb + int(i)
            probs = model(*(as_t[j][k] for k in order))[0][0]
            loss = loss - (ref[j] * torch.log(probs.clamp(min=1e-6))).sum() / len(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def essay_gate(
    old: OnnxModels, new: OnnxModels, data: Path, limit: int, tolerance: float
) -> dict[str, Any]:
    from engines.evaluate import eval_coherence, eval_essay

    result: dict[str, Any] = {"before": {}, "after": {}, "valid_limit": limit}
    for name, path, run, keys in (
        ("essay_oe_traits", "essay_oe_traits", eval_essay, ("qwk_mean",)),
        ("essay_cedcc_coherence", "essay_cedcc_coherence", eval_coherence, ("qwk", "pearson")),
    ):
        records = list(read_jsonl(data / "zh" / path / "valid.jsonl"))[:limit]
        before, after = run(old, records), run(new, records)
        result["before"][name] = {k: round(float(before[k]), 4) for k in keys}
        result["after"][name] = {k: round(float(after[k]), 4) for k in keys}
    drops = [
        result["before"][n][k] - result["after"][n][k]
        for n in result["before"]
        for k in result["before"][n]
    ]
    result["worst_drop"] = round(max(drops), 4)
    result["passed"] = result["worst_drop"] <= tolerance
    return result


def essay_step(
    parent: dict[str, Any],
    manifest: dict[str, Any],
    old: OnnxModels,
    out: Path,
    feedback: Path,
    data: Path,
    steps: int,
    limit: int,
    tolerance: float,
    seed: int,
    say: Any,
) -> dict[str, Any]:
    """Fine-tune the essay model on the teachers' grades; keep it only if its gate passes
    (else the release keeps the parent's essay model). Updates ``manifest`` in place."""
    from engines.export import export_essay

    path = feedback / "essay.jsonl"
    graded = [r for r in read_jsonl(path)] if path.exists() else []
    if not graded or steps <= 0:
        return {"trained": False, "reason": "no graded essays" if not graded else "essay_steps 0"}
    model = load_released_essay(parent)
    target = out / "zh" / "essay.onnx"
    kept = target.read_bytes()
    export_essay(model, target)
    check = OnnxModels(load_manifest(out / "manifest.json"))
    text = graded[0]["text"]
    gap = abs(
        check.score_essay(text).traits["overall"].score
        - old.score_essay(text).traits["overall"].score
    )
    if gap > 1e-4:
        raise RuntimeError(f"the rebuilt essay model does not reproduce the release ({gap})")
    pool = list(read_jsonl(data / "zh" / "essay_oe_traits" / "train.jsonl"))
    pick = np.random.default_rng(seed).choice(len(pool), size=min(24, len(pool)), replace=False)
    originals = [pool[i] for i in pick]
    losses = finetune_essay(model, old, graded, originals, steps, 1e-3, seed, distill_batch=8)
    export_essay(model.eval(), target)
    entry = dict(
        manifest["artifacts"]["essay"],
        sha256=hashlib.sha256(target.read_bytes()).hexdigest(),
        size=target.stat().st_size,
    )
    manifest["artifacts"]["essay"] = entry
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
    new = OnnxModels(load_manifest(out / "manifest.json"))
    say(f"essay model: {steps} steps on {len(graded)} graded essays; gating")
    result = essay_gate(old, new, data, limit, tolerance)
    result.update(
        trained=True,
        graded_essays=len(graded),
        steps=steps,
        loss=[round(losses[0], 4), round(float(np.mean(losses[-10:])), 4)],
        overall_before=[
            round(old.score_essay(r["text"]).traits["overall"].score, 4) for r in graded
        ],
        overall_after=[
            round(new.score_essay(r["text"]).traits["overall"].score, 4) for r in graded
        ],
    )
    if not result["passed"]:  # keep the parent's essay model
        target.write_bytes(kept)
        manifest["artifacts"]["essay"] = parent["artifacts"]["essay"]
    say(f"essay gate: {'passed' if result['passed'] else 'FAILED (parent kept)'}")
    return result
