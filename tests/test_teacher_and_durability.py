"""Teachers observing live; durability across kill -9; graceful shutdown."""

from __future__ import annotations

import asyncio
from pathlib import Path

from protocol import (
    Change,
    Edit,
    Error,
    Hints,
    Observe,
    Presence,
    Replace,
    Scores,
    Snapshot,
    Update,
)
from server.auth import mint_token
from server.wsclient import Observer, StudentClient
from tests.conftest import LiveServer, ProcessServer, run


def test_teacher_observes_a_class_live(rules_server: LiveServer) -> None:
    async def main() -> None:
        student = StudentClient(rules_server.url, rules_server.token("s1"), "s1-essay", lang="en")
        await student.connect()
        await student.type_text("My first sentence is here. ")
        await student.wait_synced()

        teachers = [
            Observer(rules_server.url, rules_server.token(f"t{i}", "teacher")) for i in range(2)
        ]
        for teacher in teachers:
            await teacher.connect()
            await teacher.session.send(Observe(class_id="c1", id="o1"))
            snap = await teacher.session.wait_for(lambda m: isinstance(m, Snapshot))
            assert isinstance(snap, Snapshot)
            assert snap.doc == "s1/s1-essay" and snap.student == "s1" and snap.id == "o1"

        await student.type_text("And the the second.")
        for teacher in teachers:
            update = await teacher.session.wait_for(lambda m: isinstance(m, Update))
            assert (
                isinstance(update, Update) and update.doc == "s1/s1-essay" and update.version == 2
            )
            hints = await teacher.session.wait_for(
                lambda m: isinstance(m, Hints) and m.version >= 2 and bool(m.sentences)
            )
            assert isinstance(hints, Hints) and hints.doc == "s1/s1-essay"
            assert any(h.code == "repeated_word" for s in hints.sentences for h in s.hints)
            scores = await teacher.session.wait_for(lambda m: isinstance(m, Scores))
            assert isinstance(scores, Scores) and scores.doc == "s1/s1-essay"

        await student.close()
        for teacher in teachers:
            presence = await teacher.session.wait_for(lambda m: isinstance(m, Presence))
            assert isinstance(presence, Presence) and presence.state == "offline"
            await teacher.close()

    run(main())


def test_teacher_permissions(rules_server: LiveServer) -> None:
    async def main() -> None:
        student = StudentClient(rules_server.url, rules_server.token("s1", class_id="c1"), "mine")
        await student.connect()
        other = Observer(rules_server.url, rules_server.token("t9", "teacher", class_id="c2"))
        await other.connect()
        await other.session.send(Observe(class_id="c1", id=1))
        err = await other.session.wait_for(lambda m: isinstance(m, Error))
        assert isinstance(err, Error) and err.code == "forbidden" and err.id == 1
        # another class's documents do not exist for this teacher (nothing to probe)
        for doc in ("mine", "s1/mine"):
            await other.session.send(Observe(doc=doc, id=2))
            err = await other.session.wait_for(lambda m: isinstance(m, Error))
            assert isinstance(err, Error) and err.code == "not_found"
        await other.session.send(Replace(text="defaced", id=3))
        err = await other.session.wait_for(lambda m: isinstance(m, Error))
        assert isinstance(err, Error) and err.code == "forbidden"
        await other.session.send(Edit(base=0, changes=(Change(0, 0, "x"),), id=4))
        err = await other.session.wait_for(lambda m: isinstance(m, Error))
        assert isinstance(err, Error) and err.code == "forbidden"
        assert rules_server.doc("mine").text == ""
        await other.close()
        await student.close()

    run(main())


def test_acked_edits_survive_kill_9_and_clients_resume(tmp_path: Path) -> None:
    server = ProcessServer(tmp_path, "--no-models")
    server.start()
    try:

        async def before() -> StudentClient:
            token = mint_token(None, user="s1", role="student", class_id="c1")
            client = StudentClient(server.url, token, "durable", lang="zh")
            await client.connect()
            for ch in "今天我们去公园。风很大，":
                await client.type_text(ch)
            await client.wait_synced()
            # more edits that may or may not be acked when the server dies
            for ch in "树叶都落了。":
                await client.type_text(ch)
            await asyncio.sleep(0.05)
            return client

        client = run(before())
        acked_version = client.state.version
        server.kill9()
        server.start()

        async def after() -> None:
            welcome = await client.connect()
            assert welcome.version >= (acked_version or 0)
            await client.wait_synced()
            assert client.state.text == "今天我们去公园。风很大，树叶都落了。"
            await client.close()
            # a fresh client sees exactly the same text: nothing lost, nothing twice
            token = mint_token(None, user="s1", role="student", class_id="c1")
            fresh = StudentClient(server.url, token, "durable", lang="zh")
            welcome = await fresh.connect()
            assert welcome.text == "今天我们去公园。风很大，树叶都落了。"
            assert welcome.version == client.state.version
            await fresh.close()

        run(after())
    finally:
        server.stop()


def test_graceful_shutdown_closes_sockets_with_1001(tmp_path: Path) -> None:
    server = ProcessServer(tmp_path, "--no-models")
    server.start()
    try:

        async def connect() -> StudentClient:
            token = mint_token(None, user="s1", role="student", class_id="c1")
            client = StudentClient(server.url, token, "bye")
            await client.connect()
            await client.type_text("hello")
            await client.wait_synced()
            return client

        async def scenario() -> int | None:
            client = await connect()
            loop = asyncio.get_running_loop()
            output = loop.run_in_executor(None, server.terminate)
            await asyncio.wait_for(client.session.closed.wait(), 20)
            logs = await output
            assert "DEV MODE" in logs
            return client.session.close_code

        assert run(scenario()) == 1001
    finally:
        server.stop()
