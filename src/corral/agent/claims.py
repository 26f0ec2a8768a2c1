"""PersistentVolumeClaims on this node: the host directory a pod's claim mounts, and the
removal of local-path volumes once their PersistentVolume is deleted.

Two callers:

- ``VolumeManager.setup`` (``agent/volumes.py``) calls :func:`claim_path` for each pod
  volume of type ``persistentVolumeClaim``: the claim must exist and be Bound, its
  PersistentVolume must point back at it, and its source must be one this node mounts
  (``hostPath``, created for ``DirectoryOrCreate``, or ``local``, which must exist; a
  local-path volume's directory is created mode 0777, as k3s' provisioner makes it). The
  path is then bind-mounted like a hostPath volume. A claim that is missing or not yet
  bound is a :class:`ClaimError`: the pod stays in ``ContainerCreating`` with the
  kubelet's ``FailedMount`` event (``Unable to attach or mount volumes: ...``) and the
  pod worker tries again with back-off.
- ``NodeAgent`` (``agent/kubelet.py``) runs a :class:`LocalPathCleaner` beside an
  informer of PersistentVolumes. A PV that is being deleted, still holds
  ``LOCAL_PATH_CLEANUP``, names this node in ``LOCAL_PATH_NODE`` and is no longer Bound
  has its directory removed (only for reclaim policy ``Delete``, a volume of the
  local-path provisioner, at exactly its ``volume_dir`` directly under this agent's
  ``LOCAL_PATH_ROOT``: :func:`dir_to_remove`; a ``Retain`` volume keeps its data and
  nothing else is ever deleted) and then the finalizer dropped, by a patch with the resourceVersion as precondition, retried on a
  conflict.

The claim and its volume are read with a GET each (:class:`ClientClaimLookup`) when a pod
starts, so a pod that arrives just after its claim was bound never sees a stale cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import stat
from pathlib import Path
from typing import Any, Protocol

from corral.api.errors import StatusError
from corral.api.volumes import (
    LOCAL_PATH_CLEANUP,
    LOCAL_PATH_NODE,
    LOCAL_PATH_PROVISIONER,
    PROVISIONED_BY,
    volume_dir,
)
from corral.client.rest import PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, Client

from .objects import ConfigError, VolumeError, get_or_none

log = logging.getLogger("corral.agent.claims")

Obj = dict[str, Any]

CLEANUP_RETRIES = 5


class ClaimError(VolumeError):
    """A claim cannot be used yet (missing, not bound, its volume missing).

    Its event is the kubelet's volume manager's, not ``MountVolume.SetUp failed``.
    """

    @property
    def event_message(self) -> str:
        v = self.volume
        return (
            f"Unable to attach or mount volumes: unmounted volumes=[{v}], "
            f"unattached volumes=[], failed to process volumes=[{v}]: {self.message}"
        )


class ClaimLookup(Protocol):
    """Read access to claims and volumes; ``None`` means it does not exist.

    Any other failure raises; the pod worker retries the whole step then.
    """

    async def claim(self, namespace: str, name: str) -> Obj | None: ...
    async def volume(self, name: str) -> Obj | None: ...


class ClientClaimLookup:
    """:class:`ClaimLookup` over the REST client: a GET per call, 404 becomes ``None``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def claim(self, namespace: str, name: str) -> Obj | None:
        return await get_or_none(self._client, PERSISTENT_VOLUME_CLAIMS, name, namespace)

    async def volume(self, name: str) -> Obj | None:
        return await get_or_none(self._client, PERSISTENT_VOLUMES, name, None)


def pv_source(pv: Obj) -> tuple[str, str]:
    """(host path, hostPath type) of a PersistentVolume this node can mount.

    ``hostPath`` keeps its type; a ``local`` volume must already exist (type ``""``
    plus an existence check by the caller). Other sources raise ``ConfigError``.
    """
    spec = pv.get("spec") or {}
    if (hp := spec.get("hostPath")) is not None:
        return str(hp.get("path", "")), str(hp.get("type") or "")
    if (local := spec.get("local")) is not None:
        return str(local.get("path", "")), ""
    kinds = [k for k in spec if k not in _PV_FIELDS]
    kind = kinds[0] if kinds else "<none>"
    raise ConfigError(f"volume type {kind} of PersistentVolume is not supported by this node")


_PV_FIELDS = frozenset(
    {
        "accessModes",
        "capacity",
        "claimRef",
        "mountOptions",
        "nodeAffinity",
        "persistentVolumeReclaimPolicy",
        "storageClassName",
        "volumeMode",
        "volumeAttributesClassName",
    }
)


