"""The Mesos side: the allocation cycle at 5,000 agents, and ACCEPT -> TASK_RUNNING.

``python -m bench.mesos_perf --out FILE [--sections allocation,launch] [--runs 3]``

1. **allocation** — in-process and sans-I/O, as the master runs it: a ``NodeTable`` of
   5,000 nodes (4 cpus, 32 GiB, 100 GiB disk each, like hollow nodes), an ``Allocator``
   on a ``FakeClock``, 10 frameworks in 10 roles (weights 0.5 to 3). The first
   ``allocate()`` offers every agent (5,000 offers). Then each cycle the frameworks act on
   a random 5% of the outstanding offers, as the master's ACCEPT and DECLINE handlers do:
   half are accepted (``take``, a task pod of 0.5 cpu / 2 GiB accounted with
   ``table.add_pod(pod_info(...))`` labelled with its framework and role, the rest
   ``refuse``d for 1 s), half declined (``decline(..., 1.0)``); the clock moves one
   allocation interval (1 s) and ``allocate()`` runs. Reported: the first cycle's ms,
   p50/p99 of the steady cycles' ms (``allocate()`` alone; the framework calls are
   timed apart as ``calls_ms``), offers made per second of cycle time. Target: a cycle
   at 5,000 agents <= 100 ms.
2. **launch** — a fresh ``corral server --mesos-port P --no-controllers`` and one real
   ``corral agent --runtime process``; an unmodified ``pymesos`` framework holds the
   offers it gets and, when the benchmark asks, launches ``sleep 30`` tasks (0.05 cpu,
   16 MB) with ``driver.launchTasks``. A task's latency is from just before that call to
   the ``statusUpdate`` callback that brings its TASK_RUNNING (master, API server,
   agent and the process runtime, all on this machine). Per run: 10 single tasks, one per
   offer and one at a time, then 2 batches of 10 tasks launched together on one offer
   (the only agent's whole offer: an agent is offered to one framework at a time); every
   task is killed (``driver.killTask``, TASK_KILLED awaited) before the next launch, so
   the agent is never saturated. p50/p99 per run over its 30 tasks (and per kind);
   each run's framework is torn down (TEARDOWN) and its pods awaited gone. Each run
   also records how busy the machine was and how much of that was this benchmark's own
   processes (``machine_busy_pct``, ``bench_processes_pct``). Target: p99 <= 0.5 s.

Figures are medians of ``--runs`` runs (3), reported, never asserted. Every process this
starts is stopped in a ``finally`` block: the framework (TEARDOWN), the agent (stop, then
``--reset``) and the server.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import ssl
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from bench.report import write_report
from corral.api import mesos
from corral.offers.allocator import Allocator, AllocatorConfig, SendOffers
from corral.scheduler.snapshot import NodeTable, pod_info
from corral.testing.clock import FakeClock

Obj = dict[str, Any]

# -- allocation ----------------------------------------------------------------------------------
#: the roles of the 10 frameworks and their weights (roles not set weigh 1)
ROLES: list[tuple[str, float]] = [
    ("analytics", 2.0),
    ("batch", 0.5),
    ("web", 3.0),
    ("ml", 1.0),
    ("etl", 1.0),
    ("search", 2.0),
    ("cache", 1.0),
    ("cron", 0.5),
    ("stream", 1.0),
    ("dev", 1.0),
]
TASK_CPU_M = 500
TASK_MEM = 2 * 2**30


def hollow_node(i: int) -> Obj:
    """A Node as a hollow agent registers it (``agent/node.py``'s default capacity)."""
    res = {"cpu": "4", "memory": "32Gi", "ephemeral-storage": "100Gi", "pods": "110"}
    return {
        "metadata": {"name": f"hollow-{i}", "labels": {"kubernetes.io/hostname": f"hollow-{i}"}},
        "spec": {},
        "status": {"capacity": res, "allocatable": res},
    }


def task_pod(name: str, fid: str, role: str) -> Obj:
    """A task's pod as the master accounts it: labelled with framework and role."""
    return {
        "metadata": {
            "name": name,
            "namespace": mesos.NAMESPACE,
            "labels": {mesos.FRAMEWORK_ID: mesos.label_safe(fid), mesos.ROLE: role},
        },
        "spec": {
            "containers": [
                {
                    "name": "task",
                    "resources": {"requests": {"cpu": f"{TASK_CPU_M}m", "memory": str(TASK_MEM)}},
                }
            ]
        },
    }


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def _offers(instructions: list[Any]) -> int:
    return sum(len(i.offers) for i in instructions if isinstance(i, SendOffers))


def allocation_run(nodes: int, cycles: int, fraction: float, seed: int) -> Obj:
    table = NodeTable(capacity=nodes)
    for i in range(nodes):
        table.upsert_node(hollow_node(i))
    clock = FakeClock()
    alloc = Allocator(table, clock, AllocatorConfig())
    frameworks = []
    for n, (role, weight) in enumerate(ROLES):
        if weight != 1.0:
            alloc.set_weight(role, weight)
        fid = f"bench-fw-{n:02d}"
        alloc.add_framework(fid, [role])
        frameworks.append(fid)
    rng = random.Random(seed)
    gc.collect()
    t0 = time.perf_counter()
    first = alloc.allocate()
    first_ms = (time.perf_counter() - t0) * 1000
    first_offers = _offers(first)
    cycle_ms: list[float] = []
    calls_ms: list[float] = []
    made = accepted = declined = 0
    for c in range(cycles):
        outstanding = alloc.outstanding()
        chosen = rng.sample(outstanding, max(1, round(len(outstanding) * fraction)))
        t0 = time.perf_counter()
        for k, o in enumerate(chosen):
            if rng.random() < 0.5:  # ACCEPT: one task, the rest refused for 1 s
                (offer,) = alloc.take(o.framework_id, [o.id])
                info = pod_info(task_pod(f"t-{c}-{k}", offer.framework_id, offer.role))
                table.add_pod(info, offer.agent)
                rest = offer.resources - info.requests
                rest[rest < 0] = 0
                alloc.refuse(offer.framework_id, offer.agent, offer.role, rest, offer.ports, 1.0)
                accepted += 1
            else:  # DECLINE for 1 s
                alloc.decline(o.framework_id, [o.id], 1.0)
                declined += 1
        calls_ms.append((time.perf_counter() - t0) * 1000)
        clock.advance(alloc.config.interval)
        t0 = time.perf_counter()
        out = alloc.allocate()
        cycle_ms.append((time.perf_counter() - t0) * 1000)
        made += _offers(out)
    shares = {r: round(v["dominant_share"], 4) for r, v in alloc.role_report().items()}
    return {
        "first_cycle_ms": round(first_ms, 2),
        "first_cycle_offers": first_offers,
        "first_cycle_offers_per_s": round(first_offers / (first_ms / 1000)),
        "cycles": cycles,
        "cycle_p50_ms": round(percentile(cycle_ms, 0.5), 2),
        "cycle_p99_ms": round(percentile(cycle_ms, 0.99), 2),
        "cycle_max_ms": round(max(cycle_ms), 2),
        "offers_made": made,
        "offers_per_cycle": round(made / cycles, 1),
        "offers_per_s": round(made / (sum(cycle_ms) / 1000)),
        "calls_p50_ms": round(percentile(calls_ms, 0.5), 2),
        "accepted": accepted,
        "declined": declined,
        "outstanding_at_end": len(alloc.outstanding()),
        "role_dominant_shares_at_end": shares,
    }


def bench_allocation(args: argparse.Namespace) -> Obj:
    runs = [
        allocation_run(args.nodes, args.cycles, args.fraction, seed=r) for r in range(args.runs)
    ]
    keys = (
        "first_cycle_ms",
        "first_cycle_offers_per_s",
        "cycle_p50_ms",
        "cycle_p99_ms",
        "offers_per_s",
        "offers_per_cycle",
        "calls_p50_ms",
    )
    med = {k: statistics.median(r[k] for r in runs) for k in keys}
    print(
        f"allocation, {args.nodes} agents, {len(ROLES)} frameworks: first cycle "
        f"{med['first_cycle_ms']} ms ({runs[0]['first_cycle_offers']} offers); steady cycle "
        f"p50 {med['cycle_p50_ms']} ms p99 {med['cycle_p99_ms']} ms "
        f"({med['offers_per_cycle']} offers/cycle, {med['offers_per_s']:,.0f} offers/s); "
        f"framework calls {med['calls_p50_ms']} ms/cycle (target: cycle <= 100 ms)",
        flush=True,
    )
    return {
        "plan": {
            "agents": args.nodes,
            "agent": "4 cpus, 32 GiB, 100 GiB disk",
            "frameworks": [{"role": r, "weight": w} for r, w in ROLES],
            "cycles": args.cycles,
            "fraction_acted_on_per_cycle": args.fraction,
            "task": f"{TASK_CPU_M}m cpu, {TASK_MEM // 2**30} GiB",
            "refuse_seconds": 1.0,
        },
        "median": med,
        "target": "cycle p99 <= 100 ms at 5,000 agents",
        "runs": runs,
    }


# -- launch: pymesos on a real agent -------------------------------------------------------------
TASK_CPUS = 0.05
TASK_MEM_MB = 16.0
TERMINAL = {
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_ERROR",
    "TASK_LOST",
    "TASK_DROPPED",
    "TASK_GONE",
}


def _scalar(resources: list[Any], name: str) -> float:
    return float(sum(r["scalar"]["value"] for r in resources if r["name"] == name))


def _make_scheduler() -> Any:
    import pymesos  # type: ignore[import-untyped]

    class Holder(pymesos.Scheduler):  # type: ignore[misc]
        """Holds the offers it gets until the benchmark launches on them; records when
        each task's TASK_RUNNING (and any terminal state) arrives."""

        def __init__(self) -> None:
            self.lock = threading.Condition()
            self.framework_id = ""
            self.offers: dict[str, Any] = {}
            self.running: dict[str, float] = {}
            self.terminal: dict[str, str] = {}
            self.errors: list[str] = []

        def registered(self, driver: Any, framework_id: Any, master_info: Any) -> None:
            with self.lock:
                self.framework_id = framework_id["value"]
                self.lock.notify_all()

        def resourceOffers(self, driver: Any, offers: list[Any]) -> None:
            with self.lock:
                for o in offers:
                    self.offers[o["id"]["value"]] = o
                self.lock.notify_all()

        def offerRescinded(self, driver: Any, offer_id: Any) -> None:
            with self.lock:
                self.offers.pop(offer_id["value"], None)

        def statusUpdate(self, driver: Any, update: Any) -> None:
            now = time.monotonic()
            tid, state = update["task_id"]["value"], update["state"]
            with self.lock:
                if state == "TASK_RUNNING":
                    self.running.setdefault(tid, now)
                elif state in TERMINAL:
                    self.terminal[tid] = f"{state} {update.get('message', '')}".strip()
                self.lock.notify_all()

        def error(self, driver: Any, message: str) -> None:
            with self.lock:
                self.errors.append(message)
                self.lock.notify_all()

        def wait_for(self, pred: Any, what: str, timeout: float) -> None:
            deadline = time.monotonic() + timeout
            with self.lock:
                while not pred():
                    if self.errors:
                        raise RuntimeError(f"framework error: {self.errors[-1]}")
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
                    self.lock.wait(min(left, 0.5))

        def take_offers(self, cpus: float, mem: float) -> list[Any]:
            """Wait for held offers of one agent with room for ``cpus``/``mem``; hand
            them over (they are the benchmark's to launch on)."""

            def room() -> bool:
                by_agent: dict[str, list[float]] = {}
                for o in self.offers.values():
                    acc = by_agent.setdefault(o["agent_id"]["value"], [0.0, 0.0])
                    acc[0] += _scalar(o["resources"], "cpus")
                    acc[1] += _scalar(o["resources"], "mem")
                return any(c >= cpus and m >= mem for c, m in by_agent.values())

            self.wait_for(room, "an offer with room", 30)
            with self.lock:
                agent = next(
                    a
                    for a in {o["agent_id"]["value"] for o in self.offers.values()}
                    if sum(
                        _scalar(o["resources"], "cpus")
                        for o in self.offers.values()
                        if o["agent_id"]["value"] == a
                    )
                    >= cpus
                )
                mine = [o for o in self.offers.values() if o["agent_id"]["value"] == agent]
                for o in mine:
                    del self.offers[o["id"]["value"]]
                return mine

    return Holder()


def _task(agent_id: str, tid: str) -> Obj:
    return {
        "name": tid,
        "task_id": {"value": tid},
        "agent_id": {"value": agent_id},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": TASK_CPUS}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": TASK_MEM_MB}},
        ],
        "command": {"value": "sleep 30"},
    }


