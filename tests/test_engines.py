"""Shipped Chinese models: tokenizer, ONNX snapshot, batching, manifest, evaluation CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from engines.runtime import (
    ENGINES_DIR,
    EssaySentence,
    OnnxModels,
    SentenceCodec,
    load_manifest,
)
from engines.tokenizer import ZhTokenizer

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SNAPSHOT = FIXTURES / "engines_snapshot.json"
SNAPSHOT_ATOL = {"fp32": 1e-4, "default": 2e-3}  # INT8 kernels may differ slightly across CPUs
# Dynamic INT8 quantises activations per tensor: padding rows of a batch move the scale,
# so batched INT8 output equals single-sentence output only to this tolerance.
BATCH_ATOL = {"fp32": 1e-4, "int8": 5e-2}


@pytest.fixture(scope="module")
def manifest() -> dict:
    return load_manifest()


@pytest.fixture(scope="module")
def models(manifest: dict) -> OnnxModels:
    return OnnxModels(manifest)


@pytest.fixture(scope="module")
def tokenizer(manifest: dict) -> ZhTokenizer:
    return ZhTokenizer(ENGINES_DIR / manifest["tokenizer"]["file"])


# ----------------------------------------------------------------------------- tokenizer
@pytest.mark.parametrize(
    "text",
    [
        "我爱北京天安门，“今天”天气很好！",
        "Hello world, it's 2024.  Two  spaces\tand a tab.",
        "混合 mixed 文本 with 数字 3.14 和 emoji 😀。",
        "生僻字：𠀀𪚥龘，还有全角ＡＢＣ。",
        "\n 前后空白 \n",
        "",
    ],
)
def test_tokenizer_round_trips(tokenizer: ZhTokenizer, text: str) -> None:
    enc = tokenizer.encode(text)
    assert tokenizer.decode(enc.ids) == text
    assert tokenizer.unk_id not in enc.ids
    assert len(enc.ids) == len(enc.spans) == len(enc.is_char)


def test_tokenizer_one_token_per_common_character(tokenizer: ZhTokenizer) -> None:
    text = "他的成绩在班里名列前茅。"
    enc = tokenizer.encode(text)
    chars = [text[s:e] for (s, e), c in zip(enc.spans, enc.is_char, strict=True) if c]
    assert chars == list("他的成绩在班里名列前茅")
    assert all(e - s == 1 for (s, e), c in zip(enc.spans, enc.is_char, strict=True) if c)


def test_tokenizer_byte_fallback_for_rare_characters(tokenizer: ZhTokenizer) -> None:
    enc = tokenizer.encode("龘")  # a BMP ideograph outside the vocabulary: its UTF-8 bytes
    pieces = [tokenizer.id_to_piece(i) for i in enc.ids]
    assert pieces == ["<0xE9>", "<0xBE>", "<0x98>"]
    assert enc.spans == [(0, 1)] * 3 and enc.is_char == [True, False, False]
    supplementary = tokenizer.encode("𪚥")  # outside the BMP: bytes too, never <unk>
    assert [tokenizer.id_to_piece(i) for i in supplementary.ids] == [
        "<0xF0>",
        "<0xAA>",
        "<0x9A>",
        "<0xA5>",
    ]


# ----------------------------------------------------------------------------- ONNX models
def test_outputs_match_snapshot(manifest: dict) -> None:
    snap = json.loads(SNAPSHOT.read_text())
    for variant, atol in SNAPSHOT_ATOL.items():
        s = snap[variant]
        m = OnnxModels(manifest, sentence_file=ENGINES_DIR / "zh" / s["model_file"])
        batch = m.sentence.encode(s["texts"])
        assert batch.feeds["input_ids"].tolist() == s["input_ids"]
        out = m.run_sentences(batch)
        for name, ref in s["outputs"].items():
            np.testing.assert_allclose(
                out[name], np.array(ref), atol=atol, err_msg=f"{variant}:{name}"
            )


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_batched_equals_single(manifest: dict, variant: str) -> None:
    m = OnnxModels(
        manifest, sentence_file=ENGINES_DIR / manifest["artifacts"][f"sentence_{variant}"]["file"]
    )
    texts = [
        "今天天气很好。",
        "通过这次活动，使我们明白了团结的重要性，也让我们懂得了坚持就是胜利的道理。",
        "他的成绩在班里名列前矛。",
        "Short English line.",
        "好",
    ]
    batched = m.predict_sentences(texts, batch_size=8)
    atol = BATCH_ATOL[variant]
    for text, b in zip(texts, batched, strict=True):
        (one,) = m.predict_sentences([text])
        assert abs(one.faulty_prob - b.faulty_prob) <= atol
        np.testing.assert_allclose(one.embedding, b.embedding, atol=atol * 10)
        for code in one.types:
            assert abs(one.types[code] - b.types[code]) <= atol
        if variant == "fp32":
            assert [(f.start, f.suggestion) for f in one.spelling] == [
                (f.start, f.suggestion) for f in b.spelling
            ]


def test_sentence_model_runs_at_several_lengths(manifest: dict) -> None:
    codec = SentenceCodec(manifest)
    sess = ort.InferenceSession(str(codec.fp32_file), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    k = manifest["sentence_model"]["config"]["n_cand"]
    d = manifest["sentence_model"]["config"]["d_model"]
    for B, T in ((1, 1), (2, 7), (3, 48), (1, codec.max_tokens)):
        ids = np.random.default_rng(T).integers(5, 2000, (B, T)).astype(np.int64)
        out = dict(
            zip(
                names,
                sess.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)}),
                strict=True,
            )
        )
        assert out["faulty_prob"].shape == (B,)
        assert out["spell_detect_prob"].shape == (B, T)
        assert out["spell_cand_probs"].shape == (B, T, k)
        assert out["embedding"].shape == (B, d)
        assert np.isfinite(out["spell_cand_probs"]).all()


def test_codec_truncates_and_flags_within_text(models: OnnxModels) -> None:
    long_text = "我们" * 200
    assert models.sentence.count_tokens(long_text) == models.sentence.max_tokens
    preds = models.predict_sentences([long_text, "他的成绩在班里名列前矛，大家都很佩服他。", ""])
    for text, p in zip(
        [long_text, "他的成绩在班里名列前矛，大家都很佩服他。", ""], preds, strict=True
    ):
        assert 0.0 <= p.faulty_prob <= 1.0
        assert set(p.types) == {"IWO", "IWC", "CM", "CR", "SC", "ILL", "AM"}
        assert p.embedding.dtype == np.float32
        for f in p.spelling:
            assert text[f.start : f.end] == f.wrong and f.end - f.start == 1


def test_spelling_flags_follow_the_candidate_heads_change_probability(manifest: dict) -> None:
    """A character is flagged when 1 - P(keep) reaches the threshold, whatever the
    detection head says; the suggestion is the best non-keep candidate."""
    codec = SentenceCodec(manifest)
    batch = codec.encode(["我门好"])
    T, K = batch.feeds["input_ids"].shape[1], 4
    ids = batch.feeds["input_ids"][0]
    cand_ids = np.zeros((1, T, K), np.int64)
    cand_ids[0, :, 0] = ids
    cand_ids[0, :, 1] = codec.tokenizer.encode("们").ids[0]
    cand_ids[0, :, 2] = codec.tokenizer.encode("问").ids[0]
    probs = np.zeros((1, T, K), np.float32)
    probs[0, :, 0] = 1.0  # keep everywhere ...
    t_men = next(i for i, (a, _) in enumerate(batch.spans[0]) if a == 1)
    thr = codec.spelling_threshold
    probs[0, t_men] = [1.0 - thr - 1e-3, thr - 0.1, 0.1 + 1e-3, 0.0]  # ... but at 门
    outputs = {
        "faulty_prob": np.zeros(1, np.float32),
        "type_probs": np.zeros((1, len(codec.types)), np.float32),
        "spell_detect_prob": np.zeros((1, T), np.float32),  # the detection head says no
        "spell_cand_probs": probs,
        "spell_cand_ids": cand_ids,
        "embedding": np.zeros((1, 4), np.float32),
    }
    (pred,) = codec.decode(batch, outputs)
    assert [(f.start, f.end, f.wrong, f.suggestion) for f in pred.spelling] == [(1, 2, "门", "们")]
    assert pred.spelling[0].confidence == pytest.approx(thr + 1e-3, abs=1e-5)
    probs[0, t_men, 0] = 1.0 - thr + 1e-3  # just under the threshold: no flag
    outputs["spell_detect_prob"][:] = 1.0  # even with the detection head certain
    assert codec.decode(batch, outputs)[0].spelling == ()


def test_essay_grades_come_from_the_expected_grade_and_cut_points(manifest: dict) -> None:
    from engines.ordinal import apply_cuts, expected_grade
    from engines.runtime import GRADES, EssayCodec

    codec = EssayCodec(manifest)
    assert codec.trait_cuts is not None and codec.coherence_cuts is not None
    rng = np.random.default_rng(0)
    for _ in range(20):
        tp = rng.dirichlet(np.ones(3), size=(1, len(codec.traits))).astype(np.float32)
        cp = rng.dirichlet(np.ones(3), size=1).astype(np.float32)
        pred = codec.decode(
            {"trait_probs": tp, "coherence_probs": cp, "coherence_score": np.array([2.5])}
        )
        for t, name in enumerate(codec.traits):
            want = GRADES[int(apply_cuts(expected_grade(tp[0, t]), codec.trait_cuts[t]))]
            assert pred.traits[name].grade == want
            assert pred.traits[name].score == pytest.approx(float(expected_grade(tp[0, t])))
        assert pred.coherence_grade == int(apply_cuts(expected_grade(cp[0]), codec.coherence_cuts))
    # argmax would say Medium here; the expected grade lies above the upper cut point
    hi = codec.trait_cuts[0][1]
    great = (hi + 0.01 - 0.45) / 2
    assert 0.55 - great >= 0.0 and great < 0.45
    p = np.array([[[0.55 - great, 0.45, great]] * len(codec.traits)], np.float32)
    pred = codec.decode(
        {"trait_probs": p, "coherence_probs": cp, "coherence_score": np.array([2.5])}
    )
    assert pred.traits[codec.traits[0]].grade == "Great"


def test_essay_scoring(models: OnnxModels) -> None:
    text = "我的家乡很美。春天到处是花。\n夏天我们去河边游泳。\n总之，我爱我的家乡！"
    pred = models.score_essay(text)
    assert set(pred.traits) == {"content", "structure", "logic", "language", "overall"}
    for t in pred.traits.values():
        assert t.grade in ("Great", "Medium", "Bad")
        assert abs(sum(t.probs.values()) - 1.0) < 1e-4 and 0.0 <= t.score <= 2.0
    assert pred.coherence_grade in (0, 1, 2) and 0.0 <= pred.coherence_score <= 5.0
    empty = models.essay.encode([], "")
    assert empty["sent_mask"].sum() == 0
    emb = np.zeros(models.essay.embedding_dim, np.float32)
    feeds = models.essay.encode([EssaySentence("一句。", 0, emb)], "一句。")
    assert feeds["sent_emb"].shape == (1, 1, models.essay.embedding_dim)


# ----------------------------------------------------------------------------- manifest
def test_manifest_hashes_match_files(manifest: dict) -> None:
    entries = [manifest["tokenizer"], *manifest["artifacts"].values()]
    total = 0
    for entry in entries:
        data = (ENGINES_DIR / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["file"]
        assert len(data) == entry["size"]
        total += len(data)
    assert total <= 40 * 1024 * 1024
    assert manifest["sentence_model"]["model_file"] in manifest["artifacts"]


def test_runtime_does_not_import_torch() -> None:
    code = "import sys, engines.runtime, engines.evaluate; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


# ----------------------------------------------------------------------------- evaluation CLI
@pytest.mark.parametrize(
    ("task", "fixture", "keys"),
    [
        ("zh-faulty", "zh_faulty.jsonl", {"n", "accuracy", "f1", "auc", "mcc", "type_macro_f1"}),
        ("zh-spelling", "zh_spelling.jsonl", {"n", "detect_f1", "correct_f1", "char_detect_f1"}),
        (
            "zh-essay",
            "zh_essay.jsonl",
            {
                "n",
                "qwk_mean",
                "qwk_content",
                "qwk_structure",
                "qwk_logic",
                "qwk_language",
                "qwk_overall",
            },
        ),
        ("zh-coherence", "zh_coherence.jsonl", {"n", "qwk", "pearson"}),
    ],
)
def test_evaluate_cli(task: str, fixture: str, keys: set[str]) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "engines.evaluate",
            "--task",
            task,
            "--data",
            str(FIXTURES / fixture),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert keys <= set(result)
    assert result["n"] > 0
    if task in ("zh-faulty", "zh-spelling", "zh-essay"):  # these fixtures hold a malformed line
        assert "malformed" in proc.stderr
