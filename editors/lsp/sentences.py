"""The hints the bridge holds for one document, kept in the coordinates of its current text.

A ``hints`` message only lists the sentences whose hints changed; the others keep
theirs, wherever they moved. So every sentence is kept with the text it had when
it was analysed and a span that follows the editor's changes (loosely: an edit
inside it grows or shrinks it). A sentence counts only while the text under its
span is exactly the text it was analysed on; then each hint's range is exact by
construction (same characters, same relative offsets). A sentence edited and
edited back counts again; one still being edited counts when new hints arrive.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from editors.lsp.text import TextChange, diff_change, map_span

if TYPE_CHECKING:
    from protocol import Hint, Hints

__all__ = ["LiveHint", "SentenceRecord", "SentenceStore"]


@dataclass(slots=True)
class SentenceRecord:
    id: str
    start: int  # code points into the current text
    end: int
    text: str  # the sentence as analysed
    hints: tuple[Hint, ...]  # offsets relative to the sentence start


@dataclass(frozen=True, slots=True)
class LiveHint:
    """A hint valid for the current text; ``start``/``end`` are code points into it."""

    hint: Hint
    start: int
    end: int
    sentence: SentenceRecord


class SentenceStore:
    """Sentences and hints of one document, mapped onto its current text."""

    def __init__(self) -> None:
        self.sentences: dict[str, SentenceRecord] = {}
        self.version = -1  # server version of the newest hints applied

    def clear(self) -> None:
        self.sentences.clear()
        self.version = -1

    def apply_change(self, change: TextChange) -> None:
        """Follow one edit of the current text."""
        for record in self.sentences.values():
            record.start, record.end = map_span((record.start, record.end), change)

    def receive(self, message: Hints, texts: Sequence[str] | None, *, full: bool) -> int:
        """Take a ``hints`` message; ``texts`` runs from the text of its version, through
        the texts of every later version, to the current text (None: not known).

        Each step is one diff, so edits in different places between the message's version
        and now each move only what follows them. ``full`` replaces everything (the first
        ``hints`` after a ``welcome``). Returns how many sentences were placed.
        """
        if message.version < self.version:
            return 0
        self.version = message.version
        if full:
            self.sentences.clear()
        for sid in message.removed:
            self.sentences.pop(sid, None)
        if not texts:
            for sentence in message.sentences:
                self.sentences.pop(sentence.id, None)
            return 0
        text_then = texts[0]
        steps = [diff_change(a, b) for a, b in itertools.pairwise(texts) if a != b]
        kept = 0
        for sentence in message.sentences:
            if not 0 <= sentence.start <= sentence.end <= len(text_then):
                continue
            span = (sentence.start, sentence.end)
            for step in steps:
                span = map_span(span, step)
            relative = tuple(
                _shift(h, -sentence.start)
                for h in sentence.hints
                if sentence.start <= h.start <= h.end <= sentence.end
            )
            self.sentences[sentence.id] = SentenceRecord(
                sentence.id, span[0], span[1], text_then[sentence.start : sentence.end], relative
            )
            kept += 1
        return kept

    def live(self, text: str) -> list[LiveHint]:
        """Every hint whose sentence reads exactly as analysed, in document order."""
        out: list[LiveHint] = []
        for record in self.sentences.values():
            if text[record.start : record.end] != record.text:
                continue
            for h in record.hints:
                out.append(LiveHint(h, record.start + h.start, record.start + h.end, record))
        out.sort(key=lambda lh: (lh.start, lh.end, lh.hint.id))
        return out

    def sentence_at(self, text: str, offset: int) -> SentenceRecord | None:
        """The valid sentence containing ``offset`` (its end included)."""
        for record in self.sentences.values():
            if record.start <= offset <= record.end and text[record.start : record.end] == (
                record.text
            ):
                return record
        return None


def _shift(hint: Hint, delta: int) -> Hint:
    return dataclasses.replace(hint, start=hint.start + delta, end=hint.end + delta)
