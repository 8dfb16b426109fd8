"""Synthetic spelling errors matched to the real error mix.

Real errors (SIGHAN, LEMON train) are mostly phonetic: toneless homophones cover 79% / 69%
of gold pairs. `corruption_weights` turns the confusion table into P(wrong | right): for a
right character r and each candidate w in its row, the count of the mined train pair
(wrong w, correct r) plus `alpha` times a prior that gives phonetic candidates
`phonetic_share` of the mass (the rest to shape and other candidates), normalised.
`corrupt_batch` (torch, runs on the GPU during training) then puts 1 error in a sentence
with probability 1 - p_two, 2 errors otherwise, leaving a `p_clean` share of sentences
untouched.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

__all__ = ["corrupt_batch", "corruption_weights", "phonetic_mask"]


def phonetic_mask(table: np.ndarray, pieces: list[str]) -> np.ndarray:
    """(V, K) bool: slot k of row v is a toneless homophone of v (slot 0 excluded)."""
    from pypinyin import Style, lazy_pinyin

    cache: dict[int, str] = {}

    def py(i: int) -> str:
        if i not in cache:
            p = pieces[i]
            cache[i] = lazy_pinyin(p, style=Style.NORMAL)[0] if len(p) == 1 else f"#{i}"
        return cache[i]

    out = np.zeros(table.shape, bool)
    for v in np.nonzero(table[:, 1])[0]:
        pv = py(int(v))
        for k in range(1, table.shape[1]):
            c = int(table[v, k])
            if c == 0:
                break
            out[v, k] = py(c) == pv
    return out


def corruption_weights(
    table: np.ndarray,
    pieces: list[str],
    pairs: Counter[tuple[str, str]],
    phonetic_share: float = 0.75,
    alpha: float = 2.0,
) -> np.ndarray:
    """(V, K) float32, rows summing to 1 over slots 1.. (0 where a row has no candidate)."""
    ids = {p: i for i, p in enumerate(pieces)}
    counts = np.zeros(table.shape, np.float64)
    rows, cols = np.nonzero(table)
    slot = {(int(v), int(table[v, k])): int(k) for v, k in zip(rows, cols, strict=True) if k > 0}
    for (wrong, right), n in pairs.items():
        key = (ids.get(right, -1), ids.get(wrong, -1))
        if key in slot:
            counts[key[0], slot[key]] += n
    phon = phonetic_mask(table, pieces)
    valid = table != 0
    valid[:, 0] = False
    n_phon = phon.sum(1, keepdims=True)
    n_other = (valid & ~phon).sum(1, keepdims=True)
    share_p = np.where(n_other == 0, 1.0, np.where(n_phon == 0, 0.0, phonetic_share))
    prior = np.where(phon, share_p / np.maximum(n_phon, 1), (1 - share_p) / np.maximum(n_other, 1))
    prior = np.where(valid, prior, 0.0)
    w = counts + alpha * prior
    total = w.sum(1, keepdims=True)
    return np.where(total > 0, w / np.maximum(total, 1e-12), 0.0).astype(np.float32)


def corrupt_batch(
    ids: Any,
    confusion: Any,
    weights: Any,
    is_char: Any,
    p_clean: float = 0.3,
    p_two: float = 0.3,
    generator: Any = None,
) -> Any:
    """ids (B, T) long -> corrupted ids (B, T): 0, 1 or 2 characters per sentence replaced by a
    confusion candidate drawn from P(wrong | right) (`weights`, (V, K))."""
    import torch

    B, T = ids.shape
    dev = ids.device
    w = weights[ids]  # (B, T, K)
    eligible = is_char[ids] & (w.sum(-1) > 0)
    score = torch.rand(B, T, device=dev, generator=generator).masked_fill(~eligible, -1.0)
    k = min(2, T)
    top, pos = score.topk(k, dim=1)  # (B, k)
    want = torch.ones(B, k, dtype=torch.bool, device=dev)
    r = torch.rand(B, 2, device=dev, generator=generator)
    want[:, 0] = r[:, 0] >= p_clean
    if k > 1:
        want[:, 1] = want[:, 0] & (r[:, 1] < p_two)
    want &= top >= 0
    rows = torch.arange(B, device=dev).unsqueeze(1).expand(B, k)
    pw = w[rows, pos]  # (B, k, K)
    pw = torch.where(want.unsqueeze(-1), pw, torch.zeros_like(pw))
    pw[..., 0] += (~want).float()  # rows not corrupted draw slot 0 (the character itself)
    slot = torch.multinomial(pw.reshape(-1, pw.shape[-1]), 1, generator=generator).view(B, k)
    new = confusion[ids[rows, pos], slot]  # (B, k)
    out = ids.clone()
    out[rows[want], pos[want]] = new[want]
    return out
