"""Tests for engines.segment (the segmenter shared by training and serving): concrete cases plus property tests."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engines.segment import Segment, paragraphs, segment


def texts(text: str) -> list[str]:
    return [s.text for s in segment(text)]


# --- concrete cases --------------------------------------------------------------------

CASES: list[tuple[str, list[str] | None]] = [
    # Chinese essay prose
    (
        "今天天气很好。我们去公园玩吧！你觉得呢？",
        ["今天天气很好。", "我们去公园玩吧！", "你觉得呢？"],
    ),
    (
        "春天来了，小草从地里钻出来，嫩嫩的，绿绿的。园子里，田野里，瞧去，一大片一大片满是的。",
        [
            "春天来了，小草从地里钻出来，嫩嫩的，绿绿的。",
            "园子里，田野里，瞧去，一大片一大片满是的。",
        ],
    ),
    ("真的吗？！太好了！！", ["真的吗？！", "太好了！！"]),
    ("我想……我不知道。", ["我想……", "我不知道。"]),
    ("他走了……", ["他走了……"]),
    ("我们扫地、擦桌子······然后回家。", ["我们扫地、擦桌子······", "然后回家。"]),
    ("他⋯⋯走了。列夫·托尔斯泰来了。", ["他⋯⋯", "走了。", "列夫·托尔斯泰来了。"]),
    ("他说：“我会想你的。 ” 我也会。", ["他说：“我会想你的。 ”", "我也会。"]),
    ("他说：“好。” ”错了。", ["他说：“好。”", "”错了。"]),
    # quotes and brackets stay with their sentence
    ("他说：“我们走吧。”然后就走了。", ["他说：“我们走吧。”", "然后就走了。"]),
    ("“你来了？”“来了。”", ["“你来了？”", "“来了。”"]),
    ("「你好。」她说。『再见！』", ["「你好。」", "她说。", "『再见！』"]),
    ("（这是补充说明。）正文继续。", ["（这是补充说明。）", "正文继续。"]),
    ("我读了《你好！》这本书。", ["我读了《你好！》这本书。"]),
    ("他（终于！）来了。", ["他（终于！）来了。"]),
    ("“走吧！”，他说。", ["“走吧！”，他说。"]),
    # semicolons end a sentence (documented decision)
    ("他说；我们走。", ["他说；", "我们走。"]),
    ("I came; I saw.", ["I came;", "I saw."]),
    # comma does not
    ("我们，你们，他们", ["我们，你们，他们"]),
    # English abbreviations, decimals, initials, ellipses
    (
        "Mr. Smith went to Washington. He met Dr. Brown at 3 p.m. They talked.",
        ["Mr. Smith went to Washington.", "He met Dr. Brown at 3 p.m.", "They talked."],
    ),
    ("Mrs. Lee and Prof. Wang met on Main St. near the park.", None),
    ("The value is 3.14. That is pi.", ["The value is 3.14.", "That is pi."]),
    ("J. K. Rowling wrote it. I read it.", ["J. K. Rowling wrote it.", "I read it."]),
    ("Harry S. Truman was president.", None),
    ("I got a plan B. Then it failed.", ["I got a plan B.", "Then it failed."]),
    ("I like apples, pears, etc. Then I left.", ["I like apples, pears, etc.", "Then I left."]),
    ("Fruits, e.g. apples, i.e. food, vs. meat.", None),
    ("It was No. 5 in the U.S. It won.", ["It was No. 5 in the U.S.", "It won."]),
    ("I live in the U.S. and like it.", None),
    ("See Fig. 3 on Jan. 5 at 9 a.m. sharp.", None),
    ("Wait... what? I thought... Maybe not.", ["Wait... what?", "I thought...", "Maybe not."]),
    ("Well… maybe so. Fine…", ["Well… maybe so.", "Fine…"]),
    ("A rock . . . which looks odd. . . . Then", ["A rock . . . which looks odd. . . .", "Then"]),
    ("It says so (par. 3). Yes.", ["It says so (par. 3).", "Yes."]),
    ('"Stop!" he said. "Why?" she asked.', ['"Stop!" he said.', '"Why?" she asked.']),
    ('"Stop!""Why?"', ['"Stop!"', '"Why?"']),
    ('He said "Hi." Then he left.', ['He said "Hi."', "Then he left."]),
    ("He left (finally!) at noon. Good.", ["He left (finally!) at noon.", "Good."]),
    ("i went home. then i slept.", ["i went home.", "then i slept."]),
    # numbered items
    ("1. Introduction. 2. Method.", ["1. Introduction.", "2. Method."]),
    ("1.我们要努力。2.我们要团结。", ["1.我们要努力。", "2.我们要团结。"]),
    ("１．我们要努力。２．团结。", ["１．我们要努力。", "２．团结。"]),
    ("圆周率是３．１４。对。", ["圆周率是３．１４。", "对。"]),
    ("I. Overview", None),
    # URLs and e-mails
    (
        "Visit https://example.com/a?b=1. Or mail me at a.b@example.com. Thanks!",
        ["Visit https://example.com/a?b=1.", "Or mail me at a.b@example.com.", "Thanks!"],
    ),
    ("访问www.example.com了解更多。谢谢。", ["访问www.example.com了解更多。", "谢谢。"]),
    # mixed Chinese and English, half-width punctuation in Chinese
    (
        "我喜欢Harry Potter. 它很好看。This is English.",
        ["我喜欢Harry Potter.", "它很好看。", "This is English."],
    ),
    ("我们走吧.他们也走了!", ["我们走吧.", "他们也走了!"]),
    ("全角句号．然后", ["全角句号．", "然后"]),
    # astral characters
    ("太好了😀！𠀀字很少见。", ["太好了😀！", "𠀀字很少见。"]),
    ("👍👍", ["👍👍"]),
    # empty, whitespace, trailing fragments
    ("", []),
    ("   \n\n \u3000 \t", []),
    ("我正在写", ["我正在写"]),
    ("第一句。第二", ["第一句。", "第二"]),
    ("  leading and trailing  ", ["leading and trailing"]),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_cases(text: str, expected: list[str] | None) -> None:
    assert texts(text) == (expected if expected is not None else [text])


def test_offsets_and_paragraphs() -> None:
    text = "第一段第一句。 第二句\n\n  第二段。还在写\r\nlast"
    segs = segment(text)
    assert [(s.text, s.paragraph) for s in segs] == [
        ("第一段第一句。", 0),
        ("第二句", 0),
        ("第二段。", 1),
        ("还在写", 1),
        ("last", 2),
    ]
    for s in segs:
        assert text[s.start : s.end] == s.text
    assert segs[1].start == text.index("第二句")


def test_newline_always_ends_sentence() -> None:
    assert texts("Mr.\nSmith") == ["Mr.", "Smith"]
    assert texts("a\u2028b\u2029c\rd") == ["a", "b", "c", "d"]


def test_astral_offsets_are_code_points() -> None:
    text = "😀好。𠀀好。"
    segs = segment(text)
    assert [(s.start, s.end) for s in segs] == [(0, 3), (3, 6)]


def test_paragraphs() -> None:
    text = "  一 \n\n\t\n二二\r\n"
    assert paragraphs(text) == [(2, 3), (8, 10)]
    assert paragraphs("") == []


def test_segment_is_frozen() -> None:
    s = Segment(0, 1, "a", 0)
    with pytest.raises(AttributeError):
        s.start = 2  # type: ignore[misc]


# --- property tests -------------------------------------------------------------------

ALPHABET = (
    "我们的了是好天地人。！？；…，、：“”‘’「」『』（）《》【】"
    "abcXYZ Mr.e.g,!?;:'\"()[]0123456789 \t\n\r\u3000\u2028😀𠀀"
)


def _check_invariants(text: str, segs: list[Segment]) -> None:
    prev_end = 0
    covered = [False] * len(text)
    for s in segs:
        assert 0 <= prev_end <= s.start < s.end <= len(text)
        assert text[s.start : s.end] == s.text
        assert s.text == s.text.strip() and s.text
        assert len(s.text.splitlines()) == 1 and not any(
            ch in s.text for ch in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
        )
        for i in range(s.start, s.end):
            covered[i] = True
        prev_end = s.end
    # every non-whitespace character is in exactly one segment, none is dropped
    assert all(covered[i] or ch.isspace() for i, ch in enumerate(text))
    assert "".join("".join(s.text.split()) for s in segs) == "".join(text.split())
    # paragraph numbers count non-blank lines and never decrease
    paras = [s.paragraph for s in segs]
    assert paras == sorted(paras)
    assert (max(paras) + 1 if paras else 0) == len(paragraphs(text))


@settings(max_examples=400)
@given(st.text(alphabet=ALPHABET, max_size=200))
def test_invariants_on_random_text(text: str) -> None:
    segs = segment(text)
    _check_invariants(text, segs)
    assert segment(text) == segs  # deterministic


@given(st.text(max_size=120))
def test_invariants_on_any_unicode(text: str) -> None:
    _check_invariants(text, segment(text))


ZH_CHARS = "我们的了是好天地人学校老师同学春风花草一二三ABCabc0123😀𠀀，、 "
ZH_TERMINATORS = ["。", "！", "？", "！？", "……", "；", "。”", "！」", "？）"]

zh_sentence = st.builds(
    lambda first, body, term: first + body.strip() + term,
    st.sampled_from("我你他春老同"),
    st.text(alphabet=ZH_CHARS, max_size=20),
    st.sampled_from(ZH_TERMINATORS),
)
separator = st.sampled_from(["", " ", "\u3000", "  "])


@given(st.lists(zh_sentence, min_size=1, max_size=8), separator, st.data())
def test_chinese_sentences_round_trip_and_local_edits(
    sentences: list[str], sep: str, data: st.DataObject
) -> None:
    # Openers are added to sentences whose terminator has a closer, so quotes balance.
    sentences = [_balance(s) for s in sentences]
    text = sep.join(sentences)
    assert texts(text) == sentences
    # Replace one sentence: every other sentence keeps its exact text.
    k = data.draw(st.integers(0, len(sentences) - 1))
    replacement = _balance(data.draw(zh_sentence))
    edited = [*sentences[:k], replacement, *sentences[k + 1 :]]
    assert texts(sep.join(edited)) == edited


def _balance(s: str) -> str:
    pairs = {"”": "“", "」": "「", "）": "（"}
    return pairs[s[-1]] + s if s[-1] in pairs else s


EN_WORD = st.text(alphabet="abcdefghijklmnorstuvwy", min_size=4, max_size=8).filter(
    lambda w: w not in {"prof", "capt", "approx", "dept", "corp", "sept"}
)

en_sentence = st.builds(
    lambda first, words, term: " ".join([first, *words]) + term,
    st.sampled_from(["The", "She", "We", "Today", "Students", "I"]),
    st.lists(EN_WORD, min_size=1, max_size=8),
    st.sampled_from([".", "!", "?", "?!", "...", '."', '!"']),
)


@given(st.lists(en_sentence, min_size=1, max_size=8), st.data())
def test_english_sentences_round_trip_and_local_edits(
    sentences: list[str], data: st.DataObject
) -> None:
    sentences = ['"' + s if s.endswith('"') else s for s in sentences]
    text = " ".join(sentences)
    assert texts(text) == sentences
    k = data.draw(st.integers(0, len(sentences) - 1))
    replacement = data.draw(en_sentence)
    replacement = '"' + replacement if replacement.endswith('"') else replacement
    edited = [*sentences[:k], replacement, *sentences[k + 1 :]]
    assert texts(" ".join(edited)) == edited


@given(st.text(alphabet=ALPHABET, max_size=80), st.text(alphabet=ALPHABET, max_size=80))
def test_paragraphs_are_independent(first: str, second: str) -> None:
    """Editing one paragraph never changes the sentences of another."""
    assume("\n" not in first and "\r" not in first and "\u2028" not in first)
    a = segment(first + "\n" + second)
    b = segment(first)
    assert [s.text for s in a[: len(b)]] == [s.text for s in b]
