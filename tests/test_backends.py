"""Backend selection, one-line refusals, the fallback, and the torch backend on the CPU.

The torch backend runs the shipped ONNX graphs as torch ops; on the CPU (FP32, the same
bucketing, programs and packed buffers as on a GPU, minus streams and graphs) it must match
onnxruntime. tests/test_backends_gpu.py repeats the comparisons on a CUDA device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from engines.runtime import EssayCodec, EssaySentence, SentenceCodec, load_manifest
from protocol import Hints
from server.backends import BackendUnavailable, create_backend, probe_backend
from server.backends.onnx import OnnxRuntimeBackend
from server.config import Settings
from server.wsclient import StudentClient
from tests.conftest import FAST, ROOT, LiveServer, ProcessServer, ThreadServer, run

MANIFEST = load_manifest()
SENTENCE = SentenceCodec(MANIFEST)
ESSAY = EssayCodec(MANIFEST)
FILES = {"sentence": SENTENCE.fp32_file, "essay": ESSAY.model_file}
TEXTS = [
    "我们在老师的带领下参观了博物馆，收获很大。",
    "通过这次活动，使我们明白了团结的重要性。",
    "他的成绩在班里名列前矛，大家都很佩服他。",
    "今天天气很好",
    "Hello world, 这是一个 mixed 句子 2024 年。",
    "春天来了，小草从地里探出头来，好奇地打量着这个世界，" * 3,
]


def has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def onnxruntime_reference() -> OnnxRuntimeBackend:
    backend = OnnxRuntimeBackend()
    backend.load(FILES)
    return backend


def assert_close(got: dict[str, np.ndarray], want: dict[str, np.ndarray], atol: float) -> None:
    assert set(got) == set(want)
    for name, ref in want.items():
        assert got[name].shape == ref.shape, name
        assert got[name].dtype == ref.dtype, name
        if ref.dtype.kind in "iub":
            np.testing.assert_array_equal(got[name], ref, err_msg=name)
        else:
            np.testing.assert_allclose(got[name], ref, atol=atol, rtol=0, err_msg=name)


def essay_feeds(n_sentences: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    text = "".join(TEXTS)
    sents = [
        EssaySentence(TEXTS[i % len(TEXTS)], i // 4, rng.standard_normal(256).astype(np.float32))
        for i in range(n_sentences)
    ]
    return ESSAY.encode(sents, text)


def compare_with_onnxruntime(backend: Any, atol: float) -> None:
    """Several batch sizes and lengths (so padding to buckets is exercised), both models."""
    reference = onnxruntime_reference()
    for texts in (TEXTS[:1], TEXTS[:3], TEXTS, TEXTS * 3):
        feeds = SENTENCE.encode(texts).feeds
        assert_close(backend.run("sentence", feeds), reference.run("sentence", feeds), atol)
    for n in (1, 7, 40):
        feeds = essay_feeds(n, n)
        assert_close(backend.run("essay", feeds), reference.run("essay", feeds), atol)


# ---------------------------------------------------------------- selection and refusal


def test_unknown_backend_is_refused_with_the_choices() -> None:
    reason = probe_backend("cuda-magic")
    assert reason is not None and "onnxruntime, torch, tensorrt" in reason
    with pytest.raises(BackendUnavailable, match="cuda-magic"):
        create_backend("cuda-magic")


def test_onnxruntime_always_runs() -> None:
    assert probe_backend("onnxruntime") is None
    backend = create_backend("onnxruntime", threads=1)
    backend.load(FILES)
    assert backend.describe()["device"] == "cpu"


@pytest.mark.skipif(has_cuda(), reason="this host has a GPU: the torch backend can run")
def test_serve_refuses_an_unavailable_gpu_backend_in_one_line(tmp_path: Path) -> None:
    for backend, why in (("torch", "torch"), ("tensorrt", "")):
        proc = subprocess.run(
            [sys.executable, "-m", "server.cli", "serve", "--backend", backend, "--port", "1"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith(f"inkstone: backend '{backend}' cannot run: ")
        assert why in lines[0] and "--fallback-backend onnxruntime" in lines[0]


@pytest.mark.skipif(has_cuda(), reason="this host has a GPU: no fallback happens")
def test_fallback_backend_serves_on_onnxruntime_and_says_so(tmp_path: Path) -> None:
    server = ProcessServer(tmp_path, "--backend", "torch", "--fallback-backend", "onnxruntime")
    server.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as r:
            health = json.loads(r.read())
    finally:
        out = server.terminate()
    backend = health["models"]["zh"]["backend"]
    assert backend["backend"] == "onnxruntime"
    assert backend["fallback"]["requested"] == "torch"
    assert "cannot run" in backend["fallback"]["reason"]
    assert "falling back to 'onnxruntime'" in out or "falling back to onnxruntime" in out


# ---------------------------------------------------------------- torch on the CPU


def test_torch_cpu_matches_onnxruntime() -> None:
    pytest.importorskip("torch")
    backend = create_backend("torch", device="cpu", max_batch=8)
    backend.load(FILES)
    info = backend.describe()
    assert info["precision"] == "fp32" and info["cuda_graphs"] is False
    assert info["buckets"]["sentence"] == 4 * 6  # batches 1..8 x length buckets up to 128
    compare_with_onnxruntime(backend, atol=1e-4)


def test_torch_batched_equals_unbatched() -> None:
    pytest.importorskip("torch")
    backend = create_backend("torch", device="cpu", precapture=False)
    backend.load(FILES)
    together = backend.run("sentence", SENTENCE.encode(TEXTS).feeds)
    for i, text in enumerate(TEXTS):
        alone = backend.run("sentence", SENTENCE.encode([text]).feeds)
        n = alone["spell_detect_prob"].shape[1]
        np.testing.assert_allclose(alone["embedding"][0], together["embedding"][i], atol=1e-5)
        np.testing.assert_allclose(
            alone["spell_cand_probs"][0], together["spell_cand_probs"][i, :n], atol=1e-5
        )


def test_an_operator_the_interpreter_lacks_fails_at_load(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import torch

    from server.backends.onnx_torch import OnnxTorchGraph

    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n"])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n"])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Tanh", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "tanh.onnx"
    onnx.save(onnx.helper.make_model(graph), str(path))
    with pytest.raises(NotImplementedError, match="Tanh"):
        OnnxTorchGraph(path, torch.device("cpu"), torch.float32)


# ---------------------------------------------------------------- the server, end to end


def typing_gives_hints(live: LiveServer) -> dict[str, Any]:
    """Type two sentences; return the welcome's backend description once hints arrive."""

    async def main() -> dict[str, Any]:
        client = StudentClient(live.url, live.token("b1"), "backend-doc", lang="zh")
        welcome = await client.connect()
        await client.type_text("".join(TEXTS[:2]))
        await client.wait_synced()
        final = client.state.version
        await client.session.wait_for(
            lambda m: isinstance(m, Hints) and m.version == final, timeout=30
        )
        assert len(client.state.hints) >= 2
        await client.close()
        return dict(welcome.models["zh"]["backend"])

    return dict(run(main()))


def test_server_with_the_torch_backend_on_cpu(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    settings = Settings(data_dir=tmp_path, backend="torch", device="cpu", **FAST)
    with ThreadServer(settings) as live:
        backend = typing_gives_hints(live)
    assert backend["backend"] == "torch" and backend["device"] == "cpu"
    assert backend["files"]["sentence"] == "sentence_fp32.onnx"


def test_backend_settings_from_flags_and_environment() -> None:
    env = {
        "INKSTONE_BACKEND": "torch",
        "INKSTONE_FALLBACK_BACKEND": "onnxruntime",
        "INKSTONE_CUDA_GRAPHS": "0",
        "INKSTONE_PRECISION": "fp32",
    }
    settings = Settings.from_env(env, data_dir="/srv/ink")
    assert settings.backend == "torch" and settings.fallback_backend == "onnxruntime"
    assert settings.cuda_graphs is False and settings.precision == "fp32"
    assert settings.engine_cache == Path("/srv/ink/engines")
    assert Settings.from_env(env, engine_dir="/plans").engine_cache == Path("/plans")
