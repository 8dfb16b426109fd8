"""Backend errors: the one a server start can turn into a one-line refusal."""

from __future__ import annotations

__all__ = ["BackendUnavailable"]


class BackendUnavailable(RuntimeError):
    """This backend cannot run on this host (missing package, no GPU, incompatible plan).

    ``str(error)`` is one line that says why; ``inkstone serve`` prints it and exits, or
    falls back to ``--fallback-backend`` when one is given.
    """
