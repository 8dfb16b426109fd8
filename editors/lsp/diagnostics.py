"""Hints as LSP Diagnostics: code, source, labelled message, severity, link and data.

The label names the kind of problem in the document's language (错别字, 语序不当,
标点重复 …) and leads the message, so it shows in editors that print only the
message. Severities are gentle by default (a draft is not a compile error) and
configurable per hint kind; ``off`` hides a kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lsprotocol import types

from editors.lsp.sentences import LiveHint
from editors.lsp.text import LineIndex

__all__ = [
    "DEFAULT_SEVERITY",
    "LABELS",
    "SEVERITIES",
    "label",
    "to_diagnostic",
]

# hint code → (Chinese label, English label)
LABELS: dict[str, tuple[str, str]] = {
    "misspelling": ("错别字", "Misspelling"),
    "faulty_sentence": ("病句", "Faulty sentence"),
    "faulty_iwo": ("语序不当", "Word order"),
    "faulty_iwc": ("搭配不当", "Collocation"),
    "faulty_cm": ("成分残缺", "Missing constituent"),
    "faulty_cr": ("成分赘余", "Redundant constituent"),
    "faulty_sc": ("结构混乱", "Mixed structure"),
    "faulty_ill": ("不合逻辑", "Illogical"),
    "faulty_am": ("表意不明", "Ambiguous"),
    "repeated_word": ("词语重复", "Repeated word"),
    "long_sentence": ("长句", "Long sentence"),
    "missing_end_punctuation": ("缺少句末标点", "Missing end punctuation"),
    "repeated_punctuation": ("标点重复", "Repeated punctuation"),
    "unbalanced_bracket": ("括号不配对", "Unmatched bracket"),
    "unbalanced_quote": ("引号不配对", "Unmatched quote"),
    "halfwidth_punctuation": ("半角标点", "Half-width punctuation"),
    "mixed_quotes": ("引号混用", "Mixed quotes"),
    "space_between_cjk": ("多余空格", "Extra space"),
    "overused_connective": ("连接词过多", "Overused connective"),
    "a_an": ("冠词", "A/an"),
    "lowercase_start": ("首字母大写", "Capitalisation"),
    "lowercase_i": ("首字母大写", "Capital I"),
    "double_space": ("多余空格", "Double space"),
    "space_before_punctuation": ("多余空格", "Space before punctuation"),
    "more": ("更多提示", "More hints"),  # the server's summary beyond its hint caps
}

SEVERITIES: dict[str, types.DiagnosticSeverity | None] = {
    "error": types.DiagnosticSeverity.Error,
    "warning": types.DiagnosticSeverity.Warning,
    "information": types.DiagnosticSeverity.Information,
    "info": types.DiagnosticSeverity.Information,
    "hint": types.DiagnosticSeverity.Hint,
    "off": None,
}

# by hint kind: misspellings stand out, everything else stays quiet
DEFAULT_SEVERITY: dict[str, str] = {
    "spelling": "warning",
    "grammar": "information",
    "logic": "information",
    "punctuation": "information",
    "style": "hint",
    "length": "hint",
}


def label(code: str, lang: str) -> str:
    zh, en = LABELS.get(code, (code, code.replace("_", " ").capitalize()))
    return zh if lang == "zh" else en


def severity_for(kind: str, overrides: Mapping[str, str]) -> types.DiagnosticSeverity | None:
    name = overrides.get(kind) or DEFAULT_SEVERITY.get(kind, "information")
    return SEVERITIES.get(name.lower(), types.DiagnosticSeverity.Information)


def to_diagnostic(
    live: LiveHint,
    index: LineIndex,
    *,
    lang: str,
    severities: Mapping[str, str],
    docs_url: str | None,
) -> types.Diagnostic | None:
    """One Diagnostic for the editor's current text (``index``), or None when the kind is off."""
    hint = live.hint
    severity = severity_for(hint.kind, severities)
    if severity is None:
        return None
    start_line, start_char = index.position(live.start)
    end_line, end_char = index.position(live.end)
    separator = "：" if lang == "zh" else ": "
    data: dict[str, Any] = {"hint": hint.id, "suggestions": list(hint.suggestions)}
    return types.Diagnostic(
        range=types.Range(
            start=types.Position(line=start_line, character=start_char),
            end=types.Position(line=end_line, character=end_char),
        ),
        message=f"{label(hint.code, lang)}{separator}{hint.message}",
        severity=severity,
        code=hint.code,
        code_description=types.CodeDescription(href=f"{docs_url}#{hint.code}")
        if docs_url
        else None,
        source="inkstone",
        data=data,
    )
