// views/workloads.js (#/workloads): Deployments, DaemonSets, StatefulSets, Jobs, CronJobs.
//
// Mounted by app.js's router; `#/workloads/<Kind>/<ns>/<name>` (ui.objHref's links) opens
// with that object's pods shown and the row scrolled into view. All six lists (the five
// kinds and Pods) are watched (api.live: their watches share the page's one /ui/watch
// stream, so they hold one connection between them). Rows are
// `tr[data-kind][data-ns][data-name]`, and each row can show the pods it owns (through
// ownerReferences: a Deployment's pods are owned by its ReplicaSet
// `<deployment>-<pod-template-hash>`, a CronJob's by its Jobs, the others' directly).
// The safe actions, each confirmed in a <dialog>: scale (Deployments, StatefulSets: a merge patch of the scale subresource, as `kubectl
// scale`) and restart (Deployments: the pod template's kubectl.kubernetes.io/restartedAt
// annotation set to now by a strategic merge patch, as `kubectl rollout restart`).
// Click handlers read the object afresh from the live list, since ui.updateTable keeps
// unchanged rows (and their handlers) across updates.

import {
  byNsName,
  coalesced,
  follow,
  highlightRow,
  keepFocus,
  podList,
  podsRow,
  podsToggle,
} from "../rows.js";

export const route = "#/workloads";
export const title = "Workloads";

const KINDS = [
  { kind: "Deployment", path: "/apis/apps/v1/deployments", plural: "deployments", title: "Deployments" },
  { kind: "DaemonSet", path: "/apis/apps/v1/daemonsets", plural: "daemonsets", title: "DaemonSets" },
  { kind: "StatefulSet", path: "/apis/apps/v1/statefulsets", plural: "statefulsets", title: "StatefulSets" },
  { kind: "Job", path: "/apis/batch/v1/jobs", plural: "jobs", title: "Jobs" },
  { kind: "CronJob", path: "/apis/batch/v1/cronjobs", plural: "cronjobs", title: "CronJobs" },
];
const GROUP_PATH = { Deployment: "/apis/apps/v1", StatefulSet: "/apis/apps/v1" };

function cond(obj, type) {
  return ((obj.status || {}).conditions || []).find((c) => c.type === type) || null;
}

function fmtDuration(sec) {
  if (!Number.isFinite(sec) || sec < 0) return "";
  if (sec < 120) return `${Math.round(sec)}s`;
  const m = Math.floor(sec / 60);
  if (m < 120) return `${m}m${Math.round(sec % 60)}s`;
  return `${Math.floor(m / 60)}h${m % 60}m`;
}

