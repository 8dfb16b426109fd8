"""Turning model predictions and rule findings into protocol hints.

Offsets here are code points into the whole document; they are converted to
each connection's position encoding only when a message is sent. Hint ids
hash the sentence id with what the hint says, so the same sentence text in
the same document always yields the same ids (dismissals stick).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from server.rules import RuleHint, rule_hints

__all__ = [
    "FAULTY_TYPES",
    "DraftHint",
    "HintPolicy",
    "hint_id",
    "model_hints",
    "sentence_hints",
    "sentence_id",
]

# 病句 type → (hint kind, Chinese name, English name, advice in Chinese)
FAULTY_TYPES: dict[str, tuple[str, str, str, str]] = {
    "IWO": ("grammar", "语序不当", "word order", "检查词语或分句的先后顺序。"),
    "IWC": ("grammar", "搭配不当", "collocation", "检查主谓、动宾、修饰语与中心语是否搭配。"),
    "CM": ("grammar", "成分残缺", "missing constituent", "检查句子是否缺少主语、谓语或宾语。"),
    "CR": ("grammar", "成分赘余", "redundant constituent", "检查是否有重复或多余的词语。"),
    "SC": ("grammar", "结构混乱", "mixed structure", "检查是否把两种句式杂糅在一起。"),
    "ILL": ("logic", "不合逻辑", "illogical", "检查前后内容在逻辑上是否说得通。"),
    "AM": ("logic", "表意不明", "ambiguous", "检查句子是否有歧义或指代不清。"),
}


@dataclass(frozen=True, slots=True)
class DraftHint:
    """A hint before it is given an id and converted to a connection's encoding."""

    kind: str
    code: str
    severity: str
    start: int  # code points, relative to the document
    end: int
    message: str
    suggestions: tuple[str, ...]
    confidence: float
    source: str

    def shifted(self, delta: int) -> DraftHint:
        if delta == 0:
            return self
        return DraftHint(
            self.kind,
            self.code,
            self.severity,
            self.start + delta,
            self.end + delta,
            self.message,
            self.suggestions,
            self.confidence,
            self.source,
        )


@dataclass(frozen=True, slots=True)
class HintPolicy:
    """When a model's belief becomes a hint: precision over recall.

    Students' drafts contain far fewer errors than the benchmark sets the models' own
    thresholds were tuned on, so serving uses stricter ones. Measured on the valid
    splits with the shipped model (docs/models-in-product.md, bench/hint_precision.py):
    a misspelling flag (score: the candidate head's probability of replacing the character)
    at >= 0.98 is a real error 77% (SIGHAN) / 82% (LEMON) of the time and finds 48% / 30%
    of the errors; at >= 0.995, 86% / 89%. The 病句 head is weak (AUC about 0.63); at
    >= 0.85 it flags 3% of FCGEC sentences (8 of 9 right) and 0.1 in 100 student-essay
    sentences.
    """

    spelling_threshold: float = 0.98
    spelling_error_threshold: float = 0.995  # below: severity "warning"
    faulty_threshold: float = 0.85
    faulty_type_threshold: float = 0.25


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()


def sentence_id(text: str, occurrence: int) -> str:
    """Stable id of the ``occurrence``-th copy of a sentence text in a document."""
    base = "s" + _digest(text)
    return base if occurrence == 0 else f"{base}-{occurrence}"


def hint_id(sid: str, hint: DraftHint, offset_in_sentence: int) -> str:
    return "h" + _digest(
        sid, hint.code, str(offset_in_sentence), str(hint.end - hint.start), *hint.suggestions
    )


