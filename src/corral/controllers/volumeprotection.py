"""Storage object in-use protection: the controllers behind the protection finalizers.

Run by ``ControllerManager`` as ``pvc-protection`` and ``persistentvolume-protection``
(upstream's names; ``pkg/controller/volume/pvcprotection`` and ``pvprotection``). The
API server's StorageObjectInUseProtection admission puts ``kubernetes.io/pvc-protection``
on every new claim and ``kubernetes.io/pv-protection`` on every new volume
(``apiserver/volume_admission.py``); these controllers add them to objects that lack them
and remove them from objects being deleted once nothing uses them:

* a claim is in use while a pod of its namespace that is scheduled (has a node) names
  it in a ``persistentVolumeClaim`` volume, finished or not, as upstream's
  ``podUsesPVC`` (generic ephemeral volumes are not supported: nothing creates their
  claims); the cache (its pod-by-claim index, shared with the binder) says "unused"
  first, then a live list of the namespace's pods confirms it, as upstream does, so a
  pod the cache has not seen yet still holds the claim;
* a volume is in use while it is Bound.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from corral.api.errors import StatusError
from corral.api.volumes import PV_PROTECTION, PVC_PROTECTION
from corral.client.informer import Informer
from corral.client.rest import PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, PODS, Client, Resource
from corral.controllers.base import Controller, InformerFactory
from corral.controllers.persistentvolume import POD_CLAIM_INDEX, pod_claim_keys, pod_claims
from corral.util.clock import Clock

log = logging.getLogger("corral.controllers.volumeprotection")

Obj = dict[str, Any]


def _meta(obj: Obj) -> Obj:
    m: Obj = obj.get("metadata") or {}
    return m


def uses_claim(pod: Obj, claim: str) -> bool:
    """``podUsesPVC``: a scheduled pod (the kubelet sees no other, and starts none whose
    claim is being deleted) naming ``claim`` in a ``persistentVolumeClaim`` volume."""
    if not (pod.get("spec") or {}).get("nodeName"):
        return False
    return claim in pod_claims(pod)


async def set_finalizer(
    client: Client, res: Resource, obj: Obj, finalizer: str, present: bool
) -> None:
    """Add or remove ``finalizer``, guarded by the object's resourceVersion."""
    m = _meta(obj)
    have = list(m.get("finalizers") or [])
    if (finalizer in have) == present:
        return
    want = [*have, finalizer] if present else [f for f in have if f != finalizer]
    body = {"metadata": {"finalizers": want, "resourceVersion": m.get("resourceVersion")}}
    try:
        await client.patch(res, m["name"], body, m.get("namespace"))
    except StatusError as e:
        if e.code != 404:
            raise


class PVCProtectionController(Controller):
    """Keeps ``kubernetes.io/pvc-protection`` on claims until no live pod uses them."""

    name: ClassVar[str] = "pvc-protection"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 2,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        self.claims: Informer = factory.informer(PERSISTENT_VOLUME_CLAIMS)
        self.pods: Informer = factory.informer(PODS)
        self.claims.add_handler(self._on_claim)
        self.pods.add_index(POD_CLAIM_INDEX, pod_claim_keys)
        self.pods.add_handler(self._on_pod)

    def _on_claim(self, type_: str, claim: Obj, _old: Obj | None) -> None:
        if type_ != "DELETED":
            self.enqueue(claim)

    def _on_pod(self, _type: str, pod: Obj, old: Obj | None) -> None:
        ns = _meta(pod).get("namespace", "")
        for p in (pod, old):
            if p is None:
                continue
            for name in pod_claims(p):
                claim = self.claims.get(f"{ns}/{name}")
                if claim is not None and _meta(claim).get("deletionTimestamp"):
                    self.queue.add(f"{ns}/{name}")

    async def sync(self, key: str) -> None:
        claim = self.claims.get(key)
        if claim is None:
            return
        m = _meta(claim)
        if not m.get("deletionTimestamp"):
            await set_finalizer(self.client, PERSISTENT_VOLUME_CLAIMS, claim, PVC_PROTECTION, True)
            return
        if PVC_PROTECTION not in (m.get("finalizers") or ()):
            return
        ns, name = str(m.get("namespace", "")), str(m["name"])
        if any(uses_claim(p, name) for p in self.pods.by_index(POD_CLAIM_INDEX, key)):
            return
        live = await self.client.list(PODS, ns)
        if any(uses_claim(p, name) for p in live.get("items") or ()):
            return
        await set_finalizer(self.client, PERSISTENT_VOLUME_CLAIMS, claim, PVC_PROTECTION, False)


class PVProtectionController(Controller):
    """Keeps ``kubernetes.io/pv-protection`` on volumes until they are no longer Bound."""

    name: ClassVar[str] = "persistentvolume-protection"

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
        self.volumes.add_handler(self._on_volume)

    def _on_volume(self, type_: str, pv: Obj, _old: Obj | None) -> None:
        if type_ != "DELETED":
            self.enqueue(pv)

    async def sync(self, key: str) -> None:
        pv = self.volumes.get(key)
        if pv is None:
            return
        m = _meta(pv)
        if not m.get("deletionTimestamp"):
            await set_finalizer(self.client, PERSISTENT_VOLUMES, pv, PV_PROTECTION, True)
            return
        if (pv.get("status") or {}).get("phase") == "Bound":
            return
        await set_finalizer(self.client, PERSISTENT_VOLUMES, pv, PV_PROTECTION, False)
