// @ts-check
/**
 * The progress report pages (/report/student/<id>, /report/class/<id>): fetch the JSON
 * with `Authorization: Bearer` (the token lives in sessionStorage; a `#token=` fragment,
 * which browsers never send to the server, is moved there and cleared from the address)
 * and draw it with hand-made inline SVG charts. Printable: see css/report.css.
 */
import { codeName, lang, setLang } from "./i18n.js";
import { esc } from "./ui.js";

const KEY = "inkstone.token";
const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const SVG = "http://www.w3.org/2000/svg";
const SCORED = ["overall", "content", "structure", "logic", "language", "coherence"];
const KINDS = ["spelling", "grammar", "logic", "style", "punctuation", "length"];
const COLORS = ["#1f6feb", "#a34a08", "#7b1fa2", "#0f7b45", "#c62828", "#00796b", "#8c959f"];

const W = {
  zh: {
    student: "成长报告", class: "班级报告", print: "打印 / PDF", changed: "与上一篇相比", none: "还没有提交的作文。",
    essays: "已提交的作文", scores: "各项得分（老师给分优先）", rates: "每千字提示数", typos: "常错的字",
    faulty: "病句类型", doc: "作文", date: "提交时间", chars: "字数", drafts: "稿数", overall: "总评",
    content: "内容", structure: "结构", logic: "逻辑", language: "语言", coherence: "连贯", trend: "全班各篇平均分",
    problems: "全班最常见的问题", topics: "作文题材分布", attention: "需要关注的学生", students: "学生",
    reasons: "原因", low_overall: "最新总评偏低", dropped: "总评下降", many_hints: "提示明显多于全班",
    spelling: "错别字", grammar: "语病", style: "表达", punctuation: "标点", length: "篇幅", essayN: "第 {n} 篇",
    teacher: "老师", model: "模型", method: "聚类依据", nobody: "暂无", token: "访问令牌", go: "查看报告",
    denied: "无权查看（{s}）", noChange: "只有一篇作文，还无法比较。", keywords: "关键词", count: "次数",
  },
  en: {
    student: "Progress report", class: "Class report", print: "Print / PDF", changed: "Since the last essay",
    none: "No submitted essays yet.", essays: "Submitted essays", scores: "Scores (the teacher's when given)",
    rates: "Hints per 1,000 characters", typos: "Most frequent misspelled characters", faulty: "Faulty-sentence types",
    doc: "Essay", date: "Submitted", chars: "Characters", drafts: "Drafts", overall: "Overall", content: "Content",
    structure: "Structure", logic: "Logic", language: "Language", coherence: "Coherence", trend: "Class average per essay",
    problems: "Most common problems", topics: "Essay topics", attention: "Students who need attention", students: "Student",
    reasons: "Why", low_overall: "low latest overall", dropped: "overall dropped", many_hints: "many more hints than the class",
    spelling: "Spelling", grammar: "Grammar", style: "Style", punctuation: "Punctuation", length: "Length", essayN: "Essay {n}",
    teacher: "Teacher", model: "Model", method: "Clustered by", nobody: "None", token: "Access token", go: "Show report",
    denied: "Not allowed ({s})", noChange: "Only one essay so far: nothing to compare yet.", keywords: "Keywords", count: "Count",
  },
};
/** @param {string} k @param {Record<string, string|number>} [v] */
function w(k, v = {}) {
  const s = /** @type {Record<string, string>} */ (W[lang])[k] ?? k;
  return s.replace(/\{(\w+)\}/g, (_, x) => String(v[x] ?? ""));
}

/** @param {string} tag @param {Record<string, string|number>} attrs @param {string} [text] */
function el(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/**
 * A line chart: one series per name, x = essay index, y in [0, max].
 * @param {{name: string, values: (number|null)[]}[]} series @param {number} max @param {string[]} xLabels
 */
export function lineChart(series, max, xLabels) {
  const width = 560, height = 220, left = 34, right = 110, top = 12, bottom = 28;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  const n = Math.max(1, xLabels.length - 1);
  const x = (/** @type {number} */ i) => left + ((width - left - right) * i) / n;
  const y = (/** @type {number} */ v) => top + (height - top - bottom) * (1 - v / max);
  for (let g = 0; g <= 4; g++) {
    const v = (max * g) / 4;
    svg.append(el("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(el("text", { x: left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, String(Math.round(v * 10) / 10)));
  }
  xLabels.forEach((label, i) => svg.append(el("text", { x: x(i), y: height - 8, class: "axis", "text-anchor": "middle" }, label)));
  series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length];
    const pts = s.values.map((v, i) => (v === null ? null : [x(i), y(v)])).filter((p) => p !== null);
    if (pts.length > 1) svg.append(el("polyline", { points: pts.map((p) => p.join(",")).join(" "), fill: "none", stroke: color, "stroke-width": 2 }));
    for (const p of pts) svg.append(el("circle", { cx: p[0], cy: p[1], r: 3.5, fill: color }));
    const last = pts[pts.length - 1];
    if (last) svg.append(el("text", { x: width - right + 8, y: top + 14 * k + 10, class: "legend", fill: color }, s.name));
  });
  return svg;
}

