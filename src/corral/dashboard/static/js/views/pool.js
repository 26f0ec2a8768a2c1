// views/pool.js (#/pool): the one pool both models share, split by who uses it.
//
// Mounted by app.js's router. Three parts:
// - the split (here): a row per Kubernetes namespace (requests of its live, non-terminal
//   pods), Mesos role and framework (the master's /corral/top, polled every 3 s), Marathon
//   app and Chronos job (the requests of their task pods in namespace `mesos`, found by the
//   labels marathon.corral.dev/app and chronos.corral.dev/job), each with its share of the
//   pool's allocatable;
// - the dominant share of every role and namespace over the last 5 minutes: sampled here
//   with each poll, drawn by ../plot.js (svg[data-testid="drf-plot"], legend, table);
// - pending demand and why: pending.js (pods without a node, Marathon apps short of
//   instances, frameworks with demand, Chronos runs without a task; each with the answer
//   `corral why` gives), fed with the figures computed here.
// Rows carry data-kind / data-name (and data-section="split" | "pending", since an object
// can be in both).

import { drfPlot, record, SAMPLE_MS } from "../plot.js";
import { coalesced, follow } from "../rows.js";
import {
  appLabel,
  CHRONOS_JOB_LABEL,
  MARATHON_APP_ID_KEY,
  MARATHON_APP_LABEL,
  TASK_ID,
  taskLabels,
} from "../tasks.js";
import { pendingDemand } from "./pending.js";

export const route = "#/pool";
export const title = "Pool";

const POLL_MS = SAMPLE_MS;
const MIB = 2 ** 20;

// ---- data helpers -----------------------------------------------------------------------

function num(ui, q) {
  const n = ui.parseQuantity(q);
  return Number.isFinite(n) ? n : 0;
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

// ---- the view ---------------------------------------------------------------------------

export function mount(root, ctx) {
  const { api, ui } = ctx;
  const { h } = ui;
  // pods and nodes are watched (shared with the Nodes view); the Marathon App and
  // ChronosJob objects are re-listed with each 3 s sample instead, because a cluster
  // without Marathon or Chronos (or a user who may not read them) would otherwise keep
  // the page's #live indicator at "connecting"
  const lv = {
    pods: api.live("/api/v1/pods"),
    nodes: api.live("/api/v1/nodes"),
  };
  const listed = { apps: new Map(), jobs: new Map() };
  let top = null; // the master's /corral/top, or null
  let topNote = "loading the Mesos master's figures…";
  let stopped = false;

  const totalsText = h("p", { class: "summary" });
  const splitTable = ui.table(
    ["Kind", "Name", "CPU", "Memory", "Share of the pool", "Detail"],
    [],
    { caption: "Who uses the pool", empty: "Nothing uses the pool yet." },
  );
  const topNoteEl = h("p", { class: "note" });
  const plot = drfPlot(ui);
  const schedule = coalesced(render, 200);
  const pending = pendingDemand({ api, ui, pods: lv.pods, onChange: schedule });

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
      plot.nodes,
    ),
    h(
      "section",
      { "aria-labelledby": "pending-h" },
      h("h2", { id: "pending-h" }, "Pending demand and why"),
      pending.table,
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
      if (!ui.podActive(pod)) continue;
      const meta = pod.metadata || {};
      const req = ui.podRequests(pod);
      const r = { cpu: req.cpu, mem: req.memory };
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

  // ---- the plot's samples ----

  function sample(f) {
    const shares = new Map();
    for (const [name, v] of f.ns) shares.set(`ns:${name}`, share(v.cpu, v.mem, f.total).d);
    if (top) for (const r of top.roles || []) shares.set(`role:${r.role}`, r.dominant_share || 0);
    record(shares);
  }

  // ---- rendering and polling ----

  function render() {
    if (stopped) return;
    const f = figures();
    totalsText.textContent =
      `Allocatable: ${ui.fmtCPU(f.total.cpu)} cpu, ${ui.fmtBytes(f.total.mem)} memory on ` +
      `${lv.nodes.items.size} node(s); ${f.pending.length} pod(s) pending.`;
    topNoteEl.textContent = topNote;
    ui.updateTable(splitTable, splitRows(f), "Nothing uses the pool yet.");
    pending.update(f, top);
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
    plot.draw();
    render();
  }

  const unfollow = follow(Object.values(lv), schedule);
  tick();
  plot.draw();
  render();
  const poll = setInterval(tick, POLL_MS);

  return () => {
    stopped = true;
    pending.stop();
    clearInterval(poll);
    schedule.cancel();
    unfollow();
  };
}
