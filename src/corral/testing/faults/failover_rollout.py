"""Loop failover under a rolling update (``failover.py``'s second part): the scheduler and
the controller manager that ``corral server`` supervises are SIGKILLed mid-rollout of a
Deployment on hollow nodes; the supervisor starts them again and they must resume
without duplicates.

``RolloutWatch`` follows the namespace's Pods, ReplicaSets and Deployment with watches
and checks on every event what must hold at every moment:

- the rolling-update bound as upstream's e2e framework counts it
  (``waitForDeploymentCompleteMaybeCheckRolling``): the sum of the ReplicaSets'
  ``spec.replicas`` never exceeds ``replicas + maxSurge``; once the first rollout is
  complete, ``status.availableReplicas`` never falls below ``replicas - maxUnavailable``;
- no pod is bound to a second node;
and at the end that a ReplicaSet never made more pods than it ever asked for: the pods
it created over the whole run number at most its peak ``spec.replicas`` (hollow pods
never fail, so every extra one is a duplicate, even if deleted again); and, once a rollout completed, that each ReplicaSet has as many live pods as its
``spec.replicas``. It also stamps the loops' writes (the controller manager's: pods
created or marked for deletion, ReplicaSet and Deployment writes; the scheduler's: a
pod's first ``nodeName``) so that ``resume_s`` runs from a kill to the restarted loop's
first write.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from corral.api.errors import StatusError
from corral.client.rest import DEPLOYMENTS, NAMESPACES, PODS, REPLICASETS, Client, Resource

Obj = dict[str, Any]

NAMESPACE = "failover"
DEPLOYMENT = "web"
SCHEDULER = "scheduler"
CONTROLLER_MANAGER = "controller-manager"
#: how long a restarted loop may take to write again, and a rollout to complete
RESUME_LIMIT = 60.0
ROLLOUT_LIMIT = 120.0


def child_pid(parent: int, command: str) -> int | None:
    """The pid of ``parent``'s child ``python -m corral COMMAND ...`` (from /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != parent:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        words = [a.decode(errors="replace") for a in argv]
        at = words.index("corral") + 1 if "corral" in words else len(words)
        if words[at : at + 1] == [command]:
            return int(entry.name)
    return None


def _surge(replicas: int, pct: int) -> tuple[int, int]:
    """maxSurge (rounded up) and maxUnavailable (rounded down) of ``pct`` percent."""
    return math.ceil(replicas * pct / 100), math.floor(replicas * pct / 100)


def _active(pod: Obj) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return not pod["metadata"].get("deletionTimestamp") and phase not in ("Succeeded", "Failed")


def _owner(obj: Obj) -> str:
    refs = obj["metadata"].get("ownerReferences") or []
    return str(refs[0]["name"]) if refs else ""


