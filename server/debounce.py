"""Per-document debounce: analyse after a quiet period, or after a maximum wait.

While a student types continuously the quiet period never elapses, so the
maximum wait (counted from the first edit not yet analysed) bounds how stale
the feedback can get. One timer per key is armed at most; a touch never
cancels it, the timer re-arms itself when it fires early. That keeps a
keystroke O(1) with no timer churn.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from server.clock import Clock, TimerHandle

__all__ = ["Debouncer"]

K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class _Pending:
    first: float
    last: float
    handle: TimerHandle | None = None


class Debouncer(Generic[K]):
    def __init__(
        self,
        clock: Clock,
        fire: Callable[[K], None],
        *,
        quiet_s: float,
        max_wait_s: float,
    ) -> None:
        if quiet_s < 0 or max_wait_s < quiet_s:
            raise ValueError("need 0 <= quiet_s <= max_wait_s")
        self.clock = clock
        self.fire = fire
        self.quiet_s = quiet_s
        self.max_wait_s = max_wait_s
        self._pending: dict[K, _Pending] = {}

    def touch(self, key: K) -> float:
        """Record activity on ``key``; returns when it will fire (clock time)."""
        now = self.clock.now()
        state = self._pending.get(key)
        if state is None:
            state = self._pending[key] = _Pending(first=now, last=now)
        else:
            state.last = now
        due = self._due(state)
        if state.handle is None:
            state.handle = self.clock.call_at(due, lambda: self._on_timer(key))
        return due

    def _due(self, state: _Pending) -> float:
        return min(state.last + self.quiet_s, state.first + self.max_wait_s)

    def _on_timer(self, key: K) -> None:
        state = self._pending.get(key)
        if state is None:
            return
        due = self._due(state)
        if self.clock.now() + 1e-9 < due:
            state.handle = self.clock.call_at(due, lambda: self._on_timer(key))
            return
        del self._pending[key]
        self.fire(key)

    def flush(self, key: K) -> bool:
        """Fire now if ``key`` has pending activity."""
        state = self._pending.pop(key, None)
        if state is None:
            return False
        if state.handle is not None:
            state.handle.cancel()
        self.fire(key)
        return True

    def cancel(self, key: K) -> None:
        state = self._pending.pop(key, None)
        if state is not None and state.handle is not None:
            state.handle.cancel()

    def pending(self, key: K) -> bool:
        return key in self._pending

    def __len__(self) -> int:
        return len(self._pending)
