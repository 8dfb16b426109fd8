"""Tests for server.rules: a positive and a negative example per rule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.rules import MESSAGES, RULES, RuleHint, rule_hints, warm_up

KINDS = {"grammar", "spelling", "punctuation", "logic", "style", "length"}
SEVERITIES = {"error", "warning", "info"}


@pytest.fixture(scope="module", autouse=True)
def _jieba() -> None:
    warm_up()


def hints(
    sentence: str, lang: str = "zh", code: str | None = None, **flags: bool
) -> list[RuleHint]:
    found = rule_hints(sentence, lang, **flags)  # type: ignore[arg-type]
    return [h for h in found if code is None or h.code == code]


def spans(sentence: str, lang: str, code: str, **flags: bool) -> list[tuple[str, tuple[str, ...]]]:
    """(flagged text, suggestions) for each hint of ``code``."""
    return [
        (sentence[h.start : h.end], h.suggestions) for h in hints(sentence, lang, code, **flags)
    ]


# --- tables ---------------------------------------------------------------------------


def test_tables_are_consistent() -> None:
    assert set(RULES) == set(MESSAGES)
    for code, info in RULES.items():
        assert code.isidentifier() and code == code.lower()
        assert info.kind in KINDS and info.severity in SEVERITIES
        assert 0 < info.confidence <= 1
        assert set(MESSAGES[code]) <= {"zh", "en"} and MESSAGES[code]


# --- clean sentences: no hint at all ---------------------------------------------------

CLEAN_ZH = [
    "作家只有深深地扎根于生活的泥土里，才能写出反映时代的优秀作品。",
    "达瓦现在面临两种挑战：一是来自生理，二是来自心理。",
    "散文，作为精神食粮，它是谷类；作为战斗武器，它是步枪。",
    "奥运会昨日鸣金，我国运动健儿夺得28枚金牌。",
    "生活有多广阔，语文就有多广阔，我们不仅要在课堂上学语文，还要在生活中学语文。",
    "这次会议对节约原材料问题也广泛地交换了意见。",
    "他高高兴兴地回家了，天天都看看书，渐渐地常常笑了。",
    "我们应该好好讨论讨论这个问题，研究研究再说。",
    "很久很久以前，他一步一步地走，大口大口地吃饭。",
    "实现目的的方法有很多，为了了解情况，他的的确确去了现场。",
    "这件事实实在在，地地道道，最后不了了之。",
    "他说：“我们走吧。”",
    "「你好。」",
    "我读了《西游记》（吴承恩著），很喜欢。",
    "圆周率约等于3.14，现在是10:30，一共1,000人。",
    "1.我们要努力学习。",
    "我最喜欢的书是Harry Potter。",
    "滴答滴答，雨下个不停！",
    "真的吗？！",
    "我想……",
]

CLEAN_EN = [
    "The quick brown fox jumps over the lazy dog.",
    "I think an honest answer takes an hour, a university degree and a one-time fee.",
    "She said that that was fine, and he had had enough.",
    "Mr. Smith bought an FBI badge and a USB cable at 3.14 dollars.",
    '"Where are you going?" she asked.',
    "iPhones are popular; e.g. in Europe.",
    "Wait... what?",
    "My grade was an A in Plan A.",
    "We met at 10:30 and left :)",
    "Bye bye, see you soon!",
]


@pytest.mark.parametrize("sentence", CLEAN_ZH)
def test_clean_chinese(sentence: str) -> None:
    assert hints(sentence, "zh", is_last_in_paragraph=True) == []


@pytest.mark.parametrize("sentence", CLEAN_EN)
def test_clean_english(sentence: str) -> None:
    assert hints(sentence, "en", is_last_in_paragraph=True) == []


# --- Chinese rules --------------------------------------------------------------------


def test_repeated_word_zh() -> None:
    s = "我们我们去学校。"
    [h] = hints(s, "zh", "repeated_word")
    assert (h.start, h.end, h.suggestions) == (0, 4, ("我们",))
    assert h.message == "“我们”重复出现，可能多打了一遍。"
    assert (h.kind, h.severity) == ("grammar", "warning")
    assert spans("我的的书包很重。", "zh", "repeated_word") == [("的的", ("的",))]
    assert spans("他是是学生。", "zh", "repeated_word") == [("是是", ("是",))]
    assert spans("因为因为下雨，所以没去。", "zh", "repeated_word") == [("因为因为", ("因为",))]
    assert spans("我们我们我们走。", "zh", "repeated_word") == [("我们我们我们", ("我们",))]


@pytest.mark.parametrize(
    "sentence",
    [
        "看看书。",
        "高高兴兴。",
        "讨论讨论。",
        "非常非常好。",
        "一个一个地走。",
        "是是是，你说得对。",
        "这道题要注意什么什么点。",
        "哪里哪里，不敢当！",
        "我就不能评论评论你们吗？",
        "他大口大口地吃饭。",
        "谢谢谢谢！",
    ],
)
def test_repeated_word_zh_negative(sentence: str) -> None:
    assert hints(sentence, "zh", "repeated_word") == []


def test_halfwidth_punctuation() -> None:
    s = "他说,我们走吧."
    assert spans(s, "zh", "halfwidth_punctuation") == [(",", ("，",)), (".", ("。",))]
    [h, _] = hints(s, "zh", "halfwidth_punctuation")
    assert (h.start, h.end) == (2, 3)
    assert spans("真的吗?", "zh", "halfwidth_punctuation") == [("?", ("？",))]
    assert spans("他说:走吧", "zh", "halfwidth_punctuation") == [(":", ("：",))]
    assert spans("我不知道...", "zh", "halfwidth_punctuation") == [("...", ("……",))]
    assert spans("真的?!", "zh", "halfwidth_punctuation") == [("?!", ("？！",))]
    assert spans("第一;第二", "zh", "halfwidth_punctuation") == [(";", ("；",))]


def test_halfwidth_punctuation_negative() -> None:
    for s in [
        "Hello, world.",
        "约3.14，共1,000人，10:30。",
        "1.我们要努力。",
        "网址是http://a.cn。",
        "我喜欢J.K.罗琳的书。",
    ]:
        assert hints(s, "zh", "halfwidth_punctuation") == [], s


def test_repeated_punctuation() -> None:
    [h] = hints("太好了！！！", "zh", "repeated_punctuation")
    assert (h.start, h.end, h.suggestions, h.severity) == (3, 6, ("！",), "info")
    [h] = hints("好。。", "zh", "repeated_punctuation")
    assert (h.start, h.end, h.suggestions, h.severity) == (1, 3, ("。",), "warning")
    assert spans("我们，，走吧。", "zh", "repeated_punctuation") == [("，，", ("，",))]
    assert spans("好啊!!", "zh", "repeated_punctuation") == [("!!", ("！",))]
    assert spans("Great!!!", "en", "repeated_punctuation") == [("!!!", ("!",))]


def test_repeated_punctuation_negative() -> None:
    for s in ["真的吗？！", "他走了……", "好！", "What?!"]:
        assert hints(s, "zh", "repeated_punctuation") == [], s


def test_mixed_quotes() -> None:
    s = "他说：“走吧”，她说：「好」。"
    [h] = hints(s, "zh", "mixed_quotes")
    assert (h.start, h.end, h.kind) == (s.index("「"), s.index("「") + 1, "punctuation")
    assert hints("他说：“走吧”，她说：“好”。", "zh", "mixed_quotes") == []
    assert hints("「他说：『走吧』。」", "zh", "mixed_quotes") == []
    assert hints("「我喜欢Harry’s书。」", "zh", "mixed_quotes") == []


def test_unbalanced_quote() -> None:
    s = "他说走吧”然后走了。"
    [h] = hints(s, "zh", "unbalanced_quote")
    assert (h.start, h.end, h.message) == (4, 5, "这个后引号没有配对。")
    # an opener is unclosed only once the paragraph is finished
    s = "他说：“我们走吧。"
    assert hints(s, "zh", "unbalanced_quote") == []
    assert hints(s, "zh", "unbalanced_quote", is_last_in_paragraph=True, is_last_in_text=True) == []
    [h] = hints(s, "zh", "unbalanced_quote", is_last_in_paragraph=True)
    assert (h.start, h.end, h.message) == (3, 4, "这个前引号没有配对。")


def test_unbalanced_quote_negative_apostrophes_and_ascii() -> None:
    for s, lang in [
        ("I don’t know.", "en"),
        ("The students’ books are here.", "en"),
        ("我喜欢Harry’s书。", "zh"),
        ('他说"血槽”空了。', "zh"),
    ]:
        assert hints(s, lang, "unbalanced_quote", is_last_in_paragraph=True) == [], s
    [h] = hints("He said “no.", "en", "unbalanced_quote", is_last_in_paragraph=True)
    assert h.message == "This opening quotation mark has no partner."


def test_unbalanced_quote_negative() -> None:
    # quotes spanning sentences: the closer sits in the final closing run
    assert hints("你也来吧。”", "zh", "unbalanced_quote", is_last_in_paragraph=True) == []
    assert hints("他说：“走吧。”", "zh", "unbalanced_quote", is_last_in_paragraph=True) == []


def test_unbalanced_bracket() -> None:
    assert spans("我读了《西游记，很好看。", "zh", "unbalanced_bracket") == [("《", ())]
    assert spans("他（其实来了。", "zh", "unbalanced_bracket") == [("（", ())]
    assert spans("他其实）来了。", "zh", "unbalanced_bracket") == [("）", ())]
    assert hints("我来自初二（4)班。", "zh", "unbalanced_bracket", is_last_in_paragraph=True) == []
    [h] = hints("It (was fine.", "en", "unbalanced_bracket")
    assert h.message == "Unmatched bracket “(”."


def test_unbalanced_bracket_negative() -> None:
    for s, lang in [
        ("我读了《西游记》。", "zh"),
        ("1）我们要努力。", "zh"),
        ("We need 1) money 2) time.", "en"),
        ("他（正在写", "zh"),  # still typing: the last sentence of the text
        ("(He was late.)", "en"),
        ("我来自初二（4)班。", "zh"),
    ]:
        assert hints(s, lang, "unbalanced_bracket", is_last_in_text=True) == [], s


def test_space_between_cjk() -> None:
    s = "我们 走吧，好　的。"
    assert [(h.start, h.end, h.suggestions) for h in hints(s, "zh", "space_between_cjk")] == [
        (2, 3, ("",)),
        (7, 8, ("",)),
    ]
    assert hints("我喜欢 Harry Potter 这本书。", "zh", "space_between_cjk") == []


def test_space_between_cjk_negative() -> None:
    for s in ["真正的勇士——　鲁迅", "他说—— 好的。", "中文 English 中文。"]:
        assert hints(s, "zh", "space_between_cjk") == [], s


def test_overused_connective() -> None:
    s = "然后我们吃饭，然后睡觉，然后又起床了。"
    [h] = hints(s, "zh", "overused_connective")
    assert (h.start, h.end, h.kind, h.severity) == (12, 14, "style", "info")
    assert h.message == "一句话里用了3次“然后”，可以删去一些，或换用其他连接方式。"
    assert hints("然后我们吃饭，然后睡觉。", "zh", "overused_connective") == []


def test_long_sentence_zh() -> None:
    long = "我们" * 41 + "。"
    [h] = hints(long, "zh", "long_sentence")
    assert (h.start, h.end, h.kind, h.severity) == (0, len(long), "length", "info")
    assert "82" in h.message
    [h] = hints("我们" * 61 + "。", "zh", "long_sentence")
    assert h.severity == "warning"
    assert hints("我们" * 40 + "。", "zh", "long_sentence") == []
    assert hints("I love it. " * 10, "zh", "long_sentence") == []  # Latin words count once


def test_missing_end_punctuation_zh() -> None:
    s = "我今天很开心，因为考试考得很好"
    [h] = hints(s, "zh", "missing_end_punctuation", is_last_in_paragraph=True)
    assert (h.start, h.end) == (len(s) - 1, len(s))
    assert h.suggestions == ("好。", "好！", "好？")
    [h] = hints(
        "你今天开心吗，我很好奇你去不去呢",
        "zh",
        "missing_end_punctuation",
        is_last_in_paragraph=True,
    )
    assert h.suggestions == ("呢？", "呢。")
    [h] = hints("时间在流逝，", "zh", "missing_end_punctuation", is_last_in_paragraph=True)
    assert (h.start, h.suggestions) == (5, ("。",))


def test_missing_end_punctuation_zh_negative() -> None:
    s = "我今天很开心，因为考试考得很好"
    assert hints(s, "zh", "missing_end_punctuation") == []  # paragraph goes on
    assert (
        hints(s, "zh", "missing_end_punctuation", is_last_in_paragraph=True, is_last_in_text=True)
        == []
    )
    for title in ["我的妈妈", "——题记", "生命——无声的激情", "他说：", "他说：“走吧。”"]:
        assert hints(title, "zh", "missing_end_punctuation", is_last_in_paragraph=True) == [], title


# --- English rules --------------------------------------------------------------------


def test_repeated_word_en() -> None:
    [h] = hints("I saw the the cat.", "en", "repeated_word")
    assert (h.start, h.end, h.suggestions, h.message) == (6, 13, ("the",), "Repeated word “the”.")
    assert spans("The the cat sat.", "en", "repeated_word") == [("The the", ("The",))]
    assert hints("They had had enough of that that day.", "en", "repeated_word") == []
    assert hints("Then the theme changed.", "en", "repeated_word") == []


@pytest.mark.parametrize(
    ("sentence", "flagged", "fix"),
    [
        ("I ate a apple.", "a", "an"),
        ("An book is here.", "An", "A"),
        ("It is an university.", "an", "a"),
        ("He is a honest man.", "a", "an"),
        ("It took a hour.", "a", "an"),
        ("He is an European.", "an", "a"),
        ("It was a unusual day.", "a", "an"),
        ("A elephant came.", "A", "An"),
    ],
)
def test_a_an(sentence: str, flagged: str, fix: str) -> None:
    [h] = hints(sentence, "en", "a_an")
    assert sentence[h.start : h.end] == flagged and h.suggestions == (fix,)
    assert (h.kind, h.severity) == ("grammar", "error")


@pytest.mark.parametrize(
    "sentence",
    [
        "It is a university.",
        "It is a one-way street.",
        "He is an honest man in an hour.",
        "She is a European and a user of an umbrella.",
        "It is an FBI case and a UFO.",
        "Plan A is good.",
        "It was a historic day and an historic day.",
        "I got a B and an x-ray.",
        "I bought a of couple pens.",
    ],
)
def test_a_an_negative(sentence: str) -> None:
    assert hints(sentence, "en", "a_an") == []


def test_lowercase_start() -> None:
    [h] = hints("this is bad.", "en", "lowercase_start")
    assert (h.start, h.end, h.suggestions, h.kind) == (0, 1, ("T",), "spelling")
    assert spans('"why not?" he asked.', "en", "lowercase_start") == [("w", ("W",))]
    for s in ["This is fine.", "iPhones are great.", "e.g. this one.", "3rd place."]:
        assert hints(s, "en", "lowercase_start") == [], s
    assert hints("then I left.", "en", "lowercase_start", previous_sentence="I came;") == []  # type: ignore[arg-type]


def test_lowercase_i() -> None:
    s = "Then i said i'm fine and i."
    assert [(h.start, h.end, h.suggestions) for h in hints(s, "en", "lowercase_i")] == [
        (5, 6, ("I",)),
        (12, 13, ("I",)),
        (25, 26, ("I",)),
    ]
    assert hints("It is, i.e. a pi (i) in Wi-Fi.", "en", "lowercase_i") == []


def test_lowercase_i_not_reported_twice() -> None:
    assert [h.code for h in hints("i went home.", "en")] == ["lowercase_i"]


def test_double_space() -> None:
    [h] = hints("It is  fine.", "en", "double_space")
    assert (h.start, h.end, h.suggestions, h.severity) == (5, 7, (" ",), "info")
    assert hints("It is fine.", "en", "double_space") == []


def test_space_before_punctuation() -> None:
    s = "It is fine , really ."
    assert [
        (h.start, h.end, h.suggestions) for h in hints(s, "en", "space_before_punctuation")
    ] == [
        (10, 11, ("",)),
        (19, 20, ("",)),
    ]
    for s in ["He said ... nothing at 10 :30 :) .5 more.", "A rock . . . which looks odd."]:
        assert hints(s, "en", "space_before_punctuation") == [], s


def test_long_sentence_en() -> None:
    s = " ".join(["word"] * 41) + "."
    [h] = hints(s, "en", "long_sentence")
    assert (h.start, h.end, h.severity) == (0, len(s), "info")
    assert h.message == "This sentence has 41 words; consider splitting it."
    assert hints(" ".join(["word"] * 40) + ".", "en", "long_sentence") == []


def test_missing_end_punctuation_en() -> None:
    s = "We went home"
    [h] = hints(s, "en", "missing_end_punctuation", is_last_in_paragraph=True)
    assert (h.start, h.end, h.suggestions) == (11, 12, ("e.", "e!", "e?"))
    assert h.message == "The last sentence of the paragraph has no end punctuation."
    q = "Why did we go home after the long and boring game"
    [h] = hints(q, "en", "missing_end_punctuation", is_last_in_paragraph=True)
    assert h.suggestions == ("e?", "e.")
    long = "We went home after the game and then we ate dinner with our friends"
    assert len(hints(long, "en", "missing_end_punctuation", is_last_in_paragraph=True)) == 1
    assert hints(long, "en", "missing_end_punctuation") == []
    for s in ["Dear Tom,", "My Summer Holiday", "We went home."]:
        assert hints(s, "en", "missing_end_punctuation", is_last_in_paragraph=True) == [], s


# --- general properties ---------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet="我们的了是好天地人然后 ,.!?:;，。！？“”「」（）()《》aAnI i the", max_size=60
    ),
    st.sampled_from(["zh", "en"]),
    st.booleans(),
    st.booleans(),
)
def test_hints_are_well_formed(sentence: str, lang: str, last_p: bool, last_t: bool) -> None:
    found = rule_hints(sentence, lang, is_last_in_paragraph=last_p, is_last_in_text=last_t)  # type: ignore[arg-type]
    assert found == sorted(found, key=lambda h: (h.start, h.end, h.code))
    for h in found:
        assert 0 <= h.start <= h.end <= len(sentence)
        assert h.kind == RULES[h.code].kind and h.severity in SEVERITIES
        assert h.message and 0 < h.confidence <= 1


def test_empty_sentence() -> None:
    assert rule_hints("", "zh") == [] and rule_hints("   ", "en", is_last_in_paragraph=True) == []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.sampled_from(["zh", "en"]), st.booleans(), st.booleans())
def test_any_unicode_is_safe(sentence: str, lang: str, last_p: bool, last_t: bool) -> None:
    found = rule_hints(sentence, lang, is_last_in_paragraph=last_p, is_last_in_text=last_t)  # type: ignore[arg-type]
    for h in found:
        assert 0 <= h.start <= h.end <= len(sentence)
