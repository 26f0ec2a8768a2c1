"""The scheduler calls of the Mesos v1 API other than SUBSCRIBE: their semantics.

``Master.handle`` (``http.py`` calls it once the call's framework and stream id are
checked) dispatches through ``HANDLERS``. Each handler runs without awaiting between
reading and changing the allocator and the node table, so a call is atomic on the event
loop; API writes (pod creation, binding, deletion) run afterwards as supervised tasks.
Each function takes the master as ``m``.

ACCEPT, the one call with real work::

    take the offers (all valid, one agent, this framework's) --else--> TASK_DROPPED
      for each task: validate against what is left --bad--> TASK_ERROR
                     (cpus, mem, disk, ports, and the ``pods`` the offers advertised)
                     room for one more pod on the node --none--> TASK_ERROR (POD_LIMIT_REACHED)
                     make the pod, assume it on the node (the offer's hold moves to it)
      refuse the unused rest for filters.refuse_seconds
      then: create the pod, bind it (the binding guard checks again) --fails--> TASK_DROPPED
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import numpy as np

from corral.api import mesos as names
from corral.api.errors import StatusError
from corral.api.nodes import agent_scheme, binding
from corral.client.informer import key_of
from corral.client.rest import EVENTS, PODS
from corral.mesos import tasks as taskmod
from corral.mesos import updates
from corral.mesos.model import (
    EXECUTOR_MESSAGE,
    CallError,
    FrameworkState,
    Obj,
    TaskState,
    agent_address,
    grace_seconds,
    refuse_seconds,
    roles_of,
    value,
)
from corral.mesos.state import task_v1
from corral.offers.allocator import InvalidOffers
from corral.offers.resources import parse_resources, subtract_ranges
from corral.util.bearer import node_token

if TYPE_CHECKING:
    from corral.mesos.master import Master

log = logging.getLogger("corral.mesos")

#: the TASK_ERROR message of a task past its node's pods limit (frameworks match
#: ``names.POD_LIMIT_REACHED`` in it to retry elsewhere rather than count a failure)
POD_LIMIT_REACHED = "Agent {agent} has no room for more pods (its " + names.POD_LIMIT_REACHED + ")"


def handle(m: Master, fw: FrameworkState, call: Obj) -> None:
    """One scheduler call other than SUBSCRIBE (validated shape, right stream)."""
    kind = str(call.get("type") or "")
    m.metrics.calls[kind] = m.metrics.calls.get(kind, 0) + 1
    handler = HANDLERS.get(kind)
    if handler is None:
        raise CallError(400, f"Unsupported call type {kind!r}")
    body = call.get(kind.lower(), {})
    if not isinstance(body, dict):
        raise CallError(400, f"Expecting '{kind.lower()}' to be an object")
    try:
        handler(m, fw, body)
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as e:
        # a shape the checks below missed: still the caller's error, never a 500
        raise CallError(400, f"Failed to validate scheduler::Call {kind}: {e}") from None


def _objects(value_: Any, what: str) -> list[Obj]:
    if not isinstance(value_, list) or not all(isinstance(x, dict) for x in value_):
        raise CallError(400, f"Expecting '{what}' to be a list of objects")
    return value_


def _object(value_: Any, what: str) -> Obj:
    if not isinstance(value_, dict):
        raise CallError(400, f"Expecting '{what}' to be an object")
    return value_


def accept(m: Master, fw: FrameworkState, body: Obj) -> None:
    """ACCEPT (see the module docstring). The call's shape is checked whole before the
    offers are taken; a LAUNCH_GROUP's tasks launch all or none."""
    offer_ids = [value(o) for o in _objects(body.get("offer_ids", []), "accept.offer_ids")]
    refuse = refuse_seconds(body.get("filters"))
    # (tasks, the group's executor, launched all or none)
    groups: list[tuple[list[Obj], Obj | None, bool]] = []
    for op in _objects(body.get("operations", []), "accept.operations"):
        kind = op.get("type")
        if kind == "LAUNCH":
            launch_ = _object(op.get("launch", {}), "launch")
            for t in _objects(launch_.get("task_infos", []), "launch.task_infos"):
                groups.append(([t], None, False))
        elif kind == "LAUNCH_GROUP":
            lg = _object(op.get("launch_group"), "launch_group")
            ex = _object(lg.get("executor"), "launch_group.executor")
            tg = _object(lg.get("task_group"), "launch_group.task_group")
            tasks = _objects(tg.get("tasks", []), "launch_group.task_group.tasks")
            groups.append((tasks, {**ex, "type": "DEFAULT"}, True))
        else:
            log.info("mesos: %s ignores unsupported operation %s", fw.id, kind)
    try:
        offers = m.allocator.take(fw.id, offer_ids)
    except InvalidOffers as e:
        for tasks, _, _ in groups:
            for task in tasks:
                updates.master_update(
                    m,
                    fw,
                    task,
                    "TASK_DROPPED",
                    "REASON_INVALID_OFFERS",
                    f"Task launched with invalid offers: {e}",
                )
        return
    if not offers:
        return
    m.metrics.offers_accepted += len(offers)
    agent, role = offers[0].agent, offers[0].role
    remaining = np.sum([o.resources for o in offers], axis=0)
    # the pods column: what the offers advertised (each the node's free slots, not held,
    # so offers of one node are not summed); a task may request up to that
    remaining[3] = max((o.pods for o in offers if o.pods is not None), default=0)
    ports: list[tuple[int, int]] = [r for o in offers for r in o.ports]
    launched: list[TaskState] = []
    seen: set[str] = set()
    charged: set[str] = set()  # executors whose resources this ACCEPT counted already
    pod_room = _pod_room(m, agent)  # a task is a pod: the node's pods limit holds too
    for tasks, group_executor, atomic in groups:
        plan: list[tuple[Obj, str, Obj]] = []
        rem, free_ports = remaining, ports
        failed: str | None = None
        for task in tasks:
            tid = value(task.get("task_id"))
            if group_executor is not None and not task.get("executor"):
                task = {**task, "executor": group_executor}
            err: str | None = None
            if (fw.id, tid) in m.tasks or tid in seen:
                err = f"Task has duplicate ID: {tid}"
            else:
                err = taskmod.validate_task(
                    task, agent_id=agent, offered=rem, offered_ports=free_ports
                )
            if err is None and pod_room is not None and len(plan) + len(launched) >= pod_room:
                err = POD_LIMIT_REACHED.format(agent=agent)
            if err is None:
                try:
                    pod, vec, task_ports = _task_pod(m, fw, task, role, agent, charged)
                except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as e:
                    err = f"Task is invalid: {e}"
            if err is not None:
                if atomic:
                    failed = err
                    break
                updates.master_update(m, fw, task, "TASK_ERROR", "REASON_TASK_INVALID", err)
                continue
            rem = rem - vec
            free_ports = list(subtract_ranges(free_ports, task_ports))
            seen.add(tid)
            plan.append((task, tid, pod))
        if failed is not None:
            for task in tasks:
                updates.master_update(
                    m,
                    fw,
                    task,
                    "TASK_ERROR",
                    "REASON_TASK_INVALID",
                    f"Task group is invalid: {failed}",
                )
            continue
        remaining, ports = rem, free_ports
        for task, tid, pod in plan:
            launched.append(_start(m, fw, task, tid, pod, role, agent))
    m.metrics.tasks_launched += len(launched)
    m.allocator.refuse(fw.id, agent, role, np.maximum(remaining, 0), ports, refuse)
    m.scheduler.resources_freed()
    m.wake()


