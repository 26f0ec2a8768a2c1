"""Workload controller figures with hollow nodes (issue 5's benchmark, first part).

``python -m bench.controllers_perf --out FILE [--nodes 100] [--replicas 1000] [--runs 3]``

A fresh ``corral server --hollow-nodes N`` (API server, scheduler, controller manager and
a hollow agent, each its own process, all on this machine's 2 cores). Then, timed from
the client, each run:

- ``available_s``: ``kubectl create deployment`` of ``--replicas`` pods until
  ``status.availableReplicas`` reaches it (target <= 5 s for 1,000 on 100 nodes);
- ``rollout_s``: a template change (new image) until the new ReplicaSet is fully
  available and the old one is at zero;
- ``delete_s``: deleting the Deployment (Background, as kubectl does) until its pods are gone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.report import write_report
from bench.server import BenchServer


def deployment(name: str, replicas: int, image: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": image,
                            "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}},
                        }
                    ]
                },
            },
        },
    }


async def _get(s: Any, path: str) -> Any:
    async with s.get(path) as r:
        return orjson.loads(await r.read())


async def _until(pred: Any, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await pred():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError


async def one_run(nodes: int, replicas: int, work: Path, run: int) -> dict[str, Any]:
    srv = BenchServer.start(work, extra=["--hollow-nodes", str(nodes)])
    try:
        async with srv.session(16) as s:

            async def nodes_ready() -> bool:
                return len((await _get(s, "/api/v1/nodes"))["items"]) >= nodes

            await _until(nodes_ready, 60)
            path = "/apis/apps/v1/namespaces/default/deployments"
            name = f"web{run}"

            async def available() -> bool:
                d = await _get(s, f"{path}/{name}")
                st = d.get("status") or {}
                return bool(
                    st.get("availableReplicas", 0) == replicas
                    and st.get("updatedReplicas", 0) == replicas
                    and st.get("replicas", 0) == replicas
                    and st.get("observedGeneration", 0) >= d["metadata"]["generation"]
                )

            t0 = time.monotonic()
            async with s.post(path, data=orjson.dumps(deployment(name, replicas, "nginx:1"))) as r:
                assert r.status == 201, await r.text()
            await _until(available)
            available_s = time.monotonic() - t0

            t0 = time.monotonic()
            patch = {
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}
            }
            async with s.patch(
                f"{path}/{name}",
                data=orjson.dumps(patch),
                headers={"Content-Type": "application/strategic-merge-patch+json"},
            ) as r:
                assert r.status == 200, await r.text()
            await _until(available)
            rollout_s = time.monotonic() - t0

            t0 = time.monotonic()
            async with s.delete(
                f"{path}/{name}", data=orjson.dumps({"propagationPolicy": "Background"})
            ) as r:
                assert r.status == 200, await r.text()

            async def gone() -> bool:
                pods = await _get(s, f"/api/v1/namespaces/default/pods?labelSelector=app%3D{name}")
                return not pods["items"]

            await _until(gone)
            delete_s = time.monotonic() - t0
            return {
                "nodes": nodes,
                "replicas": replicas,
                "available_s": round(available_s, 2),
                "rollout_s": round(rollout_s, 2),
                "delete_s": round(delete_s, 2),
                "server_rss_mb": round(srv.rss_bytes() / 2**20, 1),
            }
    finally:
        srv.stop()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    with tempfile.TemporaryDirectory(prefix="corral-ctrl-") as tmp:
        for r in range(args.runs):
            runs.append(await one_run(args.nodes, args.replicas, Path(tmp) / f"r{r}", r))
            print(runs[-1], flush=True)
    med = {
        k: statistics.median(x[k] for x in runs) for k in ("available_s", "rollout_s", "delete_s")
    }
    print(
        f"{args.replicas} replicas on {args.nodes} hollow nodes: available in {med['available_s']} s "
        f"(target <= 5 s), rolling update {med['rollout_s']} s, delete {med['delete_s']} s",
        flush=True,
    )
    return {"command": sys.argv, "median": med, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.controllers_perf")
    p.add_argument("--out", default="bench/results/controllers.json")
    p.add_argument("--nodes", type=int, default=100)
    p.add_argument("--replicas", type=int, default=1000)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    report = asyncio.run(main_async(args))
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
