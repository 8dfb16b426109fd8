"""TensorRT backend: plans from the engine cache, one execution context on a dedicated stream.

``import tensorrt`` else ``tensorrt_rtx`` (one code path, see :mod:`engines.trt_build`).
At load, :func:`engines.trt_build.ensure_engines` returns a plan per model for this
TensorRT and this GPU (rebuilding a stale one); a plan that then fails to deserialize makes
the backend unavailable, in one line. Per (model, shape bucket) the backend allocates once
page-locked host and device buffers (cuda-bindings, :mod:`server.backends.cuda_rt`), selects
the bucket's optimization profile, sets shapes and addresses, runs ``execute_async_v3`` once
uncaptured and then captures it in a CUDA graph that later batches replay. The stream is
used by the scheduler's inference thread only; one execution context per stream.

Where this ran: plans are built in CI with TensorRT-RTX on a CPU; the plumbing is tested on
an H200 with a stand-in kernel; TensorRT execution itself has not run here (no full
TensorRT on the lent machines, and TensorRT-RTX refuses compute capability 9.0).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engines.buckets import LENGTH_BUCKETS, SENTENCE_BUCKETS, bucket_up
from server.backends import cuda_rt
from server.backends.errors import BackendUnavailable

__all__ = ["TensorRTBackend", "probe"]

log = logging.getLogger("inkstone.backends.tensorrt")

# Compute capabilities TensorRT-RTX runs on (Linux), from its support matrix.
RTX_RUNS_ON = ("7.5", "8.0", "8.6", "8.9", "12.0", "12.1")
NP = {"FLOAT": np.float32, "HALF": np.float16, "INT64": np.int64, "INT32": np.int32, "BOOL": bool}


def probe(engine_dir: Path | None = None) -> str | None:
    """Why TensorRT cannot run here, in one line (None if it can try)."""
    try:
        from engines.trt_build import _cuda_device, import_tensorrt

        trt = import_tensorrt()
    except ImportError as exc:
        return str(exc)
    if cuda_rt.cudart is None:
        return "cuda-bindings is not installed (pip install -e '.[gpu]')"
    device = _cuda_device()
    if device is None:
        return "no CUDA device is visible to cuda-bindings"
    name, cc, _ = device
    if trt.__name__.startswith("tensorrt_rtx") and cc not in RTX_RUNS_ON:
        return (
            f"TensorRT-RTX does not run on compute capability {cc} ({name}); "
            "install full TensorRT, or use --backend torch"
        )
    return None


@dataclass(slots=True)
class _Bucket:
    shapes: dict[str, tuple[int, ...]]
    host: cuda_rt.PinnedBuffer
    device: cuda_rt.DeviceBuffer
    offsets: dict[str, int]
    inputs_end: int  # inputs first, then outputs, in one host and one device allocation
    graph: cuda_rt.Graph | None = None


@dataclass(slots=True)
class _Engine:
    engine: Any
    context: Any
    inputs: list[str]
    outputs: list[str]
    dtypes: dict[str, Any]
    dims: dict[str, dict[int, str]]  # named dynamic axes per tensor
    profile_of_tokens: dict[int, int]  # sentence model: length bucket -> profile index
    buckets: dict[tuple[Any, ...], _Bucket] = field(default_factory=dict)
    profile: int = -1


class TensorRTBackend:
    name = "tensorrt"

    def __init__(
        self, *, engine_dir: Path, max_batch: int = 32, max_tokens: int = 128, graphs: bool = True
    ) -> None:
        from engines.trt_build import import_tensorrt

        self.trt = import_tensorrt()
        self.engine_dir = Path(engine_dir)
        self.max_batch = max_batch
        self.max_tokens = max_tokens
        self.use_graphs = graphs
        self.engines: dict[str, _Engine] = {}
        self.meta: dict[str, dict[str, Any]] = {}
        self.stream = cuda_rt.Stream()
        self._start, self._end = cuda_rt.Event(), cuda_rt.Event()
        self.last_gpu_ms: float | None = None

    def load(self, models: dict[str, Path]) -> None:
        from engines.trt_build import BuildConfig, ensure_engines

        config = BuildConfig(max_batch=bucket_up(self.max_batch), max_tokens=self.max_tokens)
        plans = ensure_engines(models, self.engine_dir, config, trt=self.trt)
        logger = self.trt.Logger(self.trt.Logger.WARNING)
        runtime = self.trt.Runtime(logger)
        for name, (path, meta) in plans.items():
            engine = runtime.deserialize_cuda_engine(path.read_bytes())
            if engine is None:
                raise BackendUnavailable(
                    f"the {name} plan {path.name} does not deserialize with "
                    f"{self.trt.__name__} {self.trt.__version__} on this GPU (see the log)"
                )
            self.meta[name] = meta
            self.engines[name] = self._wrap(engine, meta)

    def _wrap(self, engine: Any, meta: dict[str, Any]) -> _Engine:
        trt = self.trt
        inputs, outputs, dtypes = [], [], {}
        for i in range(engine.num_io_tensors):
            n = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT
            (inputs if is_input else outputs).append(n)
            dtypes[n] = NP[str(engine.get_tensor_dtype(n)).split(".")[-1]]
        dims = {io["name"]: io.get("axes", {}) for io in meta["io"]}
        profiles: dict[int, int] = {}
        if meta.get("kind") == "sentence":
            first = next(io for io in meta["io"] if io["mode"] == "input")
            for index, (lo, _, _) in enumerate(first["profiles"]):
                profiles[lo[1]] = index
        context = engine.create_execution_context()
        return _Engine(engine, context, inputs, outputs, dtypes, dims, profiles)

    def warm_up(self, model: str, feeds: dict[str, np.ndarray]) -> None:
        self.run(model, feeds)

    def _bucket(
        self, e: _Engine, feeds: dict[str, np.ndarray]
    ) -> tuple[_Bucket, int, dict[str, int]]:
        first = feeds[e.inputs[0]]
        real = {"batch": first.shape[0], "len": first.shape[1] if first.ndim > 1 else 1}
        if e.profile_of_tokens:
            length = bucket_up(real["len"], LENGTH_BUCKETS)
            profile = e.profile_of_tokens[length]
            batch = bucket_up(real["batch"])
        else:
            length, profile, batch = bucket_up(real["len"], SENTENCE_BUCKETS), 0, 1
        key = (profile, batch, length)
        if key not in e.buckets:
            shapes = {}
            for n in e.inputs:
                shape = list(feeds[n].shape)
                shape[0] = batch
                if len(shape) > 1:
                    shape[1] = length
                shapes[n] = tuple(shape)
            self._select(e, profile, shapes)
            for n in e.outputs:
                shapes[n] = tuple(e.context.get_tensor_shape(n))
            offsets, total, inputs_end = {}, 0, 0
            for n in e.inputs + e.outputs:
                if n == e.outputs[0]:
                    inputs_end = total
                offsets[n] = total
                total += int(np.prod(shapes[n])) * np.dtype(e.dtypes[n]).itemsize
                total = (total + 255) // 256 * 256
            host, device = cuda_rt.PinnedBuffer(total), cuda_rt.DeviceBuffer(total)
            bucket = _Bucket(shapes, host, device, offsets, inputs_end)
            e.buckets[key] = bucket
        return e.buckets[key], profile, real

    def _select(self, e: _Engine, profile: int, shapes: dict[str, tuple[int, ...]]) -> None:
        if e.profile != profile:
            e.context.set_optimization_profile_async(profile, self.stream.ptr)
            e.profile = profile
        for n in e.inputs:
            e.context.set_input_shape(n, shapes[n])
        missing = e.context.infer_shapes()
        if missing:
            raise RuntimeError(f"TensorRT could not infer shapes for {missing}")

    def run(self, model: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        e = self.engines[model]
        b, profile, real = self._bucket(e, feeds)
        b.host.bytes[: b.inputs_end] = 0
        for n in e.inputs:
            view = b.host.view(e.dtypes[n], b.shapes[n], b.offsets[n])
            view[tuple(slice(0, s) for s in feeds[n].shape)] = feeds[n]
        cuda_rt.copy_async(b.device.ptr, b.host.ptr, b.inputs_end, True, self.stream)
        self._start.record(self.stream)
        if b.graph is not None:
            b.graph.launch(self.stream)
        else:
            self._select(e, profile, {n: b.shapes[n] for n in e.inputs})
            for n in e.inputs + e.outputs:
                e.context.set_tensor_address(n, b.device.ptr + b.offsets[n])
            self._execute(e)
            if self.use_graphs and self._capturable(e):  # run once uncaptured, then capture
                b.graph = cuda_rt.Graph(self.stream, lambda: self._execute(e))
                b.graph.launch(self.stream)
        self._end.record(self.stream)
        size = b.host.nbytes - b.inputs_end
        cuda_rt.copy_async(
            b.host.ptr + b.inputs_end, b.device.ptr + b.inputs_end, size, False, self.stream
        )
        self.stream.synchronize()
        self.last_gpu_ms = self._start.elapsed_ms(self._end)
        out = {}
        for n in e.outputs:
            view = b.host.view(e.dtypes[n], b.shapes[n], b.offsets[n])
            index = [slice(None)] * view.ndim
            for axis, dim in e.dims[n].items():
                index[int(axis)] = slice(0, real["batch"] if dim == "batch" else real["len"])
            out[n] = view[tuple(index)].copy()  # the buffer is reused by the next batch
        return out

    def _capturable(self, e: _Engine) -> bool:
        """TensorRT-RTX captures only plans built for user allocation (TENSORRT.md §2)."""
        check = getattr(e.context, "is_stream_capturable", None)
        return check is None or bool(check(self.stream.ptr))

    def _execute(self, e: _Engine) -> None:
        if not e.context.execute_async_v3(self.stream.ptr):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the log)")

    def gpu_memory_bytes(self) -> int | None:
        free, total = cuda_rt.check(cuda_rt.cudart.cudaMemGetInfo(), "cudaMemGetInfo")
        return int(total - free)

    def describe(self) -> dict[str, Any]:
        any_meta = next(iter(self.meta.values()), {})
        ident = any_meta.get("identity", {})
        return {
            "backend": self.name,
            "device": "cuda",
            "device_name": ident.get("gpu"),
            "compute_capability": ident.get("compute_capability"),
            "tensorrt": f"{self.trt.__name__} {self.trt.__version__}",
            "precision": any_meta.get("config", {}).get("precision"),
            "cuda_graphs": self.use_graphs,
            "stream": "dedicated",
            "plans": {n: m.get("key") for n, m in self.meta.items()},
        }

    def close(self) -> None:
        for e in self.engines.values():
            for b in e.buckets.values():
                if b.graph is not None:
                    b.graph.close()
                b.host.close()
                b.device.close()
        self.engines.clear()
        self.stream.close()
