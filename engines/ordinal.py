"""Ordinal grades from class probabilities: expected grade, then tuned cut points.

Taking the argmax of three-way grade probabilities favours the majority grade and throws
away the order of the grades; thresholding the expected grade at cut points tuned for
quadratic weighted kappa keeps both (the usual decoding for QWK-scored essay grading).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engines.metrics import qwk

__all__ = ["apply_cuts", "expected_grade", "fit_cuts"]


def expected_grade(probs: np.ndarray) -> np.ndarray:
    """(..., G) probabilities over grades 0..G-1 -> (...) expected grade."""
    p = np.asarray(probs, dtype=np.float64)
    return np.asarray(p @ np.arange(p.shape[-1], dtype=np.float64))


def apply_cuts(expected: np.ndarray | float, cuts: Sequence[float]) -> np.ndarray:
    """Grade = number of cut points at or below the expected grade."""
    return np.digitize(np.asarray(expected, dtype=np.float64), np.asarray(cuts, dtype=np.float64))


def fit_cuts(expected: np.ndarray, labels: np.ndarray, n_grades: int = 3) -> list[float]:
    """Cut points (ascending, n_grades - 1 of them) maximising QWK of `apply_cuts` against
    `labels` (entries < 0 are unlabelled and ignored). Searches a quantile grid exhaustively
    for three grades; ties keep the first (lowest) cut points."""
    if n_grades != 3:
        raise ValueError("fit_cuts searches two cut points (three grades)")
    lab = np.asarray(labels) >= 0
    e, y = np.asarray(expected, dtype=np.float64)[lab], np.asarray(labels)[lab].astype(int)
    if len(e) == 0:
        return [0.5, 1.5]
    grid = np.unique(np.quantile(e, np.linspace(0.02, 0.98, 49)))
    best, cuts = -np.inf, [0.5, 1.5]
    for i, a in enumerate(grid):
        for b in grid[i + 1 :]:
            score = qwk(y, apply_cuts(e, (a, b)), n_grades)
            if score > best:
                best, cuts = score, [float(a), float(b)]
    return cuts
