"""Marathon: 100 apps of 100 instances on hollow agents, then a rolling restart of a
1,000-instance app (issue 11).

``python -m bench.marathon_perf --out FILE [--apps 100 --instances 100 --nodes 100
--restart-instances 1000]``

The real components: a fresh ``corral server --mesos-port P --hollow-nodes N
--no-controllers`` (API server, scheduler with the Mesos master, N hollow nodes of 4 cpus
/ 32 GiB / 110 pods: a hollow pod runs as soon as it is bound) and a ``MarathonService``
in this process with its REST API (``http.make_app``) on a free port, driven over HTTP
with aiohttp as any Marathon client would.

1. **deploy** — ``--apps`` apps (``sleep 3600``, 0.01 cpu, 16 MB, ``--instances`` each)
   are POSTed to ``/v2/apps`` (8 at a time). Reported: the POST latency, the time from the
   first POST until every instance is TASK_RUNNING (``tasksRunning`` summed over ``GET
   /v2/apps?embed=apps.counts``) and until no deployment is left, and the latency of that
   ``GET /v2/apps`` and of ``GET /v2/deployments`` (a poller, every 0.5 s) meanwhile.
2. **delete** — every app DELETEd; the time until no task pod is left.
3. **restart** — one app of ``--restart-instances`` instances (upgradeStrategy
   ``minimumHealthCapacity`` 1, ``maximumOverCapacity`` ``--max-over``), once running,
   ``POST /v2/apps/{id}/restart``: the time until its deployment is gone and every task
   runs the new version, and the fewest running tasks seen meanwhile (never below
   ``ceil(instances * minimumHealthCapacity)`` if the rolling rule holds).

Figures are reported, never asserted (bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.chronos_perf import _descendants, _pods_left, _reap, _wait_for_agents
from bench.mesos_perf import percentile
from bench.report import write_report

Obj = dict[str, Any]


def _ms(values: list[float]) -> Obj:
    if not values:
        return {}
    return {
        "n": len(values),
        "p50": round(1000 * percentile(values, 0.5), 2),
        "p99": round(1000 * percentile(values, 0.99), 2),
        "max": round(1000 * max(values), 2),
    }


def app_body(app_id: str, instances: int, max_over: float = 1.0) -> Obj:
    return {
        "id": app_id,
        "cmd": "sleep 3600",
        "cpus": 0.01,
        "mem": 16,
        "instances": instances,
        "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": max_over},
    }


class Poller:
    """GETs ``paths`` every ``interval`` s, recording latency and the last body of each."""

    def __init__(self, session: aiohttp.ClientSession, api: str, paths: list[str]) -> None:
        self.session, self.api, self.paths = session, api, paths
        self.latency: dict[str, list[float]] = {p: [] for p in paths}
        self.last: dict[str, Any] = {}
        self.changed = asyncio.Event()
        self.interval = 0.5

    async def run(self) -> None:
        while True:
            for path in self.paths:
                t = time.perf_counter()
                async with self.session.get(self.api + path) as r:
                    body = await r.json(content_type=None)
                self.latency[path].append(time.perf_counter() - t)
                self.last[path] = body
            self.changed.set()
            await asyncio.sleep(self.interval)

    async def until(self, done: Any, timeout: float) -> float:
        """Wait until ``done(self.last)`` is true; the seconds it took (``inf``: timeout)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), timeout)
            if done(self.last):
                return time.monotonic() - t0
        return math.inf

    def reset(self) -> None:
        for v in self.latency.values():
            v.clear()


APPS = "/v2/apps?embed=apps.counts"
DEPLOYMENTS = "/v2/deployments"


def _running(last: Obj) -> int:
    return sum(int(a.get("tasksRunning", 0)) for a in (last.get(APPS) or {}).get("apps", []))


