"""Strategies for persistent storage: core/v1 PersistentVolume and PersistentVolumeClaim,
storage.k8s.io/v1 StorageClass.

Defaults, preparation and validation as upstream's ``pkg/apis/core/validation``
(``ValidatePersistentVolume[Update]``, ``ValidatePersistentVolumeClaim[Update]``),
``pkg/apis/storage/validation`` and the ``SetDefaults_*`` functions (Kubernetes 1.32):

* a PersistentVolume needs access modes, ``capacity`` with exactly ``storage``, exactly
  one volume source, and keeps its source and volume mode for life; it defaults to
  ``Retain`` and ``Filesystem`` and starts ``Pending`` (the binder makes it Available);
* a PersistentVolumeClaim needs access modes and ``resources.requests.storage``; its spec
  is immutable except ``volumeName`` (set once, by the binder), the storage request of a
  Bound claim (growth only) and a ``storageClassName`` set where there was none;
* a StorageClass defaults ``reclaimPolicy: Delete`` and ``volumeBindingMode:
  Immediate`` and keeps provisioner, parameters, reclaim policy and binding mode.

Admission (the default class, the protection finalizers) is not here: those need the
store and live in ``apiserver/volume_admission.py``. Called by the generic store through
the registry table (``table.py``).
"""

from __future__ import annotations

import posixpath
from typing import Any, ClassVar

from corral.api.errors import FieldError, forbidden, invalid, not_supported, required, too_long
from corral.api.quantity import is_valid_quantity, parse_quantity
from corral.api.validation import (
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
    validate_immutable,
    validate_label_selector,
    validate_qualified_name,
)
from corral.apiserver.registry.base import Obj, Strategy

ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
PV_RECLAIM_POLICIES = ["Delete", "Recycle", "Retain"]
SC_RECLAIM_POLICIES = ["Delete", "Retain"]
VOLUME_MODES = ["Block", "Filesystem"]
BINDING_MODES = ["Immediate", "WaitForFirstConsumer"]
HOST_PATH_TYPES = [
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
]
NODE_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
#: every volume source a PersistentVolumeSpec may carry, as its JSON field names
PV_SOURCES = (
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "glusterfs",
    "flocker",
    "nfs",
    "rbd",
    "quobyte",
    "cephfs",
    "iscsi",
    "cinder",
    "fc",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "scaleIO",
    "local",
    "storageos",
    "csi",
)
MAX_PARAMETERS = 512
MAX_PARAMETERS_SIZE = 256 * 1024
PVC_SPEC_IMMUTABLE = (
    "spec is immutable after creation except resources.requests and "
    "volumeAttributesClassName for bound claims"
)


def _get(obj: Any, *path: str) -> Any:
    cur = obj
    for key in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


# --- shared pieces ----------------------------------------------------------------------------


