"""One open editor document: its text, masked text, hints and what the editor is shown.

The bridge keeps its own copy of the text (pygls updates its copy before the
change handler runs, so the pre-change text needed to convert LSP ranges would
be gone). LSP changes are converted against this copy one by one; with masking
the masked text is diffed instead (a typed ``` can re-mask everything after it).
"""

from __future__ import annotations

import re
import time
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lsprotocol import types

from editors.lsp.diagnostics import label, to_diagnostic
from editors.lsp.mask import MaskKind, mask
from editors.lsp.sentences import LiveHint, SentenceStore
from editors.lsp.text import LineIndex, LspEncoding, TextChange, apply_lsp_changes, diff_change

if TYPE_CHECKING:
    from editors.lsp.session import DocumentSession

__all__ = ["OpenDocument", "doc_name", "sentence_ended"]

_ENDS = tuple("。！？!?.…；;")
_CLOSERS = " \t”’」』）)\"'》"
LspChange = tuple[tuple[int, int, int, int] | None, str]


def doc_name(uri: str) -> str:
    """A stable protocol document name for a file: its name plus a hash of its URI."""
    stem = uri.rstrip("/").rsplit("/", 1)[-1] or "untitled"
    stem = re.sub(r"[^\w.\-]+", "_", stem)[:60]
    import hashlib  # not before a document opens (start-up time)

    digest = hashlib.blake2b(uri.encode(), digest_size=5).hexdigest()
    return f"{stem}-{digest}"


def sentence_ended(text: str, caret: int) -> bool:
    """True when the text just before ``caret`` ends a sentence (closing quotes aside)."""
    before = text[:caret].rstrip(_CLOSERS)
    return before.endswith(_ENDS) or before.endswith("\n")


def typing_span(text: str, caret: int) -> tuple[int, int]:
    """The stretch of the current text that holds the sentence being typed: from just after
    the last sentence end before ``caret`` to the next one at or after it (or the line's
    end). Judged on the text now, not on the sentences of an older analysis: those may
    have ended where the student has since typed on ("我们我们" of "我们我们去公园")."""
    start = max(text.rfind(ch, 0, caret) for ch in (*_ENDS, "\n")) + 1
    ends = [i for i in (text.find(ch, caret) for ch in (*_ENDS, "\n")) if i >= 0]
    return start, (min(ends) + 1 if ends else len(text))


