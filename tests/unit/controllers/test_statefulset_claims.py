"""A StatefulSet's claims (controllers/statefulset_claims.py): owners under the retention
policy as upstream's updateClaimOwnerRefForSetAndPod, the stale-claim refusal, and the
controller making a Pending pod's lost claim again."""

from __future__ import annotations

from typing import Any, cast

import pytest
from test_job import FakeClient, FakeClock

from corral.client.rest import (
    CONTROLLERREVISIONS,
    PERSISTENT_VOLUME_CLAIMS,
    PODS,
    STATEFULSETS,
    Client,
)
from corral.controllers.base import InformerFactory
from corral.controllers.statefulset import StatefulSetController
from corral.controllers.statefulset_claims import (
    claim_owners,
    is_claim_owner_up_to_date,
    new_claim,
    pod_claim_is_stale,
)

Obj = dict[str, Any]

POD = {"metadata": {"name": "web-1", "uid": "p"}}
OTHER = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "o"}
SET_REF = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "s"}
POD_REF = {"apiVersion": "v1", "kind": "Pod", "name": "web-1", "uid": "p"}


def sts(when_deleted: str = "Retain", when_scaled: str = "Retain", replicas: int = 2) -> Obj:
    return {
        "metadata": {"name": "web", "uid": "s", "namespace": "ns"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": when_deleted,
                "whenScaled": when_scaled,
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}],
        },
    }


def _claim(*refs: Obj) -> Obj:
    return {"metadata": {"name": "data-web-1", "ownerReferences": [dict(r) for r in refs]}}


# (whenDeleted, whenScaled, replicas (web-1 scaled down at 1), refs before) -> owners after
OWNER_CASES: list[tuple[str, str, str, int, tuple[Obj, ...], list[tuple[str, str]]]] = [
    ("retain-retain", "Retain", "Retain", 2, (OTHER, SET_REF, POD_REF), [("ConfigMap", "o")]),
    ("deleted-delete", "Delete", "Retain", 2, (OTHER,), [("ConfigMap", "o"), ("StatefulSet", "s")]),
    ("deleted-delete-down", "Delete", "Retain", 1, (POD_REF,), [("StatefulSet", "s")]),
    ("scaled-delete-in-range", "Retain", "Delete", 2, (SET_REF,), []),
    ("scaled-delete-down", "Retain", "Delete", 1, (), [("Pod", "p")]),
    ("both-delete", "Delete", "Delete", 2, (POD_REF,), [("StatefulSet", "s")]),
    ("both-delete-down", "Delete", "Delete", 1, (SET_REF,), [("Pod", "p")]),
    # references are matched by apiVersion, kind and name: an older set's uid is scrubbed,
    # and a claim with such a stale reference gets nothing new
    ("older-set-scrubbed", "Delete", "Retain", 2, ({**SET_REF, "uid": "old"},), []),
    # another controller owns it: ours are scrubbed, nothing added
    ("other-controller", "Delete", "Delete", 2,
     ({**OTHER, "controller": True}, SET_REF), [("ConfigMap", "o")]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("deleted", "scaled", "replicas", "refs", "want"),
    [c[1:] for c in OWNER_CASES],
    ids=[c[0] for c in OWNER_CASES],
)
def test_claim_owners(
    deleted: str, scaled: str, replicas: int, refs: tuple[Obj, ...], want: list[tuple[str, str]]
) -> None:
    got = claim_owners(_claim(*refs), sts(deleted, scaled, replicas), POD, 1)
    assert [(r["kind"], r["uid"]) for r in got] == want
    for r in got:
        if r["uid"] in ("s", "p"):
            assert r["controller"] is True and r["blockOwnerDeletion"] is True


UP_TO_DATE_CASES: list[tuple[str, str, str, int, tuple[Obj, ...], bool]] = [
    ("retain-retain-clean", "Retain", "Retain", 2, (OTHER,), True),
    ("retain-retain-owned", "Retain", "Retain", 2, ({**SET_REF, "controller": True},), False),
    ("deleted-delete-controller", "Delete", "Retain", 2, ({**SET_REF, "controller": True},), True),
    ("deleted-delete-not-controller", "Delete", "Retain", 2, (SET_REF,), False),
    ("deleted-delete-missing", "Delete", "Retain", 2, (), False),
    ("stale-set-left-alone", "Delete", "Retain", 2, ({**SET_REF, "uid": "old"},), True),
    ("other-controller-left-alone", "Delete", "Retain", 2, ({**OTHER, "controller": True},), True),
    ("scaled-down-needs-pod", "Retain", "Delete", 1, (), False),
]


@pytest.mark.parametrize(
    ("deleted", "scaled", "replicas", "refs", "want"),
    [c[1:] for c in UP_TO_DATE_CASES],
    ids=[c[0] for c in UP_TO_DATE_CASES],
)
def test_is_claim_owner_up_to_date(
    deleted: str, scaled: str, replicas: int, refs: tuple[Obj, ...], want: bool
) -> None:
    assert is_claim_owner_up_to_date(_claim(*refs), sts(deleted, scaled, replicas), POD, 1) is want


@pytest.mark.parametrize(
    ("scaled", "refs", "want"),
    [
        ("Delete", ({**POD_REF, "uid": "old-pod"},), True),
        ("Delete", (POD_REF,), False),
        ("Delete", (SET_REF,), False),
        ("Retain", ({**POD_REF, "uid": "old-pod"},), False),
    ],
    ids=["earlier-pod", "this-pod", "set-only", "retained-claims-are-never-stale"],
)
def test_pod_claim_is_stale(scaled: str, refs: tuple[Obj, ...], want: bool) -> None:
    claim = _claim(*refs)
    got = pod_claim_is_stale(sts("Retain", scaled), POD, 1, {"ns/data-web-1": claim}.get)
    assert got is want


def test_new_claim_labels_and_name() -> None:
    template = {"metadata": {"name": "data", "labels": {"tier": "db"}}, "spec": {"a": 1}}
    out = new_claim(sts(), template, 3)
    assert out["metadata"] == {"name": "data-web-3", "labels": {"tier": "db", "app": "web"}}
    assert out["spec"] == {"a": 1}


async def test_pending_pod_gets_its_lost_claim_back() -> None:
    """createMissingPersistentVolumeClaims: the claim of an existing Pending pod was
    deleted; the next sync makes it again (the pod would otherwise wait forever)."""
    client = FakeClient(FakeClock())
    factory = InformerFactory(cast(Client, client))
    ctrl = StatefulSetController(cast(Client, client), factory, clock=client.clock)
    client.attach(factory, STATEFULSETS, PODS, CONTROLLERREVISIONS, PERSISTENT_VOLUME_CLAIMS)
    s = sts(replicas=1)
    s["spec"]["podManagementPolicy"] = "Parallel"
    s["spec"]["template"] = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}
    client.seed(STATEFULSETS, s)
    await ctrl.sync("ns/web")
    assert ("persistentvolumeclaims", "ns", "data-web-0") in client.objects
    pod = client.objects[("pods", "ns", "web-0")]
    pod["status"] = {"phase": "Pending"}
    await client.delete(PERSISTENT_VOLUME_CLAIMS, "data-web-0", "ns")
    assert len(ctrl.queue) == 1  # the claim's deletion synced the set again
    await ctrl.sync("ns/web")
    assert ("persistentvolumeclaims", "ns", "data-web-0") in client.objects
    creates = [a for a in client.actions if a[:2] == ("create", "persistentvolumeclaims")]
    assert len(creates) == 2
