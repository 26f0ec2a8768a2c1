"""The HPA's sans-I/O decisions (``controllers/hpa_algorithm.py``, ``hpa_behavior.py``)
as tables: replica counts from metrics (tolerance, missing metrics, unready pods, the CPU
initialisation period), stabilisation windows, behaviour policies and min/max clamping. Time is a
number (``NOW``) moved by hand; the expected counts are upstream's replica calculator's."""

from __future__ import annotations

from typing import Any

import pytest

from corral.controllers.hpa_algorithm import (
    PodMetric,
    Proposal,
    ReplicaCalcError,
    ReplicaCalculator,
    combine_proposals,
    group_pods,
)
from corral.controllers.hpa_behavior import (
    History,
    ScaleEvent,
    effective_behavior,
    normalize_desired_replicas,
    normalize_with_behaviors,
    set_condition,
    store_scale_event,
)
from corral.util.clock import rfc3339

NOW = 1_800_000_000.0
CALC = ReplicaCalculator(
    tolerance=0.1, cpu_initialization_period=300, delay_of_initial_readiness_status=30
)
Obj = dict[str, Any]


def pod(
    name: str,
    *,
    cpu: str | None = "1",
    phase: str = "Running",
    ready: str | None = "True",
    started: float = NOW - 3600,
    ready_since: float = NOW - 3000,
    deleted: bool = False,
) -> Obj:
    resources = {"requests": {"cpu": cpu}} if cpu is not None else {}
    status: Obj = {"phase": phase, "startTime": rfc3339(started)}
    if ready is not None:
        status["conditions"] = [
            {"type": "Ready", "status": ready, "lastTransitionTime": rfc3339(ready_since)}
        ]
    meta: Obj = {"name": name, "namespace": "ns"}
    if deleted:
        meta["deletionTimestamp"] = rfc3339(NOW)
    return {
        "metadata": meta,
        "spec": {"containers": [{"name": "app", "resources": resources}]},
        "status": status,
    }


def usage(*values: int, at: float = NOW - 10, window: float = 30) -> dict[str, PodMetric]:
    return {f"p{i}": PodMetric(v, at, window) for i, v in enumerate(values)}


def pods(n: int, **kw: Any) -> list[Obj]:
    return [pod(f"p{i}", **kw) for i in range(n)]


# --- replica counts from utilization ------------------------------------------------------------

# (current, target %, pods, metrics, expected replicas, expected utilization)
UTILIZATION = [
    (3, 30, pods(3), usage(300, 500, 700), 5, 50),
    (5, 50, pods(5), usage(100, 300, 500, 250, 250), 3, 28),
    (3, 100, pods(3), usage(1010, 1030, 1020), 3, 102),  # within the tolerance
    (3, 100, pods(3), usage(1150, 1150, 1150), 4, 115),  # just past it
    (4, 50, pods(4), usage(900, 900, 900), 6, 90),  # missing pod counts 0% on the way up
    (4, 50, pods(4), usage(100, 100, 100), 3, 10),  # missing pod counts 100% on the way down
    (4, 50, pods(4), usage(400, 400, 400), 4, 40),  # ...which flips the direction: keep
    (4, 200, pods(4), usage(100, 100, 100), 2, 10),  # missing counts the target when > 100%
    (3, 50, [*pods(2), pod("p2", phase="Pending")], usage(900, 900), 4, 90),  # unready: 0% up
    (3, 50, [*pods(2), pod("p2", phase="Pending")], usage(100, 100), 1, 10),  # ignored down
    (3, 50, [*pods(2), pod("p2", deleted=True)], usage(900, 900, 900), 4, 90),  # deleted: ignored
    (2, 50, [*pods(1), pod("p1", phase="Failed")], usage(900, 50), 2, 90),  # failed: ignored
]
UTILIZATION_IDS = [
    "scale-up",
    "scale-down",
    "within-tolerance",
    "past-tolerance",
    "missing-up",
    "missing-down",
    "missing-flips-direction",
    "missing-high-target",
    "unready-up",
    "unready-down",
    "deleted-ignored",
    "failed-ignored",
]


