// views/nodes.js: the default view (#/nodes), and one node (#/nodes/<name>).
//
// Mounted by app.js's router. One row per Node with its state (Ready/NotReady, cordoned,
// taints) and three bars (cpu, memory, pods) showing what the node has (allocatable),
// what pods bound to it ask for (requested, live from the pods watch), what they really
// use (metrics.k8s.io, polled every 10 s; "n/a" when that API is absent) and what the
// Mesos master offers of it right now (the master's /state through /ui/faces/mesos,
// polled every 5 s; no offered part when Mesos does not run beside the server).

import { live, getJSON, face } from "../api.js";
import {
  h, bar, table, updateTable, replace, objLink, parseQuantity, fmtCPU, fmtBytes, age,
  podRequests, podActive, errText,
} from "../ui.js";

export const route = "#/nodes";
export const title = "Nodes";

const MB = 2 ** 20;

function ready(node) {
  const c = ((node.status || {}).conditions || []).find((x) => x.type === "Ready");
  if (!c) return "Unknown";
  return c.status === "True" ? "Ready" : "NotReady";
}

/** Per node name: {cpu, memory, pods} requested and running, from the pods list. */
function requestedByNode(pods) {
  const out = new Map();
  for (const p of pods.values()) {
    const n = (p.spec || {}).nodeName;
    if (!n || !podActive(p)) continue;
    const r = podRequests(p);
    const acc = out.get(n) || { cpu: 0, memory: 0, pods: 0, running: 0 };
    acc.cpu += r.cpu;
    acc.memory += r.memory;
    acc.pods += 1;
    if ((p.status || {}).phase === "Running") acc.running += 1;
    out.set(n, acc);
  }
  return out;
}

/** Per agent id (= node name): {cpu, memory, pods} offered, from the master's /state. */
function offeredByAgent(state) {
  const out = new Map();
  for (const a of state.slaves || []) {
    const r = a.offered_resources || {};
    out.set(a.id, { cpu: r.cpus || 0, memory: (r.mem || 0) * MB, pods: 0 });
  }
  for (const fw of state.frameworks || []) {
    for (const o of fw.offers || []) {
      const acc = out.get(o.slave_id) || { cpu: 0, memory: 0, pods: 0 };
      acc.pods += (o.resources || {}).pods || 0;
      out.set(o.slave_id, acc);
    }
  }
  return out;
}

function usageByNode(list) {
  const out = new Map();
  for (const m of list.items || []) {
    const u = m.usage || {};
    out.set((m.metadata || {}).name, { cpu: parseQuantity(u.cpu), memory: parseQuantity(u.memory) });
  }
  return out;
}

/** The cpu, memory and pods bars; `used` null: "n/a" (pods used: the running pods). */
function bars(alloc, req, used, off, showLabel = true) {
  const mk = (label, unit, total, r, u, o) => {
    const parts = [
      { value: r, cls: "requested", title: "requested" },
      { value: u, cls: "used", title: u === null ? "used (n/a)" : "used" },
    ];
    if (o !== null) parts.push({ value: o, cls: "offered", title: "offered" });
    return bar({ label, parts, total, unit, lanes: true, showLabel });
  };
  return {
    cpu: mk("CPU", "cores", alloc.cpu, req.cpu, used ? used.cpu : null, off ? off.cpu : null),
    memory: mk("Memory", "bytes", alloc.memory, req.memory, used ? used.memory : null, off ? off.memory : null),
    pods: mk("Pods", "", alloc.pods, req.pods, req.running, off ? off.pods : null),
  };
}

function allocatable(node) {
  const a = (node.status || {}).allocatable || {};
  return { cpu: parseQuantity(a.cpu) || 0, memory: parseQuantity(a.memory) || 0, pods: parseQuantity(a.pods) || 0 };
}

function legend(hasUsed, hasOffers) {
  const item = (cls, text) => h("span", {}, h("span", { class: ["swatch", "bar-part", cls], "aria-hidden": "true" }), text);
  return h(
    "p",
    { class: "legend" },
    item("requested", "requested (striped): requests of pods bound to the node"),
    item("used", hasUsed ? "used (solid): from metrics.k8s.io" : "used: n/a (metrics.k8s.io not available)"),
    hasOffers ? item("offered", "offered (dotted): outstanding Mesos offers") : h("span", {}, "offered: Mesos is not running beside this server"),
  );
}

