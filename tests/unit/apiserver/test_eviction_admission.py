"""DefaultTolerationSeconds (pod create) and the disruption-budget check at eviction."""

from __future__ import annotations

from typing import Any

import pytest

from corral.api.errors import StatusError
from corral.apiserver.admission import (
    PDB_VIOLATION,
    DefaultTolerationSeconds,
    DisruptionBudgets,
    desired_healthy,
)

from .test_admission import Fixture

Obj = dict[str, Any]
NR, UR = "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"


def added(nr: int = 300, ur: int = 300) -> list[Obj]:
    return [
        {"key": NR, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": nr},
        {"key": UR, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": ur},
    ]


@pytest.mark.parametrize(
    ("given", "want"),
    [
        ([], added()),
        ([{"key": "x", "operator": "Exists"}], [{"key": "x", "operator": "Exists"}, *added()]),
        ([{"operator": "Exists"}], [{"operator": "Exists"}]),
        (
            [{"operator": "Exists", "effect": "NoExecute"}],
            [{"operator": "Exists", "effect": "NoExecute"}],
        ),
        ([{"key": UR, "operator": "Exists"}], [{"key": UR, "operator": "Exists"}, added()[0]]),
        (
            [{"key": NR, "operator": "Exists", "effect": "NoExecute"}],
            [{"key": NR, "operator": "Exists", "effect": "NoExecute"}, added()[1]],
        ),
        (
            [{"key": NR, "operator": "Exists", "effect": "NoSchedule"}],
            [{"key": NR, "operator": "Exists", "effect": "NoSchedule"}, *added()],
        ),
    ],
    ids=[
        "none",
        "other-key",
        "wildcard",
        "wildcard-noexecute",
        "unreachable-any-effect",
        "not-ready",
        "noschedule-only",
    ],
)
def test_default_toleration_seconds(given: list[Obj], want: list[Obj]) -> None:
    f = Fixture()
    pod: Obj = {"metadata": {"name": "p"}, "spec": {"tolerations": list(given)}}
    DefaultTolerationSeconds(f.pods).admit(pod, "/registry/core/pods/ns/p")
    assert pod["spec"]["tolerations"] == want


def test_default_toleration_seconds_configurable_and_create_only() -> None:
    f = Fixture()
    adm = DefaultTolerationSeconds(f.pods, 7, 2)
    pod: Obj = {"metadata": {"name": "p"}, "spec": {}}
    adm.admit(pod, "/registry/core/pods/ns/p")
    assert pod["spec"]["tolerations"] == added(7, 2)
    f.pod("q", "1m")
    existing: Obj = {"metadata": {"name": "q"}, "spec": {}}
    adm.admit(existing, "/registry/core/pods/ns/q")
    assert "tolerations" not in existing["spec"]


@pytest.mark.parametrize(
    ("spec", "expected", "want"),
    [
        ({"minAvailable": 2}, 3, 2),
        ({"minAvailable": "50%"}, 3, 2),
        ({"maxUnavailable": 1}, 3, 2),
        ({"maxUnavailable": "50%"}, 3, 1),
        ({"maxUnavailable": 5}, 3, 0),
        ({}, 3, 0),
    ],
    ids=[
        "min-int",
        "min-percent-rounds-up",
        "max-int",
        "max-percent-rounds-up",
        "max-above",
        "none",
    ],
)
def test_desired_healthy(spec: Obj, expected: int, want: int) -> None:
    assert desired_healthy(spec, expected) == want


class PDBFixture(Fixture):
    def __init__(self) -> None:
        super().__init__()
        self.pdbs = self.cache.register("/registry/policy/poddisruptionbudgets/", {})

    def ready_pod(self, name: str, ready: bool = True, app: str = "web", **meta: Any) -> Obj:
        obj = {
            "metadata": {
                "name": name,
                "namespace": "ns",
                "uid": name,
                "labels": {"app": app},
                **meta,
            },
            "spec": {"containers": [{"name": "c"}], "nodeName": "n1"},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        }
        self.put(f"/registry/core/pods/ns/{name}", obj)
        return obj

    def pdb(self, name: str, **spec: Any) -> None:
        obj = {
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec},
        }
        self.put(f"/registry/policy/poddisruptionbudgets/ns/{name}", obj)


def key(name: str) -> str:
    return f"/registry/core/pods/ns/{name}"


def test_eviction_honours_min_available_with_reservations() -> None:
    f = PDBFixture()
    pods = [f.ready_pod(n) for n in ("a", "b", "c")]
    f.pdb("web", minAvailable=2)
    guard = DisruptionBudgets(f.pods, f.pdbs)
    release = guard.admit(pods[0], key("a"))
    assert release is not None
    with pytest.raises(StatusError) as e:  # "a" is being evicted: 2 healthy left, none spare
        guard.admit(pods[1], key("b"))
    assert (e.value.code, e.value.reason, e.value.message) == (
        429,
        "TooManyRequests",
        PDB_VIOLATION,
    )
    assert e.value.details == {
        "causes": [
            {
                "reason": "DisruptionBudget",
                "message": "The disruption budget web needs 2 healthy pods and has 2 currently",
            }
        ]
    }
    release()
    assert guard.admit(pods[1], key("b")) is not None


def test_eviction_without_budget_or_of_unready_pods() -> None:
    f = PDBFixture()
    other = f.ready_pod("x", app="other")
    guard = DisruptionBudgets(f.pods, f.pdbs)
    f.pdb("web", maxUnavailable=0)
    assert guard.admit(other, key("x")) is None  # no budget selects it
    a = f.ready_pod("a")
    sick = f.ready_pod("sick", ready=False)
    with pytest.raises(StatusError):
        guard.admit(a, key("a"))
    # IfHealthyBudget: an unready pod may go only while the budget is met (1 of 2 is not)
    with pytest.raises(StatusError):
        guard.admit(sick, key("sick"))
    f.pdb("web", maxUnavailable=0, unhealthyPodEvictionPolicy="AlwaysAllow")
    assert guard.admit(sick, key("sick")) is None
    pending = {**a, "status": {"phase": "Pending"}}
    assert guard.admit(pending, key("a")) is None


def test_two_budgets_are_an_error() -> None:
    f = PDBFixture()
    a = f.ready_pod("a")
    f.pdb("one", minAvailable=0)
    f.pdb("two", minAvailable=0)
    with pytest.raises(StatusError) as e:
        DisruptionBudgets(f.pods, f.pdbs).admit(a, key("a"))
    assert e.value.code == 500
    assert "more than one PodDisruptionBudget" in e.value.message
