"""The document client's write path for several nodes: one edit in flight with the
keystrokes typed meanwhile composed into the next, and client/seq on every operation."""

from __future__ import annotations

from protocol import Ack, DocumentClient, Edit, Error, apply_changes, decode_client, encode
from tests.test_document_client import welcome


def test_one_edit_in_flight_composes_what_is_typed_meanwhile() -> None:
    c = DocumentClient("t", "d", client_id="tab1", max_in_flight=1)
    hello = c.hello()
    assert hello.client == "tab1"
    c.receive(welcome(3, "ab"))
    first = c.change(2, 2, "c")
    assert isinstance(first, Edit) and first.base == 3 and first.seq == 1
    assert [c.change(len(c.text), len(c.text), ch) for ch in "def"] == [None, None, None]
    c.change(0, 1, "A")  # an edit before the end, too
    (composed,) = c.receive(Ack(version=4, id=first.id))
    assert isinstance(composed, Edit) and composed.base == 4 and composed.seq == 2
    text, _ = apply_changes("abc", composed.changes, "utf-32")
    assert text == c.text == "Abcdef"
    assert c.receive(Ack(version=5, id=composed.id)) == [] and c.synced


def test_composition_in_utf16_with_astral_characters() -> None:
    c = DocumentClient("t", "d", encoding="utf-16", max_in_flight=1)
    c.receive(welcome(0, "😀"))
    first = c.change(1, 1, "a")
    assert first is not None and first.changes[0].start == 2  # after the surrogate pair
    c.change(2, 2, "𠀀b")
    (composed,) = c.receive(Ack(version=1, id=first.id))
    assert isinstance(composed, Edit)
    text, _ = apply_changes("😀a", composed.changes, "utf-16")
    assert text == c.text == "😀a𠀀b"


def test_typed_while_disconnected_goes_out_after_the_welcome() -> None:
    c = DocumentClient("t", "d", client_id="tab1", max_in_flight=1)
    c.receive(welcome(0, ""))
    sent = c.change(0, 0, "x")
    assert sent is not None
    c.change(1, 1, "y")
    # the socket dropped; the server had applied x (version 1): the draft "y" goes now
    (composed,) = c.receive(welcome(1, "x", session="s2"))
    assert isinstance(composed, Edit) and composed.base == 1 and composed.seq == 2
    # a resend keeps its seq, on the wire too
    again = decode_client(encode(composed).decode())
    assert isinstance(again, Edit) and again.seq == 2


def test_refusal_then_resync_carries_the_draft() -> None:
    c = DocumentClient("t", "d", client_id="tab1", max_in_flight=1)
    c.receive(welcome(0, ""))
    sent = c.change(0, 0, "a")
    assert sent is not None
    c.change(1, 1, "b")
    c.receive(Error(code="storage", message="down", id=sent.id, retry_after_ms=500))
    assert c.resync_due_ms == 500 and c.flush() is None
    replace = c.resync()
    assert replace.text == "ab" and replace.seq == 2


def test_sqlite_server_acks_a_resent_replace_without_applying_it_twice(rules_server) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from protocol import Hello, Replace
    from server.docids import doc_key
    from server.wsclient import SocketSession

    async def main() -> None:
        token = rules_server.token("s1")
        acks = []
        for _ in range(2):  # the second socket re-sends the same operation
            s = SocketSession(rules_server.url)
            await s.open()
            await s.send(Hello(token=token, doc="essay", client="tab1"))
            await s.wait_for(lambda m: m.TYPE == "welcome")
            await s.send(Replace(text="Once.", id=7, seq=1))
            acks.append(await s.wait_for(lambda m: m.TYPE in ("ack", "error")))
            await s.close()
        assert [a.TYPE for a in acks] == ["ack", "ack"]
        assert acks[0].version == acks[1].version == 1
        stored = rules_server.runtime.store.load(doc_key("c1", "s1", "essay"))
        assert stored.version == 1 and stored.text == "Once."
        assert stored.client_seqs == {"tab1": (1, 1)}

    asyncio.run(asyncio.wait_for(main(), 30))
