"""Claiming dependents through their ControllerRef: adopt matching orphans, release strays.

Used by the DaemonSet, StatefulSet and Job controllers (pods, and the ControllerRevisions
of the first two) at the start of each ``sync``, as Kubernetes' ``ControllerRefManager``
(pkg/controller/controller_ref_manager.go) is. ``claim_plan`` is the pure decision;
``RefManager`` applies it through the API. For each candidate object::

    controller ref to another owner -----------------------------> ignore
    controller ref to us:   matches -----------------------------> claimed
                            no match, owner not being deleted ---> release
                                                                   (ref removed)
    no controller ref:      owner being deleted, no match,
                            object being deleted, other namespace -> ignore
                            otherwise ---------------------------> adopt (ref added)

Adoption is a strategic merge patch adding the owner's ``controller: true,
blockOwnerDeletion: true`` reference with the object's ``uid`` as precondition (a pod
deleted and recreated under the same name is not adopted by mistake); release is a
``$patch: delete`` of the reference. Before the first adoption the owner is re-read
uncached (``RecheckDeletionTimestamp``): an owner that is gone, replaced or being deleted
adopts nothing. Optional ``finalizers`` are added on adoption and removed on release (the
Job's tracking finalizer). A dependent that is gone (404) or changed identity (422) is
skipped; any other error is raised after the other objects were handled, so the caller's
sync is retried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from corral.api.errors import StatusError
from corral.api.selectors import LabelSelector
from corral.client.rest import Client, Resource
from corral.controllers.base import controller_ref

Obj = dict[str, Any]
Handler = Callable[[str, Obj, "Obj | None"], None]

STRATEGIC = "application/strategic-merge-patch+json"


def _meta(obj: Obj | None) -> Obj:
    m = (obj or {}).get("metadata")
    return m if isinstance(m, dict) else {}


def controller_of(obj: Obj) -> Obj | None:
    """The ownerReference with ``controller: true``, if any."""
    for ref in _meta(obj).get("ownerReferences") or ():
        if ref.get("controller"):
            return dict(ref)
    return None


def claim_plan(
    owner: Obj, objs: Iterable[Obj], matches: Callable[[Obj], bool]
) -> tuple[list[Obj], list[Obj], list[Obj]]:
    """(already claimed, to adopt, to release) among ``objs``; pure (see the docstring)."""
    m = _meta(owner)
    uid, ns = m.get("uid"), m.get("namespace") or ""
    deleting = bool(m.get("deletionTimestamp"))
    claimed: list[Obj] = []
    adopt: list[Obj] = []
    release: list[Obj] = []
    for obj in objs:
        ref = controller_of(obj)
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if matches(obj):
                claimed.append(obj)
            elif not deleting:
                release.append(obj)
            continue
        if deleting or not matches(obj) or _meta(obj).get("deletionTimestamp"):
            continue
        if ns and (_meta(obj).get("namespace") or "") != ns:
            continue
        adopt.append(obj)
    return claimed, adopt, release


def adopt_patch(owner: Obj, api_version: str, kind: str, obj: Obj, finalizers: list[str]) -> Obj:
    """The strategic merge patch adding ``owner``'s controller reference to ``obj``."""
    meta: Obj = {
        "ownerReferences": [controller_ref(owner, api_version, kind)],
        "uid": _meta(obj).get("uid"),
    }
    if finalizers:
        meta["finalizers"] = list(finalizers)
    return {"metadata": meta}


def release_patch(owner: Obj, obj: Obj, finalizers: list[str]) -> Obj:
    """The strategic merge patch removing ``owner``'s reference (and ``finalizers``)."""
    meta: Obj = {
        "ownerReferences": [{"$patch": "delete", "uid": _meta(owner).get("uid")}],
        "uid": _meta(obj).get("uid"),
    }
    if finalizers:
        meta["$deleteFromPrimitiveList/finalizers"] = list(finalizers)
    return {"metadata": meta}


