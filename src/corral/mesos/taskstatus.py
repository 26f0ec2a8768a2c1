"""The TaskStatus a task's Pod stands for (pure: a pod and a few facts in, a dict out).

The master (``master.py``) calls :func:`task_status` on every event of a task's pod or of
its node and sends an UPDATE when the state (or ``healthy``) changed; it adds ``uuid`` and
``timestamp``. Nothing here remembers anything: the pod, the node's state and whether the
framework asked for a kill are the whole input, so a restarted master computes the same.

States, reasons, sources and messages are Mesos' (``src/launcher/executor.cpp``,
``src/slave/slave.cpp``, ``src/master/master.cpp``; v1 names, ``REASON_AGENT_*`` for the
v0 ``REASON_SLAVE_*``)::

      pod created, no nodeName                          kill before the container ran
            |                                           (unbound/Pending + kill or delete)
            v                                              --> TASK_KILLED
      TASK_STAGING  --bound, Pending (ContainerCreating, pulling)-->  TASK_STARTING
            |                                                  |
            |  image pull / create / config / run errors       |  phase Running
            +----------------> TASK_FAILED                     v
                               (CONTAINER_LAUNCH_FAILED)  TASK_RUNNING  (healthy = Ready,
                                                               |          with a health check)
                                       kill or deletionTimestamp,
                                       TASK_KILLING_STATE      |
                                            TASK_KILLING <-----+
                                                 |             |  phase Succeeded / Failed
                                                 v             v
            TASK_KILLED (kill or delete)  TASK_FINISHED (exit 0)  TASK_FAILED (exit N, signal;
                                          OOMKilled: CONTAINER_LIMITATION_MEMORY;
                                          DeadlineExceeded: MAX_COMPLETION_TIME_REACHED)
                                          Evicted: TASK_GONE / TASK_LOST (CONTAINER_PREEMPTED)

      any non-terminal state, node not Ready / lease expired:
            TASK_UNREACHABLE (partition-aware) / TASK_LOST,  REASON_AGENT_REMOVED, master
      any non-terminal state, Node deleted:
            TASK_GONE_BY_OPERATOR / TASK_LOST,  REASON_AGENT_REMOVED_BY_OPERATOR / _REMOVED
      no pod:  killed --> TASK_KILLED;  Node deleted / unreachable as above;
               else TASK_GONE / TASK_LOST "Reconciliation: Task is unknown to the agent"

A CUSTOM executor's pod follows the executor: its last UPDATE (annotation
``EXECUTOR_STATUS``, written by the agent) is the status while the pod runs (TASK_STAGING
until it sends one, as in Mesos); when the pod ends, a terminal state it sent stands,
else TASK_FAILED REASON_EXECUTOR_TERMINATED "Executor terminated" (or the limitation or
launch failure that ended it), as ``Slave::sendExecutorTerminatedStatusUpdate`` does.

Deviations, on purpose: statuses the command executor would send (STARTING, RUNNING,
KILLING, FINISHED, FAILED, KILLED) carry ``SOURCE_AGENT`` (:data:`COMMAND_SOURCE`; there
is no command executor here) and no ``executor_id``; a failed command carries
``REASON_COMMAND_EXECUTOR_FAILED``, the value a Mesos framework reads from the unset
field (0). ``healthy`` is reported once the Ready condition says something after the
container started (Mesos reports nothing before the first check either), so a task that
has never passed a check is not reported unhealthy; its liveness probe still kills it.
A kill by the liveness probe is reported as the exit it caused (Mesos: TASK_KILLED).
"""

from __future__ import annotations

import ipaddress
import signal
from typing import Any

import orjson

from corral.api import mesos as names
from corral.api.quantity import parse_quantity
from corral.mesos.taskpod import CONTAINER_NAME, is_custom_executor

Obj = dict[str, Any]

TERMINAL_STATES = frozenset(
    {
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_LOST",
        "TASK_ERROR",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
    }
)
#: the source of what Mesos' command executor would send (SOURCE_EXECUTOR there)
COMMAND_SOURCE = "SOURCE_AGENT"

