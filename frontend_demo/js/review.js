// @ts-check
/**
 * Teacher review in the browser, shared by the student page and the teacher mirror:
 * the `review` message kept per document, its comments placed on the current text
 * (moved through later changes with the protocol's one rule, `mapSpan`, the twin of
 * protocol/review.py), and the rendering of teacher comments and grades.
 */
import { lang } from "./i18n.js";
import { esc } from "./ui.js";

/** @typedef {import("./protocol.js").Change} Change */
/** @typedef {{id: string, kind: string, code: string, severity: string, start: number, end: number,
 *   message: string, suggestions: string[], confidence: number, source: string, author: string,
 *   created: number, quote: string}} TeacherComment */
/** @typedef {{score: number, max: number, basis: string, reason: string, created: number,
 *   submission?: number, label?: string}} TeacherGrade */
/** @typedef {{type: "review", doc: string, version: number, comments: TeacherComment[],
 *   verdicts: Record<string, any>[], grades: Record<string, TeacherGrade>,
 *   submissions: {n: number, version: number, created: number, chars: number, reviewed: boolean}[]}} ReviewMessage */

const WORDS = {
  zh: {
    teacherScores: "老师评分", teacherComments: "老师批注", none: "暂无", model: "模型",
    teacher: "老师", reason: "理由", submit: "提交作文", submitted: "已提交第 {n} 稿（版本 {v}）",
    submitting: "提交中…", resolve: "已解决", queue: "待批改", queueEmpty: "暂无待批改的作文",
    agree: "同意", disagree: "不同意", comment: "批注所选文字", suggestion: "建议改为（可选）",
    commentText: "批注", grade: "给分", trait: "项目", score: "分数", verdicts: "对提示的判断",
    selectFirst: "先在正文中选中要批注的文字。", overall: "总评", submissionN: "第 {n} 稿",
  },
  en: {
    teacherScores: "Teacher's scores", teacherComments: "Teacher's comments", none: "None yet",
    model: "Model", teacher: "Teacher", reason: "Reason", submit: "Submit essay",
    submitted: "Submitted draft {n} (version {v})", submitting: "Submitting…", resolve: "Resolved",
    queue: "Review queue", queueEmpty: "No essays waiting for review", agree: "Agree",
    disagree: "Disagree", comment: "Comment on selection", suggestion: "Suggested text (optional)",
    commentText: "Comment", grade: "Give score", trait: "Trait", score: "Score",
    verdicts: "Verdicts on hints", selectFirst: "Select the text to comment on first.",
    overall: "Overall", submissionN: "Draft {n}",
  },
};

/** @param {keyof typeof WORDS.zh} key @param {Record<string, string|number>} [vars] */
export function rt(key, vars = {}) {
  const s = WORDS[lang][key] ?? WORDS.zh[key];
  return s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
}

export const TRAIT_NAMES = ["overall", "content", "structure", "logic", "language", "coherence"];
/** @type {Record<string, number>} */
export const TRAIT_MAX = { overall: 10, content: 10, structure: 10, logic: 10, language: 10, coherence: 5 };

/**
 * Move `[start, end)` through a change; null when its text was deleted (protocol.map_span).
 * @param {number} start @param {number} end @param {Change} c
 * @returns {[number, number]|null}
 */
export function mapSpan(start, end, c) {
  const inserted = c.text.length;
  const delta = inserted - (c.end - c.start);
  if (c.end <= start) return [start + delta, end + delta];
  if (c.start >= end) return [start, end];
  const s = Math.min(start, c.start);
  const e = c.end < end ? end + delta : c.start + inserted;
  return e <= s ? null : [s, e];
}

/**
 * The comments of `review`, moved through `changes` (made after `review.version`).
 * @param {ReviewMessage|undefined} review @param {Change[]|null} changes
 * @returns {TeacherComment[]}
 */
export function placeComments(review, changes) {
  if (!review || changes === null) return [];
  /** @type {TeacherComment[]} */
  const out = [];
  for (const c of review.comments || []) {
    /** @type {[number, number]|null} */
    let span = [c.start, c.end];
    for (const ch of changes) {
      if (!span) break;
      span = mapSpan(span[0], span[1], ch);
    }
    if (span) out.push({ ...c, start: span[0], end: span[1], suggestions: c.suggestions || [] });
  }
  return out;
}

/** @param {number} n */
function fmt(n) { return (Math.round(n * 10) / 10).toString(); }

/**
 * The teacher's grades beside the model's scores.
 * @param {HTMLElement} el
 * @param {ReviewMessage|undefined} review
 * @param {Record<string, any>|null} scores the model's `scores` message
 */
export function renderTeacherGrades(el, review, scores) {
  const grades = review?.grades || {};
  const names = TRAIT_NAMES.filter((n) => grades[n]);
  if (!names.length) {
    el.innerHTML = `<p class="muted small" data-testid="no-teacher-grades">${esc(rt("none"))}</p>`;
    return;
  }
  el.innerHTML = `<table class="teacher-grades"><thead><tr><th></th><th>${esc(rt("teacher"))}</th><th>${esc(rt("model"))}</th></tr></thead><tbody>${names
    .map((n) => {
      const g = grades[n];
      const model = n === "overall" ? scores?.overall : scores?.traits?.[n];
      return `<tr data-trait="${n}"><th scope="row">${esc(g.label || n)}</th>
        <td class="t-score" title="${esc(g.basis)}"><b>${fmt(g.score)}</b><small>/${fmt(g.max)}</small></td>
        <td class="m-score muted">${model ? `${fmt(model.score)}<small>/${fmt(model.max)}</small>` : "—"}</td></tr>
        <tr class="t-reason"><td colspan="3" class="small">${esc(rt("reason"))}：${esc(g.reason)} <span class="muted">· ${esc(g.basis)}</span></td></tr>`;
    })
    .join("")}</tbody></table>`;
}

/**
 * A list of teacher comments (with an optional action button per comment).
 * @param {HTMLElement} el
 * @param {TeacherComment[]} comments
 * @param {string} text
 * @param {string|null} action label of the per-comment button (null: none)
 */
export function renderComments(el, comments, text, action) {
  if (!comments.length) {
    el.innerHTML = `<li class="empty muted small">${esc(rt("none"))}</li>`;
    return;
  }
  el.innerHTML = comments
    .map((c) => `<li class="comment-item k-teacher" data-comment="${esc(c.id)}"><span class="dot" aria-hidden="true"></span>
      <span class="hint-main"><span class="hint-excerpt">“${esc(text.slice(c.start, c.end))}”</span><br>
      <span class="comment-msg">${esc(c.message)}</span>${c.suggestions.length ? ` <span class="small">→ ${esc(c.suggestions[0])}</span>` : ""}
      <br><span class="small muted">${esc(c.source)} · ${new Date(c.created * 1000).toLocaleString()}</span></span>
      ${action ? `<button type="button" class="btn ghost small resolve" data-comment="${esc(c.id)}">${esc(action)}</button>` : ""}</li>`)
    .join("");
}
