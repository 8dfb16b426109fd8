"""The inference scheduler: bounded admission, micro-batching, one worker thread.

The scheduler alone owns the queue. ``submit_sentences`` refuses work when
more than ``queue_limit`` sentences wait (:class:`Overloaded`, never a
silent drop). A dedicated thread, which owns the backend (and on a GPU its
context and stream), forms batches with :class:`BatchPlanner`: it waits at
most ``window_s`` after the oldest request for company, groups requests of
similar length (buckets) and caps each batch by count and by padded tokens.
Each request gets an asyncio future resolved on the event loop with its
result and timings.

Requests carry a priority level (0 first; the service derives it from how much
analysis work the document's owner caused recently, see server/fairgate.py): a
batch is formed from the best level that has work, and admission counts only the
work at the same or a better level, so a flood of heavy documents can neither delay
nor refuse a typing student's sentences.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engines.buckets import LENGTH_BUCKETS
from server.backends.base import Backend

__all__ = ["BatchPlanner", "InferenceScheduler", "Job", "Overloaded", "Timing"]

log = logging.getLogger("inkstone.scheduler")

BUCKETS = LENGTH_BUCKETS  # engines.buckets: the GPU backends pad to the same buckets


class Overloaded(Exception):
    def __init__(self, retry_after_ms: int) -> None:
        super().__init__(f"analysis queue is full; retry in {retry_after_ms} ms")
        self.retry_after_ms = retry_after_ms


@dataclass(slots=True)
class Timing:
    queued_ms: float
    compute_ms: float
    batch_size: int


LEVELS = 3  # priority levels: 0 light users … 2 the heaviest


@dataclass(slots=True)
class Job:
    tokens: int
    enqueued: float
    payload: Any
    done: Callable[[Any, Timing | None, BaseException | None], None]
    bucket: int = 0
    level: int = 0


def bucket_of(tokens: int) -> int:
    for limit in BUCKETS:
        if tokens <= limit:
            return limit
    return BUCKETS[-1] * 2


@dataclass(slots=True)
class BatchPlanner:
    """Pure batching policy (no threads, no clock of its own): tests drive it directly."""

    window_s: float
    max_batch: int
    max_tokens: int
    levels: list[deque[Job]] = field(default_factory=lambda: [deque() for _ in range(LEVELS)])

    def add(self, job: Job) -> None:
        job.bucket = bucket_of(job.tokens)
        job.level = min(max(job.level, 0), LEVELS - 1)
        self.levels[job.level].append(job)

    @property
    def pending(self) -> deque[Job]:
        """The queue batches are formed from now: the best level that has work."""
        for queue in self.levels:
            if queue:
                return queue
        return self.levels[0]

    def waiting(self, level: int = LEVELS - 1) -> int:
        """Jobs waiting at ``level`` or a better one."""
        return sum(len(q) for q in self.levels[: level + 1])

    def _select(self) -> list[Job]:
        oldest = self.pending[0]
        chosen: list[Job] = []
        longest = 0
        for job in self.pending:
            if job.bucket != oldest.bucket:
                continue
            longest_if = max(longest, job.tokens)
            if chosen and (
                len(chosen) >= self.max_batch or longest_if * (len(chosen) + 1) > self.max_tokens
            ):
                break
            chosen.append(job)
            longest = longest_if
        return chosen

    def due(self) -> float | None:
        """When the oldest job's window closes (None if nothing waits)."""
        return self.pending[0].enqueued + self.window_s if self.pending else None

    def take(self, now: float) -> list[Job]:
        """The next batch if it is full or its window has closed, else []."""
        if not self.pending:
            return []
        chosen = self._select()
        full = len(chosen) >= self.max_batch or len(chosen) < sum(
            1 for j in self.pending if j.bucket == chosen[0].bucket
        )
        if not full and now < self.pending[0].enqueued + self.window_s:
            return []
        ids = {id(j) for j in chosen}
        queue = self.pending
        self.levels[chosen[0].level] = deque(j for j in queue if id(j) not in ids)
        return chosen


RunBatch = Callable[[list[Any]], list[Any]]


