"""Tolerant JSON Lines reading (plain or gzip): a malformed line is reported and skipped."""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

__all__ = ["read_jsonl"]


def read_jsonl(path: str | Path, warn: TextIO | None = sys.stderr) -> Iterator[dict[str, Any]]:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                if warn is not None:
                    print(f"{path}:{lineno}: skipped malformed line ({exc})", file=warn)
                continue
            if not isinstance(record, dict):
                if warn is not None:
                    print(f"{path}:{lineno}: skipped non-object line", file=warn)
                continue
            yield record
