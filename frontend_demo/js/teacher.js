// @ts-check
/**
 * The teacher page: one live card per student document, a class heat map of
 * hint codes (click to filter), and a read-only live mirror of one essay.
 */
import { ClassObserver, HINT_KINDS, tokenClaims } from "./protocol.js";
import { t, setLang, lang, translate, codeName } from "./i18n.js";
import { esc, overlayHtml, renderScores, renderKindCounts, renderStats, renderTimeline, gradeChip, hintLabel, ago, applyWidths } from "./ui.js";
import { forgetToken, getToken } from "./login.js";
import { TeacherReview } from "./teacher_review.js";

/** @typedef {import("./protocol.js").DocState} DocState */

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** @type {ClassObserver} */
let observer;
/** @type {TeacherReview} */
let review;

/** A teacher's document id is `owner/name` (each part %-escaped): show the name. */
function docName(/** @type {string} */ id) {
  const name = id.includes("/") ? id.slice(id.indexOf("/") + 1) : id;
  return name.replaceAll("%2F", "/").replaceAll("%25", "%");
}
/** @type {string|null} "kind:code" of the heat-map filter */
let filter = null;
/** @type {string|null} the mirrored document */
let mirrored = null;
/** @type {Map<string, HTMLLIElement>} */
const cards = new Map();
let renderQueued = false;
/** @type {Record<string, any>} */
let connState = { state: "idle" };

async function main() {
  translate();
  $("ui-lang").addEventListener("click", () => {
    setLang(lang === "zh" ? "en" : "zh");
    translate();
    render();
  });
  const { token } = await getToken("teacher");
  const claims = tokenClaims(token);
  const params = new URLSearchParams(location.search);
  observer = new ClassObserver({ token, classId: params.get("class") || claims.class });
  review = new TeacherReview(observer, () => (mirrored ? observer.docs.get(mirrored) : undefined), (doc) => showMirror(doc), scheduleRender);
  /** @type {any} */ (window).inkstone = { observer, review, page: "teacher" };
  $("who").textContent = `${claims.sub || ""} · ${observer.classId}`;
  observer.addEventListener("state", (ev) => { connState = /** @type {CustomEvent} */ (ev).detail; renderConn(); });
  observer.addEventListener("welcome", (ev) => {
    const w = /** @type {CustomEvent} */ (ev).detail.welcome;
    $("dev-badge").hidden = !w.dev_mode;
    $("who").textContent = `${w.user} · ${w.class}`;
  });
  observer.addEventListener("doc", scheduleRender);
  observer.addEventListener("error", (ev) => {
    const e = /** @type {CustomEvent} */ (ev).detail.error;
    if (observer.conn.state !== "failed") return;
    if (e.code === "unauthorized" || e.code === "token_expired") forgetToken();
    notice(t("authFailed", { e: e.message }));
  });
  $("clear-filter").addEventListener("click", () => { filter = null; render(); });
  $("back").addEventListener("click", () => showMirror(null));
  window.addEventListener("popstate", () => showMirror(new URLSearchParams(location.search).get("view"), false));
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && mirrored) showMirror(null); });
  setInterval(() => { if (observer.docs.size) render(); }, 5000);
  const view = params.get("view");
  if (view) showMirror(view, false);
  render();
  observer.start();
}

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; render(); });
}

function render() {
  renderConn();
  renderHeat();
  renderGrid();
  if (mirrored) renderMirror();
}

function renderConn() {
  const el = $("conn");
  el.dataset.state = connState.state || "idle";
  /** @type {HTMLElement} */ (el.querySelector(".conn-text")).textContent = t(`state.${connState.state || "idle"}`);
}

/** @param {string} message */
function notice(message) {
  const el = $("notice");
  el.textContent = message;
  el.hidden = false;
}

// ------------------------------------------------------------------ class grid

/** @returns {DocState[]} */
function docs() {
  return [...observer.docs.values()].sort((a, b) => a.student.localeCompare(b.student, "zh") || a.doc.localeCompare(b.doc));
}

/** @param {DocState} d @param {string} key "kind:code" */
function hasCode(d, key) {
  const [kind, code] = key.split(":");
  return d.hints.hints().some((h) => h.kind === kind && (code === "*" || h.code === code));
}

/** Display name of a filter key ("kind:code" or "kind:*"). @param {string} key */
function filterName(key) {
  const [kind, code] = key.split(":");
  return code === "*" ? t(`kind.${kind}`) : codeName(code);
}