@dataclass
class RolloutWatch:
    """The namespace's state from its watches, and the invariants checked on each event."""

    replicas: int
    max_surge: int
    max_unavailable: int
    pods: dict[str, Obj] = field(default_factory=dict)
    rss: dict[str, Obj] = field(default_factory=dict)
    deployment: Obj | None = None
    nodes: dict[str, str] = field(default_factory=dict)  # pod uid -> its node
    made: dict[str, set[str]] = field(default_factory=dict)  # RS -> uids of its pods
    peak: dict[str, int] = field(default_factory=dict)  # RS -> its largest spec.replicas
    cm_writes: list[float] = field(default_factory=list)
    scheduler_writes: list[float] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    double_bound: int = 0
    peak_active: int = 0
    check_available: bool = False

    def violate(self, text: str) -> None:
        if text not in self.violations and len(self.violations) < 50:
            self.violations.append(text)

    def on_pod(self, type_: str, pod: Obj) -> None:
        now, uid = time.monotonic(), pod["metadata"]["uid"]
        old = self.pods.get(uid)
        if type_ == "DELETED":
            self.pods.pop(uid, None)
            return
        self.pods[uid] = pod
        if old is None and type_ == "ADDED":
            self.cm_writes.append(now)
            self.made.setdefault(_owner(pod), set()).add(uid)
        elif (
            old is not None
            and pod["metadata"].get("deletionTimestamp")
            and not old["metadata"].get("deletionTimestamp")
        ):
            self.cm_writes.append(now)
        node = pod["spec"].get("nodeName") or ""
        if node:
            bound = self.nodes.setdefault(uid, node)
            if bound != node:
                self.double_bound += 1
                self.violate(f"pod {pod['metadata']['name']} bound to {bound} and then {node}")
            if old is not None and not old["spec"].get("nodeName"):
                self.scheduler_writes.append(now)
        self.peak_active = max(self.peak_active, sum(map(_active, self.pods.values())))

    def on_replicaset(self, type_: str, rs: Obj) -> None:
        self.cm_writes.append(time.monotonic())
        name = rs["metadata"]["name"]
        if type_ == "DELETED":
            self.rss.pop(name, None)
            return
        self.rss[name] = rs
        want = int(rs["spec"].get("replicas") or 0)
        self.peak[name] = max(self.peak.get(name, 0), want)
        total = sum(int(r["spec"].get("replicas") or 0) for r in self.rss.values())
        if total > self.replicas + self.max_surge:
            self.violate(
                f"total pods created: {total}, more than the max allowed: "
                f"{self.replicas + self.max_surge}"
            )

    def on_deployment(self, type_: str, d: Obj) -> None:
        self.cm_writes.append(time.monotonic())
        self.deployment = None if type_ == "DELETED" else d
        available = int((d.get("status") or {}).get("availableReplicas") or 0)
        if self.check_available and available < self.replicas - self.max_unavailable:
            self.violate(
                f"total pods available: {available}, less than the min required: "
                f"{self.replicas - self.max_unavailable}"
            )

    def duplicates(self) -> int:
        """Pods made beyond what their ReplicaSet ever asked for (checked at the end: the
        pods' and the ReplicaSets' watches are separate streams), plus pods bound twice."""
        extra = 0
        for rs, uids in self.made.items():
            if len(uids) > self.peak.get(rs, len(uids)):
                extra += len(uids) - self.peak[rs]
                self.violate(f"ReplicaSet {rs} created {len(uids)} pods, never asked for "
                             f"more than {self.peak[rs]}")  # fmt: skip
        return extra + self.double_bound

    def complete(self, image: str) -> bool:
        """Upstream's DeploymentComplete for the template ``image``, and every
        ReplicaSet with exactly its ``spec.replicas`` live pods."""
        d = self.deployment
        if d is None:
            return False
        st, spec = d.get("status") or {}, d["spec"]
        if spec["template"]["spec"]["containers"][0]["image"] != image:
            return False
        if int(st.get("observedGeneration") or 0) < int(d["metadata"].get("generation") or 0):
            return False
        if not all(int(st.get(k) or 0) == self.replicas
                   for k in ("updatedReplicas", "replicas", "availableReplicas")):  # fmt: skip
            return False
        live: dict[str, int] = {}
        for pod in self.pods.values():
            if _active(pod):
                live[_owner(pod)] = live.get(_owner(pod), 0) + 1
        return all(live.get(n, 0) == int(r["spec"].get("replicas") or 0)
                   for n, r in self.rss.items()) and sum(live.values()) == self.replicas  # fmt: skip

    def made_at_least(self, image: str, count: int) -> bool:
        """Whether the ReplicaSet of ``image`` has made ``count`` pods so far."""
        for name, rs in self.rss.items():
            if rs["spec"]["template"]["spec"]["containers"][0]["image"] == image:
                return len(self.made.get(name, ())) >= count
        return False


async def _follow(
    client: Client, res: Resource, ns: str, handle: Callable[[str, Obj], None]
) -> None:
    """List then watch ``res`` in ``ns``, feeding ``handle``, until cancelled."""
    listed = await client.list(res, ns)
    for obj in listed["items"]:
        handle("ADDED", obj)
    rv = listed["metadata"]["resourceVersion"]
    while True:
        async for ev in client.watch(res, ns, resource_version=rv, timeout_seconds=300):
            obj = ev["object"]
            if ev["type"] == "ERROR":
                raise RuntimeError(f"watch of {res.plural} failed: {obj}")
            rv = obj["metadata"]["resourceVersion"]
            if ev["type"] != "BOOKMARK":
                handle(ev["type"], obj)


def _deployment(ns: str, replicas: int, pct: int, image: str) -> Obj:
    labels = {"app": DEPLOYMENT}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": f"{pct}%", "maxUnavailable": f"{pct}%"},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


