"""Progress reports: a seeded history of essays through the real socket (with the shipped
models), the report numbers checked against the stored submissions and grades, and the
access rules of the report API (issue 14)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import pytest

from protocol import Grade, Hello, Observe, Review, Submit, Submitted
from server.scoring import text_stats
from server.wsclient import Observer, SocketSession, StudentClient
from tests.conftest import LiveServer, run

CLASS = "rc"
ESSAYS = {
    "s1": [
        "我的妈妈\n我的妈妈是一个善良的人。她每天早上六点就起床，为我们做早饭。我很高心有这样的妈妈。",
        "春天来了\n春天来了，天气非常情朗，小草从地下探出头来。柳树抽出了新的枝条，小燕子飞回来了。",
        "我的爸爸\n我的爸爸是一名医生。他每天工作很忙，但是总会抽时间陪我读书。爸爸是我学习的傍样。",
    ],
    "s2": [
        "家乡的秋天\n秋天到了，家乡的田野变成了金黄色。稻子弯下了腰，好像在向农民鞠躬。",
        "我的奶奶\n我的奶奶已经七十岁了。她做的饭菜特别香，我们全家都喜欢吃奶奶做的红烧肉。",
    ],
    "s3": ["美丽的校园\n我们的校园很美丽。春天，花坛里开满了鲜花；夏天，大树为我们遮阴。"],
}
# (student, essay index) → teacher grades given after that submission
GRADES = {("s1", 0): {"overall": 6.0, "logic": 5.0}, ("s1", 2): {"overall": 8.5, "logic": 7.5}}


async def _seed(live: LiveServer, class_id: str = CLASS) -> None:
    """Every essay of :data:`ESSAYS` typed, submitted and (some) graded in ``class_id``."""
    teacher = Observer(live.url, live.token("t1", "teacher", class_id=class_id))
    await teacher.connect()
    await teacher.session.send(Observe(class_id=class_id))  # keeps the documents live
    for student, texts in ESSAYS.items():
        for i, text in enumerate(texts):
            client = StudentClient(
                live.url, live.token(student, class_id=class_id), f"e{i + 1}", lang="zh"
            )
            await client.connect()
            await client.type_text(text)
            await client.wait_synced()
            await client.session.send(Submit(id="s"))
            done = await client.session.wait_for(lambda m: isinstance(m, Submitted), timeout=30)
            assert isinstance(done, Submitted) and done.submission == 1
            await client.close()
            for trait, score in GRADES.get((student, i), {}).items():
                await teacher.session.send(
                    Grade(
                        doc=f"{student}/e{i + 1}", trait=trait, score=score, reason="批改", id=trait
                    )
                )
                await teacher.session.wait_for(
                    lambda m, t=trait: isinstance(m, Review) and m.id == t
                )
    await teacher.close()


def _get(live: LiveServer, path: str, token: str | None) -> tuple[int, Any]:
    request = urllib.request.Request(live.http + path)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def seeded(model_server: LiveServer) -> LiveServer:
    run(_seed(model_server))
    return model_server


def test_student_report_matches_the_stored_history(seeded: LiveServer) -> None:
    status, report = _get(seeded, "/v1/reports/student/s1", seeded.token("s1", class_id=CLASS))
    assert status == 200
    store = seeded.runtime.service.reviews.store
    rows = store.submissions_of(CLASS, "s1")
    assert [e["doc"] for e in report["essays"]] == ["e1", "e2", "e3"] == [r.name for r in rows]
    for essay, row, text in zip(report["essays"], rows, ESSAYS["s1"], strict=True):
        assert row.text == text and essay["chars"] == text_stats(text, 0, 0).chars
        kinds = Counter(h[0] for h in row.hints)
        for kind, rate in essay["hints_per_1000"].items():
            assert rate == round(kinds[kind] * 1000 / essay["chars"], 2)
        assert row.scores is not None
        model_overall = row.scores["overall"]["score"]
        assert essay["scores"]["overall"]["model"] == model_overall
        assert essay["scores"]["content"]["score"] == row.scores["traits"]["content"]["score"]
    # each grade stored with who, when, and the model's score it overrode
    grade = next(g for g in store.grades(rows[0].doc) if g.trait == "overall")
    assert (grade.author, grade.submission, grade.score) == ("t1", 1, 6.0) and grade.created > 0
    assert grade.model_score == rows[0].scores["overall"]["score"]  # type: ignore[index]
    # the teacher's score counts where given, with its basis
    first, second, third = report["essays"]
    assert (
        first["scores"]["overall"]["score"] == 6.0
        and first["scores"]["overall"]["basis"] == "teacher:t1"
    )
    assert second["scores"]["overall"]["teacher"] is None
    assert third["scores"]["logic"]["score"] == 7.5
    # what changed since the last essay, in plain words, from the numbers above
    changes = {c["metric"]: c for c in report["changes"]}
    overall = changes["overall"]
    assert (overall["from"], overall["to"]) == (
        round(second["scores"]["overall"]["score"], 2),
        8.5,
    )
    assert overall["text_zh"].startswith("总评 从 ") and overall["text_en"].startswith("Overall ")
    assert report["summary_zh"] == "；".join(c["text_zh"] for c in report["changes"])
    typos = Counter(h[4] for r in rows for h in r.hints if h[1] == "misspelling")
    assert {m["char"]: m["count"] for m in report["misspelled"]} == dict(typos.most_common(10))


def test_class_report_trends_problems_topics_attention(seeded: LiveServer) -> None:
    status, report = _get(
        seeded, f"/v1/reports/class/{CLASS}", seeded.token("t1", "teacher", class_id=CLASS)
    )
    assert status == 200
    assert [s["student"] for s in report["students"]] == ["s1", "s2", "s3"]
    assert [s["essays"] for s in report["students"]] == [3, 2, 1]
    store = seeded.runtime.service.reviews.store
    # the first-essay class mean of overall: s1's teacher grade, s2's and s3's model scores
    firsts = [6.0] + [
        store.submissions_of(CLASS, s)[0].scores["overall"]["score"] for s in ("s2", "s3")
    ]  # type: ignore[index]
    assert report["trend"][0]["scores"]["overall"] == round(sum(firsts) / 3, 2)
    assert [p["students"] for p in report["trend"]] == [3, 2, 1]
    codes = Counter((h[0], h[1]) for r in store.submissions_of(CLASS) for h in r.hints)
    assert [(p["kind"], p["code"], p["count"]) for p in report["problems"]] == [
        (k, c, n) for (k, c), n in codes.most_common(10)
    ]
    topics = report["topics"]
    assert topics["method"] == "embeddings"  # the sentence model's, stored at submission
    assert sum(c["size"] for c in topics["clusters"]) == 6 and all(
        c["keywords"] for c in topics["clusters"]
    )
    for s in report["students"]:
        assert s["attention"] == bool(s["reasons"])
        if s["latest_overall"] is not None and s["latest_overall"] < 5.0:
            assert "low_overall" in s["reasons"]


def test_report_access_rules(seeded: LiveServer) -> None:
    t = seeded.token
    parent = t("p1", "parent", class_id=CLASS, student="s1")
    cases = [
        ("/v1/reports/student/s1", None, 401),
        ("/v1/reports/student/s1", "not-a-token", 401),
        ("/v1/reports/student/s1", t("s1", class_id=CLASS, ttl_s=-10), 401),
        ("/v1/reports/student/s1", t("s1", class_id=CLASS), 200),
        ("/v1/reports/student/s2", t("s1", class_id=CLASS), 403),
        ("/v1/reports/class/" + CLASS, t("s1", class_id=CLASS), 403),
        ("/v1/reports/student/s2", t("t1", "teacher", class_id=CLASS), 200),
        ("/v1/reports/class/" + CLASS, t("t9", "teacher", class_id="other"), 403),
        ("/v1/reports/student/s1", parent, 200),
        ("/v1/reports/student/s2", parent, 403),
        ("/v1/reports/class/" + CLASS, parent, 403),
    ]
    for path, token, expected in cases:
        status, body = _get(seeded, path, token)
        assert status == expected, (path, token, body)
    # a teacher of another class sees nothing of this class's students
    status, body = _get(seeded, "/v1/reports/student/s1", t("t9", "teacher", class_id="other"))
    assert status == 200 and body["essays"] == []

    async def parent_socket() -> None:
        session = SocketSession(seeded.url)
        await session.open()
        await session.send(Hello(token=parent))
        err = await session.wait_for(lambda m: m.TYPE in ("error", "welcome"))
        assert getattr(err, "code", None) == "forbidden"
        await session.close()

    run(asyncio.wait_for(parent_socket(), 20))
