"""Essays to type: Chinese and English student essays read from the shared data folder.

The data folder (default ``../shared/data`` next to the repository) is never
committed; tests point ``--data`` at ``tests/fixtures/loadgen`` instead,
which holds a few short hand-written essays in the same JSON-lines shape.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_DATA", "Essay", "load_corpus", "pick"]

from server.loadgen.options import DEFAULT_DATA

# (language, relative path) in preference order; field "text" everywhere.
SOURCES = (
    ("zh", "zh/essay_oe_traits/valid.jsonl"),
    ("zh", "zh/essay_cedcc_coherence/valid.jsonl"),
    ("en", "en/ellipse/valid.jsonl.gz"),
    ("en", "en/asap_aes/valid.jsonl.gz"),
    ("zh", "zh.jsonl"),  # fixture layout
    ("en", "en.jsonl"),
)


@dataclass(frozen=True, slots=True)
class Essay:
    id: str
    lang: str
    text: str


def _lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        yield from f


def load_corpus(
    data: Path = DEFAULT_DATA,
    lang: str = "mix",
    *,
    per_source: int = 200,
    min_chars: int = 80,
    max_chars: int = 3000,
) -> dict[str, list[Essay]]:
    """Up to ``per_source`` essays per source file, grouped by language."""
    out: dict[str, list[Essay]] = {"zh": [], "en": []}
    for essay_lang, rel in SOURCES:
        if lang != "mix" and essay_lang != lang:
            continue
        path = data / rel
        if not path.exists():
            continue
        taken = 0
        for n, line in enumerate(_lines(path)):
            if taken >= per_source:
                break
            record = json.loads(line)
            text = str(record.get("text") or "").replace("\r\n", "\n").strip()
            # ASAP anonymisation tokens (@CAPS1) read oddly but are harmless; keep them
            if not min_chars <= len(text) <= max_chars:
                continue
            out[essay_lang].append(Essay(str(record.get("id", f"{rel}:{n}")), essay_lang, text))
            taken += 1
    wanted = ("zh", "en") if lang == "mix" else (lang,)
    missing = [w for w in wanted if not out[w]]
    if missing:
        raise FileNotFoundError(f"no {'/'.join(missing)} essays under {data}")
    return out


def pick(corpus: dict[str, list[Essay]], lang: str, rng: random.Random) -> Essay:
    """One essay for a student of ``lang`` (``mix`` alternates by coin flip)."""
    if lang == "mix":
        lang = rng.choice(("zh", "en"))
    return rng.choice(corpus[lang])