def validate_access_modes(modes: Any, path: str, detail: str = "") -> list[FieldError]:
    """Required, each supported, ReadWriteOncePod alone."""
    if not modes:
        return [required(path, detail)]
    errs: list[FieldError] = []
    rwop = other = False
    for mode in modes:
        if mode not in ACCESS_MODES:
            errs.append(not_supported(path, mode, ACCESS_MODES))
        elif mode == "ReadWriteOncePod":
            rwop = True
        else:
            other = True
    if rwop and other:
        errs.append(forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return errs


def _positive_quantity(q: Any, path: str) -> list[FieldError]:
    """``ValidatePositiveQuantityValue`` (after the type check of decoding)."""
    if not is_valid_quantity(q):
        return [invalid(path, q, "must be a valid quantity")]
    if parse_quantity(q) <= 0:
        return [invalid(path, q, "must be greater than zero")]
    return []


def _class_name(name: Any, path: str) -> list[FieldError]:
    if not name:
        return []
    return [invalid(path, name, m) for m in is_dns1123_subdomain(str(name))]


def validate_node_selector(sel: Any, path: str) -> list[FieldError]:
    """``ValidateNodeSelector``: at least one term, each requirement well formed."""
    terms = _get(sel, "nodeSelectorTerms") or []
    if not terms:
        return [required(f"{path}.nodeSelectorTerms", "must have at least one node selector term")]
    errs: list[FieldError] = []
    for i, term in enumerate(terms):
        tp = f"{path}.nodeSelectorTerms[{i}]"
        for kind in ("matchExpressions", "matchFields"):
            for j, req in enumerate(_get(term, kind) or []):
                errs += _node_requirement(req, f"{tp}.{kind}[{j}]", kind == "matchFields")
    return errs


def _node_requirement(req: Obj, path: str, field: bool) -> list[FieldError]:
    op, values = req.get("operator", ""), req.get("values") or []
    errs: list[FieldError] = []
    if op in ("In", "NotIn"):
        if not values:
            errs.append(
                required(f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'")
            )
    elif op in ("Exists", "DoesNotExist"):
        if values:
            errs.append(
                forbidden(
                    f"{path}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
            )
    elif op in ("Gt", "Lt"):
        if len(values) != 1:
            errs.append(
                required(
                    f"{path}.values",
                    "must be specified single value when `operator` is 'Lt' or 'Gt'",
                )
            )
    else:
        errs.append(invalid(f"{path}.operator", op, "not a valid selector operator"))
    key = str(req.get("key", ""))
    if field:
        if key != "metadata.name":
            errs.append(not_supported(f"{path}.key", key, ["metadata.name"]))
    else:
        errs += validate_qualified_name(key, f"{path}.key")
        for v in values:
            errs += [invalid(f"{path}.values", v, m) for m in is_valid_label_value(str(v))]
    return errs


def _host_path(src: Obj, path: str) -> list[FieldError]:
    p = src.get("path") or ""
    errs: list[FieldError] = []
    if not p:
        errs.append(required(f"{path}.path"))
        return errs
    if ".." in p.split("/"):
        errs.append(invalid(f"{path}.path", p, "must not contain '..'"))
    kind = src.get("type")
    if kind is not None and kind not in HOST_PATH_TYPES:
        errs.append(not_supported(f"{path}.type", kind, HOST_PATH_TYPES))
    return errs


def _local(src: Obj, path: str) -> list[FieldError]:
    p = src.get("path") or ""
    if not p:
        return [required(f"{path}.path")]
    if ".." in p.split("/"):
        return [invalid(f"{path}.path", p, "must not contain '..'")]
    return []


# --- PersistentVolume -------------------------------------------------------------------------


def volume_sources(spec: Obj) -> list[str]:
    """The volume source fields set in a PersistentVolumeSpec, in upstream's order."""
    return [s for s in PV_SOURCES if spec.get(s) is not None]


class PersistentVolumeStrategy(Strategy):
    has_status = True
    spec_fields = ()
    return_deleted_object = True  # as upstream's registry
    field_selectors: ClassVar[dict[str, Any]] = {
        "status.phase": lambda o: str(_get(o, "status", "phase") or "")
    }

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
        spec.setdefault("volumeMode", "Filesystem")
        host = spec.get("hostPath")
        if isinstance(host, dict):
            host.setdefault("type", "")
        status = obj.get("status")
        if isinstance(status, dict) and not status.get("phase"):
            status["phase"] = "Pending"

    def default_status(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending"}

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errs = validate_access_modes(spec.get("accessModes"), "spec.accessModes")
        capacity = spec.get("capacity") or {}
        if not capacity:
            errs.append(required("spec.capacity"))
        if "storage" not in capacity or len(capacity) > 1:
            errs.append(not_supported("spec.capacity", capacity, ["storage"]))
        for name, q in capacity.items():
            errs += _positive_quantity(q, f"spec.capacity[{name}]")
        policy = spec.get("persistentVolumeReclaimPolicy")
        if policy and policy not in PV_RECLAIM_POLICIES:
            errs.append(
                not_supported("spec.persistentVolumeReclaimPolicy", policy, PV_RECLAIM_POLICIES)
            )
        affinity = spec.get("nodeAffinity")
        if affinity is not None:
            if _get(affinity, "required") is None:
                errs.append(
                    required("spec.nodeAffinity.required", "must specify required node constraints")
                )
            else:
                errs += validate_node_selector(affinity["required"], "spec.nodeAffinity.required")
        sources = volume_sources(spec)
        for extra in sources[1:]:
            errs.append(forbidden(f"spec.{extra}", "may not specify more than 1 volume type"))
        if not sources:
            errs.append(required("spec", "must specify a volume type"))
        elif sources[0] == "hostPath":
            errs += _host_path(spec["hostPath"], "spec.hostPath")
        elif sources[0] == "local":
            errs += _local(spec["local"], "spec.local")
            if affinity is None:
                errs.append(required("spec.nodeAffinity", "Local volume requires node affinity"))
        host = spec.get("hostPath")
        if (
            isinstance(host, dict)
            and posixpath.normpath(str(host.get("path") or ".")) == "/"
            and policy == "Recycle"
        ):
            errs.append(
                forbidden(
                    "spec.persistentVolumeReclaimPolicy",
                    "may not be 'recycle' for a hostPath mount of '/'",
                )
            )
        errs += _class_name(spec.get("storageClassName"), "spec.storageClassName")
        mode = spec.get("volumeMode")
        if mode is not None and mode not in VOLUME_MODES:
            errs.append(not_supported("spec.volumeMode", mode, VOLUME_MODES))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        ns, os_ = new.get("spec") or {}, old.get("spec") or {}
        if {s: ns.get(s) for s in PV_SOURCES} != {s: os_.get(s) for s in PV_SOURCES}:
            errs.append(
                forbidden(
                    "spec.persistentvolumesource",
                    "spec.persistentvolumesource is immutable after creation",
                )
            )
        errs += validate_immutable(ns.get("volumeMode"), os_.get("volumeMode"), "volumeMode")
        if os_.get("nodeAffinity") is not None and ns.get("nodeAffinity") != os_["nodeAffinity"]:
            errs += validate_immutable(ns.get("nodeAffinity"), os_["nodeAffinity"], "nodeAffinity")
        return errs


# --- PersistentVolumeClaim --------------------------------------------------------------------


def default_claim_spec(spec: Obj) -> None:
    """``SetDefaults_PersistentVolumeClaimSpec``."""
    spec.setdefault("volumeMode", "Filesystem")


def validate_claim_spec(spec: Any, path: str) -> list[FieldError]:
    """``ValidatePersistentVolumeClaimSpec``."""
    spec = spec if isinstance(spec, dict) else {}
    errs = validate_access_modes(
        spec.get("accessModes"), f"{path}.accessModes", "at least 1 access mode is required"
    )
    if spec.get("selector") is not None:
        errs += validate_label_selector(spec["selector"], f"{path}.selector")
    requests = _get(spec, "resources", "requests") or {}
    if "storage" not in requests:
        errs.append(required(f"{path}.resources[storage]"))
    else:
        errs += _positive_quantity(requests["storage"], f"{path}.resources[storage]")
    errs += _class_name(spec.get("storageClassName"), f"{path}.storageClassName")
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        errs.append(not_supported(f"{path}.volumeMode", mode, VOLUME_MODES))
    for key in ("dataSource", "dataSourceRef"):
        ref = spec.get(key)
        if not isinstance(ref, dict):
            continue
        if not ref.get("name"):
            errs.append(required(f"{path}.{key}.name"))
        if not ref.get("kind"):
            errs.append(required(f"{path}.{key}.kind"))
        if not ref.get("apiGroup") and ref.get("kind") != "PersistentVolumeClaim":
            errs.append(
                invalid(
                    f"{path}.{key}",
                    ref.get("kind", ""),
                    "must be 'PersistentVolumeClaim' when referencing the default apiGroup",
                )
            )
    return errs


def _storage_request(obj: Obj) -> Any:
    return _get(obj, "spec", "resources", "requests", "storage")


class PersistentVolumeClaimStrategy(Strategy):
    has_status = True
    spec_fields = ()
    return_deleted_object = True  # as upstream's registry

    def default(self, obj: Obj) -> None:
        default_claim_spec(obj.setdefault("spec", {}))
        status = obj.get("status")
        if isinstance(status, dict) and not status.get("phase"):
            status["phase"] = "Pending"

    def default_status(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending"}

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_claim_spec(obj.get("spec"), "spec")

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        ns, os_ = dict(new.get("spec") or {}), dict(old.get("spec") or {})
        if not os_.get("volumeName"):
            os_["volumeName"] = ns.get("volumeName")
        if os_.get("storageClassName") is None and ns.get("storageClassName") is not None:
            os_["storageClassName"] = ns["storageClassName"]  # set where there was none
        if _get(new, "status", "phase") == "Bound":
            res = dict(ns.get("resources") or {})
            res["requests"] = {**(res.get("requests") or {}), "storage": _storage_request(old)}
            ns["resources"] = res
        ns["volumeAttributesClassName"] = os_.get("volumeAttributesClassName")
        if {k: v for k, v in ns.items() if v is not None} != {
            k: v for k, v in os_.items() if v is not None
        }:
            errs.append(forbidden("spec", PVC_SPEC_IMMUTABLE))
        new_size, old_size = _storage_request(new), _storage_request(old)
        if (
            is_valid_quantity(new_size)
            and is_valid_quantity(old_size)
            and parse_quantity(new_size) < parse_quantity(old_size)
        ):
            errs.append(
                forbidden(
                    "spec.resources.requests.storage", "field can not be less than previous value"
                )
            )
        errs += validate_immutable(
            _get(new, "spec", "volumeMode"), _get(old, "spec", "volumeMode"), "volumeMode"
        )
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        if not _get(new, "spec", "accessModes"):
            return [required("Spec.accessModes")]
        return []


# --- StorageClass ------------------------------------------------------------------------------


class StorageClassStrategy(Strategy):
    spec_fields = ()

    def default(self, obj: Obj) -> None:
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        provisioner = obj.get("provisioner") or ""
        if not provisioner:
            errs.append(required("provisioner"))
        else:
            lower = provisioner.lower()
            errs += [invalid("provisioner", lower, m) for m in is_qualified_name(lower)]
        params = obj.get("parameters") or {}
        if len(params) > MAX_PARAMETERS:
            errs.append(
                FieldError(
                    "FieldValueTooMany",
                    "parameters",
                    None,
                    f"must have at most {MAX_PARAMETERS} items",
                )
            )
        size = 0
        for k, v in params.items():
            if not k:
                errs.append(invalid("parameters", k, "field can not be empty."))
            size += len(k) + len(str(v))
        if size > MAX_PARAMETERS_SIZE:
            errs.append(too_long("parameters", MAX_PARAMETERS_SIZE))
        policy = obj.get("reclaimPolicy")
        if policy and policy not in SC_RECLAIM_POLICIES:
            errs.append(not_supported("reclaimPolicy", policy, SC_RECLAIM_POLICIES))
        mode = obj.get("volumeBindingMode")
        if mode is None:
            errs.append(required("volumeBindingMode"))
        elif mode not in BINDING_MODES:
            errs.append(not_supported("volumeBindingMode", mode, BINDING_MODES))
        for i, term in enumerate(obj.get("allowedTopologies") or []):
            exprs = _get(term, "matchLabelExpressions") or []
            if not exprs:
                errs.append(
                    required(
                        f"allowedTopologies[{i}].matchLabelExpressions",
                        "must contain at least one requirement",
                    )
                )
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        if (new.get("parameters") or {}) != (old.get("parameters") or {}):
            errs.append(forbidden("parameters", "updates to parameters are forbidden."))
        if new.get("provisioner") != old.get("provisioner"):
            errs.append(forbidden("provisioner", "updates to provisioner are forbidden."))
        if new.get("reclaimPolicy") != old.get("reclaimPolicy"):
            errs.append(forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden."))
        errs += validate_immutable(
            new.get("volumeBindingMode"), old.get("volumeBindingMode"), "volumeBindingMode"
        )
        return errs
