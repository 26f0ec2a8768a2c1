"""The scheduler calls of the Mesos v1 API other than SUBSCRIBE: their semantics.

``Master.handle`` (``http.py`` calls it once the call's framework and stream id are
checked) dispatches through ``HANDLERS``. Each handler runs without awaiting between
reading and changing the allocator and the node table, so a call is atomic on the event
loop; API writes (pod creation, binding, deletion) run afterwards as supervised tasks.
Each function takes the master as ``m``.

ACCEPT, the one call with real work::

    take the offers (all valid, one agent, this framework's) --else--> TASK_DROPPED
      for each task: validate against what is left --bad--> TASK_ERROR
                     make the pod, assume it on the node (the offer's hold moves to it)
      refuse the unused rest for filters.refuse_seconds
      then: create the pod, bind it (the binding guard checks again) --fails--> TASK_DROPPED
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING

import aiohttp
import numpy as np

from corral.api import mesos as names
from corral.api.errors import StatusError
from corral.client.informer import key_of
from corral.client.rest import EVENTS, PODS
from corral.mesos import tasks as taskmod
from corral.mesos import updates
from corral.mesos.model import (
    EXECUTOR_MESSAGE,
    RETRY_FIRST,
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

if TYPE_CHECKING:
    from corral.mesos.master import Master

log = logging.getLogger("corral.mesos")


def handle(m: Master, fw: FrameworkState, call: Obj) -> None:
    """One scheduler call other than SUBSCRIBE (validated shape, right stream)."""
    kind = str(call.get("type") or "")
    m.metrics.calls[kind] = m.metrics.calls.get(kind, 0) + 1
    handler = HANDLERS.get(kind)
    if handler is None:
        raise CallError(400, f"Unsupported call type {kind!r}")
    handler(m, fw, call.get(kind.lower()) or {})


def accept(m: Master, fw: FrameworkState, body: Obj) -> None:
    offer_ids = [value(o) for o in body.get("offer_ids") or []]
    refuse = refuse_seconds(body.get("filters"))
    launches: list[tuple[Obj, Obj | None]] = []
    for op in body.get("operations") or []:
        kind = op.get("type")
        if kind == "LAUNCH":
            launches += [(t, None) for t in (op.get("launch") or {}).get("task_infos") or []]
        elif kind == "LAUNCH_GROUP":
            lg = op.get("launch_group") or {}
            ex = {**(lg.get("executor") or {}), "type": "DEFAULT"}  # a group's executor
            launches += [(t, ex) for t in (lg.get("task_group") or {}).get("tasks") or []]
        else:
            log.info("mesos: %s ignores unsupported operation %s", fw.id, kind)
    try:
        offers = m.allocator.take(fw.id, offer_ids)
    except InvalidOffers as e:
        for task, _ in launches:
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
    ports: list[tuple[int, int]] = [r for o in offers for r in o.ports]
    launched: list[TaskState] = []
    seen: set[str] = set()
    for task, executor in launches:
        tid = value(task.get("task_id"))
        if (fw.id, tid) in m.tasks or tid in seen:
            updates.master_update(
                m, fw, task, "TASK_ERROR", "REASON_TASK_INVALID", f"Task has duplicate ID: {tid}"
            )
            continue
        if executor is not None and not task.get("executor"):
            task = {**task, "executor": executor}
        err = taskmod.validate_task(task, agent_id=agent, offered=remaining, offered_ports=ports)
        if err:
            updates.master_update(m, fw, task, "TASK_ERROR", "REASON_TASK_INVALID", err)
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
        launched.append(t)
        if m.operator_streams:
            m._operator_event({"type": "TASK_ADDED", "task_added": {"task": task_v1(t)}})
        m.spawn(launch(m, fw, t, pod), name="mesos-launch")
    m.metrics.tasks_launched += len(launched)
    m.allocator.refuse(fw.id, agent, role, np.maximum(remaining, 0), ports, refuse)
    m.scheduler.resources_freed()
    m.wake()


async def launch(m: Master, fw: FrameworkState, t: TaskState, pod: Obj) -> None:
    name = pod["metadata"]["name"]
    created = False
    try:
        made = await m.client.create(PODS, pod, names.NAMESPACE)
        created = True
        t.created = True
        await m.client.post_sub(
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
        m.scheduler.forget(t.pod_key)
        state, reason = (
            ("TASK_DROPPED", "REASON_INVALID_OFFERS")
            if e.code == 409
            else ("TASK_ERROR", "REASON_TASK_INVALID")
        )
        # the task ends here, before its pod goes (its deletion says nothing more)
        updates.finish_locally(m, t, state, reason, e.message)
        if created:
            with contextlib.suppress(StatusError):
                await m.client.delete(PODS, name, names.NAMESPACE, grace_period=0)


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
    t.backoff = RETRY_FIRST
    t.acked_state = state
    if t.created:
        m.spawn(record_ack(m, t, state))
    if taskmod.is_terminal_state(state) and (t.pod is None or not t.created):
        updates.complete(m, t)


async def record_ack(m: Master, t: TaskState, state: str) -> None:
    ns, name = t.pod_key.split("/", 1)
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
    wanted = body.get("tasks") or []
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
    m.spawn(relay_to_executor(m, fw, agent, eid, data))


async def relay_to_executor(m: Master, fw: FrameworkState, agent: str, eid: str, data: str) -> None:
    """A framework message goes straight to the executor's agent (its logs/exec
    server, as the API server reaches it for ``kubectl exec``), at most once."""
    node = m.scheduler.nodes.get(agent)
    target = agent_address(node) if node else None
    if target is None:
        log.info("mesos: message to executor %s dropped: agent %s unknown", eid, agent)
        return
    url = f"http://{target}/mesos/executor-message"
    body = {"framework_id": fw.id, "executor_id": eid, "data": data}
    headers = {"Authorization": f"Bearer {m.client.config.token}"}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.post(url, json=body, headers=headers) as r,
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
    obj = ev.get("involvedObject") or {}
    ref = m.by_pod.get(f"{obj.get('namespace')}/{obj.get('name')}")
    t = m.tasks.get(ref) if ref else None
    if t is not None:
        ex = t.info.get("executor") or {}
        executor_message(
            m, t.framework_id, t.agent, value(ex.get("executor_id")), str(ev.get("message") or "")
        )
    meta = ev.get("metadata") or {}
    m.spawn(delete_event(m, meta.get("namespace", names.NAMESPACE), meta.get("name", "")))


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
