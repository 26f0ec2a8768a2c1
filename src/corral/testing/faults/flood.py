"""Overload: one client floods the API with ``kubectl get pods -A`` while hollow nodes
heartbeat and the scheduler places new pods (issue 16, item 5).

``run(work, long=...)`` starts a real ``corral server`` (scheduler and controller manager
as its child processes) with a static token file naming one user, ``flooder``, bound to
the ``view`` ClusterRole (NOT system:masters: upstream exempts that group from priority
and fairness, so a flood from the admin would prove nothing). Beside it, as processes of
their own (``flood_children.py``) so that none shares an event loop with another:

- hollow nodes under the server's ``hollow-nodes`` identity (group ``system:nodes``),
  renewing their Leases every ``renew`` seconds and writing each renewal down;
- the flood: ``connections`` loops of ``kubectl get pods -A`` (kubectl's request, its
  429 retries) for ``flood_seconds``. Python, not 50 ``kubectl`` processes: a kubectl
  run costs ~0.1 s of CPU before it sends anything, so 50 loops would spend the host's
  2 cores starting Go processes instead of loading the server.

This process, as the admin (exempt), creates probe pods and times their binding through
a watch, and watches the Nodes. ``--node-monitor-grace-period`` is 4 renew intervals
(upstream: 40 s on 10 s). Measured: heartbeats missed (in each gap between two of a
node's renewals during the flood, one per renew interval past the second; plus renewals
that failed), nodes seen NotReady, the scheduling latency of probe pods created during the
flood against those created before it, the server's RSS before and its peak during the
flood (``VmHWM``, reset through ``/proc/PID/clear_refs`` when it starts), and the
flood's answers (served, 429 with and without ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from corral.agent.node import bounded
from corral.api.errors import StatusError
from corral.client.rest import NAMESPACES, NODES, PODS, Client, Resource
from corral.testing.process import ServerProcess
from corral.testing.wait import until

Obj = dict[str, Any]

CLUSTER_ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", False)
FLOOD_USER = "flooder"
PROBE_NS = "flood-probe"
NODE_PREFIX = "fn"
Popen = subprocess.Popen[bytes]


@dataclasses.dataclass(frozen=True)
class Plan:
    """Sizes and durations of one run (``SHORT`` in the suite, ``LONG`` in make faults)."""

    nodes: int
    pods: int
    connections: int
    flood_seconds: float
    probes: int
    renew: float = 2.0
    #: seconds to keep watching the Nodes after the flood (the node controller's next look)
    settle: float = 0.0

    @property
    def grace(self) -> float:
        return 4 * self.renew


SHORT = Plan(nodes=10, pods=300, connections=50, flood_seconds=6.0, probes=4)
LONG = Plan(nodes=50, pods=400, connections=50, flood_seconds=60.0, probes=30, settle=4.0)


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    return round(s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))], 3)


def _proc_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def _reset_peak(pid: int) -> bool:
    """Reset ``VmHWM`` to the current RSS (``clear_refs`` 5, Linux 4.0+); False if denied."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# --- the scenario ---------------------------------------------------------------------------
def _child(argv: list[str], log: Path) -> Popen:
    with open(log, "ab") as out:
        cmd = [sys.executable, "-m", "corral.testing.faults.flood_children", *argv]
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ready(node: Obj) -> bool:
    conds = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def heartbeat_misses(record: Path, start: float, end: float, renew: float) -> Obj:
    """From the agent's record, over ``[start, end]``: renewals that failed, and the
    heartbeats missed: in each gap between a node's successful renewals (the last one's
    runs to ``end``), one per ``renew`` interval beyond two (a gap of up to ``2 * renew``
    misses none, up to ``3 * renew`` one, ...); the gaps themselves too."""
    ok: dict[str, list[float]] = {}
    failed = 0
    for line in record.read_text().splitlines():
        parts = line.split()
        if len(parts) != 4:
            continue  # a line cut by the agent's end
        node, t0, t1, good = parts[0], float(parts[1]), float(parts[2]), parts[3] == "1"
        if good:
            ok.setdefault(node, []).append(t1)
        elif start <= t0 <= end:
            failed += 1
    missed = 0
    gaps: list[float] = []
    for times in ok.values():
        times.sort()
        for prev, nxt in zip(times, [*times[1:], end], strict=True):
            if nxt < start or prev > end:
                continue
            gaps.append(min(nxt, end) - prev)
            missed += max(0, math.ceil(gaps[-1] / renew) - 2)
    return {"failed": failed, "missed": missed, "gaps": gaps, "nodes": len(ok)}