def selector_matches(selector: LabelSelector) -> Callable[[Obj], bool]:
    """A ``matches`` for ``claim_plan``: the object's labels match ``selector``."""
    return lambda obj: selector.matches(_meta(obj).get("labels") or {})


class RefManager:
    """Claims ``resource`` objects for one owner (one instance per sync: the uncached
    owner check is made at most once)."""

    def __init__(
        self,
        client: Client,
        owner_resource: Resource,
        owner: Obj,
        api_version: str,
        kind: str,
        *,
        finalizers: Iterable[str] = (),
    ) -> None:
        self.client = client
        self.owner_resource = owner_resource
        self.owner = owner
        self.api_version = api_version
        self.kind = kind
        self.finalizers = list(finalizers)
        self._can_adopt: bool | None = None

    async def can_adopt(self) -> bool:
        """The owner, read uncached, is the same object and is not being deleted."""
        if self._can_adopt is None:
            m = _meta(self.owner)
            try:
                fresh = await self.client.get(self.owner_resource, m["name"], m.get("namespace"))
            except StatusError as e:
                if e.code != 404:
                    raise
                self._can_adopt = False
            else:
                fm = _meta(fresh)
                self._can_adopt = fm.get("uid") == m.get("uid") and not fm.get("deletionTimestamp")
        return self._can_adopt

    async def claim(
        self, resource: Resource, objs: Iterable[Obj], matches: Callable[[Obj], bool]
    ) -> list[Obj]:
        """The owner's objects among ``objs`` after adopting and releasing (adopted ones
        as the API returned them); raises the first unexpected API error at the end."""
        claimed, adopt, release = claim_plan(self.owner, objs, matches)
        errors: list[StatusError] = []
        for obj in release:
            await self._patch(
                resource, obj, release_patch(self.owner, obj, self.finalizers), errors
            )
        if adopt:
            try:
                ok = await self.can_adopt()
            except StatusError as e:
                errors.append(e)
                ok = False
            for obj in adopt if ok else ():
                body = adopt_patch(self.owner, self.api_version, self.kind, obj, self.finalizers)
                made = await self._patch(resource, obj, body, errors)
                if made is not None:
                    claimed.append(made)
        if errors:
            raise errors[0]
        return claimed

    async def _patch(
        self, resource: Resource, obj: Obj, body: Obj, errors: list[StatusError]
    ) -> Obj | None:
        m = _meta(obj)
        try:
            out: Obj = await self.client.patch(
                resource, m["name"], body, m.get("namespace"), patch_type=STRATEGIC
            )
        except StatusError as e:
            if e.code not in (404, 422):  # gone, or deleted and recreated: not ours to touch
                errors.append(e)
            return None
        return out


def orphan_handler(
    owners_in: Callable[[str], Iterable[Obj]],
    selector_of: Callable[[Obj], LabelSelector | None],
    enqueue: Callable[[Obj], None],
) -> Handler:
    """An informer handler for dependents: an orphan that appears, or whose labels or
    controller reference changed, enqueues every owner in its namespace whose selector
    (non-empty) matches it (upstream's ``addPod``/``updatePod`` for orphans)."""

    def handler(type_: str, obj: Obj, old: Obj | None) -> None:
        if type_ == "DELETED" or controller_of(obj) is not None:
            return
        if _meta(obj).get("deletionTimestamp"):
            return
        if old is not None and type_ != "ADDED":
            same_labels = _meta(old).get("labels") == _meta(obj).get("labels")
            if same_labels and controller_of(old) is None:
                return
        labels: Mapping[str, str] = _meta(obj).get("labels") or {}
        for owner in owners_in(str(_meta(obj).get("namespace") or "")):
            sel = selector_of(owner)
            if sel is None or sel.empty or sel.nothing:
                continue
            if sel.matches(labels):
                enqueue(owner)

    return handler
