"""Tables for NodeResourcesFit, BalancedAllocation, NodeAffinity, InterPodAffinity and
PodTopologySpread."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from corral.scheduler.framework import Failure
from corral.scheduler.plugins.interpodaffinity import InterPodAffinity
from corral.scheduler.plugins.nodeaffinity import NodeAffinity
from corral.scheduler.plugins.noderesources import (
    NodeResourcesBalancedAllocation,
    NodeResourcesFit,
)
from corral.scheduler.plugins.podtopologyspread import PodTopologySpread
from corral.scheduler.snapshot import NodeTable, pod_info


def _node(
    name: str, cpu: str = "4", mem: str = "8Gi", pods: str = "110", **labels: str
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}},
        "spec": {},
        "status": {"allocatable": {"cpu": cpu, "memory": mem, "pods": pods}},
    }


def _pod(
    name: str = "p",
    cpu: str | None = None,
    mem: str | None = None,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    req = {k: v for k, v in (("cpu", cpu), ("memory", mem)) if v is not None}
    return {
        "metadata": {"name": name, "namespace": "ns", "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "resources": {"requests": req}}], **spec},
    }


def _summary(failures: list[Failure], table: NodeTable) -> dict[str, list[str]]:
    rows = np.arange(len(table))
    return {f.reason: [table.names[r] for r in rows[f.mask]] for f in failures}


def _table(*nodes: dict[str, Any]) -> NodeTable:
    t = NodeTable()
    for n in nodes:
        t.upsert_node(n)
    return t


TMP = {"Too many pods": ["c"]}  # c allows one pod and runs one
FIT_CASES = [
    ("fits", _pod(cpu="1", mem="1Gi"), TMP),
    ("cpu", _pod(cpu="3"), {**TMP, "Insufficient cpu": ["a"]}),
    (
        "cpu-and-memory",
        _pod(cpu="3", mem="7Gi"),
        {**TMP, "Insufficient cpu": ["a"], "Insufficient memory": ["a"]},
    ),
    ("too-big", _pod(cpu="5"), {**TMP, "Insufficient cpu": ["a", "b", "c"]}),
    ("best-effort-only-pod-count", _pod(), TMP),
    ("millicores", _pod(cpu="2001m"), {**TMP, "Insufficient cpu": ["a"]}),
]


@pytest.mark.parametrize(("pod", "want"), [c[1:] for c in FIT_CASES], ids=[c[0] for c in FIT_CASES])
def test_fit_filter(pod: dict[str, Any], want: dict[str, list[str]]) -> None:
    t = _table(_node("a"), _node("b"), _node("c", pods="1"))
    t.add_pod(pod_info(_pod("used", cpu="2", mem="2Gi")), "a")
    t.add_pod(pod_info(_pod("other", cpu="1", mem="1Gi")), "c")
    assert _summary(NodeResourcesFit().filter(pod_info(pod), t, np.arange(3)), t) == want


SCORE_CASES = [
    # a: 2 cpu / 2Gi used of 4 / 8Gi; b: empty; the pod asks 1 cpu / 2Gi
    ("least", NodeResourcesFit("LeastAllocated"), [(25 + 50) // 2, (75 + 75) // 2]),
    ("most", NodeResourcesFit("MostAllocated"), [(75 + 50) // 2, (25 + 25) // 2]),
    # fractions a: 0.75 cpu, 0.5 mem -> std 0.125; b: 0.25, 0.25 -> 0
    ("balanced", NodeResourcesBalancedAllocation(), [87, 100]),
]


@pytest.mark.parametrize(
    ("plugin", "want"), [c[1:] for c in SCORE_CASES], ids=[c[0] for c in SCORE_CASES]
)
def test_resource_scores(plugin: Any, want: list[int]) -> None:
    t = _table(_node("a"), _node("b"))
    t.add_pod(pod_info(_pod("used", cpu="2", mem="2Gi")), "a")
    got = plugin.score(pod_info(_pod(cpu="1", mem="2Gi")), t, np.arange(2))
    assert got.tolist() == want


def test_least_allocated_uses_nonzero_defaults() -> None:
    t = _table(_node("a", cpu="1", mem="1Gi"), _node("b", cpu="1", mem="1Gi"))
    t.add_pod(pod_info(_pod("best-effort")), "a")  # counts as 100m / 200Mi for scoring
    got = NodeResourcesFit().score(pod_info(_pod()), t, np.arange(2))
    assert got[1] > got[0]


AFF = "node(s) didn't match Pod's node affinity/selector"


def _required(*terms: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": t} for t in terms]
            }
        }
    }


def _expr(key: str, op: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": op, "values": list(values)}


AFFINITY_CASES = [
    ("selector", {"nodeSelector": {"zone": "z1"}}, ["b", "c"]),
    ("in", {"affinity": _required([_expr("zone", "In", "z1", "z2")])}, ["c"]),
    ("notin", {"affinity": _required([_expr("zone", "NotIn", "z1")])}, ["a"]),
    ("exists", {"affinity": _required([_expr("gpu", "Exists")])}, ["b"]),
    ("doesnotexist", {"affinity": _required([_expr("gpu", "DoesNotExist")])}, ["a", "c"]),
    ("gt", {"affinity": _required([_expr("cores", "Gt", "8")])}, ["b", "c"]),
    ("lt", {"affinity": _required([_expr("cores", "Lt", "8")])}, ["a", "c"]),
    (
        "terms-or",
        {"affinity": _required([_expr("zone", "In", "z2")], [_expr("gpu", "Exists")])},
        [],
    ),
    (
        "and-within-term",
        {"affinity": _required([_expr("zone", "In", "z1"), _expr("gpu", "Exists")])},
        ["b", "c"],
    ),
    (
        "match-fields",
        {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchFields": [_expr("metadata.name", "In", "b")]}]
                    }
                }
            }
        },
        ["a", "c"],
    ),
    (
        "selector-and-affinity",
        {"nodeSelector": {"zone": "z1"}, "affinity": _required([_expr("gpu", "Exists")])},
        ["b", "c"],
    ),
]


@pytest.mark.parametrize(
    ("spec", "rejected"), [c[1:] for c in AFFINITY_CASES], ids=[c[0] for c in AFFINITY_CASES]
)
def test_node_affinity_filter(spec: dict[str, Any], rejected: list[str]) -> None:
    t = _table(
        _node("a", zone="z1", gpu="yes", cores="16"),
        _node("b", zone="z2", cores="7"),
        _node("c", zone="z3", gpu="yes"),
    )
    got = _summary(NodeAffinity().filter(pod_info(_pod(**spec)), t, np.arange(3)), t)
    assert got == ({AFF: rejected} if rejected else {})


def test_node_affinity_preferred_score() -> None:
    t = _table(_node("a", zone="z1", gpu="yes"), _node("b", zone="z2"), _node("c"))
    affinity = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 30, "preference": {"matchExpressions": [_expr("zone", "In", "z1")]}},
                {"weight": 10, "preference": {"matchExpressions": [_expr("zone", "Exists")]}},
            ]
        }
    }
    got = NodeAffinity().score(pod_info(_pod(affinity=affinity)), t, np.arange(3))
    assert got.tolist() == [100, 25, 0]


def _pod_term(key: str, **labels: str) -> dict[str, Any]:
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key}


INTERPOD_CASES = [
    (
        "affinity-zone",
        {
            "podAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [_pod_term("zone", app="db")]
            }
        },
        {},
        {"node(s) didn't match pod affinity rules": ["c", "d"]},
    ),
    (
        "affinity-host",
        {
            "podAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    _pod_term("kubernetes.io/hostname", app="db")
                ]
            }
        },
        {},
        {"node(s) didn't match pod affinity rules": ["b", "c", "d"]},
    ),
    (
        "affinity-first-of-group",
        {
            "podAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [_pod_term("zone", app="new")]
            }
        },
        {"app": "new"},
        {"node(s) didn't match pod affinity rules": ["d"]},
    ),
    (
        "anti-affinity-zone",
        {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [_pod_term("zone", app="db")]
            }
        },
        {},
        {"node(s) didn't match pod anti-affinity rules": ["a", "b"]},
    ),
    (
        "existing-anti-affinity",
        {},
        {"app": "web"},
        {"node(s) didn't satisfy existing pods anti-affinity rules": ["c"]},
    ),
]


@pytest.mark.parametrize(
    ("affinity", "labels", "want"),
    [c[1:] for c in INTERPOD_CASES],
    ids=[c[0] for c in INTERPOD_CASES],
)
def test_interpod_filter(
    affinity: dict[str, Any], labels: dict[str, str], want: dict[str, list[str]]
) -> None:
    t = _table(_node("a", zone="z1"), _node("b", zone="z1"), _node("c", zone="z2"), _node("d"))
    t.add_pod(pod_info(_pod("db", labels={"app": "db"})), "a")
    guard = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                _pod_term("kubernetes.io/hostname", app="web")
            ]
        }
    }
    t.add_pod(pod_info(_pod("guard", labels={"app": "guard"}, affinity=guard)), "c")
    got = InterPodAffinity().filter(
        pod_info(_pod(labels=labels, affinity=affinity)), t, np.arange(4)
    )
    assert _summary(got, t) == want


def test_interpod_preferred_score() -> None:
    t = _table(_node("a", zone="z1"), _node("b", zone="z1"), _node("c", zone="z2"))
    t.add_pod(pod_info(_pod("db", labels={"app": "db"})), "a")
    t.add_pod(pod_info(_pod("cache", labels={"app": "cache"})), "c")
    affinity = {
        "podAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "podAffinityTerm": _pod_term("zone", app="db")}
            ]
        },
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 5, "podAffinityTerm": _pod_term("zone", app="cache")}
            ]
        },
    }
    got = InterPodAffinity().score(pod_info(_pod(affinity=affinity)), t, np.arange(3))
    assert got.tolist() == [100, 100, 0]


def _spread(key: str, skew: int = 1, when: str = "DoNotSchedule", **extra: Any) -> dict[str, Any]:
    return {
        "maxSkew": skew,
        "topologyKey": key,
        "whenUnsatisfiable": when,
        "labelSelector": {"matchLabels": {"app": "web"}},
        **extra,
    }


SPREAD = "node(s) didn't match pod topology spread constraints"
SPREAD_CASES = [
    (
        "zone-skew-1",
        [_spread("zone")],
        {SPREAD: ["a", "b"], SPREAD + " (missing required label)": ["d"]},
    ),
    ("zone-skew-2", [_spread("zone", 2)], {SPREAD + " (missing required label)": ["d"]}),
    ("host-skew-1", [_spread("kubernetes.io/hostname")], {SPREAD: ["a", "d"]}),
    ("schedule-anyway-no-filter", [_spread("zone", when="ScheduleAnyway")], {}),
]


@pytest.mark.parametrize(
    ("constraints", "want"), [c[1:] for c in SPREAD_CASES], ids=[c[0] for c in SPREAD_CASES]
)
def test_spread_filter(constraints: list[dict[str, Any]], want: dict[str, list[str]]) -> None:
    t = _table(_node("a", zone="z1"), _node("b", zone="z1"), _node("c", zone="z2"), _node("d"))
    t.add_pod(pod_info(_pod("w1", labels={"app": "web"})), "a")
    t.add_pod(pod_info(_pod("w2", labels={"app": "web"})), "d")
    pod = _pod(labels={"app": "web"}, topologySpreadConstraints=constraints)
    got = PodTopologySpread().filter(pod_info(pod), t, np.arange(4))
    assert _summary(got, t) == want


@pytest.mark.parametrize(
    ("min_domains", "rejected"), [(None, []), (3, ["a", "b", "c"])], ids=["no-min", "min-3"]
)
def test_spread_min_domains(min_domains: int | None, rejected: list[str]) -> None:
    t = _table(_node("a", zone="z1"), _node("b", zone="z1"), _node("c", zone="z2"))
    t.add_pod(pod_info(_pod("w1", labels={"app": "web"})), "a")
    t.add_pod(pod_info(_pod("w2", labels={"app": "web"})), "c")
    extra: dict[str, Any] = {} if min_domains is None else {"minDomains": min_domains}
    pod = _pod(labels={"app": "web"}, topologySpreadConstraints=[_spread("zone", **extra)])
    got = PodTopologySpread().filter(pod_info(pod), t, np.arange(3))
    assert _summary(got, t) == ({SPREAD: rejected} if rejected else {})


def test_spread_score_prefers_emptier_domain() -> None:
    t = _table(_node("a", zone="z1"), _node("b", zone="z1"), _node("c", zone="z2"), _node("d"))
    for i in range(2):
        t.add_pod(pod_info(_pod(f"w{i}", labels={"app": "web"})), "a")
    pod = _pod(
        labels={"app": "web"}, topologySpreadConstraints=[_spread("zone", when="ScheduleAnyway")]
    )
    got = PodTopologySpread().score(pod_info(pod), t, np.arange(4))
    assert got[2] == 100 and got[0] == got[1] < 100 and got[3] == 0
