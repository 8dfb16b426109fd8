"""``inkstone`` command line: serve, token, client, lsp, loadgen."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

import uvicorn

__all__ = ["main"]


def _serve(args: argparse.Namespace) -> int:
    from server.app import create_app
    from server.config import Settings
    from server.logs import configure_logging
    from server.netguard import NetworkPolicyError, check_bind, listen, uvicorn_config

    settings = Settings.from_env(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        backend=args.backend,
        secret=args.secret,
        debounce_quiet_ms=args.debounce_ms,
        debounce_max_ms=args.debounce_max_ms,
        threads=args.threads,
        sentence_model=args.sentence_model,
        models_dir=args.models_dir,
        log_json=args.log_json or None,
        handshake_timeout_s=args.handshake_timeout,
        max_connections=args.max_connections,
        max_connections_per_ip=args.max_connections_per_ip,
        metrics_token=args.metrics_token,
        allow_dev_mode_on_network=args.allow_dev_mode_on_network or None,
        fallback_backend=args.fallback_backend,
        precision=args.precision,
        device=args.device,
        cuda_graphs=False if args.no_cuda_graphs else None,
        engine_dir=args.engine_dir,
        store=args.store,
        bus=args.bus,
    )
    try:
        check_bind(settings)  # before loading models: fail fast, one line
    except NetworkPolicyError as exc:
        print(f"inkstone serve: {exc}", file=sys.stderr)
        return 2
    limiter = configure_logging(
        json_lines=settings.log_json, burst=settings.log_burst, interval_s=settings.log_interval_s
    )
    if not args.no_models and (refusal := _backend_refusal(settings)) is not None:
        print(refusal, file=sys.stderr)
        return 2
    app = create_app(settings, load_models=not args.no_models)
    config = uvicorn_config(app, settings)
    server = GracefulServer(config)
    server.runtime = app.state.runtime
    server.after_shutdown = limiter.flush  # uvicorn re-raises SIGTERM: atexit would not run
    server.run(sockets=[listen(config)])  # the caps apply inside accept()
    return 0


def _backend_refusal(settings: Any) -> str | None:
    """One line when the configured backend cannot run here and no fallback is allowed."""
    from server.backends import probe_backend

    options = {"device": settings.device, "engine_dir": settings.engine_cache}
    reason = probe_backend(settings.backend, **options)
    if reason is None:
        return None
    if settings.fallback_backend and probe_backend(settings.fallback_backend) is None:
        logging.getLogger("inkstone").warning(
            "backend %r cannot run (%s); falling back to %r",
            settings.backend,
            reason,
            settings.fallback_backend,
        )
        return None
    return (
        f"inkstone: backend {settings.backend!r} cannot run: {reason} "
        "(choose another --backend, or allow --fallback-backend onnxruntime)"
    )


class GracefulServer(uvicorn.Server):
    """Closes our sockets with 1001 before uvicorn's own shutdown (which would send 1012)."""

    runtime: Any = None
    after_shutdown: Any = None

    async def shutdown(self, sockets: Any = None) -> None:
        if self.runtime is not None:
            await self.runtime.close_sockets()
            await asyncio.sleep(0.2)
        await super().shutdown(sockets)
        if self.after_shutdown is not None:
            self.after_shutdown()


def _token(args: argparse.Namespace) -> int:
    from server.auth import mint_token
    from server.config import Settings

    secret = args.secret or os.environ.get("INKSTONE_SECRET") or None
    limit = Settings.from_env().max_token_lifetime_s
    if not 0 < args.ttl <= limit:
        print(
            f"inkstone token: --ttl must be between 1 and {limit} s (the server's "
            "max_token_lifetime_s, INKSTONE_MAX_TOKEN_LIFETIME_S); a server refuses longer tokens",
            file=sys.stderr,
        )
        return 2
    if not secret:
        print(
            "warning: no secret given; signing with the PUBLIC dev secret (dev-mode servers only)",
            file=sys.stderr,
        )
    print(
        mint_token(
            secret,
            user=args.user,
            role=args.role,
            class_id=args.class_id,
            ttl_s=args.ttl,
            max_lifetime_s=limit,
            student=args.student,
        )
    )
    return 0


