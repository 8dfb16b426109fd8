"""Structured logging: plain text for people, JSON lines for machines; floods are summed up.

A misbehaving client must not be able to fill the disk through our logs (issue 9:
37 MB of EMFILE tracebacks in ten seconds; an ERROR traceback per invalid-UTF-8
frame). :class:`RateLimitFilter` lets at most ``burst`` records per (logger,
message) through per ``interval_s`` and then writes one line saying how many
similar records it suppressed.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable

import orjson

__all__ = ["RateLimitFilter", "configure_logging"]

SUMMARY_LOGGER = "inkstone.logs"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(time.time(), 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


class RateLimitFilter(logging.Filter):
    """A handler filter: at most ``burst`` records per key per ``interval_s``.

    The key is the logger name and the first line of the unformatted message, so
    "connection refused: %s" from a thousand peers is one key. When a key's window
    ends with records suppressed, one WARNING line from ``inkstone.logs`` says how
    many (written when the next record of any kind arrives, or by :meth:`flush`).
    """

    def __init__(
        self,
        handler: logging.Handler,
        *,
        burst: int = 10,
        interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.handler = handler
        self.burst, self.interval_s, self.clock = burst, interval_s, clock
        # key → [window start, records seen, records suppressed]
        self._windows: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == SUMMARY_LOGGER:
            return True
        now = self.clock()
        key = (record.name, str(record.msg).split("\n", 1)[0][:200])
        with self._lock:
            due = self._expired(now) if now >= self._next_sweep else []
            window = self._windows.get(key)
            if window is None or now - window[0] >= self.interval_s:
                if window is not None and window[2]:
                    due.append((key, window))
                window = self._windows[key] = [now, 0, 0]
            window[1] += 1
            allowed = window[1] <= self.burst
            if not allowed:
                window[2] += 1
        self._summarise(due)
        return allowed

    def flush(self) -> None:
        """Write the pending "suppressed" lines now (at shutdown)."""
        with self._lock:
            due = self._expired(float("inf"))
        self._summarise(due)

    def _expired(self, now: float) -> list[tuple[tuple[str, str], list[float]]]:
        self._next_sweep = now + 1.0
        done = [(k, w) for k, w in self._windows.items() if now - w[0] >= self.interval_s]
        for k, _ in done:
            del self._windows[k]
        return [(k, w) for k, w in done if w[2]]

    def _summarise(self, due: list[tuple[tuple[str, str], list[float]]]) -> None:
        for (name, first_line), window in due:
            record = logging.LogRecord(
                SUMMARY_LOGGER,
                logging.WARNING,
                __file__,
                0,
                "suppressed %d similar messages in %.0f s from %s: %s",
                (int(window[2]), self.interval_s, name, first_line),
                None,
            )
            self.handler.handle(record)


def configure_logging(
    *,
    json_lines: bool = False,
    level: int = logging.INFO,
    burst: int = 10,
    interval_s: float = 60.0,
) -> RateLimitFilter:
    handler = logging.StreamHandler()
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    limiter = RateLimitFilter(handler, burst=burst, interval_s=interval_s)
    handler.addFilter(limiter)
    atexit.register(limiter.flush)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    return limiter
