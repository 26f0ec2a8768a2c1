"""What each of the scheduling shape's writes costs the API server, in CPU microseconds,
and the same against another checkout: ``python -m bench.write_cost [--base DIR]``.

Issue 19's shape (``bench/scheduler_perf.py``) is bounded by the API server's one event
loop, and its pods/s moves ±25% between runs on this machine, so a change worth a few
percent of the server's CPU cannot be seen in it. This benchmark measures the writes
that make up the shape one kind at a time, on a ``corral server`` with no scheduler and
no controllers, and charges each kind the CPU time the server's threads ran over its requests:

- ``pod_create``: the shape's pod (``requests: 100m, 100Mi``), as the bench client posts;
- ``binding``: the scheduler's ``pods/binding`` (``corral.api.nodes.binding``);
- ``pod_status``: the hollow agent's merge patch of a running pod's status
  (``corral.agent.hollow.running_status``);
- ``lease_create`` and ``lease_renewal``: a node's Lease and its renewal, the merge patch
  the node agents send (``corral.agent.node.renewal_patch``);
- ``configmap_create``: a small ConfigMap, the floor of any durable write.

Requests go over HTTPS from ``--clients`` concurrent connections, as the shape's do, with
``--watchers`` watches of all pods open (the scheduler's, the controllers' and the bench
client's in the shape), so every pod write is also fanned out.

With ``--base DIR`` (a checkout, e.g. ``git worktree add /tmp/base HEAD~1``) a second
server runs ``DIR/src`` and both get the same requests, interleaved in chunks of
``--chunk`` (which server goes first alternates), so the machine's drift falls on both
alike; ``ratio`` is this checkout's CPU per write over the base's. Figures are reported,
never asserted. ``--profile DIR`` also runs ``py-spy record`` (raw stacks) on this
checkout's server for each kind, into ``DIR/server-KIND.txt`` (read them with
``bench/scheduler_profile.py``; the sampler inflates that run's figures).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

from bench import calibrate
from bench.report import write_report
from bench.scheduler_perf import _py_spy, _thread_sched, node, pod
from bench.server import BenchServer
from corral.agent.hollow import running_status
from corral.agent.node import LEASE_NAMESPACE, lease_object, renewal_patch
from corral.api.nodes import binding

Obj = dict[str, Any]
#: one write: (method, path, body, content type)
Write = tuple[str, str, Obj, str]

NODES = 100
NS = "default"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
MERGE = "application/merge-patch+json"
JSON = "application/json"


def _pod(i: int) -> Obj:
    return pod(f"p{i}", "100m", "100Mi")


def _node(i: int) -> Write:
    return ("POST", "/api/v1/nodes", node(i), JSON)


def writes(now: float) -> dict[str, Callable[[int], Write]]:
    """Each kind's i-th write, in the order they run (a kind may need the ones before)."""
    return {
        "pod_create": lambda i: ("POST", f"/api/v1/namespaces/{NS}/pods", _pod(i), JSON),
        "binding": lambda i: (
            "POST",
            f"/api/v1/namespaces/{NS}/pods/p{i}/binding",
            binding(f"p{i}", NS, "", f"hollow-{i % NODES}"),
            JSON,
        ),
        "pod_status": lambda i: (
            "PATCH",
            f"/api/v1/namespaces/{NS}/pods/p{i}/status",
            {
                "status": running_status(
                    _pod(i), "10.0.0.1", f"10.128.{i >> 8 & 255}.{i & 255}", now, now
                )
            },
            MERGE,
        ),
        "lease_create": lambda i: ("POST", LEASES, lease_object(f"l{i}", now), JSON),
        "lease_renewal": lambda i: (
            "PATCH",
            f"{LEASES}/l{i}",
            renewal_patch(f"l{i}", now + 10.0),
            MERGE,
        ),
        "configmap_create": lambda i: (
            "POST",
            f"/api/v1/namespaces/{NS}/configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"c{i}"},
                "data": {"key": "v" * 200},
            },
            JSON,
        ),
    }


