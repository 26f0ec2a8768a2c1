"""A running deployment and the Marathon events that tell of it and of instances.

Pure. ``scheduler.Scheduler`` keeps one ``Run`` per deployment it executes (the plan
``plan.plan`` made, the apps before and after, the step it is at; ``store.Store`` keeps
its ``to_stored`` form so a restarted service resumes it) and publishes the
bodies built here; the event shapes are Marathon's (``core/event/Events.scala``,
``docs/docs/event-bus.md``), keeping to the keys the ``marathon`` 0.13.0 client reads:
a deployment event's ``plan`` holds only ``id``, ``version``, ``original``, ``target``
and ``steps``, its groups only ``id``, ``apps``, ``groups``, ``pods``,
``dependencies``, ``version``.

A run's steps::

    step 1 .. totalSteps, one at a time:
      begin  -> deployment_info (the step's actions)
      every action done -> deployment_step_success, next step
    last step done -> deployment_success          canceled (force, rollback) -> deployment_failed
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from corral.marathon.apps import to_client
from corral.marathon.apps_view import timestamp
from corral.marathon.instances import CONDITIONS, Instance

Obj = dict[str, Any]


@dataclass
class Run:
    """One deployment being carried out: ``plan`` as ``plan.plan`` made it, ``step``
    the 1-based step running (0 before the first)."""

    plan: Obj
    original: dict[str, Obj]
    target: dict[str, Obj]
    step: int = 0
    original_groups: dict[str, list[str]] = field(default_factory=dict)
    target_groups: dict[str, list[str]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.plan["id"])

    @property
    def apps(self) -> list[str]:
        return list(self.plan.get("affectedApps") or [])

    def actions(self) -> list[Obj]:
        """The actions of the running step."""
        if not 1 <= self.step <= len(self.plan["steps"]):
            return []
        return list(self.plan["steps"][self.step - 1]["actions"])

    def pending_stops(self) -> set[str]:
        """The apps a step from the running one on still stops."""
        out: set[str] = set()
        for step in self.plan["steps"][max(0, self.step - 1) :]:
            out |= {a["app"] for a in step["actions"] if a["action"] == "StopApplication"}
        return out

    def to_stored(self) -> Obj:
        """What ``store.Store.save_run`` keeps of it (JSON): all a restarted service
        needs to carry it on from its step (``from_stored``)."""
        return {
            "plan": self.plan,
            "original": self.original,
            "target": self.target,
            "step": self.step,
            "originalGroups": self.original_groups,
            "targetGroups": self.target_groups,
        }

    @classmethod
    def from_stored(cls, body: Mapping[str, Any]) -> Run:
        return cls(
            dict(body["plan"]),
            {k: dict(v) for k, v in (body.get("original") or {}).items()},
            {k: dict(v) for k, v in (body.get("target") or {}).items()},
            step=int(body.get("step") or 0),
            original_groups={k: list(v) for k, v in (body.get("originalGroups") or {}).items()},
            target_groups={k: list(v) for k, v in (body.get("targetGroups") or {}).items()},
        )


def _group(apps: Mapping[str, Obj], deps: Mapping[str, list[str]], version: str) -> Obj:
    return {
        "id": "/",
        "apps": [to_client(apps[a]) for a in sorted(apps)],
        "groups": [],
        "pods": [],
        "dependencies": list(deps.get("/", [])),
        "version": version,
    }


def plan_body(run: Run) -> Obj:
    """The ``plan`` of a deployment event."""
    version = str(run.plan["version"])
    return {
        "id": run.id,
        "version": version,
        "original": _group(run.original, run.original_groups, version),
        "target": _group(run.target, run.target_groups, version),
        "steps": [{"actions": [dict(a) for a in s["actions"]]} for s in run.plan["steps"]],
    }


def _step(actions: Iterable[Obj]) -> Obj:
    return {"actions": [{"action": a["action"], "app": a["app"]} for a in actions]}


def deployment_info(run: Run, now: float) -> Obj:
    return {
        "eventType": "deployment_info",
        "timestamp": timestamp(now),
        "plan": plan_body(run),
        "currentStep": _step(run.actions()),
    }


def deployment_step_success(run: Run, now: float) -> Obj:
    return {
        "eventType": "deployment_step_success",
        "timestamp": timestamp(now),
        "plan": plan_body(run),
        "currentStep": _step(run.actions()),
    }


def deployment_done(run: Run, now: float, *, success: bool) -> Obj:
    return {
        "eventType": "deployment_success" if success else "deployment_failed",
        "timestamp": timestamp(now),
        "id": run.id,
        "plan": plan_body(run),
    }


def status_update(inst: Instance, status: Obj, now: float) -> Obj:
    return {
        "eventType": "status_update_event",
        "timestamp": timestamp(now),
        "slaveId": inst.agent_id,
        "taskId": inst.task_id,
        "taskStatus": inst.state,
        "message": str(status.get("message") or ""),
        "appId": inst.app_id,
        "host": inst.host,
        "ports": list(inst.ports),
        "ipAddresses": [{"ipAddress": inst.ip or inst.host, "protocol": "IPv4"}],
        "version": inst.version,
    }


def instance_changed(inst: Instance, now: float) -> Obj:
    return {
        "eventType": "instance_changed_event",
        "timestamp": timestamp(now),
        "instanceId": inst.task_id,
        "condition": CONDITIONS.get(inst.state, "Unknown"),
        "runSpecId": inst.app_id,
        "agentId": inst.agent_id,
        "host": inst.host,
        "runSpecVersion": inst.version,
    }


def health_changed(inst: Instance, now: float) -> Obj:
    return {
        "eventType": "health_status_changed_event",
        "timestamp": timestamp(now),
        "appId": inst.app_id,
        "taskId": inst.task_id,
        "instanceId": inst.task_id,
        "version": inst.version,
        "alive": bool(inst.healthy),
    }


def unhealthy_killed(inst: Instance, now: float) -> Obj:
    """An instance that failed its health check was killed (by its agent's probe)."""
    return {
        "eventType": "unhealthy_instance_kill_event",
        "timestamp": timestamp(now),
        "appId": inst.app_id,
        "taskId": inst.task_id,
        "instanceId": inst.task_id,
        "version": inst.version,
        "reason": "Instance was killed because it failed its health check",
        "host": inst.host,
        "slaveId": inst.agent_id,
    }