async def cluster_run(args: argparse.Namespace, work: Path) -> Obj:
    from aiohttp import web

    from bench.server import BenchServer
    from corral.client.rest import Client
    from corral.marathon.events import EventBus
    from corral.marathon.http import make_app
    from corral.marathon.service import MarathonService
    from corral.testing.process import free_port

    mport, hport = free_port(), free_port()
    master = f"127.0.0.1:{mport}"
    extra = ["--mesos-port", str(mport), "--hollow-nodes", str(args.nodes), "--no-controllers"]
    srv = BenchServer.start(work / "server", extra=extra)
    server_pids: set[int] = set()
    client: Client | None = None
    runner: web.AppRunner | None = None
    svc: MarathonService | None = None
    tasks: list[asyncio.Task[Any]] = []
    out: Obj = {"server": srv.argv}
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
    try:
        await _wait_for_agents(session, master, args.nodes)
        server_pids = _descendants(srv.pid)
        client = Client.from_kubeconfig(srv.kubeconfig, user_agent="bench-marathon")
        bus = EventBus()
        svc = MarathonService(client, master, leader=f"127.0.0.1:{hport}", events=bus)
        runner = web.AppRunner(make_app(svc, bus), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", hport).start()
        tasks.append(asyncio.create_task(svc.run(), name="marathon"))
        api = f"http://127.0.0.1:{hport}"
        deadline = time.monotonic() + 60
        while svc.leader() is None:
            if time.monotonic() > deadline or tasks[0].done():
                raise RuntimeError("Marathon did not subscribe to the master")
            await asyncio.sleep(0.1)
        poller = Poller(session, api, [APPS, DEPLOYMENTS])
        tasks.append(asyncio.create_task(poller.run(), name="poller"))

        # 1. deploy
        total = args.apps * args.instances
        ids = [f"/bench/app-{i:03d}" for i in range(args.apps)]
        sem = asyncio.Semaphore(8)
        post_lat: list[float] = []

        async def create(app_id: str) -> None:
            async with sem:
                t = time.perf_counter()
                async with session.post(
                    f"{api}/v2/apps", json=app_body(app_id, args.instances)
                ) as r:
                    if r.status != 201:
                        raise RuntimeError(f"POST {app_id}: {r.status} {await r.text()}")
                post_lat.append(time.perf_counter() - t)

        poller.reset()
        t0 = time.monotonic()
        await asyncio.gather(*(create(a) for a in ids))
        posted = time.monotonic() - t0
        waited = await poller.until(lambda last: _running(last) >= total, args.timeout)
        all_running = posted + waited if math.isfinite(waited) else None
        quiet = await poller.until(lambda last: not last.get(DEPLOYMENTS), 60)
        if all_running is None:  # what held the rest back, as /v2/queue says it
            async with session.get(f"{api}/v2/queue") as r:
                out["queue_at_timeout"] = (await r.json(content_type=None)).get("queue", [])[:3]
                print(f"  queue: {json.dumps(out['queue_at_timeout'])[:1500]}", flush=True)
        out["deploy"] = {
            "apps": args.apps,
            "instances_each": args.instances,
            "tasks": total,
            "posted_s": round(posted, 2),
            "post_ms": _ms(post_lat),
            "all_running_s": None if all_running is None else round(all_running, 2),
            "running_seen": _running(poller.last),
            "deployments_done_s": None
            if not math.isfinite(quiet)
            else round(posted + waited + quiet, 2),
            "tasks_per_s": None if all_running is None else round(total / all_running, 1),
            "api_get_apps_counts_ms": _ms(poller.latency[APPS]),
            "api_get_deployments_ms": _ms(poller.latency[DEPLOYMENTS]),
        }
        print(f"  deploy: {json.dumps(out['deploy'])}", flush=True)

        # 2. delete
        t0 = time.monotonic()
        for app_id in ids:
            async with session.delete(f"{api}/v2/apps{app_id}") as r:
                if r.status != 200:
                    raise RuntimeError(f"DELETE {app_id}: {r.status} {await r.text()}")
        left = await _pods_left(client, timeout=args.timeout)
        out["delete"] = {"all_gone_s": round(time.monotonic() - t0, 2), "pods_left": left}
        print(f"  delete: {json.dumps(out['delete'])}", flush=True)

        # 3. rolling restart
        n = args.restart_instances
        rid = "/bench/big"
        async with session.post(f"{api}/v2/apps", json=app_body(rid, n, args.max_over)) as r:
            if r.status != 201:
                raise RuntimeError(f"POST {rid}: {r.status} {await r.text()}")
        up = await poller.until(
            lambda last: _running(last) >= n and not last.get(DEPLOYMENTS), args.timeout
        )
        lowest = [math.inf]
        poller.reset()
        t0 = time.monotonic()
        async with session.post(f"{api}/v2/apps{rid}/restart") as r:
            body = await r.json(content_type=None)
            if r.status != 200:
                raise RuntimeError(f"restart: {r.status} {body}")
        deployment = body["deploymentId"]

        def restarted(last: Obj) -> bool:
            lowest[0] = min(lowest[0], _running(last))
            return not any(d.get("id") == deployment for d in last.get(DEPLOYMENTS) or [])

        took = await poller.until(restarted, args.timeout)
        async with session.get(f"{api}/v2/apps{rid}?embed=app.tasks") as r:
            app = (await r.json(content_type=None))["app"]
        new = sum(t.get("version") == app["version"] for t in app.get("tasks", []))
        out["restart"] = {
            "instances": n,
            "upgrade_strategy": {
                "minimumHealthCapacity": 1.0,
                "maximumOverCapacity": args.max_over,
            },
            "first_start_s": None if not math.isfinite(up) else round(up, 2),
            "restart_s": None if not math.isfinite(took) else round(took, 2),
            "fewest_running_seen": None if not math.isfinite(lowest[0]) else lowest[0],
            "min_healthy": math.ceil(n * 1.0),
            "tasks_on_new_version": new,
            "api_get_apps_counts_ms": _ms(poller.latency[APPS]),
        }
        print(f"  restart: {json.dumps(out['restart'])}", flush=True)
        async with session.delete(f"{api}/v2/apps{rid}") as r:
            await r.read()
        out["task_pods_left"] = await _pods_left(client, timeout=args.timeout)
    finally:
        for t in tasks[1:]:
            t.cancel()
        if svc is not None and svc.framework is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(svc.framework.teardown(), 30)
        if tasks:
            tasks[0].cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        if runner is not None:
            await runner.cleanup()
        if client is not None:
            await client.close()
        await session.close()
        srv.stop()
        out["server_processes_left"] = _reap(server_pids)
    return out


MEDIANS = {
    "deploy": ("all_running_s", "deployments_done_s", "tasks_per_s"),
    "deploy.post_ms": ("p50", "p99"),
    "deploy.api_get_apps_counts_ms": ("p50", "p99"),
    "deploy.api_get_deployments_ms": ("p50", "p99"),
    "delete": ("all_gone_s",),
    "restart": ("restart_s", "fewest_running_seen"),
    "restart.api_get_apps_counts_ms": ("p50", "p99"),
}


def _medians(runs: list[Obj]) -> Obj:
    """The median over ``runs`` of each figure in ``MEDIANS`` (runs that lack it skipped)."""
    out: Obj = {}
    for where, keys in MEDIANS.items():
        for key in keys:
            vals = []
            for run in runs:
                node: Any = run
                for part in where.split("."):
                    node = node.get(part) if isinstance(node, dict) else None
                if isinstance(node, dict) and isinstance(node.get(key), int | float):
                    vals.append(node[key])
            if vals:
                out[f"{where}.{key}"] = statistics.median(vals)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.marathon_perf")
    p.add_argument("--out", default="bench/results/marathon.json")
    p.add_argument("--apps", type=int, default=100)
    p.add_argument("--instances", type=int, default=100)
    p.add_argument("--nodes", type=int, default=100, help="hollow nodes (110 pods each)")
    p.add_argument("--restart-instances", type=int, default=1000)
    p.add_argument("--max-over", type=float, default=1.0, help="restart maximumOverCapacity")
    p.add_argument("--timeout", type=float, default=600.0, help="per phase, seconds")
    p.add_argument("--runs", type=int, default=3, help="fresh clusters; figures are medians")
    args = p.parse_args(argv)
    print(
        f"marathon: {args.apps} apps x {args.instances} instances on {args.nodes} hollow "
        f"nodes, then a rolling restart of {args.restart_instances}",
        flush=True,
    )
    runs = []
    for i in range(args.runs):
        print(f" run {i + 1}/{args.runs}", flush=True)
        with tempfile.TemporaryDirectory(prefix="corral-marathon-") as tmp:
            runs.append(asyncio.run(cluster_run(args, Path(tmp))))
    report = {
        "plan": vars(args),
        "targets": "100 apps x 100 instances: time until all run, API p99 meanwhile; "
        "a rolling restart of a 1,000-instance app",
        "python": sys.version.split()[0],
        "median": _medians(runs),
        "runs": runs,
    }
    print(f"median of {args.runs}: {json.dumps(report['median'])}", flush=True)
    write_report(args.out, report)
    print(f"wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
