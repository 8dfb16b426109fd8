"""Bounded hints: a pathological text (``"i " * 25000``) must not become 25,000 hints.

Per sentence, at most ``per_code`` hints of one code and ``per_sentence`` in all are kept;
each code's remainder becomes one summary hint ("N more of this kind") spanning what it
stands for. Per document, hints are shown in text order until ``per_document``; the rest
are summarised by one hint on the first sentence that has hidden ones. Sentences keep
all their (per-sentence capped) hints, so the budget moves on as the student fixes the
hints shown: :func:`apply_document_budget` says which sentences' visible hints changed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from server.documents import SentenceState
from server.hints import DraftHint, hint_id

__all__ = ["apply_document_budget", "cap_sentence", "document_summary"]

Pair = tuple[str, DraftHint]  # (hint id, hint)


def _summary(sid: str, rest: Sequence[DraftHint], lang: str, sentence_start: int) -> Pair:
    first = rest[0]
    n = len(rest)
    if lang == "zh":
        message = f"这句话里还有 {n} 处同类问题（{first.code}），不再逐一标出。"
    else:
        message = f"{n} more of this kind ({first.code}) in this sentence, not marked one by one."
    hint = DraftHint(
        first.kind,
        "more",
        "info",
        min(h.start for h in rest),
        max(h.end for h in rest),
        message,
        (),
        1.0,
        first.source,
    )
    return f"{hint_id(sid, hint, hint.start - sentence_start)}-{first.code}", hint


def cap_sentence(
    sid: str,
    pairs: Sequence[Pair],
    lang: str,
    sentence_start: int,
    *,
    per_sentence: int,
    per_code: int,
) -> tuple[Pair, ...]:
    """The hints of one sentence with each code's overflow folded into one summary."""
    if len(pairs) <= min(per_sentence, per_code):
        return tuple(pairs)
    kept: list[Pair] = []
    per: Counter[str] = Counter()
    hidden: dict[str, list[DraftHint]] = {}
    for hid, h in pairs:
        if h.code != "more" and (per[h.code] >= per_code or len(kept) >= per_sentence):
            hidden.setdefault(h.code, []).append(h)
            continue
        per[h.code] += 1
        kept.append((hid, h))
    kept.extend(_summary(sid, rest, lang, sentence_start) for rest in hidden.values())
    return tuple(kept)


def document_summary(sid: str, hidden: int, lang: str, at: int) -> Pair:
    """The one hint that stands for ``hidden`` hints beyond the document budget."""
    if lang == "zh":
        message = f"本文还有 {hidden} 条提示暂不显示；先修改前面的问题，它们会陆续出现。"
    else:
        message = (
            f"{hidden} more hints in this document are not shown yet; fix the ones above first."
        )
    hint = DraftHint("style", "more", "info", at, at, message, (), 1.0, "rule")
    return hint_id(sid, hint, 0) + "-doc", hint


def apply_document_budget(
    sentences: Sequence[SentenceState], per_document: int, dismissed: set[str]
) -> None:
    """Set ``shown`` and ``overflow`` on each sentence state (text order)."""
    remaining = per_document
    carrier = None
    hidden = 0
    for s in sentences:
        visible = [hid for hid, _ in s.hints if hid not in dismissed]
        if len(visible) <= remaining:
            s.shown = len(s.hints)
            remaining -= len(visible)
        else:
            # show the first `remaining` visible hints (dismissed ones cost nothing)
            count, taken = 0, 0
            for hid, _ in s.hints:
                if taken == remaining:
                    break
                count += 1
                taken += hid not in dismissed
            s.shown = count
            hidden += len(visible) - taken
            remaining = 0
            if carrier is None:
                carrier = s
        s.overflow = 0
    if carrier is not None:
        carrier.overflow = hidden
