"""The single-change diff used to store and mirror a ``replace``, and hint frames in parts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocol import SentenceHints
from server.fanout import diff_change, hints_frames

TEXT = st.text(alphabet="ab字😀\n", max_size=30)


@given(TEXT, TEXT)
def test_diff_change_is_the_smallest_single_change(old: str, new: str) -> None:
    start, end, inserted = diff_change(old, new)
    assert old[:start] + inserted + old[end:] == new
    # nothing left to trim: the change starts and ends where the texts differ
    if inserted and end > start:
        assert inserted[0] != old[start] and inserted[-1] != old[end - 1]
    assert start <= end <= len(old)


def test_large_hints_come_in_parts_at_one_version() -> None:
    sentences = tuple(SentenceHints(id=f"s{i}", start=i, end=i + 1) for i in range(450))
    removed = tuple(f"r{i}" for i in range(900))
    frames = hints_frames(7, sentences, removed, "doc", {"analysis_ms": 1.0}, 200)
    assert {f.version for f in frames} == {7} and {f.doc for f in frames} == {"doc"}
    assert [s for f in frames for s in f.sentences] == list(sentences)
    assert [r for f in frames for r in f.removed] == list(removed)
    assert all(len(f.sentences) <= 200 and len(f.removed) <= 800 for f in frames)
    assert frames[0].timing == {"analysis_ms": 1.0} and all(f.timing is None for f in frames[1:])
    assert len(hints_frames(7, sentences[:5], (), "doc", None, 200)) == 1
