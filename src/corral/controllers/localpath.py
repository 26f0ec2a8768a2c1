"""The local-path provisioner: a directory per volume on one node, as k3s ships it.

Run by ``ControllerManager`` as ``local-path-provisioner``. Like Rancher's
local-path-provisioner (built on sig-storage-lib-external-provisioner), it is an
*external* provisioner: the binder (``persistentvolume.py``) names it on a claim
(``volume.kubernetes.io/storage-provisioner``); this controller then creates the
PersistentVolume and the binder binds the two. It meets the node agents only through
the API (names in ``corral.api.volumes``):

* at start it makes sure the StorageClass ``local-path`` exists (provisioner
  ``rancher.io/local-path``, ``WaitForFirstConsumer``, reclaim ``Delete``, the default
  class), as k3s does;
* a claim of one of its classes is provisioned once the scheduler chose a node
  (``volume.kubernetes.io/selected-node``) for ``WaitForFirstConsumer`` classes, or on
  some Ready node with a local-path root for ``Immediate`` ones: the PV ``pvc-<claim
  uid>`` has a ``hostPath`` (``DirectoryOrCreate``) under the node's
  ``storage.corral.dev/local-path-root`` annotation (``volume_dir``), a required node
  affinity on ``kubernetes.io/hostname``, the claim's request, modes and class, the
  class's reclaim policy, a ``claimRef`` to the claim, and the finalizers
  ``storage.corral.dev/local-path-cleanup`` (the node's agent removes the directory,
  then the finalizer) and ``kubernetes.io/pv-protection``;
* a claim it cannot serve (no such node, no root on it, ReadWriteMany, Block mode:
  ``corral.api.volume_matching.check_claim``) gets a ``ProvisioningFailed`` event naming
  the reason, and its ``selected-node`` annotation is removed so that the scheduler
  decides again (as external-provisioner's ``rescheduleProvisioning``);
* a volume it provisioned that is Released with reclaim ``Delete`` is deleted (the
  agent then cleans the directory up).
"""

from __future__ import annotations

import logging
import zlib
from typing import Any, ClassVar

from corral.api.errors import StatusError
from corral.api.volume_matching import check_claim as local_path_refusal
from corral.api.volume_matching import claim_class, claim_ref
from corral.api.volumes import (
    BETA_STORAGE_PROVISIONER,
    DEFAULT_CLASS,
    LOCAL_PATH_CLASS,
    LOCAL_PATH_CLEANUP,
    LOCAL_PATH_NODE,
    LOCAL_PATH_PROVISIONER,
    LOCAL_PATH_ROOT,
    PROVISIONED_BY,
    PV_PROTECTION,
    SELECTED_NODE,
    STORAGE_PROVISIONER,
    node_label_selector,
    volume_dir,
)
from corral.client.informer import Informer, key_of
from corral.client.rest import (
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    STORAGE_CLASSES,
    Client,
)
from corral.controllers.base import Controller, InformerFactory
from corral.util.clock import Clock

log = logging.getLogger("corral.controllers.localpath")

Obj = dict[str, Any]

HOSTNAME_LABEL = "kubernetes.io/hostname"
PROVISIONING = "Provisioning"
PROVISIONING_SUCCEEDED = "ProvisioningSucceeded"
PROVISIONING_FAILED = "ProvisioningFailed"
CLASS_KEY = "class"


