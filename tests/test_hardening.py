"""Regression tests for the adversarial findings of issue 9 (1–4, 6, 7), each replaying
the attack through a real socket against a real uvicorn server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from protocol import (
    Ack,
    Error,
    Hello,
    Hints,
    Observe,
    Ping,
    Pong,
    Replace,
    Snapshot,
    Welcome,
)
from server.config import Settings
from server.wsclient import Observer, SocketSession
from tests.conftest import FAST, LiveServer, ThreadServer, run


def serve(tmp_path: Path, **overrides: object) -> ThreadServer:
    return ThreadServer(Settings(data_dir=tmp_path, **{**FAST, **overrides}), load_models=False)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with serve(tmp_path) as live:
        yield live


async def open_doc(
    live: LiveServer, user: str, doc: str, class_id: str = "c1", lang: str = "en"
) -> tuple[SocketSession, Welcome]:
    session = SocketSession(live.url)
    await session.open()
    await session.send(Hello(token=live.token(user, class_id=class_id), doc=doc, lang=lang))  # type: ignore[arg-type]
    welcome = await session.wait_for(lambda m: m.TYPE in ("welcome", "error"))
    assert isinstance(welcome, Welcome), welcome
    return session, welcome


async def collect_hints(session: SocketSession, version: int, quiet: float = 0.6) -> list[Hints]:
    """Every hints frame for ``version`` (they may come in parts), until a quiet spell."""
    frames: list[Hints] = []
    while True:
        try:
            m = await session.recv(timeout=quiet if frames else 15)
        except TimeoutError:
            return frames
        if isinstance(m, Hints) and m.version == version:
            frames.append(m)


# ---------------------------------------------------------------- finding 1


def test_one_pathological_essay_cannot_lock_its_owner_or_the_class(tmp_path: Path) -> None:
    """``"i " * 25000`` made 25,000 hints in one 2.8 MB frame: the owner was closed as a
    slow consumer, every later hello and the teacher's class view too, across restarts."""
    settings = Settings(data_dir=tmp_path, **FAST)

    async def attack(live: LiveServer) -> None:
        for user, text in (("mallory", "i " * 25_000), ("trudy", "a " * 25_000)):
            s, _ = await open_doc(live, user, f"{user}-essay")
            await s.send(Replace(text=text, id=1))
            ack = await s.wait_for(lambda m: isinstance(m, Ack))
            frames = await collect_hints(s, ack.version)  # type: ignore[union-attr]
            assert frames and s.close_code is None, "the owner must stay connected"
            hints = [h for f in frames for sh in f.sentences for h in sh.hints]
            assert 0 < len(hints) <= settings.max_hints_per_document + 10
            assert any(h.code == "more" for h in hints), "the rest is summarised"
            assert max(len(f.sentences) for f in frames) <= settings.hints_frame_sentences
            await s.close()

    async def everyone_still_works(live: LiveServer) -> None:
        for user in ("mallory", "trudy"):
            s, welcome = await open_doc(live, user, f"{user}-essay")
            assert len(welcome.text) == 50_000
            frames = await collect_hints(s, welcome.version)
            assert frames and s.close_code is None
            await s.send(Ping(id=7))
            assert isinstance(await s.wait_for(lambda m: isinstance(m, Pong)), Pong)
            await s.close()
        ok, _ = await open_doc(live, "alice", "alice-essay")
        await ok.send(Replace(text="A short essay.", id=1))
        await ok.wait_for(lambda m: isinstance(m, Ack))
        await ok.close()
        teacher = Observer(live.url, live.token("t1", "teacher"))
        await teacher.connect()
        await teacher.session.send(Observe(class_id="c1", id="o"))
        seen = set()
        while len(seen) < 3:
            m = await teacher.session.recv(timeout=15)
            if isinstance(m, Snapshot):
                seen.add(m.doc)
        assert seen == {"mallory/mallory-essay", "trudy/trudy-essay", "alice/alice-essay"}
        await asyncio.sleep(0.5)
        assert teacher.session.close_code is None
        await teacher.close()

    with ThreadServer(settings, load_models=False) as live:
        run(attack(live))
        run(everyone_still_works(live))
    with ThreadServer(settings, load_models=False) as live:  # the stored analysis, reloaded
        run(everyone_still_works(live))


# ---------------------------------------------------------------- findings 2 and 3


def test_documents_belong_to_class_and_owner(server: LiveServer) -> None:
    """A token for alice in c2 opened alice's c1 document; a student of c2 could pre-create
    carol's default name and lock her out (and probe which names exist)."""
    from server.docids import doc_key

    async def main() -> None:
        a1, _ = await open_doc(server, "alice", "alice-essay", "c1")
        await a1.send(Replace(text="Alice in class one.", id=1))
        await a1.wait_for(lambda m: isinstance(m, Ack))
        await a1.close()
        a2, welcome = await open_doc(server, "alice", "alice-essay", "c2")
        assert (welcome.text, welcome.version) == ("", 0)  # her c2 document, not c1's
        await a2.send(Replace(text="Alice in class two.", id=1))
        await a2.wait_for(lambda m: isinstance(m, Ack))
        await a2.close()

        squatter, _ = await open_doc(server, "eve", "carol-essay", "c2")
        await squatter.send(Replace(text="squatted", id=1))
        await squatter.wait_for(lambda m: isinstance(m, Ack))
        await squatter.close()
        carol, welcome = await open_doc(server, "carol", "carol-essay", "c1")
        assert (welcome.text, welcome.version, welcome.doc) == ("", 0, "carol-essay")
        await carol.close()
        # a name in use elsewhere and a name never used answer the same: nothing to probe
        _, fresh = await open_doc(server, "carol", "never-used", "c1")
        assert (fresh.text, fresh.version) == (welcome.text, welcome.version)

        store = server.runtime.store
        assert store.load(doc_key("c1", "alice", "alice-essay")).text == "Alice in class one."  # type: ignore[union-attr]
        assert store.load(doc_key("c2", "alice", "alice-essay")).text == "Alice in class two."  # type: ignore[union-attr]
        assert store.load(doc_key("c2", "eve", "carol-essay")).text == "squatted"  # type: ignore[union-attr]

        # teachers see only their class, and address documents as owner/name
        t2 = Observer(server.url, server.token("t2", "teacher", class_id="c2"))
        await t2.connect()
        await t2.session.send(Observe(doc="alice/alice-essay", id=1))
        snap = await t2.session.wait_for(lambda m: m.TYPE in ("snapshot", "error"))
        assert isinstance(snap, Snapshot) and snap.text == "Alice in class two."
        await t2.session.send(Observe(doc="carol/carol-essay", id=2))
        err = await t2.session.wait_for(lambda m: isinstance(m, Error))
        assert isinstance(err, Error) and err.code == "not_found"
        await t2.close()

    run(main())


# ---------------------------------------------------------------- finding 4


def test_document_cap_and_any_class_size(tmp_path: Path) -> None:
    """One student made 3,000 documents in 19 s; past 511 the teacher's class view was
    closed as a slow consumer and reconnected every ~4 s."""

    async def main(live: LiveServer) -> None:
        names = [f"doc-{i}" for i in range(600)]
        for name in names:
            s, welcome = await open_doc(live, "prolific", name)
            assert welcome.limits.max_documents == 600
            await s.close()
        s = SocketSession(live.url)
        await s.open()
        await s.send(Hello(token=live.token("prolific"), doc="one-too-many", id=1))
        err = await s.wait_for(lambda m: m.TYPE in ("welcome", "error"))
        assert isinstance(err, Error) and err.code == "too_many_documents" and err.id == 1
        assert "600" in err.message
        await s.close()
        s, _ = await open_doc(live, "prolific", "doc-7")  # an existing one still opens
        await s.close()

        teacher = Observer(live.url, live.token("t1", "teacher"))
        await teacher.connect()
        await teacher.session.send(Observe(class_id="c1", id="o"))
        seen = set()
        while len(seen) < len(names):
            m = await teacher.session.recv(timeout=20)
            if isinstance(m, Snapshot):
                seen.add(m.doc)
        assert seen == {f"prolific/{n}" for n in names}
        assert teacher.session.close_code is None
        await teacher.close()

    with serve(tmp_path, max_documents_per_student=600, session_burst=1000) as live:
        run(main(live))


# ---------------------------------------------------------------- finding 6


