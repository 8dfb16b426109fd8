// @ts-check
/**
 * Rendering shared by the student page and the teacher's mirror: the hint
 * overlay, score bars, hint counts, stats and the score timeline.
 */
import { HINT_KINDS, TRAITS } from "./protocol.js";
import { t, codeName } from "./i18n.js";

/** @typedef {import("./protocol.js").Hint} Hint */
/** @typedef {import("./protocol.js").ScoresMessage} ScoresMessage */

/** @param {string} s */
export function esc(s) {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] || c);
}

/**
 * Is this hint about a whole sentence (drawn as a light band, not an underline)?
 * @param {Hint} h
 */
export function isSentenceHint(h) {
  return h.code.startsWith("faulty_") || h.code === "long_sentence";
}

/**
 * HTML for the overlay behind the editor: the text with `<mark>`s for hints.
 * Overlapping hints are split into segments; a segment is drawn in the colour
 * of its narrowest hint and lists every hint covering it in `data-h`.
 * @param {string} text
 * @param {Hint[]} hints
 * @param {{active?: string|null, filter?: (h: Hint) => boolean}} [opts]
 */
export function overlayHtml(text, hints, opts = {}) {
  const visible = hints.filter((h) => h.start < h.end && h.end <= text.length && (!opts.filter || opts.filter(h)));
  /** @type {Set<number>} */
  const cuts = new Set([0, text.length]);
  for (const h of visible) { cuts.add(h.start); cuts.add(h.end); }
  const points = [...cuts].sort((a, b) => a - b);
  const byStart = [...visible].sort((x, y) => x.start - y.start);
  /** @type {Hint[]} hints covering the current segment (a sweep over the cut points) */
  let active = [];
  let next = 0;
  let html = "";
  for (let i = 0; i < points.length - 1; i++) {
    const a = points[i], b = points[i + 1];
    active = active.filter((h) => h.end > a);
    while (next < byStart.length && byStart[next].start <= a) {
      if (byStart[next].end > a) active.push(byStart[next]);
      next++;
    }
    const piece = esc(text.slice(a, b));
    const covering = active;
    if (!covering.length) { html += piece; continue; }
    const narrow = covering.filter((h) => !isSentenceHint(h));
    const band = covering.find(isSentenceHint);
    const top = narrow.sort((x, y) => (x.end - x.start) - (y.end - y.start))[0];
    const cls = ["hl"];
    if (top) cls.push(`u-${top.kind}`, `sev-${top.severity}`);
    if (band) cls.push(`band-${band.kind}`);
    if (opts.active && covering.some((h) => h.id === opts.active)) cls.push("active");
    html += `<mark class="${cls.join(" ")}" data-h="${covering.map((h) => h.id).join(" ")}">${piece}</mark>`;
  }
  // a trailing newline needs a character after it to take up a line, as in the textarea
  return html + "\u200b";
}

/** @param {string|null|undefined} grade */
export function gradeChip(grade) {
  if (!grade) return "";
  return `<span class="grade grade-${esc(grade)}">${esc(t(`grade.${grade}`))}</span>`;
}

/** @param {number} n */
function fmt(n) { return n.toFixed(1).replace(/\.0$/, (m) => (n >= 10 ? "" : m)); }

/**
 * Overall score + trait bars.
 * @param {HTMLElement} el
 * @param {ScoresMessage|null} scores
 */
export function renderScores(el, scores) {
  const overall = scores?.overall;
  let html = `<div class="overall"><span class="overall-label">${esc(t("overall"))}</span>`;
  html += overall
    ? `<span class="overall-score" data-testid="overall-score">${fmt(overall.score)}<small>/${fmt(overall.max)}</small></span>${gradeChip(overall.grade)}`
    : `<span class="overall-score none" data-testid="overall-score" title="${esc(t("noOverall"))}">—</span>`;
  html += `</div>`;
  if (scores && !overall) html += `<p class="muted small">${esc(t("noOverall"))}</p>`;
  html += `<ul class="traits" aria-label="${esc(t("scoresTitle"))}">`;
  for (const name of TRAITS) {
    const tr = scores?.traits?.[name];
    const label = t(`trait.${name}`);
    const pct = tr ? Math.max(0, Math.min(100, (tr.score / (tr.max || 1)) * 100)) : 0;
    const value = tr ? `${fmt(tr.score)}/${fmt(tr.max)}` : "—";
    const basis = tr ? t("basis", { b: tr.basis }) : "";
    html += `<li class="trait" data-trait="${name}" title="${esc(basis)}">
      <span class="trait-name">${esc(label)}</span>
      <span class="bar" role="meter" aria-label="${esc(label)}" aria-valuemin="0" aria-valuemax="${tr ? tr.max : 10}" aria-valuenow="${tr ? tr.score : 0}" aria-valuetext="${esc(value)}"><span class="fill grade-bg-${esc(tr?.grade || "none")}" data-pct="${pct.toFixed(1)}"></span></span>
      <span class="trait-value">${esc(value)}</span>${gradeChip(tr?.grade)}
    </li>`;
  }
  html += `</ul>`;
  const basis = scores && Object.values(scores.traits || {})[0]?.basis;
  if (basis) html += `<p class="basis muted small">${esc(t("basis", { b: basis }))}</p>`;
  el.innerHTML = html;
  applyWidths(el);
}

