"""Storage admission: the default StorageClass and the in-use protection finalizers.

Write hooks (``registry.write_hooks``, registered by ``server.py``) doing what
Kubernetes' admission plugins of the same names do on create:

- ``DefaultStorageClass.admit`` (``("", "persistentvolumeclaims")``): a claim that names
  no class (no ``spec.storageClassName`` and no beta annotation; an explicit ``""``
  counts as a choice) gets the default StorageClass, the one annotated
  ``storageclass.kubernetes.io/is-default-class: "true"`` (the newest when several are;
  then by name). No default class: the claim is left as it is.
- ``StorageObjectInUseProtection``: a new claim gets the ``kubernetes.io/pvc-protection``
  finalizer and a new volume ``kubernetes.io/pv-protection``, which the protection
  controllers remove once nothing uses them (controllers/persistentvolume.py).

- ``ClaimResize`` (``("", "persistentvolumeclaims")``, upstream's
  PersistentVolumeClaimResize): growing a claim's storage request (validation already
  allows it for Bound claims only) is refused with 403 unless the claim's StorageClass
  sets ``allowVolumeExpansion: true``.

The create-time hooks leave updates alone (they tell a create by the key not being in
the cache).
"""

from __future__ import annotations

from typing import Any

from corral.api import errors
from corral.api.volume_matching import (
    claim_class,
    claim_names_class,
    default_class,
    requested,
)
from corral.api.volumes import PV_PROTECTION, PVC_PROTECTION
from corral.storage.cache import ResourceCache

Obj = dict[str, Any]

#: ``GetDefaultClass``, shared with the PV binder's retroactive default
pick_default_class = default_class


class DefaultStorageClass:
    """Sets the default class on claims created without one."""

    def __init__(self, claims: ResourceCache, classes: ResourceCache) -> None:
        self.claims = claims
        self.classes = classes

    def admit(self, claim: Obj, key: str) -> None:
        """Set ``spec.storageClassName`` of a new claim that chose no class."""
        if key in self.claims.entries:
            return None
        spec = claim.setdefault("spec", {})
        if claim_names_class(claim):
            return None
        default = pick_default_class(
            [e.obj() for e in self.classes.entries.values() if b"is-default-class" in e.raw]
        )
        if default is not None:
            spec["storageClassName"] = default
        return None


class StorageObjectInUseProtection:
    """Adds the protection finalizer to new claims and volumes."""

    def __init__(self, cache: ResourceCache, finalizer: str) -> None:
        self.cache = cache
        self.finalizer = finalizer

    @classmethod
    def for_claims(cls, claims: ResourceCache) -> StorageObjectInUseProtection:
        return cls(claims, PVC_PROTECTION)

    @classmethod
    def for_volumes(cls, volumes: ResourceCache) -> StorageObjectInUseProtection:
        return cls(volumes, PV_PROTECTION)

    def admit(self, obj: Obj, key: str) -> None:
        """Add the finalizer to a new object."""
        if key in self.cache.entries:
            return None
        meta = obj.setdefault("metadata", {})
        finalizers = meta.get("finalizers")
        if not isinstance(finalizers, list):
            finalizers = meta["finalizers"] = []
        if self.finalizer not in finalizers:
            finalizers.append(self.finalizer)
        return None


RESIZE_FORBIDDEN = (
    "only dynamically provisioned pvc can be resized and the storageclass that provisions "
    "the pvc must support resize"
)


class ClaimResize:
    """Refuses growing a claim whose class does not allow volume expansion."""

    def __init__(self, claims: ResourceCache, classes: ResourceCache) -> None:
        self.claims = claims
        self.classes = classes

    def admit(self, claim: Obj, key: str) -> None:
        """Refuse (403) a storage request grown beyond what the class allows."""
        entry = self.claims.entries.get(key)
        if entry is None:
            return None
        old = entry.obj()
        if requested(claim) <= requested(old):
            return None
        name = str((claim.get("metadata") or {}).get("name", ""))
        if (old.get("status") or {}).get("phase") != "Bound":
            raise _forbidden(name, "Only bound persistent volume claims can be expanded")
        cls = claim_class(claim)
        sc = self.classes.entries.get(self.classes.prefix + cls) if cls else None
        if sc is None or sc.obj().get("allowVolumeExpansion") is not True:
            raise _forbidden(name, RESIZE_FORBIDDEN)
        return None


def _forbidden(name: str, why: str) -> errors.StatusError:
    return errors.forbidden_error(
        f'persistentvolumeclaims "{name}" is forbidden: {why}', "persistentvolumeclaims", "", name
    )
