"""The Mesos master: frameworks, offers and tasks over the shared node table.

Runs in the placement process beside the Kubernetes scheduler (``corral scheduler
--mesos-port``, ``corral mesos-master``), because the allocator and the scheduler own
placement together over one ``NodeTable``: an outstanding offer is a hold in that table,
a launched task is a pod assumed on its node in the same step, and a pending Kubernetes
pod that fits only into offered resources has those offers rescinded
(``Scheduler.reclaimer``). Everything else goes through the API server:

- a framework is a ``Framework`` object (``mesos.corral.dev/v1``), so it outlives a
  master restart; a task is a Pod in namespace ``mesos`` owned by it (``tasks.py`` makes
  the pod and reads its state back as a ``TaskStatus``);
- the last state a framework acknowledged is an annotation on the task's pod, so a
  restarted master resends exactly what was not acknowledged.

HTTP is in ``http.py``; this class holds the state and the calls' semantics. Handlers
never await between reading and changing the allocator and the table (one event loop,
so a call is atomic); API writes run as supervised tasks afterwards.

Framework lifecycle::

    SUBSCRIBE --> connected --stream lost--> disconnected --failover_timeout--> removed
                      ^                           |                               ^
                      +------- SUBSCRIBE(id) -----+           TEARDOWN -----------+

Task status updates (one outstanding per task, as the agent's status update manager)::

    pod change -> TaskStatus differs from the last sent -> UPDATE(uuid) -> ... ACKNOWLEDGE
                                                      \\-> resent every 10 s, doubling to
                                                          10 min, while unacknowledged
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from corral.api import mesos as names
from corral.api.errors import StatusError
from corral.client.informer import Informer, key_of
from corral.client.rest import CONFIGMAPS, FRAMEWORKS, NAMESPACES, PODS, Client
from corral.mesos import tasks as taskmod
from corral.util.eventstream import EventStream
from corral.offers.allocator import (
    Allocator,
    Instruction,
    InvalidOffers,
    Offer,
    RescindOffer,
    SendOffers,
)
from corral.offers.resources import parse_resources, render_resources, subtract_ranges
from corral.scheduler.scheduler import Scheduler
from corral.util.clock import Clock, SystemClock, rfc3339

log = logging.getLogger("corral.mesos")

Obj = dict[str, Any]

VERSION = "1.11.0"  # the Mesos API version Corral speaks (pymesos wants a numeric one)
DEFAULT_FAILOVER_TIMEOUT = 0.0  # Mesos' FrameworkInfo default
RETRY_FIRST = 10.0
RETRY_MAX = 600.0
#: completed tasks remembered per framework (Mesos' --max_completed_tasks_per_framework)
MAX_COMPLETED_TASKS = 1000
#: the ConfigMap (namespace ``mesos``) holding role weights and quotas
POLICY_CONFIGMAP = "mesos-master"


class CallError(Exception):
    """A call the master refuses: ``code`` is the HTTP status (400 bad, 403 wrong stream)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class FrameworkState:
    id: str
    info: Obj
    uid: str = ""
    stream: EventStream | None = None
    connected: bool = False
    registered: float = 0.0
    reregistered: float | None = None
    disconnected: float | None = None  # unix time
    deadline: float | None = None  # monotonic: removed then unless it re-subscribes
    #: executor id -> agent, of executors that subscribed to an agent
    executors: dict[str, str] = field(default_factory=dict)

    @property
    def roles(self) -> list[str]:
        roles = list(self.info.get("roles") or [])
        if not roles:
            roles = [self.info.get("role") or "*"]
        return roles

    @property
    def capabilities(self) -> set[str]:
        return {c.get("type", "") for c in self.info.get("capabilities") or []}

    @property
    def failover_timeout(self) -> float:
        try:
            return max(0.0, float(self.info.get("failover_timeout") or DEFAULT_FAILOVER_TIMEOUT))
        except (TypeError, ValueError):
            return DEFAULT_FAILOVER_TIMEOUT


@dataclass
class TaskState:
    framework_id: str
    task_id: str
    pod_key: str
    agent: str
    role: str
    info: Obj
    pod: Obj | None = None
    launched: float = 0.0  # unix
    #: the status last sent (state, healthy), the one waiting for acknowledgement
    last: Obj | None = None
    pending: Obj | None = None
    next_retry: float = 0.0
    backoff: float = RETRY_FIRST
    acked_state: str = ""
    kill_requested: bool = False
    statuses: list[Obj] = field(default_factory=list)  # [{state, timestamp}] for /state
    created: bool = False  # the pod exists (seen or created)

    @property
    def state(self) -> str:
        return str((self.last or {}).get("state") or "TASK_STAGING")


@dataclass
class Metrics:
    offers_sent: int = 0
    offers_declined: int = 0
    offers_accepted: int = 0
    offers_rescinded: int = 0
    tasks_launched: int = 0
    updates_sent: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    invalid_calls: int = 0
    frameworks_removed: int = 0
    accept_to_running: list[float] = field(default_factory=list)


