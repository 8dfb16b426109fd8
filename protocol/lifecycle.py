"""The connection lifecycle as a table.

::

    CONNECTING ──hello(student)──▶ EDITING ──┐
        │                                     ├──close──▶ CLOSING ──closed──▶ CLOSED
        └──────hello(teacher)──▶ OBSERVING ──┘

Which client messages each phase accepts is a second table. A message the
phase does not accept is the peer's fault (an ``error`` frame); an event
the transition table lacks is ours (:class:`UsageError`).
"""

from __future__ import annotations

from enum import StrEnum

from protocol.errors import ErrorCode, PeerError, UsageError

__all__ = ["ACCEPTS", "TRANSITIONS", "Lifecycle", "Phase"]


class Phase(StrEnum):
    CONNECTING = "connecting"
    EDITING = "editing"
    OBSERVING = "observing"
    CLOSING = "closing"
    CLOSED = "closed"


TRANSITIONS: dict[tuple[Phase, str], Phase] = {
    (Phase.CONNECTING, "open_student"): Phase.EDITING,
    (Phase.CONNECTING, "open_teacher"): Phase.OBSERVING,
    (Phase.CONNECTING, "close"): Phase.CLOSING,
    (Phase.EDITING, "close"): Phase.CLOSING,
    (Phase.OBSERVING, "close"): Phase.CLOSING,
    (Phase.CLOSING, "close"): Phase.CLOSING,
    (Phase.CLOSING, "closed"): Phase.CLOSED,
}

ACCEPTS: dict[Phase, frozenset[str]] = {
    Phase.CONNECTING: frozenset({"hello", "ping"}),
    Phase.EDITING: frozenset({"replace", "edit", "dismiss", "submit", "resolve", "reauth", "ping"}),
    Phase.OBSERVING: frozenset(
        {"observe", "unobserve", "comment", "resolve", "verdict", "grade", "reauth", "ping"}
    ),
    Phase.CLOSING: frozenset(),
    Phase.CLOSED: frozenset(),
}


class Lifecycle:
    """Current phase of one connection; every change goes through :data:`TRANSITIONS`."""

    __slots__ = ("phase",)

    def __init__(self) -> None:
        self.phase = Phase.CONNECTING

    def fire(self, event: str) -> Phase:
        try:
            self.phase = TRANSITIONS[(self.phase, event)]
        except KeyError:
            raise UsageError(f"no transition {event!r} from {self.phase}") from None
        return self.phase

    def check(self, message_type: str) -> None:
        """Raise the right ``PeerError`` if ``message_type`` is not allowed now."""
        if message_type in ACCEPTS[self.phase]:
            return
        if self.phase is Phase.CONNECTING:
            raise PeerError(ErrorCode.NO_SESSION, f"send 'hello' before '{message_type}'")
        if message_type == "hello":
            raise PeerError(ErrorCode.ALREADY_OPEN, "this connection already has a session")
        if self.phase is Phase.OBSERVING:
            raise PeerError(ErrorCode.FORBIDDEN, f"a teacher session cannot '{message_type}'")
        if self.phase is Phase.EDITING:
            raise PeerError(ErrorCode.FORBIDDEN, f"a student session cannot '{message_type}'")
        raise PeerError(ErrorCode.NO_SESSION, "the connection is closing")