def launch_batch(driver: Any, sched: Any, count: int, tag: str) -> list[float]:
    """Launch ``count`` tasks on one offer; their latencies (s). Kills them afterwards and
    waits until they are gone."""
    offers = sched.take_offers(TASK_CPUS * count, TASK_MEM_MB * count)
    agent_id = offers[0]["agent_id"]["value"]
    tids = [f"{tag}-{i}-{uuid.uuid4().hex[:6]}" for i in range(count)]
    tasks = [_task(agent_id, t) for t in tids]
    sent = time.monotonic()
    driver.launchTasks([o["id"] for o in offers], tasks, {"refuse_seconds": 0})
    sched.wait_for(
        lambda: all(t in sched.running or t in sched.terminal for t in tids), "TASK_RUNNING", 60
    )
    failed = {t: sched.terminal[t] for t in tids if t not in sched.running}
    if failed:
        raise RuntimeError(f"tasks did not run: {failed}")
    lat = [sched.running[t] - sent for t in tids]
    for t in tids:
        driver.killTask({"value": t})
    sched.wait_for(lambda: all(t in sched.terminal for t in tids), "TASK_KILLED", 60)
    return lat


def _kube_get(srv: Any, path: str) -> Obj:
    ctx: ssl.SSLContext = srv.ssl_context()
    req = urllib.request.Request(
        f"{srv.url}{path}", headers={"Authorization": f"Bearer {srv.token}"}
    )
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        out: Obj = json.loads(r.read())
        return out


