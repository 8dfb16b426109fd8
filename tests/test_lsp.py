"""``inkstone lsp`` end to end: pytest-lsp drives the real bridge (a child process) against
a real Inkstone server on loopback, with the captured capabilities of Neovim, Emacs and
VS Code (which negotiate utf-8, utf-32 and utf-16 respectively)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lsprotocol import types

from editors.lsp.settings import Settings as BridgeSettings
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
            # a client that echoes no diagnostics still gets the fixes under its range
            bare = await editor.client.text_document_code_action_async(
                types.CodeActionParams(
                    text_document=types.TextDocumentIdentifier(uri=buffer.uri),
                    range=found.range,
                    context=types.CodeActionContext(diagnostics=[]),
                )
            )
            assert [a.title for a in bare or []][:2] == ["改为“我们”", "忽略此提示"]
            for only, expected in ((["source"], []), (["quickfix"], ["改为“我们”", "忽略此提示"])):
                filtered = await editor.client.text_document_code_action_async(
                    types.CodeActionParams(
                        text_document=types.TextDocumentIdentifier(uri=buffer.uri),
                        range=found.range,
                        context=types.CodeActionContext(diagnostics=[found], only=only),
                    )
                )
                assert [a.title for a in filtered or []] == expected
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
            assert buffer.check_ranges(editor.published[buffer.uri]) >= 2

        async with lsp_editor(preset, **options(server, f"u-{preset}")) as editor:
            reopened = editor.open(f"essay-{preset}.txt", text)
            await editor.wait(lambda: editor.scores)
            await asyncio.sleep(0.3)
            assert all(d.code != "repeated_word" for d in editor.diagnostics(reopened))

    run(asyncio.wait_for(main(), 60))


def test_settings_pulled_only_if_advertised_and_applied_live(server: LiveServer) -> None:
    async def main() -> None:
        text = "我们我们去公园。\n"
        # Neovim 0.7 does not advertise workspace/configuration: the bridge must not ask
        # (lsp_editor fails on pytest-lsp's specification warning if it does)
        opts = options(server, "cfg-1", severity={"grammar": "warning"})
        async with lsp_editor("neovim@v0.7.0", **opts) as editor:
            buffer = editor.open("cfg-nvim07.txt", text)
            found = await editor.wait_diagnostic(buffer, "repeated_word")
            assert found.severity == types.DiagnosticSeverity.Warning
            assert editor.encoding == "utf-16"  # no positionEncodings offered

        async with lsp_editor("visual-studio-code", **options(server, "cfg-2")) as editor:
            editor.client.set_configuration({"severity": {"grammar": "error"}}, section="inkstone")
            editor.client.workspace_did_change_configuration(
                types.DidChangeConfigurationParams(settings=None)
            )
            buffer = editor.open("cfg-vscode.txt", text)
            found = await editor.wait_diagnostic(buffer, "repeated_word")
            await editor.wait(lambda: editor.diagnostics(buffer)[0].severity == 1)
            # pushed settings apply live: the kind is turned off, then back on as a hint
            editor.client.workspace_did_change_configuration(
                types.DidChangeConfigurationParams(
                    settings={"inkstone": {"severity": {"grammar": "off"}}}
                )
            )
            await editor.wait(lambda: not editor.diagnostics(buffer))
            editor.client.set_configuration({"severity": {"grammar": "hint"}}, section="inkstone")
            editor.client.workspace_did_change_configuration(
                types.DidChangeConfigurationParams(settings=None)
            )
            await editor.wait(
                lambda: (
                    [d.severity for d in editor.diagnostics(buffer)]
                    == [types.DiagnosticSeverity.Hint]
                )
            )
            assert found.code == "repeated_word"

    run(asyncio.wait_for(main(), 60))


def test_markdown_is_masked_and_over_limit_documents_say_so(server: LiveServer) -> None:
    async def main() -> None:
        async with lsp_editor("neovim", **options(server, "md-1")) as editor:
            md = "# 标题\n\n`我们我们`是代码，[链接](http://x.y/我们我们)，正文里我们我们才算。\n"
            buffer = editor.open("notes.md", md, language_id="markdown")
            found = await editor.wait_diagnostic(buffer, "repeated_word")
            await asyncio.sleep(0.3)
            assert [buffer.span(d) for d in editor.diagnostics(buffer)] == ["我们我们"]
            assert buffer.span(found) == "我们我们" and found.range.start.character > 40

            limit = server.settings.max_document_chars
            big = editor.open("huge.txt", "好" * (limit + 1))
            await editor.wait(
                lambda: any(str(limit) in m.message for m in editor.client.log_messages)
            )
            big.change(0, 10, "")  # under the limit again: checked from now on
            await editor.wait(
                lambda: any("under the limit" in m.message for m in editor.client.log_messages)
            )

    run(asyncio.wait_for(main(), 60))


def test_server_restart_resumes_without_losing_an_edit(tmp_path: Path) -> None:
    """kill -9 the server; edits typed while it is down reach it after the restart."""
    from editors.lsp.document import doc_name
    from server.auth import mint_token

    proc = ProcessServer(tmp_path, "--no-models")
    proc.start()
    try:

        async def main() -> None:
            token = mint_token(None, user="r1", role="student", class_id="c1")
            async with lsp_editor("emacs", server=proc.url, token=token, caretDelayMs=0) as editor:
                buffer = editor.open("restart.txt", "今天天气很好。\n")
                await editor.wait(lambda: editor.scores)
                await buffer.type("我们去公园。")
                await editor.wait(lambda: editor.scores[-1].stats.sentences == 2)
                proc.kill9()
                await editor.wait(
                    lambda: any("connection lost" in m.message for m in editor.client.log_messages)
                )
                await buffer.type("大家大家一起玩。", delay=0.01)  # typed while it is down
                await asyncio.sleep(0.3)
                await asyncio.to_thread(proc.start)
                found = await editor.wait_diagnostic(buffer, "repeated_word", timeout=20)
                assert buffer.span(found) == "大家大家"
                buffer.check_ranges(editor.published[buffer.uri])
                check = StudentClient(proc.url, token, doc_name(buffer.uri))
                welcome = await check.connect()
                assert welcome.text == buffer.text
                await check.close()

        run(asyncio.wait_for(main(), 60))
    finally:
        proc.stop()


def test_overloaded_shows_progress_and_no_stale_ranges(tmp_path: Path) -> None:
    """A full model queue answers `overloaded`: the bridge reports it as progress, keeps
    sending edits, and every range it ever publishes fits the text of its version."""
    settings = Settings(data_dir=tmp_path, queue_limit=4, batch_window_ms=400, **FAST)
    with ThreadServer(settings) as live:

        async def main() -> None:
            flooder = StudentClient(live.url, live.token("flood"), "flood", lang="zh")
            await flooder.connect()
            async with lsp_editor("visual-studio-code", **options(live, "busy")) as editor:
                buffer = editor.open("busy.txt", "")
                await editor.wait(lambda: editor.client.progress_reports)
                busy = False
                for round_ in range(4):
                    await flooder.replace(
                        "".join(f"第{round_}轮第{k}句，各不相同。" for k in range(4))
                    )
                    await asyncio.sleep(0.06)
                    await buffer.type(f"第{round_}段我们我们去公园玩，我门很高心。", delay=0.002)
                    await asyncio.sleep(0.5)
                    messages = [
                        getattr(r, "message", None) or ""
                        for v in editor.client.progress_reports.values()
                        for r in v
                    ]
                    if any("busy" in m for m in messages):
                        busy = True
                        break
                assert busy, messages
                found = await editor.wait_diagnostic(buffer, "repeated_word", timeout=30)
                assert buffer.span(found) == "我们我们"
                assert buffer.check_ranges(editor.published[buffer.uri]) >= 1
            await flooder.close()

        run(asyncio.wait_for(main(), 90))


def test_hints_for_the_sentence_being_typed_wait_until_it_ends_or_pauses(
    server: LiveServer,
) -> None:
    """LTeX's lesson: no flag on a half-typed sentence while the caret is in it."""

    async def main() -> None:
        async with lsp_editor("neovim", **options(server, "caret", caretDelayMs=3000)) as editor:
            buffer = editor.open("caret.txt", "")
            started = time.monotonic()
            await buffer.type("我们我们去公园", delay=0.01)
            typed_at = time.monotonic()
            await editor.wait_diagnostic(buffer, "repeated_word", timeout=20)
            # the server answered within a few hundred ms; the bridge held it back — unless
            # typing itself stalled past the pause (an overloaded machine): then the hint
            # may rightly come before the last keystroke's pause is over
            if typed_at - started < 1.0:
                assert editor.first_shown(buffer, "repeated_word") - typed_at >= 2.9
            # a finished sentence is shown as soon as its hints arrive
            await buffer.type("。\n大家大家一起玩。", delay=0.01)
            typed_at = time.monotonic()
            await editor.wait(
                lambda: sum(d.code == "repeated_word" for d in editor.diagnostics(buffer)) == 2
            )
            assert time.monotonic() - typed_at < 2.5
            assert buffer.check_ranges(editor.published[buffer.uri]) >= 3

    run(asyncio.wait_for(main(), 60))


