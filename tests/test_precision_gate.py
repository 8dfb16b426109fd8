"""The precision gate (engines.precision) on small fixtures: the K-S test, the verdict, and
the real pipeline with onnxruntime FP32 against itself and against the INT8 file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from engines.precision import GATE, Predictions, collect, compare, ks_2samp, onnx_runner
from engines.runtime import EssayCodec, SentenceCodec, load_manifest

SENTENCES = [
    "我们在老师的带领下参观了博物馆，收获很大。",
    "通过这次活动，使我们明白了团结的重要性。",
    "他的成绩在班里名列前矛，大家都很佩服他。",
    "今天天气很好",
]
ESSAYS = [
    "春天来了，小草从地里探出头来。我们在老师的带领下参观了博物馆，收获很大。\n"
    "通过这次活动，使我们明白了团结的重要性。",
    "他的成绩在班里名列前矛，大家都很佩服他。今天天气很好。",
]


def test_ks_two_sample_against_known_values() -> None:
    same = list(np.linspace(0, 1, 50))
    assert ks_2samp(same, same) == (0.0, 1.0)
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 400), rng.normal(0.5, 1, 400)
    d, p = ks_2samp(a, b)
    assert p < 1e-6 and 0.15 < d < 0.35
    scipy_stats = pytest.importorskip("scipy.stats")
    for x, y in ((a, b), (a[:60], rng.normal(0.1, 1, 80))):
        want = scipy_stats.ks_2samp(x, y, method="asymp")
        got = ks_2samp(x, y)
        assert math.isclose(got[0], want.statistic, abs_tol=1e-12)
        assert math.isclose(got[1], want.pvalue, abs_tol=0.02)


def predictions(hints: list[str], grades: list[str], scores: list[float]) -> Predictions:
    return Predictions("p", hints, {"overall": grades}, {"overall": scores})


def test_the_verdict_needs_all_three_checks() -> None:
    hints = [f"h{i}" for i in range(200)]
    grades = ["Great", "Medium", "Bad"] * 40
    scores = list(np.linspace(0, 2, 120))
    ref = predictions(hints, grades, scores)
    assert compare(ref, ref)["passed"]
    one_in_hundred = predictions(["x", "y", *hints[2:]], grades, scores)  # 99.0% agree
    assert compare(ref, one_in_hundred)["hint_agreement"] == 0.99
    assert compare(ref, one_in_hundred)["passed"]
    three = predictions(["x", "y", "z", *hints[3:]], grades, scores)  # 98.5%
    assert not compare(ref, three)["passed"]
    shifted = predictions(hints, grades, [s + 0.4 for s in scores])  # same grades, new scores
    report = compare(ref, shifted)
    assert report["grade_agreement"] == 1.0 and report["ks"]["overall"]["p"] < GATE["ks_p"]
    assert not report["passed"]
    with pytest.raises(ValueError):
        compare(ref, predictions(hints[:-1], grades, scores))


def test_gate_on_the_real_pipeline(tmp_path: Path) -> None:
    manifest = load_manifest()
    essay = EssayCodec(manifest).model_file
    fp32 = onnx_runner(SentenceCodec(manifest).fp32_file, essay)
    ref = collect(fp32, SENTENCES, ESSAYS, "fp32", manifest)
    assert len(ref.hints) == len(SENTENCES) and len(ref.scores["overall"]) == len(ESSAYS)
    assert set(ref.grades) == {*EssayCodec(manifest).traits, "coherence"}
    assert compare(ref, collect(fp32, SENTENCES, ESSAYS, "fp32 again", manifest))["passed"]
    int8 = onnx_runner(Path(SentenceCodec(manifest).fp32_file.parent / "sentence_int8.onnx"), essay)
    report = compare(ref, collect(int8, SENTENCES, ESSAYS, "int8", manifest))
    assert 0.0 <= report["hint_agreement"] <= 1.0 and set(report["ks"]) == set(ref.scores)
    ref.save(tmp_path / "ref.json")  # a saved reference carries its inputs
    saved = json.loads((tmp_path / "ref.json").read_text())
    assert saved["texts"] == {"sentences": SENTENCES, "essays": ESSAYS}