@dataclass
class OpenDocument:
    uri: str
    language_id: str
    version: int
    text: str  # the editor's text
    mask_kind: MaskKind = "none"
    masked: str = ""  # what the server gets: same length and lines as ``text``
    masked_spans: list[tuple[int, int]] = field(default_factory=list)
    session: DocumentSession | None = None
    store: SentenceStore = field(default_factory=SentenceStore)
    caret: int | None = None  # where the last change ended: the caret, as far as LSP tells
    last_edit: float = 0.0
    own_edit: bool = False  # the next change is a quick fix we applied: not typing
    dismissed: set[str] = field(default_factory=set)
    published: list[tuple[str, tuple[int, int, int, int]]] | None = None
    _diagnostics: dict[tuple[object, ...], types.Diagnostic | None] = field(
        default_factory=dict, repr=False
    )

    def __post_init__(self) -> None:
        self.remask(self.mask_kind)

    @property
    def name(self) -> str:
        return doc_name(self.uri)

    def remask(self, kind: MaskKind) -> None:
        self.mask_kind = kind
        self.masked, spans = mask(self.text, kind)
        self.masked_spans = spans

    def apply(
        self, changes: Iterable[LspChange], encoding: LspEncoding, version: int
    ) -> list[TextChange]:
        """Apply the editor's changes; return the changes of the masked text (code points)."""
        changes = list(changes)
        text, raw = apply_lsp_changes(self.text, changes, encoding)
        self.text, self.version = text, version
        if raw and self.own_edit:
            self.own_edit = False
        elif raw:
            last = raw[-1]
            self.caret = last.start + len(last.text)
            self.last_edit = time.monotonic()
        if self.mask_kind == "none":
            self.masked, masked_changes = text, raw
        else:
            before = self.masked
            self.masked, self.masked_spans = mask(text, self.mask_kind)
            masked_changes = [] if before == self.masked else [diff_change(before, self.masked)]
        for change in masked_changes:
            self.store.apply_change(change)
        return masked_changes

    # ------------------------------------------------------------ what is shown

    def _in_mask(self, start: int, end: int) -> bool:
        spans = self.masked_spans
        i = bisect_left(spans, (start, start))
        for j in (i - 1, i):
            if 0 <= j < len(spans) and spans[j][0] < max(end, start + 1) and start < spans[j][1]:
                return True
        return False

    def visible(
        self, caret_delay_ms: int, now: float | None = None
    ) -> tuple[list[LiveHint], float]:
        """Hints to show now, and how many seconds until held-back ones are due (0: none)."""
        now = time.monotonic() if now is None else now
        wait = self.last_edit + caret_delay_ms / 1000 - now
        held: tuple[int, int] | None = None
        if self.caret is not None and wait > 0 and not sentence_ended(self.text, self.caret):
            held = typing_span(self.masked, self.caret)
        out = []
        for live in self.store.live(self.masked):
            if live.hint.id in self.dismissed:
                continue
            if held is not None and live.sentence.start < held[1] and live.sentence.end > held[0]:
                continue  # in the sentence being typed: wait until it ends or typing pauses
            whole = live.start == live.sentence.start and live.end == live.sentence.end
            if not whole and self._in_mask(live.start, live.end):
                continue
            out.append(live)
        return out, (wait if held is not None else 0.0)

    def diagnostics(
        self,
        hints: list[LiveHint],
        encoding: LspEncoding,
        *,
        lang: str,
        severities: Mapping[str, str],
        docs_url: str | None,
    ) -> list[types.Diagnostic]:
        index = LineIndex(self.text, encoding)
        setting = (encoding, lang, tuple(sorted(severities.items())), docs_url)
        cache, self._diagnostics = self._diagnostics, {}
        out = []
        for live in hints:
            # a Diagnostic costs ~10x its positions: reuse the ones an edit did not move
            key = (live.hint.id, index.position(live.start), index.position(live.end), setting)
            diagnostic = (
                cache[key]
                if key in cache
                else to_diagnostic(live, index, lang=lang, severities=severities, docs_url=docs_url)
            )
            self._diagnostics[key] = diagnostic
            if diagnostic is not None:
                out.append(diagnostic)
        return out

    def find(self, hint_id: str) -> LiveHint | None:
        """A hint valid for the current text, by id (never by an echoed range)."""
        return next((h for h in self.store.live(self.masked) if h.hint.id == hint_id), None)

    def hover_text(self, offset: int, lang: str, markdown: bool) -> tuple[str, LiveHint | None]:
        """What hovering at ``offset`` shows: its sentence's hints, then the essay's traits."""
        record = self.store.sentence_at(self.masked, offset)
        lines: list[str] = []
        first: LiveHint | None = None
        if record is not None:
            for live in self.store.live(self.masked):
                if live.sentence is not record or live.hint.id in self.dismissed:
                    continue
                first = first or live
                name = label(live.hint.code, lang)
                fix = (
                    "、".join(live.hint.suggestions)
                    if lang == "zh"
                    else ", ".join(live.hint.suggestions)
                )
                arrow = f" → {fix}" if fix else ""
                bold = f"**{name}**" if markdown else name
                lines.append(f"- {bold}: {live.hint.message}{arrow}")
        summary = self.scores_text(lang)
        if summary:
            if lines:
                lines.append("")
            lines.append(summary)
        return "\n".join(lines), first

    def scores_text(self, lang: str) -> str:
        scores = self.session.scores if self.session is not None else None
        if scores is None:
            return ""
        parts = []
        if scores.overall is not None:
            head = "作文评分" if lang == "zh" else "Essay score"
            parts.append(f"{head} {scores.overall.score:.1f}/{scores.overall.max:g}")
        for name, trait in scores.traits.items():
            shown = trait.label or name
            grade = f" ({trait.grade})" if trait.grade else ""
            parts.append(f"{shown} {trait.score:.1f}/{trait.max:g}{grade}")
        stats = scores.stats
        if lang == "zh":
            parts.append(f"{stats.chars}字 · {stats.sentences}句 · {stats.paragraphs}段")
        else:
            parts.append(f"{stats.words} words · {stats.sentences} sentences")
        return " · ".join(parts)