def test_without_a_token_a_dev_mode_server_hands_one_out(server: LiveServer) -> None:
    from editors.lsp.settings import resolve_token

    token = resolve_token(BridgeSettings(server=server.url, user="dev-user", class_id="c9"))

    async def main() -> None:
        client = StudentClient(server.url, token, "dev-doc")
        welcome = await client.connect()
        assert (welcome.user, welcome.class_id, welcome.role) == ("dev-user", "c9", "student")
        await client.close()

    run(main())


def test_hint_codes_page_explains_every_code(server: LiveServer) -> None:
    """Diagnostics link to /hints#<code>: every code the server can send has a section."""
    import urllib.request

    from server.hintdocs import EXPLANATIONS, hint_codes

    with urllib.request.urlopen(server.http + "/hints", timeout=10) as response:
        assert response.headers["content-type"].startswith("text/html")
        page = response.read().decode()
    for code in hint_codes():
        assert f'id="{code}"' in page, code
        name, zh, en = EXPLANATIONS[code]
        assert name and zh and en, code
    assert "语序不当" in page and "错别字" in page
    assert "<style" not in page and "<script" not in page  # the pages' CSP allows neither


def test_a_short_lived_token_is_renewed_on_the_open_socket(server: LiveServer) -> None:
    """With ``tokenCommand`` the bridge sends ``reauth`` before the token expires: the
    session outlives its first token without a reconnect."""
    import shlex
    import sys

    mint = (
        "from server.auth import mint_token; "
        "print(mint_token(None, user='renew', role='student', class_id='c1', ttl_s=5))"
    )
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(mint)}"

    async def main() -> None:
        opts = {**options(server, "renew"), "token": None, "tokenCommand": command}
        async with lsp_editor("neovim", **opts) as editor:
            buffer = editor.open("renew.txt", "今天天气很好。")
            await editor.wait(lambda: editor.scores)
            await editor.wait(
                lambda: any("token renewed" in m.message for m in editor.client.log_messages),
                timeout=20,
            )
            await asyncio.sleep(6)  # past the first token's expiry
            await buffer.type("我们我们去公园。")
            found = await editor.wait_diagnostic(buffer, "repeated_word")
            assert buffer.span(found) == "我们我们"
            logged = [m.message for m in editor.client.log_messages]
            assert not any("connection lost" in m for m in logged), logged

    run(asyncio.wait_for(main(), 60))


