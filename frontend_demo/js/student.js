// @ts-check
/**
 * The student page: a textarea for input with an aria-hidden overlay behind it
 * that draws the hints, a hint card, and a side panel with scores.
 */
import { DocumentSession, diffText, mapRange, pushTimeline, tokenClaims } from "./protocol.js";
import { t, setLang, lang, translate, codeName } from "./i18n.js";
import { esc, overlayHtml, renderScores, renderKindCounts, renderStats, renderTimeline, hintLabel } from "./ui.js";
import { forgetToken, getToken } from "./login.js";
import { placeComments, renderComments, renderTeacherGrades, rt } from "./review.js";

/** @typedef {import("./protocol.js").Hint} Hint */

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const ta = /** @type {HTMLTextAreaElement} */ ($("editor"));
const backdrop = $("backdrop");
const card = $("hint-card");
const list = $("hint-list");

/** @type {DocumentSession} */
let session;
let composing = false;
/** @type {string|null} hint whose card is open */
let activeHint = null;
/** card opened by hover (closes when the pointer leaves) or pinned (caret, click, keyboard) */
let cardPinned = false;
/** @type {{words: number, overall: number|null}[]} */
const timeline = [];
let renderQueued = false;
/** @type {ReturnType<typeof setTimeout>|undefined} */
let hoverTimer;
/** @type {Record<string, any>} */
let lastState = { state: "idle", queued: 0 };
/** @type {import("./review.js").ReviewMessage|undefined} the teacher's review of this essay */
let review;

// ------------------------------------------------------------------ start

async function main() {
  translate();
  $("ui-lang").addEventListener("click", () => {
    setLang(lang === "zh" ? "en" : "zh");
    translate();
    renderAll();
  });
  const { token, doc: docParam } = await getToken("student");
  const claims = tokenClaims(token);
  const params = new URLSearchParams(location.search);
  const doc = docParam || `${claims.sub || "student"}-essay`;
  const docLang = /** @type {"zh"|"en"|"auto"} */ (params.get("lang") || "auto");
  session = new DocumentSession({ token, doc, lang: docLang });
  // a hook for tests and for plugin authors poking around in the console
  /** @type {any} */ (window).inkstone = { session, page: "student" };
  $("who").textContent = claims.sub ? `${claims.sub} · ${doc}` : doc;

  session.addEventListener("state", (ev) => { lastState = /** @type {CustomEvent} */ (ev).detail; renderConn(); });
  session.addEventListener("welcome", (ev) => {
    const w = /** @type {CustomEvent} */ (ev).detail.welcome;
    if (w.role === "teacher") {
      // a teacher's token opened the student page: take them to the class view (the
      // token is in this tab's sessionStorage, never in the URL)
      session.stop();
      location.replace(`/teacher${location.search}`);
      return;
    }
    $("dev-badge").hidden = !w.dev_mode;
    $("who").textContent = `${w.user} · ${w.class} · ${w.doc}`;
    // maxlength counts UTF-16 units, the server code points: never more than the server allows
    if (w.limits?.max_document_chars) ta.maxLength = w.limits.max_document_chars;
    if (!ta.dataset.ready) {
      ta.dataset.ready = "1";
      ta.readOnly = false;
      ta.focus();
    }
  });
  session.addEventListener("text", (ev) => {
    // the server's text at first open: show it (our local text was empty)
    ta.value = /** @type {CustomEvent} */ (ev).detail.text;
    autoGrow();
    scheduleRender();
  });
  session.addEventListener("hints", scheduleRender);
  session.addEventListener("scores", (ev) => {
    pushTimeline(timeline, /** @type {CustomEvent} */ (ev).detail.message);
    renderSide();
  });
  session.addEventListener("error", (ev) => {
    const { error, fatal } = /** @type {CustomEvent} */ (ev).detail;
    if (fatal && (error.code === "unauthorized" || error.code === "token_expired")) forgetToken();
    if (fatal) notice(t("authFailed", { e: error.message }));
    else if (error.code === "doc_too_large") notice(t("docTooLarge"));
    else if (error.code === "overloaded") notice(t("overloaded"), 4000);
  });

  session.conn.addEventListener("message", (ev) => onReviewMessage(/** @type {CustomEvent} */ (ev).detail.message));
  $("submit").addEventListener("click", submitEssay);
  $("teacher-comments").addEventListener("click", (ev) => {
    const id = /** @type {HTMLElement} */ (ev.target).closest("[data-comment]")?.getAttribute("data-comment");
    if (id) openHint(id, { select: true });
  });

  ta.readOnly = true; // until the first welcome tells us the stored text
  wireEditor();
  renderAll();
  session.start();
}

