"""TensorRT engine builds and the versioned engine cache (``inkstone build-engines``).

One serialized plan per shipped ONNX model, built through whichever TensorRT is installed:
full TensorRT (``import tensorrt``) or TensorRT for RTX (``import tensorrt_rtx``), one code
path, features tested with ``hasattr`` (see ../shared/TENSORRT.md for the verified API).

* Precision: FP16 the portable way — an FP16 ONNX (:func:`engines.fp16.to_fp16`, float32
  IO) parsed into a strongly typed network; the FP16 builder flag is used nowhere.
* Shapes: the sentence model gets one optimization profile per length bucket of the
  scheduler (:data:`engines.buckets.LENGTH_BUCKETS`, tokens fixed at the bucket, batch 1 to
  ``max_batch``); the essay model one profile for 1 to ``max_sentences`` sentences.
* Workspace: a memory-pool limit (it caps tactic choice; nothing is preallocated).
* Timing cache: loaded before and saved after every build, one file per TensorRT version
  and device (on TensorRT-RTX the calls are accepted no-ops).
* Cache key: sha256 of the ONNX file + digest of the build config + TensorRT module and
  version + GPU name and compute capability (or the target list of a CPU-only build). A
  sidecar JSON beside each plan records the key, every IO tensor (name, dtype, profile
  shapes) and the build time. A plan whose key no longer matches (another TensorRT, another
  GPU, another model or config) is rebuilt, with one log line saying why.

Imports nothing from server/; never imports torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnx

from engines.buckets import LENGTH_BUCKETS, SENTENCE_BUCKETS, bucket_up
from engines.fp16 import to_fp16

__all__ = [
    "BuildConfig",
    "EngineCache",
    "Identity",
    "build_engine",
    "ensure_engines",
    "import_tensorrt",
    "local_identity",
]

log = logging.getLogger("inkstone.engines")

# TensorRT-RTX with no GPU present builds for these (the Linux targets it runs on).
RTX_CPU_TARGETS = ("SM75", "SM80", "SM86", "SM89", "SM120")


def import_tensorrt() -> Any:
    """Full TensorRT if installed, else TensorRT for RTX; ImportError names both."""
    try:
        import tensorrt as trt  # type: ignore[import-not-found]
    except ImportError:
        try:
            import tensorrt_rtx as trt  # type: ignore[import-not-found]
        except ImportError as exc:
            raise ImportError(
                "neither tensorrt nor tensorrt_rtx is installed (pip install tensorrt-rtx-cu13, "
                "or full TensorRT from NVIDIA's index or an NGC container)"
            ) from exc
    return trt


@dataclass(frozen=True, slots=True)
class BuildConfig:
    """Everything that changes a plan besides the model, TensorRT and the GPU."""

    precision: str = "fp16"  # "fp16" (FP16 ONNX, strongly typed) or "fp32"
    max_batch: int = 32
    max_tokens: int = 128
    max_sentences: int = 96
    workspace_mb: int = 1024
    length_buckets: tuple[int, ...] = LENGTH_BUCKETS
    sentence_buckets: tuple[int, ...] = SENTENCE_BUCKETS

    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def token_buckets(self) -> list[int]:
        top = bucket_up(self.max_tokens, self.length_buckets)
        return [t for t in self.length_buckets if t <= top]


@dataclass(frozen=True, slots=True)
class Identity:
    """Which TensorRT builds and which device the plan is for."""

    module: str  # "tensorrt" or "tensorrt_rtx"
    version: str
    gpu: str  # device name, or "none" for a CPU-only build
    compute_capability: str  # "9.0", or the CPU build's target list ("SM86+SM89")
    extra: dict[str, str] = field(default_factory=dict)  # e.g. RTX's driver major

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def _cuda_device() -> tuple[str, str, str] | None:
    """(name, compute capability, driver major) of GPU 0 via cuda-bindings, if any."""
    try:
        from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]
    except ImportError:
        return None
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or count == 0:
        return None
    err, props = cudart.cudaGetDeviceProperties(0)
    _, driver = cudart.cudaDriverGetVersion()
    name = props.name.decode(errors="replace").rstrip("\0") if err == 0 else "unknown"
    return name, f"{props.major}.{props.minor}", str(driver // 1000)


def local_identity(trt: Any) -> Identity:
    device = _cuda_device()
    rtx = trt.__name__.startswith("tensorrt_rtx")
    if device is None:
        targets = "+".join(RTX_CPU_TARGETS) if rtx else "none"
        return Identity(trt.__name__, trt.__version__, "none", targets)
    name, cc, driver = device
    return Identity(trt.__name__, trt.__version__, name, cc, {"driver": driver} if rtx else {})


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _profiles(kind: str, config: BuildConfig, inputs: list[Any]) -> list[dict[str, Any]]:
    """Per profile: {input name: (min, opt, max)} for the model's dynamic inputs."""
    profiles = []
    if kind == "sentence":
        for t in config.token_buckets():
            dims = {"batch": (1, config.max_batch, config.max_batch), "tokens": (t, t, t)}
            profiles.append(_shapes(inputs, dims))
    else:
        top = bucket_up(config.max_sentences, config.sentence_buckets)
        dims = {"batch": (1, 1, 1), "sentences": (1, min(32, top), top)}
        profiles.append(_shapes(inputs, dims))
    return profiles


