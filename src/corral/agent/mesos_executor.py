"""The Mesos v1 executor HTTP API of one agent: custom executors subscribe, report, talk.

A task pod runs a *custom executor* when its ``EXECUTOR_ID`` annotation is set and its
TaskInfo (``TASK_INFO``) names no DEFAULT executor (the master, ``corral.mesos.taskpod``,
then runs ``ExecutorInfo.command`` as the pod's container). As a Mesos agent does, this
module hands the executor its task over the executor API and turns what it says into
what the rest of Corral reads (apache/mesos ``src/slave/http.cpp`` ``Http::executor``,
``Slave::subscribe``, ``Slave::statusUpdate``; ``include/mesos/v1/executor/executor.proto``):

``POST /api/v1/executor`` (``call``; no token: an executor has none, so a call is
accepted only for an executor pod that lives on this node; the body is checked first by
``mesos_executor_calls.parse_call``)
    SUBSCRIBE: a RecordIO stream, SUBSCRIBED, then LAUNCH (or LAUNCH_GROUP) of the
    pod's task unless the executor already has it; UPDATE: the status is written to the
    pod's ``EXECUTOR_STATUS`` annotation (the master reads it), then ACKNOWLEDGED on the
    stream, 202; MESSAGE: an Event ``ExecutorMessage`` on the pod (the master relays it),
    202; HEARTBEAT: 202. Errors are Mesos': 400 (bad body; unknown framework or
    executor), 403 (not subscribed), 406, 415, all ``text/plain``.
``POST /mesos/executor-message`` (``deliver``; the master, with the cluster token)
    a framework's MESSAGE to the executor's stream.

The pod worker (``pods.py``) drives the rest: ``attach`` before the executor starts
(it chooses ``MESOS_AGENT_ENDPOINT``, see ``executor_env``), ``started``/``exited`` as
its process comes and goes (an exit closes the stream), ``terminate`` when the pod is
deleted, ``detach`` when its resources are gone::

    pod deleted --> KILL{task} (unless the task is terminal or never delivered)
                      | executor exits within the deletion's grace period --> done
                      v
                    SHUTDOWN --> exits within its shutdown grace period --> done
                      v
                    the usual stop (SIGTERM/SIGKILL, no further grace)

Which pod a call is about: Corral runs one pod per task, so several pods on a node may
run the same (framework, executor) id (the pymesos example does that). Each host-network
executor is therefore given a loopback address of its own (``127.x.y.z``, derived from
the pod uid, served by an executor-only listener) and its calls must come in there; a
pod-network executor's calls must come from its pod IP. That also keeps the rest of the
network from speaking for an executor (Mesos, without executor authentication, does not).

A task is delivered unless the executor lists it in ``unacknowledged_tasks`` (it has
it) or the pod already holds a status for it (it had it). Upstream instead fails a task
it sent before but the executor does not list, because it cannot resend a TaskInfo it
did not checkpoint (the TODO in ``Slave::subscribe``); Corral has the TaskInfo on the
pod, so it sends it again. Pods are the only durable state: a restarted agent reads the
recorded status back from the annotation.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from corral.api import mesos
from corral.api.errors import StatusError
from corral.client.rest import EVENTS, FRAMEWORKS, PODS
from corral.util.clock import Clock, SystemClock, rfc3339
from corral.util.eventstream import EventStream

from .mesos_executor_calls import (
    TERMINAL,
    Answer,
    CallError,
    accepts_json,
    parse_call,
    validate_status,
    value_of,
)

log = logging.getLogger("corral.agent.mesos_executor")

Obj = dict[str, Any]

#: slave/constants.hpp DEFAULT_EXECUTOR_SHUTDOWN_GRACE_PERIOD, DEFAULT_EXECUTOR_HEARTBEAT_INTERVAL
DEFAULT_GRACE_NS = 5_000_000_000
HEARTBEAT = 1800.0  # 30 minutes, as Mesos
#: the reason and component of the Events that carry an executor's MESSAGE
EXECUTOR_MESSAGE = "ExecutorMessage"
COMPONENT = "corral-agent"
#: "true" on a pod: deliver its task as LAUNCH_GROUP (a task group of one, as each task
#: of a group is its own pod) rather than LAUNCH
TASK_GROUP = f"{mesos.GROUP}/task-group"
#: TaskStatus fields an executor's UPDATE keeps (the agent adds the rest)
KEPT = ("state", "message", "reason", "data", "healthy", "labels", "uuid", "timestamp",
        "check_status")  # fmt: skip
_WILDCARD = ("", "0.0.0.0", "::")


class Api(Protocol):
    """The part of ``corral.client.rest.Client`` used here."""

    async def get(self, res: Any, name: str, namespace: str | None = None) -> Obj: ...
    async def create(self, res: Any, obj: Obj, namespace: str | None = None) -> Obj: ...
    async def patch(self, res: Any, name: str, patch: Any, namespace: str | None = None) -> Obj: ...


class Listeners(Protocol):
    """Where executors can reach the agent (``AgentServer``): ``port`` and refcounted
    executor-only listeners on more addresses (``listen`` is False if it cannot bind)."""

    @property
    def port(self) -> int: ...

    async def listen(self, host: str) -> bool: ...
    async def unlisten(self, host: str) -> None: ...


@dataclass
class Executor:
    """One executor pod on this node and its subscription."""

    uid: str
    namespace: str
    name: str
    framework_id: str
    executor_id: str
    executor_info: Obj
    tasks: list[Obj]
    group: bool
    grace_ns: int
    endpoint: str = ""  # MESOS_AGENT_ENDPOINT
    local_ip: str | None = None  # host network: the loopback address only this pod dials
    pod_ip: str | None = None  # pod network: calls come from here
    listening: str | None = None  # the listener held for it
    stream: EventStream | None = None
    statuses: dict[str, Obj] = field(default_factory=dict)  # task id -> last recorded
    launched: set[str] = field(default_factory=set)
    terminating: bool = False
    exited: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def subscribed(self) -> bool:
        return self.stream is not None and not self.stream.closed

    def task_ids(self) -> list[str]:
        return [value_of(t.get("task_id")) for t in self.tasks]


# --- reading a pod ---------------------------------------------------------------------------


def _loads(raw: Any) -> Any:
    try:
        return orjson.loads(raw) if isinstance(raw, str) and raw else None
    except orjson.JSONDecodeError:
        return None


def is_custom_executor_pod(pod: Obj) -> bool:
    """``EXECUTOR_ID`` set and no DEFAULT executor in the TaskInfo (whose type, when
    unset, is CUSTOM if it has a command, as ``corral.mesos.taskpod`` decides)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if not annotations.get(mesos.EXECUTOR_ID):
        return False
    info = _loads(annotations.get(mesos.TASK_INFO))
    executor = info.get("executor") if isinstance(info, dict) else None
    if not isinstance(executor, dict):
        return True  # (a pod made by hand: the annotation says it all)
    kind = executor.get("type")
    if kind in (None, "UNKNOWN"):
        return executor.get("command") is not None
    return bool(kind == "CUSTOM")