def _pod_room(m: Master, agent: str) -> int | None:
    """How many more pods ``agent`` takes (None: no pods limit known)."""
    table = m.scheduler.table
    row = table.row(agent)
    if row is None or table.allocatable[row, 3] <= 0:
        return None
    return max(0, int(table.allocatable[row, 3] - table.requested[row, 3]))


def _executor_id(task: Obj) -> str:
    ex = task.get("executor")
    return value(ex.get("executor_id")) if isinstance(ex, dict) else ""


def _task_pod(
    m: Master, fw: FrameworkState, task: Obj, role: str, agent: str, charged: set[str]
) -> tuple[Obj, Any, list[tuple[int, int]]]:
    """The task's pod and what it takes from the offer. An executor's resources count
    once per (framework, executor, agent), as Mesos charges them: on the first of its
    tasks here (its later tasks' pods request only their own)."""
    vec, task_ports = parse_resources(list(task.get("resources") or []))
    exec_info = task.get("executor")
    if isinstance(exec_info, dict) and exec_info:
        eid = _executor_id(task)
        running = any(
            t.framework_id == fw.id
            and t.agent == agent
            and _executor_id(t.info) == eid
            and not taskmod.is_terminal_state(t.state)
            for t in m.tasks.values()
        )
        if eid in charged or running:
            exec_info = {**exec_info, "resources": []}
        else:
            charged.add(eid)
            evec, eports = parse_resources(list(exec_info.get("resources") or []))
            vec, task_ports = vec + evec, task_ports + eports
    pod = taskmod.task_pod(
        task,
        framework_id=fw.id,
        framework_uid=fw.uid,
        framework_info=fw.info,
        role=role,
        agent=agent,
        executor=exec_info,
    )
    return pod, vec, task_ports


