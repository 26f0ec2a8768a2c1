// ui.js: the DOM helpers every view builds with.
//
// Callers: app.js and every module in js/views/. Views build their DOM with h() (text is
// always a text node, never innerHTML, so object names and messages cannot inject markup),
// show numbers with bar()/fmtCPU()/fmtBytes()/age(), ask before acting with confirm()/ask()/
// askScale() (a modal <dialog>), link objects with objLink(), and keep live tables calm with
// patchChildren() (unchanged rows keep their nodes, so focus and selection survive updates).

const SVG_NS = "http://www.w3.org/2000/svg";

function append(el, child) {
  if (child === null || child === undefined || child === false || child === true) return;
  if (Array.isArray(child)) {
    for (const c of child) append(el, c);
  } else if (child instanceof Node) {
    el.appendChild(child);
  } else {
    el.appendChild(document.createTextNode(String(child)));
  }
}

function setAttrs(el, attrs, svg) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (k === "class" || k === "className") {
      el.setAttribute("class", Array.isArray(v) ? v.filter(Boolean).join(" ") : v);
    } else if (k === "style" && typeof v === "object") {
      for (const [p, pv] of Object.entries(v)) el.style.setProperty(p, pv);
    } else if (!svg && (k === "value" || k === "checked" || k === "selected")) {
      el[k] = v;
      if (k !== "value") el.setAttribute(k, "");
    } else if (k === "dataset" && typeof v === "object") {
      for (const [p, pv] of Object.entries(v)) el.dataset[p] = pv;
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
}

/**
 * Build an element: h("a", {href: "#/nodes", class: "x", "data-kind": "Node",
 * onClick: fn}, "text", child, [more]). Text children become text nodes. h("svg", ...)
 * and tags written "svg:g", "svg:path" ... are made in the SVG namespace (see also s()).
 */
export function h(tag, attrs, ...children) {
  if (tag === "svg" || tag.startsWith("svg:")) {
    return s(tag === "svg" ? "svg" : tag.slice(4), attrs, ...children);
  }
  const el = document.createElement(tag);
  setAttrs(el, attrs, false);
  append(el, children);
  return el;
}

/** An SVG element: s("g", {"data-kind": "ChronosJob"}, s("rect", {...}), s("text", {}, "a")). */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs, true);
  append(el, children);
  return el;
}

/** Remove every child of el and append the new ones. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/**
 * Replace parent's children by `children`, keeping an existing node when one with the same
 * data-key has identical markup (so a focused link in an unchanged row stays focused).
 */
export function patchChildren(parent, children) {
  const old = new Map();
  for (const c of parent.children) if (c.dataset && c.dataset.key) old.set(c.dataset.key, c);
  const next = [];
  for (const c of children.flat()) {
    if (!c) continue;
    const k = c.dataset && c.dataset.key;
    const prev = k ? old.get(k) : null;
    if (prev && prev.isEqualNode(c)) {
      old.delete(k);
      next.push(prev);
    } else {
      next.push(c);
    }
  }
  // move only what changed position, so kept nodes are not detached (which blurs them)
  let cur = parent.firstChild;
  for (const n of next) {
    if (n === cur) {
      cur = cur.nextSibling;
    } else {
      parent.insertBefore(n, cur);
    }
  }
  while (cur) {
    const nx = cur.nextSibling;
    parent.removeChild(cur);
    cur = nx;
  }
}

// ---- quantities ------------------------------------------------------------------------