@pytest.mark.parametrize(
    ("current", "target", "pod_list", "metrics", "replicas", "utilization"),
    UTILIZATION,
    ids=UTILIZATION_IDS,
)
def test_resource_replicas(
    current: int,
    target: int,
    pod_list: list[Obj],
    metrics: dict[str, PodMetric],
    replicas: int,
    utilization: int,
) -> None:
    got, util, _raw = CALC.resource_replicas(current, target, "cpu", pod_list, metrics, NOW)
    assert (got, util) == (replicas, utilization)


def test_raw_average_is_of_the_counted_pods() -> None:
    _, util, raw = CALC.resource_replicas(3, 30, "cpu", pods(3), usage(300, 500, 700), NOW)
    assert (util, raw) == (50, 500)


@pytest.mark.parametrize(
    ("pod_list", "metrics", "message"),
    [
        ([], usage(100), "no pods returned by selector while calculating replica count"),
        (
            [pod("p0", phase="Pending")],
            usage(100),
            "did not receive metrics for targeted pods (pods might be unready)",
        ),
        ([pod("p0", cpu=None)], usage(100), "missing request for cpu in container app of Pod p0"),
        ([pod("other")], usage(100), "no metrics returned matched known pods"),
    ],
    ids=["no-pods", "only-unready", "missing-request", "disjoint"],
)
def test_resource_replicas_errors(
    pod_list: list[Obj], metrics: dict[str, PodMetric], message: str
) -> None:
    with pytest.raises(ReplicaCalcError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CALC.resource_replicas(1, 50, "cpu", pod_list, metrics, NOW)


# (pod, metric timestamp, expected group) with the CPU initialisation period of 300 s
GROUPS = [
    (pod("p0"), NOW - 10, "ready"),
    (pod("p0", started=NOW - 60, ready_since=NOW - 50), NOW - 10, "ready"),  # a window after
    (pod("p0", started=NOW - 60, ready_since=NOW - 20), NOW - 10, "unready"),  # within a window
    (pod("p0", started=NOW - 60, ready="False"), NOW - 10, "unready"),
    (pod("p0", ready=None), NOW - 10, "unready"),  # no Ready condition
    (pod("p0", ready="False", started=NOW - 3600, ready_since=NOW - 3590), NOW, "unready"),
    (pod("p0", ready="False", started=NOW - 3600, ready_since=NOW - 100), NOW, "ready"),
    (pod("p0", phase="Pending"), NOW, "unready"),
    (pod("p0", phase="Failed"), NOW, "ignored"),
    (pod("p0", deleted=True), NOW, "ignored"),
]


@pytest.mark.parametrize(
    ("the_pod", "stamp", "group"),
    GROUPS,
    ids=[
        "ready",
        "initializing-settled",
        "initializing-fresh-sample",
        "initializing-not-ready",
        "no-ready-condition",
        "never-became-ready",
        "was-ready-before",
        "pending",
        "failed",
        "deleted",
    ],
)
def test_group_pods_cpu(the_pod: Obj, stamp: float, group: str) -> None:
    ready, unready, missing, _ignored = group_pods(
        [the_pod], {"p0": PodMetric(100, stamp, 30)}, "cpu", 300, 30, NOW
    )
    got = "ready" if ready else "unready" if unready else "missing" if missing else "ignored"
    assert got == group


def test_readiness_is_not_checked_for_memory() -> None:
    ready, unready, _, _ = group_pods(
        [pod("p0", ready="False", started=NOW - 10)],
        {"p0": PodMetric(1, NOW, 30)},
        "memory",
        300,
        30,
        NOW,
    )
    assert (ready, unready) == (1, set())


@pytest.mark.parametrize(
    ("current", "target", "metrics", "replicas", "usage_avg"),
    [
        (2, 500, usage(1000, 1000), 4, 1000),
        (4, 500, usage(100, 100, 100, 100), 1, 100),
        (2, 1000, usage(1050, 1000), 2, 1025),
    ],
    ids=["up", "down", "tolerance"],
)
def test_plain_replicas(
    current: int, target: int, metrics: dict[str, PodMetric], replicas: int, usage_avg: int
) -> None:
    got = CALC.plain_replicas(current, target, "memory", pods(len(metrics)), metrics, NOW)
    assert got == (replicas, usage_avg)


# --- combining proposals -------------------------------------------------------------------------

FAIL = Proposal(error="boom", reason="FailedGetResourceMetric", message="m")


@pytest.mark.parametrize(
    ("proposals", "spec_replicas", "replicas", "metric"),
    [
        ([Proposal(3, "cpu"), Proposal(5, "memory")], 2, 5, "memory"),
        ([FAIL], 2, -1, ""),
        ([FAIL, Proposal(4, "memory")], 2, 4, "memory"),  # scales up despite the failure
        ([FAIL, Proposal(1, "memory")], 2, -1, ""),  # would scale down: refused
    ],
    ids=["largest-wins", "all-failed", "failed-but-up", "failed-and-down"],
)
def test_combine_proposals(
    proposals: list[Proposal], spec_replicas: int, replicas: int, metric: str
) -> None:
    got, name, error, _ = combine_proposals(proposals, spec_replicas)
    assert (got, name) == (replicas, metric)
    if any(p.error for p in proposals):
        assert error.startswith("invalid metrics (1 invalid out of")


# --- without a behaviour: the downscale window and the 2x/4 limit ---------------------------------


@pytest.mark.parametrize(
    ("recs", "window", "current", "desired", "bounds", "result", "reasons"),
    [
        ([(5, NOW - 100)], 300, 5, 2, (1, 10), 5, ("ScaleDownStabilized", "DesiredWithinRange")),
        ([(5, NOW - 100)], 60, 5, 2, (1, 10), 2, ("ReadyForNewScale", "DesiredWithinRange")),
        ([], 300, 1, 10, (1, 10), 4, ("ReadyForNewScale", "ScaleUpLimit")),
        ([], 300, 5, 8, (1, 6), 6, ("ReadyForNewScale", "TooManyReplicas")),
        ([], 300, 2, 0, (1, 6), 1, ("ReadyForNewScale", "TooFewReplicas")),
    ],
    ids=["stabilized", "window-passed", "scale-up-limit", "max", "min"],
)
def test_normalize_without_behavior(
    recs: list[tuple[int, float]],
    window: float,
    current: int,
    desired: int,
    bounds: tuple[int, int],
    result: int,
    reasons: tuple[str, str],
) -> None:
    history = History(list(recs))
    got, conditions = normalize_desired_replicas(history, NOW, current, desired, *bounds, window)
    assert got == result
    assert (conditions[0][2], conditions[1][2]) == reasons
    assert conditions[1][1] == ("False" if reasons[1] == "DesiredWithinRange" else "True")
    assert (desired, NOW) in history.recommendations


# --- behaviours -------------------------------------------------------------------------------------

DEFAULT_UP = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ],
}
DEFAULT_DOWN = {
    "stabilizationWindowSeconds": 300,
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}


