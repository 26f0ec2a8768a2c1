"""The node lifecycle controller: node health from Leases, condition taints, pods marked
not ready.

Run by ``ControllerManager`` (controllers/manager.py, name ``nodelifecycle``) inside
``corral server`` / ``corral up`` or ``corral controller-manager``. Behaviour follows
Kubernetes' pkg/controller/nodelifecycle (1.32); the pure decisions (``probe_update``,
``unknown_conditions``, ``desired_taints``, ``reconcile_taints``) are functions here so
the unit tests drive them with a fake clock. Evicting the pods of a NoExecute-tainted
node is the taint eviction controller's job (``taint_eviction.py``), as upstream.

Health, per node, kept in memory (``_Health``)::

    probe time = this controller's clock when it last saw the node's Lease renewTime
                 advance or the Ready condition's lastHeartbeatTime change (first sight
                 of a node counts as a change). Local time, not the agent's stamps, so a
                 skewed agent clock cannot make a node look dead or alive. Leases are
                 read from the informer's cache by the monitor pass and by ``sync``,
                 never on their events (as upstream: a renewal is seen within one
                 monitor period, and 5,000 nodes' renewals cost no syncs).

    now > probe + grace (--node-monitor-grace-period, 40 s; a node that never posted
    Ready gets --node-startup-grace-period, 60 s)
        ──> Ready, MemoryPressure, DiskPressure, PIDPressure := Unknown
            (reason NodeStatusUnknown, "Kubelet stopped posting node status.";
             NetworkUnavailable is left alone, as upstream)
            Event NodeNotReady on the Node; pods on it get Ready=False

``sync(node)`` then sets the taints the node's state calls for (TaintNodesByCondition
and taint-based eviction), touching only the taint keys this controller owns::

    Ready False    ──> node.kubernetes.io/not-ready    NoSchedule + NoExecute
    Ready Unknown  ──> node.kubernetes.io/unreachable  NoSchedule + NoExecute
    Ready True     ──> neither (the agent posted Ready=True again)
    MemoryPressure/DiskPressure/PIDPressure/NetworkUnavailable True ──> the matching
                       node.kubernetes.io/<...> NoSchedule taint
    spec.unschedulable (kubectl cordon) ──> node.kubernetes.io/unschedulable NoSchedule

NoExecute taints carry ``timeAdded`` (kept while the taint stays); NoSchedule ones do not,
as upstream. Every ``--node-monitor-period`` (5 s) ``monitor_pass`` looks at every
node's Lease and queues the nodes whose ``sync`` has something to write; Node events, and
Pod events that show a ready pod on a node that is not, queue the node at once. Not done
(upstream has them): zone-aware
eviction rate limits and the "full disruption" mode that stops tainting when a whole
zone is down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from corral.client.informer import Informer
from corral.client.rest import LEASES, NODES, PODS, Client
from corral.controllers.base import (
    NODE_NAME_INDEX,
    Controller,
    InformerFactory,
    clone,
    node_name_index,
)
from corral.util.clock import Clock, parse_rfc3339, rfc3339
from corral.util.durations import duration

log = logging.getLogger("corral.controllers.nodelifecycle")

Obj = dict[str, Any]

LEASE_NAMESPACE = "kube-node-lease"
NODE_MONITOR_GRACE_PERIOD = 40.0
NODE_MONITOR_PERIOD = 5.0
NODE_STARTUP_GRACE_PERIOD = 60.0

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"

REASON_UNKNOWN = "NodeStatusUnknown"
MESSAGE_UNKNOWN = "Kubelet stopped posting node status."
REASON_NEVER_UPDATED = "NodeStatusNeverUpdated"
MESSAGE_NEVER_UPDATED = "Kubelet never posted node status."
NODE_NOT_READY = "NodeNotReady"

#: the conditions set to Unknown when the agent goes silent (not NetworkUnavailable)
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")

#: condition type -> status -> the NoSchedule taint key (nodeConditionToTaintKeyStatusMap)
CONDITION_TAINTS: dict[str, dict[str, str]] = {
    "Ready": {"False": TAINT_NOT_READY, "Unknown": TAINT_UNREACHABLE},
    "MemoryPressure": {"True": TAINT_MEMORY_PRESSURE},
    "DiskPressure": {"True": TAINT_DISK_PRESSURE},
    "NetworkUnavailable": {"True": TAINT_NETWORK_UNAVAILABLE},
    "PIDPressure": {"True": TAINT_PID_PRESSURE},
}
#: the NoSchedule taint keys this controller owns
NO_SCHEDULE_KEYS = frozenset(
    [k for by_status in CONDITION_TAINTS.values() for k in by_status.values()]
    + [TAINT_UNSCHEDULABLE]
)
#: the NoExecute taint keys this controller owns
NO_EXECUTE_KEYS = frozenset([TAINT_NOT_READY, TAINT_UNREACHABLE])

_POD_NODE_INDEX = NODE_NAME_INDEX  # shared with other controllers (base.py)


# --- pure helpers -------------------------------------------------------------------------------
def parse_duration(text: str) -> float:
    """Seconds in a Go duration (``40s``, ``1m30s``, ``500ms``) or a plain number."""
    return duration(text)


def _statuses(node: Obj) -> dict[str, str]:
    """Condition type -> status (``""`` when it has none), the first of each type."""
    out: dict[str, str] = {}
    for c in (node.get("status") or {}).get("conditions") or ():
        type_ = c.get("type")
        if type_ not in out:
            out[type_] = str(c.get("status") or "")
    return out


def ready_status(node: Obj) -> str:
    """``True``, ``False``, ``Unknown``, or ``""`` when the node has no Ready condition
    (a node just added: nothing is decided about it until one is posted, or until the
    startup grace period makes it Unknown)."""
    return _ready_of(_statuses(node))


def _ready_of(statuses: dict[str, str]) -> str:
    status = statuses.get("Ready")
    return "" if status is None else (status or "Unknown")


@dataclass
class _Health:
    """What the controller last saw of one node, and when (its own clock)."""

    probe: float
    heartbeat: str | None
    renew: float | None
    renew_stamp: str | None = None  # the Lease renewTime ``renew`` was parsed from


def probe_update(
    health: _Health | None, node: Obj, lease: Obj | None, now: float
) -> tuple[_Health, bool]:
    """The node's health after looking at it ``now``, and whether a sign of life was seen.

    A sign of life: the first sight of the node, a changed Ready ``lastHeartbeatTime``,
    or a Lease ``renewTime`` later than the last one seen.
    """
    ready = next(
        (c for c in (node.get("status") or {}).get("conditions") or () if c.get("type") == "Ready"),
        None,
    )
    beat = str(ready.get("lastHeartbeatTime")) if ready else None
    stamp = (lease.get("spec") or {}).get("renewTime") if lease is not None else None
    renew: float | None = None
    if stamp and health is not None and stamp == health.renew_stamp:
        renew = health.renew  # the renewal seen last time: not parsed again
    elif stamp:
        try:
            renew = parse_rfc3339(str(stamp))
        except ValueError:
            renew = None
    if renew is None:
        stamp = None
    if health is None:
        return _Health(now, beat, renew, stamp), True
    alive = False
    if beat != health.heartbeat:
        alive = True
    if renew is not None and (health.renew is None or renew > health.renew):
        alive = True
    if renew is None:
        renew, stamp = health.renew, health.renew_stamp
    return _Health(now if alive else health.probe, beat, renew, stamp), alive


def unknown_conditions(node: Obj, now: float) -> list[Obj] | None:
    """The node's conditions with the agent's ones made Unknown, or ``None`` if they
    already are (upstream keeps lastHeartbeatTime and moves lastTransitionTime)."""
    stamp = rfc3339(now)
    created = str((node.get("metadata") or {}).get("creationTimestamp") or stamp)
    conds = [dict(c) for c in (node.get("status") or {}).get("conditions") or ()]
    changed = False
    for type_ in KUBELET_CONDITIONS:
        cur = next((c for c in conds if c.get("type") == type_), None)
        if cur is None:
            conds.append(
                {
                    "type": type_,
                    "status": "Unknown",
                    "lastHeartbeatTime": created,
                    "lastTransitionTime": stamp,
                    "reason": REASON_NEVER_UPDATED,
                    "message": MESSAGE_NEVER_UPDATED,
                }
            )
            changed = True
        elif cur.get("status") != "Unknown":
            cur.update(
                status="Unknown",
                reason=REASON_UNKNOWN,
                message=MESSAGE_UNKNOWN,
                lastTransitionTime=stamp,
            )
            changed = True
    return conds if changed else None


def desired_taints(node: Obj) -> set[tuple[str, str]]:
    """(key, effect) of every taint this controller wants on ``node`` now."""
    return _desired_taints(node, _statuses(node))


def _desired_taints(node: Obj, statuses: dict[str, str]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for type_, status in statuses.items():
        key = CONDITION_TAINTS.get(type_, {}).get(status)
        if key:
            out.add((key, "NoSchedule"))
    if (node.get("spec") or {}).get("unschedulable"):
        out.add((TAINT_UNSCHEDULABLE, "NoSchedule"))
    ready = _ready_of(statuses)
    if ready == "False":
        out.add((TAINT_NOT_READY, "NoExecute"))
    elif ready == "Unknown":
        out.add((TAINT_UNREACHABLE, "NoExecute"))
    return out


def _owned(taint: Obj) -> bool:
    key, effect = taint.get("key"), taint.get("effect")
    return (effect == "NoSchedule" and key in NO_SCHEDULE_KEYS) or (
        effect == "NoExecute" and key in NO_EXECUTE_KEYS
    )


def reconcile_taints(taints: Iterable[Obj], want: set[tuple[str, str]], now: float) -> list[Obj]:
    """``taints`` with the owned ones made exactly ``want``: others kept in place, present
    wanted taints kept as they are (their ``timeAdded`` too), missing ones appended
    (NoExecute ones stamped ``timeAdded`` now)."""
    out: list[Obj] = []
    have: set[tuple[str, str]] = set()
    for t in taints:
        ident = (str(t.get("key")), str(t.get("effect")))
        if _owned(t) and (ident not in want or ident in have):
            continue
        have.add(ident)
        out.append(dict(t))
    for key, effect in sorted(want - have):
        taint: Obj = {"key": key, "effect": effect}
        if effect == "NoExecute":
            taint["timeAdded"] = rfc3339(now)
        out.append(taint)
    return out


def _settled(node: Obj, statuses: dict[str, str], overdue: bool, now: float) -> bool:
    """Whether ``sync`` would leave the node as it is: nothing to mark Unknown, not a node
    that is not Ready (its ready pods are marked), its owned taints as its state calls for."""
    if overdue and unknown_conditions(node, now) is not None:
        return False
    if _ready_of(statuses) in ("False", "Unknown"):
        return False
    taints = (node.get("spec") or {}).get("taints") or []
    want = _desired_taints(node, statuses)
    return (not taints and not want) or reconcile_taints(taints, want, now) == taints


def pod_ready(pod: Obj) -> bool:
    c = next(
        (c for c in (pod.get("status") or {}).get("conditions") or () if c.get("type") == "Ready"),
        None,
    )
    return bool(c and c.get("status") == "True")


# --- the controller -----------------------------------------------------------------------------
class NodeLifecycleController(Controller):
    """Marks silent nodes Unknown and keeps condition taints (see the module docstring)."""

    name: ClassVar[str] = "nodelifecycle"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 4,
        clock: Clock | None = None,
        node_monitor_grace_period: float = NODE_MONITOR_GRACE_PERIOD,
        node_monitor_period: float = NODE_MONITOR_PERIOD,
        node_startup_grace_period: float = NODE_STARTUP_GRACE_PERIOD,
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        self.grace_period = node_monitor_grace_period
        self.monitor_period = node_monitor_period
        self.startup_grace_period = node_startup_grace_period
        self._health: dict[str, _Health] = {}
        self.nodes: Informer = factory.informer(NODES)
        self.leases: Informer = factory.informer(LEASES)
        self.pods: Informer = factory.informer(PODS)
        self.pods.add_index(_POD_NODE_INDEX, node_name_index)
        self.nodes.add_handler(lambda _t, n, _old: self.queue.add(str(n["metadata"]["name"])))
        self.pods.add_handler(self._on_pod)  # Leases: read in the monitor pass only

    @property
    def component(self) -> str:
        return "node-controller"  # the event source upstream's controller uses

    def _on_pod(self, type_: str, pod: Obj, _old: Obj | None) -> None:
        node_name = (pod.get("spec") or {}).get("nodeName")
        if type_ == "DELETED" or not node_name or not pod_ready(pod):
            return
        node = self.nodes.get(str(node_name))
        if node is not None and ready_status(node) in ("False", "Unknown"):
            self.queue.add(str(node_name))  # a ready pod on a node that is not: mark it

    async def sync(self, key: str) -> None:
        cached = self.nodes.get(key)
        if cached is None:
            self._health.pop(key, None)
            return
        now = self.clock.now()
        node = cached
        if self._overdue(key, cached, now, ready_status(cached)):
            node = await self._mark_unknown(node, now)
        await self._taint(node, now)
        if ready_status(node) in ("False", "Unknown"):
            await self._mark_pods_not_ready(node, now)

    async def _mark_unknown(self, cached: Obj, now: float) -> Obj:
        conds = unknown_conditions(cached, now)
        if conds is None:
            return cached
        was_ready = ready_status(cached) == "True"
        node = clone(cached)
        node.setdefault("status", {})["conditions"] = conds
        node = await self.client.update(NODES, node, sub="status")
        log.info("node %s: %s", node["metadata"]["name"], MESSAGE_UNKNOWN)
        if was_ready:
            await self.recorder.event(
                _with_kind(node),
                "Normal",
                NODE_NOT_READY,
                f"Node {node['metadata']['name']} status is now: {NODE_NOT_READY}",
            )
        return node

    async def _taint(self, cached: Obj, now: float) -> None:
        taints = list((cached.get("spec") or {}).get("taints") or [])
        want = reconcile_taints(taints, desired_taints(cached), now)
        if want == taints:
            return
        node = clone(cached)
        node.setdefault("spec", {})["taints"] = want
        if not want:
            del node["spec"]["taints"]
        await self.client.update(NODES, node)

    async def _mark_pods_not_ready(self, node: Obj, now: float) -> None:
        """MarkPodsNotReady: a node that is not Ready serves no ready pods."""
        stamp = rfc3339(now)
        for pod in self.pods.by_index(_POD_NODE_INDEX, str(node["metadata"]["name"])):
            if not pod_ready(pod):
                continue
            new = clone(pod)
            for c in new["status"]["conditions"]:
                if c.get("type") == "Ready":
                    c["status"] = "False"
                    c["lastTransitionTime"] = stamp
            meta = new["metadata"]
            await self.client.update(PODS, new, meta.get("namespace"), sub="status")
            await self.recorder.event(
                _with_kind(new, "Pod"), "Warning", NODE_NOT_READY, "Node is not ready"
            )

    def _overdue(self, key: str, node: Obj, now: float, ready: str) -> bool:
        """Look at the node's Lease (``probe_update``): is it silent past its grace period?
        ``ready`` is ``ready_status(node)``."""
        lease = self.leases.get(f"{LEASE_NAMESPACE}/{key}")
        health, _ = probe_update(self._health.get(key), node, lease, now)
        self._health[key] = health
        grace = self.grace_period if ready else self.startup_grace_period
        return now > health.probe + grace

    def monitor_pass(self) -> None:
        """Every node's health from its Lease (upstream's monitorNodeHealth): a node whose
        ``sync`` would write something (silent past its grace, taints not as its state
        calls for, not Ready) is queued; for the others the look was all there was to do."""
        now = self.clock.now()
        for name, node in list(self.nodes.store.items()):
            statuses = _statuses(node)
            overdue = self._overdue(name, node, now, _ready_of(statuses))
            if not _settled(node, statuses, overdue, now):
                self.queue.add(name)

    async def _tick(self) -> None:
        """Every monitor period, ``monitor_pass``."""
        while True:
            await asyncio.sleep(self.monitor_period)
            self.monitor_pass()

    async def run(self) -> None:
        self.factory.start()
        await self.factory.wait_for_sync()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._tick())
            for _ in range(self.workers):
                tg.create_task(self._worker())


def _with_kind(obj: Obj, kind: str = "Node") -> Obj:
    out = dict(obj)
    out.setdefault("apiVersion", "v1")
    out.setdefault("kind", kind)
    return out
