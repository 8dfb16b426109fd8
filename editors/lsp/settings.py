"""The bridge's settings: from ``initializationOptions``, ``workspace/configuration``
(section ``inkstone``, asked only of clients that advertise it) and
``workspace/didChangeConfiguration``, later sources overriding earlier ones.

Keys (camelCase, as editors write them): ``server`` (the socket URL), ``token`` or
``tokenCommand`` (a command printing the token, e.g. a password manager call),
``lang`` (``zh``/``en``/``auto``), ``severity`` (per hint kind: ``error``, ``warning``,
``information``, ``hint`` or ``off``), ``mask`` (``auto``, ``markdown``, ``latex``,
``none``), ``caretDelayMs`` (how long hints for the sentence being typed wait).
Without a token the bridge asks a dev-mode server for one (``/dev/token``).
"""

from __future__ import annotations

import getpass
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["DEFAULT_SERVER", "Settings", "TokenError", "http_base", "resolve_token"]

DEFAULT_SERVER = "ws://127.0.0.1:8000/v1/ws"


class TokenError(Exception):
    """No token could be found or made; the message says what to configure."""


@dataclass(frozen=True, slots=True)
class Settings:
    server: str = DEFAULT_SERVER
    token: str | None = None
    token_command: str | None = None
    lang: str = "auto"
    severity: Mapping[str, str] = field(default_factory=dict)
    mask: str = "auto"
    caret_delay_ms: int = 1500
    user: str | None = None  # dev-mode servers only: who to ask a token for
    class_id: str = "editor"

    def merged(self, raw: Any) -> Settings:
        """These settings with the keys of ``raw`` (a dict from the editor) applied."""
        if not isinstance(raw, Mapping):
            return self
        if isinstance(raw.get("inkstone"), Mapping):
            raw = raw["inkstone"]
        out = self
        if isinstance(raw.get("server"), str) and raw["server"]:
            out = replace(out, server=raw["server"])
        if "token" in raw:
            out = replace(out, token=str(raw["token"]) if raw["token"] else None)
        if "tokenCommand" in raw:
            cmd = raw["tokenCommand"]
            out = replace(out, token_command=str(cmd) if cmd else None)
        if raw.get("lang") in ("zh", "en", "auto"):
            out = replace(out, lang=raw["lang"])
        if isinstance(raw.get("severity"), Mapping):
            given = {str(k): str(v) for k, v in raw["severity"].items()}
            out = replace(out, severity={**out.severity, **given})
        if isinstance(raw.get("mask"), str):
            out = replace(out, mask=raw["mask"])
        elif raw.get("mask") is False:
            out = replace(out, mask="none")
        if isinstance(raw.get("caretDelayMs"), int | float):
            out = replace(out, caret_delay_ms=max(0, int(raw["caretDelayMs"])))
        if isinstance(raw.get("user"), str):
            out = replace(out, user=raw["user"])
        if isinstance(raw.get("class"), str):
            out = replace(out, class_id=raw["class"])
        return out

    def connection_key(self) -> tuple[str, str | None, str | None, str]:
        """What the sockets depend on: a change reconnects every document."""
        return (self.server, self.token, self.token_command, self.lang)


def http_base(ws_url: str) -> str:
    """``ws://host:port/v1/ws`` → ``http://host:port``."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def resolve_token(settings: Settings, timeout: float = 10.0) -> str:
    """The token to send in ``hello`` (blocking: run it off the event loop)."""
    import subprocess  # here, not at start-up
    import urllib.request

    if settings.token:
        return settings.token
    if settings.token_command:
        try:
            done = subprocess.run(
                shlex.split(settings.token_command),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise TokenError(f"tokenCommand failed: {exc}") from exc
        lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
        if not lines:
            raise TokenError("tokenCommand printed nothing")
        return lines[-1]
    body = json.dumps(
        {"user": settings.user or getpass.getuser(), "role": "student", "class": settings.class_id}
    ).encode()
    request = urllib.request.Request(
        http_base(settings.server) + "/dev/token",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return str(json.loads(response.read())["token"])
    except (OSError, ValueError, KeyError) as exc:
        raise TokenError(
            "no token configured (set `token` or `tokenCommand`), and the server gave no dev "
            f"token: {exc}"
        ) from exc
