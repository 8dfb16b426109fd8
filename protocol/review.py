"""Teacher review messages (protocol v1 extension, issue 14), and how comments move.

Teachers ``comment`` on a span of a student's document, give a ``verdict`` on a model
or rule hint, and ``grade`` a trait or the overall score; students ``submit`` a version
for review. The server answers with one ``review`` message per document (the whole
review state: comments, verdicts, grades, submissions) whenever it changes, and a
teacher observing a class gets a ``review_queue`` of submitted essays.

A comment is anchored to a span of the text. :func:`map_span` is the one rule, shared
by the server and every client, for moving that span through a later change: text
inserted at either edge stays outside the comment, text replaced inside it stays
inside, and a comment whose text is entirely deleted is gone (``None``).

Everything here is plain data: :mod:`protocol.codec` turns it into JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

__all__ = [
    "GRADED_TRAITS",
    "Comment",
    "Grade",
    "HintVerdict",
    "QueueItem",
    "Resolve",
    "Review",
    "ReviewQueue",
    "Submission",
    "Submit",
    "Submitted",
    "TeacherComment",
    "TeacherGrade",
    "Verdict",
    "map_span",
]

MsgId = str | int | None
VerdictKind = Literal["agree", "disagree"]
# what a teacher may grade, and the scale of each (the model's scales)
GRADED_TRAITS: dict[str, float] = {
    "overall": 10.0,
    "content": 10.0,
    "structure": 10.0,
    "logic": 10.0,
    "language": 10.0,
    "coherence": 5.0,
}


def map_span(
    start: int, end: int, c_start: int, c_end: int, inserted: int
) -> tuple[int, int] | None:
    """Move the span ``[start, end)`` through the change that replaced ``[c_start, c_end)``
    by ``inserted`` units of text; ``None`` when the span's text was deleted entirely.

    Insertions at the span's edges stay outside it; a replacement overlapping the span
    becomes part of it (the commented text was rewritten, not removed)."""
    delta = inserted - (c_end - c_start)
    if c_end <= start:
        return start + delta, end + delta  # wholly before (an insertion at the start too)
    if c_start >= end:
        return start, end  # wholly after (an insertion at the end too)
    new_start = min(start, c_start)
    new_end = end + delta if c_end < end else c_start + inserted
    if new_end <= new_start:
        return None
    return new_start, new_end


# ---------------------------------------------------------------- client → server


@dataclass(frozen=True, slots=True)
class Comment:
    """Teacher: comment on ``[start, end)`` of ``doc`` (offsets in the teacher's encoding,
    against ``version`` when given: refused with ``version_mismatch`` unless current)."""

    TYPE: ClassVar[str] = "comment"
    doc: str
    start: int
    end: int
    text: str
    suggestion: str | None = None
    version: int | None = None
    id: MsgId = None


@dataclass(frozen=True, slots=True)
class Resolve:
    """Teacher (``doc`` required) or the owning student: close a comment."""

    TYPE: ClassVar[str] = "resolve"
    comment: str
    doc: str | None = None
    id: MsgId = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """Teacher: agree or disagree with a hint; ``disagree`` withdraws it from the student."""

    TYPE: ClassVar[str] = "verdict"
    doc: str
    hint: str
    verdict: VerdictKind
    kind: str | None = None  # the corrected kind, if the hint was right but misfiled
    suggestion: str | None = None  # the corrected suggestion
    note: str | None = None
    id: MsgId = None


@dataclass(frozen=True, slots=True)
class Grade:
    """Teacher: set ``trait`` (``overall`` or a trait name) to ``score`` with a reason."""

    TYPE: ClassVar[str] = "grade"
    doc: str
    trait: str
    score: float
    reason: str
    id: MsgId = None


@dataclass(frozen=True, slots=True)
class Submit:
    """Student: submit the current version of the open document for review."""

    TYPE: ClassVar[str] = "submit"
    id: MsgId = None


# ---------------------------------------------------------------- parts


@dataclass(frozen=True, slots=True)
class TeacherComment:
    """A comment, shaped like a hint (``kind`` ``teacher``) so clients can list it as one."""

    id: str
    start: int
    end: int
    message: str
    author: str
    created: float
    quote: str  # the text commented on, when the comment was made
    suggestions: tuple[str, ...] = ()
    kind: str = "teacher"
    code: str = "teacher_comment"
    severity: str = "info"
    confidence: float = 1.0
    source: str = ""  # "teacher:<id>"


@dataclass(frozen=True, slots=True)
class HintVerdict:
    hint: str
    verdict: VerdictKind
    author: str
    created: float
    code: str
    kind: str
    quote: str  # the hint's text span when judged
    corrected_kind: str | None = None
    suggestion: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class TeacherGrade:
    score: float
    max: float
    basis: str  # "teacher:<id>"
    reason: str
    created: float
    submission: int | None = None  # the submission it was given for, if any
    label: str | None = None


@dataclass(frozen=True, slots=True)
class Submission:
    n: int  # 1, 2, … per document
    version: int
    created: float
    chars: int
    reviewed: bool = False  # a teacher graded ``overall`` after it


@dataclass(frozen=True, slots=True)
class QueueItem:
    doc: str  # owner/name
    student: str
    submission: int
    version: int
    created: float


# ---------------------------------------------------------------- server → client


@dataclass(frozen=True, slots=True)
class Review:
    """The whole review state of a document; offsets at ``version`` in the reader's encoding."""

    TYPE: ClassVar[str] = "review"
    doc: str
    version: int
    comments: tuple[TeacherComment, ...] = ()
    verdicts: tuple[HintVerdict, ...] = ()
    grades: dict[str, TeacherGrade] | None = None
    submissions: tuple[Submission, ...] = ()
    id: MsgId = None


@dataclass(frozen=True, slots=True)
class ReviewQueue:
    """Teacher: the class's submitted essays not yet reviewed, oldest first."""

    TYPE: ClassVar[str] = "review_queue"
    class_id: str
    items: tuple[QueueItem, ...] = ()
    id: MsgId = None


@dataclass(frozen=True, slots=True)
class Submitted:
    """Student: the submission was recorded (the text at ``version`` is frozen in it)."""

    TYPE: ClassVar[str] = "submitted"
    doc: str
    submission: int
    version: int
    id: MsgId = None
