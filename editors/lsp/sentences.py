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

from dataclasses import dataclass

from editors.lsp.text import TextChange, diff_change, map_span
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

    def receive(self, message: Hints, text_then: str | None, text_now: str, *, full: bool) -> int:
        """Take a ``hints`` message computed on ``text_then`` (its version's text).

        ``full`` replaces everything (the first ``hints`` after a ``welcome``). Returns how
        many of the message's sentences were kept; those that cannot be placed (the text
        of their version is unknown) are skipped until the server resends them.
        """
        if message.version < self.version:
            return 0
        self.version = message.version
        if full:
            self.sentences.clear()
        for sid in message.removed:
            self.sentences.pop(sid, None)
        if text_then is None:
            for sentence in message.sentences:
                self.sentences.pop(sentence.id, None)
            return 0
        change = diff_change(text_then, text_now)
        kept = 0
        for sentence in message.sentences:
            if not 0 <= sentence.start <= sentence.end <= len(text_then):
                continue
            start, end = map_span((sentence.start, sentence.end), change)
            relative = tuple(
                _shift(h, -sentence.start)
                for h in sentence.hints
                if sentence.start <= h.start <= h.end <= sentence.end
            )
            self.sentences[sentence.id] = SentenceRecord(
                sentence.id, start, end, text_then[sentence.start : sentence.end], relative
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
    return Hint(
        hint.id,
        hint.kind,
        hint.code,
        hint.severity,
        hint.start + delta,
        hint.end + delta,
        hint.message,
        hint.suggestions,
        hint.confidence,
        hint.source,
    )
