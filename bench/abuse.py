"""Abusive clients (issue 9): do well-behaved students keep their latency while others flood?

For every point M (number of abusive clients) a fresh ``inkstone serve`` process
is started on loopback (own data dir, optionally pinned with taskset). Then:

- M **abusers** (one separate process, so their client-side work does not delay
  the probes' event loop) each open a student session on their own document
  and send ``replace`` with a ~50k-character text as fast as the server lets
  them (up to ``--window`` unacknowledged at a time), reconnecting at once
  when the socket is closed or a message is throttled (``rate_limited``,
  ``overloaded``) — reconnecting is how a per-connection limit is dodged;
- K **probes** (this process) are simulated students from the project's load
  generator (``server.loadgen.student.SimStudent``: the project's protocol
  client, human typing speed) typing essays for ``--duration`` seconds;
- /healthz is polled once a second.

Reported per point: the probes' edit→ack and edit→hints latency p50/p99 and
timeouts (an edit acknowledged after more than ``--timeout-s``, or never),
the abusers' accepted replaces/s (acks received), their refusals by error
code, and the growth of the data folder (SQLite database + WAL) in MB.

The server *and* the client code come from ``--repo`` (default: this
checkout), so the same script measures an older commit:

    git worktree add --detach /work/wt-before 74543a6
    python3 bench/abuse.py --repo /work/wt-before --points 0,1,50 --duration 20 \
        --out bench/results/abuse-before

Loopback only, bounded in time (about ``duration + 15`` s per point).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
THROTTLED = {"rate_limited", "overloaded"}
TEXT_CHARS = 49_000  # just under the default max_document_chars (50,000)


# ---------------------------------------------------------------- helpers


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cores: str, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", cores, *cmd] if cores else cmd


def repo_env(repo: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    env.pop("INKSTONE_SECRET", None)  # dev mode: the bench mints its own tokens
    return env


def essays(repo: Path, data: Path | None) -> dict[str, Any]:
    """Chinese essays: ``data``, else the load generator's default folder, else the fixtures."""
    from server.loadgen.corpus import load_corpus

    try:
        return load_corpus(data, "zh") if data else load_corpus(lang="zh")
    except FileNotFoundError:
        return load_corpus(repo / "tests" / "fixtures" / "loadgen", "zh")


def abuse_text(repo: Path, data: Path | None) -> str:
    """~49k characters of real essay text (Chinese), so rules and models do real work."""
    chinese = essays(repo, data)["zh"]
    parts: list[str] = []
    size = 0
    i = 0
    while size < TEXT_CHARS:
        text = chinese[i % len(chinese)].text
        parts.append(text)
        size += len(text) + 1
        i += 1
    return "\n".join(parts)[:TEXT_CHARS]


def healthz(port: int) -> float | None:
    """/healthz round trip in ms, or None when it did not answer within 5 s."""
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            r.read()
            return (time.perf_counter() - t0) * 1000 if r.status == 200 else None
    except OSError:
        return None


# ---------------------------------------------------------------- abusers (child process)


async def one_abuser(
    index: int, url: str, text: str, until: float, window: int, stats: Counter[str]
) -> None:
    import orjson
    import websockets

    from protocol import SUBPROTOCOL
    from server.auth import mint_token

    token = mint_token(None, user=f"abuser{index}", role="student", class_id="abuse")
    hello = orjson.dumps(
        {"type": "hello", "token": token, "doc": f"abuser{index}-essay", "lang": "zh", "id": 0}
    ).decode()
    n = 0
    while time.monotonic() < until:
        try:
            async with websockets.connect(
                url, subprotocols=[SUBPROTOCOL], max_size=None, open_timeout=5, close_timeout=1
            ) as ws:
                stats["connects"] += 1
                await ws.send(hello)
                first = await asyncio.wait_for(ws.recv(decode=False), 5)
                if not first.startswith(b'{"type":"welcome"'):
                    stats["hello_refused"] += 1
                    await asyncio.sleep(0.05)
                    continue
                inflight = 0
                while time.monotonic() < until:
                    while inflight < window:
                        n += 1
                        body = f"{n:09d}" + text[9:]
                        await ws.send(
                            orjson.dumps({"type": "replace", "text": body, "id": n}).decode()
                        )
                        stats["sent"] += 1
                        inflight += 1
                    left = until - time.monotonic()
                    if left <= 0:
                        break
                    frame = await asyncio.wait_for(ws.recv(decode=False), left)
                    head = frame[:24]
                    if head.startswith(b'{"type":"ack"'):
                        stats["accepted"] += 1
                        inflight -= 1
                    elif head.startswith(b'{"type":"error"'):
                        code = str(orjson.loads(frame).get("code"))
                        stats[f"error:{code}"] += 1
                        inflight -= 1
                        if code in THROTTLED:
                            stats["reconnect_after_throttle"] += 1
                            break
        except TimeoutError:
            if time.monotonic() < until:
                stats["timeouts"] += 1
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else 1006
            stats[f"closed:{code}"] += 1
        except OSError as exc:
            stats[f"connect_failed:{type(exc).__name__}"] += 1
            await asyncio.sleep(0.05)