def default_class() -> Obj:
    """The StorageClass Corral ships, as k3s' ``local-storage`` manifest defines it."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": LOCAL_PATH_CLASS, "annotations": {DEFAULT_CLASS: "true"}},
        "provisioner": LOCAL_PATH_PROVISIONER,
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Delete",
    }


def _meta(obj: Obj) -> Obj:
    m: Obj = obj.get("metadata") or {}
    return m


def _annotations(obj: Obj) -> dict[str, str]:
    a: dict[str, str] = _meta(obj).get("annotations") or {}
    return a


def is_ready(node: Obj) -> bool:
    """Whether the Node's ``Ready`` condition is ``True``."""
    for c in (node.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


class ProvisionError(Exception):
    """The claim cannot be provisioned; the message is the event's reason."""


def choose_node(claim: Obj, nodes: list[Obj], selected: str) -> Obj:
    """The node to put the claim's directory on (``selected`` if given, else a Ready node
    with a root, the same one for the same claim); raises ``ProvisionError``."""
    if selected:
        node = next((n for n in nodes if _meta(n).get("name") == selected), None)
        if node is None:
            raise ProvisionError(f'node "{selected}" not found')
        if not _annotations(node).get(LOCAL_PATH_ROOT):
            raise ProvisionError(f'node "{selected}" has no local path root ({LOCAL_PATH_ROOT})')
        return node
    ready = sorted(
        (n for n in nodes if is_ready(n) and _annotations(n).get(LOCAL_PATH_ROOT)),
        key=lambda n: str(_meta(n).get("name", "")),
    )
    if not ready:
        raise ProvisionError(f"no Ready node has a local path root ({LOCAL_PATH_ROOT})")
    uid = str(_meta(claim).get("uid", ""))
    return ready[zlib.crc32(uid.encode()) % len(ready)]


def check_claim(claim: Obj) -> None:
    """Raises ``ProvisionError`` for what no local path volume can serve (the shared
    ``corral.api.volume_matching.check_claim``, which the scheduler's Filter uses too)."""
    why = local_path_refusal(claim)
    if why:
        raise ProvisionError(why)


def build_volume(claim: Obj, sc: Obj, node: Obj) -> Obj:
    """The PersistentVolume for ``claim`` on ``node`` (see the module docstring)."""
    check_claim(claim)
    spec = claim.get("spec") or {}
    modes = list(spec.get("accessModes") or [])
    m, nm = _meta(claim), _meta(node)
    name = f"pvc-{m['uid']}"
    node_name = str(nm["name"])
    hostname = str((nm.get("labels") or {}).get(HOSTNAME_LABEL) or node_name)
    root = _annotations(node)[LOCAL_PATH_ROOT]
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "labels": {LOCAL_PATH_NODE: node_name} if node_label_selector(node_name) else {},
            "annotations": {PROVISIONED_BY: LOCAL_PATH_PROVISIONER, LOCAL_PATH_NODE: node_name},
            "finalizers": [LOCAL_PATH_CLEANUP, PV_PROTECTION],
        },
        "spec": {
            "capacity": {"storage": storage},
            "accessModes": modes,
            "hostPath": {
                "path": volume_dir(root, name, str(m["namespace"]), str(m["name"])),
                "type": "DirectoryOrCreate",
            },
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": HOSTNAME_LABEL, "operator": "In", "values": [hostname]}
                            ]
                        }
                    ]
                }
            },
            "claimRef": claim_ref(claim),
            "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
            "storageClassName": claim_class(claim),
            "volumeMode": "Filesystem",
        },
    }


