"""Latency curve: ``inkstone loadgen`` at 10/50/100/200/400 students against a fresh server each.

For every class size a new server (own data dir) is started, optionally
pinned with taskset, the load generator runs (pinned to other cores), and
the JSON reports are collected into ``curve.json`` and a markdown table
``curve.md``. A point passes when server-side analysis p99 (debounce
excluded) ≤ ``--p99-ms``, there are no error frames, and no edit was lost.
``--search`` then bisects between the last passing and first failing size
to find the largest passing class. ``--profile N`` records the server with
py-spy (raw stacks) during the run at N students and folds the profile
into cost categories (see ``bench/profile_summary.py``).

    python bench/run_curve.py --points 10,50,100,200,400 --duration 60 \
        --server-cores 0 --loadgen-cores 1 --out bench/results/curve
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from profile_summary import summarise
from serverproc import BenchServer, run_loadgen


def passes(report: dict[str, Any], p99_ms: float) -> bool:
    p99 = report["server_analysis_ms"]["p99"]
    return (
        p99 is not None
        and p99 <= p99_ms
        and report["error_count"] == 0
        and report["lost_edits"] == 0
        and report["ok"]
    )


def point(args: argparse.Namespace, n: int) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix=f"inkstone-curve-{n}-"))
    extra = ["--no-models"] if args.no_models else []
    server = BenchServer(data, *extra, cores=args.server_cores, log=args.out / f"server-{n}.log")
    server.start()
    profiler = None
    try:
        if args.profile == n and shutil.which("py-spy"):
            delay = args.ramp_up + 5
            dur = max(5, int(args.duration - delay - 2))
            profiler = subprocess.Popen(
                [
                    "sh",
                    "-c",
                    f"sleep {delay}; exec taskset -c {args.loadgen_cores or '0-64'} "
                    f"py-spy record --pid {server.pid} --duration {dur} --rate 100 --format raw "
                    f"--nonblocking -o {args.out / f'profile-{n}.txt'}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
        report = run_loadgen(
            server.url,
            args.out / f"loadgen-{n}.json",
            "--students",
            str(n),
            "--teachers",
            str(max(0, n // args.class_size) if args.teachers else 0),
            "--duration",
            str(args.duration),
            "--ramp-up",
            str(args.ramp_up),
            "--lang",
            args.lang,
            "--seed",
            str(args.seed),
            "--procs",
            str(args.procs),
            "--class-size",
            str(args.class_size),
            "--quiet",
            cores=args.loadgen_cores,
            server_pid=server.pid,
            timeout=args.duration + 300,
        )
        if profiler is not None:
            profiler.wait(60)
            raw = args.out / f"profile-{n}.txt"
            if raw.exists():
                report["profile"] = summarise(raw)
        report["server_health_end"] = server.health()
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)
    report["pass"] = passes(report, args.p99_ms)
    return report


def row(r: dict[str, Any]) -> str:
    def p(name: str, q: str) -> str:
        v = r[name][q]
        return "–" if v is None else f"{v:.0f}" if v >= 10 else f"{v:.1f}"

    s = r["server"]
    return (
        f"| {r['students']} | {r['edits_per_s']} | {p('edit_to_ack_ms', 'p50')} / "
        f"{p('edit_to_ack_ms', 'p99')} | {p('edit_to_hints_ms', 'p50')} / "
        f"{p('edit_to_hints_ms', 'p99')} | {p('server_edit_to_hints_ms', 'p50')} / "
        f"{p('server_edit_to_hints_ms', 'p99')} | {p('server_analysis_ms', 'p50')} / "
        f"{p('server_analysis_ms', 'p95')} / {p('server_analysis_ms', 'p99')} | "
        f"{p('server_queue_ms', 'p99')} | {p('server_inference_ms', 'p99')} | "
        f"{r['error_count']} | {r['lost_edits']} | {s.get('cpu_percent_mean')} | "
        f"{r.get('server_cpu_ms_per_edit')} | {s.get('rss_mb_max')} | {r['loadgen_cpu_seconds']} | "
        f"{s.get('host_cpu_percent_mean')} | {'yes' if r['pass'] else 'NO'} |"
    )


HEADER = (
    "| students | edits/s | ack p50/p99 | edit→hints client p50/p99 | server since_edit p50/p99 "
    "| server analysis p50/p95/p99 | queue p99 | inference p99 | errors | lost | server CPU % "
    "| server CPU ms/edit | server RSS max MB | loadgen CPU s | host CPU % (all cores) | pass |\n"
    "|---:|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--points", default="10,50,100,200,400")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--ramp-up", type=float, default=15.0)
    ap.add_argument("--lang", default="zh", help="zh exercises the models (the zh models only)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--class-size", type=int, default=30)
    ap.add_argument("--teachers", action="store_true", help="one teacher per class")
    ap.add_argument("--server-cores", default="0", help="taskset list for the server ('' = none)")
    ap.add_argument("--loadgen-cores", default="1", help="taskset list for the load generator")
    ap.add_argument("--no-models", action="store_true")
    ap.add_argument("--p99-ms", type=float, default=250.0)
    ap.add_argument("--search", type=int, default=0, help="bisection steps after the curve")
    ap.add_argument("--profile", type=int, default=None, help="py-spy at this class size")
    ap.add_argument("--out", type=Path, default=Path("bench/results/curve"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    reports: dict[int, dict[str, Any]] = {}
    for n in [int(x) for x in args.points.split(",") if x]:
        reports[n] = point(args, n)
        if len(reports) == 1:
            print(HEADER)
        print(row(reports[n]), flush=True)
    passing = [n for n, r in reports.items() if r["pass"]]
    failing = [n for n, r in reports.items() if not r["pass"]]
    lo = max(passing, default=0)
    hi = min((n for n in failing if n > lo), default=None)
    for _ in range(args.search):
        if hi is None or hi - lo <= max(5, lo // 20):
            break
        mid = (lo + hi) // 2
        reports[mid] = point(args, mid)
        print(row(reports[mid]), flush=True)
        lo, hi = (mid, hi) if reports[mid]["pass"] else (lo, mid)
    table = "\n".join([HEADER, *(row(reports[n]) for n in sorted(reports))])
    summary = {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(sys.argv),
        "p99_target_ms": args.p99_ms,
        "largest_passing": lo,
        "first_failing": hi,
        "points": {str(n): reports[n] for n in sorted(reports)},
    }
    (args.out / "curve.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    (args.out / "curve.md").write_text(
        f"{table}\n\nLargest class with server analysis p99 ≤ {args.p99_ms:g} ms, no errors, "
        f"no lost edits: **{lo}** (first failing: {hi}).\n"
    )
    print(table)
    print(f"largest passing: {lo}; first failing: {hi}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
