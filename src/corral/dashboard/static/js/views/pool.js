// views/pool.js (#/pool): the one pool both models share, split by who uses it.
//
// Mounted by app.js's router. Three parts:
// - the split: a row per Kubernetes namespace (requests of its live, non-terminal pods),
//   Mesos role and framework (the master's /corral/top, polled every 3 s), Marathon app
//   and Chronos job (the requests of their task pods in namespace `mesos`, found by the
//   labels marathon.corral.dev/app and chronos.corral.dev/job), each with its share of
//   the pool's allocatable;
// - the dominant share of every role and namespace over the last 5 minutes, sampled here
//   in the browser every 3 s and drawn as an SVG line plot (svg[data-testid="drf-plot"]),
//   with a legend and the same numbers as a table for screen readers;
// - pending demand: pods without a node, Marathon apps short of instances, frameworks the
//   allocator has demand for, Chronos runs without a task; each with its "why", the answer
//   `corral why` gives (loaded for the first 20 rows, on demand for the rest).
// Rows carry data-kind / data-name (and data-section="split" | "pending", since an object
// can be in both). The samples live at module level so leaving and coming back keeps the
// plot's history; sampling itself only runs while the view is mounted.

export const route = "#/pool";
export const title = "Pool";

const POLL_MS = 3000;
const WINDOW_S = 300;
const AUTO_WHY = 20;
const WHY_TTL_MS = 20000;
const MIB = 2 ** 20;
const MARATHON_APP_LABEL = "marathon.corral.dev/app";
const MARATHON_APP_ID_KEY = "marathon.corral.dev/app-id";
const CHRONOS_JOB_LABEL = "chronos.corral.dev/job";
const TASK_INFO = "mesos.corral.dev/task-info";
const TASK_ID = "mesos.corral.dev/task-id";
const LABEL_OK = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;

// shared across mounts: [{t: ms, shares: Map(series key -> dominant share)}]
const samples = [];

/** Run fn (which may replace table rows) and put keyboard focus back on the same action
 *  button of the same row (data-key + data-action) when its old node was replaced. */
