"""Soak: moderate load for a long time against one server; memory, errors and p99 must hold.

Starts a fresh server (models on unless ``--no-models``), runs ``inkstone
loadgen`` for ``--duration`` seconds (default 30 minutes), and checks:

- no error frames and no lost edits;
- server RSS growth after warm-up (from the sample at ``--warmup`` seconds to the
  end) stays under ``--rss-growth-mb``;
- p99 of the server-side analysis time in every window (60 s for runs of 5
  minutes or more) stays under ``--p99-ms``, and the last window's p99 is
  within ``--drift`` × the median window p99 (no creeping slowdown).

    python bench/soak.py --students 100 --duration 1800 --out bench/results/soak
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serverproc import BenchServer, run_loadgen


def verdict(report: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    series = report["server"].get("rss_mb_series") or []
    # the series holds at most ~120 evenly spaced samples of the whole run
    step = report["wall_s"] / max(1, len(series) - 1) if series else 1.0
    warm = series[min(len(series) - 1, int(args.warmup / step))] if series else None
    growth = round(series[-1] - warm, 1) if series and warm is not None else None
    windows = report["server_analysis_ms_by_window"]
    p99s = [w["p99"] for w in windows if w["n"] >= 20 and w["p99"] is not None]
    median = statistics.median(p99s) if p99s else None
    checks = {
        "no_errors": report["error_count"] == 0,
        "no_lost_edits": report["lost_edits"] == 0 and report["ok"],
        "rss_growth_ok": growth is not None and growth <= args.rss_growth_mb,
        "window_p99_ok": bool(p99s) and max(p99s) <= args.p99_ms,
        "p99_stable": bool(p99s) and median is not None and p99s[-1] <= args.drift * median,
    }
    return {
        "rss_mb_at_warmup": warm,
        "rss_mb_end": series[-1] if series else None,
        "rss_growth_mb_after_warmup": growth,
        "rss_growth_bound_mb": args.rss_growth_mb,
        "window_p99_ms": p99s,
        "window_p99_median_ms": median,
        "checks": checks,
        "pass": all(checks.values()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--students", type=int, default=100)
    ap.add_argument("--teachers", type=int, default=4)
    ap.add_argument("--duration", type=float, default=1800.0)
    ap.add_argument("--lang", default="zh")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--warmup", type=float, default=300.0, help="seconds before RSS is baselined")
    ap.add_argument("--rss-growth-mb", type=float, default=50.0)
    ap.add_argument("--p99-ms", type=float, default=250.0)
    ap.add_argument("--drift", type=float, default=2.0)
    ap.add_argument("--server-cores", default="0")
    ap.add_argument("--loadgen-cores", default="1")
    ap.add_argument("--no-models", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("bench/results/soak"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="inkstone-soak-"))
    extra = ["--no-models"] if args.no_models else []
    server = BenchServer(data, *extra, cores=args.server_cores, log=args.out / "server.log")
    server.start()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        report = run_loadgen(
            server.url, args.out / "loadgen.json",
            "--students", str(args.students), "--teachers", str(args.teachers),
            "--duration", str(args.duration), "--ramp-up", str(min(60.0, args.duration / 10)),
            "--lang", args.lang, "--seed", str(args.seed),
            cores=args.loadgen_cores, server_pid=server.pid, timeout=args.duration + 600,
        )  # fmt: skip
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)
    result = {
        "started_utc": started,
        "command": " ".join(sys.argv),
        **verdict(report, args),
        "students": report["students"],
        "teachers": report["teachers"],
        "duration_s": report["duration_s"],
        "edits_acked": report["edits_acked"],
        "errors": report["errors"],
        "lost_edits": report["lost_edits"],
        "server_analysis_ms": report["server_analysis_ms"],
        "edit_to_ack_ms": report["edit_to_ack_ms"],
        "server": {k: v for k, v in report["server"].items() if k != "rss_mb_series"},
    }
    text = json.dumps(result, indent=1)
    (args.out / "soak.json").write_text(text + "\n")
    print(text)
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
