"""What the master shows of itself: ``/state`` (v0 JSON), ``/state-summary``,
``/metrics/snapshot`` and the operator API's ``GET_*`` answers (v1 JSON).

Pure renderings of a ``Master`` (master.py) for ``http.py``; nothing here changes state.
The shapes follow Mesos' ``readonly_handler.cpp`` (v0: resources as a map with ranges
as a string, times in seconds) and ``master.proto`` (v1: ``Resource`` lists, times in
``{"nanoseconds": ...}``), since dashboards and tools read those keys. An agent with a
pods limit shows the custom scalar resource ``pods`` as one started with
``--resources=pods:N`` would (used: the pods on it; offers do not hold pod slots, so
offered resources carry none), an offer the ``pods`` it advertises, a task the ``pods``
it requested (if any).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from corral.offers.resources import UNLIMITED, render_resources, scalars

if TYPE_CHECKING:
    from corral.mesos.master import Master
    from corral.mesos.model import FrameworkState, TaskState

Obj = dict[str, Any]

_TASK_STATES = (
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_KILLING",
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_ERROR",
    "TASK_LOST",
    "TASK_DROPPED",
    "TASK_UNREACHABLE",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
    "TASK_UNKNOWN",
)


def v0_resources(
    vec: Any, ports: list[tuple[int, int]] | None = None, pods: int | None = None
) -> Obj:
    """Mesos' v0 resource map; ``pods`` (the custom resource) only when given."""
    s = scalars(np.asarray(vec))
    out: Obj = {"cpus": s["cpus"], "gpus": 0.0, "mem": s["mem"], "disk": s["disk"]}
    if pods is not None:
        out["pods"] = float(pods)
    if ports:
        out["ports"] = "[" + ", ".join(f"{b}-{e}" for b, e in ports) + "]"
    return out


def _zero() -> Any:
    return np.zeros(4, dtype=np.int64)


def _requested_pods(vec: Any) -> int | None:
    """The ``pods`` a task's resources request (None: it requests none)."""
    return int(vec[3]) or None


def _task_vector(t: TaskState) -> tuple[Any, list[tuple[int, int]]]:
    from corral.offers.resources import parse_resources

    try:
        vec, ports = parse_resources(list(t.info.get("resources") or []))
    except ValueError:
        return _zero(), []
    return vec, ports


def agents_v0(m: Master) -> list[Obj]:
    table = m.scheduler.table
    out = []
    offered: dict[str, Any] = {}
    for o in m.allocator.outstanding():
        offered[o.agent] = offered.get(o.agent, _zero()) + o.resources
    for row, name in enumerate(table.names):
        alloc = table.allocatable[row]
        used = table.requested[row] - offered.get(name, _zero())
        # the custom resource ``pods`` (as ``--resources=pods:N``): the node's pods limit,
        # and the pods on it as used (offers advertise free slots but do not hold them)
        pods = int(alloc[3]) if int(alloc[3]) > 0 else None
        used_pods = None if pods is None else max(0, int(used[3]))
        node = m.scheduler.nodes.get(name) or {}
        meta = node.get("metadata") or {}
        out.append(
            {
                "id": name,
                "hostname": m.agent_hostname(name),
                "port": _agent_port(node),
                "pid": f"slave(1)@{m.agent_hostname(name)}:{_agent_port(node)}",
                "attributes": dict(meta.get("labels") or {}),
                "registered_time": _unix(meta.get("creationTimestamp")),
                "resources": v0_resources(alloc, [m.allocator.config.port_range], pods),
                "used_resources": v0_resources(np.maximum(used, 0), None, used_pods),
                "offered_resources": v0_resources(offered.get(name, _zero())),
                "reserved_resources": {},
                "unreserved_resources": v0_resources(alloc, [m.allocator.config.port_range], pods),
                "active": m.node_state(name) == "ready" and not bool(table.unschedulable[row]),
                "version": "1.11.0",
            }
        )
    return out


def task_v0(t: TaskState) -> Obj:
    vec, ports = _task_vector(t)
    ex = t.info.get("executor") or {}
    return {
        "id": t.task_id,
        "name": t.info.get("name") or t.task_id,
        "framework_id": t.framework_id,
        "executor_id": (ex.get("executor_id") or {}).get("value", ""),
        "slave_id": t.agent,
        "state": t.state,
        "resources": v0_resources(vec, ports, _requested_pods(vec)),
        "role": t.role,
        "statuses": [{"state": s["state"], "timestamp": s["timestamp"]} for s in t.statuses],
        "labels": list((t.info.get("labels") or {}).get("labels") or []),
        "pod": t.pod_key,
    }


