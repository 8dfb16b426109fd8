"""Fair admission of analysis work: many documents, a few slots, the light users first.

Per-user budgets bound what one student may send, but not what fifty of them cost
together: analysing fifty 49,000-character documents (segmentation, rules, scores)
can hold the event loop for seconds, and then every student waits. The gate runs at
most ``concurrency`` analysis jobs at once, and of those at most ``heavy_slots`` are heavy:
a heavy owner's (priority level >= 1, see :meth:`FairGate.level`) or a job that is
heavy by itself (cost >= ``heavy_cost``: the first analysis of a huge new document
comes before its owner has any history). So a light user's job finds a slot soon.
While slots are free a job starts at once (no queueing delay for a quiet server).
When jobs wait, the next one is the job of the owner who used the least work
recently: usage is the sum of job costs (here: the document's size), decaying with a
half-life, so a student typing a normal essay is served before someone who keeps the
server busy with huge documents, whose feedback is merely delayed. Clock injected; no
thread.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from server.clock import Clock

__all__ = ["FairGate"]


@dataclass(order=True, slots=True)
class _Waiting:
    seq: int
    owner: Hashable = field(compare=False)
    cost: float = field(compare=False)
    job: Callable[[], Awaitable[None]] = field(compare=False)
    heavy: bool = field(compare=False, default=False)


class FairGate:
    def __init__(
        self,
        clock: Clock,
        spawn: Callable[[Awaitable[None]], Any],
        *,
        concurrency: int,
        half_life_s: float = 10.0,
        heavy_cost: float = 20.0,
        heavy_slots: int | None = None,
    ) -> None:
        self.clock = clock
        self.spawn = spawn
        self.concurrency = max(1, concurrency)
        self.heavy_slots = max(1, heavy_slots or self.concurrency // 4)
        self.heavy_cost = heavy_cost
        self.decay = math.log(2) / max(half_life_s, 1e-6)
        self.running = 0
        self.heavy_running = 0
        self.waiting: list[_Waiting] = []
        self._usage: dict[Hashable, tuple[float, float]] = {}  # owner → (value, at)
        self._seq = itertools.count()

    def usage(self, owner: Hashable) -> float:
        value, at = self._usage.get(owner, (0.0, 0.0))
        return value * math.exp(-self.decay * max(0.0, self.clock.now() - at))

    # Recent usage (cost units ≈ thousands of characters analysed, half-life decayed)
    # below LEVELS[0] is priority level 0, below LEVELS[1] level 1, else 2. A student
    # typing a 5,000-character essay, analysed every second, stays near 90.
    LEVELS = (150.0, 1500.0)

    def level(self, owner: Hashable) -> int:
        """The owner's priority level for the inference queue (0 first)."""
        used = self.usage(owner)
        return next((i for i, limit in enumerate(self.LEVELS) if used < limit), len(self.LEVELS))

    def _may_start(self, heavy: bool) -> bool:
        return self.running < self.concurrency and (
            not heavy or self.heavy_running < self.heavy_slots
        )

    def run(self, owner: Hashable, cost: float, job: Callable[[], Awaitable[None]]) -> None:
        """Start ``job()`` now if a slot is free, else when its turn comes."""
        heavy = cost >= self.heavy_cost or self.level(owner) > 0
        item = _Waiting(next(self._seq), owner, cost, job, heavy)
        if not self.waiting and self._may_start(item.heavy):
            self._start(item)  # the common case: a quiet server
        else:
            self.waiting.append(item)
            self._next()

    def _start(self, item: _Waiting) -> None:
        now = self.clock.now()
        self._usage[item.owner] = (self.usage(item.owner) + item.cost, now)
        self.running += 1
        self.heavy_running += item.heavy
        self.spawn(self._guarded(item))

    async def _guarded(self, item: _Waiting) -> None:
        try:
            await item.job()
        finally:
            self.running -= 1
            self.heavy_running -= item.heavy
            self._next()

    def _next(self) -> None:
        while self.waiting and self.running < self.concurrency:
            # least recent usage first; among equals, the earliest; heavy ones only
            # while a heavy slot is free
            allowed = [w for w in self.waiting if self._may_start(w.heavy)]
            if not allowed:
                return
            best = min(allowed, key=lambda w: (self.usage(w.owner), w.seq))
            self.waiting.remove(best)
            self._start(best)
        if not self.waiting and len(self._usage) > 4096:
            now = self.clock.now()
            self._usage = {
                o: (v, t)
                for o, (v, t) in self._usage.items()
                if v * math.exp(-self.decay * (now - t)) > 0.01
            }