def _shapes(inputs: list[Any], dims: dict[str, tuple[int, int, int]]) -> dict[str, Any]:
    out = {}
    for value in inputs:
        shape = [[d.dim_value] * 3 if d.dim_value else dims[d.dim_param] for d in _dims(value)]
        out[value.name] = tuple(tuple(s[k] for s in shape) for k in range(3))
    return out


def _dims(value: Any) -> list[Any]:
    return list(value.type.tensor_type.shape.dim)


def model_kind(model: onnx.ModelProto) -> str:
    names = {d.dim_param for i in model.graph.input for d in _dims(i)}
    return "sentence" if "tokens" in names else "essay"


def build_engine(
    trt: Any, onnx_path: Path, config: BuildConfig, timing_cache: Path | None = None
) -> tuple[bytes, dict[str, Any]]:
    """Serialized plan and its IO description (names, dtypes, per-profile shapes)."""
    logger = trt.Logger(trt.Logger.WARNING)
    model = onnx.load(str(onnx_path))
    kind = model_kind(model)
    profiles = _profiles(kind, config, list(model.graph.input))
    if config.precision == "fp16":
        model = to_fp16(model)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.SerializeToString()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path.name}: TensorRT could not parse the ONNX: {errors}")
    cfg = builder.create_builder_config()
    cfg.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_mb << 20)
    if trt.__name__.startswith("tensorrt_rtx") and _cuda_device() is None:
        cfg.num_compute_capabilities = len(RTX_CPU_TARGETS)
        for i, target in enumerate(RTX_CPU_TARGETS):
            cfg.set_compute_capability(getattr(trt.ComputeCapability, target), i)
    for shapes in profiles:
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in shapes.items():
            profile.set_shape(name, lo, opt, hi)
        cfg.add_optimization_profile(profile)
    cache = None
    if not trt.__name__.startswith("tensorrt_rtx"):  # on RTX the timing cache is a no-op
        old = timing_cache.read_bytes() if timing_cache and timing_cache.exists() else b""
        cache = cfg.create_timing_cache(old)
        cfg.set_timing_cache(cache, False)
    plan = builder.build_serialized_network(network, cfg)
    if plan is None:
        raise RuntimeError(f"{onnx_path.name}: TensorRT failed to build an engine")
    if cache is not None and timing_cache is not None:
        timing_cache.write_bytes(bytes(memoryview(cache.serialize())))
    axes = {
        v.name: {str(k): d.dim_param for k, d in enumerate(_dims(v)) if d.dim_param}
        for v in list(model.graph.input) + list(model.graph.output)
    }
    io = []
    for i in range(network.num_inputs):
        t = network.get_input(i)
        io.append(
            {
                "name": t.name,
                "mode": "input",
                "dtype": str(t.dtype).split(".")[-1].lower(),
                "axes": axes.get(t.name, {}),
                "profiles": [[list(s) for s in p[t.name]] for p in profiles],
            }
        )
    for i in range(network.num_outputs):
        t = network.get_output(i)
        dtype = str(t.dtype).split(".")[-1].lower()
        io.append({"name": t.name, "mode": "output", "dtype": dtype, "axes": axes.get(t.name, {})})
    return bytes(memoryview(plan)), {"kind": kind, "io": io}