def framework_v0(m: Master, fw: FrameworkState, active_tasks: list[TaskState]) -> Obj:
    report = m.allocator.framework_report(fw.id) if m.allocator.has_framework(fw.id) else {}
    info = fw.info
    return {
        "id": fw.id,
        "name": info.get("name", ""),
        "pid": "",
        "user": info.get("user", ""),
        "hostname": info.get("hostname", ""),
        "webui_url": info.get("webui_url", ""),
        "principal": info.get("principal", ""),
        "role": fw.roles[0],
        "roles": fw.roles,
        "active": fw.connected,
        "connected": fw.connected,
        "recovered": False,
        "checkpoint": bool(info.get("checkpoint")),
        "failover_timeout": fw.failover_timeout,
        "capabilities": sorted(fw.capabilities),
        "registered_time": fw.registered,
        "reregistered_time": fw.reregistered or fw.registered,
        "unregistered_time": 0,
        "used_resources": v0_resources(report.get("allocated", _zero())),
        "offered_resources": v0_resources(report.get("offered", _zero())),
        "resources": v0_resources(
            np.asarray(report.get("allocated", _zero()))
            + np.asarray(report.get("offered", _zero()))
        ),
        "tasks": [task_v0(t) for t in active_tasks],
        "unreachable_tasks": [task_v0(t) for t in active_tasks if t.state == "TASK_UNREACHABLE"],
        "completed_tasks": [task_v0(t) for t in m.completed.get(fw.id, [])],
        "offers": [
            {
                "id": o.id,
                "framework_id": o.framework_id,
                "slave_id": o.agent,
                "resources": v0_resources(o.resources, list(o.ports), o.pods),
            }
            for o in m.allocator.outstanding(fw.id)
        ],
        "executors": [],
    }


def state_v0(m: Master) -> Obj:
    by_fw: dict[str, list[TaskState]] = {}
    for t in m.tasks.values():
        by_fw.setdefault(t.framework_id, []).append(t)
    agents = agents_v0(m)
    return {
        "version": "1.11.0",
        "git_sha": "",
        "build_date": "",
        "build_time": 0,
        "build_user": "corral",
        "start_time": m.start_time,
        "elected_time": m.elected_time,
        "id": m.id,
        "pid": f"master@{m.hostname}:{m.port}",
        "hostname": m.hostname,
        "capabilities": ["AGENT_UPDATE", "MULTI_ROLE", "QUOTA_V2"],
        "activated_slaves": sum(1 for a in agents if a["active"]),
        "deactivated_slaves": sum(1 for a in agents if not a["active"]),
        "unreachable_slaves": sum(1 for a in agents if m.node_state(a["id"]) != "ready"),
        "leader": f"master@{m.hostname}:{m.port}",
        "leader_info": m.master_info(),
        "cluster": "corral",
        "log_dir": "",
        "flags": {
            "allocation_interval": f"{m.allocator.config.interval}secs",
            "min_allocatable_resources": f"cpus:{m.allocator.config.min_cpus}|mem:{m.allocator.config.min_mem_mb}",
            "port": str(m.port),
        },
        "slaves": agents,
        "recovered_slaves": [],
        "frameworks": [framework_v0(m, fw, by_fw.get(fw.id, [])) for fw in m.frameworks.values()],
        "completed_frameworks": [framework_v0(m, fw, []) for fw in m.completed_frameworks.values()],
        "orphan_tasks": [],
        "unregistered_frameworks": [],
    }


def state_summary(m: Master) -> Obj:
    full = state_v0(m)
    counts: dict[str, dict[str, int]] = {}
    for t in m.tasks.values():
        c = counts.setdefault(t.framework_id, {})
        c[t.state] = c.get(t.state, 0) + 1
    return {
        "hostname": full["hostname"],
        "cluster": full["cluster"],
        "slaves": [
            {
                k: a[k]
                for k in (
                    "id",
                    "pid",
                    "hostname",
                    "registered_time",
                    "resources",
                    "used_resources",
                    "offered_resources",
                    "attributes",
                    "active",
                )
            }
            for a in full["slaves"]
        ],
        "frameworks": [
            {
                "id": f["id"],
                "name": f["name"],
                "pid": f["pid"],
                "used_resources": f["used_resources"],
                "offered_resources": f["offered_resources"],
                "capabilities": f["capabilities"],
                "hostname": f["hostname"],
                "webui_url": f["webui_url"],
                "active": f["active"],
                "connected": f["connected"],
                "recovered": False,
                **{state: counts.get(f["id"], {}).get(state, 0) for state in _TASK_STATES},
                "slave_ids": sorted({t["slave_id"] for t in f["tasks"]}),
            }
            for f in full["frameworks"]
        ],
    }


