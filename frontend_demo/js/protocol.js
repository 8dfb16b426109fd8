// @ts-check
/**
 * The Inkstone protocol client (v1) — the one module both demo pages share.
 *
 * It speaks only the public socket protocol (shared/PROTOCOL.md) and is meant
 * to be read by editor-plugin authors as the reference client:
 *
 *  - {@link Connection}: one WebSocket with `hello`, automatic reconnect with
 *    exponential backoff + jitter, app-level ping, and connection states.
 *  - {@link DocumentSession}: a student's document. Local changes (UTF-16
 *    offsets: JS strings are UTF-16, so we negotiate `"utf-16"`) are queued and
 *    sent as incremental `edit`s with bases; acks advance the version; after a
 *    reconnect the `welcome` version says how many in-flight operations were
 *    applied (resume); anything unexpected ends in a `replace` with the local
 *    text, which wins: nothing typed is ever lost. Mirrors protocol/client.py.
 *  - {@link HintStore}: sentence id → hints, with every hint range kept in the
 *    coordinates of the text the user sees, mapped through later edits; a hint
 *    whose range a later edit touched is dropped, never misplaced.
 *  - {@link ClassObserver}: a teacher's live view of a class (snapshots,
 *    updates, hints, scores, presence).
 *
 * No framework, no build step: a plain ES module.
 */

export const SUBPROTOCOL = "inkstone.v1";
export const HINT_KINDS = /** @type {const} */ (["spelling", "grammar", "logic", "style", "punctuation", "length"]);
export const TRAITS = /** @type {const} */ (["content", "structure", "logic", "language", "coherence"]);

/**
 * @typedef {{start: number, end: number, text: string}} Change
 * @typedef {{id: string, kind: string, code: string, severity: string, start: number, end: number,
 *   message: string, suggestions: string[], confidence: number, source?: string}} Hint
 * @typedef {{id: string, start: number, end: number, hints: Hint[]}} SentenceHints
 * @typedef {{type: "hints", version: number, sentences: SentenceHints[], removed?: string[], doc?: string,
 *   timing?: Record<string, number>}} HintsMessage
 * @typedef {{score: number, max: number, grade?: string|null}} Score
 * @typedef {{score: number, max: number, basis: string, grade?: string|null, label?: string|null}} Trait
 * @typedef {{chars: number, sentences: number, paragraphs: number, words?: number}} Stats
 * @typedef {{type: "scores", version: number, overall?: Score|null, traits: Record<string, Trait>,
 *   stats: Stats, doc?: string}} ScoresMessage
 * @typedef {{type: string, [key: string]: any}} Message
 * @typedef {"idle"|"connecting"|"live"|"reconnecting"|"offline"|"failed"} ConnState
 */

// ------------------------------------------------------------------ text helpers

/**
 * The single change turning `oldText` into `newText` (common prefix/suffix),
 * in UTF-16 code units, never splitting a surrogate pair. Null when equal.
 * @param {string} oldText
 * @param {string} newText
 * @returns {Change|null}
 */
export function diffText(oldText, newText) {
  if (oldText === newText) return null;
  const limit = Math.min(oldText.length, newText.length);
  let prefix = 0;
  while (prefix < limit && oldText.charCodeAt(prefix) === newText.charCodeAt(prefix)) prefix++;
  // do not end the prefix between a high and a low surrogate
  if (prefix > 0 && isHigh(oldText.charCodeAt(prefix - 1))) prefix--;
  let suffix = 0;
  while (
    suffix < limit - prefix &&
    oldText.charCodeAt(oldText.length - 1 - suffix) === newText.charCodeAt(newText.length - 1 - suffix)
  ) suffix++;
  if (suffix > 0 && isLow(oldText.charCodeAt(oldText.length - suffix))) suffix--;
  return { start: prefix, end: oldText.length - suffix, text: newText.slice(prefix, newText.length - suffix) };
}

/** @param {number} c */
function isHigh(c) { return c >= 0xd800 && c <= 0xdbff; }
/** @param {number} c */
function isLow(c) { return c >= 0xdc00 && c <= 0xdfff; }

