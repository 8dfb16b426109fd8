"""ONNX export (opset 17, dynamic batch and sequence axes), INT8 quantisation, verification."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engines.model import (
    ESSAY_INPUTS,
    ESSAY_OUTPUTS,
    SENTENCE_INPUTS,
    SENTENCE_OUTPUTS,
    EncoderConfig,
    EssayConfig,
    EssayEnsemble,
    EssayModel,
    SentenceModel,
)

__all__ = [
    "OPSET",
    "export_essay",
    "export_sentence",
    "load_models",
    "quantize_int8",
    "verify_sentence",
]

OPSET = 17


def load_models(
    ckpt_file: Path,
) -> tuple[SentenceModel, EssayModel | EssayEnsemble | None, dict[str, Any]]:
    ckpt = torch.load(ckpt_file, map_location="cpu", weights_only=False)
    state = ckpt["sentence_state"]
    sm = SentenceModel(EncoderConfig(**ckpt["sentence_cfg"]), state["confusion"])
    sm.load_state_dict(state)
    if "essay_state" not in ckpt:  # a fit cut short before its essay model
        return sm.eval(), None, ckpt
    es = ckpt["essay_state"]
    cfg = EssayConfig(**ckpt["essay_cfg"])
    n = int(ckpt.get("essay_members", 1))
    em: EssayModel | EssayEnsemble
    if n == 1:
        em = EssayModel(cfg, es["feat_mean"], es["feat_std"])
    else:
        mean, std = es["members.0.feat_mean"], es["members.0.feat_std"]
        em = EssayEnsemble([EssayModel(cfg, mean, std) for _ in range(n)])
    em.load_state_dict(es)
    return sm.eval(), em.eval(), ckpt


def export_sentence(model: SentenceModel, path: Path) -> None:
    ids = torch.randint(5, model.cfg.vocab_size, (2, 11))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    axes = {
        "input_ids": {0: "batch", 1: "tokens"},
        "attention_mask": {0: "batch", 1: "tokens"},
        "faulty_prob": {0: "batch"},
        "type_probs": {0: "batch"},
        "spell_detect_prob": {0: "batch", 1: "tokens"},
        "spell_cand_probs": {0: "batch", 1: "tokens"},
        "spell_cand_ids": {0: "batch", 1: "tokens"},
        "embedding": {0: "batch"},
    }
    _onnx_export(model, (ids, mask), path, SENTENCE_INPUTS, SENTENCE_OUTPUTS, axes)


def _onnx_export(
    model: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    inputs: Sequence[str],
    outputs: Sequence[str],
    axes: dict[str, dict[int, str]],
) -> None:
    """The one set of export settings both models use (TorchScript exporter, OPSET)."""
    torch.onnx.export(
        model,
        args,
        str(path),
        input_names=list(inputs),
        output_names=list(outputs),
        dynamic_axes=axes,
        opset_version=OPSET,
        dynamo=False,
        do_constant_folding=True,
    )


def export_essay(model: EssayModel | EssayEnsemble, path: Path) -> None:
    c = model.cfg
    args = (
        torch.randn(2, 5, c.d_in),
        torch.rand(2, 5, c.n_sent_feats),
        torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]),
        torch.randn(2, c.n_essay_feats),
    )
    axes = {
        "sent_emb": {0: "batch", 1: "sentences"},
        "sent_feats": {0: "batch", 1: "sentences"},
        "sent_mask": {0: "batch", 1: "sentences"},
        "essay_feats": {0: "batch"},
        "trait_probs": {0: "batch"},
        "coherence_probs": {0: "batch"},
        "coherence_score": {0: "batch"},
    }
    _onnx_export(model, args, path, ESSAY_INPUTS, ESSAY_OUTPUTS, axes)


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic INT8 (weights int8, activations quantised on the fly) of MatMul and Gather."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gather"]
    )


def verify_sentence(model: SentenceModel, path: Path, atol: float = 1e-4) -> dict[str, float]:
    """ONNX (onnxruntime, CPU) vs PyTorch at several lengths and batch sizes; returns the max
    absolute difference per output. Raises if any exceeds `atol`."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(0)
    worst: dict[str, float] = {n: 0.0 for n in SENTENCE_OUTPUTS}
    for B, T in ((1, 1), (1, 48), (3, 17), (4, 128), (2, 5)):
        ids = torch.randint(5, model.cfg.vocab_size, (B, T), generator=g)
        mask = torch.ones_like(ids)
        if B > 1:
            mask[-1, T // 2 + 1 :] = 0
            ids[-1, T // 2 + 1 :] = 0
        with torch.no_grad():
            ref = [r.numpy() for r in model(ids, mask)]
        got = sess.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
        for n, r, o in zip(SENTENCE_OUTPUTS, ref, got, strict=True):
            worst[n] = max(worst[n], float(np.abs(r.astype(np.float64) - o).max()))
    bad = {k: v for k, v in worst.items() if v > atol}
    if bad:
        raise AssertionError(f"ONNX differs from PyTorch beyond {atol}: {bad}")
    return worst
