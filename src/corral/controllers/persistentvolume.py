"""The PersistentVolume binder: claims meet volumes, as Kubernetes' PV controller does.

Run by ``ControllerManager`` as ``persistentvolume-binder`` (upstream's name). Follows
``pkg/controller/volume/persistentvolume/pv_controller.go`` (1.32) over informers on
PersistentVolumes, PersistentVolumeClaims, StorageClasses and Pods; keys are
``claim/<ns>/<name>`` and ``volume/<name>`` on one queue::

    claim Pending ──(volumeName empty)── best Available match ──> bind
       │                                  none: WaitForFirstConsumer class without a
       │                                        selected node -> event WaitForFirstConsumer
       │                                        (or WaitForPodScheduled)
       │                                        class set -> annotate the provisioner,
       │                                        event ExternalProvisioning (an external
       │                                        provisioner, here local-path, creates the PV)
       │                                        no class -> event FailedBinding
       ├─(volumeName set by the user)── that volume, if it satisfies the claim ──> bind
    claim Bound ── its volume gone or bound elsewhere ──> Lost (ClaimLost / ClaimMisbound)

    volume Available (no claimRef, or a claimRef without uid: pre-bound)
       ──bind──> Bound ──claim deleted──> Released ──Retain: stays
                                                   ──Delete: provisioned -> its provisioner
                                                     deletes the PV; else Failed
                                                     (VolumeFailedDelete)
                                                   ──Recycle: Failed (no recycler)

Binding writes, in upstream's order: the volume's ``claimRef`` (annotated
``pv.kubernetes.io/bound-by-controller`` when the controller chose it), the volume's
phase Bound, the claim's ``volumeName`` with ``pv.kubernetes.io/bind-completed`` (and
bound-by-controller), the claim's status (Bound, access modes and capacity of the
volume). Every write carries the resourceVersion it was decided on, and the binder
reads its own writes before the informers show them (``assumed.py``), so neither a
lagging cache nor a second worker can bind one volume to two claims: a 409 re-reads and
syncs again. Matching is the shared ``corral.api.volume_matching.find_matching_volume``
over the access-mode index (``find_best_match``: smallest access-mode set first).
Claims without a class get the default class retroactively, as upstream. A volume whose
claim the cache does not show is checked against the API server before it is Released
(unless already Released or Failed), so a just-provisioned volume is never reclaimed.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from corral.api.errors import StatusError
from corral.api.volume_matching import (
    claim_class,
    claim_names_class,
    claim_ref,
    default_class,
    find_best_match,
    is_bound_to,
    mismatch,
)
from corral.api.volumes import (
    BETA_STORAGE_PROVISIONER,
    BIND_COMPLETED,
    BOUND_BY_CONTROLLER,
    PROVISIONED_BY,
    SELECTED_NODE,
    STORAGE_PROVISIONER,
)
from corral.client.informer import Informer, key_of
from corral.client.rest import (
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    PODS,
    STORAGE_CLASSES,
    Client,
)
from corral.controllers.assumed import AssumedWrites, Conflict
from corral.controllers.base import Controller, InformerFactory
from corral.util.clock import Clock, rfc3339

log = logging.getLogger("corral.controllers.persistentvolume")

Obj = dict[str, Any]

WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
#: the Pod informer index of the claims a pod names (``ns/name``), shared with pvc-protection
POD_CLAIM_INDEX = "pod/claims"

# event reasons (pkg/controller/volume/events)
FAILED_BINDING = "FailedBinding"
VOLUME_MISMATCH = "VolumeMismatch"
CLAIM_LOST = "ClaimLost"
CLAIM_MISBOUND = "ClaimMisbound"
WAIT_FOR_POD_SCHEDULED = "WaitForPodScheduled"
EXTERNAL_PROVISIONING = "ExternalProvisioning"
PROVISIONING_FAILED = "ProvisioningFailed"
VOLUME_FAILED_DELETE = "VolumeFailedDelete"
VOLUME_FAILED_RECYCLE = "VolumeFailedRecycle"

NO_CLASS_MESSAGE = "no persistent volumes available for this claim and no storage class is set"
WAITING_MESSAGE = "waiting for first consumer to be created before binding"


# --- pure helpers -------------------------------------------------------------------------------


def _meta(obj: Obj) -> Obj:
    m: Obj = obj.get("metadata") or {}
    return m


def _annotations(obj: Obj) -> dict[str, str]:
    a: dict[str, str] = _meta(obj).get("annotations") or {}
    return a


def _spec(obj: Obj) -> Obj:
    s: Obj = obj.get("spec") or {}
    return s


def _phase(obj: Obj) -> str:
    return str((obj.get("status") or {}).get("phase") or "")


def pod_claims(pod: Obj) -> list[str]:
    """Names of the claims a pod's ``persistentVolumeClaim`` volumes use."""
    out: list[str] = []
    for v in _spec(pod).get("volumes") or ():
        pvc = v.get("persistentVolumeClaim")
        if isinstance(pvc, dict) and pvc.get("claimName"):
            out.append(str(pvc["claimName"]))
    return out


