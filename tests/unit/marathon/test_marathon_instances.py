"""instances and deployments: an instance's states, its ``/v2/tasks`` view and counts,
and the Marathon event bodies (only the keys the ``marathon`` client reads)."""

from __future__ import annotations

import pytest

from corral.marathon import apps
from corral.marathon import plan as plans
from corral.marathon.apps_view import task_to_client
from corral.marathon.deployments import (
    Run,
    deployment_done,
    deployment_info,
    health_changed,
    instance_changed,
    status_update,
)
from corral.marathon.instances import (
    Instance,
    counts,
    safe_path,
    task_app_path,
    task_id,
    task_stats,
    to_task,
)

T0 = 1_800_000_000.0


def inst(**kw: object) -> Instance:
    base: dict[str, object] = {
        "task_id": "prod_web.1",
        "app_id": "/prod/web",
        "version": "2027-01-15T08:00:00.000Z",
        "config_version": "2027-01-15T08:00:00.000Z",
        "agent_id": "a1",
        "host": "node-1",
        "ports": [31000],
        "staged_at": T0,
    }
    return Instance(**{**base, **kw})  # type: ignore[arg-type]


def test_task_ids() -> None:
    assert safe_path("/prod/web") == "prod_web"
    tid = task_id("/prod/web.v2", "u1")
    assert tid == "prod_web.v2.u1" and task_app_path(tid) == "prod_web.v2"


@pytest.mark.parametrize(
    ("states", "healthy", "active", "ready"),
    [
        (["TASK_STAGING"], None, True, False),
        (["TASK_RUNNING"], None, True, True),
        (["TASK_RUNNING"], False, True, False),
        (["TASK_RUNNING", "TASK_KILLED"], None, False, False),
        (["TASK_RUNNING", "TASK_UNREACHABLE"], None, True, False),
    ],
    ids=["staging", "running", "unhealthy", "killed", "unreachable"],
)
def test_states(states: list[str], healthy: bool | None, active: bool, ready: bool) -> None:
    i = inst()
    for n, state in enumerate(states):
        status: dict[str, object] = {"state": state}
        if healthy is not None:
            status["healthy"] = healthy
        i.observe(status, T0 + n)
    assert i.active is active
    assert i.ready(has_health=healthy is not None) is ready


def test_task_view_and_counts() -> None:
    i = inst()
    i.observe({"state": "TASK_RUNNING", "healthy": True}, T0 + 1)
    staged = inst(task_id="prod_web.2")
    task = to_task(i, has_health=True)
    assert task_to_client(task) == task | {"stagedAt": task["stagedAt"]}
    assert task["healthCheckResults"][0]["alive"] is True
    assert task["state"] == "TASK_RUNNING" and task["startedAt"].endswith("Z")
    assert counts([i, staged], has_health=True) == {
        "staged": 1,
        "running": 1,
        "healthy": 1,
        "unhealthy": 0,
    }


def test_event_shapes() -> None:
    app = apps.with_version(
        None, apps.normalize({"id": "/web", "cmd": "sleep 1"}), now="2027-01-15T08:00:00.000Z"
    )
    p = plans.plan({}, {"/web": app}, deployment_id="d1", version=app["version"])
    run = Run(p, {}, {"/web": app}, step=1)
    info = deployment_info(run, T0)
    assert set(info["plan"]) == {"id", "version", "original", "target", "steps"}
    assert set(info["plan"]["target"]) == {
        "id",
        "apps",
        "groups",
        "pods",
        "dependencies",
        "version",
    }
    assert info["currentStep"] == {"actions": [{"action": "StartApplication", "app": "/web"}]}
    assert deployment_done(run, T0, success=False)["eventType"] == "deployment_failed"
    i = inst(app_id="/web")
    i.observe({"state": "TASK_RUNNING", "healthy": False}, T0)
    assert status_update(i, {"message": "m"}, T0)["taskStatus"] == "TASK_RUNNING"
    assert instance_changed(i, T0)["condition"] == "Running"
    assert health_changed(i, T0)["alive"] is False


def test_task_stats() -> None:
    app = {
        "versionInfo": {
            "lastScalingAt": "2027-01-15T08:00:00.000Z",
            "lastConfigChangeAt": "2027-01-15T08:00:00.000Z",
        }
    }
    fresh, old = inst(), inst(task_id="prod_web.2", config_version="2027-01-01T00:00:00.000Z")
    fresh.observe({"state": "TASK_RUNNING"}, T0)
    stats = task_stats([fresh, old], app, T0 + 10)
    assert stats is not None
    assert stats["withLatestConfig"]["stats"]["lifeTime"]["averageSeconds"] == 10
    assert stats["withOutdatedConfig"]["stats"]["counts"]["staged"] == 1
    assert stats["totalSummary"]["stats"]["counts"]["running"] == 1
    assert task_stats([], app, T0) is None