async def claim_path(
    lookup: ClaimLookup, namespace: str, volume: str, source: Obj, node: str = ""
) -> tuple[str, str, bool]:
    """(host path, hostPath type, is a local volume) of the claim a pod volume names.

    Raises :class:`ClaimError` with the kubelet's wording while the claim cannot be used
    (missing, being deleted, not bound, its volume missing or bound elsewhere, or a
    local-path volume of a node other than ``node``, this pod's), and
    ``ConfigError`` when the volume's source is not one this node mounts.
    """
    name = str(source.get("claimName", ""))
    where = f"error processing PVC {namespace}/{name}"
    pvc = await lookup.claim(namespace, name)
    if pvc is None:
        raise ClaimError(
            volume,
            f"{where}: failed to fetch PVC from API server: "
            f'persistentvolumeclaims "{name}" not found',
        )
    meta = pvc.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        raise ClaimError(
            volume, f"{where}: can't start pod because PVC {namespace}/{name} is being deleted"
        )
    phase = str((pvc.get("status") or {}).get("phase") or "")
    pv_name = str((pvc.get("spec") or {}).get("volumeName") or "")
    if phase != "Bound" or not pv_name:
        raise ClaimError(
            volume,
            f"{where}: PVC {namespace}/{name} has non-bound phase ({_q(phase)}) "
            f"or empty pvc.Spec.VolumeName ({_q(pv_name)})",
        )
    pv = await lookup.volume(pv_name)
    if pv is None:
        raise ClaimError(
            volume,
            f'{where}: failed to fetch PV "{pv_name}" from API server: '
            f'persistentvolumes "{pv_name}" not found',
        )
    ref = (pv.get("spec") or {}).get("claimRef")
    if not ref:
        raise ClaimError(
            volume,
            f'{where}: found PV object "{pv_name}" but it has a nil pv.Spec.ClaimRef '
            "indicating it is not yet bound to the claim",
        )
    uid = str(meta.get("uid") or "")
    if ref.get("uid") and uid and ref["uid"] != uid:
        raise ClaimError(
            volume,
            f'{where}: found PV object "{pv_name}" but its pv.Spec.ClaimRef.UID '
            f'("{ref["uid"]}") does not point to claim.UID ("{uid}")',
        )
    owner = ((pv.get("metadata") or {}).get("annotations") or {}).get(LOCAL_PATH_NODE)
    if node and owner and owner != node:
        raise ClaimError(
            volume,
            f'{where}: PV "{pv_name}" is a local-path volume of node "{owner}", '
            f'not of this node "{node}"',
        )
    path, kind = pv_source(pv)
    if not path.startswith("/"):
        raise ConfigError(f"invalid path {path!r} of PersistentVolume {pv_name}")
    if kind == "DirectoryOrCreate" and LOCAL_PATH_NODE in (
        (pv.get("metadata") or {}).get("annotations") or {}
    ):
        make_local_path_dir(path)
    return path, kind, "local" in (pv.get("spec") or {})


def make_local_path_dir(path: str) -> None:
    """Create a local-path volume's directory, if missing, writable by every user (mode
    0777 whatever the umask, as the local-path provisioner's ``setup`` script does:
    ``mkdir -m 0777 -p "$VOL_DIR"``), so that pods running as non-root users can write
    to it; the hostPath ``DirectoryOrCreate`` rule would make it 0755, owned by root."""
    p = Path(path)
    if p.exists():
        return
    try:
        p.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        p.mkdir(exist_ok=True)
        p.chmod(0o777)
    except OSError as e:
        raise ConfigError(f"mkdir {path}: {e.strerror}") from None


def _q(s: str) -> str:
    return f'"{s}"'


# --- local-path cleanup -----------------------------------------------------------------------


def removable_dir(root: str, path: str) -> Path | None:
    """``path`` if it is a directory this agent may delete: strictly below ``root``
    (after resolving the symlinks of its parents), not itself a symlink, no ``..``.
    ``None`` otherwise (the caller then deletes nothing)."""
    if not root or not path.startswith("/") or not root.startswith("/"):
        return None
    if ".." in path.split("/"):
        return None
    p = Path(os.path.normpath(path))
    base = Path(os.path.realpath(root))
    parent = Path(os.path.realpath(p.parent))
    if p.name in ("", ".", "..") or (parent != base and base not in parent.parents):
        return None
    target = parent / p.name
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return target  # already gone: nothing to delete, still ours
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return None
    return target


