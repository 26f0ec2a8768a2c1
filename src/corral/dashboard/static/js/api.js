// api.js: every byte the dashboard exchanges with the API server goes through here.
//
// Callers: app.js (login, info, the #live indicator) and every view in js/views/
// (getJSON/send for one-off reads and actions, live() for watched lists, face() for the
// Mesos / Marathon / Chronos APIs proxied under /ui/faces/, streamText() for logs).
// Shaped as a handful of functions over fetch() so views never build headers or parse
// watch streams themselves; live lists are shared and ref-counted so two views (or two
// parts of one view) watching /api/v1/pods hold one watch between them, and every watch
// of the page travels in one multiplexed stream (/ui/watch: see "live lists" below).

const TOKEN_KEY = "corral.token";

/** An HTTP failure, with the fields of the Kubernetes Status body when there is one. */
export class ApiError extends Error {
  constructor(status, reason, message) {
    super(message || reason || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.reason = reason || "";
  }
}

// ---- the credential -------------------------------------------------------------------

export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

let unauthorizedHandler = null;

/** app.js registers the function that shows the login form again after any 401. */
export function onUnauthorized(fn) {
  unauthorizedHandler = fn;
}

function unauthorized() {
  setToken("");
  closeAll();
  if (unauthorizedHandler) unauthorizedHandler();
}

function headers(extra) {
  const h = { Accept: "application/json", ...(extra || {}) };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

async function failure(resp) {
  let reason = resp.statusText;
  let message = "";
  try {
    const text = await resp.text();
    try {
      const body = JSON.parse(text);
      reason = body.reason || reason;
      message = body.message || body.error || "";
    } catch {
      message = text.slice(0, 500);
    }
  } catch {
    /* the body could not be read: the status is all there is */
  }
  if (resp.status === 401) unauthorized();
  return new ApiError(resp.status, reason, message || `${resp.status} ${reason}`);
}

async function parse(resp) {
  if (!resp.ok) throw await failure(resp);
  if (resp.status === 204) return {};
  const text = await resp.text();
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch {
    return { text };
  }
}

// ---- one-off requests -----------------------------------------------------------------

/** GET a JSON document (path starts with "/"). */
export async function getJSON(path, opts = {}) {
  const resp = await fetch(path, { headers: headers(), signal: opts.signal });
  return parse(resp);
}

/** Any method with an optional body (an object is sent as JSON, a string as is). */
export async function send(method, path, body, contentType = "application/json") {
  const init = { method, headers: headers() };
  if (body !== undefined && body !== null) {
    init.headers["Content-Type"] = contentType;
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  return parse(await fetch(path, init));
}

/** `/ui/info`: the user, which faces run beside the server, the version. */
export function info() {
  return getJSON("/ui/info");
}

/** POST /ui/login with {token} or {kubeconfig}: answers {token, user, groups}. */
export async function login(credential) {
  const resp = await fetch("/ui/login", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(credential),
  });
  if (!resp.ok) {
    const err = await failure(resp);
    throw err;
  }
  const body = await resp.json();
  setToken(body.token);
  return body;
}

// ---- the faces: Mesos master, Marathon, Chronos through /ui/faces/ ---------------------

function facePath(name, path) {
  return `/ui/faces/${name}/${String(path).replace(/^\/+/, "")}`;
}

/** JSON from a face, or null when that face is not running beside the server (503). */
export async function face(name, path, opts = {}) {
  const resp = await fetch(facePath(name, path), {
    method: opts.method || "GET",
    headers: headers(opts.body !== undefined ? { "Content-Type": "application/json" } : {}),
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
    signal: opts.signal,
  });
  if (resp.status === 503) return null;
  return parse(resp);
}

/** A write to a face (POST/PUT/DELETE); null when the face is not running. */
export function faceSend(name, method, path, body) {
  return face(name, path, { method, body });
}

// ---- streams --------------------------------------------------------------------------

/**
 * Read a streamed text answer (e.g. `.../pods/NAME/log?follow=true`), calling onText with
 * each decoded piece; resolves when the stream ends or `signal` aborts it.
 */
export async function streamText(path, onText, signal) {
  let resp;
  try {
    resp = await fetch(path, { headers: headers({ Accept: "*/*" }), signal });
  } catch (e) {
    if (signal && signal.aborted) return;
    throw e;
  }
  if (!resp.ok) throw await failure(resp);
  const reader = resp.body.getReader();
  const decoder = new TextDecoder("utf-8");
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const text = decoder.decode(value, { stream: true });
      if (text) onText(text);
    }
    const rest = decoder.decode();
    if (rest) onText(rest);
  } catch (e) {
    if (signal && signal.aborted) return;
    throw e;
  }
}

