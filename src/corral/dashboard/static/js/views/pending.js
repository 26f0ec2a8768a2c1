// views/pending.js: the Pool view's "Pending demand and why" table. A helper module that
// views/pool.js imports, not a view: it exports no route, and app.js does not import it.
//
// pendingDemand({api, ui, pods, onChange}) makes the table; pool.js calls update(f, top)
// with its figures (f.pending: the pods without a node and their requests, f.apps / f.jobs:
// the listed Marathon App and ChronosJob objects, f.job: the running task pods per job)
// and the Mesos master's /corral/top, and stop() when it unmounts. Rows, each with
// data-kind / data-name and data-section="pending" (an object can be in the split too):
// - pods without a node: the `corral why` answer, the PodScheduled=False condition's
//   message plus the newest FailedScheduling Event of that pod (its nearest miss split off);
// - Marathon apps short of instances or with a queue: Marathon's /corral/why/<app id>;
// - frameworks the allocator holds demand for: the master's /corral/why/<framework id>;
// - Chronos jobs with claimed runs and no task yet: Chronos' /corral/why/<job>.
// The answers are asked for the first AUTO_WHY rows by themselves (again after WHY_TTL_MS;
// after RETRY_MS when the scheduler had not reported on the pod yet), on demand for the
// rest (the "why?" button). Each answer is cached per row key until the row goes.

import { keepFocus } from "../rows.js";

const AUTO_WHY = 20;
const WHY_TTL_MS = 20000;
const RETRY_MS = 2000;

function faceWhyPath(parts) {
  return `corral/why/${parts.filter(Boolean).map(encodeURIComponent).join("/")}`;
}

export function pendingDemand({ api, ui, pods, onChange }) {
  const { h } = ui;
  const why = new Map(); // row key -> {lines, at, ttl, loading, error}
  let stopped = false;

  const table = ui.table(["Kind", "Name", "Demand", "Age", "Why"], [], {
    caption: "Pending demand",
    empty: "Nothing is waiting.",
  });

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
    if (!forced && had && Date.now() - had.at < had.ttl) return;
    why.set(key, { ...(had || {}), loading: true });
    if (forced) onChange();
    let next;
    try {
      const answer = await load();
      next = { lines: answer.lines, at: Date.now(), ttl: answer.ttl || WHY_TTL_MS, loading: false };
    } catch (e) {
      next = { error: ui.errText(e), at: Date.now(), ttl: WHY_TTL_MS, loading: false };
    }
    if (stopped) return;
    why.set(key, next);
    onChange();
  }

  /** `corral why` for a pod: {lines, ttl}; a short ttl while the scheduler is silent. */
  async function podWhy(key, fallback) {
    const pod = pods.items.get(key) || fallback; // the newest copy, not the one at render
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
    const mine = (list.items || []).filter((e) => (e.involvedObject || {}).uid === meta.uid);
    const when = (e) =>
      e.lastTimestamp || e.eventTime || (e.metadata || {}).creationTimestamp || "";
    mine.sort((a, b) => when(a).localeCompare(when(b)) || (a.count || 0) - (b.count || 0));
    const message = (cond || {}).message || "";
    const eventMsg = mine.length ? mine[mine.length - 1].message || "" : "";
    if (!message && !eventMsg) {
      const who = spec.schedulerName || "default-scheduler";
      return { lines: [`pending: ${who} has not reported on it yet`], ttl: RETRY_MS };
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
    return { lines };
  }

  async function faceWhy(faceName, label, path) {
    const answer = await api.face(faceName, path);
    if (answer === null) return { lines: [`the ${label} API is not running beside this server`] };
    const reasons = answer.reasons || [];
    return { lines: reasons.length ? reasons : ["no reason given"] };
  }

  function podRows(f) {
    const byAge = f.pending.slice().sort((a, b) => {
      const ta = (a.pod.metadata || {}).creationTimestamp || "";
      const tb = (b.pod.metadata || {}).creationTimestamp || "";
      return ta.localeCompare(tb);
    });
    return byAge.map(({ pod, r }) => {
      const meta = pod.metadata || {};
      return {
        key: `Pod/${meta.namespace}/${meta.name}/${meta.uid}`,
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
      };
    });
  }

  function appRows(f) {
    const rows = [];
    for (const [id, obj] of [...f.apps].sort((a, b) => a[0].localeCompare(b[0]))) {
      const st = obj.status || {};
      const want = Number(((obj.spec || {}).app || {}).instances || 0);
      const have = Number(st.tasksRunning || 0) + Number(st.tasksStaged || 0);
      const queued = Number(st.queued || 0);
      if (queued <= 0 && have >= want) continue;
      rows.push({
        key: `MarathonApp/${id}`,
        load: () => faceWhy("marathon", "Marathon", faceWhyPath(id.split("/"))),
        attrs: { "data-kind": "MarathonApp", "data-name": id, "data-section": "pending" },
        cells: [
          "Marathon app",
          ui.objLink("MarathonApp", null, id),
          `${have} of ${want} instances${queued ? `, ${queued} queued` : ""}`,
          ui.age((obj.metadata || {}).creationTimestamp),
        ],
      });
    }
    return rows;
  }

  function frameworkRows(top) {
    const rows = [];
    for (const fw of (top && top.frameworks) || []) {
      if (!fw.pending_demand) continue;
      const name = fw.name || fw.id;
      rows.push({
        key: `Framework/${fw.id}`,
        load: () => faceWhy("mesos", "Mesos master", faceWhyPath([fw.id])),
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
    return rows;
  }

  function jobRows(f) {
    const rows = [];
    for (const [name, obj] of [...f.jobs].sort((a, b) => a[0].localeCompare(b[0]))) {
      const n = Object.keys((obj.status || {}).openRuns || {}).length;
      const running = (f.job.get(name) || { pods: 0 }).pods > 0;
      if (!n || running) continue;
      rows.push({
        key: `ChronosJob/${name}`,
        load: () => faceWhy("chronos", "Chronos", faceWhyPath([name])),
        attrs: { "data-kind": "ChronosJob", "data-name": name, "data-section": "pending" },
        cells: [
          "Chronos job",
          ui.objLink("ChronosJob", null, name),
          `${n} run(s) claimed, no task yet`,
          "",
        ],
      });
    }
    return rows;
  }

  /** Refresh the table from the Pool view's figures and the master's /corral/top. */
  function update(f, top) {
    const rows = [...podRows(f), ...appRows(f), ...frameworkRows(top), ...jobRows(f)];
    const keys = new Set(rows.map((r) => r.key));
    for (const k of why.keys()) if (!keys.has(k)) why.delete(k);
    rows.forEach((row, i) => {
      if (i < AUTO_WHY) loadWhy(row.key, row.load, false);
      row.cells.push(whyCell(row.key, row.load));
    });
    keepFocus(table, () => ui.updateTable(table, rows, "Nothing is waiting."));
  }

  return {
    table,
    update,
    stop: () => {
      stopped = true;
    },
  };
}