async def _until(pred: Callable[[], bool], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while not pred():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


@dataclass
class Kill:
    """One SIGKILL of a supervised loop: when, and when its successor started."""

    command: str
    killed: float
    started: float = 0.0
    until: float = math.inf  # the successor's own kill, if it was killed too
    busy: bool = True  # the rollout was not complete yet: the successor has work


async def _kill(server_pid: int, commands: tuple[str, ...], violations: list[str]) -> list[Kill]:
    """SIGKILL the processes of ``commands`` at once; wait for the supervisor's new ones."""
    kills: list[tuple[Kill, int]] = []
    for command in commands:
        pid = child_pid(server_pid, command)
        if pid is None:
            violations.append(f"no {command} child of the server to kill")
            continue
        os.kill(pid, signal.SIGKILL)
        kills.append((Kill(command, time.monotonic()), pid))

    def restarted() -> bool:
        for kill, pid in kills:
            if not kill.started and child_pid(server_pid, kill.command) not in (None, pid):
                kill.started = time.monotonic()
        return all(k.started for k, _ in kills)

    if not await _until(restarted, RESUME_LIMIT):
        late = [k.command for k, _ in kills if not k.started]
        violations.append(f"{late} not started again within {RESUME_LIMIT:.0f} s")
    return [k for k, _ in kills]


def _resume(kill: Kill, watch: RolloutWatch) -> float | None:
    """Kill to the successor's first write; None if it had none before its own kill."""
    writes = watch.scheduler_writes if kill.command == SCHEDULER else watch.cm_writes
    after = [t for t in writes if kill.started and kill.started < t < kill.until]
    return after[0] - kill.killed if after else None


async def run_rollouts(
    kubeconfig: Path,
    server_pid: int,
    *,
    replicas: int,
    rollouts: int,
    rounds: int = 1,
    targets: tuple[str, ...] = (SCHEDULER, CONTROLLER_MANAGER),
    seed: int = 16,
    ns: str = NAMESPACE,
) -> dict[str, object]:
    """Roll the Deployment out ``rollouts`` times, SIGKILLing ``targets`` (the scheduler
    and the controller manager) at ``rounds`` random points of each rollout; figures and
    violations."""
    pct = 25
    surge, unavailable = _surge(replicas, pct)
    watch = RolloutWatch(replicas, surge, unavailable)
    rng = random.Random(seed)
    client = Client.from_kubeconfig(kubeconfig)
    kills: list[Kill] = []
    completed = 0
    try:
        with contextlib.suppress(StatusError):  # AlreadyExists: a second run
            await client.create(NAMESPACES, {"metadata": {"name": ns}})
        async with asyncio.TaskGroup() as tg:
            followers = [
                tg.create_task(_follow(client, PODS, ns, watch.on_pod)),
                tg.create_task(_follow(client, REPLICASETS, ns, watch.on_replicaset)),
                tg.create_task(_follow(client, DEPLOYMENTS, ns, watch.on_deployment)),
            ]
            await client.create(DEPLOYMENTS, _deployment(ns, replicas, pct, "app:0"), ns)
            if not await _until(lambda: watch.complete("app:0"), ROLLOUT_LIMIT):
                watch.violate("the first rollout did not complete")
            watch.check_available = True
            for i in range(1, rollouts + 1 if not watch.violations else 1):
                image = f"app:{i}"
                patch = {"spec": {"template": {"spec": {"containers": [
                    {"name": "app", "image": image}]}}}}  # fmt: skip
                await client.patch(
                    DEPLOYMENTS, DEPLOYMENT, patch, ns,
                    patch_type="application/strategic-merge-patch+json",
                )  # fmt: skip
                # mid-rollout: once the new ReplicaSet made `at` pods (0: once it exists)
                for at in sorted(rng.randint(0, replicas - 1) for _ in range(rounds)):
                    await _until(partial(watch.made_at_least, image, at), ROLLOUT_LIMIT)
                    busy = not watch.complete(image)
                    for kill in await _kill(server_pid, targets, watch.violations):
                        kill.busy = busy
                        kills.append(kill)
                if await _until(partial(watch.complete, image), ROLLOUT_LIMIT):
                    completed += 1
                else:
                    watch.violate(f"rollout {i} did not complete within {ROLLOUT_LIMIT:.0f} s")
                    break
            await asyncio.sleep(0.5)  # a last look for late duplicates
            for task in followers:
                task.cancel()
    finally:
        with contextlib.suppress(Exception):
            await client.delete(NAMESPACES, ns)
        await client.close()
    duplicates = watch.duplicates()
    for k in kills:  # a successor killed in turn ran until then
        k.until = min((n.killed for n in kills if n.command == k.command and n.killed > k.killed),
                      default=math.inf)  # fmt: skip
    resumes = [r for k in kills if (r := _resume(k, watch)) is not None]
    for k in kills:
        quiet = k.started and k.until == math.inf and _resume(k, watch) is None
        if quiet and k.busy and k.command == CONTROLLER_MANAGER:  # it had work to do
            watch.violate(f"the restarted {k.command} wrote nothing")
    return {
        "rollout_kills": len(kills),
        "rollouts": rollouts,
        "rollouts_completed": completed,
        "rollout_completed": completed == rollouts,
        "replicas": replicas,
        "duplicate_pods": duplicates,
        "peak_active_pods": watch.peak_active,
        "max_pods_allowed": replicas + surge,
        "resume_s": _percentiles(resumes),
        "restart_s": _percentiles([k.started - k.killed for k in kills if k.started]),
        "violations": watch.violations,
    }


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 3)

    return {"p50": at(0.5), "p99": at(0.99)}