// ---- live lists: list, then watch through the one multiplexed stream -------------------
//
// A browser opens at most 6 HTTP/1.1 connections to one origin and every watch would hold
// one, so the page's watches share ONE stream: `GET /ui/watch?w=<watch path>&w=...`
// (dashboard/watch_mux.py) opens each watch against the API server with this page's token
// and answers one line per upstream line, `<index>\t<the watch's JSON line>`, and
// `<index>\tEND <status>\t<body>` when one watch ends (the others go on); a blank line is
// its 30 s heartbeat.
//
//   live(path) -> LiveList.load(): list -----> mux.add(lv) -- 50 ms debounce --> reopen:
//        ^          | fails: back-off            the stream(s) for every member, each
//        |          v                            watch from its list's resourceVersion
//        +---- relist(): 410 (END 410 or an ERROR event), another END status (back-off)
//
// The set of members changes when a view mounts or unmounts (a list loaded or released):
// the stream is then reopened with each list's last resourceVersion, so no list is read
// again. A clean END 200 (the server closed that watch) reopens the stream too; a stream
// that fails or goes quiet past QUIET_MS (no heartbeat) is reopened with back-off.
// Bookmarks move a list's resourceVersion forward.

const lists = new Map(); // path -> LiveList
const MUX_PATH = "/ui/watch";
const MUX_MAX = 16; // the server's limit of watches per stream: past it, a second stream
const DEBOUNCE_MS = 50;
const QUIET_MS = 75000; // more than two heartbeats missed: the stream is dead
const BACKOFF_MIN = 500;
const BACKOFF_MAX = 15000;
const statusListeners = new Set();
let statusScheduled = false;

/** "live" when the stream is connected and every open list loaded and in it. */
export function watchStatus() {
  for (const lv of lists.values()) if (!lv.connected) return "connecting";
  return "live";
}

/** fn(status) after every change of watchStatus(); returns an unsubscribe function. */
export function onWatchStatus(fn) {
  statusListeners.add(fn);
  fn(watchStatus());
  return () => statusListeners.delete(fn);
}

function statusChanged() {
  if (statusScheduled) return;
  statusScheduled = true;
  queueMicrotask(() => {
    statusScheduled = false;
    const s = watchStatus();
    for (const fn of statusListeners) fn(s);
  });
}

function keyOf(obj) {
  const m = obj.metadata || {};
  return m.namespace ? `${m.namespace}/${m.name}` : m.name;
}

function withQuery(path, query) {
  return path + (path.includes("?") ? "&" : "?") + query;
}

function nextFrame(fn) {
  // requestAnimationFrame does not run in a hidden tab: a timer makes sure the update lands
  let done = false;
  const run = () => {
    if (!done) {
      done = true;
      fn();
    }
  };
  requestAnimationFrame(run);
  setTimeout(run, 250);
}

/** The ApiError an END line's Status body (or a watch ERROR event's object) describes. */
function statusError(code, body) {
  let doc = {};
  try {
    doc = typeof body === "string" ? JSON.parse(body) : body || {};
  } catch {
    doc = { message: String(body).slice(0, 500) };
  }
  return new ApiError(doc.code || code || 500, doc.reason, doc.message);
}

/**
 * A list kept current by a watch. `items` maps "ns/name" (cluster-scoped: "name") to the
 * object; subscribers are called once per animation frame after changes.
 */
export class LiveList {
  constructor(path) {
    this.path = path;
    this.items = new Map();
    this.error = null;
    this.loaded = false; // true after the first list
    this.connected = false; // its watch runs in a connected stream
    this.refs = 0;
    this.resourceVersion = "";
    this.subs = new Set();
    this.closed = false;
    this.abort = null; // the list request in flight
    this.listing = false;
    this.retry = null; // the timer of the next load()
    this.backoff = BACKOFF_MIN;
    this.stream = null; // the MuxStream carrying its watch, and its index there
    this.index = -1;
    this.scheduled = false;
    this.ready = new Promise((resolve) => (this.resolveReady = resolve));
    this.load();
  }

  subscribe(fn) {
    this.subs.add(fn);
    return () => this.subs.delete(fn);
  }

