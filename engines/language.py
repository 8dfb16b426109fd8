"""Language detection for ``lang="auto"``: Chinese or English, nothing else.

The decision is the share of CJK ideographs among the "letters" of the text, where
letters are CJK ideographs plus Latin letters. One Chinese character carries about
as much as a short English word, so a Chinese essay quoting English names or a
sentence still has a high share, while an English essay quoting a Chinese proverb
stays well under the threshold: ``zh`` when the share is at least 10 %.

Text with no letters at all (empty, digits, punctuation, emoji) is ``zh``: the
product is Chinese-first and a fresh document starts empty, so the caller should
resolve ``auto`` again once the student has written something.
"""

from __future__ import annotations

import re
from typing import Final, Literal

__all__ = ["ZH_SHARE_THRESHOLD", "cjk_share", "detect_lang", "is_cjk"]

ZH_SHARE_THRESHOLD: Final = 0.10

# Unified ideographs and extensions A–I, compatibility ideographs and their supplement,
# and 〇 (U+3007, the ideographic zero of 二〇二五年).
_CJK_RANGES: Final[tuple[tuple[int, int], ...]] = (
    (0x3007, 0x3007),
    (0x3400, 0x4DBF),  # Extension A
    (0x4E00, 0x9FFF),  # URO
    (0xF900, 0xFAFF),  # Compatibility Ideographs
    (0x20000, 0x2A6DF),  # Extension B
    (0x2A700, 0x2B73F),  # Extension C
    (0x2B740, 0x2B81F),  # Extension D
    (0x2B820, 0x2CEAF),  # Extension E
    (0x2CEB0, 0x2EBEF),  # Extension F
    (0x2EBF0, 0x2EE5F),  # Extension I
    (0x2F800, 0x2FA1F),  # Compatibility Ideographs Supplement
    (0x30000, 0x3134F),  # Extension G
    (0x31350, 0x323AF),  # Extension H
)


def is_cjk(ch: str) -> bool:
    """Whether the single character ``ch`` is a CJK ideograph (not CJK punctuation).

    Raises ``TypeError`` unless ``ch`` has exactly one code point.
    """
    cp = ord(ch)
    if cp < 0x3007:
        return False
    if 0x4E00 <= cp <= 0x9FFF:  # the common case first
        return True
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


_CJK_RE: Final = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _CJK_RANGES) + "]")
# Basic Latin, Latin-1 letters (not × ÷), Latin Extended-A/B, fullwidth Latin.
_LATIN_RE: Final = re.compile(
    "[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\uff21-\uff3a\uff41-\uff5a]"
)


def cjk_share(text: str) -> float | None:
    """CJK ideographs / (CJK ideographs + Latin letters); ``None`` when there are none."""
    cjk = len(_CJK_RE.findall(text))
    latin = len(_LATIN_RE.findall(text))
    total = cjk + latin
    return None if total == 0 else cjk / total


def detect_lang(text: str) -> Literal["zh", "en"]:
    """``"zh"`` or ``"en"`` for ``text``; see the module docstring for the rule."""
    share = cjk_share(text)
    if share is None or share >= ZH_SHARE_THRESHOLD:
        return "zh"
    return "en"