#: container waiting/terminated reasons meaning the container could not be launched
LAUNCH_FAILURES = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerError",
        "CreateContainerConfigError",
        "RunContainerError",
        "StartError",
        "ContainerCannotRun",
    }
)
#: strsignal(3) on glibc, for "Command terminated with signal ..."
_SIGNALS = {
    1: "Hangup",
    2: "Interrupt",
    3: "Quit",
    4: "Illegal instruction",
    6: "Aborted",
    8: "Floating point exception",
    9: "Killed",
    11: "Segmentation fault",
    13: "Broken pipe",
    14: "Alarm clock",
    15: "Terminated",
}


def is_terminal_state(state: str) -> bool:
    """``protobuf::isTerminalState``: FINISHED, FAILED, KILLED, LOST, ERROR, DROPPED,
    GONE, GONE_BY_OPERATOR (UNREACHABLE and UNKNOWN are not)."""
    return state in TERMINAL_STATES


def _status(state: str, source: str, reason: str | None = None, message: str | None = None) -> Obj:
    out: Obj = {"state": state, "source": source}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def _signal_name(num: int) -> str:
    if num in _SIGNALS:
        return _SIGNALS[num]
    try:
        return signal.strsignal(num) or f"Unknown signal {num}"
    except ValueError:
        return f"Unknown signal {num}"


def _signal_number(raw: Any) -> int | None:
    """The ``signal`` of a terminated container state (a number, or a name like SIGKILL)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        try:
            return int(signal.Signals[raw if raw.startswith("SIG") else "SIG" + raw])
        except KeyError:
            return int(raw) if raw.isdigit() else None
    return None


def command_message(term: Obj, killed: bool) -> str:
    """``"Command " + WSTRINGIFY(status)``: exited with status N / terminated with signal
    X. A container killed by a signal shows exit code 128+N; that is read as the signal
    when the kill was ours or the runtime reported the signal."""
    code = term.get("exitCode")
    sig = _signal_number(term.get("signal"))
    if sig is None and killed and isinstance(code, int) and 128 < code < 160:
        sig = code - 128
    if sig:
        return f"Command terminated with signal {_signal_name(sig)}"
    return f"Command exited with status {code if isinstance(code, int) else 'unknown'}"


def _container(pod: Obj) -> Obj:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for cs in statuses:
        if cs.get("name") == CONTAINER_NAME:
            return dict(cs)
    return dict(statuses[0]) if statuses else {}


def _launch_failure(cs: Obj) -> str | None:
    """The kubelet's word for a container that could not be launched, else None."""
    state = cs.get("state") or {}
    for kind in ("waiting", "terminated"):
        info = state.get(kind) or {}
        reason = info.get("reason")
        if reason in LAUNCH_FAILURES:
            message = info.get("message")
            return (
                f"Failed to launch container: {reason}: {message}"
                if message
                else (f"Failed to launch container: {reason}")
            )
    return None


def _ips(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or [] if isinstance(p, dict)]
    ips = [ip for ip in ips if ip] or ([status["podIP"]] if status.get("podIP") else [])
    return [str(ip) for ip in ips]


def _container_status(pod: Obj) -> Obj | None:
    addresses = []
    for ip in _ips(pod):
        entry: Obj = {"ip_address": ip}
        try:
            if ipaddress.ip_address(ip).version == 6:
                entry["protocol"] = "IPv6"
        except ValueError:
            pass
        addresses.append(entry)
    return {"network_infos": [{"ip_addresses": addresses}]} if addresses else None


def _healthy(pod: Obj, cs: Obj) -> bool | None:
    """TaskStatus.healthy from the Ready condition (its readiness probe is the health
    check): True when Ready; False when it went not-Ready after the container started;
    None (unknown) before that."""
    spec_containers = (pod.get("spec") or {}).get("containers") or []
    if not any(c.get("readinessProbe") for c in spec_containers):
        return None
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") != "Ready":
            continue
        if cond.get("status") == "True":
            return True
        started = ((cs.get("state") or {}).get("running") or {}).get("startedAt") or ""
        since = cond.get("lastTransitionTime") or ""
        return False if started and since > started else None
    return None


