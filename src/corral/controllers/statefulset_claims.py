"""A StatefulSet's PersistentVolumeClaims: their names, their creation and their owners.

Used by the StatefulSet controller (``statefulset.py``); follows Kubernetes 1.32's
``stateful_set_utils.go`` and ``stateful_pod_control.go``:

- each of ``volumeClaimTemplates`` becomes the claim ``<template>-<sts>-<ordinal>``
  (``new_claim``: the template's labels plus the selector's ``matchLabels``), created
  before the pod (``ClaimControl.create``, upstream's ``createPersistentVolumeClaims``)
  and again for a pod that is still Pending and lost one (upstream's
  ``createMissingPersistentVolumeClaims``); a claim being deleted holds the pod back
  (``FailedCreate``, ``pvc <name> is being deleted``);
- owner references follow ``persistentVolumeClaimRetentionPolicy`` as
  ``updateClaimOwnerRefForSetAndPod`` (``claim_owners``): the set's and the pod's
  references (matched by apiVersion, kind and name) are scrubbed, then a controller
  reference to the set (``whenDeleted: Delete``, pod in range) or to the pod
  (``whenScaled: Delete``, pod scaled down) is added; a claim controlled by something
  else, or whose references to this set or pod carry another uid (a previous
  incarnation), is left alone (``is_claim_owner_up_to_date``);
- with ``whenScaled: Delete``, a pod is not created while one of its claims still has
  an owner reference to an earlier pod of the same name (``pod_claim_is_stale``,
  upstream's ``PodClaimIsStale``): the garbage collector is about to delete it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from corral.api.errors import StatusError
from corral.client.events import EventRecorder
from corral.client.rest import PERSISTENT_VOLUME_CLAIMS, Client
from corral.controllers.base import clone

Obj = dict[str, Any]

SET_KIND = ("apps/v1", "StatefulSet")
POD_KIND = ("v1", "Pod")
RETAIN, DELETE = "Retain", "Delete"
SUCCESSFUL_CREATE = "SuccessfulCreate"
FAILED_CREATE = "FailedCreate"


def _meta(obj: Obj) -> Obj:
    m: Obj = obj.get("metadata") or {}
    return m


def claim_name(template: Obj, sts: Obj, ordinal: int) -> str:
    """``getPersistentVolumeClaimName``: ``<template>-<sts>-<ordinal>``."""
    return f"{_meta(template).get('name', '')}-{_meta(sts)['name']}-{ordinal}"


def claim_templates(sts: Obj) -> list[Obj]:
    """The set's ``volumeClaimTemplates`` that have a name."""
    return [
        t
        for t in (sts.get("spec") or {}).get("volumeClaimTemplates") or ()
        if isinstance(t, dict) and _meta(t).get("name")
    ]


