// views/chronos.js (#/chronos): the Chronos jobs as a dependency graph, and as a table.
//
// Mounted by app.js's router; `#/chronos/<name>` (ui.objHref's link) highlights that job.
// The jobs are the live ChronosJob objects (chronos.corral.dev/v1, namespace chronos:
// spec.job the Chronos job, with `schedule` or `parents`; status the counters, lastSuccess
// / lastError as ISO 8601 text or unix seconds, openRuns the claimed runs); Chronos'
// /v1/scheduler/jobs/summary (polled every 5 s through the face, and again as soon as a
// job's object changes) adds the current state
// (idle, queued, running). The graph is an <svg data-testid="chronos-dag">: a
// <g data-kind="ChronosJob" data-name=NAME> box per job and a <path data-edge="P->C"> per
// dependency, laid out here in layers (a job's layer is the longest path to it from a
// job without parents; a cycle, which Chronos refuses anyway, is cut where it is met),
// ordered within a layer by the mean position of their parents. The table under it holds
// the same facts for screen readers and the "run now" action (PUT /v1/scheduler/job/NAME,
// confirmed first). Colours in the SVG are presentation attributes (the page's CSP
// forbids inline style sheets), and the state is always written out too.

import { coalesced, keepFocus } from "../rows.js";

export const route = "#/chronos";
export const title = "Chronos";

const BOX_W = 210;
const BOX_H = 84;
const GAP_X = 70;
const GAP_Y = 22;
const PAD = 12;

// state -> [fill, stroke, text]; every text colour is >= 4.5:1 on its fill
const PALETTE = {
  success: ["#e6f4ea", "#2e7d32", "#1b5e20"],
  failure: ["#fdecea", "#b3261e", "#8c1d18"],
  fresh: ["#f1f3f4", "#5f6368", "#202124"],
  running: ["#e8f0fe", "#1f5fa8", "#174ea6"],
  disabled: ["#f1f3f4", "#9aa0a6", "#3c4043"],
};

function instant(v) {
  if (v === null || v === undefined || v === "") return null;
  if (typeof v === "number") return v * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : t;
}

/** Chronos' last state: fresh (never ended), success (last success after last error), failure. */
function lastState(st) {
  const ok = instant(st.lastSuccess);
  const err = instant(st.lastError);
  if (ok === null && err === null) return "fresh";
  if (ok === null) return "failure";
  if (err === null) return "success";
  return ok > err ? "success" : "failure";
}

const BADGE = { success: "ok", failure: "bad", fresh: "info" };

/** An absolute time for the table (a relative one would change the row every second). */
function stamp(h, v) {
  const t = instant(v);
  if (t === null) return "never";
  const d = new Date(t);
  return h("time", { datetime: d.toISOString() }, d.toLocaleString());
}

function when(ui, v) {
  const t = instant(v);
  if (t === null) return "never";
  return `${ui.age(t)} ago`;
}

/** name -> layer: 0 for a job without (known) parents, else 1 + its parents' deepest. */
export function layers(jobs) {
  const layer = new Map();
  const visiting = new Set();
  const visit = (name) => {
    if (layer.has(name)) return layer.get(name);
    if (visiting.has(name)) return 0; // a cycle: cut here
    visiting.add(name);
    let l = 0;
    for (const p of jobs.get(name).parents) if (jobs.has(p)) l = Math.max(l, visit(p) + 1);
    visiting.delete(name);
    layer.set(name, l);
    return l;
  };
  for (const name of [...jobs.keys()].sort()) visit(name);
  return layer;
}

/** {pos: name -> {x, y}, width, height}: layers left to right, jobs top to bottom. */
export function layout(jobs) {
  const layer = layers(jobs);
  const cols = [];
  for (const [name, l] of layer) {
    while (cols.length <= l) cols.push([]);
    cols[l].push(name);
  }
  const row = new Map();
  cols.forEach((col, l) => {
    const key = (n) => {
      const ps = jobs.get(n).parents.filter((p) => row.has(p));
      return ps.length ? ps.reduce((a, p) => a + row.get(p), 0) / ps.length : -1;
    };
    col.sort((a, b) => (l === 0 ? a.localeCompare(b) : key(a) - key(b) || a.localeCompare(b)));
    col.forEach((n, i) => row.set(n, i));
  });
  const pos = new Map();
  let rows = 0;
  cols.forEach((col, l) => {
    rows = Math.max(rows, col.length);
    col.forEach((n, i) => pos.set(n, { x: PAD + l * (BOX_W + GAP_X), y: PAD + i * (BOX_H + GAP_Y) }));
  });
  return {
    pos,
    width: PAD * 2 + Math.max(1, cols.length) * BOX_W + Math.max(0, cols.length - 1) * GAP_X,
    // room under the last row for the edges that dip under boxes
    height: PAD * 2 + Math.max(1, rows) * BOX_H + rows * GAP_Y + GAP_Y / 2,
  };
}

