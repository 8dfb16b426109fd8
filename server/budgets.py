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
    """A message bucket and a byte bucket per user."""

    def __init__(
        self, messages_per_s: float, message_burst: int, bytes_per_s: int, byte_burst: int
    ) -> None:
        self.messages_per_s, self.message_burst = messages_per_s, message_burst
        self.bytes_per_s, self.byte_burst = bytes_per_s, byte_burst
        self.buckets: dict[tuple[str, ...], tuple[TokenBucket, TokenBucket]] = {}

    def _get(self, user: tuple[str, ...], now: float) -> tuple[TokenBucket, TokenBucket]:
        found = self.buckets.get(user)
        if found is None:
            found = self.buckets[user] = (
                TokenBucket(self.messages_per_s, self.message_burst, self.message_burst, now),
                TokenBucket(self.bytes_per_s, self.byte_burst, self.byte_burst, now),
            )
        return found

    def message(self, user: tuple[str, ...], now: float) -> int | None:
        return self._get(user, now)[0].take(1.0, now)

    def text(self, user: tuple[str, ...], nbytes: int, now: float) -> int | None:
        return self._get(user, now)[1].take(float(nbytes), now)

    def sweep(self, now: float) -> None:
        for user, (messages, text) in list(self.buckets.items()):
            if messages.full_at(now) and text.full_at(now):
                del self.buckets[user]
