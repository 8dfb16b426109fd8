"""The one error tree of the Inkstone protocol.

::

    InkstoneError                 root of everything this package raises
    ├── PeerError                 the peer sent something wrong → an ``error`` frame
    │   │                         with a stable ``code``; the connection survives
    │   └── (every ErrorCode)     bad_json, bad_message, unknown_type, bad_offsets, …
    └── UsageError                we misused our own API: a bug, never sent to a peer

A ``PeerError`` carries everything needed to build the ``error`` frame: the
code, a human message, the id of the offending message (if it had one), and
optionally the current version (``version_mismatch``) and a retry hint
(``overloaded``, ``rate_limited``).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ErrorCode", "InkstoneError", "PeerError", "UsageError"]


class ErrorCode(StrEnum):
    """Stable error codes. Clients switch on these; never rename one."""

    BAD_JSON = "bad_json"  # not valid JSON / not UTF-8 / not an object
    BAD_MESSAGE = "bad_message"  # a field is missing or has the wrong type
    UNKNOWN_TYPE = "unknown_type"  # "type" names no client message
    BAD_OFFSETS = "bad_offsets"  # out of range, inverted, overlapping, or inside a surrogate pair
    BAD_SURROGATE = "bad_surrogate"  # text holds a lone UTF-16 surrogate
    BINARY_FRAME = "binary_frame"  # only text frames are accepted
    FRAME_TOO_LARGE = "frame_too_large"  # frame exceeds limits.max_message_bytes
    DOC_TOO_LARGE = "doc_too_large"  # the edit would exceed limits.max_document_chars
    RATE_LIMITED = "rate_limited"  # too many messages; see retry_after_ms
    VERSION_MISMATCH = "version_mismatch"  # edit.base is not the current version
    NO_SESSION = "no_session"  # a document message before a successful hello
    ALREADY_OPEN = "already_open"  # a second hello on one connection
    UNAUTHORIZED = "unauthorized"  # missing, malformed or badly signed token
    TOKEN_EXPIRED = "token_expired"
    FORBIDDEN = "forbidden"  # authenticated, but not allowed to do this
    NOT_FOUND = "not_found"  # unknown hint / document
    OVERLOADED = "overloaded"  # analysis queue full; see retry_after_ms
    STORAGE = "storage"  # the edit could not be stored; it was not applied
    STORAGE_QUOTA = "storage_quota"  # the student's documents use their whole storage quota
    TOO_MANY_DOCUMENTS = "too_many_documents"  # limits.max_documents reached; reuse one
    INTERNAL = "internal"  # a bug on the server; the document is unchanged


class InkstoneError(Exception):
    """Root of the protocol's exceptions."""


class PeerError(InkstoneError):
    """The peer sent something we must refuse with an ``error`` frame."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        msg_id: str | int | None = None,
        version: int | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.msg_id = msg_id
        self.version = version
        self.retry_after_ms = retry_after_ms

    def with_id(self, msg_id: str | int | None) -> PeerError:
        """Return this error tagged with the offending message's id (if not already)."""
        if self.msg_id is None and msg_id is not None:
            self.msg_id = msg_id
        return self


class UsageError(InkstoneError):
    """Our own code called the protocol API wrongly: a bug."""
