"""Real services for the multi-node tests: PostgreSQL (primary + streaming standby), Redis,
HAProxy and ``inkstone serve`` gateways, each on a free loopback port, each stopped after.

PostgreSQL runs as the ``postgres`` user (``runuser``; tests run as root in CI) from
Debian's binaries in a fresh temporary cluster with trust authentication on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")

__all__ = [
    "Gateway",
    "HAProxy",
    "Postgres",
    "Redis",
    "free_port",
    "needs_services",
    "stop_everything",
]

_STARTED: list[object] = []  # every service started, so a failed test leaves none running


def stop_everything() -> None:
    """Stop whatever a test started and did not stop (an autouse fixture calls this)."""
    while _STARTED:
        thing = _STARTED.pop()
        with contextlib.suppress(Exception):
            thing.close()  # type: ignore[attr-defined]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (runuser -u postgres)"
    for path in (PG_BIN / "initdb", Path("/usr/bin/redis-server"), Path("/usr/sbin/haproxy")):
        if not path.exists():
            return f"{path} missing: run tests/install-deps.sh"
    return None


needs_services = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up in {timeout} s")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _as_postgres(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *cmd],
        check=check,
        capture_output=True,
        text=True,
        timeout=60,
    )


class Postgres:
    """One PostgreSQL server: a fresh primary, or a streaming standby of ``primary``."""

    def __init__(self, primary: Postgres | None = None, *, synchronous: bool = True) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="inkstone-pg-", dir="/tmp"))
        os.chown(self.dir, _uid("postgres"), _gid("postgres"))
        self.data = self.dir / "data"
        self.log = self.dir / "log"
        if primary is None:
            _as_postgres(
                str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"
            )
            settings = [
                "listen_addresses = '127.0.0.1'",
                f"port = {self.port}",
                "unix_socket_directories = ''",
                "fsync = on",
                "shared_buffers = 32MB",
                "max_connections = 50",
                "wal_level = replica",
                "max_wal_senders = 4",
            ]
            if synchronous:
                settings.append("synchronous_standby_names = '*'")
        else:
            _as_postgres(
                str(PG_BIN / "pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(primary.port),
                "-U",
                "postgres",
                "-D",
                str(self.data),
                "-R",
                "-X",
                "stream",
            )
            settings = [f"port = {self.port}", "synchronous_standby_names = ''"]
        with open(self.data / "postgresql.auto.conf", "a") as conf:
            conf.write("\n".join(settings) + "\n")
        _STARTED.append(self)
        self.start()

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        _as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "start"
        )

    def kill(self) -> None:
        """Stop at once, as a crash would (``-m immediate``)."""
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def promote(self) -> None:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "promote")

    def sql(self, query: str) -> list[list[str]]:
        out = _as_postgres(
            str(PG_BIN / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-At",
            "-F",
            "\t",
            "-c",
            query,
        ).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def close(self) -> None:
        _as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop", check=False
        )
        shutil.rmtree(self.dir, ignore_errors=True)


def _uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid


def _gid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_gid


class Redis:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        _STARTED.append(self)
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(lambda: _port_open(self.port), 10, "redis")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def close(self) -> None:
        self.kill()


class Gateway:
    """``inkstone serve`` as a child process (rule hints only), logging to a file."""

    def __init__(
        self, workdir: Path, name: str, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.name = name
        self.workdir = workdir
        self.args = args
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"ws://127.0.0.1:{self.port}/v1/ws"
        self.log = workdir / f"{name}.log"

    def start(self, wait: bool = True) -> Gateway:
        data = self.workdir / f"{self.name}-data"
        cmd = [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--no-models",
            "--port",
            str(self.port),
            "--data-dir",
            str(data),
            "--debounce-ms",
            "40",
            "--debounce-max-ms",
            "200",
            *self.args,
        ]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=out, stderr=out)
        _STARTED.append(self)
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 40) -> None:
        def healthy() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"gateway {self.name} exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/healthz", timeout=1
                ) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        _wait(healthy, timeout, f"gateway {self.name}")

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()


class HAProxy:
    """HAProxy with deploy/haproxy.cfg's routing, pointed at ``gateways``."""

    def __init__(self, workdir: Path, gateways: list[Gateway]) -> None:
        self.port = free_port()
        template = (ROOT / "deploy" / "haproxy.cfg").read_text()
        servers = "\n".join(
            f"    server {g.name} 127.0.0.1:{g.port} check inter 300 fall 2 rise 1"
            for g in gateways
        )
        config = template.replace("bind :8080", f"bind 127.0.0.1:{self.port}")
        config = config.replace("    log stdout format raw local0 notice\n", "")
        config = config.replace("maxconn 200000", "maxconn 400")  # fits a 1024-descriptor limit
        head, _, rest = config.partition("    # SERVERS")
        _, _, tail = rest.partition("    # END SERVERS")
        config = head + servers + "\n" + tail
        self.config = workdir / "haproxy.cfg"
        self.config.write_text(config)
        _STARTED.append(self)
        self.proc = subprocess.Popen(
            ["haproxy", "-f", str(self.config)],
            stdout=open(workdir / "haproxy.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        _wait(lambda: _port_open(self.port), 10, "haproxy")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@contextlib.contextmanager
def closing_all(*things: object) -> Iterator[None]:
    try:
        yield
    finally:
        for thing in reversed(things):
            with contextlib.suppress(Exception):
                thing.close()  # type: ignore[attr-defined]