// ------------------------------------------------------------------ editor input

function wireEditor() {
  ta.addEventListener("compositionstart", () => { composing = true; });
  ta.addEventListener("compositionend", () => {
    composing = false;
    sync(); // the composed text is final: send it now
  });
  ta.addEventListener("input", (ev) => {
    autoGrow(/** @type {InputEvent} */ (ev).inputType?.startsWith("delete") || /** @type {InputEvent} */ (ev).inputType === "historyUndo");
    if (composing || /** @type {InputEvent} */ (ev).isComposing) { scheduleRender(); return; }
    sync();
  });
  ta.addEventListener("keydown", onEditorKey);
  ta.addEventListener("click", () => openAtCaret());
  ta.addEventListener("keyup", (ev) => {
    if (ev.key.startsWith("Arrow") || ev.key === "Home" || ev.key === "End") openAtCaret(true);
  });
  ta.addEventListener("scroll", () => { backdrop.scrollTop = ta.scrollTop; });
  ta.addEventListener("mousemove", onHover);
  ta.addEventListener("mouseleave", () => scheduleHoverClose());
  card.addEventListener("mouseenter", () => clearTimeout(hoverTimer));
  card.addEventListener("mouseleave", () => scheduleHoverClose());
  card.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") { closeCard(); ta.focus(); }
  });
  $("card-close").addEventListener("click", () => { closeCard(); ta.focus(); });
  window.addEventListener("resize", () => { autoGrow(); positionCard(); });
  list.addEventListener("keydown", onListKey);
  list.addEventListener("click", (ev) => {
    const li = /** @type {HTMLElement|null} */ (/** @type {HTMLElement} */ (ev.target).closest("li[data-hint]"));
    if (li) openHint(/** @type {string} */ (li.dataset.hint), { focusCard: false, select: true });
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && !card.hidden) closeCard();
  });
  document.addEventListener("pointerdown", (ev) => {
    const target = /** @type {Node} */ (ev.target);
    if (!card.hidden && !card.contains(target) && target !== ta) closeCard();
  });
}

/** Diff the textarea against the session's text and send the change. */
function sync() {
  if (!session || session.version === null) return;
  const change = diffText(session.text, ta.value);
  if (change) session.change(change.start, change.end, change.text);
  scheduleRender();
}

/** Grow the textarea with its text (the page scrolls, not the textarea). @param {boolean} [shrink] */
function autoGrow(shrink = true) {
  if (shrink) ta.style.height = "auto";
  else if (ta.scrollHeight <= ta.clientHeight) return; // typing that adds no line: no layout work
  ta.style.height = `${Math.max(ta.scrollHeight, 420)}px`;
  backdrop.style.height = ta.style.height;
}

// ------------------------------------------------------------------ rendering

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderAll();
  });
}

/** Hints placed on the text on screen (mid-composition, mapped through the uncommitted change). */
function currentHints() {
  if (!session) return [];
  const hints = [...session.hints.hints(), ...teacherComments()];
  if (ta.value === session.text) return hints;
  const c = diffText(session.text, ta.value);
  if (!c) return hints;
  /** @type {Hint[]} */
  const out = [];
  for (const h of hints) {
    const m = mapRange(h.start, h.end, c);
    if (m) out.push({ ...h, start: m[0], end: m[1] });
  }
  return out;
}

function renderAll() {
  const hints = currentHints();
  if (activeHint && !hints.some((h) => h.id === activeHint)) closeCard();
  backdrop.innerHTML = overlayHtml(ta.value, hints, { active: activeHint });
  renderList(hints);
  renderSide();
  positionCard();
}

