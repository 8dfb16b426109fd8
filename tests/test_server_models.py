"""End to end with the shipped ONNX models: typing an essay gives hints and scores."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol import Error, Hints, Scores
from server.config import Settings
from server.wsclient import StudentClient
from tests.conftest import FAST, LiveServer, ThreadServer, run

ESSAY = [
    "人生就像一场旅行，不必在乎目的地，在乎的是沿途的风景。",
    "我们在成长的路上会遇到许多困难，但只要坚持下去，就一定能看见彩虹。",
    "有一次，我在考试中失败了，心情非常低落。",
]


def test_typing_an_essay_produces_hints_and_scores(model_server: LiveServer) -> None:
    async def main() -> None:
        client = StudentClient(
            model_server.url, model_server.token("m1"), "essay-m1", lang="zh", encoding="utf-16"
        )
        welcome = await client.connect()
        assert welcome.models["zh"]["sentence"].startswith("zh-sentence@")
        for sentence in ESSAY:
            for i in range(0, len(sentence), 3):  # IME-style bursts of a few characters
                await client.type_text(sentence[i : i + 3])
        await client.wait_synced()
        final = client.state.version
        scores = await client.session.wait_for(
            lambda m: isinstance(m, Scores) and m.version == final, timeout=20
        )
        assert isinstance(scores, Scores)
        assert scores.overall is not None and 0 <= scores.overall.score <= scores.overall.max
        assert scores.overall.grade in ("Great", "Medium", "Bad")
        assert set(scores.traits) == {"content", "structure", "logic", "language", "coherence"}
        assert all(t.basis.startswith("model:zh-essay@") for t in scores.traits.values())
        assert scores.stats.sentences == 3 and scores.stats.paragraphs == 1
        assert client.state.hints_version == final
        texts = {model_server_text(client, s.start, s.end) for s in client.state.hints.values()}
        assert texts == set(ESSAY)
        await client.close()

    run(main())


def model_server_text(client: StudentClient, start: int, end: int) -> str:
    # utf-16 offsets → python indices for comparison
    from protocol import PositionIndex

    index = PositionIndex(client.state.text, "utf-16")
    return client.state.text[index.to_code_points(start) : index.to_code_points(end)]


def test_an_edit_changes_only_the_edited_sentence(model_server: LiveServer) -> None:
    async def main() -> None:
        client = StudentClient(model_server.url, model_server.token("m2"), "essay-m2", lang="zh")
        await client.connect()
        await client.replace("".join(ESSAY))
        await client.wait_synced()
        await client.session.wait_for(
            lambda m: isinstance(m, Hints) and m.version == 1 and len(m.sentences) == 3
        )
        await client.session.wait_for(lambda m: isinstance(m, Scores) and m.version == 1)
        # change one character inside the second sentence
        second = client.state.text.index("困难")
        await client.change(second, second + 2, "挫折")
        await client.wait_synced()
        hints = await client.session.wait_for(lambda m: isinstance(m, Hints) and m.version == 2)
        assert isinstance(hints, Hints)
        assert [s.start for s in hints.sentences] == [len(ESSAY[0])]
        assert len(hints.sentences) == 1 and len(hints.removed) == 1
        edited = client.state.text[hints.sentences[0].start : hints.sentences[0].end]
        assert "挫折" in edited
        assert hints.timing is not None and hints.timing["analysis_ms"] >= 0
        # moving sentences (typing before them) does not re-run them: ids are content hashes
        runtime = model_server.runtime
        misses_before = runtime.models.cache.misses
        await client.change(0, 0, "\n")
        await client.wait_synced()
        hints = await client.session.wait_for(lambda m: isinstance(m, Hints) and m.version == 3)
        assert isinstance(hints, Hints) and hints.sentences == () and hints.removed == ()
        assert runtime.models.cache.misses == misses_before
        await client.close()

    run(main())


def test_dismiss_persists_for_the_document(model_server: LiveServer) -> None:
    async def main() -> None:
        client = StudentClient(model_server.url, model_server.token("m3"), "essay-m3", lang="zh")
        await client.connect()
        await client.replace("我们我们一起去学校,然后然后上课。今天天气很好")
        await client.wait_synced()
        hints = await client.session.wait_for(
            lambda m: isinstance(m, Hints) and any(s.hints for s in m.sentences)
        )
        assert isinstance(hints, Hints)
        target = next(h for s in hints.sentences for h in s.hints)
        from protocol import Dismiss

        await client.session.send(Dismiss(hint=target.id, id="d1"))
        update = await client.session.wait_for(lambda m: isinstance(m, Hints))
        assert isinstance(update, Hints)
        assert target.id not in {h.id for s in update.sentences for h in s.hints}
        await client.close()
        again = StudentClient(model_server.url, model_server.token("m3"), "essay-m3", lang="zh")
        await again.connect()
        first = await again.session.wait_for(lambda m: isinstance(m, Hints))
        assert isinstance(first, Hints)
        assert target.id not in {h.id for s in first.sentences for h in s.hints}
        await again.close()

    run(main())


def test_misspelling_hint_has_exact_span_and_suggestion(model_server: LiveServer) -> None:
    """The model flags 错别字 with the character span; the hint carries the fix."""

    async def main() -> None:
        client = StudentClient(
            model_server.url, model_server.token("m4"), "essay-m4", lang="zh", encoding="utf-16"
        )
        await client.connect()
        clean = "天空中飘着朵朵白云，景色十分美丽，令人心旷神怡。"
        await client.replace("😀" + "我门一起去公园玩。" + clean)
        await client.wait_synced()
        hints = await client.session.wait_for(lambda m: isinstance(m, Hints) and m.version == 1)
        assert isinstance(hints, Hints)
        spelling = [h for s in hints.sentences for h in s.hints if h.kind == "spelling"]
        # 门 is at code point 2, UTF-16 unit 3 (the emoji takes two units)
        assert [(h.start, h.end, h.suggestions) for h in spelling] == [(3, 4, ("们",))]
        assert spelling[0].code == "misspelling" and spelling[0].source.startswith("zh-sentence@")
        await client.close()

    run(main())


def test_overload_is_an_explicit_error_and_feedback_follows(tmp_path: Path) -> None:
    """A full queue answers `overloaded` with retry_after_ms; the edit is kept and analysed later."""
    # A long batching window keeps the first document's sentences queued, so the others
    # are refused until it drains.
    settings = Settings(data_dir=tmp_path, queue_limit=4, batch_window_ms=400, **FAST)
    with ThreadServer(settings) as live:

        async def main() -> None:
            errors: list[Error] = []
            clients = [
                StudentClient(live.url, live.token(f"o{i}"), f"over-{i}", lang="zh")
                for i in range(4)
            ]
            for c in clients:
                await c.connect()
                inner = c.session.on_message

                def spy(m: object, inner: object = inner) -> None:
                    if isinstance(m, Error):
                        errors.append(m)
                    inner(m)  # type: ignore[operator]

                c.session.on_message = spy  # type: ignore[assignment]
            for i, c in enumerate(clients):
                await c.replace("".join(f"第{i}篇第{k}句，内容各不相同。" for k in range(4)))
            for c in clients:
                await c.wait_synced()
            for c in clients:  # every draft is analysed in the end
                await c.session.wait_for(
                    lambda m: isinstance(m, Hints) and m.version == 1, timeout=30
                )
            overloaded = [e for e in errors if e.code == "overloaded"]
            assert overloaded, errors
            assert all(e.retry_after_ms and e.retry_after_ms > 0 for e in overloaded)
            assert all(c.state.synced for c in clients)
            for c in clients:
                await c.close()

        run(main())


def test_hints_and_scores_survive_a_restart_for_teachers(tmp_path: Path) -> None:
    """A teacher observing after a restart sees the stored analysis without re-running it."""
    from protocol import Observe, Snapshot
    from server.wsclient import Observer

    settings = Settings(data_dir=tmp_path, **FAST)
    with ThreadServer(settings) as live:

        async def write() -> int:
            client = StudentClient(live.url, live.token("r1"), "restart-essay", lang="zh")
            await client.connect()
            await client.replace("".join(ESSAY) + "我们我们出发了。")
            await client.wait_synced()
            await client.session.wait_for(lambda m: isinstance(m, Scores) and m.version == 1)
            await client.close()
            return len(client.state.hints)

        sentences = run(write())
    with ThreadServer(settings) as live:

        async def observe() -> None:
            teacher = Observer(live.url, live.token("t1", "teacher"))
            await teacher.connect()
            await teacher.session.send(Observe(doc="restart-essay"))
            snap = await teacher.session.wait_for(lambda m: isinstance(m, Snapshot))
            assert isinstance(snap, Snapshot) and snap.version == 1
            assert len(snap.hints) == sentences == 4
            assert any(h.code == "repeated_word" for s in snap.hints for h in s.hints)
            assert snap.scores is not None and snap.scores.overall is not None
            await teacher.close()

        run(observe())


def test_sentence_model_can_be_chosen_among_shipped_files() -> None:
    from engines.runtime import SentenceCodec, load_manifest
    from server.models import with_sentence_model

    manifest = load_manifest()
    for key in ("sentence_fp32", "sentence_int8"):
        codec = SentenceCodec(with_sentence_model(manifest, key))
        assert codec.model_file.name == f"{key}.onnx"
    assert load_manifest() == manifest  # the loaded manifest is not modified
    with pytest.raises(ValueError, match="sentence_fp32, sentence_int8"):
        with_sentence_model(manifest, "essay")
