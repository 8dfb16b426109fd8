"""The ASGI app: the socket endpoint, health, metrics, the demo and hint-code pages, lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from protocol import SUBPROTOCOL
from server import rules
from server.auth import mint_token
from server.clock import LoopClock
from server.config import Settings
from server.connection import CLOSE_GOING_AWAY, Connection
from server.hintdocs import render as render_hint_codes
from server.httpsec import SecurityHeaders
from server.metrics import Metrics
from server.releases import install_reload_signal
from server.reports_http import report_routes
from server.scale import open_bus, open_store
from server.service import Inkstone
from server.store import DocumentStore

__all__ = ["FRONTEND_DIR", "create_app"]

log = logging.getLogger("inkstone")
FRONTEND_DIR = Path(__file__).resolve().parent.parent / "frontend_demo"
STATIC_PARTS = ("css", "js")  # the folders of frontend_demo/ served under /static/
DEV_MODE_WARNING = (
    "DEV MODE: no secret configured; tokens are signed with the PUBLIC dev secret and anyone "
    "can mint one. Set --secret or INKSTONE_SECRET before real students use this server."
)


class Runtime:
    """What lives for one app run (created in lifespan)."""

    def __init__(self, settings: Settings, load_models: bool) -> None:
        self.settings = settings
        self.load_models = load_models
        self.metrics = Metrics()
        self.service: Inkstone | None = None
        self.store: DocumentStore | None = None
        self.bus: Any = None
        self.models: Any = None
        self.connections: set[tuple[Connection, WebSocket]] = set()
        self.sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        s = self.settings
        if s.dev_mode:
            log.warning(DEV_MODE_WARNING)
        self.store = await asyncio.to_thread(open_store, s)
        self.bus = open_bus(s)
        if self.load_models:
            from server.models import ModelService

            def on_batch(size: int, compute_ms: float) -> None:
                self.metrics.batch_size.observe(size)
                if self.models is not None:
                    self.metrics.observe_backend(self.models.backend)

            self.models = await asyncio.to_thread(ModelService, s, on_batch)
            log.info("models loaded: %s", self.models.describe())
        await asyncio.to_thread(rules.warm_up)  # jieba's dictionary: ~1 s, not on a request
        self.service = Inkstone(s, self.store, self.models, self.metrics, LoopClock(), self.bus)
        if hasattr(self.bus, "attach"):
            self.bus.attach(self.service)
        await self.bus.start()
        self.sweeper = asyncio.create_task(self._sweep())
        install_reload_signal(self)  # inkstone reload-models / SIGHUP (server/releases.py)
        log.info("inkstone ready (backend=%s, data=%s)", s.backend, s.data_dir)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            if self.service is not None:
                self.service.sweep_idle()
            if self.models is not None:
                self.metrics.queue_depth.set(self.models.scheduler.depth)

    async def close_sockets(self, code: int = CLOSE_GOING_AWAY) -> None:
        """Graceful shutdown: tell every client we are going away (1001)."""
        for conn, websocket in list(self.connections):
            conn.closing = True
            with contextlib.suppress(Exception):
                await websocket.close(code, "server shutting down")

    async def stop(self) -> None:
        await self.close_sockets()
        if self.sweeper is not None:
            self.sweeper.cancel()
        if self.service is not None:
            await self.service.drain(timeout=3.0)
        if self.bus is not None:
            await self.bus.close()
        if self.models is not None:
            self.models.close()
        if self.store is not None:
            self.store.close()
        log.info("inkstone stopped")


async def websocket_endpoint(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    assert runtime.service is not None
    requested = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in requested else None)
    close_request: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    def request_close(code: int, reason: str) -> None:
        if not close_request.done():
            close_request.set_result((code, reason))

    conn = Connection(runtime.service, runtime.service.clock, request_close)
    entry = (conn, websocket)
    runtime.connections.add(entry)

    async def writer() -> None:
        while (frame := await conn.outbox.get()) is not None:
            await websocket.send_text(frame.decode())
            conn.on_sent(len(frame))

    async def closer() -> None:
        code, reason = await close_request
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer_task, timeout=1.0)
        with contextlib.suppress(Exception):
            await websocket.close(code, reason[:120])

    writer_task = asyncio.create_task(writer())
    closer_task = asyncio.create_task(closer())
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            if message.get("text") is not None:
                conn.on_text(message["text"])
            elif message.get("bytes") is not None:
                conn.on_binary(message["bytes"])
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        runtime.connections.discard(entry)
        conn.on_disconnect()
        writer_task.cancel()
        if not close_request.done():
            closer_task.cancel()


async def healthz(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    ok = runtime.service is not None
    body = {
        "status": "ok" if ok else "starting",
        "dev_mode": runtime.settings.dev_mode,
        "models": runtime.models.describe() if runtime.models is not None else None,
        "connections": len(runtime.connections),
        "documents": len(runtime.service.documents) if runtime.service else 0,
    }
    guard = getattr(request.app.state, "netguard", None)  # set by server.netguard
    if guard is not None:
        body["network"] = guard.snapshot()
    return JSONResponse(body, status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    expected = runtime.settings.metrics_token
    if expected:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
            return Response(
                "metrics need Authorization: Bearer <metrics_token>\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def dev_token(request: Request) -> Response:
    """Dev mode only: mint a token for the demo pages' login form (404 with a real secret)."""
    runtime: Runtime = request.app.state.runtime
    if not runtime.settings.dev_mode:
        return JSONResponse({"error": "not found"}, status_code=404)
    try:
        body = await request.json()
        token = mint_token(
            None, user=str(body["user"]), role=str(body["role"]), class_id=str(body["class"])
        )
    except (ValueError, KeyError, TypeError) as exc:
        return JSONResponse({"error": f"need JSON {{user, role, class}}: {exc}"}, status_code=400)
    return JSONResponse({"token": token, "dev_mode": True})


async def hint_codes(request: Request) -> Response:
    """What each hint code means (editors link diagnostics to ``/hints#<code>``)."""
    return HTMLResponse(render_hint_codes())


def _page(name: str) -> Any:
    async def page(request: Request) -> Response:
        path = FRONTEND_DIR / name
        if not path.exists():
            return Response("the demo pages are not built", status_code=404)
        return FileResponse(path)

    return page


def create_app(settings: Settings | None = None, *, load_models: bool = True) -> Starlette:
    """Build the app. ``load_models=False`` serves rule hints and stats only (no neural models)."""
    settings = settings or Settings.from_env()
    runtime = Runtime(settings, load_models)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    routes: list[Any] = [
        WebSocketRoute("/v1/ws", websocket_endpoint),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route("/dev/token", dev_token, methods=["POST"]),
        Route("/hints", hint_codes),
        Route("/", _page("student.html")),
        Route("/teacher", _page("teacher.html")),
        *report_routes(),
    ]
    # only what the pages load: not frontend_demo/tools/, tsconfig.json, …
    for part in STATIC_PARTS:
        if (FRONTEND_DIR / part).is_dir():
            routes.append(Mount(f"/static/{part}", StaticFiles(directory=FRONTEND_DIR / part)))
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(SecurityHeaders)])
    app.state.runtime = runtime
    return app
