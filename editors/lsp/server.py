"""The pygls Language Server: LSP requests and notifications in, sockets and diagnostics out.

Everything runs on pygls's asyncio loop (``start_io``), the sockets included.
Quick fixes, dismissals and the scores summary are server-side commands, so they
work in every editor; a quick fix is resolved from the hint id in the
diagnostic's ``data`` and applied with ``workspace/applyEdit`` against the
bridge's current text, never from the range the client echoes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from editors.lsp.document import LspChange, OpenDocument
from editors.lsp.mask import mask_kind
from editors.lsp.settings import Settings, http_base, resolve_token
from editors.lsp.text import LspEncoding

if TYPE_CHECKING:  # the socket layer (websockets, protocol/) loads with the first document,
    # off the path to the `initialize` answer (start-up time: bench/lsp_startup.py)
    from editors.lsp.session import DocumentSession, Status
    from protocol import Hints, Scores

__all__ = ["InkstoneServer", "create_server"]

log = logging.getLogger("inkstone.lsp")
VERSION = "0.1.0"
APPLY, DISMISS, SCORES = "inkstone.applySuggestion", "inkstone.dismiss", "inkstone.showScores"
_LEVELS = {
    "error": types.MessageType.Error,
    "warning": types.MessageType.Warning,
    "info": types.MessageType.Info,
}


class InkstoneServer(LanguageServer):
    """State shared by the handlers: settings, open documents, the token, progress."""

    def __init__(self) -> None:
        super().__init__("inkstone", VERSION)
        self.base_settings = Settings()
        self.settings = Settings()
        self.docs: dict[str, OpenDocument] = {}
        self.configured = asyncio.Event()
        self._token: str | None = None
        self._token_lock = asyncio.Lock()
        self._progress: dict[str, str | None] = {}
        self._progress_locks: dict[str, asyncio.Lock] = {}
        self._tokens = itertools.count(1)
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._shown: set[str] = set()

    # ------------------------------------------------------------ helpers

    @property
    def encoding(self) -> LspEncoding:
        value = str(self.workspace.position_encoding or "utf-16")
        return value if value in ("utf-8", "utf-32") else "utf-16"  # type: ignore[return-value]

    def capability(self, path: str) -> Any:
        node: Any = self.client_capabilities
        for part in path.split("."):
            node = getattr(node, part, None)
            if node is None:
                return None
        return node

    async def token(self) -> str:
        async with self._token_lock:
            if self._token is None:
                self._token = await asyncio.to_thread(resolve_token, self.settings)
            return self._token

    def forget_token(self) -> None:
        self._token = None

    def docs_url(self) -> str | None:
        if not self.capability("text_document.publish_diagnostics.code_description_support"):
            return None
        return http_base(self.settings.server) + "/hints"

    def log(self, level: str, text: str) -> None:
        self.window_log_message(
            types.LogMessageParams(type=_LEVELS.get(level, types.MessageType.Info), message=text)
        )

    # ------------------------------------------------------------ documents

    def start_session(self, doc: OpenDocument) -> None:
        from editors.lsp.session import DocumentSession

        lang = self.settings.lang if self.settings.lang in ("zh", "en") else "auto"
        doc.session = DocumentSession(
            self.settings.server,
            doc.name,
            doc.masked,
            lang=lang,  # type: ignore[arg-type]
            token=self.token,
            events=self,
            invalidate_token=self.forget_token,
        )
        doc.session.start()

    def doc_of(self, session: DocumentSession) -> OpenDocument | None:
        return next((d for d in self.docs.values() if d.session is session), None)

    def publish(self, doc: OpenDocument, *, force: bool = False) -> None:
        lang = doc.session.lang if doc.session is not None else "zh"
        over = doc.session is not None and doc.session.over_limit
        hints, wait = ([], 0.0) if over else doc.visible(self.settings.caret_delay_ms)
        diagnostics = doc.diagnostics(
            hints,
            self.encoding,
            lang=lang,
            severities=self.settings.severity,
            docs_url=self.docs_url(),
        )
        shown = [
            (
                str(d.data["hint"]) if isinstance(d.data, dict) else "",
                (
                    d.range.start.line,
                    d.range.start.character,
                    d.range.end.line,
                    d.range.end.character,
                ),
            )
            for d in diagnostics
        ]
        if force or shown != doc.published:
            doc.published = shown
            self.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(
                    uri=doc.uri, diagnostics=diagnostics, version=doc.version
                )
            )
        timer = self._timers.pop(doc.uri, None)
        if timer is not None:
            timer.cancel()
        if wait > 0:
            loop = asyncio.get_running_loop()
            self._timers[doc.uri] = loop.call_later(wait + 0.01, self._republish, doc.uri)

    def _republish(self, uri: str) -> None:
        self._timers.pop(uri, None)
        doc = self.docs.get(uri)
        if doc is not None:
            self.publish(doc)

    # ------------------------------------------------------------ session events

    def on_hints(
        self, session: DocumentSession, message: Hints, texts: list[str] | None, full: bool
    ) -> None:
        doc = self.doc_of(session)
        if doc is None:
            return
        doc.store.receive(message, texts, full=full)
        self.publish(doc)

    def on_scores(self, session: DocumentSession, message: Scores) -> None:
        doc = self.doc_of(session)
        if doc is not None:
            import orjson

            from protocol import encode

            wire = orjson.loads(encode(message))  # nested dataclasses become plain JSON
            wire.pop("type", None)
            self.protocol.notify("inkstone/scores", {"uri": doc.uri, **wire})

    def on_problem(self, session: DocumentSession, level: str, text: str) -> None:
        self.log(level, text)
        if level == "error" and text not in self._shown:  # e.g. no token: say it once, aloud
            self._shown.add(text)
            self.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Error, message=f"Inkstone: {text}")
            )
        doc = self.doc_of(session)
        if doc is not None and session.over_limit:
            self.publish(doc)

    def on_status(self, session: DocumentSession, status: Status, detail: str) -> None:
        doc = self.doc_of(session)
        if doc is None or not self.capability("window.work_done_progress"):
            return
        lock = self._progress_locks.setdefault(doc.uri, asyncio.Lock())
        task = asyncio.get_running_loop().create_task(self._report(doc.uri, lock, status, detail))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _report(self, uri: str, lock: asyncio.Lock, status: Status, detail: str) -> None:
        async with lock:
            token = self._progress.get(uri)
            if status in ("pending", "overloaded"):
                title = "Inkstone"
                if token is None:
                    token = f"inkstone-{next(self._tokens)}"
                    await self.work_done_progress.create_async(token)
                    self._progress[uri] = token
                    self.work_done_progress.begin(
                        token, types.WorkDoneProgressBegin(title=title, message=detail)
                    )
                else:
                    self.work_done_progress.report(
                        token, types.WorkDoneProgressReport(message=detail)
                    )
            elif token is not None:
                self._progress[uri] = None
                self.work_done_progress.end(
                    token, types.WorkDoneProgressEnd(message=detail or None)
                )

    # ------------------------------------------------------------ settings

    async def pull_configuration(self) -> None:
        if not self.capability("workspace.configuration"):
            return
        try:
            result = await self.workspace_configuration_async(
                types.ConfigurationParams(items=[types.ConfigurationItem(section="inkstone")])
            )
        except Exception as exc:  # the editor could not answer: keep what we have
            log.warning("workspace/configuration failed: %s", exc)
            return
        if result:
            self.settings = self.base_settings.merged(result[0])

    async def apply_settings(self, previous: Settings) -> None:
        """Apply changed settings live: masks, severities, and (server, token, language)
        by reopening every document's socket."""
        reconnect = previous.connection_key() != self.settings.connection_key()
        if reconnect:
            self.forget_token()
        for doc in list(self.docs.values()):
            before = doc.masked
            doc.remask(mask_kind(doc.language_id, doc.uri, self.settings.mask))
            if reconnect or before != doc.masked:
                doc.store.clear()
            if reconnect and doc.session is not None:
                await doc.session.close()
                self.start_session(doc)
            elif doc.session is not None and before != doc.masked:
                doc.session.change(None, doc.masked)
            self.publish(doc, force=True)


def lsp_changes(params: types.DidChangeTextDocumentParams) -> list[LspChange]:
    out: list[LspChange] = []
    for change in params.content_changes:
        if isinstance(change, types.TextDocumentContentChangePartial):
            r = change.range
            out.append(
                ((r.start.line, r.start.character, r.end.line, r.end.character), change.text)
            )
        else:
            out.append((None, change.text))
    return out


def create_server() -> InkstoneServer:
    """The bridge with its handlers registered (see :mod:`editors.lsp.features`)."""
    from editors.lsp.features import register

    server = InkstoneServer()
    register(server)
    return server
