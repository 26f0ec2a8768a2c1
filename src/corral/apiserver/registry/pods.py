"""Strategy for core/v1 Pods: defaults, admission-time additions, validation, selectors.

A Pod gets the shared pod-spec defaults (``podspec.default_pod_spec``) plus what the real
server adds on the Pod alone: requests copied from limits, ``enableServiceLinks``, the
``default`` service account and ``priority`` 0 (the not-ready/unreachable ``NoExecute``
tolerations are added by ``admission.DefaultTolerationSeconds``, a write hook, so that
their seconds can be configured per server). Its status starts
as ``phase: Pending`` with the computed ``qosClass``. On update the spec is immutable
except container images, ``activeDeadlineSeconds`` (set or lowered), tolerations
(additions) and a negative grace period going to 1, as in ``ValidatePodUpdate``.

Called by the generic store through the registry table (``table.py``).
"""

from __future__ import annotations

import copy
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from corral.api.errors import FieldError, forbidden, invalid
from corral.apiserver.registry.base import Obj, Strategy
from corral.apiserver.registry.podspec import default_pod_spec, validate_pod_spec

POD_UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)

_SUFFIX: dict[str, Decimal | int] = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}  # fmt: skip


def parse_quantity(value: Any) -> Decimal | None:
    """A resource quantity as a number (``"500m"`` -> 0.5); None when unparseable."""
    text = str(value).strip()
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            number, mult = text[: -len(suffix)], Decimal(_SUFFIX[suffix])
            break
    else:
        number, mult = text, Decimal(1)
    try:
        return Decimal(number) * mult
    except InvalidOperation:
        return None


def _containers(spec: Obj) -> list[Obj]:
    return [c for key in ("initContainers", "containers") for c in spec.get(key) or []]


def qos_class(spec: Obj) -> str:
    """``GetPodQOS``: BestEffort, Guaranteed or Burstable from cpu/memory requests+limits."""
    any_set = False
    guaranteed = True
    for c in _containers(spec):
        res = c.get("resources") or {}
        requests = {
            k: parse_quantity(v)
            for k, v in (res.get("requests") or {}).items()
            if k in ("cpu", "memory")
        }
        limits = {
            k: parse_quantity(v)
            for k, v in (res.get("limits") or {}).items()
            if k in ("cpu", "memory")
        }
        requests = {k: v for k, v in requests.items() if v}
        limits = {k: v for k, v in limits.items() if v}
        if requests or limits:
            any_set = True
        if set(limits) != {"cpu", "memory"}:
            guaranteed = False
        for k, v in requests.items():
            if limits.get(k) != v:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _masked(spec: Obj, other: Obj) -> Obj:
    """``spec`` with the mutable fields replaced by ``other``'s, for the immutability diff."""
    out = copy.deepcopy(spec)
    for key in ("containers", "initContainers"):
        mine, theirs = out.get(key) or [], other.get(key) or []
        if len(mine) == len(theirs):
            for c, o in zip(mine, theirs, strict=True):
                if "image" in o:
                    c["image"] = o["image"]
                else:
                    c.pop("image", None)
    for key in ("activeDeadlineSeconds", "tolerations"):
        if key in other:
            out[key] = other[key]
        else:
            out.pop(key, None)
    return out


class PodStrategy(Strategy):
    has_status = True
    spec_fields = ()
    graceful_delete = True
    return_deleted_object = True
    field_selectors: ClassVar[dict[str, Any]] = {
        "spec.nodeName": lambda o: str(o.get("spec", {}).get("nodeName") or ""),
        "spec.restartPolicy": lambda o: str(o.get("spec", {}).get("restartPolicy") or ""),
        "spec.schedulerName": lambda o: str(o.get("spec", {}).get("schedulerName") or ""),
        "spec.serviceAccountName": lambda o: str(o.get("spec", {}).get("serviceAccountName") or ""),
        "spec.hostNetwork": lambda o: "true" if o.get("spec", {}).get("hostNetwork") else "false",
        "status.phase": lambda o: str(o.get("status", {}).get("phase") or ""),
        "status.podIP": lambda o: str(o.get("status", {}).get("podIP") or ""),
        "status.nominatedNodeName": lambda o: str(
            o.get("status", {}).get("nominatedNodeName") or ""
        ),
    }

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        default_pod_spec(spec)
        spec.setdefault("enableServiceLinks", True)
        for c in _containers(spec):
            res = c.get("resources")
            if isinstance(res, dict) and res.get("limits"):
                requests = res.setdefault("requests", {})
                for k, v in res["limits"].items():
                    requests.setdefault(k, v)
        if spec.get("serviceAccountName") and not spec.get("serviceAccount"):
            spec["serviceAccount"] = spec["serviceAccountName"]
        elif spec.get("serviceAccount") and not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = spec["serviceAccount"]

    def prepare_for_create(self, obj: Obj) -> None:
        """Admission-time additions (service account, priority), then status."""
        spec = obj.setdefault("spec", {})
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        if not spec.get("priorityClassName"):
            spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        super().prepare_for_create(obj)

    def default_status(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}

    def validate(self, obj: Obj) -> list[FieldError]:
        """On create (``ValidatePodCreate``): the spec, and no ephemeral containers (they
        are added to a running Pod through ``pods/ephemeralcontainers`` only)."""
        errs = validate_pod_spec(obj.get("spec"), "spec")
        spec = obj.get("spec")
        if isinstance(spec, dict) and spec.get("ephemeralContainers"):
            errs.append(forbidden("spec.ephemeralContainers", "cannot be set on create"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = validate_pod_spec(new.get("spec"), "spec")
        new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        ads_new, ads_old = (
            new_spec.get("activeDeadlineSeconds"),
            old_spec.get("activeDeadlineSeconds"),
        )
        if ads_old is not None and ads_new is None:
            errs.append(
                invalid(
                    "spec.activeDeadlineSeconds",
                    None,
                    "must not update from a positive integer to nil value",
                )
            )
        elif ads_old is not None and isinstance(ads_new, int) and ads_new > ads_old:
            errs.append(
                invalid(
                    "spec.activeDeadlineSeconds",
                    ads_new,
                    "must be less than or equal to previous value",
                )
            )
        old_tols = old_spec.get("tolerations") or []
        new_tols = new_spec.get("tolerations") or []
        tolerations_ok = all(t in new_tols for t in old_tols)
        masked_new = _masked(new_spec, old_spec)
        if not tolerations_ok:
            masked_new["tolerations"] = new_tols
        tgps_old, tgps_new = (
            old_spec.get("terminationGracePeriodSeconds"),
            new_spec.get("terminationGracePeriodSeconds"),
        )
        if isinstance(tgps_old, int) and tgps_old < 0 and tgps_new == 1:
            masked_new["terminationGracePeriodSeconds"] = tgps_old
        if masked_new != old_spec:
            errs.append(forbidden("spec", POD_UPDATE_FORBIDDEN))
        return errs
