"""Protocol codec: round-trips, strict validation with stable codes, purity of the package."""

from __future__ import annotations

import ast
import pathlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import protocol
from protocol import (
    Ack,
    Change,
    Dismiss,
    Edit,
    Error,
    ErrorCode,
    Hello,
    Hint,
    Hints,
    Limits,
    Observe,
    PeerError,
    Ping,
    Replace,
    Resume,
    Score,
    Scores,
    SentenceHints,
    Snapshot,
    Stats,
    Trait,
    Update,
    Welcome,
    decode_client,
    decode_server,
    encode,
)

PROTOCOL_DIR = pathlib.Path(protocol.__file__).parent
FORBIDDEN_IMPORTS = {
    "asyncio",
    "starlette",
    "uvicorn",
    "websockets",
    "onnxruntime",
    "server",
    "engines",
    "torch",
    "socket",
    "threading",
    "sqlite3",
}


def test_protocol_package_is_sans_io() -> None:
    for path in PROTOCOL_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN_IMPORTS, f"{path.name} imports {name}"


def test_package_exports_exactly_all() -> None:
    public = {n for n in dir(protocol) if not n.startswith("_")}
    modules = {"client", "codec", "edits", "errors", "lifecycle", "messages", "positions", "review"}
    assert public - modules == set(protocol.__all__)


text_st = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
id_st = st.one_of(st.none(), st.integers(0, 2**40), st.text(max_size=10))
change_st = st.builds(
    lambda a, b, t: Change(min(a, b), max(a, b), t),
    st.integers(0, 500),
    st.integers(0, 500),
    text_st,
)
client_st = st.one_of(
    st.builds(
        Hello,
        token=st.text(min_size=1, max_size=30),
        doc=st.one_of(st.none(), st.text(min_size=1, max_size=20)),
        lang=st.sampled_from(["zh", "en", "auto"]),
        position_encoding=st.sampled_from(["utf-16", "utf-32"]),
        resume=st.one_of(st.none(), st.builds(Resume, st.text(max_size=12), st.integers(0, 99))),
        id=id_st,
    ),
    st.builds(Replace, text=text_st, id=id_st),
    st.builds(
        Edit,
        base=st.integers(0, 10**6),
        changes=st.lists(change_st, min_size=1, max_size=4).map(tuple),
        id=id_st,
    ),
    st.builds(Dismiss, hint=st.text(min_size=1, max_size=20), id=id_st),
    st.builds(Observe, doc=st.text(min_size=1, max_size=10), id=id_st),
    st.builds(Observe, class_id=st.text(min_size=1, max_size=10), id=id_st),
    st.builds(Ping, id=id_st),
)


@given(client_st)
def test_client_messages_round_trip(message: object) -> None:
    assert decode_client(encode(message)) == message


hint_st = st.builds(
    Hint,
    id=st.text(min_size=1, max_size=8),
    kind=st.sampled_from(["grammar", "spelling", "punctuation", "logic", "style", "length"]),
    code=st.text(min_size=1, max_size=8),
    severity=st.sampled_from(["error", "warning", "info"]),
    start=st.integers(0, 100),
    end=st.integers(0, 100),
    message=text_st,
    suggestions=st.lists(text_st, max_size=2).map(tuple),
    confidence=st.floats(0, 1),
    source=st.just("rule"),
)
sentences_st = st.lists(
    st.builds(
        SentenceHints,
        id=st.text(min_size=1, max_size=6),
        start=st.integers(0, 9),
        end=st.integers(0, 9),
        hints=st.lists(hint_st, max_size=3).map(tuple),
    ),
    max_size=3,
).map(tuple)
scores_st = st.builds(
    Scores,
    version=st.integers(0, 99),
    overall=st.one_of(
        st.none(), st.builds(Score, st.floats(0, 10), st.just(10.0), st.just("Great"))
    ),
    traits=st.dictionaries(
        st.sampled_from(["content", "logic"]),
        st.builds(Trait, st.floats(0, 10), st.just(10.0), st.just("model:x")),
    ),
    stats=st.builds(Stats, st.integers(0, 9), st.integers(0, 9), st.integers(0, 9)),
    doc=st.one_of(st.none(), st.text(min_size=1, max_size=5)),
)
server_st = st.one_of(
    st.builds(Ack, version=st.integers(0, 99), id=id_st),
    st.builds(
        Hints,
        version=st.integers(0, 99),
        sentences=sentences_st,
        removed=st.lists(st.text(max_size=5), max_size=3).map(tuple),
    ),
    scores_st,
    st.builds(
        Snapshot,
        doc=st.just("d"),
        student=st.just("s"),
        version=st.integers(0, 9),
        text=text_st,
        hints=sentences_st,
        scores=st.one_of(st.none(), scores_st),
    ),
    st.builds(
        Update,
        doc=st.just("d"),
        version=st.integers(0, 9),
        changes=st.lists(change_st, max_size=3).map(tuple),
    ),
    st.builds(Error, code=st.sampled_from([c.value for c in ErrorCode]), message=text_st, id=id_st),
    st.builds(
        Welcome,
        session=st.just("s"),
        doc=st.just("d"),
        version=st.integers(0, 9),
        text=text_st,
        limits=st.just(Limits(1, 2, 3.0, 4, 5)),
        models=st.just({}),
        dev_mode=st.booleans(),
    ),
)


