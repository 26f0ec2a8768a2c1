"""HorizontalPodAutoscaler: v2 defaults and validation (upstream's paths and texts), the
autoscaling/v1 view's conversion both ways, and the ``kubectl get hpa`` cells."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from corral.apiserver.registry.autoscaling import (
    HorizontalPodAutoscalerStrategy,
    format_metrics,
    table_cells,
)
from corral.apiserver.registry.autoscaling_v1 import (
    HorizontalPodAutoscalerV1Strategy,
    HPAV1Converter,
)

Obj = dict[str, Any]
REF = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
V2 = HorizontalPodAutoscalerStrategy()
V1 = HorizontalPodAutoscalerV1Strategy()
CONV = HPAV1Converter()


def hpa(**spec: Any) -> Obj:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {"scaleTargetRef": dict(REF), "maxReplicas": 4, **spec},
    }


def cpu(percent: int) -> Obj:
    return {
        "type": "Resource",
        "resource": {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": percent},
        },
    }


MEMORY = {
    "type": "Resource",
    "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}},
}


def errors(obj: Obj, strategy: Any = V2) -> list[str]:
    obj = copy.deepcopy(obj)
    strategy.default(obj)
    return [str(e) for e in strategy.validate(obj)]


# --- defaults ------------------------------------------------------------------------------------


def test_defaults_min_replicas_and_80_percent_cpu() -> None:
    obj = hpa()
    V2.default(obj)
    assert obj["spec"]["minReplicas"] == 1
    assert obj["spec"]["metrics"] == [cpu(80)]
    assert "behavior" not in obj["spec"]  # no behaviour: the controller's legacy rules


def test_behavior_rules_are_completed_scale_down_window_left_unset() -> None:
    obj = hpa(
        behavior={"scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}
    )
    V2.default(obj)
    beh = obj["spec"]["behavior"]
    assert beh["scaleUp"] == {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15},
        ],
    }
    assert beh["scaleDown"] == {
        "selectPolicy": "Max",
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
    }


# --- validation --------------------------------------------------------------------------------

INVALID = [
    (hpa(scaleTargetRef={"name": "web"}), "spec.scaleTargetRef.kind: Required value"),
    (hpa(scaleTargetRef={"kind": "Deployment"}), "spec.scaleTargetRef.name: Required value"),
    (
        hpa(scaleTargetRef={**REF, "name": "a/b"}),
        "spec.scaleTargetRef.name: Invalid value: \"a/b\": may not contain '/'",
    ),
    (hpa(minReplicas=0), "spec.minReplicas: Invalid value: 0: must be greater than or equal to 1"),
    (
        hpa(minReplicas=5),
        "spec.maxReplicas: Invalid value: 4: must be greater than or equal to `minReplicas`",
    ),
    (
        hpa(maxReplicas=0, minReplicas=None),
        "spec.maxReplicas: Invalid value: 0: must be greater than 0",
    ),
    (
        hpa(metrics=[cpu(0)]),
        "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0",
    ),
    (
        hpa(
            metrics=[
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}
            ]
        ),
        "spec.metrics[0].resource.target.averageUtilization: Required value: must set either a target raw value or a target utilization",
    ),
    (
        hpa(
            metrics=[
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Bogus", "averageUtilization": 5},
                    },
                }
            ]
        ),
        'spec.metrics[0].resource.target.type: Invalid value: "Bogus": must be either Utilization, Value, or AverageValue',
    ),
    (
        hpa(
            metrics=[
                {
                    "type": "Pods",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 5},
                    },
                }
            ]
        ),
        "spec.metrics[0].pods: Required value: must populate information for the given metric source",
    ),
    (
        hpa(metrics=[{"type": "Nope"}]),
        'spec.metrics[0].type: Unsupported value: "Nope": supported values: "ContainerResource", "External", "Object", "Pods", "Resource"',
    ),
    (
        hpa(
            metrics=[
                {
                    **MEMORY,
                    "resource": {
                        "name": "memory",
                        "target": {"type": "AverageValue", "averageValue": "-1"},
                    },
                }
            ]
        ),
        'spec.metrics[0].resource.target.averageValue: Invalid value: "-1": must be positive',
    ),
    (
        hpa(
            behavior={"scaleUp": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]}}
        ),
        "spec.behavior.scaleUp.policies[0].value: Invalid value: 0: must be greater than zero",
    ),
    (
        hpa(
            behavior={
                "scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 1801}]}
            }
        ),
        "spec.behavior.scaleUp.policies[0].periodSeconds: Invalid value: 1801: must be less than or equal to 1800",
    ),
    (
        hpa(behavior={"scaleDown": {"stabilizationWindowSeconds": 3601}}),
        "spec.behavior.scaleDown.stabilizationWindowSeconds: Invalid value: 3601: must be less than or equal to 3600",
    ),
    (
        hpa(behavior={"scaleDown": {"selectPolicy": "Most"}}),
        'spec.behavior.scaleDown.selectPolicy: Unsupported value: "Most": supported values: "Disabled", "Max", "Min"',
    ),
    (
        hpa(
            behavior={"scaleUp": {"policies": [{"type": "Nodes", "value": 1, "periodSeconds": 15}]}}
        ),
        'spec.behavior.scaleUp.policies[0].type: Unsupported value: "Nodes": supported values: "Percent", "Pods"',
    ),
]
IDS = [
    "no-kind", "no-name", "bad-name", "min-zero", "max-below-min", "max-zero", "utilization-zero",
    "no-target", "bad-target-type", "source-mismatch", "unknown-type", "negative-value",
    "policy-value", "policy-period", "window", "select-policy", "policy-type",
]  # fmt: skip


@pytest.mark.parametrize(("obj", "message"), INVALID, ids=IDS)
def test_invalid(obj: Obj, message: str) -> None:
    obj["spec"] = {k: v for k, v in obj["spec"].items() if v is not None}
    assert message in errors(obj)


@pytest.mark.parametrize(
    "obj",
    [
        hpa(),
        hpa(minReplicas=2, metrics=[cpu(50), MEMORY]),
        hpa(behavior={"scaleDown": {"stabilizationWindowSeconds": 0, "selectPolicy": "Disabled"}}),
        hpa(metrics=[{"type": "ContainerResource", "containerResource": {
            "name": "cpu", "container": "app", "target": {"type": "Utilization", "averageUtilization": 60}}}]),
    ],
    ids=["minimal", "cpu-and-memory", "behavior", "container-resource"],
)  # fmt: skip
def test_valid(obj: Obj) -> None:
    assert errors(obj) == []


def test_min_replicas_zero_kept_on_update_when_it_was_zero() -> None:
    old = hpa(minReplicas=0)
    new = hpa(minReplicas=0, metrics=[cpu(50)])
    msgs = [str(e) for e in V2.validate_update(new, old)]
    assert not any("minReplicas" in m for m in msgs)
    assert "spec.metrics: Forbidden: must specify at least one Object or External metric" in msgs[0]


# --- autoscaling/v1 ------------------------------------------------------------------------------


def v1(**spec: Any) -> Obj:
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {"scaleTargetRef": dict(REF), "maxReplicas": 4, **spec},
    }


def test_v1_cpu_percent_is_the_cpu_metric_and_back() -> None:
    stored = CONV.to_storage(v1(minReplicas=1, targetCPUUtilizationPercentage=50))
    assert stored["apiVersion"] == "autoscaling/v2"
    assert stored["spec"]["metrics"] == [cpu(50)]
    back = CONV.from_storage(stored)
    assert back["spec"] == {
        "scaleTargetRef": REF,
        "minReplicas": 1,
        "maxReplicas": 4,
        "targetCPUUtilizationPercentage": 50,
    }
    assert "annotations" not in back["metadata"]


def test_v1_without_target_gets_the_implicit_80_percent() -> None:
    assert CONV.to_storage(v1())["spec"]["metrics"] == [cpu(80)]


def test_v2_fields_survive_a_v1_round_trip_through_annotations() -> None:
    stored = hpa(
        minReplicas=1,
        metrics=[MEMORY, cpu(60)],
        behavior={"scaleDown": {"stabilizationWindowSeconds": 10}},
    )
    V2.default(stored)
    stored["status"] = {
        "currentReplicas": 2,
        "desiredReplicas": 3,
        "currentMetrics": [
            {
                "type": "Resource",
                "resource": {"name": "memory", "current": {"averageValue": "50Mi"}},
            },
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "current": {"averageUtilization": 70, "averageValue": "350m"},
                },
            },
        ],
        "conditions": [
            {
                "type": "AbleToScale",
                "status": "True",
                "reason": "ReadyForNewScale",
                "message": "m",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
    }
    view = CONV.from_storage(stored)
    ann = view["metadata"]["annotations"]
    assert ann["autoscaling.alpha.kubernetes.io/metrics"] == (
        '[{"type":"Resource","resource":{"name":"memory","targetAverageValue":"100Mi"}}]'
    )
    assert set(ann) == {
        "autoscaling.alpha.kubernetes.io/metrics",
        "autoscaling.alpha.kubernetes.io/current-metrics",
        "autoscaling.alpha.kubernetes.io/conditions",
        "autoscaling.alpha.kubernetes.io/behavior",
    }
    assert view["spec"]["targetCPUUtilizationPercentage"] == 60
    assert view["status"] == {
        "currentReplicas": 2,
        "desiredReplicas": 3,
        "currentCPUUtilizationPercentage": 70,
    }
    again = CONV.to_storage(view)
    assert again["spec"] == stored["spec"]
    assert again["status"] == stored["status"]
    assert "annotations" not in again["metadata"]


def test_v1_errors_carry_the_v2_paths() -> None:
    assert (
        "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0"
        in errors(v1(targetCPUUtilizationPercentage=0), V1)
    )
    assert errors(v1(targetCPUUtilizationPercentage=50), V1) == []


def test_v2_drops_the_v1_round_trip_annotations() -> None:
    obj = hpa()
    obj["metadata"]["annotations"] = {"autoscaling.alpha.kubernetes.io/metrics": "[]", "keep": "me"}
    V2.default(obj)
    assert obj["metadata"]["annotations"] == {"keep": "me"}


# --- kubectl get hpa ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("specs", "statuses", "text"),
    [
        ([], [], "<none>"),
        ([cpu(80)], [], "cpu: <unknown>/80%"),
        ([cpu(80)], [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 50}}}], "cpu: 50%/80%"),
        ([MEMORY], [{"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "20Mi"}}}], "memory: 20Mi/100Mi"),
        ([cpu(80), MEMORY, cpu(90)], [], "cpu: <unknown>/80%, memory: <unknown>/100Mi + 1 more..."),
        ([cpu(80)], [{"type": ""}], "cpu: <unknown>/80%"),
    ],
    ids=["none", "unknown", "utilization", "average-value", "more", "failed-metric"],
)  # fmt: skip
def test_targets_column(specs: list[Obj], statuses: list[Obj], text: str) -> None:
    assert format_metrics(specs, statuses) == text


def test_table_cells() -> None:
    obj = hpa(minReplicas=1, metrics=[cpu(50)])
    obj["status"] = {"currentReplicas": 3, "desiredReplicas": 3}
    assert table_cells(obj) == ["web", "Deployment/web", "cpu: <unknown>/50%", "1", 4, 3]
