"""``inkstone export-feedback``: teachers' verdicts and grades as training records.

Reads ``<data dir>/review.sqlite3`` (no server needed) and writes, in the record formats
of ../shared/data:

- ``csc.jsonl`` (csc_sighan format) from verdicts on misspelling hints: *agree* → the
  sentence with the error and its correction (the teacher's corrected suggestion when
  given); *disagree* without a correction → the sentence marked correct (``has_error``
  0: the character the model flagged is right);
- ``faulty.jsonl`` (sent_fcgec format) from verdicts on 病句 hints: *agree* → ``is_error``
  1 with its type; *disagree* → ``is_error`` 0;
- ``essay.jsonl`` (essay_oe_traits format) from teacher grades of submitted essays: the
  grade nearest each teacher score (0–10: Bad 0, Medium 5, Great 10, the scale the
  scores message uses), plus the raw scores and CEDCC ``coherence_score`` when graded;
- ``feedback.json``: counts, the sha256 digest of the three files together, and when.

Every record carries ``provenance`` (pseudonymous document, student and teacher ids,
version, submission, hint, the model that made the hint, when). No names: ids are
HMAC-SHA256 pseudonyms keyed by a secret salt kept in the data dir
(``feedback_salt``), so they are stable across exports and cannot be reversed without it;
document names are left out entirely.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from pathlib import Path
from typing import Any

from server.review_store import GradeRow, ReviewStore, SubmissionRow, VerdictRow

__all__ = ["export_feedback", "grade_of"]

TRAIT_FIELDS = {
    "content": "topic",
    "structure": "structure",
    "logic": "logic",
    "language": "language",
    "overall": "overall",
}


def grade_of(score: float, maximum: float = 10.0) -> str:
    """The nearest of Bad (0), Medium (half) and Great (max)."""
    x = score / maximum
    return "Bad" if x < 0.25 else "Medium" if x < 0.75 else "Great"


class Pseudonyms:
    def __init__(self, data_dir: Path) -> None:
        path = data_dir / "feedback_salt"
        if not path.exists():
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        self.key = bytes.fromhex(path.read_text().strip())

    def __call__(self, kind: str, value: str) -> str:
        return (
            kind[0]
            + "-"
            + hmac.new(self.key, f"{kind}|{value}".encode(), "sha256").hexdigest()[:16]
        )


def _provenance(p: Pseudonyms, doc: str, **extra: Any) -> dict[str, Any]:
    class_id, owner = doc.split("/")[:2]  # keys are class/owner/name, each part escaped
    return {
        "source": "inkstone-teacher-feedback",
        "doc": p("doc", doc),
        "student": p("student", f"{class_id}/{owner}"),
        "class": p("class", class_id),
        **extra,
    }


def _csc(v: VerdictRow, p: Pseudonyms) -> dict[str, Any] | None:
    wrong = v.quote
    if len(wrong) != 1:
        return None
    fix = v.suggestion or (v.suggestions[0] if v.suggestions else None)
    is_error = v.verdict == "agree" or (v.verdict == "disagree" and bool(v.suggestion))
    if is_error and (not fix or len(fix) != 1):
        return None
    text = v.sentence
    correct = text[: v.offset] + fix + text[v.offset + 1 :] if is_error and fix else text
    return {
        "id": "fb-csc-" + hashlib.sha256(f"{v.doc}|{v.hint}".encode()).hexdigest()[:16],
        "dataset": "inkstone-feedback",
        "text": text,
        "correct": correct,
        "has_error": int(is_error),
        "errors": [{"op": "replace", "pos": v.offset, "wrong": wrong, "correct": fix}]
        if is_error
        else [],
        "substitution_only": True,
        "source_split": "feedback",
        "provenance": _verdict_provenance(v, p),
    }


def _verdict_provenance(v: VerdictRow, p: Pseudonyms) -> dict[str, Any]:
    return _provenance(
        p,
        v.doc,
        version=v.version,
        hint=v.hint,
        verdict=v.verdict,
        model=v.source,
        teacher=p("teacher", v.author),
        created=v.created,
    )


def _faulty(v: VerdictRow, p: Pseudonyms) -> dict[str, Any]:
    kind = v.code.removeprefix("faulty_").upper()
    types = [kind] if v.verdict == "agree" and kind != "SENTENCE" else []
    return {
        "id": "fb-faulty-" + hashlib.sha256(f"{v.doc}|{v.hint}".encode()).hexdigest()[:16],
        "dataset": "inkstone-feedback",
        "text": v.sentence,
        "is_error": int(v.verdict == "agree"),
        "error_types": types,
        "corrections": [],
        "source_split": "feedback",
        "provenance": _verdict_provenance(v, p),
    }


def _essay(s: SubmissionRow, grades: list[GradeRow], p: Pseudonyms) -> dict[str, Any] | None:
    latest = {g.trait: g for g in grades if g.submission == s.n}  # oldest first: last wins
    if not latest:
        return None
    traits = {
        field: grade_of(latest[t].score) if t in latest else None
        for t, field in TRAIT_FIELDS.items()
    }
    record: dict[str, Any] = {
        "id": "fb-essay-" + hashlib.sha256(f"{s.doc}|{s.n}".encode()).hexdigest()[:16],
        "title": s.text.split("\n", 1)[0][:40],
        "text": s.text,
        "paragraphs": [x for x in s.text.split("\n") if x.strip()],
        "traits": traits,
        "teacher_scores": {t: g.score for t, g in latest.items()},
        "model_scores": {t: g.model_score for t, g in latest.items()},
        "source_split": "feedback",
        "provenance": _provenance(
            p,
            s.doc,
            version=s.version,
            submission=s.n,
            teachers=sorted({p("teacher", g.author) for g in latest.values()}),
            created=max(g.created for g in latest.values()),
        ),
    }
    if "coherence" in latest:
        record["coherence_score"] = latest["coherence"].score
        record["coherence_grade"] = ("Bad", "Medium", "Great").index(
            grade_of(latest["coherence"].score, 5.0)
        )
    return record


def export_feedback(data_dir: Path, out: Path) -> dict[str, Any]:
    """Write the three JSONL files and ``feedback.json`` into ``out``; return the summary."""
    store = ReviewStore(data_dir / "review.sqlite3")
    p = Pseudonyms(data_dir)
    try:
        verdicts = store.verdicts()
        csc = [r for v in verdicts if v.code == "misspelling" and (r := _csc(v, p))]
        faulty = [_faulty(v, p) for v in verdicts if v.code.startswith("faulty_")]
        grades: dict[str, list[GradeRow]] = {}
        for g in store.grades():
            grades.setdefault(g.doc, []).append(g)
        essays = [r for s in store.all_submissions() if (r := _essay(s, grades.get(s.doc, []), p))]
    finally:
        store.close()
    out.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    counts = {}
    for name, records in (("csc.jsonl", csc), ("faulty.jsonl", faulty), ("essay.jsonl", essays)):
        body = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
        (out / name).write_text(body, encoding="utf-8")
        digest.update(name.encode() + b"\0" + body.encode())
        counts[name] = len(records)
    summary = {
        "records": counts,
        "total": sum(counts.values()),
        "sha256": digest.hexdigest(),
        "created": time.time(),
        "formats": {
            "csc.jsonl": "csc_sighan",
            "faulty.jsonl": "sent_fcgec",
            "essay.jsonl": "essay_oe_traits",
        },
    }
    (out / "feedback.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary
