"""Issue 12, tests 1, 2 and 5: three gateways on one PostgreSQL and one Redis.

1. Teachers connected to a node that holds none of their students see every student's
   final version within 1 s, and their presence.
2. ``kill -9`` of the gateway HAProxy routes a class to, mid-typing: every acked edit
   is in PostgreSQL exactly once, final texts equal the clients', the students come back
   through HAProxy and the teacher sees them offline, then online.
5. Redis killed mid-run: the teacher's node re-reads what it missed and converges.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.docids import teacher_id
from tests.scale_harness import Teacher, Typist, audit
from tests.services import Gateway, HAProxy, Postgres, Redis, needs_services

pytestmark = [needs_services, pytest.mark.usefixtures("scale_services_stopped")]


@pytest.fixture
def redis_server() -> Iterator[Redis]:
    server = Redis()
    try:
        yield server
    finally:
        server.close()


def _gateways(tmp: Path, pg: Postgres, redis: Redis, n: int) -> list[Gateway]:
    env = {"INKSTONE_SNAPSHOT_EVERY": "100000"}
    nodes = [
        Gateway(tmp, f"gw{i}", "--store", pg.dsn, "--bus", redis.url, env=env) for i in range(n)
    ]
    try:
        for g in nodes:
            g.start(wait=False)
        for g in nodes:
            g.wait_healthy()
    except BaseException:
        for g in nodes:
            g.close()
        raise
    return nodes


def _connections(g: Gateway) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{g.port}/healthz", timeout=1) as r:
            return int(json.load(r)["connections"])
    except OSError:
        return -1


def _final(teacher: Teacher, typists: list[Typist]) -> object:
    def done() -> bool:
        return all(
            teacher.texts.get(teacher_id(t.user, t.doc)) == t.state.text
            and teacher.versions.get(teacher_id(t.user, t.doc)) == t.state.version
            for t in typists
        )

    return done


def _present(teacher: Teacher, typists: list[Typist], state: str) -> object:
    def done() -> bool:
        return all(
            (teacher.presence.get(teacher_id(t.user, t.doc)) or ["?"])[-1] == state for t in typists
        )

    return done


def test_cross_node_teacher_view(tmp_path: Path, pg: Postgres, redis_server: Redis) -> None:
    nodes = _gateways(tmp_path, pg, redis_server, 3)

    async def main() -> None:
        classes = [f"c{i}" for i in range(6)]
        typists = {
            c: [Typist(nodes[i % 3].url, f"s{i}-{j}", c) for j in range(2)]
            for i, c in enumerate(classes)
        }
        teachers = {c: Teacher(nodes[(i + 1) % 3].url, f"t{i}", c) for i, c in enumerate(classes)}
        everyone = [t for ts in typists.values() for t in ts]
        for t in everyone:
            await t.connect()
        for teacher in teachers.values():
            await teacher.watch()
        await asyncio.gather(
            *(t.type_slowly(f"{t.user} writes one line in {t.class_id}. ", 0.02) for t in everyone)
        )
        await asyncio.gather(*(t.wait_synced(10) for t in everyone))
        waits = [await teachers[c].until(_final(teachers[c], typists[c]), 1.0) for c in classes]
        for c in classes:
            await teachers[c].until(_present(teachers[c], typists[c], "online"), 3.0)
        assert max(waits) <= 1.0
        loss = audit(pg, everyone)
        assert loss.lost == loss.duplicates == loss.diverged == []
        for x in [*everyone, *teachers.values()]:
            await x.close()

    try:
        asyncio.run(asyncio.wait_for(main(), 50))
    finally:
        for g in nodes:
            g.close()


def test_gateway_killed_mid_typing(tmp_path: Path, pg: Postgres, redis_server: Redis) -> None:
    nodes = _gateways(tmp_path, pg, redis_server, 3)
    try:
        proxy = HAProxy(tmp_path, nodes)
    except BaseException:
        for g in nodes:
            g.close()
        raise

    async def main() -> None:
        typists = [Typist(proxy.url, f"s{j}", "k1") for j in range(4)]
        for t in typists:
            await t.connect()
        held = [g for g in nodes if _connections(g) > 0]
        assert len(held) == 1, "a class's students meet on one gateway"
        victim = held[0]
        teacher = Teacher(next(g for g in nodes if g is not victim).url, "t1", "k1")
        await teacher.watch()
        await teacher.until(_present(teacher, typists, "online"), 5)

        typing = [
            asyncio.create_task(t.type_slowly("The quick brown fox jumps over it. ", 0.03))
            for t in typists
        ]
        await asyncio.sleep(0.4)
        victim.kill9()
        offline_after = await teacher.until(_present(teacher, typists, "offline"), 10)
        await asyncio.gather(*typing)  # typed on, offline
        for t in typists:
            await t.reconnect(proxy.url)  # HAProxy sends the class to a live node
        await asyncio.gather(*(t.wait_synced(15) for t in typists))
        await teacher.until(_present(teacher, typists, "online"), 5)
        await teacher.until(_final(teacher, typists), 5)
        assert offline_after <= 10
        loss = audit(pg, typists)
        assert loss.lost == loss.duplicates == loss.diverged == []
        assert all(t.state.text == "The quick brown fox jumps over it. " for t in typists)
        for x in [*typists, teacher]:
            await x.close()

    try:
        asyncio.run(asyncio.wait_for(main(), 55))
    finally:
        proxy.close()
        for g in nodes:
            g.close()


def test_redis_killed_mid_run(tmp_path: Path, pg: Postgres, redis_server: Redis) -> None:
    nodes = _gateways(tmp_path, pg, redis_server, 2)

    async def main() -> None:
        typist = Typist(nodes[0].url, "s1", "r1")
        await typist.connect()
        teacher = Teacher(nodes[1].url, "t1", "r1")
        await teacher.watch()
        await typist.type_slowly("Before the outage. ", 0.01)
        await typist.wait_synced()
        await teacher.until(_final(teacher, [typist]), 2)
        snapshots = teacher.snapshots

        redis_server.kill()
        await typist.type_slowly("During it. ", 0.01)
        await typist.wait_synced()  # edits go on: PostgreSQL is the truth
        redis_server.start()
        started = time.monotonic()
        await typist.type_slowly("After. ", 0.01)
        await typist.wait_synced()
        await teacher.until(_final(teacher, [typist]), 10)
        assert teacher.snapshots > snapshots, "the gap was re-read from the store"
        assert time.monotonic() - started < 10
        for x in (typist, teacher):
            await x.close()

    try:
        asyncio.run(asyncio.wait_for(main(), 50))
    finally:
        for g in nodes:
            g.close()


def test_teacher_arriving_on_a_busy_unwatched_class_converges(
    tmp_path: Path, pg: Postgres, redis_server: Redis
) -> None:
    """A class nobody watches from another node is not published at all; a teacher who
    starts observing it from another node while it types still sees every edit and every
    document (the copies catch up from the store)."""
    nodes = _gateways(tmp_path, pg, redis_server, 2)

    async def main() -> None:
        typists = [Typist(nodes[0].url, f"s{i}", "q1") for i in range(2)]
        for t in typists:
            await t.connect()
        line = "Nobody watches yet; then a teacher does. " * 2
        typing = [asyncio.create_task(t.type_slowly(line, 0.03)) for t in typists]
        await asyncio.sleep(1.2)  # gateway 0 learnt that nobody listens: it publishes nothing
        assert not any(t.done() for t in typing)
        teacher = Teacher(nodes[1].url, "t1", "q1")
        await teacher.watch()  # subscribes while the class types, unpublished
        late = Typist(nodes[0].url, "s-late", "q1")  # a document created meanwhile
        await late.connect()
        await late.type_slowly("Typed while it subscribes.", 0.01)
        await asyncio.gather(*typing)
        everyone = [*typists, late]
        await asyncio.gather(*(t.wait_synced(10) for t in everyone))
        await teacher.until(_final(teacher, everyone), 5)
        await teacher.until(_present(teacher, everyone, "online"), 5)
        for x in [*everyone, teacher]:
            await x.close()

    try:
        asyncio.run(asyncio.wait_for(main(), 50))
    finally:
        for g in nodes:
            g.close()
    unheard = re.findall(r"'unheard': (\d+)", nodes[0].log.read_text())
    assert unheard and int(unheard[-1]) > 0, "gateway 0 skipped publishing while unwatched"
