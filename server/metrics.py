"""Prometheus metrics, in a registry per app (tests run several apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.4, 0.6, 1.0, 1.5, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge(
            "inkstone_connections", "Open WebSocket connections", ["role"], registry=r
        )
        self.messages = Counter(
            "inkstone_messages_total", "Messages received, by type", ["type"], registry=r
        )
        self.sent = Counter(
            "inkstone_frames_sent_total", "Frames sent, by type", ["type"], registry=r
        )
        self.errors = Counter(
            "inkstone_errors_total", "Error frames sent, by code", ["code"], registry=r
        )
        self.edit_to_hints = Histogram(
            "inkstone_edit_to_hints_seconds",
            "From receipt of the oldest unanalysed edit to hints sent (includes debounce)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.analysis = Histogram(
            "inkstone_analysis_seconds",
            "From debounce firing to hints sent (debounce excluded)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge("inkstone_queue_depth", "Inference requests waiting", registry=r)
        self.batch_size = Histogram(
            "inkstone_batch_size",
            "Sentences per inference batch",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.cache_hits = Counter("inkstone_cache_hits_total", "Sentence cache hits", registry=r)
        self.cache_misses = Counter(
            "inkstone_cache_misses_total", "Sentence cache misses", registry=r
        )
        self.cache_hit_rate = Gauge(
            "inkstone_cache_hit_rate", "Sentence cache hit rate", registry=r
        )
        self.documents = Gauge("inkstone_documents_open", "Documents held in memory", registry=r)
        self.edits = Counter(
            "inkstone_edits_applied_total", "Edits and replaces applied", registry=r
        )
        self.gpu_batch = Histogram(
            "inkstone_gpu_batch_seconds",
            "GPU time of one inference batch (CUDA events around the kernels; GPU backends)",
            buckets=(0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1),
            registry=r,
        )
        self.gpu_memory = Gauge(
            "inkstone_gpu_memory_bytes", "GPU memory held by the inference backend", registry=r
        )

    def observe_backend(self, backend: object) -> None:
        """After a batch: the backend's GPU time and memory, if it runs on a GPU."""
        gpu_ms = getattr(backend, "last_gpu_ms", None)
        if gpu_ms is not None:
            self.gpu_batch.observe(gpu_ms / 1000)
        memory = getattr(backend, "gpu_memory_bytes", None)
        if memory is not None and (held := memory()) is not None:
            self.gpu_memory.set(held)
