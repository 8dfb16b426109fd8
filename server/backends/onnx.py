"""ONNX Runtime on CPU: the embedded default backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

__all__ = ["OnnxRuntimeBackend"]


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, *, threads: int = 1) -> None:
        self.threads = threads
        self.sessions: dict[str, ort.InferenceSession] = {}
        self.output_names: dict[str, list[str]] = {}
        self.files: dict[str, str] = {}

    def load(self, models: dict[str, Path]) -> None:
        for name, path in models.items():
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
            self.sessions[name] = session
            self.output_names[name] = [o.name for o in session.get_outputs()]
            self.files[name] = path.name

    def warm_up(self, model: str, feeds: dict[str, np.ndarray]) -> None:
        self.run(model, feeds)

    def run(self, model: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.sessions[model].run(None, feeds)
        return dict(zip(self.output_names[model], outputs, strict=True))

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "device": "cpu",
            "version": ort.__version__,
            "threads": self.threads,
            "files": dict(self.files),
        }

    def close(self) -> None:
        self.sessions.clear()
