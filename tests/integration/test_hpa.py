"""HorizontalPodAutoscaler end to end on a real server with the real kubectl and the
``kubernetes`` client: ``kubectl autoscale`` (autoscaling/v1, protobuf), ``kubectl get
hpa``, the v1 and v2 views of one object, 422s with upstream's paths, and the controller
(``--horizontal-pod-autoscaler-sync-period=1s`` through ``--kube-controller-manager-arg``)
rescaling a Deployment through ``/scale`` and reporting a target it cannot measure.

No node runs here, so no pod has metrics: the CPU-driven scale up and down with the real
metrics server is the e2e suite's; the algorithm is covered by the unit tables.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import Kubectl, RunningServer, api_client_for, start_server
from corral.testing.wait import eventually

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(
        tmp_path_factory.mktemp("hpa") / "data",
        controllers=True,
        extra=[
            "--no-scheduler",
            "--kube-controller-manager-arg",
            "controllers=deployment,replicaset,horizontalpodautoscaling",
            "--kube-controller-manager-arg",
            "horizontal-pod-autoscaler-sync-period=1s",
        ],
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def kctl(srv: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(srv.kubeconfig, tmp_path_factory.mktemp("kubecache"))


@pytest.fixture(scope="module")
def api(srv: RunningServer) -> Iterator[client.ApiClient]:
    with api_client_for(srv.kubeconfig) as c:
        yield c


@pytest.fixture
def ns(kctl: Kubectl) -> str:
    name = "hpa-" + uuid.uuid4().hex[:6]
    kctl("create", "namespace", name)
    return name


def hpa_json(kctl: Kubectl, ns: str, name: str = "web") -> Obj:
    out: Obj = json.loads(kctl("get", "hpa", name, "-n", ns, "-o", "json").stdout)
    return out


def condition(hpa: Obj, ctype: str) -> Obj | None:
    for c in (hpa.get("status") or {}).get("conditions") or ():
        if c["type"] == ctype:
            return dict(c)
    return None


def test_kubectl_autoscale_get_and_unmeasurable_target(kctl: Kubectl, ns: str) -> None:
    kctl("create", "deployment", "web", "--image=busybox:1.36", "-n", ns)
    out = kctl("autoscale", "deployment", "web", "--cpu-percent=50", "--min=1", "--max=4", "-n", ns)
    assert out.stdout.strip() == "horizontalpodautoscaler.autoscaling/web autoscaled"
    hpa = hpa_json(kctl, ns)
    assert hpa["apiVersion"] == "autoscaling/v2"  # the preferred version
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50},
            },
        }
    ]
    lines = kctl("get", "hpa", "-n", ns).stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "REFERENCE",
        "TARGETS",
        "MINPODS",
        "MAXPODS",
        "REPLICAS",
        "AGE",
    ]
    assert lines[1].split()[:7] == [
        "web",
        "Deployment/web",
        "cpu:",
        "<unknown>/50%",
        "1",
        "4",
        lines[1].split()[6],
    ]

    # no request, no node, no metrics: the controller says why it cannot scale, as upstream
    def reported() -> bool:
        c = condition(hpa_json(kctl, ns), "ScalingActive")
        return c is not None and c["status"] == "False"

    eventually(reported, timeout=15, interval=0.2)
    hpa = hpa_json(kctl, ns)
    able = condition(hpa, "AbleToScale")
    assert able is not None and (able["status"], able["reason"]) == ("True", "SucceededGetScale")
    active = condition(hpa, "ScalingActive")
    assert active is not None and active["reason"] == "FailedGetResourceMetric"
    # with a metrics API and running pods this is "missing request for cpu in container
    # ..."; without pods it is the metrics API's answer: both upstream's words
    assert active["message"].startswith(
        "the HPA was unable to compute the replica count: failed to get cpu utilization: "
    )
    events = json.loads(kctl("get", "events", "-n", ns, "-o", "json").stdout)["items"]
    reasons = {
        e["reason"] for e in events if e["involvedObject"]["kind"] == "HorizontalPodAutoscaler"
    }
    assert {"FailedGetResourceMetric", "FailedComputeMetricsReplicas"} <= reasons


def test_min_replicas_rescale_through_the_scale_subresource(kctl: Kubectl, ns: str) -> None:
    kctl("create", "deployment", "web", "--image=busybox:1.36", "--replicas=1", "-n", ns)
    kctl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 3, "maxReplicas": 5},
    }))  # fmt: skip

    def scaled() -> bool:
        dep = json.loads(kctl("get", "deployment", "web", "-n", ns, "-o", "json").stdout)
        return bool(dep["spec"]["replicas"] == 3)

    eventually(scaled, timeout=15, interval=0.2)
    hpa = hpa_json(kctl, ns)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80  # defaulted
    events = json.loads(kctl("get", "events", "-n", ns, "-o", "json").stdout)["items"]
    assert any(
        e["reason"] == "SuccessfulRescale"
        and e["message"] == "New size: 3; reason: Current number of replicas below Spec.MinReplicas"
        and e["source"]["component"] == "horizontal-pod-autoscaler"
        for e in events
    )


def test_v1_and_v2_are_views_of_one_object(api: client.ApiClient, ns: str) -> None:
    v1 = client.AutoscalingV1Api(api)
    v2 = client.AutoscalingV2Api(api)
    body = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "mixed"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "nothing"},
            "maxReplicas": 3,
            "metrics": [
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 10}},
        },
    }  # fmt: skip
    made = v2.create_namespaced_horizontal_pod_autoscaler(ns, body)
    assert made.spec.behavior.scale_up.policies[0].type == "Pods"  # defaulted rules
    old = v1.read_namespaced_horizontal_pod_autoscaler("mixed", ns)
    assert old.spec.target_cpu_utilization_percentage == 60
    assert old.metadata.uid == made.metadata.uid
    assert "autoscaling.alpha.kubernetes.io/metrics" in old.metadata.annotations
    # a v1 read-modify-write keeps what only v2 can say
    old.spec.max_replicas = 7
    v1.replace_namespaced_horizontal_pod_autoscaler("mixed", ns, old)
    now = v2.read_namespaced_horizontal_pod_autoscaler("mixed", ns)
    assert now.spec.max_replicas == 7
    assert [m.resource.name for m in now.spec.metrics] == ["memory", "cpu"]
    assert now.spec.behavior.scale_down.stabilization_window_seconds == 10
    assert not (now.metadata.annotations or {})
    listed = v1.list_namespaced_horizontal_pod_autoscaler(ns).items
    assert [h.metadata.name for h in listed] == ["mixed"]


@pytest.mark.parametrize(
    ("version", "spec", "field", "message"),
    [
        ("v2", {"minReplicas": 5, "maxReplicas": 2}, "spec.maxReplicas",
         "Invalid value: 2: must be greater than or equal to `minReplicas`"),
        ("v2", {"maxReplicas": 2, "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]}}},
         "spec.behavior.scaleUp.policies[0].value", "Invalid value: 0: must be greater than zero"),
        ("v1", {"maxReplicas": 2, "targetCPUUtilizationPercentage": 0},
         "spec.metrics[0].resource.target.averageUtilization", "Invalid value: 0: must be greater than 0"),
        ("v1", {"maxReplicas": 2, "minReplicas": 0}, "spec.minReplicas",
         "Invalid value: 0: must be greater than or equal to 1"),
    ],
    ids=["max-below-min", "policy-value", "v1-cpu-zero", "v1-min-zero"],
)  # fmt: skip
def test_invalid_hpa_is_422_with_upstream_paths(
    api: client.ApiClient, ns: str, version: str, spec: Obj, field: str, message: str
) -> None:
    body = {
        "apiVersion": f"autoscaling/{version}",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "bad"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            **spec,
        },
    }
    with pytest.raises(ApiException) as err:
        if version == "v1":
            client.AutoscalingV1Api(api).create_namespaced_horizontal_pod_autoscaler(ns, body)
        else:
            client.AutoscalingV2Api(api).create_namespaced_horizontal_pod_autoscaler(ns, body)
    assert err.value.status == 422
    status = json.loads(err.value.body)
    assert status["reason"] == "Invalid"
    assert {"field": field, "message": message, "reason": "FieldValueInvalid"} in status["details"][
        "causes"
    ]
