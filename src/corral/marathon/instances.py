"""Marathon instances: one Mesos task each, as the service tracks them.

Pure. ``scheduler.py`` creates an ``Instance`` for every task it launches (or adopts
after a restart, from the task's pod) and feeds it the task's status updates; the
service answers ``/v2/tasks`` and the app counts from them (``to_task``, ``counts``).

An instance's life, as the scheduler sees it::

    launched --> TASK_STAGING --> TASK_STARTING --> TASK_RUNNING --+--> terminal (gone)
                      |                                |          |
                      +------------- killing ----------+----------+
                   TASK_UNREACHABLE: inactive (replaced) once ``unreachableStrategy``'s
                   inactiveAfterSeconds passed, forgotten after expungeAfterSeconds

"Active" instances count toward the app's instances: not terminal, not being killed,
not inactive. "Ready" ones are running and, when the app has health checks, healthy
(``TaskStatus.healthy``: the agent runs the first check as the pod's probes) and, for
an instance launched with readiness checks, ready (the service probes it over HTTP).

Task ids are Marathon's old form: the app id's path joined by ``_`` (its "safe path"),
a dot and a UUID (``/prod/web`` -> ``prod_web.8f14...``); the instance id is the task id.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from corral.api.mesos import POD_LIMIT_REACHED
from corral.marathon.apps_view import timestamp

Obj = dict[str, Any]

TERMINAL = frozenset(
    {
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_ERROR",
        "TASK_LOST",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
        "TASK_UNKNOWN",
    }
)
#: terminal states that are the task's own failure (back-off and ``lastTaskFailure``)
FAILURES = frozenset({"TASK_FAILED", "TASK_ERROR", "TASK_FINISHED"})
#: the agent is gone: the task is replaced elsewhere
LOST = frozenset({"TASK_LOST", "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"})
UNREACHABLE = "TASK_UNREACHABLE"
#: Marathon's instance conditions, by Mesos state (``instance_changed_event``)
CONDITIONS = {
    "TASK_STAGING": "Staging",
    "TASK_STARTING": "Starting",
    "TASK_RUNNING": "Running",
    "TASK_KILLING": "Killing",
    "TASK_FINISHED": "Finished",
    "TASK_FAILED": "Failed",
    "TASK_KILLED": "Killed",
    "TASK_ERROR": "Error",
    "TASK_LOST": "Unreachable",
    "TASK_DROPPED": "Dropped",
    "TASK_GONE": "Gone",
    "TASK_GONE_BY_OPERATOR": "GoneByOperator",
    "TASK_UNREACHABLE": "Unreachable",
    "TASK_UNKNOWN": "Unknown",
}


def safe_path(app_id: str) -> str:
    """``PathId.safePath``: ``/prod/web`` -> ``prod_web``."""
    return "_".join(s for s in app_id.split("/") if s)


def task_id(app_id: str, unique: str) -> str:
    return f"{safe_path(app_id)}.{unique}"


def task_app_path(tid: str) -> str:
    """The safe path a task id starts with (``prod_web.8f14`` -> ``prod_web``)."""
    return tid.rsplit(".", 1)[0] if "." in tid else ""


@dataclass
class Instance:
    """One task of an app. ``version`` is the app version it was launched with,
    ``config_version`` that version's ``versionInfo.lastConfigChangeAt`` (an instance
    is "old" in a restart when it differs from the app's)."""

    task_id: str
    app_id: str
    version: str
    config_version: str
    agent_id: str
    host: str
    ports: list[int] = field(default_factory=list)
    service_ports: list[int] = field(default_factory=list)
    state: str = "TASK_STAGING"
    healthy: bool | None = None
    staged_at: float = 0.0
    started_at: float | None = None
    killing: bool = False
    #: when the last KILL was seen sent (the scheduler's tick stamps it; a kill not
    #: answered for ``scheduler.KILL_RETRY_SECONDS`` is sent again)
    kill_sent: float | None = None
    ip: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    unreachable_since: float | None = None
    inactive: bool = False
    first_success: float | None = None
    last_success: float | None = None
    last_failure: float | None = None
    #: readiness checks passed (always, for an app without them or an adopted instance)
    readiness_ok: bool = True
    readiness_result: Obj | None = None
    readiness_probed: float | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def active(self) -> bool:
        """Counts toward the app's instances."""
        return not self.terminal and not self.killing and not self.inactive

    def ready(self, has_health: bool) -> bool:
        """Running, healthy when the app has health checks, and its readiness check
        passed when it has one."""
        if self.state != "TASK_RUNNING" or self.killing or self.inactive:
            return False
        if not self.readiness_ok:
            return False
        return self.healthy is True or not has_health

    def observe(self, status: Obj, now: float) -> tuple[bool, bool]:
        """Take a TaskStatus in; ``(state changed, health changed)``."""
        state = str(status.get("state") or self.state)
        changed = state != self.state
        self.state = state
        if state == "TASK_RUNNING" and self.started_at is None:
            self.started_at = now
        if state == UNREACHABLE:
            if self.unreachable_since is None:
                self.unreachable_since = now
        else:
            self.unreachable_since = None
            self.inactive = False
        ip = _ip_of(status)
        if ip:
            self.ip = ip
        health_changed = False
        if "healthy" in status:
            healthy = bool(status["healthy"])
            health_changed = healthy != self.healthy
            self.healthy = healthy
            if healthy:
                self.last_success = now
                self.first_success = self.first_success or now
            else:
                self.last_failure = now
        return changed, health_changed


