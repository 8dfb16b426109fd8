"""Issue 9, finding 9 and "Also": security headers, only the pages' assets served, /metrics token.

Plain HTTP against a real server (``rules_server``: uvicorn on loopback in a
thread, configured by ``server.netguard.uvicorn_config`` like ``inkstone serve``).
Raw ``http.client`` requests keep paths exactly as written (no ``..`` folding).
"""

from __future__ import annotations

import http.client
import json
from dataclasses import replace
from pathlib import Path

import pytest

from server.config import Settings
from server.wsclient import StudentClient
from tests.conftest import FAST, LiveServer, ThreadServer, run


def get(
    server: LiveServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    host, port = server.http.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "path",
    ["/", "/teacher", "/static/js/student.js", "/static/css/common.css", "/healthz", "/nope"],
)
def test_every_http_response_has_the_security_headers(rules_server: LiveServer, path: str) -> None:
    status, headers, _ = get(rules_server, path)
    assert status in (200, 404)
    csp = headers.get("content-security-policy", "")
    directives = {d.strip().split(" ")[0]: d.strip() for d in csp.split(";") if d.strip()}
    assert directives.get("default-src") == "default-src 'self'"
    assert directives.get("frame-ancestors") == "frame-ancestors 'none'"
    assert "script-src" not in directives and "style-src" not in directives  # 'self' only
    assert headers.get("x-content-type-options") == "nosniff"
    assert headers.get("referrer-policy") == "no-referrer"


def test_the_websocket_route_still_works_behind_the_middleware(rules_server: LiveServer) -> None:
    async def edit() -> None:
        client = StudentClient(rules_server.url, rules_server.token("hdr"), "hdr-essay", lang="en")
        await client.connect()
        await client.type_text("Headers do not touch the socket.")
        await client.wait_synced(5)
        await client.close()

    run(edit())


@pytest.mark.parametrize(
    "path",
    [
        "/static/tools/screenshots.py",
        "/static/tsconfig.json",
        "/static/student.html",
        "/static/css/../tsconfig.json",
        "/static/js/../../server/auth.py",
        "/static/js/%2e%2e/%2e%2e/pyproject.toml",
        "/static/js/..%2f..%2fpyproject.toml",
        "/static/css/%2e%2e%2f%2e%2e%2fREADME.md",
        "/static/../README.md",
    ],
)
def test_only_the_pages_assets_are_served(rules_server: LiveServer, path: str) -> None:
    status, _, body = get(rules_server, path)
    assert status == 404, body[:200]


def test_the_pages_assets_are_served(rules_server: LiveServer) -> None:
    frontend = Path(__file__).resolve().parent.parent / "frontend_demo"
    for asset in sorted(frontend.glob("css/*.css")) + sorted(frontend.glob("js/*.js")):
        rel = asset.relative_to(frontend).as_posix()
        status, headers, body = get(rules_server, f"/static/{rel}")
        assert status == 200 and body == asset.read_bytes(), rel
        assert headers["x-content-type-options"] == "nosniff"


def test_metrics_open_by_default(rules_server: LiveServer) -> None:
    status, _, body = get(rules_server, "/metrics")
    assert status == 200 and b"# HELP" in body


def test_metrics_token_required_when_set(tmp_path: Path) -> None:
    settings = replace(Settings(data_dir=tmp_path, **FAST), metrics_token="m3tr1cs-t0ken")
    with ThreadServer(settings, load_models=False) as server:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "m3tr1cs-t0ken"}):
            status, got, body = get(server, "/metrics", headers)
            assert status == 401 and b"# HELP" not in body
            assert got.get("www-authenticate", "").startswith("Bearer")
        status, _, body = get(server, "/metrics", {"Authorization": "Bearer m3tr1cs-t0ken"})
        assert status == 200 and b"# HELP" in body
        status, _, body = get(server, "/healthz")  # health stays open for probes
        assert status == 200 and json.loads(body)["status"] == "ok"
