"""Document identity: a document belongs to (class, owner) and has a name inside it.

A student names a document (``hello {doc: "essay"}``); the server stores it under the
key ``class/owner/name``, so two students (or the same user id in two classes) can
use the same name without meeting, and no student can block or probe another's
names. Teachers see the documents of their class as ``owner/name`` ("teacher ids").
Each part is escaped (``%`` → ``%25``, ``/`` → ``%2F``) so the joins are unambiguous.
"""

from __future__ import annotations

__all__ = ["doc_key", "split_teacher_id", "teacher_id"]


def _escape(part: str) -> str:
    return part.replace("%", "%25").replace("/", "%2F")


def _unescape(part: str) -> str:
    return part.replace("%2F", "/").replace("%2f", "/").replace("%25", "%")


def doc_key(class_id: str, owner: str, name: str) -> str:
    """The storage key of ``name`` owned by ``owner`` in ``class_id``."""
    return f"{_escape(class_id)}/{_escape(owner)}/{_escape(name)}"


def teacher_id(owner: str, name: str) -> str:
    """How a teacher of the class addresses the document."""
    return f"{_escape(owner)}/{_escape(name)}"


def split_teacher_id(value: str) -> tuple[str, str] | None:
    """``(owner, name)`` of a teacher id, or None if ``value`` is not one."""
    owner, sep, name = value.partition("/")
    if not sep or not owner or not name or "/" in name:
        return None
    return _unescape(owner), _unescape(name)
