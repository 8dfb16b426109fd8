"""Progress reports over time, computed from the stored submissions and teacher grades.

An *essay* is a student's document as last submitted (earlier submissions of the same
document are drafts of it), in the order the essays were submitted. For each essay the
report gives the model's trait scores and the teacher's (the teacher's, when given, is
the score that counts), the hint counts per kind per 1,000 characters (non-whitespace
characters, as the ``scores`` stats count them), its length, the misspelled characters
and 病句 types, and in plain words what changed since the previous essay.

The class report adds the class trend per essay index, the most common problems, the
distribution of essay topics (essays clustered by their embedding — the mean of the
sentence model's embeddings stored at submission — or, on a server without models, by
a TF-IDF vector of their jieba words; each cluster labelled with its top jieba
keywords) and the students who need attention (see :data:`ATTENTION`).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from server.hints import FAULTY_TYPES
from server.review_store import GradeRow, ReviewStore, SubmissionRow
from server.scoring import TRAITS, text_stats

__all__ = ["ATTENTION", "class_report", "student_report"]

SCORED = ("overall", *TRAITS)
KINDS = ("spelling", "grammar", "logic", "style", "punctuation", "length")
KIND_NAMES = {
    "spelling": ("错别字", "Spelling"),
    "grammar": ("语病", "Grammar"),
    "logic": ("逻辑", "Logic"),
    "style": ("表达", "Style"),
    "punctuation": ("标点", "Punctuation"),
    "length": ("篇幅", "Length"),
}
NAMES = {"overall": ("总评", "Overall"), **TRAITS}
ATTENTION = {
    "low_overall": 5.0,  # the latest essay's overall score is below this (of 10)
    "drop": 1.0,  # or it fell by at least this much since the previous essay
    "hint_rate_factor": 1.5,  # or hints per 1,000 characters ≥ this × the class median
}


@dataclass(slots=True)
class Essay:
    row: SubmissionRow
    drafts: int
    teacher: dict[str, GradeRow]

    @property
    def chars(self) -> int:
        return text_stats(self.row.text, 0, 0).chars

    def model(self, trait: str) -> float | None:
        scores = self.row.scores or {}
        part = scores.get("overall") if trait == "overall" else scores.get("traits", {}).get(trait)
        return None if not part else float(part["score"])

    def score(self, trait: str) -> float | None:
        """The teacher's score when given, else the model's."""
        grade = self.teacher.get(trait)
        return grade.score if grade is not None else self.model(trait)

    def hint_counts(self) -> Counter[str]:
        return Counter(h[0] for h in self.row.hints if h[0] in KINDS)

    def per_1000(self) -> dict[str, float]:
        counts, chars = self.hint_counts(), max(1, self.chars)
        return {k: round(counts[k] * 1000 / chars, 2) for k in KINDS}


def _essays(store: ReviewStore, rows: Sequence[SubmissionRow]) -> list[Essay]:
    """The latest submission of each document, in submission order, with its grades."""
    latest: dict[str, SubmissionRow] = {}
    drafts: Counter[str] = Counter()
    for row in rows:
        drafts[row.doc] += 1
        if row.doc not in latest or row.n > latest[row.doc].n:
            latest[row.doc] = row
    essays = []
    for row in sorted(latest.values(), key=lambda r: (r.created, r.doc)):
        teacher: dict[str, GradeRow] = {}
        for g in store.grades(row.doc):  # oldest first: the last one for this submission wins
            if g.submission == row.n:
                teacher[g.trait] = g
        essays.append(Essay(row, drafts[row.doc], teacher))
    return essays


def _fmt(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if abs(x - round(x)) > 1e-9 else str(round(x))


def _change(key: str, names: tuple[str, str], old: float, new: float, unit: str) -> dict[str, Any]:
    up = new > old
    zh_unit, en_unit = {
        "": ("", ""),
        "per1000": ("每千字", " per 1,000 characters"),
        "chars": ("字数", " (characters)"),
    }[unit]
    verb_zh = "从 {a} 升到 {b}" if up else "从 {a} 降到 {b}"
    return {
        "metric": key,
        "from": round(old, 2),
        "to": round(new, 2),
        "direction": "up" if up else "down",
        "text_zh": f"{names[0]}{zh_unit} " + verb_zh.format(a=_fmt(old), b=_fmt(new)),
        "text_en": f"{names[1]}{en_unit} {'up' if up else 'down'} from {_fmt(old)} to {_fmt(new)}",
    }


def what_changed(previous: Essay, latest: Essay) -> list[dict[str, Any]]:
    """Plain-words differences between two essays: scores, hint rates, length."""
    out = []
    for trait in SCORED:
        a, b = previous.score(trait), latest.score(trait)
        if a is not None and b is not None and abs(b - a) >= 0.05:
            out.append(_change(trait, NAMES[trait], a, b, ""))
    before, after = previous.per_1000(), latest.per_1000()
    for kind in KINDS:
        if abs(after[kind] - before[kind]) >= 0.05:
            out.append(
                _change(f"per1000.{kind}", KIND_NAMES[kind], before[kind], after[kind], "per1000")
            )
    if previous.chars != latest.chars:
        out.append(_change("chars", ("篇幅", "Length"), previous.chars, latest.chars, "chars"))
    return out


def _essay_json(e: Essay) -> dict[str, Any]:
    scores = {}
    for trait in SCORED:
        grade = e.teacher.get(trait)
        scores[trait] = {
            "model": e.model(trait),
            "teacher": None if grade is None else grade.score,
            "teacher_reason": None if grade is None else grade.reason,
            "basis": None if grade is None else f"teacher:{grade.author}",
            "score": e.score(trait),
            "max": 5.0 if trait == "coherence" else 10.0,
        }
    return {
        "doc": e.row.name,
        "submission": e.row.n,
        "drafts": e.drafts,
        "version": e.row.version,
        "submitted": e.row.created,
        "chars": e.chars,
        "scores": scores,
        "hint_counts": dict(e.hint_counts()),
        "hints_per_1000": e.per_1000(),
    }


def _problems(essays: Sequence[Essay]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(most frequent misspelled characters, 病句 types) over ``essays``."""
    typos: Counter[str] = Counter()
    fixes: dict[str, Counter[str]] = {}
    faulty: Counter[str] = Counter()
    for e in essays:
        for _kind, code, _s, _e, quote, suggestions in e.row.hints:
            if code == "misspelling" and quote:
                typos[quote] += 1
                if suggestions:
                    fixes.setdefault(quote, Counter())[suggestions[0]] += 1
            elif code.startswith("faulty_"):
                faulty[code] += 1
    misspelled = [
        {
            "char": ch,
            "count": n,
            "suggestions": [s for s, _ in fixes.get(ch, Counter()).most_common(3)],
        }
        for ch, n in typos.most_common(10)
    ]
    types = []
    for code, n in faulty.most_common():
        info = FAULTY_TYPES.get(code.removeprefix("faulty_").upper())
        types.append(
            {
                "code": code,
                "count": n,
                "name_zh": info[1] if info else "病句",
                "name_en": info[2] if info else "faulty sentence",
            }
        )
    return misspelled, types


