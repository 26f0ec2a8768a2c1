"""ControllerRef claiming (refmanager.py): the pure plan by table, the patches, the
uncached owner re-check, and the orphan event handler."""

from __future__ import annotations

from typing import Any, cast

import pytest
from test_job import FakeClient, FakeClock

from corral.api.patch import strategic_merge_patch
from corral.api.schema import for_kind
from corral.api.selectors import try_selector_from_object
from corral.client.rest import JOBS, PODS, Client
from corral.controllers.refmanager import (
    RefManager,
    adopt_patch,
    claim_plan,
    orphan_handler,
    release_patch,
    selector_matches,
)

Obj = dict[str, Any]
OWNER_UID = "owner-uid"
GONE = "2026-01-01T00:00:00Z"


def owner(deleting: bool = False) -> Obj:
    meta: Obj = {"name": "o", "namespace": "ns", "uid": OWNER_UID}
    if deleting:
        meta["deletionTimestamp"] = GONE
    return {"metadata": meta, "spec": {"selector": {"matchLabels": {"app": "a"}}}}


def obj(
    name: str,
    app: str = "a",
    ref_uid: str | None = None,
    controller: bool = True,
    deleting: bool = False,
    ns: str = "ns",
) -> Obj:
    meta: Obj = {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": {"app": app}}
    if ref_uid is not None:
        meta["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "Job", "name": "x", "uid": ref_uid,
             "controller": controller}
        ]  # fmt: skip
    if deleting:
        meta["deletionTimestamp"] = GONE
    return {"metadata": meta}


MATCH = selector_matches(try_selector_from_object({"matchLabels": {"app": "a"}}))


@pytest.mark.parametrize(
    ("o", "owner_deleting", "want"),
    [
        (obj("p", ref_uid=OWNER_UID), False, "claimed"),
        (obj("p", app="b", ref_uid=OWNER_UID), False, "release"),
        (obj("p", app="b", ref_uid=OWNER_UID), True, "ignore"),
        (obj("p", ref_uid=OWNER_UID), True, "claimed"),
        (obj("p", ref_uid="other"), False, "ignore"),
        (obj("p", app="b", ref_uid="other"), False, "ignore"),
        (obj("p"), False, "adopt"),
        (obj("p", ref_uid="other", controller=False), False, "adopt"),
        (obj("p", app="b"), False, "ignore"),
        (obj("p"), True, "ignore"),
        (obj("p", deleting=True), False, "ignore"),
        (obj("p", ns="elsewhere"), False, "ignore"),
    ],
    ids=[
        "owned-matching",
        "owned-not-matching-released",
        "owned-not-matching-owner-deleting",
        "owned-matching-owner-deleting",
        "other-controller",
        "other-controller-not-matching",
        "orphan-matching-adopted",
        "non-controller-ref-is-an-orphan",
        "orphan-not-matching",
        "orphan-owner-deleting",
        "orphan-being-deleted",
        "orphan-other-namespace",
    ],
)
def test_claim_plan(o: Obj, owner_deleting: bool, want: str) -> None:
    claimed, adopt, release = claim_plan(owner(owner_deleting), [o], MATCH)
    got = {"claimed": claimed, "adopt": adopt, "release": release}
    for k, v in got.items():
        assert v == ([o] if k == want else []), k


def test_adopt_and_release_patches_as_the_api_server_applies_them() -> None:
    node = for_kind("", "v1", "Pod")
    pod = obj("p", ref_uid="other", controller=False)
    pod["metadata"]["finalizers"] = ["keep"]
    o = owner()
    adopted = strategic_merge_patch(pod, adopt_patch(o, "batch/v1", "Job", pod, ["f"]), node)
    refs = adopted["metadata"]["ownerReferences"]
    # merged by uid: the other reference is kept (after the patch's, as upstream orders it)
    assert [r["uid"] for r in refs] == [OWNER_UID, "other"]
    assert refs[0] == {
        "apiVersion": "batch/v1", "kind": "Job", "name": "o", "uid": OWNER_UID,
        "controller": True, "blockOwnerDeletion": True,
    }  # fmt: skip
    assert sorted(adopted["metadata"]["finalizers"]) == ["f", "keep"]
    assert adopt_patch(o, "batch/v1", "Job", pod, [])["metadata"]["uid"] == "uid-p"
    released = strategic_merge_patch(adopted, release_patch(o, adopted, ["f"]), node)
    assert [r["uid"] for r in released["metadata"]["ownerReferences"]] == ["other"]
    assert released["metadata"]["finalizers"] == ["keep"]


