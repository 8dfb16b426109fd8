// @ts-check
/**
 * Where the token comes from: `?token=` in the URL (moved to sessionStorage at load),
 * sessionStorage (later loads of the same tab), or (dev mode only) a small form that
 * asks the server's dev-only `POST /dev/token {user, role, class}`.
 */
import { t, translate } from "./i18n.js";

const TOKEN_KEY = "inkstone.token";

/**
 * The token for this tab. A `?token=` in the URL is moved into sessionStorage and
 * removed from the address bar at once (`history.replaceState`), so it never stays
 * in the browser history, in a bookmark, or in a link; later loads of the same tab
 * (a reload, the student page sending a teacher on to /teacher) read sessionStorage.
 * @param {"student"|"teacher"} role
 * @returns {Promise<{token: string, doc: string|null}>}
 */
export function getToken(role) {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get("token");
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    url.searchParams.delete("token");
    history.replaceState(history.state, "", url);
  }
  const token = fromUrl || sessionStorage.getItem(TOKEN_KEY);
  if (token) return Promise.resolve({ token, doc: url.searchParams.get("doc") });
  return showForm(role);
}

/** Drop a token the server refused (a reload then asks again instead of failing again). */
export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/**
 * @param {"student"|"teacher"} role
 * @returns {Promise<{token: string, doc: string|null}>}
 */
function showForm(role) {
  const dialog = /** @type {HTMLElement} */ (document.getElementById("login"));
  const form = /** @type {HTMLFormElement} */ (dialog.querySelector("form"));
  const err = /** @type {HTMLElement} */ (dialog.querySelector(".login-error"));
  dialog.hidden = false;
  translate(dialog);
  const first = /** @type {HTMLInputElement|null} */ (form.querySelector("input"));
  first?.focus();
  return new Promise((resolve) => {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const data = new FormData(form);
      const user = String(data.get("user") || "").trim();
      const cls = String(data.get("class") || "").trim();
      const doc = String(data.get("doc") || "").trim() || null;
      err.textContent = "";
      try {
        const resp = await fetch("/dev/token", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ user, role, class: cls }),
        });
        if (!resp.ok) throw new Error(resp.status === 404 ? "not in dev mode (404)" : `HTTP ${resp.status}`);
        const body = await resp.json();
        sessionStorage.setItem(TOKEN_KEY, body.token);
        const url = new URL(location.href);
        if (doc) url.searchParams.set("doc", doc);
        history.replaceState(null, "", url);
        dialog.hidden = true;
        resolve({ token: body.token, doc });
      } catch (e) {
        err.textContent = t("loginFailed", { e: e instanceof Error ? e.message : String(e) });
      }
    });
  });
}
