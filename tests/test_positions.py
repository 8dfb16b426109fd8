"""UTF-16 / UTF-32 offsets, astral characters, surrogates, and atomic edits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import Change, ErrorCode, PeerError, PositionIndex, apply_changes, encoded_length
from protocol.edits import convert_changes
from protocol.errors import UsageError
from protocol.lifecycle import Lifecycle, Phase

TEXT = "写作😀很𠀀好a"  # 😀 and 𠀀 (CJK Ext-B) are astral: two UTF-16 units each


def test_lengths() -> None:
    assert encoded_length(TEXT, "utf-32") == 7
    assert encoded_length(TEXT, "utf-16") == 9
    assert len(TEXT.encode("utf-16-le")) // 2 == 9


def test_utf16_offsets_map_to_code_points() -> None:
    index = PositionIndex(TEXT, "utf-16")
    assert [index.to_code_points(u) for u in (0, 1, 2, 4, 5, 7, 8, 9)] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert [index.to_wire(c) for c in range(8)] == [0, 1, 2, 4, 5, 7, 8, 9]


@pytest.mark.parametrize("offset", [3, 6])
def test_offset_inside_a_surrogate_pair_is_refused(offset: int) -> None:
    with pytest.raises(PeerError) as info:
        PositionIndex(TEXT, "utf-16").to_code_points(offset)
    assert info.value.code == ErrorCode.BAD_OFFSETS


@pytest.mark.parametrize("offset", [-1, 10])
def test_out_of_range_offsets_are_refused(offset: int) -> None:
    with pytest.raises(PeerError) as info:
        PositionIndex(TEXT, "utf-16").to_code_points(offset)
    assert info.value.code == ErrorCode.BAD_OFFSETS


@given(st.text(max_size=30, alphabet=st.characters(blacklist_categories=("Cs",))))
def test_round_trip_every_boundary(text: str) -> None:
    index = PositionIndex(text, "utf-16")
    for cp in range(len(text) + 1):
        assert index.to_code_points(index.to_wire(cp)) == cp
        assert index.to_wire(cp) == len(text[:cp].encode("utf-16-le")) // 2


def test_edits_apply_in_order_and_atomically() -> None:
    text, applied = apply_changes("abc", [Change(3, 3, "d"), Change(0, 1, "A")], "utf-32")
    assert text == "Abcd"
    assert [(a.start, a.end, a.text) for a in applied] == [(3, 3, "d"), (0, 1, "A")]
    original = "abc"
    with pytest.raises(PeerError) as info:
        apply_changes(original, [Change(0, 1, "x"), Change(5, 6, "y")], "utf-32")
    assert info.value.code == ErrorCode.BAD_OFFSETS
    assert original == "abc"


def test_edit_after_emoji_in_utf16() -> None:
    text, _ = apply_changes(TEXT, [Change(4, 5, "非常")], "utf-16")
    assert text == "写作😀非常𠀀好a"
    assert convert_changes(TEXT, [Change(4, 5, "x")], "utf-16", "utf-32") == (Change(3, 4, "x"),)


def test_document_size_limit() -> None:
    with pytest.raises(PeerError) as info:
        apply_changes("abc", [Change(0, 0, "x" * 10)], "utf-32", max_chars=12)
    assert info.value.code == ErrorCode.DOC_TOO_LARGE


def test_lifecycle_table() -> None:
    life = Lifecycle()
    with pytest.raises(PeerError) as info:
        life.check("edit")
    assert info.value.code == ErrorCode.NO_SESSION
    life.check("hello")
    life.fire("open_teacher")
    assert life.phase is Phase.OBSERVING
    with pytest.raises(PeerError) as info:
        life.check("edit")
    assert info.value.code == ErrorCode.FORBIDDEN
    with pytest.raises(PeerError) as info:
        life.check("hello")
    assert info.value.code == ErrorCode.ALREADY_OPEN
    with pytest.raises(UsageError):
        life.fire("open_student")
    life.fire("close")
    life.fire("closed")
    assert life.phase is Phase.CLOSED
