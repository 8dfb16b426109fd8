"""Regenerate docs/screenshots/{student,teacher,teacher-mirror}.png.

Starts a real server (with the neural models when engines/manifest.json exists,
else rules only), simulates a class of students over the socket protocol, and
photographs both pages in Debian's chromium through Playwright::

    python frontend_demo/tools/screenshots.py [--no-models] [--out docs/screenshots]

Needs ``apt-get install chromium fonts-noto-cjk`` and ``pip install playwright``
(no ``playwright install``: the system chromium is used).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from server.config import Settings  # noqa: E402
from server.wsclient import StudentClient  # noqa: E402
from tests.conftest import ThreadServer  # noqa: E402

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# The student on camera: a draft in progress, with a typo, a faulty sentence and punctuation slips.
STUDENT_ESSAY = (
    "难忘的一件事\n"
    "每个人的成长路上，都有一些难忘的事情。对我来说，最难忘的是去年秋天的那次登山。\n"
    "那天早上，天刚蒙蒙亮，天气非常情朗，我们就出发了。山路又陡又滑,走到半山腰，我的腿已经酸得抬不起来。"
    "我坐在石头上，心里想：还是放弃吧。这时，爸爸走过来拍拍我的肩膀说：“坚持就是胜利，山顶的风景一定不会让你失望。”\n"
    "通过这次登山，使我明白了一个道理：做任何事情都要坚持到底。我们终于登上了山顶，看到日出的那一刻，我高心得跳了起来"
)

# Classmates, simulated over the socket.
CLASSMATES = {
    "李娜": (
        "我的妈妈\n我的妈妈是一个善良的人。她每天早上六点就起床，为我们做早饭。有一次我生病了，"
        "妈妈在我床边守了一整夜,第二天眼睛都红了。我心里暗暗发誓，一定要好好学习，不让妈妈操心。"
    ),
    "王芳": (
        "家乡的秋天\n秋天到了，家乡的田野变成了金黄色。稻子弯下了腰，好像在向辛勤的农民鞠躬。"
        "通过这次秋收劳动，使我懂得了粮食来之不易。我们的的生活离不开农民伯伯的汗水。"
    ),
    "张伟": (
        "我的理想\n我的理想是当一名科学家。科学家可以发明很多东西，让人们的生活更加美好."
        "为了实现这个理想，我每天都认真学习，在接再厉，从不放弃。他是我们学习的傍样。"
    ),
    "陈晨": (
        "一次难忘的比赛\n上周学校举行了拔河比赛。比赛开始了，同学们都使出了全身的力气。"
        "经过激烈的争夺，终于我们班获得了第一名。大家高兴得跳了起来，欢呼声响彻了整个操场。"
    ),
    "刘洋": (
        "读书的乐趣\n书是人类进步的阶梯。读书不仅能增长知识，而且能开阔眼界。"
        "我最喜欢读童话故事，因为童话故事里有许多有趣的人物,他们的故事让我流连忘返。"
    ),
    "赵敏": (
        "春天来了\n春天来了，天气非常情朗，小草从地下探出头来，柳树抽出了新的枝条。"
        "小燕子从南方飞回来了，在天空中自由地飞翔。我们要爱护环竟。春天真是一个美丽的季节!"
    ),
}


def simulate_class(url: str, tokens: dict[str, str], stop: threading.Event) -> threading.Thread:
    """Classmates type their essays a few characters at a time, then stay connected."""

    async def one(name: str, token: str) -> None:
        client = StudentClient(url, token, f"{name}-essay", lang="zh", encoding="utf-16")
        await client.connect()
        text = CLASSMATES[name]
        for i in range(0, len(text), 6):
            await client.type_text(text[i : i + 6])
            await asyncio.sleep(0.03)
        await client.wait_synced()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await client.close()

    async def main() -> None:
        await asyncio.gather(*(one(n, t) for n, t in tokens.items()))

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    return thread


def settle(page: Page, expression: str, timeout: float = 30) -> None:
    page.wait_for_function(expression, timeout=timeout * 1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--no-models", action="store_true", help="rule hints only")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    models = not args.no_models and (ROOT / "engines" / "manifest.json").exists()
    args.out.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="inkstone-shots-"))
    settings = Settings(data_dir=data, debounce_quiet_ms=60, debounce_max_ms=300)
    stop = threading.Event()
    with ThreadServer(settings, load_models=models) as live:
        tokens = {name: live.token(name, class_id="c1") for name in CLASSMATES}
        sim = simulate_class(live.url, tokens, stop)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS
            )
            ctx = browser.new_context(
                viewport={"width": 1360, "height": 1000}, device_scale_factor=1, locale="zh-CN"
            )
            page = ctx.new_page()
            page.goto(f"{live.http}/?token={live.token('周杰', class_id='c1')}&doc=周杰-essay")
            page.wait_for_selector("#conn[data-state=live]")
            page.wait_for_function("!document.getElementById('editor').readOnly")
            page.click("#editor")
            paragraphs = STUDENT_ESSAY.split("\n")
            for i, para in enumerate(paragraphs):
                page.keyboard.insert_text(para + ("\n" if i < len(paragraphs) - 1 else ""))
                page.wait_for_function("window.inkstone.session.synced")
                time.sleep(0.4)  # let the scores timeline grow paragraph by paragraph
            settle(
                page,
                "window.inkstone.session.scores && "
                "window.inkstone.session.scores.version === window.inkstone.session.version",
            )
            time.sleep(0.5)
            # open the card of the most telling hint (a misspelling if the model found one)
            hint_id = page.evaluate(
                """() => { const hs = window.inkstone.session.hints.hints();
                const pick = hs.find((h) => h.kind === 'spelling' && h.suggestions.length)
                  || hs.find((h) => h.suggestions.length) || hs[0];
                return pick ? pick.id : null; }"""
            )
            if hint_id:
                box = page.evaluate(
                    """(id) => { const m = [...document.querySelectorAll('#backdrop mark')]
                      .find((m) => m.dataset.h.split(' ').includes(id));
                      const r = m.getBoundingClientRect();
                      return [r.x + r.width / 2, r.y + r.height / 2]; }""",
                    hint_id,
                )
                page.mouse.move(box[0], box[1])
                page.wait_for_selector("#hint-card:not([hidden])")
            page.screenshot(path=str(args.out / "student.png"))

            teacher = ctx.new_page()
            teacher_token = live.token("王老师", role="teacher", class_id="c1")
            teacher.goto(f"{live.http}/teacher?token={teacher_token}")
            teacher.wait_for_selector("#conn[data-state=live]")
            cards = len(CLASSMATES) + 1
            settle(teacher, f"document.querySelectorAll('.student-card').length >= {cards}")
            time.sleep(1.0)
            teacher.screenshot(path=str(args.out / "teacher.png"))
            teacher.click(".student-card[data-doc='王芳/王芳-essay'] button")
            teacher.wait_for_selector("#mirror-text mark")
            time.sleep(0.3)
            teacher.screenshot(path=str(args.out / "teacher-mirror.png"))
            browser.close()
        stop.set()
        sim.join(10)
    for name in ("student.png", "teacher.png", "teacher-mirror.png"):
        print(args.out / name)
    print("models:", "yes" if models else "no (rules only)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