def _start(
    m: Master, fw: FrameworkState, task: Obj, tid: str, pod: Obj, role: str, agent: str
) -> TaskState:
    """Account the pod on its node now (the offer's hold moves to it), then create and
    bind it in a supervised task."""
    m.scheduler.assume(pod, agent)
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
    m.tasks[(fw.id, tid)] = t
    m.by_pod[key] = (fw.id, tid)
    m._accepted_at[key] = time.monotonic()
    if m.operator_streams:
        m._operator_event({"type": "TASK_ADDED", "task_added": {"task": task_v1(t)}})
    m.spawn(launch(m, fw, t, pod), name="mesos-launch")
    return t


async def launch(m: Master, fw: FrameworkState, t: TaskState, pod: Obj) -> None:
    """Create and bind a task's pod. A pod of the same name left by an earlier task of
    that id (completed) is removed first. Any failure ends the task with one status."""
    name = pod["metadata"]["name"]
    created = False
    try:
        try:
            made = await m.client.create(PODS, pod, names.NAMESPACE)
        except StatusError as e:
            if e.code != 409 or not await _remove_completed_pod(m, name, t):
                raise
            made = await m.client.create(PODS, pod, names.NAMESPACE)
        created = True
        t.created = True
        await m.client.post_sub(
            PODS,
            name,
            "binding",
            binding(name, names.NAMESPACE, made["metadata"]["uid"], t.agent),
            names.NAMESPACE,
        )
    except asyncio.CancelledError:
        raise
    except Exception as e:
        m.scheduler.forget(t.pod_key)
        message = e.message if isinstance(e, StatusError) else f"Failed to launch: {e}"
        if t.kill_requested:
            state, reason = "TASK_KILLED", "REASON_TASK_KILLED_DURING_LAUNCH"
        elif isinstance(e, StatusError) and e.code == 409:
            state, reason = "TASK_DROPPED", "REASON_INVALID_OFFERS"
        elif isinstance(e, StatusError) and e.code in (400, 403, 422):
            state, reason = "TASK_ERROR", "REASON_TASK_INVALID"
        else:
            state, reason = "TASK_DROPPED", "REASON_CONTAINER_LAUNCH_FAILED"
        # the task ends here, once (not again when its pod goes)
        if not (t.last and t.last.get("uuid") and taskmod.is_terminal_state(t.state)):
            updates.finish_locally(m, t, state, reason, message)
        if created:
            with contextlib.suppress(StatusError):
                await m.client.delete(PODS, name, names.NAMESPACE, grace_period=0)