def new_claim(sts: Obj, template: Obj, ordinal: int) -> Obj:
    """The claim of ``template`` for ``ordinal`` (``getPersistentVolumeClaims``)."""
    tmeta = _meta(template)
    labels = dict(tmeta.get("labels") or {})
    labels.update(((sts.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
    meta: Obj = {"name": claim_name(template, sts, ordinal), "labels": labels}
    if tmeta.get("annotations"):
        meta["annotations"] = clone(tmeta["annotations"])
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta,
        "spec": clone(template.get("spec") or {}),
    }


def retention(sts: Obj) -> tuple[str, str]:
    """(whenDeleted, whenScaled) of the set's claim retention policy (Retain by default)."""
    policy = (sts.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}
    return str(policy.get("whenDeleted") or RETAIN), str(policy.get("whenScaled") or RETAIN)


def pod_in_ordinal_range(pod: Obj, sts: Obj, ordinal: int) -> bool:
    """``podInOrdinalRange``: the pod's ``ordinal`` is one the set keeps at its size."""
    spec = sts.get("spec") or {}
    start = int((spec.get("ordinals") or {}).get("start") or 0)
    replicas = int(spec["replicas"]) if spec.get("replicas") is not None else 1
    return start <= ordinal < start + replicas


def _matches(ref: Obj, obj: Obj, kind: tuple[str, str]) -> bool:
    """``matchesRef``: the reference names ``obj`` by apiVersion, kind and name."""
    return (ref.get("apiVersion"), ref.get("kind")) == kind and ref.get("name") == _meta(obj).get(
        "name"
    )


def _refs(claim: Obj) -> list[Obj]:
    return list(_meta(claim).get("ownerReferences") or ())


def _has_ref(claim: Obj, owner: Obj) -> bool:
    uid = _meta(owner).get("uid")
    return bool(uid) and any(r.get("uid") == uid for r in _refs(claim))


def has_stale_ref(claim: Obj, owner: Obj, kind: tuple[str, str]) -> bool:
    """``hasStaleOwnerRef``: the first reference naming ``owner`` has another uid."""
    for ref in _refs(claim):
        if _matches(ref, owner, kind):
            return ref.get("uid") != _meta(owner).get("uid")
    return False


def has_unexpected_controller(claim: Obj, sts: Obj, pod: Obj) -> bool:
    """``hasUnexpectedController``: under a Delete policy, a controller other than this
    set and pod, or a reference to them with another uid."""
    if retention(sts) == (RETAIN, RETAIN):
        return False
    for ref in _refs(claim):
        for owner, kind in ((sts, SET_KIND), (pod, POD_KIND)):
            if _matches(ref, owner, kind):
                if ref.get("uid") != _meta(owner).get("uid"):
                    return True
                break
        else:
            if ref.get("controller"):
                return True
    return False


def is_claim_owner_up_to_date(claim: Obj, sts: Obj, pod: Obj, ordinal: int) -> bool:
    """``isClaimOwnerUpToDate``: nothing to change (or nothing this set may change)."""
    if has_stale_ref(claim, sts, SET_KIND) or has_stale_ref(claim, pod, POD_KIND):
        return True
    if has_unexpected_controller(claim, sts, pod):
        return not (_has_ref(claim, sts) or _has_ref(claim, pod))
    ours = {_meta(sts).get("uid"), _meta(pod).get("uid")} - {None, ""}
    if any(r.get("uid") in ours and not r.get("controller") for r in _refs(claim)):
        return False
    when_deleted, when_scaled = retention(sts)
    set_ref, pod_ref = _has_ref(claim, sts), _has_ref(claim, pod)
    down = not pod_in_ordinal_range(pod, sts, ordinal)
    if when_scaled == DELETE and when_deleted == DELETE:
        return down != set_ref and down == pod_ref
    if when_scaled == DELETE:
        return not set_ref and down == pod_ref
    if when_deleted == DELETE:
        return set_ref and not pod_ref
    return not set_ref and not pod_ref


def _controller_ref(owner: Obj, kind: tuple[str, str]) -> Obj:
    return {
        "apiVersion": kind[0],
        "kind": kind[1],
        "name": _meta(owner)["name"],
        "uid": _meta(owner)["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def claim_owners(claim: Obj, sts: Obj, pod: Obj, ordinal: int) -> list[Obj]:
    """``updateClaimOwnerRefForSetAndPod``: the claim's ownerReferences under the set's
    retention policy: the set's and the pod's scrubbed, then a controller reference to
    the set (whenDeleted Delete while the pod is in range) or to the pod (whenScaled
    Delete once it is scaled down); nothing is added when another controller owns it."""
    unexpected = has_unexpected_controller(claim, sts, pod)
    refs = [
        r for r in _refs(claim) if not (_matches(r, sts, SET_KIND) or _matches(r, pod, POD_KIND))
    ]
    if unexpected:
        return refs
    when_deleted, when_scaled = retention(sts)
    down = not pod_in_ordinal_range(pod, sts, ordinal)
    if when_scaled == DELETE and down:
        refs.append(_controller_ref(pod, POD_KIND))
    elif when_deleted == DELETE and not (when_scaled == DELETE and down):
        refs.append(_controller_ref(sts, SET_KIND))
    return refs


def pod_claim_is_stale(sts: Obj, pod: Obj, ordinal: int, get: Callable[[str], Obj | None]) -> bool:
    """``PodClaimIsStale``: under ``whenScaled: Delete``, one of the pod's claims (read
    with ``get("ns/name")``) still names an earlier pod of the same name (or any pod of
    that name, for a pod not created yet)."""
    if retention(sts)[1] == RETAIN:
        return False
    ns = str(_meta(sts).get("namespace") or "")
    for template in claim_templates(sts):
        claim = get(f"{ns}/{claim_name(template, sts, ordinal)}")
        if claim is not None and has_stale_ref(claim, pod, POD_KIND):
            return True
    return False


class ClaimControl:
    """The claim writes of one StatefulSet controller (events on the set)."""

    def __init__(
        self, client: Client, recorder: EventRecorder, get: Callable[[str], Obj | None]
    ) -> None:
        self.client = client
        self.recorder = recorder
        self.get = get

    async def create(self, sts: Obj, ordinal: int, pod_name: str) -> bool:
        """Create the pod's missing claims (``createPersistentVolumeClaims``); False while
        one of them is being deleted (the pod waits for it to go)."""
        ns, set_name = str(_meta(sts).get("namespace") or ""), _meta(sts)["name"]
        involved = {**sts, "apiVersion": SET_KIND[0], "kind": SET_KIND[1]}
        for template in claim_templates(sts):
            claim = new_claim(sts, template, ordinal)
            name = claim["metadata"]["name"]
            have = self.get(f"{ns}/{name}")
            if have is not None:
                if _meta(have).get("deletionTimestamp"):
                    await self.recorder.event(
                        involved,
                        "Warning",
                        FAILED_CREATE,
                        f"create Claim {name} for Pod {pod_name} in StatefulSet {set_name} "
                        f"failed error: pvc {name} is being deleted",
                    )
                    return False
                continue
            try:
                await self.client.create(PERSISTENT_VOLUME_CLAIMS, claim, ns)
            except StatusError as e:
                if e.code == 409:  # the cache had not seen it yet
                    continue
                await self.recorder.event(
                    involved,
                    "Warning",
                    FAILED_CREATE,
                    f"create Claim {name} for Pod {pod_name} in StatefulSet {set_name} "
                    f"failed error: {e.message}",
                )
                raise
            await self.recorder.event(
                involved,
                "Normal",
                SUCCESSFUL_CREATE,
                f"create Claim {name} Pod {pod_name} in StatefulSet {set_name} success",
            )
        return True

    async def own(self, sts: Obj, pod: Obj, ordinal: int) -> None:
        """``UpdatePodClaimForRetentionPolicy``: bring each existing claim's owners in
        line with the retention policy (a patch guarded by its resourceVersion)."""
        ns = str(_meta(sts).get("namespace") or "")
        for template in claim_templates(sts):
            name = claim_name(template, sts, ordinal)
            claim = self.get(f"{ns}/{name}")
            if claim is None or _meta(claim).get("deletionTimestamp"):
                continue
            if is_claim_owner_up_to_date(claim, sts, pod, ordinal):
                continue
            owners = claim_owners(claim, sts, pod, ordinal)
            body = {
                "metadata": {
                    "resourceVersion": _meta(claim).get("resourceVersion"),
                    "ownerReferences": owners or None,
                }
            }
            try:
                await self.client.patch(PERSISTENT_VOLUME_CLAIMS, name, body, ns)
            except StatusError as e:
                if e.code != 404:
                    raise


__all__ = [
    "ClaimControl",
    "claim_name",
    "claim_owners",
    "claim_templates",
    "has_stale_ref",
    "has_unexpected_controller",
    "is_claim_owner_up_to_date",
    "new_claim",
    "pod_claim_is_stale",
    "pod_in_ordinal_range",
    "retention",
]
