"""Entry point of the API server benchmark: ``python -m bench.run --out FILE [--quick]``.

Called by ``make bench`` (and by hand). It starts ``corral server`` subprocesses on
fresh data directories, drives them over loopback HTTPS with aiohttp from this process
(one uvloop event loop), writes a JSON report (command line, machine, git commit, every
figure with its runs) and prints a summary table. Figures are reported, never asserted:
the exit status is 0 unless the benchmark itself breaks. Every server started here is
stopped in a ``finally`` block.

Order (one server "A" for everything but the churn, so the pod figures see a realistic
store): idle RSS, creates/s, gets/s, open-loop write latency, group commit, fill 10,000
pods, LIST, watch fan-out (all pods, then per node), fill to 150,000 pods (20,000 with
``--quick``), RSS. Then a fresh server "B" for the churn and file sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench import scenarios
from bench.scenarios import Plan
from bench.server import BenchServer

REPO = Path(__file__).resolve().parent.parent


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def machine_info() -> dict[str, Any]:
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = line.split(":", 1)[1].strip()
                break
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    versions = {}
    for pkg in ("aiohttp", "uvloop", "orjson"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "?"
    versions["sqlite"] = sqlite3.sqlite_version
    return {
        "nproc": int(nproc) if nproc.isdigit() else os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "libraries": versions,
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        res = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return res.stdout.strip() if res.returncode == 0 else ""

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty_files": len(dirty.splitlines())}


class Bench:
    """Runs the sections in order; a section that fails is recorded, the rest go on."""

    def __init__(self, plan: Plan, work: Path) -> None:
        self.plan = plan
        self.work = work
        self.figures: dict[str, Any] = {}
        self.servers: dict[str, list[str]] = {}
        self.srv: BenchServer | None = None
        #: the server's RSS after each section, to see what memory comes from where
        self.rss_timeline: list[dict[str, Any]] = []

    async def section(self, name: str, fn: Callable[[], Awaitable[Any]]) -> None:
        _log(f"{name} ...")
        t0 = time.monotonic()
        try:
            self.figures[name] = await fn()
        except Exception as e:
            traceback.print_exc()
            self.figures[name] = {"error": f"{type(e).__name__}: {e}"}
        if self.srv is not None and self.srv.proc.poll() is None:
            self.rss_timeline.append(
                {
                    "after": name,
                    "rss_mb": round(self.srv.rss_bytes() / 2**20, 1),
                    "peak_mb": round(self.srv.rss_bytes("VmHWM") / 2**20, 1),
                }
            )
        _log(f"{name} done in {time.monotonic() - t0:.1f}s")

    async def run(self) -> None:
        plan = self.plan
        srv = self.srv = BenchServer.start(self.work / "a")
        self.servers["a"] = srv.argv
        try:
            await asyncio.sleep(0.5)
            rss_idle = srv.rss_bytes()
            async with srv.session(max(plan.fill_clients, *plan.group_commit_writers)) as s:
                await self.section("creates", lambda: scenarios.creates(srv, s, plan))
                await self.section("gets", lambda: scenarios.gets(srv, s, plan))
                await self.section("write_latency", lambda: scenarios.write_latency(srv, s, plan))
                await self.section("group_commit", lambda: scenarios.group_commit(srv, s, plan))
                await scenarios.ensure_namespace(s, scenarios.POD_NS)
                await self.section(
                    "fill_list_pods",
                    lambda: scenarios.fill_pods(
                        srv, s, 0, plan.list_pods, plan.nodes, plan.fill_clients
                    ),
                )
                await self.section("pod_size", lambda: scenarios.pod_size(s))
                await self.section("list", lambda: scenarios.list_pods(s, plan, plan.list_pods))
                await self.section(
                    "watch_all", lambda: scenarios.watch_fanout(srv, s, plan, per_node=False)
                )
                await self.section(
                    "watch_per_node", lambda: scenarios.watch_fanout(srv, s, plan, per_node=True)
                )
                await self.section(
                    "fill_rss_pods",
                    lambda: scenarios.fill_pods(
                        srv, s, plan.list_pods, plan.rss_pods, plan.nodes, plan.fill_clients
                    ),
                )
            await asyncio.sleep(2)
            rss_full = srv.rss_bytes()
            self.figures["rss"] = {
                "idle_bytes": rss_idle,
                "idle_mb": round(rss_idle / 2**20, 1),
                "pods": plan.rss_pods,
                "pods_note": "--quick: 20,000 pods instead of 150,000" if plan.quick else "",
                "other_objects": "plus the ConfigMaps of the throughput sections and the watch pods",
                "with_pods_bytes": rss_full,
                "with_pods_mb": round(rss_full / 2**20, 1),
                "peak_mb": round(srv.rss_bytes("VmHWM") / 2**20, 1),
                "timeline": self.rss_timeline,
                "db_files_bytes": srv.db_bytes(),
            }
        finally:
            srv.stop()

        self.srv = None
        srv = BenchServer.start(self.work / "b")
        self.servers["b"] = srv.argv
        try:
            async with srv.session(plan.clients) as s:
                await self.section("churn", lambda: scenarios.churn(srv, s, plan))
        finally:
            srv.stop()


def summary(fig: dict[str, Any], plan: Plan) -> list[tuple[str, str, str]]:
    """Rows of (figure, value, target) for the human table."""

    def get(*path: str) -> Any:
        cur: Any = fig
        for p in path:
            if not isinstance(cur, dict) or p not in cur:
                return None
            cur = cur[p]
        return cur

    def num(v: Any, unit: str = "", nd: int = 0) -> str:
        if v is None:
            return "error"
        return f"{v:,.{nd}f}{unit}"

    rows = [
        ("1. durable creates/s (32 clients)", num(get("creates", "median_per_s")), ">= 2,000"),
        ("2. GETs/s (32 clients)", num(get("gets", "median_per_s")), ">= 5,000"),
        (
            "3. writes @500/s open loop p50 / p99",
            f"{num(get('write_latency', 'p50_ms'), ' ms', 1)} / {num(get('write_latency', 'p99_ms'), ' ms', 1)}",
            "p99 <= 20 ms",
        ),
        (
            f"4. LIST {plan.list_pods:,} pods JSON / Table",
            f"{num(get('list', 'json', 'median_ms'), ' ms')} / {num(get('list', 'table', 'median_ms'), ' ms')}",
            "",
        ),
        (
            "5a. watch 1,000 x all pods: write->all p50 / p99",
            f"{num(get('watch_all', 'write_to_all_delivered_p50_ms'), ' ms', 1)} / {num(get('watch_all', 'write_to_all_delivered_p99_ms'), ' ms', 1)}",
            "",
        ),
        (
            "5a. watch 1,000 x all pods: events delivered/s",
            num(get("watch_all", "events_delivered_per_s")),
            "",
        ),
        (
            "5b. watch 1,000 x per node: write->watcher p50 / p99",
            f"{num(get('watch_per_node', 'write_to_all_delivered_p50_ms'), ' ms', 1)} / {num(get('watch_per_node', 'write_to_all_delivered_p99_ms'), ' ms', 1)}",
            "",
        ),
        (
            "5b. watch 1,000 x per node: burst writes/s",
            num(get("watch_per_node", "burst_writes_per_s")),
            "",
        ),
        ("6. RSS idle", num(get("rss", "idle_mb"), " MB", 1), ""),
        (f"6. RSS with {plan.rss_pods:,} pods", num(get("rss", "with_pods_mb"), " MB", 1), ""),
        (
            "6. SQLite files / live JSON after churn",
            f"{num(get('churn', 'files_over_live'), 'x', 2)} (compaction ran: {get('churn', 'compaction_ran')})",
            "<= 2x",
        ),
    ]
    for w in plan.group_commit_writers:
        rows.append(
            (
                f"7. group commit: {w} writer(s) creates/s",
                num(get("group_commit", str(w), "median_per_s")),
                "",
            )
        )
    return rows


def print_table(rows: list[tuple[str, str, str]]) -> None:
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"{'figure':<{w0}}  {'value':>{w1}}  target")
    print("-" * (w0 + w1 + 12))
    for name, value, target in rows:
        print(f"{name:<{w0}}  {value:>{w1}}  {target}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench/results/report.json"))
    ap.add_argument("--quick", action="store_true", help="shorter runs, 20,000 pods for RSS")
    args = ap.parse_args(argv)
    plan = Plan.quick_plan() if args.quick else Plan.full()
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    report: dict[str, Any] = {
        "command": [
            sys.executable,
            "-m",
            "bench.run",
            *(argv if argv is not None else sys.argv[1:]),
        ],
        "mode": "quick" if plan.quick else "full",
        "started": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "git": git_info(),
        "plan": {k: v for k, v in plan.__dict__.items()},
    }
    work = Path(tempfile.mkdtemp(prefix="corral-bench-"))
    bench = Bench(plan, work)
    try:
        uvloop.run(bench.run())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["servers"] = bench.servers
    report["figures"] = bench.figures
    report["duration_s"] = round(time.monotonic() - t0, 1)
    report["machine"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    rows = summary(bench.figures, plan)
    report["summary"] = [{"figure": a, "value": b, "target": c} for a, b, c in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    print()
    print(
        f"Corral API server benchmark ({report['mode']}, {report['duration_s']} s, "
        f"{report['machine']['nproc']} cores, Python {report['machine']['python']}, "
        f"commit {report['git']['commit'][:10]})"
    )
    print_table(rows)
    print(f"\nreport: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
