"""Discourse-function labels of essay sentences (essay_oe_traits' own annotations).

Each OE essay sentence carries a function (thesis, idea, evidence, example…) and so does its
paragraph. The essay model learns to tag every sentence with both (an auxiliary head) and
feeds the predicted distributions' grid features — presence, proportion, first position of
each function — to the trait heads: essays that state a thesis and support their ideas score
higher on structure and logic. Labels are mapped onto the server segmenter's sentences by
character overlap, since that is how essays are cut when served.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["PARA_LABELS", "SENT_LABELS", "segment_labels"]

SENT_LABELS = (
    "introductionSen",
    "thesisSen",
    "ideaSen",
    "ideaendSen",
    "ideasupportSen",
    "evidenceSen",
    "exampleSen",
    "conclusionSen",
    "other",
)
PARA_LABELS = (
    "introduction",
    "thesis",
    "idea",
    "ideasupport",
    "supportEvidence",
    "supportExample",
    "conclusion",
    "summarization",
    "other",
)


def _index(labels: Sequence[str], name: str | None) -> int:
    if not name:
        return -1
    return labels.index(name) if name in labels else len(labels) - 1


def segment_labels(
    record: dict[str, Any], spans: Sequence[tuple[int, int]]
) -> tuple[list[int], list[int]]:
    """Per segment (start, end) of record["text"]: sentence and paragraph function indices
    (-1 where unlabelled), from the annotated sentence that overlaps it most."""
    text = record["text"]
    units: list[tuple[int, int, int, int]] = []  # start, end, sentence label, paragraph label
    pos = 0
    for p in record.get("paragraphs") or []:
        if not isinstance(p, dict):  # CEDCC: paragraphs are plain strings, no labels
            continue
        pl = _index(PARA_LABELS, p.get("function"))
        for s in p.get("sentences") or []:
            st = s.get("text") or ""
            at = text.find(st, pos) if st else -1
            if at < 0:
                continue
            units.append((at, at + len(st), _index(SENT_LABELS, s.get("function")), pl))
            pos = at + len(st)
    sent, para = [], []
    for a, b in spans:
        best, lab = 0, (-1, -1)
        for s, e, sl, pl in units:
            ov = min(b, e) - max(a, s)
            if ov > best:
                best, lab = ov, (sl, pl)
        sent.append(lab[0])
        para.append(lab[1])
    return sent, para