function keepFocus(root, fn) {
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

// ---- data helpers -----------------------------------------------------------------------

function num(ui, q) {
  const n = ui.parseQuantity(q);
  return Number.isFinite(n) ? n : 0;
}

/** A pod's effective requests {cpu (cores), mem (bytes)}: containers summed, init
 *  containers as a maximum, plus the pod overhead (the scheduler's rule). */
export function podRequests(ui, pod) {
  const spec = pod.spec || {};
  let cpu = 0;
  let mem = 0;
  for (const c of spec.containers || []) {
    const r = (c.resources || {}).requests || {};
    cpu += num(ui, r.cpu);
    mem += num(ui, r.memory);
  }
  for (const c of spec.initContainers || []) {
    const r = (c.resources || {}).requests || {};
    cpu = Math.max(cpu, num(ui, r.cpu));
    mem = Math.max(mem, num(ui, r.memory));
  }
  const o = spec.overhead || {};
  return { cpu: cpu + num(ui, o.cpu), mem: mem + num(ui, o.memory) };
}

function terminal(pod) {
  const phase = (pod.status || {}).phase;
  return phase === "Succeeded" || phase === "Failed";
}

function taskLabels(pod) {
  const raw = ((pod.metadata || {}).annotations || {})[TASK_INFO];
  if (!raw) return {};
  try {
    const info = JSON.parse(raw);
    const out = {};
    for (const l of (info.labels || {}).labels || []) out[l.key] = l.value;
    return out;
  } catch {
    return {};
  }
}

/** The label value Marathon puts on an app's pods, when it is the id itself (not a hash). */
function appLabel(appId) {
  const v = String(appId)
    .split("/")
    .filter(Boolean)
    .join("_");
  return LABEL_OK.test(v) ? v : null;
}

/** The Marathon app id of a task pod (null: not Marathon's), given label -> id. */
function appOfPod(pod, byLabel) {
  const lab = ((pod.metadata || {}).labels || {})[MARATHON_APP_LABEL];
  if (lab === undefined) return null;
  return byLabel.get(lab) || taskLabels(pod)[MARATHON_APP_ID_KEY] || null;
}

/** The Chronos job name of a task pod (null: not Chronos'); the task id is ct:SLOT:TRY:NAME. */
function jobOfPod(pod) {
  const meta = pod.metadata || {};
  const lab = (meta.labels || {})[CHRONOS_JOB_LABEL];
  if (lab === undefined) return null;
  const tid = (meta.annotations || {})[TASK_ID] || "";
  const parts = tid.split(":");
  return parts.length >= 4 && parts[0] === "ct" ? parts.slice(3).join(":") : lab;
}

function share(cpu, mem, total) {
  const c = total.cpu > 0 ? cpu / total.cpu : 0;
  const m = total.mem > 0 ? mem / total.mem : 0;
  return { c, m, d: Math.max(c, m) };
}

function pct(x) {
  return `${(x * 100).toFixed(x > 0 && x < 0.1 ? 1 : 0)}%`;
}

// ---- the view ---------------------------------------------------------------------------

export function mount(root, ctx) {
  const { api, ui } = ctx;
  const { h, s } = ui;
  // pods and nodes are watched (shared with the Nodes view); the Marathon App and
  // ChronosJob objects are re-listed with each 3 s sample: a browser holds only 6
  // connections to the server and every watch keeps one
  const lv = {
    pods: api.live("/api/v1/pods"),
    nodes: api.live("/api/v1/nodes"),
  };
  const listed = { apps: new Map(), jobs: new Map() };
  let top = null; // the master's /corral/top, or null
  let topNote = "loading the Mesos master's figures…";
  let stopped = false;
  let timer = null;
  const why = new Map(); // row key -> {lines, at, loading, error}

  const totalsText = h("p", { class: "summary" });
  const splitTable = ui.table(
    ["Kind", "Name", "CPU", "Memory", "Share of the pool", "Detail"],
    [],
    { caption: "Who uses the pool", empty: "Nothing uses the pool yet." },
  );
  const topNoteEl = h("p", { class: "note" });
  const plotBox = h("div", { class: "plot" });
  const legend = h("ul", {
    class: "legend",
    "aria-label": "Plot legend",
    style: { "list-style": "none", "padding-left": "0" },
  });
  const plotTable = h("div", {});
  const pendingTable = ui.table(["Kind", "Name", "Demand", "Age", "Why"], [], {
    caption: "Pending demand",
    empty: "Nothing is waiting.",
  });

  root.replaceChildren(
    h(
      "section",
      { "aria-labelledby": "pool-h" },
      h("h1", { id: "pool-h" }, "Pool"),
      totalsText,
      topNoteEl,
      splitTable,
    ),
    h(
      "section",
      { "aria-labelledby": "drf-h" },
      h("h2", { id: "drf-h" }, "Dominant share over the last 5 minutes"),
      plotBox,
      legend,
      h(
        "details",
        {},
        h("summary", {}, "The plot's numbers as a table"),
        plotTable,
      ),
    ),
    h(
      "section",
      { "aria-labelledby": "pending-h" },
      h("h2", { id: "pending-h" }, "Pending demand and why"),
      pendingTable,
    ),
  );

  // ---- figures ----

  function poolTotal() {
    let cpu = 0;
    let mem = 0;
    for (const n of lv.nodes.items.values()) {
      const a = (n.status || {}).allocatable || {};
      cpu += num(ui, a.cpu);
      mem += num(ui, a.memory);
    }
    return { cpu, mem };
  }

  function appsById() {
    const out = new Map(); // id -> App object
    for (const o of listed.apps.values()) {
      const id = ((o.spec || {}).app || {}).id;
      if (id) out.set(String(id), o);
    }
    return out;
  }

  function jobsByName() {
    const out = new Map();
    for (const o of listed.jobs.values()) {
      const name = ((o.spec || {}).job || {}).name;
      if (name) out.set(String(name), o);
    }
    return out;
  }

  /** Everything the split and the plot need, from the live lists and the last /corral/top. */
  function figures() {
    const total = poolTotal();
    const apps = appsById();
    const byLabel = new Map();
    for (const id of apps.keys()) {
      const l = appLabel(id);
      if (l) byLabel.set(l, id);
    }
    const jobs = jobsByName();
    const ns = new Map(); // name -> {cpu, mem, pods}
    const app = new Map([...apps.keys()].map((k) => [k, { cpu: 0, mem: 0, pods: 0 }]));
    const job = new Map([...jobs.keys()].map((k) => [k, { cpu: 0, mem: 0, pods: 0 }]));
    const pending = [];
    for (const pod of lv.pods.items.values()) {
      if (terminal(pod)) continue;
      const meta = pod.metadata || {};
      const r = podRequests(ui, pod);
      if (!(pod.spec || {}).nodeName) {
        pending.push({ pod, r });
        continue;
      }
      const n = ns.get(meta.namespace) || { cpu: 0, mem: 0, pods: 0 };
      n.cpu += r.cpu;
      n.mem += r.mem;
      n.pods += 1;
      ns.set(meta.namespace, n);
      if (meta.namespace !== "mesos") continue;
      const a = appOfPod(pod, byLabel);
      const j = a === null ? jobOfPod(pod) : null;
      const into = a !== null ? app : j !== null ? job : null;
      const key = a !== null ? a : j;
      if (into) {
        const e = into.get(key) || { cpu: 0, mem: 0, pods: 0 };
        e.cpu += r.cpu;
        e.mem += r.mem;
        e.pods += 1;
        into.set(key, e);
      }
    }
    return { total, apps, jobs, ns, app, job, pending };
  }

  // ---- the split ----

  function shareBar(sh) {
    // the row names the user; the bar's own label would repeat it
    return ui.bar({
      parts: [
        { value: sh.c * 100, cls: "requested", title: "cpu" },
        { value: sh.m * 100, cls: "used", title: "memory" },
      ],
      total: 100,
      unit: "%",
      lanes: true,
    });
  }

  function splitRows(f) {
    const rows = [];
    const mesosTotal = top
      ? { cpu: top.total.cpus || 0, mem: (top.total.mem || 0) * MIB }
      : f.total;
    for (const [name, v] of [...f.ns].sort((a, b) => a[0].localeCompare(b[0]))) {
      const sh = share(v.cpu, v.mem, f.total);
      rows.push({
        attrs: { "data-kind": "Namespace", "data-name": name, "data-section": "split" },
        cells: [
          "Namespace",
          name,
          ui.fmtCPU(v.cpu),
          ui.fmtBytes(v.mem),
          shareBar(sh),
          `${v.pods} pod${v.pods === 1 ? "" : "s"}${name === "mesos" ? " (Mesos tasks)" : ""}`,
        ],
      });
    }
    if (top) {
      for (const r of top.roles || []) {
        const cpu = (r.allocated.cpus || 0) + (r.offered.cpus || 0);
        const mem = ((r.allocated.mem || 0) + (r.offered.mem || 0)) * MIB;
        const sh = share(cpu, mem, mesosTotal);
        const bits = [`weight ${r.weight}`, `${(r.frameworks || []).length} framework(s)`];
        if (r.kubernetes) bits.push("the Kubernetes pods");
        if (r.pending && r.pending.pods) bits.push(`${r.pending.pods} pod(s) pending`);
        if (r.offered.cpus || r.offered.mem) {
          bits.push(`offered ${ui.fmtCPU(r.offered.cpus)} cpu, ${ui.fmtBytes(r.offered.mem * MIB)}`);
        }
        rows.push({
          attrs: { "data-kind": "Role", "data-name": r.role, "data-section": "split" },
          cells: [
            "Role",
            r.role,
            ui.fmtCPU(cpu),
            ui.fmtBytes(mem),
            shareBar({ ...sh, d: r.dominant_share }),
            bits.join(", "),
          ],
        });
      }
      for (const fw of top.frameworks || []) {
        const cpu = (fw.allocated.cpus || 0) + (fw.offered.cpus || 0);
        const mem = ((fw.allocated.mem || 0) + (fw.offered.mem || 0)) * MIB;
        const sh = share(cpu, mem, mesosTotal);
        const name = fw.name || fw.id;
        rows.push({
          attrs: {
            "data-kind": "Framework",
            "data-name": name,
            "data-id": fw.id,
            "data-section": "split",
          },
          cells: [
            "Framework",
            ui.objLink("Framework", null, name),
            ui.fmtCPU(cpu),
            ui.fmtBytes(mem),
            shareBar(sh),
            `${fw.tasks_running} task(s) running, roles ${(fw.roles || []).join(", ")}` +
              (fw.connected ? "" : ", disconnected"),
          ],
        });
      }
    }
    for (const [id, v] of [...f.app].sort((a, b) => a[0].localeCompare(b[0]))) {
      const obj = f.apps.get(id);
      const want = obj ? ((obj.spec || {}).app || {}).instances : undefined;
      rows.push({
        attrs: { "data-kind": "MarathonApp", "data-name": id, "data-section": "split" },
        cells: [
          "Marathon app",
          ui.objLink("MarathonApp", null, id),
          ui.fmtCPU(v.cpu),
          ui.fmtBytes(v.mem),
          shareBar(share(v.cpu, v.mem, f.total)),
          `${v.pods} instance(s)${want === undefined ? "" : ` of ${want}`}`,
        ],
      });
    }
    for (const [name, v] of [...f.job].sort((a, b) => a[0].localeCompare(b[0]))) {
      rows.push({
        attrs: { "data-kind": "ChronosJob", "data-name": name, "data-section": "split" },
        cells: [
          "Chronos job",
          ui.objLink("ChronosJob", null, name),
          ui.fmtCPU(v.cpu),
          ui.fmtBytes(v.mem),
          shareBar(share(v.cpu, v.mem, f.total)),
          `${v.pods} task(s) running`,
        ],
      });
    }
    return rows;
  }

  // ---- pending demand ----

  function whyCell(key, load) {
    const w = why.get(key);
    const button = h(
      "button",
      {
        type: "button",
        class: "btn small",
        "data-action": "why",
        onClick: () => loadWhy(key, load, true),
      },
      w && !w.loading ? "why? (again)" : "why?",
    );
    if (!w) return button;
    if (w.loading && !w.lines) return h("span", { class: "muted" }, "asking…");
    if (w.error) return h("span", {}, h("span", { class: "error" }, w.error), " ", button);
    return h(
      "div",
      { class: "why" },
      h("ul", {}, (w.lines || []).map((l) => h("li", {}, l))),
      button,
    );
  }

  async function loadWhy(key, load, forced) {
    const had = why.get(key);
    if (had && had.loading) return;
    if (!forced && had && Date.now() - had.at < WHY_TTL_MS) return;
    why.set(key, { ...(had || {}), loading: true });
    if (forced) schedule();
    let next;
    try {
      next = { lines: await load(), at: Date.now(), loading: false };
    } catch (e) {
      next = { error: ui.errText(e), at: Date.now(), loading: false };
    }
    if (stopped) return;
    why.set(key, next);
    schedule();
  }

  async function podWhy(key, fallback) {
    const pod = lv.pods.items.get(key) || fallback; // the newest copy, not the one at render
    const meta = pod.metadata || {};
    const spec = pod.spec || {};
    const status = pod.status || {};
    const cond = (status.conditions || []).find((c) => c.type === "PodScheduled");
    const selector = encodeURIComponent(
      `involvedObject.name=${meta.name},reason=FailedScheduling`,
    );
    const list = await api.getJSON(
      `/api/v1/namespaces/${encodeURIComponent(meta.namespace)}/events?fieldSelector=${selector}`,
    );
    const mine = (list.items || []).filter(
      (e) => (e.involvedObject || {}).uid === meta.uid,
    );
    const when = (e) =>
      e.lastTimestamp || e.eventTime || (e.metadata || {}).creationTimestamp || "";
    mine.sort((a, b) => when(a).localeCompare(when(b)) || (a.count || 0) - (b.count || 0));
    const message = (cond || {}).message || "";
    const eventMsg = mine.length ? mine[mine.length - 1].message || "" : "";
    if (!message && !eventMsg) {
      return [`pending: ${spec.schedulerName || "default-scheduler"} has not reported on it yet`];
    }
    const lines = [message || eventMsg];
    if (eventMsg && message && eventMsg.startsWith(message)) {
      let nearest = eventMsg.slice(message.length).trim();
      if (nearest.startsWith("(nearest miss: ") && nearest.endsWith(")")) {
        nearest = nearest.slice("(nearest miss: ".length, -1);
      }
      if (nearest) lines.push(`nearest miss: ${nearest}`);
    } else if (eventMsg && message && eventMsg !== message) {
      lines.push(`newest FailedScheduling event: ${eventMsg}`);
    }
    if (status.nominatedNodeName) {
      lines.push(`nominated to node ${status.nominatedNodeName} (waiting for preempted pods to go)`);
    }
    return lines;
  }

  async function faceWhy(faceName, label, path) {
    const answer = await api.face(faceName, path);
    if (answer === null) return [`the ${label} API is not running beside this server`];
    const reasons = answer.reasons || [];
    return reasons.length ? reasons : ["no reason given"];
  }

  function pendingRows(f) {
    const rows = [];
    const pods = f.pending.slice().sort((a, b) => {
      const ta = (a.pod.metadata || {}).creationTimestamp || "";
      const tb = (b.pod.metadata || {}).creationTimestamp || "";
      return ta.localeCompare(tb);
    });
    for (const { pod, r } of pods) {
      const meta = pod.metadata || {};
      const key = `Pod/${meta.namespace}/${meta.name}/${meta.uid}`;
      rows.push({
        key,
        load: () => podWhy(`${meta.namespace}/${meta.name}`, pod),
        attrs: {
          "data-kind": "Pod",
          "data-ns": meta.namespace,
          "data-name": meta.name,
          "data-section": "pending",
        },
        cells: [
          "Pod",
          ui.objLink("Pod", meta.namespace, meta.name, `${meta.namespace}/${meta.name}`),
          `${ui.fmtCPU(r.cpu)} cpu, ${ui.fmtBytes(r.mem)}`,
          ui.age(meta.creationTimestamp),
        ],
      });
    }
    for (const [id, obj] of [...f.apps].sort((a, b) => a[0].localeCompare(b[0]))) {
      const st = obj.status || {};
      const want = Number(((obj.spec || {}).app || {}).instances || 0);
      const have = Number(st.tasksRunning || 0) + Number(st.tasksStaged || 0);
      const queued = Number(st.queued || 0);
      if (queued <= 0 && have >= want) continue;
      const path = `corral/why/${id
        .split("/")
        .filter(Boolean)
        .map(encodeURIComponent)
        .join("/")}`;
      rows.push({
        key: `MarathonApp/${id}`,
        load: () => faceWhy("marathon", "Marathon", path),
        attrs: { "data-kind": "MarathonApp", "data-name": id, "data-section": "pending" },
        cells: [
          "Marathon app",
          ui.objLink("MarathonApp", null, id),
          `${have} of ${want} instances${queued ? `, ${queued} queued` : ""}`,
          ui.age((obj.metadata || {}).creationTimestamp),
        ],
      });
    }
    if (top) {
      for (const fw of top.frameworks || []) {
        if (!fw.pending_demand) continue;
        const name = fw.name || fw.id;
        rows.push({
          key: `Framework/${fw.id}`,
          load: () => faceWhy("mesos", "Mesos master", `corral/why/${encodeURIComponent(fw.id)}`),
          attrs: {
            "data-kind": "Framework",
            "data-name": name,
            "data-id": fw.id,
            "data-section": "pending",
          },
          cells: [
            "Framework",
            ui.objLink("Framework", null, name),
            `wants offers (roles ${(fw.roles || []).join(", ")}), ${fw.outstanding_offers} outstanding`,
            "",
          ],
        });
      }
    }
    const runningJobs = new Set();
    for (const [name, v] of f.job) if (v.pods > 0) runningJobs.add(name);
    for (const [name, obj] of [...f.jobs].sort((a, b) => a[0].localeCompare(b[0]))) {
      const open = (obj.status || {}).openRuns || {};
      const n = Object.keys(open).length;
      if (!n || runningJobs.has(name)) continue;
      rows.push({
        key: `ChronosJob/${name}`,
        load: () => faceWhy("chronos", "Chronos", `corral/why/${encodeURIComponent(name)}`),
        attrs: { "data-kind": "ChronosJob", "data-name": name, "data-section": "pending" },
        cells: [
          "Chronos job",
          ui.objLink("ChronosJob", null, name),
          `${n} run(s) claimed, no task yet`,
          "",
        ],
      });
    }
    rows.forEach((row, i) => {
      if (i < AUTO_WHY) loadWhy(row.key, row.load, false);
      row.cells.push(whyCell(row.key, row.load));
    });
    return rows;
  }

  // ---- the plot ----

  function sample(f) {
    const shares = new Map();
    for (const [name, v] of f.ns) shares.set(`ns:${name}`, share(v.cpu, v.mem, f.total).d);
    if (top) for (const r of top.roles || []) shares.set(`role:${r.role}`, r.dominant_share || 0);
    const now = Date.now();
    samples.push({ t: now, shares });
    while (samples.length && samples[0].t < now - WINDOW_S * 1000 - POLL_MS) samples.shift();
  }

  const COLOURS = ["#1f5fa8", "#b3261e", "#2e7d32", "#6a1b9a", "#8a5a00", "#00695c", "#ad1457", "#37474f"];
  const DASHES = ["", "6 3", "2 3", "8 3 2 3"];

  function seriesName(key) {
    const [kind, ...rest] = key.split(":");
    return `${kind === "ns" ? "namespace" : "role"} ${rest.join(":")}`;
  }

  function drawPlot() {
    const keys = [...new Set(samples.flatMap((x) => [...x.shares.keys()]))].sort();
    const W = 720;
    const H = 260;
    const L = 52;
    const R = 12;
    const T = 12;
    const B = 40;
    const now = Date.now();
    const t0 = now - WINDOW_S * 1000;
    let max = 0;
    for (const x of samples) for (const v of x.shares.values()) max = Math.max(max, v);
    const steps = [0.05, 0.1, 0.2, 0.25, 0.5, 0.75, 1];
    const ymax = steps.find((v) => v >= max) || Math.ceil(max * 4) / 4;
    const X = (t) => L + ((t - t0) / (WINDOW_S * 1000)) * (W - L - R);
    const Y = (v) => T + (1 - v / ymax) * (H - T - B);
    const grid = [];
    for (let i = 0; i <= 4; i++) {
      const v = (ymax * i) / 4;
      grid.push(
        s("line", { x1: L, x2: W - R, y1: Y(v), y2: Y(v), stroke: "#d0d4d9", "stroke-width": 1 }),
        s("text", { x: L - 6, y: Y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#333" }, pct(v)),
      );
    }
    for (let m = 0; m <= 5; m++) {
      const t = t0 + m * 60000;
      grid.push(
        s("line", { x1: X(t), x2: X(t), y1: T, y2: H - B, stroke: "#eceff1", "stroke-width": 1 }),
        s(
          "text",
          { x: X(t), y: H - B + 16, "text-anchor": "middle", "font-size": 11, fill: "#333" },
          m === 5 ? "now" : `−${5 - m} min`,
        ),
      );
    }
    const lines = keys.map((key, i) => {
      let d = "";
      let pen = false;
      for (const x of samples) {
        if (x.t < t0) continue;
        const v = x.shares.get(key);
        if (v === undefined) {
          pen = false;
          continue;
        }
        d += `${pen ? "L" : "M"}${X(x.t).toFixed(1)} ${Y(v).toFixed(1)} `;
        pen = true;
      }
      return s("path", {
        d: d.trim() || "M0 0",
        fill: "none",
        stroke: COLOURS[i % COLOURS.length],
        "stroke-width": 2,
        "stroke-dasharray": DASHES[Math.floor(i / COLOURS.length) % DASHES.length] || null,
        "data-series": key,
      });
    });
    const svg = s(
      "svg",
      {
        "data-testid": "drf-plot",
        viewBox: `0 0 ${W} ${H}`,
        width: W,
        height: H,
        role: "img",
        "aria-labelledby": "drf-title drf-desc",
        preserveAspectRatio: "xMinYMin meet",
      },
      s("title", { id: "drf-title" }, "Dominant share of each role and namespace"),
      s(
        "desc",
        { id: "drf-desc" },
        `Sampled every ${POLL_MS / 1000} s over the last 5 minutes; ` +
          "the table below the plot holds the same numbers.",
      ),
      grid,
      s("line", { x1: L, x2: L, y1: T, y2: H - B, stroke: "#333" }),
      s("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#333" }),
      s(
        "text",
        { x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle", "font-size": 12, fill: "#333" },
        "time",
      ),
      s(
        "text",
        {
          x: 12,
          y: (T + H - B) / 2,
          transform: `rotate(-90 12 ${(T + H - B) / 2})`,
          "text-anchor": "middle",
          "font-size": 12,
          fill: "#333",
        },
        "dominant share",
      ),
      lines,
    );
    plotBox.replaceChildren(svg);

    const last = samples.length ? samples[samples.length - 1].shares : new Map();
    ui.patchChildren(
      legend,
      keys.map((key, i) =>
        h(
          "li",
          { "data-key": key, "data-series": key },
          s(
            "svg",
            { width: 28, height: 10, "aria-hidden": "true", focusable: "false" },
            s("line", {
              x1: 0,
              x2: 28,
              y1: 5,
              y2: 5,
              stroke: COLOURS[i % COLOURS.length],
              "stroke-width": 3,
              "stroke-dasharray": DASHES[Math.floor(i / COLOURS.length) % DASHES.length] || null,
            }),
          ),
          ` ${seriesName(key)}: ${last.has(key) ? pct(last.get(key)) : "–"}`,
        ),
      ),
    );

    // the text alternative: each series at every minute mark (nearest earlier sample)
    const marks = [5, 4, 3, 2, 1, 0].map((m) => now - m * 60000);
    const at = (key, t) => {
      let v;
      for (const x of samples) {
        if (x.t > t) break;
        if (x.shares.has(key)) v = x.shares.get(key);
      }
      return v === undefined ? "–" : pct(v);
    };
    plotTable.replaceChildren(
      ui.table(
        ["Series", "5 min ago", "4 min ago", "3 min ago", "2 min ago", "1 min ago", "now"],
        keys.map((key) => [seriesName(key), ...marks.map((t) => at(key, t))]),
        { caption: "Dominant share by minute", empty: "No samples yet." },
      ),
    );
  }

  // ---- rendering and polling ----

  function render() {
    if (stopped) return;
    const f = figures();
    totalsText.textContent =
      `Allocatable: ${ui.fmtCPU(f.total.cpu)} cpu, ${ui.fmtBytes(f.total.mem)} memory on ` +
      `${lv.nodes.items.size} node(s); ${f.pending.length} pod(s) pending.`;
    topNoteEl.textContent = topNote;
    keepFocus(root, () => {
      ui.updateTable(splitTable, splitRows(f), "Nothing uses the pool yet.");
      ui.updateTable(pendingTable, pendingRows(f), "Nothing is waiting.");
    });
  }

  function schedule() {
    if (timer || stopped) return;
    timer = setTimeout(() => {
      timer = null;
      render();
    }, 200);
  }

  async function list(path) {
    try {
      const body = await api.getJSON(path);
      return new Map((body.items || []).map((o) => [`${o.metadata.namespace}/${o.metadata.name}`, o]));
    } catch {
      return new Map(); // not served (or not allowed): nothing to show
    }
  }

  async function tick() {
    const [apps, jobs] = await Promise.all([
      list("/apis/marathon.corral.dev/v1/apps"),
      list("/apis/chronos.corral.dev/v1/chronosjobs"),
    ]);
    listed.apps = apps;
    listed.jobs = jobs;
    try {
      const t = await api.face("mesos", "corral/top");
      top = t;
      topNote = t
        ? ""
        : "The Mesos master is not running beside this server: no roles or frameworks to show.";
    } catch (e) {
      top = null;
      topNote = `The Mesos master's figures are unavailable: ${ui.errText(e)}`;
    }
    if (stopped) return;
    sample(figures());
    drawPlot();
    render();
  }

  const unsubs = Object.values(lv).map((l) => l.subscribe(schedule));
  tick();
  drawPlot();
  render();
  const poll = setInterval(tick, POLL_MS);

  return () => {
    stopped = true;
    clearInterval(poll);
    if (timer) clearTimeout(timer);
    for (const u of unsubs) u();
    for (const l of Object.values(lv)) l.release();
  };
}
