"""The page that explains each hint code (``GET /hints``; editors link to ``/hints#<code>``).

Diagnostics in editors carry ``codeDescription.href`` pointing here. The page is
built from the rule table (kind and severity per code) plus the model codes, so a
new rule without an explanation shows up in the test that checks every code.
"""

from __future__ import annotations

import html

from server.hints import FAULTY_TYPES
from server.rules import RULES

__all__ = ["EXPLANATIONS", "hint_codes", "render"]

# code → (Chinese name, explanation in Chinese, explanation in English)
EXPLANATIONS: dict[str, tuple[str, str, str]] = {
    "misspelling": (
        "错别字",
        "句子模型认为这个字很可能写错了，并给出最可能的正确写法（例：我门 → 我们）。",
        "The sentence model believes this character is a typo and suggests the likely one.",
    ),
    "faulty_sentence": (
        "病句",
        "句子模型认为这句话可能有语病，但说不准是哪一类。请通读一遍。",
        "The sentence may be faulty; the model cannot tell which kind.",
    ),
    "repeated_word": (
        "词语重复",
        "同一个词紧挨着出现了两次（例：我们我们），通常是多打了一遍；叠词不算。",
        "The same word twice in a row, usually typed twice (reduplication is spared).",
    ),
    "long_sentence": (
        "长句",
        "句子超过80个字（英文40个词），读起来吃力，可以考虑拆开。",
        "Over 80 characters (40 English words); consider splitting it.",
    ),
    "missing_end_punctuation": (
        "缺少句末标点",
        "段落的最后一句没有句号、问号或感叹号（标题除外）。",
        "The last sentence of a paragraph has no end punctuation (titles are spared).",
    ),
    "repeated_punctuation": (
        "标点重复",
        "同一个标点连用（例：。。或！！！），用一个就够了。",
        "The same punctuation mark repeated; one is enough.",
    ),
    "unbalanced_bracket": ("括号不配对", "括号缺少另一半。", "A bracket without its partner."),
    "unbalanced_quote": ("引号不配对", "引号缺少另一半。", "A quotation mark without its partner."),
    "halfwidth_punctuation": (
        "半角标点",
        "中文句子里用了英文的半角标点（, . ? !），应改为全角（，。？！）。",
        "Half-width punctuation next to Chinese; use the full-width form.",
    ),
    "mixed_quotes": (
        "引号混用",
        "同一句里混用了“”和「」，请统一使用一种。",
        "Two styles of quotation marks in one sentence.",
    ),
    "space_between_cjk": (
        "多余空格",
        "汉字之间不需要空格。",
        "No spaces between Chinese characters.",
    ),
    "overused_connective": (
        "连接词过多",
        "一句话里“然后、接着、于是、后来”用了三次以上，可以删去一些。",
        "A connective (然后, 接着 …) used three times or more in one sentence.",
    ),
    "a_an": ("冠词", "英文冠词 a/an 与后面单词的读音不符。", "Use “an” before a vowel sound."),
    "lowercase_start": (
        "首字母大写",
        "英文句子应以大写字母开头。",
        "A sentence starts with a capital letter.",
    ),
    "lowercase_i": ("首字母大写", "代词 I 总是大写。", "The pronoun “I” is always capital."),
    "double_space": ("多余空格", "单词之间多了空格。", "More than one space between words."),
    "more": (
        "更多提示",
        "同类问题太多时只标出前几处，其余合为一条；全文提示太多时，后面的先不显示，"
        "改好前面的问题后会陆续出现。",
        "Too many hints of one kind in a sentence, or in the document: the rest are "
        "summarised in one hint and appear as the ones above are fixed.",
    ),
    "space_before_punctuation": (
        "多余空格",
        "标点前不需要空格。",
        "No space before punctuation.",
    ),
}
for _code, (_kind, _zh, _en, _advice) in FAULTY_TYPES.items():
    EXPLANATIONS[f"faulty_{_code.lower()}"] = (
        _zh,
        f"句子模型认为这句话可能{_zh}。{_advice}",
        f"The sentence may be faulty: {_en}.",
    )


def hint_codes() -> dict[str, tuple[str, str]]:
    """Every hint code the server can send → (kind, default severity)."""
    codes = {code: (info.kind, info.severity) for code, info in RULES.items()}
    codes["misspelling"] = ("spelling", "error")
    codes["faulty_sentence"] = ("grammar", "info")
    codes["more"] = ("style", "info")  # server.hintcaps: the summary beyond the caps
    for code, (kind, *_rest) in FAULTY_TYPES.items():
        codes[f"faulty_{code.lower()}"] = (kind, "info")
    return codes


def render() -> str:
    rows = []
    for code, (kind, severity) in sorted(hint_codes().items()):
        name, zh, en = EXPLANATIONS.get(code, (code, "", ""))
        rows.append(
            f'<section id="{html.escape(code)}"><h2>{html.escape(name)} '
            f"<code>{html.escape(code)}</code></h2>"
            f"<p>{html.escape(zh)}</p><p lang=en>{html.escape(en)}</p>"
            f"<p class=meta>{html.escape(kind)} · {html.escape(severity)}</p></section>"
        )
    return (
        "<!doctype html><html lang=zh><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width'>"
        "<title>Inkstone 提示说明 · hint codes</title>"  # no inline style: the CSP forbids it
        "<h1>Inkstone 提示说明 <small>hint codes</small></h1>" + "".join(rows) + "</html>"
    )
