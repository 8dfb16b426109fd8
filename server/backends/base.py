"""The backend interface: load, warm up, run a batch, describe, close.

GPU backends also offer ``last_gpu_ms`` (CUDA-event time of the last batch's kernels) and
``gpu_memory_bytes()``; /metrics reads them when present (``Metrics.observe_backend``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

__all__ = ["Backend"]


class Backend(Protocol):
    name: str

    def load(self, models: dict[str, Path]) -> None:
        """Load each named model file (ONNX); called once, on the worker thread's owner."""

    def warm_up(self, model: str, feeds: dict[str, np.ndarray]) -> None:
        """Run ``feeds`` once so the first real request pays no start-up cost."""

    def run(self, model: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; returns outputs by name."""

    def describe(self) -> dict[str, Any]:
        """What runs where (provider, device, threads, files) for /healthz and welcome."""

    def close(self) -> None: ...