function renderSide() {
  if (!session) return;
  renderScores($("scores"), session.scores);
  renderKindCounts($("kind-counts"), session.hints.counts());
  renderStats($("stats"), session.scores?.stats);
  renderTimeline($("timeline"), timeline);
  renderTeacherGrades($("teacher-scores"), review, session.scores);
  renderComments($("teacher-comments"), teacherComments(), session.text, null);
  renderConn();
}

// ------------------------------------------------------------------ teacher review

/** The teacher's comments, placed on the current text. */
function teacherComments() {
  if (!session || !review) return [];
  const seq = session.versionSeq.get(review.version);
  return placeComments(review, seq === undefined ? null : session.hints.changesSince(seq));
}

/** @param {Record<string, any>} m */
function onReviewMessage(m) {
  if (m.type === "review" && m.doc === session.doc) {
    review = /** @type {import("./review.js").ReviewMessage} */ (m);
    const last = review.submissions?.[review.submissions.length - 1];
    if (last && !$("submit-status").textContent) $("submit-status").textContent = rt("submitted", { n: last.n, v: last.version });
    scheduleRender();
  } else if (m.type === "submitted") {
    $("submit-status").textContent = rt("submitted", { n: m.submission, v: m.version });
    /** @type {HTMLButtonElement} */ ($("submit")).disabled = false;
  } else if (m.type === "error" && m.id === "submit") {
    $("submit-status").textContent = m.message;
    /** @type {HTMLButtonElement} */ ($("submit")).disabled = false;
  }
}

function submitEssay() {
  session.flush();
  /** @type {HTMLButtonElement} */ ($("submit")).disabled = true;
  $("submit-status").textContent = rt("submitting");
  session.conn.send({ type: "submit", id: "submit" });
}

/** A hint or a teacher comment by id. @param {string} id */
function findHint(id) {
  return session.hints.find(id) ?? teacherComments().find((c) => c.id === id);
}

let listSignature = "";
/** @param {Hint[]} hints */
function renderList(hints) {
  $("hint-total").textContent = String(hints.length);
  const signature = `${lang}|${activeHint}|${hints.map((h) => `${h.id}@${h.start}-${h.end}`).join(",")}`;
  if (signature === listSignature) return;
  listSignature = signature;
  const focusedId = /** @type {HTMLElement|null} */ (document.activeElement)?.dataset?.hint;
  if (!hints.length) {
    list.innerHTML = `<li class="empty muted small" role="presentation">${esc(t("noHints"))}</li>`;
    return;
  }
  list.innerHTML = hints
    .map((h, i) => {
      const { kind, code, excerpt } = hintLabel(h, ta.value);
      const selected = h.id === activeHint;
      return `<li role="option" id="opt-${h.id}" data-hint="${h.id}" tabindex="${(activeHint ? selected : i === 0) ? 0 : -1}" aria-selected="${selected}" class="hint-item k-${h.kind}" title="${esc(h.message)}">
        <span class="dot" aria-hidden="true"></span>
        <span class="hint-main"><span class="hint-code">${esc(code)}</span> <span class="hint-excerpt">“${esc(excerpt)}”</span></span>
        <span class="kind-tag small">${esc(kind)}</span></li>`;
    })
    .join("");
  if (activeHint && !hints.some((h) => h.id === activeHint)) /** @type {HTMLElement} */ (list.querySelector("li[data-hint]")).tabIndex = 0;
  if (focusedId) /** @type {HTMLElement|null} */ (list.querySelector(`[data-hint="${focusedId}"]`))?.focus();
}

function renderConn() {
  const el = $("conn");
  const s = lastState.state || "idle";
  const queued = session ? session.queued : 0;
  el.dataset.state = s;
  let text = t(`state.${s}`);
  if (queued && s !== "live") text += ` · ${t("queued", { n: queued })}`;
  /** @type {HTMLElement} */ (el.querySelector(".conn-text")).textContent = text;
  el.dataset.queued = String(queued);
}

