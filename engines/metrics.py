"""Evaluation metrics (numpy only): classification, ranking, agreement, SIGHAN spelling."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["auc", "binary_scores", "macro_f1_multilabel", "pearson", "qwk", "sighan_scores"]


def _f1(tp: float, fp: float, fn: float) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp > 0 else 0.0


def binary_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    y, pred = np.asarray(y).astype(bool), np.asarray(pred).astype(bool)
    tp = float((y & pred).sum())
    tn = float((~y & ~pred).sum())
    fp = float((~y & pred).sum())
    fn = float((y & ~pred).sum())
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return {
        "accuracy": (tp + tn) / max(len(y), 1),
        "f1": _f1(tp, fp, fn),
        "mcc": float((tp * tn - fp * fn) / denom) if denom > 0 else 0.0,
    }


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula (ties get average ranks); nan if one class only."""
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    sorted_scores = score[order]
    i = 0
    while i < len(score):
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def macro_f1_multilabel(y: np.ndarray, pred: np.ndarray) -> float:
    """Macro F1 over label columns that have gold support (y, pred: (N, L) 0/1)."""
    y, pred = np.asarray(y).astype(bool), np.asarray(pred).astype(bool)
    scores = []
    for j in range(y.shape[1]):
        if y[:, j].sum() == 0:
            continue
        tp = float((y[:, j] & pred[:, j]).sum())
        scores.append(
            _f1(tp, float((~y[:, j] & pred[:, j]).sum()), float((y[:, j] & ~pred[:, j]).sum()))
        )
    return float(np.mean(scores)) if scores else 0.0


def qwk(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray, n: int) -> float:
    """Quadratic weighted kappa between integer ratings in 0..n-1."""
    a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    observed = np.zeros((n, n))
    for i, j in zip(a, b, strict=True):
        observed[i, j] += 1
    W = np.array([[(i - j) ** 2 / (n - 1) ** 2 for j in range(n)] for i in range(n)])
    E = np.outer(observed.sum(1), observed.sum(0)) / max(observed.sum(), 1)
    denom = (W * E).sum()
    return float(1 - (W * observed).sum() / denom) if denom > 0 else 0.0


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def sighan_scores(
    gold: Sequence[dict[int, str]], pred: Sequence[dict[int, str]]
) -> dict[str, float]:
    """SIGHAN-style scores. gold/pred: per sentence, {position: correct character}.

    Sentence level (as in the SIGHAN 2015 bake-off and later CSC papers): a sentence counts
    as a true detection when the predicted set of error positions equals the gold set, and a
    true correction when in addition every suggested character equals the gold one.
    Precision is over sentences with predicted errors, recall over sentences with gold errors.
    Character level detection: position-wise precision/recall over all flagged characters.
    """
    d_tp = c_tp = n_pred = n_gold = 0
    ch_tp = ch_pred = ch_gold = 0
    for g, p in zip(gold, pred, strict=True):
        n_pred += bool(p)
        n_gold += bool(g)
        if p and set(p) == set(g):
            d_tp += 1
            c_tp += all(p[k] == g[k] for k in g)
        ch_tp += len(set(p) & set(g))
        ch_pred += len(p)
        ch_gold += len(g)

    def prf(tp: int, npred: int, ngold: int) -> tuple[float, float, float]:
        prec = tp / npred if npred else 0.0
        rec = tp / ngold if ngold else 0.0
        return prec, rec, (2 * prec * rec / (prec + rec) if prec + rec else 0.0)

    dp, dr, df = prf(d_tp, n_pred, n_gold)
    cp, cr, cf = prf(c_tp, n_pred, n_gold)
    hp, hr, hf = prf(ch_tp, ch_pred, ch_gold)
    return {
        "detect_precision": dp,
        "detect_recall": dr,
        "detect_f1": df,
        "correct_precision": cp,
        "correct_recall": cr,
        "correct_f1": cf,
        "char_detect_precision": hp,
        "char_detect_recall": hr,
        "char_detect_f1": hf,
    }