class Master:
    """See the module docstring. ``run`` until cancelled; ``http.py`` calls the rest."""

    def __init__(
        self,
        client: Client,
        scheduler: Scheduler,
        allocator: Allocator,
        *,
        hostname: str = "127.0.0.1",
        port: int = 5050,
        clock: Clock | None = None,
        heartbeat: float = 15.0,
        interval: float = 1.0,
    ) -> None:
        self.client = client
        self.scheduler = scheduler
        self.allocator = allocator
        self.clock = clock or SystemClock()
        self.hostname = hostname
        self.port = port
        self.heartbeat = heartbeat
        self.interval = interval
        self.id = str(uuid.uuid4())
        self.start_time = time.time()
        self.frameworks: dict[str, FrameworkState] = {}
        self.completed_frameworks: dict[str, FrameworkState] = {}
        self.removed_ids: set[str] = set()
        self.tasks: dict[tuple[str, str], TaskState] = {}
        self.by_pod: dict[str, tuple[str, str]] = {}
        self.completed: dict[str, list[TaskState]] = {}
        self.metrics = Metrics()
        self.operator_streams: list[EventStream] = []
        self.frameworks_informer = Informer(client, FRAMEWORKS)
        self._wake = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self.ready = asyncio.Event()
        self._accepted_at: dict[str, float] = {}  # pod key -> monotonic ACCEPT time
        self.stopping = False
        scheduler.pods.add_handler(self._on_pod)
        scheduler.nodes.add_handler(self._on_node)
        scheduler.reclaimer = self._reclaim

    # --- running ----------------------------------------------------------------------------
    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self.frameworks_informer.run(), name="mesos-frameworks-informer")
            await self.frameworks_informer.wait_for_sync(timeout=120)
            await self.scheduler.ready.wait()
            await self._ensure_namespace()
            await self._load_policy()
            self._recover()
            self.ready.set()
            tg.create_task(self._allocation_loop(), name="mesos-allocation")
            tg.create_task(self._housekeeping(), name="mesos-housekeeping")

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "mesos-write") -> None:
        """Run an API write as a supervised task (logged, never lost silently)."""
        if self._tg is None or self.stopping:
            coro.close()
            return
        try:
            self._tg.create_task(self._guarded(coro), name=name)
        except RuntimeError:  # the group is shutting down
            coro.close()

    async def _guarded(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("mesos master: API write failed")

    async def _ensure_namespace(self) -> None:
        try:
            await self.client.create(
                NAMESPACES,
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": names.NAMESPACE}},
            )
        except StatusError as e:
            if e.code != 409:
                raise

    async def _load_policy(self) -> None:
        """Role weights and quotas set through the operator API (kept in a ConfigMap)."""
        try:
            cm = await self.client.get(CONFIGMAPS, POLICY_CONFIGMAP, names.NAMESPACE)
        except StatusError as e:
            if e.code == 404:
                return
            raise
        data = cm.get("data") or {}
        for role, w in orjson.loads(data.get("weights") or "{}").items():
            self.allocator.set_weight(role, float(w))
        for role, (g, lim) in orjson.loads(data.get("quotas") or "{}").items():
            self.allocator.set_quota(
                role,
                None if g is None else np.array(g, dtype=np.int64),
                None if lim is None else np.array(lim, dtype=np.int64),
            )

    async def save_policy(self) -> None:
        """Persist weights and quotas (answered only once durable: nothing acknowledged
        is lost on a restart)."""
        quotas = {
            role: [None if g is None else g.tolist(), None if lim is None else lim.tolist()]
            for role, (g, lim) in self.allocator.quotas().items()
        }
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": POLICY_CONFIGMAP, "namespace": names.NAMESPACE},
            "data": {
                "weights": orjson.dumps(self.allocator.weights()).decode(),
                "quotas": orjson.dumps(quotas).decode(),
            },
        }
        try:
            await self.client.update(CONFIGMAPS, body, names.NAMESPACE)
        except StatusError as e:
            if e.code != 404:
                raise
            await self.client.create(CONFIGMAPS, body, names.NAMESPACE)

    def _recover(self) -> None:
        """After a (re)start: frameworks from their objects (disconnected until they
        re-subscribe, with a fresh failover window), tasks from their pods."""
        now = self.clock.monotonic()
        for obj in self.frameworks_informer.store.values():
            fid = obj["metadata"]["name"]
            info = dict((obj.get("spec") or {}).get("frameworkInfo") or {})
            status = obj.get("status") or {}
            fw = FrameworkState(
                id=fid,
                info=info,
                uid=obj["metadata"].get("uid", ""),
                registered=_ts(status.get("registeredTime")) or time.time(),
            )
            fw.disconnected = time.time()
            fw.deadline = now + fw.failover_timeout
            self.frameworks[fid] = fw
            self.allocator.add_framework(fid, fw.roles)
            self.allocator.deactivate_framework(fid)
        for pod in list(self.scheduler.pods.store.values()):
            self._on_pod("ADDED", pod, None)
        log.info(
            "mesos master %s: recovered %d frameworks, %d tasks",
            self.id,
            len(self.frameworks),
            len(self.tasks),
        )

    async def _allocation_loop(self) -> None:
        while True:
            self._wake.clear()
            self.dispatch(self.allocator.allocate())
            wait = self.interval
            nxt = self.allocator.next_wakeup()
            if nxt is not None:
                wait = min(wait, max(0.0, nxt - self.clock.monotonic()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 0.01)):
                    await self._wake.wait()

    def close_streams(self) -> None:
        """Shutting down: end every subscriber's stream now, so frameworks notice at once
        and fail over to the next master (instead of waiting on a dying one)."""
        self.stopping = True
        for fw in self.frameworks.values():
            if fw.stream is not None:
                fw.stream.close()
        for s in self.operator_streams:
            s.close()

    def wake(self) -> None:
        self._wake.set()

    async def _housekeeping(self) -> None:
        """Every second: resend unacknowledged updates, remove frameworks whose failover
        timeout passed."""
        while True:
            await asyncio.sleep(1.0)
            now = self.clock.monotonic()
            for fw in list(self.frameworks.values()):
                if not fw.connected and fw.deadline is not None and now >= fw.deadline:
                    log.info("mesos: framework %s did not fail over in time: removing", fw.id)
                    self.remove_framework(fw.id)
            for t in list(self.tasks.values()):
                if t.pending is not None and now >= t.next_retry:
                    owner = self.frameworks.get(t.framework_id)
                    if owner is not None and owner.connected:
                        self._send_update(owner, t.pending)
                    t.next_retry = now + t.backoff
                    t.backoff = min(t.backoff * 2, RETRY_MAX)

    # --- instructions from the allocator ------------------------------------------------------
    def dispatch(self, instructions: list[Instruction]) -> None:
        freed = False
        for ins in instructions:
            if isinstance(ins, SendOffers):
                fw = self.frameworks.get(ins.framework_id)
                if fw is None or fw.stream is None:
                    continue
                fw.stream.send(
                    {
                        "type": "OFFERS",
                        "offers": {"offers": [self.offer_json(o) for o in ins.offers]},
                    }
                )
                self.metrics.offers_sent += len(ins.offers)
            elif isinstance(ins, RescindOffer):
                freed = True
                self.metrics.offers_rescinded += 1
                fw = self.frameworks.get(ins.framework_id)
                if fw is not None and fw.stream is not None:
                    fw.stream.send(
                        {"type": "RESCIND", "rescind": {"offer_id": {"value": ins.offer_id}}}
                    )
        if freed:
            self.scheduler.resources_freed()

    def offer_json(self, o: Offer) -> Obj:
        return {
            "id": {"value": o.id},
            "framework_id": {"value": o.framework_id},
            "agent_id": {"value": o.agent},
            "hostname": self.agent_hostname(o.agent),
            "resources": render_resources(o.resources, list(o.ports), o.role),
            "attributes": [dict(a) for a in o.attributes],
            "allocation_info": {"role": o.role},
        }

    def agent_hostname(self, agent: str) -> str:
        node = self.scheduler.nodes.get(agent)
        labels = ((node or {}).get("metadata") or {}).get("labels") or {}
        return str(labels.get("kubernetes.io/hostname") or agent)

    def _reclaim(self, decide: Any) -> str | None:
        if not self.allocator.outstanding():
            return None
        node, instructions = self.allocator.reclaim(decide)
        self.dispatch(instructions)
        return node

    # --- frameworks ---------------------------------------------------------------------------
    async def subscribe(self, call: Obj) -> tuple[FrameworkState, EventStream]:
        """Validate a SUBSCRIBE and register (or re-register) the framework; the caller
        pumps the returned stream."""
        sub = call.get("subscribe")
        if not isinstance(sub, dict) or not isinstance(sub.get("framework_info"), dict):
            raise CallError(400, "Expecting 'subscribe' to be present")
        info = dict(sub["framework_info"])
        for f in ("user", "name"):
            if not isinstance(info.get(f), str):
                raise CallError(
                    400, f"Failed to validate scheduler::Call: 'framework_info.{f}' is required"
                )
        roles = info.get("roles")
        if roles is not None and (
            not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles)
        ):
            raise CallError(400, "'framework_info.roles' must be a list of role names")
        if "failover_timeout" in info:
            try:
                if float(info["failover_timeout"]) < 0:
                    raise ValueError
            except (TypeError, ValueError):
                raise CallError(
                    400, "'framework_info.failover_timeout' must be a non-negative number"
                ) from None
        top = (
            (call.get("framework_id") or {}).get("value")
            if isinstance(call.get("framework_id"), dict)
            else None
        )
        inner = (info.get("id") or {}).get("value") if isinstance(info.get("id"), dict) else None
        if top and inner and top != inner:
            raise CallError(400, "'framework_id' differs from 'subscribe.framework_info.id'")
        fid = top or inner
        suppressed = [r for r in sub.get("suppressed_roles") or [] if isinstance(r, str)]
        stream = EventStream(self.heartbeat)
        now = time.time()
        if fid:
            if fid in self.removed_ids or fid in self.completed_frameworks:
                stream.close({"type": "ERROR", "error": {"message": "Framework has been removed"}})
                return FrameworkState(id=fid, info=info), stream
            fw = self.frameworks.get(fid)
            if fw is None:
                # unknown id (e.g. its object was deleted by hand): Mesos accepts a
                # framework failing over to a new master; re-create its object
                fw = FrameworkState(id=fid, info={**info, "id": {"value": fid}}, registered=now)
                fw.uid = await self._create_framework_object(fw)
                self.frameworks[fid] = fw
                self.allocator.add_framework(fid, fw.roles, suppressed)
            else:
                if fw.stream is not None:
                    fw.stream.close(
                        {"type": "ERROR", "error": {"message": "Framework failed over"}}
                    )
                fw.info = {**info, "id": {"value": fid}}
                fw.reregistered = now
                self.dispatch(self.allocator.update_framework(fid, fw.roles, suppressed))
                self.allocator.activate_framework(fid)
        else:
            fid = f"{uuid.uuid4()}-0000"
            fw = FrameworkState(id=fid, info={**info, "id": {"value": fid}}, registered=now)
            fw.uid = await self._create_framework_object(fw)
            self.frameworks[fid] = fw
            self.allocator.add_framework(fid, fw.roles, suppressed)
        fw.stream = stream
        fw.connected = True
        fw.disconnected = None
        fw.deadline = None
        stream.send(
            {
                "type": "SUBSCRIBED",
                "subscribed": {
                    "framework_id": {"value": fid},
                    "heartbeat_interval_seconds": self.heartbeat,
                    "master_info": self.master_info(),
                },
            }
        )
        # what the framework has not acknowledged yet comes again at once
        for t in self.tasks.values():
            if t.framework_id == fid and t.pending is not None:
                self._send_update(fw, t.pending)
        self.spawn(self._patch_framework_status(fw))
        self._operator_event(
            {"type": "FRAMEWORK_ADDED", "framework_added": {"framework": self.framework_v1(fw)}}
        )
        self.wake()
        log.info("mesos: framework %s (%s) subscribed", fid, info.get("name"))
        return fw, stream

    async def _create_framework_object(self, fw: FrameworkState) -> str:
        body = {
            "apiVersion": f"{names.GROUP}/{names.VERSION}",
            "kind": "Framework",
            "metadata": {"name": fw.id},
            "spec": {"frameworkInfo": fw.info},
        }
        try:
            made = await self.client.create(FRAMEWORKS, body)
        except StatusError as e:
            if e.code == 409:
                made = await self.client.get(FRAMEWORKS, fw.id)
            elif e.code == 422:
                raise CallError(400, e.message) from None
            else:
                raise
        return str(made["metadata"]["uid"])

    def disconnected(self, fw: FrameworkState, stream: EventStream) -> None:
        """The framework's stream ended (peer gone or replaced)."""
        if fw.stream is not stream or self.frameworks.get(fw.id) is not fw:
            return
        fw.stream = None
        fw.connected = False
        fw.disconnected = time.time()
        fw.deadline = self.clock.monotonic() + fw.failover_timeout
        self.dispatch(self.allocator.deactivate_framework(fw.id))
        self.spawn(self._patch_framework_status(fw))
        log.info(
            "mesos: framework %s disconnected; removed in %.0f s unless it fails over",
            fw.id,
            fw.failover_timeout,
        )

    async def _patch_framework_status(self, fw: FrameworkState) -> None:
        status: Obj = {
            "connected": fw.connected,
            "active": fw.connected,
            "registeredTime": rfc3339(fw.registered),
            "reregisteredTime": rfc3339(fw.reregistered) if fw.reregistered else None,
            "disconnectedTime": rfc3339(fw.disconnected) if fw.disconnected else None,
        }
        try:
            await self.client.patch(FRAMEWORKS, fw.id, {"status": status}, sub="status")
        except StatusError as e:
            if e.code != 404:
                raise

    def remove_framework(self, fid: str) -> None:
        """TEARDOWN or failover timeout: rescind its offers, kill its tasks, delete it."""
        fw = self.frameworks.pop(fid, None)
        if fw is None:
            return
        self.removed_ids.add(fid)
        self.completed_frameworks[fid] = fw
        self.metrics.frameworks_removed += 1
        self.dispatch(self.allocator.remove_framework(fid))
        if fw.stream is not None:
            fw.stream.close()
            fw.stream = None
        fw.connected = False
        for t in [t for t in self.tasks.values() if t.framework_id == fid]:
            t.kill_requested = True
            self.spawn(self._delete_pod(t.pod_key, 0))
        self.spawn(self._delete_framework_object(fid))
        self._operator_event(
            {"type": "FRAMEWORK_REMOVED", "framework_removed": {"framework_info": fw.info}}
        )

    async def _delete_framework_object(self, fid: str) -> None:
        try:
            await self.client.delete(FRAMEWORKS, fid, propagation="Background")
        except StatusError as e:
            if e.code != 404:
                raise

    def framework_for_call(self, call: Obj, stream_id: str | None) -> FrameworkState:
        fid = (
            (call.get("framework_id") or {}).get("value")
            if isinstance(call.get("framework_id"), dict)
            else None
        )
        if not fid:
            raise CallError(400, "Expecting 'framework_id' to be present")
        fw = self.frameworks.get(fid)
        if fw is None or not fw.connected or fw.stream is None:
            raise CallError(403, "Framework is not subscribed")
        if stream_id != fw.stream.id:
            raise CallError(403, "The stream ID specified in the request is invalid")
        return fw

    # --- calls --------------------------------------------------------------------------------
    def handle(self, fw: FrameworkState, call: Obj) -> None:
        """One scheduler call other than SUBSCRIBE (validated shape, right stream)."""
        kind = str(call.get("type") or "")
        self.metrics.calls[kind] = self.metrics.calls.get(kind, 0) + 1
        handler = _HANDLERS.get(kind)
        if handler is None:
            raise CallError(400, f"Unsupported call type {kind!r}")
        handler(self, fw, call.get(kind.lower()) or {})

    def _accept(self, fw: FrameworkState, body: Obj) -> None:
        offer_ids = [_value(o) for o in body.get("offer_ids") or []]
        refuse = _refuse(body.get("filters"))
        launches: list[tuple[Obj, Obj | None]] = []
        for op in body.get("operations") or []:
            kind = op.get("type")
            if kind == "LAUNCH":
                launches += [(t, None) for t in (op.get("launch") or {}).get("task_infos") or []]
            elif kind == "LAUNCH_GROUP":
                lg = op.get("launch_group") or {}
                ex = lg.get("executor") or {}
                launches += [(t, ex) for t in (lg.get("task_group") or {}).get("tasks") or []]
            else:
                log.info("mesos: %s ignores unsupported operation %s", fw.id, kind)
        try:
            offers = self.allocator.take(fw.id, offer_ids)
        except InvalidOffers as e:
            for task, _ in launches:
                self._master_update(
                    fw,
                    task,
                    "TASK_DROPPED",
                    "REASON_INVALID_OFFERS",
                    f"Task launched with invalid offers: {e}",
                )
            return
        if not offers:
            return
        self.metrics.offers_accepted += len(offers)
        agent, role = offers[0].agent, offers[0].role
        remaining = np.sum([o.resources for o in offers], axis=0)
        ports: list[tuple[int, int]] = [r for o in offers for r in o.ports]
        launched: list[TaskState] = []
        seen: set[str] = set()
        for task, executor in launches:
            tid = _value(task.get("task_id"))
            if (fw.id, tid) in self.tasks or tid in seen:
                self._master_update(
                    fw, task, "TASK_ERROR", "REASON_TASK_INVALID", f"Task has duplicate ID: {tid}"
                )
                continue
            if executor is not None and not task.get("executor"):
                task = {**task, "executor": executor}
            err = taskmod.validate_task(
                task, agent_id=agent, offered=remaining, offered_ports=ports
            )
            if err:
                self._master_update(fw, task, "TASK_ERROR", "REASON_TASK_INVALID", err)
                continue
            vec, task_ports = parse_resources(list(task.get("resources") or []))
            exec_info = task.get("executor")
            if exec_info:
                evec, eports = parse_resources(list(exec_info.get("resources") or []))
                vec, task_ports = vec + evec, task_ports + eports
            remaining = remaining - vec
            ports = list(subtract_ranges(ports, task_ports))
            seen.add(tid)
            pod = taskmod.task_pod(
                task,
                framework_id=fw.id,
                framework_uid=fw.uid,
                framework_info=fw.info,
                role=role,
                agent=agent,
                executor=exec_info,
            )
            self.scheduler.assume(pod, agent)
            key = key_of(pod)
            t = TaskState(
                framework_id=fw.id,
                task_id=tid,
                pod_key=key,
                agent=agent,
                role=role,
                info=task,
                launched=time.time(),
            )
            t.statuses.append({"state": "TASK_STAGING", "timestamp": time.time()})
            self.tasks[(fw.id, tid)] = t
            self.by_pod[key] = (fw.id, tid)
            self._accepted_at[key] = time.monotonic()
            launched.append(t)
            self.spawn(self._launch(fw, t, pod), name="mesos-launch")
        self.metrics.tasks_launched += len(launched)
        self.allocator.refuse(fw.id, agent, role, np.maximum(remaining, 0), ports, refuse)
        self.scheduler.resources_freed()
        self.wake()

    async def _launch(self, fw: FrameworkState, t: TaskState, pod: Obj) -> None:
        name = pod["metadata"]["name"]
        created = False
        try:
            made = await self.client.create(PODS, pod, names.NAMESPACE)
            created = True
            t.created = True
            await self.client.post_sub(
                PODS,
                name,
                "binding",
                {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {
                        "name": name,
                        "namespace": names.NAMESPACE,
                        "uid": made["metadata"]["uid"],
                    },
                    "target": {"apiVersion": "v1", "kind": "Node", "name": t.agent},
                },
                names.NAMESPACE,
            )
        except StatusError as e:
            self.scheduler.forget(t.pod_key)
            if created:
                with contextlib.suppress(StatusError):
                    await self.client.delete(PODS, name, names.NAMESPACE, grace_period=0)
            state, reason = (
                ("TASK_DROPPED", "REASON_INVALID_OFFERS")
                if e.code == 409
                else ("TASK_ERROR", "REASON_TASK_INVALID")
            )
            self._finish_locally(t, state, reason, e.message)
            return

    def _decline(self, fw: FrameworkState, body: Obj) -> None:
        ids = [_value(o) for o in body.get("offer_ids") or []]
        self.metrics.offers_declined += len(ids)
        self.allocator.decline(fw.id, ids, _refuse(body.get("filters")))
        self.scheduler.resources_freed()
        self.wake()

    def _revive(self, fw: FrameworkState, body: Obj) -> None:
        self.allocator.revive(fw.id, _roles(body))
        self.wake()

    def _suppress(self, fw: FrameworkState, body: Obj) -> None:
        self.dispatch(self.allocator.suppress(fw.id, _roles(body)))

    def _kill(self, fw: FrameworkState, body: Obj) -> None:
        tid = _value(body.get("task_id"))
        if not tid:
            raise CallError(400, "Expecting 'kill.task_id' to be present")
        t = self.tasks.get((fw.id, tid))
        if t is None or taskmod.is_terminal_state(t.state):
            state = "TASK_UNKNOWN" if "PARTITION_AWARE" in fw.capabilities else "TASK_LOST"
            if t is not None:
                state = t.state
            self._master_update(
                fw,
                {"task_id": {"value": tid}},
                state,
                "REASON_RECONCILIATION",
                "Task not found" if t is None else "",
                agent_id=_value(body.get("agent_id")) or (t.agent if t else ""),
                reconcile=True,
            )
            return
        self._kill_task(t, body.get("kill_policy") or (t.info.get("kill_policy") or {}))

    def _kill_task(self, t: TaskState, policy: Obj) -> None:
        t.kill_requested = True
        grace = _grace(policy)
        if not t.created:
            # the pod is still being created: kill it once it exists (in _on_pod)
            return
        self.spawn(self._kill_pod(t, grace))

    async def _kill_pod(self, t: TaskState, grace: int | None) -> None:
        ns, name = t.pod_key.split("/", 1)
        try:
            await self.client.patch(
                PODS, name, {"metadata": {"annotations": {names.KILL_REQUESTED: "true"}}}, ns
            )
        except StatusError as e:
            if e.code == 404:
                return
            raise
        await self._delete_pod(t.pod_key, grace)

    async def _delete_pod(self, key: str, grace: int | None) -> None:
        ns, name = key.split("/", 1)
        try:
            await self.client.delete(PODS, name, ns, grace_period=grace)
        except StatusError as e:
            if e.code != 404:
                raise

    def _shutdown(self, fw: FrameworkState, body: Obj) -> None:
        eid = _value(body.get("executor_id"))
        agent = _value(body.get("agent_id"))
        for t in list(self.tasks.values()):
            ex = t.info.get("executor") or {}
            if (
                t.framework_id == fw.id
                and _value(ex.get("executor_id")) == eid
                and (not agent or t.agent == agent)
            ):
                self._kill_task(t, {})

    def _acknowledge(self, fw: FrameworkState, body: Obj) -> None:
        tid = _value(body.get("task_id"))
        raw = body.get("uuid")
        if not tid or not isinstance(raw, str):
            raise CallError(400, "Expecting 'acknowledge.task_id' and 'acknowledge.uuid'")
        t = self.tasks.get((fw.id, tid))
        if t is None or t.pending is None or t.pending.get("uuid") != raw:
            return  # a duplicate or stale acknowledgement: Mesos ignores it too
        state = str(t.pending["state"])
        t.pending = None
        t.backoff = RETRY_FIRST
        t.acked_state = state
        if t.created:
            self.spawn(self._record_ack(t, state))
        if taskmod.is_terminal_state(state) and (t.pod is None or not t.created):
            self._complete(t)

    async def _record_ack(self, t: TaskState, state: str) -> None:
        ns, name = t.pod_key.split("/", 1)
        try:
            await self.client.patch(
                PODS, name, {"metadata": {"annotations": {names.ACKED_STATE: state}}}, ns
            )
        except StatusError as e:
            if e.code not in (404, 409, 422):
                raise

    def _reconcile(self, fw: FrameworkState, body: Obj) -> None:
        wanted = body.get("tasks") or []
        partition_aware = "PARTITION_AWARE" in fw.capabilities
        t: TaskState | None
        if not wanted:  # implicit: every task the master knows that is not terminal
            for t in self.tasks.values():
                if (
                    t.framework_id == fw.id
                    and t.last is not None
                    and not taskmod.is_terminal_state(t.state)
                ):
                    self._send_update(
                        fw,
                        {**t.last, "reason": "REASON_RECONCILIATION", "timestamp": time.time()},
                        ack=False,
                    )
            return
        for item in wanted:
            tid = _value(item.get("task_id"))
            t = self.tasks.get((fw.id, tid))
            if t is not None and t.last is not None:
                self._send_update(
                    fw,
                    {**t.last, "reason": "REASON_RECONCILIATION", "timestamp": time.time()},
                    ack=False,
                )
                continue
            done = next((c for c in self.completed.get(fw.id, []) if c.task_id == tid), None)
            if done is not None and done.last is not None:
                self._send_update(
                    fw,
                    {**done.last, "reason": "REASON_RECONCILIATION", "timestamp": time.time()},
                    ack=False,
                )
                continue
            if t is not None:  # launched, no status yet
                state = "TASK_STAGING"
            else:
                state = "TASK_UNKNOWN" if partition_aware else "TASK_LOST"
            self._master_update(
                fw,
                {"task_id": {"value": tid}},
                state,
                "REASON_RECONCILIATION",
                "Reconciliation: task is unknown"
                if t is None
                else "Reconciliation: latest task state",
                agent_id=_value(item.get("agent_id")),
                reconcile=True,
            )

    def _message(self, fw: FrameworkState, body: Obj) -> None:
        eid = _value(body.get("executor_id"))
        agent = _value(body.get("agent_id"))
        data = body.get("data")
        if not eid or not agent or not isinstance(data, str):
            raise CallError(
                400, "Expecting 'message.agent_id', 'message.executor_id' and 'message.data'"
            )
        self.spawn(self._relay_to_executor(fw, agent, eid, data))

    async def _relay_to_executor(self, fw: FrameworkState, agent: str, eid: str, data: str) -> None:
        """A framework message goes to the executor through its agent's server (the API
        server's node proxy, as logs and exec)."""
        path = f"/api/v1/nodes/{agent}/proxy/mesos/frameworks/{fw.id}/executors/{eid}/message"
        try:
            await self.client.request("POST", path, body={"data": data})
        except StatusError as e:
            log.info("mesos: message to executor %s on %s not delivered: %s", eid, agent, e.message)

    def executor_message(self, fid: str, agent: str, eid: str, data: str) -> None:
        """An executor's MESSAGE call, relayed by its agent: to the framework's stream."""
        fw = self.frameworks.get(fid)
        if fw is None or fw.stream is None:
            return
        fw.stream.send(
            {
                "type": "MESSAGE",
                "message": {
                    "agent_id": {"value": agent},
                    "executor_id": {"value": eid},
                    "data": data,
                },
            }
        )

    def _request(self, fw: FrameworkState, body: Obj) -> None:
        """REQUEST: Mesos' built-in allocator ignores it; so does Corral's (it revives)."""
        self.wake()

    def _teardown(self, fw: FrameworkState, body: Obj) -> None:
        self.remove_framework(fw.id)

    # --- tasks from pods ----------------------------------------------------------------------
    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        meta = pod.get("metadata") or {}
        if meta.get("namespace") != names.NAMESPACE:
            return
        ann = meta.get("annotations") or {}
        tid = ann.get(names.TASK_ID)
        fid_label = (meta.get("labels") or {}).get(names.FRAMEWORK_ID)
        if tid is None or fid_label is None:
            return
        key = key_of(pod)
        ref = self.by_pod.get(key)
        if ref is None:
            fid = next(
                (
                    o.get("name")
                    for o in meta.get("ownerReferences") or []
                    if o.get("kind") == "Framework"
                ),
                fid_label,
            )
            if type_ == "DELETED":
                return
            try:
                info = orjson.loads(ann.get(names.TASK_INFO) or "{}")
            except ValueError:
                info = {}
            t = TaskState(
                framework_id=str(fid),
                task_id=tid,
                pod_key=key,
                agent=(pod.get("spec") or {}).get("nodeName") or "",
                role=(meta.get("labels") or {}).get(names.ROLE) or "*",
                info=info,
                launched=_ts(meta.get("creationTimestamp")) or time.time(),
                acked_state=ann.get(names.ACKED_STATE, ""),
                kill_requested=ann.get(names.KILL_REQUESTED) == "true",
                created=True,
            )
            if t.acked_state:
                t.last = {"state": t.acked_state}
            ref = (t.framework_id, tid)
            self.tasks[ref] = t
            self.by_pod[key] = ref
        t0 = self.tasks.get(ref)
        if t0 is None:
            return
        t = t0
        if type_ == "DELETED":
            t.pod = None
        else:
            t.created = True
            t.pod = pod
            t.agent = (pod.get("spec") or {}).get("nodeName") or t.agent
            if ann.get(names.KILL_REQUESTED) == "true":
                t.kill_requested = True
            if t.kill_requested and not meta.get("deletionTimestamp") and old is None:
                self.spawn(self._kill_pod(t, _grace(t.info.get("kill_policy") or {})))
        self._refresh(t)
        if type_ == "DELETED":
            self.by_pod.pop(key, None)
            if (
                t.pending is None or not self._framework_connected(t.framework_id)
            ) and taskmod.is_terminal_state(t.state):
                self._complete(t)
            if self.frameworks.get(t.framework_id) is None:
                self._complete(t)

    def _framework_connected(self, fid: str) -> bool:
        fw = self.frameworks.get(fid)
        return bool(fw and fw.connected)

    def _on_node(self, type_: str, node: Obj, old: Obj | None) -> None:
        name = (node.get("metadata") or {}).get("name", "")
        if old is not None and type_ != "DELETED" and _node_state(node) == _node_state(old):
            return
        for t in list(self.tasks.values()):
            if t.agent == name:
                self._refresh(t)
        self.wake()

    def node_state(self, agent: str) -> str:
        node = self.scheduler.nodes.get(agent)
        return "gone" if node is None else _node_state(node)

    def _refresh(self, t: TaskState) -> None:
        """Compute the task's status from its pod; send it when it changed."""
        fw = self.frameworks.get(t.framework_id)
        if fw is None:
            return
        if taskmod.is_terminal_state(t.state) and t.last is not None and "uuid" in t.last:
            return  # a task ends once
        caps = fw.capabilities
        if t.pod is None and not t.created:
            return
        status = taskmod.task_status(
            t.pod,
            task_id=t.task_id,
            agent_id=t.agent,
            node_state=self.node_state(t.agent) if t.agent else "ready",
            kill_requested=t.kill_requested,
            partition_aware="PARTITION_AWARE" in caps,
            task_killing_state="TASK_KILLING_STATE" in caps,
        )
        state = status["state"]
        if state == "TASK_STAGING":
            return
        prev = t.last or {}
        if prev.get("state") == state and prev.get("healthy") == status.get("healthy"):
            return
        if not prev.get("uuid") and state == t.acked_state and t.pending is None:
            t.last = {**status, "timestamp": time.time()}  # acknowledged before a restart
            return
        status["timestamp"] = time.time()
        status["uuid"] = base64.b64encode(uuid.uuid4().bytes).decode()
        t.last = status
        t.statuses.append({"state": state, "timestamp": status["timestamp"]})
        t.pending = status
        t.backoff = RETRY_FIRST
        t.next_retry = self.clock.monotonic() + RETRY_FIRST
        if state == "TASK_RUNNING":
            started = self._accepted_at.pop(t.pod_key, None)
            if started is not None:
                self.metrics.accept_to_running.append(time.monotonic() - started)
                del self.metrics.accept_to_running[:-10000]
        if fw.connected:
            self._send_update(fw, status)
        self._operator_event(
            {
                "type": "TASK_UPDATED",
                "task_updated": {
                    "framework_id": {"value": t.framework_id},
                    "status": status,
                    "state": state,
                },
            }
        )
        if taskmod.is_terminal_state(state) or state in ("TASK_LOST",):
            self._accepted_at.pop(t.pod_key, None)
            pod_meta = (t.pod or {}).get("metadata") or {}
            phase = ((t.pod or {}).get("status") or {}).get("phase")
            if (
                t.pod is not None
                and phase not in ("Succeeded", "Failed")
                and not pod_meta.get("deletionTimestamp")
            ):
                # a task that failed to launch (or was lost) holds nothing: remove its pod
                self.spawn(self._delete_pod(t.pod_key, 0))

    def _send_update(self, fw: FrameworkState, status: Obj, ack: bool = True) -> None:
        if fw.stream is None:
            return
        self.metrics.updates_sent += 1
        fw.stream.send({"type": "UPDATE", "update": {"status": status}})

    def _master_update(
        self,
        fw: FrameworkState,
        task: Obj,
        state: str,
        reason: str,
        message: str,
        *,
        agent_id: str = "",
        reconcile: bool = False,
    ) -> None:
        """A status the master itself sends (invalid launches, reconciliation): no
        acknowledgement is needed (no uuid), as in Mesos."""
        status: Obj = {
            "task_id": {"value": _value(task.get("task_id"))},
            "state": state,
            "source": "SOURCE_MASTER",
            "reason": reason,
            "message": message,
            "timestamp": time.time(),
        }
        agent = agent_id or _value(task.get("agent_id"))
        if agent:
            status["agent_id"] = {"value": agent}
        self._send_update(fw, status, ack=False)

    def _finish_locally(self, t: TaskState, state: str, reason: str, message: str) -> None:
        """The launch failed before a pod ran: the task ends with this master status."""
        fw = self.frameworks.get(t.framework_id)
        status: Obj = {
            "task_id": {"value": t.task_id},
            "state": state,
            "source": "SOURCE_MASTER",
            "reason": reason,
            "message": message,
            "agent_id": {"value": t.agent},
            "timestamp": time.time(),
            "uuid": base64.b64encode(uuid.uuid4().bytes).decode(),
        }
        t.last = status
        t.pending = status
        t.created = False
        t.pod = None
        t.next_retry = self.clock.monotonic() + RETRY_FIRST
        self.by_pod.pop(t.pod_key, None)
        if fw is not None:
            self._send_update(fw, status)

    def _complete(self, t: TaskState) -> None:
        """A terminal, acknowledged task leaves the active set for the completed list."""
        if self.tasks.get((t.framework_id, t.task_id)) is not t:
            return
        del self.tasks[(t.framework_id, t.task_id)]
        if self.by_pod.get(t.pod_key) == (t.framework_id, t.task_id) and t.pod is None:
            self.by_pod.pop(t.pod_key, None)
        done = self.completed.setdefault(t.framework_id, [])
        done.append(t)
        del done[:-MAX_COMPLETED_TASKS]

    # --- operator side ------------------------------------------------------------------------
    def master_info(self) -> Obj:
        return {
            "id": self.id,
            "ip": 2130706433,
            "port": self.port,
            "hostname": self.hostname,
            "version": VERSION,
            "pid": f"master@{self.hostname}:{self.port}",
            "address": {"hostname": self.hostname, "ip": "127.0.0.1", "port": self.port},
        }

    def framework_v1(self, fw: FrameworkState) -> Obj:
        return {
            "framework_info": fw.info,
            "active": fw.connected,
            "connected": fw.connected,
            "recovered": False,
            "registered_time": {"nanoseconds": int(fw.registered * 1e9)},
            **(
                {"reregistered_time": {"nanoseconds": int(fw.reregistered * 1e9)}}
                if fw.reregistered
                else {}
            ),
        }

    def _operator_event(self, event: Obj) -> None:
        for s in list(self.operator_streams):
            if s.closed:
                self.operator_streams.remove(s)
            else:
                s.send(event)


