"""autoscaling/v2 HorizontalPodAutoscaler: defaults, validation and its table cells.

Stored in the v2 shape, as Kubernetes stores it; autoscaling/v1 is a view of the same
objects (``autoscaling_v1.py``). ``HorizontalPodAutoscalerStrategy`` defaults as the v2
defaulter does (``minReplicas`` 1; no metrics: 80% CPU utilization; a ``behavior`` gets
its scale-up and scale-down rules completed, the scale-down window left unset so the
controller's flag applies) and validates with upstream's paths and texts
(HPAScaleToZero off). The v1 round-trip annotations are dropped from v2 writes, as
upstream's v2 conversion drops them.

``table_cells`` formats ``kubectl get hpa`` as 1.32 prints it (``cpu: 50%/80%``) for
``tables.py``. Called by the generic store through the registry table (``table.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from corral.api.errors import FieldError, forbidden, invalid, not_supported, required
from corral.api.quantity import parse_quantity
from corral.api.validation import (
    is_valid_path_segment_name,
    validate_dns1123_label,
    validate_nonnegative,
)
from corral.apiserver.registry.base import Obj, Strategy

METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/current-metrics"
CONDITIONS_ANNOTATION = "autoscaling.alpha.kubernetes.io/conditions"
BEHAVIOR_ANNOTATION = "autoscaling.alpha.kubernetes.io/behavior"
ROUND_TRIP_ANNOTATIONS = (
    METRICS_ANNOTATION,
    CURRENT_METRICS_ANNOTATION,
    CONDITIONS_ANNOTATION,
    BEHAVIOR_ANNOTATION,
)
DEFAULT_CPU_UTILIZATION = 80
MAX_PERIOD_SECONDS = 1800
MAX_STABILIZATION_WINDOW_SECONDS = 3600
METRIC_TYPES = ["ContainerResource", "External", "Object", "Pods", "Resource"]
SOURCE_FIELD = {
    "Object": "object",
    "Pods": "pods",
    "Resource": "resource",
    "ContainerResource": "containerResource",
    "External": "external",
}

# --- defaults -----------------------------------------------------------------------------


def _scale_up_rules() -> dict[str, Any]:
    return {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15},
        ],
    }


def _scale_down_rules() -> dict[str, Any]:
    # no window: the controller's --horizontal-pod-autoscaler-downscale-stabilization
    return {
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
    }


def _complete_rules(given: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(given, dict):
        return defaults
    for key in ("selectPolicy", "stabilizationWindowSeconds", "policies"):
        if given.get(key) is not None:
            defaults[key] = given[key]
    return defaults


def cpu_utilization_metric(percent: int) -> dict[str, Any]:
    return {
        "type": "Resource",
        "resource": {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": percent},
        },
    }


def default_hpa(obj: Obj) -> None:
    """autoscaling/v2 ``SetDefaults_HorizontalPodAutoscaler`` (Kubernetes 1.32)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    if not spec.get("metrics"):
        spec["metrics"] = [cpu_utilization_metric(DEFAULT_CPU_UTILIZATION)]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        behavior["scaleUp"] = _complete_rules(behavior.get("scaleUp"), _scale_up_rules())
        behavior["scaleDown"] = _complete_rules(behavior.get("scaleDown"), _scale_down_rules())


# --- validation ---------------------------------------------------------------------------


def validate_reference(ref: Any, path: str) -> list[FieldError]:
    """``ValidateCrossVersionObjectReference``."""
    ref = ref if isinstance(ref, dict) else {}
    errs: list[FieldError] = []
    for key in ("kind", "name"):
        value = ref.get(key) or ""
        if not value:
            errs.append(required(f"{path}.{key}"))
        else:
            errs += [invalid(f"{path}.{key}", value, m) for m in is_valid_path_segment_name(value)]
    return errs


def _positive_quantity(value: Any) -> bool:
    try:
        return parse_quantity(value) > 0
    except (ValueError, TypeError):
        return False


