"""TensorRT engine builds (real, with TensorRT-RTX on the CPU), the cache key and rebuilds.

TensorRT-RTX builds plans without a GPU, so CI builds the real thing for every shipped
model. What no CPU can show — a plan made by another TensorRT or for another GPU — is
simulated with a fake :class:`Identity` (TensorRT version, GPU name), as the issue allows.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from engines.buckets import LENGTH_BUCKETS
from engines.fp16 import to_fp16
from engines.runtime import EssayCodec, SentenceCodec, load_manifest
from engines.trt_build import BuildConfig, EngineCache, Identity, ensure_engines

MANIFEST = load_manifest()
SENTENCE = SentenceCodec(MANIFEST).fp32_file
ESSAY = EssayCodec(MANIFEST).model_file
ONNX_DTYPES = {onnx.TensorProto.FLOAT: "float", onnx.TensorProto.INT64: "int64"}


def trt_or_skip() -> object:
    return pytest.importorskip("tensorrt_rtx", reason="pip install tensorrt-rtx-cu13")


def test_cache_key_changes_with_every_component() -> None:
    ident = Identity("tensorrt", "11.4.0", "NVIDIA H200", "9.0")
    config = BuildConfig()
    base = EngineCache.key("a" * 64, config, ident)
    assert EngineCache.key("a" * 64, BuildConfig(), ident) == base  # deterministic
    others = [
        EngineCache.key("b" * 64, config, ident),
        EngineCache.key("a" * 64, BuildConfig(precision="fp32"), ident),
        EngineCache.key("a" * 64, BuildConfig(max_batch=64), ident),
        EngineCache.key("a" * 64, BuildConfig(workspace_mb=512), ident),
        EngineCache.key("a" * 64, config, dataclasses.replace(ident, version="11.5.0")),
        EngineCache.key("a" * 64, config, dataclasses.replace(ident, gpu="NVIDIA L4")),
        EngineCache.key("a" * 64, config, dataclasses.replace(ident, compute_capability="8.9")),
        EngineCache.key("a" * 64, config, dataclasses.replace(ident, module="tensorrt_rtx")),
    ]
    assert len({base, *others}) == len(others) + 1


def io_types(m: onnx.ModelProto) -> list[tuple[str, int]]:
    return [(v.name, v.type.tensor_type.elem_type) for v in [*m.graph.input, *m.graph.output]]


def test_fp16_onnx_keeps_float32_io_and_matches_fp32() -> None:
    model = onnx.load(str(SENTENCE))
    half = to_fp16(model)
    onnx.checker.check_model(half)
    assert io_types(half) == io_types(model)
    assert all(i.data_type != onnx.TensorProto.FLOAT for i in half.graph.initializer)
    rng = np.random.default_rng(3)
    ids = rng.integers(5, 8000, (3, 40))
    mask = np.ones_like(ids)
    mask[2, 20:] = 0
    feeds = {"input_ids": ids, "attention_mask": mask}
    cpu = ["CPUExecutionProvider"]
    want = ort.InferenceSession(model.SerializeToString(), providers=cpu).run(None, feeds)
    got = ort.InferenceSession(half.SerializeToString(), providers=cpu).run(None, feeds)
    for w, g in zip(want, got, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-2)


def test_build_every_shipped_model_on_cpu(tmp_path: Path) -> None:
    trt = trt_or_skip()
    config = BuildConfig(max_batch=32, max_tokens=128)
    plans = ensure_engines({"sentence": SENTENCE, "essay": ESSAY}, tmp_path, config, trt=trt)
    for name, onnx_file in (("sentence", SENTENCE), ("essay", ESSAY)):
        path, meta = plans[name]
        assert path.exists() and path.stat().st_size == meta["plan_bytes"] > 100_000
        sidecar = json.loads(path.with_suffix(".json").read_text())
        assert sidecar == meta and sidecar["key"] in path.name
        assert sidecar["identity"]["module"] == "tensorrt_rtx"
        assert sidecar["config"]["precision"] == "fp16" and sidecar["build_s"] > 0
        graph = onnx.load(str(onnx_file)).graph
        want = [(v.name, "input", ONNX_DTYPES[v.type.tensor_type.elem_type]) for v in graph.input]
        want += [
            (v.name, "output", ONNX_DTYPES[v.type.tensor_type.elem_type]) for v in graph.output
        ]
        assert [(io["name"], io["mode"], io["dtype"]) for io in sidecar["io"]] == want
    sentence_in = plans["sentence"][1]["io"][0]
    tokens = [lo[1] for lo, _, _ in sentence_in["profiles"]]
    assert tokens == [t for t in LENGTH_BUCKETS if t <= 128]
    assert all(lo[0] == 1 and hi[0] == 32 for lo, _, hi in sentence_in["profiles"])
    essay_in = plans["essay"][1]["io"][0]
    assert essay_in["profiles"] == [[[1, 1, 256], [1, 32, 256], [1, 96, 256]]]


def test_a_stale_plan_is_rebuilt_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trt = trt_or_skip()
    models = {"essay": ESSAY}  # the small model: a build takes well under a second
    old = Identity("tensorrt_rtx", "1.7.1.116", "NVIDIA L4", "8.9")
    with caplog.at_level(logging.INFO, logger="inkstone.engines"):
        first = ensure_engines(models, tmp_path, trt=trt, identity=old)["essay"]
        again = ensure_engines(models, tmp_path, trt=trt, identity=old)["essay"]
        assert again[0] == first[0] and again[1]["from_cache"]  # a hit: no build, no log
        assert len(caplog.records) == 1 and "no plan cached" in caplog.messages[0]
        caplog.clear()
        newer = dataclasses.replace(old, version="1.8.0")
        rebuilt = ensure_engines(models, tmp_path, trt=trt, identity=newer)["essay"]
        assert [m for m in caplog.messages] == [
            "building the essay engine (built by tensorrt_rtx 1.7.1.116, running 1.8.0) "
            "with tensorrt_rtx 1.8.0"
        ]
        caplog.clear()
        other_gpu = dataclasses.replace(newer, gpu="NVIDIA A10G", compute_capability="8.6")
        ensure_engines(models, tmp_path, trt=trt, identity=other_gpu)
        assert len(caplog.messages) == 1
        assert "built for NVIDIA L4 (CC 8.9), this is NVIDIA A10G (CC 8.6)" in caplog.messages[0]
    assert rebuilt[0] != first[0] and rebuilt[1]["identity"]["version"] == "1.8.0"
    # a damaged plan is never served: its hash no longer matches the sidecar
    path = rebuilt[0]
    path.write_bytes(path.read_bytes()[:-10])
    assert EngineCache(tmp_path).lookup("essay", rebuilt[1]["key"]) is None


def test_build_engines_command(tmp_path: Path) -> None:
    trt_or_skip()
    root = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, "-m", "server.cli", "build-engines", "--data-dir", str(tmp_path)]
    first = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    ours = ("sentence: ", "essay: ")  # TensorRT's own logger also writes to stdout
    lines = [ln for ln in first.stdout.splitlines() if ln.startswith(ours)]
    assert [ln.split(":")[0] for ln in lines] == ["sentence", "essay"]
    assert all(" built in " in ln and "tensorrt_rtx" in ln for ln in lines)
    assert len(list((tmp_path / "engines").glob("*.plan"))) == 2
    again = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "building" not in again.stderr
    again_lines = [ln for ln in again.stdout.splitlines() if ln.startswith(ours)]
    assert len(again_lines) == 2 and all("cached, built in" in ln for ln in again_lines)
