"""Pre-training text: the unlabeled corpora with broadcast news capped, cut into sentences.

corpus_modern is 77% 新闻联播 transcripts (formal, political register). Student writing is
far from that, so news is sampled down to `news_share` of the characters kept (the data
README suggests 30–40%) and statute text to `law_chars`; every other source is kept whole.
Sampling is by document with a fixed seed, so a pack is reproducible.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from engines.jsonl import read_jsonl

__all__ = ["NEWS_SHARE", "pretrain_stream", "select_documents", "split_sentences"]

NEWS_SHARE = 0.35
LAW_CHARS = 1_000_000
_SENTENCE = re.compile(r"[^。！？!?；…]*(?:[。！？!?；]+|…+)[”’」』）)]?|[^。！？!?；…]+$")


def split_sentences(line: str) -> list[str]:
    """A line cut after sentence-final punctuation (closing quotes stay with the sentence)."""
    return [s for s in _SENTENCE.findall(line) if s.strip()]


def select_documents(
    zh: Path,
    news_share: float = NEWS_SHARE,
    law_chars: int = LAW_CHARS,
    seed: int = 0,
) -> tuple[list[tuple[str, str]], Counter[str]]:
    """(source, text) of the documents kept, and the characters kept per source."""
    news: list[tuple[str, str]] = []
    law: list[tuple[str, str]] = []
    rest: list[tuple[str, str]] = []
    for part in sorted((zh / "corpus_modern").glob("part-*.jsonl.gz")):
        for r in read_jsonl(part):
            src = r.get("source", "corpus")
            doc = (src, r["text"])
            (news if src.startswith("xwlb") else law if src == "prc_laws_cases" else rest).append(
                doc
            )
    for r in read_jsonl(zh / "unlabeled_student_essays/train.jsonl.gz"):
        rest.append(("student_essays", r["text"]))
    rng = random.Random(seed)
    rng.shuffle(news)
    rng.shuffle(law)
    kept = list(rest)
    kept.extend(_take(law, law_chars))
    other = sum(len(t) for _, t in kept)
    kept.extend(_take(news, int(other * news_share / (1 - news_share))))
    chars: Counter[str] = Counter()
    for src, text in kept:
        chars[src] += len(text)
    return kept, chars


def _take(docs: list[tuple[str, str]], budget: int) -> Iterator[tuple[str, str]]:
    n = 0
    for d in docs:
        if n >= budget:
            return
        n += len(d[1])
        yield d


def pretrain_stream(
    docs: list[tuple[str, str]], tok: Any, window: int = 128, min_tokens: int = 8
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, str]]]:
    """Token stream of all documents, sentence by sentence.

    Returns the flat uint16 stream, window offsets (N + 1,) into it (a window: consecutive
    sentences of one document, at most `window` tokens; a longer sentence is cut) and, for
    every sentence that fits one window, (offset, n_tokens, text): the sentences the
    synthetic 病句 are made from (they point into the stream, so pairs cost a few bytes)."""
    flat: list[int] = []
    offsets = [0]
    sentences: list[tuple[int, int, str]] = []

    def close() -> None:
        if len(flat) - offsets[-1] >= min_tokens:
            offsets.append(len(flat))
        else:  # too short to train on: drop it, and the sentences that point into it
            del flat[offsets[-1] :]
            while sentences and sentences[-1][0] >= offsets[-1]:
                sentences.pop()

    for _, text in docs:
        for line in text.split("\n"):
            for sent in split_sentences(line):
                ids = tok.encode_ids(sent)
                if len(flat) - offsets[-1] + len(ids) > window:
                    close()
                if len(ids) <= window:
                    sentences.append((len(flat), len(ids), sent))
                    flat.extend(ids)
                    continue
                for s in range(0, len(ids), window):
                    flat.extend(ids[s : s + window])
                    close()
        close()
    return np.array(flat, np.uint16), np.array(offsets, np.int64), sentences
