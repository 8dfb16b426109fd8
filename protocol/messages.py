"""Typed messages for every row of PROTOCOL.md (v1), plus documented extensions.

Every message is a frozen, slotted dataclass with a ``TYPE`` class variable
naming its wire ``type``. :data:`ClientMessage` and :data:`ServerMessage`
are the unions. JSON appears only in :mod:`protocol.codec`.

Extensions to v1 (additive only): ``doc`` on ``hints``/``scores``/
``ack``; ``timing`` on ``hints``; ``grade``/``label`` on scores; ``role``,
``user``, ``class``, ``lang``, ``position_encoding``, ``debounce_ms``,
``debounce_max_ms``, ``token_expires`` on ``welcome``; the budget and cap fields of
``limits``; ``unobserve`` and ``reauth`` client messages, ``reauthed`` server message; the teacher
review messages of :mod:`protocol.review` (``comment``, ``resolve``, ``verdict``,
``grade``, ``submit``; ``review``, ``review_queue``, ``submitted``); ``client`` on ``hello``
and ``seq`` on ``edit``/``replace`` (idempotent re-send, issue 12).
A ``hints`` message may come in several frames at one version (large documents): a
client merges them in order, as it merges any ``hints``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from protocol.review import (
    Comment,
    Grade,
    Resolve,
    Review,
    ReviewQueue,
    Submit,
    Submitted,
    Verdict,
)

__all__ = [
    "PROTOCOL_VERSION",
    "SUBPROTOCOL",
    "Ack",
    "Change",
    "ClientMessage",
    "Dismiss",
    "Edit",
    "Error",
    "Hello",
    "Hint",
    "Hints",
    "Lang",
    "Limits",
    "MsgId",
    "Observe",
    "Ping",
    "Pong",
    "Presence",
    "Reauth",
    "Reauthed",
    "Replace",
    "Resume",
    "Role",
    "Score",
    "Scores",
    "SentenceHints",
    "ServerMessage",
    "Snapshot",
    "Stats",
    "Trait",
    "Unobserve",
    "Update",
    "Welcome",
]

PROTOCOL_VERSION = 1
SUBPROTOCOL = "inkstone.v1"

MsgId = str | int | None
Lang = Literal["zh", "en", "auto"]
Role = Literal["student", "teacher"]
HintKind = Literal["grammar", "spelling", "punctuation", "logic", "style", "length"]
Severity = Literal["error", "warning", "info"]
PresenceState = Literal["online", "offline", "idle"]


# ---------------------------------------------------------------- shared parts


@dataclass(frozen=True, slots=True)
class Change:
    """Replace ``[start, end)`` with ``text`` (offsets in the negotiated encoding)."""

    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class Resume:
    session: str
    version: int


@dataclass(frozen=True, slots=True)
class Limits:
    max_message_bytes: int
    max_document_chars: int
    max_messages_per_second: float
    max_changes_per_edit: int
    burst: int
    # extensions (issue 9): budgets per user across connections, and caps
    max_bytes_per_second: int | None = None  # text a user may send, sustained
    byte_burst: int | None = None
    max_documents: int | None = None  # documents per student in a class
    storage_quota_bytes: int | None = None  # per student in a class (snapshots + logs)
    max_hints_per_sentence: int | None = None  # beyond: one "N more of this kind" hint
    max_hints_per_document: int | None = None  # beyond: one summary hint


@dataclass(frozen=True, slots=True)
class Hint:
    id: str
    kind: HintKind
    code: str
    severity: Severity
    start: int
    end: int
    message: str
    suggestions: tuple[str, ...] = ()
    confidence: float = 1.0
    source: str = "rule"  # extension: "rule" or the model name that produced it


@dataclass(frozen=True, slots=True)
class SentenceHints:
    id: str
    start: int
    end: int
    hints: tuple[Hint, ...] = ()


@dataclass(frozen=True, slots=True)
class Score:
    score: float
    max: float
    grade: str | None = None  # extension: Great / Medium / Bad where a grade exists


@dataclass(frozen=True, slots=True)
class Trait:
    score: float
    max: float
    basis: str  # "model:<name>" or how a derived value is computed
    grade: str | None = None
    label: str | None = None  # extension: display name in the document language


@dataclass(frozen=True, slots=True)
class Stats:
    chars: int
    sentences: int
    paragraphs: int
    words: int = 0  # extension: jieba words for zh, whitespace words for en


# ---------------------------------------------------------------- client → server


@dataclass(frozen=True, slots=True)
class Hello:
    TYPE: ClassVar[str] = "hello"
    token: str
    doc: str | None = None
    lang: Lang = "auto"
    position_encoding: Literal["utf-16", "utf-32"] = "utf-16"
    resume: Resume | None = None
    id: MsgId = None
    # extension (issue 12): a stable id of this client instance (e.g. a browser tab); with
    # ``seq`` on edits it makes a re-sent operation idempotent (doc, client, seq)
    client: str | None = None


@dataclass(frozen=True, slots=True)
class Replace:
    TYPE: ClassVar[str] = "replace"
    text: str
    id: MsgId = None
    base: int | None = None  # extension: if given, refused unless it is the current version
    seq: int | None = None  # extension: the client's operation number (see Hello.client)


@dataclass(frozen=True, slots=True)
class Edit:
    TYPE: ClassVar[str] = "edit"
    base: int
    changes: tuple[Change, ...]
    id: MsgId = None
    seq: int | None = None  # extension: the client's operation number (see Hello.client)


@dataclass(frozen=True, slots=True)
class Dismiss:
    TYPE: ClassVar[str] = "dismiss"
    hint: str
    id: MsgId = None


@dataclass(frozen=True, slots=True)
class Observe:
    TYPE: ClassVar[str] = "observe"
    doc: str | None = None
    class_id: str | None = None  # wire name: "class"
    id: MsgId = None


@dataclass(frozen=True, slots=True)
class Unobserve:
    """Extension: stop observing a document or class."""

    TYPE: ClassVar[str] = "unobserve"
    doc: str | None = None
    class_id: str | None = None
    id: MsgId = None


@dataclass(frozen=True, slots=True)
class Reauth:
    """Extension: present a fresh token on an open socket (same user, role and class)."""

    TYPE: ClassVar[str] = "reauth"
    token: str
    id: MsgId = None


@dataclass(frozen=True, slots=True)
class Ping:
    TYPE: ClassVar[str] = "ping"
    id: MsgId = None


ClientMessage = (
    Hello
    | Replace
    | Edit
    | Dismiss
    | Observe
    | Unobserve
    | Reauth
    | Ping
    | Comment
    | Resolve
    | Verdict
    | Grade
    | Submit
)


# ---------------------------------------------------------------- server → client


@dataclass(frozen=True, slots=True)
class Welcome:
    TYPE: ClassVar[str] = "welcome"
    session: str
    doc: str | None
    version: int
    text: str
    limits: Limits
    models: dict[str, Any]
    dev_mode: bool
    role: Role = "student"
    user: str = ""
    class_id: str = ""
    lang: str = "zh"
    position_encoding: str = "utf-16"
    debounce_ms: int = 0
    debounce_max_ms: int = 0
    token_expires: int | None = None  # extension: Unix time the session ends without reauth
    id: MsgId = None


@dataclass(frozen=True, slots=True)
class Ack:
    TYPE: ClassVar[str] = "ack"
    version: int
    id: MsgId = None
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class Hints:
    TYPE: ClassVar[str] = "hints"
    version: int
    sentences: tuple[SentenceHints, ...]
    removed: tuple[str, ...] = ()
    doc: str | None = None
    timing: dict[str, float] | None = None  # extension: server-side milliseconds


@dataclass(frozen=True, slots=True)
class Scores:
    TYPE: ClassVar[str] = "scores"
    version: int
    overall: Score | None
    traits: dict[str, Trait]
    stats: Stats
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    TYPE: ClassVar[str] = "snapshot"
    doc: str
    student: str
    version: int
    text: str
    hints: tuple[SentenceHints, ...]
    scores: Scores | None
    presence: PresenceState = "offline"
    lang: str = "zh"
    id: MsgId = None


@dataclass(frozen=True, slots=True)
class Update:
    TYPE: ClassVar[str] = "update"
    doc: str
    version: int
    changes: tuple[Change, ...]
    student: str = ""


@dataclass(frozen=True, slots=True)
class Presence:
    TYPE: ClassVar[str] = "presence"
    doc: str
    student: str
    state: PresenceState


@dataclass(frozen=True, slots=True)
class Error:
    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    id: MsgId = None
    version: int | None = None
    retry_after_ms: int | None = None
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class Reauthed:
    """Extension: the fresh token was accepted; the session now ends at ``token_expires``."""

    TYPE: ClassVar[str] = "reauthed"
    token_expires: int
    id: MsgId = None


@dataclass(frozen=True, slots=True)
class Pong:
    TYPE: ClassVar[str] = "pong"
    id: MsgId = None


ServerMessage = (
    Welcome
    | Ack
    | Hints
    | Scores
    | Snapshot
    | Update
    | Presence
    | Error
    | Reauthed
    | Pong
    | Review
    | ReviewQueue
    | Submitted
)
