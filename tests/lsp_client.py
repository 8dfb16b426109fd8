"""A scripted LSP editor for the bridge's end-to-end tests (pytest-lsp's client, plus an
editor buffer that applies ``workspace/applyEdit`` and sends real incremental changes).

Positions are converted here independently of ``editors.lsp.text`` (by encoding each
line), so a test does not check the bridge against its own arithmetic.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Union

from lsprotocol import types
from pygls.protocol import default_converter
from pytest_lsp import LanguageClient, LspSpecificationWarning, client_capabilities
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

from tests.conftest import ROOT

ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
ENCODING = {"neovim": "utf-8", "emacs": "utf-32", "visual-studio-code": "utf-16"}


def units(s: str, encoding: str) -> int:
    if encoding == "utf-8":
        return len(s.encode("utf-8"))
    if encoding == "utf-16":
        return len(s.encode("utf-16-le")) // 2
    return len(s)


def to_offset(text: str, line: int, character: int, encoding: str) -> int:
    lines = text.split("\n")
    before = sum(len(x) + 1 for x in lines[:line])
    content = lines[line] if line < len(lines) else ""
    for i in range(len(content) + 1):
        if units(content[:i], encoding) >= character:
            return before + i
    return before + len(content)


def to_position(text: str, offset: int, encoding: str) -> types.Position:
    head = text[:offset].split("\n")
    return types.Position(line=len(head) - 1, character=units(head[-1], encoding))


@dataclass
class Buffer:
    """One open file in the scripted editor."""

    client: LanguageClient
    uri: str
    text: str
    encoding: str
    version: int = 0

    history: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.history[self.version] = self.text

    def change(self, start: int, end: int, new: str) -> None:
        """Replace code points [start, end) as an editor does: one incremental change."""
        rng = types.Range(
            start=to_position(self.text, start, self.encoding),
            end=to_position(self.text, end, self.encoding),
        )
        self.text = self.text[:start] + new + self.text[end:]
        self.version += 1
        self.history[self.version] = self.text
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=self.uri, version=self.version
                ),
                content_changes=[types.TextDocumentContentChangePartial(range=rng, text=new)],
            )
        )

    async def type(self, text: str, at: int | None = None, delay: float = 0.0) -> None:
        """Type ``text`` one character at a time (an IME commits a word at once: same thing)."""
        offset = len(self.text) if at is None else at
        for ch in text:
            self.change(offset, offset, ch)
            offset += 1
            await asyncio.sleep(delay)

    def span(self, diagnostic: types.Diagnostic, version: int | None = None) -> str:
        text = self.text if version is None else self.history[version]
        r = diagnostic.range
        start = to_offset(text, r.start.line, r.start.character, self.encoding)
        end = to_offset(text, r.end.line, r.end.character, self.encoding)
        return text[start:end]

    def check_ranges(self, published: list[tuple[int | None, list[types.Diagnostic]]]) -> int:
        """Every diagnostic ever published covers what its hint flagged, in the text of the
        version it was published for (a stale range would cover something else). Returns
        how many were checked."""
        checked = 0
        for version, diagnostics in published:
            assert version is not None and version in self.history
            for d in diagnostics:
                span, fixes = self.span(d, version), d.data["suggestions"]
                if d.code == "repeated_word":
                    assert span == fixes[0] * 2, (version, span, fixes)
                elif d.code == "misspelling":
                    assert len(span) == 1 and span not in fixes, (version, span, fixes)
                elif d.code == "halfwidth_punctuation":
                    assert span in ",.?!:;", (version, span)
                else:
                    assert span, (version, d)
                checked += 1
        return checked


@dataclass
class Editor:
    client: LanguageClient
    encoding: str
    buffers: dict[str, Buffer] = field(default_factory=dict)
    published: dict[str, list[tuple[int | None, list[types.Diagnostic]]]] = field(
        default_factory=dict
    )
    published_at: dict[str, list[float]] = field(default_factory=dict)
    scores: list[Any] = field(default_factory=list)
    applied: list[types.ApplyWorkspaceEditParams] = field(default_factory=list)

    def open(self, path: str, text: str, language_id: str = "plaintext") -> Buffer:
        uri = f"file:///essays/{path}"
        buffer = Buffer(self.client, uri, text, self.encoding)
        self.buffers[uri] = buffer
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id=language_id, version=0, text=text
                )
            )
        )
        return buffer

    def first_shown(self, buffer: Buffer, code: str) -> float:
        """When a diagnostic with ``code`` was first published for ``buffer``."""
        for (_, diagnostics), at in zip(
            self.published[buffer.uri], self.published_at[buffer.uri], strict=True
        ):
            if any(d.code == code for d in diagnostics):
                return at
        raise AssertionError(f"no {code} published")

    def diagnostics(self, buffer: Buffer) -> list[types.Diagnostic]:
        history = self.published.get(buffer.uri)
        return list(history[-1][1]) if history else []

    async def wait(self, predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            await asyncio.sleep(0.02)
        raise TimeoutError("condition not met")

    async def wait_diagnostic(
        self, buffer: Buffer, code: str, timeout: float = 15.0
    ) -> types.Diagnostic:
        return await self.wait(
            lambda: next((d for d in self.diagnostics(buffer) if d.code == code), None), timeout
        )

    async def execute(self, action: types.CodeAction) -> Any:
        assert action.command is not None
        return await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command=action.command.command, arguments=action.command.arguments
            )
        )

    async def code_actions(self, buffer: Buffer, diagnostic: types.Diagnostic) -> list[Any]:
        result = await self.client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=buffer.uri),
                range=diagnostic.range,
                context=types.CodeActionContext(diagnostics=[diagnostic]),
            )
        )
        return list(result or [])


def _client(editor_ref: list[Editor]) -> LanguageClient:
    client = LanguageClient(converter_factory=default_converter)
    converter = client.protocol._converter

    def command_or_action(obj: Any, _: type) -> types.Command | types.CodeAction:
        # lsprotocol reads any object with a "command" key as a Command, but a CodeAction
        # may carry a Command too (ours all do); editors tell them apart by its type
        if isinstance(obj.get("command"), str):
            return converter.structure(obj, types.Command)
        return converter.structure(obj, types.CodeAction)

    converter.register_structure_hook(
        Union[types.Command, types.CodeAction],  # noqa: UP007 - the key lsprotocol uses
        command_or_action,
    )
    features = {
        k: v
        for k, v in DEFAULT_CLIENT_FEATURES.items()
        if k != types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS
    }
    register_lsp_features(client, features)

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def publish(ls: LanguageClient, params: types.PublishDiagnosticsParams) -> None:
        ls.diagnostics[params.uri] = params.diagnostics
        editor_ref[0].published.setdefault(params.uri, []).append(
            (params.version, list(params.diagnostics))
        )
        editor_ref[0].published_at.setdefault(params.uri, []).append(time.monotonic())

    @client.feature("inkstone/scores")
    def scores(ls: LanguageClient, params: Any) -> None:
        editor_ref[0].scores.append(params)

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(
        ls: LanguageClient, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult:
        editor = editor_ref[0]
        editor.applied.append(params)
        edits: list[tuple[str, types.TextEdit]] = []
        if params.edit.document_changes:
            for dc in params.edit.document_changes:
                assert isinstance(dc, types.TextDocumentEdit)
                buffer = editor.buffers[dc.text_document.uri]
                if dc.text_document.version not in (None, buffer.version):
                    return types.ApplyWorkspaceEditResult(applied=False, failure_reason="version")
                edits += [(dc.text_document.uri, e) for e in dc.edits]  # type: ignore[misc]
        for uri, text_edits in (params.edit.changes or {}).items():
            edits += [(uri, e) for e in text_edits]
        for uri, e in edits:
            buffer = editor.buffers[uri]
            start = to_offset(
                buffer.text, e.range.start.line, e.range.start.character, buffer.encoding
            )
            end = to_offset(buffer.text, e.range.end.line, e.range.end.character, buffer.encoding)
            buffer.change(start, end, e.new_text)
        return types.ApplyWorkspaceEditResult(applied=True)

    return client


@contextlib.asynccontextmanager
async def lsp_editor(preset: str, **options: Any) -> AsyncIterator[Editor]:
    """``inkstone lsp`` as a child process, initialised by a client with ``preset``'s
    capabilities. Fails the test on any LSP specification warning pytest-lsp raises."""
    editor_ref: list[Editor] = []
    client = _client(editor_ref)
    capabilities = client_capabilities(preset)
    encoding = str(
        (capabilities.general.position_encodings or ["utf-16"])[0]
        if capabilities.general
        else "utf-16"
    )
    editor = Editor(client, encoding)
    editor_ref.append(editor)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LspSpecificationWarning)
        await client.start_io(sys.executable, "-m", "editors.lsp", env=ENV, cwd=str(ROOT))
        try:
            result = await client.initialize_session(
                types.InitializeParams(capabilities=capabilities, initialization_options=options)
            )
            editor.encoding = str(result.capabilities.position_encoding or "utf-16")
            yield editor
            await asyncio.wait_for(client.shutdown_session(), 10)
        finally:
            if client._server is not None and client._server.returncode is None:
                client._server.kill()
            await asyncio.wait_for(client.stop(), 10)
    spec = [w for w in caught if issubclass(w.category, LspSpecificationWarning)]
    assert not spec, [str(w.message) for w in spec]