const SUFFIX = {
  n: 1e-9, u: 1e-6, m: 1e-3, "": 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** A Kubernetes quantity ("500m", "1Gi", "2", "1e3") as a number (cores or bytes). */
export function parseQuantity(q) {
  if (q === null || q === undefined || q === "") return 0;
  if (typeof q === "number") return q;
  const m = /^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$/.exec(String(q).trim());
  if (!m) return NaN;
  const f = SUFFIX[m[2]];
  return f === undefined ? NaN : parseFloat(m[1]) * f;
}

function trim(n, digits) {
  return String(parseFloat(n.toFixed(digits)));
}

/** Cores for people: "250m" below one core, "1.5" above. */
export function fmtCPU(cores) {
  if (cores === null || cores === undefined || Number.isNaN(cores)) return "n/a";
  if (cores !== 0 && Math.abs(cores) < 1) return `${Math.round(cores * 1000)}m`;
  return trim(cores, 2);
}

/** Bytes for people: "512Mi", "1.5Gi". */
export function fmtBytes(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "n/a";
  const units = ["", "Ki", "Mi", "Gi", "Ti", "Pi"];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${trim(v, v < 10 ? 2 : 1)}${units[i]}`;
}

/** kubectl-style age of an RFC 3339 timestamp: "42s", "5m", "3h", "2d". */
export function age(ts) {
  if (!ts) return "";
  const t = typeof ts === "number" ? ts : Date.parse(ts);
  if (Number.isNaN(t)) return "";
  let sec = Math.max(0, Math.floor((Date.now() - t) / 1000));
  if (sec < 120) return `${sec}s`;
  const min = Math.floor(sec / 60);
  if (min < 120) return `${min}m`;
  const hr = Math.floor(min / 60);
  if (hr < 48) return `${hr}h`;
  sec = Math.floor(hr / 24);
  return `${sec}d`;
}

function fmtValue(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return "n/a";
  if (unit === "cores" || unit === "cpu") return fmtCPU(v);
  if (unit === "bytes") return fmtBytes(v);
  return `${trim(v, 2)}${unit ? ` ${unit}` : ""}`;
}

/**
 * A labelled horizontal bar: parts [{value, cls, title}] stacked left to right over `total`
 * (lanes: true draws each part on its own lane, for measures that overlap such as requested
 * and used; showLabel: false keeps the label for screen readers only). The numbers are written next to it and in the aria-label, and part classes
 * carry CSS patterns, so colour is never the only carrier. A part with value null shows "n/a".
 */
export function bar({ label, parts = [], total, unit = "", lanes = false, showLabel = true }) {
  const tot = Number(total) || 0;
  const pct = (v) => (tot > 0 && v > 0 ? Math.min(100, (v / tot) * 100) : 0);
  const words = parts.map((p) => `${p.title || p.cls}: ${fmtValue(p.value, unit)}`);
  const text = `${words.join(", ")} of ${fmtValue(tot, unit)}`;
  const aria = `${label ? `${label}: ` : ""}${text}`;
  let track;
  if (lanes) {
    track = h(
      "span",
      { class: "bar-track lanes", "aria-hidden": "true" },
      parts.map((p) =>
        h(
          "span",
          { class: "bar-lane" },
          h("span", {
            class: ["bar-part", p.cls, p.value === null || p.value === undefined ? "na" : ""],
            style: { width: `${pct(p.value)}%` },
            title: `${p.title || p.cls}: ${fmtValue(p.value, unit)}`,
          }),
        ),
      ),
    );
  } else {
    track = h(
      "span",
      { class: "bar-track", "aria-hidden": "true" },
      parts.map((p) =>
        h("span", {
          class: ["bar-part", p.cls],
          style: { width: `${pct(p.value)}%` },
          title: `${p.title || p.cls}: ${fmtValue(p.value, unit)}`,
        }),
      ),
    );
  }
  return h(
    "div",
    { class: "bar", role: "img", "aria-label": aria },
    label && showLabel ? h("span", { class: "bar-label", "aria-hidden": "true" }, label) : null,
    track,
    h("span", { class: "bar-text", "aria-hidden": "true" }, text),
  );
}

// ---- tables ---------------------------------------------------------------------------

/**
 * A table: columns are strings or {label, cls}; rows are arrays of cells (text or nodes) or
 * {attrs: {...row attributes, e.g. data-kind/data-ns/data-name/data-key}, cells: [...]}.
 * Use updateTable(table, rows) to refresh the body of a table made here.
 */
export function table(columns, rows, opts = {}) {
  const head = h(
    "thead",
    {},
    h(
      "tr",
      {},
      columns.map((c) =>
        typeof c === "string"
          ? h("th", { scope: "col" }, c)
          : h("th", { scope: "col", class: c.cls }, c.label),
      ),
    ),
  );
  const t = h(
    "table",
    { class: ["data", opts.class] },
    opts.caption ? h("caption", {}, opts.caption) : null,
    head,
    h("tbody", {}),
  );
  t.columnCount = columns.length;
  updateTable(t, rows, opts.empty);
  return t;
}

function row(r) {
  if (r instanceof Node) return r;
  const cells = Array.isArray(r) ? r : r.cells;
  const attrs = Array.isArray(r) ? {} : r.attrs || {};
  if (!attrs["data-key"] && attrs["data-name"]) {
    attrs["data-key"] = `${attrs["data-kind"] || ""}/${attrs["data-ns"] || ""}/${attrs["data-name"]}`;
  }
  return h("tr", attrs, cells.map((c) => h("td", {}, c)));
}

/** Refresh a table's body in place (rows as for table()); `empty` is shown for no rows. */
export function updateTable(t, rows, empty = "None.") {
  const body = t.tBodies[0];
  const trs = rows.map(row);
  if (!trs.length) {
    trs.push(
      h("tr", { class: "empty", "data-key": "empty" }, h("td", { colspan: t.columnCount || 1 }, empty)),
    );
  }
  patchChildren(body, trs);
}

// ---- links ----------------------------------------------------------------------------

const WORKLOAD_KINDS = new Set([
  "Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job", "CronJob",
]);

/** The hash route that shows an object. */
export function objHref(kind, ns, name) {
  const e = encodeURIComponent;
  if (kind === "Pod") return `#/pods/${e(ns)}/${e(name)}`;
  if (kind === "Node") return `#/nodes/${e(name)}`;
  if (WORKLOAD_KINDS.has(kind)) return `#/workloads/${kind}/${e(ns)}/${e(name)}`;
  if (kind === "MarathonApp") return `#/frameworks/app/${e(String(name).replace(/^\//, ""))}`;
  if (kind === "Framework") return `#/frameworks/${e(name)}`;
  if (kind === "ChronosJob") return `#/chronos/${e(name)}`;
  if (kind === "Event") return "#/events";
  if (kind === "Namespace" || kind === "Role") return "#/pool";
  return "#/nodes";
}

/** An <a> to the object's view; its text is the name (or `text`). */
export function objLink(kind, ns, name, text) {
  return h(
    "a",
    { href: objHref(kind, ns, name), class: "obj", "data-link-kind": kind },
    text === undefined ? name : text,
  );
}

// ---- dialogs and notices --------------------------------------------------------------

function dialog(title, body, confirmLabel, danger) {
  const cancel = h("button", { type: "button", value: "cancel", class: "btn" }, "Cancel");
  const ok = h(
    "button",
    { type: "submit", value: "confirm", class: ["btn", danger ? "danger" : "primary"], "data-confirm": "" },
    confirmLabel,
  );
  const form = h(
    "form",
    { method: "dialog" },
    h("h2", { class: "dialog-title" }, title),
    body,
    h("div", { class: "dialog-buttons" }, cancel, ok),
  );
  const dlg = h("dialog", { class: "confirm", "aria-labelledby": "" }, form);
  const id = `dlg-${Math.random().toString(36).slice(2)}`;
  form.firstChild.id = id;
  dlg.setAttribute("aria-labelledby", id);
  cancel.addEventListener("click", () => dlg.close("cancel"));
  document.body.appendChild(dlg);
  return { dlg, form, ok, cancel };
}

/**
 * Ask before an action: a modal <dialog> with Cancel (focused) and Confirm
 * (button[data-confirm]). opts: {title, confirmLabel, danger, body: extra node}.
 */
export function confirm(text, opts = {}) {
  const { dlg, cancel } = dialog(
    opts.title || "Please confirm",
    [h("p", {}, text), opts.body || null],
    opts.confirmLabel || "Confirm",
    opts.danger !== false,
  );
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => {
      resolve(dlg.returnValue === "confirm");
      dlg.remove();
    });
    dlg.showModal();
    cancel.focus();
  });
}

