"""``inkstone lsp`` end to end: pytest-lsp drives the real bridge (a child process) against
a real Inkstone server on loopback, with the captured capabilities of Neovim, Emacs and
VS Code (which negotiate utf-8, utf-32 and utf-16 respectively)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from lsprotocol import types

from server.config import Settings
from server.wsclient import StudentClient
from tests.conftest import FAST, LiveServer, ProcessServer, ThreadServer, run
from tests.lsp_client import ENCODING, lsp_editor

PRESETS = ["neovim", "emacs", "visual-studio-code"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One rules-only server for the module (rule hints need no model)."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("lsp-server"), **FAST)
    with ThreadServer(settings, load_models=False) as live:
        yield live


def options(live: LiveServer, user: str, **extra: object) -> dict[str, object]:
    return {"server": live.url, "token": live.token(user), "caretDelayMs": 0, **extra}


@pytest.mark.parametrize("preset", PRESETS)
def test_diagnostics_quick_fix_dismiss_scores_hover(server: LiveServer, preset: str) -> None:
    async def main() -> None:
        async with lsp_editor(preset, **options(server, f"u-{preset}")) as editor:
            assert editor.encoding == ENCODING[preset]
            # astral characters before the flagged words: every encoding counts differently
            buffer = editor.open(f"essay-{preset}.txt", "😀𠀀今天天气很好。\n")
            await editor.wait(lambda: editor.scores)
            assert editor.diagnostics(buffer) == []
            # type a sentence with a doubled word, one incremental change per character
            await buffer.type("我们我们去公园玩。", delay=0.005)
            found = await editor.wait_diagnostic(buffer, "repeated_word")
            assert buffer.span(found) == "我们我们"
            assert found.source == "inkstone" and found.message.startswith("词语重复：")
            assert found.data["suggestions"] == ["我们"] and found.data["hint"].startswith("h")
            assert (found.code_description is not None) == (preset == "visual-studio-code")
            # the server's analysis showed as progress
            reports = editor.client.progress_reports
            assert any(
                isinstance(r, types.WorkDoneProgressBegin) for v in reports.values() for r in v
            )
            await editor.wait(
                lambda: all(isinstance(v[-1], types.WorkDoneProgressEnd) for v in reports.values())
            )

            hover = await editor.client.text_document_hover_async(
                types.HoverParams(
                    text_document=types.TextDocumentIdentifier(uri=buffer.uri),
                    position=found.range.start,
                )
            )
            assert hover is not None and "词语重复" in hover.contents.value  # type: ignore[union-attr]
            assert "字" in hover.contents.value  # the essay's stats  # type: ignore[union-attr]

            actions = await editor.code_actions(buffer, found)
            titles = [a.title for a in actions]
            assert titles[:2] == ["改为“我们”", "忽略此提示"] and "显示作文评分" in titles
            assert await editor.execute(actions[0]) is True
            assert buffer.text == "😀𠀀今天天气很好。\n我们去公园玩。"
            await editor.wait(lambda: not editor.diagnostics(buffer))

            # a new doubled word, dismissed: gone now, and gone for good (stored server-side)
            await buffer.type("大家大家", at=len(buffer.text) - 1)
            again = await editor.wait_diagnostic(buffer, "repeated_word")
            dismiss = next(
                a for a in await editor.code_actions(buffer, again) if a.title == "忽略此提示"
            )
            assert await editor.execute(dismiss) is True
            await editor.wait(lambda: not editor.diagnostics(buffer))

            show = next(a for a in await editor.code_actions(buffer, again) if "评分" in a.title)
            await editor.execute(show)
            await editor.wait(lambda: editor.client.messages)
            assert "字" in editor.client.messages[-1].message
            # scores follow the text (at most every 1.5 s by default)
            await editor.wait(lambda: editor.scores[-1].stats.sentences == 2)
            assert editor.scores[-1].uri == buffer.uri
            text = buffer.text

        async with lsp_editor(preset, **options(server, f"u-{preset}")) as editor:
            reopened = editor.open(f"essay-{preset}.txt", text)
            await editor.wait(lambda: editor.scores)
            await asyncio.sleep(0.3)
            assert all(d.code != "repeated_word" for d in editor.diagnostics(reopened))

    run(asyncio.wait_for(main(), 60))
