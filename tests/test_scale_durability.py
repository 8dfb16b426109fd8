"""Issue 12, tests 3 and 6: a gateway on PostgreSQL dies at the worst moments.

A fault hook (settings ``fault_hook``/``fault_after_edits``, off by default) kills the
real server process with SIGKILL between INSERT and COMMIT, or between COMMIT and the
ack; the control run acks before COMMIT and dies in between, and the audit must see the
lost acked edit (so the audit can see loss at all).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from protocol import Ack, Hello
from server.wsclient import SocketSession
from tests.scale_harness import Typist, audit
from tests.services import Gateway, Postgres, needs_services

pytestmark = [needs_services, pytest.mark.usefixtures("scale_services_stopped")]


def _gateway(tmp: Path, pg: Postgres, hook: str = "", after: int = 0) -> Gateway:
    env = {"INKSTONE_SNAPSHOT_EVERY": "100000"}
    if hook:
        env |= {"INKSTONE_FAULT_HOOK": hook, "INKSTONE_FAULT_AFTER_EDITS": str(after)}
    return Gateway(tmp, f"gw-{hook or 'plain'}", "--store", pg.dsn, env=env)


async def _type_acked(t: Typist, text: str, timeout: float = 5) -> None:
    """One character at a time, each waiting for its ack (one edit per COMMIT)."""
    for ch in text:
        await t.type_text(ch)
        await t.wait_synced(timeout)


async def _type_until_death(t: Typist, text: str, gateway: Gateway) -> str:
    """Type ``text`` one acked character at a time until the gateway dies; what was left."""
    for i, ch in enumerate(text):
        await t.type_text(ch)
        try:
            await t.wait_synced(3)
        except TimeoutError:
            assert gateway.proc is not None
            gateway.proc.wait(10)  # the hook killed it
            return text[i + 1 :]
    raise AssertionError("the fault hook never fired")


def test_crash_between_insert_and_commit_is_not_acked_and_is_resent(
    tmp_path: Path, pg: Postgres
) -> None:
    async def main() -> None:
        gw = _gateway(tmp_path, pg, "crash_before_commit", after=5).start()
        t = Typist(gw.url, "s1", "c1")
        await t.connect()
        rest = await _type_until_death(t, "abcdefgh", gw)
        assert len(t.acked) == 4 and len(t.state.pending) == 1  # the 5th: never acked
        assert pg.sql("SELECT count(*) FROM edits")[0][0] == "4"  # rolled back
        gw2 = _gateway(tmp_path, pg).start()
        try:
            await t.reconnect(gw2.url)
            await t.wait_synced(10)  # the unacked edit was re-sent and applied
            await _type_acked(t, rest)
            loss = audit(pg, [t])
            assert loss.lost == loss.duplicates == loss.diverged == []
            assert t.state.text == "abcdefgh"
        finally:
            await t.close()
            gw2.close()

    asyncio.run(asyncio.wait_for(main(), 50))


def test_crash_between_commit_and_ack_is_resent_and_deduplicated(
    tmp_path: Path, pg: Postgres
) -> None:
    async def main() -> None:
        gw = _gateway(tmp_path, pg, "crash_before_ack", after=5).start()
        t = Typist(gw.url, "s1", "c1")
        await t.connect()
        await _type_until_death(t, "abcdefgh", gw)
        lost_ack = t.state.pending[0].message
        assert len(t.acked) == 4
        assert pg.sql("SELECT count(*) FROM edits")[0][0] == "5"  # committed, never acked
        gw2 = _gateway(tmp_path, pg).start()
        try:
            # The same client, without resume, re-sends the operation: acked, not re-applied.
            raw = SocketSession(gw2.url)
            await raw.open()
            await raw.send(Hello(token=t.state.token, doc="essay", client=t.state.client_id))
            await raw.wait_for(lambda m: m.TYPE == "welcome")
            await raw.send(lost_ack)
            ack = await raw.wait_for(lambda m: m.TYPE in ("ack", "error"))
            assert isinstance(ack, Ack) and ack.version == 5, ack
            await raw.close()
            assert pg.sql("SELECT count(*), max(version) FROM edits")[0] == ["5", "5"]
            # The client itself resumes: its pending edit is counted as applied.
            await t.reconnect(gw2.url)
            await t.wait_synced(10)
            await _type_acked(t, "ij")
            loss = audit(pg, [t])
            assert loss.lost == loss.duplicates == loss.diverged == []
            assert t.state.text == "abcdeij"
        finally:
            await t.close()
            gw2.close()

    asyncio.run(asyncio.wait_for(main(), 50))


def test_control_ack_before_commit_is_reported_as_loss(tmp_path: Path, pg: Postgres) -> None:
    async def main() -> None:
        gw = _gateway(tmp_path, pg, "ack_before_commit", after=5).start()
        t = Typist(gw.url, "s1", "c1")
        await t.connect()
        try:
            for ch in "abcdefgh":
                await t.type_text(ch)
                await asyncio.sleep(0.05)
            assert gw.proc is not None
            gw.proc.wait(10)
        finally:
            await t.close()
        loss = audit(pg, [t], final=False)
        assert loss.lost, "the audit must see the acked edit that was never committed"

    asyncio.run(asyncio.wait_for(main(), 50))


def test_two_gateways_owning_one_document_are_fenced(tmp_path: Path, pg: Postgres) -> None:
    """After a rebalance two gateways may both hold a document: the second writer of a
    version loses the compare-and-set, reloads, and its client resends; no version is
    written twice and every acked edit is stored once."""

    async def main() -> None:
        gw_a, gw_b = (
            _gateway(tmp_path, pg),
            Gateway(tmp_path, "gw-b", "--store", pg.dsn, env={"INKSTONE_SNAPSHOT_EVERY": "100000"}),
        )
        gw_a.start()
        gw_b.start()
        a, b = Typist(gw_a.url, "s1", "c1"), Typist(gw_b.url, "s1", "c1")
        try:
            await a.connect()
            await _type_acked(a, "aaa")
            await b.connect()  # gateway B loads version 3 from PostgreSQL
            await _type_acked(b, "b")  # version 4, written by B
            await a.type_text("A")  # gateway A still holds version 3 in memory
            await a.wait_synced(10)  # fenced, reloaded, resent as a replace
            assert "storage" in a.errors
            rows = pg.sql("SELECT version FROM edits WHERE doc = 'c1/s1/essay' ORDER BY version")
            versions = [int(v) for (v,) in rows]
            assert versions == list(range(1, len(versions) + 1))  # each version once
            loss = audit(pg, [a, b], final=False)
            assert loss.lost == loss.duplicates == []
            stored = pg.sql("SELECT version FROM documents WHERE key = 'c1/s1/essay'")
            assert int(stored[0][0]) == versions[-1] == a.state.version
        finally:
            await a.close()
            await b.close()
            gw_a.close()
            gw_b.close()

    asyncio.run(asyncio.wait_for(main(), 50))