def test_budgets_are_per_user_across_connections(tmp_path: Path) -> None:
    """Reconnecting reset the per-connection bucket: one student reached ~105 replaces/s
    of a 50k-character text."""
    text = "x" * 50_000

    async def main(live: LiveServer) -> None:
        accepted = refused = 0
        started = time.monotonic()
        for _ in range(8):  # reconnect after every burst
            s, _ = await open_doc(live, "abuser", "big")
            for i in range(6):
                await s.send(Replace(text=text[: 50_000 - i], id=i))
                m = await s.wait_for(lambda m: m.TYPE in ("ack", "error"))
                if isinstance(m, Ack):
                    accepted += 1
                else:
                    assert isinstance(m, Error) and m.code == "rate_limited"
                    assert m.retry_after_ms and m.retry_after_ms > 0
                    refused += 1
            await s.close()
        elapsed = time.monotonic() - started
        budget = live.settings.byte_burst + elapsed * live.settings.max_bytes_per_second
        assert accepted * 50_000 <= budget + 50_000
        assert refused > 0
        # another student is not affected by the abuser's budget
        ok, _ = await open_doc(live, "bystander", "essay")
        await ok.send(Replace(text=text, id=1))
        assert isinstance(await ok.wait_for(lambda m: m.TYPE in ("ack", "error")), Ack)
        await ok.close()

    with serve(tmp_path, max_bytes_per_second=100_000, byte_burst=200_000) as live:
        run(main(live))


def test_storage_quota_and_compact_storage(tmp_path: Path) -> None:
    """Each replace was stored twice in full and never compacted (303 MB in 20 s); there
    was no per-student quota."""

    async def main(live: LiveServer) -> None:
        s, welcome = await open_doc(live, "writer", "essay")
        assert welcome.limits.storage_quota_bytes == 120_000
        base = "word " * 10_000
        await s.send(Replace(text=base, id=0))
        await s.wait_for(lambda m: isinstance(m, Ack))
        for i in range(1, 150):  # replaces that change one character
            await s.send(Replace(text=base[:-1] + chr(97 + i % 26), id=i))
            await s.wait_for(lambda m: m.TYPE in ("ack", "error"))
        db = live.runtime.store.db
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = (live.settings.data_dir / "inkstone.sqlite3").stat().st_size
        assert size < 600_000, size  # 150 × 2 × 50 kB = 15 MB before
        # a second document pushes the student over the quota: refused, clearly
        s2, _ = await open_doc(live, "writer", "notes")
        await s2.send(Replace(text="y" * 60_000 + "z" * 10_000, id=1))
        err = await s2.wait_for(lambda m: m.TYPE in ("ack", "error"))
        assert isinstance(err, Error) and err.code == "storage_quota" and err.version == 0
        assert "120000" in err.message
        # deleting is always allowed, and frees room
        await s.send(Replace(text="short now", id=99))
        assert isinstance(await s.wait_for(lambda m: m.TYPE in ("ack", "error")), Ack)
        await s2.send(Replace(text="y" * 60_000, id=2))
        assert isinstance(await s2.wait_for(lambda m: m.TYPE in ("ack", "error")), Ack)
        await s.close()
        await s2.close()

    with serve(
        tmp_path,
        storage_quota_bytes=120_000,
        max_document_chars=100_000,
        max_message_bytes=400_000,
        byte_burst=10_000_000,
        max_bytes_per_second=10_000_000,
        max_messages_per_second=1000.0,
        rate_burst=1000,
    ) as live:
        run(main(live))


# ---------------------------------------------------------------- finding 7


