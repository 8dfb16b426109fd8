// @ts-check
/**
 * The teacher's review controls: the class's review queue, and in the mirror a comment
 * form for the selected text, agree / disagree on every hint, a grade form, and the
 * teacher's comments and grades. Speaks only the public protocol (`comment`, `resolve`,
 * `verdict`, `grade`; `review`, `review_queue`).
 */
import { esc } from "./ui.js";
import { TRAIT_MAX, TRAIT_NAMES, placeComments, renderComments, renderTeacherGrades, rt } from "./review.js";
import { t } from "./i18n.js";

/** @typedef {import("./protocol.js").DocState} DocState */
/** @typedef {import("./protocol.js").ClassObserver} ClassObserver */

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

export class TeacherReview {
  /**
   * @param {ClassObserver} observer
   * @param {() => DocState|undefined} mirrored the document shown in the mirror
   * @param {(doc: string) => void} open show a document in the mirror
   * @param {() => void} changed
   */
  constructor(observer, mirrored, open, changed) {
    this.observer = observer;
    this.mirrored = mirrored;
    this.open = open;
    this.changed = changed;
    /** @type {Map<string, import("./review.js").ReviewMessage>} */
    this.reviews = new Map();
    /** @type {{doc: string, student: string, submission: number, version: number, created: number}[]} */
    this.queue = [];
    /** @type {{start: number, end: number}|null} the selection in the mirror (UTF-16) */
    this.selection = null;
    this.nextId = 1;
    observer.conn.addEventListener("message", (ev) => this.receive(/** @type {CustomEvent} */ (ev).detail.message));
    document.addEventListener("selectionchange", () => this.trackSelection());
    this.wire();
  }

  /** @param {Record<string, any>} m */
  receive(m) {
    if (m.type === "review") {
      this.reviews.set(m.doc, /** @type {any} */ (m));
      this.changed();
    } else if (m.type === "review_queue") {
      this.queue = m.items;
      this.renderQueue();
    } else if (m.type === "error" && typeof m.id === "string" && m.id.startsWith("r")) {
      $("review-status").textContent = m.message;
    }
  }

  /** @param {Record<string, any>} message */
  send(message) {
    const id = `r${this.nextId++}`;
    this.observer.conn.send({ ...message, id });
    $("review-status").textContent = "";
    return id;
  }

  /** Teacher comments on `d`, placed on its current text. @param {DocState} d */
  comments(d) {
    const r = this.reviews.get(d.doc);
    return placeComments(r, r ? d.hints.changesSince(r.version) : null);
  }

  trackSelection() {
    const box = $("mirror-text");
    const sel = document.getSelection();
    if (!sel || sel.rangeCount === 0 || sel.isCollapsed) return;
    const range = sel.getRangeAt(0);
    if (!box.contains(range.startContainer) || !box.contains(range.endContainer)) return;
    const before = document.createRange();
    before.setStart(box, 0);
    before.setEnd(range.startContainer, range.startOffset);
    const start = before.toString().length;
    const end = start + range.toString().replace(/\u200b/g, "").length;
    this.selection = end > start ? { start, end } : null;
    const d = this.mirrored();
    $("c-quote").textContent = d && this.selection ? `“${d.text.slice(start, end)}”` : "";
  }

