"""The StatefulSet controller's pure parts: ordinals, slots, the step plan, status, pods."""

from __future__ import annotations

from typing import Any, cast

import pytest
from test_job import FakeClient, FakeClock

from corral.client.rest import CONTROLLERREVISIONS, PODS, STATEFULSETS, Client
from corral.controllers.base import InformerFactory
from corral.controllers.statefulset import (
    POD_INDEX_LABEL,
    POD_NAME_LABEL,
    REVISION_LABEL,
    Action,
    Create,
    Delete,
    StatefulSetController,
    compute_status,
    is_member_of,
    new_pod,
    parse_ordinal,
    plan,
    revision_data,
    slot_revision,
    split_pods,
    template_of,
)

Obj = dict[str, Any]


def pod(n: int, state: str = "ready", rev: str = "new", name: str = "web") -> Obj:
    """``state``: ready, pending (not ready), failed, terminating."""
    status: Obj = {"phase": "Running" if state in ("ready", "terminating") else "Pending"}
    if state == "failed":
        status["phase"] = "Failed"
    if state in ("ready", "terminating"):
        status["conditions"] = [{"type": "Ready", "status": "True"}]
    meta: Obj = {"name": f"{name}-{n}", "uid": f"u{n}", "labels": {REVISION_LABEL: rev}}
    if state == "terminating":
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": status}


@pytest.mark.parametrize(
    ("pod_name", "want"),
    [
        ("web-0", 0),
        ("web-12", 12),
        ("web-01", None),
        ("web-", None),
        ("web-x", None),
        ("webx-1", None),
        ("web-web-1", None),
    ],
    ids=["zero", "two-digits", "leading-zero", "empty", "letters", "other-set", "nested"],
)
def test_parse_ordinal(pod_name: str, want: int | None) -> None:
    assert parse_ordinal("web", pod_name) == want


def test_split_pods_slots_and_condemned_descending() -> None:
    pods = [pod(3), pod(0), pod(5), pod(1), {"metadata": {"name": "other"}}]
    slots, condemned = split_pods("web", pods, 0, 3)
    assert [s["metadata"]["name"] if s else None for s in slots] == ["web-0", "web-1", None]
    assert [p["metadata"]["name"] for p in condemned] == ["web-5", "web-3"]
    slots, condemned = split_pods("web", pods, 1, 3)  # spec.ordinals.start = 1
    assert [s["metadata"]["name"] if s else None for s in slots] == ["web-1", None, "web-3"]
    assert [p["metadata"]["name"] for p in condemned] == ["web-5", "web-0"]


def d(n: int) -> Delete:
    return Delete(f"web-{n}", f"u{n}")


CASES: list[tuple[str, list[Obj], int, bool, bool, int, list[Action]]] = [
    # id, pods, replicas, ordered, rolling, partition, expected actions
    ("ordered-create-first", [], 3, True, True, 0, [Create(0)]),
    ("ordered-create-next", [pod(0)], 3, True, True, 0, [Create(1)]),
    ("ordered-wait-not-ready", [pod(0, "pending")], 3, True, True, 0, []),
    ("ordered-wait-terminating", [pod(0, "terminating")], 3, True, True, 0, []),
    ("parallel-create-all", [], 3, False, True, 0, [Create(0), Create(1), Create(2)]),
    ("parallel-ignores-unready", [pod(0, "pending")], 2, False, True, 0, [Create(1)]),
    ("failed-deleted", [pod(0, "failed"), pod(1)], 2, True, True, 0, [d(0)]),
    ("scale-down-highest-first", [pod(0), pod(1), pod(2)], 1, True, True, 0, [d(2)]),
    ("scale-down-wait-terminating", [pod(0), pod(1), pod(2, "terminating")], 1, True, True, 0, []),
    (
        "scale-down-unhealthy-highest-goes",
        [pod(0), pod(1), pod(2, "pending")],
        1,
        True,
        True,
        0,
        [d(2)],
    ),
    (
        "scale-down-highest-even-if-lower-unhealthy",
        [pod(0), pod(1, "pending"), pod(2)],
        1,
        True,
        True,
        0,
        [d(2)],
    ),
    ("parallel-scale-down-all", [pod(0), pod(1), pod(2)], 0, False, True, 0, [d(2), d(1), d(0)]),
    ("update-highest-first", [pod(0, rev="old"), pod(1, rev="old")], 2, True, True, 0, [d(1)]),
    (
        "update-next-lower",
        [pod(0, rev="old"), pod(1), pod(2)],
        3,
        True,
        True,
        0,
        [d(0)],
    ),
    (
        "update-waits-unready-updated",
        [pod(0, rev="old"), pod(1, "pending")],
        2,
        False,
        True,
        0,
        [],
    ),
    ("partition-stops", [pod(0, rev="old"), pod(1, rev="old"), pod(2)], 3, True, True, 2, []),
    (
        "partition-updates-above",
        [pod(0, rev="old"), pod(1, rev="old"), pod(2, rev="old")],
        3,
        True,
        True,
        2,
        [d(2)],
    ),
    ("on-delete-never-updates", [pod(0, rev="old"), pod(1, rev="old")], 2, True, False, 0, []),
]


