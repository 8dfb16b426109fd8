"""The LSP bridge's pure parts: positions, diffs, span mapping, the hint store, masking,
hint → Diagnostic, settings. No socket, no editor (those are test_lsp.py and test_neovim.py)."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from lsprotocol import types

from editors.lsp.diagnostics import LABELS, label, to_diagnostic
from editors.lsp.document import OpenDocument, doc_name, sentence_ended, typing_span
from editors.lsp.mask import mask, mask_kind
from editors.lsp.sentences import SentenceStore
from editors.lsp.settings import Settings, http_base
from editors.lsp.text import (
    LineIndex,
    TextChange,
    apply_lsp_changes,
    diff_change,
    map_span,
)
from protocol import Hint, Hints, SentenceHints
from tests.conftest import ROOT

TEXT = "写作😀很好。\r\n𠀀字在这里，é也在。\n最后一行"


# ---------------------------------------------------------------- positions


@pytest.mark.parametrize(
    ("encoding", "position", "offset"),
    [
        # line 0: 写 作 😀 很 好 。 — the emoji is 2 UTF-16 units and 4 UTF-8 bytes
        ("utf-16", (0, 4), 3),
        ("utf-8", (0, 10), 3),
        ("utf-32", (0, 3), 3),
        # line 1 starts after the CRLF (code point 8); 𠀀 is astral too
        ("utf-16", (1, 2), 9),
        ("utf-8", (1, 4), 9),
        ("utf-32", (1, 1), 9),
        # é is 2 UTF-8 bytes, 1 UTF-16 unit
        ("utf-8", (1, 4 + 3 * 5 + 2), 9 + 5 + 1),
        ("utf-16", (1, 2 + 5 + 1), 9 + 5 + 1),
    ],
)
def test_line_index_converts_each_encoding(
    encoding: str, position: tuple[int, int], offset: int
) -> None:
    index = LineIndex(TEXT, encoding)  # type: ignore[arg-type]
    assert index.offset(*position) == offset
    assert index.position(offset) == position


def test_line_index_clamps_and_keeps_crlf_whole() -> None:
    index = LineIndex(TEXT, "utf-16")
    assert index.offset(0, 999) == 6  # past the end of a line: its end (before the CRLF)
    assert index.offset(9, 0) == len(TEXT)  # past the last line: the end of the text
    assert index.position(7) == (0, 7)  # between \r and \n: the end of line 0
    assert index.position(len(TEXT)) == (2, 4)
    # only \n, \r\n and \r end lines (str.splitlines would also split at U+2028)
    assert LineIndex("a\u2028b\rc", "utf-16").position(2) == (0, 2)
    assert LineIndex("a\u2028b\rc", "utf-16").position(5) == (1, 1)


def test_lsp_changes_apply_in_order_against_the_text_each_produced() -> None:
    text = "我门去公园。\n😀天气好"
    changes = [
        ((0, 1, 0, 2), "们"),  # 门 → 们
        ((1, 2, 1, 2), "今天"),  # after the emoji (2 UTF-16 units)
        ((1, 0, 1, 2), ""),  # then delete the emoji
    ]
    new, out = apply_lsp_changes(text, changes, "utf-16")
    assert new == "我们去公园。\n今天天气好"
    assert out == [TextChange(1, 2, "们"), TextChange(8, 8, "今天"), TextChange(7, 8, "")]
    whole, out = apply_lsp_changes(new, [(None, "我们去公园。\n今天天气很好")], "utf-16")
    assert whole.endswith("很好") and out == [TextChange(11, 11, "很")]


@pytest.mark.parametrize(
    ("old", "new", "change"),
    [
        ("我们去公园", "我们去了公园", TextChange(3, 3, "了")),
        ("写😀作", "写𠀀作", TextChange(1, 2, "𠀀")),
        ("一行\r\n二行", "一行\n二行", TextChange(2, 3, "")),
        ("aaa", "aa", TextChange(2, 3, "")),
        ("", "新", TextChange(0, 0, "新")),
        ("同", "同", TextChange(1, 1, "")),
    ],
)
def test_diff_change_is_minimal(old: str, new: str, change: TextChange) -> None:
    found = diff_change(old, new)
    assert found == change
    assert old[: found.start] + found.text + old[found.end :] == new


def test_diff_change_round_trips_random_cjk_emoji_crlf_edits() -> None:
    rng = random.Random(7)
    alphabet = "我们写作文。，😀𠀀é\r\n a"
    for _ in range(300):
        old = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        new = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        c = diff_change(old, new)
        assert old[: c.start] + c.text + old[c.end :] == new


def test_map_span_shifts_grows_and_clips() -> None:
    span = (5, 10)
    assert map_span(span, TextChange(0, 2, "")) == (3, 8)  # before: shifted
    assert map_span(span, TextChange(5, 5, "xx")) == (7, 12)  # insertion at the start
    assert map_span(span, TextChange(10, 10, "xx")) == (5, 10)  # at the end: outside
    assert map_span(span, TextChange(7, 8, "xyz")) == (5, 12)  # inside: grows
    assert map_span(span, TextChange(3, 7, "")) == (3, 6)  # across the start: clipped
    assert map_span(span, TextChange(12, 13, "")) == (5, 10)


# ---------------------------------------------------------------- hints on the current text


def _hint(hid: str, start: int, end: int, code: str = "misspelling") -> Hint:
    return Hint(hid, "spelling", code, "error", start, end, "msg", ("们",), 0.99)


def test_hints_for_an_older_version_map_onto_the_current_text_or_drop() -> None:
    v1 = "我门去公园。天气好。"
    store = SentenceStore()
    # after version 1 the user typed at the front (version 2), then inside the second
    # sentence (not acknowledged yet)
    v2 = "今天" + v1
    now = v2[:10] + "很" + v2[10:]
    message = Hints(
        version=1,
        sentences=(
            SentenceHints("s1", 0, 6, (_hint("h1", 1, 2),)),
            SentenceHints("s2", 6, 10, (_hint("h2", 8, 9, "repeated_word"),)),
        ),
    )
    store.receive(message, [v1, v2, now], full=True)
    live = store.live(now)
    # h1 moved by two; s2 was edited since version 1, so its hint is not shown
    assert [(h.hint.id, h.start, h.end) for h in live] == [("h1", 3, 4)]
    assert now[3:4] == "门"
    # with only the first and the last text, one diff spans both edits: nothing is shown
    store.receive(message, [v1, now], full=True)
    assert store.live(now) == []


def test_a_sentence_edited_and_edited_back_counts_again() -> None:
    text = "我门去公园。天气好。"
    store = SentenceStore()
    store.receive(Hints(1, (SentenceHints("s1", 0, 6, (_hint("h1", 1, 2),)),)), [text], full=True)
    typed = text[:3] + "x" + text[3:]
    store.apply_change(TextChange(3, 3, "x"))
    assert store.live(typed) == []
    store.apply_change(TextChange(3, 4, ""))
    assert [(h.start, h.end) for h in store.live(text)] == [(1, 2)]


def test_removed_sentences_go_and_unknown_versions_are_skipped() -> None:
    text = "我门去公园。"
    store = SentenceStore()
    store.receive(Hints(1, (SentenceHints("s1", 0, 6, (_hint("h1", 1, 2),)),)), [text], full=True)
    store.receive(Hints(2, (), removed=("s1",)), [text], full=False)
    assert store.live(text) == []
    assert store.receive(Hints(3, (SentenceHints("s9", 0, 6, ()),)), None, full=False) == 0
    # an older message than one already applied is ignored
    assert store.receive(Hints(2, (SentenceHints("s8", 0, 6, ()),)), [text], full=False) == 0


def test_hint_to_diagnostic_fields() -> None:
    text = "好😀\n我门去公园。"
    store = SentenceStore()
    store.receive(Hints(4, (SentenceHints("s1", 3, 9, (_hint("h1", 4, 5),)),)), [text], full=True)
    (live,) = store.live(text)
    diagnostic = to_diagnostic(
        live,
        LineIndex(text, "utf-16"),
        lang="zh",
        severities={},
        docs_url="http://127.0.0.1:8000/hints",
    )
    assert diagnostic is not None
    assert (diagnostic.range.start.line, diagnostic.range.start.character) == (1, 1)
    assert (diagnostic.range.end.line, diagnostic.range.end.character) == (1, 2)
    assert diagnostic.code == "misspelling" and diagnostic.source == "inkstone"
    assert diagnostic.message == "错别字：msg"
    assert diagnostic.severity == types.DiagnosticSeverity.Warning
    assert diagnostic.code_description is not None
    assert diagnostic.code_description.href == "http://127.0.0.1:8000/hints#misspelling"
    assert diagnostic.data == {"hint": "h1", "suggestions": ["们"]}
    off = to_diagnostic(
        live, LineIndex(text, "utf-8"), lang="en", severities={"spelling": "off"}, docs_url=None
    )
    assert off is None
    error = to_diagnostic(
        live, LineIndex(text, "utf-8"), lang="en", severities={"spelling": "error"}, docs_url=None
    )
    assert error is not None and error.severity == types.DiagnosticSeverity.Error
    assert error.message == "Misspelling: msg" and error.range.start.character == 3


def test_every_server_hint_code_has_a_label() -> None:
    from server.hintdocs import hint_codes

    assert set(hint_codes()) <= set(LABELS)
    assert label("faulty_iwo", "zh") == "语序不当"


def test_caret_sentence_is_held_back_until_it_ends_or_goes_idle() -> None:
    doc = OpenDocument("file:///a.txt", "plaintext", 0, "")
    doc.apply([((0, 0, 0, 0), "我门去公园")], "utf-16", 1)
    doc.store.receive(
        Hints(1, (SentenceHints("s1", 0, 5, (_hint("h1", 1, 2),)),)),
        [doc.masked],
        full=True,
    )
    shown, wait = doc.visible(1500, now=doc.last_edit + 0.1)
    assert shown == [] and wait == pytest.approx(1.4)
    shown, wait = doc.visible(1500, now=doc.last_edit + 2)
    assert [h.hint.id for h in shown] == ["h1"] and wait == 0
    assert sentence_ended("我门去公园。”", 7) and not sentence_ended("我门去公园", 5)


def test_a_sentence_analysed_before_the_student_typed_on_is_still_held_back() -> None:
    """Hints for "我们我们" analysed at version 1 still fit the text "我们我们去公园" at its
    start, but that sentence is the one being typed now: they wait like the rest of it."""
    doc = OpenDocument("file:///b.txt", "plaintext", 0, "")
    doc.apply([((0, 0, 0, 0), "我们我们")], "utf-16", 1)
    doc.store.receive(
        Hints(1, (SentenceHints("s1", 0, 4, (_hint("h1", 0, 4),)),)), [doc.masked], full=True
    )
    doc.apply([((0, 4, 0, 4), "去公园")], "utf-16", 2)
    shown, wait = doc.visible(3000, now=doc.last_edit + 0.1)
    assert shown == [] and wait == pytest.approx(2.9)
    shown, _ = doc.visible(3000, now=doc.last_edit + 3.5)
    assert [h.hint.id for h in shown] == ["h1"]
    assert typing_span("前一句。我们我们去", 9) == (4, 9)
    assert typing_span("我们。\n下一段", 2) == (0, 3)


# ---------------------------------------------------------------- masking


def test_markdown_masking_keeps_offsets_and_lines() -> None:
    md = (
        "---\ntitle: 作文\n---\n# 标题\n\n今天`code`很好，见 https://example.com/x 。\n"
        "```python\nprint(1)\n```\n数学 $x^2$ 难。[链接](http://a.b) <b>粗</b>\n"
    )
    masked, spans = mask(md, "markdown")
    assert len(masked) == len(md)
    assert [i for i, c in enumerate(md) if c == "\n"] == [
        i for i, c in enumerate(masked) if c == "\n"
    ]
    for prose in ("标题", "今天", "很好，见", "数学", "难。", "链接", "粗"):
        assert prose in masked
    for code in ("title", "code", "example.com", "print", "x^2", "http", "<b>", "#"):
        assert code not in masked
    assert spans and all(masked[a:b].strip() == "" for a, b in spans)


def test_latex_masking_keeps_the_text_of_commands() -> None:
    tex = (
        "\\documentclass{article}\n\\begin{document}\n\\section{引言}今天天气很好。% 注释\n"
        "\\textbf{重要}的事$E=mc^2$说三遍。\n\\begin{equation}\na=b\n\\end{equation}\n"
    )
    masked, _ = mask(tex, "latex")
    assert len(masked) == len(tex) and masked.count("\n") == tex.count("\n")
    for prose in ("引言", "今天天气很好。", "重要", "的事", "说三遍。"):
        assert prose in masked
    for code in ("documentclass", "section", "注释", "textbf", "mc^2", "a=b", "\\", "{"):
        assert code not in masked


def test_mask_kind_from_setting_language_or_extension() -> None:
    assert mask_kind("markdown", "file:///a.txt") == "markdown"
    assert mask_kind("plaintext", "file:///a.tex") == "latex"
    assert mask_kind("plaintext", "file:///a.txt") == "none"
    assert mask_kind("markdown", "file:///a.md", "none") == "none"


def test_masked_document_hides_hints_that_touch_code() -> None:
    doc = OpenDocument("file:///a.md", "markdown", 0, "我们`x y`去公园。", "markdown")
    assert doc.masked == "我们     去公园。"
    space = Hint("h1", "punctuation", "space_between_cjk", "warning", 2, 7, "m", ("",), 0.9)
    spelling = _hint("h2", 7, 8)
    doc.store.receive(
        Hints(1, (SentenceHints("s1", 0, 11, (space, spelling)),)),
        [doc.masked],
        full=True,
    )
    shown, _ = doc.visible(0)
    assert [h.hint.id for h in shown] == ["h2"]


# ---------------------------------------------------------------- settings, names, imports


def test_settings_merge_in_order() -> None:
    s = Settings().merged({"server": "ws://h:1/v1/ws", "token": "t", "severity": {"style": "off"}})
    s = s.merged({"inkstone": {"lang": "zh", "caretDelayMs": 0, "severity": {"spelling": "error"}}})
    assert (s.server, s.token, s.lang, s.caret_delay_ms) == ("ws://h:1/v1/ws", "t", "zh", 0)
    assert dict(s.severity) == {"style": "off", "spelling": "error"}
    assert s.merged(None) is s and http_base("wss://x.y:9/v1/ws") == "https://x.y:9"


def test_doc_name_is_stable_and_distinct_per_file() -> None:
    a, b = doc_name("file:///home/s/作文.md"), doc_name("file:///tmp/作文.md")
    assert a == doc_name("file:///home/s/作文.md") and a != b and a.startswith("作文.md-")


def test_bridge_imports_no_model_stack() -> None:
    code = (
        "import sys, editors.lsp.server, editors.lsp.features; "
        "bad = [m for m in ('onnxruntime', 'numpy', 'jieba', 'sentencepiece', 'server') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_token_command_prints_the_token_on_its_last_line() -> None:
    from editors.lsp.settings import TokenError, resolve_token

    assert resolve_token(Settings(token_command="printf 'notice\\nT0KEN\\n'")) == "T0KEN"
    assert resolve_token(Settings(token="given", token_command="false")) == "given"
    with pytest.raises(TokenError, match="tokenCommand failed"):
        resolve_token(Settings(token_command="false"))