/**
 * Bars are written with `data-pct` and sized here through the CSSOM: the pages' CSP
 * (`default-src 'self'`) blocks inline `style="…"` attributes, not `element.style`.
 * @param {HTMLElement} el
 */
export function applyWidths(el) {
  for (const bar of /** @type {NodeListOf<HTMLElement>} */ (el.querySelectorAll("[data-pct]"))) {
    bar.style.width = `${bar.dataset.pct}%`;
  }
}

/**
 * Chips with hint counts by kind.
 * @param {HTMLElement} el
 * @param {Record<string, number>} counts
 */
export function renderKindCounts(el, counts) {
  el.innerHTML = HINT_KINDS.map(
    (k) => `<li class="kind-count k-${k}${counts[k] ? "" : " zero"}" data-kind="${k}"><span class="dot" aria-hidden="true"></span>${esc(t(`kind.${k}`))}<b>${counts[k] || 0}</b></li>`,
  ).join("");
}

/**
 * @param {HTMLElement} el
 * @param {import("./protocol.js").Stats|null|undefined} stats
 */
export function renderStats(el, stats) {
  const s = stats || { chars: 0, sentences: 0, paragraphs: 0, words: 0 };
  const cell = (/** @type {string} */ k, /** @type {number|undefined} */ v) => `<div><dt>${esc(t(k))}</dt><dd>${v ?? 0}</dd></div>`;
  el.innerHTML = cell("words", s.words ?? s.chars) + cell("chars", s.chars) + cell("sentences", s.sentences) + cell("paragraphs", s.paragraphs);
}

/**
 * A small SVG line of the overall score against the word count.
 * @param {HTMLElement} el
 * @param {{words: number, overall: number|null}[]} timeline
 * @param {number} [max]
 */
export function renderTimeline(el, timeline, max = 10) {
  const pts = timeline.filter((p) => p.overall !== null);
  if (pts.length < 2) {
    el.innerHTML = `<p class="muted small">${esc(t("timelineEmpty"))}</p>`;
    return;
  }
  const W = 260, H = 70, P = 6;
  const x0 = pts[0].words, x1 = Math.max(pts[pts.length - 1].words, x0 + 1);
  const X = (/** @type {number} */ w) => P + ((w - x0) / (x1 - x0)) * (W - 2 * P);
  const Y = (/** @type {number} */ s) => H - P - (s / max) * (H - 2 * P);
  const line = pts.map((p) => `${X(p.words).toFixed(1)},${Y(/** @type {number} */ (p.overall)).toFixed(1)}`).join(" ");
  const last = pts[pts.length - 1];
  el.innerHTML = `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(t("timelineTitle"))}: ${pts.map((p) => `${p.words}→${p.overall}`).join(", ")}">
    <line x1="${P}" y1="${Y(max / 2)}" x2="${W - P}" y2="${Y(max / 2)}" class="mid"/>
    <polyline points="${line}" class="line"/>
    <circle cx="${X(last.words)}" cy="${Y(/** @type {number} */ (last.overall))}" r="3.5" class="dot"/>
  </svg><div class="axis small muted"><span>${x0}</span><span>${esc(t("words"))}</span><span>${last.words}</span></div>`;
}

/**
 * One row of a hint list.
 * @param {Hint} h
 * @param {string} text the current text (for the quoted excerpt)
 */
export function hintLabel(h, text) {
  const excerpt = text.slice(h.start, Math.min(h.end, h.start + 14)) + (h.end - h.start > 14 ? "…" : "");
  return { kind: t(`kind.${h.kind}`), code: codeName(h.code), excerpt };
}

/**
 * Keep a sticky "time ago" fresh.
 * @param {number} ts epoch ms (0 = never)
 */
export function ago(ts) {
  if (!ts) return t("never");
  const s = Math.round((Date.now() - ts) / 1000);
  if (s < 5) return t("justNow");
  if (s < 60) return t("secondsAgo", { n: s });
  return t("minutesAgo", { n: Math.round(s / 60) });
}
