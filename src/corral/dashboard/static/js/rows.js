// rows.js: what the views with live tables share (rows re-rendered as their watches change).
//
// Callers: views/workloads.js, views/frameworks.js, views/chronos.js, views/pool.js and
// views/pending.js (imported directly, as pool.js imports ../plot.js; the other views render
// on every change and need none of it). A live view renders on a short timer after its
// lists change (coalesced), keeps keyboard focus on the action it was on when a row is
// rebuilt (keepFocus), opens with the row a link named scrolled into view (highlightRow),
// and may show the pods a row owns in a detail row under it (podsToggle, podsRow,
// podList). Kept apart from ui.js, whose helpers know nothing of rows that come and go.

import { h, objLink } from "./ui.js";

/**
 * Run fn (which may replace table rows) and put keyboard focus back on the same action
 * button of the same row (data-key + data-action) when its old node was replaced.
 */
export function keepFocus(root, fn) {
  const el = document.activeElement;
  const tr = el && root.contains(el) ? el.closest("tr[data-key]") : null;
  const key = tr ? tr.getAttribute("data-key") : null;
  const action = el && el.getAttribute ? el.getAttribute("data-action") : null;
  fn();
  if (key && action && !el.isConnected) {
    const again = root.querySelector(
      `tr[data-key="${CSS.escape(key)}"] [data-action="${CSS.escape(action)}"]`,
    );
    if (again) again.focus();
  }
}

/**
 * fn once, `ms` after the first of any number of calls: the returned schedule() starts a
 * timer unless one is running. schedule.cancel() (a view's unmount) clears it and turns
 * every later call into a no-op.
 */
export function coalesced(fn, ms) {
  let timer = null;
  let stopped = false;
  const schedule = () => {
    if (timer || stopped) return;
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, ms);
  };
  schedule.cancel = () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    timer = null;
  };
  return schedule;
}

/**
 * Subscribe fn to every live list; the returned function unsubscribes and releases them
 * all (for a view's unmount).
 */
export function follow(lists, fn) {
  const offs = lists.map((l) => l.subscribe(fn));
  return () => {
    for (const off of offs) off();
    for (const l of lists) l.release();
  };
}

/**
 * Scroll the table row with these attributes ({"data-kind": ..., "data-name": ...}) into
 * view and highlight it; false when no such row is shown (yet).
 */
export function highlightRow(root, attrs) {
  const sel = Object.entries(attrs)
    .map(([k, v]) => `[${k}="${CSS.escape(v)}"]`)
    .join("");
  const tr = root.querySelector(`tr${sel}`);
  if (!tr) return false;
  tr.scrollIntoView({ block: "center" });
  tr.classList.add("highlight");
  return true;
}

/**
 * The "Show pods (n)" / "Hide pods (n)" button of the row `key` (data-action="pods"): it
 * adds key to or takes it from the set `open` (the rows whose pods are shown) and calls
 * onChange (the view's render); it controls the detail row podsRow(key, ...) makes.
 */
export function podsToggle(open, key, count, onChange) {
  const shown = open.has(key);
  return h(
    "button",
    {
      type: "button",
      class: "btn small",
      "aria-expanded": shown ? "true" : "false",
      "aria-controls": `pods-${key}`,
      "data-action": "pods",
      onClick: () => {
        if (open.has(key)) open.delete(key);
        else open.add(key);
        onChange();
      },
    },
    `${shown ? "Hide" : "Show"} pods (${count})`,
  );
}

/** The detail row under the row `key`: one cell across the table's columns. */
export function podsRow(key, colspan, content) {
  return h(
    "tr",
    { class: "detail", "data-key": `pods:${key}`, id: `pods-${key}` },
    h("td", { colspan }, content),
  );
}

/** Sort order of objects by namespace, then name. */
export function byNsName(a, b) {
  const ma = a.metadata || {};
  const mb = b.metadata || {};
  return (ma.namespace || "").localeCompare(mb.namespace || "") || ma.name.localeCompare(mb.name);
}

/**
 * The pods a row owns, as a list of links (the pod, its node) with each pod's phase;
 * counts: true adds ready containers and restarts, and says when it is not scheduled.
 */
export function podList(pods, { counts = false } = {}) {
  if (!pods.length) return h("p", { class: "muted" }, "No pods.");
  return h(
    "ul",
    { class: "pod-list" },
    pods
      .slice()
      .sort(byNsName)
      .map((p) => {
        const m = p.metadata || {};
        const st = p.status || {};
        const spec = p.spec || {};
        let text = ` ${m.deletionTimestamp ? "Terminating" : st.phase || "Pending"}`;
        if (counts) {
          const cs = st.containerStatuses || [];
          const ready = cs.filter((c) => c.ready).length;
          const restarts = cs.reduce((n, c) => n + (c.restartCount || 0), 0);
          text += `, ready ${ready}/${(spec.containers || []).length}, ${restarts} restart(s)`;
        }
        return h(
          "li",
          { "data-kind": "Pod", "data-ns": m.namespace, "data-name": m.name },
          objLink("Pod", m.namespace, m.name),
          text,
          spec.nodeName ? [", on ", objLink("Node", null, spec.nodeName)] : counts ? ", not scheduled" : "",
        );
      }),
  );
}