def _ip_of(status: Obj) -> str:
    for net in (status.get("container_status") or {}).get("network_infos") or []:
        for addr in (net or {}).get("ip_addresses") or []:
            if isinstance(addr, dict) and addr.get("ip_address"):
                return str(addr["ip_address"])
    return ""


def to_task(inst: Instance, *, has_health: bool) -> Obj:
    """The instance as ``/v2/tasks`` shows it (``apps_view.TASK_KEYS`` and ``state``)."""
    out: Obj = {
        "id": inst.task_id,
        "appId": inst.app_id,
        "host": inst.host,
        "ports": list(inst.ports),
        "servicePorts": list(inst.service_ports),
        "slaveId": inst.agent_id,
        "stagedAt": timestamp(inst.staged_at),
        "version": inst.version,
        "state": inst.state,
        "ipAddresses": [{"ipAddress": inst.ip or inst.host, "protocol": "IPv4"}],
        "localVolumes": [],
        "role": "*",
    }
    if inst.started_at is not None:
        out["startedAt"] = timestamp(inst.started_at)
    if has_health and inst.healthy is not None:
        result: Obj = {
            "alive": inst.healthy,
            "consecutiveFailures": 0 if inst.healthy else 1,
            "taskId": inst.task_id,
            "instanceId": inst.task_id,
        }
        for key, when in (
            ("firstSuccess", inst.first_success),
            ("lastSuccess", inst.last_success),
            ("lastFailure", inst.last_failure),
        ):
            if when is not None:
                result[key] = timestamp(when)
        out["healthCheckResults"] = [result]
    return out


def counts(insts: list[Instance], *, has_health: bool) -> dict[str, int]:
    """``{"staged", "running", "healthy", "unhealthy"}`` of an app's instances."""
    live = [i for i in insts if not i.terminal and not i.inactive]
    running = [i for i in live if i.state == "TASK_RUNNING"]
    return {
        "staged": sum(1 for i in live if i.state in ("TASK_STAGING", "TASK_STARTING")),
        "running": len(running),
        "healthy": sum(1 for i in running if has_health and i.healthy is True),
        "unhealthy": sum(1 for i in running if has_health and i.healthy is False),
    }


def no_room(status: Obj) -> bool:
    """A TASK_ERROR because the node had no pod slot left (its offer advertised more
    ``pods`` than were free at launch, e.g. another framework took them): the instance
    is simply gone and queued again, without a failure or back-off, as a launch that
    never reached the master."""
    return status.get("state") == "TASK_ERROR" and POD_LIMIT_REACHED in str(
        status.get("message") or ""
    )


def failure(inst: Instance, status: Obj, now: float) -> Obj:
    """``lastTaskFailure`` of a failed instance."""
    return {
        "appId": inst.app_id,
        "host": inst.host,
        "message": str(status.get("message") or ""),
        "taskId": inst.task_id,
        "instanceId": inst.task_id,
        "slaveId": inst.agent_id,
        "state": str(status.get("state") or ""),
        "timestamp": timestamp(now),
        "version": inst.version,
    }


def _epoch(stamp: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def task_stats(insts: list[Instance], app: Obj, now: float) -> Obj | None:
    """Marathon's ``tasksStats``: counts and life times of the live instances, of those
    started after the last scaling, with the latest config, with an outdated one."""
    live = [i for i in insts if not i.terminal and not i.inactive]
    if not live:
        return None
    info = app.get("versionInfo") or {}
    scaled = _epoch(info.get("lastScalingAt")) or 0.0
    config = str(info.get("lastConfigChangeAt") or app.get("version") or "")
    has_health = bool(app.get("healthChecks"))
    groups = {
        "startedAfterLastScaling": [i for i in live if i.staged_at >= scaled],
        "withLatestConfig": [i for i in live if i.config_version == config],
        "withOutdatedConfig": [i for i in live if i.config_version != config],
        "totalSummary": live,
    }
    out: Obj = {}
    for kind, members in groups.items():
        if not members:
            continue
        ages = [now - i.started_at for i in members if i.started_at is not None]
        stat: Obj = {"counts": counts(members, has_health=has_health)}
        if ages:
            stat["lifeTime"] = {
                "averageSeconds": sum(ages) / len(ages),
                "medianSeconds": statistics.median(ages),
            }
        out[kind] = {"stats": stat}
    return out
