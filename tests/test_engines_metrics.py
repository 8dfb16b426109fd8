"""Metric functions used by engines.evaluate, on hand-checked examples."""

from __future__ import annotations

import math

import numpy as np

from engines.metrics import auc, binary_scores, macro_f1_multilabel, pearson, qwk, sighan_scores
from engines.ordinal import apply_cuts, expected_grade, fit_cuts


def test_qwk() -> None:
    assert qwk([0, 1, 2], [0, 1, 2], 3) == 1.0
    assert qwk([0, 0, 2, 2], [2, 2, 0, 0], 3) < 0
    assert math.isclose(qwk([0, 1, 2, 1], [0, 2, 2, 1], 3), 0.8, rel_tol=1e-9)


def test_auc_and_binary() -> None:
    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert auc(np.array([1, 1]), np.array([0.1, 0.2])) != auc(
        np.array([1, 1]), np.array([0.1, 0.2])
    )
    s = binary_scores(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
    assert s["accuracy"] == 0.75 and math.isclose(s["f1"], 2 / 3)
    assert math.isclose(s["mcc"], 1 / math.sqrt(3))
    assert binary_scores(np.array([1, 0]), np.array([1, 1]))["mcc"] == 0.0


def test_macro_f1_multilabel_skips_unsupported_labels() -> None:
    y = np.array([[1, 0, 0], [0, 1, 0]])
    p = np.array([[1, 0, 1], [1, 0, 0]])
    assert math.isclose(macro_f1_multilabel(y, p), (2 / 3 + 0.0) / 2)


def test_pearson() -> None:
    assert math.isclose(
        pearson(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.5])), 0.9986, abs_tol=1e-3
    )


def test_sighan_sentence_and_char_level() -> None:
    gold = [{3: "待"}, {}, {1: "非", 5: "完"}]
    pred = [{3: "待"}, {2: "x"}, {1: "非"}]
    s = sighan_scores(gold, pred)
    # sentence level: 3 predicted, 2 gold-error sentences, 1 exact detection + correction
    assert math.isclose(s["detect_precision"], 1 / 3) and math.isclose(s["detect_recall"], 1 / 2)
    assert math.isclose(s["correct_f1"], s["detect_f1"])
    # character level: 2 of 3 flags right, 2 of 3 gold found
    assert math.isclose(s["char_detect_f1"], 2 / 3)


def test_expected_grade_and_cuts() -> None:
    p = np.array([[1.0, 0.0, 0.0], [0.2, 0.5, 0.3], [0.0, 0.1, 0.9]])
    assert np.allclose(expected_grade(p), [0.0, 1.1, 1.9])
    assert apply_cuts(expected_grade(p), [0.5, 1.5]).tolist() == [0, 1, 2]
    assert int(apply_cuts(1.5, [0.5, 1.5])) == 2  # a cut point belongs to the upper grade


def test_fit_cuts_beats_argmax_on_a_skewed_model() -> None:
    """A model whose probabilities lean to the middle grade: argmax says "Medium" for all,
    the tuned cut points recover the order (and never score below argmax)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    e = 0.8 + 0.2 * y + rng.normal(0, 0.05, 300)  # expected grades squeezed into 0.7..1.3
    cuts = fit_cuts(e, y)
    assert cuts[0] < cuts[1]
    assert qwk(y, apply_cuts(e, cuts), 3) > 0.9
    assert qwk(y, np.ones_like(y), 3) == 0.0
    # unlabelled entries (-1) are ignored
    assert fit_cuts(np.r_[e, [5.0, 5.0]], np.r_[y, [-1, -1]]) == cuts
