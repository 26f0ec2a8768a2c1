"""Pod requests, priority resolution and the binding overcommit guard (admission.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from corral.api.errors import StatusError
from corral.apiserver.admission import NodeUsage, PriorityAdmission, pod_requests
from corral.storage.base import DELETE, KV, PUT, Event
from corral.storage.cache import WatchCache

Obj = dict[str, Any]
GI = 1024**3


def c(cpu: str = "", memory: str = "", **kw: Any) -> Obj:
    req = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    return {"name": "x", "resources": {"requests": req}, **kw}


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ({"containers": [c("100m", "1Gi"), c("1", "")]}, (1100, GI, 0, 1)),
        ({"containers": [c("100m")], "initContainers": [c("2")]}, (2000, 0, 0, 1)),
        (
            {
                "containers": [c("100m")],
                "initContainers": [c("1", restartPolicy="Always"), c("500m")],
            },
            (1500, 0, 0, 1),
        ),
        ({"containers": [c("100m")], "overhead": {"cpu": "50m"}}, (150, 0, 0, 1)),
        ({"containers": [{"name": "x"}]}, (0, 0, 0, 1)),
    ],
    ids=["sum", "init-max", "sidecar", "overhead", "none"],
)
def test_pod_requests(spec: Obj, want: tuple[int, ...]) -> None:
    assert pod_requests({"spec": spec}) == want


class Fixture:
    def __init__(self) -> None:
        self.cache = WatchCache()
        fields = {
            "spec.nodeName": lambda o: str(o.get("spec", {}).get("nodeName") or ""),
            "status.phase": lambda o: str(o.get("status", {}).get("phase") or ""),
        }
        self.pods = self.cache.register("/registry/core/pods/", fields)
        self.nodes = self.cache.register("/registry/core/nodes/", {})
        self.classes = self.cache.register("/registry/scheduling.k8s.io/priorityclasses/", {})
        self.rev = 0

    def put(self, key: str, obj: Obj, delete: bool = False) -> None:
        self.rev += 1
        kv = KV(key, obj, orjson.dumps(obj), self.rev, self.rev)
        self.cache.apply(Event(DELETE if delete else PUT, kv, None, self.rev))

    def pod(self, name: str, cpu: str, node: str = "", phase: str = "Running", **kw: Any) -> Obj:
        obj = {
            "metadata": {"name": name, "namespace": "ns", "uid": name},
            "spec": {"containers": [c(cpu)], "nodeName": node, **kw},
            "status": {"phase": phase},
        }
        self.put(f"/registry/core/pods/ns/{name}", obj)
        return obj


@pytest.fixture
def f() -> Fixture:
    fx = Fixture()
    fx.put(
        "/registry/core/nodes/n1",
        {"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "1", "pods": "3"}}},
    )
    return fx


def test_binding_guard_counts_bound_non_terminal_pods(f: Fixture) -> None:
    usage = NodeUsage(f.pods, f.nodes)
    f.cache.listeners.append(usage.on_change)
    f.pod("a", "400m", "n1")
    f.pod("done", "900m", "n1", phase="Succeeded")
    assert usage.used["n1"] == [400, 0, 0, 1]
    new = {"metadata": {"name": "b"}, "spec": {"containers": [c("700m")], "nodeName": "n1"}}
    with pytest.raises(StatusError) as e:
        usage.reserve(new, "/registry/core/pods/ns/b")
    assert e.value.code == 409
    assert e.value.message == (
        'Operation cannot be fulfilled on pods/binding "b": node n1 does not have enough cpu: '
        "the pod requests 700m, 600m of 1 is free"
    )
    release = usage.reserve({**new, "spec": {**new["spec"], "containers": [c("600m")]}}, "k")
    assert release is not None
    with pytest.raises(StatusError):  # the reservation holds the rest
        usage.reserve({**new, "spec": {**new["spec"], "containers": [c("1m")]}}, "k2")
    release()
    f.pod("a", "400m", "n1", phase="Failed")  # finished: released
    assert "n1" not in usage.used


def test_binding_guard_pod_count_and_unknown_node(f: Fixture) -> None:
    usage = NodeUsage(f.pods, f.nodes)
    f.cache.listeners.append(usage.on_change)
    for i in range(3):
        f.pod(f"p{i}", "", "n1")
    with pytest.raises(StatusError, match="does not have enough pods"):
        usage.reserve({"metadata": {"name": "q"}, "spec": {"nodeName": "n1"}}, "k")
    assert usage.reserve({"metadata": {"name": "q"}, "spec": {"nodeName": "ghost"}}, "k") is None


def test_binding_guard_reads_the_node_as_it_is_now(f: Fixture) -> None:
    """The allocatable kept per node revision follows a Node's update, delete and
    re-creation."""
    usage = NodeUsage(f.pods, f.nodes)
    f.cache.listeners.append(usage.on_change)
    pod = {"metadata": {"name": "b"}, "spec": {"containers": [c("2")], "nodeName": "n1"}}
    with pytest.raises(StatusError, match="of 1 is free"):
        usage.reserve(pod, "k")
    node = {"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "4"}}}
    f.put("/registry/core/nodes/n1", node)
    release = usage.reserve(pod, "k")
    assert release is not None
    release()
    f.put("/registry/core/nodes/n1", node, delete=True)
    assert usage.reserve(pod, "k") is None  # an unknown node
    f.put("/registry/core/nodes/n1", {**node, "status": {"allocatable": {"cpu": "500m"}}})
    with pytest.raises(StatusError, match="of 500m is free"):
        usage.reserve(pod, "k")


def test_binding_guard_keeps_the_allocatable_over_heartbeats(f: Fixture) -> None:
    """A Node write that leaves allocatable and capacity alone (a heartbeat) keeps what
    the guard computed; one that changes them is seen at the next binding."""
    usage = NodeUsage(f.pods, f.nodes)
    f.cache.listeners.append(usage.on_change)
    node: Obj = {"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "1"}}}
    f.put("/registry/core/nodes/n1", node)
    pod = {"metadata": {"name": "b"}, "spec": {"containers": [c("600m")], "nodeName": "n1"}}
    release = usage.reserve(pod, "k")
    assert release is not None
    release()
    kept = usage._allocatable["n1"]
    beat = {**node, "status": {**node["status"], "conditions": [{"type": "Ready"}]}}
    f.put("/registry/core/nodes/n1", beat)
    release = usage.reserve(pod, "k")
    assert release is not None
    release()
    assert usage._allocatable["n1"] is kept
    f.put("/registry/core/nodes/n1", {**beat, "status": {"capacity": {"cpu": "500m"}}})
    with pytest.raises(StatusError, match="of 500m is free"):
        usage.reserve(pod, "k")


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ({"priorityClassName": "high"}, (1000, "PreemptLowerPriority", "high")),
        ({"priorityClassName": "never"}, (5, "Never", "never")),
        ({"priorityClassName": "system-node-critical"}, (2000001000, "PreemptLowerPriority", None)),
        ({}, (0, None, None)),
        ({"priorityClassName": "nope"}, "no PriorityClass with name nope was found"),
        ({"priorityClassName": "high", "priority": 3}, "the integer value of priority (3)"),
    ],
    ids=["class", "never", "system", "none", "unknown", "mismatch"],
)
def test_priority_admission(f: Fixture, spec: Obj, want: Any) -> None:
    for name, v, policy in (("high", 1000, None), ("never", 5, "Never")):
        pc: Obj = {"metadata": {"name": name}, "value": v}
        if policy:
            pc["preemptionPolicy"] = policy
        f.put(f"/registry/scheduling.k8s.io/priorityclasses/{name}", pc)
    adm = PriorityAdmission(f.pods, f.classes)
    pod: Obj = {"metadata": {"name": "p"}, "spec": dict(spec)}
    if isinstance(want, str):
        with pytest.raises(StatusError) as e:
            adm.admit(pod, "/registry/core/pods/ns/p")
        assert e.value.code == 403 and e.value.message.startswith(f'pods "p" is forbidden: {want}')
        return
    adm.admit(pod, "/registry/core/pods/ns/p")
    priority, policy, class_name = want
    assert pod["spec"]["priority"] == priority
    assert pod["spec"].get("preemptionPolicy") == policy
    assert pod["spec"].get("priorityClassName") == (class_name or spec.get("priorityClassName"))


def test_global_default_class(f: Fixture) -> None:
    f.put(
        "/registry/scheduling.k8s.io/priorityclasses/base",
        {"metadata": {"name": "base"}, "value": 42, "globalDefault": True},
    )
    pod: Obj = {"metadata": {"name": "p"}, "spec": {"priority": 0}}
    PriorityAdmission(f.pods, f.classes).admit(pod, "/registry/core/pods/ns/p")
    assert pod["spec"]["priority"] == 42 and pod["spec"]["priorityClassName"] == "base"