def metrics_snapshot(m: Master) -> Obj:
    table = m.scheduler.table
    total = m.allocator.total()
    used = np.zeros(4, dtype=np.int64)
    for rep in m.allocator.role_report().values():
        used = used + np.asarray(rep.get("allocated", 0)) + np.asarray(rep.get("offered", 0))
    tot_s, used_s = scalars(total), scalars(used)
    out: Obj = {
        "master/elected": 1.0,
        "master/uptime_secs": time.time() - m.start_time,
        "master/slaves_active": float(sum(1 for n in table.names if m.node_state(n) == "ready")),
        "master/slaves_inactive": float(sum(1 for n in table.names if m.node_state(n) != "ready")),
        "master/slaves_connected": float(sum(1 for n in table.names if m.node_state(n) == "ready")),
        "master/slaves_disconnected": float(
            sum(1 for n in table.names if m.node_state(n) != "ready")
        ),
        "master/frameworks_active": float(sum(1 for f in m.frameworks.values() if f.connected)),
        "master/frameworks_inactive": float(
            sum(1 for f in m.frameworks.values() if not f.connected)
        ),
        "master/frameworks_connected": float(sum(1 for f in m.frameworks.values() if f.connected)),
        "master/frameworks_disconnected": float(
            sum(1 for f in m.frameworks.values() if not f.connected)
        ),
        "master/outstanding_offers": float(len(m.allocator.outstanding())),
        "master/messages_launch_tasks": float(m.metrics.offers_accepted),
        "master/messages_decline_offers": float(m.metrics.offers_declined),
        "master/messages_revive_offers": float(m.metrics.calls.get("REVIVE", 0)),
        "master/messages_suppress_offers": float(m.metrics.calls.get("SUPPRESS", 0)),
        "master/messages_kill_task": float(m.metrics.calls.get("KILL", 0)),
        "master/messages_reconcile_tasks": float(m.metrics.calls.get("RECONCILE", 0)),
        "master/messages_framework_to_executor": float(m.metrics.calls.get("MESSAGE", 0)),
        "master/invalid_scheduler_calls": float(m.metrics.invalid_calls),
        "master/offers_sent": float(m.metrics.offers_sent),
        "master/offers_rescinded": float(m.metrics.offers_rescinded),
        "master/task_status_updates_sent": float(m.metrics.updates_sent),
        "master/frameworks_removed": float(m.metrics.frameworks_removed),
        "master/gpus_total": 0.0,
        "master/gpus_used": 0.0,
        "master/gpus_percent": 0.0,
    }
    for name in ("cpus", "mem", "disk"):
        out[f"master/{name}_total"] = tot_s[name]
        out[f"master/{name}_used"] = used_s[name]
        out[f"master/{name}_percent"] = used_s[name] / tot_s[name] if tot_s[name] else 0.0
    for state in _TASK_STATES:
        out[f"master/{state.lower()}"] = 0.0
    for t in m.tasks.values():
        out[f"master/{t.state.lower()}"] += 1
    for done in m.completed.values():
        for t in done:
            out[f"master/{t.state.lower()}"] += 1
    return out


# --- operator API v1 ---------------------------------------------------------------------------
def _ns(ts: float | None) -> Obj:
    return {"nanoseconds": int((ts or 0) * 1e9)}


def agent_v1(m: Master, a: Obj) -> Obj:
    return {
        "agent_info": {
            "hostname": a["hostname"],
            "id": {"value": a["id"]},
            "port": a["port"],
            "resources": _v0_to_v1(a["resources"]),
            "attributes": [
                {"name": k, "type": "TEXT", "text": {"value": v}}
                for k, v in a["attributes"].items()
            ],
        },
        "active": a["active"],
        "pid": a["pid"],
        "registered_time": _ns(a["registered_time"]),
        "total_resources": _v0_to_v1(a["resources"]),
        "allocated_resources": _v0_to_v1(a["used_resources"]),
        "offered_resources": _v0_to_v1(a["offered_resources"]),
        "version": a["version"],
    }