/**
 * Apply changes in order (each relative to the text after the previous one), like the server.
 * @param {string} text
 * @param {Change[]} changes
 */
export function applyChanges(text, changes) {
  for (const c of changes) {
    if (c.start < 0 || c.end < c.start || c.end > text.length) throw new RangeError(`change ${c.start}..${c.end} outside 0..${text.length}`);
    text = text.slice(0, c.start) + c.text + text.slice(c.end);
  }
  return text;
}

/**
 * Map a range through one change. Null when the change touched the range
 * (overlapped it, or inserted strictly inside it).
 * @param {number} start
 * @param {number} end
 * @param {Change} c
 * @returns {[number, number]|null}
 */
export function mapRange(start, end, c) {
  const delta = c.text.length - (c.end - c.start);
  if (c.end <= start) return [start + delta, end + delta]; // wholly before (or ending at the start)
  if (c.start >= end) return [start, end]; // wholly after (or inserting at the end)
  return null;
}

/**
 * Decode the (unverified) claims of a token: `{sub, role, class, exp}`. For display only.
 * @param {string} token
 * @returns {{sub?: string, role?: string, class?: string, exp?: number}}
 */
export function tokenClaims(token) {
  try {
    const body = token.split(".")[0].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(body + "=".repeat((4 - (body.length % 4)) % 4)), (ch) => ch.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return {};
  }
}

/**
 * The socket URL of the server that served this page, with `?class=` so a load balancer
 * in front of several gateways sends a class's students and teachers to one node.
 * @param {string} [classId]
 */
export function defaultSocketUrl(classId) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const query = classId ? `?class=${encodeURIComponent(classId)}` : "";
  return `${proto}//${location.host}/v1/ws${query}`;
}

