"""The options of ``inkstone loadgen`` (a light module: the CLI imports it to build its parser)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["DEFAULT_DATA", "MAX_DURATION_S", "MAX_STUDENTS", "MAX_TEACHERS", "add_arguments"]

# ../shared/data next to the repository; never committed
DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MAX_STUDENTS = 2000
MAX_TEACHERS = 200
MAX_DURATION_S = 4 * 3600


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default="ws://127.0.0.1:8000/v1/ws", help="server socket URL")
    p.add_argument("--students", type=int, default=10, help=f"simulated students (≤{MAX_STUDENTS})")
    p.add_argument("--teachers", type=int, default=0, help="teachers observing classes")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of typing (incl. ramp-up)")
    p.add_argument("--ramp-up", type=float, default=None, help="seconds to connect everyone")
    p.add_argument(
        "--speed", type=float, default=1.0, help="typing speed factor (2 = twice as fast)"
    )
    p.add_argument("--lang", choices=("zh", "en", "mix"), default="mix")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="write the report here")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="essay data folder")
    p.add_argument("--class-size", type=int, default=30, help="students per class")
    p.add_argument("--procs", type=int, default=1, help="load-generator processes")
    p.add_argument("--server-pid", type=int, default=None, help="server pid for CPU/RSS")
    p.add_argument("--secret", default=None, help="token secret (default $INKSTONE_SECRET/dev)")
    p.add_argument("--tag", default=None, help="document id prefix (default: seed and time)")
    p.add_argument("--settle", type=float, default=30.0, help="seconds to wait for final acks")
    p.add_argument(
        "--debounce-max-ms", type=float, default=1000.0,
        help="the server's debounce max wait (welcome announces only the quiet period)",
    )  # fmt: skip
    p.add_argument(
        "--in-flight", type=int, default=1,
        help="edits in flight per student; typed meanwhile is composed (0: one per keystroke)",
    )  # fmt: skip
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --url")
    p.add_argument("--quiet", action="store_true", help="no human summary")
