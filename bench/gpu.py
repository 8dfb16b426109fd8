"""GPU benchmark of the inference backends (one script, one device call; see docs/benchmarks.md).

    PYTHONUNBUFFERED=1 python bench/gpu.py --out $OUT [--gate-reference FP32.json]
        [--server-points torch:250,onnxruntime:250,torch:1000] [--deadline-s 330]

Sections, each written to ``<out>/gpu.json`` as soon as it finishes (a timeout keeps
what ran):

1. micro: the sentence model at 48 and 128 tokens, batch 1 (GPU time from CUDA events
   and end-to-end ``backend.run`` with padding and copies) and throughput at batch
   8/32/128/512, for torch FP32 eager, torch FP16 + CUDA graphs and onnxruntime CPU with
   1 and 16 threads; GPU memory per torch variant;
2. essay: one 40-sentence essay end to end (codec, sentence model, essay model);
3. streams: one backend vs two backends (two streams, two threads) at batch 32;
4. gate: the precision gate (engines.precision) of torch FP16 against FP32 predictions;
5. server: ``inkstone serve --backend X`` under ``inkstone loadgen`` (bench/run_curve.py)
   for each ``backend:students`` point while the deadline allows.

``--device cpu`` runs sections 1–4 on the CPU in FP32 (a smoke test of the script).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from engines.runtime import EssayCodec, EssaySentence, SentenceCodec, load_manifest  # noqa: E402
from server.backends.onnx import OnnxRuntimeBackend  # noqa: E402
from server.backends.torch_cuda import TorchBackend  # noqa: E402

RESULTS: dict[str, Any] = {}
BATCHES = (1, 8, 32, 128, 512)


def save() -> None:
    out = Path(RESULTS["out"])
    (out / "gpu.json").write_text(json.dumps(RESULTS, indent=1, ensure_ascii=False))


def environment(device: str) -> dict[str, Any]:
    import onnxruntime
    import torch

    info: dict[str, Any] = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "cpus": os.cpu_count(),
    }
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, cc=f"{p.major}.{p.minor}", cuda=torch.version.cuda)
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version,clocks.sm,clocks.mem", "--format=csv"],
            capture_output=True,
            text=True,
        )
        info["nvidia_smi"] = smi.stdout.strip()
    return info


def feeds(batch: int, tokens: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    ids = rng.integers(5, 8900, (batch, tokens), dtype=np.int64)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids)}


def measure(
    backend: Any, batch: int, tokens: int, budget_s: float, min_reps: int
) -> dict[str, Any]:
    """Median end-to-end backend.run and GPU time over fresh random inputs."""
    rng = np.random.default_rng(batch * 1000 + tokens)
    inputs = [feeds(batch, tokens, rng) for _ in range(4)]  # rotate: no cache-warm replays
    backend.run("sentence", inputs[0])  # warm-up (and graph capture on a new bucket)
    e2e, gpu = [], []
    started = time.perf_counter()
    while len(e2e) < min_reps or (time.perf_counter() - started < budget_s and len(e2e) < 2000):
        t0 = time.perf_counter()
        backend.run("sentence", inputs[len(e2e) % 4])
        e2e.append((time.perf_counter() - t0) * 1000)
        if getattr(backend, "last_gpu_ms", None) is not None:
            gpu.append(backend.last_gpu_ms)
    e2e_ms = statistics.median(e2e)
    row = {"batch": batch, "tokens": tokens, "reps": len(e2e), "e2e_ms": round(e2e_ms, 4)}
    row["e2e_sent_per_s"] = round(batch / e2e_ms * 1000)
    if gpu:
        gpu_ms = statistics.median(gpu)
        row.update(gpu_ms=round(gpu_ms, 4), gpu_sent_per_s=round(batch / gpu_ms * 1000))
    return row


def variants(device: str, files: dict[str, Path]) -> list[tuple[str, Any]]:
    def torch_backend(precision: str, graphs: bool) -> Any:
        b = TorchBackend(device=device, precision=precision, graphs=graphs, precapture=graphs)
        b.load(files)
        return b

    def ort(threads: int) -> Any:
        b = OnnxRuntimeBackend(threads=threads)
        b.load(files)
        return b

    out: list[tuple[str, Any]] = [("torch fp32 eager", lambda: torch_backend("fp32", False))]
    if device == "cuda":
        out.append(("torch fp16 + graphs", lambda: torch_backend("fp16", True)))
    out += [
        ("onnxruntime cpu 1 thread", lambda: ort(1)),
        ("onnxruntime cpu 16 threads", lambda: ort(16)),
    ]
    return out


def gpu_memory(device: str) -> dict[str, float]:
    import torch

    if device != "cuda":
        return {}
    mib = 1 << 20
    return {
        "reserved_mib": round(torch.cuda.memory_reserved() / mib, 1),
        "allocated_mib": round(torch.cuda.memory_allocated() / mib, 1),
        "peak_allocated_mib": round(torch.cuda.max_memory_allocated() / mib, 1),
    }


def micro(device: str, files: dict[str, Path], out: Path, quick: bool) -> None:
    import torch

    RESULTS["micro"] = []
    for name, make in variants(device, files):
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        backend = make()
        entry: dict[str, Any] = {"variant": name, "load_s": round(time.perf_counter() - t0, 2)}
        entry["memory_after_load"] = gpu_memory(device)
        cpu = name.startswith("onnxruntime")
        rows = []
        for tokens in (48, 128):
            for batch in BATCHES:
                if cpu and name.endswith("1 thread") and batch == 512:
                    continue  # ~2-4 s a batch; batch 128 already shows the saturated rate
                budget = 0.05 if quick else (0.6 if cpu else 0.4)
                rows.append(measure(backend, batch, tokens, budget, 2 if cpu or quick else 20))
        entry["rows"] = rows
        entry["memory_after_runs"] = gpu_memory(device)
        entry["describe"] = backend.describe()
        RESULTS["micro"].append(entry)
        save()
        print(f"micro {name}: {json.dumps(rows[0])} ... {json.dumps(rows[-1])}", flush=True)
        backend.close()
        del backend


def essay_case() -> tuple[list[str], list[int], str]:
    """A 40-sentence essay: the shipped snapshot's fixture sentences repeated into paragraphs."""
    base = [
        "我们在老师的带领下参观了博物馆，收获很大。",
        "通过这次活动，使我们明白了团结的重要性。",
        "他的成绩在班里名列前矛，大家都很佩服他。",
        "今天天气很好，我们一起去公园散步。",
        "春天来了，小草从地里探出头来，好奇地打量着这个世界。",
        "妈妈每天早上六点起床，为我们准备早饭。",
        "读书使人进步，这是我在这个学期最大的体会。",
        "虽然失败了很多次，但是他从来没有放弃过自己的梦想。",
    ]
    sentences = [
        f"{base[i % len(base)]}" if i < 8 else f"第{i}句，{base[i % len(base)]}" for i in range(40)
    ]
    paragraphs = [i // 8 for i in range(40)]
    text = "\n".join("".join(sentences[p * 8 : p * 8 + 8]) for p in range(5))
    return sentences, paragraphs, text


def essay(device: str, files: dict[str, Path], out: Path, quick: bool) -> None:
    manifest = load_manifest()
    codec, essay_codec = SentenceCodec(manifest), EssayCodec(manifest)
    sentences, paragraphs, text = essay_case()
    RESULTS["essay"] = []
    for name, make in variants(device, files):
        backend = make()

        def once(backend: Any = backend) -> float:
            batch = codec.encode(sentences)
            preds = codec.decode(batch, backend.run("sentence", batch.feeds))
            gpu = getattr(backend, "last_gpu_ms", None) or 0.0
            sents = [
                EssaySentence(s, p, r.embedding)
                for s, p, r in zip(sentences, paragraphs, preds, strict=True)
            ]
            essay_codec.decode(backend.run("essay", essay_codec.encode(sents, text)))
            return gpu + (getattr(backend, "last_gpu_ms", None) or 0.0)

        once()
        wall, gpu = [], []
        reps = 3 if quick else (10 if "1 thread" in name else 100)
        for _ in range(reps):
            t0 = time.perf_counter()
            gpu.append(once())
            wall.append((time.perf_counter() - t0) * 1000)
        row = {"variant": name, "reps": reps, "e2e_ms": round(statistics.median(wall), 3)}
        if any(gpu):
            row["gpu_ms"] = round(statistics.median(gpu), 4)
        row["x_faster_than_seed_68ms"] = round(68.0 / row["e2e_ms"], 1)
        RESULTS["essay"].append(row)
        save()
        print("essay", json.dumps(row), flush=True)
        backend.close()


def streams(device: str, files: dict[str, Path], out: Path, quick: bool) -> None:
    """Two backends (own stream, graphs, thread each) against one, batch 32 x 48 tokens."""
    if device != "cuda":
        return
    n = 200 if quick else 2000
    one = TorchBackend(device=device)
    one.load(files)
    two = TorchBackend(device=device)
    two.load(files)
    batch = feeds(32, 48, np.random.default_rng(7))

    def loop(b: Any, count: int) -> None:
        for _ in range(count):
            b.run("sentence", batch)

    loop(one, 20)
    loop(two, 20)
    t0 = time.perf_counter()
    loop(one, 2 * n)
    single = time.perf_counter() - t0
    threads = [threading.Thread(target=loop, args=(b, n)) for b in (one, two)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    double = time.perf_counter() - t0
    RESULTS["streams"] = {
        "batches": 2 * n,
        "one_stream_sent_per_s": round(2 * n * 32 / single),
        "two_streams_sent_per_s": round(2 * n * 32 / double),
    }
    save()
    print("streams", json.dumps(RESULTS["streams"]), flush=True)
    one.close()
    two.close()


def gate(device: str, files: dict[str, Path], out: Path, reference: Path) -> None:
    """Torch on this device against saved FP32 predictions (which carry their inputs)."""
    from engines.precision import collect, compare, load_predictions

    ref = load_predictions(reference)
    texts = ref.texts
    backend = TorchBackend(device=device, max_batch=128)
    backend.load(files)
    t0 = time.perf_counter()
    label = f"torch {backend.precision} graphs={backend.use_graphs} on {device}"
    cand = collect(backend.run, texts["sentences"], texts["essays"], label, batch=128)
    cand.save(out / "gate_torch.json")
    report = compare(ref, cand)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    RESULTS["gate"] = report
    save()
    print("gate", json.dumps(report), flush=True)
    backend.close()


def server(
    out: Path, points: list[tuple[str, int]], deadline: float, duration: float, cores: list[str]
) -> None:
    from run_curve import point

    RESULTS["server"] = []
    for backend, students in points:
        if time.monotonic() + duration + 45 > deadline:
            RESULTS["server"].append(
                {"backend": backend, "students": students, "skipped": "deadline"}
            )
            continue
        os.environ["INKSTONE_BACKEND"] = backend
        args = argparse.Namespace(
            no_models=False, server_cores=cores[0], loadgen_cores=cores[1], out=out, ramp_up=8.0,
            duration=duration, lang="zh", seed=1, procs=4 if students >= 500 else 1,
            class_size=30, teachers=False, p99_ms=250.0,
            profile=students if backend == "torch" and students >= 250 else None,
        )  # fmt: skip
        try:
            report = point(args, students)
        except Exception as exc:  # one failed point must not lose the others
            report = {"error": repr(exc)}
        keep = (
            "server_analysis_ms",
            "server_edit_to_hints_ms",
            "server_queue_ms",
            "server_inference_ms",
        )
        row = {"backend": backend, "students": students, **{k: report.get(k) for k in keep}}
        for k in ("edits_per_s", "error_count", "lost_edits", "pass", "error", "profile", "server"):
            row[k] = report.get(k)
        health = report.get("server_health_end") or {}
        row["models"] = (health.get("models") or {}).get("zh")
        RESULTS["server"].append(row)
        save()
        print(
            "server",
            backend,
            students,
            json.dumps(row.get("server_analysis_ms")),
            row.get("pass"),
            flush=True,
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="few repetitions (smoke test)")
    ap.add_argument("--sections", default="micro,essay,streams,gate,server")
    ap.add_argument("--gate-reference", type=Path, default=None)
    ap.add_argument("--server-points", default="torch:250,onnxruntime:250")
    ap.add_argument("--server-duration", type=float, default=30.0)
    ap.add_argument("--cores", default="0-7/8-15", help="taskset lists: server/loadgen")
    ap.add_argument("--server-out", type=Path, default=Path("/tmp/inkstone-gpu-server"))
    ap.add_argument("--deadline-s", type=float, default=330.0, help="skip server points after")
    args = ap.parse_args()
    deadline = time.monotonic() + args.deadline_s
    args.out.mkdir(parents=True, exist_ok=True)
    args.server_out.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest()
    files = {
        "sentence": SentenceCodec(manifest).fp32_file,
        "essay": EssayCodec(manifest).model_file,
    }
    RESULTS["out"] = str(args.out)
    RESULTS["command"] = " ".join(sys.argv)
    RESULTS["environment"] = environment(args.device)
    sections = args.sections.split(",")
    points = [(p.split(":")[0], int(p.split(":")[1])) for p in args.server_points.split(",")]
    steps: list[tuple[str, Any]] = [
        ("micro", lambda: micro(args.device, files, args.out, args.quick)),
        ("essay", lambda: essay(args.device, files, args.out, args.quick)),
        ("streams", lambda: streams(args.device, files, args.out, args.quick)),
        ("gate", lambda: gate(args.device, files, args.out, args.gate_reference)),
        (
            "server",
            lambda: server(
                args.server_out, points, deadline, args.server_duration, args.cores.split("/")
            ),
        ),
    ]
    failed = 0
    for name, step in steps:
        if name not in sections or (name == "gate" and not args.gate_reference):
            continue
        started = time.perf_counter()
        try:
            step()
        except Exception:  # one broken section must not cost the others their device time
            failed += 1
            RESULTS.setdefault("errors", {})[name] = traceback.format_exc()
            traceback.print_exc()
        RESULTS.setdefault("section_s", {})[name] = round(time.perf_counter() - started, 1)
        save()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