class InferenceScheduler:
    """Owns the queues and the worker thread; the event loop only submits and awaits."""

    def __init__(
        self,
        backend: Backend,
        run_sentences: RunBatch,
        run_essay: Callable[[Any], Any],
        *,
        queue_limit: int,
        window_s: float,
        max_batch: int,
        max_tokens: int,
        clock: Callable[[], float] = time.monotonic,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.backend = backend
        self.run_sentences = run_sentences
        self.run_essay = run_essay
        self.queue_limit = queue_limit
        self.clock = clock
        self.on_batch = on_batch
        self.planner = BatchPlanner(window_s, max_batch, max_tokens)
        self.essays: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._ms_per_sentence = 2.0  # EWMA of compute time, for retry_after hints

    # ------------------------------------------------------------ event-loop side

    def start(self) -> None:
        self._thread = threading.Thread(target=self._worker, name="inkstone-inference", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        return self.planner.waiting() + len(self.essays)

    def _future_callback(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]
    ) -> Callable[[Any, Timing | None, BaseException | None], None]:
        def done(result: Any, timing: Timing | None, error: BaseException | None) -> None:
            def settle() -> None:
                if future.done():
                    return
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result((result, timing))

            loop.call_soon_threadsafe(settle)

        return done

    def submit_sentences(
        self, items: Sequence[tuple[Any, int]], level: int = 0
    ) -> list[asyncio.Future[tuple[Any, Timing]]]:
        """Queue ``(payload, tokens)`` items at priority ``level``; all are admitted or
        none (Overloaded).

        An empty queue admits any request, so one long document can never be refused
        forever; otherwise at most ``queue_limit`` sentences wait at ``level`` or better.
        """
        loop = asyncio.get_running_loop()
        with self._cond:
            if self._closed:
                raise Overloaded(1000)
            waiting = self.planner.waiting(level)
            if waiting and waiting + len(items) > self.queue_limit:
                raise Overloaded(max(50, int(waiting * self._ms_per_sentence)))
            now = self.clock()
            futures = []
            for payload, tokens in items:
                future: asyncio.Future[tuple[Any, Timing]] = loop.create_future()
                job = Job(tokens, now, payload, self._future_callback(loop, future), level=level)
                self.planner.add(job)
                futures.append(future)
            self._cond.notify()
        return futures

    def submit_essay(self, payload: Any) -> asyncio.Future[tuple[Any, Timing]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Any, Timing]] = loop.create_future()
        with self._cond:
            if self._closed:
                raise Overloaded(1000)
            if len(self.essays) > self.queue_limit:
                raise Overloaded(max(50, int(len(self.essays) * 5)))
            self.essays.append(Job(0, self.clock(), payload, self._future_callback(loop, future)))
            self._cond.notify()
        return future

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        self.backend.close()

    # ------------------------------------------------------------ worker thread

    def _next_work(self) -> tuple[str, list[Job]] | None:
        with self._cond:
            while True:
                if self._closed:
                    return None
                now = self.clock()
                batch = self.planner.take(now)
                if batch:
                    return "sentences", batch
                if self.essays:
                    return "essay", [self.essays.popleft()]
                due = self.planner.due()
                self._cond.wait(None if due is None else max(0.0, due - now))

    def _worker(self) -> None:
        while (work := self._next_work()) is not None:
            kind, jobs = work
            started = self.clock()
            try:
                if kind == "sentences":
                    results = self.run_sentences([j.payload for j in jobs])
                else:
                    results = [self.run_essay(jobs[0].payload)]
                error = None
            except Exception as exc:  # a model failure fails these requests, not the server
                log.exception("inference failed for a batch of %d", len(jobs))
                results, error = [None] * len(jobs), exc
            finished = self.clock()
            compute_ms = (finished - started) * 1000
            if kind == "sentences":
                self._ms_per_sentence = 0.9 * self._ms_per_sentence + 0.1 * compute_ms / len(jobs)
                if self.on_batch is not None:
                    self.on_batch(len(jobs), compute_ms)
            for job, result in zip(jobs, results, strict=True):
                timing = Timing((started - job.enqueued) * 1000, compute_ms, len(jobs))
                job.done(result, timing, error)
        # Fail whatever is left so no awaiting coroutine hangs.
        with self._cond:
            leftovers = list(self.planner.pending) + list(self.essays)
            self.planner.pending.clear()
            self.essays.clear()
        for job in leftovers:
            job.done(None, None, Overloaded(1000))
