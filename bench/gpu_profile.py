"""Where the GPU time of one sentence-model batch goes: kernels per forward, top kernels.

    python bench/gpu_profile.py --out DIR [--device cuda]

Runs the torch backend in FP16 *without* CUDA graphs (the same kernels a graph replays,
but visible one by one to the profiler) at batch 1 and batch 512, 48 tokens, and writes
``DIR/profile.json``: kernel launches per forward, the summed kernel time per forward, and
the twelve costliest kernels (by name) with their share.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engines.runtime import EssayCodec, SentenceCodec, load_manifest  # noqa: E402
from server.backends.torch_cuda import TorchBackend  # noqa: E402

RUNS = 10


def profile(backend: TorchBackend, batch: int, tokens: int, cuda: bool) -> dict[str, Any]:
    import torch
    from torch.profiler import ProfilerActivity

    rng = np.random.default_rng(batch)
    ids = rng.integers(5, 8900, (batch, tokens))
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    for _ in range(3):
        backend.run("sentence", feeds)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(RUNS):
            backend.run("sentence", feeds)
    kernels: dict[str, list[float]] = {}
    for event in prof.events():
        if cuda and event.device_type == torch.autograd.DeviceType.CUDA:
            kernels.setdefault(event.name, []).append(event.device_time)
    launches = sum(len(v) for v in kernels.values()) / RUNS
    total_us = sum(sum(v) for v in kernels.values()) / RUNS
    top = sorted(kernels.items(), key=lambda kv: -sum(kv[1]))[:12]
    return {
        "batch": batch,
        "tokens": tokens,
        "kernels_per_forward": launches,
        "kernel_us_per_forward": round(total_us, 1),
        "top": [
            {
                "kernel": name[:120],
                "per_forward": len(v) / RUNS,
                "us_per_forward": round(sum(v) / RUNS, 1),
                "share": round(sum(v) / max(1e-9, total_us * RUNS), 3),
            }
            for name, v in top
        ],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    manifest = load_manifest()
    files = {
        "sentence": SentenceCodec(manifest).fp32_file,
        "essay": EssayCodec(manifest).model_file,
    }
    backend = TorchBackend(device=args.device, graphs=False, precapture=False)
    backend.load(files)
    cuda = args.device == "cuda"
    result = {"precision": backend.precision, "runs": RUNS, "shapes": []}
    for batch in (1, 512):
        row = profile(backend, batch, 48, cuda)
        result["shapes"].append(row)
        print(json.dumps(row)[:600], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "profile.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