  release() {
    this.refs -= 1;
    if (this.refs <= 0) this.close();
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.subs.clear();
    clearTimeout(this.retry);
    if (this.abort) this.abort.abort();
    mux.remove(this);
    if (lists.get(this.path) === this) lists.delete(this.path);
    statusChanged();
  }

  setConnected(c) {
    if (this.connected !== c) {
      this.connected = c;
      statusChanged();
    }
  }

  /** Leave the stream it is in (if any): its lines are not for this list any more. */
  detach() {
    this.stream = null;
    this.index = -1;
    this.setConnected(false);
  }

  changed() {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    nextFrame(() => {
      this.scheduled = false;
      if (this.closed) return;
      for (const fn of [...this.subs]) {
        try {
          fn(this);
        } catch (e) {
          console.error("live list subscriber failed", e);
        }
      }
    });
  }

  nextBackoff() {
    const b = this.backoff;
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX);
    return b;
  }

  /** List (again) and join the stream; a failed list is tried again with back-off. */
  async load() {
    if (this.listing || this.closed) return;
    this.listing = true;
    mux.remove(this);
    try {
      await this.list();
      if (!this.closed) mux.add(this);
    } catch (e) {
      if (this.closed) return;
      if (e instanceof ApiError && e.status === 401) return; // back to the login form
      this.error = e;
      this.changed();
      this.relist(this.nextBackoff());
    } finally {
      this.listing = false;
    }
  }

  /** Leave the stream and list again after `delay` ms (410, or a watch that failed). */
  relist(delay) {
    mux.remove(this);
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.load(), delay);
  }

  async list() {
    this.abort = new AbortController();
    const body = await getJSON(this.path, { signal: this.abort.signal });
    const items = new Map();
    const kind = (body.kind || "").replace(/List$/, "");
    for (const obj of body.items || []) {
      if (!obj.kind && kind) obj.kind = kind;
      items.set(keyOf(obj), obj);
    }
    const rv = (body.metadata || {}).resourceVersion || "";
    const same = this.loaded && !this.error && rv && rv === this.resourceVersion;
    this.items = items;
    this.resourceVersion = rv;
    this.error = null;
    this.loaded = true;
    this.resolveReady(this);
    if (!same) this.changed();
  }

  /** The watch path the stream opens for this list, from its last resourceVersion. */
  watchPath() {
    const rv = encodeURIComponent(this.resourceVersion);
    return withQuery(this.path, `watch=1&allowWatchBookmarks=true&resourceVersion=${rv}`);
  }

  /** Apply one watch event from the stream. */
  event(ev) {
    const obj = ev.object || {};
    const rv = (obj.metadata || {}).resourceVersion;
    this.backoff = BACKOFF_MIN; // the watch works
    switch (ev.type) {
      case "ADDED":
      case "MODIFIED":
        this.items.set(keyOf(obj), obj);
        break;
      case "DELETED":
        this.items.delete(keyOf(obj));
        break;
      case "BOOKMARK":
        if (rv) this.resourceVersion = rv;
        return;
      case "ERROR":
        if (obj.code === 410) {
          this.relist(0); // the version is gone: read the list again
        } else {
          this.error = statusError(obj.code, obj);
          this.changed();
          this.relist(this.nextBackoff());
        }
        return;
      default:
        return;
    }
    if (rv) this.resourceVersion = rv;
    this.changed();
  }

  /** Its watch ended in the stream `s` with HTTP `code` (and a Status body when not 200). */
  ended(s, code, body) {
    if (code === 200) {
      // the server closed that watch: the stream is reopened, from the last version
      this.detach();
      mux.schedule(Date.now() - s.opened < 1000 ? this.nextBackoff() : DEBOUNCE_MS);
      return;
    }
    if (code === 410) {
      this.relist(0);
      return;
    }
    if (code === 401) {
      unauthorized();
      return;
    }
    this.error = statusError(code, body);
    this.changed();
    this.relist(this.nextBackoff());
  }
}

/**
 * One `/ui/watch` answer carrying the watches of `members` (index i: members[i]). It is
 * never changed: a new set of members is a new stream.
 */
class MuxStream {
  constructor(members) {
    this.lists = members;
    this.controller = new AbortController();
    this.closed = false;
    this.opened = 0;
    this.quiet = null;
    members.forEach((lv, i) => {
      lv.stream = this;
      lv.index = i;
    });
    this.run();
  }

