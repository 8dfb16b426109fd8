"""The sans-I/O document client: pipelining, resume arithmetic, resync on refusal."""

from __future__ import annotations

from protocol import Ack, DocumentClient, Edit, Error, Limits, Replace, Welcome


def welcome(version: int, text: str, session: str = "s") -> Welcome:
    return Welcome(
        session=session,
        doc="d",
        version=version,
        text=text,
        limits=Limits(1, 1, 1.0, 1, 1),
        models={},
        dev_mode=True,
    )


def test_pipelined_edits_have_consecutive_bases() -> None:
    c = DocumentClient("t", "d")
    c.receive(welcome(4, "ab"))
    e1, e2 = c.change(2, 2, "c"), c.change(3, 3, "d")
    assert e1 is not None and e2 is not None
    assert (e1.base, e2.base) == (4, 5)
    c.receive(Ack(version=5, id=e1.id))
    assert c.version == 5 and c.confirmed_text == "abc" and not c.synced
    c.receive(Ack(version=6, id=e2.id))
    assert c.synced and c.text == "abcd"


def test_resume_resends_only_what_the_server_lacks() -> None:
    c = DocumentClient("t", "d")
    c.receive(welcome(0, ""))
    sent = [c.change(len(c.text), len(c.text), ch) for ch in "xyz"]
    c.receive(Ack(version=1, id=sent[0].id))
    # reconnect: the server had applied x and y (version 2); z is re-sent with its base
    replies = c.receive(welcome(2, "xy"))
    assert replies == [sent[2]] and isinstance(replies[0], Edit) and replies[0].base == 2
    assert c.version == 2 and len(c.pending) == 1


def test_divergent_server_text_resyncs_with_local_text() -> None:
    c = DocumentClient("t", "d")
    c.receive(welcome(0, ""))
    c.change(0, 0, "mine")
    replies = c.receive(welcome(5, "someone else's"))
    assert len(replies) == 1 and isinstance(replies[0], Replace) and replies[0].text == "mine"


def test_refused_edit_resyncs_after_the_delay_and_ignores_stale_errors() -> None:
    c = DocumentClient("t", "d")
    c.receive(welcome(0, ""))
    first, second = c.change(0, 0, "a"), c.change(1, 1, "b")
    assert first is not None and second is not None
    assert (
        c.receive(Error(code="storage", message="disk full", id=first.id, retry_after_ms=700)) == []
    )
    assert c.resync_due_ms == 700 and not c.pending
    # the pipelined edit after it fails too; that is expected and ignored
    assert c.receive(Error(code="version_mismatch", message="", id=second.id, version=0)) == []
    assert c.change(2, 2, "c") is None  # typed while waiting: kept, sent with the resync
    replace = c.resync()
    assert replace.text == "abc" and c.resync_due_ms is None
    c.receive(Ack(version=1, id=replace.id))
    assert c.synced and c.confirmed_text == "abc"