def behavior(up: Obj | None = None, down: Obj | None = None) -> Obj:
    return {"scaleUp": {**DEFAULT_UP, **(up or {})}, "scaleDown": {**DEFAULT_DOWN, **(down or {})}}


@pytest.mark.parametrize(
    ("beh", "history", "current", "desired", "result", "reasons"),
    [
        (behavior(), History(), 2, 20, 6, ("ReadyForNewScale", "ScaleUpLimit")),
        (behavior(), History(), 10, 30, 20, ("ReadyForNewScale", "ScaleUpLimit")),
        (
            behavior(up={"selectPolicy": "Min"}),
            History(),
            2,
            20,
            4,
            ("ReadyForNewScale", "ScaleUpLimit"),
        ),
        (
            behavior(up={"selectPolicy": "Disabled"}),
            History(),
            2,
            20,
            2,
            ("ReadyForNewScale", "ScaleUpLimit"),
        ),
        (
            behavior(),
            History(up_events=[ScaleEvent(4, NOW - 5)]),
            6,
            20,
            6,
            ("ReadyForNewScale", "ScaleUpLimit"),
        ),  # 4 added 5 s ago: the period's budget (2 + 4) is spent
        (
            behavior(),
            History(up_events=[ScaleEvent(4, NOW - 20)]),
            6,
            20,
            12,
            ("ReadyForNewScale", "ScaleUpLimit"),
        ),  # ...20 s ago: a new period
        (behavior(), History(), 2, 3, 3, ("ReadyForNewScale", "DesiredWithinRange")),
        (behavior(), History(), 20, 40, 30, ("ReadyForNewScale", "TooManyReplicas")),
        (
            behavior(),
            History([(8, NOW - 100)]),
            8,
            3,
            8,
            ("ScaleDownStabilized", "DesiredWithinRange"),
        ),
        (
            behavior(down={"stabilizationWindowSeconds": 0}),
            History([(8, NOW - 100)]),
            8,
            3,
            3,
            ("ReadyForNewScale", "DesiredWithinRange"),
        ),
        (
            behavior(
                down={
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}],
                }
            ),
            History(),
            10,
            1,
            5,
            ("ReadyForNewScale", "ScaleDownLimit"),
        ),
        (
            behavior(
                down={
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                }
            ),
            History(down_events=[ScaleEvent(1, NOW - 30)]),
            9,
            1,
            9,
            ("ReadyForNewScale", "ScaleDownLimit"),
        ),  # one pod a minute, and one went 30 s ago
        (
            behavior(down={"stabilizationWindowSeconds": 0}),
            History(),
            5,
            0,
            2,
            ("ReadyForNewScale", "TooFewReplicas"),
        ),
        (
            behavior(up={"stabilizationWindowSeconds": 60}),
            History([(3, NOW - 30)]),
            3,
            6,
            3,
            ("ScaleUpStabilized", "DesiredWithinRange"),
        ),
    ],
    ids=[
        "up-pods-policy-wins",
        "up-percent-policy-wins",
        "up-select-min",
        "up-disabled",
        "up-budget-spent",
        "up-new-period",
        "up-within-range",
        "up-max",
        "down-stabilized",
        "down-no-window",
        "down-percent-limit",
        "down-pods-per-minute",
        "down-min",
        "up-stabilized",
    ],
)
def test_normalize_with_behaviors(
    beh: Obj, history: History, current: int, desired: int, result: int, reasons: tuple[str, str]
) -> None:
    got, conditions = normalize_with_behaviors(history, NOW, current, desired, 2, 30, beh)
    assert got == result
    assert (conditions[0][2], conditions[1][2]) == reasons


