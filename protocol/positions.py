"""Offsets between the wire's position encoding and Python strings.

Python ``str`` indexes code points (UTF-32 units). Browsers index UTF-16 code
units, in which every astral character (emoji, CJK Extension B…) takes two
units. A :class:`PositionIndex` converts both ways in O(log n) per offset and
refuses a UTF-16 offset that falls between the two halves of a surrogate pair.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from typing import Literal

from protocol.errors import ErrorCode, PeerError, UsageError

__all__ = [
    "Encoding",
    "PositionIndex",
    "check_no_surrogates",
    "encoded_length",
]

Encoding = Literal["utf-16", "utf-32"]

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_no_surrogates(text: str) -> None:
    """Refuse text holding a lone surrogate (it cannot be stored or sent as UTF-8)."""
    match = _SURROGATE.search(text)
    if match is not None:
        raise PeerError(
            ErrorCode.BAD_SURROGATE,
            f"text holds a lone UTF-16 surrogate at code point {match.start()}",
        )


def encoded_length(text: str, encoding: Encoding) -> int:
    """Length of ``text`` in units of ``encoding``."""
    if encoding == "utf-32":
        return len(text)
    return len(text) + sum(1 for _ in _ASTRAL.finditer(text))


class PositionIndex:
    """Converts offsets into one fixed text between code points and ``encoding`` units."""

    __slots__ = ("_astral_cp", "_astral_units", "encoding", "length", "text_length")

    def __init__(self, text: str, encoding: Encoding) -> None:
        self.encoding: Encoding = encoding
        self.text_length = len(text)
        if encoding == "utf-32":
            self._astral_cp: list[int] = []
        else:
            self._astral_cp = [m.start() for m in _ASTRAL.finditer(text)]
        # UTF-16 offset at which the k-th astral character starts.
        self._astral_units = [cp + k for k, cp in enumerate(self._astral_cp)]
        self.length = self.text_length + len(self._astral_cp)

    def to_code_points(self, offset: int) -> int:
        """Wire offset → Python index. Raises ``bad_offsets`` if out of range or mid-pair."""
        if offset < 0 or offset > self.length:
            raise PeerError(
                ErrorCode.BAD_OFFSETS,
                f"offset {offset} is outside the document (length {self.length} {self.encoding})",
            )
        if not self._astral_cp:
            return offset
        before = bisect_left(self._astral_units, offset)
        if before and self._astral_units[before - 1] + 1 == offset:
            raise PeerError(
                ErrorCode.BAD_OFFSETS,
                f"offset {offset} falls inside a surrogate pair",
            )
        return offset - before

    def to_wire(self, index: int) -> int:
        """Python index → wire offset."""
        if index < 0 or index > self.text_length:
            raise UsageError(f"index {index} outside 0..{self.text_length}")
        if not self._astral_cp:
            return index
        return index + bisect_left(self._astral_cp, index)
