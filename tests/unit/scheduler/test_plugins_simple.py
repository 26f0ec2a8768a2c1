"""Tables for the small filters: NodeName, NodeUnschedulable, NodePorts, TaintToleration."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from corral.scheduler.framework import Failure
from corral.scheduler.plugins.nodename import NodeName
from corral.scheduler.plugins.nodeports import NodePorts
from corral.scheduler.plugins.nodeunschedulable import NodeUnschedulable
from corral.scheduler.plugins.tainttoleration import TaintToleration
from corral.scheduler.snapshot import NodeTable, pod_info


def _node(
    name: str, taints: list[dict[str, str]] | None = None, cordon: bool = False
) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"taints": taints or [], "unschedulable": cordon},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
    }


def _pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"containers": [{"name": "c"}], **spec},
    }


def _summary(failures: list[Failure], table: NodeTable) -> dict[str, list[str]]:
    rows = np.arange(len(table))
    return {f.reason: [table.names[r] for r in rows[f.mask]] for f in failures}


def _table(*nodes: dict[str, Any]) -> NodeTable:
    t = NodeTable(capacity=1)
    for n in nodes:
        t.upsert_node(n)
    return t


NODENAME_CASES = [
    ("no-name", {}, {}),
    ("matches-b", {"nodeName": "b"}, {"node(s) didn't match the requested node name": ["a", "c"]}),
    (
        "unknown",
        {"nodeName": "zz"},
        {"node(s) didn't match the requested node name": ["a", "b", "c"]},
    ),
]


@pytest.mark.parametrize(
    ("spec", "want"), [c[1:] for c in NODENAME_CASES], ids=[c[0] for c in NODENAME_CASES]
)
def test_nodename(spec: dict[str, Any], want: dict[str, list[str]]) -> None:
    t = _table(_node("a"), _node("b"), _node("c"))
    got = NodeName().filter(pod_info(_pod(**spec)), t, np.arange(3))
    assert _summary(got, t) == want


UNSCHED = "node(s) were unschedulable"
UNSCHED_CASES = [
    ("cordoned", [], {UNSCHED: ["b"]}),
    (
        "tolerated",
        [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}],
        {},
    ),
    ("tolerate-all", [{"operator": "Exists"}], {}),
    (
        "wrong-effect",
        [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoExecute"}],
        {UNSCHED: ["b"]},
    ),
]


@pytest.mark.parametrize(
    ("tolerations", "want"), [c[1:] for c in UNSCHED_CASES], ids=[c[0] for c in UNSCHED_CASES]
)
def test_nodeunschedulable(tolerations: list[dict[str, str]], want: dict[str, list[str]]) -> None:
    t = _table(_node("a"), _node("b", cordon=True))
    got = NodeUnschedulable().filter(pod_info(_pod(tolerations=tolerations)), t, np.arange(2))
    assert _summary(got, t) == want


def _ports(*ports: tuple[str, str, int]) -> dict[str, Any]:
    return {
        "containers": [
            {
                "name": "c",
                "ports": [
                    {"containerPort": 80, "hostPort": p, "protocol": proto, "hostIP": ip}
                    for ip, proto, p in ports
                ],
            }
        ]
    }


PORTS = "node(s) didn't have free ports for the requested pod ports"
PORT_CASES = [
    ("no-host-ports", _ports(), {}),
    ("same-port-any-ip", _ports(("", "TCP", 8080)), {PORTS: ["a"]}),
    ("other-protocol", _ports(("", "UDP", 8080)), {}),
    ("specific-ip-vs-any", _ports(("10.0.0.1", "TCP", 8080)), {PORTS: ["a"]}),
    ("specific-ip-vs-other-ip", _ports(("10.0.0.2", "TCP", 9090)), {}),
    ("specific-ip-same", _ports(("10.0.0.1", "TCP", 9090)), {PORTS: ["b"]}),
    ("any-ip-vs-specific", _ports(("0.0.0.0", "TCP", 9090)), {PORTS: ["b"]}),
]


@pytest.mark.parametrize(
    ("spec", "want"), [c[1:] for c in PORT_CASES], ids=[c[0] for c in PORT_CASES]
)
def test_nodeports(spec: dict[str, Any], want: dict[str, list[str]]) -> None:
    t = _table(_node("a"), _node("b"), _node("c"))
    t.add_pod(
        pod_info({"metadata": {"name": "x", "namespace": "ns"}, "spec": _ports(("", "TCP", 8080))}),
        "a",
    )
    t.add_pod(
        pod_info(
            {
                "metadata": {"name": "y", "namespace": "ns"},
                "spec": _ports(("10.0.0.1", "TCP", 9090)),
            }
        ),
        "b",
    )
    got = NodePorts().filter(pod_info(_pod(**spec)), t, np.arange(3))
    assert _summary(got, t) == want


def _taint(key: str, value: str, effect: str) -> dict[str, str]:
    return {"key": key, "value": value, "effect": effect}


TAINT_CASES = [
    (
        "none",
        [],
        {
            "node(s) had untolerated taint {role: x}": ["b"],
            "node(s) had untolerated taint {gpu: }": ["c"],
        },
    ),
    (
        "equal",
        [{"key": "role", "operator": "Equal", "value": "x", "effect": "NoSchedule"}],
        {
            "node(s) had untolerated taint {gpu: }": ["c"],
        },
    ),
    (
        "equal-wrong-value",
        [{"key": "role", "value": "y"}],
        {
            "node(s) had untolerated taint {role: x}": ["b"],
            "node(s) had untolerated taint {gpu: }": ["c"],
        },
    ),
    (
        "exists-key",
        [{"key": "gpu", "operator": "Exists"}],
        {
            "node(s) had untolerated taint {role: x}": ["b"],
        },
    ),
    ("exists-all", [{"operator": "Exists"}], {}),
    (
        "effect-mismatch",
        [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        {
            "node(s) had untolerated taint {role: x}": ["b"],
            "node(s) had untolerated taint {gpu: }": ["c"],
        },
    ),
]


@pytest.mark.parametrize(
    ("tolerations", "want"), [c[1:] for c in TAINT_CASES], ids=[c[0] for c in TAINT_CASES]
)
def test_taint_filter(tolerations: list[dict[str, str]], want: dict[str, list[str]]) -> None:
    t = _table(
        _node("a", [_taint("soft", "", "PreferNoSchedule")]),
        _node("b", [_taint("role", "x", "NoSchedule")]),
        _node("c", [_taint("gpu", "", "NoExecute")]),
        _node("d"),
    )
    got = TaintToleration().filter(pod_info(_pod(tolerations=tolerations)), t, np.arange(4))
    assert _summary(got, t) == want


SCORE_CASES = [
    ("untolerated", [], [50.0, 0.0, 100.0]),
    (
        "tolerated",
        [{"key": "s1", "operator": "Exists", "effect": "PreferNoSchedule"}],
        [100.0, 0.0, 100.0],
    ),
    ("all", [{"operator": "Exists"}], [100.0, 100.0, 100.0]),
    (
        "noschedule-toleration-ignored",
        [{"operator": "Exists", "effect": "NoSchedule"}],
        [50.0, 0.0, 100.0],
    ),
]


@pytest.mark.parametrize(
    ("tolerations", "want"), [c[1:] for c in SCORE_CASES], ids=[c[0] for c in SCORE_CASES]
)
def test_taint_score(tolerations: list[dict[str, str]], want: list[float]) -> None:
    t = _table(
        _node("a", [_taint("s1", "", "PreferNoSchedule")]),
        _node("b", [_taint("s1", "", "PreferNoSchedule"), _taint("s2", "", "PreferNoSchedule")]),
        _node("c"),
    )
    got = TaintToleration().score(pod_info(_pod(tolerations=tolerations)), t, np.arange(3))
    assert got.tolist() == want
