"""Scheduler throughput, the analogue of Kubernetes' scheduler_perf "SchedulingBasic".

``python -m bench.scheduler_perf --out FILE [--nodes 1000,5000] [--pods 10000] [--runs 3]``

For each node count: a fresh ``corral server --no-scheduler``; the nodes are registered
through the API (hollow: Node objects with 4 cpu, 32 Gi, 110 pods allocatable, nothing
runs them); ``corral scheduler`` starts as its own process; 1,000 pods are created and
placed first; then 10,000 pods are created as fast as the API takes them (64 clients).
A watch records when each pod is bound. Reported, never asserted:

- ``pods_per_s``: 10,000 / (last pod bound - first pod created), end to end, API server
  included (target >= 1,000 at 5,000 nodes; Kubernetes' CI floor is 270);
- ``latency_p50_ms`` / ``latency_p99_ms``: per pod, from just before its create request
  to the watch event that shows it bound;
- ``scheduler_rss_mb`` (VmRSS after the run) and ``scheduler_cpu_s``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.report import write_report
from bench.server import BenchServer

NODE_CPU = "4"
NODE_MEMORY = "32Gi"


def node(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": f"hollow-{i}",
            "labels": {
                "kubernetes.io/hostname": f"hollow-{i}",
                "topology.kubernetes.io/zone": f"z{i % 3}",
            },
        },
        "status": {
            "capacity": {"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": "110"},
            "allocatable": {"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "perf"}},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ]
        },
    }


async def _post_all(
    s: aiohttp.ClientSession,
    path: str,
    bodies: list[dict[str, Any]],
    clients: int,
    sent: dict[str, float] | None = None,
) -> None:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)

    async def worker() -> None:
        while not queue.empty():
            b = queue.get_nowait()
            if sent is not None:
                sent[b["metadata"]["name"]] = time.monotonic()
            async with s.post(
                path, data=orjson.dumps(b), headers={"Content-Type": "application/json"}
            ) as r:
                body = await r.read()
                if r.status >= 300:
                    raise RuntimeError(f"POST {path}: {r.status} {body[:200]!r}")

    await asyncio.gather(*(worker() for _ in range(clients)))


class BoundWatch:
    """Watches pods and notes when each is first seen with spec.nodeName."""

    def __init__(self) -> None:
        self.bound: dict[str, float] = {}
        self.ready = asyncio.Event()

    async def run(self, s: aiohttp.ClientSession, rv: str) -> None:
        params = {"watch": "true", "resourceVersion": rv, "allowWatchBookmarks": "true"}
        async with s.get("/api/v1/namespaces/default/pods", params=params) as r:
            self.ready.set()
            buf = b""
            async for chunk in r.content.iter_any():
                now = time.monotonic()
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if b'"nodeName"' not in line:
                        continue
                    ev = orjson.loads(line)
                    name = ev["object"]["metadata"]["name"]
                    if ev["type"] != "DELETED" and name not in self.bound:
                        self.bound[name] = now


def _proc_stat(pid: int) -> tuple[float, float]:
    """(RSS in MB, CPU seconds) of a process."""
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    return rss, cpu


async def one_run(nodes: int, pods: int, warm: int, work: Path) -> dict[str, Any]:
    srv = BenchServer.start(work, extra=["--no-scheduler"])
    sched: subprocess.Popen[bytes] | None = None
    try:
        async with srv.session(64) as s:
            await _post_all(s, "/api/v1/nodes", [node(i) for i in range(nodes)], 64)
            sched = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "corral",
                    "scheduler",
                    "--kubeconfig",
                    str(srv.kubeconfig),
                    "--log-level",
                    "WARNING",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            async with s.get("/api/v1/namespaces/default/pods", params={"limit": "1"}) as r:
                rv = (await r.json())["metadata"]["resourceVersion"]
            watch = BoundWatch()
            watch_task = asyncio.create_task(watch.run(s, rv))
            await watch.ready.wait()
            await _post_all(
                s, "/api/v1/namespaces/default/pods", [pod(f"warm-{i}") for i in range(warm)], 32
            )
            deadline = time.monotonic() + 120
            while len(watch.bound) < warm and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            sent: dict[str, float] = {}
            t0 = time.monotonic()
            await _post_all(
                s, "/api/v1/namespaces/default/pods", [pod(f"p-{i}") for i in range(pods)], 64, sent
            )
            created_s = time.monotonic() - t0
            deadline = time.monotonic() + 300
            while sum(1 for n in sent if n in watch.bound) < pods and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            bound_times = [watch.bound[n] for n in sent if n in watch.bound]
            latencies = sorted((watch.bound[n] - sent[n]) * 1000 for n in sent if n in watch.bound)
            watch_task.cancel()
            rss, cpu = _proc_stat(sched.pid)
            span = (max(bound_times) - min(sent.values())) if bound_times else float("nan")
            return {
                "nodes": nodes,
                "pods": pods,
                "bound": len(bound_times),
                "pods_per_s": round(len(bound_times) / span, 1) if bound_times else 0.0,
                "create_per_s": round(pods / created_s, 1),
                "latency_p50_ms": round(latencies[len(latencies) // 2], 1) if latencies else None,
                "latency_p99_ms": round(latencies[int(len(latencies) * 0.99)], 1)
                if latencies
                else None,
                "scheduler_rss_mb": round(rss, 1),
                "scheduler_cpu_s": round(cpu, 2),
                "server_rss_mb": round(srv.rss_bytes() / 2**20, 1),
            }
    finally:
        if sched is not None:
            sched.terminate()
            try:
                sched.wait(10)
            except subprocess.TimeoutExpired:
                sched.kill()
        srv.stop()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"command": sys.argv, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="corral-sched-") as tmp:
        for n in [int(x) for x in args.nodes.split(",")]:
            runs = [
                await one_run(n, args.pods, args.warm, Path(tmp) / f"n{n}-{r}")
                for r in range(args.runs)
            ]
            med = statistics.median(r["pods_per_s"] for r in runs)
            report["runs"][str(n)] = {"median_pods_per_s": med, "runs": runs}
            print(
                f"{n} nodes: {med} pods/s (runs {[r['pods_per_s'] for r in runs]}), "
                f"p50 {runs[0]['latency_p50_ms']} ms p99 {runs[0]['latency_p99_ms']} ms, "
                f"scheduler RSS {runs[0]['scheduler_rss_mb']} MB",
                flush=True,
            )
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scheduler_perf")
    p.add_argument("--out", default="bench/results/scheduler.json")
    p.add_argument("--nodes", default="1000,5000")
    p.add_argument("--pods", type=int, default=10_000)
    p.add_argument("--warm", type=int, default=1_000)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    report = asyncio.run(main_async(args))
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
