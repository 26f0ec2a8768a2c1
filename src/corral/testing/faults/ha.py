"""Fault scenario ``ha`` (issue 18, Deliver 7): a three-server cluster on a three-member
etcd while the leader of the loops is SIGKILLed again and again.

``corral.testing.ha.HACluster``: 3 etcd members, 3 ``corral server`` processes (each with
its scheduler, Mesos master and controller manager, elected through Leases with 2 s
leases), hollow nodes in one ``corral agent`` given every server URL. Under it:

- a steady write load: ``crash_load.Writer`` threads (ConfigMaps and encrypted Secrets,
  each object carrying its checksum) and ``crash_load.Watcher`` streams, every one over
  ``FailoverEndpoint`` (the next server whenever a connection fails; a write cut off is
  resolved by a GET on another server), checked exactly as the ``crash`` scenario checks
  (``acknowledged_writes_lost``, ``half_written``, ``rv_regressions``, ``watch_missed``
  ...: the watch resumed on another server from the last resourceVersion seen);
- a Deployment whose rollout starts before the kills and must complete
  (``failover_rollout.RolloutWatch``: surge bounds, ``duplicate_pods``);
- every pod of the cluster followed: ``pods_bound_twice`` (a ``nodeName`` that changes);
- a pymesos framework (``failover_framework``, its own process, pointed at server 0's
  master: killed and restarted, that one redirects it to the new leader) with running
  tasks: after the kills (within ``FRAMEWORK_LIMIT``, 45 s: pymesos' own back-off) they
  are RUNNING with the same task ids on the same pods (``framework_tasks_lost``);
- ``kills`` leader kills (``ha_kills.kill_leader``): the holder of the scheduler's or the
  controller manager's Lease SIGKILLed and restarted; ``takeover_s`` (kill to a new
  holder) and ``pod_bound_s`` (kill to a pod bound by the new scheduler), each within
  ``RESUME_LIMIT`` (20 s) or ``loops_not_resumed``;
- one etcd member (its leader) SIGKILLed: writes go on (``writes_while_member_down``).

``run(work, long=False)`` returns the figures and ``violations``. Short form (the suite):
two leader kills (the scheduler's and the controller manager's holders); long form
(``make faults``): 20.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.client.rest import DEPLOYMENTS, PODS, REPLICASETS, Client
from corral.testing.faults.crash import _check, _drain, _list
from corral.testing.faults.crash_load import KINDS, PREFIX, Endpoint, Ledger, Watcher, Writer
from corral.testing.faults.failover import FrameworkProcess
from corral.testing.faults.failover_rollout import DEPLOYMENT, RolloutWatch, _deployment, _surge
from corral.testing.faults.ha_backup import RestoreCheck, backup, objects
from corral.testing.faults.ha_kills import (
    RESUME_LIMIT,
    Bindings,
    KillResult,
    create_until,
    ensure_probe_namespace,
    follow,
    kill_etcd_member,
    kill_leader,
)
from corral.testing.faults.https import connection
from corral.testing.ha import HACluster
from corral.testing.wait import wait_for

Obj = dict[str, Any]

NAMESPACE = "ha"
TASKS = 2
ROLLOUT_LIMIT = 60.0
#: how long after the last kill the framework may take to subscribe again: pymesos
#: retries the master it last used (a killed one, until it is restarted) with a
#: back-off of up to 15 s, then follows that master's redirect; two kills in a row can
#: chain two such waits
FRAMEWORK_LIMIT = 45.0


@dataclass(frozen=True)
class FailoverEndpoint(Endpoint):
    """An ``Endpoint`` over several servers: each new connection (made after the last one
    failed) goes to the next server, round the list."""

    ports: tuple[int, ...] = ()
    turn: list[int] = field(default_factory=lambda: [0], compare=False, hash=False)

    def connect(self, timeout: float = 30.0) -> http.client.HTTPSConnection:
        at = self.turn[0]
        self.turn[0] = at + 1
        port = self.ports[at % len(self.ports)]
        return connection(port, self.ctx, timeout)


def endpoint(cluster: HACluster, start: int = 0) -> FailoverEndpoint:
    ports = tuple(s.port for s in cluster.members)
    return FailoverEndpoint(ports[0], cluster.token, cluster.ssl_context(), ports, [start])


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None}
    s = sorted(values)
    return {q: round(s[min(len(s) - 1, math.ceil(f * len(s)) - 1)], 3)
            for q, f in (("p50", 0.5), ("p99", 0.99))}  # fmt: skip


def _task_pods(cluster: HACluster, fid: str) -> dict[str, str]:
    """The framework's tasks: task id -> pod uid."""
    from corral.api import mesos as names

    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for pod in cluster.task_pods():
            meta = pod["metadata"]
            if (meta.get("labels") or {}).get(names.FRAMEWORK_ID) == names.label_safe(fid):
                out[meta["annotations"][names.TASK_ID]] = meta["uid"]
    return out


