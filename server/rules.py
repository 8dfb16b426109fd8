"""Rule-based sentence hints (no model), with messages in the document's language.

``rule_hints`` looks at one sentence as produced by ``engines.segment`` and returns
hints whose offsets are code points relative to that sentence. The rules are tuned
for precision over recall: a false alarm annoys a student more than a missed one,
so each rule stays silent where the text is ambiguous (legitimate reduplication
such as 高高兴兴/讨论讨论, decimals, list markers, English letter names, ...).

Rule codes — ``code``: kind, severity, languages:

* ``repeated_word``: grammar, warning, zh/en — 我们我们, 的的, "the the"
* ``long_sentence``: length, info (warning beyond 1.5x the limit), zh/en —
  more than 80 characters (a Latin word counts as one) / 40 words
* ``missing_end_punctuation``: punctuation, warning, zh/en — the last sentence of a
  finished paragraph (never the last sentence of the text); titles are spared
* ``repeated_punctuation``: punctuation, info for ！！/？？, warning for 。。/，，, zh/en
* ``unbalanced_bracket``: punctuation, warning, zh/en
* ``unbalanced_quote``: punctuation, warning, zh/en (curly/corner quotes only)
* ``halfwidth_punctuation``: punctuation, warning, zh — , . ? ! : ; next to Chinese
* ``mixed_quotes``: punctuation, info, zh — “” and 「」 in one sentence
* ``space_between_cjk``: punctuation, warning, zh
* ``overused_connective``: style, info, zh — 然后/接着/于是/后来 three times or more
* ``a_an``: grammar, error, en
* ``lowercase_start``: spelling, warning, en
* ``lowercase_i``: spelling, error, en
* ``double_space``: punctuation, info, en
* ``space_before_punctuation``: punctuation, warning, en

的/地/得 is deliberately not checked: no rule we could write is precise enough.

Chinese word rules use jieba. jieba loads its dictionary on first use (about 1 s and
some file reads); call ``warm_up()`` at server start so the first student does not
pay for it. jieba is only consulted for sentences that contain an immediate
repetition or a repeated connective, so most sentences never touch it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple

from engines.language import is_cjk

__all__ = ["MESSAGES", "RULES", "RuleHint", "RuleInfo", "rule_hints", "warm_up"]

Lang = Literal["zh", "en"]


@dataclass(frozen=True, slots=True)
class RuleHint:
    """One hint; ``start``/``end`` are code point offsets into the sentence."""

    kind: str
    code: str
    severity: str
    start: int
    end: int
    message: str
    suggestions: tuple[str, ...]
    confidence: float


class RuleInfo(NamedTuple):
    kind: str
    severity: str
    confidence: float


RULES: Final[dict[str, RuleInfo]] = {
    "repeated_word": RuleInfo("grammar", "warning", 0.9),
    "long_sentence": RuleInfo("length", "info", 0.9),
    "missing_end_punctuation": RuleInfo("punctuation", "warning", 0.8),
    "repeated_punctuation": RuleInfo("punctuation", "info", 0.9),
    "unbalanced_bracket": RuleInfo("punctuation", "warning", 0.8),
    "unbalanced_quote": RuleInfo("punctuation", "warning", 0.75),
    "halfwidth_punctuation": RuleInfo("punctuation", "warning", 0.9),
    "mixed_quotes": RuleInfo("punctuation", "info", 0.7),
    "space_between_cjk": RuleInfo("punctuation", "warning", 0.85),
    "overused_connective": RuleInfo("style", "info", 0.7),
    "a_an": RuleInfo("grammar", "error", 0.9),
    "lowercase_start": RuleInfo("spelling", "warning", 0.8),
    "lowercase_i": RuleInfo("spelling", "error", 0.95),
    "double_space": RuleInfo("punctuation", "info", 0.95),
    "space_before_punctuation": RuleInfo("punctuation", "warning", 0.9),
}

# Message templates, by code then language; fields are filled with str.format.
MESSAGES: Final[dict[str, dict[str, str]]] = {
    "repeated_word": {
        "zh": "“{word}”重复出现，可能多打了一遍。",
        "en": "Repeated word “{word}”.",
    },
    "long_sentence": {
        "zh": "这句话有{n}个字，读起来较吃力，可以考虑拆成几句。",
        "en": "This sentence has {n} words; consider splitting it.",
    },
    "missing_end_punctuation": {
        "zh": "段落的最后一句缺少句末标点。",
        "en": "The last sentence of the paragraph has no end punctuation.",
    },
    "repeated_punctuation": {
        "zh": "标点“{mark}”连用了{n}次，用一个就够了。",
        "en": "“{mark}” is repeated {n} times; one is enough.",
    },
    "unbalanced_bracket": {
        "zh": "括号“{mark}”没有配对。",
        "en": "Unmatched bracket “{mark}”.",
    },
    "unbalanced_quote": {
        "zh": "这个{side}引号没有配对。",
        "en": "This {side} quotation mark has no partner.",
    },
    "halfwidth_punctuation": {
        "zh": "中文句子里应使用全角标点“{full}”，而不是半角的“{half}”。",
    },
    "mixed_quotes": {
        "zh": "同一句中混用了“”和「」两种引号，请统一使用一种。",
    },
    "space_between_cjk": {
        "zh": "汉字之间不需要空格。",
    },
    "overused_connective": {
        "zh": "一句话里用了{n}次“{word}”，可以删去一些，或换用其他连接方式。",
    },
    "a_an": {
        "en": "Use “{right}” before “{word}”.",
    },
    "lowercase_start": {
        "en": "A sentence should start with a capital letter.",
    },
    "lowercase_i": {
        "en": "The pronoun “I” is always written as a capital letter.",
    },
    "double_space": {
        "en": "More than one space between words.",
    },
    "space_before_punctuation": {
        "en": "No space is needed before “{mark}”.",
    },
}

ZH_LONG_SENTENCE: Final = 80  # characters (a Latin word counts as one)
EN_LONG_SENTENCE: Final = 40  # words
OVERUSE_THRESHOLD: Final = 3

_END_MARKS: Final = frozenset("。！？!?；;….．‼⁇⁈⁉｡：:—～~·⋯")
_CLOSERS: Final = frozenset("”’」』）)]】》〉〕〗｝}\"'")
_TERMINATORS: Final = frozenset("。！？!?；;….．‼⁇⁈⁉｡")
_ZH_PUNCT: Final = frozenset("。，、；：！？…—“”‘’「」『』（）《》〈〉【】〔〕〖〗")
_FULLWIDTH: Final = {",": "，", ".": "。", "?": "？", "!": "！", ":": "：", ";": "；"}
_BRACKETS: Final = {"（": "）", "【": "】", "[": "]", "《": "》", "〈": "〉", "{": "}"}
_BRACKET_WIDTH: Final = {"(": "（", ")": "）", "［": "[", "］": "]", "｛": "{", "｝": "}"}
_QUOTES: Final = {"“": "”", "‘": "’", "「": "」", "『": "』"}
_EN_QUOTES: Final = {"“": "”"}  # ‘’ double as apostrophes in English
_SIDES: Final = {"zh": ("前", "后"), "en": ("opening", "closing")}


def _hint(
    code: str,
    lang: Lang,
    start: int,
    end: int,
    suggestions: tuple[str, ...] = (),
    *,
    severity: str | None = None,
    **fields: object,
) -> RuleHint:
    info = RULES[code]
    message = MESSAGES[code][lang].format(**fields)
    return RuleHint(
        info.kind,
        code,
        severity or info.severity,
        start,
        end,
        message,
        suggestions,
        info.confidence,
    )


def rule_hints(
    sentence: str,
    lang: Lang,
    *,
    is_last_in_paragraph: bool = False,
    is_last_in_text: bool = False,
    previous_sentence: str = "",
) -> list[RuleHint]:
    """All rule hints for one sentence, sorted by position.

    ``is_last_in_paragraph``/``is_last_in_text`` gate the rules that need to know the
    sentence is finished (missing end punctuation, unclosed quotes): the last
    sentence of the whole text is where the student is typing, so it is spared.
    ``previous_sentence`` (optional, the sentence before in the same paragraph)
    lets the English capitalisation rule skip a clause that follows ``;``, which
    the segmenter treats as a sentence end.
    """
    if not sentence.strip():
        return []
    finished = is_last_in_paragraph and not is_last_in_text
    hints: list[RuleHint] = []
    if lang == "zh":
        hints += _zh_repeats_and_connectives(sentence)
        hints += _zh_halfwidth(sentence)
        hints += _zh_mixed_quotes(sentence)
        hints += _zh_space_between_cjk(sentence)
    else:
        hints += _en_repeated_word(sentence)
        hints += _en_a_an(sentence)
        hints += _en_lowercase_start(sentence, previous_sentence)
        hints += _en_lowercase_i(sentence)
        hints += _en_spacing(sentence)
    hints += _repeated_punctuation(sentence, lang)
    hints += _unbalanced(sentence, lang, finished=finished, last_in_text=is_last_in_text)
    hints += _long_sentence(sentence, lang)
    if finished:
        hints += _missing_end(sentence, lang)
    hints.sort(key=lambda h: (h.start, h.end, h.code))
    return hints


# --- jieba, loaded lazily -------------------------------------------------------------

_jieba_lock = threading.Lock()
_jieba: tuple[Callable[[str], Iterator[tuple[str, int, int]]], dict[str, str]] | None = None


def _load_jieba() -> tuple[Callable[[str], Iterator[tuple[str, int, int]]], dict[str, str]]:
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                import jieba  # type: ignore[import-untyped]
                import jieba.posseg  # type: ignore[import-untyped]

                jieba.setLogLevel(60)
                jieba.initialize()
                tags: dict[str, str] = jieba.posseg.dt.word_tag_tab
                _jieba = (jieba.tokenize, tags)
    return _jieba


def warm_up() -> None:
    """Load jieba's dictionary and tag table now (about 1 s) instead of on first use."""
    _load_jieba()


