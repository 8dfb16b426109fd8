"""The server without neural models: sessions, edits, limits and bad input over a real socket."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
import websockets

from protocol import Ack, Change, Edit, Error, Hello, Hints, Ping, Pong, Replace, Scores, Welcome
from server.config import Settings
from server.docids import doc_key
from server.wsclient import SocketSession, StudentClient
from tests.conftest import LiveServer, ThreadServer, run


async def hello(
    server: LiveServer, user: str = "s1", doc: str = "d1", **kw: object
) -> SocketSession:
    session = SocketSession(server.url)
    await session.open()
    await session.send(Hello(token=server.token(user), doc=doc, lang="en", **kw))  # type: ignore[arg-type]
    welcome = await session.recv()
    assert isinstance(welcome, Welcome), welcome
    return session


def test_english_rule_hints_and_stats(rules_server: LiveServer) -> None:
    async def main() -> None:
        client = StudentClient(rules_server.url, rules_server.token("s1"), "essay-en", lang="en")
        welcome = await client.connect()
        assert welcome.dev_mode is True and welcome.version == 0
        await client.type_text("This is the the best day. ")
        await client.wait_synced()
        hints = await client.session.wait_for(lambda m: isinstance(m, Hints) and bool(m.sentences))
        assert isinstance(hints, Hints) and hints.version == 1
        codes = {h.code for s in hints.sentences for h in s.hints}
        assert "repeated_word" in codes
        scores = await client.session.wait_for(lambda m: isinstance(m, Scores))
        assert isinstance(scores, Scores)
        assert scores.version == 1 and scores.stats.sentences == 1
        assert scores.overall is None  # no English model ships: nothing pretends
        await client.close()

    run(main())


def test_version_mismatch_and_atomic_edits(rules_server: LiveServer) -> None:
    async def main() -> None:
        s = await hello(rules_server)
        await s.send(Replace(text="abc", id=1))
        assert await s.recv() == Ack(version=1, id=1, doc="d1")
        await s.send(Edit(base=0, changes=(Change(0, 0, "x"),), id=2))
        err = await s.wait_for(lambda m: isinstance(m, Error))
        assert isinstance(err, Error) and err.code == "version_mismatch" and err.version == 1
        # second change is out of range: nothing is applied
        await s.send(Edit(base=1, changes=(Change(0, 0, "X"), Change(10, 11, "")), id=3))
        err = await s.wait_for(lambda m: isinstance(m, Error))
        assert isinstance(err, Error) and err.code == "bad_offsets" and err.id == 3
        await s.send(Edit(base=1, changes=(Change(3, 3, "d"),), id=4))
        ack = await s.wait_for(lambda m: isinstance(m, Ack))
        assert ack == Ack(version=2, id=4, doc="d1")
        assert rules_server.doc("d1").text == "abcd"
        await s.close()

    run(main())


BAD_FRAMES = [
    ("{not json", "bad_json"),
    ('{"type": "teleport"}', "unknown_type"),
    (
        '{"type": "edit", "base": "0", "changes": [{"start": 0, "end": 0, "text": "x"}]}',
        "bad_message",
    ),
    (
        '{"type": "edit", "base": 1, "changes": [{"start": 5, "end": 2, "text": "x"}]}',
        "bad_offsets",
    ),
    (
        '{"type": "edit", "base": 1, "changes": [{"start": 0, "end": 99, "text": "x"}]}',
        "bad_offsets",
    ),
    (
        '{"type": "edit", "base": 1, "changes": [{"start": 3, "end": 3, "text": "\\ud83d"}]}',
        "bad_surrogate",
    ),
    (
        '{"type": "edit", "base": 1, "changes": [{"start": 2, "end": 2, "text": "x"}]}',
        "bad_offsets",
    ),
    ('{"type": "observe", "class": "c1"}', "forbidden"),
    ('{"type": "hello", "token": "x", "doc": "d1"}', "already_open"),
    ('{"type": "dismiss", "hint": "nope"}', "not_found"),
]


def test_every_bad_input_gets_a_stable_error_and_changes_nothing(rules_server: LiveServer) -> None:
    async def main() -> None:
        s = await hello(rules_server, position_encoding="utf-16")
        await s.send(Replace(text="a😀b", id="r"))
        await s.wait_for(lambda m: isinstance(m, Ack))
        for frame, code in BAD_FRAMES:
            await s.send_raw(frame)
            err = await s.wait_for(lambda m: isinstance(m, Error))
            assert isinstance(err, Error) and err.code == code, (frame, err)
        await s.send_raw(b"\x00binary")
        err = await s.wait_for(lambda m: isinstance(m, Error))
        assert isinstance(err, Error) and err.code == "binary_frame"
        await s.send_raw(orjson.dumps({"type": "replace", "text": "x" * 300_000}).decode())
        err = await s.wait_for(lambda m: isinstance(m, Error))
        assert isinstance(err, Error) and err.code == "frame_too_large"
        doc = rules_server.doc("d1")
        assert (doc.text, doc.version) == ("a😀b", 1)
        await s.send(Ping(id=9))
        assert await s.wait_for(lambda m: isinstance(m, Pong)) == Pong(id=9)
        await s.close()

    run(main())


def test_garbage_flood_is_closed_with_1008(rules_server: LiveServer) -> None:
    async def main() -> None:
        s = await hello(rules_server)
        other = await hello(rules_server, user="s2", doc="d2")
        for _ in range(60):
            try:
                await s.send_raw("garbage")
            except websockets.ConnectionClosed:
                break
        await asyncio.wait_for(s.closed.wait(), 5)
        assert s.close_code == 1008
        await other.send(Ping(id=1))
        assert await other.wait_for(lambda m: isinstance(m, Pong)) == Pong(id=1)
        await other.close()

    run(main())


def test_students_cannot_touch_other_documents_and_tokens_are_checked(
    rules_server: LiveServer,
) -> None:
    async def main() -> None:
        s = await hello(rules_server, user="alice", doc="alice-essay")
        await s.send(Replace(text="Alice's text.", id=1))
        await s.wait_for(lambda m: isinstance(m, Ack))
        await s.close()
        # the same name in bob's hello is bob's own document: alice's is out of reach
        other = SocketSession(rules_server.url)
        await other.open()
        await other.send(Hello(token=rules_server.token("bob"), doc="alice-essay"))
        welcome = await other.recv()
        assert isinstance(welcome, Welcome) and welcome.text == "" and welcome.version == 0
        await other.send(Replace(text="defaced", id=2))
        await other.wait_for(lambda m: isinstance(m, Ack))
        await other.close()
        store = rules_server.runtime.store
        assert store.load(doc_key("c1", "alice", "alice-essay")).text == "Alice's text."
        assert store.load(doc_key("c1", "bob", "alice-essay")).text == "defaced"
        intruder = SocketSession(rules_server.url)
        await intruder.open()
        await intruder.send(Hello(token="forged.token", doc="x"))
        err = await intruder.recv()
        assert isinstance(err, Error) and err.code == "unauthorized"
        await intruder.send(Hello(token=rules_server.token("bob", ttl_s=-5), doc="x"))
        err = await intruder.recv()
        assert isinstance(err, Error) and err.code == "token_expired"
        await intruder.send(Replace(text="hi"))
        err = await intruder.recv()
        assert isinstance(err, Error) and err.code == "no_session"
        await intruder.close()

    run(main())


def test_subprotocol_is_negotiated(rules_server: LiveServer) -> None:
    async def main() -> None:
        async with websockets.connect(rules_server.url, subprotocols=["inkstone.v1"]) as ws:
            assert ws.subprotocol == "inkstone.v1"
        async with websockets.connect(rules_server.url) as ws:
            assert ws.subprotocol is None
            await ws.send('{"type": "ping", "id": 1}')
            assert orjson.loads(await ws.recv()) == {"type": "pong", "id": 1}

    run(main())


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_resume_after_reconnect_resends_unacked_edits(
    rules_server: LiveServer, encoding: str
) -> None:
    async def main() -> None:
        client = StudentClient(
            rules_server.url,
            rules_server.token("s1"),
            f"doc-{encoding}",
            lang="zh",
            encoding=encoding,
        )  # type: ignore[arg-type]
        await client.connect()
        await client.type_text("第一句😀。")
        await client.wait_synced()
        await client.close()
        # typed while offline: queued, not lost
        client.state.change(len(client.state.text), len(client.state.text), "第二句𠀀。")
        welcome = await client.connect()
        assert welcome.version == 1 and welcome.text == "第一句😀。"
        await client.wait_synced()
        doc = rules_server.doc(f"doc-{encoding}")
        assert doc.text == "第一句😀。第二句𠀀。" and doc.version == 2
        await client.close()

    run(main())


def test_health_metrics_and_dev_token(rules_server: LiveServer) -> None:
    import urllib.request

    with urllib.request.urlopen(rules_server.http + "/healthz") as r:
        assert orjson.loads(r.read())["status"] == "ok"
    with urllib.request.urlopen(rules_server.http + "/metrics") as r:
        body = r.read().decode()
    assert "inkstone_edit_to_hints_seconds" in body and "inkstone_queue_depth" in body
    request = urllib.request.Request(
        rules_server.http + "/dev/token",
        data=orjson.dumps({"user": "u1", "role": "teacher", "class": "c9"}),
        method="POST",
    )
    with urllib.request.urlopen(request) as r:
        token = orjson.loads(r.read())["token"]
    from server.auth import verify_token

    assert verify_token(None, token).role == "teacher"


def test_reconnect_before_analysis_gets_the_full_hint_set(tmp_path: Path) -> None:
    """A client that reconnects while its latest edit is unanalysed cannot map old offsets:
    the next hints message carries every sentence, not only the changed ones."""
    settings = Settings(data_dir=tmp_path, debounce_quiet_ms=400, debounce_max_ms=1000)
    with ThreadServer(settings, load_models=False) as live:

        async def main() -> None:
            client = StudentClient(live.url, live.token("s1"), "full", lang="en")
            await client.connect()
            await client.replace("The the cat sat. A dog ran.")
            await client.wait_synced()
            await client.session.wait_for(lambda m: isinstance(m, Hints) and len(m.sentences) == 2)
            at = client.state.text.index("dog")
            await client.change(at, at + 3, "fox")
            await client.wait_synced()
            await client.close()
            await client.connect()
            hints = await client.session.wait_for(lambda m: isinstance(m, Hints))
            assert isinstance(hints, Hints) and hints.version == 2
            assert len(hints.sentences) == 2
            await client.close()

        run(main())