class Harness:
    def __init__(self, job: Obj) -> None:
        self.client = FakeClient(FakeClock())
        self.job = self.client.seed(JOBS, job)
        self.refs = RefManager(cast(Client, self.client), JOBS, job, "batch/v1", "Job")

    def seed(self, pod: Obj) -> Obj:
        return self.client.seed(PODS, pod)

    def stored(self, name: str) -> Obj:
        return self.client.objects[("pods", "ns", name)]


async def test_claim_adopts_releases_and_skips_pods_gone_or_recreated() -> None:
    h = Harness(owner())
    orphan = h.seed(obj("orphan"))
    stray = h.seed(obj("stray", app="b", ref_uid=OWNER_UID))
    gone = obj("gone")  # in the cache, no longer in the API: 404, skipped
    recreated = h.seed(obj("recreated"))
    stale = {**recreated, "metadata": {**recreated["metadata"], "uid": "old-uid"}}  # 422
    claimed = await h.refs.claim(PODS, [orphan, stray, gone, stale], MATCH)
    assert [p["metadata"]["name"] for p in claimed] == ["orphan"]
    assert h.stored("orphan")["metadata"]["ownerReferences"][0]["uid"] == OWNER_UID
    assert not h.stored("stray")["metadata"].get("ownerReferences")
    assert not h.stored("recreated")["metadata"].get("ownerReferences")


async def test_no_adoption_when_the_owner_read_uncached_is_being_deleted() -> None:
    h = Harness(owner())
    orphan = h.seed(obj("orphan"))
    # the cache (the owner we were given) has not seen the deletion the API has
    h.client.objects[("jobs", "ns", "o")] = owner(deleting=True)
    assert await h.refs.claim(PODS, [orphan], MATCH) == []
    assert not h.stored("orphan")["metadata"].get("ownerReferences")
    assert [a for a in h.client.actions if a[0] == "patch"] == []


async def test_no_adoption_when_the_owner_was_replaced() -> None:
    h = Harness(owner())
    orphan = h.seed(obj("orphan"))
    h.client.objects[("jobs", "ns", "o")] = {
        **owner(),
        "metadata": {**owner()["metadata"], "uid": "new"},
    }
    assert await h.refs.claim(PODS, [orphan], MATCH) == []


@pytest.mark.parametrize(
    ("type_", "o", "old", "enqueued"),
    [
        ("ADDED", obj("p"), None, ["o"]),
        ("ADDED", obj("p", app="b"), None, []),
        ("ADDED", obj("p", ref_uid="x"), None, []),
        ("ADDED", obj("p", deleting=True), None, []),
        ("MODIFIED", obj("p"), obj("p"), []),
        ("MODIFIED", obj("p"), obj("p", app="b"), ["o"]),
        ("MODIFIED", obj("p"), obj("p", ref_uid=OWNER_UID), ["o"]),
        ("DELETED", obj("p"), None, []),
    ],
    ids=[
        "orphan-added",
        "orphan-added-no-match",
        "owned-added",
        "deleting-added",
        "unchanged-orphan-update",
        "labels-changed",
        "released",
        "deleted",
    ],
)
def test_orphan_handler(type_: str, o: Obj, old: Obj | None, enqueued: list[str]) -> None:
    owners = [owner(), {"metadata": {"name": "empty"}, "spec": {"selector": {}}}]
    seen: list[str] = []
    handler = orphan_handler(
        lambda ns: owners if ns == "ns" else [],
        lambda ow: try_selector_from_object(ow["spec"]["selector"]),
        lambda ow: seen.append(ow["metadata"]["name"]),
    )
    handler(type_, o, old)
    assert seen == enqueued