/** @param {string} message @param {number} [ms] */
function notice(message, ms) {
  const el = $("notice");
  el.textContent = message;
  el.hidden = false;
  if (ms) setTimeout(() => { el.hidden = true; }, ms);
}

// ------------------------------------------------------------------ hint card

/** Hint ids under the pointer: hit-test the overlay by letting the pointer through the textarea. */
function hintsAt(/** @type {number} */ x, /** @type {number} */ y) {
  ta.style.pointerEvents = "none";
  const el = document.elementFromPoint(x, y);
  ta.style.pointerEvents = "";
  const mark = el && /** @type {HTMLElement} */ (el).closest ? /** @type {HTMLElement} */ (el).closest("mark[data-h]") : null;
  return mark ? /** @type {string} */ (/** @type {HTMLElement} */ (mark).dataset.h).split(" ") : [];
}

let hoverQueued = false;
/** @param {MouseEvent} ev */
function onHover(ev) {
  if (hoverQueued) return;
  hoverQueued = true;
  requestAnimationFrame(() => {
    hoverQueued = false;
    const ids = hintsAt(ev.clientX, ev.clientY);
    if (ids.length) {
      clearTimeout(hoverTimer);
      const id = pickNarrowest(ids);
      if (id !== activeHint) openHint(id, { focusCard: false, select: false, hover: true });
    } else scheduleHoverClose();
  });
}

/** @param {string[]} ids */
function pickNarrowest(ids) {
  const hs = ids.map((id) => findHint(id)).filter(Boolean);
  hs.sort((a, b) => (/** @type {Hint} */ (a).end - /** @type {Hint} */ (a).start) - (/** @type {Hint} */ (b).end - /** @type {Hint} */ (b).start));
  return hs.length ? /** @type {Hint} */ (hs[0]).id : ids[0];
}

function scheduleHoverClose() {
  if (cardPinned) return;
  clearTimeout(hoverTimer);
  hoverTimer = setTimeout(() => { if (!cardPinned) closeCard(); }, 350);
}

/** Open the card of the hint at the caret (tap / keyboard). @param {boolean} [keyboard] */
function openAtCaret(keyboard = false) {
  if (ta.selectionStart !== ta.selectionEnd && !keyboard) return;
  const pos = ta.selectionStart;
  const hints = session ? currentHints().filter((h) => h.start <= pos && pos <= h.end && h.start < h.end) : [];
  if (!hints.length) { if (cardPinned) closeCard(); return; }
  hints.sort((a, b) => (a.end - a.start) - (b.end - b.start));
  openHint(hints[0].id, { focusCard: false, select: false });
}

/**
 * @param {string} id
 * @param {{focusCard?: boolean, select?: boolean, hover?: boolean}} opts
 */
function openHint(id, opts) {
  const h = findHint(id);
  if (!h) return;
  activeHint = id;
  cardPinned = !opts.hover;
  if (opts.select) {
    ta.focus();
    ta.setSelectionRange(h.start, h.end);
  }
  $("card-kind").textContent = t(`kind.${h.kind}`);
  $("card-kind").className = `kind-tag k-${h.kind}`;
  $("card-kind").hidden = t(`kind.${h.kind}`) === codeName(h.code);
  $("card-title").textContent = codeName(h.code);
  $("card-msg").textContent = h.message;
  const actions = $("card-actions");
  actions.innerHTML = "";
  for (const s of (h.suggestions || []).slice(0, 4)) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "btn primary apply";
    b.textContent = s === "" ? t("apply", { s: "∅" }) : t("apply", { s });
    b.addEventListener("click", () => applySuggestion(id, s));
    actions.append(b);
  }
  const d = document.createElement("button");
  d.type = "button";
  d.className = "btn ghost dismiss";
  d.textContent = h.kind === "teacher" ? rt("resolve") : t("dismiss");
  d.addEventListener("click", () => dismissHint(id));
  actions.append(d);
  card.hidden = false;
  card.dataset.hint = id;
  if (!opts.hover) $("announce").textContent = `${t(`kind.${h.kind}`)}：${codeName(h.code)}。${h.message}`;
  renderAll();
  if (opts.focusCard) /** @type {HTMLElement} */ (actions.querySelector("button"))?.focus();
}

