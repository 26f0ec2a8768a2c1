"""The pod garbage collector (Kubernetes' PodGC, pkg/controller/podgc): what finishes a
node loss. Pods bound to a Node that is gone have no kubelet left to end them, so without
this a StatefulSet pod on a lost node is never recreated and a Job waits on a pod that
stays Running (or Terminating) for ever.

Run by ``ControllerManager`` (controllers/manager.py) as ``podgc``. Every
``gc_check_period`` (20 s, upstream's ``gcCheckPeriod``) one pass over the pod and node
caches, in upstream's order:

1. terminated pods (Succeeded/Failed) beyond ``--terminated-pod-gc-threshold`` (12500;
   0 turns this off) are deleted, evicted ones first, then oldest ``creationTimestamp``
   first, name breaking ties (a Job's tracking finalizer keeps the object until the Job
   controller has counted it);
2. terminating pods (``deletionTimestamp`` set) on a Node that is not Ready and carries
   the ``node.kubernetes.io/out-of-service`` taint are force-deleted (the pod part of
   NodeOutOfServiceVolumeDetach);
3. orphaned pods: a pod whose ``spec.nodeName`` names no Node in the cache puts that
   name in quarantine for ``quarantine_time`` (40 s); when it comes due and a live GET
   still answers 404, every pod bound to it gets the ``DisruptionTarget`` condition
   (reason ``DeletionByPodGC``, "PodGC: node no longer exists") and phase Failed (unless
   already terminal), then is deleted with grace period 0;
4. terminating pods that were never scheduled (no ``nodeName``) are deleted with grace 0.

"Force delete" is always: patch the status to Failed (when not Succeeded/Failed), then
``DELETE`` with ``gracePeriodSeconds: 0``. The decisions are the pure functions below
and ``Quarantine`` (time passed in); ``PodGCController.gc`` is the thin shell that reads
the caches, GETs quarantined nodes and writes. A failed write is logged and retried on
a later pass, as upstream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from corral.api.errors import StatusError
from corral.client.informer import Informer
from corral.client.rest import NODES, PODS, Client
from corral.controllers.base import Controller, InformerFactory
from corral.util.clock import Clock, parse_rfc3339, rfc3339

log = logging.getLogger("corral.controllers.podgc")

Obj = dict[str, Any]

GC_CHECK_PERIOD = 20.0
QUARANTINE_TIME = 40.0
TERMINATED_POD_GC_THRESHOLD = 12500
TAINT_OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"
DISRUPTION_TARGET = "DisruptionTarget"
DELETION_BY_POD_GC = "DeletionByPodGC"
NODE_GONE_MESSAGE = "PodGC: node no longer exists"

_GC_KEY = "gc"
_PARALLEL_WRITES = 8


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def is_terminated(pod: Obj) -> bool:
    return _phase(pod) in ("Succeeded", "Failed")


def is_terminating(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def node_name(pod: Obj) -> str:
    return str((pod.get("spec") or {}).get("nodeName") or "")


def _is_evicted(pod: Obj) -> bool:
    return _phase(pod) == "Failed" and (pod.get("status") or {}).get("reason") == "Evicted"


def _gc_order(pod: Obj) -> tuple[bool, float, str]:
    """Upstream's byEvictionAndCreationTimestamp: evicted first, then oldest, then name."""
    meta = pod.get("metadata") or {}
    created = meta.get("creationTimestamp")
    try:
        at = parse_rfc3339(str(created)) if created else 0.0
    except ValueError:
        at = 0.0
    return (not _is_evicted(pod), at, str(meta.get("name") or ""))


def terminated_to_delete(pods: Iterable[Obj], threshold: int) -> list[Obj]:
    """The terminated pods over ``threshold``, in deletion order (none when it is <= 0)."""
    if threshold <= 0:
        return []
    done = [p for p in pods if is_terminated(p)]
    excess = len(done) - threshold
    if excess <= 0:
        return []
    return sorted(done, key=_gc_order)[:excess]