def model_hints(prediction: Any, lang: str, policy: HintPolicy, model: str) -> list[DraftHint]:
    """Hints from one ``engines.runtime.SentencePrediction`` (offsets relative to the sentence)."""
    out: list[DraftHint] = []
    for flag in prediction.spelling:
        if flag.confidence < policy.spelling_threshold:
            continue
        severity = "error" if flag.confidence >= policy.spelling_error_threshold else "warning"
        if lang == "zh":
            message = f"“{flag.wrong}”可能是错别字" + (
                f"，应为“{flag.suggestion}”。" if flag.suggestion else "。"
            )
        else:
            message = f"“{flag.wrong}” may be a misspelling" + (
                f"; did you mean “{flag.suggestion}”?" if flag.suggestion else "."
            )
        out.append(
            DraftHint(
                "spelling",
                "misspelling",
                severity,
                flag.start,
                flag.end,
                message,
                (flag.suggestion,) if flag.suggestion else (),
                round(float(flag.confidence), 3),
                model,
            )
        )
    return out


def faulty_hint(
    prediction: Any, length: int, lang: str, policy: HintPolicy, model: str
) -> DraftHint | None:
    """A whole-sentence 病句 hint when the model is confident enough."""
    if prediction.faulty_prob < policy.faulty_threshold:
        return None
    code, type_prob = max(prediction.types.items(), key=lambda kv: kv[1], default=("", 0.0))
    if code in FAULTY_TYPES and type_prob >= policy.faulty_type_threshold:
        kind, zh_name, en_name, advice = FAULTY_TYPES[code]
        if lang == "zh":
            message = f"这个句子可能有语病（{zh_name}）。{advice}"
        else:
            message = f"This sentence may be faulty ({en_name})."
        hint_code = f"faulty_{code.lower()}"
    else:
        kind, hint_code = "grammar", "faulty_sentence"
        message = (
            "这个句子可能有语病，请再读一遍。" if lang == "zh" else "This sentence may be faulty."
        )
    return DraftHint(
        kind,
        hint_code,
        "info",
        0,
        length,
        message,
        (),
        round(float(prediction.faulty_prob), 3),
        model,
    )


def _from_rule(hint: RuleHint) -> DraftHint:
    return DraftHint(
        hint.kind,
        hint.code,
        hint.severity,
        hint.start,
        hint.end,
        hint.message,
        tuple(hint.suggestions),
        hint.confidence,
        "rule",
    )


def sentence_hints(
    text: str,
    start: int,
    lang: str,
    prediction: Any | None,
    *,
    policy: HintPolicy,
    model: str,
    is_last_in_paragraph: bool,
    is_last_in_text: bool,
    after_clause: bool = False,
) -> list[DraftHint]:
    """All hints for one sentence at document offset ``start``, model first, then rules."""
    relative: list[DraftHint] = []
    if prediction is not None:
        relative.extend(model_hints(prediction, lang, policy, model))
        whole = faulty_hint(prediction, len(text), lang, policy, model)
        if whole is not None:
            relative.append(whole)
    rule_lang = "zh" if lang == "zh" else "en"
    relative.extend(
        _rule_drafts(text, rule_lang, is_last_in_paragraph, is_last_in_text, after_clause)
    )
    return [h.shifted(start) for h in _dedupe(relative)]


@functools.lru_cache(maxsize=32_768)
def _rule_drafts(
    text: str, lang: str, last_in_paragraph: bool, last_in_text: bool, after_clause: bool
) -> tuple[DraftHint, ...]:
    """Rule hints depend only on the sentence and its context: computed once per
    distinct sentence (jieba is the costly part), shared by every document."""
    return tuple(
        _from_rule(h)
        for h in rule_hints(
            text,
            lang,
            is_last_in_paragraph=last_in_paragraph,
            is_last_in_text=last_in_text,
            previous_sentence=";" if after_clause else "",
        )
    )


def _dedupe(hints: Iterable[DraftHint]) -> list[DraftHint]:
    seen: set[tuple[str, int, int]] = set()
    out: list[DraftHint] = []
    for h in hints:
        key = (h.kind, h.start, h.end)
        if key not in seen:
            seen.add(key)
            out.append(h)
    return out


def count_by_kind(hints: Sequence[DraftHint]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for h in hints:
        counts[h.kind] = counts.get(h.kind, 0) + 1
    return counts
