// views/frameworks.js (#/frameworks): the Mesos frameworks and the Marathon apps.
//
// Mounted by app.js's router; `#/frameworks/<name>` and `#/frameworks/app/<id>` (the links
// ui.objHref makes) open with that row's pods shown and scrolled into view.
// - Frameworks: the live Framework objects (mesos.corral.dev/v1: metadata.name is the
//   framework id, spec.frameworkInfo its FrameworkInfo, status connected/active) joined with
//   the master's /state-summary (polled every 5 s: resources used and offered, task counts
//   by state; the full /state would carry every task). Rows: data-kind="Framework",
//   data-name = the framework's name, data-id = its id.
// - Marathon apps: the live App objects (marathon.corral.dev/v1, namespace marathon:
//   spec.app the definition, status the instance counts and running deployment ids) joined
//   with Marathon's /v2/deployments (polled every 3 s) for each deployment's current step.
//   Rows: data-kind="MarathonApp", data-name = the app id ("/web"). Scale is a PUT
//   /v2/apps/<id> {"instances": n} through the Marathon face, after a <dialog>.
// The pods of either are the task pods in namespace `mesos`: label
// mesos.corral.dev/framework-id for a framework, marathon.corral.dev/app for an app.

import { coalesced, follow, highlightRow, keepFocus, podList, podsRow, podsToggle } from "../rows.js";
import {
  appLabel,
  FRAMEWORK_ID_LABEL,
  LABEL_OK,
  MARATHON_APP_ID_KEY,
  MARATHON_APP_LABEL,
  taskLabels,
} from "../tasks.js";

export const route = "#/frameworks";
export const title = "Frameworks";

const ACTIVE_STATES = ["TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING"];

function res(r) {
  return r || { cpus: 0, mem: 0 };
}

