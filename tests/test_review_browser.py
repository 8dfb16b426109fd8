"""Teacher review in a real browser: the teacher page and the student page in one Chromium
run, talking through the real server (issue 14)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.conftest import LiveServer, run
from tests.test_browser import browser, open_student, pytestmark, tabs  # noqa: F401  (fixtures, skip rules)

SELECT_IN_MIRROR = """(word) => {
  const box = document.getElementById('mirror-text');
  const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const at = n.textContent.indexOf(word);
    if (at >= 0) {
      const range = document.createRange();
      range.setStart(n, at);
      range.setEnd(n, at + word.length);
      const sel = document.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      return true;
    }
  }
  return false;
}"""


def test_teacher_reviews_and_student_sees_it(rules_server: LiveServer, tabs: Any) -> None:  # noqa: F811
    teacher = tabs()
    teacher.page.goto(
        f"{rules_server.http}/teacher?token={rules_server.token('t1', role='teacher')}"
    )
    teacher.page.wait_for_selector("#conn[data-state=live]")
    student = tabs()
    open_student(student, rules_server, user="小明", doc="xm-essay")
    student.page.keyboard.insert_text("我们的的生活很美好。我爱我的家。")
    student.wait("document.getElementById('hint-list').textContent.includes('词语重复')")

    # the student submits; the teacher's queue shows the essay and opens its mirror
    student.page.click("#submit")
    student.wait("document.getElementById('submit-status').textContent.includes('第 1 稿')")
    item = teacher.page.locator("#queue button[data-doc='小明/xm-essay']")
    item.wait_for()
    assert "第 1 稿" in item.inner_text()
    item.click()
    teacher.wait("document.getElementById('mirror-text').textContent.startsWith('我们的的生活')")
    teacher.wait("document.querySelectorAll('#m-hint-list button[data-verdict]').length > 0")

    # comment on a selection, with a suggestion
    assert teacher.js(SELECT_IN_MIRROR, "生活")
    teacher.wait("document.getElementById('c-quote').textContent === '“生活”'")
    teacher.page.fill("#c-text", "具体写写哪方面的生活")
    teacher.page.fill("#c-suggestion", "校园生活")
    teacher.page.click("#c-send")
    student.wait(
        "[...document.querySelectorAll('#backdrop mark.u-teacher')].map((m) => m.textContent).join('') === '生活'"
    )
    assert "具体写写哪方面的生活" in student.page.inner_text("#teacher-comments")
    teacher.wait("document.getElementById('m-comments').textContent.includes('校园生活')")

    # disagree with the repeated-word hint: it leaves the student's list
    teacher.page.click("#m-hint-list button[data-verdict='disagree']")
    student.wait("!document.getElementById('hint-list').textContent.includes('词语重复')")
    teacher.wait("document.getElementById('m-verdicts').textContent.includes('repeated_word')")

    # a grade with a reason, shown to the student beside the model's (none on this server)
    teacher.page.fill("#g-score", "8")
    teacher.page.fill("#g-reason", "感情真挚")
    teacher.page.click("#g-send")
    student.wait("document.getElementById('teacher-scores').textContent.includes('感情真挚')")
    row = student.page.inner_text("#teacher-scores tr[data-trait='overall']")
    assert "8" in row
    assert "teacher:t1" in student.page.inner_text("#teacher-scores")
    teacher.wait("document.getElementById('queue-count').textContent === '0'")

    # the comment follows the text as the student types before it
    student.page.keyboard.press("Control+Home")
    student.page.keyboard.insert_text("今天，")
    student.wait(
        "[...document.querySelectorAll('#backdrop mark.u-teacher')].map((m) => m.textContent).join('') === '生活'"
    )
    teacher.page.click("#back")
    teacher.page.locator("#class-view").wait_for()
    teacher.page.locator(".student-card[data-doc='小明/xm-essay']").locator("button").click()
    teacher.wait(
        "[...document.querySelectorAll('#mirror-text mark')].some((m) => m.textContent === '生活')"
    )
    # the student resolves it from the hint card: gone on both pages
    student.js("document.querySelector('#teacher-comments [data-comment]').click()")
    student.page.click("#card-actions button.dismiss")
    student.wait("document.querySelectorAll('#backdrop mark.u-teacher').length === 0")
    teacher.wait("!document.getElementById('m-comments').textContent.includes('校园生活')")


def test_report_pages_render_and_print(model_server: LiveServer, tabs: Any) -> None:  # noqa: F811
    from tests.test_review_reports import _get, _seed

    class_id = "rc-pages"
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's loop
        pool.submit(run, _seed(model_server, class_id)).result()
    student_token = model_server.token("s1", class_id=class_id)
    _, expected = _get(model_server, "/v1/reports/student/s1", student_token)

    tab = tabs()
    tab.page.goto(f"{model_server.http}/report/student/s1#token={student_token}")
    tab.page.wait_for_selector("#report[data-state=ready]")
    assert tab.js("location.href").endswith("/report/student/s1")  # the fragment is cleared
    assert tab.page.inner_text("[data-testid=changed]") == expected["summary_zh"]
    assert tab.js("document.querySelectorAll('#report svg.chart polyline').length") >= 5
    assert tab.js("document.querySelectorAll('table.essays tr[data-doc]').length") == 3
    # printable: the print stylesheet hides the controls; Chromium makes a PDF of it
    tab.page.emulate_media(media="print")
    assert tab.js("getComputedStyle(document.querySelector('.top-actions')).display") == "none"
    assert tab.page.pdf(format="A4")[:5] == b"%PDF-"
    tab.page.emulate_media(media="screen")

    teacher = tabs()
    token = model_server.token("t1", "teacher", class_id=class_id)
    teacher.page.goto(f"{model_server.http}/report/class/{class_id}#token={token}")
    teacher.page.wait_for_selector("#report[data-state=ready]")
    _, report = _get(model_server, f"/v1/reports/class/{class_id}", token)
    flagged = [s["student"] for s in report["students"] if s["attention"]]
    assert (
        teacher.js(
            "[...document.querySelectorAll('[data-testid=attention] li')].map((li) => li.dataset.student)"
        )
        == flagged
    )
    bars = teacher.js("document.querySelectorAll('#report svg.bars rect').length")
    assert bars == len(report["problems"]) + len(report["topics"]["clusters"])

    parent = tabs()
    parent.allowed.append("403")  # the browser logs the refused fetch
    parent_token = model_server.token("p1", "parent", class_id=class_id, student="s1")
    parent.page.goto(f"{model_server.http}/report/class/{class_id}#token={parent_token}")
    parent.page.wait_for_selector("#report[data-state=denied]")
    assert "403" in parent.page.inner_text("#notice")
