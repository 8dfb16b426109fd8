"""The LSP handlers of ``inkstone lsp``: sync, settings, code actions, commands and hover."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from lsprotocol import types

from editors.lsp.document import OpenDocument
from editors.lsp.mask import mask_kind
from editors.lsp.sentences import LiveHint
from editors.lsp.server import APPLY, DISMISS, SCORES, InkstoneServer, lsp_changes
from editors.lsp.text import LineIndex

__all__ = ["register"]

_TITLES = {
    "zh": ("改为“{}”", "忽略此提示", "显示作文评分", "还没有评分。"),
    "en": ("Replace with “{}”", "Dismiss this hint", "Show essay scores", "No scores yet."),
}


def register(ls: InkstoneServer) -> None:
    @ls.feature(types.INITIALIZE)
    def initialize(ls: InkstoneServer, params: types.InitializeParams) -> None:
        ls.base_settings = ls.settings.merged(params.initialization_options)
        ls.settings = ls.base_settings

    @ls.feature(types.INITIALIZED)
    async def initialized(ls: InkstoneServer, params: types.InitializedParams) -> None:
        try:
            await ls.pull_configuration()
        finally:
            ls.configured.set()

    @ls.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(
        ls: InkstoneServer, params: types.DidChangeConfigurationParams
    ) -> None:
        previous = ls.settings
        given = params.settings
        if isinstance(given, dict) and given:  # {"inkstone": {...}} or the keys themselves
            ls.settings = ls.base_settings.merged(given)
        else:
            await ls.pull_configuration()
        await ls.apply_settings(previous)

    @ls.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: InkstoneServer, params: types.DidOpenTextDocumentParams) -> None:
        item = params.text_document
        old = ls.docs.pop(item.uri, None)
        if old is not None and old.session is not None:
            _spawn(old.session.close())
        doc = OpenDocument(
            item.uri,
            item.language_id,
            item.version,
            item.text,
            mask_kind(item.language_id, item.uri, ls.settings.mask),
        )
        ls.docs[item.uri] = doc

        async def start() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ls.configured.wait(), 5)
            if ls.docs.get(doc.uri) is doc:
                doc.remask(mask_kind(doc.language_id, doc.uri, ls.settings.mask))
                ls.start_session(doc)

        _spawn(start())

    @ls.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: InkstoneServer, params: types.DidChangeTextDocumentParams) -> None:
        doc = ls.docs.get(params.text_document.uri)
        if doc is None:
            return
        changes = doc.apply(lsp_changes(params), ls.encoding, params.text_document.version)
        if doc.session is not None and changes:
            # one edit per notification: several LSP changes collapse into their joint diff
            change = changes[0] if len(changes) == 1 else None
            doc.session.change(change, doc.masked)
        ls.publish(doc)

    @ls.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    async def did_close(ls: InkstoneServer, params: types.DidCloseTextDocumentParams) -> None:
        doc = ls.docs.pop(params.text_document.uri, None)
        if doc is None:
            return
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=doc.uri, diagnostics=[])
        )
        if doc.session is not None:
            await doc.session.close()

    @ls.feature(types.SHUTDOWN)
    async def shutdown(ls: InkstoneServer, params: None) -> None:
        for doc in list(ls.docs.values()):
            if doc.session is not None:
                await doc.session.close()

    @ls.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[types.CodeActionKind.QuickFix], resolve_provider=False
        ),
    )
    def code_action(
        ls: InkstoneServer, params: types.CodeActionParams
    ) -> list[types.CodeAction] | None:
        doc = ls.docs.get(params.text_document.uri)
        if doc is None:
            return None
        lang = _lang(doc)
        replace_title, dismiss_title, scores_title, _ = _TITLES[lang]
        actions: list[types.CodeAction] = []
        targets: list[tuple[LiveHint, list[types.Diagnostic] | None]] = []
        for diagnostic in params.context.diagnostics:
            data = diagnostic.data if isinstance(diagnostic.data, dict) else {}
            live = doc.find(str(data.get("hint", "")))
            if live is not None:
                targets.append((live, [diagnostic]))
        if not targets:
            # a client that echoes no diagnostics (or drops their data): our own hints under
            # the requested range, located in the bridge's current text
            index = LineIndex(doc.text, ls.encoding)
            r = params.range
            start = index.offset(r.start.line, r.start.character)
            end = index.offset(r.end.line, r.end.character)
            shown, _ = doc.visible(0)
            targets = [(h, None) for h in shown if h.start <= end and start <= h.end]
        for live, echoed in targets:
            if live.hint.id in doc.dismissed:
                continue
            hint = live.hint
            single = hint.kind == "spelling" and len(hint.suggestions) == 1
            for suggestion in hint.suggestions:
                title = replace_title.format(suggestion)
                actions.append(
                    types.CodeAction(
                        title=title,
                        kind=types.CodeActionKind.QuickFix,
                        diagnostics=echoed,
                        is_preferred=single or None,
                        command=types.Command(
                            title=title, command=APPLY, arguments=[doc.uri, hint.id, suggestion]
                        ),
                    )
                )
            actions.append(
                types.CodeAction(
                    title=dismiss_title,
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=echoed,
                    command=types.Command(
                        title=dismiss_title, command=DISMISS, arguments=[doc.uri, hint.id]
                    ),
                )
            )
        if doc.session is not None and doc.session.scores is not None:
            actions.append(
                types.CodeAction(
                    title=scores_title,
                    kind=types.CodeActionKind.Empty,
                    command=types.Command(title=scores_title, command=SCORES, arguments=[doc.uri]),
                )
            )
        only = params.context.only
        if only:  # e.g. a "source.organizeImports" request on save: not ours
            wanted = [str(getattr(k, "value", k)) for k in only]
            actions = [
                a
                for a in actions
                if str(getattr(a.kind, "value", a.kind)).startswith(tuple(wanted))
            ]
        return actions

    @ls.command(APPLY)
    async def apply_suggestion(ls: InkstoneServer, *args: Any) -> bool:
        uri, hint_id, suggestion = (str(a) for a in args[:3])
        doc = ls.docs.get(uri)
        live = doc.find(hint_id) if doc is not None else None
        if doc is None or live is None or suggestion not in live.hint.suggestions:
            ls.log("warning", "that hint is out of date; nothing was changed")
            return False
        index = LineIndex(doc.text, ls.encoding)
        start, end = index.position(live.start), index.position(live.end)
        text_edit = types.TextEdit(
            range=types.Range(
                start=types.Position(line=start[0], character=start[1]),
                end=types.Position(line=end[0], character=end[1]),
            ),
            new_text=suggestion,
        )
        if ls.capability("workspace.workspace_edit.document_changes"):
            edit = types.WorkspaceEdit(
                document_changes=[
                    types.TextDocumentEdit(
                        text_document=types.OptionalVersionedTextDocumentIdentifier(
                            uri=uri, version=doc.version
                        ),
                        edits=[text_edit],
                    )
                ]
            )
        else:
            edit = types.WorkspaceEdit(changes={uri: [text_edit]})
        doc.own_edit = True
        result = await ls.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit=edit, label="Inkstone")
        )
        applied = bool(result and result.applied)
        if not applied:
            doc.own_edit = False
        return applied

    @ls.command(DISMISS)
    def dismiss(ls: InkstoneServer, *args: Any) -> bool:
        uri, hint_id = str(args[0]), str(args[1])
        doc = ls.docs.get(uri)
        if doc is None or doc.session is None:
            return False
        doc.dismissed.add(hint_id)
        doc.session.dismiss(hint_id)
        ls.publish(doc)
        return True

    @ls.command(SCORES)
    def show_scores(ls: InkstoneServer, *args: Any) -> str:
        doc = ls.docs.get(str(args[0])) if args else None
        lang = _lang(doc) if doc is not None else "zh"
        text = (doc.scores_text(lang) if doc is not None else "") or _TITLES[lang][3]
        ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Info, message=text))
        return text

    @ls.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: InkstoneServer, params: types.HoverParams) -> types.Hover | None:
        doc = ls.docs.get(params.text_document.uri)
        if doc is None:
            return None
        index = LineIndex(doc.text, ls.encoding)
        offset = index.offset(params.position.line, params.position.character)
        formats = ls.capability("text_document.hover.content_format") or []
        markdown = types.MarkupKind.Markdown in formats
        text, first = doc.hover_text(offset, _lang(doc), markdown)
        if not text:
            return None
        kind = types.MarkupKind.Markdown if markdown else types.MarkupKind.PlainText
        hover_range = None
        if first is not None:
            (sl, sc), (el, ec) = (
                index.position(first.sentence.start),
                index.position(first.sentence.end),
            )
            hover_range = types.Range(
                start=types.Position(line=sl, character=sc),
                end=types.Position(line=el, character=ec),
            )
        return types.Hover(contents=types.MarkupContent(kind=kind, value=text), range=hover_range)


def _lang(doc: OpenDocument) -> str:
    return doc.session.lang if doc.session is not None else "zh"


_background: set[asyncio.Task[None]] = set()


def _spawn(coro: Any) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
