"""Tokens: signature, expiry, roles, dev-secret refusal on a real-secret server, and the
lifetime policy (maximum lifetime, no future ``iat``, one spelling per token)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from protocol import ErrorCode, PeerError
from server.auth import mint_token, verify_token
from tests.conftest import LiveServer, run


def test_round_trip() -> None:
    token = mint_token("s3cret", user="s1", role="student", class_id="c1", now=1000, ttl_s=60)
    who = verify_token("s3cret", token, now=1030)
    assert (who.user, who.role, who.class_id, who.expires) == ("s1", "student", "c1", 1060)


def test_expired_and_tampered() -> None:
    token = mint_token("k", user="s1", role="student", class_id="c1", now=0, ttl_s=10)
    with pytest.raises(PeerError) as info:
        verify_token("k", token, now=11)
    assert info.value.code == ErrorCode.TOKEN_EXPIRED
    body, sig = token.split(".")
    with pytest.raises(PeerError) as info:
        verify_token("k", body + "x." + sig, now=1)
    assert info.value.code == ErrorCode.UNAUTHORIZED
    with pytest.raises(PeerError):
        verify_token("other", token, now=1)


def test_dev_tokens_are_refused_when_a_secret_is_set() -> None:
    dev = mint_token(None, user="s1", role="teacher", class_id="c1")
    assert verify_token(None, dev).role == "teacher"
    with pytest.raises(PeerError) as info:
        verify_token("real-secret", dev)
    assert info.value.code == ErrorCode.UNAUTHORIZED
    assert "dev secret" in info.value.message


def test_bad_role_is_rejected_at_mint() -> None:
    with pytest.raises(ValueError):
        mint_token(None, user="s1", role="admin", class_id="c1")


# ---------------------------------------------------------------- lifetime policy (issue 9)

DAY = 24 * 3600


def forge(secret: str, claims: dict[str, object], *, pad: bool = False) -> str:
    """Sign ``claims`` by hand (HMAC-SHA256 over base64url JSON), as any token holder could."""

    def b64(data: bytes) -> str:
        text = base64.urlsafe_b64encode(data).decode()
        return text if pad else text.rstrip("=")

    payload = json.dumps(claims, separators=(",", ":")).encode()
    return f"{b64(payload)}.{b64(hmac.new(secret.encode(), payload, hashlib.sha256).digest())}"


def claims(iat: int, exp: int, **extra: object) -> dict[str, object]:
    return {"sub": "s1", "role": "student", "class": "c1", "iat": iat, "exp": exp, **extra}


def refused(secret: str, token: str, now: float, **kw: int) -> str:
    with pytest.raises(PeerError) as info:
        verify_token(secret, token, now=now, **kw)
    assert info.value.code == ErrorCode.UNAUTHORIZED
    return info.value.message


def test_hand_signed_tokens_verify() -> None:
    """The forge helper makes real tokens (so the refusals below are about the policy)."""
    now = 1_000_000
    assert verify_token("k", forge("k", claims(now, now + 3600)), now=now).user == "s1"


def test_a_token_longer_than_the_maximum_lifetime_is_refused() -> None:
    now = 1_000_000
    century = forge("k", claims(now, now + 100 * 365 * DAY))
    assert "lifetime" in refused("k", century, now)
    week = forge("k", claims(now, now + 7 * DAY))
    assert verify_token("k", week, now=now).user == "s1"  # the default maximum
    assert "lifetime" in refused("k", week, now, max_lifetime_s=DAY)  # the setting
    with pytest.raises(ValueError):
        mint_token("k", user="s1", role="student", class_id="c1", ttl_s=8 * DAY)


def test_a_token_issued_in_the_future_is_refused() -> None:
    now = 1_000_000
    ten_days_ahead = forge("k", claims(now + 10 * DAY, now + 10 * DAY + 3600))
    assert "future" in refused("k", ten_days_ahead, now)
    slightly_ahead = forge("k", claims(now + 30, now + 3600))  # clock skew is tolerated
    assert verify_token("k", slightly_ahead, now=now).user == "s1"
    assert "future" in refused("k", forge("k", claims(now + 61, now + 3600)), now)


def test_claims_must_be_integers_and_present() -> None:
    now = 1_000_000
    for bad in (
        {"sub": "s1", "role": "student", "class": "c1", "exp": now + 60},  # no iat
        claims(now, str(now + 60)),  # type: ignore[arg-type]
        claims(now, now + 60.5),  # type: ignore[arg-type]
        claims(True, now + 60),  # type: ignore[arg-type]
    ):
        assert "claims" in refused("k", forge("k", bad), now)


def test_a_token_has_exactly_one_spelling() -> None:
    now = 1_000_000
    good = forge("k", claims(now, now + 3600))
    assert verify_token("k", good, now=now).user == "s1"
    body, sig = good.split(".")
    spellings = [
        forge("k", claims(now, now + 3600), pad=True),  # "=" padding
        f"{body}=.{sig}",
        f"{body}.{sig}=",
        f"{body.replace('-', '+').replace('_', '/')}.{sig.replace('-', '+').replace('_', '/')}",
        f" {body}.{sig}",
        f"{body}.{sig}\n",
    ]
    for other in spellings:
        if other == good:
            continue
        assert refused("k", other, now), other


def test_the_last_character_bits_are_checked() -> None:
    """A 32-byte MAC is 43 base64url characters: the last one carries 4 unused bits."""
    now = 1_000_000
    body, sig = forge("k", claims(now, now + 3600)).split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    same_bytes = [
        c
        for c in alphabet
        if c != sig[-1]
        and base64.urlsafe_b64decode(sig[:-1] + c + "=") == base64.urlsafe_b64decode(sig + "=")
    ]
    assert same_bytes  # the malleability the issue found
    for c in same_bytes:
        refused("k", f"{body}.{sig[:-1]}{c}", now)


def test_policy_through_the_socket(rules_server: LiveServer) -> None:
    """hello with a century token, a future token or a padded token → unauthorized."""
    from protocol import Error, Hello
    from server.auth import DEV_SECRET
    from server.wsclient import SocketSession

    now = int(time.time())
    tokens = [
        forge(DEV_SECRET, claims(now, now + 100 * 365 * DAY)),
        forge(DEV_SECRET, claims(now + 10 * DAY, now + 11 * DAY)),
        forge(DEV_SECRET, claims(now, now + 3600), pad=True),
    ]
    assert "=" in tokens[2]  # a 32-byte MAC always needs one "=" of padding

    async def main() -> None:
        session = SocketSession(rules_server.url)
        await session.open()
        try:
            for token in tokens:
                await session.send(Hello(token=token, doc="s1-essay"))
                reply = await session.recv()
                assert isinstance(reply, Error) and reply.code == "unauthorized", reply
            await session.send(Hello(token=forge(DEV_SECRET, claims(now, now + 3600)), doc="x"))
            assert (await session.recv()).TYPE == "welcome"
        finally:
            await session.close()

    run(main())


def test_inkstone_token_refuses_a_ttl_the_server_would_refuse(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from server.cli import main

    base = ["token", "--role", "student", "--user", "s1", "--class", "c1", "--secret", "k"]
    assert main([*base, "--ttl", str(100 * 365 * DAY)]) == 2
    assert "--ttl" in capsys.readouterr().err
    assert main([*base, "--ttl", "0"]) == 2
    capsys.readouterr()
    assert main([*base, "--ttl", str(7 * DAY)]) == 0
    token = capsys.readouterr().out.strip()
    assert verify_token("k", token).user == "s1"
