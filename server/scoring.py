"""The ``scores`` message: essay-model traits, coherence, and text statistics."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from protocol import Score, Scores, Stats, Trait

__all__ = ["TRAITS", "build_scores", "text_stats"]

# trait → (Chinese label, English label)
TRAITS: dict[str, tuple[str, str]] = {
    "content": ("内容", "Content"),
    "structure": ("结构", "Structure"),
    "logic": ("逻辑", "Logic"),
    "language": ("语言", "Language"),
    "coherence": ("连贯", "Coherence"),
}
GRADE_MAX = 10.0
COHERENCE_GRADES = ("Bad", "Medium", "Great")  # CEDCC 0 incoherent, 1 moderate, 2 excellent

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_LATIN_WORD = re.compile(r"[A-Za-z0-9]+(?:['’-][A-Za-z0-9]+)*")


def text_stats(text: str, sentences: int, paragraphs: int) -> Stats:
    """Characters exclude whitespace; words = CJK characters + Latin words (字数 convention)."""
    chars = sum(1 for ch in text if not ch.isspace())
    words = len(_CJK.findall(text)) + len(_LATIN_WORD.findall(text))
    return Stats(chars=chars, sentences=sentences, paragraphs=paragraphs, words=words)


def _grade_score(expected: float) -> float:
    """Expected grade on 0..2 (Bad=0, Medium=1, Great=2) → a 0..10 score."""
    return round(expected * GRADE_MAX / 2, 1)


def build_scores(
    *,
    doc: str,
    version: int,
    text: str,
    sentences: int,
    paragraphs: Sequence[int],
    lang: str,
    prediction: Any | None,
    model: str,
) -> Scores:
    stats = text_stats(text, sentences, len(set(paragraphs)))
    label = 0 if lang == "zh" else 1
    traits: dict[str, Trait] = {}
    overall: Score | None = None
    if prediction is not None:
        basis = f"model:{model}"
        for name, trait in prediction.traits.items():
            if name == "overall":
                overall = Score(score=_grade_score(trait.score), max=GRADE_MAX, grade=trait.grade)
            elif name in TRAITS:
                traits[name] = Trait(
                    score=_grade_score(trait.score),
                    max=GRADE_MAX,
                    basis=basis,
                    grade=trait.grade,
                    label=TRAITS[name][label],
                )
        traits["coherence"] = Trait(
            score=round(float(prediction.coherence_score), 2),
            max=5.0,
            basis=basis,
            grade=COHERENCE_GRADES[int(prediction.coherence_grade)],
            label=TRAITS["coherence"][label],
        )
    return Scores(version=version, overall=overall, traits=traits, stats=stats, doc=doc)