def _pymesos_said(log: Path, lines: int = 12) -> list[str]:
    """The last lines pymesos logged (its connects, redirects, a thread abort), without
    the tracebacks."""
    with contextlib.suppress(OSError):
        said = [line[:200] for line in log.read_text(errors="replace").splitlines()
                if line[:4].isdigit()]  # fmt: skip
        return said[-lines:]
    return []


def _framework_state(cluster: HACluster, fid: str) -> tuple[bool, dict[str, str]]:
    """Whether the leading master has ``fid`` connected, and its tasks' states there."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        for fw in cluster.master_state()["frameworks"]:
            if fw["id"] == fid:
                tasks = {t["id"]: t["state"] for t in fw.get("tasks") or []}
                return bool(fw.get("connected")), tasks
    return False, {}


async def _rollout_and_kills(
    cluster: HACluster,
    ledger: Ledger,
    kills: int,
    replicas: int,
    out: dict[str, Any],
    settle_first: bool,
) -> list[KillResult]:
    """Follow the Deployment made before, begin a rollout (``settle_first``: once the
    first one completed), kill leaders ``kills`` times (and one etcd member), then wait
    for the rollout to complete; figures into ``out``."""
    surge, unavailable = _surge(replicas, 25)
    watch = RolloutWatch(replicas, surge, unavailable)
    bindings = Bindings()
    t_start = time.monotonic()
    client = Client.from_kubeconfig(cluster.kubeconfig)
    results: list[KillResult] = []
    violations: list[str] = out["violations"]
    try:
        followers = [
            asyncio.create_task(follow(client, PODS, NAMESPACE, watch.on_pod)),
            asyncio.create_task(follow(client, REPLICASETS, NAMESPACE, watch.on_replicaset)),
            asyncio.create_task(follow(client, DEPLOYMENTS, NAMESPACE, watch.on_deployment)),
            asyncio.create_task(follow(client, PODS, None, bindings.on_pod)),
        ]
        if settle_first:  # else the update comes in the middle of the first rollout
            if not await _until(lambda: watch.complete("app:0"), ROLLOUT_LIMIT):
                watch.violate("the Deployment's first rollout did not complete")
            watch.check_available = True
        patch = {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "app:1"}]}}}}  # fmt: skip
        await client.patch(DEPLOYMENTS, DEPLOYMENT, patch, NAMESPACE,
                           patch_type="application/strategic-merge-patch+json")  # fmt: skip
        out.setdefault("phases_s", {})["rollout_watched"] = round(time.monotonic() - t_start, 2)
        t_kills = time.monotonic()
        for n in range(kills):  # the rollout is under way: the loops must finish it
            goal = ledger.acked + 10
            res = await asyncio.to_thread(kill_leader, cluster, n, violations)
            if res is not None:
                results.append(res)
            if not await _until(lambda: ledger.acked >= goal, RESUME_LIMIT):  # noqa: B023
                violations.append(f"kill {n}: the write load did not go on")
        phases = out.setdefault("phases_s", {})  # seconds since the first kill
        phases["leader_kills"] = round(time.monotonic() - t_kills, 2)
        (
            out["writes_while_member_down"],
            out["member_kill_to_20_writes_s"],
        ) = await asyncio.to_thread(kill_etcd_member, cluster, ledger, violations)
        phases["etcd_member_kill"] = round(time.monotonic() - t_kills, 2)
        out["rollout_completed"] = await _until(lambda: watch.complete("app:1"), ROLLOUT_LIMIT)
        phases["rollout_completed"] = round(time.monotonic() - t_kills, 2)
        if not out["rollout_completed"]:
            watch.violate(f"the rollout begun before the kills did not complete "
                          f"within {ROLLOUT_LIMIT:.0f} s")  # fmt: skip
        await asyncio.sleep(0.5)  # a last look for late duplicates
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
    finally:
        await client.close()
    out["duplicate_pods"] = watch.duplicates()
    out["pods_bound_twice"] = bindings.bound_twice
    out["pods_followed"] = len(bindings.nodes)
    out["peak_active_pods"], out["max_pods_allowed"] = watch.peak_active, replicas + surge
    violations += watch.violations + bindings.violations
    return results


async def _until(pred: Any, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while not pred():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _load(cluster: HACluster, writers: int) -> tuple[Ledger, list[Writer], dict[str, Watcher]]:
    ledger = Ledger(1 << 40)  # runs until told to stop (``ledger.done``)
    resources = list(KINDS)
    watchers: dict[str, Watcher] = {}
    for i, r in enumerate(resources):
        ep = endpoint(cluster, i + 1)
        watchers[r] = Watcher(ep, ledger, r, _list(ep, r)[0])
        watchers[r].start()
    pool = []
    for i in range(writers):
        names = [f"{PREFIX}w{i}-{k}" for k in range(4)]
        w = Writer(endpoint(cluster, i), ledger, resources[i % len(resources)], names, 18 + i)
        w.start()
        pool.append(w)
    return ledger, pool, watchers


def run(work: Path, *, long: bool = False) -> dict[str, object]:
    """The scenario (module docstring). Long: 20 leader kills, 8 hollow nodes, 12
    replicas, 6 writers; short: 1 kill, 3 nodes, 4 replicas, 4 writers."""
    kills, nodes, replicas, writers = (20, 8, 12, 6) if long else (2, 3, 4, 4)
    out: dict[str, Any] = {"leader_kills": 0, "violations": []}
    violations: list[str] = out["violations"]
    framework: FrameworkProcess | None = None
    pool: list[Writer] = []
    watchers: dict[str, Watcher] = {}
    ledger = Ledger(0)
    restore: RestoreCheck | None = None
    t0 = time.monotonic()
    phases: dict[str, float] = out.setdefault("phases_s", {})

    def mark(name: str) -> None:
        phases[name] = round(time.monotonic() - t0, 2)

    with HACluster(work / "cluster", hollow_nodes=nodes) as cluster:
        try:
            mark("cluster_up")
            ensure_probe_namespace(cluster)
            create_until(cluster, "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
            if not create_until(cluster, f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments",
                           _deployment(NAMESPACE, replicas, 25, "app:0")):  # fmt: skip
                violations.append("the Deployment could not be created")
            framework = FrameworkProcess.start(cluster.members[0].master, work / "fw.jsonl",
                                               "ha", tasks=TASKS, timeout=300.0)  # fmt: skip
            ledger, pool, watchers = _load(cluster, writers)
            cluster.wait_hollow(nodes)
            mark("hollow_ready")
            if not wait_for(lambda: framework.running(TASKS), 60):
                violations.append(f"the framework's tasks never ran: {framework.said()}")
            fid = framework.framework_id()
            # the RUNNING tasks' pods (not a replaced launch's, which may still be going);
            # read until each has its pod (one read may meet a server in a bad moment)
            tasks_before: dict[str, str] = {}

            def running_pods() -> bool:
                ran = framework.running_ids()
                tasks_before.clear()
                tasks_before.update({t: u for t, u in _task_pods(cluster, fid).items() if t in ran})
                return len(tasks_before) >= TASKS

            if not wait_for(running_pods, 30):
                violations.append(f"the framework's running tasks lack pods: {tasks_before}")
            mark("framework_running")
            results = asyncio.run(_rollout_and_kills(cluster, ledger, kills, replicas, out, long))
            out["leader_kills"] = len(results)
            mark("kills_done")
            takeover = [t for r in results for t in r.takeover_s.values()]
            out["takeover_s"] = _percentiles(takeover)
            out["pod_bound_s"] = _percentiles([r.bound_s for r in results if r.bound_s])
            out["loops_not_resumed"] = sum(
                len(r.leases) - len(r.takeover_s)
                + (1 if "kube-scheduler" in r.leases and r.bound_s is None else 0)
                for r in results
            )  # fmt: skip
            # the framework: re-subscribed where the leader is now, its tasks kept. Read
            # until so (or the limit): one read may meet a master that has just handed
            # its Lease on, or a server in a bad moment; a task lost stays lost.
            seen: dict[str, Any] = {}

            def kept() -> bool:
                connected, states = _framework_state(cluster, fid)
                after = _task_pods(cluster, fid)
                lost = [t for t in tasks_before
                        if states.get(t) != "TASK_RUNNING" or after.get(t) != tasks_before[t]]  # fmt: skip
                seen.update(connected=connected, states=states, after=after, lost=lost)
                return connected and not lost

            wait_for(kept, FRAMEWORK_LIMIT)
            connected, states, after, lost = (
                seen["connected"], seen["states"], seen["after"], seen["lost"]
            )  # fmt: skip
            out["framework_tasks_lost"] = len(lost) if tasks_before else TASKS
            out["framework_subscriptions"] = sum(
                1 for r in framework.records() if "registered" in r
            )
            # calls a master refused while it lost its leadership (dropped, as libmesos does)
            out["framework_calls_dropped"] = sum(
                1 for r in framework.records() if "call_failed" in r
            )
            if not connected or lost:
                violations.append(f"framework {fid}: connected={connected}, tasks lost or "
                                  f"restarted {lost}: {tasks_before} -> {after}, {states}; "
                                  f"pymesos said: {_pymesos_said(work / 'fw.log')}")  # fmt: skip
            mark("framework_checked")
            # the load: stopped, settled, checked as the crash scenario checks it
            ledger.done.set()
            settle = time.monotonic() + 60  # every unanswered write resolved by a GET
            for writer in pool:
                writer.join(max(0.0, settle - time.monotonic()))
            ep = endpoint(cluster)
            _drain(ep, ledger, watchers)
            _check(ep, ledger, watchers)
            mark("load_checked")
            # backup of the live etcd; restored on a "fresh host" while the cluster stops
            want = objects(ep)
            backup(cluster, work / "backup.db")
            token = cluster.members[0].data_dir / "cluster-token"
            restore = RestoreCheck(work / "backup.db", work / "restored", token, want)
            restore.start()
            mark("backed_up")
        finally:
            ledger.done.set()
            ledger.stop.set()
            for watcher in watchers.values():
                watcher.close()
            if framework is not None:
                framework.kill()
    mark("stopped")
    if restore is not None:
        restore.join(180)
        out["backup_restore_objects"] = restore.objects
        out["backup_restore_mismatches"] = restore.mismatches
        if restore.error or restore.mismatches:
            violations.append(f"restored from the backup: {restore.mismatches} objects differ "
                              f"of {len(restore.want)} {restore.error}")  # fmt: skip
        mark("restore_checked")
    out["operations"], out["attempted"] = ledger.acked, ledger.attempted
    out["watch_streams"] = sum(w.streams for w in watchers.values())  # resumed on other servers
    out.update(dict.fromkeys(("acknowledged_writes_lost", "half_written", "rv_regressions",
                              "watch_missed", "watch_repeated"), 0))  # fmt: skip
    out.update(ledger.counts)
    violations += ledger.violations
    return out


if __name__ == "__main__":  # python -m corral.testing.faults.ha [--long] WORKDIR
    import tempfile

    with contextlib.ExitStack() as stack:
        args = sys.argv[1:]
        rest = [a for a in args if a != "--long"]
        where = Path(rest[0]) if rest else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        print(json.dumps(run(where, long="--long" in args), indent=2))