def student_report(store: ReviewStore, class_id: str, student: str) -> dict[str, Any]:
    essays = _essays(store, store.submissions_of(class_id, student))
    misspelled, faulty = _problems(essays)
    changes = what_changed(essays[-2], essays[-1]) if len(essays) >= 2 else []
    return {
        "student": student,
        "class": class_id,
        "generated": time.time(),
        "essays": [_essay_json(e) for e in essays],
        "misspelled": misspelled,
        "faulty_types": faulty,
        "changes": changes,
        "summary_zh": "；".join(c["text_zh"] for c in changes),
        "summary_en": "; ".join(c["text_en"] for c in changes),
    }


# ---------------------------------------------------------------- class


def _vectors(essays: Sequence[Essay]) -> tuple[np.ndarray, str]:
    """One unit vector per essay: stored embeddings, else TF-IDF of jieba words."""
    if essays and all(e.row.embedding for e in essays):
        x = np.stack([np.frombuffer(e.row.embedding or b"", dtype=np.float32) for e in essays])
        method = "embeddings"
    else:
        import jieba

        docs = [[w for w in jieba.lcut(e.row.text) if len(w.strip()) > 1] for e in essays]
        vocab = {w: i for i, w in enumerate(sorted({w for d in docs for w in d}))}
        x = np.zeros((len(docs), max(1, len(vocab))), dtype=np.float32)
        for i, d in enumerate(docs):
            for w, n in Counter(d).items():
                x[i, vocab[w]] = n
        df = (x > 0).sum(axis=0)
        x *= np.log((1 + len(docs)) / (1 + df)) + 1
        method = "tfidf-jieba"
    x = x - x.mean(axis=0) if len(x) > 2 else x
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1, norms), method


