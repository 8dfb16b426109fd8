"""Regenerate docs/screenshots/{review-teacher-queue,review-teacher-mirror,review-student,
report-student,report-class}.png (issue 14).

Starts a real server with the shipped models, seeds a class history over the socket (the
essays of tests/test_review_reports.py, submitted and partly graded), has a teacher
comment on, judge and grade a student's draft, and photographs the pages in Debian's
chromium through Playwright::

    python frontend_demo/tools/review_screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from protocol import Comment, Grade, Observe, Snapshot, Submit, Submitted, Verdict  # noqa: E402
from server.config import Settings  # noqa: E402
from server.wsclient import Observer, StudentClient  # noqa: E402
from tests.conftest import FAST, LiveServer, ThreadServer  # noqa: E402
from tests.test_review_reports import _seed  # noqa: E402

CLASS = "class1"
DRAFT = (
    "难忘的一件事\n"
    "每个人的成长路上，都有一些难忘的事情。对我来说，最难忘的是去年秋天的那次登山。\n"
    "那天早上，天气非常情朗，我们就出发了。山路又陡又滑，走到半山腰，我的腿已经酸得抬不起来。"
    "这时，爸爸拍拍我的肩膀说：“坚持就是胜利。”\n"
    "我们终于登上了山顶，我高心得跳了起来，我们的的汗水没有白流。\n"
    "通过这次登山，使我明白了一个道理：做任何事情都要坚持到底。"
)


async def review_draft(live: LiveServer) -> None:
    """小明 writes and submits; the teacher comments, disagrees with one hint, grades."""
    student = StudentClient(live.url, live.token("小明", class_id=CLASS), "登山", lang="zh")
    await student.connect()
    await student.type_text(DRAFT)
    await student.wait_synced()
    await student.session.send(Submit(id="s"))
    await student.session.wait_for(lambda m: isinstance(m, Submitted), timeout=30)
    teacher = Observer(live.url, live.token("王老师", "teacher", class_id=CLASS))
    await teacher.connect()
    await teacher.session.send(Observe(doc="小明/登山"))
    snap = await teacher.session.wait_for(lambda m: isinstance(m, Snapshot))
    assert isinstance(snap, Snapshot)
    at = DRAFT.index("爸爸拍拍我的肩膀")
    await teacher.session.send(
        Comment(
            doc="小明/登山",
            start=at,
            end=at + 8,
            text="这里可以写写爸爸的神情和动作",
            suggestion="爸爸笑着拍拍我的肩膀",
        )
    )
    hints = [h for s in snap.hints for h in s.hints if h.code != "more"]
    if hints:
        await teacher.session.send(
            Verdict(doc="小明/登山", hint=hints[-1].id, verdict="disagree", note="此处可以接受")
        )
    for trait, score, reason in (
        ("overall", 7.5, "叙事完整，细节还可以更丰富"),
        ("logic", 7.0, "前后连贯"),
    ):
        await teacher.session.send(Grade(doc="小明/登山", trait=trait, score=score, reason=reason))
    await asyncio.sleep(1.0)
    await teacher.close()
    await student.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as tmp,
        ThreadServer(Settings(data_dir=Path(tmp), **FAST)) as live,
    ):
        asyncio.run(_seed(live, CLASS))
        asyncio.run(review_draft(live))
        late = StudentClient(live.url, live.token("s3", class_id=CLASS), "e9", lang="zh")
        asyncio.run(
            _submit_one(late, "我的同桌\n我的同桌是一个爱笑的女孩。她的眼睛大大的，笑起来像月牙。")
        )
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": 1360, "height": 900}, locale="zh-CN")
            teacher = live.token("王老师", "teacher", class_id=CLASS)
            page.goto(f"{live.http}/teacher?token={teacher}")
            page.wait_for_selector("#queue button[data-doc]")
            page.wait_for_timeout(800)
            page.screenshot(path=str(args.out / "review-teacher-queue.png"))
            page.goto(f"{live.http}/teacher?token={teacher}&view=小明/登山")
            page.wait_for_selector("#m-comments .comment-item")
            page.wait_for_timeout(800)
            page.screenshot(path=str(args.out / "review-teacher-mirror.png"), full_page=True)
            page.goto(f"{live.http}/?token={live.token('小明', class_id=CLASS)}&doc=登山")
            page.wait_for_selector("#teacher-scores table")
            page.wait_for_selector("#backdrop mark.u-teacher")
            page.wait_for_timeout(800)
            page.screenshot(path=str(args.out / "review-student.png"), full_page=True)
            page.goto(f"{live.http}/report/student/s1#token={live.token('s1', class_id=CLASS)}")
            page.wait_for_selector("#report[data-state=ready]")
            page.screenshot(path=str(args.out / "report-student.png"), full_page=True)
            page.goto(f"{live.http}/report/class/{CLASS}#token={teacher}")
            page.wait_for_selector("#report[data-state=ready]")
            page.screenshot(path=str(args.out / "report-class.png"), full_page=True)
            browser.close()
    print(f"screenshots written to {args.out}")


async def _submit_one(client: StudentClient, text: str) -> None:
    await client.connect()
    await client.type_text(text)
    await client.wait_synced()
    await client.session.send(Submit(id="s"))
    await client.session.wait_for(lambda m: isinstance(m, Submitted), timeout=30)
    await client.close()


if __name__ == "__main__":
    main()