# --- Chinese rules --------------------------------------------------------------------

# Dictionary tags whose words do not reduplicate (pronouns, conjunctions,
# prepositions, particles, common nouns, time and place words, idioms). Verbs
# (讨论讨论), adjectives (雪白雪白), adverbs (非常非常), numerals/classifiers
# (一个一个), onomatopoeia (滴答滴答) and set phrases (你好你好) are left alone.
_NO_REDUPLICATION_TAGS: Final = frozenset(
    {"r", "c", "p", "n", "ns", "nt", "nz", "t", "s", "f", "i"}
)
# Single characters whose doubling is almost always a typo (的的, 了了, 是是).
_DOUBLE_CHAR_TYPOS: Final = frozenset("的了是在和与及就也都很吗呢被从给向")
# Pronouns that legitimately double as placeholders or fillers: 什么什么, 哪里哪里, 这个这个.
_PLACEHOLDER_WORDS: Final = frozenset(
    {"什么", "哪里", "哪儿", "这样", "那样", "怎样", "怎么", "如此", "某某", "多少", "这个", "那个"}
)
_CONNECTIVES: Final = ("然后", "接着", "于是", "后来")
_CJK_REPEAT: Final = re.compile(r"([\u3400-\u9fff]{1,6})\1")


def _zh_repeats_and_connectives(s: str) -> list[RuleHint]:
    needs_repeat = _CJK_REPEAT.search(s) is not None
    overused = [w for w in _CONNECTIVES if s.count(w) >= OVERUSE_THRESHOLD]
    if not needs_repeat and not overused:
        return []  # the common case: jieba is not needed
    tokenize, tags = _load_jieba()
    tokens = list(tokenize(s))
    hints: list[RuleHint] = []
    if needs_repeat:
        hints += _zh_repeated_tokens(s, tokens, tags)
    for word in overused:
        positions = [(a, b) for w, a, b in tokens if w == word]
        if len(positions) >= OVERUSE_THRESHOLD:
            a, b = positions[OVERUSE_THRESHOLD - 1]
            hints.append(_hint("overused_connective", "zh", a, b, n=len(positions), word=word))
    return hints