function closeCard() {
  if (card.hidden && !activeHint) return;
  card.hidden = true;
  activeHint = null;
  cardPinned = false;
  delete card.dataset.hint;
  scheduleRender();
}

function positionCard() {
  if (card.hidden || !activeHint) return;
  const mark = /** @type {HTMLElement|null} */ ([...backdrop.querySelectorAll("mark[data-h]")].find((m) => /** @type {HTMLElement} */ (m).dataset.h?.split(" ").includes(/** @type {string} */ (activeHint))) || null);
  const host = /** @type {HTMLElement} */ (card.offsetParent || document.body);
  const hostRect = host.getBoundingClientRect();
  if (!mark) return;
  const r = mark.getClientRects()[0] || mark.getBoundingClientRect();
  const width = card.offsetWidth || 320;
  let left = r.left - hostRect.left;
  left = Math.max(8, Math.min(left, hostRect.width - width - 8));
  card.style.left = `${left}px`;
  card.style.top = `${r.bottom - hostRect.top + 8}px`;
}

/** @param {string} id @param {string} suggestion */
function applySuggestion(id, suggestion) {
  const h = findHint(id);
  if (!h) return;
  ta.focus();
  ta.setSelectionRange(h.start, h.end);
  // execCommand keeps the change on the textarea's native undo stack and fires `input`
  const ok = document.execCommand("insertText", false, suggestion);
  if (!ok || ta.value.slice(h.start, h.start + suggestion.length) !== suggestion) {
    ta.setRangeText(suggestion, h.start, h.end, "end");
    sync();
  }
  closeCard();
}

/** @param {string} id */
function dismissHint(id) {
  if (findHint(id)?.kind === "teacher") session.conn.send({ type: "resolve", comment: id });
  else session.dismiss(id);
  closeCard();
  ta.focus();
}

// ------------------------------------------------------------------ keyboard

/** @param {KeyboardEvent} ev */
function onEditorKey(ev) {
  if (ev.key === "F8") {
    ev.preventDefault();
    const hints = currentHints();
    if (!hints.length) return;
    const pos = ta.selectionStart;
    let target;
    if (ev.shiftKey) target = [...hints].reverse().find((h) => h.start < pos && h.id !== activeHint) || hints[hints.length - 1];
    else target = hints.find((h) => h.start > pos || (h.start === pos && activeHint !== h.id && ta.selectionEnd === pos)) || hints[0];
    openHint(target.id, { focusCard: false, select: true });
  } else if (ev.key === "Enter" && ev.altKey && activeHint) {
    ev.preventDefault();
    /** @type {HTMLElement|null} */ (card.querySelector(".card-actions button"))?.focus();
  } else if (ev.key === "Escape" && !card.hidden) {
    ev.preventDefault();
    closeCard();
  }
}

/** Arrow keys move through the hint list (roving tabindex); Enter opens the card. @param {KeyboardEvent} ev */
function onListKey(ev) {
  const items = /** @type {HTMLElement[]} */ ([...list.querySelectorAll("li[data-hint]")]);
  const i = items.indexOf(/** @type {HTMLElement} */ (document.activeElement));
  if (i < 0) return;
  let next = -1;
  if (ev.key === "ArrowDown") next = Math.min(items.length - 1, i + 1);
  else if (ev.key === "ArrowUp") next = Math.max(0, i - 1);
  else if (ev.key === "Home") next = 0;
  else if (ev.key === "End") next = items.length - 1;
  else if (ev.key === "Enter" || ev.key === " ") {
    ev.preventDefault();
    openHint(/** @type {string} */ (items[i].dataset.hint), { focusCard: true, select: false });
    return;
  }
  if (next >= 0) {
    ev.preventDefault();
    for (const it of items) it.tabIndex = -1;
    items[next].tabIndex = 0;
    items[next].focus();
  }
}

main().catch((err) => {
  console.error(err);
  notice(String(err));
});