_HANDLERS = {
    "ACCEPT": Master._accept,
    "DECLINE": Master._decline,
    "REVIVE": Master._revive,
    "SUPPRESS": Master._suppress,
    "KILL": Master._kill,
    "SHUTDOWN": Master._shutdown,
    "ACKNOWLEDGE": Master._acknowledge,
    "RECONCILE": Master._reconcile,
    "MESSAGE": Master._message,
    "REQUEST": Master._request,
    "TEARDOWN": Master._teardown,
}


def _value(obj: Any) -> str:
    if isinstance(obj, dict):
        v = obj.get("value")
        return v if isinstance(v, str) else ""
    return ""


def _roles(body: Obj) -> list[str] | None:
    roles = body.get("roles")
    return [r for r in roles if isinstance(r, str)] if isinstance(roles, list) and roles else None


def _refuse(filters: Any) -> float | None:
    if not isinstance(filters, dict) or "refuse_seconds" not in filters:
        return None
    try:
        return float(filters["refuse_seconds"])
    except (TypeError, ValueError):
        return None


def _grace(policy: Obj) -> int | None:
    gp = policy.get("grace_period") if isinstance(policy, dict) else None
    if isinstance(gp, dict) and "nanoseconds" in gp:
        try:
            return max(0, int(int(gp["nanoseconds"]) // 1_000_000_000))
        except (TypeError, ValueError):
            return None
    return None


def _node_state(node: Obj) -> str:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return "ready" if c.get("status") == "True" else "unreachable"
    return "unreachable"


def _ts(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    from corral.util.clock import parse_rfc3339

    try:
        return parse_rfc3339(text)
    except ValueError:
        return None
