"""Issue 12, test 4: the PostgreSQL primary dies.

With a synchronous standby (``synchronous_standby_names``) a COMMIT returns only once
the standby has the WAL, so after ``pg_ctl stop -m immediate`` of the primary and
``pg_ctl promote`` of the standby every acked edit is on the promoted standby; the
gateway's DSN lists both hosts with ``target_session_attrs=read-write`` and follows.
Without a standby, writes stall: clients get ``storage`` errors with ``retry_after_ms``
and resend once the primary is back; no acked edit is lost.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.scale_harness import Typist, audit
from tests.services import Gateway, Postgres, needs_services

pytestmark = [needs_services, pytest.mark.usefixtures("scale_services_stopped")]


def _gateway(tmp: Path, dsn: str) -> Gateway:
    return Gateway(tmp, "gw", "--store", dsn, env={"INKSTONE_SNAPSHOT_EVERY": "100000"}).start()


def test_primary_killed_standby_promoted(tmp_path: Path) -> None:
    primary = Postgres(synchronous=True)
    standby = Postgres(primary)
    dsn = (
        f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/postgres"
        "?target_session_attrs=read-write"
    )
    gw = _gateway(tmp_path, dsn)

    async def main() -> None:
        typists = [Typist(gw.url, f"s{i}", "f1") for i in range(3)]
        for t in typists:
            await t.connect()
        typing = [
            asyncio.create_task(t.type_slowly("Every acked edit survives. ", 0.03)) for t in typists
        ]
        await asyncio.sleep(0.3)
        primary.kill()
        acked_on_primary = sum(len(t.acked) for t in typists)
        standby.promote()
        await asyncio.gather(*typing)
        await asyncio.gather(*(t.wait_synced(20) for t in typists))
        assert 0 < acked_on_primary < sum(len(t.acked) for t in typists)
        loss = audit(standby, typists)
        assert loss.lost == loss.duplicates == loss.diverged == []
        for t in typists:
            await t.close()

    try:
        asyncio.run(asyncio.wait_for(main(), 50))
    finally:
        gw.close()
        standby.close()
        primary.close()


def test_no_standby_writes_stall_with_storage_errors(tmp_path: Path) -> None:
    pg = Postgres(synchronous=False)
    gw = _gateway(tmp_path, pg.dsn)

    async def main() -> None:
        t = Typist(gw.url, "s1", "f2")
        await t.connect()
        await t.type_slowly("Written before. ", 0.01)
        await t.wait_synced()
        acked_before = len(t.acked)
        pg.kill()
        await t.type_slowly("While down. ", 0.05)
        await asyncio.sleep(1.5)
        assert "storage" in t.errors
        assert len(t.acked) == acked_before, "nothing is acked while the database is down"
        pg.start()
        await t.wait_synced(20)  # the client resends after retry_after_ms
        await t.type_slowly("After.", 0.01)
        await t.wait_synced(10)
        loss = audit(pg, [t])
        assert loss.lost == loss.duplicates == loss.diverged == []
        assert t.state.text == "Written before. While down. After."
        await t.close()

    try:
        asyncio.run(asyncio.wait_for(main(), 50))
    finally:
        gw.close()
        pg.close()