def _validate_target(target: Any, path: str) -> list[FieldError]:
    """``validateMetricTarget``."""
    t = target if isinstance(target, dict) else {}
    errs: list[FieldError] = []
    ttype = t.get("type") or ""
    if not ttype:
        errs.append(required(f"{path}.type", "must specify a metric target type"))
    if ttype not in ("Utilization", "Value", "AverageValue"):
        errs.append(
            invalid(f"{path}.type", ttype, "must be either Utilization, Value, or AverageValue")
        )
    for key in ("value", "averageValue"):
        if t.get(key) is not None and not _positive_quantity(t[key]):
            errs.append(invalid(f"{path}.{key}", t[key], "must be positive"))
    util = t.get("averageUtilization")
    if util is not None and isinstance(util, int) and util < 1:
        errs.append(invalid(f"{path}.averageUtilization", util, "must be greater than 0"))
    return errs


def _validate_identifier(ident: Any, path: str) -> list[FieldError]:
    name = (ident if isinstance(ident, dict) else {}).get("name") or ""
    if not name:
        return [required(f"{path}.name", "must specify a metric name")]
    return [invalid(f"{path}.name", name, m) for m in is_valid_path_segment_name(name)]


def _validate_source(kind: str, src: Obj, path: str) -> list[FieldError]:
    target: Obj = src["target"] if isinstance(src.get("target"), dict) else {}
    tp = f"{path}.target"
    errs: list[FieldError] = []
    if kind == "object":
        errs += validate_reference(src.get("describedObject"), f"{path}.describedObject")
    if kind in ("object", "external", "pods"):
        errs += _validate_identifier(src.get("metric"), f"{path}.metric")
    if kind in ("resource", "containerResource"):
        if not src.get("name"):
            errs.append(required(f"{path}.name", "must specify a resource name"))
        if kind == "containerResource":
            container = src.get("container") or ""
            if not container:
                errs.append(required(f"{path}.container", "must specify a container"))
            else:
                errs += validate_dns1123_label(container, f"{path}.container")
    errs += _validate_target(target, tp)
    value, average = target.get("value"), target.get("averageValue")
    if kind == "object" and value is None and average is None:
        errs.append(
            required(f"{tp}.averageValue", "must set either a target value or averageValue")
        )
    if kind == "external":
        if value is None and average is None:
            errs.append(
                required(
                    f"{tp}.averageValue",
                    "must set either a target value for metric or a per-pod target",
                )
            )
        if value is not None and average is not None:
            errs.append(
                forbidden(
                    f"{tp}.value", "may not set both a target value for metric and a per-pod target"
                )
            )
    if kind == "pods" and average is None:
        errs.append(required(f"{tp}.averageValue", "must specify a positive target averageValue"))
    if kind in ("resource", "containerResource"):
        util = target.get("averageUtilization")
        if util is None and average is None:
            errs.append(
                required(
                    f"{tp}.averageUtilization",
                    "must set either a target raw value or a target utilization",
                )
            )
        if util is not None and average is not None:
            errs.append(
                forbidden(
                    f"{tp}.averageValue",
                    "may not set both a target raw value and a target utilization",
                )
            )
    return errs


def _validate_metric(spec: Any, path: str) -> list[FieldError]:
    """``validateMetricSpec``: a known type, and exactly its source populated."""
    spec = spec if isinstance(spec, dict) else {}
    errs: list[FieldError] = []
    mtype = spec.get("type") or ""
    if not mtype:
        errs.append(required(f"{path}.type", "must specify a metric source type"))
    if mtype not in METRIC_TYPES:
        errs.append(not_supported(f"{path}.type", mtype, METRIC_TYPES))
    present = [
        f
        for f in ("object", "external", "pods", "resource", "containerResource")
        if isinstance(spec.get(f), dict)
    ]
    if present:
        errs += _validate_source(present[0], spec[present[0]], f"{path}.{present[0]}")
    expected = SOURCE_FIELD.get(mtype)
    if expected is not None and expected not in present:
        errs.append(
            required(f"{path}.{expected}", "must populate information for the given metric source")
        )
    elif expected is None and mtype:
        errs.append(not_supported(f"{path}.type", mtype, METRIC_TYPES))
    if len(present) > 1:
        errs += [
            forbidden(f"{path}.{f}", "must populate the given metric source only")
            for f in present
            if f != expected
        ]
    return errs