def _export_feedback(args: argparse.Namespace) -> int:
    import json

    from server.feedback_export import export_feedback

    print(json.dumps(export_feedback(args.data_dir, args.out), indent=1))
    return 0


def _reload_models(args: argparse.Namespace) -> int:
    """SIGHUP the server whose pid file is in the data dir: it loads the models again."""
    import signal

    pid_file = args.data_dir / "inkstone.pid"
    if not pid_file.exists():
        print(f"no server pid file in {args.data_dir}", file=sys.stderr)
        return 1
    os.kill(int(pid_file.read_text().strip()), signal.SIGHUP)
    print(f"asked server {pid_file.read_text().strip()} to reload its models")
    return 0


def _client(args: argparse.Namespace) -> int:
    from server.typing_client import stream_file

    return asyncio.run(stream_file(args))


def _build_engines(args: argparse.Namespace) -> int:
    """ONNX -> TensorRT plan per shipped model, into the engine cache (rebuilt if stale)."""
    from engines.runtime import EssayCodec, SentenceCodec, load_manifest
    from engines.trt_build import BuildConfig, ensure_engines

    manifest = load_manifest()
    sentence = SentenceCodec(manifest)
    models = {"sentence": sentence.fp32_file, "essay": EssayCodec(manifest).model_file}
    config = BuildConfig(
        precision=args.precision,
        max_batch=args.max_batch,
        max_tokens=sentence.max_tokens,
        max_sentences=int(manifest["essay_model"]["max_sentences"]),
        workspace_mb=args.workspace_mb,
    )
    engine_dir = args.engine_dir or args.data_dir / "engines"
    try:
        plans = ensure_engines(models, engine_dir, config)
    except ImportError as exc:
        print(f"inkstone build-engines: {exc}", file=sys.stderr)
        return 2
    for name, (path, meta) in plans.items():
        ident = meta["identity"]
        how = "cached, built" if meta.get("from_cache") else "built"
        print(
            f"{name}: {path} ({meta['plan_bytes'] / 1e6:.1f} MB, {how} in {meta['build_s']} s "
            f"by {ident['module']} {ident['version']} for {ident['gpu']} "
            f"CC {ident['compute_capability']})"
        )
    return 0


def _lsp(args: argparse.Namespace) -> int:
    from editors.lsp import main as lsp_main

    return lsp_main(args)


