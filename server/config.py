"""Server settings: one frozen dataclass; flags and ``INKSTONE_*`` environment variables fill it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = field(default_factory=lambda: Path("data"))
    backend: str = "onnxruntime"  # onnxruntime | torch | tensorrt
    secret: str | None = None  # None → dev mode with the public dev secret
    # Debounce: analyse after a quiet period, or at the latest max_wait after the first
    # unanalysed edit while typing goes on.
    debounce_quiet_ms: int = 300
    debounce_max_ms: int = 1000
    # Limits announced in welcome.
    max_message_bytes: int = 256 * 1024
    max_document_chars: int = 50_000
    max_messages_per_second: float = 40.0
    rate_burst: int = 80
    max_changes_per_edit: int = 64
    max_violations: int = 20  # errors in a row before the connection is closed (1008)
    send_queue_limit: int = 512  # frames buffered for a slow reader before it is dropped
    # A reader is "slow" when its unread backlog stays above send_queue_bytes for
    # slow_consumer_grace_s with no frame written, or exceeds 4 × send_queue_bytes:
    # one large frame on an empty queue is not a slow reader.
    send_queue_bytes: int = 4 * 1024 * 1024
    slow_consumer_grace_s: float = 10.0
    # Per user, across all their connections (reconnecting does not refill them).
    max_bytes_per_second: int = 32 * 1024  # bytes of frames, sustained
    byte_burst: int = 512 * 1024  # a pasted 50k-character essay (150 kB) fits three times
    max_sessions_per_second: float = 1.0  # hellos per user (a reconnect loop is costly)
    session_burst: int = 30  # an editor opening many files at once still fits
    max_documents_per_student: int = 100  # per class; a new one beyond is refused
    storage_quota_bytes: int = 16 * 1024 * 1024  # per student per class (snapshots + logs)
    # Hint caps: per sentence (and per code within it), per document; beyond, summaries.
    max_hints_per_sentence: int = 20
    max_hints_per_code: int = 5
    max_hints_per_document: int = 300
    # Analyses and scorings running at once; when more are due, the documents of the
    # owners who used the least analysis work recently (half-life) go first.
    # (enough for batching: ~300 typing students keep ~30 analyses in flight)
    analysis_concurrency: int = 64
    heavy_analysis_slots: int = 2  # of those, for huge documents or heavy owners
    max_model_sentences_per_analysis: int = 64  # more new sentences: the rest next time
    fairness_half_life_s: float = 10.0
    hints_frame_sentences: int = 200  # a larger hints/snapshot message is sent in parts
    stream_low_water: int = 8  # class snapshots are paced: sent while fewer frames wait
    # Inference.
    threads: int = 1  # onnxruntime intra-op threads per session
    # When --backend cannot run here: "" refuses to start (one line says why), else the
    # backend to run instead (only "onnxruntime" makes sense), with a warning.
    fallback_backend: str = ""
    # GPU backends: "" = fp16 on CUDA (torch, tensorrt), fp32 on CPU; or "fp16" | "fp32".
    precision: str = ""
    device: str = "cuda"  # torch backend: "cuda" or "cpu" (FP32, no graphs: for tests)
    cuda_graphs: bool = True  # torch: replay captured CUDA graphs per shape bucket
    engine_dir: str = ""  # TensorRT engine cache; "" = <data_dir>/engines
    # Sentence model artifact ("sentence_fp32" | "sentence_int8"); empty = the manifest's
    # default (engines/manifest.json sentence_model.model_file).
    sentence_model: str = ""
    # A folder with a release's manifest.json and artifacts (engines.feedback installs
    # fine-tuned releases there); empty = the shipped engines/. Re-read on reload-models.
    models_dir: str = ""
    queue_limit: int = 4096  # sentences waiting for the model before "overloaded"
    batch_window_ms: float = 3.0
    max_batch_sentences: int = 32
    max_batch_tokens: int = 2048
    cache_size: int = 50_000
    # The essay model re-scores a document at most this often (its latest analysis);
    # hints are never delayed by it.
    score_interval_ms: int = 1500
    # Storage.
    snapshot_every: int = 100  # edits between full-text snapshots
    sqlite_synchronous: str = "NORMAL"  # WAL + NORMAL survives kill -9 of the process
    sqlite_max_pages: int = 0  # >0 caps the database size (pages): simulates a full disk
    idle_after_s: float = 60.0  # presence "idle" after this long without edits
    # Several nodes (issue 12; docs/scale.md). Empty: SQLite in data_dir, in-process bus.
    store: str = ""  # postgresql://… : PostgreSQL with group commit
    bus: str = ""  # redis://… : Redis 7 sharded pub/sub between nodes
    node_id: str = ""  # this node's name on the bus (default host:port:pid)
    commit_tick_ms: float = 10.0  # PostgreSQL group commit: a tick's edits in one COMMIT
    # Fault hooks for the durability tests (off by default): crash_before_commit,
    # crash_before_ack, ack_before_commit (the control run that must lose an acked edit).
    fault_hook: str = ""
    fault_after_edits: int = 0  # the hook fires at the group commit holding this edit
    log_json: bool = False
    # Network hardening (issue 9; server/netguard.py, server/auth.py, server/app.py).
    handshake_timeout_s: float = 10.0  # to send complete request headers / finish the upgrade
    max_connections: int = 10_000  # open sockets; kept fd_reserve below RLIMIT_NOFILE
    max_connections_per_ip: int = 2_000  # must stay below max_connections
    fd_reserve: int = 128  # descriptors kept free for SQLite, model files, logs
    max_token_lifetime_s: int = 7 * 24 * 3600  # exp − iat above this → unauthorized
    allow_dev_mode_on_network: bool = False  # dev mode (no secret) binds loopback only
    metrics_token: str = ""  # non-empty: /metrics needs "Authorization: Bearer <token>"
    log_burst: int = 10  # log records per (logger, message) per log_interval_s, then summed
    log_interval_s: float = 60.0

    @property
    def engine_cache(self) -> Path:
        return Path(self.engine_dir) if self.engine_dir else self.data_dir / "engines"

    @property
    def dev_mode(self) -> bool:
        return not self.secret

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Defaults, then ``INKSTONE_<FIELD>`` variables, then explicit overrides (flags)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"INKSTONE_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _convert(f.name, raw, cls)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "data_dir" in values:
            values["data_dir"] = Path(str(values["data_dir"]))
        return cls(**values)  # type: ignore[arg-type]


def _convert(name: str, raw: str, cls: type[Settings]) -> object:
    default = getattr(cls(), name)
    if isinstance(default, bool):
        return raw.lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, Path):
        return Path(raw)
    return raw
