"""In-memory state of one document: text, version, the last analysis, who is connected."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protocol import Hint, PositionIndex, SentenceHints
from protocol.positions import Encoding
from server.docids import teacher_id
from server.hints import DraftHint

__all__ = ["Analysis", "Document", "SentenceState", "to_wire_sentences"]


@dataclass(slots=True)
class SentenceState:
    id: str
    start: int  # code points into Analysis.text
    end: int
    text: str
    paragraph: int
    # (last in paragraph, last in text, follows a clause ending in ;/:/, in the same
    # paragraph): rule hints depend on it, so a change of context re-runs the rules.
    context: tuple[bool, ...]
    hints: tuple[tuple[str, DraftHint], ...]  # (hint id, hint with document offsets)
    embedding: np.ndarray | None = None
    # The document's hint budget (server.hintcaps): how many of ``hints`` are shown, and
    # on the first sentence past the budget, how many hints of the document are hidden.
    shown: int = -1  # -1: all
    overflow: int = 0

    def visible(self) -> tuple[tuple[str, DraftHint], ...]:
        return self.hints if self.shown < 0 else self.hints[: self.shown]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "paragraph": self.paragraph,
            "context": list(self.context),
            "hints": [[hid, *_draft_fields(h)] for hid, h in self.hints],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SentenceState:
        return cls(
            raw["id"],
            raw["start"],
            raw["end"],
            raw["text"],
            raw["paragraph"],
            tuple(bool(c) for c in raw["context"]),
            tuple(
                (h[0], DraftHint(h[1], h[2], h[3], h[4], h[5], h[6], tuple(h[7]), h[8], h[9]))
                for h in raw["hints"]
            ),
        )


def _draft_fields(h: DraftHint) -> list[Any]:
    return [
        h.kind,
        h.code,
        h.severity,
        h.start,
        h.end,
        h.message,
        list(h.suggestions),
        h.confidence,
        h.source,
    ]


@dataclass(slots=True)
class Analysis:
    version: int
    text: str
    lang: str
    sentences: list[SentenceState]
    scores: dict[str, Any] | None = None  # wire form of the Scores message (no offsets in it)
    _indexes: dict[str, PositionIndex] = field(default_factory=dict)
    model: str = ""  # the sentence model of its hints (a reload invalidates them)

    def index(self, encoding: Encoding) -> PositionIndex:
        found = self._indexes.get(encoding)
        if found is None:
            found = self._indexes[encoding] = PositionIndex(self.text, encoding)
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "text": self.text,
            "lang": self.lang,
            "sentences": [s.to_json() for s in self.sentences],
            "model": self.model,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any], scores: dict[str, Any] | None) -> Analysis:
        return cls(
            raw["version"],
            raw["text"],
            raw["lang"],
            [SentenceState.from_json(s) for s in raw["sentences"]],
            scores,
            model=raw.get("model", ""),
        )


def to_wire_sentences(
    analysis: Analysis,
    sentences: list[SentenceState],
    encoding: Encoding,
    dismissed: set[str],
) -> tuple[SentenceHints, ...]:
    """Sentences with their hints, offsets converted to ``encoding``, dismissed hints left out."""
    from server.hintcaps import document_summary  # (hintcaps imports this module)

    index = analysis.index(encoding)
    wire = index.to_wire
    out = []
    for s in sentences:
        pairs = s.visible()
        if s.overflow:
            pairs = (*pairs, document_summary(s.id, s.overflow, analysis.lang, s.end))
        hints = tuple(
            Hint(
                id=hid,
                kind=h.kind,  # type: ignore[arg-type]
                code=h.code,
                severity=h.severity,  # type: ignore[arg-type]
                start=wire(h.start),
                end=wire(h.end),
                message=h.message,
                suggestions=h.suggestions,
                confidence=h.confidence,
                source=h.source,
            )
            for hid, h in pairs
            if hid not in dismissed
        )
        out.append(SentenceHints(id=s.id, start=wire(s.start), end=wire(s.end), hints=hints))
    return tuple(out)


@dataclass(eq=False, slots=True)
class Document:
    id: str  # the storage key: class/owner/name (server.docids)
    name: str  # the student's name for it
    owner: str
    class_id: str
    lang: str  # as requested: zh | en | auto
    text: str
    version: int
    dismissed: set[str] = field(default_factory=set)
    analysis: Analysis | None = None
    editors: set[Any] = field(default_factory=set)  # student connections
    first_unanalysed_at: float | None = None  # monotonic time of the oldest unanalysed edit
    debounce_due: float | None = None  # when the debounce was due for the newest edit
    last_edit_at: float = 0.0
    analysing: bool = False
    dirty: bool = False
    presence: str = "offline"
    scores: dict[str, Any] | None = None  # the latest scores sent (wire form)
    scoring: bool = False
    score_dirty: bool = False
    score_timer: Any = None
    last_scored_at: float = float("-inf")
    stored_bytes: int = 0  # snapshot + log in the store (the owner's storage quota)
    # client id -> (seq, version) of its last applied operation (idempotent resend)
    client_seqs: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def teacher_id(self) -> str:
        """How teachers of the class address this document."""
        return teacher_id(self.owner, self.name)
