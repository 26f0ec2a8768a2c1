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
so a call is atomic); API writes run as supervised tasks afterwards, at most
``API_WRITES`` at a time (10,000 tasks launched or killed at once would otherwise queue
past their timeouts in the API server), acknowledged states through ``record_ack``.

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
import collections
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import numpy as np
import orjson

from corral.api import mesos as names
from corral.api.errors import StatusError
from corral.client.informer import Informer, key_of
from corral.client.rest import CONFIGMAPS, EVENTS, FRAMEWORKS, NAMESPACES, Client
from corral.mesos import calls, updates
from corral.mesos.model import (
    EXECUTOR_MESSAGE,
    MAX_COMPLETED_FRAMEWORKS,
    POLICY_CONFIGMAP,
    RETRY_FIRST,
    RETRY_MAX,
    VERSION,
    CallError,
    FrameworkState,
    Metrics,
    Obj,
    TaskState,
    node_state_of,
    parse_ts,
)
from corral.offers.allocator import (
    Allocator,
    Instruction,
    Offer,
    RescindOffer,
    SendOffers,
)
from corral.offers.resources import render_resources
from corral.scheduler.scheduler import Scheduler
from corral.util.clock import Clock, SystemClock, rfc3339
from corral.util.eventstream import EventStream

log = logging.getLogger("corral.mesos")