def test_scale_events_reuse_outdated_slots() -> None:
    history = History()
    beh = behavior()
    store_scale_event(history, beh, 2, 6, NOW - 100)
    store_scale_event(history, beh, 6, 8, NOW)  # the first is older than 15 s: reused
    assert [(e.change, e.at) for e in history.up_events] == [(2, NOW)]
    store_scale_event(history, beh, 8, 5, NOW)
    assert [(e.change, e.at) for e in history.down_events] == [(3, NOW)]
    store_scale_event(history, None, 5, 9, NOW)  # no behaviour: nothing kept
    assert len(history.up_events) == 1


def test_effective_behavior_fills_the_downscale_window_from_the_flag() -> None:
    beh = {"scaleUp": DEFAULT_UP, "scaleDown": {"selectPolicy": "Max", "policies": []}}
    got = effective_behavior(beh, 42)
    assert got is not None and got["scaleDown"]["stabilizationWindowSeconds"] == 42
    assert "stabilizationWindowSeconds" not in beh["scaleDown"]  # the input is not mutated
    assert effective_behavior(None, 42) is None


def test_set_condition_moves_transition_time_only_on_status_change() -> None:
    conds: list[Obj] = []
    set_condition(conds, "AbleToScale", "True", "A", "m", "t1")
    set_condition(conds, "AbleToScale", "True", "B", "m2", "t2")
    assert conds == [
        {
            "type": "AbleToScale",
            "lastTransitionTime": "t1",
            "status": "True",
            "reason": "B",
            "message": "m2",
        }
    ]
    set_condition(conds, "AbleToScale", "False", "C", "m3", "t3")
    assert conds[0]["lastTransitionTime"] == "t3"
