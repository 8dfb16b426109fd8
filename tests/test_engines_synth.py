"""Synthetic training data: 病句 rules, misspelling weights and corruption, corpus selection."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from engines import synth_faulty as sf
from engines.corpus import split_sentences


def words(*pairs: str) -> list[tuple[str, str]]:
    """'word/flag' strings -> jieba-style pairs (no jieba needed for rule tests)."""
    return [tuple(p.rsplit("/", 1)) for p in pairs]  # type: ignore[misc]


SENT = words(
    "这次/r", "活动/vn", "使/v", "我们/r", "明白/v", "了/ul", "团结/a", "的/uj", "重要性/n", "。/x"
)


def test_hide_subject_puts_a_preposition_before_the_subject() -> None:
    c = sf.hide_subject(SENT, random.Random(0))
    assert c is not None and c.type == "CM"
    assert c.text.endswith("这次活动使我们明白了团结的重要性。")
    prep = c.text[: c.spans[0][1]]
    assert prep in sf.PREPOSITIONS


def test_drop_object_head_marks_the_gap() -> None:
    c = sf.drop_object(SENT, random.Random(0))
    assert c is not None and c.type == "CM"
    assert c.text == "这次活动使我们明白了团结的。"
    assert c.text[c.spans[0][0] : c.spans[0][1]] == "。"


def test_collocation_swap_stays_in_the_verb_family() -> None:
    ws = words("我们/r", "要/v", "提高/v", "自己/r", "的/uj", "能力/n", "。/x")
    c = sf.swap_collocation(ws, random.Random(1))
    assert c is not None and c.type == "IWC"
    new = c.text[c.spans[0][0] : c.spans[0][1]]
    assert new != "提高" and new in sf.VERB_FAMILY["提高"]


def test_negation_after_prevent_word() -> None:
    ws = words("要/v", "防止/v", "事故/n", "发生/v", "。/x")
    c = sf.add_negation(ws, random.Random(0))
    assert c is not None and c.type == "ILL"
    assert c.text.startswith("要防止事故") and any(n in c.text for n in sf.NEGATIONS)


def test_swap_coordinates_and_redundancy() -> None:
    ws = words("提高/v", "认识/v", "和/c", "改进/v", "方法/n", "。/x")
    c = sf.swap_coordinates(ws, random.Random(0))
    assert c is not None and c.text == "提高改进和认识方法。" and c.type == "IWO"
    ws = words("大约/d", "三十/m", "人/q", "参加/v", "。/x")
    c = sf.add_redundant(ws, random.Random(0))
    assert c is not None and c.type == "CR" and "大约三十人" in c.text


def test_corrupt_returns_a_changed_sentence_of_a_known_type() -> None:
    rng = random.Random(0)
    seen: Counter[str] = Counter()
    ws = words(
        "同学们/n",
        "已经/d",
        "认识/v",
        "和/c",
        "理解/v",
        "了/ul",
        "提高/v",
        "能力/n",
        "的/uj",
        "意义/n",
        "。/x",
    )
    original = "同学们已经认识和理解了提高能力的意义。"
    for _ in range(60):
        c = sf.corrupt(ws, rng)
        assert c is not None
        assert c.text != original and c.type in sf.TYPES
        for a, b in c.spans:
            assert 0 <= a < b <= len(c.text)
        seen[c.type] += 1
    assert len(seen) >= 3


def test_pack_pairs_round_trip() -> None:
    pytest.importorskip("jieba")
    from engines.runtime import ENGINES_DIR
    from engines.tokenizer import ZhTokenizer

    tok = ZhTokenizer(ENGINES_DIR / "zh" / "tokenizer.model")
    texts = ["我们要提高自己的写作能力。", "这次活动使我们明白了团结的重要性。"]
    flat: list[int] = []
    sentences = []
    for t in texts:
        ids = tok.encode_ids(t)
        sentences.append((len(flat), len(ids), t))
        flat.extend(ids)
    arr = np.array(flat, np.uint16)
    pairs = sf.pack_pairs(sentences, arr, tok, random.Random(0), n_pairs=10, max_rule_share=1.0)
    assert len(pairs["src"]) >= 2
    for i in range(len(pairs["src"])):
        correct, faulty, marks = sf.unpack_pair(pairs, arr, i)
        assert tok.decode(correct) in texts
        assert faulty != correct and len(marks) == len(faulty) and sum(marks) >= 1
    idx = np.arange(len(pairs["src"]))
    bf, bc, bm = sf.unpack_batch(pairs, arr, idx)
    for i in idx:  # the vectorised unpacking the training loop uses agrees with the plain one
        correct, faulty, marks = sf.unpack_pair(pairs, arr, int(i))
        assert bf[i, : len(faulty)].tolist() == faulty and not bf[i, len(faulty) :].any()
        assert bc[i, : len(correct)].tolist() == correct and not bc[i, len(correct) :].any()
        assert bm[i, : len(marks)].tolist() == marks and (bm[i, len(marks) :] == -1).all()


def test_corruption_weights_follow_mined_pairs_and_phonetic_share() -> None:
    pytest.importorskip("pypinyin")
    from engines.synth_spelling import corruption_weights

    pieces = ["<pad>", "在", "再", "载", "左"]  # 再/载 share 在's toneless pinyin zai; 左 does not
    table = np.array([[0, 0, 0, 0], [1, 2, 3, 4], [2, 1, 0, 0], [3, 1, 0, 0], [4, 1, 0, 0]])
    w = corruption_weights(table, pieces, Counter(), phonetic_share=0.75, alpha=1.0)
    assert np.allclose(w[1, 1:].sum(), 1.0) and w[1, 0] == 0
    assert np.isclose(w[1, 1] + w[1, 2], 0.75) and np.isclose(w[1, 3], 0.25)
    assert w[0].sum() == 0  # no candidates, never corrupted
    # mined (wrong 左, right 在) x 9 pulls the mass to 左
    w = corruption_weights(table, pieces, Counter({("左", "在"): 9}), alpha=1.0)
    assert w[1, 3] > 0.9


def test_corrupt_batch_puts_one_or_two_errors_from_the_table() -> None:
    torch = pytest.importorskip("torch")
    from engines.synth_spelling import corrupt_batch

    V, K = 10, 3
    confusion = torch.zeros(V, K, dtype=torch.long)
    confusion[:, 0] = torch.arange(V)
    confusion[5:, 1] = torch.arange(5, V) - 4  # 5 -> 1, 6 -> 2, ...
    weights = torch.zeros(V, K)
    weights[5:, 1] = 1.0
    is_char = torch.zeros(V, dtype=torch.bool)
    is_char[5:] = True
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, V, (400, 12), generator=g)
    ids[:, 10:] = 0  # padding is never touched
    out = corrupt_batch(ids, confusion, weights, is_char, p_clean=0.3, p_two=0.3, generator=g)
    n = (out != ids).sum(1)
    assert set(n.tolist()) <= {0, 1, 2}
    assert 0.2 < (n == 0).float().mean() < 0.4
    assert 0.1 < (n == 2).float().mean() < 0.3
    changed = out != ids
    assert torch.equal(out[changed], ids[changed] - 4)
    assert (out[:, 10:] == 0).all()


def test_split_sentences_keeps_closing_quotes() -> None:
    assert split_sentences("他说：“好。”我们走吧！还有") == ["他说：“好。”", "我们走吧！", "还有"]


def test_discourse_labels_follow_the_annotated_sentence_that_overlaps_most() -> None:
    from engines.discourse import PARA_LABELS, SENT_LABELS, segment_labels

    record = {
        "text": "我认为读书很重要。比如鲁迅。\n总之要读书。",
        "paragraphs": [
            {
                "function": "thesis",
                "sentences": [
                    {"text": "我认为读书很重要。", "function": "thesisSen"},
                    {"text": "比如鲁迅。", "function": "exampleSen"},
                ],
            },
            {"function": "conclusion", "sentences": [{"text": "总之要读书。", "function": None}]},
        ],
    }
    # segments as a segmenter might cut them: one split differently, one unlabelled
    spans = [(0, 9), (9, 14), (15, 21)]
    sent, para = segment_labels(record, spans)
    assert sent == [SENT_LABELS.index("thesisSen"), SENT_LABELS.index("exampleSen"), -1]
    assert para == [PARA_LABELS.index("thesis")] * 2 + [PARA_LABELS.index("conclusion")]
    assert segment_labels({"text": "好。", "paragraphs": ["好。"]}, [(0, 2)]) == ([-1], [-1])


def test_essay_model_with_discourse_heads_exports_to_onnx(tmp_path) -> None:  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from engines.export import export_essay
    from engines.model import EssayConfig, EssayEnsemble, EssayModel
    from engines.release import verify_essay

    torch.manual_seed(0)
    cfg = EssayConfig(d_in=32, n_layer=0, d_model=16, n_disc_sent=9, n_disc_para=9)
    em = EssayEnsemble([EssayModel(cfg, torch.zeros(16), torch.ones(16)) for _ in range(2)])
    em.eval()
    _, _, _, dl = em.members[0].all_logits(
        torch.randn(2, 5, 32),
        torch.rand(2, 5, 6),
        torch.ones(2, 5, dtype=torch.long),
        torch.randn(2, 16),
    )
    assert dl is not None and dl.shape == (2, 5, 18)
    export_essay(em, tmp_path / "essay.onnx")
    assert max(verify_essay(em, tmp_path / "essay.onnx").values()) < 1e-4