/** A random id for this client instance (idempotent resend: hello.client + edit.seq). */
function randomClientId() {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ------------------------------------------------------------------ hint store

/**
 * Sentence id → hints, kept in the coordinates of the current local text.
 *
 * Every local change is fed to {@link HintStore.applyLocal} with a sequence
 * number (the "local version"); hints computed for an older text are mapped
 * through the logged changes after that point before they are stored.
 */
export class HintStore {
  constructor(maxLog = 5000) {
    /** @type {Map<string, SentenceHints>} */
    this.sentences = new Map();
    /** @type {{seq: number, change: Change}[]} */
    this.log = [];
    this.maxLog = maxLog;
    this.seq = 0;
  }

  clear() { this.sentences.clear(); }

  /**
   * A change to the current text: map every stored range through it.
   * @param {Change} change
   * @param {number} [seq] the sequence number after the change (default: next)
   */
  applyLocal(change, seq) {
    this.seq = seq ?? this.seq + 1;
    this.log.push({ seq: this.seq, change });
    if (this.log.length > this.maxLog) this.log.splice(0, this.log.length - this.maxLog);
    for (const [id, s] of this.sentences) {
      const mapped = mapSentence(s, [change]);
      if (mapped) this.sentences.set(id, mapped);
      else this.sentences.delete(id);
    }
  }

  /**
   * Take a `hints` message whose offsets refer to the text at sequence `seq`
   * (null: unknown, so its sentences cannot be placed and are left out).
   * @param {HintsMessage} msg
   * @param {number|null} seq
   * @param {boolean} [full] the message lists every sentence (replace the whole map)
   */
  ingest(msg, seq, full = false) {
    if (full) this.sentences.clear();
    for (const id of msg.removed || []) this.sentences.delete(id);
    if (seq === null) {
      for (const s of msg.sentences) this.sentences.delete(s.id);
      return;
    }
    const later = this.changesSince(seq);
    if (later === null) {
      for (const s of msg.sentences) this.sentences.delete(s.id);
      return;
    }
    for (const s of msg.sentences) {
      const mapped = mapSentence({ ...s, hints: s.hints.map((h) => ({ ...h, suggestions: h.suggestions || [] })) }, later);
      if (mapped) this.sentences.set(s.id, mapped);
      else this.sentences.delete(s.id);
    }
  }

  /**
   * Changes logged after `seq`, or null when the log no longer reaches back that far.
   * @param {number} seq
   * @returns {Change[]|null}
   */
  changesSince(seq) {
    if (seq > this.seq) return null;
    if (seq === this.seq) return [];
    const first = this.log.findIndex((e) => e.seq > seq);
    if (first < 0) return null;
    if (this.log[first].seq !== seq + 1 && first === 0) return null; // log truncated
    return this.log.slice(first).map((e) => e.change);
  }

  /** Every visible hint, sorted by position. @returns {Hint[]} */
  hints() {
    /** @type {Hint[]} */
    const out = [];
    for (const s of this.sentences.values()) out.push(...s.hints);
    out.sort((a, b) => a.start - b.start || b.end - a.end || a.id.localeCompare(b.id));
    return out;
  }

  /** @param {string} id */
  find(id) {
    for (const s of this.sentences.values()) for (const h of s.hints) if (h.id === id) return h;
    return undefined;
  }

  /** @param {string} id */
  remove(id) {
    for (const [sid, s] of this.sentences) {
      const hints = s.hints.filter((h) => h.id !== id);
      if (hints.length !== s.hints.length) this.sentences.set(sid, { ...s, hints });
    }
  }

  /** Counts of visible hints by kind. @returns {Record<string, number>} */
  counts() {
    /** @type {Record<string, number>} */
    const out = Object.fromEntries(HINT_KINDS.map((k) => [k, 0]));
    for (const h of this.hints()) out[h.kind] = (out[h.kind] || 0) + 1;
    return out;
  }
}

/**
 * @param {SentenceHints} s
 * @param {Change[]} changes
 * @returns {SentenceHints|null}
 */
function mapSentence(s, changes) {
  let { start, end } = s;
  let hints = s.hints;
  for (const c of changes) {
    const r = mapRange(start, end, c);
    if (r) [start, end] = r;
    else {
      // the sentence itself was edited: keep its untouched hints, the server will send the rest
      const delta = c.text.length - (c.end - c.start);
      end = Math.max(start, end + delta);
      if (c.start < start) start = Math.max(0, c.start);
    }
    /** @type {Hint[]} */
    const next = [];
    for (const h of hints) {
      const m = mapRange(h.start, h.end, c);
      if (m) next.push(m[0] === h.start && m[1] === h.end ? h : { ...h, start: m[0], end: m[1] });
    }
    hints = next;
  }
  return { id: s.id, start, end, hints };
}

// ------------------------------------------------------------------ connection

/**
 * One WebSocket to the server that reconnects by itself.
 *
 * Events (CustomEvent detail): `state` {state, attempt, retryInMs}, `message` {message},
 * `open` (socket open; send hello now), `fatal` {error} (auth refused: no more retries).
 */
export class Connection extends EventTarget {
  /**
   * @param {{url?: string, minBackoffMs?: number, maxBackoffMs?: number, pingEveryMs?: number}} [opts]
   */
  constructor(opts = {}) {
    super();
    this.url = opts.url || defaultSocketUrl();
    this.minBackoffMs = opts.minBackoffMs ?? 300;
    this.maxBackoffMs = opts.maxBackoffMs ?? 8000;
    this.pingEveryMs = opts.pingEveryMs ?? 15000;
    /** @type {WebSocket|null} */
    this.ws = null;
    /** @type {ConnState} */
    this.state = "idle";
    this.attempt = 0;
    this.stopped = false;
    this.paused = false;
    this.everLive = false;
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    this.retryTimer = undefined;
    /** @type {ReturnType<typeof setInterval>|undefined} */
    this.pingTimer = undefined;
    this.lastSeen = 0;
    this.onOnline = () => { if (this.state === "reconnecting" || this.state === "offline") this.reconnectNow(); };
    addEventListener("online", this.onOnline);
  }

  /** @param {ConnState} state @param {Record<string, any>} [extra] */
  setState(state, extra = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, attempt: this.attempt, ...extra } }));
  }

  start() {
    this.stopped = false;
    this.open();
  }

  open() {
    clearTimeout(this.retryTimer);
    if (this.stopped || this.paused) return;
    this.setState(this.everLive ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = new WebSocket(this.url, [SUBPROTOCOL]);
    } catch (err) {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.lastSeen = Date.now();
      this.dispatchEvent(new CustomEvent("open"));
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.heartbeat(), this.pingEveryMs);
    };
    ws.onmessage = (ev) => {
      this.lastSeen = Date.now();
      /** @type {Message} */
      let message;
      try { message = JSON.parse(ev.data); } catch { return; }
      this.dispatchEvent(new CustomEvent("message", { detail: { message } }));
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.pingTimer);
      if (this.stopped || this.state === "failed") return;
      this.dispatchEvent(new CustomEvent("close", { detail: { code: ev.code, reason: ev.reason } }));
      this.scheduleRetry();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  /** Called by the owner once `welcome` arrived. */
  markLive() {
    this.attempt = 0;
    this.everLive = true;
    this.setState("live");
  }

  /** Auth refused or similar: stop retrying. @param {Message} error */
  fail(error) {
    this.setState("failed", { error });
    this.stopped = true;
    this.ws?.close(1000, "giving up");
  }

  scheduleRetry() {
    if (this.stopped || this.paused) return;
    this.attempt += 1;
    const base = Math.min(this.maxBackoffMs, this.minBackoffMs * 2 ** (this.attempt - 1));
    const delay = Math.round(base / 2 + Math.random() * (base / 2));
    this.setState(navigator.onLine === false ? "offline" : "reconnecting", { retryInMs: delay });
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  reconnectNow() {
    clearTimeout(this.retryTimer);
    if (!this.ws) this.open();
  }

  heartbeat() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - this.lastSeen > this.pingEveryMs * 2) {
      this.drop(); // silent socket: treat as dead
      return;
    }
    this.send({ type: "ping" });
  }

  /** Close the socket as if the network failed (it reconnects). */
  drop() {
    const ws = this.ws;
    if (!ws) return;
    ws.close(4000, "client reconnect");
    // onclose of a closing socket may be late: reconnect now
    ws.onclose = null;
    this.ws = null;
    clearInterval(this.pingTimer);
    this.dispatchEvent(new CustomEvent("close", { detail: { code: 4000, reason: "dropped" } }));
    this.scheduleRetry();
  }

  /** Go offline on purpose (tests, demos): close the socket and hold reconnects until {@link resume}. */
  pause() {
    this.paused = true;
    clearTimeout(this.retryTimer);
    const ws = this.ws;
    this.ws = null;
    clearInterval(this.pingTimer);
    if (ws) { ws.onclose = null; ws.close(4001, "paused"); }
    this.setState("offline");
  }

  resume() {
    this.paused = false;
    this.attempt = 0;
    this.open();
  }

  get isOpen() { return !!this.ws && this.ws.readyState === WebSocket.OPEN; }

  /** @param {Record<string, any>} message @returns {boolean} sent */
  send(message) {
    if (!this.isOpen || !this.ws) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    removeEventListener("online", this.onOnline);
    this.ws?.close(1000, "bye");
    this.ws = null;
    this.setState("idle");
  }
}

