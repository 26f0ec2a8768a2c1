"""StatefulSet controller: pods with stable names, created, scaled and updated in order.

Run by ``ControllerManager`` (controllers/manager.py) beside the other workload
controllers. Behaves as Kubernetes' pkg/controller/statefulset does (1.32, without the
alpha maxUnavailable):

* pod ``<sts>-<ordinal>`` for ordinals ``[start, start + replicas)`` (``spec.ordinals``),
  labelled ``statefulset.kubernetes.io/pod-name``, ``apps.kubernetes.io/pod-index`` and
  ``controller-revision-hash``, with ``hostname`` = pod name and ``subdomain`` =
  ``spec.serviceName``;
* each of ``volumeClaimTemplates`` becomes a PersistentVolumeClaim
  ``<template>-<sts>-<ordinal>``, created before the pod (and again for a Pending pod
  that lost it) and mounted by it as the volume named after the template; a claim
  outlives its pod, so the pod made again for the same ordinal finds its data. Owner
  references follow ``persistentVolumeClaimRetentionPolicy`` (``whenDeleted: Delete``:
  the set controls the claim; ``whenScaled: Delete``: a condemned pod does, before it is
  deleted); see ``statefulset_claims.py``;
* every template is recorded in an ``apps/v1 ControllerRevision`` ``<sts>-<hash>`` with
  increasing ``revision`` numbers; ``status.currentRevision`` / ``updateRevision`` name them.

Each sync first claims (refmanager.py, upstream's ``adoptOrphanRevisions`` and
``getPodsForStatefulSet``): orphan ControllerRevisions the selector matches are adopted;
orphan pods the selector matches and named ``<sts>-<n>`` are adopted, owned pods that no
longer match are released. Then one sync is a pure plan (``plan``) and its execution::

    slots 0..n-1 (ascending)   missing -> Create; Failed/Succeeded -> Delete (recreated next)
                               OrderedReady: stop after one create, or at the first pod
                               that is terminating or not Running and Ready
    condemned (ordinal >= n,   Delete, highest ordinal first; OrderedReady: one at a time,
      descending)              waiting while one terminates or an earlier pod is unhealthy
    RollingUpdate              from the highest slot down to ``partition``: delete the first
                               pod not at updateRevision, then stop; stop at an unhealthy pod
    OnDelete                   nothing: pods are replaced when the user deletes them

Deletions carry a uid precondition, and pod names are stable, so a stale cache can only
cause a harmless AlreadyExists/NotFound/Conflict (no expectations are needed).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from corral.api.errors import StatusError
from corral.api.selectors import LabelSelector, SelectorError, try_selector_from_object
from corral.client.informer import Informer
from corral.client.rest import (
    CONTROLLERREVISIONS,
    PERSISTENT_VOLUME_CLAIMS,
    PODS,
    STATEFULSETS,
    Client,
)
from corral.controllers.base import (
    ORPHAN_NAMESPACE_INDEX,
    Controller,
    InformerFactory,
    clone,
    controller_ref,
    orphan_namespace_index,
)
from corral.controllers.deployment_util import compute_hash
from corral.controllers.refmanager import RefManager, controller_of, orphan_handler
from corral.controllers.replicaset import available_in, is_pod_ready
from corral.controllers.statefulset_claims import (
    ClaimControl,
    claim_name,
    claim_templates,
    pod_claim_is_stale,
)
from corral.util.clock import Clock

log = logging.getLogger("corral.controllers.statefulset")

Obj = dict[str, Any]


POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"
REVISION_HASH_LABEL = "controller.kubernetes.io/hash"

SUCCESSFUL_CREATE = "SuccessfulCreate"
FAILED_CREATE = "FailedCreate"
SUCCESSFUL_DELETE = "SuccessfulDelete"
FAILED_DELETE = "FailedDelete"


# --- pure helpers -------------------------------------------------------------------------------


def _meta(obj: Obj) -> Obj:
    m: Obj = obj.get("metadata") or {}
    return m


def parse_ordinal(sts_name: str, pod_name: str) -> int | None:
    """The ordinal of ``<sts>-<n>``; None if the name is not of that shape."""
    prefix = f"{sts_name}-"
    if not pod_name.startswith(prefix):
        return None
    rest = pod_name[len(prefix) :]
    if not rest.isdigit() or (len(rest) > 1 and rest[0] == "0"):
        return None
    return int(rest)


#: upstream's statefulPodRegex: ``<parent>-<ordinal>``
_MEMBER = re.compile(r"(.*)-([0-9]+)")


def is_member_of(sts_name: str, pod: Obj) -> bool:
    """The pod's name is ``<sts_name>-<digits>`` (``isMemberOf``: only such pods are
    adopted; an owned pod of another shape is released)."""
    m = _MEMBER.fullmatch(str(_meta(pod).get("name", "")))
    return m is not None and m.group(1) == sts_name


def pod_revision(pod: Obj) -> str:
    return str((_meta(pod).get("labels") or {}).get(REVISION_LABEL, ""))


def is_terminating(pod: Obj) -> bool:
    return bool(_meta(pod).get("deletionTimestamp"))


def is_failed(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")


def is_running_ready(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and is_pod_ready(pod)


def is_healthy(pod: Obj) -> bool:
    return is_running_ready(pod) and not is_terminating(pod)


def split_pods(
    sts_name: str, pods: list[Obj], start: int, replicas: int
) -> tuple[list[Obj | None], list[Obj]]:
    """(slots for ordinals start..start+replicas-1, condemned pods highest ordinal first)."""
    slots: list[Obj | None] = [None] * replicas
    condemned: list[tuple[int, Obj]] = []
    for pod in pods:
        n = parse_ordinal(sts_name, str(_meta(pod).get("name", "")))
        if n is None:
            continue
        if start <= n < start + replicas:
            slots[n - start] = pod
        else:
            condemned.append((n, pod))
    condemned.sort(key=lambda t: t[0], reverse=True)
    return slots, [p for _, p in condemned]


@dataclass(frozen=True)
class Create:
    """Create the pod of slot ``index``."""

    index: int


@dataclass(frozen=True)
class Delete:
    """Delete ``name`` (uid precondition ``uid``)."""

    name: str
    uid: str


Action = Create | Delete


def _delete(pod: Obj) -> Delete:
    return Delete(str(_meta(pod).get("name", "")), str(_meta(pod).get("uid", "")))


def plan(
    slots: list[Obj | None],
    condemned: list[Obj],
    *,
    ordered: bool,
    rolling: bool,
    partition: int,
    update_revision: str,
) -> list[Action]:
    """What one sync does, in order (see the module docstring); pure."""
    actions: list[Action] = []
    for i, pod in enumerate(slots):
        if pod is None:
            actions.append(Create(i))
            if ordered:
                return actions
            continue
        if is_failed(pod) and not is_terminating(pod):
            actions.append(_delete(pod))
            if ordered:
                return actions
            continue
        if ordered and not is_healthy(pod):
            return actions
    first_unhealthy = next((p for p in slots if p is not None and not is_healthy(p)), None)
    if first_unhealthy is None:
        first_unhealthy = next((p for p in condemned if not is_healthy(p)), None)
    for pod in condemned:
        if is_terminating(pod):
            if ordered:
                return actions
            continue
        if ordered and not is_running_ready(pod) and pod is not first_unhealthy:
            return actions
        actions.append(_delete(pod))
        if ordered:
            return actions
    if not rolling:
        return actions
    for i in range(len(slots) - 1, max(partition, 0) - 1, -1):
        pod = slots[i]
        if pod is None:
            return actions
        if pod_revision(pod) != update_revision and not is_terminating(pod):
            actions.append(_delete(pod))
            return actions
        if not is_healthy(pod):
            return actions
    return actions


def revision_data(sts: Obj) -> Obj:
    """The ControllerRevision ``data``: a patch replacing the pod template."""
    template = clone((sts.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def template_of(revision: Obj) -> Obj:
    template = clone(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def compute_status(sts: Obj, pods: list[Obj], current: str, update: str, now: float) -> Obj:
    """Counts, revisions (rolled forward once a RollingUpdate completed), generation."""
    spec = sts.get("spec") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    st: Obj = {
        "replicas": len(pods),
        "readyReplicas": sum(1 for p in pods if is_running_ready(p)),
        "availableReplicas": sum(
            1 for p in pods if is_running_ready(p) and available_in(p, min_ready, now) == 0.0
        ),
        "currentReplicas": sum(
            1 for p in pods if not is_terminating(p) and pod_revision(p) == current
        ),
        "updatedReplicas": sum(
            1 for p in pods if not is_terminating(p) and pod_revision(p) == update
        ),
        "currentRevision": current,
        "updateRevision": update,
        "observedGeneration": _meta(sts).get("generation", 0),
        "collisionCount": int((sts.get("status") or {}).get("collisionCount") or 0),
    }
    rolling = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
    if rolling and st["updatedReplicas"] == st["replicas"] == st["readyReplicas"]:
        st["currentReplicas"] = st["updatedReplicas"]
        st["currentRevision"] = update
    return st


def slot_revision(index: int, rolling: bool, partition: int) -> str:
    """``current`` or ``update``: which revision a new pod of slot ``index`` gets."""
    return "current" if rolling and index < partition else "update"


def new_pod(sts: Obj, ordinal: int, template: Obj, revision: str) -> Obj:
    """The pod ``<sts>-<ordinal>`` from ``template`` at ``revision``."""
    name = f"{_meta(sts)['name']}-{ordinal}"
    tmeta = template.get("metadata") or {}
    labels = dict(tmeta.get("labels") or {})
    labels.update({REVISION_LABEL: revision, POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal)})
    meta: Obj = {
        "name": name,
        "labels": labels,
        "ownerReferences": [controller_ref(sts, "apps/v1", "StatefulSet")],
    }
    for k in ("annotations", "finalizers"):
        if tmeta.get(k):
            meta[k] = clone(tmeta[k])
    spec = clone(template.get("spec") or {})
    spec["hostname"] = name
    service = (sts.get("spec") or {}).get("serviceName")
    if service:
        spec["subdomain"] = service
    # upstream's updateStorage: the claims' volumes first, then the template's others
    templates = claim_templates(sts)
    names = {_meta(t)["name"] for t in templates}
    volumes = [
        {
            "name": _meta(t)["name"],
            "persistentVolumeClaim": {"claimName": claim_name(t, sts, ordinal)},
        }
        for t in templates
    ]
    volumes += [v for v in spec.get("volumes") or () if v.get("name") not in names]
    if volumes:
        spec["volumes"] = volumes
    else:
        spec.pop("volumes", None)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


# --- controller ---------------------------------------------------------------------------------


class StatefulSetController(Controller):
    """Keeps each StatefulSet's ordinal pods and revisions (see the module docstring)."""

    name: ClassVar[str] = "statefulset"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 4,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        self.sets: Informer = factory.informer(STATEFULSETS)
        self.pods: Informer = factory.informer(PODS)
        self.revisions: Informer = factory.informer(CONTROLLERREVISIONS)
        self.claims: Informer = factory.informer(PERSISTENT_VOLUME_CLAIMS)
        self.claim_control = ClaimControl(client, self.recorder, self.claims.get)
        self._owner_index = "statefulset/owner-uid"
        self._orphan_index = ORPHAN_NAMESPACE_INDEX  # shared with other controllers
        self._ns_index = "statefulset/namespace"
        self.sets.add_index(self._ns_index, lambda o: [str(_meta(o).get("namespace") or "")])
        for inf in (self.pods, self.revisions):
            inf.add_index(self._owner_index, _controller_uid)
            inf.add_index(self._orphan_index, orphan_namespace_index)
        self.sets.add_handler(lambda _t, o, _old: self.enqueue(o))
        self.claims.add_handler(self._on_claim)
        for inf in (self.pods, self.revisions):
            inf.add_handler(self.enqueue_owner("StatefulSet"))
            inf.add_handler(
                orphan_handler(
                    lambda ns: self.sets.by_index(self._ns_index, ns), _selector, self.enqueue
                )
            )

    def _on_claim(self, type_: str, claim: Obj, _old: Obj | None) -> None:
        """A claim deleted (or going): the sets whose templates name it sync again, so
        a Pending pod gets it back and a held-back pod is created once it is gone."""
        if type_ != "DELETED" and not _meta(claim).get("deletionTimestamp"):
            return
        name = str(_meta(claim).get("name", ""))
        for sts in self.sets.by_index(self._ns_index, str(_meta(claim).get("namespace") or "")):
            prefix = f"-{_meta(sts)['name']}-"
            if any(name.startswith(_meta(t)["name"] + prefix) for t in claim_templates(sts)):
                self.enqueue(sts)

    def _involved(self, sts: Obj) -> Obj:
        return {**sts, "apiVersion": "apps/v1", "kind": "StatefulSet"}

    async def sync(self, key: str) -> None:
        sts = self.sets.get(key)
        if sts is None:
            return
        m = _meta(sts)
        try:
            selector = try_selector_from_object((sts.get("spec") or {}).get("selector"))
        except SelectorError as e:
            log.warning("StatefulSet %s: invalid selector: %s", key, e)
            return
        uid = str(m.get("uid", ""))
        ns = str(m.get("namespace") or "")
        refs = RefManager(self.client, STATEFULSETS, sts, "apps/v1", "StatefulSet")

        def labelled(obj: Obj) -> bool:
            return selector.matches(_meta(obj).get("labels") or {})

        # orphan revisions the selector matches are adopted; owned ones are never released
        revisions = await refs.claim(
            CONTROLLERREVISIONS,
            self.revisions.by_index(self._owner_index, uid)
            + self.revisions.by_index(self._orphan_index, ns),
            lambda r: controller_of(r) is not None or labelled(r),
        )
        pods = await refs.claim(
            PODS,
            self.pods.by_index(self._owner_index, uid) + self.pods.by_index(self._orphan_index, ns),
            lambda p: labelled(p) and is_member_of(str(m["name"]), p),
        )
        current, update, revisions = await self._revisions(sts, revisions)
        spec = sts.get("spec") or {}
        strategy = spec.get("updateStrategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        if not m.get("deletionTimestamp"):
            start = int((spec.get("ordinals") or {}).get("start") or 0)
            want = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
            slots, condemned = split_pods(str(m["name"]), pods, start, want)
            actions = plan(
                slots,
                condemned,
                ordered=spec.get("podManagementPolicy", "OrderedReady") != "Parallel",
                rolling=rolling,
                partition=partition,
                update_revision=_meta(update)["name"],
            )
            templates = {"current": current, "update": update}
            for i, pod in enumerate(slots):
                if pod is None or is_terminating(pod):
                    continue
                if (pod.get("status") or {}).get("phase") == "Pending":
                    # createMissingPersistentVolumeClaims: a claim deleted under a pod
                    # that has not started is made again
                    await self.claim_control.create(sts, start + i, _meta(pod)["name"])
                await self.claim_control.own(sts, pod, start + i)
            for action in actions:
                if isinstance(action, Create):
                    ordinal = start + action.index
                    rev = templates[slot_revision(action.index, rolling, partition)]
                    pod = new_pod(sts, ordinal, template_of(rev), _meta(rev)["name"])
                    if pod_claim_is_stale(sts, pod, ordinal, self.claims.get):
                        self.queue.add_after(key, 1.0)  # the old pod's claim is going away
                    elif await self.claim_control.create(sts, ordinal, pod["metadata"]["name"]):
                        await self._create(sts, pod)
                    else:
                        self.queue.add_after(key, 1.0)
                else:
                    gone = next((p for p in condemned if _meta(p).get("uid") == action.uid), None)
                    n = parse_ordinal(str(m["name"]), action.name)
                    if gone is not None and n is not None:
                        await self.claim_control.own(sts, gone, n)
                    await self._delete(sts, action)
        now = self.clock.now()
        status = compute_status(sts, pods, _meta(current)["name"], _meta(update)["name"], now)
        await self._update_status(sts, status)
        await self._truncate_history(sts, pods, revisions, status)
        min_ready = int(spec.get("minReadySeconds") or 0)
        if min_ready > 0:
            waits = [w for p in pods if (w := available_in(p, min_ready, now))]
            if waits:
                self.queue.add_after(key, min(waits) + 0.05)

    # --- revisions --------------------------------------------------------------------------
    async def _revisions(self, sts: Obj, revisions: list[Obj]) -> tuple[Obj, Obj, list[Obj]]:
        """(current, update, all revisions): the update revision is created or re-numbered."""
        m = _meta(sts)
        ns = m.get("namespace")
        revisions = sorted(revisions, key=lambda r: int(r.get("revision") or 0))
        data = revision_data(sts)
        top = int(revisions[-1].get("revision") or 0) if revisions else 0
        equal = [r for r in revisions if r.get("data") == data]
        if equal and equal[-1] is revisions[-1]:
            update = equal[-1]
        elif equal:
            update = await self.client.patch(
                CONTROLLERREVISIONS, _meta(equal[-1])["name"], {"revision": top + 1}, ns
            )
            revisions = [r for r in revisions if r is not equal[-1]] + [update]
        else:
            update = await self._create_revision(sts, data, top + 1)
            revisions = [*revisions, update]
        current_name = (sts.get("status") or {}).get("currentRevision")
        current = next((r for r in revisions if _meta(r)["name"] == current_name), update)
        return current, update, revisions

    async def _create_revision(self, sts: Obj, data: Obj, number: int) -> Obj:
        m = _meta(sts)
        ns = m.get("namespace")
        collisions = int((sts.get("status") or {}).get("collisionCount") or 0)
        template_labels = ((sts.get("spec") or {}).get("template") or {}).get("metadata") or {}
        while True:
            h = compute_hash(data, collisions)
            body: Obj = {
                "apiVersion": "apps/v1",
                "kind": "ControllerRevision",
                "metadata": {
                    "name": f"{str(m['name'])[:223]}-{h}",
                    "labels": {**(template_labels.get("labels") or {}), REVISION_HASH_LABEL: h},
                    "ownerReferences": [controller_ref(sts, "apps/v1", "StatefulSet")],
                },
                "data": data,
                "revision": number,
            }
            try:
                return await self.client.create(CONTROLLERREVISIONS, body, ns)
            except StatusError as e:
                if e.code != 409:
                    raise
            found = await self.client.get(CONTROLLERREVISIONS, body["metadata"]["name"], ns)
            if found.get("data") == data:
                return found
            collisions += 1  # a different template hashed to the same name
            await self.client.patch(
                STATEFULSETS,
                m["name"],
                {"status": {"collisionCount": collisions}},
                ns,
                sub="status",
            )

    async def _truncate_history(
        self, sts: Obj, pods: list[Obj], revisions: list[Obj], status: Obj
    ) -> None:
        live = {pod_revision(p) for p in pods}
        live |= {status["currentRevision"], status["updateRevision"]}
        old = [r for r in revisions if _meta(r)["name"] not in live]
        limit = (sts.get("spec") or {}).get("revisionHistoryLimit")
        keep = 10 if limit is None else int(limit)
        old.sort(key=lambda r: int(r.get("revision") or 0))
        for r in old[: max(len(old) - keep, 0)]:
            try:
                await self.client.delete(
                    CONTROLLERREVISIONS, _meta(r)["name"], _meta(r).get("namespace")
                )
            except StatusError as e:
                if e.code != 404:
                    raise

    # --- pods ------------------------------------------------------------------------------
    async def _create(self, sts: Obj, pod: Obj) -> None:
        name, set_name = pod["metadata"]["name"], _meta(sts)["name"]
        try:
            await self.client.create(PODS, pod, _meta(sts).get("namespace"))
        except StatusError as e:
            if e.code == 409:  # the cache had not seen it yet
                return
            await self.recorder.event(
                self._involved(sts),
                "Warning",
                FAILED_CREATE,
                f"create Pod {name} in StatefulSet {set_name} failed error: {e.message}",
            )
            raise
        await self.recorder.event(
            self._involved(sts),
            "Normal",
            SUCCESSFUL_CREATE,
            f"create Pod {name} in StatefulSet {set_name} successful",
        )

    async def _delete(self, sts: Obj, action: Delete) -> None:
        ns, set_name = _meta(sts).get("namespace"), _meta(sts)["name"]
        body: Obj = {"preconditions": {"uid": action.uid}} if action.uid else {}
        try:
            await self.client.request("DELETE", PODS.path(ns, action.name), body=body or None)
        except StatusError as e:
            if e.code in (404, 409):
                return
            await self.recorder.event(
                self._involved(sts),
                "Warning",
                FAILED_DELETE,
                f"delete Pod {action.name} in StatefulSet {set_name} failed error: {e.message}",
            )
            raise
        await self.recorder.event(
            self._involved(sts),
            "Normal",
            SUCCESSFUL_DELETE,
            f"delete Pod {action.name} in StatefulSet {set_name} successful",
        )

    async def _update_status(self, sts: Obj, status: Obj) -> None:
        old = sts.get("status") or {}
        if all(old.get(k, 0 if isinstance(v, int) else "") == v for k, v in status.items()):
            return
        m = _meta(sts)
        try:
            await self.client.patch(
                STATEFULSETS, m["name"], {"status": status}, m.get("namespace"), sub="status"
            )
        except StatusError as e:
            if e.code != 404:
                raise


def _selector(sts: Obj) -> LabelSelector | None:
    try:
        return try_selector_from_object((sts.get("spec") or {}).get("selector"))
    except SelectorError:
        return None


def _controller_uid(obj: Obj) -> list[str]:
    for ref in _meta(obj).get("ownerReferences") or ():
        if ref.get("controller") and ref.get("kind") == "StatefulSet":
            return [str(ref.get("uid", ""))]
    return []
