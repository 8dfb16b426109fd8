"""Signed bearer tokens (HMAC-SHA256).

A token is ``base64url(payload) "." base64url(hmac(secret, payload))`` where
the payload is JSON ``{"sub", "role", "class", "exp", "iat"}``. A server with
no secret runs in dev mode and uses :data:`DEV_SECRET`, which is public; a
server with a real secret refuses tokens signed with the dev secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

import orjson

from protocol import ErrorCode, PeerError

__all__ = ["DEV_SECRET", "Identity", "mint_token", "verify_token"]

DEV_SECRET = "inkstone-public-dev-secret-do-not-use-in-production"
ROLES = ("student", "teacher")


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    role: str
    class_id: str
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), payload, hashlib.sha256).digest()


def mint_token(
    secret: str | None,
    *,
    user: str,
    role: str,
    class_id: str,
    ttl_s: int = 12 * 3600,
    now: float | None = None,
) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    if not user or not class_id:
        raise ValueError("user and class must be non-empty")
    issued = int(time.time() if now is None else now)
    payload = orjson.dumps(
        {"sub": user, "role": role, "class": class_id, "iat": issued, "exp": issued + ttl_s}
    )
    return f"{_b64(payload)}.{_b64(_sign(secret or DEV_SECRET, payload))}"


def verify_token(secret: str | None, token: str, *, now: float | None = None) -> Identity:
    """Check signature and expiry; raise ``unauthorized`` / ``token_expired``."""
    try:
        body, signature = token.split(".")
        payload, mac = _unb64(body), _unb64(signature)
    except ValueError:
        raise PeerError(ErrorCode.UNAUTHORIZED, "malformed token") from None
    if not hmac.compare_digest(mac, _sign(secret or DEV_SECRET, payload)):
        if secret and hmac.compare_digest(mac, _sign(DEV_SECRET, payload)):
            raise PeerError(
                ErrorCode.UNAUTHORIZED,
                "token is signed with the public dev secret; this server has a real secret",
            )
        raise PeerError(ErrorCode.UNAUTHORIZED, "bad token signature")
    try:
        claims = orjson.loads(payload)
        identity = Identity(
            user=str(claims["sub"]),
            role=str(claims["role"]),
            class_id=str(claims["class"]),
            expires=int(claims["exp"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise PeerError(ErrorCode.UNAUTHORIZED, "malformed token claims") from None
    if identity.role not in ROLES:
        raise PeerError(ErrorCode.UNAUTHORIZED, f"unknown role {identity.role!r}")
    if identity.expires < (time.time() if now is None else now):
        raise PeerError(ErrorCode.TOKEN_EXPIRED, "token has expired; ask for a new one")
    return identity
