"""Server CPU per edit outside inference, by category, from a ``run_curve.py --no-models
--profile N`` result: the server's CPU seconds over the run × each category's share of
the py-spy samples ÷ acked edits.

    python bench/run_curve.py --no-models --points 200 --profile 200 --out bench/results/overhead
    python bench/overhead.py bench/results/overhead/curve.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    summary = json.loads(Path(sys.argv[1]).read_text())
    for n, report in summary["points"].items():
        profile = report.get("profile")
        cpu_s = report["server"].get("cpu_seconds")
        edits = report["edits_acked"]
        if not profile or not cpu_s or not edits:
            continue
        per_edit = 1000 * cpu_s / edits
        print(f"{n} students: {edits} edits, server CPU {cpu_s} s → {per_edit:.3f} ms per edit")
        for name, share in profile["categories_percent"].items():
            print(f"  {name:<62} {per_edit * share / 100:7.3f} ms  ({share}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
