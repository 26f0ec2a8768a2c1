// views/pods.js: every pod (#/pods) and one pod (#/pods/<ns>/<name>).
//
// Mounted by app.js's router. The list is a live table over the shared /api/v1/pods watch;
// the detail shows the pod's status, containers and conditions, links to its owner, node
// and events, streams its logs live into pre[data-testid="logs"] (restarted whenever the
// selected container is (re)started: a new container id or pod uid) and offers a delete
// (button[data-action="delete"], confirmed in a dialog).

import { live, send, streamText } from "../api.js";
import {
  h, table, updateTable, replace, objLink, age, fmtCPU, fmtBytes, podRequests, confirm, toast,
  errText,
} from "../ui.js";

export const route = "#/pods";
export const title = "Pods";

const LOG_LIMIT = 1 << 20; // characters of log kept in the page

/** kubectl's STATUS column: the reason a container or the pod gives, else the phase. */
export function podStatus(p) {
  const st = p.status || {};
  if ((p.metadata || {}).deletionTimestamp) return "Terminating";
  let reason = st.reason || st.phase || "Unknown";
  for (const c of st.initContainerStatuses || []) {
    const s = c.state || {};
    if (s.terminated && s.terminated.exitCode === 0) continue;
    if (s.terminated) return `Init:${s.terminated.reason || `ExitCode:${s.terminated.exitCode}`}`;
    if (s.waiting && s.waiting.reason && s.waiting.reason !== "PodInitializing") return `Init:${s.waiting.reason}`;
    if (s.waiting || s.running) return "Init";
  }
  for (const c of st.containerStatuses || []) {
    const s = c.state || {};
    if (s.waiting && s.waiting.reason) reason = s.waiting.reason;
    else if (s.terminated && s.terminated.reason && reason === st.phase && st.phase !== "Running") {
      reason = s.terminated.reason;
    }
  }
  return reason;
}

function readyCount(p) {
  const cs = (p.status || {}).containerStatuses || [];
  const total = ((p.spec || {}).containers || []).length;
  return `${cs.filter((c) => c.ready).length}/${total}`;
}

function restarts(p) {
  return ((p.status || {}).containerStatuses || []).reduce((n, c) => n + (c.restartCount || 0), 0);
}

function owner(p) {
  const refs = (p.metadata || {}).ownerReferences || [];
  return refs.find((r) => r.controller) || refs[0] || null;
}

function statusBadge(p) {
  const s = podStatus(p);
  const cls = s === "Running" || s === "Succeeded" || s === "Completed" ? "ok"
    : s === "Pending" || s === "ContainerCreating" || s === "Terminating" || s.startsWith("Init") ? "warn" : "bad";
  return h("span", { class: ["badge", cls] }, s);
}

function ownerLink(p) {
  const o = owner(p);
  if (!o) return h("span", { class: "muted" }, "none");
  return [h("span", { class: "muted" }, `${o.kind} `), objLink(o.kind, p.metadata.namespace, o.name)];
}

export function mount(root, ctx) {
  if (ctx.params.length >= 2) return mountDetail(root, ctx.params[0], ctx.params[1]);
  return mountList(root);
}

function mountList(root) {
  const pods = live("/api/v1/pods");
  const status = h("p", { class: "muted", role: "status" });
  const t = table(
    ["Namespace", "Name", "Status", "Ready", { label: "Restarts", cls: "num" }, "Node", "Owner", "Age"],
    [],
    { caption: "Pods, live", empty: "Loading..." },
  );
  replace(root, h("h1", {}, "Pods"), status, h("div", { class: "scroll" }, t));

  function render() {
    status.textContent = pods.error ? `Reconnecting: ${errText(pods.error)}` : `${pods.items.size} pods`;
    const all = [...pods.items.values()].sort((a, b) =>
      `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`),
    );
    updateTable(
      t,
      all.map((p) => {
        const m = p.metadata;
        const node = (p.spec || {}).nodeName;
        return {
          attrs: { "data-kind": "Pod", "data-ns": m.namespace, "data-name": m.name },
          cells: [
            m.namespace,
            objLink("Pod", m.namespace, m.name),
            statusBadge(p),
            readyCount(p),
            h("span", { class: "num" }, String(restarts(p))),
            node ? objLink("Node", null, node) : h("span", { class: "muted" }, "unscheduled"),
            ownerLink(p),
            age(m.creationTimestamp),
          ],
        };
      }),
      pods.loaded && !pods.error ? "No pods." : "Loading...",
    );
  }

  const off = pods.subscribe(render);
  const timer = setInterval(render, 10000);
  pods.ready.then(render);
  render();
  return () => {
    off();
    clearInterval(timer);
    pods.release();
  };
}

function containerState(cs) {
  const s = (cs && cs.state) || {};
  if (s.running) return `running since ${age(s.running.startedAt)}`;
  if (s.waiting) return `waiting: ${s.waiting.reason || ""}${s.waiting.message ? ` (${s.waiting.message})` : ""}`;
  if (s.terminated) return `terminated: ${s.terminated.reason || ""} (exit ${s.terminated.exitCode})`;
  return "unknown";
}

