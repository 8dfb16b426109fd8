"""Latency of the shipped sentence model: onnxruntime CPU, 1 thread, one 48-token sentence.

    python bench/bench_sentence_model.py [--iters 500] [--tokens 48] [--threads 1]

Prints p50/p95 (ms) for the FP32 and INT8 files and one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import onnxruntime as ort

from engines.runtime import SentenceCodec, load_manifest

TEXT = (
    "我们在老师的带领下参观了历史博物馆，同学们认真地听讲解员介绍每一件文物背后的故事，收获很大。"
)


def bench(path: str, feeds: dict[str, np.ndarray], iters: int, threads: int) -> dict[str, float]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    for _ in range(20):
        sess.run(None, feeds)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t) * 1e3)
    return {
        "p50_ms": float(np.percentile(times, 50)),
        "p95_ms": float(np.percentile(times, 95)),
        "mean_ms": float(np.mean(times)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=500)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    manifest = load_manifest()
    codec = SentenceCodec(manifest)
    text = TEXT * 4
    while codec.count_tokens(text) > args.tokens:
        text = text[:-1]
    feeds = codec.encode([text]).feeds
    assert feeds["input_ids"].shape[1] == args.tokens, feeds["input_ids"].shape
    result: dict[str, object] = {
        "tokens": args.tokens,
        "threads": args.threads,
        "onnxruntime": ort.__version__,
        "cpu": platform.processor() or platform.machine(),
    }
    for key in ("sentence_fp32", "sentence_int8"):
        path = str(codec.fp32_file.parent.parent / manifest["artifacts"][key]["file"])
        r = bench(path, feeds, args.iters, args.threads)
        result[key] = r
        print(f"{key:14s} p50 {r['p50_ms']:.2f} ms  p95 {r['p95_ms']:.2f} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