async def run_abusers(args: argparse.Namespace) -> None:
    text = abuse_text(args.repo, args.data)
    stats: Counter[str] = Counter()
    start = time.monotonic()
    until = start + args.duration
    print("ready", flush=True)
    await asyncio.gather(
        *(one_abuser(i, args.url, text, until, args.window, stats) for i in range(args.abusers))
    )
    elapsed = time.monotonic() - start
    out = {"abusers": args.abusers, "elapsed_s": round(elapsed, 2), "text_chars": len(text)}
    out.update(sorted(stats.items()))
    out["accepted_per_s"] = round(stats["accepted"] / elapsed, 1)
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


# ---------------------------------------------------------------- probes (this process)


async def run_probes(
    repo: Path,
    url: str,
    probes: int,
    duration: float,
    timeout_s: float,
    data: Path | None,
    port: int,
) -> dict[str, Any]:
    from server.auth import mint_token
    from server.loadgen.student import Samples, SimStudent
    from server.loadgen.typing import TypingModel

    corpus = essays(repo, data)
    samples = Samples()
    registry: dict[str, Any] = {}
    students = []
    for i in range(probes):
        rng = random.Random(1000 + i)
        token = mint_token(None, user=f"probe{i}", role="student", class_id="probes")
        students.append(
            SimStudent(
                i,
                url,
                token,
                f"probe{i}-essay",
                corpus["zh"],
                TypingModel(rng),
                rng,
                samples,
                lang="zh",
                registry=registry,
            )
        )
    health: list[float | None] = []

    async def poll_health(until: float) -> None:
        while time.monotonic() < until:
            health.append(await asyncio.to_thread(healthz, port))
            await asyncio.sleep(1.0)

    until = time.monotonic() + duration
    poller = asyncio.create_task(poll_health(until))
    await asyncio.gather(*(s.run(until) for s in students))
    # edits still unacknowledged when typing stopped get timeout_s more, then count as lost
    stuck_at_end = sum(len(s.client.sent_at) for s in students)
    await asyncio.gather(*(s.finish(timeout_s) for s in students))
    never_acked = sum(len(s.client.sent_at) for s in students)
    await poller
    ack, hints = samples.edit_to_ack_ms, samples.edit_to_hints_ms
    answered = [h for h in health if h is not None]

    def q(values: list[float], p: float) -> float | None:
        v = percentile(values, p)
        return None if v is None else round(v, 1)

    return {
        "probes": probes,
        "edits_sent": samples.edits_sent,
        "edits_acked": samples.edits_acked,
        "edit_to_ack_ms": {"p50": q(ack, 50), "p99": q(ack, 99), "max": q(ack, 100)},
        "edit_to_hints_ms": {"p50": q(hints, 50), "p99": q(hints, 99), "max": q(hints, 100)},
        "hints_received": samples.hints_received,
        "ack_timeouts": sum(1 for v in ack if v > timeout_s * 1000) + never_acked,
        "unacked_when_typing_stopped": stuck_at_end,
        "never_acked": never_acked,
        "reconnects": samples.reconnects,
        "errors": dict(samples.errors),
        "events": dict(samples.events),
        "healthz_polls": len(health),
        "healthz_failed": len(health) - len(answered),
        "healthz_ms": {
            "p50": q(answered, 50),
            "max": q(answered, 100),
            "mean": round(statistics.fmean(answered), 1) if answered else None,
        },
    }


# ---------------------------------------------------------------- one point


