"""Deployment plans for every kind of change, the deployment lock, and the rolling
replacement rule over whole simulated restarts."""

from __future__ import annotations

import collections
import collections.abc
import math
import random
from dataclasses import dataclass
from typing import Any

import pytest

collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]

from marathon.models import MarathonDeployment  # noqa: E402

from corral.marathon import apps, plan  # noqa: E402
from corral.marathon.apps import AppError  # noqa: E402

T0 = "2026-01-01T00:00:00.000Z"
T1 = "2026-01-01T00:05:00.000Z"


def app(app_id: str, *deps: str, **fields: Any) -> dict[str, Any]:
    body = {"id": app_id, "cmd": "sleep 1", "dependencies": list(deps), **fields}
    return apps.with_version(None, apps.normalize(body), now=T0)


def state(*items: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {x["id"]: x for x in items}


def changed(old: dict[str, Any], *, restart: bool = False, **fields: Any) -> dict[str, Any]:
    new = {k: v for k, v in old.items() if k not in ("version", "versionInfo")} | fields
    return apps.with_version(old, new, now=T1, restart=restart)


WEB, DB, CACHE = app("/web", "/db"), app("/db"), app("/cache")
S, R, SC, ST = "StartApplication", "RestartApplication", "ScaleApplication", "StopApplication"

PLANS: list[tuple[str, dict[str, Any], dict[str, Any], list[list[tuple[str, str]]]]] = [
    # (id, original, target, steps as (action, app))
    ("create", {}, state(WEB), [[(S, "/web")], [(SC, "/web")]]),
    (
        "create-with-dependencies",
        {},
        state(WEB, DB, CACHE),
        [[(S, "/cache"), (S, "/db"), (S, "/web")], [(SC, "/cache"), (SC, "/db")], [(SC, "/web")]],
    ),
    ("create-beside-existing", state(DB), state(DB, WEB), [[(S, "/web")], [(SC, "/web")]]),
    ("scale", state(WEB, DB), state(changed(WEB, instances=5), DB), [[(SC, "/web")]]),
    (
        "scale-to-zero-with-config",
        state(WEB),
        state(changed(WEB, instances=0, cmd="x")),
        [[(SC, "/web")]],
    ),
    ("config-change", state(WEB, DB), state(changed(WEB, cmd="sleep 2"), DB), [[(R, "/web")]]),
    ("config-and-scale", state(WEB), state(changed(WEB, cmd="x", instances=3)), [[(R, "/web")]]),
    ("restart", state(WEB), state(changed(WEB, restart=True)), [[(R, "/web")]]),
    (
        "upgrade-in-dependency-order",
        state(WEB, DB),
        state(changed(WEB, cmd="a"), changed(DB, cmd="b")),
        [[(R, "/db")], [(R, "/web")]],
    ),
    ("unchanged", state(WEB, DB), state(WEB, DB), []),
    ("no-change-restamped", state(WEB), state(changed(WEB)), []),
    ("version-only", state(WEB), state({**WEB, "version": T1}), []),
    ("delete", state(WEB, DB), state(DB), [[(ST, "/web")]]),
    (
        "delete-dependents-first",
        state(WEB, DB, CACHE),
        {},
        [[(ST, "/web")], [(ST, "/cache"), (ST, "/db")]],
    ),
    (
        "group-change",
        state(WEB, DB, CACHE),
        state(changed(WEB, cmd="new"), DB, app("/api", "/db")),
        [[(ST, "/cache")], [(S, "/api")], [(SC, "/api"), (R, "/web")]],
    ),
]


def steps_of(deployment: dict[str, Any]) -> list[list[tuple[str, str]]]:
    return [[(x["action"], x["app"]) for x in step["actions"]] for step in deployment["steps"]]


@pytest.mark.parametrize(
    ("original", "target", "expected"), [p[1:] for p in PLANS], ids=[p[0] for p in PLANS]
)
def test_plans(
    original: dict[str, Any], target: dict[str, Any], expected: list[list[tuple[str, str]]]
) -> None:
    got = plan.plan(original, target, deployment_id="d1", version=T1)
    assert steps_of(got) == expected
    assert got["affectedApps"] == sorted({a for step in expected for _, a in step})
    assert got["totalSteps"] == len(expected)
    assert (
        got["id"],
        got["version"],
        got["currentStep"],
        got["currentActions"],
        got["affectedPods"],
    ) == ("d1", T1, 0, [], [])
    deployment = MarathonDeployment.from_json(got)
    assert deployment.total_steps == len(expected)
    assert [[a.action for a in s.actions] for s in deployment.steps] == [
        [x for x, _ in s] for s in expected
    ]


def test_plan_as_marathon_shows_it() -> None:
    assert plan.plan({}, state(WEB), deployment_id="d1", version=T1) == {
        "id": "d1",
        "version": T1,
        "affectedApps": ["/web"],
        "affectedPods": [],
        "steps": [
            {"actions": [{"action": "StartApplication", "app": "/web"}]},
            {"actions": [{"action": "ScaleApplication", "app": "/web"}]},
        ],
        "currentActions": [],
        "currentStep": 0,
        "totalSteps": 2,
    }


def test_plan_with_group_dependencies() -> None:
    target = state(app("/p/svc/rails"), app("/p/db/mongo"))
    got = plan.plan(
        {}, target, deployment_id="d", version=T1, target_group_deps={"/p/svc": ["/p/db"]}
    )
    assert steps_of(got)[1:] == [[(SC, "/p/db/mongo")], [(SC, "/p/svc/rails")]]
    stop = plan.plan(
        target, {}, deployment_id="d", version=T1, original_group_deps={"/p/svc": ["/p/db"]}
    )
    assert steps_of(stop) == [[(ST, "/p/svc/rails")], [(ST, "/p/db/mongo")]]


def test_plan_refuses_a_cycle() -> None:
    with pytest.raises(AppError, match="cyclic"):
        plan.plan({}, state(app("/a", "/b"), app("/b", "/a")), deployment_id="d", version=T1)


def test_at_step() -> None:
    deployment = plan.plan({}, state(WEB, DB), deployment_id="d1", version=T1)
    result = {"name": "readinessCheck", "taskId": "db.1", "ready": False, "lastResponse": None}
    got = plan.at_step(deployment, 2, readiness={"/db": [result]})
    assert got["currentStep"] == 2
    assert got["currentActions"] == [
        {"action": SC, "app": "/db", "readinessCheckResults": [result]}
    ]
    assert got["steps"] == deployment["steps"] and deployment["currentStep"] == 0
    last = plan.at_step(deployment, 3)
    assert last["currentActions"] == [{"action": SC, "app": "/web", "readinessCheckResults": []}]
    assert MarathonDeployment.from_json(got).current_actions[0].readiness_check_results == [result]
    for bad in (0, 4):
        with pytest.raises(ValueError, match="step"):
            plan.at_step(deployment, bad)


def test_revert() -> None:
    web2 = changed(WEB, cmd="new")
    original, target = state(WEB, DB), state(web2, app("/api"))
    current = {**target, "/other": CACHE}
    assert plan.revert(original, target, current) == state(WEB, DB) | {"/other": CACHE}


DEPLOYMENTS = [
    {"id": "d1", "affectedApps": ["/web", "/db"]},
    {"id": "d2", "affectedApps": ["/cache"]},
    {"id": "d3", "affectedApps": ["/db"]},
    {"id": "d4"},
]


@pytest.mark.parametrize(
    ("app_ids", "expected"),
    [(["/db"], ["d1", "d3"]), (["/cache", "/web"], ["d1", "d2"]), (["/x"], []), ([], [])],
    ids=["two-locks", "two-apps", "free", "nothing"],
)
def test_lock_conflict(app_ids: list[str], expected: list[str]) -> None:
    assert plan.lock_conflict(DEPLOYMENTS, app_ids) == expected


def test_locked_body() -> None:
    assert plan.locked_body(["d1", "d3"]) == {
        "message": "App is locked by one or more deployments. Override with the option '?force=true'. "
        "View details at '/v2/deployments/<DEPLOYMENT_ID>'.",
        "deployments": [{"id": "d1"}, {"id": "d3"}],
    }


# ---------------------------------------------------------------------------------------
# the rolling replacement rule

CAPACITY = [
    # (instances, minimumHealthCapacity, maximumOverCapacity, minHealthy, maxCapacity)
    (10, 1.0, 1.0, 10, 20),
    (10, 1.0, 0.0, 10, 11),
    (10, 0.0, 0.0, 0, 10),
    (10, 0.5, 0.0, 5, 10),
    (10, 0.5, 0.5, 5, 15),
    (10, 0.7, 0.1, 7, 11),
    (
        100,
        0.07,
        0.0,
        8,
        100,
    ),  # 100 * 0.07 is 7.000000000000001 in binary floating point, as in Marathon
    (3, 0.7, 0.0, 3, 4),
    (1, 0.5, 0.0, 1, 2),
    (0, 1.0, 1.0, 0, 1),
]


@pytest.mark.parametrize(
    ("n", "mh", "mo", "min_healthy", "max_capacity"),
    CAPACITY,
    ids=[f"{c[0]}x{c[1]}-{c[2]}" for c in CAPACITY],
)
def test_capacity(n: int, mh: float, mo: float, min_healthy: int, max_capacity: int) -> None:
    assert plan.capacity(n, mh, mo) == (min_healthy, max_capacity)


FIRST_STEPS = [
    # (id, arguments, old_killing, answer)
    ("side-by-side", (10, 1.0, 1.0, 10, 10, 0, 0), 0, (0, 10)),
    ("one-extra", (10, 1.0, 0.0, 10, 10, 0, 0), 0, (0, 1)),
    ("kill-all-first", (10, 0.0, 0.0, 10, 10, 0, 0), 0, (10, 0)),
    ("after-the-kills", (10, 0.0, 0.0, 0, 0, 0, 0), 0, (0, 10)),
    ("half-kill-half-start", (10, 0.5, 0.5, 10, 10, 0, 0), 0, (5, 5)),
    ("kills-still-running", (10, 0.5, 0.0, 5, 5, 0, 0), 5, (0, 0)),
    ("kill-per-healthy-new", (10, 1.0, 0.0, 10, 10, 1, 1), 0, (1, 0)),
    ("unhealthy-old-first", (10, 1.0, 0.0, 8, 10, 0, 0), 0, (2, 1)),
    ("degraded-keeps-healthy", (10, 0.5, 0.0, 3, 3, 0, 0), 0, (0, 7)),
    ("done", (10, 0.5, 0.5, 0, 0, 10, 10), 0, (0, 0)),
    ("extra-old-instances", (5, 1.0, 0.0, 8, 8, 0, 0), 0, (3, 0)),
]


@pytest.mark.parametrize(
    ("args", "killing", "expected"), [f[1:] for f in FIRST_STEPS], ids=[f[0] for f in FIRST_STEPS]
)
def test_replace_step(
    args: tuple[int, float, float, int, int, int, int], killing: int, expected: tuple[int, int]
) -> None:
    assert plan.replace_step(*args, old_killing=killing) == expected


@pytest.mark.parametrize(
    "counts",
    [(-1, 0, 0, 0, 0), (2, 1, 0, 0, 0), (0, 0, 1, 2, 0), (0, 0, 0, 0, -1)],
    ids=["negative", "healthy-above-running", "new-healthy-above-started", "negative-killing"],
)
def test_replace_step_refuses_inconsistent_counts(counts: tuple[int, int, int, int, int]) -> None:
    old_healthy, old_running, new_started, new_healthy, killing = counts
    with pytest.raises(ValueError, match="inconsistent"):
        plan.replace_step(
            3, 1.0, 1.0, old_healthy, old_running, new_started, new_healthy, old_killing=killing
        )


@dataclass
class Restart:
    """A rolling restart's instances, counted as the scheduler would count them."""

    instances: int
    old_healthy: int
    old_unhealthy: int
    old_killing: int = 0
    new_pending: int = 0  # launched, not yet healthy and ready
    new_healthy: int = 0

    @property
    def old_running(self) -> int:
        return self.old_healthy + self.old_unhealthy

    @property
    def healthy(self) -> int:
        return self.old_healthy + self.new_healthy

    @property
    def total(self) -> int:
        return self.old_running + self.old_killing + self.new_pending + self.new_healthy

    def step(self, mh: float, mo: float) -> tuple[int, int]:
        kill, start = plan.replace_step(
            self.instances,
            mh,
            mo,
            self.old_healthy,
            self.old_running,
            self.new_pending + self.new_healthy,
            self.new_healthy,
            old_killing=self.old_killing,
        )
        unhealthy = min(kill, self.old_unhealthy)  # the unhealthy ones go first
        self.old_unhealthy -= unhealthy
        self.old_healthy -= kill - unhealthy
        self.old_killing += kill
        self.new_pending += start
        return kill, start

    def events(self) -> list[str]:
        return (
            ["old-gone"] * self.old_killing
            + ["new-healthy"] * self.new_pending
            + ["old-recovers"] * self.old_unhealthy
        )

    def apply(self, event: str) -> None:
        if event == "old-gone":
            self.old_killing -= 1
        elif event == "new-healthy":
            self.new_pending -= 1
            self.new_healthy += 1
        else:
            self.old_unhealthy -= 1
            self.old_healthy += 1

    @property
    def done(self) -> bool:
        return (
            self.old_running == 0 and self.old_killing == 0 and self.new_healthy == self.instances
        )


PAIRS = [
    (1.0, 1.0),
    (1.0, 0.0),
    (0.0, 0.0),
    (0.0, 1.0),
    (0.5, 0.0),
    (0.5, 0.5),
    (0.7, 0.1),
    (0.9, 0.2),
    (0.25, 0.75),
    (0.6, 0.3),
]


def run(restart: Restart, mh: float, mo: float, pick: random.Random | None) -> int:
    """Drive ``restart`` to the end; check the invariants after every instruction and
    every event; return the number of events."""
    min_healthy = math.ceil(restart.instances * mh)
    floor = math.floor(restart.instances * (1 + mo))
    limit = floor + 1 if min_healthy == floor else floor
    # more old instances than the limit (a scale down with the restart) may only shrink;
    # healthy ones never drop below minHealthy (or below what there was, when fewer)
    ceiling = max(limit, restart.total)
    last_healthy = restart.healthy

    def check() -> None:
        nonlocal ceiling, last_healthy
        assert restart.total <= ceiling, restart
        assert restart.healthy >= min(min_healthy, last_healthy), restart
        ceiling, last_healthy = max(limit, restart.total), restart.healthy

    for events in range(10 * max(restart.instances, restart.old_running) + 20):
        _, start = restart.step(mh, mo)
        check()
        if start:
            assert restart.total <= limit, restart
        assert restart.step(mh, mo) == (0, 0), "an answer carried out needs no second one"
        if restart.done:
            return events
        pending = restart.events()
        assert pending, f"stuck: {restart}"
        restart.apply(pending[0] if pick is None else pick.choice(pending))
        check()
    raise AssertionError(f"did not finish: {restart}")


@pytest.mark.parametrize(("mh", "mo"), PAIRS, ids=[f"{mh}-{mo}" for mh, mo in PAIRS])
def test_rolling_restart_of_10(mh: float, mo: float) -> None:
    restart = Restart(instances=10, old_healthy=10, old_unhealthy=0)
    events = run(restart, mh, mo, pick=None)
    assert restart.done and events >= 20  # ten old ones gone, ten new ones healthy


@pytest.mark.parametrize(("mh", "mo"), PAIRS, ids=[f"{mh}-{mo}" for mh, mo in PAIRS])
@pytest.mark.parametrize("seed", range(5))
def test_rolling_restart_in_any_event_order(mh: float, mo: float, seed: int) -> None:
    rng = random.Random(seed)
    unhealthy = rng.randrange(0, 4)
    restart = Restart(instances=10, old_healthy=10 - unhealthy, old_unhealthy=unhealthy)
    run(restart, mh, mo, pick=rng)
    assert restart.done


@pytest.mark.parametrize(
    ("n", "old"),
    [(1, 1), (3, 3), (5, 8), (8, 5), (0, 4)],
    ids=["one", "three", "scale-down", "scale-up", "to-zero"],
)
def test_rolling_restart_other_sizes(n: int, old: int) -> None:
    for mh, mo in PAIRS:
        restart = Restart(instances=n, old_healthy=old, old_unhealthy=0)
        run(restart, mh, mo, pick=None)
        assert restart.done


def test_side_by_side_keeps_every_old_instance_until_the_new_ones_are_healthy() -> None:
    restart = Restart(instances=10, old_healthy=10, old_unhealthy=0)
    assert restart.step(1.0, 1.0) == (0, 10)
    for _ in range(9):
        restart.apply("new-healthy")
        assert restart.step(1.0, 1.0) == (1, 0)
    assert restart.old_running == 1