def cleanup_due(pv: Obj, node: str) -> bool:
    """Whether ``pv`` is a local-path volume of ``node`` whose directory should go now."""
    meta = pv.get("metadata") or {}
    if not meta.get("deletionTimestamp") or LOCAL_PATH_CLEANUP not in (
        meta.get("finalizers") or ()
    ):
        return False
    if (meta.get("annotations") or {}).get(LOCAL_PATH_NODE) != node:
        return False
    # a bound volume's data stays until its claim lets it go (pv-protection's rule)
    return (pv.get("status") or {}).get("phase") != "Bound"


def dir_to_remove(pv: Obj, root: str) -> Path | None:
    """The directory to delete for a due local-path ``pv`` (see :func:`cleanup_due`), or
    None to keep the data and only drop the finalizer. Deleted only when the volume's
    reclaim policy is ``Delete`` (a ``Retain`` volume's data outlives the PV, as with
    k3s' provisioner), it was made by the local-path provisioner
    (``pv.kubernetes.io/provisioned-by: rancher.io/local-path``) and its path is exactly
    the directory the provisioner names for it, directly under ``root``
    (``volume_dir(root, pv, claimRef.namespace, claimRef.name)``, and
    :func:`removable_dir` agrees)."""
    meta, spec = pv.get("metadata") or {}, pv.get("spec") or {}
    if spec.get("persistentVolumeReclaimPolicy") != "Delete":
        return None
    if (meta.get("annotations") or {}).get(PROVISIONED_BY) != LOCAL_PATH_PROVISIONER:
        return None
    ref = spec.get("claimRef")
    if not isinstance(ref, dict) or not ref.get("namespace") or not ref.get("name"):
        return None
    path = str((spec.get("hostPath") or {}).get("path") or "")
    want = volume_dir(root, str(meta.get("name", "")), str(ref["namespace"]), str(ref["name"]))
    if not root or os.path.normpath(path) != want or os.path.dirname(want) != root.rstrip("/"):
        return None
    return removable_dir(root, path)


class LocalPathCleaner:
    """Removes the directories of this node's deleted local-path volumes (see module doc).

    ``on_volume`` is an informer handler (never awaits); ``run`` works the queue.
    """

    def __init__(self, client: Client, node: str, root: str) -> None:
        self.client = client
        self.node = node
        self.root = root
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._pending: set[str] = set()

    def on_volume(self, type_: str, pv: Obj, old: Obj | None) -> None:
        if type_ == "DELETED" or not cleanup_due(pv, self.node):
            return
        name = str((pv.get("metadata") or {}).get("name", ""))
        if name and name not in self._pending:
            self._pending.add(name)
            self._queue.put_nowait(name)

    async def run(self) -> None:
        while True:
            name = await self._queue.get()
            self._pending.discard(name)
            try:
                await self.clean(name)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("local-path cleanup of %s failed: %s; retrying", name, e)
                await asyncio.sleep(2.0)
                if name not in self._pending:
                    self._pending.add(name)
                    self._queue.put_nowait(name)

    async def clean(self, name: str) -> bool:
        """Remove the directory of PV ``name`` and then its finalizer; False if the PV
        is gone or no longer due. Raises when the API keeps failing."""
        for _ in range(CLEANUP_RETRIES):
            try:
                pv = await self.client.get(PERSISTENT_VOLUMES, name)
            except StatusError as e:
                if e.code == 404:
                    return False
                raise
            if not cleanup_due(pv, self.node):
                return False
            target = dir_to_remove(pv, self.root)
            if target is None:
                log.info("PV %s: keeping its directory (not a Delete local-path volume)", name)
            else:
                await asyncio.to_thread(_remove, target)
                log.info("PV %s: removed %s", name, target)
            meta = pv["metadata"]
            rest = [f for f in meta.get("finalizers") or [] if f != LOCAL_PATH_CLEANUP]
            body = {"metadata": {"finalizers": rest, "resourceVersion": meta["resourceVersion"]}}
            try:
                await self.client.patch(PERSISTENT_VOLUMES, name, body)
                return True
            except StatusError as e:
                if e.code == 404:
                    return False
                if e.code != 409:
                    raise
        raise RuntimeError(f"PV {name}: finalizer still held after {CLEANUP_RETRIES} conflicts")


def _remove(target: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()


__all__ = [
    "ClaimError",
    "ClaimLookup",
    "ClientClaimLookup",
    "LocalPathCleaner",
    "claim_path",
    "cleanup_due",
    "dir_to_remove",
    "make_local_path_dir",
    "pv_source",
    "removable_dir",
]