async def _remove_completed_pod(m: Master, name: str, t: TaskState) -> bool:
    """Whether the pod ``name`` was a finished task's (left for its logs; ``t`` reuses
    its task id) and is gone now."""
    try:
        old = await m.client.get(PODS, name, names.NAMESPACE)
    except StatusError:
        return False
    key = f"{names.NAMESPACE}/{name}"
    phase = (old.get("status") or {}).get("phase")
    if m.by_pod.get(key, (t.framework_id, t.task_id)) != (t.framework_id, t.task_id):
        return False
    if phase not in ("Succeeded", "Failed") and key not in m.completed_pods:
        return False
    m.completed_pods.discard(key)
    m.replaced_pods.add(str(old["metadata"].get("uid", "")))  # its events are not t's
    with contextlib.suppress(StatusError):
        await m.client.delete(PODS, name, names.NAMESPACE, grace_period=0)
    for _ in range(100):
        try:
            await m.client.get(PODS, name, names.NAMESPACE)
        except StatusError as e:
            if e.code == 404:
                return True
            raise
        await asyncio.sleep(0.05)
    return False


def decline(m: Master, fw: FrameworkState, body: Obj) -> None:
    ids = [value(o) for o in body.get("offer_ids") or []]
    m.metrics.offers_declined += len(ids)
    m.allocator.decline(fw.id, ids, refuse_seconds(body.get("filters")))
    m.scheduler.resources_freed()
    m.wake()


def revive(m: Master, fw: FrameworkState, body: Obj) -> None:
    m.allocator.revive(fw.id, roles_of(body))
    m.wake()


def suppress(m: Master, fw: FrameworkState, body: Obj) -> None:
    m.dispatch(m.allocator.suppress(fw.id, roles_of(body)))


def kill(m: Master, fw: FrameworkState, body: Obj) -> None:
    tid = value(body.get("task_id"))
    if not tid:
        raise CallError(400, "Expecting 'kill.task_id' to be present")
    t = m.tasks.get((fw.id, tid))
    if t is None or taskmod.is_terminal_state(t.state):
        state = "TASK_UNKNOWN" if "PARTITION_AWARE" in fw.capabilities else "TASK_LOST"
        if t is not None:
            state = t.state
        updates.master_update(
            m,
            fw,
            {"task_id": {"value": tid}},
            state,
            "REASON_RECONCILIATION",
            "Task not found" if t is None else "",
            agent_id=value(body.get("agent_id")) or (t.agent if t else ""),
            reconcile=True,
        )
        return
    kill_task(m, t, body.get("kill_policy") or (t.info.get("kill_policy") or {}))


def kill_task(m: Master, t: TaskState, policy: Obj) -> None:
    t.kill_requested = True
    grace = grace_seconds(policy)
    if not t.created:
        # the pod is still being created: kill it once it exists (in _on_pod)
        return
    m.spawn(kill_pod(m, t, grace))


async def kill_pod(m: Master, t: TaskState, grace: int | None) -> None:
    ns, name = t.pod_key.split("/", 1)
    try:
        await m.client.patch(
            PODS, name, {"metadata": {"annotations": {names.KILL_REQUESTED: "true"}}}, ns
        )
    except StatusError as e:
        if e.code == 404:
            return
        raise
    await delete_pod(m, t.pod_key, grace)


async def delete_pod(m: Master, key: str, grace: int | None) -> None:
    ns, name = key.split("/", 1)
    try:
        await m.client.delete(PODS, name, ns, grace_period=grace)
    except StatusError as e:
        if e.code != 404:
            raise


def shutdown(m: Master, fw: FrameworkState, body: Obj) -> None:
    eid = value(body.get("executor_id"))
    agent = value(body.get("agent_id"))
    for t in list(m.tasks.values()):
        ex = t.info.get("executor") or {}
        if (
            t.framework_id == fw.id
            and value(ex.get("executor_id")) == eid
            and (not agent or t.agent == agent)
        ):
            kill_task(m, t, {})


