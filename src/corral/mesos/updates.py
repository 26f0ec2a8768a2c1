"""Task status updates: from pod (and node) changes to the TaskStatus a framework gets.

``TaskUpdates`` is a part of ``Master`` (a mixin over its state). The pod informer's
handler ``_on_pod`` keeps a ``TaskState`` per task pod (also for pods a restarted master
finds), ``_refresh`` reads the pod through ``tasks.task_status`` and, when the state or
health changed, sends an UPDATE with a new uuid and keeps it pending until the framework
acknowledges it (the master's housekeeping resends it meanwhile). A task that ends before
its pod ran (or was lost) has its pod removed so that it holds nothing.

Status updates the master sends on its own (invalid launches, reconciliation) carry no
uuid and need no acknowledgement, as in Mesos.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import TYPE_CHECKING

import orjson

from corral.api import mesos as names
from corral.client.informer import key_of
from corral.mesos import calls
from corral.mesos import tasks as taskmod
from corral.mesos.model import (
    KEEP_COMPLETED_PODS,
    MAX_COMPLETED_TASKS,
    FrameworkState,
    Obj,
    TaskState,
    grace_seconds,
    node_state_of,
    parse_ts,
    value,
)

if TYPE_CHECKING:
    from corral.mesos.master import Master


def on_pod(m: Master, type_: str, pod: Obj, old: Obj | None) -> None:
    meta = pod.get("metadata") or {}
    if meta.get("namespace") != names.NAMESPACE:
        return
    ann = meta.get("annotations") or {}
    tid = ann.get(names.TASK_ID)
    fid_label = (meta.get("labels") or {}).get(names.FRAMEWORK_ID)
    if tid is None or fid_label is None:
        return
    key = key_of(pod)
    if key in m.completed_pods:
        return  # a finished task's pod, kept for its logs
    if meta.get("uid") in m.replaced_pods:
        if type_ == "DELETED":
            m.replaced_pods.discard(meta.get("uid"))
        return  # an earlier task's pod of this name, removed for a new task of the id
    ref = m.by_pod.get(key)
    if ref is None:
        if ann.get(names.ACKED_STATE) and taskmod.is_terminal_state(ann[names.ACKED_STATE]):
            m.completed_pods.add(key)  # ended and acknowledged before a restart
            return
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
            launched=parse_ts(meta.get("creationTimestamp")) or time.time(),
            acked_state=ann.get(names.ACKED_STATE, ""),
            kill_requested=ann.get(names.KILL_REQUESTED) == "true",
            created=True,
        )
        if t.acked_state:
            t.last = {"state": t.acked_state}
        ref = (t.framework_id, tid)
        m.tasks[ref] = t
        m.by_pod[key] = ref
    t0 = m.tasks.get(ref)
    if t0 is None:
        if type_ == "DELETED":
            m.by_pod.pop(key, None)
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
            m.spawn(calls.kill_pod(m, t, grace_seconds(t.info.get("kill_policy") or {})))
    refresh(m, t)
    if type_ == "DELETED":
        m.by_pod.pop(key, None)
        # a terminal update leaves with its acknowledgement (it is resent meanwhile,
        # across a framework's failover too), or with its framework
        if (t.pending is None and taskmod.is_terminal_state(t.state)) or m.frameworks.get(
            t.framework_id
        ) is None:
            complete(m, t)


def framework_connected(m: Master, fid: str) -> bool:
    fw = m.frameworks.get(fid)
    return bool(fw and fw.connected)


def on_node(m: Master, type_: str, node: Obj, old: Obj | None) -> None:
    name = (node.get("metadata") or {}).get("name", "")
    if type_ == "DELETED" and m.operator_streams:
        m._operator_event({"type": "AGENT_REMOVED", "agent_removed": {"agent_id": {"value": name}}})
    elif old is None and m.operator_streams:
        m._operator_event({"type": "AGENT_ADDED", "agent_added": {"agent": m.agent_v1(name)}})
    if old is not None and type_ != "DELETED" and node_state_of(node) == node_state_of(old):
        return
    for t in list(m.tasks.values()):
        if t.agent == name:
            refresh(m, t)
    m.wake()


def refresh(m: Master, t: TaskState) -> None:
    """Compute the task's status from its pod; send it when it changed."""
    fw = m.frameworks.get(t.framework_id)
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
        node_state=m.node_state(t.agent) if t.agent else "ready",
        kill_requested=t.kill_requested,
        partition_aware="PARTITION_AWARE" in caps,
        task_killing_state="TASK_KILLING_STATE" in caps,
    )
    state = status["state"]
    if state == "TASK_STAGING":
        return
    prev = t.last or {}
    if not prev.get("uuid") and state == t.acked_state and t.pending is None:
        t.last = {**status, "timestamp": time.time()}  # acknowledged before a restart
        return
    if prev.get("state") == state and prev.get("healthy") == status.get("healthy"):
        return
    ran = state in _AFTER_RUNNING and _container_ran(t.pod)
    if ran and not any(x["state"] == "TASK_RUNNING" for x in t.statuses):
        # the task ran and ended between two looks at its pod: Mesos always reports
        # TASK_RUNNING first (its executor sends it once the process is launched)
        running = {k: v for k, v in status.items() if k not in ("reason", "message", "limitation")}
        emit(m, fw, t, {**running, "state": "TASK_RUNNING"})
    emit(m, fw, t, status)
    if state in _GROUP_FAILURES:
        _kill_group(m, t)
    if taskmod.is_terminal_state(state) or state in ("TASK_LOST",):
        m._accepted_at.pop(t.pod_key, None)
        pod_meta = (t.pod or {}).get("metadata") or {}
        phase = ((t.pod or {}).get("status") or {}).get("phase")
        if (
            t.pod is not None
            and phase not in ("Succeeded", "Failed")
            and not pod_meta.get("deletionTimestamp")
        ):
            # a task that failed to launch (or was lost) holds nothing: remove its pod
            m.spawn(calls.delete_pod(m, t.pod_key, 0))