@given(server_st)
def test_server_messages_round_trip(message: object) -> None:
    assert decode_server(encode(message)) == message


def test_unknown_server_fields_are_ignored() -> None:
    frame = orjson.dumps({"type": "ack", "version": 3, "future_field": [1, 2]})
    assert decode_server(frame) == Ack(version=3)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"{", ErrorCode.BAD_JSON),
        (b"[1, 2]", ErrorCode.BAD_JSON),
        (b'"hello"', ErrorCode.BAD_JSON),
        (b'{"no_type": 1}', ErrorCode.BAD_MESSAGE),
        (b'{"type": "explode"}', ErrorCode.UNKNOWN_TYPE),
        (b'{"type": 5}', ErrorCode.BAD_MESSAGE),
        (b'{"type": "hello"}', ErrorCode.BAD_MESSAGE),
        (b'{"type": "hello", "token": "t", "position_encoding": "utf-8"}', ErrorCode.BAD_MESSAGE),
        (b'{"type": "replace", "text": 12}', ErrorCode.BAD_MESSAGE),
        (b'{"type": "replace", "text": "\\ud800"}', ErrorCode.BAD_SURROGATE),
        (b'{"type": "replace", "text": "ok \\udc00 no"}', ErrorCode.BAD_SURROGATE),
        (
            b'{"type": "edit", "base": "1", "changes": [{"start": 0, "end": 0, "text": ""}]}',
            ErrorCode.BAD_MESSAGE,
        ),
        (
            b'{"type": "edit", "base": true, "changes": [{"start": 0, "end": 0, "text": ""}]}',
            ErrorCode.BAD_MESSAGE,
        ),
        (b'{"type": "edit", "base": 1, "changes": []}', ErrorCode.BAD_MESSAGE),
        (
            b'{"type": "edit", "base": 1, "changes": [{"start": 3, "end": 1, "text": ""}]}',
            ErrorCode.BAD_OFFSETS,
        ),
        (
            b'{"type": "edit", "base": 1, "changes": [{"start": -1, "end": 1, "text": ""}]}',
            ErrorCode.BAD_OFFSETS,
        ),
        (
            b'{"type": "edit", "base": 1, "changes": [{"start": 0, "end": 1.5, "text": ""}]}',
            ErrorCode.BAD_MESSAGE,
        ),
        (b'{"type": "edit", "base": 1, "changes": ["x"]}', ErrorCode.BAD_MESSAGE),
        (b'{"type": "observe"}', ErrorCode.BAD_MESSAGE),
        (b'{"type": "observe", "doc": "a", "class": "b"}', ErrorCode.BAD_MESSAGE),
        (b'{"type": "ping", "id": [1]}', ErrorCode.BAD_MESSAGE),
        (b'{"type": "dismiss"}', ErrorCode.BAD_MESSAGE),
    ],
)
def test_bad_client_frames_have_stable_codes(frame: bytes, code: ErrorCode) -> None:
    with pytest.raises(PeerError) as info:
        decode_client(frame)
    assert info.value.code == code


def test_errors_echo_the_message_id() -> None:
    with pytest.raises(PeerError) as info:
        decode_client(b'{"type": "edit", "id": "e7", "base": 1, "changes": []}')
    assert info.value.msg_id == "e7"