export function mount(root, ctx) {
  const { api, ui, params } = ctx;
  const { h } = ui;
  const MIB = 2 ** 20;
  const lv = {
    fw: api.live("/apis/mesos.corral.dev/v1/frameworks"),
    apps: api.live("/apis/marathon.corral.dev/v1/apps"),
    pods: api.live("/api/v1/pods"),
  };
  let summary = null; // the master's /state-summary (null: no master)
  let summaryNote = "";
  let deployments = null; // Marathon's /v2/deployments (null: no Marathon)
  let deploymentsNote = "";
  const open = new Set();
  let focusKey = null;
  if (params && params.length) {
    if (params[0] === "app" && params.length > 1) {
      focusKey = `MarathonApp/${"/" + params.slice(1).map(decodeURIComponent).join("/").replace(/^\/+/, "")}`;
    } else {
      focusKey = `Framework/${decodeURIComponent(params[0])}`;
    }
    open.add(focusKey);
  }
  let stopped = false;

  const fwNote = h("p", { class: "note" });
  const fwTable = ui.table(
    ["Name", "ID", "Roles", "State", "Tasks", "Used", "Offered", "Registered", "Pods"],
    [],
    { empty: "No framework is registered." },
  );
  const appNote = h("p", { class: "note" });
  const appTable = ui.table(
    ["App", "Instances", "Running", "Staged", "Healthy", "Resources (each)", "Deployments", "Actions"],
    [],
    { empty: "No Marathon app." },
  );
  root.replaceChildren(
    h("h1", {}, "Frameworks"),
    h(
      "section",
      { "aria-labelledby": "fw-h" },
      h("h2", { id: "fw-h" }, "Mesos frameworks"),
      fwNote,
      fwTable,
    ),
    h(
      "section",
      { "aria-labelledby": "apps-h" },
      h("h2", { id: "apps-h" }, "Marathon apps"),
      appNote,
      appTable,
    ),
  );

  // ---- pods ----

  function podIndex() {
    const byFw = new Map();
    const byApp = new Map(); // label value (or app id from the task info) -> pods
    for (const p of lv.pods.items.values()) {
      const m = p.metadata || {};
      if (m.namespace !== "mesos") continue;
      const labels = m.labels || {};
      const fid = labels[FRAMEWORK_ID_LABEL];
      if (fid) {
        if (!byFw.has(fid)) byFw.set(fid, []);
        byFw.get(fid).push(p);
      }
      const al = labels[MARATHON_APP_LABEL];
      if (al !== undefined) {
        const k = LABEL_OK.test(al) ? al : taskLabels(p)[MARATHON_APP_ID_KEY] || al;
        if (!byApp.has(k)) byApp.set(k, []);
        byApp.get(k).push(p);
      }
    }
    return { byFw, byApp };
  }

  // ---- frameworks ----

  function fwRows(idx) {
    const sum = new Map();
    for (const f of (summary || {}).frameworks || []) sum.set(f.id, f);
    const rows = [];
    const objs = [...lv.fw.items.values()];
    // frameworks the master knows but whose object is not (yet) listed
    const known = new Set(objs.map((o) => o.metadata.name));
    for (const f of sum.values()) {
      if (!known.has(f.id)) {
        objs.push({ metadata: { name: f.id }, spec: { frameworkInfo: { name: f.name } }, status: {} });
      }
    }
    objs.sort((a, b) => {
      const na = ((a.spec || {}).frameworkInfo || {}).name || a.metadata.name;
      const nb = ((b.spec || {}).frameworkInfo || {}).name || b.metadata.name;
      return na.localeCompare(nb) || a.metadata.name.localeCompare(b.metadata.name);
    });
    for (const o of objs) {
      const id = o.metadata.name;
      const info = (o.spec || {}).frameworkInfo || {};
      const st = o.status || {};
      const name = info.name || id;
      const s = sum.get(id);
      const key = `Framework/${name}`;
      const pods = (idx.byFw.get(id) || []).filter(
        (p) => !["Succeeded", "Failed"].includes((p.status || {}).phase),
      );
      const connected = s ? s.connected : st.connected;
      const active = s ? s.active : st.active;
      const tasks = s
        ? ACTIVE_STATES.map((k) => [k, s[k] || 0])
            .filter(([, n]) => n)
            .map(([k, n]) => `${n} ${k.replace("TASK_", "").toLowerCase()}`)
            .join(", ") || "none"
        : "n/a";
      const used = s ? res(s.used_resources) : null;
      const offered = s ? res(s.offered_resources) : null;
      const fmt = (r) => (r ? `${ui.fmtCPU(r.cpus)} cpu, ${ui.fmtBytes(r.mem * MIB)}` : "n/a");
      rows.push({
        attrs: { "data-kind": "Framework", "data-name": name, "data-id": id, "data-key": key },
        cells: [
          h("strong", {}, name),
          h("code", {}, id),
          (info.roles || (info.role ? [info.role] : ["*"])).join(", "),
          `${connected ? "connected" : "disconnected"}${active === false ? ", inactive" : ""}`,
          tasks,
          fmt(used),
          fmt(offered),
          st.registeredTime ? `${ui.age(st.registeredTime)} ago` : "",
          podsToggle(open, key, pods.length, render),
        ],
      });
      if (open.has(key)) rows.push(podsRow(key, fwTable.columnCount, podList(pods)));
    }
    return rows;
  }

  // ---- Marathon apps ----

  async function scaleApp(id) {
    const obj = [...lv.apps.items.values()].find((o) => ((o.spec || {}).app || {}).id === id);
    if (!obj) return;
    const now = ((obj.spec || {}).app || {}).instances ?? 0;
    const n = await ui.askScale(`Scale Marathon app ${id} (now ${now} instances) to:`, {
      now,
      label: "Instances",
      title: `Scale ${id}`,
      noun: "instances",
    });
    if (n === null) return;
    const path = `v2/apps/${id
      .split("/")
      .filter(Boolean)
      .map(encodeURIComponent)
      .join("/")}`;
    try {
      const answer = await api.faceSend("marathon", "PUT", path, { instances: n });
      if (answer === null) ui.toast("The Marathon API is not running beside this server.", "error");
      else ui.toast(`Marathon app ${id} scaled to ${n} (deployment ${answer.deploymentId || "started"}).`);
    } catch (e) {
      ui.toast(`Scaling ${id} failed: ${ui.errText(e)}`, "error");
    }
  }

  function deploymentText(depId, id) {
    const d = (deployments || []).find((x) => x.id === depId);
    if (!d) return h("li", {}, h("code", {}, depId));
    const acts = (d.currentActions || [])
      .filter((a) => !id || a.app === id)
      .map((a) => a.action)
      .join(", ");
    return h(
      "li",
      { "data-deployment": depId },
      h("code", {}, depId.slice(0, 8)),
      ` step ${d.currentStep || 0} of ${d.totalSteps || 0}${acts ? `: ${acts}` : ""}`,
    );
  }

  function appRows(idx) {
    const rows = [];
    const apps = [...lv.apps.items.values()]
      .filter((o) => ((o.spec || {}).app || {}).id)
      .sort((a, b) => String(a.spec.app.id).localeCompare(String(b.spec.app.id)));
    for (const o of apps) {
      const app = o.spec.app;
      const id = String(app.id);
      const st = o.status || {};
      const key = `MarathonApp/${id}`;
      const label = appLabel(id);
      const pods = (idx.byApp.get(label || id) || []).filter(
        (p) => !["Succeeded", "Failed"].includes((p.status || {}).phase),
      );
      const want = Number(app.instances || 0);
      const running = Number(st.tasksRunning || 0);
      const deps = st.deployments || [];
      rows.push({
        attrs: { "data-kind": "MarathonApp", "data-name": id, "data-key": key },
        cells: [
          h("strong", {}, id),
          ui.bar({
            label: `${running}/${want}`,
            parts: [
              { value: running, cls: "used", title: "running" },
              { value: Number(st.tasksStaged || 0), cls: "requested", title: "staged" },
            ],
            total: Math.max(want, running + Number(st.tasksStaged || 0)),
          }),
          running,
          st.tasksStaged || 0,
          `${st.tasksHealthy || 0}${st.tasksUnhealthy ? ` (${st.tasksUnhealthy} unhealthy)` : ""}`,
          `${ui.fmtCPU(Number(app.cpus || 0))} cpu, ${ui.fmtBytes(Number(app.mem || 0) * MIB)}`,
          deps.length
            ? h("ul", { class: "deployments" }, deps.map((d) => deploymentText(d.id, id)))
            : st.queued
              ? `${st.queued} queued`
              : "none",
          h(
            "span",
            { class: "actions" },
            h(
              "button",
              { type: "button", class: "btn small", "data-action": "scale", onClick: () => scaleApp(id) },
              "Scale…",
            ),
            " ",
            podsToggle(open, key, pods.length, render),
          ),
        ],
      });
      if (open.has(key)) rows.push(podsRow(key, appTable.columnCount, podList(pods)));
    }
    return rows;
  }

  // ---- rendering and polling ----

  function render() {
    if (stopped) return;
    const idx = podIndex();
    fwNote.textContent = summaryNote;
    appNote.textContent = deploymentsNote;
    keepFocus(root, () => {
      ui.updateTable(fwTable, fwRows(idx), "No framework is registered.");
      ui.updateTable(appTable, appRows(idx), "No Marathon app.");
    });
    if (focusKey) {
      const [kind, ...rest] = focusKey.split("/");
      const name = kind === "MarathonApp" ? `/${rest.slice(1).join("/")}` : rest.join("/");
      if (highlightRow(root, { "data-kind": kind, "data-name": name })) focusKey = null;
    }
  }

  const schedule = coalesced(render, 150);

  async function pollMaster() {
    try {
      summary = await api.face("mesos", "state-summary");
      summaryNote = summary ? "" : "The Mesos master is not running beside this server.";
    } catch (e) {
      summary = null;
      summaryNote = `The master's state is unavailable: ${ui.errText(e)}`;
    }
    schedule();
  }

  async function pollMarathon() {
    try {
      deployments = await api.face("marathon", "v2/deployments");
      deploymentsNote = deployments === null ? "The Marathon API is not running beside this server." : "";
    } catch (e) {
      deployments = null;
      deploymentsNote = `Marathon's deployments are unavailable: ${ui.errText(e)}`;
    }
    schedule();
  }

  const unfollow = follow(Object.values(lv), schedule);
  render();
  pollMaster();
  pollMarathon();
  const timers = [setInterval(pollMaster, 5000), setInterval(pollMarathon, 3000)];

  return () => {
    stopped = true;
    for (const t of timers) clearInterval(t);
    schedule.cancel();
    unfollow();
  };
}