// ------------------------------------------------------------------ student document

/** Error codes after which retrying the same hello is pointless. */
const FATAL_HELLO = new Set(["unauthorized", "token_expired", "forbidden", "bad_message"]);

/**
 * A student's document: edits with bases, acks, resume, resync. Mirrors protocol/client.py.
 *
 * Events: `welcome` {welcome}, `ack` {version}, `hints` {message}, `scores` {message},
 * `state` (connection state, plus `queued` = local changes not yet acknowledged),
 * `error` {error}, `text` {text} (the server text replaced ours at first open),
 * `resync` (a replace was sent).
 */
export class DocumentSession extends EventTarget {
  /**
   * @param {{token: string, doc: string, lang?: "zh"|"en"|"auto", url?: string, flushMs?: number}} opts
   */
  constructor(opts) {
    super();
    this.token = opts.token;
    this.doc = opts.doc;
    this.lang = opts.lang || "auto";
    this.flushMs = opts.flushMs ?? 40;
    this.conn = new Connection({ url: opts.url || defaultSocketUrl(tokenClaims(opts.token).class) });
    /** names this tab; with `seq` on each operation a re-send is never applied twice */
    this.clientId = randomClientId();
    this.nextSeq = 1;
    /** @type {string|null} */
    this.session = null;
    /** @type {number|null} last version the server acknowledged */
    this.version = null;
    this.confirmedText = "";
    /** the local text: what the user sees */
    this.text = "";
    /** @type {{message: Record<string, any>, textAfter: string, seq: number}[]} sent, not acknowledged */
    this.pending = [];
    /** @type {Change[]} local changes not yet sent */
    this.draft = [];
    this.hints = new HintStore();
    /** @type {Map<number, number>} server version → local sequence number of that text */
    this.versionSeq = new Map();
    /** @type {ScoresMessage|null} */
    this.scores = null;
    /** @type {Record<string, any>|null} */
    this.welcome = null;
    this.nextId = 1;
    /** @type {Set<string|number>} */
    this.staleIds = new Set();
    this.resyncs = 0;
    this.blockedUntil = 0;
    /** an operation was refused: the next flush sends the whole text */
    this.needResync = false;
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    this.flushTimer = undefined;
    this.awaitingWelcome = false;
    this.fullHintsNext = false;
    /** @type {Record<string, any>} */
    this.limits = { max_changes_per_edit: 64 };
    this.conn.addEventListener("open", () => this.sendHello());
    this.conn.addEventListener("message", (ev) => this.receive(/** @type {CustomEvent} */ (ev).detail.message));
    this.conn.addEventListener("state", (ev) => this.emitState(/** @type {CustomEvent} */ (ev).detail));
  }