def test_no_token_and_no_server_is_said_aloud_not_silent() -> None:
    from tests.conftest import free_socket

    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there

    async def main() -> None:
        url = f"ws://127.0.0.1:{port}/v1/ws"
        async with lsp_editor("visual-studio-code", server=url) as editor:
            editor.open("lonely.txt", "今天天气很好。")
            await editor.wait(lambda: editor.client.messages)
            message = editor.client.messages[0]
            assert message.type == types.MessageType.Error
            assert "no token configured" in message.message and "tokenCommand" in message.message
        # with a token, the bridge keeps trying, and says so in the log
        async with lsp_editor("visual-studio-code", server=url, token="t") as editor:
            editor.open("lonely.txt", "今天天气很好。")
            await editor.wait(
                lambda: any("cannot reach" in m.message for m in editor.client.log_messages)
            )

    run(asyncio.wait_for(main(), 30))


def test_quota_and_document_caps_are_told_once(tmp_path: Path) -> None:
    """The server's per-student caps: the student hears why, once, not per keystroke."""
    settings = Settings(
        data_dir=tmp_path, storage_quota_bytes=3000, max_documents_per_student=1, **FAST
    )
    with ThreadServer(settings, load_models=False) as live:

        async def main() -> None:
            async with lsp_editor("visual-studio-code", **options(live, "capped")) as editor:
                buffer = editor.open("first.txt", "今天天气很好。")
                await editor.wait(lambda: editor.scores)
                for _ in range(6):  # well past the quota, as fast as an editor can send
                    await buffer.type("我们一起去公园玩，" * 20, delay=0)
                    await asyncio.sleep(0.2)
                # the burst was paced and coalesced: never over the server's rate limit
                assert not any("rate_limited" in m.message for m in editor.client.log_messages)
                await editor.wait(
                    lambda: any("storage_quota" in m.message for m in editor.client.log_messages)
                )
                told = [m for m in editor.client.log_messages if "storage_quota" in m.message]
                assert len(told) == 1, [m.message for m in told]
                editor.open("second.txt", "第二篇。")  # one document per student here
                await editor.wait(lambda: editor.client.messages)
                assert "too_many_documents" in editor.client.messages[0].message

        run(asyncio.wait_for(main(), 60))