@pytest.mark.parametrize(
    ("pods", "replicas", "ordered", "rolling", "partition", "want"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_plan(
    pods: list[Obj],
    replicas: int,
    ordered: bool,
    rolling: bool,
    partition: int,
    want: list[Action],
) -> None:
    slots, condemned = split_pods("web", pods, 0, replicas)
    got = plan(
        slots,
        condemned,
        ordered=ordered,
        rolling=rolling,
        partition=partition,
        update_revision="new",
    )
    assert got == want


@pytest.mark.parametrize(
    ("index", "rolling", "partition", "want"),
    [
        (0, True, 2, "current"),
        (2, True, 2, "update"),
        (0, True, 0, "update"),
        (0, False, 2, "update"),
    ],
    ids=["below-partition", "at-partition", "no-partition", "on-delete"],
)
def test_slot_revision(index: int, rolling: bool, partition: int, want: str) -> None:
    assert slot_revision(index, rolling, partition) == want


def sts(strategy: str = "RollingUpdate") -> Obj:
    return {
        "metadata": {"name": "web", "uid": "s1", "generation": 3},
        "spec": {
            "replicas": 3,
            "serviceName": "svc",
            "updateStrategy": {"type": strategy},
            "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
        },
    }


@pytest.mark.parametrize(
    ("strategy", "pods", "want"),
    [
        (
            "RollingUpdate",
            [pod(0, rev="old"), pod(1), pod(2, "pending")],
            {"replicas": 3, "readyReplicas": 2, "currentReplicas": 1, "updatedReplicas": 2},
        ),
        (
            "RollingUpdate",
            [pod(0), pod(1), pod(2)],
            {"currentReplicas": 3, "updatedReplicas": 3, "currentRevision": "new"},
        ),
        (
            "OnDelete",
            [pod(0), pod(1), pod(2)],
            {"currentReplicas": 0, "updatedReplicas": 3, "currentRevision": "old"},
        ),
        (
            "RollingUpdate",
            [pod(0), pod(1, "terminating")],
            {"replicas": 2, "updatedReplicas": 1, "currentRevision": "old"},
        ),
    ],
    ids=["mid-rollout", "complete-rolls-current", "on-delete-keeps-current", "terminating"],
)
def test_compute_status(strategy: str, pods: list[Obj], want: Obj) -> None:
    st = compute_status(sts(strategy), pods, "old", "new", 0.0)
    assert st["observedGeneration"] == 3 and st["updateRevision"] == "new"
    assert {k: st[k] for k in want} == want


def test_new_pod_identity_and_revision_round_trip() -> None:
    s = sts()
    template = template_of({"data": revision_data(s)})
    assert template == s["spec"]["template"]
    p = new_pod(s, 2, template, "web-abc")
    labels = p["metadata"]["labels"]
    assert labels == {
        "app": "web",
        REVISION_LABEL: "web-abc",
        POD_NAME_LABEL: "web-2",
        POD_INDEX_LABEL: "2",
    }
    assert p["metadata"]["name"] == "web-2" and p["metadata"]["annotations"] == {"a": "b"}
    assert (p["spec"]["hostname"], p["spec"]["subdomain"]) == ("web-2", "svc")
    assert p["spec"]["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-2"}}
    ]
    assert p["metadata"]["ownerReferences"][0]["uid"] == "s1"


# --- adoption and release (sync against the fake client) --------------------------------------