def _validate_rules(rules: Any, path: str) -> list[FieldError]:
    """``validateScalingRules``."""
    if not isinstance(rules, dict):
        return []
    errs: list[FieldError] = []
    window = rules.get("stabilizationWindowSeconds")
    if isinstance(window, int):
        if window < 0:
            errs.append(
                invalid(
                    f"{path}.stabilizationWindowSeconds",
                    window,
                    "must be greater than or equal to zero",
                )
            )
        if window > MAX_STABILIZATION_WINDOW_SECONDS:
            errs.append(
                invalid(
                    f"{path}.stabilizationWindowSeconds",
                    window,
                    f"must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}",
                )
            )
    select = rules.get("selectPolicy")
    if select is not None and select not in ("Disabled", "Max", "Min"):
        errs.append(not_supported(f"{path}.selectPolicy", select, ["Disabled", "Max", "Min"]))
    policies = rules.get("policies") or []
    if not policies:
        errs.append(required(f"{path}.policies", "must specify at least one Policy"))
    for i, policy in enumerate(policies):
        p = f"{path}.policies[{i}]"
        policy = policy if isinstance(policy, dict) else {}
        ptype = policy.get("type") or ""
        if ptype not in ("Pods", "Percent"):
            errs.append(not_supported(f"{p}.type", ptype, ["Percent", "Pods"]))
        value = policy.get("value") or 0
        if value <= 0:
            errs.append(invalid(f"{p}.value", value, "must be greater than zero"))
        period = policy.get("periodSeconds") or 0
        if period <= 0:
            errs.append(invalid(f"{p}.periodSeconds", period, "must be greater than zero"))
        if period > MAX_PERIOD_SECONDS:
            errs.append(
                invalid(
                    f"{p}.periodSeconds",
                    period,
                    f"must be less than or equal to {MAX_PERIOD_SECONDS}",
                )
            )
    return errs


def validate_hpa_spec(spec: Any, path: str, min_lower_bound: int) -> list[FieldError]:
    """``validateHorizontalPodAutoscalerSpec`` (HPAScaleToZero off: the bound is 1, or 0
    for an object that already has ``minReplicas: 0``)."""
    spec = spec if isinstance(spec, dict) else {}
    errs: list[FieldError] = []
    min_r, max_r = spec.get("minReplicas"), spec.get("maxReplicas") or 0
    if isinstance(min_r, int) and min_r < min_lower_bound:
        errs.append(
            invalid(
                f"{path}.minReplicas", min_r, f"must be greater than or equal to {min_lower_bound}"
            )
        )
    if max_r < 1:
        errs.append(invalid(f"{path}.maxReplicas", max_r, "must be greater than 0"))
    if isinstance(min_r, int) and max_r < min_r:
        errs.append(
            invalid(f"{path}.maxReplicas", max_r, "must be greater than or equal to `minReplicas`")
        )
    errs += validate_reference(spec.get("scaleTargetRef"), f"{path}.scaleTargetRef")
    metrics = spec.get("metrics") or []
    kinds = set()
    for i, metric in enumerate(metrics):
        errs += _validate_metric(metric, f"{path}.metrics[{i}]")
        kinds.add((metric or {}).get("type") if isinstance(metric, dict) else None)
    if min_r == 0 and not kinds & {"Object", "External"}:
        errs.append(
            forbidden(
                f"{path}.metrics",
                "must specify at least one Object or External metric to support scaling to zero replicas",
            )
        )
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        errs += _validate_rules(behavior.get("scaleUp"), f"{path}.behavior.scaleUp")
        errs += _validate_rules(behavior.get("scaleDown"), f"{path}.behavior.scaleDown")
    return errs


