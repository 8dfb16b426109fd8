"""Teacher review over real sockets: comments mapped through edits, verdicts that withdraw
hints, teacher grades, submissions and the review queue, permissions, and everything
back after a reconnect (issue 14)."""

from __future__ import annotations

import asyncio
import sqlite3

from protocol import (
    Comment,
    Error,
    Grade,
    Hints,
    Observe,
    Resolve,
    Review,
    ReviewQueue,
    ServerMessage,
    Snapshot,
    Submit,
    Submitted,
    Verdict,
    map_span,
)
from server.wsclient import Observer, StudentClient
from tests.conftest import LiveServer, run

TEXT = "My first sentence is here. And the the second one. A third sentence ends it."


def _is(kind: type, doc: str | None = None) -> object:
    return lambda m: isinstance(m, kind) and (doc is None or getattr(m, "doc", None) == doc)


async def _teacher(live: LiveServer, user: str = "t1", class_id: str = "c1") -> Observer:
    teacher = Observer(live.url, live.token(user, "teacher", class_id=class_id))
    await teacher.connect()
    return teacher


def test_map_span_rules() -> None:
    assert map_span(5, 10, 0, 0, 3) == (8, 13)  # inserted before
    assert map_span(5, 10, 5, 5, 2) == (7, 12)  # inserted at the start: outside
    assert map_span(5, 10, 10, 10, 2) == (5, 10)  # inserted at the end: outside
    assert map_span(5, 10, 6, 8, 0) == (5, 8)  # deleted inside
    assert map_span(5, 10, 3, 7, 0) == (3, 6)  # deleted across the start
    assert map_span(5, 10, 5, 10, 0) is None  # its text deleted
    assert map_span(5, 10, 0, 20, 0) is None
    assert map_span(5, 10, 7, 12, 3) == (5, 10)  # rewritten across the end: stays


def test_comment_follows_edits_and_goes_with_its_text(rules_server: LiveServer) -> None:
    async def main() -> None:
        student = StudentClient(rules_server.url, rules_server.token("s1"), "essay", lang="en")
        await student.connect()
        await student.type_text(TEXT)
        await student.wait_synced()
        teacher = await _teacher(rules_server)
        await teacher.session.send(Observe(doc="s1/essay", id="o"))
        await teacher.session.wait_for(_is(Snapshot))

        start = TEXT.index("second one")
        await teacher.session.send(
            Comment(
                doc="s1/essay",
                start=start,
                end=start + len("second one"),
                text="Which one? Be specific.",
                suggestion="second example",
                version=1,
                id="c1",
            )
        )
        mine = await teacher.session.wait_for(lambda m: isinstance(m, Review) and m.id == "c1")
        assert isinstance(mine, Review) and mine.doc == "s1/essay" and len(mine.comments) == 1
        seen = await student.session.wait_for(_is(Review, "essay"))
        assert isinstance(seen, Review) and seen.version == 1
        (comment,) = seen.comments
        assert (comment.kind, comment.code, comment.source) == (
            "teacher",
            "teacher_comment",
            "teacher:t1",
        )
        assert comment.suggestions == ("second example",) and comment.quote == "second one"
        assert TEXT[comment.start : comment.end] == "second one"

        # edits around it move it (the server maps it, and says so after a reconnect)
        await student.change(0, 0, "Intro. ")
        await student.change(len("Intro. My first"), len("Intro. My first"), " little")
        await student.wait_synced()
        await student.close()
        again = StudentClient(rules_server.url, rules_server.token("s1"), "essay", lang="en")
        await again.connect()
        review = await again.session.wait_for(_is(Review, "essay"))
        assert isinstance(review, Review) and review.version == 3
        (moved,) = review.comments
        assert again.state.text[moved.start : moved.end] == "second one"
        assert (moved.author, moved.message) == ("t1", "Which one? Be specific.")

        # deleting the commented text removes the comment, for everyone
        text = again.state.text
        at = text.index("second one")
        await again.change(at, at + len("second one"), "")
        gone = await again.session.wait_for(lambda m: isinstance(m, Review) and not m.comments)
        assert isinstance(gone, Review) and gone.version == 4
        mirror = await teacher.session.wait_for(lambda m: isinstance(m, Review) and not m.comments)
        assert isinstance(mirror, Review) and mirror.doc == "s1/essay"
        rows = rules_server.runtime.service.reviews.store.db.execute(
            "SELECT author, state, closed_by, created FROM comments"
        ).fetchall()
        assert [(r[0], r[1], r[2]) for r in rows] == [("t1", "deleted", "s1")] and rows[0][3] > 0
        await again.close()
        await teacher.close()

    run(main())