def _v0_to_v1(res: Obj) -> list[Obj]:
    vec = np.array(
        [
            round(res.get("cpus", 0) * 1000),
            int(res.get("mem", 0) * 2**20),
            int(res.get("disk", 0) * 2**20),
            0,
        ],
        dtype=np.int64,
    )
    ports: list[tuple[int, int]] = []
    text = res.get("ports")
    if isinstance(text, str):
        for part in text.strip("[]").split(","):
            if "-" in part:
                b, e = part.strip().split("-")
                ports.append((int(b), int(e)))
    pods = res.get("pods")
    return [
        {k: v for k, v in r.items() if k != "allocation_info"}
        for r in render_resources(vec, ports, "*", None if pods is None else int(pods))
    ]


def task_v1(t: TaskState) -> Obj:
    vec, ports = _task_vector(t)
    out: Obj = {
        "name": t.info.get("name") or t.task_id,
        "task_id": {"value": t.task_id},
        "framework_id": {"value": t.framework_id},
        "agent_id": {"value": t.agent},
        "state": t.state,
        "resources": [
            {k: v for k, v in r.items() if k != "allocation_info"}
            for r in render_resources(vec, ports, t.role, _requested_pods(vec))
        ],
        "statuses": [dict(s) for s in ([t.last] if t.last else [])],
        "role": t.role,
    }
    ex = t.info.get("executor")
    if ex:
        out["executor_id"] = ex.get("executor_id")
    return out


def get_tasks(m: Master) -> Obj:
    active = [task_v1(t) for t in m.tasks.values()]
    done = [task_v1(t) for ts in m.completed.values() for t in ts]
    return {
        "pending_tasks": [],
        "tasks": [t for t in active if t["state"] != "TASK_UNREACHABLE"],
        "unreachable_tasks": [t for t in active if t["state"] == "TASK_UNREACHABLE"],
        "completed_tasks": done,
        "orphan_tasks": [],
    }


def get_frameworks(m: Master) -> Obj:
    return {
        "frameworks": [m.framework_v1(f) for f in m.frameworks.values()],
        "completed_frameworks": [m.framework_v1(f) for f in m.completed_frameworks.values()],
        "recovered_frameworks": [],
    }


def get_agents(m: Master) -> Obj:
    return {"agents": [agent_v1(m, a) for a in agents_v0(m)], "recovered_agents": []}


def get_state(m: Master) -> Obj:
    return {
        "get_tasks": get_tasks(m),
        "get_executors": {"executors": [], "orphan_executors": []},
        "get_frameworks": get_frameworks(m),
        "get_agents": get_agents(m),
    }


def get_roles(m: Master) -> Obj:
    roles = []
    for name, rep in sorted(m.allocator.role_report().items()):
        allocated = np.asarray(rep.get("allocated", _zero()))
        offered = np.asarray(rep.get("offered", _zero()))
        roles.append(
            {
                "name": name,
                "weight": rep.get("weight", 1.0),
                "frameworks": [{"value": f} for f in rep.get("frameworks", [])],
                "resources": _scalar_list(allocated + offered),
                "allocated": _scalar_list(allocated),
                "offered": _scalar_list(offered),
                "quota": _quota_v1(name, rep),
            }
        )
    return {"roles": roles}


def _scalar_list(vec: Any) -> list[Obj]:
    s = scalars(np.asarray(vec))
    return [
        {"name": k, "type": "SCALAR", "scalar": {"value": s[k]}}
        for k in ("cpus", "mem", "disk")
        if s[k]
    ]


def _quota_v1(role: str, rep: Obj) -> Obj:
    g, lim = rep.get("guarantee"), rep.get("limit")
    out: Obj = {"role": role}
    if g is not None:
        out["guarantees"] = {k: {"value": v} for k, v in scalars(np.asarray(g)).items() if v}
    if lim is not None:
        out["limits"] = _limits(lim)
    return out


def _limits(lim: Any) -> Obj:
    """A quota limit vector as ``{name: {value}}``, without its unlimited columns."""
    vec = np.asarray(lim)
    s = scalars(np.where(vec >= UNLIMITED, 0, vec))
    return {k: {"value": s[k]} for i, k in enumerate(("cpus", "mem", "disk")) if vec[i] < UNLIMITED}


def get_weights(m: Master) -> Obj:
    return {
        "weight_infos": [{"role": r, "weight": w} for r, w in sorted(m.allocator.weights().items())]
    }


