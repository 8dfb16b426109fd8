"""Model releases, live: ``inkstone reload-models`` (SIGHUP) swaps in a new release
without dropping a socket.

The new :class:`server.models.ModelService` is loaded and warmed on a worker thread while
the old one keeps serving; then the service switches to it (analyses in flight finish on
the models they started with, and every open document is analysed again). The old
service is closed once its scheduler is idle. The prediction cache is per release and
keyed by the sentence model's digest, so no prediction of the old release is reused;
hints name the new sentence model (``source``) and scores the essay model of the
release (``basis``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

__all__ = ["install_reload_signal", "reload_models"]

log = logging.getLogger("inkstone.releases")


async def reload_models(runtime: Any) -> dict[str, Any]:
    """Load the configured release again and serve it; returns its description."""
    from server.models import ModelService

    async with runtime.reload_lock:
        old = runtime.models
        new = await asyncio.to_thread(ModelService, runtime.settings, None)
        runtime.models = new
        if runtime.service is not None:
            runtime.service.use_models(new)
        log.info("models reloaded: %s", new.describe())
        if old is not None:
            asyncio.get_running_loop().create_task(_close_when_idle(old))
        return dict(new.describe())


async def _close_when_idle(old: Any, timeout_s: float = 30.0) -> None:
    for _ in range(int(timeout_s * 10)):
        if old.scheduler.depth == 0 and not old._inflight:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # a batch being computed right now
    old.close()


def install_reload_signal(runtime: Any) -> None:
    """SIGHUP reloads the models; the pid goes to ``<data dir>/inkstone.pid`` for the CLI.
    Only in the main thread of a process (a server in a test thread has no signals)."""
    runtime.reload_lock = asyncio.Lock()
    if not runtime.load_models:
        return
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload_models(runtime)))
        (runtime.settings.data_dir / "inkstone.pid").write_text(str(os.getpid()))