export function mount(root, ctx) {
  const { api, ui, params } = ctx;
  const { h } = ui;
  const lv = {};
  for (const k of KINDS) lv[k.kind] = api.live(k.path);
  lv.Pod = api.live("/api/v1/pods");
  const open = new Set(); // "Kind/ns/name" whose pods are shown
  let focusKey = null;
  if (params && params.length >= 3) {
    focusKey = `${params[0]}/${decodeURIComponent(params[1])}/${decodeURIComponent(params[2])}`;
    open.add(focusKey);
  }
  let stopped = false;

  const tables = {};
  const sections = KINDS.map((k) => {
    const cols = {
      Deployment: ["Name", "Desired", "Updated", "Ready", "Available", "Rollout", "Progressing", "Age", "Actions"],
      DaemonSet: ["Name", "Desired", "Current", "Ready", "Updated", "Available", "Age", "Actions"],
      StatefulSet: ["Name", "Replicas", "Ready", "Current", "Updated", "Age", "Actions"],
      Job: ["Name", "Completions", "Active", "Succeeded", "Failed", "Duration", "Status", "Age", "Actions"],
      CronJob: ["Name", "Schedule", "Suspend", "Last schedule", "Last success", "Active", "Age", "Actions"],
    }[k.kind];
    tables[k.kind] = ui.table(cols, [], { empty: `No ${k.title}.` });
    const id = `wl-${k.plural}`;
    return h(
      "section",
      { "aria-labelledby": id },
      h("h2", { id }, k.title),
      tables[k.kind],
    );
  });
  root.replaceChildren(h("h1", {}, "Workloads"), ...sections);

  // ---- owners and pods ----

  function ownedBy() {
    // owner uid -> [pods] and -> [jobs]; "ns/replicaset name" -> [pods]
    const pods = new Map();
    const byRs = new Map();
    const jobs = new Map();
    const push = (map, k, o) => {
      if (!map.has(k)) map.set(k, []);
      map.get(k).push(o);
    };
    for (const p of lv.Pod.items.values()) {
      const m = p.metadata || {};
      for (const ref of m.ownerReferences || []) {
        push(pods, ref.uid, p);
        if (ref.kind === "ReplicaSet") push(byRs, `${m.namespace}/${ref.name}`, p);
      }
    }
    for (const j of lv.Job.items.values()) {
      for (const ref of (j.metadata || {}).ownerReferences || []) push(jobs, ref.uid, j);
    }
    return { pods, byRs, jobs };
  }

  function podsOf(kind, obj, owned) {
    const m = obj.metadata || {};
    if (kind === "Deployment") {
      // its ReplicaSets are named <deployment>-<pod-template-hash>
      const out = [];
      for (const [rs, pods] of owned.byRs) {
        for (const p of pods) {
          const hash = ((p.metadata || {}).labels || {})["pod-template-hash"];
          if (hash && rs === `${m.namespace}/${m.name}-${hash}`) out.push(p);
        }
      }
      return out;
    }
    if (kind === "CronJob") {
      return (owned.jobs.get(m.uid) || []).flatMap((j) => owned.pods.get(j.metadata.uid) || []);
    }
    return owned.pods.get(m.uid) || [];
  }

  // ---- actions ----

  function current(kind, ns, name) {
    return lv[kind].items.get(`${ns}/${name}`) || null;
  }

  async function scale(kind, ns, name) {
    const obj = current(kind, ns, name);
    if (!obj) return;
    const now = (obj.spec || {}).replicas ?? 1;
    const n = await ui.askScale(`Scale ${kind} ${ns}/${name} (now ${now} replicas) to:`, {
      now,
      label: "Replicas",
      title: `Scale ${name}`,
      noun: "replicas",
    });
    if (n === null) return;
    const plural = kind === "Deployment" ? "deployments" : "statefulsets";
    const path =
      `${GROUP_PATH[kind]}/namespaces/${encodeURIComponent(ns)}/${plural}/` +
      `${encodeURIComponent(name)}/scale`;
    try {
      await api.send("PATCH", path, { spec: { replicas: n } }, "application/merge-patch+json");
      ui.toast(`${kind} ${ns}/${name} scaled to ${n}.`);
    } catch (e) {
      ui.toast(`Scaling ${ns}/${name} failed: ${ui.errText(e)}`, "error");
    }
  }

  async function restart(ns, name) {
    if (!current("Deployment", ns, name)) return;
    const ok = await ui.confirm(
      `Restart the rollout of Deployment ${ns}/${name}? Its pods are replaced as its strategy allows.`,
      { title: `Restart ${name}`, confirmLabel: "Restart" },
    );
    if (!ok) return;
    const at = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    const body = {
      spec: { template: { metadata: { annotations: { "kubectl.kubernetes.io/restartedAt": at } } } },
    };
    const path = `/apis/apps/v1/namespaces/${encodeURIComponent(ns)}/deployments/${encodeURIComponent(name)}`;
    try {
      await api.send("PATCH", path, body, "application/strategic-merge-patch+json");
      ui.toast(`Deployment ${ns}/${name} restarted.`);
    } catch (e) {
      ui.toast(`Restarting ${ns}/${name} failed: ${ui.errText(e)}`, "error");
    }
  }

  function actions(kind, ns, name, podCount) {
    const key = `${kind}/${ns}/${name}`;
    const out = [podsToggle(open, key, podCount, render)];
    if (kind === "Deployment" || kind === "StatefulSet") {
      out.push(
        " ",
        h(
          "button",
          { type: "button", class: "btn small", "data-action": "scale", onClick: () => scale(kind, ns, name) },
          "Scale…",
        ),
      );
    }
    if (kind === "Deployment") {
      out.push(
        " ",
        h(
          "button",
          { type: "button", class: "btn small", "data-action": "restart", onClick: () => restart(ns, name) },
          "Restart…",
        ),
      );
    }
    return h("span", { class: "actions" }, out);
  }

  // ---- rows per kind ----

  function cells(kind, o, now) {
    const spec = o.spec || {};
    const st = o.status || {};
    const m = o.metadata || {};
    switch (kind) {
      case "Deployment": {
        const want = spec.replicas ?? 1;
        const updated = st.updatedReplicas || 0;
        const avail = Math.min(updated, st.availableReplicas || 0);
        const p = cond(o, "Progressing");
        const done = p && p.reason === "NewReplicaSetAvailable" && updated >= want;
        return [
          want,
          updated,
          st.readyReplicas || 0,
          st.availableReplicas || 0,
          ui.bar({
            label: done ? "complete" : spec.paused ? "paused" : "rolling out",
            parts: [
              { value: avail, cls: "used", title: "updated and available" },
              { value: Math.max(0, updated - avail), cls: "requested", title: "updated, not yet available" },
            ],
            total: Math.max(want, updated),
            unit: "",
          }),
          p ? `${p.status}: ${p.reason || ""}${p.message ? ` (${p.message})` : ""}` : "–",
        ];
      }
      case "DaemonSet":
        return [
          st.desiredNumberScheduled || 0,
          st.currentNumberScheduled || 0,
          st.numberReady || 0,
          st.updatedNumberScheduled || 0,
          st.numberAvailable || 0,
        ];
      case "StatefulSet":
        return [spec.replicas ?? 1, st.readyReplicas || 0, st.currentReplicas || 0, st.updatedReplicas || 0];
      case "Job": {
        const start = st.startTime ? Date.parse(st.startTime) : NaN;
        const end = st.completionTime ? Date.parse(st.completionTime) : now;
        const complete = cond(o, "Complete");
        const failed = cond(o, "Failed");
        let state = st.active ? "Running" : "Pending";
        if (complete && complete.status === "True") state = "Complete";
        else if (failed && failed.status === "True") state = `Failed: ${failed.reason || ""}`;
        else if (spec.suspend) state = "Suspended";
        return [
          `${st.succeeded || 0}/${spec.completions ?? 1}`,
          st.active || 0,
          st.succeeded || 0,
          st.failed || 0,
          fmtDuration((end - start) / 1000),
          state,
        ];
      }
      case "CronJob":
        return [
          h("code", {}, spec.schedule || ""),
          spec.suspend ? "Yes" : "No",
          st.lastScheduleTime ? `${ui.age(st.lastScheduleTime)} ago` : "never",
          st.lastSuccessfulTime ? `${ui.age(st.lastSuccessfulTime)} ago` : "never",
          (st.active || []).length,
        ];
      default:
        return [m.name];
    }
  }

  function rows(kind, owned) {
    const now = Date.now();
    const out = [];
    for (const o of [...lv[kind].items.values()].sort(byNsName)) {
      const m = o.metadata || {};
      const key = `${kind}/${m.namespace}/${m.name}`;
      const pods = podsOf(kind, o, owned);
      out.push({
        attrs: { "data-kind": kind, "data-ns": m.namespace, "data-name": m.name, "data-key": key },
        cells: [
          h("span", {}, h("span", { class: "ns" }, `${m.namespace}/`), h("strong", {}, m.name)),
          ...cells(kind, o, now),
          ui.age(m.creationTimestamp),
          actions(kind, m.namespace, m.name, pods.length),
        ],
      });
      if (open.has(key)) out.push(podsRow(key, tables[kind].columnCount, podList(pods, { counts: true })));
    }
    return out;
  }

  function render() {
    if (stopped) return;
    const owned = ownedBy();
    keepFocus(root, () => {
      for (const k of KINDS) ui.updateTable(tables[k.kind], rows(k.kind, owned), `No ${k.title}.`);
    });
    if (focusKey) {
      const [kind, ns, name] = focusKey.split("/");
      const row = { "data-kind": kind, "data-ns": ns, "data-name": name };
      if (highlightRow(root, row)) focusKey = null;
    }
  }

  const schedule = coalesced(render, 150);

  const unfollow = follow(Object.values(lv), schedule);
  render();
  // durations and ages move on even when nothing changes
  const ticker = setInterval(schedule, 5000);

  return () => {
    stopped = true;
    clearInterval(ticker);
    schedule.cancel();
    unfollow();
  };
}
