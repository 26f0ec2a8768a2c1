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
from corral.api.quantity import parse_quantity
from corral.api.volumes import DEFAULT_CLASS, PV_PROTECTION, PVC_PROTECTION
from corral.storage.cache import ResourceCache

Obj = dict[str, Any]
BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
BETA_DEFAULT_CLASS = "storageclass.beta.kubernetes.io/is-default-class"


def is_default_class(sc: Obj) -> bool:
    annotations = (sc.get("metadata") or {}).get("annotations") or {}
    return "true" in (annotations.get(DEFAULT_CLASS), annotations.get(BETA_DEFAULT_CLASS))


def pick_default_class(classes: list[Obj]) -> str | None:
    """``GetDefaultClass``: the newest default class (ties by name), or None."""
    defaults = [c for c in classes if is_default_class(c)]
    if not defaults:
        return None
    defaults.sort(key=lambda c: str(c["metadata"].get("name", "")))
    defaults.sort(key=lambda c: str(c["metadata"].get("creationTimestamp", "")), reverse=True)
    return str(defaults[0]["metadata"]["name"])


class DefaultStorageClass:
    """Sets the default class on claims created without one."""

    def __init__(self, claims: ResourceCache, classes: ResourceCache) -> None:
        self.claims = claims
        self.classes = classes

    def admit(self, claim: Obj, key: str) -> None:
        if key in self.claims.entries:
            return None
        spec = claim.setdefault("spec", {})
        annotations = (claim.get("metadata") or {}).get("annotations") or {}
        if spec.get("storageClassName") is not None or BETA_CLASS_ANNOTATION in annotations:
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


def _request(claim: Obj) -> Any:
    q = (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
    try:
        return parse_quantity(q if q is not None else "0")
    except (ValueError, TypeError, ArithmeticError):
        return parse_quantity("0")


class ClaimResize:
    """Refuses growing a claim whose class does not allow volume expansion."""

    def __init__(self, claims: ResourceCache, classes: ResourceCache) -> None:
        self.claims = claims
        self.classes = classes

    def admit(self, claim: Obj, key: str) -> None:
        entry = self.claims.entries.get(key)
        if entry is None:
            return None
        old = entry.obj()
        if _request(claim) <= _request(old):
            return None
        name = str((claim.get("metadata") or {}).get("name", ""))
        if (old.get("status") or {}).get("phase") != "Bound":
            raise _forbidden(name, "Only bound persistent volume claims can be expanded")
        cls = str((claim.get("spec") or {}).get("storageClassName") or "")
        sc = self.classes.entries.get(self.classes.prefix + cls) if cls else None
        if sc is None or sc.obj().get("allowVolumeExpansion") is not True:
            raise _forbidden(name, RESIZE_FORBIDDEN)
        return None


def _forbidden(name: str, why: str) -> errors.StatusError:
    return errors.forbidden_error(
        f'persistentvolumeclaims "{name}" is forbidden: {why}', "persistentvolumeclaims", "", name
    )