/**
 * Ask for one value in a modal <dialog>: an <input name=opts.name> (e.g. "replicas"),
 * resolves to its text or null when cancelled. opts: {name, value, type, min, label,
 * title, confirmLabel}. The input is focused, Enter confirms.
 */
export function ask(text, opts = {}) {
  const input = h("input", {
    name: opts.name || "value",
    type: opts.type || "text",
    min: opts.min,
    value: opts.value === undefined ? "" : String(opts.value),
    required: true,
    id: `ask-${Math.random().toString(36).slice(2)}`,
  });
  const field = h(
    "p",
    { class: "field" },
    h("label", { for: input.id }, opts.label || opts.name || "Value"),
    input,
  );
  const { dlg } = dialog(
    opts.title || "Please confirm",
    [h("p", {}, text), field],
    opts.confirmLabel || "Confirm",
    false,
  );
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => {
      resolve(dlg.returnValue === "confirm" ? input.value : null);
      dlg.remove();
    });
    dlg.showModal();
    input.focus();
    input.select();
  });
}

/**
 * A scale action's question: ask() for a whole number >= 0 in input[name="replicas"] (now:
 * the current count; label, title: the dialog's; noun: "replicas" or "instances"). The
 * number, or null when cancelled or not such a number (a toast then says so).
 */