  start() { this.conn.start(); }
  stop() { this.conn.stop(); }

  /** @param {string} type @param {any} [detail] */
  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  /** @param {Record<string, any>} [detail] */
  emitState(detail = {}) {
    this.emit("state", { state: this.conn.state, queued: this.queued, ...detail });
  }

  /** Local changes not yet acknowledged by the server. */
  get queued() { return this.pending.length + this.draft.length + (this.needResync ? 1 : 0); }

  /** True when every local change is acknowledged. */
  get synced() { return this.pending.length === 0 && this.draft.length === 0 && this.text === this.confirmedText; }

  sendHello() {
    /** @type {Record<string, any>} */
    const hello = { type: "hello", token: this.token, doc: this.doc, lang: this.lang, position_encoding: "utf-16", client: this.clientId, id: this.nextId++ };
    if (this.session !== null && this.version !== null) hello.resume = { session: this.session, version: this.version };
    this.awaitingWelcome = true;
    this.conn.send(hello);
  }

  // -------------------------------------------------------------- local edits

  /**
   * The user replaced `text[start:end]` (UTF-16) by `inserted`.
   * @param {number} start @param {number} end @param {string} inserted
   */
  change(start, end, inserted) {
    if (!(0 <= start && start <= end && end <= this.text.length)) throw new RangeError(`change ${start}..${end} outside 0..${this.text.length}`);
    const change = { start, end, text: inserted };
    this.text = this.text.slice(0, start) + inserted + this.text.slice(end);
    this.hints.applyLocal(change);
    this.draft.push(change);
    this.scheduleFlush();
    this.emitState();
  }

  /** Set the whole local text (diffed into one change). @param {string} text */
  setText(text) {
    const c = diffText(this.text, text);
    if (c) this.change(c.start, c.end, c.text);
  }

  scheduleFlush() {
    if (this.flushTimer !== undefined) return;
    const wait = Math.max(this.flushMs, this.blockedUntil - Date.now());
    this.flushTimer = setTimeout(() => { this.flushTimer = undefined; this.flush(); }, wait);
  }