def _zh_repeated_tokens(
    s: str, tokens: list[tuple[str, int, int]], tags: dict[str, str]
) -> list[RuleHint]:
    hints = []
    i = 0
    while i < len(tokens) - 1:
        word, start, _ = tokens[i]
        j = i + 1
        while j < len(tokens) and tokens[j][0] == word:
            j += 1
        run = j - i
        if run >= 2 and all(is_cjk(ch) for ch in word):
            end = tokens[j - 1][2]
            following = tokens[j][0] if j < len(tokens) else ""
            if _is_typo_repeat(s, word, start, end, run, tags, following):
                hints.append(_hint("repeated_word", "zh", start, end, (word,), word=word))
        i = j
    return hints


def _is_typo_repeat(
    s: str, word: str, start: int, end: int, run: int, tags: dict[str, str], following: str
) -> bool:
    if len(word) >= 2:
        tag = tags.get(word, "")
        if tag not in _NO_REDUPLICATION_TAGS or word in _PLACEHOLDER_WORDS:
            return False
        if following in ("地", "的"):
            return False  # 大口大口地吃, 一步一步的: reduplication used adverbially
        # 评论评论你们: a noun-tagged word used as a verb, with a pronoun object
        return not (tag.startswith("n") and tags.get(following) == "r")
    if run != 2 or word not in _DOUBLE_CHAR_TYPOS:
        return False  # 是是是 (agreement) or a character outside the list
    # AABB reduplication of a two-character word: 的的确确, 实实在在, 地地道道.
    before, after = s[max(0, start - 2) : start], s[end : end + 2]
    return not (
        (len(before) == 2 and before[0] == before[1]) or (len(after) == 2 and after[0] == after[1])
    )


