"""What every store shares: the document a store hands back, its errors, log replay,
and the :class:`DocumentStore` protocol the service is written against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

__all__ = ["DocumentStore", "Fenced", "StorageError", "StoredDocument", "apply_logged"]


class StorageError(Exception):
    """The database refused a write (disk full, read-only, locked, unreachable…)."""


class Fenced(StorageError):
    """Another node wrote this document's next version first: reload it from the store."""


@dataclass(slots=True)
class StoredDocument:
    key: str
    name: str
    owner: str
    class_id: str
    lang: str
    version: int
    text: str
    dismissed: set[str] = field(default_factory=set)
    analysis: dict[str, Any] | None = None  # the last scored analysis (Analysis.to_json)
    scores: dict[str, Any] | None = None
    analysis_version: int = -1
    stored_bytes: int = 0
    # client id -> (seq, version) of its last applied operation (idempotent resend)
    client_seqs: dict[str, tuple[int, int]] = field(default_factory=dict)


def apply_logged(text: str, op: str, payload: bytes) -> str:
    """Replay one edit-log entry."""
    if op == "replace":
        return payload.decode("utf-8")
    for start, end, inserted in orjson.loads(payload):
        text = text[:start] + inserted + text[end:]
    return text


class DocumentStore(Protocol):
    """The calls the service makes; each write is durable when it returns."""

    def create(self, key: str, name: str, owner: str, class_id: str, lang: str) -> None: ...

    def append(
        self,
        key: str,
        version: int,
        changes: list[tuple[int, int, str]],
        text_after: str,
        origin: tuple[str, int] | None = None,
    ) -> int:
        """Log one applied operation (and its client's (id, seq)); the bytes the document
        now takes."""

    def set_lang(self, key: str, lang: str) -> None: ...

    def dismiss(self, key: str, hint: str) -> None: ...

    def save_analysis(
        self, key: str, version: int, analysis: dict[str, Any], scores: dict[str, Any] | None
    ) -> None: ...

    def add_session(self, session: str, key: str, user: str) -> None: ...

    def load(self, key: str) -> StoredDocument | None: ...

    def session_doc(self, session: str) -> tuple[str, str] | None: ...

    def docs_in_class(self, class_id: str) -> list[tuple[str, str, str]]: ...

    def docs_of(self, class_id: str, owner: str) -> tuple[int, int]: ...

    def close(self) -> None: ...