  /**
   * Send the queued local changes as one `edit` (if connected and welcomed). One operation
   * is in flight at a time: what is typed meanwhile is composed into the next edit, sent
   * when the ack comes (fewer writes per typing student; ShareDB and Overleaf do this).
   */
  flush() {
    if ((!this.draft.length && !this.needResync) || this.version === null || this.awaitingWelcome || !this.conn.isOpen) return;
    if (this.pending.length && !this.needResync) return; // the ack flushes the rest
    if (Date.now() < this.blockedUntil) { this.scheduleFlush(); return; }
    if (this.needResync) { this.resync(); return; }
    const max = this.limits.max_changes_per_edit || 64;
    if (this.draft.length > max) { this.resync(); return; }
    const message = { type: "edit", base: this.version + this.pending.length, changes: this.draft, seq: this.nextSeq++, id: this.nextId++ };
    this.draft = [];
    this.pending.push({ message, textAfter: this.text, seq: this.hints.seq });
    this.conn.send(message);
    this.emitState();
  }

  /** Send the whole local text (after a divergence). */
  resync() {
    this.resyncs += 1;
    this.needResync = false;
    for (const p of this.pending) if (p.message.id !== undefined) this.staleIds.add(p.message.id);
    this.pending = [];
    this.draft = [];
    const message = { type: "replace", text: this.text, seq: this.nextSeq++, id: this.nextId++ };
    this.pending.push({ message, textAfter: this.text, seq: this.hints.seq });
    this.conn.send(message);
    this.emit("resync");
    this.emitState();
  }

  /** @param {string} hintId */
  dismiss(hintId) {
    this.hints.remove(hintId);
    this.conn.send({ type: "dismiss", hint: hintId, id: this.nextId++ });
  }

  /**
   * Present a fresh token on the open socket before the current one expires
   * (`welcome.token_expires`); reconnects use it too.
   * @param {string} token
   */
  reauth(token) {
    this.token = token;
    this.conn.send({ type: "reauth", token, id: this.nextId++ });
  }

  /** Simulate a network failure (tests, demos): the socket closes and reconnects. */
  dropConnection() { this.conn.drop(); }

  // -------------------------------------------------------------- incoming

  /** @param {Message} m */
  receive(m) {
    switch (m.type) {
      case "welcome": return this.onWelcome(m);
      case "ack": return this.onAck(m);
      case "error": return this.onError(m);
      case "hints": {
        const seq = this.versionSeq.get(m.version);
        this.hints.ingest(/** @type {HintsMessage} */ (m), seq === undefined ? null : seq, this.fullHintsNext);
        this.fullHintsNext = false;
        this.emit("hints", { message: m });
        return;
      }
      case "scores":
        if (!this.scores || m.version >= this.scores.version) {
          this.scores = /** @type {ScoresMessage} */ (m);
          this.emit("scores", { message: m });
        }
        return;
      default:
        return;
    }
  }

  /** @param {Message} w */
  onWelcome(w) {
    this.awaitingWelcome = false;
    this.welcome = w;
    this.limits = w.limits || this.limits;
    const first = this.version === null;
    this.session = w.session;
    // after a welcome the server sends the full analysis once
    this.fullHintsNext = true;
    if (first) {
      this.version = w.version;
      this.confirmedText = w.text;
      if (this.text && this.text !== w.text) {
        // typed before the first welcome: the local text wins; hints wait for the replace
        this.resync();
      } else if (!this.text) {
        this.text = w.text;
        this.hints.seq += 1;
        this.hints.log = [];
        this.versionSeq.set(w.version, this.hints.seq);
        this.emit("text", { text: w.text });
      } else {
        this.versionSeq.set(w.version, this.hints.seq);
      }
    } else {
      const applied = w.version - /** @type {number} */ (this.version);
      let ok = false;
      if (applied >= 0 && applied <= this.pending.length) {
        const expected = applied === 0 ? this.confirmedText : this.pending[applied - 1].textAfter;
        if (expected === w.text) {
          for (let i = 0; i < applied; i++) {
            const done = /** @type {typeof this.pending[0]} */ (this.pending.shift());
            this.versionSeq.set(/** @type {number} */ (this.version) + i + 1, done.seq);
          }
          this.version = w.version;
          this.confirmedText = w.text;
          for (const p of this.pending) this.conn.send(p.message);
          ok = true;
        }
      }
      if (!ok) {
        // someone else changed the document, or state diverged: the local text wins
        this.version = w.version;
        this.confirmedText = w.text;
        this.resync();
      }
    }
    this.conn.markLive();
    this.emit("welcome", { welcome: w });
    this.flush();
    this.emitState();
  }