def _is_zh_context(ch: str) -> bool:
    return ch != "" and (ch in _ZH_PUNCT or is_cjk(ch))


def _visible_before(s: str, i: int) -> str:
    while i > 0:
        i -= 1
        if not s[i].isspace():
            return s[i]
    return ""


def _visible_after(s: str, i: int) -> str:
    while i < len(s):
        if not s[i].isspace():
            return s[i]
        i += 1
    return ""


_HALFWIDTH_RUN: Final = re.compile(r"\.{2,}|[!?]+|[,.:;]")


def _zh_halfwidth(s: str) -> list[RuleHint]:
    hints = []
    for m in _HALFWIDTH_RUN.finditer(s):
        a, b = m.span()
        run = m.group()
        prev, nxt = _visible_before(s, a), _visible_after(s, b)
        if not (_is_zh_context(prev) or _is_zh_context(nxt)):
            continue
        left = s[a - 1] if a > 0 else ""
        right = s[b] if b < len(s) else ""
        if run in ".,:" and left.isdigit() and right.isdigit():
            continue  # 3.14, 1,000, 10:30
        if run == "." and s[:a].isdigit():
            continue  # list marker 1.
        if run == "." and left.isascii() and left.isalpha() and not s[a - 2 : a - 1].isalpha():
            continue  # initials and abbreviations: J.K.罗琳, U.S.
        if run == ":" and right in "/)(":
            continue  # URL scheme or emoticon
        if run[0] == ".":
            full = "……" if len(run) > 1 else "。"
        elif len(run) > 1 and len(set(run)) == 1:
            continue  # !! and ?? are reported by repeated_punctuation
        else:
            full = "".join(_FULLWIDTH[ch] for ch in run)
        hints.append(_hint("halfwidth_punctuation", "zh", a, b, (full,), full=full, half=run))
    return hints


def _zh_mixed_quotes(s: str) -> list[RuleHint]:
    curly = next((i for i, ch in enumerate(s) if ch in "“”‘’" and not _is_apostrophe(s, i)), -1)
    corner = next((i for i, ch in enumerate(s) if ch in "「」『』"), -1)
    if curly < 0 or corner < 0:
        return []
    at = max(curly, corner)
    return [_hint("mixed_quotes", "zh", at, at + 1)]


def _zh_space_between_cjk(s: str) -> list[RuleHint]:
    hints = []
    for m in re.finditer(r"\s+", s):
        a, b = m.span()
        before, after = s[a - 1 : a], s[b : b + 1]
        if before in ("—", "") or after in ("—", ""):
            continue  # "——　鲁迅": spacing around a dash is a typographic choice
        if _is_zh_context(before) and _is_zh_context(after):
            hints.append(_hint("space_between_cjk", "zh", a, b, ("",)))
    return hints


