"""Tokens: signature, expiry, roles, and dev-secret refusal on a real-secret server."""

from __future__ import annotations

import pytest

from protocol import ErrorCode, PeerError
from server.auth import mint_token, verify_token


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
