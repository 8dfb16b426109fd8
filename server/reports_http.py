"""HTTP for progress reports: the JSON data API and the two report pages.

``GET /v1/reports/student/<id>`` and ``GET /v1/reports/class/<id>`` take
``Authorization: Bearer <token>`` (never a token in the URL) and answer JSON; 401 without
a valid token, 403 when the token may not read that report:

- a student reads only their own report (in their token's class);
- a teacher reads the reports of their class and of its students;
- a parent token (role ``parent``, scoped to one student) reads that student's report.

``/report/student/<id>`` and ``/report/class/<id>`` serve one static page that fetches
the JSON with the token kept in the browser's sessionStorage and draws it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from protocol import ErrorCode, PeerError
from server.auth import Identity, verify_token
from server.reports import class_report, student_report
from server.review_store import ReviewStore

__all__ = ["report_routes"]

PAGE = Path(__file__).resolve().parent.parent / "frontend_demo" / "report.html"


def _identity(request: Request) -> Identity | JSONResponse:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _denied(401, "send Authorization: Bearer <token>")
    runtime = request.app.state.runtime
    try:
        return verify_token(
            runtime.settings.secret,
            token.strip(),
            max_lifetime_s=runtime.settings.max_token_lifetime_s,
        )
    except PeerError as exc:
        return _denied(401, exc.message, str(exc.code))


def _denied(status: int, message: str, code: str | None = None) -> JSONResponse:
    code = code or (ErrorCode.UNAUTHORIZED if status == 401 else ErrorCode.FORBIDDEN)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        {"error": str(code), "message": message}, status_code=status, headers=headers
    )


async def _build(request: Request, build: Any, *args: str) -> Response:
    """Compute a report on a worker thread with its own read connection."""
    path = request.app.state.runtime.settings.data_dir / "review.sqlite3"

    def work() -> dict[str, Any]:
        store = ReviewStore(path)
        try:
            return dict(build(store, *args))
        finally:
            store.close()

    report = await asyncio.to_thread(work)
    return JSONResponse(report, headers={"Cache-Control": "no-store"})


async def student_report_api(request: Request) -> Response:
    me = _identity(request)
    if isinstance(me, JSONResponse):
        return me
    student = request.path_params["student"]
    allowed = (
        (me.role == "student" and me.user == student)
        or me.role == "teacher"
        or (me.role == "parent" and me.student == student)
    )
    if not allowed:
        return _denied(403, "this token may not read that student's report")
    return await _build(request, student_report, me.class_id, student)


async def class_report_api(request: Request) -> Response:
    me = _identity(request)
    if isinstance(me, JSONResponse):
        return me
    if me.role != "teacher" or me.class_id != request.path_params["class_id"]:
        return _denied(403, "only the class's teachers read its report")
    return await _build(request, class_report, me.class_id)


async def report_page(request: Request) -> Response:
    if not PAGE.exists():
        return Response("the demo pages are not built", status_code=404)
    return FileResponse(PAGE)


def report_routes() -> list[Route]:
    return [
        Route("/v1/reports/student/{student}", student_report_api),
        Route("/v1/reports/class/{class_id}", class_report_api),
        Route("/report/student/{student}", report_page),
        Route("/report/class/{class_id}", report_page),
    ]
