"""The scheduler loop: the thin I/O shell around the queue, the node table and ``decide``.

``Scheduler.run`` (``corral scheduler``, or a child process of ``corral server``)
watches pods, nodes and PriorityClasses through informers (pods and nodes cached without
``managedFields``) and keeps:

- a ``NodeTable`` (snapshot.py) of every node and the non-terminal pods bound to it
  (Succeeded/Failed and deleted pods released);
- a ``SchedulingQueue`` (queue.py) of the pending pods it owns: ``spec.schedulerName``
  equal to its name and no ``spec.nodeName``; other schedulers' pods are left alone.

One loop pops the next pod and decides (``decide.decide``, sans-I/O, vectorised over the
nodes). A placed pod is **assumed** at once (accounted on its node in the table, so the
next decision sees it) and its binding (``POST pods/NAME/binding``) runs as a task, at
most ``max_in_flight`` at a time, so the loop never waits on the API; a failed binding
forgets the assumption and the pod retries after back-off. A pod that fits nowhere gets
``PodScheduled=False``/``Unschedulable`` with Kubernetes' message, a ``FailedScheduling``
Event (Kubernetes' message, then ``(nearest miss: ...)``; repeats bump ``count``), and waits
in the queue until a relevant cluster event. A bound pod gets Kubernetes' ``Scheduled``
Event (events.k8s.io/v1), queued for ``events.ScheduledEvents``' own task so that writing
it never delays a binding. A pod with priority > 0 that may preempt
asks ``preemption.find_preemption``; when victims are found the pod is nominated
(``status.nominatedNodeName``) and the victims deleted (default grace), and it is
retried once they are gone.

Handlers only update the table and the queue (they never await); all writes go
through the client from supervised tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from corral.api.errors import StatusError
from corral.api.nodes import binding
from corral.client.informer import Informer, key_of, strip_managed_fields
from corral.client.rest import EVENTS, NODES, PODS, PRIORITY_CLASSES, Client
from corral.scheduler import DEFAULT_SCHEDULER, FAILED_SCHEDULING, MAX_IN_FLIGHT
from corral.scheduler.decide import Decision, build_plugins, decide
from corral.scheduler.events import ScheduledEvents
from corral.scheduler.framework import PodInfo, Profile
from corral.scheduler.preemption import Preemption
from corral.scheduler.queue import SchedulingQueue
from corral.scheduler.snapshot import NodeTable, is_terminal, pod_info
from corral.scheduler.volumes import VolumeCache
from corral.util.clock import Clock, SystemClock, rfc3339

log = logging.getLogger("corral.scheduler")

Obj = dict[str, Any]

PREEMPTED = "Preempted"
UNSCHEDULABLE = "Unschedulable"
STRATEGIC = "application/strategic-merge-patch+json"
#: Kubernetes' post-filter text for a pod whose earlier victims are still terminating
WAITING_FOR_VICTIMS = "preemption: not eligible due to a terminating pod on the nominated node."
#: node fields whose change may let an unschedulable pod fit
_NODE_FIELDS = (("spec", "unschedulable"), ("spec", "taints"), ("status", "allocatable"))


@dataclass
class Stats:
    """Counters for logs and the benchmark."""

    attempts: int = 0
    assumed: int = 0
    bound: int = 0
    binding_failed: int = 0
    unschedulable: int = 0
    preemptions: int = 0
    latencies: list[float] = field(default_factory=list)  # queued -> binding acknowledged


@dataclass
class _Recorded:
    """The last FailedScheduling Event written for one pod."""

    name: str
    message: str
    count: int


class Scheduler:
    """Places the pending pods whose ``spec.schedulerName`` is ``name``."""

    def __init__(
        self,
        client: Client,
        *,
        name: str = DEFAULT_SCHEDULER,
        profile: Profile | None = None,
        clock: Clock | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.client = client
        self.name = name
        self.profile = profile or Profile()
        self._plugins = build_plugins(self.profile)
        self.clock = clock or SystemClock()
        self.table = NodeTable()
        self.queue = SchedulingQueue(self.clock)
        # (no loop here reads managedFields: the caches keep none, as kube-scheduler's)
        self.pods = Informer(client, PODS, transform=strip_managed_fields)
        self.nodes = Informer(client, NODES, transform=strip_managed_fields)
        self.classes = Informer(client, PRIORITY_CLASSES)
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(self._on_node)
        #: claims, volumes and storage classes, for pods with persistentVolumeClaim volumes
        self.storage = VolumeCache(client, self._moved_claims)
        self.stats = Stats()
        self.instance = f"{name}-{socket.gethostname()}"
        #: the Scheduled Events of bound pods, written by their own task (events.py)
        self.scheduled_events = ScheduledEvents(
            client, name, self.instance, self.clock, busy=lambda: bool(self._assumed)
        )
        #: pod key -> (uid, node) of the pods accounted in the table (bound or assumed)
        self._accounted: dict[str, tuple[str, str]] = {}
        #: pod key -> node, for assumed pods whose binding is not confirmed yet
        self._assumed: dict[str, str] = {}
        #: preemptor key -> keys of the victims it waits for
        self._victims: dict[str, set[str]] = {}
        #: pods a preemption nominated to a node (status.nominatedNodeName), not yet bound
        self._nominated: dict[str, tuple[str, PodInfo]] = {}
        self._events: dict[str, _Recorded] = {}  # pod uid -> its FailedScheduling Event
        self._queued_at: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tg: asyncio.TaskGroup | None = None
        self.ready = asyncio.Event()
        #: set by a Mesos master sharing this table (corral.mesos): given a decision
        #: function, frees the outstanding offers a pending pod needs and returns the node
        #: they were on (or None); the allocator lives above this layer, hence a callable
        self.reclaimer: Callable[[Callable[[], str | None]], str | None] | None = None

    # --- running ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Watch and schedule until cancelled."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            for inf in (self.classes, self.nodes, self.pods, *self.storage.informers):
                tg.create_task(inf.run(), name=f"scheduler-informer-{inf.resource.plural}")
            tg.create_task(self.scheduled_events.run(), name="scheduler-events")
            for inf in (self.classes, self.nodes, self.pods):
                await inf.wait_for_sync(timeout=120)
            log.info(
                "%s: synced %d nodes, %d pods", self.name, len(self.table), len(self.pods.store)
            )
            self.ready.set()
            await self._loop()

    async def _loop(self) -> None:
        n = 0
        while True:
            self._wake.clear()
            q = self.queue.pop()
            if q is None:
                due = self.queue.next_due()
                wait = 1.0 if due is None else min(max(due - self.clock.monotonic(), 0.0), 1.0)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                continue
            await self._schedule_one(q.key)
            n += 1
            if n % 16 == 0:
                await asyncio.sleep(0)  # let the informers deliver what arrived

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the supervised group; the caller holds a slot it releases."""
        assert self._tg is not None
        self._tg.create_task(self._guarded(coro))

    async def _guarded(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: API call failed", self.name)
        finally:
            self._slots.release()

    # --- informer handlers (no awaiting) -------------------------------------------------------
    def _mine(self, pod: Obj) -> bool:
        spec = pod.get("spec") or {}
        return (spec.get("schedulerName") or DEFAULT_SCHEDULER) == self.name

    def priority(self, pod: Obj) -> int:
        spec = pod.get("spec") or {}
        if spec.get("priority") is not None:
            return int(spec["priority"])
        pc = self.classes.get(spec.get("priorityClassName") or "")
        return int((pc or {}).get("value") or 0)

    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        key = key_of(pod)
        node = (pod.get("spec") or {}).get("nodeName") or ""
        if type_ == "DELETED":
            self._nominated.pop(key, None)
            self.queue.delete(key)
            self._assumed.pop(key, None)
            self._victims.pop(key, None)
            self._queued_at.pop(key, None)
            self._events.pop((pod.get("metadata") or {}).get("uid", ""), None)
            if self._unaccount(key):
                self._moved()
            return
        if node:
            self._nominated.pop(key, None)
            self.queue.delete(key)
            self._assumed.pop(key, None)
            self._victims.pop(key, None)
            if is_terminal(pod):
                if self._unaccount(key):
                    self._moved()
            else:
                self._account(key, pod, node)
            return
        nominated = (pod.get("status") or {}).get("nominatedNodeName")
        if (
            nominated
            and not is_terminal(pod)
            and not (pod.get("metadata") or {}).get("deletionTimestamp")
        ):
            self._nominated[key] = (nominated, pod_info(pod))
        else:
            self._nominated.pop(key, None)
        if key in self._assumed:
            return  # our binding is in flight; this is an older state
        if (
            not self._mine(pod)
            or (pod.get("metadata") or {}).get("deletionTimestamp")
            or is_terminal(pod)
        ):
            self.queue.delete(key)
            return
        if key not in self.queue:
            self._queued_at.setdefault(key, time.monotonic())
        self.queue.add(key, pod, self.priority(pod))
        self._wake.set()

    def _on_node(self, type_: str, node: Obj, old: Obj | None) -> None:
        name = (node.get("metadata") or {}).get("name", "")
        if type_ == "DELETED":
            self.table.remove_node(name)
            return
        self.table.upsert_node(node)
        if old is None or _node_changed(old, node):
            self._moved()

    def _account(self, key: str, pod: Obj, node: str) -> None:
        uid = (pod.get("metadata") or {}).get("uid", "")
        if self._accounted.get(key) == (uid, node):
            return
        self.table.add_pod(pod_info(pod), node)
        self._accounted[key] = (uid, node)

    def _unaccount(self, key: str) -> bool:
        if self._accounted.pop(key, None) is None:
            return False
        self.table.remove_pod(key)
        return True

    def _hold_nominated(self, incoming: PodInfo) -> list[str]:
        """Put pods nominated to a node by a preemption, of priority at least
        ``incoming``'s, on the table for this decision (as Kubernetes' filters count
        them), so the room a preemption freed goes to its preemptor; returns their keys
        for removal after the decision."""
        held: list[str] = []
        for key, (node, info) in self._nominated.items():
            if key == incoming.key or key in self._accounted or info.priority < incoming.priority:
                continue
            if self.table.row(node) is None:
                continue
            self.table.add_pod(info, node)
            held.append(key)
        return held

    def _moved(self) -> None:
        """Something freed or added capacity: unschedulable pods may fit now."""
        self.queue.move_all()
        self._wake.set()

    def _moved_claims(self) -> None:
        """A claim, volume or class changed: only parked pods with claims may fit now."""
        self.queue.move_matching(_has_claims)
        self._wake.set()

    # --- one attempt ---------------------------------------------------------------------------
    async def _schedule_one(self, key: str) -> None:
        pod = self.pods.get(key)
        spec = (pod or {}).get("spec") or {}
        if pod is None or spec.get("nodeName") or not self._mine(pod):
            self.queue.delete(key)
            return
        self.stats.attempts += 1
        info = pod_info(pod)
        if info.priority == 0 and spec.get("priority") is None:
            info.priority = self.priority(pod)
        if info.claims:
            if not self.storage.synced():  # (the scheduler does not wait for these at start)
                self.queue.backoff(key)
                return
            info.volumes = self.storage.resolve(info)
        waiting = self._waiting_for_victims(key)
        held = self._hold_nominated(info)
        try:
            d = decide(info, self.table, self.profile, self._plugins, preemption=not waiting)
        finally:
            for k in held:
                self.table.remove_pod(k)
        if not d.node and self.reclaimer is not None:
            # offered resources never starve a pod: rescind the offers it needs
            node = self.reclaimer(
                lambda: decide(info, self.table, self.profile, self._plugins, preemption=False).node
            )
            if node:
                d.node = node
        if d.node:
            self.table.add_pod(info, d.node)
            self._accounted[key] = (info.uid, d.node)
            self._assumed[key] = d.node
            self.stats.assumed += 1
            await self._slots.acquire()
            self._spawn(self._bind(info, d.node))
            return
        self.stats.unschedulable += 1
        self.queue.unschedulable(key)
        if waiting:
            d.message = f"{d.message} {WAITING_FOR_VICTIMS}"
        await self._slots.acquire()
        self._spawn(self._record_failure(pod, d))
        p = d.preemption
        if p is not None:
            self._victims[key] = {v.key for v in p.victims}
            self.stats.preemptions += 1
            await self._slots.acquire()
            self._spawn(self._preempt(pod, p))

    def _waiting_for_victims(self, key: str) -> bool:
        """Whether pods this one preempted are still on their node (terminating)."""
        victims = self._victims.get(key)
        return bool(victims) and any(v in self._accounted for v in victims or ())

    async def _bind(self, pod: PodInfo, node: str) -> None:
        meta = pod.obj["metadata"]
        if pod.volumes is not None and pod.volumes.unbound:
            row = self.table.row(node)
            labels = self.table.labels[row] if row is not None else {}
            try:
                failed = await self.storage.prebind(pod, node, labels)
            except Exception:
                self._forget(pod.key, node)
                self.queue.backoff(pod.key)
                raise
            if failed:
                self.stats.binding_failed += 1
                self._forget(pod.key, node)
                self.queue.backoff(pod.key)
                self._wake.set()
                await self._event(pod.obj, FAILED_SCHEDULING, failed, "Warning", pod.uid)
                return
        body = binding(meta["name"], pod.namespace, pod.uid, node)
        try:  # the answer (a Status) is not decoded: the pod informer sees the binding
            path = PODS.path(pod.namespace, meta["name"], "binding")
            await self.client.request("POST", path, body=body, decode=False)
        except StatusError as e:
            self.stats.binding_failed += 1
            self._forget(pod.key, node)
            if e.code == 404:
                self.queue.delete(pod.key)
                return
            log.info("%s: binding %s to %s failed: %s", self.name, pod.key, node, e.message)
            self.queue.backoff(pod.key)
            self._wake.set()
            return
        except Exception:
            self._forget(pod.key, node)
            self.queue.backoff(pod.key)
            raise
        self.stats.bound += 1
        self.queue.done(pod.key)
        self.scheduled_events.add(pod.obj, node)
        started = self._queued_at.pop(pod.key, None)
        if started is not None:
            self.stats.latencies.append(time.monotonic() - started)

    def resources_freed(self) -> None:
        """Capacity came back (offers declined or rescinded): pending pods may fit now."""
        self._moved()

    def assume(self, pod: Obj, node: str) -> None:
        """Account ``pod`` on ``node`` now, before it exists or is bound: the Mesos master
        launching a task into an accepted offer hands the offer's hold over to the pod in
        the same step, so nothing else can take those resources meanwhile."""
        key = key_of(pod)
        self.table.add_pod(pod_info(pod), node)
        self._accounted[key] = ((pod.get("metadata") or {}).get("uid", ""), node)
        self._assumed[key] = node

    def forget(self, key: str) -> None:
        """Undo ``assume`` (the pod could not be created or bound)."""
        node = self._assumed.get(key)
        if node is not None:
            self._forget(key, node)

    def _forget(self, key: str, node: str) -> None:
        """Undo an assumption whose binding failed (unless the pod got bound meanwhile)."""
        if self._assumed.get(key) != node:
            return
        del self._assumed[key]
        if self._accounted.get(key, ("", ""))[1] == node:
            self._unaccount(key)
            self._moved()

    # --- writing the outcome ---------------------------------------------------------------------
    async def _record_failure(self, pod: Obj, d: Decision) -> None:
        meta = pod["metadata"]
        ns, name, uid = meta.get("namespace", ""), meta["name"], meta.get("uid", "")
        now = rfc3339(self.clock.now())
        conds = (pod.get("status") or {}).get("conditions") or []
        cur = next((c for c in conds if c.get("type") == "PodScheduled"), None)
        if not (
            cur
            and cur.get("status") == "False"
            and cur.get("reason") == UNSCHEDULABLE
            and cur.get("message") == d.message
        ):
            since = cur.get("lastTransitionTime") if cur and cur.get("status") == "False" else now
            cond = {
                "type": "PodScheduled",
                "status": "False",
                "reason": UNSCHEDULABLE,
                "message": d.message,
                "lastProbeTime": None,
                "lastTransitionTime": since,
            }
            try:
                await self.client.patch(
                    PODS,
                    name,
                    {"status": {"conditions": [cond]}},
                    ns,
                    sub="status",
                    patch_type=STRATEGIC,
                )
            except StatusError as e:
                if e.code == 404:
                    return
                raise
        message = f"{d.message} (nearest miss: {d.nearest_miss})" if d.nearest_miss else d.message
        await self._event(pod, FAILED_SCHEDULING, message, "Warning", uid)

    async def _event(self, pod: Obj, reason: str, message: str, type_: str, uid: str) -> None:
        """Create the Event, or bump ``count`` of the same one recorded before."""
        meta = pod["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        now = rfc3339(self.clock.now())
        track = reason == FAILED_SCHEDULING
        prev = self._events.get(uid) if track else None
        if prev is not None and prev.message == message:
            prev.count += 1
            try:
                await self.client.patch(
                    EVENTS, prev.name, {"count": prev.count, "lastTimestamp": now}, ns
                )
                return
            except StatusError as e:
                if e.code != 404:
                    raise
        ev = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{name}.{time.time_ns():x}", "namespace": ns},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "namespace": ns,
                "name": name,
                "uid": uid,
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": self.name},
            "reportingComponent": self.name,
            "reportingInstance": self.instance,
            "action": "Scheduling" if track else "Preempting",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            made = await self.client.create(EVENTS, ev, ns)
        except StatusError as e:
            if e.code in (403, 404):  # namespace going away
                return
            raise
        if track:
            self._events[uid] = _Recorded(made["metadata"]["name"], message, 1)

    async def _preempt(self, pod: Obj, p: Preemption) -> None:
        meta = pod["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        try:
            await self.client.patch(
                PODS, name, {"status": {"nominatedNodeName": p.node}}, ns, sub="status"
            )
        except StatusError as e:
            if e.code == 404:
                return
            raise
        for v in p.victims:
            vm = v.obj["metadata"]
            try:
                await self.client.delete(PODS, vm["name"], v.namespace)
            except StatusError as e:
                if e.code != 404:
                    raise
                continue
            await self._event(
                v.obj,
                PREEMPTED,
                f"Preempted by pod {meta.get('uid', '')} on node {p.node}",
                "Normal",
                v.uid,
            )
        log.info(
            "%s: %s nominated to %s, preempting %s",
            self.name,
            key_of(pod),
            p.node,
            ", ".join(v.key for v in p.victims),
        )


def _node_changed(old: Obj, new: Obj) -> bool:
    if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
        return True
    return any((old.get(a) or {}).get(b) != (new.get(a) or {}).get(b) for a, b in _NODE_FIELDS)


def _has_claims(pod: Obj) -> bool:
    """Whether a pod mounts a PersistentVolumeClaim (what VolumeBinding resolves)."""
    vols = (pod.get("spec") or {}).get("volumes") or ()
    return any(v.get("persistentVolumeClaim") is not None for v in vols)
