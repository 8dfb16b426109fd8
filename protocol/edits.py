"""Applying ordered changes to a text, atomically.

Changes apply one after another, each against the text the previous one
produced (LSP incremental sync). :func:`apply_changes` either returns the
new text or raises :class:`~protocol.errors.PeerError`; the input is never
modified, so a refused edit leaves the document exactly as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from protocol.errors import ErrorCode, PeerError
from protocol.messages import Change
from protocol.positions import Encoding, PositionIndex

__all__ = ["AppliedChange", "apply_changes", "convert_changes"]


@dataclass(frozen=True, slots=True)
class AppliedChange:
    """One applied change with its offsets in both encodings (against its own input text)."""

    start: int  # code points
    end: int
    start16: int  # UTF-16 units
    end16: int
    text: str

    def as_change(self, encoding: Encoding) -> Change:
        if encoding == "utf-32":
            return Change(self.start, self.end, self.text)
        return Change(self.start16, self.end16, self.text)


def apply_changes(
    text: str,
    changes: Sequence[Change],
    encoding: Encoding,
    *,
    max_chars: int | None = None,
) -> tuple[str, tuple[AppliedChange, ...]]:
    """Apply ``changes`` (offsets in ``encoding``) to ``text``; all or nothing."""
    applied: list[AppliedChange] = []
    for n, change in enumerate(changes):
        index = PositionIndex(text, encoding)
        try:
            start = index.to_code_points(change.start)
            end = index.to_code_points(change.end)
        except PeerError as exc:
            raise PeerError(exc.code, f"change {n}: {exc.message}") from None
        if start > end:
            raise PeerError(ErrorCode.BAD_OFFSETS, f"change {n}: start is after end")
        if encoding == "utf-16":
            start16, end16 = change.start, change.end
        else:
            utf16 = PositionIndex(text, "utf-16")
            start16, end16 = utf16.to_wire(start), utf16.to_wire(end)
        text = text[:start] + change.text + text[end:]
        if max_chars is not None and len(text) > max_chars:
            raise PeerError(
                ErrorCode.DOC_TOO_LARGE,
                f"the document would have {len(text)} characters; the limit is {max_chars}",
            )
        applied.append(AppliedChange(start, end, start16, end16, change.text))
    return text, tuple(applied)


def convert_changes(
    text: str, changes: Sequence[Change], source: Encoding, target: Encoding
) -> tuple[Change, ...]:
    """Re-express ``changes`` against ``text`` from one encoding in another."""
    if source == target:
        return tuple(changes)
    _, applied = apply_changes(text, changes, source)
    return tuple(a.as_change(target) for a in applied)
