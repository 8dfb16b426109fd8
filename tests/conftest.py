"""Fixtures: a real uvicorn server on an ephemeral port (in a thread, or as a process)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from server.app import create_app
from server.auth import mint_token
from server.config import Settings
from server.netguard import listen, uvicorn_config

ROOT = Path(__file__).resolve().parent.parent
FAST = dict(debounce_quiet_ms=40, debounce_max_ms=200)


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class LiveServer:
    url: str  # ws://…/v1/ws
    http: str
    settings: Settings
    app: Any

    def token(self, user: str, role: str = "student", class_id: str = "c1", **kw: Any) -> str:
        return mint_token(self.settings.secret, user=user, role=role, class_id=class_id, **kw)

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    def doc(self, name: str, user: str | None = None, class_id: str | None = None) -> Any:
        """The live document a student named ``name`` (the only one of that name, unless
        ``user``/``class_id`` narrow it down)."""
        found = [
            d
            for d in self.runtime.service.documents.values()
            if d.name == name
            and (user is None or d.owner == user)
            and (class_id is None or d.class_id == class_id)
        ]
        assert len(found) == 1, f"{len(found)} live documents named {name!r}"
        return found[0]

    def stored_text(self, name: str) -> str | None:
        """The text of the one document named ``name``, live or else from the store."""
        live = [d for d in self.runtime.service.documents.values() if d.name == name]
        if live:
            return str(live[0].text)
        store = self.runtime.store
        rows = store.db.execute("SELECT key FROM documents WHERE name=?", (name,)).fetchall()
        if len(rows) != 1:
            return None
        stored = store.load(rows[0][0])
        return None if stored is None else str(stored.text)


class ThreadServer:
    """uvicorn running create_app(settings) on its own thread and loop."""

    def __init__(self, settings: Settings, load_models: bool = True) -> None:
        self.sock = free_socket()
        port = self.sock.getsockname()[1]
        settings = replace(settings, port=port)
        self.app = create_app(settings, load_models=load_models)
        # the configuration `inkstone serve` uses (caps, handshake deadline, protocols)
        config = uvicorn_config(self.app, settings, log_level="warning")
        self.server = uvicorn.Server(config)
        self.sock = listen(config, self.sock)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})
        self.live = LiveServer(
            f"ws://127.0.0.1:{port}/v1/ws", f"http://127.0.0.1:{port}", settings, self.app
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self.live

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="session")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server with the shipped models for the whole session (loading them costs ~1 s)."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("model-server"), **FAST)
    with ThreadServer(settings) as live:
        yield live


@pytest.fixture
def rules_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server without neural models (rule hints and stats only), fresh per test."""
    settings = Settings(data_dir=tmp_path, **FAST)
    with ThreadServer(settings, load_models=False) as live:
        yield live


class ProcessServer:
    """``inkstone serve`` as a real child process (for kill -9 and graceful shutdown)."""

    def __init__(self, data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        sock = free_socket()
        self.port = sock.getsockname()[1]
        sock.close()
        self.data_dir = data_dir
        self.extra = extra
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"ws://127.0.0.1:{self.port}/v1/ws"

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--debounce-ms",
            "40",
            "--debounce-max-ms",
            "200",
            *self.extra,
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode() if self.proc.stdout else ""
                raise RuntimeError(f"server exited: {out}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/healthz", timeout=1
                ) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not become healthy")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> str:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return out.decode()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 120))


# ---------------------------------------------------------------- multi-node tests


@pytest.fixture
def scale_services_stopped() -> Iterator[None]:
    """Stop every service a multi-node test started (PostgreSQL, Redis, HAProxy, gateways),
    even when it failed: the scale modules opt in with ``usefixtures``."""
    from tests.services import stop_everything

    yield
    stop_everything()


@pytest.fixture
def pg() -> Iterator[Any]:
    """A PostgreSQL primary of its own (no standby)."""
    from tests.services import Postgres

    server = Postgres(synchronous=False)
    try:
        yield server
    finally:
        server.close()