def test_verdicts_grades_submissions_and_reconnect(rules_server: LiveServer) -> None:
    async def main() -> None:
        student = StudentClient(rules_server.url, rules_server.token("s1"), "essay", lang="en")
        await student.connect()
        teacher = await _teacher(rules_server)
        await teacher.session.send(Observe(class_id="c1", id="cls"))
        queue = await teacher.session.wait_for(_is(ReviewQueue))
        assert isinstance(queue, ReviewQueue) and queue.items == () and queue.class_id == "c1"

        await student.type_text(TEXT)
        hints = await student.session.wait_for(
            lambda m: (
                isinstance(m, Hints)
                and any(h.code == "repeated_word" for s in m.sentences for h in s.hints)
            )
        )
        assert isinstance(hints, Hints)
        repeated = next(h for s in hints.sentences for h in s.hints if h.code == "repeated_word")

        # disagree: the hint is withdrawn from the student's view, live
        await teacher.session.send(
            Verdict(
                doc="s1/essay", hint=repeated.id, verdict="disagree", note="style choice", id="v"
            )
        )
        withdrawn = await student.session.wait_for(_is(Hints, "essay"))
        assert isinstance(withdrawn, Hints)
        assert all(h.id != repeated.id for s in withdrawn.sentences for h in s.hints)
        review = await student.session.wait_for(_is(Review, "essay"))
        assert isinstance(review, Review)
        (verdict,) = review.verdicts
        assert (verdict.hint, verdict.verdict, verdict.author, verdict.code) == (
            repeated.id,
            "disagree",
            "t1",
            "repeated_word",
        )
        assert verdict.quote == TEXT[repeated.start : repeated.end]

        # a grade with its reason, beside the model's scores
        await teacher.session.send(
            Grade(doc="s1/essay", trait="logic", score=6.5, reason="clear order", id="g")
        )
        graded = await student.session.wait_for(lambda m: isinstance(m, Review) and bool(m.grades))
        assert isinstance(graded, Review) and graded.grades is not None
        logic = graded.grades["logic"]
        assert (logic.score, logic.max, logic.basis, logic.reason) == (
            6.5,
            10.0,
            "teacher:t1",
            "clear order",
        )

        # submit: recorded with the analysed version; the teacher's queue shows it
        await student.session.send(Submit(id="sub"))
        done = await student.session.wait_for(_is(Submitted))
        assert isinstance(done, Submitted) and (done.submission, done.version, done.id) == (
            1,
            1,
            "sub",
        )
        queue = await teacher.session.wait_for(
            lambda m: isinstance(m, ReviewQueue) and bool(m.items)
        )
        assert isinstance(queue, ReviewQueue)
        assert [(i.doc, i.student, i.submission, i.version) for i in queue.items] == [
            ("s1/essay", "s1", 1, 1)
        ]
        await student.session.send(Submit(id="again"))  # a resend of the same version
        again = await student.session.wait_for(_is(Submitted))
        assert isinstance(again, Submitted) and (again.submission, again.id) == (1, "again")
        # editing after submitting continues the document; the submission stays frozen
        await student.type_text(" More.")
        await student.wait_synced()
        row = rules_server.runtime.service.reviews.store.submissions(rules_server.doc("essay").id)[
            0
        ]
        assert (row.version, row.text) == (1, TEXT)
        assert all(code != "repeated_word" for _, code, *_ in row.hints)  # withdrawn: not counted

        await teacher.session.send(
            Grade(doc="s1/essay", trait="overall", score=7, reason="good draft", id="g2")
        )
        queue = await teacher.session.wait_for(lambda m: isinstance(m, ReviewQueue) and not m.items)
        assert isinstance(queue, ReviewQueue)

        # reconnect both: the student's hints still lack the withdrawn one; the review is back
        await student.close()
        await teacher.close()
        again = StudentClient(rules_server.url, rules_server.token("s1"), "essay", lang="en")
        await again.connect()
        review = await again.session.wait_for(_is(Review, "essay"))
        assert isinstance(review, Review) and review.grades is not None
        assert (
            set(review.grades) == {"logic", "overall"} and review.grades["overall"].submission == 1
        )
        assert [(s.n, s.version, s.reviewed) for s in review.submissions] == [(1, 1, True)]
        await asyncio.sleep(0.3)
        assert all(h.id != repeated.id for s in again.state.hints.values() for h in s.hints)
        teacher = await _teacher(rules_server)
        await teacher.session.send(Observe(doc="s1/essay", id="o2"))
        await teacher.session.wait_for(_is(Snapshot))
        review = await teacher.session.wait_for(_is(Review, "s1/essay"))
        assert isinstance(review, Review) and review.verdicts[0].created > 0
        await again.close()
        await teacher.close()

    run(main())