def point(args: argparse.Namespace, m: int) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"inkstone-abuse-{m}-"))
    port = free_port()
    url = f"ws://127.0.0.1:{port}/v1/ws"
    env = repo_env(args.repo)
    log = open(args.out / f"server-{m}.log", "wb")  # noqa: SIM115
    cmd = [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]
    cmd += ["--data-dir", str(data_dir), *(["--no-models"] if args.no_models else [])]
    server = subprocess.Popen(
        pinned(args.server_cores, cmd), cwd=args.repo, env=env, stdout=log, stderr=log
    )
    abusers: subprocess.Popen[str] | None = None
    try:
        deadline = time.monotonic() + 120
        while healthz(port) is None:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start (see {log.name})")
            time.sleep(0.2)
        size0 = dir_bytes(data_dir)
        abuse_json = args.out / f"abusers-{m}.json"
        if m:
            abusers = subprocess.Popen(
                pinned(
                    args.client_cores,
                    [
                        sys.executable,
                        str(Path(__file__).resolve()),
                        "--role",
                        "abusers",
                        "--repo",
                        str(args.repo),
                        "--url",
                        url,
                        "--abusers",
                        str(m),
                        "--duration",
                        str(args.duration + 1),
                        "--window",
                        str(args.window),
                        "--json",
                        str(abuse_json),
                        *(["--data", str(args.data)] if args.data else []),
                    ],
                ),
                cwd=args.repo,
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert abusers.stdout is not None
            if abusers.stdout.readline().strip() != "ready":
                raise RuntimeError("abuser process did not start")
            time.sleep(0.5)  # let the flood begin before the probes measure
        t0 = time.monotonic()
        probes = asyncio.run(
            run_probes(args.repo, url, args.probes, args.duration, args.timeout_s, args.data, port)
        )
        elapsed = time.monotonic() - t0
        size_end = dir_bytes(data_dir)
        abuse: dict[str, Any] = {"abusers": 0, "accepted": 0, "accepted_per_s": 0.0}
        if abusers is not None:
            abusers.wait(args.duration + 60)
            abuse = json.loads(abuse_json.read_text())
        alive = server.poll() is None
    finally:
        if abusers is not None and abusers.poll() is None:
            abusers.kill()
            abusers.wait(10)
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)
        log.close()
    size_stopped = dir_bytes(data_dir)
    subprocess.run(["rm", "-rf", str(data_dir)], check=False)
    return {
        "abusers": m,
        "probe_window_s": round(elapsed, 1),
        "probes": probes,
        "abuse": abuse,
        "db_growth_mb": round((size_end - size0) / 1e6, 1),
        "db_mb_after_stop": round(size_stopped / 1e6, 1),
        "server_alive_at_end": alive,
    }


def row(r: dict[str, Any]) -> str:
    p, a = r["probes"], r["abuse"]

    def ms(d: dict[str, Any], k: str) -> str:
        v = d[k]
        return "–" if v is None else f"{v:.0f}"

    refused = sum(v for k, v in a.items() if k.startswith("error:"))
    return (
        f"| {r['abusers']} | {ms(p['edit_to_ack_ms'], 'p50')} / {ms(p['edit_to_ack_ms'], 'p99')} "
        f"| {ms(p['edit_to_hints_ms'], 'p50')} / {ms(p['edit_to_hints_ms'], 'p99')} "
        f"| {p['ack_timeouts']} of {p['edits_sent']} | {p['reconnects']} "
        f"| {p['healthz_failed']} of {p['healthz_polls']} / {ms(p['healthz_ms'], 'max')} "
        f"| {a['accepted_per_s']} | {refused} | {r['db_growth_mb']} |"
    )


HEADER = (
    "| abusers | probe edit→ack p50/p99 ms | probe edit→hints p50/p99 ms | probe ack timeouts "
    "| probe reconnects | /healthz failed / max ms | abusers' accepted replaces/s "
    "| abusers' refused | DB growth MB |\n"
    "|---:|---|---|---:|---:|---|---:|---:|---:|"
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repo", type=Path, default=HERE.parent, help="source tree to run")
    ap.add_argument("--points", default="0,1,50", help="numbers of abusive clients")
    ap.add_argument("--probes", type=int, default=3, help="well-behaved students")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per point")
    ap.add_argument("--window", type=int, default=4, help="unacked replaces per abuser")
    ap.add_argument("--timeout-s", type=float, default=8.0, help="an ack later than this")
    ap.add_argument("--server-cores", default="0", help="taskset list ('' = none)")
    ap.add_argument("--client-cores", default="1", help="taskset list for probes and abusers")
    ap.add_argument("--no-models", action="store_true", help="server without neural models")
    ap.add_argument("--data", type=Path, default=None, help="essay data (default: loadgen's)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/abuse"))
    ap.add_argument("--role", default="main", choices=("main", "abusers"), help=argparse.SUPPRESS)
    ap.add_argument("--url", default="", help=argparse.SUPPRESS)
    ap.add_argument("--abusers", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--json", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.repo = args.repo.resolve()
    args.out = args.out.resolve()  # the abuser process runs in --repo
    sys.path.insert(0, str(args.repo))  # the client code under test comes from --repo too
    if args.role == "abusers":
        asyncio.run(run_abusers(args))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    if args.client_cores:
        with contextlib.suppress(OSError, ValueError):
            os.sched_setaffinity(0, {int(c) for c in args.client_cores.split(",")})
    commit = subprocess.run(
        ["git", "-C", str(args.repo), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    results = []
    print(HEADER, flush=True)
    for m in [int(x) for x in args.points.split(",") if x]:
        results.append(point(args, m))
        print(row(results[-1]), flush=True)
    summary = {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "repo": str(args.repo),
        "commit": commit,
        "host_cpus": os.cpu_count(),
        "loadavg_at_end": os.getloadavg(),
        "points": results,
        "table": "\n".join([HEADER, *(row(r) for r in results)]),
    }
    (args.out / "abuse.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