def test_session_ends_at_token_expiry_unless_reauthenticated(server: LiveServer) -> None:
    """An open session kept editing after its token expired."""
    from protocol import Reauth, Reauthed

    async def main() -> None:
        s = SocketSession(server.url)
        await s.open()
        await s.send(Hello(token=server.token("s1", ttl_s=2), doc="d", id=1))
        welcome = await s.wait_for(lambda m: isinstance(m, Welcome))
        assert isinstance(welcome, Welcome) and welcome.token_expires is not None
        assert abs(welcome.token_expires - (time.time() + 2)) < 2
        err = await s.wait_for(lambda m: isinstance(m, Error), timeout=6)
        assert isinstance(err, Error) and err.code == "token_expired"
        await asyncio.wait_for(s.closed.wait(), 5)
        assert s.close_code == 1008

        # presenting a fresh token on the open socket keeps the session (and its place)
        s = SocketSession(server.url)
        await s.open()
        await s.send(Hello(token=server.token("s1", ttl_s=2), doc="d", id=1))
        await s.wait_for(lambda m: isinstance(m, Welcome))
        await s.send(Reauth(token=server.token("mallory", ttl_s=60), id=2))
        err = await s.wait_for(lambda m: isinstance(m, Error))
        assert isinstance(err, Error) and err.code == "forbidden" and err.id == 2
        await s.send(Reauth(token=server.token("s1", ttl_s=60), id=3))
        ok = await s.wait_for(lambda m: isinstance(m, Reauthed))
        assert isinstance(ok, Reauthed) and ok.id == 3 and ok.token_expires > time.time() + 50
        await asyncio.sleep(3)
        await s.send(Replace(text="still editing", id=4))
        ack = await s.wait_for(lambda m: m.TYPE in ("ack", "error"))
        assert isinstance(ack, Ack) and s.close_code is None
        await s.close()

    run(main())


def test_slow_consumer_is_judged_on_unread_backlog(tmp_path: Path) -> None:
    """One large frame on an empty queue is not a slow reader; a backlog that is not
    being read is (clock injected, no socket needed)."""
    from server.clock import ManualClock
    from server.connection import Connection
    from server.metrics import Metrics
    from server.service import Inkstone
    from server.store import Store

    settings = Settings(data_dir=tmp_path, send_queue_bytes=1000, slow_consumer_grace_s=5.0)
    clock = ManualClock()
    service = Inkstone(settings, Store(tmp_path / "db.sqlite3"), None, Metrics(), clock)
    closed: list[tuple[int, str]] = []
    conn = Connection(service, clock, lambda code, reason: closed.append((code, reason)))
    big = Error(code="x", message="m" * 3000)  # one frame 3 × the limit
    conn.send(big)
    assert not closed
    conn.on_sent(conn.queued_bytes)  # the writer drained it
    conn.send(big)
    conn.send(big)  # backlog over the limit, but the reader was making progress just now
    assert not closed
    clock.advance(6.0)  # nothing written for longer than the grace period
    conn.send(replace(big, message="m"))
    assert closed and closed[0][0] == 1008


def test_token_lifetime_setting_applies_to_hello_and_reauth(tmp_path: Path) -> None:
    """``max_token_lifetime_s`` is the server's policy, at hello and at reauth."""
    from protocol import Reauth

    async def main(live: LiveServer) -> None:
        s = SocketSession(live.url)
        await s.open()
        await s.send(Hello(token=live.token("s1", ttl_s=7200), doc="d", id=1))
        err = await s.wait_for(lambda m: m.TYPE in ("welcome", "error"))
        assert isinstance(err, Error) and err.code == "unauthorized" and "lifetime" in err.message
        await s.send(Hello(token=live.token("s1", ttl_s=600), doc="d", id=2))
        assert isinstance(await s.wait_for(lambda m: m.TYPE in ("welcome", "error")), Welcome)
        await s.send(Reauth(token=live.token("s1", ttl_s=7200), id=3))
        err = await s.wait_for(lambda m: isinstance(m, Error))
        assert isinstance(err, Error) and err.code == "unauthorized" and err.id == 3
        await s.close()

    with serve(tmp_path, max_token_lifetime_s=3600) as live:
        run(main(live))


def test_a_reconnect_loop_is_throttled_per_user(tmp_path: Path) -> None:
    """Each hello loads a document and sends its whole analysis: a client reconnecting
    in a loop (to dodge throttling) is refused cheaply once the user's session budget is
    spent, while other users connect normally."""

    async def main(live: LiveServer) -> None:
        opened = refused = 0
        for _ in range(12):
            s = SocketSession(live.url)
            await s.open()
            await s.send(Hello(token=live.token("looper"), doc="d", id=1))
            m = await s.wait_for(lambda m: m.TYPE in ("welcome", "error"))
            if isinstance(m, Welcome):
                opened += 1
            else:
                assert isinstance(m, Error) and m.code == "rate_limited" and m.retry_after_ms
                refused += 1
            await s.close()
        assert opened == 5 and refused == 7
        other, _ = await open_doc(live, "someone-else", "d")
        await other.close()

    with serve(tmp_path, session_burst=5, max_sessions_per_second=0.1) as live:
        run(main(live))
