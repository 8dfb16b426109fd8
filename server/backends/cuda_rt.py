"""CUDA plumbing through cuda-bindings (``cuda.bindings.runtime``), nothing torch-specific.

The TensorRT backend's stream, page-locked host buffers, device buffers, events, async
copies and CUDA-graph capture. cuda-bindings stands in for pycuda: NVIDIA maintains it,
it installs as prebuilt wheels with cudart linked in (a driver is all it needs, no
compiler at install time), and TensorRT's own samples moved to it (TENSORRT.md §4). Every
call returns ``(err, *values)``; :func:`check` turns a non-zero error into
:class:`CudaError` naming the call.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

__all__ = [
    "CudaError",
    "DeviceBuffer",
    "Event",
    "Graph",
    "PinnedBuffer",
    "Stream",
    "check",
    "copy_async",
    "cudart",
]

try:
    from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]
except ImportError:  # the backends that need it report this through their probe()
    cudart = None


class CudaError(RuntimeError):
    pass


def check(result: Any, what: str = "CUDA call") -> Any:
    """``(err, *values)`` → the value(s); raises CudaError on an error code."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        _, name = cudart.cudaGetErrorName(err)
        raise CudaError(f"{what} failed: {name.decode() if isinstance(name, bytes) else name}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


class Stream:
    """A non-blocking stream (it never waits for the legacy default stream)."""

    def __init__(self) -> None:
        self.handle = check(
            cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking), "cudaStreamCreate"
        )

    @property
    def ptr(self) -> int:
        return int(self.handle)

    def synchronize(self) -> None:
        check(cudart.cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def close(self) -> None:
        if self.handle is not None:
            check(cudart.cudaStreamDestroy(self.handle), "cudaStreamDestroy")
            self.handle = None


class PinnedBuffer:
    """Page-locked host memory with a numpy view (async copies need it)."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = max(1, nbytes)
        self.ptr = int(check(cudart.cudaMallocHost(self.nbytes), "cudaMallocHost"))
        raw = (ctypes.c_uint8 * self.nbytes).from_address(self.ptr)
        self.bytes = np.ctypeslib.as_array(raw)

    def view(self, dtype: Any, shape: tuple[int, ...], offset: int = 0) -> np.ndarray:
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return self.bytes[offset : offset + n].view(dtype).reshape(shape)

    def close(self) -> None:
        if self.ptr:
            check(cudart.cudaFreeHost(self.ptr), "cudaFreeHost")
            self.ptr = 0


class DeviceBuffer:
    def __init__(self, nbytes: int) -> None:
        self.nbytes = max(1, nbytes)
        self.ptr = int(check(cudart.cudaMalloc(self.nbytes), "cudaMalloc"))

    def close(self) -> None:
        if self.ptr:
            check(cudart.cudaFree(self.ptr), "cudaFree")
            self.ptr = 0


def copy_async(dst: int, src: int, nbytes: int, to_device: bool, stream: Stream) -> None:
    kind = (
        cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        if to_device
        else cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
    )
    check(cudart.cudaMemcpyAsync(dst, src, nbytes, kind, stream.handle), "cudaMemcpyAsync")


class Event:
    def __init__(self, timing: bool = True) -> None:
        flags = cudart.cudaEventDefault if timing else cudart.cudaEventDisableTiming
        self.handle = check(cudart.cudaEventCreateWithFlags(flags), "cudaEventCreate")

    def record(self, stream: Stream) -> None:
        check(cudart.cudaEventRecord(self.handle, stream.handle), "cudaEventRecord")

    def elapsed_ms(self, end: Event) -> float:
        check(cudart.cudaEventSynchronize(end.handle), "cudaEventSynchronize")
        return float(check(cudart.cudaEventElapsedTime(self.handle, end.handle), "elapsed"))

    def close(self) -> None:
        check(cudart.cudaEventDestroy(self.handle), "cudaEventDestroy")


class Graph:
    """Capture the work a callable enqueues on ``stream``; replay it with :meth:`launch`."""

    def __init__(self, stream: Stream, enqueue: Any) -> None:
        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        check(cudart.cudaStreamBeginCapture(stream.handle, mode), "cudaStreamBeginCapture")
        try:
            enqueue()
        finally:
            graph = check(cudart.cudaStreamEndCapture(stream.handle), "cudaStreamEndCapture")
        self.graph = graph
        self.exec = check(cudart.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")

    def launch(self, stream: Stream) -> None:
        check(cudart.cudaGraphLaunch(self.exec, stream.handle), "cudaGraphLaunch")

    def close(self) -> None:
        check(cudart.cudaGraphExecDestroy(self.exec), "cudaGraphExecDestroy")
        check(cudart.cudaGraphDestroy(self.graph), "cudaGraphDestroy")