def _framework_id(pod: Obj, executor_info: Obj) -> str:
    meta = pod.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "Framework" and ref.get("name"):
            return str(ref["name"])
    if value_of(executor_info.get("framework_id")):
        return value_of(executor_info.get("framework_id"))
    for c in (pod.get("spec") or {}).get("containers") or []:
        for e in c.get("env") or []:
            if e.get("name") == "MESOS_FRAMEWORK_ID" and e.get("value"):
                return str(e["value"])
    return str((meta.get("labels") or {}).get(mesos.FRAMEWORK_ID) or "")


def format_duration(ns: int) -> str:
    """A duration as stout prints it and pymesos parses it (``5secs``, ``500ms``)."""
    if ns >= 1_000_000_000:
        return f"{ns / 1e9:g}secs"
    return f"{ns / 1e6:g}ms"


def loopback_address(uid: str, attempt: int = 0) -> str:
    """A loopback address for one pod: ``127.a.b.c``, a in 1..254 (127.0.x.x is left to
    the host's own names), c in 1..254; ``attempt`` picks another on a clash."""
    d = hashlib.sha256(f"{uid}/{attempt}".encode()).digest()
    return f"127.{d[0] % 254 + 1}.{d[1]}.{d[2] % 254 + 1}"


def facing_address(ip: str) -> str:
    """This host's own address on the way to ``ip`` (a pod's: its bridge's gateway)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect((ip, 9))  # a UDP connect sends nothing: it only picks the route
        return str(s.getsockname()[0])


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return ip == "localhost"


def _dialled_by(ex: Executor, local: str | None, peer: str | None) -> bool:
    """Whether a call that came in on ``local`` from ``peer`` can be ``ex``'s: through its
    own loopback address, or from its pod IP (only an executor without either is taken
    at its word)."""
    if ex.local_ip is not None:
        return ex.local_ip == local
    if ex.pod_ip is not None:
        return ex.pod_ip == peer
    return True


def executor_env(ex: Executor, node_name: str, env: dict[str, str], own: Iterable[str]) -> None:
    """The executor API's environment (``slave.cpp`` ``executorEnvironment``), added to a
    container's ``env`` (``MESOS_SANDBOX``/``MESOS_DIRECTORY``: ``mesos_task.task_env``).

    The identity (``MESOS_AGENT_ENDPOINT``, ``MESOS_FRAMEWORK_ID``, ``MESOS_EXECUTOR_ID``)
    is always the agent's: calls are matched against it. Other names in ``own`` (the
    container's explicit ``env``) win. ``MESOS_CHECKPOINT=0`` is dropped: pymesos reads
    any non-empty value as true and would then outlive a lost stream."""
    env["MESOS_AGENT_ENDPOINT"] = ex.endpoint
    env["MESOS_FRAMEWORK_ID"] = ex.framework_id
    env["MESOS_EXECUTOR_ID"] = ex.executor_id
    mine = set(own)
    defaults = {
        "MESOS_SLAVE_ID": node_name,
        "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": format_duration(ex.grace_ns),
    }
    for k, v in defaults.items():
        if k not in mine:
            env[k] = v
    if env.get("MESOS_CHECKPOINT") in ("0", ""):
        env.pop("MESOS_CHECKPOINT", None)


# --- the registry ----------------------------------------------------------------------------


class MesosExecutors:
    """The executor pods of this node and their streams. Methods run on the agent's
    loop; the only awaits are API writes and listener changes."""

    def __init__(
        self,
        client: Api,
        node_name: str,
        node_ip: str,
        listeners: Listeners,
        *,
        clock: Clock | None = None,
        heartbeat: float = HEARTBEAT,
        new_stream: Callable[[float], EventStream] = EventStream,
    ) -> None:
        self.client = client
        self.node_name = node_name
        self.node_ip = node_ip
        self.listeners = listeners
        self.clock = clock or SystemClock()
        self.heartbeat = heartbeat
        self.new_stream = new_stream
        self.executors: dict[str, Executor] = {}  # pod uid ->
        self._events = 0

    # --- the pod worker's side -----------------------------------------------------------------
    async def attach(self, pod: Obj, pod_ip: str, host_network: bool) -> Executor | None:
        """The pod's executor (None: not a custom executor pod), with its endpoint chosen
        and listened on; idempotent."""
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        if uid in self.executors:
            return self.executors[uid]
        if not is_custom_executor_pod(pod):
            return None
        annotations = meta.get("annotations") or {}
        info = _loads(annotations.get(mesos.TASK_INFO))
        task: Obj = info if isinstance(info, dict) else {}
        if not value_of(task.get("task_id")):
            task = {**task, "task_id": {"value": str(annotations.get(mesos.TASK_ID) or "")}}
        eid = str(annotations[mesos.EXECUTOR_ID])
        executor_info = dict(task.get("executor") or {})
        executor_info.setdefault("executor_id", {"value": eid})
        fid = _framework_id(pod, executor_info)
        executor_info.setdefault("framework_id", {"value": fid})
        grace = (executor_info.get("shutdown_grace_period") or {}).get("nanoseconds")
        try:
            grace_ns = DEFAULT_GRACE_NS if grace is None else max(0, int(grace))
        except (TypeError, ValueError):
            grace_ns = DEFAULT_GRACE_NS
        ex = Executor(
            uid=uid,
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            framework_id=fid,
            executor_id=eid,
            executor_info=executor_info,
            tasks=[task],
            group=str(annotations.get(TASK_GROUP, "")).lower() == "true",
            grace_ns=grace_ns,
        )
        sent = _loads(annotations.get(mesos.EXECUTOR_STATUS))
        if isinstance(sent, dict) and isinstance(sent.get("state"), str):
            ex.statuses[value_of(sent.get("task_id")) or ex.task_ids()[0]] = sent
        self.executors[uid] = ex
        try:
            await self._choose_endpoint(ex, pod_ip, host_network)
        except BaseException:
            del self.executors[uid]
            raise
        return ex

    async def _choose_endpoint(self, ex: Executor, pod_ip: str, host_network: bool) -> None:
        port = self.listeners.port
        if host_network:
            taken = {e.local_ip for e in self.executors.values() if e is not ex}
            for attempt in range(4):
                ip = loopback_address(ex.uid, attempt)
                if ip in taken:
                    continue
                if await self.listeners.listen(ip):
                    ex.local_ip = ex.listening = ip
                    ex.endpoint = f"{ip}:{port}"
                    return
                break
            host = "127.0.0.1" if self.node_ip in _WILDCARD else self.node_ip
            log.warning("executor pod %s: no loopback address of its own", ex.name)
            ex.endpoint = f"{host}:{port}"
            return
        ex.pod_ip = pod_ip
        host = self.node_ip
        if host in _WILDCARD or _is_loopback(host):
            try:
                host = facing_address(pod_ip)
            except OSError as e:
                log.warning("executor pod %s: no route to %s: %s", ex.name, pod_ip, e)
            if await self.listeners.listen(host):
                ex.listening = host
        ex.endpoint = f"{host}:{port}"

    def started(self, uid: str) -> None:
        """The executor's container (re)started."""
        ex = self.executors.get(uid)
        if ex is not None:
            ex.exited = False

    def exited(self, uid: str) -> None:
        """The executor's process is gone: its stream ends."""
        ex = self.executors.get(uid)
        if ex is not None:
            ex.exited = True
            if ex.stream is not None:
                ex.stream.close()

    async def detach(self, uid: str) -> None:
        """The pod is gone: forget it, end its stream, release its listener."""
        ex = self.executors.pop(uid, None)
        if ex is None:
            return
        if ex.stream is not None:
            ex.stream.close()
        if ex.listening is not None:
            await self.listeners.unlisten(ex.listening)

    async def terminate(
        self, uid: str, grace: float, exited: Callable[[float], Awaitable[bool]]
    ) -> float:
        """KILL the pod's delivered tasks that are not terminal and wait up to ``grace``
        (the deletion's) for the executor to exit (``exited(timeout)``); then SHUTDOWN and
        wait up to its shutdown grace period (no longer than ``grace``), as Mesos waits
        before destroying the container. Returns the grace period the usual stop still
        owes: 0 once SHUTDOWN had its time."""
        ex = self.executors.get(uid)
        if ex is None or ex.exited:
            return grace
        ex.terminating = True
        if not ex.subscribed:
            return grace
        live = [  # delivered (sent, held or reported on) and not ended
            tid
            for tid in ex.task_ids()
            if (tid in ex.launched or tid in ex.statuses)
            and (ex.statuses.get(tid) or {}).get("state") not in TERMINAL
        ]
        if live:
            for tid in live:
                self._send(ex, {"type": "KILL", "kill": {"task_id": {"value": tid}}})
            if await exited(grace):
                return 0.0
        if not ex.subscribed:
            return grace  # it hung up without exiting: nobody hears SHUTDOWN
        self._send(ex, {"type": "SHUTDOWN"})
        await exited(min(grace, ex.grace_ns / 1e9))
        return 0.0

    def deliver(self, framework_id: str, executor_id: str, data: str) -> int:
        """A framework's MESSAGE to every subscribed instance of the executor here (each
        task pod runs one); how many got it."""
        n = 0
        for ex in self.executors.values():
            if (ex.framework_id, ex.executor_id) == (framework_id, executor_id) and ex.subscribed:
                self._send(ex, {"type": "MESSAGE", "message": {"data": data}})
                n += 1
        return n

    def _send(self, ex: Executor, event: Obj) -> None:
        if ex.stream is not None:
            ex.stream.send(event)

    # --- the executor's side ---------------------------------------------------------------------
    async def call(
        self,
        body: bytes,
        content_type: str | None,
        *,
        accept: str | None = None,
        local: str | None = None,
        peer: str | None = None,
    ) -> Answer | EventStream:
        """One ``POST /api/v1/executor``: the answer, or the stream to serve for SUBSCRIBE.
        ``local``/``peer``: the address the call came in on and the caller's."""
        try:
            call = parse_call(body, content_type)
            kind = call["type"]
            if kind == "SUBSCRIBE" and not accepts_json(accept):
                return Answer(406, "Expecting 'Accept' to allow 'application/json'")
            if kind == "HEARTBEAT":
                return Answer(202)
            ex = self._find(
                value_of(call["framework_id"]), value_of(call["executor_id"]), local, peer
            )
            if kind == "SUBSCRIBE":
                return await self._subscribe(ex, call["subscribe"])
            if not ex.subscribed:
                return Answer(403, "Executor is not subscribed")
            if kind == "UPDATE":
                await self._update(ex, call["update"]["status"])
                return Answer(202)
            if kind == "MESSAGE":
                await self._message(ex, call["message"]["data"])
                return Answer(202)
            return Answer(501)  # UNKNOWN, as Mesos answers it
        except CallError as e:
            return e.answer

    def _find(self, fid: str, eid: str, local: str | None, peer: str | None) -> Executor:
        mine = [e for e in self.executors.values() if e.framework_id == fid]
        if not mine:
            raise CallError(400, "Framework cannot be found")
        found = [e for e in mine if e.executor_id == eid and _dialled_by(e, local, peer)]
        if len(found) != 1:  # none, or several that nothing tells apart
            raise CallError(400, "Executor cannot be found")
        return found[0]

    async def _subscribe(self, ex: Executor, subscribe: Obj) -> EventStream:
        for name in ("unacknowledged_tasks", "unacknowledged_updates"):
            items = subscribe.get(name, [])
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise CallError(400, f"Expecting 'subscribe.{name}' to be a list of objects")
        framework_info = await self._framework_info(ex.framework_id)
        # from here to the return nothing awaits: the takeover is atomic
        if ex.stream is not None:
            ex.stream.close()  # as Mesos closes an executor's earlier connection
        stream = ex.stream = self.new_stream(self.heartbeat)
        if ex.terminating or ex.exited:
            stream.close({"type": "SHUTDOWN"})
            return stream
        stream.send(
            {
                "type": "SUBSCRIBED",
                "subscribed": {
                    "executor_info": ex.executor_info,
                    "framework_info": framework_info,
                    "agent_info": {
                        "id": {"value": self.node_name},
                        "hostname": self.node_name,
                        "port": self.listeners.port,
                    },
                    "container_id": {"value": ex.uid},
                },
            }
        )
        updates = [u for u in subscribe.get("unacknowledged_updates") or [] if isinstance(u, dict)]
        held = {value_of(t.get("task_id")) for t in subscribe.get("unacknowledged_tasks") or []}
        held |= {value_of((u.get("status") or {}).get("task_id")) for u in updates}
        due = [t for t in ex.tasks if value_of(t.get("task_id")) not in held | set(ex.statuses)]
        if due and ex.group:
            stream.send({"type": "LAUNCH_GROUP", "launch_group": {"task_group": {"tasks": due}}})
        else:
            for task in due:
                stream.send({"type": "LAUNCH", "launch": {"task": task}})
        ex.launched |= {value_of(t.get("task_id")) for t in due} | (held & set(ex.task_ids()))
        call = {
            "executor_id": {"value": ex.executor_id},
            "framework_id": {"value": ex.framework_id},
        }
        for update in updates:  # as UPDATE calls (Slave::subscribe does the same)
            try:
                await self._update(ex, validate_status(update.get("status"), call))
            except CallError as e:
                log.info("executor %s: unacknowledged update dropped: %s", ex.name, e)
        return stream

    async def _framework_info(self, fid: str) -> Obj:
        """FrameworkInfo from the Framework object (``id``, ``user``, ``name``, ...)."""
        info: Obj = {}
        try:
            obj = await self.client.get(FRAMEWORKS, fid)
            info = dict((obj.get("spec") or {}).get("frameworkInfo") or {})
        except (StatusError, OSError, TimeoutError) as e:
            log.debug("framework %s: no FrameworkInfo: %s", fid, e)
        info.setdefault("user", "")
        info.setdefault("name", "")
        info["id"] = {"value": fid}  # pymesos asserts it equals MESOS_FRAMEWORK_ID
        return info

    async def _update(self, ex: Executor, status: Obj) -> None:
        """Record the status on the pod, then ACKNOWLEDGED on the stream (as the status
        update manager acknowledges once it has checkpointed)."""
        tid = value_of(status.get("task_id"))
        ack = {
            "type": "ACKNOWLEDGED",
            "acknowledged": {"task_id": {"value": tid}, "uuid": status["uuid"]},
        }
        async with ex.lock:
            if tid not in ex.task_ids():
                log.warning("executor %s: update for task %r it does not run dropped", ex.name, tid)
                self._send(ex, ack)
                return
            prev = ex.statuses.get(tid) or {}
            if prev.get("uuid") == status["uuid"] or prev.get("state") in TERMINAL:
                self._send(ex, ack)  # a duplicate, or after the end: nothing to record
                return
            out: Obj = {k: status[k] for k in KEPT if status.get(k) is not None}
            out.setdefault("timestamp", self.clock.now())
            out.update(
                task_id={"value": tid},
                source="SOURCE_EXECUTOR",
                agent_id={"value": self.node_name},
                executor_id={"value": ex.executor_id},
            )
            patch = {
                "metadata": {"annotations": {mesos.EXECUTOR_STATUS: orjson.dumps(out).decode()}}
            }
            try:
                await self.client.patch(PODS, ex.name, patch, ex.namespace)
            except StatusError as e:
                if e.code != 404:
                    raise CallError(
                        503 if e.code >= 500 else 400, f"Failed to record the update: {e}"
                    ) from None
                log.info("executor %s: update for a pod that is gone", ex.name)
            except (OSError, TimeoutError) as e:
                raise CallError(503, f"Failed to record the update: {e}") from None
            ex.statuses[tid] = out
            self._send(ex, ack)

    async def _message(self, ex: Executor, data: str) -> None:
        now = self.clock.now()
        self._events += 1
        stamp = int(now * 1e9) + self._events
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{ex.name}.{stamp:x}", "namespace": ex.namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": ex.name,
                "namespace": ex.namespace,
                "uid": ex.uid,
            },
            "reason": EXECUTOR_MESSAGE,
            "message": data,
            "type": "Normal",
            "source": {"component": COMPONENT, "host": self.node_name},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.node_name,
            "firstTimestamp": rfc3339(now),
            "lastTimestamp": rfc3339(now),
            "count": 1,
        }
        try:
            await self.client.create(EVENTS, event, ex.namespace)
        except StatusError as e:
            raise CallError(503 if e.code >= 500 else 400, f"Failed to relay: {e}") from None
        except (OSError, TimeoutError) as e:
            raise CallError(503, f"Failed to relay: {e}") from None


__all__ = [
    "EXECUTOR_MESSAGE",
    "TASK_GROUP",
    "Answer",
    "Executor",
    "Listeners",
    "MesosExecutors",
    "executor_env",
    "format_duration",
    "is_custom_executor_pod",
    "loopback_address",
    "parse_call",
]
