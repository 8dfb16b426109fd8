"""A sans-I/O client for one document: what to send, and what the replies mean.

The client keeps the text at the last acknowledged version and the list of
operations sent but not yet acknowledged. Every operation bumps the
server's version by exactly one, so after a reconnect the ``welcome``
version says how many of the in-flight operations were applied; the rest
are sent again with unchanged bases and are therefore applied exactly once
(a base the server has moved past gets ``version_mismatch``, never a
duplicate). Anything unexpected ends in a ``replace`` with the local text,
which wins: nothing the user typed is lost.

With ``max_in_flight=1`` (what :class:`server.wsclient.StudentClient` and the load
generator use) one operation is in flight at a time and what the user types meanwhile
is composed into the next edit, sent when the ack comes: one write per round trip
instead of one per keystroke (ShareDB and Overleaf do this). With ``client_id`` every
operation carries ``seq`` and ``hello`` carries ``client``, so the server recognises a
re-sent operation and never applies it twice.

I/O lives elsewhere (``server.wsclient`` for asyncio); this module only
turns events into messages.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass

from protocol.edits import apply_changes
from protocol.errors import UsageError
from protocol.messages import (
    Ack,
    Change,
    ClientMessage,
    Edit,
    Error,
    Hello,
    Hints,
    Lang,
    Reauth,
    Replace,
    Resume,
    Scores,
    SentenceHints,
    ServerMessage,
    Welcome,
)
from protocol.positions import Encoding, PositionIndex

__all__ = ["DocumentClient", "Pending"]


@dataclass(frozen=True, slots=True)
class Pending:
    """An operation sent and not yet acknowledged."""

    message: Edit | Replace
    text_after: str  # the local text once it is applied


class DocumentClient:
    """Client-side state of one student document."""

    def __init__(
        self,
        token: str,
        doc: str,
        *,
        lang: Lang = "auto",
        encoding: Encoding = "utf-32",
        client_id: str | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        self.token = token
        # Names this client instance; with each operation's seq it makes a re-send
        # idempotent on the server (doc, client, seq). The I/O layer passes a random one.
        self.client_id = client_id
        self._seqs = itertools.count(1)
        self.max_in_flight = max_in_flight  # None: every change is sent at once
        self.doc = doc
        self.lang: Lang = lang
        self.encoding: Encoding = encoding
        self.session: str | None = None
        self.version: int | None = None  # last version the server acknowledged
        self.confirmed_text = ""  # the text at self.version
        self.text = ""  # the local text (what the user sees)
        self.pending: deque[Pending] = deque()
        self.hints: dict[str, SentenceHints] = {}
        self.hints_version = -1
        self.scores: Scores | None = None
        self.resyncs = 0
        self.resync_due_ms: int | None = None  # a refused operation: resync after this delay
        self._ids = itertools.count(1)
        self._stale_ids: set[str | int] = set()

    # ------------------------------------------------------------ outgoing

    def hello(self) -> Hello:
        resume = None
        if self.session is not None and self.version is not None:
            resume = Resume(session=self.session, version=self.version)
        return Hello(
            token=self.token,
            doc=self.doc,
            lang=self.lang,
            position_encoding=self.encoding,
            resume=resume,
            id=next(self._ids),
            client=self.client_id,
        )

    def reauth(self, token: str) -> Reauth:
        """Present a fresh token on the open socket; later hellos (reconnects) use it too."""
        self.token = token
        return Reauth(token=token, id=next(self._ids))

    def change(self, start: int, end: int, text: str) -> Edit | None:
        """The user replaced ``self.text[start:end]`` (code points) by ``text``.

        Returns the edit to send, or None while a refused operation awaits its resync
        (the change is kept locally and goes out with the resync's ``replace``) or while
        ``max_in_flight`` operations await their ack (it goes out, composed with what
        follows, when the ack comes: see :meth:`flush`).
        """
        if not 0 <= start <= end <= len(self.text):
            raise UsageError(f"change {start}..{end} outside 0..{len(self.text)}")
        index = PositionIndex(self.text, self.encoding)
        wire = Change(index.to_wire(start), index.to_wire(end), text)
        self.text = self.text[:start] + text + self.text[end:]
        if self.version is None:
            raise UsageError("no welcome yet: call hello() and receive the welcome first")
        if self.resync_due_ms is not None:
            return None
        if self.max_in_flight is not None:
            return self.flush()
        edit = Edit(
            base=self.version + len(self.pending),
            changes=(wire,),
            id=next(self._ids),
            seq=self._seq(),
        )
        self.pending.append(Pending(edit, self.text))
        return edit

    def flush(self) -> Edit | None:
        """The local changes not yet sent, composed into one edit (one change: the
        difference from the text the operations in flight produce), if one may go now."""
        if self.version is None or self.resync_due_ms is not None:
            return None
        if self.max_in_flight is not None and len(self.pending) >= self.max_in_flight:
            return None
        before = self.pending[-1].text_after if self.pending else self.confirmed_text
        if before == self.text:
            return None
        start, end, inserted = _difference(before, self.text)
        index = PositionIndex(before, self.encoding)
        wire = Change(index.to_wire(start), index.to_wire(end), inserted)
        edit = Edit(
            base=self.version + len(self.pending),
            changes=(wire,),
            id=next(self._ids),
            seq=self._seq(),
        )
        self.pending.append(Pending(edit, self.text))
        return edit

    def replace(self, text: str | None = None) -> Replace:
        """Send the whole local text (or set it to ``text`` first)."""
        if text is not None:
            self.text = text
        message = Replace(text=self.text, id=next(self._ids), seq=self._seq())
        self.pending.append(Pending(message, self.text))
        return message

    def _seq(self) -> int | None:
        return None if self.client_id is None else next(self._seqs)

    # ------------------------------------------------------------ incoming

    def receive(self, message: ServerMessage) -> list[ClientMessage]:
        """Update the state; return the messages that must be sent in reply."""
        if isinstance(message, Welcome):
            return self._on_welcome(message)
        if isinstance(message, Ack):
            return self._on_ack(message)
        if isinstance(message, Error) and message.code == "version_mismatch":
            return self._on_mismatch(message)
        if isinstance(message, Error) and self._is_pending(message.id):
            return self._on_refused(message)
        if isinstance(message, Hints):
            if message.version >= self.hints_version:
                self.hints_version = message.version
                for sentence_id in message.removed:
                    self.hints.pop(sentence_id, None)
                for sentence in message.sentences:
                    self.hints[sentence.id] = sentence
        elif isinstance(message, Scores) and (
            self.scores is None or message.version >= self.scores.version
        ):
            self.scores = message
        return []

    def _resync(self) -> list[ClientMessage]:
        self.resyncs += 1
        self._stale_ids.update(p.message.id for p in self.pending if p.message.id is not None)
        self.pending.clear()
        return [self.replace()]

    def _on_welcome(self, welcome: Welcome) -> list[ClientMessage]:
        first = self.version is None
        self.session = welcome.session
        if first:
            self.version, self.confirmed_text = welcome.version, welcome.text
            if self.text and self.text != welcome.text:
                return self._resync()  # typed before the first welcome
            self.text = welcome.text
            return []
        assert self.version is not None
        applied = welcome.version - self.version
        if 0 <= applied <= len(self.pending):
            expected = self.confirmed_text if applied == 0 else self.pending[applied - 1].text_after
            if expected == welcome.text:
                for _ in range(applied):
                    self.pending.popleft()
                self.version, self.confirmed_text = welcome.version, welcome.text
                if not self.pending:
                    composed = self.flush()  # typed while disconnected
                    return [] if composed is None else [composed]
                return [p.message for p in self.pending]
        # Someone else changed the document, or state diverged: the local text wins.
        self.version, self.confirmed_text = welcome.version, welcome.text
        return self._resync()

    def _is_pending(self, msg_id: object) -> bool:
        return msg_id is not None and any(p.message.id == msg_id for p in self.pending)

    def _on_refused(self, error: Error) -> list[ClientMessage]:
        """An operation was refused (storage full, rate limit…): it and all after it are
        void. The local text is kept; :meth:`resync` sends it once ``resync_due_ms`` passed."""
        self._stale_ids.update(p.message.id for p in self.pending if p.message.id is not None)
        self.pending.clear()
        self.resync_due_ms = error.retry_after_ms or 1000
        return []

    def resync(self) -> Replace:
        """Send the local text after a refusal (the I/O layer calls this after the delay)."""
        self.resync_due_ms = None
        self.resyncs += 1
        return self.replace()

    def _on_ack(self, ack: Ack) -> list[ClientMessage]:
        if not self.pending or (ack.id is not None and self.pending[0].message.id != ack.id):
            return []  # an ack for an operation we already gave up on
        done = self.pending.popleft()
        self.version, self.confirmed_text = ack.version, done.text_after
        composed = self.flush()
        return [] if composed is None else [composed]

    def _on_mismatch(self, error: Error) -> list[ClientMessage]:
        if error.id is not None and error.id in self._stale_ids:
            self._stale_ids.discard(error.id)
            return []
        if error.version is not None:
            self.version = error.version
        return self._resync()

    @property
    def synced(self) -> bool:
        """True when every local change has been acknowledged."""
        return not self.pending and self.text == self.confirmed_text

    def apply_remote(self, changes: tuple[Change, ...], version: int) -> None:
        """Mirror someone else's edit (observers); offsets in this client's encoding."""
        self.text, _ = apply_changes(self.text, changes, self.encoding)
        self.confirmed_text, self.version = self.text, version


def _difference(old: str, new: str) -> tuple[int, int, str]:
    """The one change (code points) that turns ``old`` into ``new``."""
    limit = min(len(old), len(new))
    prefix = 0
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    return prefix, len(old) - suffix, new[prefix : len(new) - suffix]