  wire() {
    $("c-send").addEventListener("click", () => {
      const d = this.mirrored();
      if (!d || !this.selection) { $("review-status").textContent = rt("selectFirst"); return; }
      const text = /** @type {HTMLTextAreaElement} */ ($("c-text")).value.trim();
      if (!text) return;
      const suggestion = /** @type {HTMLInputElement} */ ($("c-suggestion")).value;
      this.send({ type: "comment", doc: d.doc, start: this.selection.start, end: this.selection.end, text, suggestion: suggestion || null, version: d.version });
      /** @type {HTMLTextAreaElement} */ ($("c-text")).value = "";
      /** @type {HTMLInputElement} */ ($("c-suggestion")).value = "";
    });
    const trait = /** @type {HTMLSelectElement} */ ($("g-trait"));
    trait.innerHTML = TRAIT_NAMES.map((n) => `<option value="${n}">${esc(n === "overall" ? rt("overall") : t(`trait.${n}`))}</option>`).join("");
    trait.addEventListener("change", () => { /** @type {HTMLInputElement} */ ($("g-score")).max = String(TRAIT_MAX[trait.value]); });
    $("g-send").addEventListener("click", () => {
      const d = this.mirrored();
      const score = Number(/** @type {HTMLInputElement} */ ($("g-score")).value);
      const reason = /** @type {HTMLInputElement} */ ($("g-reason")).value.trim();
      if (!d || !reason || Number.isNaN(score)) return;
      this.send({ type: "grade", doc: d.doc, trait: trait.value, score, reason });
    });
    $("m-hint-list").addEventListener("click", (ev) => {
      const b = /** @type {HTMLElement} */ (ev.target).closest("button[data-verdict]");
      const d = this.mirrored();
      if (!b || !d) return;
      this.send({ type: "verdict", doc: d.doc, hint: b.getAttribute("data-hint"), verdict: b.getAttribute("data-verdict") });
    });
    $("m-comments").addEventListener("click", (ev) => {
      const b = /** @type {HTMLElement} */ (ev.target).closest("button.resolve");
      const d = this.mirrored();
      if (b && d) this.send({ type: "resolve", doc: d.doc, comment: b.getAttribute("data-comment") });
    });
    $("queue").addEventListener("click", (ev) => {
      const b = /** @type {HTMLElement} */ (ev.target).closest("button[data-doc]");
      if (b) this.open(/** @type {string} */ (b.getAttribute("data-doc")));
    });
  }

  renderQueue() {
    const el = $("queue");
    $("queue-count").textContent = String(this.queue.length);
    el.innerHTML = this.queue.length
      ? this.queue
          .map((q) => `<li><button type="button" class="btn ghost queue-item" data-doc="${esc(q.doc)}">
            <b>${esc(q.student)}</b> · ${esc(q.doc.slice(q.doc.indexOf("/") + 1))} · ${esc(rt("submissionN", { n: q.submission }))}
            <span class="small muted">${new Date(q.created * 1000).toLocaleString()}</span></button></li>`)
          .join("")
      : `<li class="muted small">${esc(rt("queueEmpty"))}</li>`;
  }

  /** The mirror's review panel, and verdict buttons on its hint list. @param {DocState} d */
  renderMirror(d) {
    const review = this.reviews.get(d.doc);
    renderTeacherGrades($("m-teacher-scores"), review, d.scores);
    renderComments($("m-comments"), this.comments(d), d.text, rt("resolve"));
    /** @type {Record<string, string>} */
    const verdicts = Object.fromEntries((review?.verdicts || []).map((v) => [v.hint, v.verdict]));
    for (const li of $("m-hint-list").querySelectorAll("li[data-hint]")) {
      const id = /** @type {string} */ (li.getAttribute("data-hint"));
      const span = document.createElement("span");
      span.className = "verdict-buttons";
      span.innerHTML = ["agree", "disagree"]
        .map((v) => `<button type="button" class="btn ghost small v-${v}" data-hint="${esc(id)}" data-verdict="${v}" aria-pressed="${verdicts[id] === v}">${esc(rt(/** @type {"agree"|"disagree"} */ (v)))}</button>`)
        .join("");
      li.append(span);
    }
    const withdrawn = (review?.verdicts || []).filter((v) => v.verdict === "disagree");
    $("m-verdicts").innerHTML = withdrawn
      .map((v) => `<li class="small"><s>${esc(v.quote)}</s> · ${esc(v.code)} · ${esc(rt("disagree"))} (${esc(v.author)})${v.note ? ` — ${esc(v.note)}` : ""}</li>`)
      .join("");
  }
}
