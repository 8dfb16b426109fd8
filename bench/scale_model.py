"""Capacity on paper for 1,000,000 students from costs measured here (issue 12).

    python bench/scale_model.py --out bench/results/scale            # ~3 minutes, needs root
    python bench/scale_model.py --gateways 0,1,2,3 --students 60 --duration 30 --idle 5000

``--gateways 0`` is the one-machine baseline: one gateway on SQLite, no bus.

Starts a PostgreSQL cluster, Redis and 1, 2, then 3 rules-only gateways (``--store``,
``--bus``) with the test fixtures (tests/services.py). The same load each time: students
in 6 classes (class i on gateway i mod n) typing one character per keystroke at ``--cps``
with one edit in flight, and each class's teacher on the *next* gateway (so with 2 or 3
gateways every update crosses Redis). It measures CPU seconds per acked edit in each
process (gateways, PostgreSQL, Redis), commits and rows per edit (pg_stat), publishes
per edit (Redis commandstats), the cross-node teacher latency (student's ack → the
teacher's update, one clock), and the memory of ``--idle`` idle student sockets on one
gateway. Then the capacity computation for ``--population`` students, ``--typing``
of them typing, and ``--teachers`` teachers, on nodes of ``--node-vcpu`` vCPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from protocol import Ack, Observe, Update  # noqa: E402
from server.auth import mint_token  # noqa: E402
from server.docids import teacher_id  # noqa: E402
from server.wsclient import Observer, StudentClient  # noqa: E402
from tests.services import Gateway, Postgres, Redis  # noqa: E402

TEXT = "The students write their essays one sentence at a time, and teachers watch. " * 4


def _cpu(proc: psutil.Process, children: bool = False) -> float:
    procs = [proc, *(proc.children(recursive=True) if children else [])]
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _pg_counters(pg: Postgres) -> tuple[int, int]:
    commits = int(pg.sql("SELECT xact_commit FROM pg_stat_database WHERE datname='postgres'")[0][0])
    rows = pg.sql("SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname='edits'")
    return commits, int(rows[0][0]) if rows else 0


async def _redis_publishes(redis: Redis) -> int:
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis.url)
    stats = await client.info("commandstats")
    await client.aclose()
    return int(stats.get("cmdstat_spublish", {}).get("calls", 0))


class Student(StudentClient):
    def __init__(self, url: str, user: str, class_id: str, acked_at: dict[Any, float]) -> None:
        token = mint_token(None, user=user, role="student", class_id=class_id, ttl_s=7200)
        super().__init__(f"{url}?class={class_id}", token, "essay", lang="en")
        self.key = (class_id, teacher_id(user, "essay"))
        self.acked_at = acked_at
        self.acks = 0

    def _on_message(self, message: Any) -> None:
        if isinstance(message, Ack):
            self.acks += 1
            self.acked_at[(*self.key, message.version)] = time.monotonic()
        super()._on_message(message)


async def _load(
    gateways: list[Gateway], students: int, duration: float, cps: float, pg: Postgres, redis: Redis
) -> dict[str, Any]:
    acked_at: dict[Any, float] = {}
    updated_at: dict[Any, float] = {}  # a local teacher may see the update before the ack
    n = len(gateways)
    classes = [f"k{i}" for i in range(6)]
    crowd = [
        Student(gateways[(j % 6) % n].url, f"s{j}", classes[j % 6], acked_at)
        for j in range(students)
    ]
    teachers = []
    for i, c in enumerate(classes):
        token = mint_token(None, user=f"t{i}", role="teacher", class_id=c, ttl_s=7200)
        teacher = Observer(f"{gateways[(i + 1) % n].url}?class={c}", token)
        await teacher.connect()

        def seen(m: Any, c: str = c) -> None:
            if isinstance(m, Update):
                updated_at[(c, m.doc, m.version)] = time.monotonic()

        teacher.session.on_message = seen
        await teacher.session.send(Observe(class_id=c))
        teachers.append(teacher)
    await asyncio.gather(*(s.connect() for s in crowd))
    await asyncio.sleep(1.0)
    procs = [psutil.Process(g.proc.pid) for g in gateways if g.proc]
    idle0 = sum(_cpu(p) for p in procs)
    await asyncio.sleep(5.0)  # everyone connected, nobody typing: the gateways' fixed cost
    idle_per_s = (sum(_cpu(p) for p in procs) - idle0) / 5.0
    pg_proc = psutil.Process(int((pg.data / "postmaster.pid").read_text().split()[0]))
    redis_proc = psutil.Process(redis.proc.pid) if redis.proc else None
    before = (
        [_cpu(p) for p in procs],
        _cpu(pg_proc, True),
        _cpu(redis_proc) if redis_proc else 0.0,
        _pg_counters(pg),
        await _redis_publishes(redis),
        sum(s.acks for s in crowd),
    )
    acked_at.clear()
    updated_at.clear()
    rng = random.Random(1)

    async def type_(s: Student) -> None:
        await asyncio.sleep(rng.random() / cps)
        end = time.monotonic() + duration
        i = 0
        while time.monotonic() < end:
            await s.type_text(TEXT[i % len(TEXT)])
            i += 1
            await asyncio.sleep(rng.expovariate(cps))

    await asyncio.gather(*(type_(s) for s in crowd))
    await asyncio.gather(*(s.wait_synced(30) for s in crowd))
    await asyncio.sleep(0.5)
    edits = sum(s.acks for s in crowd) - before[5]
    gw_cpu = sum(_cpu(p) for p in procs) - sum(before[0])
    pg_cpu = _cpu(pg_proc, True) - before[1]
    redis_cpu = (_cpu(redis_proc) if redis_proc else 0.0) - before[2]
    commits, rows = _pg_counters(pg)
    publishes = await _redis_publishes(redis) - before[4]
    for x in [*crowd, *teachers]:
        await x.close()
    lat = sorted(max(0.0, at - acked_at[k]) for k, at in updated_at.items() if k in acked_at)
    return {
        "gateways": len(gateways),
        "students": students,
        "edits": edits,
        "edits_per_s": round(edits / duration, 1),
        "gateway_cpu_ms_per_edit": round(1000 * gw_cpu / edits, 3),
        "gateway_idle_cpu_percent": round(100 * idle_per_s / n, 2),  # per gateway
        # the typing's own cost: the idle (fixed, per node) CPU of the window taken out
        "gateway_cpu_ms_per_edit_net": round(
            1000 * max(0.0, gw_cpu - idle_per_s * duration) / edits, 3
        ),
        "postgres_cpu_ms_per_edit": round(1000 * pg_cpu / edits, 3),
        "redis_cpu_ms_per_publish": round(1000 * redis_cpu / max(1, publishes), 4),
        "commits_per_edit": round((commits - before[3][0]) / edits, 3),
        "rows_per_commit": round((rows - before[3][1]) / max(1, commits - before[3][0]), 2),
        "publishes_per_edit": round(publishes / edits, 3),
        "teacher_updates": len(lat),
        "teacher_latency_ms_p50": round(1000 * lat[len(lat) // 2], 1) if lat else None,
        "teacher_latency_ms_p95": round(1000 * lat[int(0.95 * (len(lat) - 1))], 1) if lat else None,
        "teacher_latency_over_250ms": sum(x > 0.25 for x in lat),
        "teacher_latency_ms_p99": round(1000 * lat[int(0.99 * (len(lat) - 1))], 1) if lat else None,
    }


async def _idle_memory(gateway: Gateway, count: int) -> dict[str, Any]:
    proc = psutil.Process(gateway.proc.pid) if gateway.proc else None
    assert proc is not None
    before = proc.memory_info().rss
    clients: list[StudentClient] = []
    gate = asyncio.Semaphore(100)

    async def one(i: int) -> None:
        token = mint_token(None, user=f"idle{i}", role="student", class_id=f"i{i // 30}")
        c = StudentClient(f"{gateway.url}?class=i{i // 30}", token, "essay", lang="en")
        async with gate:
            await c.connect(30)
        clients.append(c)

    await asyncio.gather(*(one(i) for i in range(count)))
    await asyncio.sleep(3)
    after = proc.memory_info().rss
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    return {"sockets": count, "rss_mb_delta": round((after - before) / 2**20, 1),
            "kb_per_connection": round((after - before) / count / 1024, 1)}  # fmt: skip


async def _store_rate(pg: Postgres, docs: int, seconds: float, tick_ms: float) -> dict[str, Any]:
    """Group commit alone, at a gateway's full rate: ``docs`` documents with one append
    in flight each, straight into :class:`PostgresStore` (no sockets)."""
    from server.store.postgres import PostgresStore

    store = PostgresStore(pg.dsn, commit_tick_ms=tick_ms, snapshot_every=100)
    pg.sql(
        "INSERT INTO documents SELECT 'b/' || i, 'e', 'u' || i, 'b', 'en', 0, 0, '', 0, 0, 0, 0 "
        f"FROM generate_series(1, {docs}) i ON CONFLICT DO NOTHING"
    )
    pg_proc = psutil.Process(int((pg.data / "postmaster.pid").read_text().split()[0]))
    texts = {f"b/{i}": "" for i in range(1, docs + 1)}
    versions = dict.fromkeys(texts, 0)
    rows = 0

    async def writer(key: str, until: float) -> None:
        nonlocal rows
        while time.monotonic() < until:
            text = texts[key] + "x"
            versions[key] += 1
            at = len(texts[key])
            await store.append_later(key, versions[key], [(at, at, "x")], text)
            texts[key] = text
            rows += 1

    cpu0, commits0 = _cpu(pg_proc, True), store.stats["commits"]
    start = time.monotonic()
    await asyncio.gather(*(writer(k, start + seconds) for k in texts))
    elapsed = time.monotonic() - start
    cpu = _cpu(pg_proc, True) - cpu0
    commits = store.stats["commits"] - commits0
    store.close()
    return {
        "docs": docs,
        "tick_ms": tick_ms,
        "rows_per_s": round(rows / elapsed),
        "rows_per_commit": round(rows / max(1, commits), 1),
        "postgres_cpu_ms_per_row": round(1000 * cpu / rows, 4),
    }  # fmt: skip


def capacity(
    runs: list[dict[str, Any]],
    idle: dict[str, Any] | None,
    group: dict[str, Any] | None,
    a: argparse.Namespace,
) -> dict[str, Any]:
    """Nodes, PostgreSQL and Redis for the population, from the multi-node run with the
    most gateways (every teacher on another node: the worst case) and from the one-gateway
    run (teachers on their class's node, what HAProxy's class hashing gives)."""
    multi = [r for r in runs if r.get("store") != "sqlite"]
    worst = max(multi, key=lambda r: r["gateways"])
    local = min(multi, key=lambda r: r["gateways"])
    edit_rate = a.population * a.typing * a.edits_per_typing_student
    usable = a.node_vcpu * a.utilisation

    def nodes(run: dict[str, Any]) -> float:
        return edit_rate * run["gateway_cpu_ms_per_edit"] / 1000 / usable

    # One asyncio gateway process per vCPU, each with its own group commit: the rows a
    # process has per tick are what one COMMIT carries.
    processes = nodes(worst) * usable
    rows_per_commit = max(1.0, edit_rate / processes * a.tick_ms / 1000)
    pg_low = edit_rate * (group["postgres_cpu_ms_per_row"] if group else 0.0) / 1000
    pg_high = edit_rate * worst["postgres_cpu_ms_per_edit"] / 1000
    publishes = edit_rate * worst["publishes_per_edit"]
    redis_cores = publishes * worst["redis_cpu_ms_per_publish"] / 1000
    memory_gb = (a.population + a.teachers) * (idle["kb_per_connection"] if idle else 50) / 2**20
    return {
        "edits_per_s": round(edit_rate),
        "gateway_nodes_all_teachers_remote": round(nodes(worst), 1),
        "gateway_nodes_teachers_local": round(nodes(local), 1),
        "gateway_cpu_ms_per_edit_for_15_nodes": round(15 * usable / edit_rate * 1000, 3),
        "gateway_processes": round(processes),
        "rows_per_commit": round(rows_per_commit, 1),
        "commits_per_s": round(edit_rate / rows_per_commit),
        "postgres_cores_big_batches": round(pg_low, 1),
        "postgres_cores_small_batches": round(pg_high, 1),
        "postgres_shards": [round(pg_low / a.pg_cores_per_shard, 1),
                            round(pg_high / a.pg_cores_per_shard, 1)],
        "publishes_per_s": round(publishes),
        "redis_cores": round(redis_cores, 1),
        "redis_shards": round(redis_cores / a.redis_core_per_shard, 1),
        "connection_memory_gb": round(memory_gb, 1),
        "assumptions": {k: getattr(a, k) for k in (
            "population", "typing", "teachers", "edits_per_typing_student", "node_vcpu",
            "utilisation", "tick_ms", "pg_cores_per_shard", "redis_core_per_shard")},
    }  # fmt: skip


async def main(a: argparse.Namespace) -> int:
    if a.recompute is not None:  # the capacity computation again, from measured results
        result = json.loads(a.recompute.read_text())
        result["capacity"] = capacity(result["runs"], result["idle"], result["group_commit"], a)
        a.recompute.write_text(json.dumps(result, indent=1))
        print(json.dumps(result["capacity"], indent=1))
        return 0
    a.out.mkdir(parents=True, exist_ok=True)
    runs = []
    idle = None
    work = Path(tempfile.mkdtemp(prefix="inkstone-scale-"))
    for n in [int(x) for x in a.gateways.split(",")]:
        pg, redis = Postgres(synchronous=False), Redis()
        env = {
            "INKSTONE_COMMIT_TICK_MS": str(a.tick_ms),
            "INKSTONE_MAX_CONNECTIONS_PER_IP": str(max(2000, 2 * a.idle)),  # one IP here
            "INKSTONE_MAX_CONNECTIONS": str(max(10_000, 2 * a.idle + 1000)),
        }
        args: tuple[str, ...] = ("--store", pg.dsn, "--bus", redis.url) if n else ()
        args += ("--debounce-ms", "300", "--debounce-max-ms", "1000")  # production debounce
        nodes = [Gateway(work, f"n{n}g{i}", *args, env=env) for i in range(max(1, n))]
        try:
            for g in nodes:
                g.start(wait=False)
            for g in nodes:
                g.wait_healthy(60)
            run = await _load(nodes, a.students, a.duration, a.cps, pg, redis)
            run["store"] = "postgresql+redis" if n else "sqlite"
            if not n:  # PostgreSQL and Redis ran idle beside it
                for key in (
                    "postgres_cpu_ms_per_edit",
                    "redis_cpu_ms_per_publish",
                    "commits_per_edit",
                    "rows_per_commit",
                    "publishes_per_edit",
                ):
                    run[key] = None  # fmt: skip
            print(json.dumps(run), flush=True)
            runs.append(run)
            if n == 1 and a.idle:  # on PostgreSQL + Redis, like a node of the fleet
                idle = await _idle_memory(nodes[0], a.idle)
                print(json.dumps(idle), flush=True)
        finally:
            for g in nodes:
                g.close()
            redis.close()
            pg.close()
    group = None
    if a.store_docs:
        pg = Postgres(synchronous=False)
        try:
            group = await _store_rate(pg, a.store_docs, 10.0, a.tick_ms)
            print(json.dumps(group), flush=True)
        finally:
            pg.close()
    shutil.rmtree(work, ignore_errors=True)
    result = {"runs": runs, "idle": idle, "group_commit": group,
              "capacity": capacity(runs, idle, group, a),
              "command": " ".join(sys.argv)}  # fmt: skip
    (a.out / "scale.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result["capacity"], indent=1))
    return 0


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale")
    p.add_argument("--gateways", default="1,2,3")
    p.add_argument("--students", type=int, default=60)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--cps", type=float, default=3.0, help="keystrokes per second per student")
    p.add_argument("--tick-ms", type=float, default=10.0, help="group-commit tick")
    p.add_argument("--idle", type=int, default=5000, help="idle sockets for memory (0: skip)")
    p.add_argument("--store-docs", type=int, default=2000,
                   help="documents for the group-commit run (0: skip)")  # fmt: skip
    p.add_argument("--recompute", type=Path, default=None,
                   help="only redo the capacity computation of this scale.json")  # fmt: skip
    p.add_argument("--population", type=int, default=1_000_000)
    p.add_argument("--typing", type=float, default=0.2)
    p.add_argument("--teachers", type=int, default=30_000)
    p.add_argument("--edits-per-typing-student", type=float, default=2.0,
                   help="edits/s per typing student (measured with inkstone loadgen)")  # fmt: skip
    p.add_argument("--node-vcpu", type=int, default=32)
    p.add_argument("--utilisation", type=float, default=0.7, help="CPU share planned per node")
    p.add_argument("--pg-cores-per-shard", type=float, default=24.0)
    p.add_argument("--redis-core-per-shard", type=float, default=0.8)
    return p.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