def _memory_limitation(pod: Obj) -> Obj:
    """``Memory limit exceeded: Requested: 64MB`` (memory.cpp) and the limited mem."""
    for c in (pod.get("spec") or {}).get("containers") or []:
        limit = ((c.get("resources") or {}).get("limits") or {}).get("memory")
        if limit is None:
            continue
        try:
            n = int(parse_quantity(limit))
        except ValueError:
            break
        out = _status("TASK_FAILED", "SOURCE_AGENT", "REASON_CONTAINER_LIMITATION_MEMORY")
        out["message"] = f"Memory limit exceeded: Requested: {_stout_bytes(n)}"
        mem = {"name": "mem", "type": "SCALAR", "scalar": {"value": n / 2**20}}
        out["limitation"] = {"resources": [mem]}
        return out
    return _status(
        "TASK_FAILED", "SOURCE_AGENT", "REASON_CONTAINER_LIMITATION_MEMORY", "Memory limit exceeded"
    )


def _stout_bytes(n: int) -> str:
    """stout's ``Bytes`` printing: the largest unit that loses nothing."""
    for unit, size in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n and n % size == 0:
            return f"{n // size}{unit}"
    return f"{n}B"


def _ended(pod: Obj, cs: Obj, *, killed: bool, custom: bool, partition_aware: bool) -> Obj:
    """The terminal status of a pod in phase Succeeded or Failed."""
    status = pod.get("status") or {}
    state = cs.get("state") or {}
    term = state.get("terminated") or (cs.get("lastState") or {}).get("terminated") or {}
    if status.get("reason") == "Evicted":
        lost = "TASK_GONE" if partition_aware else "TASK_LOST"
        return _status(lost, "SOURCE_AGENT", "REASON_CONTAINER_PREEMPTED", status.get("message"))
    if term.get("reason") == "OOMKilled":
        return _memory_limitation(pod)
    failure = _launch_failure(cs)
    if failure is None and not term and status.get("phase") == "Failed":
        why = status.get("message") or status.get("reason")
        if status.get("reason") != "DeadlineExceeded":
            failure = f"Failed to launch container: {why}" if why else "Failed to launch container"
    if failure:
        return _status("TASK_FAILED", "SOURCE_AGENT", "REASON_CONTAINER_LAUNCH_FAILED", failure)
    if custom:
        if killed:
            return _status("TASK_KILLED", "SOURCE_AGENT", None, "Executor terminated")
        return _status(
            "TASK_FAILED", "SOURCE_AGENT", "REASON_EXECUTOR_TERMINATED", "Executor terminated"
        )
    deadline = status.get("reason") == "DeadlineExceeded" and not killed
    message = command_message(term, killed or deadline) if term else None
    if deadline:  # activeDeadlineSeconds is the task's max_completion_time
        return _status("TASK_FAILED", COMMAND_SOURCE, "REASON_MAX_COMPLETION_TIME_REACHED", message)
    if killed:
        return _status("TASK_KILLED", COMMAND_SOURCE, None, message)
    if status.get("phase") == "Succeeded":
        return _status("TASK_FINISHED", COMMAND_SOURCE, None, message)
    return _status("TASK_FAILED", COMMAND_SOURCE, "REASON_COMMAND_EXECUTOR_FAILED", message)


def _from_pod(
    pod: Obj, *, kill_requested: bool, task_killing_state: bool, custom: bool, partition_aware: bool
) -> Obj:
    """What the pod itself says, before the node's state and the executor's word."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    killed = kill_requested or bool(meta.get("deletionTimestamp"))
    phase = status.get("phase") or "Pending"
    cs = _container(pod)
    if phase in ("Succeeded", "Failed"):
        return _ended(pod, cs, killed=killed, custom=custom, partition_aware=partition_aware)
    if spec.get("nodeName") and phase == "Pending":
        failure = _launch_failure(cs)
        if failure:
            return _status("TASK_FAILED", "SOURCE_AGENT", "REASON_CONTAINER_LAUNCH_FAILED", failure)
    if killed and (not spec.get("nodeName") or phase == "Pending"):
        return _status(
            "TASK_KILLED",
            "SOURCE_AGENT",
            "REASON_TASK_KILLED_DURING_LAUNCH",
            "Killed before delivery to the executor",
        )
    if not spec.get("nodeName") or custom:
        return _status(
            "TASK_STAGING", "SOURCE_MASTER" if not spec.get("nodeName") else "SOURCE_AGENT"
        )
    if phase == "Pending":
        return _status("TASK_STARTING", COMMAND_SOURCE)
    if killed and task_killing_state:
        return _status("TASK_KILLING", COMMAND_SOURCE)
    out = _status("TASK_RUNNING", COMMAND_SOURCE)
    healthy = _healthy(pod, cs)
    if healthy is not None:
        out["healthy"] = healthy
        out["reason"] = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
    return out


def _executor_sent(annotations: Obj) -> Obj | None:
    """The custom executor's last TaskStatus (annotation EXECUTOR_STATUS), if valid."""
    raw = annotations.get(names.EXECUTOR_STATUS)
    if not raw:
        return None
    try:
        sent = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(sent, dict) or not isinstance(sent.get("state"), str):
        return None
    if sent["state"] == "TASK_STAGING":
        return None  # Mesos refuses TASK_STAGING from an executor
    out: Obj = {"state": sent["state"], "source": "SOURCE_EXECUTOR"}
    for key in (
        "message",
        "reason",
        "data",
        "healthy",
        "labels",
        "check_status",
        "container_status",
    ):
        if sent.get(key) is not None:
            out[key] = sent[key]
    return out


