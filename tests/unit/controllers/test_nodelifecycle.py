"""Node lifecycle and taint eviction controllers: pure decisions by table, and ``sync``
against the in-memory ``FakeClient`` (test_job.py) with a ``FakeClock`` advanced by hand.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from test_job import FakeClient, FakeClock

from corral.client.rest import LEASES, NODES, PODS, Client
from corral.controllers.base import InformerFactory
from corral.controllers.manager import CONTROLLERS, build_parser
from corral.controllers.nodelifecycle import (
    MESSAGE_UNKNOWN,
    REASON_UNKNOWN,
    TAINT_UNREACHABLE,
    NodeLifecycleController,
    desired_taints,
    parse_duration,
    reconcile_taints,
)
from corral.controllers.taint_eviction import TaintEvictionController, eviction_time
from corral.util.clock import rfc3339, rfc3339_micro

Obj = dict[str, Any]
T0 = 1_700_000_000.0


def cond(type_: str, status: str, beat: float = T0) -> Obj:
    return {
        "type": type_,
        "status": status,
        "reason": "KubeletReady",
        "message": "m",
        "lastHeartbeatTime": rfc3339(beat),
        "lastTransitionTime": rfc3339(beat),
    }


def node(name: str = "n1", ready: str | None = "True", **spec: Any) -> Obj:
    conds = [cond("MemoryPressure", "False"), cond("DiskPressure", "False")]
    if ready is not None:
        conds.append(cond("Ready", ready))
    return {"metadata": {"name": name}, "spec": spec, "status": {"conditions": conds}}


# --- pure helpers -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [("40s", 40), ("5", 5), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200), ("0.5", 0.5)],
    ids=["seconds", "bare", "compound", "millis", "hours", "float"],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "40x", "s", "1m 2s"], ids=["empty", "unit", "no-number", "space"]
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


NS, NE = "NoSchedule", "NoExecute"


@pytest.mark.parametrize(
    ("obj", "want"),
    [
        (node(), set()),
        (node(ready=None), set()),
        (
            node(ready="False"),
            {("node.kubernetes.io/not-ready", NS), ("node.kubernetes.io/not-ready", NE)},
        ),
        (node(ready="Unknown"), {(TAINT_UNREACHABLE, NS), (TAINT_UNREACHABLE, NE)}),
        (node(unschedulable=True), {("node.kubernetes.io/unschedulable", NS)}),
        (
            {
                **node(),
                "status": {"conditions": [cond("Ready", "True"), cond("DiskPressure", "True")]},
            },
            {("node.kubernetes.io/disk-pressure", NS)},
        ),
    ],
    ids=["healthy", "no-ready-condition", "not-ready", "unknown", "cordoned", "disk-pressure"],
)
def test_desired_taints(obj: Obj, want: set[tuple[str, str]]) -> None:
    assert desired_taints(obj) == want


def test_reconcile_taints_keeps_others_and_time_added() -> None:
    user = {"key": "dedicated", "value": "x", "effect": NE}
    old = {"key": TAINT_UNREACHABLE, "effect": NE, "timeAdded": "2020-01-01T00:00:00Z"}
    stale = {"key": "node.kubernetes.io/not-ready", "effect": NS}
    got = reconcile_taints(
        [user, old, stale], {(TAINT_UNREACHABLE, NE), (TAINT_UNREACHABLE, NS)}, T0
    )
    assert got == [user, old, {"key": TAINT_UNREACHABLE, "effect": NS}]
    assert reconcile_taints([user, old], set(), T0) == [user]
    added = reconcile_taints([], {(TAINT_UNREACHABLE, NE)}, T0)
    assert added == [{"key": TAINT_UNREACHABLE, "effect": NE, "timeAdded": rfc3339(T0)}]


UNREACH = {"key": TAINT_UNREACHABLE, "effect": NE, "timeAdded": rfc3339(T0)}
OTHER = {"key": "k", "value": "v", "effect": NE, "timeAdded": rfc3339(T0 + 10)}


def tol(key: str = TAINT_UNREACHABLE, seconds: int | None = None, **kw: Any) -> Obj:
    t: Obj = {"key": key, "operator": "Exists", "effect": NE, **kw}
    if seconds is not None:
        t["tolerationSeconds"] = seconds
    return t


@pytest.mark.parametrize(
    ("tolerations", "taints", "want"),
    [
        ([], [], None),
        ([], [UNREACH], float("-inf")),
        ([tol(seconds=300)], [UNREACH], T0 + 300),
        ([tol()], [UNREACH], None),
        ([tol(seconds=0)], [UNREACH], T0),
        ([tol(seconds=-5)], [UNREACH], T0),
        ([tol(seconds=300)], [UNREACH, OTHER], float("-inf")),
        ([tol(seconds=300), tol("k", 20)], [UNREACH, OTHER], T0 + 30),
        ([tol(seconds=300), {"operator": "Exists"}], [UNREACH, OTHER], T0 + 300),
        ([{"operator": "Exists"}], [UNREACH, OTHER], None),
    ],
    ids=[
        "no-taints",
        "untolerated",
        "tolerated-300",
        "tolerated-forever",
        "zero-seconds",
        "negative-seconds",
        "second-taint-untolerated",
        "earliest-deadline",
        "wildcard-forever-for-other",
        "wildcard-forever",
    ],
)
def test_eviction_time(tolerations: list[Obj], taints: list[Obj], want: float | None) -> None:
    from corral.util.clock import parse_rfc3339

    assert eviction_time(tolerations, taints, lambda t: parse_rfc3339(t["timeAdded"])) == want


def test_registered_with_flags() -> None:
    assert CONTROLLERS["nodelifecycle"] is NodeLifecycleController
    assert CONTROLLERS["taint-eviction-controller"] is TaintEvictionController
    args = build_parser().parse_args(
        ["--kubeconfig", "k", "--node-monitor-grace-period", "3s", "--node-monitor-period", "500ms"]
    )
    assert (args.node_monitor_grace_period, args.node_monitor_period) == (3.0, 0.5)
    assert build_parser().parse_args(["--kubeconfig", "k"]).node_monitor_grace_period == 40.0


# --- sync ------------------------------------------------------------------------------------
class Harness:
    def __init__(self) -> None:
        self.clock = FakeClock(T0)
        self.client = FakeClient(self.clock)
        factory = InformerFactory(cast(Client, self.client))
        self.nlc = NodeLifecycleController(
            cast(Client, self.client), factory, clock=self.clock, node_monitor_grace_period=40
        )
        self.tec = TaintEvictionController(cast(Client, self.client), factory, clock=self.clock)
        self.client.attach(factory, NODES, LEASES, PODS)

    def add_node(self, name: str = "n1") -> None:
        self.client.seed(NODES, node(name))
        self.renew(name)

    def renew(self, name: str = "n1") -> None:
        key = ("leases", "kube-node-lease", name)
        lease = {
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": 40,
                "renewTime": rfc3339_micro(self.clock.now()),
            },
        }
        if key in self.client.objects:
            lease["metadata"] = dict(self.client.objects[key]["metadata"])
        self.client.seed(LEASES, lease)

    def pod(self, name: str, tolerations: list[Obj], node_name: str = "n1") -> None:
        self.client.seed(
            PODS,
            {
                "metadata": {"name": name, "namespace": "ns"},
                "spec": {
                    "nodeName": node_name,
                    "tolerations": tolerations,
                    "containers": [{"name": "c"}],
                },
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            },
        )

    def node(self, name: str = "n1") -> Obj:
        return self.client.objects[("nodes", "", name)]

    def pods(self) -> list[str]:
        return [p["metadata"]["name"] for p in self.client.of("pods")]

    async def sync(self, name: str = "n1") -> None:
        await self.nlc.sync(name)
        await self.tec.sync(name)


async def test_node_goes_unknown_after_grace_then_recovers() -> None:
    h = Harness()
    h.add_node()
    h.pod("p", [tol(seconds=300)])
    await h.sync()
    assert "taints" not in h.node()["spec"]
    h.clock.advance(30)
    h.renew()  # renewed within the grace period: the next look (sync or pass) sees it
    await h.sync()
    h.clock.advance(30)
    await h.sync()
    assert {c["status"] for c in h.node()["status"]["conditions"]} == {"True", "False"}
    h.clock.advance(11)  # 41 s since the renewal was seen
    await h.sync()
    n = h.node()
    by_type = {c["type"]: c for c in n["status"]["conditions"]}
    assert {c["status"] for c in by_type.values()} == {"Unknown"}
    assert (by_type["Ready"]["reason"], by_type["Ready"]["message"]) == (
        REASON_UNKNOWN,
        MESSAGE_UNKNOWN,
    )
    assert by_type["Ready"]["lastHeartbeatTime"] == rfc3339(T0)  # unchanged, as upstream
    assert by_type["Ready"]["lastTransitionTime"] == rfc3339(h.clock.now())
    assert sorted((t["key"], t["effect"]) for t in n["spec"]["taints"]) == [
        (TAINT_UNREACHABLE, NE),
        (TAINT_UNREACHABLE, NS),
    ]
    assert next(t for t in n["spec"]["taints"] if t["effect"] == NE)["timeAdded"] == rfc3339(
        h.clock.now()
    )
    pod = h.client.objects[("pods", "ns", "p")]
    assert pod["status"]["conditions"][0]["status"] == "False"  # MarkPodsNotReady
    assert ("NodeNotReady", "Node n1 status is now: NodeNotReady") in h.client.events
    assert h.pods() == ["p"]  # tolerated for 300 s

    # the agent is back: lease renewed and Ready=True posted -> taints removed
    h.renew()
    await h.client.patch(
        NODES, "n1", {"status": {"conditions": [cond("Ready", "True", h.clock.now())]}}
    )
    await h.sync()
    assert "taints" not in h.node()["spec"]
    assert h.pods() == ["p"]
    assert ("TaintManagerEviction", "Cancelling deletion of Pod ns/p") in h.client.events


async def _drain(h: Harness) -> list[str]:
    """The keys queued for the node lifecycle controller, taken off its queue."""
    out = []
    while len(h.nlc.queue):
        key = await h.nlc.queue.get()
        h.nlc.queue.done(key)
        out.append(key)
    return sorted(out)


async def test_monitor_pass_reads_leases_and_queues_only_nodes_with_work() -> None:
    """As upstream's monitorNodeHealth: a Lease event queues nothing; the periodic pass
    sees the renewal (a node renewing only its Lease stays Ready past the grace period)
    and queues only the nodes whose ``sync`` has something to write."""
    h = Harness()
    h.add_node("n1")
    h.add_node("n2")
    assert await _drain(h) == ["n1", "n2"]  # new Nodes are synced at once
    await h.nlc.sync("n1")
    await h.nlc.sync("n2")
    h.clock.advance(30)
    h.renew("n1")
    assert await _drain(h) == []  # a renewal alone queues nothing
    h.nlc.monitor_pass()
    assert await _drain(h) == []  # both within their grace, Ready, untainted
    h.clock.advance(11)  # n1 renewed 11 s ago (seen by the pass); n2 silent for 41 s
    h.nlc.monitor_pass()
    assert await _drain(h) == ["n2"]
    await h.nlc.sync("n2")
    ready = {
        n: next(c["status"] for c in h.node(n)["status"]["conditions"] if c["type"] == "Ready")
        for n in ("n1", "n2")
    }
    assert ready == {"n1": "True", "n2": "Unknown"}
    assert await _drain(h) == ["n2"]  # its own update came back as an event
    h.nlc.monitor_pass()
    assert await _drain(h) == ["n2"]  # not Ready: looked at every pass (its pods)
    h.nlc.nodes.store["n1"] = {**h.node("n1"), "spec": {"unschedulable": True}}
    h.nlc.monitor_pass()  # a cordon whose event was missed: the pass finds the taint missing
    assert await _drain(h) == ["n1", "n2"]


async def test_pods_evicted_after_toleration_seconds_forever_kept() -> None:
    h = Harness()
    h.add_node()
    h.pod("default", [tol(seconds=300)])
    h.pod("short", [tol(seconds=2)])
    h.pod("forever", [tol()])
    h.pod("none", [])
    h.pod("elsewhere", [], node_name="n2")
    await h.sync()
    h.clock.advance(41)
    await h.sync()
    assert h.pods() == ["default", "elsewhere", "forever", "short"]  # untolerated: at once
    h.clock.advance(2)
    await h.tec.sync("n1")
    assert h.pods() == ["default", "elsewhere", "forever"]
    h.clock.advance(297)  # 299 s after the taint
    await h.tec.sync("n1")
    assert h.pods() == ["default", "elsewhere", "forever"]
    h.clock.advance(1)
    await h.tec.sync("n1")
    assert h.pods() == ["elsewhere", "forever"]
    assert ("TaintManagerEviction", "Marking for deletion Pod ns/default") in h.client.events
    deleted = [a for a in h.client.actions if a[0] == "update/status" and a[1] == "pods"]
    assert deleted  # the DisruptionTarget condition went on before the delete


async def test_cordon_taints_unschedulable() -> None:
    h = Harness()
    h.add_node()
    await h.sync()
    await h.client.patch(NODES, "n1", {"spec": {"unschedulable": True}})
    await h.nlc.sync("n1")
    assert h.node()["spec"]["taints"] == [{"key": "node.kubernetes.io/unschedulable", "effect": NS}]
    await h.client.patch(NODES, "n1", {"spec": {"unschedulable": None}})
    await h.nlc.sync("n1")
    assert "taints" not in h.node()["spec"]


async def test_user_no_execute_taint_evicts_untolerating_pods() -> None:
    h = Harness()
    h.add_node()
    h.pod("p", [tol(seconds=300)])
    await h.client.patch(
        NODES, "n1", {"spec": {"taints": [{"key": "k", "value": "v", "effect": NE}]}}
    )
    await h.sync()
    assert h.pods() == []
    assert h.node()["spec"]["taints"] == [
        {"key": "k", "value": "v", "effect": NE}
    ]  # not ours: kept


def test_daemonset_tolerations_as_upstream() -> None:
    from corral.controllers.daemonset import DEFAULT_TOLERATIONS, add_default_tolerations

    spec: Obj = {"tolerations": [tol("node.kubernetes.io/not-ready", 60)], "hostNetwork": True}
    add_default_tolerations(spec)
    keys = [(t["key"], t["effect"]) for t in spec["tolerations"]]
    assert keys[0] == ("node.kubernetes.io/not-ready", NE)
    assert "tolerationSeconds" not in spec["tolerations"][0]  # replaced: tolerated forever
    assert ("node.kubernetes.io/network-unavailable", NS) in keys  # hostNetwork only
    assert len(keys) == len(DEFAULT_TOLERATIONS) + 1
    plain: Obj = {}
    add_default_tolerations(plain)
    assert ("node.kubernetes.io/network-unavailable", "NoSchedule") not in [
        (t["key"], t["effect"]) for t in plain["tolerations"]
    ]