  /** Stop reading (the stream is replaced or the page logs out). */
  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.quiet);
    this.controller.abort();
    for (const lv of this.lists) if (lv.stream === this) lv.detach();
  }

  attached() {
    return this.lists.filter((lv) => lv.stream === this && !lv.closed);
  }

  url() {
    const w = this.lists.map((lv) => `w=${encodeURIComponent(lv.watchPath())}`);
    return `${MUX_PATH}?${w.join("&")}`;
  }

  watchdog() {
    clearTimeout(this.quiet);
    this.quiet = setTimeout(() => this.controller.abort(), QUIET_MS);
  }

  async run() {
    let failed = false;
    try {
      const resp = await fetch(this.url(), {
        headers: headers({ Accept: "text/plain" }),
        signal: this.controller.signal,
      });
      if (!resp.ok) throw await failure(resp); // a 401 shows the login form
      if (this.closed) return;
      this.opened = Date.now();
      this.watchdog();
      for (const lv of this.attached()) {
        lv.setConnected(true);
        if (lv.error) {
          lv.error = null; // what the last stream's failure left
          lv.changed();
        }
      }
      const reader = resp.body.getReader();
      const decoder = new TextDecoder("utf-8");
      let buf = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done || this.closed) break;
        this.watchdog();
        buf += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line) this.line(line);
        }
      }
    } catch (e) {
      if (this.closed) return;
      failed = true;
      if (e instanceof ApiError && e.status === 401) return;
      const err = e instanceof ApiError ? e : new ApiError(0, "", `the watch stream failed: ${e.message || e}`);
      for (const lv of this.attached()) {
        lv.error = err;
        lv.changed();
      }
    } finally {
      if (!this.closed) {
        this.close();
        mux.ended(this, failed);
      }
    }
  }

  /** One line of the answer: `<index>\t<watch event JSON>` or `<index>\tEND <code>\t<body>`. */
  line(text) {
    const tab = text.indexOf("\t");
    const lv = this.lists[Number(text.slice(0, tab))];
    if (tab < 0 || !lv || lv.stream !== this || lv.closed) return;
    const rest = text.slice(tab + 1);
    if (rest.startsWith("END ")) {
      const sep = rest.indexOf("\t");
      const code = Number(rest.slice(4, sep < 0 ? undefined : sep));
      lv.ended(this, code, sep < 0 ? "" : rest.slice(sep + 1));
      return;
    }
    let ev;
    try {
      ev = JSON.parse(rest);
    } catch (e) {
      console.error("unreadable watch line", e);
      return;
    }
    lv.event(ev);
  }
}

/** The page's one stream (or one per MUX_MAX lists) of the loaded lists' watches. */
const mux = {
  members: new Set(),
  streams: [],
  timer: null,
  backoff: BACKOFF_MIN,

  add(lv) {
    if (lv.closed || this.members.has(lv)) return;
    this.members.add(lv);
    this.schedule(DEBOUNCE_MS);
  },

  remove(lv) {
    if (lv.stream) lv.detach();
    if (this.members.delete(lv)) this.schedule(DEBOUNCE_MS);
  },

  /** Reopen the streams in `ms` (a later call replaces an earlier one's delay). */
  schedule(ms) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.reopen();
    }, ms);
  },

  reopen() {
    for (const s of this.streams) s.close();
    const members = [...this.members].filter((lv) => !lv.closed);
    this.streams = [];
    for (let i = 0; i < members.length; i += MUX_MAX) {
      this.streams.push(new MuxStream(members.slice(i, i + MUX_MAX)));
    }
  },

  /** Stream `s` ended by itself: every watch in it said END, or it failed. */
  ended(s, failed) {
    this.streams = this.streams.filter((x) => x !== s);
    if (!this.members.size) return;
    const healthy = !failed && s.opened && Date.now() - s.opened > 5000;
    if (healthy) this.backoff = BACKOFF_MIN;
    const delay = healthy ? DEBOUNCE_MS : this.backoff;
    if (!healthy) this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX);
    this.schedule(delay);
  },

  closeAll() {
    clearTimeout(this.timer);
    this.timer = null;
    for (const s of this.streams) s.close();
    this.streams = [];
    this.members.clear();
  },
};

/** The shared LiveList for a list path; call release() once per live() call. */
export function live(path) {
  let lv = lists.get(path);
  if (!lv || lv.closed) {
    lv = new LiveList(path);
    lists.set(path, lv);
    statusChanged();
  }
  lv.refs += 1;
  return lv;
}

/** Close every watch (logout, 401). */
export function closeAll() {
  for (const lv of [...lists.values()]) lv.close();
  mux.closeAll();
}
