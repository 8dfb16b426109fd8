"""Markdown and LaTeX masking that keeps every offset where it was.

What is not prose (front matter, code, URLs, HTML, math, LaTeX commands and
comments) is replaced by spaces, one per code point, and line breaks are kept:
the masked text has the same length and the same lines as the editor's text, so
a position in one is the same position in the other. The server then sees
prose only; the bridge also drops any hint that overlaps a masked span (the
spaces themselves could trip a spacing rule).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

__all__ = ["MaskKind", "mask", "mask_kind", "masked_spans"]

MaskKind = Literal["markdown", "latex", "none"]

_MARKDOWN_IDS = {"markdown", "md", "rmd", "quarto", "mdx", "vimwiki"}
_LATEX_IDS = {"latex", "tex", "plaintex", "context", "bibtex"}
_MARKDOWN_EXT = (".md", ".markdown", ".mdx", ".rmd", ".qmd")
_LATEX_EXT = (".tex", ".ltx", ".sty", ".cls")

_URL = r"(?:https?|ftp|file|mailto):[^\s<>\"'）」】》，。]+"
_MARKDOWN = re.compile(
    "|".join(
        (
            r"\A---[ \t]*\r?\n(?:.*\r?\n)*?(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)",  # YAML front matter
            r"\A\+\+\+[ \t]*\r?\n(?:.*\r?\n)*?\+\+\+[ \t]*(?:\r?\n|\Z)",  # TOML front matter
            r"^[ \t]*(`{3,}|~{3,})[^\n]*\n(?:.*\n)*?[ \t]*\1[ \t]*$",  # fenced code
            r"^[ \t]*(?:`{3,}|~{3,})[^\n]*(?:\n.*)*\Z",  # an unclosed fence runs to the end
            r"(`+)[^`\n]+?\2",  # inline code
            r"<!--[\s\S]*?-->",  # HTML comment
            r"</?[A-Za-z][^<>\n]*>",  # HTML tag
            r"\$\$[\s\S]+?\$\$",  # display math
            r"(?<![\\$])\$[^\s$][^$\n]*?(?<![\s\\])\$",  # inline math
            r"\]\([^)\n]*\)",  # link target
            r"!?\[(?=[^\]\n]*\]\()",  # the bracket opening a link or image
            r"^\[[^\]\n]+\]:[ \t]+\S+.*$",  # link reference definition
            r"<" + _URL + r">",  # autolink
            _URL,
            r"^[ \t]*#{1,6}(?=[ \t])",  # heading marker
            r"^[ \t]*(?:[-*+]|\d{1,9}[.)])(?=[ \t])",  # list marker
            r"^[ \t]*>",  # block quote marker
        )
    ),
    re.MULTILINE,
)
_LATEX = re.compile(
    "|".join(
        (
            r"(?<!\\)%[^\n]*",  # comment
            r"\\begin\{(equation|align|gather|multline|eqnarray|verbatim|lstlisting|minted|"
            r"tikzpicture|displaymath|math)(\*?)\}[\s\S]*?\\end\{\1\2\}",
            r"\$\$[\s\S]+?\$\$",
            r"\\\[[\s\S]+?\\\]",
            r"\\\([\s\S]+?\\\)",
            r"(?<!\\)\$[^$]+?(?<!\\)\$",
            # a command with its optional arguments; the braces of its text argument stay
            # masked, the text inside them is checked
            r"\\(?:begin|end|label|ref|eqref|cite[a-z]*|includegraphics|input|include|"
            r"usepackage|documentclass|url|href|bibliography[a-z]*)\*?(?:\[[^\]\n]*\])*"
            r"(?:\{[^{}\n]*\})?",
            r"\\[A-Za-z@]+\*?(?:\[[^\]\n]*\])*\{?",
            r"\\[^A-Za-z\s]",
            r"(?<!\\)[{}]",
            _URL,
        )
    ),
    re.MULTILINE,
)


_BLANK = re.compile(r"[^\r\n]")


def mask_kind(language_id: str, uri: str, setting: str = "auto") -> MaskKind:
    """Which masking applies: the ``mask`` setting wins, else the language id or extension."""
    if setting in ("markdown", "latex", "none"):
        return setting  # type: ignore[return-value]
    if setting in ("off", "false"):
        return "none"
    lang = language_id.lower()
    path = uri.lower().split("?")[0]
    if lang in _MARKDOWN_IDS or path.endswith(_MARKDOWN_EXT):
        return "markdown"
    if lang in _LATEX_IDS or path.endswith(_LATEX_EXT):
        return "latex"
    return "none"


def _spans(pattern: re.Pattern[str], text: str) -> Iterable[tuple[int, int]]:
    for m in pattern.finditer(text):
        if m.end() > m.start():
            yield m.start(), m.end()


def masked_spans(text: str, kind: MaskKind) -> list[tuple[int, int]]:
    """Sorted, non-overlapping code point spans that are not prose."""
    if kind == "none":
        return []
    pattern = _MARKDOWN if kind == "markdown" else _LATEX
    return list(_spans(pattern, text))


def mask(text: str, kind: MaskKind) -> tuple[str, list[tuple[int, int]]]:
    """The text with its non-prose spans blanked (same length, same lines), and the spans."""
    spans = masked_spans(text, kind)
    if not spans:
        return text, spans
    parts: list[str] = []
    last = 0
    for start, end in spans:
        parts.append(text[last:start])
        chunk = text[start:end]
        multiline = "\n" in chunk or "\r" in chunk
        parts.append(_BLANK.sub(" ", chunk) if multiline else " " * len(chunk))
        last = end
    parts.append(text[last:])
    return "".join(parts), spans
