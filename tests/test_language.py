"""Tests for engines.language."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engines.language import cjk_share, detect_lang, is_cjk


@pytest.mark.parametrize(
    "ch",
    [
        "中",
        "一",
        "龥",
        "\u9fff",
        "〇",
        "\u3400",  # Extension A
        "𠀀",  # Extension B U+20000
        "\U0002a700",  # C
        "\U0002b740",  # D
        "\U0002b820",  # E
        "\U0002ceb0",  # F
        "\U00030000",  # G
        "\U00031350",  # H
        "\U0002ebf0",  # I
        "\uf900",  # compatibility ideograph
        "\U0002f800",  # compatibility supplement
    ],
)
def test_is_cjk_true(ch: str) -> None:
    assert is_cjk(ch)


@pytest.mark.parametrize(
    "ch", ["a", "Z", "1", "。", "，", "“", "！", "ア", "あ", "한", "😀", " ", "\u3000", "Ａ", "⺀"]
)
def test_is_cjk_false(ch: str) -> None:
    assert not is_cjk(ch)


def test_is_cjk_needs_one_character() -> None:
    with pytest.raises(TypeError):
        is_cjk("中文")


@given(st.characters())
def test_is_cjk_agrees_with_unicode_names(ch: str) -> None:
    name = unicodedata.name(ch, "")
    if name.startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH")):
        assert is_cjk(ch)
    elif ch != "〇" and unicodedata.category(ch) != "Cn":
        # unassigned code points may be ideographs of a newer Unicode than Python's
        assert not is_cjk(ch)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("今天天气很好。", "zh"),
        ("I went to school today.", "en"),
        ("我喜欢Harry Potter这本书，因为它很有趣。", "zh"),
        ("我最喜欢的书是 Harry Potter and the Philosopher's Stone。", "zh"),
        ("My grandmother often said 百善孝为先, which means filial piety comes first.", "en"),
        ("", "zh"),
        ("   ", "zh"),
        ("123 456 !!!", "zh"),
        ("😀😀", "zh"),
        ("𠀀𠀀", "zh"),
        ("Ｈｅｌｌｏ ｗｏｒｌｄ", "en"),
        ("Café au lait, naïve résumé.", "en"),
    ],
)
def test_detect_lang(text: str, lang: str) -> None:
    assert detect_lang(text) == lang


def test_cjk_share() -> None:
    assert cjk_share("") is None
    assert cjk_share("ab中文") == 0.5
    assert cjk_share("中") == 1.0


@given(st.text(max_size=50))
def test_detect_lang_total(text: str) -> None:
    assert detect_lang(text) in ("zh", "en")


def _is_latin(ch: str) -> bool:
    cp = ord(ch)
    return ch.isalpha() and (ch.isascii() or 0xC0 <= cp <= 0x24F or 0xFF21 <= cp <= 0xFF5A)


@given(st.text(max_size=80))
def test_cjk_share_matches_reference(text: str) -> None:
    cjk = sum(1 for ch in text if is_cjk(ch))
    latin = sum(1 for ch in text if _is_latin(ch))
    expected = None if cjk + latin == 0 else cjk / (cjk + latin)
    assert cjk_share(text) == expected
