"""The HPA controller's ``sync`` against the in-memory ``FakeClient`` (test_job.py), with
discovery, the target's ``/scale`` and the metrics API answered here, and a fake clock:
rescales, stabilisation over time, and the conditions and events of each failure."""

from __future__ import annotations

from typing import Any, cast

from test_job import FakeClient, FakeClock

from corral.api.errors import StatusError, not_found
from corral.client.rest import PODS, Client
from corral.controllers.base import InformerFactory
from corral.controllers.hpa import HPAS, HorizontalPodAutoscalerController
from corral.util.clock import rfc3339

Obj = dict[str, Any]
SCALE_PATH = "/apis/apps/v1/namespaces/ns/deployments/web/scale"
METRICS = "/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods"


class MetricsClient(FakeClient):
    """FakeClient plus the raw requests the HPA controller makes."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.replicas: int | None = 2  # None: the Deployment does not exist
        self.usage: dict[str, str] | None = {}  # None: no metrics API
        self.requests: list[tuple[str, str]] = []

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        self.requests.append((method, path))
        if path == "/apis/apps":
            return {"preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}
        if path == "/apis/apps/v1":
            return {"resources": [
                {"name": "deployments", "kind": "Deployment", "namespaced": True},
                {"name": "deployments/scale", "kind": "Scale", "namespaced": True},
            ]}  # fmt: skip
        if path == SCALE_PATH:
            if self.replicas is None:
                raise not_found("deployments", "apps", "web")
            if method == "PUT":
                self.replicas = kw["body"]["spec"]["replicas"]
            return {
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {"name": "web", "namespace": "ns"},
                "spec": {"replicas": self.replicas},
                "status": {"replicas": self.replicas, "selector": "app=web"},
            }
        if path == METRICS:
            if self.usage is None:
                raise StatusError(
                    404, "NotFound", "the server could not find the requested resource"
                )
            return {"items": [
                {"metadata": {"name": n, "namespace": "ns"}, "timestamp": rfc3339(self.clock.now() - 5),
                 "window": "15s", "containers": [{"name": "app", "usage": {"cpu": u, "memory": "10Mi"}}]}
                for n, u in self.usage.items()
            ]}  # fmt: skip
        raise not_found("", "", path)


class Harness:
    def __init__(self, **hpa_spec: Any) -> None:
        self.clock = FakeClock()
        self.client = MetricsClient(self.clock)
        factory = InformerFactory(cast(Client, self.client))
        self.ctrl = HorizontalPodAutoscalerController(
            cast(Client, self.client), factory, clock=self.clock, downscale_stabilization=60
        )
        self.client.attach(factory, HPAS, PODS)
        spec = {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 10,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
            **hpa_spec,
        }  # fmt: skip
        self.client.seed(HPAS, {"metadata": {"name": "web", "namespace": "ns"}, "spec": spec})

    def pods(self, *usages: str, cpu: str | None = "100m") -> None:
        """Running, long-Ready pods web-0.. with these CPU usages (and requests)."""
        self.client.usage = {}
        for i, u in enumerate(usages):
            req = {"requests": {"cpu": cpu}} if cpu else {}
            long_ago = rfc3339(self.clock.now() - 3600)
            self.client.seed(PODS, {
                "metadata": {"name": f"web-{i}", "namespace": "ns", "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "resources": req}]},
                "status": {"phase": "Running", "startTime": long_ago, "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": long_ago}]},
            })  # fmt: skip
            self.client.usage[f"web-{i}"] = u

    async def sync(self) -> None:
        self.client.events.clear()
        try:
            await self.ctrl.sync("ns/web")
        finally:
            self.ctrl.queue.close()

    @property
    def status(self) -> Obj:
        return cast(
            Obj, self.client.objects[("horizontalpodautoscalers", "ns", "web")].get("status") or {}
        )

    def condition(self, ctype: str) -> tuple[str, str, str]:
        c = next(c for c in self.status["conditions"] if c["type"] == ctype)
        return c["status"], c["reason"], c["message"]


async def test_scales_up_within_the_legacy_rate_limit() -> None:
    h = Harness()
    h.pods("200m", "200m")  # 200% of the request against a 50% target: 8 wanted
    await h.sync()
    assert h.client.replicas == 4  # max(2 * 2, 4)
    assert h.client.events == [
        (
            "SuccessfulRescale",
            "New size: 4; reason: cpu resource utilization (percentage of request) above target",
        )
    ]
    assert h.status["currentReplicas"] == 2 and h.status["desiredReplicas"] == 4
    assert h.status["lastScaleTime"] == rfc3339(h.clock.now())
    assert h.status["currentMetrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "current": {"averageUtilization": 200, "averageValue": "200m"},
            },
        }
    ]
    assert h.condition("AbleToScale")[:2] == ("True", "SucceededRescale")
    assert h.condition("ScalingActive") == (
        "True", "ValidMetricFound",
        "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)",
    )  # fmt: skip
    assert h.condition("ScalingLimited")[:2] == ("True", "ScaleUpLimit")


async def test_scale_down_waits_for_the_stabilization_window() -> None:
    h = Harness()
    h.client.replicas = 4
    h.pods("5m", "5m", "5m", "5m")
    await h.sync()
    assert h.client.replicas == 4  # the current size is a recommendation of the last minute
    assert h.condition("AbleToScale")[:2] == ("True", "ScaleDownStabilized")
    assert h.status["desiredReplicas"] == 4
    h.clock.advance(61)
    await h.sync()
    assert h.client.replicas == 1
    assert h.client.events == [
        ("SuccessfulRescale", "New size: 1; reason: All metrics below target")
    ]


async def test_within_tolerance_nothing_is_written_twice() -> None:
    h = Harness()
    h.pods("52m", "52m")
    await h.sync()
    assert h.client.replicas == 2
    writes = [a for a in h.client.actions if a[0] == "update/status"]
    assert len(writes) == 1
    await h.sync()  # same status: no write
    assert [a for a in h.client.actions if a[0] == "update/status"] == writes


async def test_behavior_policies_limit_the_step() -> None:
    h = Harness(behavior={
        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
        "scaleDown": {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
    })  # fmt: skip
    h.pods("200m", "200m")
    await h.sync()
    assert h.client.replicas == 3
    h.clock.advance(30)  # within the policy's minute: no more
    await h.sync()
    assert h.client.replicas == 3
    assert h.condition("ScalingLimited")[:2] == ("True", "ScaleUpLimit")
    h.clock.advance(31)
    await h.sync()
    assert h.client.replicas == 4


async def test_missing_cpu_requests_set_scaling_active_false() -> None:
    h = Harness()
    h.pods("50m", "50m", cpu=None)
    await h.sync()
    message = "failed to get cpu utilization: missing request for cpu in container app of Pod web-0"
    assert h.condition("ScalingActive") == (
        "False", "FailedGetResourceMetric", f"the HPA was unable to compute the replica count: {message}"
    )  # fmt: skip
    assert h.client.events == [
        ("FailedGetResourceMetric", message),
        ("FailedComputeMetricsReplicas",
         f"invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: {message}"),
    ]  # fmt: skip
    assert h.client.replicas == 2
    assert h.status["currentMetrics"] == [{"type": ""}]


async def test_no_metrics_api() -> None:
    h = Harness()
    h.pods("50m")
    h.client.usage = None
    await h.sync()
    assert h.condition("ScalingActive")[2] == (
        "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get "
        "metrics for resource cpu: unable to fetch metrics from resource metrics API: the server could "
        "not find the requested resource (get pods.metrics.k8s.io)"
    )


async def test_missing_target_and_unknown_kind_fail_get_scale() -> None:
    h = Harness()
    h.client.replicas = None
    await h.sync()
    assert h.condition("AbleToScale") == (
        "False", "FailedGetScale",
        'the HPA controller was unable to get the target\'s current scale: deployments.apps "web" not found',
    )  # fmt: skip
    assert h.client.events == [("FailedGetScale", 'deployments.apps "web" not found')]
    h2 = Harness(scaleTargetRef={"apiVersion": "apps/v1", "kind": "Foo", "name": "web"})
    await h2.sync()
    assert h2.condition("AbleToScale")[2].endswith('no matches for kind "Foo" in group "apps"')


async def test_zero_replicas_disable_scaling_and_bounds_apply_first() -> None:
    h = Harness()
    h.client.replicas = 0
    await h.sync()
    assert h.condition("ScalingActive")[:2] == ("False", "ScalingDisabled")
    h = Harness(minReplicas=3)
    h.pods("50m")
    h.client.replicas = 1
    await h.sync()
    assert h.client.replicas == 3
    assert h.client.events == [
        (
            "SuccessfulRescale",
            "New size: 3; reason: Current number of replicas below Spec.MinReplicas",
        )
    ]
