"""Inference backends behind one small interface (see :mod:`server.backends.base`).

``onnxruntime`` (CPU, the default), ``torch`` (the shipped ONNX graphs as torch ops; FP16,
CUDA graphs and a dedicated stream on a GPU) and ``tensorrt`` (plans from the engine cache
of ``inkstone build-engines``, run through cuda-bindings). :func:`probe_backend` says in one
line why a backend cannot run here, before any model is loaded; :func:`create_backend`
raises :class:`BackendUnavailable` with the same line.
"""

from __future__ import annotations

from typing import Any

from server.backends.base import Backend
from server.backends.errors import BackendUnavailable

__all__ = ["BACKENDS", "Backend", "BackendUnavailable", "create_backend", "probe_backend"]

BACKENDS = ("onnxruntime", "torch", "tensorrt")


def probe_backend(name: str, **options: Any) -> str | None:
    """Why backend ``name`` cannot run on this host, in one line; None when it can."""
    if name == "onnxruntime":
        return None
    if name == "torch":
        try:
            from server.backends.torch_cuda import probe
        except ImportError as exc:
            return f"torch is not installed ({exc.msg}); pip install -e '.[gpu]'"
        return probe(options.get("device", "cuda"))
    if name == "tensorrt":
        from server.backends.tensorrt import probe as trt_probe

        return trt_probe(options.get("engine_dir"))
    return f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}"


def create_backend(name: str, *, threads: int = 1, **options: Any) -> Backend:
    """A backend ready for ``load``; raises BackendUnavailable when it cannot run here."""
    reason = probe_backend(name, **options)
    if reason is not None:
        raise BackendUnavailable(f"backend {name!r} cannot run: {reason}")
    if name == "onnxruntime":
        from server.backends.onnx import OnnxRuntimeBackend

        return OnnxRuntimeBackend(threads=threads)
    if name == "torch":
        from server.backends.torch_cuda import TorchBackend

        return TorchBackend(**options)
    from server.backends.tensorrt import TensorRTBackend

    return TensorRTBackend(**options)
