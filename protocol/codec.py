"""JSON ⇄ typed messages. The only module that knows about JSON.

``decode_client`` is strict: anything a client could get wrong raises a
:class:`~protocol.errors.PeerError` with a stable code, tagged with the
message's ``id`` when the id itself could be read. ``decode_server`` is
lenient (unknown fields are dropped) so that old clients keep working when
the server adds fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from protocol.errors import ErrorCode, PeerError
from protocol.messages import (
    Ack,
    Change,
    ClientMessage,
    Dismiss,
    Edit,
    Error,
    Hello,
    Hint,
    Hints,
    Limits,
    MsgId,
    Observe,
    Ping,
    Pong,
    Presence,
    Reauth,
    Reauthed,
    Replace,
    Resume,
    Score,
    Scores,
    SentenceHints,
    ServerMessage,
    Snapshot,
    Stats,
    Trait,
    Unobserve,
    Update,
    Welcome,
)
from protocol.positions import check_no_surrogates
from protocol.review import (
    GRADED_TRAITS,
    Comment,
    Grade,
    HintVerdict,
    QueueItem,
    Resolve,
    Review,
    ReviewQueue,
    Submission,
    Submit,
    Submitted,
    TeacherComment,
    TeacherGrade,
    Verdict,
)

__all__ = ["decode_client", "decode_server", "encode", "to_wire"]

MAX_INT = 2**53 - 1  # what a JavaScript client can represent exactly
_WIRE_NAMES = {"class_id": "class"}

T = TypeVar("T")


# ---------------------------------------------------------------- encoding


def to_wire(message: Any) -> dict[str, Any]:
    """A message as the JSON object sent on the wire (``None`` fields left out)."""
    out: dict[str, Any] = {"type": message.TYPE}
    for f in dataclasses.fields(message):
        value = getattr(message, f.name)
        if value is None:
            continue
        if isinstance(value, (Scores,)):
            value = to_wire(value)
        out[_WIRE_NAMES.get(f.name, f.name)] = value
    return out


def encode(message: Any) -> bytes:
    """Serialise a client or server message to UTF-8 JSON bytes."""
    return orjson.dumps(to_wire(message))


# ---------------------------------------------------------------- decoding helpers


def _loads(data: str | bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        text = str(exc)
        if "surrogate" in text:
            raise PeerError(ErrorCode.BAD_SURROGATE, f"invalid surrogate in JSON: {text}") from None
        raise PeerError(ErrorCode.BAD_JSON, f"malformed JSON: {text}") from None
    if not isinstance(obj, dict):
        raise PeerError(ErrorCode.BAD_JSON, "a message must be a JSON object")
    return obj


def _bad(message: str) -> PeerError:
    return PeerError(ErrorCode.BAD_MESSAGE, message)


def _str(obj: dict[str, Any], key: str, *, max_len: int | None = None) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise _bad(f"field {key!r} must be a string")
    if max_len is not None and len(value) > max_len:
        raise _bad(f"field {key!r} is longer than {max_len} characters")
    return value


def _opt_str(obj: dict[str, Any], key: str, *, max_len: int = 256) -> str | None:
    if obj.get(key) is None:
        return None
    return _str(obj, key, max_len=max_len)


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"field {key!r} must be an integer")
    if value < 0 or value > MAX_INT:
        raise PeerError(
            ErrorCode.BAD_OFFSETS if key in ("start", "end") else ErrorCode.BAD_MESSAGE,
            f"field {key!r} is out of range",
        )
    return value


def _choice(obj: dict[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = obj.get(key, default)
    if value is None:
        return default
    if value not in allowed:
        raise _bad(f"field {key!r} must be one of {', '.join(allowed)}")
    return str(value)


def _one_of(obj: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = obj.get(key)
    if value not in allowed:
        raise _bad(f"field {key!r} must be one of {', '.join(allowed)}")
    return str(value)


def _text(obj: dict[str, Any], key: str) -> str:
    value = _str(obj, key)
    check_no_surrogates(value)
    return value


def _msg_id(obj: dict[str, Any]) -> MsgId:
    value = obj.get("id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _bad("field 'id' must be a string or an integer")
    if isinstance(value, str) and len(value) > 128:
        raise _bad("field 'id' is longer than 128 characters")
    return value


# ---------------------------------------------------------------- client messages


def _hello(obj: dict[str, Any], msg_id: MsgId) -> Hello:
    resume = None
    raw = obj.get("resume")
    if raw is not None:
        if not isinstance(raw, dict):
            raise _bad("field 'resume' must be an object {session, version}")
        resume = Resume(session=_str(raw, "session", max_len=128), version=_int(raw, "version"))
    return Hello(
        token=_str(obj, "token", max_len=4096),
        doc=_opt_str(obj, "doc"),
        lang=_choice(obj, "lang", ("zh", "en", "auto"), "auto"),  # type: ignore[arg-type]
        position_encoding=_choice(  # type: ignore[arg-type]
            obj, "position_encoding", ("utf-16", "utf-32"), "utf-16"
        ),
        resume=resume,
        id=msg_id,
        client=_opt_str(obj, "client", max_len=64),
    )


def _seq(obj: dict[str, Any]) -> int | None:
    return None if obj.get("seq") is None else _int(obj, "seq")


def _replace(obj: dict[str, Any], msg_id: MsgId) -> Replace:
    base = None if obj.get("base") is None else _int(obj, "base")
    return Replace(text=_text(obj, "text"), id=msg_id, base=base, seq=_seq(obj))


def _change(raw: Any) -> Change:
    if not isinstance(raw, dict):
        raise _bad("each change must be an object {start, end, text}")
    start, end = _int(raw, "start"), _int(raw, "end")
    if start > end:
        raise PeerError(ErrorCode.BAD_OFFSETS, f"change start {start} is after its end {end}")
    return Change(start=start, end=end, text=_text(raw, "text"))


def _edit(obj: dict[str, Any], msg_id: MsgId) -> Edit:
    raw = obj.get("changes")
    if not isinstance(raw, list) or not raw:
        raise _bad("field 'changes' must be a non-empty list")
    return Edit(
        base=_int(obj, "base"), changes=tuple(_change(c) for c in raw), id=msg_id, seq=_seq(obj)
    )


def _dismiss(obj: dict[str, Any], msg_id: MsgId) -> Dismiss:
    return Dismiss(hint=_str(obj, "hint", max_len=128), id=msg_id)


def _target(obj: dict[str, Any]) -> tuple[str | None, str | None]:
    doc, class_id = _opt_str(obj, "doc"), _opt_str(obj, "class")
    if (doc is None) == (class_id is None):
        raise _bad("give exactly one of 'doc' or 'class'")
    return doc, class_id


def _observe(obj: dict[str, Any], msg_id: MsgId) -> Observe:
    doc, class_id = _target(obj)
    return Observe(doc=doc, class_id=class_id, id=msg_id)


def _unobserve(obj: dict[str, Any], msg_id: MsgId) -> Unobserve:
    doc, class_id = _target(obj)
    return Unobserve(doc=doc, class_id=class_id, id=msg_id)


def _reauth(obj: dict[str, Any], msg_id: MsgId) -> Reauth:
    return Reauth(token=_str(obj, "token", max_len=4096), id=msg_id)


def _ping(obj: dict[str, Any], msg_id: MsgId) -> Ping:
    return Ping(id=msg_id)


def _opt_text(obj: dict[str, Any], key: str, max_len: int) -> str | None:
    if obj.get(key) is None:
        return None
    value = _str(obj, key, max_len=max_len)
    check_no_surrogates(value)
    return value


def _comment(obj: dict[str, Any], msg_id: MsgId) -> Comment:
    start, end = _int(obj, "start"), _int(obj, "end")
    if start >= end:
        raise PeerError(ErrorCode.BAD_OFFSETS, "a comment needs a non-empty span (start < end)")
    text = _str(obj, "text", max_len=2000)
    check_no_surrogates(text)
    if not text.strip():
        raise _bad("field 'text' must not be empty")
    return Comment(
        doc=_str(obj, "doc", max_len=600),
        start=start,
        end=end,
        text=text,
        suggestion=_opt_text(obj, "suggestion", 500),
        version=None if obj.get("version") is None else _int(obj, "version"),
        id=msg_id,
    )


def _resolve(obj: dict[str, Any], msg_id: MsgId) -> Resolve:
    return Resolve(
        comment=_str(obj, "comment", max_len=128), doc=_opt_str(obj, "doc", max_len=600), id=msg_id
    )


def _verdict(obj: dict[str, Any], msg_id: MsgId) -> Verdict:
    return Verdict(
        doc=_str(obj, "doc", max_len=600),
        hint=_str(obj, "hint", max_len=128),
        verdict=_one_of(obj, "verdict", ("agree", "disagree")),  # type: ignore[arg-type]
        kind=None
        if obj.get("kind") is None
        else _one_of(
            obj, "kind", ("grammar", "spelling", "punctuation", "logic", "style", "length")
        ),
        suggestion=_opt_text(obj, "suggestion", 500),
        note=_opt_text(obj, "note", 500),
        id=msg_id,
    )


def _grade(obj: dict[str, Any], msg_id: MsgId) -> Grade:
    trait = _one_of(obj, "trait", tuple(GRADED_TRAITS))
    score = obj.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        raise _bad("field 'score' must be a number")
    if not 0 <= score <= GRADED_TRAITS[trait]:
        raise _bad(f"a {trait} score is between 0 and {GRADED_TRAITS[trait]:g}")
    reason = _str(obj, "reason", max_len=500)
    check_no_surrogates(reason)
    if not reason.strip():
        raise _bad("a grade needs a short reason")
    return Grade(
        doc=_str(obj, "doc", max_len=600), trait=trait, score=float(score), reason=reason, id=msg_id
    )


def _submit(obj: dict[str, Any], msg_id: MsgId) -> Submit:
    return Submit(id=msg_id)


_CLIENT_PARSERS: dict[str, Callable[[dict[str, Any], MsgId], ClientMessage]] = {
    "hello": _hello,
    "replace": _replace,
    "edit": _edit,
    "dismiss": _dismiss,
    "observe": _observe,
    "unobserve": _unobserve,
    "reauth": _reauth,
    "ping": _ping,
    "comment": _comment,
    "resolve": _resolve,
    "verdict": _verdict,
    "grade": _grade,
    "submit": _submit,
}


def decode_client(data: str | bytes) -> ClientMessage:
    """Parse one client frame. Raises :class:`PeerError` (with the message id if readable)."""
    obj = _loads(data)
    msg_id: MsgId = None
    try:
        msg_id = _msg_id(obj)
        kind = obj.get("type")
        if not isinstance(kind, str):
            raise _bad("field 'type' must be a string")
        parser = _CLIENT_PARSERS.get(kind)
        if parser is None:
            raise PeerError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind[:40]!r}")
        return parser(obj, msg_id)
    except PeerError as exc:
        raise exc.with_id(msg_id) from None


# ---------------------------------------------------------------- server messages (lenient)


def _build(cls: type[T], obj: dict[str, Any], **converted: Any) -> T:
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    names = {f.name for f in fields}
    kwargs = {k: v for k, v in obj.items() if k in names}
    for f in fields:  # to_wire leaves out None: put it back for fields without a default
        if f.name not in obj and f.default is dataclasses.MISSING and f.name not in converted:
            kwargs.setdefault(f.name, None)
    if "class" in obj and "class_id" in names:
        kwargs["class_id"] = obj["class"]
    kwargs.update(converted)
    return cls(**kwargs)


def _sentences(raw: list[dict[str, Any]]) -> tuple[SentenceHints, ...]:
    return tuple(
        _build(
            SentenceHints,
            s,
            hints=tuple(
                _build(Hint, h, suggestions=tuple(h.get("suggestions", ()))) for h in s["hints"]
            ),
        )
        for s in raw
    )


def _scores(obj: dict[str, Any]) -> Scores:
    overall = obj.get("overall")
    return _build(
        Scores,
        obj,
        overall=None if overall is None else _build(Score, overall),
        traits={k: _build(Trait, v) for k, v in obj.get("traits", {}).items()},
        stats=_build(Stats, obj["stats"]),
    )


def _changes(raw: list[dict[str, Any]]) -> tuple[Change, ...]:
    return tuple(_build(Change, c) for c in raw)


_SERVER_BUILDERS: dict[str, Callable[[dict[str, Any]], ServerMessage]] = {
    "welcome": lambda o: _build(Welcome, o, limits=_build(Limits, o["limits"])),
    "ack": lambda o: _build(Ack, o),
    "hints": lambda o: _build(
        Hints, o, sentences=_sentences(o["sentences"]), removed=tuple(o.get("removed", ()))
    ),
    "scores": _scores,
    "snapshot": lambda o: _build(
        Snapshot,
        o,
        hints=_sentences(o.get("hints", [])),
        scores=None if o.get("scores") is None else _scores(o["scores"]),
    ),
    "update": lambda o: _build(Update, o, changes=_changes(o["changes"])),
    "presence": lambda o: _build(Presence, o),
    "error": lambda o: _build(Error, o),
    "reauthed": lambda o: _build(Reauthed, o),
    "pong": lambda o: _build(Pong, o),
    "review": lambda o: _review(o),
    "review_queue": lambda o: _build(
        ReviewQueue, o, items=tuple(_build(QueueItem, i) for i in o.get("items", ()))
    ),
    "submitted": lambda o: _build(Submitted, o),
}


def _review(obj: dict[str, Any]) -> Review:
    return _build(
        Review,
        obj,
        comments=tuple(
            _build(TeacherComment, c, suggestions=tuple(c.get("suggestions", ())))
            for c in obj.get("comments", ())
        ),
        verdicts=tuple(_build(HintVerdict, v) for v in obj.get("verdicts", ())),
        grades={k: _build(TeacherGrade, g) for k, g in (obj.get("grades") or {}).items()},
        submissions=tuple(_build(Submission, x) for x in obj.get("submissions", ())),
    )


def decode_server(data: str | bytes) -> ServerMessage:
    """Parse one server frame (for clients). Unknown fields are ignored."""
    obj = _loads(data)
    builder = _SERVER_BUILDERS.get(str(obj.get("type")))
    if builder is None:
        raise PeerError(ErrorCode.UNKNOWN_TYPE, f"unknown server message {obj.get('type')!r}")
    try:
        return builder(obj)
    except (KeyError, TypeError, AttributeError) as exc:
        raise PeerError(ErrorCode.BAD_MESSAGE, f"malformed {obj.get('type')}: {exc}") from None
