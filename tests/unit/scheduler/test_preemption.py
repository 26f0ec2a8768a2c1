"""find_preemption / preempt: victims, node choice, policy Never, messages."""

from __future__ import annotations

from typing import Any

import pytest

from corral.scheduler.decide import decide
from corral.scheduler.framework import PodInfo, Profile
from corral.scheduler.preemption import find_preemption, preempt
from corral.scheduler.snapshot import NodeTable, pod_info


def _node(name: str, cpu: str = "4") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"}},
    }


def _pod(name: str, cpu: str, priority: int = 0, start: str = "", **spec: Any) -> PodInfo:
    return pod_info(
        {
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {
                "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}],
                "priority": priority,
                **spec,
            },
            "status": {"startTime": start},
        }
    )


def _table(placed: dict[str, list[PodInfo]]) -> NodeTable:
    t = NodeTable()
    for node, pods in placed.items():
        t.upsert_node(_node(node))
        for p in pods:
            t.add_pod(p, node)
    return t


CASES = [
    (
        "fewest-victims-by-priority",
        {
            "a": [_pod("a1", "2", 5), _pod("a2", "2", 5)],
            "b": [_pod("b1", "2", 1), _pod("b2", "2", 9)],
        },
        ("b", ["b1"]),
    ),
    ("lowest-top-priority", {"a": [_pod("a1", "4", 3)], "b": [_pod("b1", "4", 2)]}, ("b", ["b1"])),
    (
        "reprieve-what-is-not-needed",
        {"a": [_pod("a1", "1", 1), _pod("a2", "1", 2), _pod("a3", "2", 3)]},
        ("a", ["a2", "a1"]),  # the most important (a3) is reprieved first
    ),
    ("only-lower-priority", {"a": [_pod("a1", "4", 10)]}, None),
    (
        "latest-start-wins-tie",
        {
            "a": [_pod("a1", "4", 1, "2024-01-01T00:00:00Z")],
            "b": [_pod("b1", "4", 1, "2024-06-01T00:00:00Z")],
        },
        ("b", ["b1"]),
    ),
]


@pytest.mark.parametrize(("placed", "want"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_find_preemption(
    placed: dict[str, list[PodInfo]], want: tuple[str, list[str]] | None
) -> None:
    t = _table(placed)
    before = t.requested.copy()
    got = find_preemption(_pod("hi", "2", 10), t, Profile())
    assert (got.node, [v.key.split("/")[1] for v in got.victims]) == want if got else want is None
    assert (t.requested == before).all()  # the dry run put everything back


def test_never_policy() -> None:
    t = _table({"a": [_pod("a1", "4", 1)]})
    pod = _pod("hi", "2", 10, preemptionPolicy="Never")
    assert preempt(pod, t, Profile()) == (
        None,
        "preemption: not eligible due to preemptionPolicy=Never.",
    )
    d = decide(pod, t, Profile(), preemption=True)
    assert d.message == (
        "0/1 nodes are available: 1 Insufficient cpu. "
        "preemption: not eligible due to preemptionPolicy=Never.."
    )


def test_success_has_no_suffix() -> None:
    t = _table({"a": [_pod("a1", "4", 1)]})
    d = decide(_pod("hi", "2", 10), t, Profile(), preemption=True)
    assert d.message == "0/1 nodes are available: 1 Insufficient cpu."
    assert d.preemption is not None and d.preemption.node == "a"


def test_ports_and_cordon() -> None:
    t = _table({"a": [], "b": []})
    t.upsert_node({**_node("b"), "spec": {"unschedulable": True}})
    port = {"containers": [{"name": "c", "ports": [{"containerPort": 1, "hostPort": 80}]}]}
    t.add_pod(
        pod_info({"metadata": {"name": "low", "namespace": "ns"}, "spec": {**port, "priority": 1}}),
        "a",
    )
    pod = pod_info({"metadata": {"name": "hi", "namespace": "ns"}, "spec": {**port, "priority": 5}})
    got = find_preemption(pod, t, Profile())
    assert got is not None and got.node == "a" and [v.key for v in got.victims] == ["ns/low"]
