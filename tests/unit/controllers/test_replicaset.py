"""The pure parts of the ReplicaSet controller: expectations, slow start, scale-down
ranking, status arithmetic, pods from templates, and ``--controllers`` selection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from corral.controllers.manager import CONTROLLERS, select_controllers
from corral.controllers.replicaset import (
    EXPECTATIONS_TIMEOUT,
    Expectations,
    calculate_status,
    deletion_order,
    pod_from_template,
    slow_start,
    slow_start_batches,
)
from corral.util.clock import parse_rfc3339, rfc3339

Obj = dict[str, Any]
NOW = parse_rfc3339("2026-01-01T12:00:00Z")


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t


# --- slow start --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "initial", "batches"),
    [
        (0, 1, []),
        (1, 1, [1]),
        (2, 1, [1, 1]),
        (3, 1, [1, 2]),
        (10, 1, [1, 2, 4, 3]),
        (500, 1, [1, 2, 4, 8, 16, 32, 64, 128, 245]),
        (7, 3, [3, 4]),
    ],
    ids=["none", "one", "two", "three", "ten", "burst", "initial-3"],
)
def test_slow_start_batches(count: int, initial: int, batches: list[int]) -> None:
    assert slow_start_batches(count, initial) == batches
    assert sum(batches) == count


@pytest.mark.parametrize(
    ("count", "fail_from", "successes", "calls"),
    [
        (10, None, 10, 10),
        (10, 0, 0, 1),  # the first call fails: one call, not ten
        (10, 1, 1, 3),  # batch 2 (calls 2-3) fails: stop after it
        (10, 3, 3, 7),  # batch 3 (calls 4-7): 3 ok before, 0 in it
    ],
    ids=["all-ok", "first-fails", "second-batch-fails", "third-batch-fails"],
)
def test_slow_start_stops_after_failing_batch(
    count: int, fail_from: int | None, successes: int, calls: int
) -> None:
    made: list[int] = []

    async def fn() -> None:
        n = len(made)
        made.append(n)
        if fail_from is not None and n >= fail_from:
            raise RuntimeError(f"call {n}")

    ok, err = asyncio.run(slow_start(count, fn))
    assert (ok, len(made)) == (successes, calls)
    assert (err is None) == (fail_from is None)


# --- expectations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "satisfied", "pending"),
    [
        ([], True, (0, 0)),
        ([("create", 3)], False, (3, 0)),
        ([("create", 2), ("created", 1)], False, (1, 0)),
        ([("create", 2), ("created", 1), ("created", 1)], True, (0, 0)),
        ([("create", 1), ("created", 1), ("created", 1)], True, (0, 0)),
        ([("delete", ["ns/a", "ns/b"])], False, (0, 2)),
        ([("delete", ["ns/a", "ns/b"]), ("deleted", "ns/a")], False, (0, 1)),
        ([("delete", ["ns/a"]), ("deleted", "ns/zzz")], False, (0, 1)),
        ([("delete", ["ns/a"]), ("deleted", "ns/a"), ("deleted", "ns/a")], True, (0, 0)),
        ([("create", 5), ("tick", EXPECTATIONS_TIMEOUT - 1)], False, (5, 0)),
        ([("create", 5), ("tick", EXPECTATIONS_TIMEOUT + 1)], True, (5, 0)),
        ([("create", 5), ("forget", None)], True, (0, 0)),
        ([("create", 2), ("delete", ["ns/a"])], False, (0, 1)),  # a new record replaces
    ],
    ids=[
        "no-record",
        "creations-pending",
        "one-of-two-seen",
        "all-seen",
        "over-observed",
        "deletions-pending",
        "one-deletion-seen",
        "unexpected-deletion-ignored",
        "graceful-delete-counted-once",
        "not-yet-expired",
        "expired-after-5-minutes",
        "forgotten",
        "replaced",
    ],
)
def test_expectations(
    steps: list[tuple[str, Any]], satisfied: bool, pending: tuple[int, int]
) -> None:
    clock = FakeClock()
    exp = Expectations(clock)
    for op, arg in steps:
        if op == "create":
            exp.expect_creations("ns/rs", arg)
        elif op == "created":
            exp.creation_observed("ns/rs", arg)
        elif op == "delete":
            exp.expect_deletions("ns/rs", arg)
        elif op == "deleted":
            exp.deletion_observed("ns/rs", arg)
        elif op == "tick":
            clock.t += arg
        elif op == "forget":
            exp.delete("ns/rs")
    assert exp.satisfied("ns/rs") is satisfied
    assert exp.pending("ns/rs") == pending
    assert exp.satisfied("ns/other")


# --- scale-down ranking ------------------------------------------------------------------------


def pod(
    name: str,
    *,
    node: str = "",
    phase: str = "Running",
    ready: bool = False,
    ready_ago: float = 3600,
    restarts: int = 0,
    created_ago: float = 3600,
    cost: int | None = None,
) -> Obj:
    status: Obj = {"phase": phase}
    if ready:
        status["conditions"] = [
            {
                "type": "Ready",
                "status": "True",
                "lastTransitionTime": rfc3339(NOW - ready_ago),
            }
        ]
    status["containerStatuses"] = [{"name": "c", "restartCount": restarts}]
    meta: Obj = {"name": name, "uid": name, "creationTimestamp": rfc3339(NOW - created_ago)}
    if cost is not None:
        meta["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": str(cost)}
    return {"metadata": meta, "spec": {"nodeName": node}, "status": status}


@pytest.mark.parametrize(
    ("first", "then"),
    [
        (pod("a", node=""), pod("b", node="n1")),
        (pod("a", node="n1", phase="Pending"), pod("b", node="n1", phase="Unknown")),
        (pod("a", node="n1", phase="Unknown"), pod("b", node="n1", phase="Running")),
        (pod("a", node="n1", ready=False), pod("b", node="n1", ready=True)),
        (pod("a", node="n1", cost=-5), pod("b", node="n1", cost=0)),
        (pod("a", node="n1", ready=True, ready_ago=10), pod("b", node="n1", ready=True)),
        (pod("a", node="n1", restarts=4), pod("b", node="n1", restarts=1)),
        (pod("a", node="n1", created_ago=5), pod("b", node="n1", created_ago=5000)),
        (
            pod("b", node="n1", restarts=9, created_ago=5000),
            pod("a", node="n1", restarts=0, created_ago=5),
        ),
        # unassigned wins over everything else: ready and old vs assigned pending
        (pod("a", node="", ready=True, created_ago=9999), pod("b", node="n1", phase="Pending")),
        # same log2 bucket of age: the uid breaks the tie
        (pod("a", node="n1", created_ago=3000), pod("b", node="n1", created_ago=3100)),
    ],
    ids=[
        "unassigned-first",
        "pending-before-unknown",
        "unknown-before-running",
        "not-ready-first",
        "lower-deletion-cost-first",
        "ready-more-recently-first",
        "more-restarts-first",
        "newer-first",
        "restarts-beat-age",
        "unassigned-beats-all",
        "same-bucket-uid",
    ],
)
def test_deletion_order_pairs(first: Obj, then: Obj) -> None:
    for pods in ([first, then], [then, first]):
        assert deletion_order(pods, pods, NOW) == [first, then]


def test_deletion_order_doubled_up_nodes_first() -> None:
    alone = pod("a", node="n1", ready=True)
    crowded = pod("b", node="n2", ready=True)
    neighbour = pod("c", node="n2", ready=True)
    # related pods (e.g. a sibling ReplicaSet's) make n2 more crowded than n1
    order = deletion_order([alone, crowded], [alone, crowded, neighbour], NOW)
    assert order == [crowded, alone]


def test_deletion_order_mixed_table() -> None:
    pods = [
        pod("ready-old", node="n1", ready=True, ready_ago=100000, created_ago=100000),
        pod("pending-unassigned", phase="Pending"),
        pod("ready-restarting", node="n2", ready=True, restarts=3, ready_ago=100000),
        pod("running-not-ready", node="n3"),
    ]
    got = [p["metadata"]["name"] for p in deletion_order(pods, pods, NOW)]
    assert got == ["pending-unassigned", "running-not-ready", "ready-restarting", "ready-old"]


# --- status ------------------------------------------------------------------------------------


def owner(replicas: int = 3, min_ready: int = 0, status: Obj | None = None) -> Obj:
    return {
        "metadata": {"name": "rs", "namespace": "ns", "uid": "u1", "generation": 2},
        "spec": {"replicas": replicas, "minReadySeconds": min_ready},
        "status": status or {},
    }


def labelled(p: Obj, labels: dict[str, str]) -> Obj:
    p["metadata"]["labels"] = labels
    return p


@pytest.mark.parametrize(
    ("own", "pods", "error", "want"),
    [
        (owner(), [], None, {"replicas": 0}),
        (
            owner(),
            [
                labelled(pod("a", ready=True), {"app": "x", "t": "1"}),
                labelled(pod("b", ready=True, ready_ago=1), {"app": "x", "t": "1"}),
                labelled(pod("c"), {"app": "x"}),
            ],
            None,
            {"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 2},
        ),
        (
            owner(min_ready=10),
            [
                labelled(pod("a", ready=True, ready_ago=60), {"app": "x", "t": "1"}),
                labelled(pod("b", ready=True, ready_ago=5), {"app": "x", "t": "1"}),
            ],
            None,
            {"replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 1},
        ),
        (
            owner(replicas=2),
            [],
            'pods "rs-x" is forbidden: exceeded quota',
            {
                "replicas": 0,
                "conditions": [
                    {
                        "type": "ReplicaFailure",
                        "status": "True",
                        "lastTransitionTime": "2026-01-01T12:00:00Z",
                        "reason": "FailedCreate",
                        "message": 'pods "rs-x" is forbidden: exceeded quota',
                    }
                ],
            },
        ),
        (
            owner(replicas=0),
            [labelled(pod("a"), {"app": "x", "t": "1"})],
            "boom",
            {
                "replicas": 1,
                "fullyLabeledReplicas": 1,
                "conditions": [
                    {
                        "type": "ReplicaFailure",
                        "status": "True",
                        "lastTransitionTime": "2026-01-01T12:00:00Z",
                        "reason": "FailedDelete",
                        "message": "boom",
                    }
                ],
            },
        ),
        (
            owner(
                status={
                    "replicas": 0,
                    "observedGeneration": 1,
                    "conditions": [{"type": "ReplicaFailure", "status": "True"}],
                }
            ),
            [],
            None,
            {"replicas": 0, "observedGeneration": 1},
        ),
    ],
    ids=["empty", "counts", "min-ready-seconds", "failed-create", "failed-delete", "cleared"],
)
def test_calculate_status(own: Obj, pods: list[Obj], error: str | None, want: Obj) -> None:
    assert calculate_status(own, pods, {"app": "x", "t": "1"}, error, NOW) == want


def test_pod_from_template() -> None:
    rs: Obj = {
        "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
        "spec": {
            "template": {
                "metadata": {
                    "labels": {"app": "web"},
                    "annotations": {"a": "b"},
                    "name": "ignored",
                },
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            }
        },
    }
    p = pod_from_template(rs, "apps/v1", "ReplicaSet")
    assert p == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "web-",
            "labels": {"app": "web"},
            "annotations": {"a": "b"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web",
                    "uid": "u1",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }
    p["spec"]["containers"][0]["image"] = "changed"
    assert rs["spec"]["template"]["spec"]["containers"][0]["image"] == "i"  # a copy


# --- manager -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("*", sorted(CONTROLLERS)),
        ("replicaset", ["replicaset"]),
        ("*,-replicaset", [n for n in sorted(CONTROLLERS) if n != "replicaset"]),
        ("replicaset,replicaset", ["replicaset"]),
        ("", []),
    ],
    ids=["all", "one", "all-but-one", "dedup", "none"],
)
def test_select_controllers(spec: str, want: list[str]) -> None:
    assert select_controllers(spec) == want


def test_select_controllers_unknown() -> None:
    with pytest.raises(ValueError, match='unknown controller "nope"'):
        select_controllers("replicaset,nope")