def pod_claim_keys(pod: Obj) -> list[str]:
    """The ``POD_CLAIM_INDEX`` function: ``ns/name`` of each claim the pod uses."""
    ns = str(_meta(pod).get("namespace", ""))
    return [f"{ns}/{name}" for name in pod_claims(pod)]


# --- controller ---------------------------------------------------------------------------------


class PersistentVolumeBinderController(Controller):
    """Binds claims to volumes and follows both through their phases (module docstring)."""

    name: ClassVar[str] = "persistentvolume-binder"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 2,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        self.volumes: Informer = factory.informer(PERSISTENT_VOLUMES)
        self.claims: Informer = factory.informer(PERSISTENT_VOLUME_CLAIMS)
        self.classes: Informer = factory.informer(STORAGE_CLASSES)
        self.pods: Informer = factory.informer(PODS)
        #: this controller's own writes ("volume/<name>", "claim/<ns>/<name>"), newer than
        #: the informers until they catch up (upstream's storeObjectUpdate)
        self.assumed = AssumedWrites(client)
        self._by_claim = "persistentvolume/claim"
        self.volumes.add_index(self._by_claim, _claim_ref_key)
        self.pods.add_index(POD_CLAIM_INDEX, pod_claim_keys)
        self.volumes.add_handler(self._on_volume)
        self.claims.add_handler(self._on_claim)
        self.classes.add_handler(lambda _t, _o, _old: self._enqueue_pending())
        self.pods.add_handler(self._on_pod)

    @property
    def component(self) -> str:
        return "persistentvolume-controller"

    # --- the caches and this controller's own writes --------------------------------------
    def _volume(self, name: str) -> Obj | None:
        return self.assumed.fresh("volume/" + name, self.volumes.get(name))

    def _claim(self, key: str) -> Obj | None:
        return self.assumed.fresh("claim/" + key, self.claims.get(key))

    def _all_volumes(self) -> list[Obj]:
        fresh = (self.assumed.fresh("volume/" + k, v) for k, v in list(self.volumes.store.items()))
        return [v for v in fresh if v is not None]

    async def _write(self, key: str, body: Obj, sub: str = "") -> Obj:
        """Patch the volume or claim of ``key`` (``volume/<name>``, ``claim/<ns>/<name>``)
        with ``body``, which carries its resourceVersion precondition (``assumed.py``)."""
        kind, _, rest = key.partition("/")
        res = PERSISTENT_VOLUMES if kind == "volume" else PERSISTENT_VOLUME_CLAIMS
        ns, _, name = rest.rpartition("/")
        return await self.assumed.patch(key, res, name, body, ns or None, sub)

    # --- handlers ---------------------------------------------------------------------------
    def _on_volume(self, type_: str, pv: Obj, old: Obj | None) -> None:
        self.queue.add("volume/" + key_of(pv))
        ref = _spec(pv).get("claimRef")
        if isinstance(ref, dict) and ref.get("name"):
            self.queue.add(f"claim/{ref.get('namespace', '')}/{ref['name']}")
        if type_ == "DELETED":
            self.assumed.forget("volume/" + key_of(pv))
            self._enqueue_pending()
        elif _phase(pv) == "Available":
            self._enqueue_pending()

    def _on_claim(self, type_: str, claim: Obj, old: Obj | None) -> None:
        key = key_of(claim)
        self.queue.add("claim/" + key)
        if type_ == "DELETED":
            self.assumed.forget("claim/" + key)
            for pv in self.volumes.by_index(self._by_claim, key):
                self.queue.add("volume/" + key_of(pv))
            name = _spec(claim).get("volumeName")
            if name:
                self.queue.add(f"volume/{name}")

    def _on_pod(self, _type: str, pod: Obj, old: Obj | None) -> None:
        if _spec(pod).get("nodeName") and old is not None and _spec(old).get("nodeName"):
            return
        for key in pod_claim_keys(pod):
            claim = self.claims.get(key)
            if claim is not None and _phase(claim) != "Bound":
                self.queue.add("claim/" + key)

    def _enqueue_pending(self) -> None:
        for key, claim in self.claims.store.items():
            if not _spec(claim).get("volumeName"):
                self.queue.add("claim/" + key)

    # --- sync ------------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        kind, _, rest = key.partition("/")
        try:
            if kind == "claim":
                claim = self._claim(rest)
                if claim is not None:
                    await self._sync_claim(claim)
            elif kind == "volume":
                pv = self._volume(rest)
                if pv is not None:
                    await self._sync_volume(pv)
        except Conflict as e:
            log.debug("%s: %s changed meanwhile; syncing %s again", self.name, e, key)
            self.queue.add(key)

    def _involved(self, obj: Obj, kind: str) -> Obj:
        return {**obj, "apiVersion": "v1", "kind": kind}

    async def _claim_event(self, claim: Obj, type_: str, reason: str, message: str) -> None:
        await self.recorder.event(
            self._involved(claim, "PersistentVolumeClaim"), type_, reason, message
        )

    async def _volume_event(self, pv: Obj, type_: str, reason: str, message: str) -> None:
        await self.recorder.event(self._involved(pv, "PersistentVolume"), type_, reason, message)

    # --- claims ----------------------------------------------------------------------------------
    async def _sync_claim(self, claim: Obj) -> None:
        if BIND_COMPLETED not in _annotations(claim):
            await self._sync_unbound_claim(claim)
        else:
            await self._sync_bound_claim(claim)

    async def _sync_unbound_claim(self, claim: Obj) -> None:
        spec, m = _spec(claim), _meta(claim)
        if not claim_names_class(claim) and not spec.get("volumeName"):
            default = default_class(self.classes.store.values())
            if default is not None:  # retroactive default class; the update re-enqueues
                body = {
                    "metadata": {"resourceVersion": m.get("resourceVersion")},
                    "spec": {"storageClassName": default},
                }
                await self._write("claim/" + key_of(claim), body)
                return
        volume_name = spec.get("volumeName")
        if not volume_name:
            cls = claim_class(claim)
            sc = self.classes.get(cls) if cls else None
            delay = sc is not None and sc.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER
            pv = find_best_match(claim, self._all_volumes(), delay)
            if pv is not None:
                await self._bind(pv, claim)
                return
            if delay and SELECTED_NODE not in _annotations(claim):
                await self._wait_event(claim)
            elif cls:
                claim = await self._provision(claim, cls, sc)
            else:
                await self._claim_event(claim, "Normal", FAILED_BINDING, NO_CLASS_MESSAGE)
            await self._claim_status(claim, "Pending", None)
            return
        pv = self._volume(str(volume_name))
        if pv is None:
            await self._claim_status(claim, "Pending", None)
            return
        ref = _spec(pv).get("claimRef")
        if ref is None:
            why = mismatch(pv, claim)
            if why:
                await self._claim_event(
                    claim,
                    "Warning",
                    VOLUME_MISMATCH,
                    f'Cannot bind to requested volume "{volume_name}": {why}',
                )
                await self._claim_status(claim, "Pending", None)
                return
            await self._bind(pv, claim)
        elif is_bound_to(pv, claim):
            await self._bind(pv, claim)
        else:
            await self._claim_event(
                claim,
                "Warning",
                FAILED_BINDING,
                f'volume "{volume_name}" already bound to a different claim.',
            )
            await self._claim_status(claim, "Pending", None)

    async def _wait_event(self, claim: Obj) -> None:
        waiting = sorted(
            str(_meta(p).get("name", ""))
            for p in self.pods.by_index(POD_CLAIM_INDEX, key_of(claim))
            if not _spec(p).get("nodeName") and _phase(p) not in ("Succeeded", "Failed")
        )
        if not waiting:
            await self._claim_event(claim, "Normal", WAIT_FOR_FIRST_CONSUMER, WAITING_MESSAGE)
        elif len(waiting) == 1:
            message = f"waiting for pod {waiting[0]} to be scheduled"
            await self._claim_event(claim, "Normal", WAIT_FOR_POD_SCHEDULED, message)
        else:
            message = f"waiting for pods {','.join(waiting)} to be scheduled"
            await self._claim_event(claim, "Normal", WAIT_FOR_POD_SCHEDULED, message)

    async def _provision(self, claim: Obj, cls: str, sc: Obj | None) -> Obj:
        """``provisionClaim`` for an external provisioner: name it on the claim (returned
        as written)."""
        if sc is None:
            message = f'storageclass.storage.k8s.io "{cls}" not found'
            await self._claim_event(claim, "Warning", PROVISIONING_FAILED, message)
            return claim
        provisioner = str(sc.get("provisioner") or "")
        a = _annotations(claim)
        if a.get(STORAGE_PROVISIONER) != provisioner or a.get(BETA_STORAGE_PROVISIONER) != (
            provisioner
        ):
            patch = {
                "metadata": {
                    "resourceVersion": _meta(claim).get("resourceVersion"),
                    "annotations": {
                        STORAGE_PROVISIONER: provisioner,
                        BETA_STORAGE_PROVISIONER: provisioner,
                    },
                }
            }
            claim = await self._write("claim/" + key_of(claim), patch)
        message = (
            f"Waiting for a volume to be created either by the external provisioner "
            f"'{provisioner}' or manually by the system administrator. If volume creation "
            "is delayed, please verify that the provisioner is running and correctly "
            "registered."
        )
        await self._claim_event(claim, "Normal", EXTERNAL_PROVISIONING, message)
        return claim

    async def _sync_bound_claim(self, claim: Obj) -> None:
        volume_name = _spec(claim).get("volumeName")
        pv = self._volume(str(volume_name)) if volume_name else None
        if pv is not None and (_spec(pv).get("claimRef") is None or is_bound_to(pv, claim)):
            await self._bind(pv, claim)
            return
        await self._claim_status(claim, "Lost", None)
        if not volume_name:
            why = "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!"
            await self._claim_event(claim, "Warning", CLAIM_LOST, why)
        elif pv is None:
            why = "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
            await self._claim_event(claim, "Warning", CLAIM_LOST, why)
        else:
            why = "Two claims are bound to the same volume, this one is bound incorrectly"
            await self._claim_event(claim, "Warning", CLAIM_MISBOUND, why)

    # --- binding ---------------------------------------------------------------------------------
    async def _bind(self, pv: Obj, claim: Obj) -> None:
        """``bind``: volume claimRef, volume phase, claim volumeName, claim status; each
        write carries the resourceVersion it was decided on, so a stale cache or another
        worker can never give one volume to two claims (a conflict syncs again)."""
        pv_name = str(_meta(pv)["name"])
        ref = _spec(pv).get("claimRef")
        cm = _meta(claim)
        if not (
            isinstance(ref, dict) and ref.get("uid") == cm.get("uid") and is_bound_to(pv, claim)
        ):
            meta: Obj = {"resourceVersion": _meta(pv).get("resourceVersion")}
            if ref is None:
                meta["annotations"] = {BOUND_BY_CONTROLLER: "yes"}
            patch: Obj = {"metadata": meta, "spec": {"claimRef": claim_ref(claim)}}
            pv = await self._write("volume/" + pv_name, patch)
        pv = await self._volume_phase(pv, "Bound", "")
        a = _annotations(claim)
        if _spec(claim).get("volumeName") != pv_name or a.get(BIND_COMPLETED) != "yes":
            annotations = {BIND_COMPLETED: "yes"}
            body: Obj = {
                "metadata": {
                    "annotations": annotations,
                    "resourceVersion": cm.get("resourceVersion"),
                }
            }
            if _spec(claim).get("volumeName") != pv_name:
                annotations[BOUND_BY_CONTROLLER] = "yes"
                body["spec"] = {"volumeName": pv_name}
            claim = await self._write("claim/" + key_of(claim), body)
        await self._claim_status(claim, "Bound", pv)

    async def _claim_status(self, claim: Obj, phase: str, pv: Obj | None) -> None:
        """``updateClaimStatus``: the phase, and the bound volume's modes and capacity."""
        status = claim.get("status") or {}
        want: Obj = {"phase": phase, "accessModes": None, "capacity": None}
        if pv is not None:
            want["accessModes"] = list(_spec(pv).get("accessModes") or [])
            want["capacity"] = dict(_spec(pv).get("capacity") or {})
        if all(status.get(k) == v for k, v in want.items()):
            return
        body = {
            "metadata": {"resourceVersion": _meta(claim).get("resourceVersion")},
            "status": want,
        }
        try:
            await self._write("claim/" + key_of(claim), body, sub="status")
        except StatusError as e:
            if e.code != 404:
                raise

    async def _volume_phase(self, pv: Obj, phase: str, message: str) -> Obj:
        status = pv.get("status") or {}
        if status.get("phase") == phase and (status.get("message") or "") == message:
            return pv
        body: Obj = {"phase": phase, "message": message or None}
        if status.get("phase") != phase:
            body["lastPhaseTransitionTime"] = rfc3339(self.clock.now())
        patch = {"metadata": {"resourceVersion": _meta(pv).get("resourceVersion")}, "status": body}
        return await self._write("volume/" + str(_meta(pv)["name"]), patch, sub="status")

    # --- volumes ---------------------------------------------------------------------------------
    async def _sync_volume(self, pv: Obj) -> None:
        ref = _spec(pv).get("claimRef")
        name = str(_meta(pv)["name"])
        if not isinstance(ref, dict):
            await self._volume_phase(pv, "Available", "")
            return
        ckey = f"{ref.get('namespace', '')}/{ref.get('name', '')}"
        if not ref.get("uid"):
            await self._volume_phase(pv, "Available", "")  # pre-bound: the claim sync binds
            self.queue.add("claim/" + ckey)
            return
        claim = self._claim(ckey)
        if claim is None and _phase(pv) not in ("Released", "Failed"):
            # the cache may lag behind a claim created just now (a volume provisioned or
            # pre-bound by the scheduler for it): ask the API server before releasing
            claim = await self._claim_live(ref)
        if claim is not None and _meta(claim).get("uid") != ref.get("uid"):
            claim = None  # deleted and created again: a different claim
        if claim is None:
            if _phase(pv) not in ("Released", "Failed"):
                pv = await self._volume_phase(pv, "Released", "")
            await self._reclaim(pv)
            return
        bound_to = _spec(claim).get("volumeName")
        rv = _meta(pv).get("resourceVersion")
        if not bound_to:
            self.queue.add("claim/" + ckey)  # the claim sync finishes the binding
        elif bound_to == name:
            await self._volume_phase(pv, "Bound", "")
        elif BOUND_BY_CONTROLLER in _annotations(pv):
            # the claim is bound elsewhere: give this volume back
            patch = {
                "metadata": {"resourceVersion": rv, "annotations": {BOUND_BY_CONTROLLER: None}},
                "spec": {"claimRef": None},
            }
            pv = await self._write("volume/" + name, patch)
            await self._volume_phase(pv, "Available", "")
        else:
            # pre-bound by the user to a claim bound elsewhere: keep the name, drop the uid
            patch = {"metadata": {"resourceVersion": rv}, "spec": {"claimRef": {"uid": None}}}
            pv = await self._write("volume/" + name, patch)
            await self._volume_phase(pv, "Available", "")

    async def _claim_live(self, ref: Obj) -> Obj | None:
        try:
            claim: Obj = await self.client.get(
                PERSISTENT_VOLUME_CLAIMS, str(ref.get("name")), str(ref.get("namespace"))
            )
        except StatusError as e:
            if e.code == 404:
                return None
            raise
        return claim

    async def _reclaim(self, pv: Obj) -> None:
        """``reclaimVolume`` of a Released volume."""
        policy = _spec(pv).get("persistentVolumeReclaimPolicy") or "Retain"
        name = _meta(pv)["name"]
        if policy == "Retain":
            return
        if policy == "Recycle":
            message = "No recycler plugin found for the volume!"
            if _phase(pv) != "Failed":
                await self._volume_phase(pv, "Failed", message)
                await self._volume_event(pv, "Warning", VOLUME_FAILED_RECYCLE, message)
            return
        if _annotations(pv).get(PROVISIONED_BY) or _meta(pv).get("deletionTimestamp"):
            return  # its external provisioner deletes it
        message = (
            f'error getting deleter volume plugin for volume "{name}": '
            "no deletable volume plugin matched"
        )
        if _phase(pv) != "Failed":
            await self._volume_phase(pv, "Failed", message)
            await self._volume_event(pv, "Warning", VOLUME_FAILED_DELETE, message)


def _claim_ref_key(pv: Obj) -> list[str]:
    ref = _spec(pv).get("claimRef")
    if isinstance(ref, dict) and ref.get("name"):
        return [f"{ref.get('namespace', '')}/{ref['name']}"]
    return []
