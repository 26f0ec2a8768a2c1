"""autoscaling/v1 HorizontalPodAutoscaler: a view of the stored autoscaling/v2 objects.

``HPAV1Converter`` maps ``targetCPUUtilizationPercentage`` to and from the CPU
Utilization metric and keeps what v1 cannot say in the annotations upstream's conversion
uses (``autoscaling.alpha.kubernetes.io/metrics``, ``current-metrics``, ``conditions``,
``behavior``, the metrics in the old v1 shape), so a v1 read-modify-write keeps every v2
field; a v1 write with no CPU target gets v1's implicit 80%. v1 writes are validated as
upstream validates them: on the converted object, so error paths are the v2 ones
(``spec.metrics[0].resource.target.averageUtilization``).

Called by the generic store through the registry table (``table.py``) and by
``tables.py`` (a v1 object is printed through its v2 form).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from corral.api.errors import FieldError
from corral.apiserver.registry.autoscaling import (
    BEHAVIOR_ANNOTATION,
    CONDITIONS_ANNOTATION,
    CURRENT_METRICS_ANNOTATION,
    DEFAULT_CPU_UTILIZATION,
    METRICS_ANNOTATION,
    ROUND_TRIP_ANNOTATIONS,
    SOURCE_FIELD,
    HorizontalPodAutoscalerStrategy,
    cpu_utilization_metric,
    default_hpa,
    validate_hpa_spec,
)
from corral.apiserver.registry.base import Obj, Strategy


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _metric_spec_to_v1(m: Obj) -> dict[str, Any]:
    """A v2 MetricSpec in the v1 (v2beta1-like) shape the annotation holds."""
    mtype = m.get("type")
    out: dict[str, Any] = {"type": mtype}
    src = m.get(SOURCE_FIELD.get(str(mtype), "")) or {}
    target = src.get("target") or {}
    ident = src.get("metric") or {}
    if mtype == "Object":
        out["object"] = _drop_none(
            {
                "target": src.get("describedObject") or {},
                "metricName": ident.get("name", ""),
                "targetValue": target.get("value") or "0",
                "selector": ident.get("selector"),
                "averageValue": target.get("averageValue"),
            }
        )
    elif mtype == "Pods":
        out["pods"] = _drop_none(
            {
                "metricName": ident.get("name", ""),
                "targetAverageValue": target.get("averageValue") or "0",
                "selector": ident.get("selector"),
            }
        )
    elif mtype in ("Resource", "ContainerResource"):
        key = "resource" if mtype == "Resource" else "containerResource"
        out[key] = _drop_none(
            {
                "name": src.get("name", ""),
                "container": src.get("container") if mtype == "ContainerResource" else None,
                "targetAverageUtilization": target.get("averageUtilization"),
                "targetAverageValue": target.get("averageValue"),
            }
        )
    elif mtype == "External":
        out["external"] = _drop_none(
            {
                "metricName": ident.get("name", ""),
                "metricSelector": ident.get("selector"),
                "targetValue": target.get("value"),
                "targetAverageValue": target.get("averageValue"),
            }
        )
    return out


def _metric_spec_from_v1(m: Obj) -> dict[str, Any]:
    mtype = m.get("type")
    out: dict[str, Any] = {"type": mtype}
    if mtype == "Object":
        s = m.get("object") or {}
        average = s.get("averageValue")
        out["object"] = {
            "describedObject": s.get("target") or {},
            "metric": _drop_none({"name": s.get("metricName", ""), "selector": s.get("selector")}),
            "target": _drop_none(
                {
                    "type": "Value" if average is None else "AverageValue",
                    "value": s.get("targetValue", "0"),
                    "averageValue": average,
                }
            ),
        }
    elif mtype == "Pods":
        s = m.get("pods") or {}
        out["pods"] = {
            "metric": _drop_none({"name": s.get("metricName", ""), "selector": s.get("selector")}),
            "target": {"type": "AverageValue", "averageValue": s.get("targetAverageValue", "0")},
        }
    elif mtype in ("Resource", "ContainerResource"):
        key = "resource" if mtype == "Resource" else "containerResource"
        s = m.get(key) or {}
        util = s.get("targetAverageUtilization")
        out[key] = _drop_none(
            {
                "name": s.get("name", ""),
                "container": s.get("container") if mtype == "ContainerResource" else None,
                "target": _drop_none(
                    {
                        "type": "AverageValue" if util is None else "Utilization",
                        "averageUtilization": util,
                        "averageValue": s.get("targetAverageValue"),
                    }
                ),
            }
        )
    elif mtype == "External":
        s = m.get("external") or {}
        value = s.get("targetValue")
        out["external"] = {
            "metric": _drop_none(
                {"name": s.get("metricName", ""), "selector": s.get("metricSelector")}
            ),
            "target": _drop_none(
                {
                    "type": "AverageValue" if value is None else "Value",
                    "value": value,
                    "averageValue": s.get("targetAverageValue"),
                }
            ),
        }
    return out


def _metric_status_to_v1(m: Obj) -> dict[str, Any]:
    mtype = m.get("type")
    out: dict[str, Any] = {"type": mtype}
    src = m.get(SOURCE_FIELD.get(str(mtype), "")) or {}
    current = src.get("current") or {}
    ident = src.get("metric") or {}
    if mtype == "Object":
        out["object"] = _drop_none(
            {
                "target": src.get("describedObject") or {},
                "metricName": ident.get("name", ""),
                "currentValue": current.get("value") or "0",
                "selector": ident.get("selector"),
                "averageValue": current.get("averageValue"),
            }
        )
    elif mtype == "Pods":
        out["pods"] = _drop_none(
            {
                "metricName": ident.get("name", ""),
                "currentAverageValue": current.get("averageValue") or "0",
                "selector": ident.get("selector"),
            }
        )
    elif mtype in ("Resource", "ContainerResource"):
        key = "resource" if mtype == "Resource" else "containerResource"
        out[key] = _drop_none(
            {
                "name": src.get("name", ""),
                "container": src.get("container") if mtype == "ContainerResource" else None,
                "currentAverageUtilization": current.get("averageUtilization"),
                "currentAverageValue": current.get("averageValue") or "0",
            }
        )
    elif mtype == "External":
        out["external"] = _drop_none(
            {
                "metricName": ident.get("name", ""),
                "metricSelector": ident.get("selector"),
                "currentValue": current.get("value") or "0",
                "currentAverageValue": current.get("averageValue"),
            }
        )
    return out


def _metric_status_from_v1(m: Obj) -> dict[str, Any]:
    mtype = m.get("type")
    out: dict[str, Any] = {"type": mtype}
    if mtype == "Object":
        s = m.get("object") or {}
        out["object"] = {
            "describedObject": s.get("target") or {},
            "metric": _drop_none({"name": s.get("metricName", ""), "selector": s.get("selector")}),
            "current": _drop_none(
                {"value": s.get("currentValue", "0"), "averageValue": s.get("averageValue")}
            ),
        }
    elif mtype == "Pods":
        s = m.get("pods") or {}
        out["pods"] = {
            "metric": _drop_none({"name": s.get("metricName", ""), "selector": s.get("selector")}),
            "current": {"averageValue": s.get("currentAverageValue", "0")},
        }
    elif mtype in ("Resource", "ContainerResource"):
        key = "resource" if mtype == "Resource" else "containerResource"
        s = m.get(key) or {}
        out[key] = _drop_none(
            {
                "name": s.get("name", ""),
                "container": s.get("container") if mtype == "ContainerResource" else None,
                "current": _drop_none(
                    {
                        "averageUtilization": s.get("currentAverageUtilization"),
                        "averageValue": s.get("currentAverageValue", "0"),
                    }
                ),
            }
        )
    elif mtype == "External":
        s = m.get("external") or {}
        out["external"] = {
            "metric": _drop_none(
                {"name": s.get("metricName", ""), "selector": s.get("metricSelector")}
            ),
            "current": _drop_none(
                {"value": s.get("currentValue", "0"), "averageValue": s.get("currentAverageValue")}
            ),
        }
    return out


def _is_cpu_utilization(m: Any) -> bool:
    if not isinstance(m, dict) or m.get("type") != "Resource":
        return False
    res = m.get("resource") or {}
    return (
        res.get("name") == "cpu" and (res.get("target") or {}).get("averageUtilization") is not None
    )


def _annotation_list(annotations: dict[str, Any], key: str) -> list[Any] | None:
    raw = annotations.pop(key, None)
    if raw is None:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None


class HPAV1Converter:
    """autoscaling/v1 HorizontalPodAutoscaler <-> the stored autoscaling/v2 one."""

    field_labels: ClassVar[dict[str, str]] = {}

    def to_storage(self, obj: Mapping[str, Any]) -> Obj:
        """An autoscaling/v1 HPA as autoscaling/v2 (defaulted as the v2 decoder would)."""
        meta = copy.deepcopy(obj.get("metadata") or {})
        annotations = dict(meta.get("annotations") or {})
        spec1 = obj.get("spec") or {}
        spec: dict[str, Any] = {}
        for key in ("scaleTargetRef", "minReplicas", "maxReplicas"):
            if key in spec1:
                spec[key] = copy.deepcopy(spec1[key])
        metrics = [
            _metric_spec_from_v1(m)
            for m in _annotation_list(annotations, METRICS_ANNOTATION) or ()
            if isinstance(m, dict)
        ]
        if spec1.get("targetCPUUtilizationPercentage") is not None:
            metrics.append(cpu_utilization_metric(spec1["targetCPUUtilizationPercentage"]))
        if not metrics:  # v1's implicit default, made explicit by the conversion
            metrics = [cpu_utilization_metric(DEFAULT_CPU_UTILIZATION)]
        spec["metrics"] = metrics
        raw_behavior = annotations.pop(BEHAVIOR_ANNOTATION, None)
        if raw_behavior is not None:
            try:
                behavior = orjson.loads(raw_behavior)
            except orjson.JSONDecodeError:
                behavior = None
            if isinstance(behavior, dict):
                spec["behavior"] = behavior
        out: dict[str, Any] = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler"}
        status1 = obj.get("status")
        status: dict[str, Any] | None = None
        if isinstance(status1, dict):
            status = {
                k: status1[k]
                for k in (
                    "observedGeneration",
                    "lastScaleTime",
                    "currentReplicas",
                    "desiredReplicas",
                )
                if k in status1
            }
            if not status.get("currentReplicas"):  # omitempty in v2
                status.pop("currentReplicas", None)
            current = _annotation_list(annotations, CURRENT_METRICS_ANNOTATION)
            if current is not None:
                status["currentMetrics"] = [
                    _metric_status_from_v1(m) for m in current if isinstance(m, dict)
                ]
            elif status1.get("currentCPUUtilizationPercentage") is not None:
                status["currentMetrics"] = [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "current": {
                                "averageUtilization": status1["currentCPUUtilizationPercentage"]
                            },
                        },
                    }
                ]
            conditions = _annotation_list(annotations, CONDITIONS_ANNOTATION)
            if conditions is not None:
                status["conditions"] = conditions
        for key in ROUND_TRIP_ANNOTATIONS:
            annotations.pop(key, None)
        if annotations:
            meta["annotations"] = annotations
        else:
            meta.pop("annotations", None)
        out["metadata"] = meta
        out["spec"] = spec
        if status is not None:
            out["status"] = status
        default_hpa(out)
        return out

    def from_storage(self, obj: Mapping[str, Any]) -> Obj:
        """A stored autoscaling/v2 HPA as autoscaling/v1 (extra v2 fields in annotations)."""
        meta = copy.deepcopy(obj.get("metadata") or {})
        spec2 = obj.get("spec") or {}
        status2 = obj.get("status") or {}
        spec: dict[str, Any] = {}
        for key in ("scaleTargetRef", "minReplicas", "maxReplicas"):
            if key in spec2:
                spec[key] = copy.deepcopy(spec2[key])
        metrics = [m for m in spec2.get("metrics") or () if isinstance(m, dict)]
        for m in metrics:
            if m.get("type") == "Resource" and (m.get("resource") or {}).get("name") == "cpu":
                util = ((m["resource"].get("target")) or {}).get("averageUtilization")
                if util is not None:
                    spec["targetCPUUtilizationPercentage"] = util
                break
        annotations = dict(meta.get("annotations") or {})
        others = [_metric_spec_to_v1(m) for m in metrics if not _is_cpu_utilization(m)]
        if others:
            annotations[METRICS_ANNOTATION] = orjson.dumps(others).decode()
        current = [m for m in status2.get("currentMetrics") or () if isinstance(m, dict)]
        if current:
            annotations[CURRENT_METRICS_ANNOTATION] = orjson.dumps(
                [_metric_status_to_v1(m) for m in current]
            ).decode()
        conditions = status2.get("conditions") or []
        if conditions:
            annotations[CONDITIONS_ANNOTATION] = orjson.dumps(conditions).decode()
        if spec2.get("behavior") is not None:
            annotations[BEHAVIOR_ANNOTATION] = orjson.dumps(spec2["behavior"]).decode()
        if annotations:
            meta["annotations"] = annotations
        status: dict[str, Any] = {
            k: status2[k]
            for k in ("observedGeneration", "lastScaleTime", "currentReplicas")
            if k in status2
        }
        status["desiredReplicas"] = status2.get("desiredReplicas", 0)
        for m in current:
            res = m.get("resource") or {}
            if m.get("type") == "Resource" and res.get("name") == "cpu":
                util = (res.get("current") or {}).get("averageUtilization")
                if util is not None:
                    status["currentCPUUtilizationPercentage"] = util
        out: dict[str, Any] = {
            "apiVersion": "autoscaling/v1",
            "kind": "HorizontalPodAutoscaler",
            "metadata": meta,
            "spec": spec,
        }
        if "status" in obj:
            status.setdefault("currentReplicas", status2.get("currentReplicas", 0))
            out["status"] = status
        return out


class HorizontalPodAutoscalerV1Strategy(Strategy):
    """autoscaling/v1 HorizontalPodAutoscaler: a view, validated on its v2 conversion."""

    has_status = True
    spec_fields = ()

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict) and spec.get("minReplicas") is None:
            spec["minReplicas"] = 1

    def default_status(self, obj: Obj) -> None:
        obj["status"] = {"currentReplicas": 0, "desiredReplicas": 0}

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_hpa_spec(HPAV1Converter().to_storage(obj).get("spec"), "spec", 1)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        old_min = (old.get("spec") or {}).get("minReplicas")
        spec = HPAV1Converter().to_storage(new).get("spec")
        return validate_hpa_spec(spec, "spec", 0 if old_min == 0 else 1)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return HorizontalPodAutoscalerStrategy().validate_status_update(new, old)


__all__ = ["HPAV1Converter", "HorizontalPodAutoscalerV1Strategy"]