function renderGrid() {
  const all = docs();
  const grid = $("grid");
  $("student-count").textContent = String(new Set(all.map((d) => d.student)).size);
  $("grid-empty").hidden = all.length > 0;
  const seen = new Set();
  let prev = /** @type {Element|null} */ (null);
  for (const d of all) {
    seen.add(d.doc);
    let li = cards.get(d.doc);
    if (!li) {
      li = document.createElement("li");
      li.className = "student-card";
      li.dataset.doc = d.doc;
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = "card-btn";
      btn.addEventListener("click", () => showMirror(d.doc));
      li.append(btn);
      cards.set(d.doc, li);
    }
    const position = prev ? prev.nextElementSibling : grid.firstElementChild;
    if (position !== li) grid.insertBefore(li, position);
    prev = li;
    fillCard(li, d);
  }
  for (const [doc, li] of cards) if (!seen.has(doc)) { li.remove(); cards.delete(doc); }
}

/** @param {HTMLLIElement} li @param {DocState} d */
function fillCard(li, d) {
  const btn = /** @type {HTMLButtonElement} */ (li.firstElementChild);
  const counts = d.hints.counts();
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const overall = d.scores?.overall;
  const words = d.scores?.stats.words ?? d.scores?.stats.chars ?? [...d.text.replace(/\s/g, "")].length;
  const dim = filter !== null && !hasCode(d, filter);
  li.hidden = dim;
  li.classList.toggle("match", filter !== null && !dim);
  li.dataset.presence = d.presence;
  li.dataset.student = d.student;
  btn.setAttribute("aria-label", `${t("openMirror", { s: d.student })}: ${t(d.presence)}, ${t("words")} ${words}, ${t("hintsCount", { n: total })}`);
  btn.innerHTML = `
    <div class="c-head"><span class="presence-dot p-${esc(d.presence)}" aria-hidden="true"></span><strong class="c-name">${esc(d.student)}</strong><span class="c-pres small">${esc(t(d.presence))}</span></div>
    <div class="c-doc small muted">${esc(docName(d.doc))}</div>
    <div class="c-main">
      <div class="c-words"><b data-testid="words">${words}</b><span class="small muted">${esc(t("words"))}</span></div>
      <div class="c-overall">${overall ? `<b>${overall.score.toFixed(1)}</b>${gradeChip(overall.grade)}` : `<b class="muted">—</b>`}</div>
    </div>
    <ul class="c-kinds" aria-hidden="true">${HINT_KINDS.map((k) => `<li class="k-${k}${counts[k] ? "" : " zero"}" title="${esc(t(`kind.${k}`))}"><span class="dot"></span>${counts[k]}</li>`).join("")}</ul>
    <div class="c-foot small muted">${esc(t("lastActivity"))}：${esc(ago(d.lastActivity))}</div>
    <div class="c-snippet small" aria-hidden="true">${esc(tail(d.text))}</div>`;
}

/** The last words typed, on one line. @param {string} text */
function tail(text) {
  const chars = [...text.replace(/\s+/g, " ").trim()];
  return chars.length > 34 ? `…${chars.slice(-34).join("")}` : chars.join("");
}

// ------------------------------------------------------------------ heat map

function renderHeat() {
  const all = docs();
  /** @type {Map<string, {kind: string, code: string, students: Set<string>, hints: number}>} */
  const byCode = new Map();
  for (const d of all) {
    for (const h of d.hints.hints()) {
      const key = `${h.kind}:${h.code}`;
      let e = byCode.get(key);
      if (!e) byCode.set(key, (e = { kind: h.kind, code: h.code, students: new Set(), hints: 0 }));
      e.students.add(d.student);
      e.hints += 1;
    }
  }
  // one chip per kind: how many students have at least one hint of it (click to filter)
  /** @type {Record<string, Set<string>>} */
  const kindStudents = Object.fromEntries(HINT_KINDS.map((k) => [k, new Set()]));
  for (const e of byCode.values()) for (const s of e.students) kindStudents[e.kind]?.add(s);
  const kinds = $("heat-kinds");
  kinds.innerHTML = HINT_KINDS.map((k) => {
    const n = kindStudents[k].size;
    const key = `${k}:*`;
    return `<button type="button" class="kind-count k-${k}${n ? "" : " zero"}" data-key="${key}" aria-pressed="${filter === key}" aria-label="${esc(t("heatStudents", { n }))}: ${esc(t(`kind.${k}`))}"><span class="dot" aria-hidden="true"></span>${esc(t(`kind.${k}`))}<b>${n}</b></button>`;
  }).join("");
  for (const b of kinds.querySelectorAll("button")) {
    b.addEventListener("click", () => {
      const key = /** @type {string} */ (/** @type {HTMLElement} */ (b).dataset.key);
      filter = filter === key ? null : key;
      render();
      /** @type {HTMLElement|null} */ ($("heat-kinds").querySelector(`[data-key="${CSS.escape(key)}"]`))?.focus();
    });
  }
  const rows = [...byCode.entries()].sort((a, b) => b[1].students.size - a[1].students.size || b[1].hints - a[1].hints);
  const nStudents = Math.max(1, new Set(all.map((d) => d.student)).size);
  const list = $("heat-list");
  if (!rows.length) list.innerHTML = `<li class="muted small">${esc(t("heatEmpty"))}</li>`;
  else {
    list.innerHTML = rows
      .slice(0, 14)
      .map(([key, e]) => {
        const pct = (e.students.size / nStudents) * 100;
        return `<li><button type="button" class="heat-row k-${e.kind}" data-key="${esc(key)}" aria-pressed="${filter === key}" aria-label="${esc(t("heatStudents", { n: e.students.size }))}: ${esc(codeName(e.code))}">
          <span class="heat-label"><span class="dot" aria-hidden="true"></span><span class="heat-code">${esc(codeName(e.code))}</span><span class="kind-tag small">${esc(t(`kind.${e.kind}`))}</span></span>
          <span class="heat-bar" aria-hidden="true"><span data-pct="${pct.toFixed(1)}"></span></span>
          <span class="heat-n"><b>${e.students.size}</b> <span class="small muted">${esc(t("heatStudentsUnit"))} · ${esc(t("heatHints", { n: e.hints }))}</span></span>
        </button></li>`;
      })
      .join("");
    applyWidths(list);
    for (const b of list.querySelectorAll("button.heat-row")) {
      b.addEventListener("click", () => {
        const key = /** @type {string} */ (/** @type {HTMLElement} */ (b).dataset.key);
        filter = filter === key ? null : key;
        render();
        /** @type {HTMLElement|null} */ ($("heat-list").querySelector(`[data-key="${CSS.escape(key)}"]`))?.focus();
      });
    }
  }
  const bar = $("filter-bar");
  bar.hidden = filter === null;
  if (filter) $("filter-text").textContent = t("filterOn", { c: filterName(filter) });
}