def acknowledge(m: Master, fw: FrameworkState, body: Obj) -> None:
    tid = value(body.get("task_id"))
    raw = body.get("uuid")
    if not tid or not isinstance(raw, str):
        raise CallError(400, "Expecting 'acknowledge.task_id' and 'acknowledge.uuid'")
    t = m.tasks.get((fw.id, tid))
    if t is None or t.pending is None or t.pending.get("uuid") != raw:
        return  # a duplicate or stale acknowledgement: Mesos ignores it too
    state = str(t.pending["state"])
    t.pending = None
    t.backoff = m.retry_first
    t.acked_state = state
    if t.created:
        m.record_ack(t.pod_key, state)
    if taskmod.is_terminal_state(state):
        updates.complete(m, t)


async def record_ack(m: Master, pod_key: str, state: str) -> None:
    """Write the acknowledged state on the task's pod (``Master.record_ack`` calls it)."""
    ns, name = pod_key.split("/", 1)
    try:
        await m.client.patch(
            PODS, name, {"metadata": {"annotations": {names.ACKED_STATE: state}}}, ns
        )
    except StatusError as e:
        if e.code not in (404, 409, 422):
            raise


def reconcile(m: Master, fw: FrameworkState, body: Obj) -> None:
    """Explicit (the tasks named) or implicit (every task the master knows that is not
    terminal) reconciliation: the latest state, reason REASON_RECONCILIATION, no uuid."""
    wanted = _objects(body.get("tasks", []), "reconcile.tasks")
    t: TaskState | None
    if not wanted:
        for t in m.tasks.values():
            if t.framework_id == fw.id and not taskmod.is_terminal_state(t.state):
                _reconciled(m, fw, t)
        return
    for item in wanted:
        tid = value(item.get("task_id"))
        t = m.tasks.get((fw.id, tid))
        if t is None:
            t = next((c for c in m.completed.get(fw.id, []) if c.task_id == tid), None)
        if t is not None and t.last is not None:
            _reconciled(m, fw, t)
            continue
        if t is not None:  # launched, no status yet
            state = "TASK_STAGING"
        else:
            state = "TASK_UNKNOWN" if "PARTITION_AWARE" in fw.capabilities else "TASK_LOST"
        updates.master_update(
            m,
            fw,
            {"task_id": {"value": tid}},
            state,
            "REASON_RECONCILIATION",
            "Reconciliation: task is unknown" if t is None else "Reconciliation: latest task state",
            agent_id=value(item.get("agent_id")),
            reconcile=True,
        )


def _reconciled(m: Master, fw: FrameworkState, t: TaskState) -> None:
    if t.last is None:
        return
    status = {k: v for k, v in t.last.items() if k != "uuid"}
    status.update(reason="REASON_RECONCILIATION", timestamp=time.time())
    updates.send_update(m, fw, status, ack=False)


def message(m: Master, fw: FrameworkState, body: Obj) -> None:
    eid = value(body.get("executor_id"))
    agent = value(body.get("agent_id"))
    data = body.get("data")
    if not eid or not agent or not isinstance(data, str):
        raise CallError(
            400, "Expecting 'message.agent_id', 'message.executor_id' and 'message.data'"
        )
    outbox = m.outboxes.get(agent)
    if outbox is None:
        outbox = m.outboxes[agent] = collections.deque()
        m.spawn(relay_outbox(m, agent, outbox), "mesos-messages")
    outbox.append((fw.id, eid, data))


async def relay_outbox(
    m: Master, agent: str, outbox: collections.deque[tuple[str, str, str]]
) -> None:
    """An agent's framework messages go one at a time, in the order they were sent (as
    over Mesos' one connection from master to agent): "ping" then "finish" must not
    reach the executor the other way round."""
    try:
        while outbox:
            fid, eid, data = outbox[0]
            await relay_to_executor(m, fid, agent, eid, data)
            outbox.popleft()
    finally:
        if m.outboxes.get(agent) is outbox:
            del m.outboxes[agent]


