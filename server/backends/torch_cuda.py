"""PyTorch backend: the shipped ONNX models run as torch ops, FP16 + CUDA graphs on a GPU.

Weights come from the shipped ONNX files through :mod:`server.backends.onnx_torch` (no
second copy of the weights anywhere). Every request is padded to a *shape bucket*: its
batch to the next power of two, its ``tokens`` axis to the scheduler's length buckets
(:data:`engines.buckets.LENGTH_BUCKETS`), an essay's ``sentences`` axis to
:data:`engines.buckets.SENTENCE_BUCKETS`. Each bucket owns, allocated once: page-locked
host buffers (one per input dtype and one per output dtype, so a batch costs one copy in
and one or two out), device buffers, the specialised program and — on CUDA, after one eager
warm-up run — a captured CUDA graph. Every copy and kernel is issued on one dedicated
``torch.cuda.Stream``; the scheduler's inference thread is the only caller. Padding does not
change the answer for real rows and tokens: padded tokens are masked out of attention and
pooling, padded rows are dropped.

On ``device="cpu"`` the same bucketing and programs run in FP32 without streams or graphs;
CI tests the backend that way against onnxruntime.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engines.buckets import LENGTH_BUCKETS, SENTENCE_BUCKETS, bucket_up
from server.backends.errors import BackendUnavailable
from server.backends.onnx_torch import OnnxTorchGraph, Program, dynamic_axes

__all__ = ["TorchBackend", "probe"]

log = logging.getLogger("inkstone.backends.torch")

NP_DTYPES = {torch.float32: np.float32, torch.int64: np.int64, torch.bool: np.bool_}


def probe(device: str = "cuda") -> str | None:
    """Why this backend cannot run here (None if it can)."""
    if device == "cuda" and not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device"
    return None


def _axis_sizes(names: dict[int, str], shape: tuple[int, ...], sizes: dict[str, int]) -> None:
    for axis, name in names.items():
        sizes[name] = max(sizes.get(name, 0), shape[axis])


@dataclass(slots=True)
class _Packed:
    """Tensors of one dtype laid end to end in one flat buffer (host and device)."""

    dtype: torch.dtype
    shapes: list[tuple[int, ...]]
    host: torch.Tensor
    device: torch.Tensor

    def views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        out, at = [], 0
        for shape in self.shapes:
            n = int(np.prod(shape)) if shape else 1
            out.append(flat[at : at + n].view(shape))
            at += n
        return out


@dataclass(slots=True)
class _Entry:
    """Everything one (model, shape bucket) needs, allocated once."""

    inputs: dict[torch.dtype, _Packed]
    input_views: list[torch.Tensor]  # device views, in the model's input order
    outputs: dict[torch.dtype, _Packed]
    output_dtype: list[torch.dtype]  # per output, the packed group it lives in
    program: Program
    graph: Any = None  # torch.cuda.CUDAGraph once captured
    runs: int = 0


@dataclass(slots=True)
class _Model:
    graph: OnnxTorchGraph
    axes: dict[str, dict[str, dict[int, str]]]
    file: str
    entries: dict[tuple[tuple[int, ...], ...], _Entry] = field(default_factory=dict)


class TorchBackend:
    name = "torch"

    def __init__(
        self,
        *,
        device: str = "cuda",
        precision: str = "",
        graphs: bool = True,
        max_batch: int = 32,
        max_tokens: int = 128,
        precapture: bool = True,
    ) -> None:
        reason = probe(device)
        if reason:
            raise BackendUnavailable(reason)
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.precision = precision or ("fp16" if self.cuda else "fp32")
        if self.precision not in ("fp16", "fp32"):
            raise ValueError(f"precision must be fp16 or fp32, not {self.precision!r}")
        self.dtype = torch.float16 if self.precision == "fp16" else torch.float32
        self.use_graphs = graphs and self.cuda
        self.max_batch = max_batch
        self.max_tokens = max_tokens
        self.precapture = precapture
        self.models: dict[str, _Model] = {}
        self.stream: Any = None
        self.pool: Any = None
        self.last_gpu_ms: float | None = None
        self.capture_s = 0.0
        if self.cuda:
            self.stream = torch.cuda.Stream(self.device)
            self.pool = torch.cuda.graph_pool_handle() if self.use_graphs else None
            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)

    # ------------------------------------------------------------ load and warm up

    def load(self, models: dict[str, Path]) -> None:
        with torch.inference_mode():
            for name, path in models.items():
                self.models[name] = _Model(
                    OnnxTorchGraph(path, self.device, self.dtype), dynamic_axes(path), path.name
                )
        if self.precapture:
            self.prepare()

    def prepare(self) -> None:
        """Specialise (and on CUDA capture) every bucket the scheduler can send."""
        started = time.perf_counter()
        batches = [b for b in (1 << i for i in range(12)) if b <= bucket_up(self.max_batch)]
        for name, model in self.models.items():
            dims = {n for per in model.axes["inputs"].values() for n in per.values()}
            if "tokens" in dims:
                for b in batches:
                    for t in LENGTH_BUCKETS:
                        if t > bucket_up(self.max_tokens, LENGTH_BUCKETS):
                            break
                        self._entry(name, {"batch": b, "tokens": t})
            elif "sentences" in dims:
                for s in SENTENCE_BUCKETS:
                    self._entry(name, {"batch": 1, "sentences": s})
        self.capture_s = time.perf_counter() - started

    def warm_up(self, model: str, feeds: dict[str, np.ndarray]) -> None:
        self.run(model, feeds)

    # ------------------------------------------------------------ buckets

    @staticmethod
    def padded(sizes: dict[str, int]) -> dict[str, int]:
        out = {}
        for name, n in sizes.items():
            if name == "tokens":
                out[name] = bucket_up(n, LENGTH_BUCKETS)
            elif name == "sentences":
                out[name] = bucket_up(n, SENTENCE_BUCKETS)
            elif name == "batch":
                out[name] = bucket_up(n)
            else:
                out[name] = n
        return out

    def _entry(self, name: str, sizes: dict[str, int]) -> _Entry:
        model = self.models[name]
        g = model.graph
        shapes = []
        for inp in g.input_names:
            base = list(self._example_shape(model, inp))
            for axis, dim in model.axes["inputs"][inp].items():
                base[axis] = sizes[dim]
            shapes.append(tuple(base))
        key = tuple(shapes)
        entry = model.entries.get(key)
        if entry is None:
            entry = self._build(model, key)
            model.entries[key] = entry
        return entry

    @staticmethod
    def _example_shape(model: _Model, inp: str) -> tuple[int, ...]:
        return model.graph.input_shapes[inp]

    def _build(self, model: _Model, shapes: tuple[tuple[int, ...], ...]) -> _Entry:
        g = model.graph
        dtypes = [g.input_dtypes[n] for n in g.input_names]
        inputs = self._pack(list(zip(dtypes, shapes, strict=True)))
        views: list[torch.Tensor] = [torch.empty(0)] * len(shapes)
        for dtype, packed in inputs.items():
            idx = [i for i, d in enumerate(dtypes) if d == dtype]
            for i, v in zip(idx, packed.views(packed.device), strict=True):
                views[i] = v
        with self._on_stream(), torch.inference_mode():
            if self.cuda:  # weights and buffers were made on the default stream
                self.stream.wait_stream(torch.cuda.default_stream(self.device))
            for v in views:  # a valid example: token 1 everywhere, mask 1 (no NaN paths)
                v.fill_(1)
            program, outs = g.specialise(views)
            outs = [o.float() if o.is_floating_point() else o for o in outs]
            out_dtypes = [o.dtype for o in outs]
            outputs = self._pack([(o.dtype, tuple(o.shape)) for o in outs])
            entry = _Entry(inputs, views, outputs, out_dtypes, program)
            self._compute(entry)  # second eager run: the allocator settles before capture
            if self.use_graphs:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(
                    graph, pool=self.pool, stream=self.stream, capture_error_mode="thread_local"
                ):
                    self._compute(entry)
                entry.graph = graph
        if self.cuda:
            self.stream.synchronize()
        return entry

    def _pack(self, specs: list[tuple[torch.dtype, tuple[int, ...]]]) -> dict[torch.dtype, _Packed]:
        groups: dict[torch.dtype, list[tuple[int, ...]]] = {}
        for dtype, shape in specs:
            groups.setdefault(dtype, []).append(shape)
        packed = {}
        for dtype, shapes in groups.items():
            n = sum(int(np.prod(s)) if s else 1 for s in shapes)
            host = torch.zeros(n, dtype=dtype, pin_memory=self.cuda)
            device = torch.zeros(n, dtype=dtype, device=self.device)
            packed[dtype] = _Packed(dtype, shapes, host, device)
        return packed

    def _compute(self, entry: _Entry) -> None:
        """The captured region: the model, then its outputs packed into the output buffers."""
        outs = entry.program.run(entry.input_views)
        for dtype, packed in entry.outputs.items():
            chosen = [o for o, d in zip(outs, entry.output_dtype, strict=True) if d == dtype]
            flat = [o.reshape(-1).to(dtype) for o in chosen]
            torch.cat(flat, out=packed.device) if len(flat) > 1 else packed.device.copy_(flat[0])

    def _on_stream(self) -> Any:
        if self.cuda:
            return torch.cuda.stream(self.stream)
        return _Null()

    # ------------------------------------------------------------ run

    def run(self, model: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        m = self.models[model]
        g = m.graph
        sizes: dict[str, int] = {}
        for inp in g.input_names:
            _axis_sizes(m.axes["inputs"][inp], feeds[inp].shape, sizes)
        entry = self._entry(model, self.padded(sizes))
        for dtype, packed in entry.inputs.items():
            host = packed.host.numpy()
            host.fill(0)
            at = 0
            names = [n for n in g.input_names if g.input_dtypes[n] == dtype]
            for inp, shape in zip(names, packed.shapes, strict=True):
                n = int(np.prod(shape)) if shape else 1
                view = host[at : at + n].reshape(shape)
                value = feeds[inp]
                view[tuple(slice(0, s) for s in value.shape)] = value
                at += n
        with self._on_stream(), torch.inference_mode():
            for packed in entry.inputs.values():
                packed.device.copy_(packed.host, non_blocking=self.cuda)
            if self.cuda:
                self._start.record(self.stream)
            if entry.graph is not None:
                entry.graph.replay()
            else:
                self._compute(entry)
            if self.cuda:
                self._end.record(self.stream)
            for packed in entry.outputs.values():
                packed.host.copy_(packed.device, non_blocking=self.cuda)
        if self.cuda:
            self.stream.synchronize()
            self.last_gpu_ms = self._start.elapsed_time(self._end)
        entry.runs += 1
        return self._unpack(m, entry, sizes)

    def _unpack(self, m: _Model, entry: _Entry, sizes: dict[str, int]) -> dict[str, np.ndarray]:
        result: dict[str, np.ndarray] = {}
        views = {d: p.views(p.host) for d, p in entry.outputs.items()}
        counters = dict.fromkeys(views, 0)
        for name, dtype in zip(m.graph.output_names, entry.output_dtype, strict=True):
            view = views[dtype][counters[dtype]]
            counters[dtype] += 1
            index = [slice(None)] * view.dim()
            for axis, dim in m.axes["outputs"][name].items():
                index[axis] = slice(0, sizes[dim])
            result[name] = view[tuple(index)].numpy().copy()  # the buffer is reused next run
        return result

    # ------------------------------------------------------------ describe, close

    def gpu_memory_bytes(self) -> int | None:
        return int(torch.cuda.memory_reserved(self.device)) if self.cuda else None

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "backend": self.name,
            "device": str(self.device),
            "precision": self.precision,
            "cuda_graphs": self.use_graphs,
            "torch": torch.__version__,
            "files": {n: m.file for n, m in self.models.items()},
            "buckets": {n: len(m.entries) for n, m in self.models.items()},
            "prepare_s": round(self.capture_s, 3),
        }
        if self.cuda:
            props = torch.cuda.get_device_properties(self.device)
            info.update(
                device_name=props.name,
                compute_capability=f"{props.major}.{props.minor}",
                cuda=torch.version.cuda,
                stream="dedicated",
                gpu_memory_bytes=self.gpu_memory_bytes(),
            )
        return info

    def close(self) -> None:
        self.models.clear()
        if self.cuda:
            torch.cuda.empty_cache()


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
