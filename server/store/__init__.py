"""Durable storage of documents, their edit logs, analyses, dismissals and sessions.

This package owns everything that reaches a disk. :mod:`server.store.sqlite` is the
one-machine default (one SQLite file in WAL mode); :mod:`server.store.postgres`
(``--store postgresql://…``) is the shared store of several gateway nodes, with group
commit (:mod:`server.store.batch`: one transaction per tick of edits, acked after
COMMIT, fenced by version). The service talks to either through the
:class:`DocumentStore` protocol in :mod:`server.store.base`. ``Store`` stays the SQLite
store's name for existing callers.
"""

from server.store.base import DocumentStore, StorageError, StoredDocument, apply_logged
from server.store.sqlite import SCHEMA_VERSION, SQLiteStore, migrate

Store = SQLiteStore

__all__ = [
    "SCHEMA_VERSION",
    "DocumentStore",
    "SQLiteStore",
    "StorageError",
    "Store",
    "StoredDocument",
    "apply_logged",
    "migrate",
]