async def relay_to_executor(m: Master, fid: str, agent: str, eid: str, data: str) -> None:
    """A framework message goes straight to the executor's agent (its logs/exec
    server, as the API server reaches it for ``kubectl exec``), at most once."""
    node = m.scheduler.nodes.get(agent)
    target = agent_address(node) if node else None
    if node is None or target is None:
        log.info("mesos: message to executor %s dropped: agent %s unknown", eid, agent)
        return
    # an agent with a serving certificate is HTTPS, verified against the kubeconfig's CA
    # (the system's CAs with a plain-HTTP API server); the credential it checks
    # (``create`` on ``nodes/mesos``, Corral's subresource for this path: not the
    # ``nodes/proxy`` of ``kubectl exec``) is the kubeconfig's client certificate or token
    scheme = agent_scheme(node)
    tls = (m.client.config.ssl_context() or True) if scheme == "https" else False
    url = f"{scheme}://{target}/mesos/executor-message"
    body = {"framework_id": fid, "executor_id": eid, "data": data}
    headers = m.client.config.headers
    if scheme != "https" and headers:  # plain HTTP is the node's word: a node-bound token
        headers = {"Authorization": f"Bearer {node_token(m.client.config.token, agent)}"}
    try:
        async with (
            aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=10),
                headers=headers,
                connector=aiohttp.TCPConnector(ssl=tls),
            ) as session,
            session.post(url, json=body) as r,
        ):
            if r.status >= 300:
                log.info(
                    "mesos: message to executor %s on %s refused: %s %s",
                    eid,
                    agent,
                    r.status,
                    (await r.text())[:200],
                )
    except (aiohttp.ClientError, OSError, TimeoutError) as e:
        log.info("mesos: message to executor %s on %s not delivered: %s", eid, agent, e)


def on_event(m: Master, type_: str, ev: Obj, old: Obj | None) -> None:
    """An executor's MESSAGE, recorded by its agent as an Event: relay it to the
    framework's stream, then delete the Event (at least once, like Mesos)."""
    if type_ == "DELETED" or ev.get("reason") != EXECUTOR_MESSAGE:
        return
    sender = executor_of(m, ev.get("involvedObject") or {})
    if sender is not None:
        executor_message(m, *sender, str(ev.get("message") or ""))
    meta = ev.get("metadata") or {}
    m.spawn(delete_event(m, meta.get("namespace", names.NAMESPACE), meta.get("name", "")))


def executor_of(m: Master, obj: Obj) -> tuple[str, str, str] | None:
    """(framework, agent, executor) of the executor pod an Event is about. Its task may
    have ended and left the active set while the executor still talks (Mesos relays an
    executor's message whatever its tasks' state): say, a goodbye on SHUTDOWN, by which
    time its pod is gone too, so the completed tasks say (newest first)."""
    key = f"{obj.get('namespace')}/{obj.get('name')}"
    ref = m.by_pod.get(key)
    t = m.tasks.get(ref) if ref else None
    if t is None:
        t = next(
            (c for done in m.completed.values() for c in reversed(done) if c.pod_key == key),
            None,
        )
    if t is None:
        return None
    return t.framework_id, t.agent, value((t.info.get("executor") or {}).get("executor_id"))


async def delete_event(m: Master, ns: str, name: str) -> None:
    try:
        await m.client.delete(EVENTS, name, ns)
    except StatusError as e:
        if e.code != 404:
            raise


def executor_message(m: Master, fid: str, agent: str, eid: str, data: str) -> None:
    """An executor's MESSAGE call, relayed by its agent: to the framework's stream."""
    fw = m.frameworks.get(fid)
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


def request(m: Master, fw: FrameworkState, body: Obj) -> None:
    """REQUEST: Mesos' built-in allocator ignores it; so does Corral's (it revives)."""
    m.wake()


def teardown(m: Master, fw: FrameworkState, body: Obj) -> None:
    m.remove_framework(fw.id)


HANDLERS = {
    "ACCEPT": accept,
    "DECLINE": decline,
    "REVIVE": revive,
    "SUPPRESS": suppress,
    "KILL": kill,
    "SHUTDOWN": shutdown,
    "ACKNOWLEDGE": acknowledge,
    "RECONCILE": reconcile,
    "MESSAGE": message,
    "REQUEST": request,
    "TEARDOWN": teardown,
}