def chunks(total: int, size: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` ranges of at most ``size`` covering ``0..total``."""
    if total <= 0 or size <= 0:
        raise ValueError("total and size must be positive")
    return [(lo, min(total, lo + size)) for lo in range(0, total, size)]


def summary(cpu_s: dict[str, float], count: int) -> dict[str, Any]:
    """µs of server CPU per write for each side, and ``ratio`` (head over base)."""
    out: dict[str, Any] = {side: round(s / count * 1e6, 1) for side, s in cpu_s.items()}
    if "base" in out and out["base"] > 0:
        out["ratio"] = round(out["head"] / out["base"], 3)
    return out


async def send_all(
    s: aiohttp.ClientSession, make: Callable[[int], Write], lo: int, hi: int, clients: int
) -> None:
    """Writes ``lo..hi-1`` from ``clients`` concurrent requests; raises on any non-2xx."""
    todo = list(range(hi - 1, lo - 1, -1))

    async def worker() -> None:
        while todo:
            method, path, body, ctype = make(todo.pop())
            data = orjson.dumps(body)
            async with s.request(method, path, data=data, headers={"Content-Type": ctype}) as r:
                answer = await r.read()
                if r.status >= 300:
                    raise RuntimeError(f"{method} {path}: {r.status} {answer[:300]!r}")

    await asyncio.gather(*(worker() for _ in range(clients)))


async def _drain(s: aiohttp.ClientSession) -> None:
    async with s.get("/api/v1/pods?watch=true&allowWatchBookmarks=true") as r:
        async for _ in r.content.iter_any():
            pass


def _cpu_s(pid: int) -> float:
    """CPU seconds of all of ``pid``'s threads, to the nanosecond (``/proc/PID/stat``
    counts 10 ms ticks: too coarse for a chunk of ~100 ms)."""
    return sum(run for run, _ in _thread_sched(pid).values())


def _source(env: dict[str, str]) -> str:
    """Where ``corral`` is imported from under ``env`` (the check that --base took), and
    whether its compiled modules run there (``corral/native.py``)."""
    probe = "import corral, corral.native as n; print(corral.__file__); print(n.disabled)"
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    path, disabled = out.stdout.strip().splitlines()
    compiled = "compiled" if disabled == "[]" else f"interpreted: {disabled}"
    return f"{Path(path).parent} ({compiled})"


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    envs = {"head": dict(os.environ)}
    if args.base:
        base_env = dict(os.environ)
        base_env["PYTHONPATH"] = str(Path(args.base).resolve() / "src")
        envs["base"] = base_env
    servers: dict[str, BenchServer] = {}
    sessions: dict[str, aiohttp.ClientSession] = {}
    watches: list[asyncio.Task[None]] = []
    try:
        for side, env in envs.items():
            extra = ["--no-scheduler", "--no-controllers"]
            servers[side] = BenchServer.start(work / side, extra=extra, env=env)
            sessions[side] = servers[side].session(args.clients + args.watchers)
            watches += [asyncio.create_task(_drain(sessions[side])) for _ in range(args.watchers)]
            await send_all(sessions[side], _node, 0, NODES, args.clients)
        sides = list(servers)
        kinds = writes(time.time())
        results: dict[str, Any] = {}
        speed0 = calibrate.cpu_ms()
        for kind in args.kinds:
            cpu = dict.fromkeys(sides, 0.0)
            spy = None
            if args.profile:
                out = Path(args.profile) / f"server-{kind}.txt"
                out.parent.mkdir(parents=True, exist_ok=True)
                spy = _py_spy(servers["head"].pid, out, args.rate)
            try:
                for n, (lo, hi) in enumerate(chunks(args.writes, args.chunk)):
                    for side in sides if n % 2 == 0 else sides[::-1]:
                        before = _cpu_s(servers[side].pid)
                        await send_all(sessions[side], kinds[kind], lo, hi, args.clients)
                        cpu[side] += _cpu_s(servers[side].pid) - before
            finally:
                if spy is not None:  # ended (its stacks written) even when a write failed
                    spy.send_signal(signal.SIGINT)
                    spy.wait(timeout=60)
            results[kind] = summary(cpu, args.writes)
            print(kind, results[kind], file=sys.stderr, flush=True)
        speed1 = calibrate.cpu_ms()
        return {
            "writes_per_kind": args.writes,
            "clients": args.clients,
            "watchers": args.watchers,
            "chunk": args.chunk,
            "source": {side: _source(env) for side, env in envs.items()},
            "us_cpu_per_write": results,
            "calibration_cpu_ms": {"before": speed0, "after": speed1},
        }
    finally:
        for t in watches:
            t.cancel()
        await asyncio.gather(*watches, return_exceptions=True)
        for s in sessions.values():
            await s.close()
        for srv in servers.values():
            srv.stop()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="corral-write-cost-") as tmp:
            runs.append(await run(args, Path(tmp)))
    medians = {
        kind: {
            key: round(statistics.median(r["us_cpu_per_write"][kind][key] for r in runs), 3)
            for key in runs[0]["us_cpu_per_write"][kind]
        }
        for kind in args.kinds
    }
    return {"runs": runs, "median_us_cpu_per_write": medians}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.write_cost")
    p.add_argument("--out", default="bench/results/write-cost.json")
    p.add_argument("--base", default="", metavar="DIR", help="a checkout to compare against")
    p.add_argument("--writes", type=int, default=4000, help="writes of each kind")
    p.add_argument("--chunk", type=int, default=250, help="writes per turn of a server")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--watchers", type=int, default=3, help="watches of all pods")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--kinds", default=",".join(writes(0.0)), help="comma list, in order")
    p.add_argument("--profile", default="", metavar="DIR", help="py-spy of the head server")
    p.add_argument("--rate", type=int, default=200, help="py-spy samples/s (see scheduler_perf)")
    args = p.parse_args(argv)
    args.kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(args.kinds) - set(writes(0.0))
    if unknown:
        p.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    report = uvloop.run(main_async(args))
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
