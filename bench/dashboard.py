"""The dashboard's first load in headless Chromium, cold and warm (issue 20).

``python -m bench.dashboard --out FILE [--nodes 50] [--pods 200] [--runs 5]``

A fresh ``corral server --hollow-nodes N`` (API server and scheduler; hollow nodes, so
no root is needed) holding ``--pods`` pods bound across them, and Debian's ``chromium``
driven by Playwright (``executable_path``: no browser download). Each run opens
``/ui/#/nodes`` already logged in (an init script puts the admin token into
``sessionStorage["corral.token"]``, as the login form would) and measures, inside the
page, the time from navigation start (``performance.timeOrigin``) to the first view's
first data render: ``document.body.dataset.ready = "1"`` where the app sets it, otherwise
the first ``[data-kind=Node]`` row in the DOM (a ``MutationObserver`` records
``performance.now()`` at that moment, so Playwright's polling adds nothing). Then:

- ``cold``: each run in a new browser context (empty HTTP cache, no connection);
- ``warm``: one context, loaded once, then each run a reload (the cached files are
  revalidated: ``Cache-Control: no-cache`` + ETag answers 304).

For both: the median and every run's milliseconds, and the bytes transferred up to that
moment (``transferSize`` of the navigation and every finished resource: watches still
open are not counted) with the number of requests; ``shell_bytes`` is the part that is
the page's own files under ``/ui/`` (the rest is API data: lists, ``/ui/info``). Figures only: nothing is asserted.
Chromium missing: the benchmark says so and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import write_report
from bench.server import BenchServer

CHROMIUM = "/usr/bin/chromium"
STATIC = Path(__file__).resolve().parents[1] / "src/corral/dashboard/static"

# Runs before the page's own scripts: log in, and note when the first data is shown.
PROBE = """
(() => {
  window.__corralErrors = [];
  addEventListener("error", (e) => window.__corralErrors.push(String(e.message || e.target?.src)), true);
  try { sessionStorage.setItem("corral.token", %s); } catch (e) {}
  const seen = () => {
    if (window.__corralFirst) return true;
    const body = document.body;
    if (body && body.dataset.ready === "1") {
      window.__corralFirst = { ms: performance.now(), by: "data-ready" };
    } else if (!%s && document.querySelector('[data-kind="Node"]')) {
      window.__corralFirst = { ms: performance.now(), by: "first Node row" };
    }
    return !!window.__corralFirst;
  };
  const obs = new MutationObserver(() => { if (seen()) obs.disconnect(); });
  obs.observe(document, { subtree: true, childList: true, attributes: true,
                          attributeFilter: ["data-ready"] });
})();
"""

# What the page fetched up to now: its navigation and every finished resource.
TRANSFERRED = r"""
() => {
  const all = [...performance.getEntriesByType("navigation"),
               ...performance.getEntriesByType("resource")];
  const sum = (es, f) => es.reduce((n, e) => n + (e[f] || 0), 0);
  const shell = all.filter((e) => /\/ui\/(?!faces\/|info|login)/.test(new URL(e.name).pathname)
                                  || new URL(e.name).pathname === "/ui/");
  return { bytes: sum(all, "transferSize"), decoded_bytes: sum(all, "decodedBodySize"),
           requests: all.length, shell_bytes: sum(shell, "transferSize"),
           shell_requests: shell.length };
}
"""


def app_sets_ready() -> bool:
    """Whether the page marks its first data render (``dataset.ready``) itself."""
    return any("dataset.ready" in p.read_text() for p in STATIC.rglob("*.js"))


def kubectl(srv: BenchServer, *args: str, stdin: str | None = None) -> str:
    res = subprocess.run(
        ["kubectl", "--kubeconfig", str(srv.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if res.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {res.stderr}")
    return res.stdout


def seed(srv: BenchServer, nodes: int, pods: int) -> None:
    """Wait for the hollow nodes, then create ``pods`` small pods and wait until bound."""
    deadline = time.monotonic() + 120
    while len(kubectl(srv, "get", "nodes", "-o", "name").split()) < nodes:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{nodes} hollow nodes did not register")
        time.sleep(0.5)
    items = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"load-{i}", "namespace": "default"},
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": "corral.local/busybox:1.35",
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                    }
                ]
            },
        }
        for i in range(pods)
    ]
    if items:
        kubectl(
            srv,
            "apply",
            "-f",
            "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
        )
    selector = "spec.nodeName="
    while kubectl(srv, "get", "pods", "--field-selector", selector, "-o", "name").strip():
        if time.monotonic() > deadline:
            raise RuntimeError("the pods were not all bound")
        time.sleep(0.5)


def load(page: Any, url: str | None) -> dict[str, Any]:
    """Navigate (``url``) or reload (None); the first-render time and the bytes so far."""
    if url is None:
        page.reload(wait_until="commit")
    else:
        page.goto(url, wait_until="commit")
    try:
        page.wait_for_function("() => window.__corralFirst", timeout=60_000)
    except Exception as e:
        errors = page.evaluate("window.__corralErrors || []")
        raise RuntimeError(f"the first view never rendered data: page errors {errors}") from e
    first = page.evaluate("window.__corralFirst")
    return {"ms": round(float(first["ms"]), 1), "by": first["by"], **page.evaluate(TRANSFERRED)}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "median_ms": round(statistics.median(r["ms"] for r in runs), 1),
        "median_bytes": int(statistics.median(r["bytes"] for r in runs)),
        "median_shell_bytes": int(statistics.median(r["shell_bytes"] for r in runs)),
        "requests": runs[-1]["requests"],
        "measured_until": runs[-1]["by"],
        "runs": runs,
    }


def bench(work: Path, nodes: int, pods: int, runs: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    srv = BenchServer.start(work / "server", extra=["--hollow-nodes", str(nodes)])
    try:
        seed(srv, nodes, pods)
        url = f"{srv.url}/ui/#/nodes"
        probe = PROBE % (json.dumps(srv.token), "true" if app_sets_ready() else "false")
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
            )
            try:
                cold = []
                for _ in range(runs):
                    ctx = browser.new_context(ignore_https_errors=True)
                    ctx.add_init_script(probe)
                    cold.append(load(ctx.new_page(), url))
                    ctx.close()
                ctx = browser.new_context(ignore_https_errors=True)
                ctx.add_init_script(probe)
                page = ctx.new_page()
                load(page, url)  # fills the cache
                warm = [load(page, None) for _ in range(runs)]
                ctx.close()
                version = browser.version
            finally:
                browser.close()
        return {
            "nodes": nodes,
            "pods": pods,
            "chromium": version,
            "cold": summary(cold),
            "warm": summary(warm),
        }
    finally:
        srv.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dashboard")
    p.add_argument("--out", default="bench/results/dashboard.json")
    p.add_argument("--nodes", type=int, default=50)
    p.add_argument("--pods", type=int, default=200)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print("dashboard: skipped (Debian's chromium is not installed)", flush=True)
        return 0
    with tempfile.TemporaryDirectory(prefix="corral-dash-") as tmp:
        result = bench(Path(tmp), args.nodes, args.pods, args.runs)
    print(json.dumps(result, indent=1), flush=True)
    write_report(args.out, {"command": sys.argv, "result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
