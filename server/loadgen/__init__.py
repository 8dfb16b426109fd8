"""The load generator: simulated students and teachers on real sockets (``inkstone loadgen``).

Modules: ``typing`` (keystroke model), ``corpus`` (essays), ``student`` and
``teacher`` (simulated clients), ``report`` (percentiles, server CPU/RSS,
summary), ``run`` (processes and phases), ``options`` (the command-line
options; kept light so that ``inkstone`` can list them without importing
the rest).
"""

__all__: list[str] = []