class LocalPathProvisioner(Controller):
    """Provisions and deletes local-path volumes (see the module docstring)."""

    name: ClassVar[str] = "local-path-provisioner"

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
        self.volumes: Informer = factory.informer(PERSISTENT_VOLUMES)
        self.classes: Informer = factory.informer(STORAGE_CLASSES)
        self.nodes: Informer = factory.informer(NODES)
        self.claims.add_handler(self._on_claim)
        self.volumes.add_handler(self._on_volume)
        self.classes.add_handler(lambda _t, _o, _old: self._enqueue_waiting())
        self.nodes.add_handler(self._on_node)
        self.queue.add(CLASS_KEY)

    @property
    def component(self) -> str:
        return LOCAL_PATH_PROVISIONER + "_corral"

    def _on_claim(self, type_: str, claim: Obj, _old: Obj | None) -> None:
        if type_ != "DELETED":
            self.queue.add("claim/" + key_of(claim))

    def _on_volume(self, type_: str, pv: Obj, _old: Obj | None) -> None:
        if type_ != "DELETED" and _annotations(pv).get(PROVISIONED_BY) == LOCAL_PATH_PROVISIONER:
            self.queue.add("volume/" + key_of(pv))

    def _on_node(self, type_: str, node: Obj, old: Obj | None) -> None:
        if type_ == "DELETED":
            return
        was = old is not None and is_ready(old) and bool(_annotations(old).get(LOCAL_PATH_ROOT))
        if not was and is_ready(node) and _annotations(node).get(LOCAL_PATH_ROOT):
            self._enqueue_waiting()

    def _enqueue_waiting(self) -> None:
        for key, claim in self.claims.store.items():
            if not (claim.get("spec") or {}).get("volumeName"):
                self.queue.add("claim/" + key)

    async def sync(self, key: str) -> None:
        kind, _, rest = key.partition("/")
        if kind == CLASS_KEY:
            await self._ensure_class()
        elif kind == "claim":
            claim = self.claims.get(rest)
            if claim is not None:
                await self._sync_claim(claim)
        elif kind == "volume":
            pv = self.volumes.get(rest)
            if pv is not None:
                await self._sync_volume(pv)

    async def _ensure_class(self) -> None:
        if self.classes.get(LOCAL_PATH_CLASS) is not None:
            return
        try:
            await self.client.create(STORAGE_CLASSES, default_class())
        except StatusError as e:
            if e.code != 409:
                raise

    async def _sync_claim(self, claim: Obj) -> None:
        m, a = _meta(claim), _annotations(claim)
        if (claim.get("spec") or {}).get("volumeName") or m.get("deletionTimestamp"):
            return
        provisioner = a.get(STORAGE_PROVISIONER) or a.get(BETA_STORAGE_PROVISIONER)
        if provisioner != LOCAL_PATH_PROVISIONER:
            return
        cls = claim_class(claim)
        sc = self.classes.get(cls)
        if sc is None or sc.get("provisioner") != LOCAL_PATH_PROVISIONER:
            return
        name = f"pvc-{m['uid']}"
        if self.volumes.get(name) is not None:
            return
        selected = a.get(SELECTED_NODE, "")
        if sc.get("volumeBindingMode") == "WaitForFirstConsumer" and not selected:
            return  # the scheduler has not chosen a node yet
        involved = {**claim, "apiVersion": "v1", "kind": "PersistentVolumeClaim"}
        try:
            check_claim(claim)
            node = choose_node(claim, list(self.nodes.store.values()), selected)
            pv = build_volume(claim, sc, node)
        except ProvisionError as e:
            message = f'failed to provision volume with StorageClass "{cls}": {e}'
            await self.recorder.event(involved, "Warning", PROVISIONING_FAILED, message)
            if selected:
                await self._reschedule(claim)
            return
        await self.recorder.event(
            involved,
            "Normal",
            PROVISIONING,
            f'External provisioner is provisioning volume for claim "{m["namespace"]}/{m["name"]}"',
        )
        try:
            await self.client.create(PERSISTENT_VOLUMES, pv)
        except StatusError as e:
            if e.code != 409:
                message = f'failed to provision volume with StorageClass "{cls}": {e.message}'
                await self.recorder.event(involved, "Warning", PROVISIONING_FAILED, message)
                raise
            return
        await self.recorder.event(
            involved, "Normal", PROVISIONING_SUCCEEDED, f"Successfully provisioned volume {name}"
        )

    async def _reschedule(self, claim: Obj) -> None:
        """Give the claim back to the scheduler (external-provisioner's
        ``rescheduleProvisioning``): drop ``selected-node``, guarded by the claim's
        resourceVersion; the scheduler's PreBind then fails with ``provisioning failed for
        PVC`` and the pod is tried again, where the shared ``check_claim`` and the node
        checks of the VolumeBinding Filter say why no node fits."""
        m = _meta(claim)
        body = {
            "metadata": {
                "resourceVersion": m.get("resourceVersion"),
                "annotations": {SELECTED_NODE: None},
            }
        }
        try:
            await self.client.patch(PERSISTENT_VOLUME_CLAIMS, m["name"], body, m["namespace"])
        except StatusError as e:
            if e.code not in (404, 409):
                raise
            if e.code == 409:
                self.queue.add("claim/" + key_of(claim))

    async def _sync_volume(self, pv: Obj) -> None:
        m = _meta(pv)
        if m.get("deletionTimestamp") or (pv.get("status") or {}).get("phase") != "Released":
            return
        if (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") != "Delete":
            return
        try:
            await self.client.delete(PERSISTENT_VOLUMES, m["name"])
        except StatusError as e:
            if e.code != 404:
                raise