def _wait_no_task_pods(srv: Any, timeout: float = 60.0) -> int:
    """Wait until namespace ``mesos`` has no pods; how many are left (0 expected)."""
    deadline = time.monotonic() + timeout
    left = -1
    while time.monotonic() < deadline:
        try:
            left = len(_kube_get(srv, f"/api/v1/namespaces/{mesos.NAMESPACE}/pods")["items"])
        except OSError:
            left = -1
        if left == 0:
            return 0
        time.sleep(0.2)
    return left


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(f[:8])
    return total - f[3] - f[4], total


def _tree_jiffies(roots: list[int]) -> int:
    """utime + stime of ``roots`` and every live descendant (server, its scheduler
    child, the agent, its task processes, this benchmark)."""
    stats: dict[int, tuple[int, int]] = {}  # pid -> (ppid, jiffies)
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(d.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    todo = [r for r in roots if r in stats]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, []))
    return sum(stats[p][1] for p in seen)


def launch_run(
    master: str, srv: Any, singles: int, batches: int, batch: int, roots: list[int]
) -> Obj:
    import pymesos  # type: ignore[import-untyped]

    busy0, total0 = _machine_jiffies()
    ours0 = _tree_jiffies(roots)
    sched = _make_scheduler()
    info = {"user": "root", "name": f"bench-launch-{uuid.uuid4().hex[:6]}"}
    driver = pymesos.MesosSchedulerDriver(sched, info, master, use_addict=True)
    driver.start()
    try:
        sched.wait_for(lambda: bool(sched.framework_id), "the framework registered", 30)
        one = [launch_batch(driver, sched, 1, "single")[0] for _ in range(singles)]
        many: list[float] = []
        for b in range(batches):
            many += launch_batch(driver, sched, batch, f"batch{b}")
    finally:
        with contextlib.suppress(Exception):
            driver.stop()  # TEARDOWN: the master kills what is left and drops the framework
        with contextlib.suppress(Exception):
            driver.join()
    busy1, total1 = _machine_jiffies()
    ours1 = _tree_jiffies(roots)
    left = _wait_no_task_pods(srv)
    with urllib.request.urlopen(f"http://{master}/state", timeout=10) as r:
        frameworks_left = len(json.loads(r.read())["frameworks"])
    both = one + many
    return {
        "samples": len(both),
        "p50_s": round(percentile(both, 0.5), 4),
        "p99_s": round(percentile(both, 0.99), 4),
        "max_s": round(max(both), 4),
        "single": {
            "samples": len(one),
            "p50_s": round(percentile(one, 0.5), 4),
            "p99_s": round(percentile(one, 0.99), 4),
            "all_s": [round(x, 4) for x in one],
        },
        f"batch_of_{batch}": {
            "samples": len(many),
            "p50_s": round(percentile(many, 0.5), 4),
            "p99_s": round(percentile(many, 0.99), 4),
            "all_s": [round(x, 4) for x in many],
        },
        # % of all cores while the run lasted: the machine, and this benchmark's own
        # processes (server, scheduler, agent, framework); the rest is someone else's
        "machine_busy_pct": round(100 * (busy1 - busy0) / max(1, total1 - total0), 1),
        "bench_processes_pct": round(100 * (ours1 - ours0) / max(1, total1 - total0), 1),
        "task_pods_left_after_teardown": left,
        "frameworks_left_after_teardown": frameworks_left,
    }


