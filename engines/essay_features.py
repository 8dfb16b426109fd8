"""Hand-made essay features (length, structure, jieba lexical statistics).

Used identically by data preparation (training) and :class:`engines.runtime.EssayCodec`
(serving), so the essay model sees the same numbers in both places. Raw values go into the
ONNX model, which standardises them with training-set statistics baked in as constants.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "CONNECTIVES",
    "ESSAY_FEATURE_NAMES",
    "SENTENCE_FEATURE_NAMES",
    "essay_features",
    "sentence_features",
]

SENTENCE_FEATURE_NAMES = (
    "rel_position",
    "rel_paragraph",
    "is_paragraph_first",
    "is_paragraph_last",
    "log_length",
    "is_single_sentence_paragraph",
)
ESSAY_FEATURE_NAMES = (
    "log_chars",
    "log_sentences",
    "log_paragraphs",
    "mean_sentence_len",
    "std_sentence_len",
    "frac_long_sentences",
    "sentences_per_paragraph",
    "word_type_token_ratio",
    "mean_word_len",
    "connectives_per_sentence",
    "distinct_connectives",
    "punctuation_ratio",
    "quote_rate",
    "four_char_word_ratio",
    "first_paragraph_share",
    "last_paragraph_share",
)
CONNECTIVES = frozenset(
    [
        "因此",
        "所以",
        "但是",
        "然而",
        "可是",
        "不过",
        "而且",
        "并且",
        "况且",
        "首先",
        "其次",
        "再次",
        "最后",
        "总之",
        "总而言之",
        "综上所述",
        "例如",
        "比如",
        "譬如",
        "如果",
        "假如",
        "即使",
        "虽然",
        "尽管",
        "因为",
        "由于",
        "于是",
        "同时",
        "此外",
        "另外",
        "另一方面",
        "一方面",
        "换言之",
        "也就是说",
        "反之",
        "相反",
        "不但",
        "不仅",
        "既然",
        "只有",
        "只要",
        "除非",
        "无论",
        "不管",
        "何况",
        "甚至",
        "从而",
        "进而",
        "可见",
        "由此可见",
        "显然",
        "诚然",
        "固然",
        "其实",
        "事实上",
        "当然",
        "正如",
        "所谓",
        "第一",
        "第二",
        "第三",
        "其一",
        "其二",
        "其三",
    ]
)
_PUNCT = set("，。！？；：、“”‘’（）《》…—,.!?;:\"'()")


def sentence_features(lengths: Sequence[int], paragraphs: Sequence[int]) -> np.ndarray:
    """Per-sentence structure features, (S, len(SENTENCE_FEATURE_NAMES)) float32."""
    n = len(lengths)
    feats = np.zeros((n, len(SENTENCE_FEATURE_NAMES)), dtype=np.float32)
    if n == 0:
        return feats
    n_par = max(paragraphs) + 1 if paragraphs else 1
    for i, (length, par) in enumerate(zip(lengths, paragraphs, strict=True)):
        first = i == 0 or paragraphs[i - 1] != par
        last = i == n - 1 or paragraphs[i + 1] != par
        feats[i] = (
            i / max(n - 1, 1),
            par / max(n_par - 1, 1),
            float(first),
            float(last),
            math.log1p(length) / 5.0,
            float(first and last),
        )
    return feats


@functools.lru_cache(maxsize=8192)
def _words(line: str) -> tuple[str, ...]:
    """jieba words of one line (cached: while a student types, the other paragraphs repeat)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return tuple(w for w in jieba.lcut(line) if w.strip() and w not in _PUNCT)


def essay_features(text: str, sentences: Sequence[str], paragraphs: Sequence[int]) -> np.ndarray:
    """Whole-essay features, (len(ESSAY_FEATURE_NAMES),) float32. Needs jieba.

    jieba never joins words across a newline, so cutting line by line gives exactly the
    words of cutting the whole text (checked on every valid essay) and lets lines be cached.
    """
    lengths = np.array([len(s) for s in sentences] or [0], dtype=np.float64)
    n_sent = len(sentences)
    n_par = (max(paragraphs) + 1) if paragraphs else 0
    n_chars = sum(1 for ch in text if not ch.isspace())
    words = [w for line in text.split("\n") for w in _words(line)]
    n_words = max(len(words), 1)
    conn = [w for w in words if w in CONNECTIVES]
    par_len = np.zeros(max(n_par, 1))
    for s, p in zip(sentences, paragraphs, strict=True):
        par_len[p] += len(s)
    total = max(par_len.sum(), 1.0)
    return np.array(
        [
            math.log1p(n_chars),
            math.log1p(n_sent),
            math.log1p(n_par),
            lengths.mean() / 50.0,
            lengths.std() / 50.0,
            float((lengths > 80).mean()),
            n_sent / max(n_par, 1),
            len(set(words)) / n_words,
            sum(len(w) for w in words) / n_words,
            len(conn) / max(n_sent, 1),
            len(set(conn)) / 10.0,
            sum(1 for ch in text if ch in _PUNCT) / max(n_chars, 1),
            100.0 * text.count("“") / max(n_chars, 1),
            sum(1 for w in words if len(w) == 4) / n_words,
            par_len[0] / total,
            par_len[-1] / total,
        ],
        dtype=np.float32,
    )
