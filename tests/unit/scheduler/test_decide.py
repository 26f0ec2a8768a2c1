"""decide: messages, the share of nodes scored, strategies, nearest miss."""

from __future__ import annotations

import random
from typing import Any

import pytest

from corral.scheduler.decide import decide, fit_error, num_nodes_to_score
from corral.scheduler.framework import Profile
from corral.scheduler.snapshot import Cursor, NodeTable, pod_info


def _node(
    name: str,
    cpu: str = "4",
    mem: str = "8Gi",
    taints: list[dict[str, str]] | None = None,
    **labels: str,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints or []},
        "status": {"allocatable": {"cpu": cpu, "memory": mem, "pods": "110"}},
    }


def _pod(name: str = "p", cpu: str = "100m", mem: str = "64Mi", **spec: Any) -> Any:
    return pod_info(
        {
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {
                "containers": [
                    {"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}
                ],
                **spec,
            },
        }
    )


NUM_CASES = [
    ("small", 50, 0, 50),
    ("100", 100, 0, 100),
    ("1000", 1000, 0, 420),
    ("5000", 5000, 0, 500),
    ("10000", 10000, 0, 500),
    ("fixed-10pct", 2000, 10, 200),
    ("floor-100", 500, 1, 100),
]


@pytest.mark.parametrize(
    ("n", "pct", "want"), [c[1:] for c in NUM_CASES], ids=[c[0] for c in NUM_CASES]
)
def test_num_nodes_to_score(n: int, pct: int, want: int) -> None:
    assert num_nodes_to_score(n, pct) == want


def test_mixed_failure_message() -> None:
    t = NodeTable()
    t.upsert_node(
        _node("a", cpu="1", taints=[{"key": "node-role", "value": "x", "effect": "NoSchedule"}])
    )
    t.upsert_node(_node("b", cpu="1"))
    t.upsert_node(_node("c", cpu="1500m"))
    d = decide(_pod(cpu="2"), t, Profile())
    assert d.node is None
    assert (
        d.message
        == "0/3 nodes are available: 1 node(s) had untolerated taint {node-role: x}, 2 Insufficient cpu."
    )
    assert d.reasons == {"node(s) had untolerated taint {node-role: x}": 1, "Insufficient cpu": 2}
    assert d.nearest_miss == "needs 2 cpu; best node c has 1500m free"
    d = decide(_pod(cpu="2"), t, Profile(), preemption=True)
    assert d.message == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {node-role: x}, 2 Insufficient cpu. "
        "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
        "2 No preemption victims found for incoming pod.."
    )


def test_reasons_sort_as_strings() -> None:
    assert fit_error(12, {"b": 10, "a": 2}) == "0/12 nodes are available: 10 b, 2 a."


MISS_CASES = [
    ("memory", {"mem": "12Gi"}, "needs 12Gi memory; best node a has 8Gi free"),
    (
        "cpu-and-memory",
        {"cpu": "5", "mem": "12Gi"},
        "needs 5 cpu, 12Gi memory; best node a has 4 cpu, 8Gi memory free",
    ),
    (
        "selector",
        {"nodeSelector": {"disk": "ssd"}},
        "2 of 2 nodes: node(s) didn't match Pod's node affinity/selector (e.g. a)",
    ),
]


@pytest.mark.parametrize(
    ("kw", "want"), [c[1:] for c in MISS_CASES], ids=[c[0] for c in MISS_CASES]
)
def test_nearest_miss(kw: dict[str, Any], want: str) -> None:
    t = NodeTable()
    t.upsert_node(_node("a"))
    t.upsert_node(_node("b", cpu="2", mem="4Gi"))
    assert decide(_pod(**kw), t, Profile()).nearest_miss == want


def test_no_nodes() -> None:
    assert decide(_pod(), NodeTable(), Profile()).message == "no nodes available to schedule pods"


def test_partial_scan_rotates() -> None:
    t = NodeTable()
    for i in range(1000):
        t.upsert_node(_node(f"n{i}"))
    cursor = Cursor(rng=random.Random(1))
    d = decide(_pod(), t, Profile(), cursor=cursor)
    assert (d.feasible, d.evaluated, cursor.next_start) == (420, 420, 420)
    d = decide(_pod(), t, Profile(percentage_of_nodes_to_score=100), cursor=cursor)
    assert (d.feasible, d.evaluated, cursor.next_start) == (1000, 1000, 420)


STRATEGY_CASES = [("LeastAllocated", "empty"), ("MostAllocated", "busy")]


@pytest.mark.parametrize(("strategy", "want"), STRATEGY_CASES, ids=[c[0] for c in STRATEGY_CASES])
def test_strategy_choice(strategy: str, want: str) -> None:
    t = NodeTable()
    t.upsert_node(_node("empty"))
    t.upsert_node(_node("busy"))
    t.add_pod(_pod("x", cpu="2", mem="4Gi"), "busy")
    profile = Profile(scoring_strategy=strategy, scores=(("NodeResourcesFit", 1),))
    assert decide(_pod(cpu="1", mem="2Gi"), t, profile).node == want


def test_ties_are_seeded() -> None:
    t = NodeTable()
    for i in range(10):
        t.upsert_node(_node(f"n{i}"))
    picks = [
        decide(_pod(), t, Profile(), cursor=Cursor(rng=random.Random(s))).node for s in range(10)
    ]
    again = [
        decide(_pod(), t, Profile(), cursor=Cursor(rng=random.Random(s))).node for s in range(10)
    ]
    assert picks == again and len(set(picks)) > 1


def test_partial_scan_stops_at_the_last_feasible_node_found() -> None:
    # exactly as many feasible nodes as are wanted (420 of 1000), then cordoned ones:
    # the scan stops at the 420th feasible node and the cursor moves past it
    t = NodeTable()
    for i in range(1000):
        node = _node(f"n{i}")
        node["spec"]["unschedulable"] = i >= 420
        t.upsert_node(node)
    cursor = Cursor(next_start=10, rng=random.Random(1))
    d = decide(_pod(), t, Profile(), cursor=cursor)
    assert (d.feasible, d.evaluated, cursor.next_start) == (420, 1000, 10)
    cursor = Cursor(next_start=0, rng=random.Random(1))
    d = decide(_pod(), t, Profile(), cursor=cursor)
    assert (d.feasible, d.evaluated, cursor.next_start) == (420, 420, 420)