# --- English rules --------------------------------------------------------------------

_EN_REPEAT: Final = re.compile(r"\b([A-Za-z]+(?:['’][A-Za-z]+)?)(\s+)(\1)\b", re.IGNORECASE)
# Doublings that are usually intended: "had had", "that that", "bye bye", "very very".
_EN_REPEAT_OK: Final = frozenset(
    {"had", "that", "bye", "ha", "haha", "no", "yes", "yeah", "very", "really", "so", "far",
     "more", "much", "many", "again", "over", "blah", "knock", "tick", "ding", "ho", "la"}
)  # fmt: skip


def _en_repeated_word(s: str) -> list[RuleHint]:
    hints = []
    for m in _EN_REPEAT.finditer(s):
        first = m.group(1)
        if first.lower() in _EN_REPEAT_OK:
            continue
        hints.append(_hint("repeated_word", "en", m.start(), m.end(), (first,), word=first))
    return hints


_ARTICLE: Final = re.compile(r"(?<![\w/'’-])(a|an|A|An|AN)\s+([A-Za-z][A-Za-z'’-]*)")
_SILENT_H: Final = ("hour", "honest", "honor", "honour", "heir")
_UNCERTAIN_H: Final = ("herb", "histor", "hotel", "humble")  # dialects differ
# u- and similar words that start with a "you"/"w" sound and take "a".
_A_VOWEL_LETTER: Final = (
    "union", "uniq", "unit", "univers", "uniform", "unif", "unicorn", "unicycle",
    "unilateral", "unison", "use", "usu", "usur", "uten", "util", "utop", "uter", "uri",
    "ura", "ure", "uku", "ukr", "ubiq", "eu", "ewe", "one-", "ouija",
)  # fmt: skip
_NOT_AFTER_ARTICLE: Final = frozenset(
    {"of", "and", "or", "is", "are", "was", "were", "if", "as", "at", "on", "it", "its",
     "to", "the", "an", "a", "up", "such", "so", "but", "by", "for", "from", "with"}
)  # fmt: skip
_AN_U: Final = ("un", "up", "ug", "ul", "um", "ush", "udd", "urb", "urg", "utt", "ult")


def _article_for(word: str) -> str | None:
    """'a', 'an', or None when the sound of ``word`` is not certain from its letters."""
    if len(word) < 2 or word.isupper() or (not word.isalpha() and "-" not in word):
        return None  # letters and acronyms are read by name: "an FBI agent", "a B"
    w = word.lower()
    if w in _NOT_AFTER_ARTICLE:
        return None  # "a of couple", "unfair an pretty": a typo of another kind
    if w in ("one", "once") or w.startswith(_A_VOWEL_LETTER):
        return "a"
    first = w[0]
    if first == "u":
        return "an" if w.startswith(_AN_U) else None
    if first in "aeio":
        return "an"
    if first == "h":
        if w.startswith(_SILENT_H):
            return "an"
        return None if w.startswith(_UNCERTAIN_H) else "a"
    if first == "x":
        return None  # "an x-ray", "a xylophone"
    return "a"


def _en_a_an(s: str) -> list[RuleHint]:
    hints = []
    for m in _ARTICLE.finditer(s):
        article, word = m.group(1), m.group(2)
        if article == "A" and m.start() > 0 and _visible_before(s, m.start()) not in "\"'“‘(":
            continue  # mid-sentence capital A is a label: "Plan A is", "grade A in"
        right = _article_for(word)
        if right is None or right == article.lower():
            continue
        fixed = right if article.islower() else right.capitalize()
        hints.append(_hint("a_an", "en", m.start(1), m.end(1), (fixed,), right=right, word=word))
    return hints


_FIRST_WORD: Final = re.compile(r"[\"'“‘(\[]*([^\s\"'”’)\]]+)")


def _en_lowercase_start(s: str, previous: str) -> list[RuleHint]:
    if previous.rstrip().rstrip("\"'”’)").endswith((";", ":", ",")):
        return []
    m = _FIRST_WORD.match(s)
    if m is None:
        return []
    word = m.group(1).rstrip(",.;:!?")
    if not (word.isalpha() and word.isascii() and word.islower()) or word == "i":
        return []  # iPhone, e.g., www.x.com, 3rd, and "i" (lowercase_i reports it)
    at = m.start(1)
    return [_hint("lowercase_start", "en", at, at + 1, (s[at].upper(),))]


