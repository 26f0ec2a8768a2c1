"""Strategies for the kinds Corral stores and validates but does not yet enforce:
core/v1 ResourceQuota, LimitRange and PodTemplate, and policy/v1 PodDisruptionBudget.

They are served so that manifests and tools that carry them (``kubectl create quota``,
``kubectl create pdb``, Helm charts) work; quota admission, limit defaulting and
disruption budgets in eviction and preemption are not applied yet (docs/architecture.md
says so). Called by the generic store through the registry table.
"""

from __future__ import annotations

from typing import Any

from corral.api.errors import FieldError, invalid
from corral.api.quantity import is_valid_quantity
from corral.api.validation import is_valid_percent, validate_label_selector, validate_nonnegative
from corral.apiserver.registry.base import Strategy
from corral.apiserver.registry.podspec import default_pod_template, validate_pod_template

Obj = dict[str, Any]


def _quantities(values: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for name, q in (values or {}).items():
        if not is_valid_quantity(q):
            errs.append(invalid(f"{path}[{name}]", q, "must be a valid quantity"))
    return errs


class ResourceQuotaStrategy(Strategy):
    has_status = True
    spec_fields = ()
    return_deleted_object = True  # as upstream's registry

    def validate(self, obj: Obj) -> list[FieldError]:
        return _quantities((obj.get("spec") or {}).get("hard"), "spec.hard")


class LimitRangeStrategy(Strategy):
    spec_fields = ()

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        for i, item in enumerate((obj.get("spec") or {}).get("limits") or []):
            for field in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
                errs += _quantities(item.get(field), f"spec.limits[{i}].{field}")
        return errs


class PodTemplateStrategy(Strategy):
    spec_fields = ()
    return_deleted_object = True  # as upstream's registry

    def default(self, obj: Obj) -> None:
        if isinstance(obj.get("template"), dict):
            default_pod_template(obj["template"])

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_pod_template(obj.get("template") or {}, "template")


class PodDisruptionBudgetStrategy(Strategy):
    has_status = True

    def default_status(self, obj: Obj) -> None:
        obj["status"] = {
            "disruptionsAllowed": 0,
            "currentHealthy": 0,
            "desiredHealthy": 0,
            "expectedPods": 0,
        }

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errs: list[FieldError] = []
        min_av, max_un = spec.get("minAvailable"), spec.get("maxUnavailable")
        if min_av is not None and max_un is not None:
            errs.append(invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set"))
        for field, value in (("minAvailable", min_av), ("maxUnavailable", max_un)):
            if isinstance(value, int):
                errs += validate_nonnegative(value, f"spec.{field}")
            elif isinstance(value, str):
                errs += [invalid(f"spec.{field}", value, m) for m in is_valid_percent(value)]
        if spec.get("selector") is not None:
            errs += validate_label_selector(spec["selector"], "spec.selector")
        return errs
