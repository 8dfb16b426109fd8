"""Signed bearer tokens (HMAC-SHA256).

A token is ``base64url(payload) "." base64url(hmac(secret, payload))`` where
the payload is JSON ``{"sub", "role", "class", "exp", "iat"}`` (a ``parent`` token also
carries ``"student"``: the one student whose reports it may read; parents have no
socket session). A server with
no secret runs in dev mode and uses :data:`DEV_SECRET`, which is public; a
server with a real secret refuses tokens signed with the dev secret.

Lifetime policy (issue 9, finding 8): ``exp - iat`` may not exceed
``max_token_lifetime_s`` (a 100-year token is refused), ``iat`` may not lie more
than :data:`MAX_CLOCK_SKEW_S` in the future, and both parts are strict
unpadded base64url in canonical form, so a token has exactly one spelling.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from dataclasses import dataclass

import orjson

from protocol import ErrorCode, PeerError

__all__ = [
    "DEFAULT_MAX_LIFETIME_S",
    "DEV_SECRET",
    "MAX_CLOCK_SKEW_S",
    "Identity",
    "mint_token",
    "verify_token",
]

DEV_SECRET = "inkstone-public-dev-secret-do-not-use-in-production"
ROLES = ("student", "teacher", "parent")
DEFAULT_MAX_LIFETIME_S = 7 * 24 * 3600  # = Settings.max_token_lifetime_s's default
MAX_CLOCK_SKEW_S = 60  # how far in the future an ``iat`` may be (clocks differ a little)
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    role: str
    class_id: str
    expires: int
    student: str | None = None  # parent tokens: the student they are scoped to


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict base64url: the alphabet only, no padding, and the canonical spelling (the
    unused low bits of the last character are zero), so ``_b64(_unb64(t)) == t``."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise ValueError("not base64url") from None
    if _b64(data) != text:
        raise ValueError("not the canonical base64url spelling")
    return data


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
    max_lifetime_s: int = DEFAULT_MAX_LIFETIME_S,
    student: str | None = None,
) -> str:
    """A signed token; ``ttl_s`` above ``max_lifetime_s`` is refused (no server would take it).
    A non-positive ``ttl_s`` gives an already expired token (tests use that)."""
    if ttl_s > max_lifetime_s:
        raise ValueError(f"ttl_s {ttl_s} exceeds the maximum token lifetime {max_lifetime_s} s")
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    if not user or not class_id:
        raise ValueError("user and class must be non-empty")
    if (role == "parent") != bool(student):
        raise ValueError("a parent token names one student (and only parent tokens do)")
    issued = int(time.time() if now is None else now)
    claims: dict[str, object] = {
        "sub": user,
        "role": role,
        "class": class_id,
        "iat": issued,
        "exp": issued + ttl_s,
    }
    if student:
        claims["student"] = student
    payload = orjson.dumps(claims)
    return f"{_b64(payload)}.{_b64(_sign(secret or DEV_SECRET, payload))}"


def verify_token(
    secret: str | None,
    token: str,
    *,
    now: float | None = None,
    max_lifetime_s: int = DEFAULT_MAX_LIFETIME_S,
) -> Identity:
    """Check encoding, signature, lifetime and expiry; raise ``unauthorized`` /
    ``token_expired``."""
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
        issued, expires = claims["iat"], claims["exp"]
        if not all(type(v) is int for v in (issued, expires)):
            raise TypeError("iat and exp must be integers")
        identity = Identity(
            user=str(claims["sub"]),
            role=str(claims["role"]),
            class_id=str(claims["class"]),
            expires=expires,
            student=None if claims.get("student") is None else str(claims["student"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise PeerError(ErrorCode.UNAUTHORIZED, "malformed token claims") from None
    if identity.role not in ROLES:
        raise PeerError(ErrorCode.UNAUTHORIZED, f"unknown role {identity.role!r}")
    if identity.role == "parent" and not identity.student:
        raise PeerError(ErrorCode.UNAUTHORIZED, "a parent token must name its student")
    now = time.time() if now is None else now
    if expires - issued > max_lifetime_s:
        raise PeerError(
            ErrorCode.UNAUTHORIZED,
            f"token lifetime {expires - issued} s exceeds this server's maximum of "
            f"{max_lifetime_s} s",
        )
    if issued > now + MAX_CLOCK_SKEW_S:
        raise PeerError(ErrorCode.UNAUTHORIZED, "token is issued in the future")
    if expires < now:
        raise PeerError(ErrorCode.TOKEN_EXPIRED, "token has expired; ask for a new one")
    return identity
