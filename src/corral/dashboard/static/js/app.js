// app.js: the page's entry point (loaded by index.html as a module).
//
// Logs in (token or kubeconfig -> POST /ui/login, token kept in sessionStorage), shows the
// user from /ui/info, builds the nav from the views' `title`/`route`, routes on
// location.hash (the view whose `route` is the longest prefix wins; the rest of the path
// becomes ctx.params), and keeps #live in step with the watches. Views are imported
// statically: the page is small and a missing view should fail loudly, not lazily.

import * as api from "./api.js";
import * as ui from "./ui.js";
import * as nodes from "./views/nodes.js";
import * as pool from "./views/pool.js";
import * as workloads from "./views/workloads.js";
import * as pods from "./views/pods.js";
import * as events from "./views/events.js";
import * as frameworks from "./views/frameworks.js";
import * as chronos from "./views/chronos.js";

const VIEWS = [nodes, pool, workloads, pods, events, frameworks, chronos];
const DEFAULT = "#/nodes";
const $ = (id) => document.getElementById(id);

let current = null; // {view, key, unmount}
let info = { user: "", faces: {} };
let started = false;

function match(hash) {
  const path = hash.split("?")[0];
  let best = null;
  for (const v of VIEWS) {
    if (path === v.route || path.startsWith(`${v.route}/`)) {
      if (!best || v.route.length > best.route.length) best = v;
    }
  }
  if (!best) return null;
  const rest = path.slice(best.route.length).split("/").filter(Boolean);
  const params = rest.map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  const query = new URLSearchParams(hash.includes("?") ? hash.slice(hash.indexOf("?") + 1) : "");
  return { view: best, params, query, key: path };
}

function unmount() {
  if (current && current.unmount) {
    try {
      current.unmount();
    } catch (e) {
      console.error("unmount failed", e);
    }
  }
  current = null;
}

function route(focus = true) {
  if (!started) return;
  const hash = location.hash;
  if (!hash.startsWith("#/")) {
    if (!current) location.replace(DEFAULT);
    return; // an in-page anchor (the skip link): not a route
  }
  const m = match(hash);
  if (!m) {
    location.replace(DEFAULT);
    return;
  }
  if (current && current.key === m.key) return;
  unmount();
  const root = $("view");
  root.replaceChildren();
  for (const a of $("nav").querySelectorAll("a")) {
    if (a.getAttribute("href") === m.view.route) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${m.view.title} - Corral`;
  const ctx = { api, ui, params: m.params, query: m.query, info };
  let off = null;
  try {
    off = m.view.mount(root, ctx);
  } catch (e) {
    console.error(e);
    root.replaceChildren(ui.h("p", { class: "error", role: "alert" }, `This view failed: ${ui.errText(e)}`));
  }
  current = { view: m.view, key: m.key, unmount: typeof off === "function" ? off : null };
  if (focus) $("main").focus({ preventScroll: false });
}

function buildNav() {
  const nav = $("nav");
  nav.replaceChildren(
    ui.h(
      "ul",
      {},
      VIEWS.map((v) => ui.h("li", {}, ui.h("a", { href: v.route }, v.title))),
    ),
  );
}

function showLogin(message) {
  started = false;
  unmount();
  $("view").replaceChildren();
  $("nav").hidden = true;
  $("status").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  document.title = "Log in - Corral";
  $("login-token").focus();
}

async function start() {
  try {
    info = await api.info();
  } catch (e) {
    if (e.status === 401) {
      showLogin("Your session has ended: please log in again.");
      return;
    }
    info = { user: "", faces: {} }; // /ui/info unavailable: show what the API allows
  }
  $("login").hidden = true;
  $("nav").hidden = false;
  $("status").hidden = false;
  $("user").textContent = info.user ? `Signed in as ${info.user}` : "";
  started = true;
  if (!location.hash.startsWith("#/")) location.replace(DEFAULT);
  route(false);
}

async function submitLogin(ev) {
  ev.preventDefault();
  const tokenText = $("login-token").value.trim();
  const kubeconfig = $("login-kubeconfig").value;
  const err = $("login-error");
  if (!tokenText && !kubeconfig.trim()) {
    err.textContent = "Enter a token or a kubeconfig.";
    return;
  }
  $("login-submit").disabled = true;
  err.textContent = "";
  try {
    await api.login(tokenText ? { token: tokenText } : { kubeconfig });
    $("login-token").value = "";
    $("login-kubeconfig").value = "";
    await start();
  } catch (e) {
    err.textContent = `Login failed: ${e.message || e}`;
  } finally {
    $("login-submit").disabled = false;
  }
}

function init() {
  buildNav();
  api.onUnauthorized(() => showLogin("Your session has ended or was refused: please log in again."));
  api.onWatchStatus((s) => {
    $("live").textContent = s;
    $("live").className = `live is-${s}`;
  });
  $("login-form").addEventListener("submit", submitLogin);
  $("login-file").addEventListener("change", async (ev) => {
    const f = ev.target.files && ev.target.files[0];
    if (f) $("login-kubeconfig").value = await f.text();
  });
  $("logout").addEventListener("click", () => {
    api.setToken("");
    api.closeAll();
    showLogin("You are logged out.");
  });
  $("skip").addEventListener("click", (ev) => {
    ev.preventDefault();
    $("main").focus();
  });
  window.addEventListener("hashchange", () => route(true));
  if (api.token()) start();
  else showLogin("");
}

init();