class EngineCache:
    """Plans on disk: ``<dir>/<model>.<key>.plan`` with ``<model>.<key>.json`` beside it."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    @staticmethod
    def key(onnx_sha256: str, config: BuildConfig, identity: Identity) -> str:
        parts = [onnx_sha256, config.digest(), identity.digest()]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]

    def plan_path(self, model: str, key: str) -> Path:
        return self.dir / f"{model}.{key}.plan"

    def sidecars(self, model: str) -> list[dict[str, Any]]:
        out = []
        newest_last = sorted(self.dir.glob(f"{model}.*.json"), key=lambda p: p.stat().st_mtime_ns)
        for path in newest_last:
            try:
                out.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
        return out

    def lookup(self, model: str, key: str) -> tuple[Path, dict[str, Any]] | None:
        plan = self.plan_path(model, key)
        sidecar = plan.with_suffix(".json")
        if not plan.exists() or not sidecar.exists():
            return None
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        if meta.get("key") != key or meta.get("plan_sha256") != _sha256(plan):
            return None
        return plan, meta

    def why_stale(self, model: str, onnx_sha: str, config: BuildConfig, ident: Identity) -> str:
        """One line on why the cached plan(s) for ``model`` do not fit (or "none cached")."""
        olds = self.sidecars(model)
        if not olds:
            return "no plan cached"
        old = olds[-1]
        was = old.get("identity", {})
        if old.get("onnx_sha256") != onnx_sha:
            return "the ONNX model changed"
        if old.get("config_digest") != config.digest():
            return "the build config changed"
        if was.get("version") != ident.version or was.get("module") != ident.module:
            return f"built by {was.get('module')} {was.get('version')}, running {ident.version}"
        if was.get("gpu") != ident.gpu or was.get("compute_capability") != ident.compute_capability:
            return (
                f"built for {was.get('gpu')} (CC {was.get('compute_capability')}), "
                f"this is {ident.gpu} (CC {ident.compute_capability})"
            )
        return "the cached plan is damaged"

    def store(
        self, model: str, key: str, plan: bytes, meta: dict[str, Any]
    ) -> tuple[Path, dict[str, Any]]:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.plan_path(model, key)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(plan)
        tmp.replace(path)
        meta = {**meta, "key": key, "plan_sha256": hashlib.sha256(plan).hexdigest()}
        text = json.dumps(meta, indent=1)
        path.with_suffix(".json").write_text(text, encoding="utf-8")
        return path, json.loads(text)  # the same structure a cache hit returns


def ensure_engines(
    models: dict[str, Path],
    cache_dir: Path,
    config: BuildConfig | None = None,
    *,
    trt: Any = None,
    identity: Identity | None = None,
) -> dict[str, tuple[Path, dict[str, Any]]]:
    """A current plan (path, sidecar) per model: from the cache, else built and stored."""
    config = config or BuildConfig()
    trt = trt or import_tensorrt()
    identity = identity or local_identity(trt)
    cache = EngineCache(cache_dir)
    timing = cache_dir / f"timing.{identity.digest()}.cache"
    out = {}
    for name, onnx_path in models.items():
        onnx_sha = _sha256(onnx_path)
        key = cache.key(onnx_sha, config, identity)
        hit = cache.lookup(name, key)
        if hit is not None:
            out[name] = (hit[0], {**hit[1], "from_cache": True})
            continue
        reason = cache.why_stale(name, onnx_sha, config, identity)
        log.info(
            "building the %s engine (%s) with %s %s",
            name,
            reason,
            identity.module,
            identity.version,
        )
        cache_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        plan, io = build_engine(trt, onnx_path, config, timing)
        meta = {
            "model": name,
            "onnx": onnx_path.name,
            "onnx_sha256": onnx_sha,
            "config": asdict(config),
            "config_digest": config.digest(),
            "identity": asdict(identity),
            "build_s": round(time.perf_counter() - started, 3),
            "built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "plan_bytes": len(plan),
            **io,
        }
        out[name] = cache.store(name, key, plan, meta)
    return out