/** Horizontal bars. @param {{label: string, value: number, note?: string}[]} rows @param {string} [color] */
export function barChart(rows, color = COLORS[0]) {
  const width = 560, row = 24, left = 150;
  const max = Math.max(1e-9, ...rows.map((r) => r.value));
  const svg = el("svg", { viewBox: `0 0 ${width} ${Math.max(row, rows.length * row) + 4}`, class: "chart bars", role: "img" });
  rows.forEach((r, i) => {
    const len = ((width - left - 90) * r.value) / max;
    svg.append(el("text", { x: left - 8, y: i * row + 16, class: "axis", "text-anchor": "end" }, r.label));
    svg.append(el("rect", { x: left, y: i * row + 4, width: Math.max(1, len), height: row - 8, rx: 3, fill: color }));
    svg.append(el("text", { x: left + len + 6, y: i * row + 16, class: "value" }, `${Math.round(r.value * 100) / 100}${r.note ? ` ${r.note}` : ""}`));
  });
  return svg;
}

/** @param {string} title @param {...(Node|string)} body */
function section(title, ...body) {
  const s = document.createElement("section");
  s.className = "panel report-section";
  const h = document.createElement("h2");
  h.textContent = title;
  s.append(h);
  for (const b of body) {
    if (typeof b === "string") s.insertAdjacentHTML("beforeend", b);
    else s.append(b);
  }
  return s;
}

const date = (/** @type {number} */ t) => new Date(t * 1000).toLocaleDateString(lang === "zh" ? "zh-CN" : "en");
const num = (/** @type {number|null|undefined} */ v) => (v === null || v === undefined ? "—" : String(Math.round(v * 10) / 10));

/** @param {Record<string, any>} r */
function renderStudent(r) {
  const main = $("report");
  $("report-title").textContent = w("student");
  $("who").textContent = `${r.student} · ${r.class}`;
  if (!r.essays.length) { main.textContent = w("none"); return; }
  const summary = lang === "zh" ? r.summary_zh : r.summary_en;
  main.append(section(w("changed"), `<p class="changed" data-testid="changed">${esc(summary || w("noChange"))}</p>`));
  const labels = r.essays.map((/** @type {any} */ _e, /** @type {number} */ i) => w("essayN", { n: i + 1 }));
  const series = SCORED.filter((t) => t !== "coherence").map((t) => ({ name: w(t), values: r.essays.map((/** @type {any} */ e) => e.scores[t].score) }));
  main.append(section(w("scores"), lineChart(series, 10, labels)));
  main.append(section(w("rates"), lineChart(KINDS.map((k) => ({ name: w(k), values: r.essays.map((/** @type {any} */ e) => e.hints_per_1000[k]) })),
    Math.max(1, ...r.essays.flatMap((/** @type {any} */ e) => Object.values(e.hints_per_1000))), labels)));
  const head = `<tr><th>${w("doc")}</th><th>${w("date")}</th><th>${w("chars")}</th><th>${w("drafts")}</th>${SCORED.map((t) => `<th>${w(t)}</th>`).join("")}</tr>`;
  const rows = r.essays.map((/** @type {any} */ e) => `<tr data-doc="${esc(e.doc)}"><td>${esc(e.doc)}</td><td>${date(e.submitted)}</td><td>${e.chars}</td><td>${e.drafts}</td>${SCORED.map((t) => {
    const s = e.scores[t];
    return `<td title="${esc(s.teacher_reason || "")}">${num(s.score)}${s.teacher !== null ? `<sup class="t-mark">${esc(w("teacher"))}</sup>` : ""}</td>`;
  }).join("")}</tr>`).join("");
  main.append(section(w("essays"), `<table class="essays">${head}${rows}</table>`));
  main.append(section(w("typos"), r.misspelled.length ? barChart(r.misspelled.map((/** @type {any} */ m) => ({ label: m.char, value: m.count, note: m.suggestions.length ? `→ ${m.suggestions.join("/")}` : "" })), "#c62828") : `<p class="muted">${w("nobody")}</p>`));
  main.append(section(w("faulty"), r.faulty_types.length ? barChart(r.faulty_types.map((/** @type {any} */ f) => ({ label: lang === "zh" ? f.name_zh : f.name_en, value: f.count })), "#a34a08") : `<p class="muted">${w("nobody")}</p>`));
}