def _node_ready(node: Obj) -> bool:
    for c in (node.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def terminating_out_of_service(pods: Iterable[Obj], nodes: Mapping[str, Obj]) -> list[Obj]:
    """Terminating pods on a cached Node that is not Ready and is tainted out-of-service."""
    out = []
    for pod in pods:
        if not is_terminating(pod):
            continue
        node = nodes.get(node_name(pod))
        if node is None or _node_ready(node):
            continue
        taints = (node.get("spec") or {}).get("taints") or ()
        if any(t.get("key") == TAINT_OUT_OF_SERVICE for t in taints):
            out.append(pod)
    return sorted(out, key=_gc_order)


def unscheduled_terminating(pods: Iterable[Obj]) -> list[Obj]:
    return [p for p in pods if is_terminating(p) and not node_name(p)]


def missing_nodes(pods: Iterable[Obj], existing: Iterable[str]) -> set[str]:
    """Names pods are bound to that no cached Node has."""
    have = set(existing)
    return {n for n in (node_name(p) for p in pods) if n and n not in have}


class Quarantine:
    """Upstream's delaying ``orphaned_pods_nodes`` queue: a node name seen missing is due
    ``period`` seconds after it was first seen; ``take_due`` hands out (and forgets) the
    names that came due and are still not in the cache. Pure: time is passed in."""

    def __init__(self, period: float) -> None:
        self.period = period
        self._due: dict[str, float] = {}

    def observe(self, names: Iterable[str], now: float) -> None:
        for name in names:
            self._due.setdefault(name, now + self.period)

    def take_due(self, existing: Iterable[str], now: float) -> list[str]:
        have = set(existing)
        ready = sorted(n for n, at in self._due.items() if at <= now)
        for n in ready:
            del self._due[n]
        return [n for n in ready if n not in have]

    def __contains__(self, name: object) -> bool:
        return name in self._due


def failed_status(pod: Obj, condition: Obj | None, now: float) -> Obj | None:
    """The status patch that marks ``pod`` Failed (with ``condition``), or ``None`` when it
    is already Succeeded/Failed (upstream leaves a terminal pod's status alone)."""
    if is_terminated(pod):
        return None
    status: Obj = {"phase": "Failed"}
    if condition is not None:
        conds = [dict(c) for c in (pod.get("status") or {}).get("conditions") or ()]
        new = dict(condition)
        for i, c in enumerate(conds):
            if c.get("type") == new["type"]:
                same = c.get("status") == new["status"]
                new["lastTransitionTime"] = c.get("lastTransitionTime") if same else rfc3339(now)
                conds[i] = new
                break
        else:
            new["lastTransitionTime"] = rfc3339(now)
            conds.append(new)
        status["conditions"] = conds
    return status


def node_gone_condition() -> Obj:
    return {
        "type": DISRUPTION_TARGET,
        "status": "True",
        "reason": DELETION_BY_POD_GC,
        "message": NODE_GONE_MESSAGE,
    }


class PodGCController(Controller):
    """Deletes orphaned, out-of-service, unscheduled-terminating and excess terminated
    pods (see the module docstring); one pass every ``gc_check_period`` seconds."""

    name: ClassVar[str] = "podgc"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 1,
        clock: Clock | None = None,
        terminated_pod_gc_threshold: int = TERMINATED_POD_GC_THRESHOLD,
        gc_check_period: float = GC_CHECK_PERIOD,
        quarantine_time: float = QUARANTINE_TIME,
    ) -> None:
        super().__init__(client, factory, workers=1, clock=clock)  # one pass at a time
        self.threshold = terminated_pod_gc_threshold
        self.period = gc_check_period
        self.quarantine = Quarantine(quarantine_time)
        self.nodes: Informer = factory.informer(NODES)
        self.pods: Informer = factory.informer(PODS)

    @property
    def component(self) -> str:
        return "pod-garbage-collector"

    async def sync(self, key: str) -> None:
        await self.gc()

    async def gc(self) -> None:
        """One pass (upstream's ``gc``); the caches must have synced."""
        pods = list(self.pods.store.values())
        nodes = dict(self.nodes.store)
        await self._delete_all(terminated_to_delete(pods, self.threshold), None)
        await self._delete_all(terminating_out_of_service(pods, nodes), None)
        await self._gc_orphaned(pods, nodes)
        await self._delete_all(unscheduled_terminating(pods), None)

    async def _gc_orphaned(self, pods: list[Obj], nodes: Mapping[str, Obj]) -> None:
        now = self.clock.now()
        self.quarantine.observe(missing_nodes(pods, nodes), now)
        gone: set[str] = set()
        for name in self.quarantine.take_due(nodes, now):
            try:
                await self.client.get(NODES, name)
            except StatusError as e:
                if e.code == 404:
                    gone.add(name)
                else:  # checked again after the next quarantine, as upstream
                    log.warning("podgc: get node %s: %s", name, e.message)
        if gone:
            orphans = [p for p in pods if node_name(p) in gone]
            log.info("podgc: %d pod(s) on deleted node(s) %s", len(orphans), sorted(gone))
            await self._delete_all(orphans, node_gone_condition())

    async def _delete_all(self, pods: list[Obj], condition: Obj | None) -> None:
        if not pods:
            return
        gate = asyncio.Semaphore(_PARALLEL_WRITES)

        async def one(pod: Obj) -> None:
            async with gate:
                await self.force_delete(pod, condition)

        async with asyncio.TaskGroup() as tg:
            for pod in pods:
                tg.create_task(one(pod))

    async def force_delete(self, pod: Obj, condition: Obj | None = None) -> None:
        """markFailedAndDeletePodWithCondition: status Failed (+ condition), then DELETE
        with grace 0. Gone already is done; other API errors are logged (next pass)."""
        meta = pod["metadata"]
        ns, name = meta.get("namespace"), str(meta["name"])
        try:
            status = failed_status(pod, condition, self.clock.now())
            if status is not None:
                patch = {"metadata": {"uid": meta.get("uid")}, "status": status}
                await self.client.patch(PODS, name, patch, ns, sub="status")
            await self.client.delete(PODS, name, ns, grace_period=0)
            log.info("podgc: force-deleted pod %s/%s", ns, name)
        except StatusError as e:
            if e.code != 404:
                log.warning("podgc: delete pod %s/%s: %s", ns, name, e.message)

    async def _tick(self) -> None:
        """Upstream's ``wait.UntilWithContext(gc, gcCheckPeriod)``: at once, then every
        period."""
        while True:
            self.queue.add(_GC_KEY)
            await asyncio.sleep(self.period)

    async def run(self) -> None:
        self.factory.start()
        await self.factory.wait_for_sync()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._tick())
            tg.create_task(self._worker())
