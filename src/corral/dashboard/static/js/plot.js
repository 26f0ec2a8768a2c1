// plot.js: the dominant-share plot of the Pool view (svg[data-testid="drf-plot"]).
//
// Called by views/pool.js only: it records one sample per poll (record(shares): a Map of
// series key, "ns:<namespace>" or "role:<role>", to that series' dominant share, 0..1) and
// mounts drfPlot(ui), whose draw() renders
// - an SVG line plot of every series over the last 5 minutes (one line per series, colours
//   and dash patterns so colour is not the only carrier; presentation attributes only, as
//   the page's CSP forbids inline style sheets),
// - a legend with each series' last value,
// - the same numbers as a table (each series at every minute mark) for screen readers.
// The samples are kept here at module level, so leaving the Pool view and coming back keeps
// the plot's history; sampling itself only happens while the view is mounted.

export const SAMPLE_MS = 3000; // the Pool view's poll: one sample each
export const WINDOW_S = 300;

// [{t: ms, shares: Map(series key -> dominant share)}], oldest first
const samples = [];

const COLOURS = ["#1f5fa8", "#b3261e", "#2e7d32", "#6a1b9a", "#8a5a00", "#00695c", "#ad1457", "#37474f"];
const DASHES = ["", "6 3", "2 3", "8 3 2 3"];

/** A share as people read it: "5%", "0.4%". */
export function pct(x) {
  return `${(x * 100).toFixed(x > 0 && x < 0.1 ? 1 : 0)}%`;
}

/** Keep one sample (series key -> dominant share) taken now; drop those out of the window. */
export function record(shares) {
  const now = Date.now();
  samples.push({ t: now, shares });
  while (samples.length && samples[0].t < now - WINDOW_S * 1000 - SAMPLE_MS) samples.shift();
}

function seriesName(key) {
  const [kind, ...rest] = key.split(":");
  return `${kind === "ns" ? "namespace" : "role"} ${rest.join(":")}`;
}

function pen(i) {
  return {
    stroke: COLOURS[i % COLOURS.length],
    "stroke-dasharray": DASHES[Math.floor(i / COLOURS.length) % DASHES.length] || null,
  };
}

/** The SVG plot of `keys` over the window ending at `now`. */
function svgPlot(ui, keys, now) {
  const { s } = ui;
  const W = 720;
  const H = 260;
  const L = 52;
  const R = 12;
  const T = 12;
  const B = 40;
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
    let down = false;
    for (const x of samples) {
      if (x.t < t0) continue;
      const v = x.shares.get(key);
      if (v === undefined) {
        down = false;
        continue;
      }
      d += `${down ? "L" : "M"}${X(x.t).toFixed(1)} ${Y(v).toFixed(1)} `;
      down = true;
    }
    return s("path", { d: d.trim() || "M0 0", fill: "none", "stroke-width": 2, ...pen(i), "data-series": key });
  });
  return s(
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
      `Sampled every ${SAMPLE_MS / 1000} s over the last 5 minutes; ` +
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
}

/** The legend's items: a line sample and the series' last value. */
function legendItems(ui, keys) {
  const { h, s } = ui;
  const last = samples.length ? samples[samples.length - 1].shares : new Map();
  return keys.map((key, i) =>
    h(
      "li",
      { "data-key": key, "data-series": key },
      s(
        "svg",
        { width: 28, height: 10, "aria-hidden": "true", focusable: "false" },
        s("line", { x1: 0, x2: 28, y1: 5, y2: 5, "stroke-width": 3, ...pen(i) }),
      ),
      ` ${seriesName(key)}: ${last.has(key) ? pct(last.get(key)) : "–"}`,
    ),
  );
}

/** The text alternative: each series at every minute mark (nearest earlier sample). */
function numbersTable(ui, keys, now) {
  const marks = [5, 4, 3, 2, 1, 0].map((m) => now - m * 60000);
  const at = (key, t) => {
    let v;
    for (const x of samples) {
      if (x.t > t) break;
      if (x.shares.has(key)) v = x.shares.get(key);
    }
    return v === undefined ? "–" : pct(v);
  };
  return ui.table(
    ["Series", "5 min ago", "4 min ago", "3 min ago", "2 min ago", "1 min ago", "now"],
    keys.map((key) => [seriesName(key), ...marks.map((t) => at(key, t))]),
    { caption: "Dominant share by minute", empty: "No samples yet." },
  );
}

/**
 * The plot's DOM: {nodes, draw}. `nodes` go into the caller's section (plot, legend, and a
 * <details> with the table); draw() redraws all three from the samples recorded so far.
 */
export function drfPlot(ui) {
  const { h } = ui;
  const plotBox = h("div", { class: "plot" });
  const legend = h("ul", {
    class: "legend",
    "aria-label": "Plot legend",
    style: { "list-style": "none", "padding-left": "0" },
  });
  const tableBox = h("div", {});
  const details = h("details", {}, h("summary", {}, "The plot's numbers as a table"), tableBox);

  function draw() {
    const keys = [...new Set(samples.flatMap((x) => [...x.shares.keys()]))].sort();
    const now = Date.now();
    plotBox.replaceChildren(svgPlot(ui, keys, now));
    ui.patchChildren(legend, legendItems(ui, keys));
    tableBox.replaceChildren(numbersTable(ui, keys, now));
  }

  return { nodes: [plotBox, legend, details], draw };
}