def _loadgen(args: argparse.Namespace) -> int:
    from server.loadgen.run import main as loadgen_main

    return loadgen_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inkstone", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000)")
    serve.add_argument("--data-dir", type=Path, default=None, help="SQLite folder (default ./data)")
    serve.add_argument(
        "--backend",
        default=None,
        choices=("onnxruntime", "torch", "tensorrt"),
        help="onnxruntime (CPU, default) | torch (CUDA, FP16 + graphs) | tensorrt",
    )
    serve.add_argument(
        "--fallback-backend",
        default=None,
        choices=("onnxruntime",),
        help="run this backend, with a warning, when --backend cannot run here",
    )
    serve.add_argument("--precision", default=None, choices=("fp16", "fp32"), help="GPU backends")
    serve.add_argument("--device", default=None, help="torch backend: cuda (default) or cpu")
    serve.add_argument(
        "--no-cuda-graphs", action="store_true", help="torch: launch kernels, no graph replay"
    )
    serve.add_argument(
        "--engine-dir", default=None, help="TensorRT engine cache (default <data-dir>/engines)"
    )
    serve.add_argument("--secret", default=None, help="token secret; none means dev mode")
    serve.add_argument("--debounce-ms", type=int, default=None, help="quiet period (300)")
    serve.add_argument("--debounce-max-ms", type=int, default=None, help="max wait (1000)")
    serve.add_argument("--threads", type=int, default=None, help="inference threads (1)")
    serve.add_argument(
        "--sentence-model",
        default=None,
        help="sentence_fp32 | sentence_int8 (default: the manifest's choice)",
    )
    serve.add_argument(
        "--models-dir", default=None, help="a release folder (manifest.json); default engines/"
    )
    serve.add_argument("--log-json", action="store_true", help="JSON-lines logs")
    serve.add_argument("--store", default=None, help="postgresql://… (default: SQLite)")
    serve.add_argument("--bus", default=None, help="redis://… (default: in-process)")
    serve.add_argument("--no-models", action="store_true", help="rule hints only (no models)")
    serve.add_argument(
        "--handshake-timeout", type=float, default=None, help="s to send request headers (10)"
    )
    serve.add_argument("--max-connections", type=int, default=None, help="open sockets (10000)")
    serve.add_argument(
        "--max-connections-per-ip", type=int, default=None, help="open sockets per peer (2000)"
    )
    serve.add_argument(
        "--metrics-token", default=None, help="require this bearer token on /metrics"
    )
    serve.add_argument(
        "--allow-dev-mode-on-network",
        action="store_true",
        help="serve dev mode (no secret) on a non-loopback address anyway",
    )
    serve.set_defaults(func=_serve)

    token = sub.add_parser("token", help="mint a signed token")
    token.add_argument("--role", choices=("student", "teacher", "parent"), required=True)
    token.add_argument("--student", default=None, help="parent tokens: the student's id")
    token.add_argument("--user", required=True)
    token.add_argument("--class", dest="class_id", required=True)
    token.add_argument("--ttl", type=int, default=12 * 3600, help="seconds (default 12 h)")
    token.add_argument("--secret", default=None, help="defaults to $INKSTONE_SECRET, else dev")
    token.set_defaults(func=_token)

    export = sub.add_parser("export-feedback", help="teachers' verdicts and grades as JSONL")
    export.add_argument("--data-dir", type=Path, required=True)
    export.add_argument("--out", type=Path, required=True)
    export.set_defaults(func=_export_feedback)

    reload_models = sub.add_parser("reload-models", help="SIGHUP: the server reloads its models")
    reload_models.add_argument("--data-dir", type=Path, default=Path("data"))
    reload_models.set_defaults(func=_reload_models)

    client = sub.add_parser("client", help="stream a file as if typed; print hints")
    client.add_argument("file", type=Path)
    client.add_argument("--url", default="ws://127.0.0.1:8000/v1/ws")
    client.add_argument("--token", default=None, help="default: a dev token for --user/--class")
    client.add_argument("--user", default="demo-student")
    client.add_argument("--class", dest="class_id", default="demo-class")
    client.add_argument("--doc", default=None, help="document id (default: the file name)")
    client.add_argument("--lang", default="auto", choices=("zh", "en", "auto"))
    client.add_argument("--cps", type=float, default=20.0, help="characters per second")
    client.set_defaults(func=_client)

    build = sub.add_parser(
        "build-engines", help="build TensorRT plans for the shipped models (engine cache)"
    )
    build.add_argument("--data-dir", type=Path, default=Path("data"), help="default ./data")
    build.add_argument("--engine-dir", type=Path, default=None, help="default <data-dir>/engines")
    build.add_argument("--precision", default="fp16", choices=("fp16", "fp32"))
    build.add_argument("--max-batch", type=int, default=32, help="largest batch (32)")
    build.add_argument("--workspace-mb", type=int, default=1024, help="workspace pool limit")
    build.set_defaults(func=_build_engines)

    from editors.lsp import add_arguments as lsp_arguments  # argparse only

    lsp = sub.add_parser("lsp", help="Language Server on stdio: Inkstone in any LSP editor")
    lsp_arguments(lsp)
    lsp.set_defaults(func=_lsp)

    from server.loadgen.options import add_arguments as loadgen_arguments  # argparse only

    loadgen = sub.add_parser("loadgen", help="simulated students and teachers against a server")
    loadgen_arguments(loadgen)
    loadgen.set_defaults(func=_loadgen)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO)
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
