"""Deployments as Marathon shows them: the plan of steps for a change, the rolling
replacement rule, and the lock that keeps one deployment per app.

Pure. ``service.py`` calls ``plan`` with the apps before and after a change (flat, by
id, versions stamped by ``apps.with_version``), keeps the result in ``/v2/deployments``
(``at_step`` as it runs), runs each ``RestartApplication`` with ``replace_step`` after
every instance event, and asks ``lock_conflict`` before accepting a change (409 with
``locked_body`` unless ``force``); ``revert`` gives the apps a ``DELETE
/v2/deployments/{id}`` rolls back to.

A plan (``core/deployment/DeploymentPlan.scala``, ``raml/DeploymentPlanConversion``)::

    1. StopApplication   apps gone from the target   (dependents first, see groups.py)
    2. StartApplication  apps new in the target      (with 0 instances; one step)
    3. per dependency layer of the target, dependencies first, for each added or
       changed app:
         new app                          -> ScaleApplication (to its instances)
         only instances changed, or 0     -> ScaleApplication
         anything else changed, restarted -> RestartApplication
       (an app that only changed its version gets no action)

Empty steps are dropped. Marathon's code puts every stop in one step; this stops in
reverse dependency order, as Marathon's ``deployments.md`` describes.

A restart (``TaskReplaceActor``)::

    minHealthy  = ceil(instances * minimumHealthCapacity)
    maxCapacity = floor(instances * (1 + maximumOverCapacity)), + 1 if == minHealthy
    kill old:  every unhealthy old instance, and healthy old ones while
               healthy old + healthy new stays >= minHealthy
    start new: while old (running or being killed) + new started < maxCapacity,
               up to instances new ones

"healthy" means healthy and ready (health checks and readiness checks passed; an app
without health checks counts a running instance as healthy). The products are computed
in binary floating point as Marathon does (``ceil(100 * 0.07)`` is 8).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from corral.marathon import groups
from corral.marathon.apps import config_changed

__all__ = [
    "LOCKED_MESSAGE",
    "at_step",
    "capacity",
    "lock_conflict",
    "locked_body",
    "plan",
    "replace_step",
    "revert",
]

Obj = dict[str, Any]

LOCKED_MESSAGE = (
    "App is locked by one or more deployments. Override with the option '?force=true'. "
    "View details at '/v2/deployments/<DEPLOYMENT_ID>'."
)
START, STOP, SCALE, RESTART = (
    "StartApplication",
    "StopApplication",
    "ScaleApplication",
    "RestartApplication",
)


def _action(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> str | None:
    """``DeploymentPlan.dependencyOrderedSteps`` for one added or changed app."""
    if old is None:
        return SCALE
    upgrade = config_changed(old, new)
    if (not upgrade and old.get("instances") != new.get("instances")) or new.get("instances") == 0:
        return SCALE
    if upgrade or old.get("versionInfo") != new.get("versionInfo"):
        return RESTART
    return None


def plan(
    original: Mapping[str, Mapping[str, Any]],
    target: Mapping[str, Mapping[str, Any]],
    *,
    deployment_id: str,
    version: str,
    original_group_deps: Mapping[str, Iterable[str]] | None = None,
    target_group_deps: Mapping[str, Iterable[str]] | None = None,
) -> Obj:
    """The deployment taking the apps ``original`` to ``target`` (both by id), as
    ``GET /v2/deployments`` shows it before its first step (``currentStep`` 0, no
    ``currentActions``; see ``at_step``). ``*_group_deps``: the groups' own
    dependencies (``groups.group_dependencies``). An ``AppError`` on a dependency
    cycle in ``target``."""
    steps: list[list[Obj]] = []
    removed = set(original) - set(target)
    for layer in groups.stop_order(original, only=removed, group_deps=original_group_deps):
        steps.append([{"action": STOP, "app": app_id} for app_id in layer])
    steps.append(
        [{"action": START, "app": app_id} for app_id in sorted(set(target) - set(original))]
    )
    changed = [app_id for app_id, app in target.items() if original.get(app_id) != app]
    for layer in groups.start_order(target, only=changed, group_deps=target_group_deps):
        actions = []
        for app_id in layer:
            action = _action(original.get(app_id), target[app_id])
            if action is not None:
                actions.append({"action": action, "app": app_id})
        steps.append(actions)
    steps = [step for step in steps if step]
    return {
        "id": deployment_id,
        "version": version,
        "affectedApps": sorted({a["app"] for step in steps for a in step}),
        "affectedPods": [],
        "steps": [{"actions": step} for step in steps],
        "currentActions": [],
        "currentStep": 0,
        "totalSteps": len(steps),
    }


def at_step(
    deployment: Mapping[str, Any],
    step: int,
    *,
    readiness: Mapping[str, Iterable[Mapping[str, Any]]] | None = None,
) -> Obj:
    """The deployment while it runs step ``step`` (1-based, as ``currentStep`` counts):
    ``currentActions`` are that step's actions with each app's readiness check results
    (``readiness``: by app id; ``{"name", "taskId", "ready", "lastResponse"}``)."""
    if not 1 <= step <= deployment["totalSteps"]:
        raise ValueError(f"step {step} is not in 1..{deployment['totalSteps']}")
    results = readiness or {}
    actions = deployment["steps"][step - 1]["actions"]
    current = [
        {**a, "readinessCheckResults": [dict(r) for r in results.get(a["app"], [])]}
        for a in actions
    ]
    return {**deployment, "currentActions": current, "currentStep": step}


def revert(
    original: Mapping[str, Mapping[str, Any]],
    target: Mapping[str, Mapping[str, Any]],
    current: Mapping[str, Mapping[str, Any]],
) -> dict[str, Obj]:
    """The apps after rolling back the deployment ``original`` -> ``target`` from the
    ``current`` apps: what it changed goes back to ``original`` (what it added goes
    away, what it removed comes back); other changes made since stay."""
    out = {app_id: dict(app) for app_id, app in current.items()}
    for app_id in set(original) | set(target):
        if original.get(app_id) == target.get(app_id):
            continue
        if app_id in original:
            out[app_id] = dict(original[app_id])
        else:
            out.pop(app_id, None)
    return out


def capacity(instances: int, min_health: float, max_over: float) -> tuple[int, int]:
    """``(minHealthy, maxCapacity)`` of ``TaskReplaceActor.computeRestartStrategy``,
    with its allowance: when the two are equal, one more instance may run."""
    min_healthy = math.ceil(instances * min_health)
    max_capacity = int(instances * (1 + max_over))
    if min_healthy == max_capacity:
        max_capacity += 1
    return min_healthy, max_capacity


def replace_step(
    instances: int,
    min_health: float,
    max_over: float,
    old_healthy: int,
    old_running: int,
    new_started: int,
    new_healthy: int,
    *,
    old_killing: int = 0,
) -> tuple[int, int]:
    """``(old to kill now, new to start now)`` in a rolling restart, from the counts now:
    ``old_running`` old instances not yet told to stop (``old_healthy`` of them healthy
    and ready), ``old_killing`` told to stop but not yet gone, ``new_started`` new ones
    launched (``new_healthy`` of them healthy and ready).

    Call it after every instance event and carry out the answer; kill unhealthy old
    instances first. It never lets healthy instances drop below ``minHealthy`` (unless
    they already are, then it kills no healthy one) nor old + new exceed ``maxCapacity``
    (``capacity``), and it is done when it answers ``(0, 0)`` with ``old_running`` and
    ``old_killing`` at 0 and ``new_healthy == instances``.
    """
    counts = (old_healthy, old_running, new_started, new_healthy, old_killing)
    if min(counts) < 0 or old_healthy > old_running or new_healthy > new_started:
        raise ValueError(f"inconsistent counts {counts}")
    min_healthy, max_capacity = capacity(instances, min_health, max_over)
    spare = old_healthy + new_healthy - min_healthy
    kill = (old_running - old_healthy) + max(0, min(old_healthy, spare))
    room = max(0, max_capacity - (old_running + old_killing + new_started))
    start = min(max(0, instances - new_started), room)
    return kill, start


def lock_conflict(deployments: Iterable[Mapping[str, Any]], app_ids: Iterable[str]) -> list[str]:
    """The ids of the running ``deployments`` that touch any of ``app_ids`` (their
    ``affectedApps``), in the given order: the ones a change must wait for (409) or, with
    ``force``, cancel."""
    wanted = set(app_ids)
    return [d["id"] for d in deployments if wanted & set(d.get("affectedApps", ()))]


def locked_body(deployment_ids: Iterable[str]) -> Obj:
    """Marathon's 409 body for an app locked by deployments (``AppLockedException``)."""
    return {"message": LOCKED_MESSAGE, "deployments": [{"id": d} for d in deployment_ids]}