export async function askScale(text, { now, label, title, noun }) {
  const answer = await ask(text, {
    name: "replicas",
    type: "number",
    min: 0,
    value: now,
    label,
    title,
    confirmLabel: "Scale",
  });
  if (answer === null) return null;
  const n = Number(answer);
  if (!Number.isInteger(n) || n < 0) {
    toast(`Not a number of ${noun}: ${answer}`, "error");
    return null;
  }
  return n;
}

/** A short notice, read by screen readers (aria-live polite), gone after a few seconds. */
export function toast(text, kind = "info") {
  let region = document.getElementById("toasts");
  if (!region) {
    region = h("div", { id: "toasts", "aria-live": "polite", role: "status" });
    document.body.appendChild(region);
  }
  const el = h("div", { class: ["toast", kind] }, text);
  region.appendChild(el);
  setTimeout(() => el.remove(), 6000);
  return el;
}

/** A message for an error (ApiError or other) in one line. */
export function errText(e) {
  if (!e) return "";
  if (e.status) return `${e.status} ${e.reason || ""}: ${e.message}`.replace(/ : /, ": ");
  return String(e.message || e);
}

// ---- pods ---------------------------------------------------------------------------------

/**
 * What a pod asks the scheduler for, as upstream computes it: the larger of the sum of its
 * containers' requests and its largest init container's, plus overhead. {cpu: cores,
 * memory: bytes}.
 */
export function podRequests(pod) {
  const spec = pod.spec || {};
  const sum = { cpu: 0, memory: 0 };
  for (const c of spec.containers || []) {
    const r = (c.resources || {}).requests || {};
    sum.cpu += parseQuantity(r.cpu) || 0;
    sum.memory += parseQuantity(r.memory) || 0;
  }
  for (const c of spec.initContainers || []) {
    const r = (c.resources || {}).requests || {};
    sum.cpu = Math.max(sum.cpu, parseQuantity(r.cpu) || 0);
    sum.memory = Math.max(sum.memory, parseQuantity(r.memory) || 0);
  }
  const o = spec.overhead || {};
  sum.cpu += parseQuantity(o.cpu) || 0;
  sum.memory += parseQuantity(o.memory) || 0;
  return sum;
}

/** A pod that still holds its node's resources (not Succeeded or Failed). */
export function podActive(pod) {
  const phase = (pod.status || {}).phase;
  return phase !== "Succeeded" && phase !== "Failed";
}
