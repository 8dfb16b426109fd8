"""Where the server's CPU goes: fold a py-spy ``--format raw`` profile into cost categories.

Each sample is attributed to the first frame, walking from the leaf to the
root, whose file matches a category (so ``jieba`` called by the essay
features counts as scoring features, an ``await`` in the store as storage).

    python bench/profile_summary.py profile.txt [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

__all__ = ["CATEGORIES", "summarise"]

# (category, file substrings) in priority order, matched leaf first
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("inference: onnxruntime", ("onnxruntime/",)),
    ("inference: essay features (jieba)", ("jieba/",)),
    (
        "inference: tokenize / pre-post",
        (
            "engines/",
            "sentencepiece",
            "numpy/",
            "server/models.py",
            "server/backends/",
            "server/cache.py",
        ),
    ),
    ("storage (sqlite)", ("server/store/sqlite.py", "sqlite3")),
    ("segmentation", ("engines/segment.py", "engines/language.py")),
    ("hints (rules)", ("server/rules.py", "server/hints.py")),
    ("scoring (stats)", ("server/scoring.py",)),
    (
        "scheduling (scheduler, debounce, threads)",
        ("server/scheduler.py", "server/debounce.py", "server/clock.py", "threading.py"),
    ),
    (
        "protocol (codec, websockets, ASGI, connection)",
        (
            "protocol/",
            "websockets/",
            "uvicorn/",
            "starlette/",
            "server/connection.py",
            "server/app.py",
            "orjson",
            "server/metrics.py",
            "prometheus_client/",
        ),
    ),
    ("service core (apply, analyse glue)", ("server/service.py", "server/documents.py")),
    ("event loop (asyncio, selectors)", ("asyncio/", "selectors.py")),
)

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def category(frames: list[str]) -> str:
    # py-spy counts a thread that returned from epoll and waits for the GIL as active:
    # with the inference thread busy in Python code this is GIL contention, not I/O
    if frames and frames[-1].startswith(
        ("EpollSelector.select", "BaseSelectorEventLoop._write_to_self")
    ):
        return "event loop: select / wake-up (idle or waiting for the GIL)"
    for frame in reversed(frames):
        m = _FRAME.match(frame)
        path = m.group("file") if m else frame
        for name, needles in CATEGORIES:
            if any(n in path for n in needles):
                return name
    return "other"


def summarise(raw: Path) -> dict[str, object]:
    counts: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack, _, n = line.rpartition(" ")
        samples = int(n)
        frames = stack.split(";")
        total += samples
        counts[category(frames)] += samples
        root = " ".join(frames[:3])
        threads[
            "inference thread"
            if "scheduler.py" in stack
            else "event loop"
            if "run_forever" in stack or "asyncio" in root
            else "other"
        ] += samples
    return {
        "samples": total,
        "categories_percent": {k: round(100 * v / total, 1) for k, v in counts.most_common()},
        "threads_percent": {k: round(100 * v / total, 1) for k, v in threads.most_common()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("raw", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    summary = summarise(args.raw)
    text = json.dumps(summary, indent=1)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