  /** @param {Message} ack */
  onAck(ack) {
    const head = this.pending[0];
    if (!head || (ack.id !== undefined && ack.id !== null && head.message.id !== ack.id)) return;
    this.pending.shift();
    this.version = ack.version;
    this.confirmedText = head.textAfter;
    this.versionSeq.set(ack.version, head.seq);
    if (this.versionSeq.size > 4000) {
      const oldest = [...this.versionSeq.keys()].sort((a, b) => a - b).slice(0, 1000);
      for (const k of oldest) this.versionSeq.delete(k);
    }
    this.emit("ack", { version: ack.version });
    if (this.draft.length) this.flush();
    this.emitState();
  }

  /** @param {Message} err */
  onError(err) {
    if (this.awaitingWelcome && FATAL_HELLO.has(err.code)) {
      this.conn.fail(err);
      this.emit("error", { error: err, fatal: true });
      return;
    }
    if (this.awaitingWelcome) {
      // hello refused for a passing reason (rate, storage): try again on a fresh socket
      this.conn.drop();
      this.emit("error", { error: err, fatal: false });
      return;
    }
    const ours = err.id !== undefined && err.id !== null && this.pending.some((p) => p.message.id === err.id);
    if (err.code === "version_mismatch") {
      if (err.id !== undefined && this.staleIds.has(err.id)) { this.staleIds.delete(err.id); return; }
      if (typeof err.version === "number") this.version = err.version;
      this.resync();
      return;
    }
    if (err.id !== undefined && this.staleIds.has(err.id)) { this.staleIds.delete(err.id); return; }
    if (ours && ["rate_limited", "storage", "internal", "bad_offsets", "overloaded"].includes(err.code)) {
      // the operation was not applied (nor anything sent after it): send the whole text
      // again once the advised pause is over
      this.blockedUntil = Date.now() + (err.retry_after_ms || 200);
      for (const p of this.pending) if (p.message.id !== undefined) this.staleIds.add(p.message.id);
      this.pending = [];
      this.needResync = true;
      this.scheduleFlush();
    }
    this.emit("error", { error: err, fatal: false });
  }
}

// ------------------------------------------------------------------ teacher

/**
 * The live state of one student document as a teacher sees it.
 * @typedef {{doc: string, student: string, version: number, text: string, lang: string,
 *   presence: string, hints: HintStore, scores: ScoresMessage|null, lastActivity: number,
 *   timeline: {words: number, overall: number|null}[]}} DocState
 */

/**
 * A teacher's view of a class. Events: `welcome`, `doc` {doc: DocState, reason}, `state`, `error`.
 */
export class ClassObserver extends EventTarget {
  /** @param {{token: string, classId?: string, doc?: string, url?: string}} opts */
  constructor(opts) {
    super();
    this.token = opts.token;
    this.classId = opts.classId || tokenClaims(opts.token).class || "";
    this.onlyDoc = opts.doc || null;
    this.conn = new Connection({ url: opts.url || defaultSocketUrl(this.classId) });
    /** @type {Map<string, DocState>} */
    this.docs = new Map();
    this.awaitingWelcome = false;
    this.nextId = 1;
    this.conn.addEventListener("open", () => {
      this.awaitingWelcome = true;
      this.conn.send({ type: "hello", token: this.token, position_encoding: "utf-16", id: this.nextId++ });
    });
    this.conn.addEventListener("message", (ev) => this.receive(/** @type {CustomEvent} */ (ev).detail.message));
    this.conn.addEventListener("state", (ev) => this.emit("state", /** @type {CustomEvent} */ (ev).detail));
  }