_LOWER_I: Final = re.compile(r"(?<![\w.\-/(])i(?=['’](?:m|ve|ll|d)\b|[\s,;:!?\"”]|$|\.(?:\s|$))")


def _en_lowercase_i(s: str) -> list[RuleHint]:
    return [_hint("lowercase_i", "en", m.start(), m.end(), ("I",)) for m in _LOWER_I.finditer(s)]


_DOUBLE_SPACE: Final = re.compile(r"(?<=\S)[ \t\u00a0]{2,}(?=\S)")
_SPACE_BEFORE: Final = re.compile(r"(?<=[A-Za-z0-9])[ \t]+([,.;:!?])")


def _en_spacing(s: str) -> list[RuleHint]:
    hints = [
        _hint("double_space", "en", m.start(), m.end(), (" ",)) for m in _DOUBLE_SPACE.finditer(s)
    ]
    for m in _SPACE_BEFORE.finditer(s):
        mark = m.group(1)
        after = s[m.end() : m.end() + 1]
        if mark == "." and (after == "." or after.isdigit() or s[m.end() : m.end() + 2] == " ."):
            continue  # " ..." and " . . ." ellipses, " .5"
        if mark == ":" and after and not after.isspace():
            continue  # emoticons ":)" and times/ratios
        hints.append(
            _hint("space_before_punctuation", "en", m.start(), m.start(1), ("",), mark=mark)
        )
    return hints


# --- rules for both languages ---------------------------------------------------------

_REPEATED_MARK: Final = re.compile(r"([。！？，、；：!?,;])\1+")


def _repeated_punctuation(s: str, lang: Lang) -> list[RuleHint]:
    hints = []
    for m in _REPEATED_MARK.finditer(s):
        mark = m.group(1)
        single = mark
        if lang == "zh" and mark in _FULLWIDTH:
            zh_near = _is_zh_context(_visible_before(s, m.start()))
            single = _FULLWIDTH[mark] if zh_near else mark
        severity = "info" if mark in "！？!?" else "warning"
        hints.append(
            _hint(
                "repeated_punctuation",
                lang,
                m.start(),
                m.end(),
                (single,),
                severity=severity,
                mark=mark,
                n=m.end() - m.start(),
            )
        )
    return hints


def _closing_tail_start(s: str) -> int:
    """Start of the trailing run of terminators/closers (``。”）`` at the end)."""
    i = len(s.rstrip())
    while i > 0 and (s[i - 1] in _TERMINATORS or s[i - 1] in _CLOSERS):
        i -= 1
    return i


def _unbalanced(s: str, lang: Lang, *, finished: bool, last_in_text: bool) -> list[RuleHint]:
    """Unmatched brackets and curly/corner quotes, reported only where certain.

    Quotes often span sentences (“走吧。你也来。”), so a quote closed in the final
    closing run may belong to an earlier sentence, and an opener only counts as
    unclosed when the paragraph ends here. Brackets rarely span sentences.
    """
    hints: list[RuleHint] = []
    tail = _closing_tail_start(s)
    ends_with_terminator = any(ch in _TERMINATORS for ch in s[tail:])
    quotes = _QUOTES if lang == "zh" else _EN_QUOTES
    if '"' in s:
        quotes = {}  # ASCII quotes pair with anything ("血槽”): not certain enough
    for pairs, code in ((_BRACKETS, "unbalanced_bracket"), (quotes, "unbalanced_quote")):
        closers = {c: o for o, c in pairs.items()}
        stack: list[tuple[str, int]] = []
        for i, raw in enumerate(s):
            ch = _BRACKET_WIDTH.get(raw, raw)  # （4) is mixed-width, not unmatched
            if ch == "’" and _is_apostrophe(s, i):
                continue
            if ch in pairs:
                stack.append((ch, i))
            elif ch in closers:
                if stack and stack[-1][0] == closers[ch]:
                    stack.pop()
                elif not stack or all(o != closers[ch] for o, _ in stack):
                    if i >= tail or _is_list_marker(s, i):
                        continue
                    side = _SIDES[lang][1]
                    hints.append(_hint(code, lang, i, i + 1, mark=raw, side=side))
        if code == "unbalanced_bracket":
            report_open = (ends_with_terminator and not last_in_text) or finished
        else:
            report_open = finished
        if report_open:
            side = _SIDES[lang][0]
            hints += [_hint(code, lang, i, i + 1, mark=s[i], side=side) for _, i in stack]
    return hints