def get_quota(m: Master) -> Obj:
    infos = []
    for role, (g, lim) in sorted(m.allocator.quotas().items()):
        info: Obj = {"role": role}
        if g is not None:
            info["guarantee"] = _scalar_list(g)
            info["guarantees"] = {k: {"value": v} for k, v in scalars(np.asarray(g)).items() if v}
        if lim is not None:
            info["limits"] = _limits(lim)
        infos.append(info)
    return {"status": {"infos": infos}}


def _agent_port(node: Obj) -> int:
    ep = ((node.get("status") or {}).get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}
    return int(ep.get("Port") or 5051)


def _unix(text: Any) -> float:
    from corral.util.clock import parse_rfc3339

    try:
        return parse_rfc3339(str(text))
    except ValueError:
        return 0.0


# --- Corral's own views: `corral top` and `corral why framework/NAME` -------------------------
def _sc(vec: Any) -> Obj:
    return scalars(np.asarray(vec))


def top(m: Master) -> Obj:
    """Per role and framework (the Kubernetes role included): allocated, offered, used,
    dominant share, weight, quota and pending demand; and the pool's pod slots."""
    from corral.scheduler.snapshot import pod_info

    k8s_role = m.allocator.config.kubernetes_role
    pending = np.zeros(4, dtype=np.int64)
    pending_pods = 0
    queue = m.scheduler.queue
    for key in list(queue.pods):
        pod = m.scheduler.pods.get(key)
        if pod is not None:
            pending_pods += 1
            pending = pending + pod_info(pod).requests
    running: dict[str, int] = {}
    for t in m.tasks.values():
        if t.state == "TASK_RUNNING":
            running[t.framework_id] = running.get(t.framework_id, 0) + 1
    roles = []
    for name, rep in sorted(m.allocator.role_report().items()):
        g, lim = rep.get("guarantee"), rep.get("limit")
        roles.append(
            {
                "role": name,
                "kubernetes": name == k8s_role,
                "weight": rep.get("weight", 1.0),
                "allocated": _sc(rep.get("allocated", _zero())),
                "offered": _sc(rep.get("offered", _zero())),
                "dominant_share": rep.get("dominant_share", 0.0),
                "guarantee": None if g is None else _sc(g),
                "limit": None if lim is None else {k: v["value"] for k, v in _limits(lim).items()},
                "frameworks": rep.get("frameworks", []),
                "pending": ({"pods": pending_pods, **_sc(pending)} if name == k8s_role else None),
            }
        )
    frameworks = []
    for fw in m.frameworks.values():
        rep = m.allocator.framework_report(fw.id) if m.allocator.has_framework(fw.id) else {}
        frameworks.append(
            {
                "id": fw.id,
                "name": fw.info.get("name", ""),
                "roles": fw.roles,
                "connected": fw.connected,
                "allocated": _sc(rep.get("allocated", _zero())),
                "offered": _sc(rep.get("offered", _zero())),
                "dominant_share": rep.get("dominant_share", 0.0),
                "outstanding_offers": rep.get("outstanding_offers", 0),
                "pending_demand": bool(rep.get("pending_demand")),
                "suppressed_roles": rep.get("suppressed_roles", []),
                "tasks_running": running.get(fw.id, 0),
            }
        )
    # pod slots (the ``pods`` resource offers advertise) of the nodes with a pods limit
    table = m.scheduler.table
    limited = table.allocatable[:, 3] > 0
    pods = {
        "total": int(table.allocatable[limited, 3].sum()),
        "used": int(table.requested[limited, 3].sum()),
    }
    return {
        "total": _sc(m.allocator.total()),
        "pods": pods,
        "roles": roles,
        "frameworks": frameworks,
    }


def why(m: Master, who: str) -> Obj:
    """Why framework ``who`` (an id or a name) gets no offers."""
    matches = [f for f in m.frameworks.values() if who in (f.id, f.info.get("name"))]
    if not matches:
        gone = [f for f in m.completed_frameworks.values() if who in (f.id, f.info.get("name"))]
        if gone:
            return {
                "found": True,
                "framework": gone[0].id,
                "name": gone[0].info.get("name", ""),
                "reasons": ["the framework was removed"],
            }
        return {
            "found": False,
            "framework": who,
            "reasons": [f"no framework with id or name {who!r}"],
        }
    fw = matches[0]
    return {
        "found": True,
        "framework": fw.id,
        "name": fw.info.get("name", ""),
        "reasons": m.allocator.why(fw.id),
    }
