"""PodGC: pure decisions by table, and ``gc`` passes against the in-memory ``FakeClient``
(test_job.py) with a ``FakeClock`` advanced by hand (no sleeping, no timers)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from test_job import FakeClient, FakeClock

from corral.client.rest import NODES, PODS, Client
from corral.controllers.base import InformerFactory
from corral.controllers.manager import CONTROLLERS, OFF_BY_DEFAULT, _options, build_parser
from corral.controllers.podgc import (
    DELETION_BY_POD_GC,
    DISRUPTION_TARGET,
    NODE_GONE_MESSAGE,
    TAINT_OUT_OF_SERVICE,
    PodGCController,
    Quarantine,
    failed_status,
    missing_nodes,
    node_gone_condition,
    terminated_to_delete,
    terminating_out_of_service,
    unscheduled_terminating,
)
from corral.util.clock import rfc3339

Obj = dict[str, Any]
T0 = 1_700_000_000.0


def pod(
    name: str,
    node: str = "",
    phase: str = "Running",
    created: float = T0,
    terminating: bool = False,
    **status: Any,
) -> Obj:
    meta: Obj = {"name": name, "namespace": "ns", "creationTimestamp": rfc3339(created)}
    if terminating:
        meta["deletionTimestamp"] = rfc3339(created + 1)
    spec: Obj = {"containers": [{"name": "c", "image": "i"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": meta, "spec": spec, "status": {"phase": phase, **status}}


def node(name: str, ready: str = "True", taints: list[Obj] | None = None) -> Obj:
    return {
        "metadata": {"name": name},
        "spec": {"taints": taints or []},
        "status": {"conditions": [{"type": "Ready", "status": ready}]},
    }


OOS = [{"key": TAINT_OUT_OF_SERVICE, "value": "nodeshutdown", "effect": "NoExecute"}]


# --- pure decisions -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pods", "threshold", "want"),
    [
        ([pod("a", phase="Failed"), pod("b", phase="Succeeded")], 2, []),
        ([pod("a", phase="Failed"), pod("b", phase="Succeeded")], 0, []),
        (
            [
                pod("new", phase="Succeeded", created=T0 + 9),
                pod("old", phase="Failed", created=T0),
                pod("mid", phase="Succeeded", created=T0 + 5),
                pod("run", phase="Running", created=T0 - 50),
            ],
            1,
            ["old", "mid"],
        ),
        (
            [
                pod("old", phase="Failed", created=T0),
                pod("ev", phase="Failed", created=T0 + 9, reason="Evicted"),
            ],
            1,
            ["ev"],
        ),
        ([pod("b", phase="Failed"), pod("a", phase="Failed")], 1, ["a"]),
    ],
    ids=["at-threshold", "disabled", "oldest-first", "evicted-first", "name-breaks-ties"],
)
def test_terminated_to_delete(pods: list[Obj], threshold: int, want: list[str]) -> None:
    got = terminated_to_delete(pods, threshold)
    assert [p["metadata"]["name"] for p in got] == want


@pytest.mark.parametrize(
    ("p", "nodes", "picked"),
    [
        (pod("a", "n1", terminating=True), {"n1": node("n1", "False", OOS)}, True),
        (pod("a", "n1", terminating=True), {"n1": node("n1", "True", OOS)}, False),
        (pod("a", "n1", terminating=True), {"n1": node("n1", "Unknown")}, False),
        (pod("a", "n1"), {"n1": node("n1", "False", OOS)}, False),
        (pod("a", "gone", terminating=True), {}, False),
    ],
    ids=["not-ready-tainted", "ready", "untainted", "not-terminating", "node-not-cached"],
)
def test_terminating_out_of_service(p: Obj, nodes: dict[str, Obj], picked: bool) -> None:
    assert bool(terminating_out_of_service([p], nodes)) is picked


def test_unscheduled_terminating_and_missing_nodes() -> None:
    pods = [pod("a", terminating=True), pod("b"), pod("c", "n1", terminating=True), pod("d", "x")]
    assert [p["metadata"]["name"] for p in unscheduled_terminating(pods)] == ["a"]
    assert missing_nodes(pods, ["n1"]) == {"x"}


def test_quarantine_comes_due_once_and_skips_nodes_that_came_back() -> None:
    q = Quarantine(40)
    q.observe(["x", "y"], T0)
    q.observe(["x"], T0 + 20)  # seen again: the first sighting counts
    assert q.take_due([], T0 + 39) == []
    assert q.take_due(["y"], T0 + 40) == ["x"]  # y registered meanwhile: dropped
    assert "x" not in q and "y" not in q
    assert q.take_due([], T0 + 100) == []


@pytest.mark.parametrize(
    ("p", "want"),
    [
        (pod("a", phase="Succeeded"), None),
        (pod("a", phase="Failed"), None),
        (
            pod("a", conditions=[{"type": "Ready", "status": "True"}]),
            {
                "phase": "Failed",
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {**node_gone_condition(), "lastTransitionTime": rfc3339(T0)},
                ],
            },
        ),
        (
            pod(
                "a",
                conditions=[
                    {"type": DISRUPTION_TARGET, "status": "True", "lastTransitionTime": "then"}
                ],
            ),
            {
                "phase": "Failed",
                "conditions": [{**node_gone_condition(), "lastTransitionTime": "then"}],
            },
        ),
    ],
    ids=["succeeded-left", "failed-left", "running-gets-condition", "condition-replaced"],
)
def test_failed_status(p: Obj, want: Obj | None) -> None:
    assert failed_status(p, node_gone_condition(), T0) == want


def test_registered_with_flags() -> None:
    assert CONTROLLERS["podgc"] is PodGCController and "podgc" not in OFF_BY_DEFAULT
    args = build_parser().parse_args(["--kubeconfig", "k"])
    assert _options(args)["podgc"] == {
        "terminated_pod_gc_threshold": 12500,
        "gc_check_period": 20.0,
        "quarantine_time": 40.0,
    }
    args = build_parser().parse_args(
        ["--kubeconfig", "k", "--terminated-pod-gc-threshold", "0", "--pod-gc-period", "500ms"]
    )
    assert (args.terminated_pod_gc_threshold, args.pod_gc_period) == (0, 0.5)


# --- gc passes ----------------------------------------------------------------------------------
class Harness:
    def __init__(self, threshold: int = 12500) -> None:
        self.clock = FakeClock(T0)
        self.client = FakeClient(self.clock)
        factory = InformerFactory(cast(Client, self.client))
        self.gc = PodGCController(
            cast(Client, self.client),
            factory,
            clock=self.clock,
            terminated_pod_gc_threshold=threshold,
        )
        self.client.attach(factory, NODES, PODS)

    def names(self) -> list[str]:
        return [p["metadata"]["name"] for p in self.client.of("pods")]


async def test_orphaned_pods_deleted_only_after_quarantine() -> None:
    h = Harness()
    h.client.seed(NODES, node("n1"))
    h.client.seed(PODS, pod("kept", "n1"))
    h.client.seed(PODS, pod("orphan", "lost"))
    h.client.seed(PODS, pod("done", "lost", phase="Succeeded"))
    await h.gc.gc()  # first sighting: quarantined
    h.clock.advance(20)
    await h.gc.gc()
    assert h.names() == ["done", "kept", "orphan"] and not h.client.actions
    h.clock.advance(20)
    await h.gc.gc()  # 40 s later and the GET still says 404
    assert h.names() == ["kept"]
    # Running -> Failed + DisruptionTarget, then deleted; the terminal one only deleted
    assert sorted(h.client.actions) == [
        ("delete", "pods", "done"),
        ("delete", "pods", "orphan"),
        ("patch", "pods", "orphan"),
    ]


async def test_orphan_status_patched_before_delete() -> None:
    h = Harness()
    orphan = pod("orphan", "lost")
    orphan["metadata"]["finalizers"] = ["keep"]
    h.client.seed(PODS, orphan)
    for _ in range(3):
        await h.gc.gc()
        h.clock.advance(20)
    (left,) = h.client.of("pods")  # the finalizer keeps it: its last status is visible
    assert left["metadata"].get("deletionTimestamp")
    assert left["status"]["phase"] == "Failed"
    (dt,) = [c for c in left["status"]["conditions"] if c["type"] == DISRUPTION_TARGET]
    assert (dt["reason"], dt["message"]) == (DELETION_BY_POD_GC, NODE_GONE_MESSAGE)


async def test_node_that_comes_back_keeps_its_pods() -> None:
    h = Harness()
    h.client.seed(PODS, pod("p", "late"))
    await h.gc.gc()
    h.clock.advance(30)
    h.client.seed(NODES, node("late"))  # registered inside the quarantine
    h.clock.advance(10)
    await h.gc.gc()
    h.clock.advance(60)
    await h.gc.gc()
    assert h.names() == ["p"] and not h.client.actions


async def test_node_missing_from_cache_but_found_by_get_keeps_its_pods() -> None:
    h = Harness()
    h.client.seed(PODS, pod("p", "stale"))
    await h.gc.gc()
    h.client.objects[("nodes", "", "stale")] = node("stale")  # the cache lags the server
    h.clock.advance(40)
    await h.gc.gc()
    assert h.names() == ["p"] and not h.client.actions


async def test_terminating_unscheduled_and_out_of_service_deleted_at_once() -> None:
    h = Harness()
    h.client.seed(NODES, node("down", "False", OOS))
    h.client.seed(NODES, node("up", "True", OOS))
    h.client.seed(PODS, pod("unscheduled", terminating=True))
    h.client.seed(PODS, pod("oos", "down", terminating=True))
    h.client.seed(PODS, pod("ready-node", "up", terminating=True))
    h.client.seed(PODS, pod("pending"))
    await h.gc.gc()
    assert h.names() == ["pending", "ready-node"]


async def test_terminated_over_threshold_oldest_deleted() -> None:
    h = Harness(threshold=2)
    h.client.seed(NODES, node("n1"))
    for i in range(4):
        h.client.seed(PODS, pod(f"done-{i}", "n1", phase="Succeeded", created=T0 + i))
    h.client.seed(PODS, pod("running", "n1", created=T0 - 10))
    await h.gc.gc()
    assert h.names() == ["done-2", "done-3", "running"]
    assert all(a[0] == "delete" for a in h.client.actions)  # terminal: no status patch