def kmeans(x: np.ndarray, k: int, iterations: int = 25) -> np.ndarray:
    """Deterministic k-means (farthest-point start from the first row); labels per row."""
    centres = [x[0]]
    for _ in range(1, k):
        dist = np.min([np.sum((x - c) ** 2, axis=1) for c in centres], axis=0)
        centres.append(x[int(np.argmax(dist))])
    c = np.stack(centres)
    labels = np.zeros(len(x), dtype=int)
    for _ in range(iterations):
        labels = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(axis=2), axis=1)
        new = np.stack(
            [x[labels == j].mean(axis=0) if np.any(labels == j) else c[j] for j in range(k)]
        )
        if np.allclose(new, c):
            break
        c = new
    return labels


def topics(essays: Sequence[Essay]) -> dict[str, Any]:
    if not essays:
        return {"method": None, "clusters": []}
    import jieba.analyse

    x, method = _vectors(essays)
    k = max(1, min(len(essays), round(math.sqrt(len(essays) / 2))))
    labels = kmeans(x, k)
    clusters = []
    for j in range(k):
        members = [e for e, label in zip(essays, labels, strict=True) if label == j]
        if not members:
            continue
        text = "\n".join(e.row.text for e in members)
        clusters.append(
            {
                "keywords": jieba.analyse.extract_tags(text, topK=4),
                "size": len(members),
                "essays": [{"student": e.row.owner, "doc": e.row.name} for e in members],
            }
        )
    clusters.sort(key=lambda c: -c["size"])
    return {"method": method, "k": k, "clusters": clusters}


def class_report(store: ReviewStore, class_id: str) -> dict[str, Any]:
    rows = store.submissions_of(class_id)
    by_student: dict[str, list[SubmissionRow]] = {}
    for row in rows:
        by_student.setdefault(row.owner, []).append(row)
    essays = {s: _essays(store, r) for s, r in sorted(by_student.items())}
    rates = {
        s: sum(sum(e.hint_counts().values()) for e in es) * 1000 / max(1, sum(e.chars for e in es))
        for s, es in essays.items()
    }
    median_rate = float(np.median(list(rates.values()))) if rates else 0.0
    students = []
    for s, es in essays.items():
        latest = es[-1].score("overall")
        previous = es[-2].score("overall") if len(es) >= 2 else None
        reasons = []
        if latest is not None and latest < ATTENTION["low_overall"]:
            reasons.append("low_overall")
        if latest is not None and previous is not None and previous - latest >= ATTENTION["drop"]:
            reasons.append("dropped")
        if median_rate > 0 and rates[s] >= ATTENTION["hint_rate_factor"] * median_rate:
            reasons.append("many_hints")
        students.append(
            {
                "student": s,
                "essays": len(es),
                "latest_overall": latest,
                "previous_overall": previous,
                "hints_per_1000": round(rates[s], 2),
                "attention": bool(reasons),
                "reasons": reasons,
            }
        )
    depth = max((len(es) for es in essays.values()), default=0)
    trend = []
    for i in range(depth):
        nth = [es[i] for es in essays.values() if len(es) > i]
        means = {}
        for trait in SCORED:
            values = [v for e in nth if (v := e.score(trait)) is not None]
            means[trait] = round(sum(values) / len(values), 2) if values else None
        trend.append({"essay": i + 1, "students": len(nth), "scores": means})
    everyone = [e for es in essays.values() for e in es]
    codes: Counter[tuple[str, str]] = Counter()
    who: dict[tuple[str, str], set[str]] = {}
    for e in everyone:
        for kind, code, *_ in e.row.hints:
            codes[(kind, code)] += 1
            who.setdefault((kind, code), set()).add(e.row.owner)
    problems = [
        {"kind": kind, "code": code, "count": n, "students": len(who[(kind, code)])}
        for (kind, code), n in codes.most_common(10)
    ]
    misspelled, faulty = _problems(everyone)
    return {
        "class": class_id,
        "generated": time.time(),
        "students": students,
        "trend": trend,
        "problems": problems,
        "misspelled": misspelled,
        "faulty_types": faulty,
        "topics": topics(everyone),
        "attention_rules": ATTENTION,
        "median_hints_per_1000": round(median_rate, 2),
    }
