"""Inference backends behind one small interface (see :mod:`server.backends.base`)."""

from __future__ import annotations

from server.backends.base import Backend

__all__ = ["Backend", "create_backend"]


def create_backend(name: str, *, threads: int = 1) -> Backend:
    if name == "onnxruntime":
        from server.backends.onnx import OnnxRuntimeBackend

        return OnnxRuntimeBackend(threads=threads)
    raise ValueError(
        f"unknown backend {name!r}; this build ships 'onnxruntime' "
        "(the GPU backends 'torch' and 'tensorrt' come with the [gpu] extra)"
    )