def test_hints_in_parts_are_merged_on_open_and_on_reopen(server: LiveServer) -> None:
    """More sentences than one hints frame carries (200): every part counts, also when
    the whole set comes again after a reopen (its first part replaces, the rest add)."""
    sentences = [f"这是第{i}句。" for i in range(260)]
    sentences[5] = "我们我们去公园。"
    sentences[250] = "大家大家一起玩。"
    text = "".join(sentences)

    async def open_and_check() -> None:
        async with lsp_editor("emacs", **options(server, "parts")) as editor:
            buffer = editor.open("parts.txt", text)
            await editor.wait(
                lambda: (
                    sorted(buffer.span(d) for d in editor.diagnostics(buffer))
                    == ["大家大家", "我们我们"]
                )
            )

    async def main() -> None:
        await open_and_check()  # the first analysis: 260 sentences in two hints frames
        await open_and_check()  # reopened: the stored analysis, again in two frames

    run(asyncio.wait_for(main(), 60))


def test_files_opened_beyond_the_session_budget_connect_when_allowed(tmp_path: Path) -> None:
    """The server admits a user's hellos at a rate (a burst for an editor opening many
    files); a refused hello is retried when the server says, and every file is checked."""
    settings = Settings(data_dir=tmp_path, max_sessions_per_second=4.0, session_burst=2, **FAST)
    with ThreadServer(settings, load_models=False) as live:

        async def main() -> None:
            async with lsp_editor("neovim", **options(live, "many")) as editor:
                buffers = [editor.open(f"f{i}.txt", f"第{i}篇我们我们去。") for i in range(5)]
                await editor.wait(
                    lambda: all(
                        [buffer.span(d) for d in editor.diagnostics(buffer)] == ["我们我们"]
                        for buffer in buffers
                    ),
                    timeout=20,
                )
                told = [m.message for m in editor.client.log_messages]
                assert any("too many sessions" in m for m in told), told

        run(asyncio.wait_for(main(), 60))


def test_crlf_documents_get_ranges_on_the_right_lines(server: LiveServer) -> None:
    async def main() -> None:
        async with lsp_editor("neovim", **options(server, "crlf")) as editor:
            buffer = editor.open("crlf.txt", "第一行很好。\r\n😀我们我们去公园。\r\n")
            found = await editor.wait_diagnostic(buffer, "repeated_word")
            start, end = found.range.start, found.range.end
            # utf-8: the emoji is 4 bytes, each Chinese character 3
            assert (start.line, start.character, end.line, end.character) == (1, 4, 1, 16)
            await buffer.type("大家大家。\r\n", at=len(buffer.text))
            await editor.wait(
                lambda: (
                    sorted(buffer.span(d) for d in editor.diagnostics(buffer))
                    == ["大家大家", "我们我们"]
                )
            )

    run(asyncio.wait_for(main(), 30))
