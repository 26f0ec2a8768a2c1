// views/events.js: the cluster's events as a live feed (#/events), newest first.
//
// Mounted by app.js's router over the shared /api/v1/events watch. `#/events/<ns>/<kind>/
// <name>` narrows the feed to one object's events (the pod detail links there). The table
// body is aria-live polite so a screen reader hears new events as they arrive.

import { live } from "../api.js";
import { h, table, updateTable, replace, objLink, age, errText } from "../ui.js";
import { evTime, evNewestFirst } from "./pods.js";

export const route = "#/events";
export const title = "Events";

const SHOWN = 300; // newest events in the table

export function mount(root, ctx) {
  const [ns, kind, name] = ctx.params;
  const events = live("/api/v1/events");
  const status = h("p", { class: "muted" });
  const t = table(
    ["Type", "Reason", "Object", "Message", { label: "Count", cls: "num" }, "Age"],
    [],
    { caption: name ? `Events of ${kind} ${ns}/${name}` : "Events, newest first", empty: "Loading..." },
  );
  t.tBodies[0].setAttribute("aria-live", "polite");
  t.tBodies[0].setAttribute("aria-relevant", "additions");
  replace(
    root,
    h("h1", {}, "Events"),
    name ? h("p", {}, "Only the events of ", objLink(kind, ns, name, `${kind} ${ns}/${name}`), ". ", h("a", { href: "#/events" }, "All events")) : null,
    status,
    h("div", { class: "scroll" }, t),
  );

  function render() {
    let all = [...events.items.values()];
    if (name) {
      all = all.filter((e) => {
        const io = e.involvedObject || e.regarding || {};
        return io.kind === kind && io.name === name && (io.namespace || e.metadata.namespace) === ns;
      });
    }
    all.sort(evNewestFirst);
    status.textContent = events.error
      ? `Reconnecting: ${errText(events.error)}`
      : `${all.length} events${all.length > SHOWN ? `, the newest ${SHOWN} shown` : ""}`;
    updateTable(
      t,
      all.slice(0, SHOWN).map((e) => {
        const io = e.involvedObject || e.regarding || {};
        const m = e.metadata;
        return {
          attrs: { "data-kind": "Event", "data-ns": m.namespace, "data-name": m.name, class: e.type === "Warning" ? "warn" : null },
          cells: [
            h("span", { class: ["badge", e.type === "Warning" ? "bad" : "info"] }, e.type || "Normal"),
            e.reason || "",
            io.kind ? [h("span", { class: "muted" }, `${io.kind} `), objLink(io.kind, io.namespace, io.name, io.namespace ? `${io.namespace}/${io.name}` : io.name)] : "",
            e.message || e.note || "",
            String(e.count || (e.series || {}).count || 1),
            age(evTime(e)),
          ],
        };
      }),
      events.loaded && !events.error ? "No events." : "Loading...",
    );
  }

  const off = events.subscribe(render);
  const timer = setInterval(render, 10000);
  events.ready.then(render);
  render();
  return () => {
    off();
    clearInterval(timer);
    events.release();
  };
}
