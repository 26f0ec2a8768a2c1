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
volume). Matching (``find_best_match``) is pure: volumes whose access modes include the
claim's, smallest access-mode set first, then the smallest capacity that fits, among
Available unclaimed volumes of the claim's class whose labels match its selector.
Claims without a class get the default class retroactively, as upstream.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from corral.api.errors import StatusError
from corral.api.quantity import parse_quantity
from corral.api.selectors import SelectorError, try_selector_from_object
from corral.api.volumes import (
    BETA_STORAGE_PROVISIONER,
    BIND_COMPLETED,
    BOUND_BY_CONTROLLER,
    DEFAULT_CLASS,
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
from corral.controllers.base import Controller, InformerFactory
from corral.util.clock import Clock, rfc3339

log = logging.getLogger("corral.controllers.persistentvolume")

Obj = dict[str, Any]

BETA_CLASS = "volume.beta.kubernetes.io/storage-class"
BETA_DEFAULT_CLASS = "storageclass.beta.kubernetes.io/is-default-class"
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"

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


def claim_class(claim: Obj) -> str:
    """``GetPersistentVolumeClaimClass``: the beta annotation, else storageClassName."""
    beta = _annotations(claim).get(BETA_CLASS)
    if beta is not None:
        return beta
    return str(_spec(claim).get("storageClassName") or "")


def volume_class(pv: Obj) -> str:
    beta = _annotations(pv).get(BETA_CLASS)
    if beta is not None:
        return beta
    return str(_spec(pv).get("storageClassName") or "")


def is_default_class(sc: Obj) -> bool:
    a = _annotations(sc)
    return "true" in (a.get(DEFAULT_CLASS), a.get(BETA_DEFAULT_CLASS))


def is_bound_to(pv: Obj, claim: Obj) -> bool:
    """``IsVolumeBoundToClaim``: the claimRef names the claim (any uid, or its uid)."""
    ref = _spec(pv).get("claimRef")
    if not isinstance(ref, dict):
        return False
    m = _meta(claim)
    if ref.get("name") != m.get("name") or ref.get("namespace") != m.get("namespace"):
        return False
    return not ref.get("uid") or ref.get("uid") == m.get("uid")


def _storage(q: Any) -> Any:
    try:
        return parse_quantity(q if q is not None else "0")
    except (ValueError, TypeError, ArithmeticError):
        return parse_quantity("0")


def requested(claim: Obj) -> Any:
    return _storage(((_spec(claim).get("resources") or {}).get("requests") or {}).get("storage"))


def capacity(pv: Obj) -> Any:
    return _storage((_spec(pv).get("capacity") or {}).get("storage"))


def _volume_mode(spec: Obj) -> str:
    return str(spec.get("volumeMode") or "Filesystem")


def mismatch(pv: Obj, claim: Obj) -> str:
    """``checkVolumeSatisfyClaim``: why ``pv`` cannot serve ``claim`` ("" when it can)."""
    if capacity(pv) < requested(claim):
        return "requested PV is too small"
    if volume_class(pv) != claim_class(claim):
        return "storageClassName does not match"
    if _volume_mode(_spec(pv)) != _volume_mode(_spec(claim)):
        return "incompatible volumeMode"
    if not set(_spec(claim).get("accessModes") or ()) <= set(_spec(pv).get("accessModes") or ()):
        return "incompatible accessMode"
    return ""


def find_best_match(claim: Obj, volumes: list[Obj], delay_binding: bool) -> Obj | None:
    """``findBestMatchForClaim``: a volume already bound to the claim, else (unless binding
    waits for the first consumer) the best Available one; None when nothing fits."""
    want = set(_spec(claim).get("accessModes") or ())
    try:
        raw_selector = _spec(claim).get("selector")
        selector = try_selector_from_object(raw_selector) if raw_selector is not None else None
    except SelectorError:
        return None
    cls, size, mode = claim_class(claim), requested(claim), _volume_mode(_spec(claim))
    # the access-mode index: groups of volumes by their exact mode set, smallest first
    groups: dict[frozenset[str], list[Obj]] = {}
    for pv in volumes:
        modes = frozenset(_spec(pv).get("accessModes") or ())
        if want <= modes:
            groups.setdefault(modes, []).append(pv)
    for modes in sorted(groups, key=lambda m: (len(m), sorted(m))):
        best: Obj | None = None
        for pv in sorted(groups[modes], key=lambda v: str(_meta(v).get("name", ""))):
            if _volume_mode(_spec(pv)) != mode or _meta(pv).get("deletionTimestamp"):
                continue
            if is_bound_to(pv, claim):
                return pv
            if delay_binding:
                continue  # the scheduler picks among unbound volumes for a node
            if _phase(pv) != "Available" or _spec(pv).get("claimRef") is not None:
                continue
            if selector is not None and not selector.matches(_meta(pv).get("labels") or {}):
                continue
            if volume_class(pv) != cls or capacity(pv) < size:
                continue
            if best is None or capacity(pv) < capacity(best):
                best = pv
        if best is not None:
            return best
    return None


def claim_ref(claim: Obj) -> Obj:
    m = _meta(claim)
    return {
        "kind": "PersistentVolumeClaim",
        "namespace": m.get("namespace", ""),
        "name": m.get("name", ""),
        "uid": m.get("uid", ""),
        "apiVersion": "v1",
        "resourceVersion": m.get("resourceVersion", ""),
    }


def pod_claims(pod: Obj) -> list[str]:
    """Names of the claims a pod's volumes use (ephemeral ones as ``<pod>-<volume>``)."""
    out: list[str] = []
    for v in _spec(pod).get("volumes") or ():
        pvc = v.get("persistentVolumeClaim")
        if isinstance(pvc, dict) and pvc.get("claimName"):
            out.append(str(pvc["claimName"]))
        elif isinstance(v.get("ephemeral"), dict):
            out.append(f"{_meta(pod).get('name', '')}-{v.get('name', '')}")
    return out


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
        self._by_claim = "persistentvolume/claim"
        self.volumes.add_index(self._by_claim, _claim_ref_key)
        self.volumes.add_handler(self._on_volume)
        self.claims.add_handler(self._on_claim)
        self.classes.add_handler(lambda _t, _o, _old: self._enqueue_pending())
        self.pods.add_handler(self._on_pod)

    @property
    def component(self) -> str:
        return "persistentvolume-controller"

    # --- handlers ---------------------------------------------------------------------------
    def _on_volume(self, type_: str, pv: Obj, old: Obj | None) -> None:
        self.queue.add("volume/" + key_of(pv))
        ref = _spec(pv).get("claimRef")
        if isinstance(ref, dict) and ref.get("name"):
            self.queue.add(f"claim/{ref.get('namespace', '')}/{ref['name']}")
        if type_ != "DELETED" and _phase(pv) == "Available":
            self._enqueue_pending()
        if type_ == "DELETED":
            self._enqueue_pending()

    def _on_claim(self, type_: str, claim: Obj, old: Obj | None) -> None:
        key = key_of(claim)
        self.queue.add("claim/" + key)
        if type_ == "DELETED":
            for pv in self.volumes.by_index(self._by_claim, key):
                self.queue.add("volume/" + key_of(pv))
            name = _spec(claim).get("volumeName")
            if name:
                self.queue.add(f"volume/{name}")

    def _on_pod(self, _type: str, pod: Obj, old: Obj | None) -> None:
        if _spec(pod).get("nodeName") and old is not None and _spec(old).get("nodeName"):
            return
        ns = _meta(pod).get("namespace", "")
        for name in pod_claims(pod):
            claim = self.claims.get(f"{ns}/{name}")
            if claim is not None and _phase(claim) != "Bound":
                self.queue.add(f"claim/{ns}/{name}")

    def _enqueue_pending(self) -> None:
        for key, claim in self.claims.store.items():
            if not _spec(claim).get("volumeName"):
                self.queue.add("claim/" + key)

    # --- sync ------------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        kind, _, rest = key.partition("/")
        if kind == "claim":
            claim = self.claims.get(rest)
            if claim is not None:
                await self._sync_claim(claim)
        elif kind == "volume":
            pv = self.volumes.get(rest)
            if pv is not None:
                await self._sync_volume(pv)

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

    def _default_class(self) -> str | None:
        defaults = [c for c in self.classes.store.values() if is_default_class(c)]
        if not defaults:
            return None
        defaults.sort(key=lambda c: str(_meta(c).get("name", "")))
        defaults.sort(key=lambda c: str(_meta(c).get("creationTimestamp", "")), reverse=True)
        return str(_meta(defaults[0])["name"])

    async def _sync_unbound_claim(self, claim: Obj) -> None:
        spec, m = _spec(claim), _meta(claim)
        ns, name = str(m.get("namespace", "")), str(m["name"])
        if (
            spec.get("storageClassName") is None
            and BETA_CLASS not in _annotations(claim)
            and not spec.get("volumeName")
        ):
            default = self._default_class()
            if default is not None:  # retroactive default class; the update re-enqueues
                await self.client.patch(
                    PERSISTENT_VOLUME_CLAIMS, name, {"spec": {"storageClassName": default}}, ns
                )
                return
        volume_name = spec.get("volumeName")
        if not volume_name:
            cls = claim_class(claim)
            sc = self.classes.get(cls) if cls else None
            delay = sc is not None and sc.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER
            pv = find_best_match(claim, list(self.volumes.store.values()), delay)
            if pv is not None:
                await self._bind(pv, claim)
                return
            if delay and SELECTED_NODE not in _annotations(claim):
                await self._wait_event(claim)
            elif cls:
                await self._provision(claim, cls, sc)
            else:
                await self._claim_event(claim, "Normal", FAILED_BINDING, NO_CLASS_MESSAGE)
            await self._claim_status(claim, "Pending", None)
            return
        pv = self.volumes.get(str(volume_name))
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
        ns, name = _meta(claim).get("namespace", ""), _meta(claim).get("name", "")
        waiting = sorted(
            str(_meta(p).get("name", ""))
            for p in self.pods.store.values()
            if _meta(p).get("namespace") == ns
            and not _spec(p).get("nodeName")
            and name in pod_claims(p)
            and _phase(p) not in ("Succeeded", "Failed")
        )
        if not waiting:
            await self._claim_event(claim, "Normal", WAIT_FOR_FIRST_CONSUMER, WAITING_MESSAGE)
        elif len(waiting) == 1:
            message = f"waiting for pod {waiting[0]} to be scheduled"
            await self._claim_event(claim, "Normal", WAIT_FOR_POD_SCHEDULED, message)
        else:
            message = f"waiting for pods {','.join(waiting)} to be scheduled"
            await self._claim_event(claim, "Normal", WAIT_FOR_POD_SCHEDULED, message)

    async def _provision(self, claim: Obj, cls: str, sc: Obj | None) -> None:
        """``provisionClaim`` for an external provisioner: name it on the claim."""
        if sc is None:
            message = f'storageclass.storage.k8s.io "{cls}" not found'
            await self._claim_event(claim, "Warning", PROVISIONING_FAILED, message)
            return
        provisioner = str(sc.get("provisioner") or "")
        m = _meta(claim)
        a = _annotations(claim)
        if a.get(STORAGE_PROVISIONER) != provisioner or a.get(BETA_STORAGE_PROVISIONER) != (
            provisioner
        ):
            patch = {
                "metadata": {
                    "annotations": {
                        STORAGE_PROVISIONER: provisioner,
                        BETA_STORAGE_PROVISIONER: provisioner,
                    }
                }
            }
            await self.client.patch(PERSISTENT_VOLUME_CLAIMS, m["name"], patch, m["namespace"])
        message = (
            f"Waiting for a volume to be created either by the external provisioner "
            f"'{provisioner}' or manually by the system administrator. If volume creation "
            "is delayed, please verify that the provisioner is running and correctly "
            "registered."
        )
        await self._claim_event(claim, "Normal", EXTERNAL_PROVISIONING, message)

    async def _sync_bound_claim(self, claim: Obj) -> None:
        volume_name = _spec(claim).get("volumeName")
        if not volume_name:
            await self._claim_status(claim, "Lost", None)
            await self._claim_event(
                claim,
                "Warning",
                CLAIM_LOST,
                "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
            )
            return
        pv = self.volumes.get(str(volume_name))
        if pv is None:
            await self._claim_status(claim, "Lost", None)
            await self._claim_event(
                claim,
                "Warning",
                CLAIM_LOST,
                "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
            )
        elif _spec(pv).get("claimRef") is None or is_bound_to(pv, claim):
            await self._bind(pv, claim)
        else:
            await self._claim_status(claim, "Lost", None)
            await self._claim_event(
                claim,
                "Warning",
                CLAIM_MISBOUND,
                "Two claims are bound to the same volume, this one is bound incorrectly",
            )

    # --- binding ---------------------------------------------------------------------------------
    async def _bind(self, pv: Obj, claim: Obj) -> None:
        """``bind``: volume claimRef, volume phase, claim volumeName, claim status."""
        pv_name = str(_meta(pv)["name"])
        ref = _spec(pv).get("claimRef")
        cm = _meta(claim)
        if not (
            isinstance(ref, dict) and ref.get("uid") == cm.get("uid") and is_bound_to(pv, claim)
        ):
            patch: Obj = {"spec": {"claimRef": claim_ref(claim)}}
            if ref is None:
                patch["metadata"] = {"annotations": {BOUND_BY_CONTROLLER: "yes"}}
            pv = await self.client.patch(PERSISTENT_VOLUMES, pv_name, patch)
        await self._volume_phase(pv, "Bound", "")
        a = _annotations(claim)
        if _spec(claim).get("volumeName") != pv_name or a.get(BIND_COMPLETED) != "yes":
            annotations = {BIND_COMPLETED: "yes"}
            body: Obj = {"metadata": {"annotations": annotations}}
            if _spec(claim).get("volumeName") != pv_name:
                annotations[BOUND_BY_CONTROLLER] = "yes"
                body["spec"] = {"volumeName": pv_name}
            claim = await self.client.patch(
                PERSISTENT_VOLUME_CLAIMS, cm["name"], body, cm.get("namespace")
            )
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
        m = _meta(claim)
        try:
            await self.client.patch(
                PERSISTENT_VOLUME_CLAIMS,
                m["name"],
                {"status": want},
                m.get("namespace"),
                sub="status",
            )
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
        out: Obj = await self.client.patch(
            PERSISTENT_VOLUMES, _meta(pv)["name"], {"status": body}, sub="status"
        )
        return out

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
        claim = self.claims.get(ckey)
        if claim is None and _phase(pv) == "Bound":
            claim = await self._claim_live(ref)  # the cache may lag behind a new claim
        if claim is not None and _meta(claim).get("uid") != ref.get("uid"):
            claim = None  # deleted and created again: a different claim
        if claim is None:
            if _phase(pv) not in ("Released", "Failed"):
                pv = await self._volume_phase(pv, "Released", "")
            await self._reclaim(pv)
            return
        bound_to = _spec(claim).get("volumeName")
        if not bound_to:
            self.queue.add("claim/" + ckey)  # the claim sync finishes the binding
        elif bound_to == name:
            await self._volume_phase(pv, "Bound", "")
        elif BOUND_BY_CONTROLLER in _annotations(pv):
            # the claim is bound elsewhere: give this volume back
            patch = {
                "metadata": {"annotations": {BOUND_BY_CONTROLLER: None}},
                "spec": {"claimRef": None},
            }
            pv = await self.client.patch(PERSISTENT_VOLUMES, name, patch)
            await self._volume_phase(pv, "Available", "")
        else:
            # pre-bound by the user to a claim bound elsewhere: keep the name, drop the uid
            pv = await self.client.patch(
                PERSISTENT_VOLUMES, name, {"spec": {"claimRef": {"uid": None}}}
            )
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