def bench_launch(args: argparse.Namespace, work: Path) -> Obj:
    from bench.server import BenchServer
    from corral.testing.agent import AgentProcess
    from corral.testing.process import free_port

    port = free_port()
    master = f"127.0.0.1:{port}"
    srv = BenchServer.start(work / "server", extra=["--mesos-port", str(port), "--no-controllers"])
    agent: AgentProcess | None = None
    try:
        agent = AgentProcess.start(srv.kubeconfig, "bench-mesos", "process", work / "agent")
        deadline = time.monotonic() + 30
        while True:  # the master has seen the agent
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://{master}/state", timeout=5) as r,
            ):
                if any(s["id"] == agent.name for s in json.loads(r.read())["slaves"]):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the Mesos master did not see the agent")
            time.sleep(0.1)
        runs = []
        for _ in range(args.runs):
            roots = [os.getpid(), srv.pid, agent.pid]
            runs.append(launch_run(master, srv, args.singles, args.batches, args.batch, roots))
            r = runs[-1]
            print(
                f"launch run {len(runs)}: {r['samples']} tasks, p50 {r['p50_s']} s, "
                f"p99 {r['p99_s']} s (single p50 {r['single']['p50_s']} s, batch of "
                f"{args.batch} p50 {r[f'batch_of_{args.batch}']['p50_s']} s); machine busy "
                f"{r['machine_busy_pct']}%, this benchmark's processes {r['bench_processes_pct']}%",
                flush=True,
            )
        med = {k: statistics.median(r[k] for r in runs) for k in ("p50_s", "p99_s", "max_s")}
        for kind in ("single", f"batch_of_{args.batch}"):
            for k in ("p50_s", "p99_s"):
                med[f"{kind}_{k}"] = statistics.median(r[kind][k] for r in runs)
        agent_rss = _rss_mb(agent.pid)
        server_rss = round(srv.rss_bytes() / 2**20, 1)
        print(
            f"launch -> TASK_RUNNING on a process agent: p50 {med['p50_s']} s, p99 "
            f"{med['p99_s']} s (median of {len(runs)} runs; target p99 <= 0.5 s)",
            flush=True,
        )
        return {
            "plan": {
                "agent": "one corral agent --runtime process on this machine",
                "task": f"sleep 30, {TASK_CPUS} cpus, {TASK_MEM_MB:g} MB",
                "per_run": f"{args.singles} single tasks one at a time, {args.batches} "
                f"batches of {args.batch} on one offer; every task killed before the next",
                "server": srv.argv,
            },
            "median": med,
            "target": "p99 <= 0.5 s",
            "runs": runs,
            "agent_rss_mb": agent_rss,
            "server_rss_mb": server_rss,
        }
    finally:
        if agent is not None:
            agent.stop()
            with contextlib.suppress(Exception):
                agent.reset()
        srv.stop()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.mesos_perf")
    p.add_argument("--out", default="bench/results/mesos.json")
    p.add_argument("--sections", default="allocation,launch")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--nodes", type=int, default=5000, help="agents in the allocation section")
    p.add_argument("--cycles", type=int, default=100, help="steady cycles per allocation run")
    p.add_argument("--fraction", type=float, default=0.05, help="offers acted on per cycle")
    p.add_argument("--singles", type=int, default=10, help="single launches per run")
    p.add_argument("--batches", type=int, default=2, help="batches per run")
    p.add_argument("--batch", type=int, default=10, help="tasks per batch")
    args = p.parse_args(argv)
    from bench.run import git_info, machine_info

    report: Obj = {
        "command": sys.argv,
        "machine": machine_info(),
        "git": git_info(),
        "sections": {},
    }
    sections = args.sections.split(",")
    if "allocation" in sections:
        report["sections"]["allocation"] = bench_allocation(args)
    if "launch" in sections:
        with tempfile.TemporaryDirectory(prefix="corral-mesos-") as tmp:
            report["sections"]["launch"] = bench_launch(args, Path(tmp))
    report["machine"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