function stateBadges(node) {
  const st = ready(node);
  const spec = node.spec || {};
  const taints = spec.taints || [];
  return [
    h("span", { class: ["badge", st === "Ready" ? "ok" : "bad"] }, st),
    spec.unschedulable ? [" ", h("span", { class: "badge warn" }, "cordoned")] : null,
    taints.length ? [" ", h("span", { class: "badge info", title: taints.map(taintText).join(", ") }, `${taints.length} taint${taints.length > 1 ? "s" : ""}`)] : null,
  ];
}

function taintText(t) {
  return `${t.key}${t.value ? `=${t.value}` : ""}:${t.effect}`;
}

export function mount(root, ctx) {
  const nodes = live("/api/v1/nodes");
  const pods = live("/api/v1/pods");
  let usage = null; // Map or null (n/a)
  let offers = null; // Map or null (no Mesos)
  let stopped = false;
  const name = ctx.params[0] || null;
  const faces = (ctx.info && ctx.info.faces) || {};

  const heading = h("h1", {}, name ? `Node ${name}` : "Nodes");
  const status = h("p", { class: "muted", role: "status" }, "Loading...");
  const summary = h("section", { "aria-label": "Cluster totals" });
  const body = h("div", { class: "scroll" });
  replace(root, heading, status, summary, body);

  const listTable = table(["Name", "Status", "Cordoned", "Taints", "CPU", "Memory", "Pods"], [], {
    caption: "Nodes",
    empty: "No nodes registered.",
  });
  const podTable = table(["Namespace", "Pod", "Phase", "CPU requested", "Memory requested", "Age"], [], {
    caption: "Pods on this node",
    empty: "No pods on this node.",
  });

  function render() {
    if (stopped) return;
    const err = nodes.error || pods.error;
    status.textContent = err ? `Reconnecting: ${errText(err)}` : "";
    const req = requestedByNode(pods.items);
    const zero = { cpu: 0, memory: 0, pods: 0, running: 0 };
    if (name) return renderOne(req, zero);
    const all = [...nodes.items.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    const tot = { alloc: { cpu: 0, memory: 0, pods: 0 }, req: { ...zero }, used: usage ? { cpu: 0, memory: 0 } : null, off: offers ? { cpu: 0, memory: 0, pods: 0 } : null };
    let notReady = 0;
    let cordoned = 0;
    let tainted = 0;
    const rows = all.map((n) => {
      const nm = n.metadata.name;
      const a = allocatable(n);
      const r = req.get(nm) || zero;
      const u = usage ? usage.get(nm) || null : null;
      const o = offers ? offers.get(nm) || { cpu: 0, memory: 0, pods: 0 } : null;
      for (const k of ["cpu", "memory", "pods"]) {
        tot.alloc[k] += a[k];
        tot.req[k] += r[k];
        if (o) tot.off[k] += o[k];
      }
      tot.req.running += r.running;
      if (tot.used && u) {
        tot.used.cpu += u.cpu;
        tot.used.memory += u.memory;
      }
      const st = ready(n);
      const spec = n.spec || {};
      const taints = spec.taints || [];
      if (st !== "Ready") notReady += 1;
      if (spec.unschedulable) cordoned += 1;
      if (taints.length) tainted += 1;
      const b = bars(a, r, u, o, false);
      return {
        attrs: {
          "data-kind": "Node",
          "data-name": nm,
          class: st !== "Ready" ? "bad" : spec.unschedulable ? "warn" : null,
        },
        cells: [
          objLink("Node", null, nm),
          h("span", { class: ["badge", st === "Ready" ? "ok" : "bad"] }, st),
          spec.unschedulable ? h("span", { class: "badge warn" }, "cordoned") : h("span", { class: "muted" }, "no"),
          taints.length
            ? [h("span", { class: "badge info" }, String(taints.length)), " ", h("span", { class: "mono" }, taints.map(taintText).join(", "))]
            : h("span", { class: "muted" }, "0"),
          b.cpu,
          b.memory,
          b.pods,
        ],
      };
    });
    const tb = bars(tot.alloc, tot.req, tot.used, tot.off);
    replace(
      summary,
      h(
        "p",
        { class: "counts" },
        h("span", {}, h("strong", {}, String(all.length)), " nodes"),
        h("span", {}, h("strong", {}, String(all.length - notReady)), " Ready"),
        h("span", { class: notReady ? "error" : null }, h("strong", {}, String(notReady)), " NotReady"),
        h("span", {}, h("strong", {}, String(cordoned)), " cordoned"),
        h("span", {}, h("strong", {}, String(tainted)), " tainted"),
      ),
      h("div", { class: "cards" }, h("div", { class: "card" }, tb.cpu), h("div", { class: "card" }, tb.memory), h("div", { class: "card" }, tb.pods)),
      legend(usage !== null, offers !== null),
    );
    if (!body.contains(listTable)) replace(body, listTable);
    updateTable(listTable, rows, nodes.loaded && !nodes.items.size ? "No nodes registered." : "Loading...");
  }

  function renderOne(req, zero) {
    const n = nodes.items.get(name);
    if (!n) {
      replace(summary, h("p", {}, nodes.items.size || nodes.error ? `No node named ${name}. ` : "Loading... ", h("a", { href: "#/nodes" }, "All nodes")));
      replace(body);
      return;
    }
    const a = allocatable(n);
    const r = req.get(name) || zero;
    const u = usage ? usage.get(name) || null : null;
    const o = offers ? offers.get(name) || { cpu: 0, memory: 0, pods: 0 } : null;
    const b = bars(a, r, u, o);
    const st = n.status || {};
    const info = st.nodeInfo || {};
    const props = [
      ["Status", stateBadges(n)],
      ["Addresses", (st.addresses || []).map((x) => `${x.type} ${x.address}`).join(", ") || "none"],
      ["Kubelet", info.kubeletVersion || ""],
      ["OS / arch", [info.osImage || info.operatingSystem, info.architecture].filter(Boolean).join(" / ")],
      ["Created", `${age(n.metadata.creationTimestamp)} ago`],
      ["Labels", Object.entries(n.metadata.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ") || "none"],
    ];
    replace(
      summary,
      h("p", {}, h("a", { href: "#/nodes" }, "All nodes")),
      h("dl", { class: "props", "data-kind": "Node", "data-name": name }, props.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      h("div", { class: "cards" }, h("div", { class: "card" }, b.cpu), h("div", { class: "card" }, b.memory), h("div", { class: "card" }, b.pods)),
      legend(usage !== null, offers !== null),
    );
    const conds = table(
      ["Condition", "Status", "Reason", "Message", "Last change"],
      (st.conditions || []).map((c) => [c.type, c.status, c.reason || "", c.message || "", age(c.lastTransitionTime)]),
      { caption: "Conditions" },
    );
    const taints = table(
      ["Key", "Value", "Effect"],
      ((n.spec || {}).taints || []).map((t) => [t.key, t.value || "", t.effect]),
      { caption: "Taints", empty: "No taints." },
    );
    const mine = [...pods.items.values()]
      .filter((p) => (p.spec || {}).nodeName === name)
      .sort((x, y) => `${x.metadata.namespace}/${x.metadata.name}`.localeCompare(`${y.metadata.namespace}/${y.metadata.name}`));
    updateTable(
      podTable,
      mine.map((p) => {
        const pr = podRequests(p);
        return {
          attrs: { "data-kind": "Pod", "data-ns": p.metadata.namespace, "data-name": p.metadata.name },
          cells: [p.metadata.namespace, objLink("Pod", p.metadata.namespace, p.metadata.name), (p.status || {}).phase || "", fmtCPU(pr.cpu), fmtBytes(pr.memory), age(p.metadata.creationTimestamp)],
        };
      }),
      "No pods on this node.",
    );
    replace(body, conds, taints, podTable);
  }

  async function pollUsage() {
    try {
      usage = usageByNode(await getJSON("/apis/metrics.k8s.io/v1beta1/nodes"));
    } catch {
      usage = null;
    }
    render();
  }

  async function pollOffers() {
    if (faces.mesos === false) return;
    try {
      const st = await face("mesos", "state");
      offers = st ? offeredByAgent(st) : null;
    } catch {
      offers = null;
    }
    render();
  }

  const offs = [nodes.subscribe(render), pods.subscribe(render)];
  const timers = [setInterval(pollUsage, 10000), setInterval(pollOffers, 5000), setInterval(render, 30000)];
  pollUsage();
  pollOffers();
  render();
  return () => {
    stopped = true;
    offs.forEach((f) => f());
    timers.forEach(clearInterval);
    nodes.release();
    pods.release();
  };
}
