"""Character classes and run splitting shared by the tokenizer, data preparation and runtime."""

from __future__ import annotations

import re

__all__ = ["CJK_RE", "is_cjk", "split_runs"]

# CJK Unified Ideographs (+ extension A and compatibility ideographs). Every such character
# becomes its own token so that per-token spelling predictions map 1:1 onto characters.
CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_RUN_RE = re.compile(
    r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+"
)


def is_cjk(ch: str) -> bool:
    return len(ch) == 1 and CJK_RE.match(ch) is not None


def split_runs(text: str) -> list[tuple[int, int, str]]:
    """Split text into single CJK characters and maximal non-CJK runs: (start, end, piece)."""
    return [(m.start(), m.end(), m.group()) for m in _RUN_RE.finditer(text)]
