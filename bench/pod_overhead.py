"""Per-pod memory of container supervision on one real ``oci`` node (issue 13, item 4).

``python -m bench.pod_overhead --out FILE [--modes conmon,mixed,shim] [--pods 50]
[--runs 3]``

For each supervisor mode of the ``oci`` driver (``CORRAL_OCI_SUPERVISOR``, see
``agent/drivers/oci.py``): a fresh ``corral server`` and one ``corral agent --runtime
oci`` whose busybox image is already in its store (imported, as ``bench.pod_startup``
does), then ``--pods`` one-container pods (``sleep 3600``) at once. Once all are Running
(plus 2 s to settle), the PSS (``/proc/PID/smaps_rollup``) of every supervisor process —
each container's and each pause container's monitor, the ``shim_pid`` of its
``state.json``: conmon, or the Python shim — is summed and divided by the pods. PSS
shares a page's cost among the processes mapping it, so the sum is what the monitors
cost the node together; the containers' own processes are not counted. Modes: ``conmon``
(everything under conmon), ``mixed`` (the pause container under conmon, the app
container under the shim), ``shim`` (everything under the shim: the driver before
conmon). Target: <= 2 MB PSS per running pod. Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from bench.pod_startup import IMAGE, _running, _wait_empty, pod, rss_mb
from bench.report import write_report
from bench.server import BenchServer
from corral.testing.agent import AgentProcess

SUPERVISOR_ENV = "CORRAL_OCI_SUPERVISOR"


def pss_kb(pid: int) -> int:
    """Proportional set size of ``pid`` in kB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def supervisors(data_dir: Path) -> dict[int, str]:
    """pid -> name of every live container monitor recorded under the agent's data dir."""
    out: dict[int, str] = {}
    for state in data_dir.rglob("state.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            pid = int(json.loads(state.read_text())["shim_pid"])
            if os.path.exists(f"/proc/{pid}"):
                out[pid] = comm(pid)
    return out


def measure(data_dir: Path, pods: int) -> dict[str, Any]:
    procs = supervisors(data_dir)
    by_kind: dict[str, list[int]] = {}
    for pid, name in procs.items():
        by_kind.setdefault("conmon" if name == "conmon" else "shim", []).append(pss_kb(pid))
    total = sum(sum(v) for v in by_kind.values())
    return {
        "pss_kb_per_pod": round(total / pods, 1),
        "processes": {k: len(v) for k, v in by_kind.items()},
        "pss_kb_per_process": {k: round(statistics.mean(v), 1) for k, v in by_kind.items()},
    }


async def one_run(srv: BenchServer, agent: AgentProcess, count: int) -> dict[str, Any]:
    ns = "ovh-" + uuid.uuid4().hex[:6]
    async with srv.session(32) as s:
        async with s.post("/api/v1/namespaces", data=orjson.dumps({"metadata": {"name": ns}})) as r:
            assert r.status == 201, await r.text()
        names = {f"p{i}" for i in range(count)}
        sent: dict[str, float] = {}
        watch = asyncio.create_task(_running(s, ns, names, sent))
        await asyncio.sleep(0.2)
        for n in sorted(names):
            sent[n] = time.monotonic()
            async with s.post(
                f"/api/v1/namespaces/{ns}/pods", data=orjson.dumps(pod(n, "oci"))
            ) as r:
                assert r.status == 201, await r.text()
        await asyncio.wait_for(watch, 600)
        await asyncio.sleep(2.0)
        result = measure(agent.data_dir, count)
        result["agent_rss_mb"] = round(rss_mb(agent.pid), 1)
        async with s.delete(f"/api/v1/namespaces/{ns}") as r:
            assert r.status in (200, 202), await r.text()
        await _wait_empty(s, ns)
        return result


async def bench_mode(mode: str, count: int, runs: int, work: Path) -> dict[str, Any]:
    from corral.agent.images.demo import build_busybox
    from corral.agent.images.store import ImageStore

    srv = BenchServer.start(work / "server", extra=["--no-controllers"])
    agent_dir = work / "agent"
    agent: AgentProcess | None = None
    before = os.environ.get(SUPERVISOR_ENV)
    try:
        layout = build_busybox(work / "layout", "1.35")
        await ImageStore(agent_dir / "images").import_archive(layout, name=IMAGE)
        os.environ[SUPERVISOR_ENV] = mode  # the agent's OciDriver reads it
        agent = AgentProcess.start(srv.kubeconfig, f"ovh-{mode}", "oci", agent_dir)
        per_run = [await one_run(srv, agent, count) for _ in range(runs)]
        med = statistics.median(r["pss_kb_per_pod"] for r in per_run)
        print(f"{mode}: {count} pods: supervisors {med / 1024:.2f} MB PSS per pod", flush=True)
        return {"mode": mode, "pods": count, "median_pss_kb_per_pod": med, "runs": per_run}
    finally:
        if before is None:
            os.environ.pop(SUPERVISOR_ENV, None)
        else:
            os.environ[SUPERVISOR_ENV] = before
        if agent is not None:
            agent.stop()
            agent.reset()
        srv.stop()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"command": sys.argv, "target_pss_kb_per_pod": 2048, "results": []}
    if os.geteuid() != 0:
        print("oci: skipped (needs root)", flush=True)
        return out
    for mode in args.modes.split(","):
        with tempfile.TemporaryDirectory(prefix=f"corral-ovh-{mode}-") as tmp:
            out["results"].append(await bench_mode(mode, args.pods, args.runs, Path(tmp)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pod_overhead")
    p.add_argument("--out", default="bench/results/pod_overhead.json")
    p.add_argument("--modes", default="conmon,mixed,shim")
    p.add_argument("--pods", type=int, default=50)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    report = asyncio.run(main_async(args))
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
