"""Pure parts of the DaemonSet controller: eligibility, pod shape, budgets, rolling steps."""

from __future__ import annotations

from typing import Any, cast

import pytest
from test_job import FakeClient, FakeClock

from corral.client.rest import CONTROLLERREVISIONS, DAEMONSETS, NODES, PODS, Client
from corral.controllers.base import InformerFactory
from corral.controllers.daemonset import (
    DEFAULT_TOLERATIONS,
    HASH_LABEL,
    DaemonSetController,
    add_default_tolerations,
    budgets,
    calculate_status,
    new_pod,
    node_should_run,
    pods_to_keep,
    revision_data,
    rolling_plan,
    target_node,
)

Obj = dict[str, Any]


def node(name: str = "n1", labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def template(**spec: Any) -> Obj:
    return {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c"}], **spec}}


def affinity(*terms: Obj) -> Obj:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
        }
    }


NO_SCHED = {"key": "k", "value": "v", "effect": "NoSchedule"}
NO_EXEC = {"key": "k", "value": "v", "effect": "NoExecute"}
PREFER = {"key": "k", "value": "v", "effect": "PreferNoSchedule"}

ELIGIBILITY = [
    ("plain", template(), node(), (True, True)),
    ("selector-match", template(nodeSelector={"a": "b"}), node(labels={"a": "b"}), (True, True)),
    ("selector-miss", template(nodeSelector={"a": "b"}), node(labels={"a": "c"}), (False, False)),
    ("nodename-other", template(nodeName="n2"), node(), (False, False)),
    (
        "affinity-in",
        template(
            affinity=affinity(
                {"matchExpressions": [{"key": "z", "operator": "In", "values": ["1"]}]}
            )
        ),
        node(labels={"z": "1"}),
        (True, True),
    ),
    (
        "affinity-notin",
        template(
            affinity=affinity(
                {"matchExpressions": [{"key": "z", "operator": "NotIn", "values": ["1"]}]}
            )
        ),
        node(labels={"z": "1"}),
        (False, False),
    ),
    (
        "affinity-second-term",
        template(
            affinity=affinity(
                {"matchExpressions": [{"key": "z", "operator": "Exists"}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},
            )
        ),
        node(),
        (True, True),
    ),
    (
        "affinity-gt",
        template(
            affinity=affinity(
                {"matchExpressions": [{"key": "z", "operator": "Gt", "values": ["5"]}]}
            )
        ),
        node(labels={"z": "7"}),
        (True, True),
    ),
    ("affinity-empty-term", template(affinity=affinity({})), node(), (False, False)),
    ("noschedule-untolerated", template(), node(taints=[NO_SCHED]), (False, True)),
    ("noexecute-untolerated", template(), node(taints=[NO_EXEC]), (False, False)),
    ("prefer-ignored", template(), node(taints=[PREFER]), (True, True)),
    (
        "noexecute-tolerated-exists",
        template(tolerations=[{"key": "k", "operator": "Exists"}]),
        node(taints=[NO_EXEC, NO_SCHED]),
        (True, True),
    ),
    (
        "tolerated-wrong-value",
        template(tolerations=[{"key": "k", "operator": "Equal", "value": "w"}]),
        node(taints=[NO_SCHED]),
        (False, True),
    ),
    (
        "cordoned",
        template(),
        node(
            unschedulable=True,
            taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}],
        ),
        (True, True),
    ),
    (
        "not-ready-noexecute-default-toleration",
        template(),
        node(taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]),
        (True, True),
    ),
    (
        "memory-pressure",
        template(),
        node(taints=[{"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}]),
        (True, True),
    ),
]


@pytest.mark.parametrize(
    ("tmpl", "nd", "want"), [c[1:] for c in ELIGIBILITY], ids=[c[0] for c in ELIGIBILITY]
)
def test_node_should_run(tmpl: Obj, nd: Obj, want: tuple[bool, bool]) -> None:
    assert node_should_run(tmpl, nd) == want


def ds(strategy: Obj | None = None, **tspec: Any) -> Obj:
    return {
        "metadata": {"name": "d", "namespace": "ns", "uid": "u1", "generation": 2},
        "spec": {
            "selector": {"matchLabels": {"app": "d"}},
            "template": template(**tspec),
            "updateStrategy": strategy
            or {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
        },
    }


def test_new_pod_is_pinned_with_affinity_and_tolerations() -> None:
    d = ds(
        affinity=affinity({"matchExpressions": [{"key": "z", "operator": "Exists"}]}),
        tolerations=[
            {
                "key": "node.kubernetes.io/unschedulable",
                "operator": "Exists",
                "effect": "NoSchedule",
            }
        ],
    )
    p = new_pod(d, "n7", "abc")
    assert p["metadata"]["generateName"] == "d-"
    assert p["metadata"]["labels"] == {
        "app": "d",
        HASH_LABEL: "abc",
        "pod-template-generation": "2",
    }
    assert p["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert "nodeName" not in p["spec"]
    assert target_node(p) == "n7"
    terms = p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}
    ]
    assert len(p["spec"]["tolerations"]) == len(DEFAULT_TOLERATIONS)  # no duplicate added
    assert d["spec"]["template"]["spec"].get("tolerations")[0]["key"].endswith("unschedulable")


def test_add_default_tolerations_keeps_user_ones() -> None:
    spec: Obj = {"tolerations": [{"key": "x", "operator": "Exists"}]}
    add_default_tolerations(spec)
    assert spec["tolerations"][0] == {"key": "x", "operator": "Exists"}
    assert len(spec["tolerations"]) == 1 + len(DEFAULT_TOLERATIONS)


def test_revision_data_is_a_replace_patch() -> None:
    data = revision_data(ds())
    assert data["spec"]["template"]["$patch"] == "replace"
    assert data["spec"]["template"]["metadata"]["labels"] == {"app": "d"}


BUDGETS = [
    ("default", {"maxUnavailable": 1}, 10, (0, 1)),
    ("percent-up", {"maxUnavailable": "25%"}, 10, (0, 3)),
    ("surge-percent", {"maxSurge": "10%", "maxUnavailable": 0}, 10, (1, 0)),
    ("both-zero", {"maxSurge": 0, "maxUnavailable": "0%"}, 10, (0, 1)),
    ("no-nodes", {"maxUnavailable": "50%"}, 0, (0, 1)),
]


@pytest.mark.parametrize(
    ("ru", "desired", "want"), [c[1:] for c in BUDGETS], ids=[c[0] for c in BUDGETS]
)
def test_budgets(ru: Obj, desired: int, want: tuple[int, int]) -> None:
    assert budgets(ds({"type": "RollingUpdate", "rollingUpdate": ru}), desired) == want


def pod(name: str, hash_: str, avail: bool = True, created: str = "2024-01-01T00:00:00Z") -> Obj:
    cond = [{"type": "Ready", "status": "True" if avail else "False"}]
    return {
        "metadata": {"name": name, "labels": {HASH_LABEL: hash_}, "creationTimestamp": created},
        "status": {"conditions": cond},
    }


def _avail(p: Obj) -> bool:
    return bool(p["status"]["conditions"][0]["status"] == "True")


ROLLING = [
    (
        "one-at-a-time",
        {"a": [pod("a", "old")], "b": [pod("b", "old")], "c": [pod("c", "old")]},
        0,
        1,
        (["a"], []),
    ),
    (
        "wait-for-new-ready",
        {"a": [pod("a2", "new", avail=False)], "b": [pod("b", "old")]},
        0,
        1,
        ([], []),
    ),
    (
        "empty-node-counts-unavailable",
        {"a": [], "b": [pod("b", "old")]},
        0,
        1,
        ([], []),
    ),
    (
        "unavailable-old-go-at-once",
        {
            "a": [pod("a", "old", avail=False)],
            "b": [pod("b", "old", avail=False)],
            "c": [pod("c", "old")],
        },
        0,
        1,
        (["a", "b"], []),
    ),
    (
        "two-at-a-time",
        {"a": [pod("a", "old")], "b": [pod("b", "old")], "c": [pod("c", "new")]},
        0,
        2,
        (["a", "b"], []),
    ),
    (
        "surge-creates-within-budget",
        {"a": [pod("a", "old")], "b": [pod("b", "old")]},
        1,
        0,
        ([], ["a"]),
    ),
    (
        "surge-replaces-unavailable-at-once",
        {"a": [pod("a", "old")], "b": [pod("b", "old", avail=False)]},
        1,
        0,
        ([], ["b", "a"]),
    ),
    (
        "surge-deletes-old-when-new-available",
        {"a": [pod("a", "old"), pod("a2", "new")], "b": [pod("b", "old")]},
        1,
        0,
        (["a"], []),
    ),
    (
        "surge-budget-used",
        {"a": [pod("a", "old"), pod("a2", "new", avail=False)], "b": [pod("b", "old")]},
        1,
        0,
        ([], []),
    ),
    ("all-updated", {"a": [pod("a", "new")]}, 0, 1, ([], [])),
]


@pytest.mark.parametrize(
    ("nodes", "surge", "unavail", "want"), [c[1:] for c in ROLLING], ids=[c[0] for c in ROLLING]
)
def test_rolling_plan(
    nodes: dict[str, list[Obj]], surge: int, unavail: int, want: tuple[list[str], list[str]]
) -> None:
    delete, create = rolling_plan(nodes, "new", surge, unavail, _avail)
    assert ([p["metadata"]["name"] for p in delete], create) == want


def test_pods_to_keep() -> None:
    older = pod("o", "old", created="2024-01-01T00:00:00Z")
    newer = pod("n", "new", created="2024-01-02T00:00:00Z")
    extra = pod("x", "new", created="2024-01-03T00:00:00Z")
    assert pods_to_keep([extra, newer, older], "new", surge=False) == [older]
    assert pods_to_keep([extra, newer, older], "new", surge=True) == [older, newer]


def test_calculate_status() -> None:
    d = ds(nodeSelector={"role": "x"})
    nodes = [
        node("a", {"role": "x"}),
        node("b", {"role": "x"}),
        node("c", {"role": "x"}),
        node("d"),
    ]
    pods = {
        "a": [pod("a", "h")],
        "b": [pod("b", "old", avail=False)],
        "d": [pod("d", "h")],
    }
    st = calculate_status(d, nodes, pods, "h", 0.0)
    assert st == {
        "desiredNumberScheduled": 3,
        "currentNumberScheduled": 2,
        "numberMisscheduled": 1,
        "numberReady": 1,
        "numberAvailable": 1,
        "numberUnavailable": 2,
        "updatedNumberScheduled": 1,
        "observedGeneration": 2,
    }


def test_failed_pod_backoff_grows_and_caps() -> None:
    from corral.client.rest import Client, KubeConfig
    from corral.controllers.base import InformerFactory
    from corral.controllers.daemonset import FAILED_POD_MAX_BACKOFF, DaemonSetController

    class Clock:
        t = 100.0

        def now(self) -> float:
            return self.t

        def monotonic(self) -> float:
            return self.t

    clock = Clock()
    client = Client(KubeConfig("http://127.0.0.1:1", "", None))
    ctrl = DaemonSetController(client, InformerFactory(client), clock=clock)
    assert ctrl._backoff_left("ns/ds", "n1") == 0
    ctrl._note_failure("ns/ds", "n1")
    assert ctrl._backoff_left("ns/ds", "n1") == 1.0
    ctrl._note_failure("ns/ds", "n1")
    assert ctrl._backoff_left("ns/ds", "n1") == 2.0
    clock.t += 2.0
    assert ctrl._backoff_left("ns/ds", "n1") == 0
    for _ in range(20):
        ctrl._note_failure("ns/ds", "n1")
    assert ctrl._backoff_left("ns/ds", "n1") == FAILED_POD_MAX_BACKOFF


# --- adoption and release (sync against the fake client) --------------------------------------


class SyncHarness:
    def __init__(self, daemonset: Obj) -> None:
        self.client = FakeClient(FakeClock())
        factory = InformerFactory(cast(Client, self.client))
        self.ctrl = DaemonSetController(cast(Client, self.client), factory, clock=self.client.clock)
        self.client.attach(factory, DAEMONSETS, PODS, NODES, CONTROLLERREVISIONS)
        self.pods_res, self.revs_res = PODS, CONTROLLERREVISIONS
        self.client.seed(NODES, node("n1"))
        self.ds = daemonset
        self.client.seed(DAEMONSETS, {"apiVersion": "apps/v1", "kind": "DaemonSet", **daemonset})

    def pod(self, name: str, labels: dict[str, str], owner_uid: str | None = None) -> Obj:
        meta: Obj = {"name": name, "namespace": "ns", "labels": labels}
        if owner_uid:
            meta["ownerReferences"] = [
                {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d", "uid": owner_uid,
                 "controller": True}
            ]  # fmt: skip
        body = {"metadata": meta, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
        return self.client.seed(self.pods_res, body)

    def stored(self, plural: str, name: str) -> Obj:
        return self.client.objects[(plural, "ns", name)]

    def creates(self, plural: str) -> list[str]:
        return [a[2] for a in self.client.actions if a[:2] == ("create", plural)]


ON_DELETE = {"type": "OnDelete"}


async def test_sync_adopts_orphan_pod_and_revision() -> None:
    h = SyncHarness(ds(ON_DELETE))
    rev = {
        "metadata": {"name": "d-old", "namespace": "ns", "labels": {"app": "d"}},
        "data": revision_data(h.ds),
        "revision": 1,
    }
    h.client.seed(h.revs_res, rev)
    h.pod("orphan", {"app": "d"})
    h.pod("stranger", {"app": "other"})
    await h.ctrl.sync("ns/d")
    for plural, name in (("pods", "orphan"), ("controllerrevisions", "d-old")):
        (ref,) = h.stored(plural, name)["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == (
            "DaemonSet", "u1", True, True,
        )  # fmt: skip
    assert not h.stored("pods", "stranger")["metadata"].get("ownerReferences")
    # the adopted pod is the node's daemon pod, the adopted revision the current one
    assert h.creates("pods") == [] and h.creates("controllerrevisions") == []
    await h.ctrl.sync("ns/d")
    assert h.stored("daemonsets", "d")["status"]["currentNumberScheduled"] == 1


async def test_sync_releases_owned_pod_that_stopped_matching() -> None:
    h = SyncHarness(ds(ON_DELETE))
    h.pod("stray", {"app": "other"}, owner_uid="u1")
    await h.ctrl.sync("ns/d")
    assert not h.stored("pods", "stray")["metadata"].get("ownerReferences")
    assert len(h.creates("pods")) == 1  # the node gets a daemon pod of its own


async def test_sync_of_a_daemonset_being_deleted_adopts_nothing() -> None:
    h = SyncHarness(
        {
            **ds(ON_DELETE),
            "metadata": {**ds()["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"},
        }
    )
    h.pod("orphan", {"app": "d"})
    await h.ctrl.sync("ns/d")
    assert not h.stored("pods", "orphan")["metadata"].get("ownerReferences")
    assert h.client.actions == []