class HorizontalPodAutoscalerStrategy(Strategy):
    """autoscaling/v2 HorizontalPodAutoscaler (the stored shape)."""

    has_status = True
    spec_fields = ()  # upstream's strategy never sets metadata.generation

    def default(self, obj: Obj) -> None:
        annotations = (obj.get("metadata") or {}).get("annotations")
        if isinstance(annotations, dict):  # v2 round-trips without them (upstream drops them)
            for key in ROUND_TRIP_ANNOTATIONS:
                annotations.pop(key, None)
        default_hpa(obj)

    def default_status(self, obj: Obj) -> None:
        obj["status"] = {"desiredReplicas": 0}

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_hpa_spec(obj.get("spec"), "spec", 1)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        old_min = (old.get("spec") or {}).get("minReplicas")
        return validate_hpa_spec(new.get("spec"), "spec", 0 if old_min == 0 else 1)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status = new.get("status") or {}
        return validate_nonnegative(
            status.get("currentReplicas"), "status.currentReplicas"
        ) + validate_nonnegative(status.get("desiredReplicas"), "status.desiredReplicas")


# --- kubectl get hpa ---------------------------------------------------------------------------


def _quantity_text(value: Any) -> str:
    return "<unknown>" if value is None else str(value)


def format_metrics(specs: list[Any], statuses: list[Any]) -> str:
    """``formatHPAMetrics`` (Kubernetes 1.30+): ``cpu: 50%/80%``, two at most then
    ``+ N more...``."""
    if not specs:
        return "<none>"
    items: list[str] = []
    for i, spec in enumerate(specs):
        spec = spec if isinstance(spec, dict) else {}
        status = statuses[i] if i < len(statuses) and isinstance(statuses[i], dict) else {}
        mtype = spec.get("type")
        field = SOURCE_FIELD.get(str(mtype))
        src = spec.get(field or "") or {}
        cur_src = status.get(field or "")
        cur = (cur_src or {}).get("current") or {}
        target = src.get("target") or {}
        if mtype in ("External", "Object"):
            if target.get("averageValue") is not None:
                current = _quantity_text(cur.get("averageValue")) if cur_src else "<unknown>"
                items.append(f"{current}/{target['averageValue']} (avg)")
            else:
                current = _quantity_text(cur.get("value")) if cur_src else "<unknown>"
                items.append(f"{current}/{_quantity_text(target.get('value'))}")
        elif mtype == "Pods":
            current = _quantity_text(cur.get("averageValue")) if cur_src else "<unknown>"
            items.append(f"{current}/{_quantity_text(target.get('averageValue'))}")
        elif mtype in ("Resource", "ContainerResource"):
            name = src.get("name", "")
            if target.get("averageValue") is not None:
                current = _quantity_text(cur.get("averageValue")) if cur_src else "<unknown>"
                items.append(f"{name}: {current}/{target['averageValue']}")
            else:
                util = cur.get("averageUtilization")
                current = f"{util}%" if cur_src and util is not None else "<unknown>"
                want = target.get("averageUtilization")
                wanted = "<auto>" if want is None else f"{want}%"
                items.append(f"{name}: {current}/{wanted}")
        else:
            items.append("<unknown type>")
    if len(items) > 2:
        return f"{', '.join(items[:2])} + {len(items) - 2} more..."
    return ", ".join(items)


def table_cells(obj: Mapping[str, Any]) -> list[Any]:
    """NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS of a v2-shaped HPA (AGE is the
    table's; a v1 one is converted first: ``HPAV1Converter.to_storage``)."""
    hpa = obj
    spec = hpa.get("spec") or {}
    status = hpa.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    min_r = spec.get("minReplicas")
    return [
        (hpa.get("metadata") or {}).get("name", ""),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        format_metrics(list(spec.get("metrics") or ()), list(status.get("currentMetrics") or ())),
        "<unset>" if min_r is None else str(min_r),
        int(spec.get("maxReplicas") or 0),
        int(status.get("currentReplicas") or 0),
    ]


__all__ = [
    "HorizontalPodAutoscalerStrategy",
    "default_hpa",
    "format_metrics",
    "table_cells",
    "validate_hpa_spec",
]
