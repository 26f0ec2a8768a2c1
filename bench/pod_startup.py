"""Pod startup latency on one real node (issue 3's benchmark).

``python -m bench.pod_startup --out FILE [--runtimes process,oci] [--counts 1,10,100]
[--runs 3]``

A fresh ``corral server`` (API server and scheduler) and one ``corral agent`` with the
runtime under test, on this machine's 2 cores. For ``process`` the pods run
``/bin/busybox sleep 3600`` on the host; for ``oci`` they run a busybox image already in
the agent's image store (imported once, as ``corral up`` does: no pull is timed). Each
run creates N pods at once (for N = 1, ten one-pod batches in a row) and watches them: a pod's latency is from the moment its
create request was sent to the watch event that shows it Running (what the Kubernetes
pod startup SLO measures, minus the image pull). Then, with 50 pods running, the
agent's RSS (``VmRSS``) is read from /proc. Targets: p99 <= 0.5 s with runc on an idle
node; agent RSS <= 60 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from bench.report import write_report
from bench.server import BenchServer
from corral.testing.agent import AgentProcess

IMAGE = "corral.local/busybox:1.35"
SINGLE_SAMPLES = 10


def pod(name: str, runtime: str) -> dict[str, Any]:
    cmd = ["/bin/busybox", "sleep", "3600"] if runtime == "process" else ["sleep", "3600"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "startup"}},
        "spec": {
            "containers": [{"name": "c", "image": IMAGE, "command": cmd}],
            "terminationGracePeriodSeconds": 1,
        },
    }


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _running(s: Any, ns: str, names: set[str], sent: dict[str, float]) -> dict[str, float]:
    """Watch pods in ``ns`` until every one of ``names`` is Running; latency per pod."""
    out: dict[str, float] = {}
    path = f"/api/v1/namespaces/{ns}/pods?watch=1&allowWatchBookmarks=false"
    async with s.get(path, timeout=None) as r:
        async for line in r.content:
            now = time.monotonic()
            ev = orjson.loads(line)
            obj = ev["object"]
            name = obj["metadata"]["name"]
            phase = (obj.get("status") or {}).get("phase")
            if name in names and name not in out and phase == "Running":
                out[name] = now - sent[name]
                if len(out) == len(names):
                    return out
    raise RuntimeError("watch ended early")


async def one_batch(srv: BenchServer, runtime: str, count: int) -> list[float]:
    ns = "b-" + uuid.uuid4().hex[:6]
    async with srv.session(32) as s:
        async with s.post("/api/v1/namespaces", data=orjson.dumps({"metadata": {"name": ns}})) as r:
            assert r.status == 201, await r.text()
        names = {f"p{i}" for i in range(count)}
        sent: dict[str, float] = {}
        watch = asyncio.create_task(_running(s, ns, names, sent))
        await asyncio.sleep(0.2)  # the watch is open

        async def create(name: str) -> None:
            sent[name] = time.monotonic()
            async with s.post(
                f"/api/v1/namespaces/{ns}/pods", data=orjson.dumps(pod(name, runtime))
            ) as r:
                assert r.status == 201, await r.text()

        await asyncio.gather(*(create(n) for n in sorted(names)))
        lat = await asyncio.wait_for(watch, 300)
        async with s.delete(f"/api/v1/namespaces/{ns}") as r:
            assert r.status in (200, 202), await r.text()
        await _wait_empty(s, ns)  # the next batch starts on an idle node
        return list(lat.values())


async def _wait_empty(s: Any, ns: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        async with s.get(f"/api/v1/namespaces/{ns}/pods") as r:
            if not orjson.loads(await r.read())["items"]:
                return
        await asyncio.sleep(0.2)


async def rss_with(srv: BenchServer, agent: AgentProcess, runtime: str, count: int) -> float:
    ns = "rss-" + uuid.uuid4().hex[:6]
    async with srv.session(32) as s:
        async with s.post("/api/v1/namespaces", data=orjson.dumps({"metadata": {"name": ns}})) as r:
            assert r.status == 201
        names = {f"p{i}" for i in range(count)}
        sent: dict[str, float] = {}
        watch = asyncio.create_task(_running(s, ns, names, sent))
        await asyncio.sleep(0.2)
        for n in sorted(names):
            sent[n] = time.monotonic()
            async with s.post(
                f"/api/v1/namespaces/{ns}/pods", data=orjson.dumps(pod(n, runtime))
            ) as r:
                assert r.status == 201
        await asyncio.wait_for(watch, 300)
        await asyncio.sleep(2.0)  # settle: probes, status writes
        mb = rss_mb(agent.pid)
        async with s.delete(f"/api/v1/namespaces/{ns}") as r:
            assert r.status in (200, 202), await r.text()
        await _wait_empty(s, ns)
        return mb


async def bench_runtime(runtime: str, counts: list[int], runs: int, work: Path) -> dict[str, Any]:
    srv = BenchServer.start(work / "server", extra=["--no-controllers"])
    agent_dir = work / "agent"
    if runtime == "oci":
        from corral.agent.images.demo import build_busybox
        from corral.agent.images.store import ImageStore

        layout = build_busybox(work / "layout", "1.35")
        await ImageStore(agent_dir / "images").import_archive(layout, name=IMAGE)
    agent = AgentProcess.start(srv.kubeconfig, f"bench-{runtime}", runtime, agent_dir)
    try:
        result: dict[str, Any] = {"runtime": runtime, "batches": {}}
        for count in counts:
            per_run = []
            for _ in range(runs):
                lat = await one_batch(srv, runtime, count)
                # one pod gives one sample: take SINGLE_SAMPLES single-pod batches per run
                for _ in range(SINGLE_SAMPLES - 1 if count == 1 else 0):
                    lat += await one_batch(srv, runtime, count)
                per_run.append(
                    {
                        "p50_s": round(percentile(lat, 0.5), 4),
                        "p99_s": round(percentile(lat, 0.99), 4),
                    }
                )
            med = {k: statistics.median(r[k] for r in per_run) for k in ("p50_s", "p99_s")}
            result["batches"][str(count)] = {"median": med, "runs": per_run}
            print(
                f"{runtime}: {count} pods: p50 {med['p50_s']} s, p99 {med['p99_s']} s", flush=True
            )
        result["agent_rss_mb_50_pods"] = round(await rss_with(srv, agent, runtime, 50), 1)
        print(f"{runtime}: agent RSS with 50 pods {result['agent_rss_mb_50_pods']} MB", flush=True)
        return result
    finally:
        agent.stop()
        agent.reset()
        srv.stop()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    counts = [int(c) for c in args.counts.split(",")]
    out: dict[str, Any] = {"command": sys.argv, "results": []}
    for runtime in args.runtimes.split(","):
        if runtime == "oci" and os.geteuid() != 0:
            print("oci: skipped (needs root)", flush=True)
            continue
        with tempfile.TemporaryDirectory(prefix=f"corral-start-{runtime}-") as tmp:
            out["results"].append(await bench_runtime(runtime, counts, args.runs, Path(tmp)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pod_startup")
    p.add_argument("--out", default="bench/results/pod_startup.json")
    p.add_argument("--runtimes", default="process,oci")
    p.add_argument("--counts", default="1,10,100")
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    report = asyncio.run(main_async(args))
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