#: how long a recovered framework has to re-subscribe after a master restart (Mesos
#: never removes a framework for not having found the new master yet)
RECOVERY_WINDOW = 600.0
#: API writes (task pods created and bound, killed, deleted, ...) in flight at a time;
#: the rest wait their turn here rather than past their timeout in the API server's queue
API_WRITES = 64
#: acknowledged states written on task pods at a time (``Master.record_ack``)
ACK_WRITERS = 8


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
        status_update_retry: float = RETRY_FIRST,
    ) -> None:
        self.client = client
        self.scheduler = scheduler
        self.allocator = allocator
        self.clock = clock or SystemClock()
        self.hostname = hostname
        self.port = port
        self.heartbeat = heartbeat
        self.interval = interval
        #: the first resend of an unacknowledged status update (then doubling, to RETRY_MAX)
        self.retry_first = status_update_retry
        self.id = str(uuid.uuid4())
        self.start_time = time.time()
        #: when this master last became the leader (``run`` began): /state's elected_time
        self.elected_time = self.start_time
        self.frameworks: dict[str, FrameworkState] = {}
        self.completed_frameworks: dict[str, FrameworkState] = {}
        self.removed_ids: set[str] = set()
        self.tasks: dict[tuple[str, str], TaskState] = {}
        self.by_pod: dict[str, tuple[str, str]] = {}
        self.completed: dict[str, list[TaskState]] = {}
        #: pods of finished, acknowledged tasks (kept for their logs; events ignored)
        self.completed_pods: set[str] = set()
        #: uids of such pods removed so that a new task may reuse the id (and pod name)
        self.replaced_pods: set[str] = set()
        self.metrics = Metrics()
        self.operator_streams: list[EventStream] = []
        self.frameworks_informer = Informer(client, FRAMEWORKS)
        self.messages = Informer(
            client, EVENTS, namespace=names.NAMESPACE, field_selector=f"reason={EXECUTOR_MESSAGE}"
        )
        self.messages.add_handler(functools.partial(calls.on_event, self))
        self._wake = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self.ready = asyncio.Event()
        self._accepted_at: dict[str, float] = {}  # pod key -> monotonic ACCEPT time
        self._subscribing: dict[str, asyncio.Lock] = {}
        #: agent -> framework messages (framework, executor, data) not yet relayed to it
        self.outboxes: dict[str, collections.deque[tuple[str, str, str]]] = {}
        #: pod key -> acknowledged state not yet written on the pod (``record_ack``)
        self._acks: dict[str, str] = {}
        self._acks_writing: set[str] = set()
        self._ack_writer = False
        self._writes = asyncio.Semaphore(API_WRITES)
        self.stopping = False
        scheduler.pods.add_handler(functools.partial(updates.on_pod, self))
        scheduler.nodes.add_handler(functools.partial(updates.on_node, self))
        scheduler.reclaimer = self._reclaim

    # --- running ----------------------------------------------------------------------------
    async def run(self) -> None:
        self.elected_time = time.time()
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self.frameworks_informer.run(), name="mesos-frameworks-informer")
            await self.frameworks_informer.wait_for_sync(timeout=120)
            await self.scheduler.ready.wait()
            await self._ensure_namespace()
            await self._load_policy()
            self._recover()
            tg.create_task(self.messages.run(), name="mesos-executor-messages")
            self.ready.set()
            tg.create_task(self._allocation_loop(), name="mesos-allocation")
            tg.create_task(self._housekeeping(), name="mesos-housekeeping")

    def spawn(
        self, coro: Coroutine[Any, Any, Any], name: str = "mesos-write", *, bounded: bool = True
    ) -> None:
        """Run an API write as a supervised task (logged, never lost silently); at most
        ``API_WRITES`` of them at a time unless not ``bounded`` (a writer of its own)."""
        if self._tg is None or self.stopping:
            coro.close()
            return
        guarded = self._guarded(coro, bounded)
        try:
            self._tg.create_task(guarded, name=name)
        except RuntimeError:  # the group is shutting down
            guarded.close()
            coro.close()

    def record_ack(self, pod_key: str, state: str) -> None:
        """Record an acknowledged state on its pod, soon. The writes go through at most
        ``ACK_WRITERS`` at a time and a newer acknowledgement of a pod replaces one not
        yet written: thousands of tasks starting at once acknowledge two or three
        states each, and a patch apiece, all at once, would queue past their timeout
        at the API server (only a restarted master reads the annotation, to resend
        what was not acknowledged)."""
        self._acks[pod_key] = state
        if not self._ack_writer:
            self._ack_writer = True
            self.spawn(self._write_acks(), name="mesos-acks", bounded=False)

    async def _write_acks(self) -> None:
        async def writer() -> None:
            while True:
                # not a pod whose earlier state is being written: keep them in order
                key = next((k for k in self._acks if k not in self._acks_writing), None)
                if key is None:
                    return
                state = self._acks.pop(key)
                self._acks_writing.add(key)
                try:
                    await calls.record_ack(self, key, state)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("mesos master: recording the acknowledgement of %s failed", key)
                finally:
                    self._acks_writing.discard(key)

        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(ACK_WRITERS):
                    tg.create_task(writer())
        finally:
            self._ack_writer = False
            if self._acks and not self.stopping:  # came in as the last writer ended
                self._ack_writer = True
                self.spawn(self._write_acks(), name="mesos-acks", bounded=False)

    async def _guarded(self, coro: Coroutine[Any, Any, Any], bounded: bool = True) -> None:
        try:
            if not bounded:
                await coro
                return
            try:
                await self._writes.acquire()
            except BaseException:
                coro.close()  # cancelled before its turn: it never ran
                raise
            try:
                await coro
            finally:
                self._writes.release()
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
                registered=parse_ts(status.get("registeredTime")) or time.time(),
            )
            fw.disconnected = time.time()
            # after a master failover a framework has time to find the new master
            # before its own failover timeout counts (Mesos never removes it for that)
            fw.deadline = now + max(fw.failover_timeout, RECOVERY_WINDOW)
            if fid in self.frameworks:
                continue
            try:
                self.allocator.add_framework(fid, fw.roles)
            except ValueError as e:
                log.warning("mesos: framework %s not recovered: %s", fid, e)
                continue
            self.frameworks[fid] = fw
            self.allocator.deactivate_framework(fid)
        for pod in list(self.scheduler.pods.store.values()):
            updates.on_pod(self, "ADDED", pod, None)
            meta = pod.get("metadata") or {}
            if (
                meta.get("namespace") == names.NAMESPACE
                and names.TASK_ID in (meta.get("annotations") or {})
                and not (pod.get("spec") or {}).get("nodeName")
                and not meta.get("deletionTimestamp")
            ):
                # created but never bound before the restart: its launch did not happen
                self.spawn(calls.delete_pod(self, key_of(pod), 0))
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

    def handle(self, fw: FrameworkState, call: Obj) -> None:
        """One scheduler call other than SUBSCRIBE (``calls.py``)."""
        calls.handle(self, fw, call)

    def node_state(self, agent: str) -> str:
        """``ready``, ``unreachable`` or ``gone``: what a task pod's node is now."""
        node = self.scheduler.nodes.get(agent)
        return "gone" if node is None else node_state_of(node)

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
                        updates.send_update(self, owner, t.pending)
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
            "resources": render_resources(o.resources, list(o.ports), o.role, o.pods),
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
    async def subscribe(
        self, call: Obj, authorize: Callable[[Obj], Awaitable[str | None]] | None = None
    ) -> tuple[FrameworkState, EventStream]:
        """Validate a SUBSCRIBE (all of it, before anything changes) and register or
        re-register the framework; the caller pumps the returned stream. SUBSCRIBEs of
        one framework id are serialised (the object write is awaited). ``authorize``
        (``auth.py``) answers why the caller may not register this FrameworkInfo, or
        None: a refusal is an ERROR event on a closed stream, as Mesos sends it."""
        if not self.ready.is_set():
            raise CallError(503, "Master is not ready yet: recovering its state")
        info, fid, suppressed = _validate_subscribe(call)
        if authorize is not None:
            refused = await authorize({**info, "id": {"value": fid or ""}})
            if refused:
                return _refused(fid or "", info, refused, self.heartbeat)
        if fid is None:
            return await self._subscribe(info, None, suppressed)
        lock = self._subscribing.setdefault(fid, asyncio.Lock())
        async with lock:
            return await self._subscribe(info, fid, suppressed)

    async def _subscribe(
        self, info: Obj, fid: str | None, suppressed: list[str]
    ) -> tuple[FrameworkState, EventStream]:
        stream = EventStream(self.heartbeat)
        now = time.time()
        roles = FrameworkState(id="", info=info).roles
        bad = [r for r in suppressed if r not in roles]
        if bad:
            raise CallError(400, f"Suppressed roles {bad} are not roles of the framework")
        if fid:
            if fid in self.removed_ids or fid in self.completed_frameworks:
                stream.close({"type": "ERROR", "error": {"message": "Framework has been removed"}})
                return FrameworkState(id=fid, info=info), stream
            fw = self.frameworks.get(fid)
            old_principal = (fw.info.get("principal") or "") if fw is not None else ""
            if fw is not None and old_principal and old_principal != info.get("principal"):
                # Mesos' rule, so one principal cannot take over another's framework (one
                # registered without a principal adopts its first: auth.py)
                return _refused(fid, info, "Changing framework's principal is not allowed.",
                                self.heartbeat)  # fmt: skip
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
                    fw.stream = None
                # as Mesos' failoverFramework: the old scheduler's offers are rescinded
                # (it will never answer them) and recovered
                self.dispatch(self.allocator.deactivate_framework(fid))
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
                updates.send_update(self, fw, t.pending)
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
        for old in list(self.completed_frameworks)[:-MAX_COMPLETED_FRAMEWORKS]:
            del self.completed_frameworks[old]
            self.completed.pop(old, None)
        self.metrics.frameworks_removed += 1
        self.dispatch(self.allocator.remove_framework(fid))
        if fw.stream is not None:
            fw.stream.close()
            fw.stream = None
        fw.connected = False
        for t in [t for t in self.tasks.values() if t.framework_id == fid]:
            t.kill_requested = True
            self.spawn(calls.delete_pod(self, t.pod_key, 0))
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

    def agent_v1(self, name: str) -> Obj:
        """One agent as the operator API shows it (``state.agent_v1``)."""
        from corral.mesos import state

        for a in state.agents_v0(self):
            if a["id"] == name:
                return state.agent_v1(self, a)
        return {"agent_info": {"id": {"value": name}, "hostname": name}}

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