def _is_apostrophe(s: str, i: int) -> bool:
    """``’`` in don’t, Harry’s, students’ (after a Latin letter)."""
    return i > 0 and s[i - 1].isascii() and s[i - 1].isalpha()


def _is_list_marker(s: str, i: int) -> bool:
    """``1)``, ``a)``, ``2）``, ``三）``: a short number or letter closed by a bracket,
    at the sentence start or after a space (inline lists: ``1) cost 2) time``)."""
    j = i
    while j > 0 and (s[j - 1].isdigit() or s[j - 1] in _ZH_NUMERALS) and i - j < 3:
        j -= 1
    if j == i and i > 0 and s[i - 1].isascii() and s[i - 1].isalpha():
        j -= 1  # a)
    return j < i and (j == 0 or s[j - 1].isspace() or s[j - 1] in "，,：:；;")


_ZH_NUMERALS: Final = frozenset("一二三四五六七八九十")


def _long_sentence(s: str, lang: Lang) -> list[RuleHint]:
    if lang == "zh":
        n = len(re.findall(r"[A-Za-z0-9]+|\S", s))
        n -= sum(1 for ch in s if ch in _ZH_PUNCT or ch in _FULLWIDTH)
        limit = ZH_LONG_SENTENCE
    else:
        n = len(re.findall(r"[A-Za-z0-9]+(?:['’-][A-Za-z0-9]+)*", s))
        limit = EN_LONG_SENTENCE
    if n <= limit:
        return []
    severity = "warning" if n > limit * 3 // 2 else "info"
    stripped = s.strip()
    start = s.index(stripped[0])
    return [_hint("long_sentence", lang, start, start + len(stripped), severity=severity, n=n)]


_QUESTION_WORDS: Final = frozenset(
    {"what", "why", "how", "who", "whom", "whose", "where", "when", "which", "do", "does",
     "did", "is", "are", "was", "were", "can", "could", "will", "would", "should", "shall"}
)  # fmt: skip


def _missing_end(s: str, lang: Lang) -> list[RuleHint]:
    body = s.rstrip()
    if not body:
        return []
    last = body[-1]
    core = body.rstrip("".join(_CLOSERS))
    if core and core[-1] in _END_MARKS:
        return []
    if _looks_like_title(body, lang):
        return []
    at = len(body) - 1
    if last in "，,、":
        if lang == "en":
            return []  # "Dear Tom," and "Best wishes," end paragraphs of letters
        return [_hint("missing_end_punctuation", lang, at, at + 1, ("。",))]
    if last in _CLOSERS:
        return [_hint("missing_end_punctuation", lang, at, at + 1)]
    if lang == "zh":
        marks = ("？", "。") if last in "吗呢" else ("。", "！", "？")
    else:
        first = body.split(maxsplit=1)[0].lower().strip("\"'“‘(")
        marks = ("?", ".") if first in _QUESTION_WORDS else (".", "!", "?")
    return [_hint("missing_end_punctuation", lang, at, at + 1, tuple(last + m for m in marks))]


_TITLE_MARKS: Final = frozenset("—－-~～·“”‘’《》「」\"'&")


def _looks_like_title(s: str, lang: Lang) -> bool:
    """A short line without sentence punctuation (in title case, for English) is likely
    a title, subtitle or an attribution (``——题记``), not a sentence missing its stop."""
    if any(not (ch.isalnum() or ch.isspace() or ch in _TITLE_MARKS) for ch in s):
        return False
    if s.startswith(("——", "--", "－－")):
        return True
    if lang == "zh":
        return len(s) <= 30
    words = s.split()  # English titles are in title case: "The Best Day of My Life"
    return len(words) <= 12 and all(w[0].isupper() for w in words if len(w) >= 4)
