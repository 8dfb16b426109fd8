// @ts-check
/**
 * Where the token comes from: `?token=` in the URL, or (dev mode only) a small
 * form that asks the server's dev-only `POST /dev/token {user, role, class}`.
 */
import { t, translate } from "./i18n.js";

/**
 * @param {"student"|"teacher"} role
 * @returns {Promise<{token: string, doc: string|null}>}
 */
export function getToken(role) {
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  if (token) return Promise.resolve({ token, doc: params.get("doc") });
  return showForm(role);
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
        const url = new URL(location.href);
        url.searchParams.set("token", body.token);
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