function mountDetail(root, ns, name) {
  const key = `${ns}/${name}`;
  const pods = live("/api/v1/pods");
  const events = live("/api/v1/events");
  const base = `/api/v1/namespaces/${encodeURIComponent(ns)}/pods/${encodeURIComponent(name)}`;

  const heading = h("h1", {}, "Pod ", h("span", { class: "mono" }, key));
  const state = h("p", { class: "muted", role: "status" });
  const delBtn = h("button", { type: "button", class: "btn danger", "data-action": "delete" }, "Delete pod");
  const props = h("div", {});
  const contTable = table(["Container", "Image", "Ready", { label: "Restarts", cls: "num" }, "State", "Requests"], [], { caption: "Containers" });
  const condTable = table(["Condition", "Status", "Reason", "Message", "Last change"], [], { caption: "Conditions", empty: "No conditions yet." });
  const evTable = table(["Type", "Reason", "Message", { label: "Count", cls: "num" }, "Age"], [], { caption: "Events", empty: "No events." });
  const picker = h("select", { id: "log-container", "aria-label": "Container" });
  const pickerWrap = h("span", { class: "field-inline" }, h("label", { for: "log-container" }, "Container "), picker);
  const logState = h("span", { class: "muted", role: "status" });
  const logs = h("pre", { class: "logs", "data-testid": "logs", tabindex: "0", role: "log", "aria-label": "Logs" });

  replace(
    root,
    h("p", {}, h("a", { href: "#/pods" }, "All pods")),
    heading,
    state,
    h("div", { class: "actions" }, delBtn, h("a", { href: `#/events/${encodeURIComponent(ns)}/Pod/${encodeURIComponent(name)}` }, "Events of this pod")),
    props,
    h("div", { class: "scroll" }, contTable),
    h("div", { class: "scroll" }, condTable),
    h("h2", {}, "Logs"),
    h("div", { class: "logbar" }, pickerWrap, logState),
    logs,
    h("div", { class: "scroll" }, evTable),
  );

  let stopped = false;
  let stream = null; // {key, abort}
  let atBottom = true;
  let lastPod = null;
  logs.addEventListener("scroll", () => {
    atBottom = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 8;
  });

  function appendLog(text) {
    let cur = logs.textContent + text;
    if (cur.length > LOG_LIMIT) cur = cur.slice(cur.length - LOG_LIMIT);
    logs.textContent = cur;
    if (atBottom) logs.scrollTop = logs.scrollHeight;
  }

  function containerNames(p) {
    const spec = p.spec || {};
    return [...(spec.initContainers || []).map((c) => c.name), ...(spec.containers || []).map((c) => c.name)];
  }

  /** (Re)start the log stream when the selected container's instance changed. */
  function followLogs(p) {
    const names = containerNames(p);
    if (!names.length) return;
    const want = picker.value && names.includes(picker.value) ? picker.value : ((p.spec.containers || [])[0] || {}).name || names[0];
    const all = [...((p.status || {}).initContainerStatuses || []), ...((p.status || {}).containerStatuses || [])];
    const cs = all.find((c) => c.name === want) || {};
    const s = cs.state || {};
    const instance = cs.containerID || (s.running || s.terminated ? `restart-${cs.restartCount || 0}` : "");
    const k = `${p.metadata.uid}/${want}/${instance}`;
    if (stream && stream.key === k) return;
    if (stream) stream.abort.abort();
    if (!instance) {
      stream = { key: k, abort: new AbortController() };
      logState.textContent = `Waiting for container ${want} to start...`;
      return;
    }
    const abort = new AbortController();
    stream = { key: k, abort };
    logs.textContent = "";
    atBottom = true;
    logState.textContent = `Streaming ${want}...`;
    const q = `follow=true&tailLines=500&container=${encodeURIComponent(want)}`;
    streamText(`${base}/log?${q}`, appendLog, abort.signal)
      .then(() => {
        if (!abort.signal.aborted && !stopped) logState.textContent = `The log of ${want} has ended.`;
      })
      .catch((e) => {
        if (!abort.signal.aborted && !stopped) logState.textContent = `Logs unavailable: ${errText(e)}`;
      });
  }

  picker.addEventListener("change", () => {
    if (lastPod) {
      if (stream) stream.abort.abort();
      stream = null;
      followLogs(lastPod);
    }
  });

  function render() {
    if (stopped) return;
    const p = pods.items.get(key);
    if (!p) {
      state.textContent = pods.error
        ? `Reconnecting: ${errText(pods.error)}`
        : pods.items.size || lastPod
          ? "This pod does not exist (any more)."
          : "Loading...";
      delBtn.disabled = true;
      renderEvents();
      return;
    }
    lastPod = p;
    delBtn.disabled = false;
    state.textContent = "";
    const m = p.metadata;
    const spec = p.spec || {};
    const st = p.status || {};
    const o = owner(p);
    const rq = podRequests(p);
    replace(
      props,
      h(
        "dl",
        { class: "props", "data-kind": "Pod", "data-ns": m.namespace, "data-name": m.name },
        h("dt", {}, "Status"), h("dd", {}, statusBadge(p), st.message ? ` ${st.message}` : ""),
        h("dt", {}, "Phase"), h("dd", {}, st.phase || ""),
        h("dt", {}, "Node"), h("dd", {}, spec.nodeName ? objLink("Node", null, spec.nodeName) : "not scheduled"),
        h("dt", {}, "Owner"), h("dd", {}, o ? [`${o.kind} `, objLink(o.kind, m.namespace, o.name)] : "none"),
        h("dt", {}, "Pod IP"), h("dd", {}, st.podIP || "none"),
        h("dt", {}, "QoS class"), h("dd", {}, st.qosClass || ""),
        h("dt", {}, "Requests"), h("dd", {}, `cpu ${fmtCPU(rq.cpu)}, memory ${fmtBytes(rq.memory)}`),
        h("dt", {}, "Restarts"), h("dd", {}, String(restarts(p))),
        h("dt", {}, "Created"), h("dd", {}, `${age(m.creationTimestamp)} ago`),
        h("dt", {}, "Labels"), h("dd", { class: "mono" }, Object.entries(m.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ") || "none"),
      ),
    );
    const statuses = new Map([...(st.initContainerStatuses || []), ...(st.containerStatuses || [])].map((c) => [c.name, c]));
    const rows = [];
    for (const [init, list] of [[true, spec.initContainers || []], [false, spec.containers || []]]) {
      for (const c of list) {
        const cs = statuses.get(c.name);
        const r = (c.resources || {}).requests || {};
        rows.push({
          attrs: { "data-key": `${init ? "init" : "c"}/${c.name}` },
          cells: [
            init ? `${c.name} (init)` : c.name,
            h("span", { class: "mono" }, c.image || ""),
            cs ? (cs.ready ? "yes" : "no") : "no",
            String(cs ? cs.restartCount || 0 : 0),
            containerState(cs),
            [r.cpu ? `cpu ${r.cpu}` : "", r.memory ? `memory ${r.memory}` : ""].filter(Boolean).join(", ") || "none",
          ],
        });
      }
    }
    updateTable(contTable, rows);
    updateTable(
      condTable,
      (st.conditions || []).map((c) => ({
        attrs: { "data-key": c.type },
        cells: [c.type, c.status, c.reason || "", c.message || "", age(c.lastTransitionTime)],
      })),
      "No conditions yet.",
    );
    const names = containerNames(p);
    const have = [...picker.options].map((x) => x.value);
    if (have.join("\n") !== names.join("\n")) {
      const sel = picker.value || ((spec.containers || [])[0] || {}).name;
      replace(picker, names.map((n) => h("option", { value: n, selected: n === sel }, n)));
      picker.value = sel;
    }
    pickerWrap.hidden = names.length < 2;
    followLogs(p);
    renderEvents();
  }

  function renderEvents() {
    const mine = [...events.items.values()]
      .filter((e) => {
        const io = e.involvedObject || e.regarding || {};
        return io.kind === "Pod" && io.name === name && (io.namespace || e.metadata.namespace) === ns;
      })
      .sort(evNewestFirst);
    updateTable(
      evTable,
      mine.map((e) => ({
        attrs: { "data-kind": "Event", "data-ns": e.metadata.namespace, "data-name": e.metadata.name },
        cells: [
          h("span", { class: ["badge", e.type === "Warning" ? "bad" : "info"] }, e.type || "Normal"),
          e.reason || "",
          e.message || e.note || "",
          String(e.count || (e.series || {}).count || 1),
          age(evTime(e)),
        ],
      })),
      "No events.",
    );
  }

  delBtn.addEventListener("click", async () => {
    const ok = await confirm(`Delete pod ${key}? Its controller, if any, will make a new one.`, {
      title: "Delete pod",
      confirmLabel: "Delete",
    });
    if (!ok) return;
    try {
      await send("DELETE", base);
      toast(`Pod ${key} is being deleted.`);
    } catch (e) {
      toast(`Could not delete ${key}: ${errText(e)}`, "error");
    }
  });

  const offs = [pods.subscribe(render), events.subscribe(renderEvents)];
  const timer = setInterval(render, 15000);
  render();
  return () => {
    stopped = true;
    if (stream) stream.abort.abort();
    offs.forEach((f) => f());
    clearInterval(timer);
    pods.release();
    events.release();
  };
}

/** An event's newest time in ms (lastTimestamp, eventTime, series, or creation). */
export function evTime(e) {
  const t = e.lastTimestamp || (e.series || {}).lastObservedTime || e.eventTime || e.firstTimestamp || (e.metadata || {}).creationTimestamp;
  const ms = Date.parse(t || "");
  return Number.isNaN(ms) ? 0 : ms;
}

/** Sort order for events: newest first (ties: the later resourceVersion first). */
export function evNewestFirst(a, b) {
  const rv = (e) => parseInt((e.metadata || {}).resourceVersion, 10) || 0;
  return evTime(b) - evTime(a) || rv(b) - rv(a);
}
