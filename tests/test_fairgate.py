"""The fair gate: bounded concurrency; when jobs wait, the lightest recent user goes first."""

from __future__ import annotations

import asyncio

from server.clock import ManualClock
from server.fairgate import FairGate


def test_waiting_jobs_start_lightest_owner_first() -> None:
    async def main() -> list[str]:
        clock = ManualClock()
        tasks: list[asyncio.Task[None]] = []
        gate = FairGate(clock, lambda c: tasks.append(asyncio.ensure_future(c)), concurrency=2)
        release = asyncio.Event()
        order: list[str] = []

        def job(name: str) -> object:
            async def run() -> None:
                order.append(name)
                await release.wait()

            return run

        gate.run("abuser", 15.0, job("abuser-1"))  # a 14k-character document
        gate.run("abuser", 15.0, job("abuser-2"))
        assert gate.running == 2  # free slots: started at once
        for i in range(3, 6):
            gate.run("abuser", 15.0, job(f"abuser-{i}"))
        gate.run("student", 2.0, job("student-1"))  # queued after three abuser jobs
        gate.run("other", 1.0, job("other-1"))
        await asyncio.sleep(0)
        assert len(gate.waiting) == 5 and order == ["abuser-1", "abuser-2"]
        clock.advance(1.0)
        release.set()
        while gate.running or gate.waiting:
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        return order

    order = asyncio.run(main())
    # the two light users' jobs overtook the abuser's queued ones
    assert order[:4] == ["abuser-1", "abuser-2", "student-1", "other-1"]
    assert sorted(order[4:]) == ["abuser-3", "abuser-4", "abuser-5"]


def test_usage_decays_with_the_half_life() -> None:
    clock = ManualClock()
    gate = FairGate(clock, lambda c: c.close(), concurrency=1, half_life_s=10.0)
    gate.run("a", 8.0, lambda: asyncio.sleep(0))
    assert gate.usage("a") == 8.0
    clock.advance(10.0)
    assert abs(gate.usage("a") - 4.0) < 1e-9
    assert gate.usage("never") == 0.0


def test_heavy_owners_get_a_quarter_of_the_slots() -> None:
    async def main() -> tuple[list[str], int]:
        clock = ManualClock()
        tasks: list[asyncio.Task[None]] = []
        gate = FairGate(clock, lambda c: tasks.append(asyncio.ensure_future(c)), concurrency=8)
        release = asyncio.Event()
        started: list[str] = []

        def job(name: str) -> object:
            async def run() -> None:
                started.append(name)
                await release.wait()

            return run

        gate.run("abuser", 5000.0, job("warm-up"))  # heavy by itself; the abuser now too
        for i in range(6):
            gate.run("abuser", 50.0, job(f"abuser-{i}"))
        gate.run("student", 2.0, job("student"))  # free slots remain: starts at once
        await asyncio.sleep(0)
        running = gate.running
        release.set()
        while gate.running or gate.waiting:
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        return started, running

    started, running = asyncio.run(main())
    # 8 slots, 2 for heavy jobs: warm-up + one more abuser job, then the student's
    assert running == 3 and started[2] == "student"


def test_a_huge_first_job_is_heavy_without_history() -> None:
    clock = ManualClock()
    started: list[object] = []
    gate = FairGate(clock, started.append, concurrency=4, heavy_cost=20.0)
    for _ in range(3):
        gate.run(object(), 50.0, lambda: asyncio.sleep(0))  # three new owners, 50k chars each
    gate.run("typist", 2.0, lambda: asyncio.sleep(0))
    assert gate.heavy_running == 1 and gate.running == 2 and len(gate.waiting) == 2
    for coro in started:
        coro.close()  # type: ignore[attr-defined]