def test_review_permissions(rules_server: LiveServer) -> None:
    async def main() -> None:
        student = StudentClient(rules_server.url, rules_server.token("s1"), "essay", lang="en")
        await student.connect()
        await student.type_text(TEXT)
        await student.wait_synced()
        outsider = await _teacher(rules_server, "t9", "c2")
        errors: list[ServerMessage] = []
        for n, message in enumerate(
            [
                Comment(doc="s1/essay", start=0, end=2, text="hi", id=1),
                Grade(doc="s1/essay", trait="overall", score=1, reason="x", id=2),
                Verdict(doc="s1/essay", hint="h0", verdict="agree", id=3),
                Resolve(doc="s1/essay", comment="c0", id=4),
            ]
        ):
            await outsider.session.send(message)
            errors.append(await outsider.session.wait_for(_is(Error)))
            assert errors[-1].id == n + 1  # type: ignore[union-attr]
        assert [e.code for e in errors] == ["not_found"] * 4  # type: ignore[union-attr]

        await student.session.send(Comment(doc="s1/essay", start=0, end=2, text="me", id=5))
        err = await student.session.wait_for(_is(Error))
        assert isinstance(err, Error) and err.code == "forbidden"
        await outsider.session.send(Submit(id=6))
        err = await outsider.session.wait_for(_is(Error))
        assert isinstance(err, Error) and err.code == "forbidden"

        teacher = await _teacher(rules_server)
        await teacher.session.send_raw(
            '{"type": "grade", "doc": "s1/essay", "trait": "overall", "score": 11, "reason": "x", "id": 7}'
        )
        err = await teacher.session.wait_for(_is(Error))
        assert isinstance(err, Error) and (err.code, err.id) == ("bad_message", 7)
        await teacher.session.send(Comment(doc="s1/essay", start=0, end=999, text="x", id=8))
        err = await teacher.session.wait_for(_is(Error))
        assert isinstance(err, Error) and (err.code, err.id) == ("bad_offsets", 8)
        await teacher.session.send(
            Comment(doc="s1/essay", start=0, end=2, text="x", version=0, id=9)
        )
        err = await teacher.session.wait_for(_is(Error))
        assert isinstance(err, Error) and (err.code, err.version) == ("version_mismatch", 1)

        # nothing was stored by any refused action
        db = sqlite3.connect(rules_server.settings.data_dir / "review.sqlite3")
        for table in ("comments", "verdicts", "grades", "submissions"):
            assert db.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,)
        db.close()

        # the student may resolve a comment on their own document (observers see it go)
        await teacher.session.send(Observe(doc="s1/essay"))
        await teacher.session.wait_for(_is(Snapshot))
        await teacher.session.send(Comment(doc="s1/essay", start=3, end=8, text="word?", id=10))
        review = await student.session.wait_for(_is(Review, "essay"))
        assert isinstance(review, Review)
        await student.session.send(Resolve(comment=review.comments[0].id, id=11))
        closed = await teacher.session.wait_for(lambda m: isinstance(m, Review) and not m.comments)
        assert isinstance(closed, Review)
        for client in (student, outsider, teacher):
            await client.close()

    run(main())