@pytest.mark.parametrize(
    ("name", "want"),
    [("web-0", True), ("web-12", True), ("web-01", True), ("web", False), ("webx-0", False),
     ("web-web-0", False), ("web-0x", False)],
    ids=["zero", "twelve", "leading-zero", "no-ordinal", "other-set", "nested", "suffix"],
)  # fmt: skip
def test_is_member_of(name: str, want: bool) -> None:
    assert is_member_of("web", {"metadata": {"name": name}}) is want


class SyncHarness:
    def __init__(self, **meta: Any) -> None:
        self.client = FakeClient(FakeClock())
        factory = InformerFactory(cast(Client, self.client))
        self.ctrl = StatefulSetController(
            cast(Client, self.client), factory, clock=self.client.clock
        )
        self.client.attach(factory, STATEFULSETS, PODS, CONTROLLERREVISIONS)
        self.sts = sts("OnDelete")
        self.sts["metadata"].update(namespace="ns", **meta)
        self.sts["spec"].update(replicas=1, selector={"matchLabels": {"app": "web"}})
        self.client.seed(STATEFULSETS, self.sts)

    def pod(self, name: str, app: str = "web", owner_uid: str | None = None) -> Obj:
        meta: Obj = {"name": name, "namespace": "ns", "labels": {"app": app}}
        if owner_uid:
            meta["ownerReferences"] = [
                {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                 "uid": owner_uid, "controller": True}
            ]  # fmt: skip
        status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        return self.client.seed(PODS, {"metadata": meta, "spec": {}, "status": status})

    def refs(self, plural: str, name: str) -> list[Obj]:
        refs: list[Obj] = (
            self.client.objects[(plural, "ns", name)]["metadata"].get("ownerReferences") or []
        )
        return refs

    def creates(self, plural: str) -> list[str]:
        return [a[2] for a in self.client.actions if a[:2] == ("create", plural)]


async def test_sync_adopts_orphan_member_pod_and_revision() -> None:
    h = SyncHarness()
    rev = {
        "metadata": {"name": "web-rev", "namespace": "ns", "labels": {"app": "web"}},
        "data": revision_data(h.sts),
        "revision": 1,
    }
    h.client.seed(CONTROLLERREVISIONS, rev)
    h.pod("web-0")
    h.pod("other-0")  # matches the selector, but not a member by name
    await h.ctrl.sync("ns/web")
    for plural, name in (("pods", "web-0"), ("controllerrevisions", "web-rev")):
        (ref,) = h.refs(plural, name)
        assert (ref["kind"], ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == (
            "StatefulSet", "s1", True, True,
        )  # fmt: skip
    assert h.refs("pods", "other-0") == []
    assert h.creates("pods") == [] and h.creates("controllerrevisions") == []
    status = h.client.objects[("statefulsets", "ns", "web")]["status"]
    assert status["replicas"] == 1 and status["updateRevision"] == "web-rev"


async def test_sync_releases_pod_that_stopped_matching_and_recreates_its_slot() -> None:
    h = SyncHarness()
    h.pod("web-0", app="gone", owner_uid="s1")
    await h.ctrl.sync("ns/web")
    assert h.refs("pods", "web-0") == []
    # the slot's name is taken by the released pod: the create meets AlreadyExists
    assert ("create", "pods", "web-0") not in h.client.actions


async def test_sync_keeps_owned_revision_whatever_its_labels() -> None:
    h = SyncHarness()
    owned = {
        "metadata": {
            "name": "web-x", "namespace": "ns", "labels": {"app": "elsewhere"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                                 "name": "web", "uid": "s1", "controller": True}],
        },
        "data": revision_data(h.sts),
        "revision": 1,
    }  # fmt: skip
    h.client.seed(CONTROLLERREVISIONS, owned)
    await h.ctrl.sync("ns/web")
    assert [r["uid"] for r in h.refs("controllerrevisions", "web-x")] == ["s1"]
    assert h.creates("controllerrevisions") == []


async def test_sync_of_a_statefulset_being_deleted_adopts_nothing() -> None:
    h = SyncHarness(deletionTimestamp="2026-01-01T00:00:00Z")
    h.pod("web-0")
    await h.ctrl.sync("ns/web")
    assert h.refs("pods", "web-0") == []
