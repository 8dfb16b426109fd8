"""Debounce and batching policy, driven by a manual clock (no sleeping)."""

from __future__ import annotations

from server.clock import ManualClock
from server.debounce import Debouncer
from server.scheduler import BatchPlanner, Job, bucket_of


def make(
    quiet: float = 0.3, max_wait: float = 1.0
) -> tuple[ManualClock, Debouncer[str], list[tuple[str, float]]]:
    clock = ManualClock()
    fired: list[tuple[str, float]] = []
    debouncer: Debouncer[str] = Debouncer(
        clock, lambda key: fired.append((key, clock.now())), quiet_s=quiet, max_wait_s=max_wait
    )
    return clock, debouncer, fired


def test_fires_after_quiet_period() -> None:
    clock, debouncer, fired = make()
    debouncer.touch("d")
    clock.advance(0.29)
    assert fired == []
    clock.advance(0.02)
    assert fired == [("d", 0.3)]


def test_each_touch_extends_the_quiet_period() -> None:
    clock, debouncer, fired = make()
    for _ in range(3):
        debouncer.touch("d")
        clock.advance(0.2)
    assert fired == []
    clock.advance(0.11)
    assert len(fired) == 1
    assert abs(fired[0][1] - 0.7) < 1e-6


def test_max_wait_bounds_continuous_typing() -> None:
    clock, debouncer, fired = make(quiet=0.3, max_wait=1.0)
    for _ in range(25):  # a keystroke every 100 ms for 2.5 s
        debouncer.touch("d")
        clock.advance(0.1)
    times = [t for _, t in fired]
    # first fire at max_wait after the first keystroke; the next max_wait after the
    # first keystroke that came after it (t=1.1)
    assert len(times) == 2
    assert abs(times[0] - 1.0) < 1e-6
    assert abs(times[1] - 2.1) < 1e-6


def test_keys_are_independent_and_flush_cancel_work() -> None:
    clock, debouncer, fired = make()
    debouncer.touch("a")
    clock.advance(0.1)
    debouncer.touch("b")
    clock.advance(0.25)
    assert [k for k, _ in fired] == ["a"]
    assert debouncer.flush("b") is True
    assert [k for k, _ in fired] == ["a", "b"]
    debouncer.touch("c")
    debouncer.cancel("c")
    clock.advance(5)
    assert [k for k, _ in fired] == ["a", "b"]
    assert len(debouncer) == 0


def job(tokens: int, at: float) -> Job:
    return Job(tokens, at, payload=tokens, done=lambda *a: None)


def test_planner_waits_for_the_window_then_batches() -> None:
    planner = BatchPlanner(window_s=0.003, max_batch=4, max_tokens=10_000)
    planner.add(job(10, 0.0))
    planner.add(job(12, 0.001))
    assert planner.take(0.002) == []
    batch = planner.take(0.003)
    assert [j.tokens for j in batch] == [10, 12]
    assert planner.take(1.0) == []


def test_planner_full_batch_goes_immediately_and_respects_caps() -> None:
    planner = BatchPlanner(window_s=10.0, max_batch=3, max_tokens=10_000)
    for i in range(5):
        planner.add(job(10, 0.0 + i * 1e-4))
    assert len(planner.take(0.001)) == 3
    assert planner.take(0.001) == []  # the remaining two wait for their window
    assert len(planner.take(10.1)) == 2


def test_planner_groups_by_length_bucket_and_token_budget() -> None:
    planner = BatchPlanner(window_s=0.0, max_batch=32, max_tokens=100)
    planner.add(job(10, 0.0))
    planner.add(job(200, 0.0))
    planner.add(job(12, 0.0))
    planner.add(job(14, 0.0))
    assert bucket_of(10) == bucket_of(14) != bucket_of(200)
    first = planner.take(0.0)
    assert [j.tokens for j in first] == [10, 12, 14]
    assert [j.tokens for j in planner.take(0.0)] == [200]
    for _ in range(12):
        planner.add(job(16, 0.0))
    assert len(planner.take(0.0)) == 6  # 16 tokens x 6 = 96 <= 100 padded tokens


def test_planner_serves_the_best_priority_level_first() -> None:
    """Heavy users' sentences (level 2) wait behind a typing student's (level 0), and
    only work at the same or a better level counts against admission."""
    planner = BatchPlanner(window_s=0.0, max_batch=4, max_tokens=10_000)
    for i in range(6):
        heavy = job(10, 0.0)
        heavy.level = 2
        heavy.payload = f"heavy-{i}"
        planner.add(heavy)
    light = job(10, 0.5)
    light.payload = "light"
    planner.add(light)
    assert planner.waiting(0) == 1 and planner.waiting(2) == 7
    assert [j.payload for j in planner.take(1.0)] == ["light"]
    assert [j.payload for j in planner.take(1.0)] == [f"heavy-{i}" for i in range(4)]
    assert planner.waiting() == 2