def _refused(
    fid: str, info: Obj, message: str, heartbeat: float
) -> tuple[FrameworkState, EventStream]:
    """A SUBSCRIBE answered with one ERROR event and the end of the stream."""
    stream = EventStream(heartbeat)
    stream.close({"type": "ERROR", "error": {"message": message}})
    log.info("mesos: SUBSCRIBE of %s (%s) refused: %s", fid or "a new framework",
             info.get("name"), message)  # fmt: skip
    return FrameworkState(id=fid, info=info), stream


def _validate_subscribe(call: Obj) -> tuple[Obj, str | None, list[str]]:
    """(framework_info, framework id or None, suppressed roles) of a SUBSCRIBE, or
    ``CallError(400)`` with what is wrong (Mesos validates the whole call first)."""
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
    if roles is not None:
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise CallError(400, "'framework_info.roles' must be a list of role names")
    elif info.get("role") is not None and not isinstance(info.get("role"), str):
        raise CallError(400, "'framework_info.role' must be a role name")
    for role in roles if roles is not None else [info.get("role") or "*"]:
        why = names.role_error(role)
        if why:
            raise CallError(400, f"Invalid role '{role}': {why}")
    caps = info.get("capabilities", [])
    if not isinstance(caps, list) or not all(
        isinstance(c, dict) and isinstance(c.get("type"), str) for c in caps
    ):
        raise CallError(400, "'framework_info.capabilities' must be a list of {\"type\": NAME}")
    labels = info.get("labels")
    if labels is not None and not (
        isinstance(labels, dict) and isinstance(labels.get("labels", []), list)
    ):
        raise CallError(400, "'framework_info.labels' must be {\"labels\": [...]}")
    for f in ("hostname", "principal", "webui_url"):
        if info.get(f) is not None and not isinstance(info.get(f), str):
            raise CallError(400, f"'framework_info.{f}' must be a string")
    if "failover_timeout" in info:
        ft = info["failover_timeout"]
        if isinstance(ft, bool) or not isinstance(ft, int | float) or not ft >= 0:
            raise CallError(400, "'framework_info.failover_timeout' must be a non-negative number")
    ids = []
    for where in (call.get("framework_id"), info.get("id")):
        if where is None:
            continue
        if not isinstance(where, dict) or not isinstance(where.get("value"), str):
            raise CallError(400, 'A framework id is {"value": "..."}')
        ids.append(where["value"])
    if len(set(ids)) > 1:
        raise CallError(400, "'framework_id' differs from 'subscribe.framework_info.id'")
    suppressed = sub.get("suppressed_roles", [])
    if not isinstance(suppressed, list) or not all(isinstance(r, str) for r in suppressed):
        raise CallError(400, "'subscribe.suppressed_roles' must be a list of role names")
    return info, (ids[0] if ids else None) or None, list(suppressed)
