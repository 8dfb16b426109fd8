"""GPU tests (skipped without CUDA; run on the H200 through the device tool, bench/gpu.sh).

The torch backend against onnxruntime (FP32 eager and FP16 + CUDA graphs), every captured
graph replayed with fresh inputs against eager execution, the cuda-bindings plumbing of the
TensorRT backend with a CuPy kernel standing in for ``execute_async_v3``, and the server
end to end with ``--backend torch``.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from server.backends import create_backend, probe_backend
from server.config import Settings
from tests.conftest import FAST, ROOT, ThreadServer
from tests.test_backends import FILES, compare_with_onnxruntime, has_cuda, typing_gives_hints

pytestmark = pytest.mark.skipif(not has_cuda(), reason="needs a CUDA GPU")


def test_torch_fp32_eager_on_cuda_matches_onnxruntime() -> None:
    backend = create_backend("torch", precision="fp32", graphs=False, precapture=False)
    backend.load(FILES)
    compare_with_onnxruntime(backend, atol=5e-4)


def test_torch_fp16_graphs_match_onnxruntime() -> None:
    backend = create_backend("torch", max_batch=32)
    backend.load(FILES)
    info = backend.describe()
    assert info["precision"] == "fp16" and info["cuda_graphs"] and info["stream"] == "dedicated"
    compare_with_onnxruntime(backend, atol=2e-2)


def test_every_captured_graph_replays_fresh_inputs_like_eager() -> None:
    graphs = create_backend("torch", max_batch=8)
    graphs.load(FILES)
    eager = create_backend("torch", graphs=False, precapture=False)
    eager.load(FILES)
    rng = np.random.default_rng(0)
    entries = graphs.models["sentence"].entries
    assert len(entries) == 4 * 6 and all(e.graph is not None for e in entries.values())
    for (ids_shape, _mask_shape), entry in list(entries.items()):
        batch, tokens = ids_shape
        for b, t in ((batch, tokens), (batch // 2 + 1, tokens - 5)):  # same bucket
            ids = rng.integers(5, 8900, (b, t))
            mask = np.ones_like(ids)
            mask[-1, t // 2 + 1 :] = 0
            feeds = {"input_ids": ids, "attention_mask": mask}
            got, want = graphs.run("sentence", feeds), eager.run("sentence", feeds)
            for name in want:
                np.testing.assert_allclose(got[name], want[name], atol=1e-3, err_msg=name)
        assert entry.runs == 2
    for entry in graphs.models["essay"].entries.values():
        assert entry.graph is not None


def test_cuda_bindings_plumbing_with_a_standin_kernel() -> None:
    cp = pytest.importorskip("cupy")
    from server.backends import cuda_rt

    n = 1 << 20
    stream = cuda_rt.Stream()
    host_in, host_out = cuda_rt.PinnedBuffer(4 * n), cuda_rt.PinnedBuffer(4 * n)
    dev_in, dev_out = cuda_rt.DeviceBuffer(4 * n), cuda_rt.DeviceBuffer(4 * n)

    def device_array(buf: cuda_rt.DeviceBuffer) -> object:
        memory = cp.cuda.UnownedMemory(buf.ptr, 4 * n, buf)
        return cp.ndarray((n,), cp.float32, cp.cuda.MemoryPointer(memory, 0))

    x, y = device_array(dev_in), device_array(dev_out)
    on_stream = cp.cuda.ExternalStream(stream.ptr)

    def enqueue() -> None:  # what execute_async_v3 would do, on the same stream
        cuda_rt.copy_async(dev_in.ptr, host_in.ptr, 4 * n, True, stream)
        with on_stream:
            cp.multiply(x, 2.0, out=y)
            cp.add(y, 1.0, out=y)
        cuda_rt.copy_async(host_out.ptr, dev_out.ptr, 4 * n, False, stream)

    start, end = cuda_rt.Event(), cuda_rt.Event()
    inputs = host_in.view(np.float32, (n,))
    outputs = host_out.view(np.float32, (n,))
    rng = np.random.default_rng(1)
    inputs[:] = rng.standard_normal(n)
    start.record(stream)
    enqueue()
    end.record(stream)
    stream.synchronize()
    np.testing.assert_allclose(outputs, 2 * inputs + 1, rtol=1e-6)
    assert start.elapsed_ms(end) > 0
    graph = cuda_rt.Graph(stream, enqueue)
    for _ in range(3):  # each replay reads the pinned input as it is now
        inputs[:] = rng.standard_normal(n)
        outputs[:] = np.nan
        graph.launch(stream)
        stream.synchronize()
        np.testing.assert_allclose(outputs, 2 * inputs + 1, rtol=1e-6)
    graph.close()
    for resource in (host_in, host_out, dev_in, dev_out, start, end, stream):
        resource.close()


def test_server_with_the_torch_backend_on_the_gpu(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, backend="torch", **FAST)
    with ThreadServer(settings) as live:
        backend = typing_gives_hints(live)
        with urllib.request.urlopen(f"{live.http}/metrics", timeout=5) as r:
            metrics = r.read().decode()
    assert backend["backend"] == "torch" and backend["device"].startswith("cuda")
    assert backend["precision"] == "fp16" and backend["cuda_graphs"] is True
    assert backend["device_name"] and backend["gpu_memory_bytes"] > 0
    counts = [
        ln for ln in metrics.splitlines() if ln.startswith("inkstone_gpu_batch_seconds_count")
    ]
    assert counts and float(counts[0].split()[-1]) > 0
    memory = [ln for ln in metrics.splitlines() if ln.startswith("inkstone_gpu_memory_bytes")]
    assert memory and float(memory[0].split()[-1]) > 0


def test_tensorrt_is_refused_in_one_line_where_it_cannot_run(tmp_path: Path) -> None:
    reason = probe_backend("tensorrt")
    if reason is None:
        pytest.skip("full TensorRT is installed here: the backend can run")
    proc = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--backend", "tensorrt", "--port", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
