"""pod_info's request arithmetic and NodeTable's incremental bookkeeping."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from corral.scheduler.snapshot import NodeTable, pod_info

Gi = 1024**3
Mi = 1024**2


def _c(
    name: str,
    requests: dict[str, str] | None = None,
    limits: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "name": name,
        "resources": {"requests": requests or {}, "limits": limits or {}},
        **extra,
    }


REQUEST_CASES = [
    ("one-container", {"containers": [_c("a", {"cpu": "500m", "memory": "1Gi"})]}, [500, Gi, 0, 1]),
    ("sum", {"containers": [_c("a", {"cpu": "1"}), _c("b", {"cpu": "250m"})]}, [1250, 0, 0, 1]),
    (
        "limits-as-requests",
        {"containers": [_c("a", limits={"cpu": "2", "memory": "1Gi"})]},
        [2000, Gi, 0, 1],
    ),
    (
        "init-max",
        {
            "containers": [_c("a", {"cpu": "1"})],
            "initContainers": [_c("i", {"cpu": "3", "memory": "64Mi"})],
        },
        [3000, 64 * Mi, 0, 1],
    ),
    (
        "sidecar-adds",
        {
            "containers": [_c("a", {"cpu": "1"})],
            "initContainers": [_c("s", {"cpu": "500m"}, restartPolicy="Always")],
        },
        [1500, 0, 0, 1],
    ),
    (
        "overhead",
        {"containers": [_c("a", {"cpu": "1"})], "overhead": {"cpu": "100m"}},
        [1100, 0, 0, 1],
    ),
    ("ephemeral", {"containers": [_c("a", {"ephemeral-storage": "1Gi"})]}, [0, 0, Gi, 1]),
]


@pytest.mark.parametrize(
    ("spec", "want"), [c[1:] for c in REQUEST_CASES], ids=[c[0] for c in REQUEST_CASES]
)
def test_requests(spec: dict[str, Any], want: list[int]) -> None:
    assert (
        pod_info({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec}).requests.tolist()
        == want
    )


def test_nonzero_defaults_and_fields() -> None:
    p = pod_info(
        {
            "metadata": {"name": "p", "namespace": "ns", "labels": {"a": "b"}},
            "spec": {
                "containers": [_c("a"), _c("b", {"cpu": "1"})],
                "priority": 7,
                "preemptionPolicy": "Never",
            },
        }
    )
    assert p.nonzero_requests.tolist() == [1100, 400 * Mi]
    assert (p.key, p.priority, p.preemption_policy, p.labels) == ("ns/p", 7, "Never", {"a": "b"})


def _node(name: str, cpu: str = "4", **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {"capacity": {"cpu": cpu, "memory": "1Gi", "pods": "10"}},
    }


def _pod(name: str, cpu: str = "1") -> Any:
    return pod_info(
        {
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"containers": [_c("c", {"cpu": cpu})]},
        }
    )


def test_grow_and_swap_remove_keep_rows_right() -> None:
    t = NodeTable(capacity=1)
    for i in range(5):
        t.upsert_node(_node(f"n{i}", cpu=str(i + 1), zone=f"z{i % 2}"))
    t.add_pod(_pod("a"), "n4")
    t.add_pod(_pod("b", "500m"), "n1")
    t.remove_node("n0")  # n4 moves into row 0
    assert len(t) == 4 and t.names[0] == "n4" and t.row("n4") == 0
    assert t.allocatable[0, 0] == 5000 and t.requested[0].tolist() == [1000, 0, 0, 1]
    assert [p.key for p in t.pods_on(0)] == ["ns/a"]
    assert t.free(t.row("n1") or 0).tolist()[0] == 1500
    assert sorted(t.names[r] for r in t.rows_with_label("zone")["z0"]) == ["n2", "n4"]
    t.remove_node("n3")
    t.remove_node("n4")  # the last two leave from the end and the middle
    assert t.names == ["n2", "n1"] or sorted(t.names) == ["n1", "n2"]
    assert all(t.row(n) == i for i, n in enumerate(t.names))


def test_pods_waiting_for_their_node() -> None:
    t = NodeTable()
    t.add_pod(_pod("early"), "late-node")
    t.upsert_node(_node("late-node"))
    assert t.requested[0, 0] == 1000
    t.remove_node("late-node")
    t.upsert_node(_node("late-node"))
    assert t.requested[0, 0] == 1000  # still accounted after the node came back
    t.remove_pod("ns/early")
    assert t.requested[0].tolist() == [0, 0, 0, 0]


def test_update_keeps_usage_and_refreshes_labels() -> None:
    t = NodeTable()
    t.upsert_node(_node("n", zone="a"))
    t.add_pod(_pod("x"), "n")
    assert set(t.rows_with_label("zone")) == {"a"}
    t.upsert_node(
        {
            **_node("n", cpu="8", zone="b"),
            "spec": {"unschedulable": True, "taints": [{"key": "k", "effect": "NoSchedule"}]},
        }
    )
    assert set(t.rows_with_label("zone")) == {"b"}
    assert t.allocatable[0, 0] == 8000 and t.requested[0, 0] == 1000 and bool(t.unschedulable[0])
    assert list(t.taint_groups()) == [(("k", "", "NoSchedule"),)]
    t.add_pod(_pod("x", "2"), "n")  # re-adding replaces
    assert t.requested[0, 0] == 2000
    assert t.remove_pod("missing") is None
    assert np.array_equal(t.requested[0], [2000, 0, 0, 1])