def emit(m: Master, fw: FrameworkState, t: TaskState, status: Obj) -> None:
    """Send ``status`` (new uuid; pending until acknowledged) and tell operators."""
    state = status["state"]
    status["timestamp"] = time.time()
    status["uuid"] = base64.b64encode(uuid.uuid4().bytes).decode()
    t.last = status
    t.statuses.append({"state": state, "timestamp": status["timestamp"]})
    t.pending = status
    t.backoff = m.retry_first
    t.next_retry = m.clock.monotonic() + m.retry_first
    if state == "TASK_RUNNING":
        started = m._accepted_at.pop(t.pod_key, None)
        if started is not None:
            m.metrics.accept_to_running.append(time.monotonic() - started)
            del m.metrics.accept_to_running[:-10000]
    if fw.connected:
        send_update(m, fw, status)
    m._operator_event(
        {
            "type": "TASK_UPDATED",
            "task_updated": {
                "framework_id": {"value": t.framework_id},
                "status": status,
                "state": state,
            },
        }
    )


_AFTER_RUNNING = ("TASK_FINISHED", "TASK_FAILED", "TASK_KILLED")
#: a task of a group (LAUNCH_GROUP) ending so takes the others with it, as Mesos'
#: default executor does
_GROUP_FAILURES = ("TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST", "TASK_GONE")


def group_of(t: TaskState) -> str:
    """The executor id of a task launched in a group (LAUNCH_GROUP), else ""."""
    ex = t.info.get("executor") or {}
    return value(ex.get("executor_id")) if ex.get("type") == "DEFAULT" else ""


def _kill_group(m: Master, t: TaskState) -> None:
    group = group_of(t)
    if not group:
        return
    for other in list(m.tasks.values()):
        if (
            other is not t
            and other.framework_id == t.framework_id
            and other.agent == t.agent
            and group_of(other) == group
            and not other.kill_requested
            and not taskmod.is_terminal_state(other.state)
        ):
            calls.kill_task(m, other, {})


def _container_ran(pod: Obj | None) -> bool:
    """Whether a container of ``pod`` started (running now, or ended after starting)."""
    for cs in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        st = cs.get("state") or {}
        if "running" in st or (st.get("terminated") or {}).get("startedAt"):
            return True
    return False


def send_update(m: Master, fw: FrameworkState, status: Obj, ack: bool = True) -> None:
    if fw.stream is None:
        return
    m.metrics.updates_sent += 1
    fw.stream.send({"type": "UPDATE", "update": {"status": status}})


def master_update(
    m: Master,
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
        "task_id": {"value": value(task.get("task_id"))},
        "state": state,
        "source": "SOURCE_MASTER",
        "reason": reason,
        "message": message,
        "timestamp": time.time(),
    }
    agent = agent_id or value(task.get("agent_id"))
    if agent:
        status["agent_id"] = {"value": agent}
    send_update(m, fw, status, ack=False)


def finish_locally(m: Master, t: TaskState, state: str, reason: str, message: str) -> None:
    """The launch failed before a pod ran: the task ends with this master status."""
    fw = m.frameworks.get(t.framework_id)
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
    t.pod = None
    t.backoff = m.retry_first  # (not the dataclass's 10 s, nor what an earlier update grew)
    t.next_retry = m.clock.monotonic() + m.retry_first
    if fw is not None:
        send_update(m, fw, status)


def complete(m: Master, t: TaskState) -> None:
    """A terminal, acknowledged task leaves the active set for the completed list (its
    id may be used again). Its pod stays for ``kubectl logs`` while it is among the
    last ``KEEP_COMPLETED_PODS`` of its framework, then goes."""
    if m.tasks.get((t.framework_id, t.task_id)) is not t:
        return
    del m.tasks[(t.framework_id, t.task_id)]
    if m.by_pod.get(t.pod_key) == (t.framework_id, t.task_id):
        del m.by_pod[t.pod_key]
        if t.pod is not None:
            m.completed_pods.add(t.pod_key)
    done = m.completed.setdefault(t.framework_id, [])
    done.append(t)
    del done[:-MAX_COMPLETED_TASKS]
    kept = [c for c in done if c.pod_key in m.completed_pods]
    for old in kept[:-KEEP_COMPLETED_PODS]:
        m.completed_pods.discard(old.pod_key)
        if old.pod_key not in m.by_pod:
            m.spawn(calls.delete_pod(m, old.pod_key, 0))