class Probe:
    """Creates pods in ``PROBE_NS`` and times, through a watch, each one's binding."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.sent: dict[str, float] = {}
        self.bound: dict[str, float] = {}
        self.failed: dict[str, str] = {}

    def on_event(self, obj: Obj) -> None:
        name = (obj.get("metadata") or {}).get("name", "")
        if (obj.get("spec") or {}).get("nodeName") and name not in self.bound:
            self.bound[name] = time.monotonic()

    async def create(self, name: str) -> None:
        spec = {"containers": [{"name": "c", "image": "busybox:1.36"}]}
        self.sent[name] = time.monotonic()
        try:
            await self.client.create(PODS, {"metadata": {"name": name}, "spec": spec}, PROBE_NS)
        except (StatusError, TimeoutError, aiohttp.ClientError) as e:
            self.failed[name] = repr(e)  # starved too: counted as not scheduled

    def latencies(self, prefix: str) -> tuple[list[float], list[str]]:
        """Seconds from create to bound, and the names not bound (or not created)."""
        names = [n for n in self.sent if n.startswith(prefix)]
        done = [self.bound[n] - self.sent[n] for n in names if n in self.bound]
        return done, [n for n in names if n not in self.bound]

    async def all_bound(self, prefix: str) -> bool:
        return not self.latencies(prefix)[1]


async def _follow(
    client: Client, res: Resource, namespace: str | None, on_event: Callable[[Obj], None]
) -> None:
    """Call ``on_event`` with every object a watch of ``res`` sees, resumed when it ends."""
    rv = (await client.list(res, namespace))["metadata"]["resourceVersion"]
    while True:
        try:
            async for ev in client.watch(res, namespace, resource_version=rv):
                obj = ev.get("object") or {}
                rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                if ev.get("type") != "BOOKMARK":
                    on_event(obj)
        except (StatusError, TimeoutError, aiohttp.ClientError):
            await asyncio.sleep(0.1)


async def _setup(admin: Client, srv: ServerProcess, plan: Plan, work: Path) -> Popen:
    """The flooder's binding, the namespaces, the hollow nodes (Ready) and ``plan.pods``
    pods, all bound; returns the hollow nodes' process."""
    rbac = "rbac.authorization.k8s.io"
    await admin.create(CLUSTER_ROLE_BINDINGS, {
        "metadata": {"name": "flooder-view"},
        "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": rbac, "kind": "User", "name": FLOOD_USER}],
    })  # fmt: skip
    spaces = [f"flood-{i}" for i in range(4)]
    for ns in (PROBE_NS, *spaces):
        await admin.create(NAMESPACES, {"metadata": {"name": ns}})
    agent = _child(["agent", "--kubeconfig", str(srv.data_dir / "pki" / "hollow-nodes.kubeconfig"),
                    "--prefix", NODE_PREFIX, "--count", str(plan.nodes), "--renew", str(plan.renew),
                    "--record", str(work / "renewals.txt")], work / "agent.log")  # fmt: skip
    try:
        await _nodes_and_pods(admin, plan, spaces)
    except BaseException:  # the caller never gets the process: it must not outlive us
        _stop(agent)
        raise
    return agent