  start() { this.conn.start(); }
  stop() { this.conn.stop(); }

  /** @param {string} type @param {any} [detail] */
  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  /** @param {DocState} doc @param {string} reason */
  changed(doc, reason) { this.emit("doc", { doc, reason }); }

  /** @param {Message} m */
  receive(m) {
    if (m.type === "welcome") {
      this.awaitingWelcome = false;
      this.conn.markLive();
      if (!this.classId) this.classId = m.class;
      this.emit("welcome", { welcome: m });
      this.conn.send(this.onlyDoc ? { type: "observe", doc: this.onlyDoc, id: this.nextId++ } : { type: "observe", class: this.classId, id: this.nextId++ });
      return;
    }
    if (m.type === "error") {
      if (this.awaitingWelcome && FATAL_HELLO.has(m.code)) this.conn.fail(m);
      this.emit("error", { error: m });
      return;
    }
    if (m.type === "snapshot") {
      const prev = this.docs.get(m.doc);
      /** @type {DocState} */
      const doc = {
        doc: m.doc, student: m.student, version: m.version, text: m.text, lang: m.lang || "zh",
        presence: m.presence || "offline", hints: new HintStore(), scores: null,
        lastActivity: prev ? prev.lastActivity : m.presence === "online" ? Date.now() : 0,
        timeline: prev ? prev.timeline : [],
      };
      doc.hints.seq = m.version;
      doc.hints.ingest({ type: "hints", version: m.version, sentences: m.hints || [] }, m.version, true);
      this.docs.set(m.doc, doc);
      if (m.scores) this.takeScores(doc, m.scores);
      this.changed(doc, "snapshot");
      return;
    }
    const doc = m.doc ? this.docs.get(m.doc) : undefined;
    if (!doc) return;
    switch (m.type) {
      case "update": {
        if (m.version <= doc.version) return;
        try {
          for (const c of m.changes) {
            doc.text = applyChanges(doc.text, [c]);
            doc.hints.applyLocal(c, m.version);
          }
        } catch {
          // out of step: ask for a fresh snapshot
          this.conn.send({ type: "observe", doc: doc.doc, id: this.nextId++ });
          return;
        }
        doc.version = m.version;
        doc.lastActivity = Date.now();
        if (doc.presence !== "online") doc.presence = "online";
        this.changed(doc, "update");
        return;
      }
      case "hints":
        doc.hints.ingest(/** @type {HintsMessage} */ (m), m.version <= doc.hints.seq ? m.version : null);
        this.changed(doc, "hints");
        return;
      case "scores":
        this.takeScores(doc, m);
        this.changed(doc, "scores");
        return;
      case "presence":
        doc.presence = m.state;
        doc.lastActivity = doc.lastActivity || Date.now();
        this.changed(doc, "presence");
        return;
      default:
        return;
    }
  }

  /** @param {DocState} doc @param {Message} s */
  takeScores(doc, s) {
    if (doc.scores && s.version < doc.scores.version) return;
    doc.scores = /** @type {ScoresMessage} */ (s);
    pushTimeline(doc.timeline, /** @type {ScoresMessage} */ (s));
  }
}

/**
 * Append a point (words, overall score) to a score timeline, keeping it short.
 * @param {{words: number, overall: number|null}[]} timeline
 * @param {ScoresMessage} s
 */
export function pushTimeline(timeline, s) {
  const words = s.stats.words ?? s.stats.chars;
  const overall = s.overall ? s.overall.score : null;
  const last = timeline[timeline.length - 1];
  if (last && last.words === words) { last.overall = overall; return; }
  timeline.push({ words, overall });
  if (timeline.length > 60) timeline.splice(0, timeline.length - 60);
}