// ------------------------------------------------------------------ mirror

/** @param {string|null} doc @param {boolean} [push] */
function showMirror(doc, push = true) {
  const previous = mirrored;
  mirrored = doc;
  $("class-view").hidden = !!doc;
  $("mirror-view").hidden = !doc;
  if (push) {
    const url = new URL(location.href);
    if (doc) url.searchParams.set("view", doc);
    else url.searchParams.delete("view");
    history.pushState(null, "", url);
  }
  if (doc) {
    renderMirror();
    $("back").focus();
  } else {
    render();
    if (previous) /** @type {HTMLElement|null} */ (cards.get(previous)?.querySelector(".card-btn"))?.focus();
  }
}

function renderMirror() {
  const d = mirrored ? observer.docs.get(mirrored) : undefined;
  if (!d) {
    $("mirror-h").textContent = mirrored || "";
    return;
  }
  $("mirror-h").textContent = t("mirrorTitle", { s: d.student });
  const pres = $("mirror-presence");
  pres.className = `presence p-${d.presence}`;
  pres.textContent = `${t(d.presence)} · ${ago(d.lastActivity)}`;
  const hints = d.hints.hints();
  const box = $("mirror-text");
  const selected = document.getSelection();
  // keep the teacher's selection (for a comment) while the student types
  if (!(selected && !selected.isCollapsed && box.contains(selected.anchorNode))) {
    box.innerHTML = overlayHtml(d.text, [...hints, ...review.comments(d)]);
  }
  box.dataset.version = String(d.version);
  for (const m of box.querySelectorAll("mark[data-h]")) {
    const ids = /** @type {string} */ (/** @type {HTMLElement} */ (m).dataset.h).split(" ");
    /** @type {HTMLElement} */ (m).title = ids.map((id) => d.hints.find(id)?.message || "").join("\n");
  }
  renderScores($("m-scores"), d.scores);
  renderKindCounts($("m-kind-counts"), d.hints.counts());
  renderStats($("m-stats"), d.scores?.stats);
  renderTimeline($("m-timeline"), d.timeline);
  $("m-hint-total").textContent = String(hints.length);
  $("m-hint-list").innerHTML = hints.length
    ? hints
        .map((h) => {
          const { kind, code, excerpt } = hintLabel(h, d.text);
          return `<li class="hint-item static k-${h.kind}" data-hint="${h.id}"><span class="dot" aria-hidden="true"></span>
            <span class="hint-main"><span class="hint-code">${esc(code)}</span> <span class="hint-excerpt">“${esc(excerpt)}”</span><br><span class="small muted hint-msg">${esc(h.message)}</span></span>
            <span class="kind-tag small">${esc(kind)}</span></li>`;
        })
        .join("")
    : `<li class="empty muted small">${esc(t("noHints"))}</li>`;
  review.renderMirror(d);
}

main().catch((err) => {
  console.error(err);
  notice(String(err));
});