/** @param {Record<string, any>} r */
function renderClass(r) {
  const main = $("report");
  $("report-title").textContent = w("class");
  $("who").textContent = r.class;
  if (!r.students.length) { main.textContent = w("none"); return; }
  const labels = r.trend.map((/** @type {any} */ t) => w("essayN", { n: t.essay }));
  main.append(section(w("trend"), lineChart(SCORED.filter((t) => t !== "coherence").map((t) => ({ name: w(t), values: r.trend.map((/** @type {any} */ p) => p.scores[t]) })), 10, labels)));
  const flagged = r.students.filter((/** @type {any} */ s) => s.attention);
  main.append(section(w("attention"), flagged.length
    ? `<ul class="attention" data-testid="attention">${flagged.map((/** @type {any} */ s) => `<li data-student="${esc(s.student)}"><b>${esc(s.student)}</b> — ${s.reasons.map((/** @type {string} */ x) => esc(w(x))).join("，")}（${esc(w("overall"))} ${num(s.latest_overall)}）</li>`).join("")}</ul>`
    : `<p class="muted">${w("nobody")}</p>`));
  main.append(section(w("problems"), barChart(r.problems.map((/** @type {any} */ p) => ({ label: codeName(p.code), value: p.count, note: `(${p.students} ${w("students")})` })), "#7b1fa2")));
  const topics = r.topics.clusters.map((/** @type {any} */ c) => ({ label: c.keywords.slice(0, 3).join(" · "), value: c.size }));
  main.append(section(w("topics"), `<p class="small muted">${esc(w("method"))}: ${esc(r.topics.method || "—")}</p>`, barChart(topics, "#0f7b45")));
  const rows = r.students.map((/** @type {any} */ s) => `<tr data-student="${esc(s.student)}"${s.attention ? ' class="flag"' : ""}><td>${esc(s.student)}</td><td>${s.essays}</td><td>${num(s.latest_overall)}</td><td>${num(s.hints_per_1000)}</td><td>${s.reasons.map((/** @type {string} */ x) => esc(w(x))).join("，")}</td></tr>`).join("");
  main.append(section(w("students"), `<table class="essays"><tr><th>${w("students")}</th><th>${w("essays")}</th><th>${w("overall")}</th><th>${w("rates")}</th><th>${w("reasons")}</th></tr>${rows}</table>`));
}

function token() {
  // like the other pages (js/login.js): a token given in the address moves to this tab's
  // sessionStorage at once; a `#token=` fragment is preferred (browsers never send it)
  const url = new URL(location.href);
  const given = new URLSearchParams(url.hash.slice(1)).get("token") || url.searchParams.get("token");
  if (given) {
    sessionStorage.setItem(KEY, given);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search);
  }
  return sessionStorage.getItem(KEY);
}

async function load() {
  const main = $("report");
  main.replaceChildren();
  main.dataset.state = "loading";
  const tok = token();
  if (!tok) { $("token-form").hidden = false; main.dataset.state = "no-token"; return; }
  const [, , kind, id] = location.pathname.split("/");
  const resp = await fetch(`/v1/reports/${kind}/${id}`, { headers: { Authorization: `Bearer ${tok}` } });
  if (!resp.ok) {
    const body = await resp.json().catch(() => ({}));
    $("notice").textContent = w("denied", { s: `${resp.status} ${body.message || ""}` });
    $("notice").hidden = false;
    main.dataset.state = "denied";
    if (resp.status === 401) { sessionStorage.removeItem(KEY); $("token-form").hidden = false; }
    return;
  }
  const report = await resp.json();
  if (kind === "student") renderStudent(report);
  else renderClass(report);
  main.dataset.state = "ready";
}

function labels() {
  $("print").textContent = w("print");
  $("ui-lang").textContent = lang === "zh" ? "English" : "中文";
  $("token-label").textContent = w("token");
  $("token-go").textContent = w("go");
}

$("print").addEventListener("click", () => window.print());
$("ui-lang").addEventListener("click", () => { setLang(lang === "zh" ? "en" : "zh"); labels(); load(); });
$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const value = String(new FormData(/** @type {HTMLFormElement} */ (ev.target)).get("token") || "").trim();
  if (value) sessionStorage.setItem(KEY, value);
  $("token-form").hidden = true;
  $("notice").hidden = true;
  load();
});
labels();
load().catch((e) => { $("notice").textContent = String(e); $("notice").hidden = false; });