function clip(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

export function mount(root, ctx) {
  const { api, ui, params } = ctx;
  const { h, s } = ui;
  const lv = api.live("/apis/chronos.corral.dev/v1/chronosjobs");
  let summary = new Map(); // name -> {status, state} from Chronos
  let note = "";
  let stopped = false;
  let lastGraph = "";
  const focus = params && params.length ? decodeURIComponent(params[0]) : null;

  const graphBox = h("div", { class: "dag" });
  const noteEl = h("p", { class: "note" });
  const tbl = ui.table(
    ["Job", "Runs", "Last success", "Last failure", "State", "Successes / errors", "Actions"],
    [],
    { empty: "No Chronos job." },
  );
  root.replaceChildren(
    h("h1", {}, "Chronos"),
    noteEl,
    h(
      "section",
      { "aria-labelledby": "dag-h" },
      h("h2", { id: "dag-h" }, "Dependency graph"),
      graphBox,
    ),
    h("section", { "aria-labelledby": "jobs-h" }, h("h2", { id: "jobs-h" }, "Jobs"), tbl),
  );

  function jobs() {
    const out = new Map();
    for (const o of lv.items.values()) {
      const job = (o.spec || {}).job || {};
      if (!job.name) continue;
      const st = o.status || {};
      const name = String(job.name);
      const sum = summary.get(name);
      const openRuns = Object.keys(st.openRuns || {}).length;
      out.set(name, {
        name,
        parents: (job.parents || []).map(String),
        schedule: st.schedule || job.schedule || "",
        disabled: !!job.disabled,
        st,
        last: lastState(st),
        current: sum ? sum.state : openRuns ? "running" : "idle",
      });
    }
    return out;
  }

  function trigger(j) {
    return j.parents.length ? `after ${j.parents.join(", ")}` : j.schedule || "no schedule";
  }

  function stateText(j) {
    const last = { fresh: "never run", success: "last run succeeded", failure: "last run failed" }[j.last];
    const bits = [last];
    if (j.current && j.current !== "idle") bits.push(j.current);
    if (j.disabled) bits.push("disabled");
    return bits.join(", ");
  }

  function drawGraph(all) {
    const sig = JSON.stringify(
      [...all.values()].map((j) => [j.name, j.parents, j.schedule, j.last, j.current, j.disabled, j.st.lastSuccess, j.st.lastError]),
    );
    // ages in the boxes move on: redraw at least every render when something runs
    if (sig === lastGraph && graphBox.firstChild) {
      for (const t of graphBox.querySelectorAll("text[data-time]")) {
        const j = all.get(t.getAttribute("data-job"));
        if (j) t.textContent = timeLine(t.getAttribute("data-time"), j);
      }
      return;
    }
    lastGraph = sig;
    if (!all.size) {
      graphBox.replaceChildren(
        s("svg", { "data-testid": "chronos-dag", width: 0, height: 0, "aria-hidden": "true" }),
        h("p", { class: "muted" }, "No Chronos job."),
      );
      return;
    }
    const { pos, width, height } = layout(all);
    const edges = [];
    for (const j of all.values()) {
      for (const p of j.parents) {
        const a = pos.get(p);
        const b = pos.get(j.name);
        if (!a || !b) continue;
        const x1 = a.x + BOX_W;
        const y1 = a.y + BOX_H / 2;
        const x2 = b.x - 6;
        const y2 = b.y + BOX_H / 2;
        const mx = (x1 + x2) / 2;
        // an edge over a layer or more would cross the boxes between: it dips under them
        const low = Math.max(a.y, b.y) + BOX_H + GAP_Y / 2;
        const far = b.x - a.x > BOX_W + GAP_X;
        const g = GAP_X / 2;
        const d = far
          ? `M${x1} ${y1} C${x1 + g / 2} ${y1} ${x1 + g / 2} ${low} ${x1 + g} ${low} ` +
            `L${x2 - g} ${low} C${x2 - g / 2} ${low} ${x2 - g / 2} ${y2} ${x2} ${y2}`
          : `M${x1} ${y1} C${mx} ${y1} ${mx} ${y2} ${x2} ${y2}`;
        edges.push(
          s(
            "path",
            {
              "data-edge": `${p}->${j.name}`,
              d,
              fill: "none",
              stroke: "#5f6368",
              "stroke-width": 1.5,
              "marker-end": "url(#chronos-arrow)",
            },
            s("title", {}, `${j.name} runs after ${p}`),
          ),
        );
      }
    }
    const boxes = [...all.values()].map((j) => {
      const p = pos.get(j.name);
      const kind = j.disabled ? "disabled" : j.current === "running" ? "running" : j.last;
      const [fill, stroke, ink] = PALETTE[kind] || PALETTE.fresh;
      const mark = { success: "✓", failure: "✗", fresh: "○" }[j.last];
      return s(
        "g",
        {
          "data-kind": "ChronosJob",
          "data-name": j.name,
          "data-state": j.last,
          "data-current": j.current,
          transform: `translate(${p.x} ${p.y})`,
          class: focus === j.name ? "highlight" : null,
        },
        s("title", {}, `${j.name}: ${trigger(j)}; ${stateText(j)}`),
        s("rect", {
          width: BOX_W,
          height: BOX_H,
          rx: 6,
          fill,
          stroke,
          "stroke-width": focus === j.name ? 3 : 1.5,
        }),
        s("text", { x: 10, y: 18, "font-size": 13, "font-weight": "bold", fill: ink }, `${mark} ${clip(j.name, 24)}`),
        s("text", { x: 10, y: 35, "font-size": 11, fill: "#202124" }, clip(trigger(j), 32)),
        s(
          "text",
          { x: 10, y: 51, "font-size": 11, fill: "#202124", "data-time": "success", "data-job": j.name },
          timeLine("success", j),
        ),
        s(
          "text",
          { x: 10, y: 66, "font-size": 11, fill: "#202124", "data-time": "failure", "data-job": j.name },
          timeLine("failure", j),
        ),
        s("text", { x: 10, y: 80, "font-size": 11, "font-style": "italic", fill: ink }, clip(stateText(j), 34)),
      );
    });
    graphBox.replaceChildren(
      s(
        "svg",
        {
          "data-testid": "chronos-dag",
          viewBox: `0 0 ${width} ${height}`,
          width,
          height,
          role: "img",
          "aria-labelledby": "dag-title",
        },
        s(
          "title",
          { id: "dag-title" },
          `${all.size} Chronos job(s) and their dependencies; the table below lists the same jobs.`,
        ),
        s(
          "defs",
          {},
          s(
            "marker",
            {
              id: "chronos-arrow",
              viewBox: "0 0 10 10",
              refX: 9,
              refY: 5,
              markerWidth: 8,
              markerHeight: 8,
              orient: "auto-start-reverse",
            },
            s("path", { d: "M0 0 L10 5 L0 10 z", fill: "#5f6368" }),
          ),
        ),
        edges,
        boxes,
      ),
    );
  }

  function timeLine(which, j) {
    if (which === "success") return `last success: ${when(ui, j.st.lastSuccess)}`;
    return `last failure: ${when(ui, j.st.lastError)}`;
  }

  async function runNow(name) {
    const ok = await ui.confirm(`Run Chronos job ${name} now? Its dependants follow it as usual.`, {
      title: `Run ${name}`,
      confirmLabel: "Run now",
      danger: false,
    });
    if (!ok) return;
    try {
      const answer = await api.faceSend("chronos", "PUT", `v1/scheduler/job/${encodeURIComponent(name)}`);
      if (answer === null) ui.toast("The Chronos API is not running beside this server.", "error");
      else ui.toast(`Chronos job ${name} started.`);
    } catch (e) {
      ui.toast(`Running ${name} failed: ${ui.errText(e)}`, "error");
    }
    poll();
  }

  function rows(all) {
    return [...all.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((j) => ({
        attrs: {
          "data-kind": "ChronosJob",
          "data-ns": "chronos",
          "data-name": j.name,
          "data-state": j.last,
          class: focus === j.name ? "highlight" : null,
        },
        cells: [
          h("strong", {}, j.name),
          j.parents.length
            ? ["after ", j.parents.map((p, i) => [i ? ", " : "", ui.objLink("ChronosJob", null, p)])]
            : h("code", {}, j.schedule || "no schedule"),
          stamp(h, j.st.lastSuccess),
          stamp(h, j.st.lastError),
          h("span", { class: `badge ${BADGE[j.last]}` }, stateText(j)),
          `${j.st.successCount || 0} / ${j.st.errorCount || 0}`,
          h(
            "button",
            {
              type: "button",
              class: "btn small",
              "data-action": "run",
              "aria-label": `Run ${j.name} now`,
              onClick: () => runNow(j.name),
            },
            "Run now…",
          ),
        ],
      }));
  }

  function render() {
    if (stopped) return;
    const all = jobs();
    noteEl.textContent = note;
    drawGraph(all);
    keepFocus(root, () => ui.updateTable(tbl, rows(all), "No Chronos job."));
  }

  const schedule = coalesced(render, 150);

  async function poll() {
    try {
      const answer = await api.face("chronos", "v1/scheduler/jobs/summary");
      if (answer === null) {
        note = "The Chronos API is not running beside this server: jobs cannot be run from here.";
        summary = new Map();
      } else {
        note = "";
        summary = new Map((answer.jobs || []).map((j) => [j.name, j]));
      }
    } catch (e) {
      note = `Chronos' job states are unavailable: ${ui.errText(e)}`;
    }
    schedule();
  }

  // a job's object changed (a run was claimed or ended): ask Chronos for the states again
  // at once, so a box does not say "running" for up to a poll after its run succeeded
  const pollSoon = coalesced(poll, 250);
  const unsub = lv.subscribe(() => {
    schedule();
    pollSoon();
  });
  render();
  poll();
  const ticker = setInterval(poll, 5000);

  return () => {
    stopped = true;
    clearInterval(ticker);
    pollSoon.cancel();
    schedule.cancel();
    unsub();
    lv.release();
  };
}