async def _nodes_and_pods(admin: Client, plan: Plan, spaces: list[str]) -> None:
    """Wait for the hollow nodes to be Ready, then create ``plan.pods`` pods and wait for
    them all to be bound."""

    async def nodes_ready() -> bool:
        return sum(_ready(n) for n in (await admin.list(NODES))["items"]) >= plan.nodes

    await until(nodes_ready, timeout=60)

    def pod(i: int) -> Callable[[], Awaitable[None]]:
        async def make() -> None:
            body = {"metadata": {"name": f"p-{i}"},
                    "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}  # fmt: skip
            await admin.create(PODS, body, spaces[i % len(spaces)])

        return make

    await bounded((pod(i) for i in range(plan.pods)), 16)

    async def all_bound() -> bool:
        items = (await admin.list(PODS))["items"]
        return sum(bool(p["spec"].get("nodeName")) for p in items) >= plan.pods

    await until(all_bound, timeout=120)


async def _drive(srv: ServerProcess, plan: Plan, work: Path, token: str) -> Obj:
    admin = Client.from_kubeconfig(srv.kubeconfig, connections=32)  # system:masters: exempt
    agent = flood = None
    probe = Probe(admin)
    not_ready: set[str] = set()

    def on_node(node: Obj) -> None:
        name = node["metadata"]["name"]
        if name.startswith(NODE_PREFIX) and not _ready(node):
            not_ready.add(name)

    try:
        agent = await _setup(admin, srv, plan, work)
        async with asyncio.TaskGroup() as tg:
            watches = [tg.create_task(_follow(admin, NODES, None, on_node)),
                       tg.create_task(_follow(admin, PODS, PROBE_NS, probe.on_event))]  # fmt: skip
            for i in range(max(3, plan.probes // 2)):  # the baseline, without the flood
                await probe.create(f"base-{i}")
                await asyncio.sleep(0.3)
            await until(lambda: probe.all_bound("base-"), timeout=30)
            rss_before, hwm_before = _proc_kb(srv.pid, "VmRSS"), _proc_kb(srv.pid, "VmHWM")
            reset = _reset_peak(srv.pid)
            flood = _child(["flood", "--url", srv.url, "--token", token, "--ca", str(srv.ca_file),
                            "--out", str(work / "flood.json"), "--connections",
                            str(plan.connections), "--seconds", str(plan.flood_seconds)],
                           work / "flood.log")  # fmt: skip
            start = time.monotonic()
            await asyncio.sleep(min(2.0, plan.flood_seconds / 5))  # let it build up
            gap = (plan.flood_seconds - (time.monotonic() - start) - 1) / plan.probes
            async with asyncio.TaskGroup() as probes:  # on schedule, however slow the answers
                for i in range(plan.probes):
                    probes.create_task(probe.create(f"flood-{i}"))
                    await asyncio.sleep(max(0.1, gap))
            await asyncio.to_thread(flood.wait, plan.flood_seconds + 120)
            end = time.monotonic()
            peak_kb = _proc_kb(srv.pid, "VmHWM")
            with contextlib.suppress(TimeoutError):
                await until(lambda: probe.all_bound("flood-"), timeout=30)
            await asyncio.sleep(plan.settle)
            for w in watches:
                w.cancel()
    finally:
        _stop(flood)
        _stop(agent)
        await admin.close()
    if not (work / "flood.json").exists():
        raise RuntimeError(f"the flood failed: {(work / 'flood.log').read_text()[-2000:]}")
    counts: dict[str, int] = json.loads((work / "flood.json").read_text())
    misses = heartbeat_misses(work / "renewals.txt", start, end, plan.renew)
    base, _ = probe.latencies("base-")
    lat, unscheduled = probe.latencies("flood-")
    gaps = misses["gaps"]
    return {
        "plan": dataclasses.asdict(plan),
        "heartbeats_missed": misses["missed"] + misses["failed"],
        "lease_renewals_failed": misses["failed"],
        "lease_renewal_gap_s": {
            "p50": _pct(gaps, 50),
            "p99": _pct(gaps, 99),
            "max": round(max(gaps, default=0.0), 3),
            "allowed": 2 * plan.renew,
        },
        "nodes_renewing": misses["nodes"],
        "nodes_not_ready": len(not_ready),
        "scheduling_latency_s": {
            "p50": _pct(lat, 50),
            "p99": _pct(lat, 99),
            "baseline_p50": _pct(base, 50),
            "baseline_p99": _pct(base, 99),
        },
        "pods_not_scheduled": len(unscheduled),
        "pod_creates_failed": len(probe.failed),
        "server_rss_before_mb": round(rss_before / 1024, 1),
        "server_peak_rss_mb": round(peak_kb / 1024, 1),
        "server_peak_rss_before_flood_mb": round(hwm_before / 1024, 1),
        "peak_reset_before_flood": reset,
        "flood_seconds": round(end - start, 1),
        "flood_requests": sum(counts.values()),
        "flood_served": counts.get("200", 0),
        "flood_429": counts.get("429_retry_after", 0) + counts.get("429_bare", 0),
        "flood_429_without_retry_after": counts.get("429_bare", 0),
        "flood_answers": counts,
    }


def run(work: Path, *, long: bool = False) -> dict[str, object]:
    """The scenario (see the module's docstring); figures and ``violations``."""
    plan = LONG if long else SHORT
    work.mkdir(parents=True, exist_ok=True)
    token = os.urandom(16).hex()
    tokens = work / "tokens.csv"
    tokens.write_text(f"{token},{FLOOD_USER},flooder-uid\n")
    srv = ServerProcess.start(work / "data", extra=[
        "--token-auth-file", str(tokens), "--no-metrics-server",
        "--kube-controller-manager-arg", f"node-monitor-grace-period={int(plan.grace)}s",
        "--kube-controller-manager-arg", f"node-monitor-period={int(plan.renew)}s",
    ])  # fmt: skip
    try:
        figures = asyncio.run(_drive(srv, plan, work, token))
    finally:
        srv.stop()
    violations = []
    if figures["heartbeats_missed"]:
        violations.append(f"{figures['heartbeats_missed']} node heartbeats missed under the flood "
                          f"(renewal gaps {figures['lease_renewal_gap_s']})")  # fmt: skip
    if figures["nodes_not_ready"]:
        violations.append(f"{figures['nodes_not_ready']} nodes went NotReady under the flood")
    if figures["pods_not_scheduled"]:
        violations.append(f"{figures['pods_not_scheduled']} pods created during the flood "
                          "were not scheduled within 30 s of its end")  # fmt: skip
    figures["violations"] = violations
    return figures