def _is_custom(annotations: Obj) -> bool:
    if names.EXECUTOR_ID not in annotations:
        return False
    try:
        info = orjson.loads(annotations.get(names.TASK_INFO) or "{}")
    except orjson.JSONDecodeError:
        return names.EXECUTOR_STATUS in annotations
    executor = info.get("executor") if isinstance(info, dict) else None
    return is_custom_executor(executor if isinstance(executor, dict) else None)


def _node_lost(node_state: str, partition_aware: bool) -> Obj | None:
    """Master's word for tasks of an unreachable (``markUnreachable``) or removed
    (``markGone``) agent."""
    if node_state == "gone":
        if partition_aware:
            return _status(
                "TASK_GONE_BY_OPERATOR",
                "SOURCE_MASTER",
                "REASON_AGENT_REMOVED_BY_OPERATOR",
                "Agent has been marked gone",
            )
        return _status(
            "TASK_LOST", "SOURCE_MASTER", "REASON_AGENT_REMOVED", "Agent has been marked gone"
        )
    if node_state == "unreachable":
        state = "TASK_UNREACHABLE" if partition_aware else "TASK_LOST"
        return _status(state, "SOURCE_MASTER", "REASON_AGENT_REMOVED", "health check timed out")
    return None


def task_status(
    pod: Obj | None,
    *,
    task_id: str,
    agent_id: str,
    node_state: str,
    kill_requested: bool,
    partition_aware: bool,
    task_killing_state: bool,
) -> Obj:
    """The TaskStatus (protobuf JSON, without ``uuid`` and ``timestamp``) of the task whose
    pod is ``pod`` (None: no pod exists). ``node_state``: ``"ready"``, ``"unreachable"``
    (Ready Unknown/False or lease expired) or ``"gone"`` (the Node was deleted)."""
    ids: Obj = {"task_id": {"value": task_id}, "agent_id": {"value": agent_id}}
    if pod is None:
        if kill_requested:
            return {**ids, **_status("TASK_KILLED", "SOURCE_AGENT")}
        lost = _node_lost(node_state, partition_aware)
        if lost is None:
            lost = _status(
                "TASK_GONE" if partition_aware else "TASK_LOST",
                "SOURCE_MASTER",
                "REASON_RECONCILIATION",
                "Reconciliation: Task is unknown to the agent",
            )
        return {**ids, **lost}

    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    executor_id = annotations.get(names.EXECUTOR_ID)
    if executor_id:
        ids["executor_id"] = {"value": str(executor_id)}
    custom = _is_custom(annotations)
    sent = _executor_sent(annotations) if custom or names.EXECUTOR_STATUS in annotations else None
    out = _from_pod(
        pod,
        kill_requested=kill_requested,
        task_killing_state=task_killing_state,
        custom=custom,
        partition_aware=partition_aware,
    )
    phase = (pod.get("status") or {}).get("phase")
    if sent is not None and (
        is_terminal_state(sent["state"])
        or not (phase in ("Succeeded", "Failed") or is_terminal_state(out["state"]))
    ):
        out = sent  # the executor's word, unless its pod ended without a terminal one
    if not is_terminal_state(out["state"]):
        lost = _node_lost("unreachable" if phase == "Unknown" else node_state, partition_aware)
        if lost is not None:
            return {**ids, **lost}
    if out.get("source") != "SOURCE_MASTER" and "container_status" not in out:
        cstatus = _container_status(pod)
        if cstatus is not None:
            out["container_status"] = cstatus
    return {**ids, **out}
