"""Token buckets per user, shared by all of a user's connections.

A bucket refills at ``rate`` per second up to ``burst``. Keyed by (class, role, user), so
reconnecting or opening more sockets does not reset a user's budget. Buckets that have
refilled completely carry no information and are dropped by :meth:`UserBudgets.sweep`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TokenBucket", "UserBudgets"]


@dataclass(slots=True)
class TokenBucket:
    rate: float
    burst: float
    tokens: float
    updated: float

    def take(self, amount: float, now: float) -> int | None:
        """Take ``amount``; None if allowed, else milliseconds until it would be."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if amount > self.burst:  # can never fit: charge a full bucket (one oversized item)
            amount = self.burst
        if self.tokens >= amount:
            self.tokens -= amount
            return None
        return max(1, int((amount - self.tokens) / self.rate * 1000))

    def full_at(self, now: float) -> bool:
        return self.tokens + (now - self.updated) * self.rate >= self.burst


class UserBudgets:
    """Per user: a message bucket, a byte bucket and a session bucket (hellos: each one
    loads a document and sends its whole analysis, so a reconnect loop is expensive)."""

    def __init__(
        self,
        messages_per_s: float,
        message_burst: int,
        bytes_per_s: int,
        byte_burst: int,
        sessions_per_s: float = 1.0,
        session_burst: int = 30,
    ) -> None:
        self.rates = (
            (messages_per_s, float(message_burst)),
            (float(bytes_per_s), float(byte_burst)),
            (sessions_per_s, float(session_burst)),
        )
        self.buckets: dict[tuple[str, ...], tuple[TokenBucket, ...]] = {}

    def _get(self, user: tuple[str, ...], now: float) -> tuple[TokenBucket, ...]:
        found = self.buckets.get(user)
        if found is None:
            found = self.buckets[user] = tuple(
                TokenBucket(rate, burst, burst, now) for rate, burst in self.rates
            )
        return found

    def message(self, user: tuple[str, ...], now: float) -> int | None:
        return self._get(user, now)[0].take(1.0, now)

    def text(self, user: tuple[str, ...], nbytes: int, now: float) -> int | None:
        return self._get(user, now)[1].take(float(nbytes), now)

    def session(self, user: tuple[str, ...], now: float) -> int | None:
        return self._get(user, now)[2].take(1.0, now)

    def sweep(self, now: float) -> None:
        for user, buckets in list(self.buckets.items()):
            if all(b.full_at(now) for b in buckets):
                del self.buckets[user]
