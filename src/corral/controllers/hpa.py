"""The HorizontalPodAutoscaler controller (``--controllers`` name ``horizontalpodautoscaling``).

kube-controller-manager's HPA controller as an API client: every HPA is reconciled once
per ``--horizontal-pod-autoscaler-sync-period`` (15 s; a change to the HPA is picked up
at the next period, as upstream's rate-limited queue does). One reconcile:

```
scaleTargetRef ──discovery──> resource ──GET .../scale──> replicas, status.selector
   (failure: AbleToScale=False FailedGetScale + event)
pods of the selector (informer) + GET /apis/metrics.k8s.io/v1beta1/namespaces/NS/pods
   ──hpa_algorithm──> a proposal per metric ──> the largest ──> stabilised, rate-limited,
   clamped to min/max ──> PUT .../scale (SuccessfulRescale / FailedRescale)
status (currentReplicas, desiredReplicas, currentMetrics, lastScaleTime, conditions
AbleToScale / ScalingActive / ScalingLimited) written through /status when it changed
```

The decisions are sans-I/O (``hpa_algorithm``: replica counts; ``hpa_behavior``:
stabilisation and rate limits); ``hpa_metrics`` resolves targets and reads the metrics
API. This module does the rest of the I/O, keeps each HPA's recommendation and
scale-event history in memory (as upstream does) and records
events under the component ``horizontal-pod-autoscaler``, with upstream's reasons and
texts. Only Resource and ContainerResource metrics have a source (the resource metrics
API); Pods, Object and External metrics report that no custom or external metrics API
is served.
"""

from __future__ import annotations

import copy
import logging
from fractions import Fraction
from typing import Any, ClassVar

from corral.api.errors import StatusError
from corral.api.quantity import DECIMAL_SI, format_quantity, milli_value
from corral.api.selectors import LabelSelector, SelectorError, try_parse_label_selector
from corral.client.informer import Informer, key_of
from corral.client.rest import PODS, Client, Resource
from corral.controllers.base import (
    NAMESPACE_INDEX,
    Controller,
    InformerFactory,
    clone,
    namespace_index,
)
from corral.controllers.hpa_algorithm import (
    Proposal,
    ReplicaCalcError,
    ReplicaCalculator,
    combine_proposals,
)
from corral.controllers.hpa_behavior import (
    Condition,
    History,
    effective_behavior,
    normalize_desired_replicas,
    normalize_with_behaviors,
    set_condition,
    store_scale_event,
)
from corral.controllers.hpa_metrics import MappingError, ScaleTargets, fetch_pod_metrics
from corral.util.clock import Clock, rfc3339

log = logging.getLogger("corral.controllers.hpa")

HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers")

SYNC_PERIOD = 15.0
TOLERANCE = 0.1
DOWNSCALE_STABILIZATION = 300.0
CPU_INITIALIZATION_PERIOD = 300.0
INITIAL_READINESS_DELAY = 30.0

Obj = dict[str, Any]


def _quantity(milli: int) -> str:
    """``resource.NewMilliQuantity(milli, DecimalSI).String()``."""
    return format_quantity(Fraction(milli, 1000), DECIMAL_SI)


class HorizontalPodAutoscalerController(Controller):
    name: ClassVar[str] = "horizontalpodautoscaling"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 4,
        clock: Clock | None = None,
        sync_period: float = SYNC_PERIOD,
        tolerance: float = TOLERANCE,
        downscale_stabilization: float = DOWNSCALE_STABILIZATION,
        cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD,
        initial_readiness_delay: float = INITIAL_READINESS_DELAY,
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        self.sync_period = sync_period
        self.downscale_stabilization = downscale_stabilization
        self.calc = ReplicaCalculator(tolerance, cpu_initialization_period, initial_readiness_delay)
        self.hpas: Informer = factory.informer(HPAS)
        self.pods: Informer = factory.informer(PODS)
        self._ns_index = NAMESPACE_INDEX  # shared with other controllers (base.py)
        self.pods.add_index(self._ns_index, namespace_index)
        self.hpas.add_handler(self._on_hpa)
        self.histories: dict[str, History] = {}
        #: each HPA's last parsed selector, to find pods claimed by two HPAs
        self.selectors: dict[str, LabelSelector | None] = {}
        self.targets = ScaleTargets(client, self.clock)

    @property
    def component(self) -> str:
        return "horizontal-pod-autoscaler"

    def _on_hpa(self, type_: str, obj: Obj, old: Obj | None) -> None:
        key = key_of(obj)
        if type_ == "DELETED":
            self.selectors.pop(key, None)
            self.histories.pop(key, None)
            return
        self.selectors.setdefault(key, None)
        # as upstream: every request waits the resync period, so an HPA is reconciled
        # once per period whatever its own status writes do
        self.queue.add_after(key, self.sync_period)

    # --- reconcile -----------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        cached = self.hpas.get(key)
        if cached is None:
            self.histories.pop(key, None)
            self.selectors.pop(key, None)
            return
        self.queue.add_after(key, self.sync_period)
        hpa = clone(cached)
        hpa.setdefault("apiVersion", "autoscaling/v2")
        hpa.setdefault("kind", "HorizontalPodAutoscaler")
        original = copy.deepcopy(hpa.get("status") or {})
        await Reconcile(self, key, hpa, original).run()

    def pods_of(self, namespace: str, selector: LabelSelector) -> list[Obj]:
        pods = [
            p
            for p in self.pods.by_index(self._ns_index, namespace)
            if selector.matches((p.get("metadata") or {}).get("labels") or {})
        ]
        return sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name", "")))


class Reconcile:
    """One ``reconcileAutoscaler`` of one HPA (a copy: the cache is never mutated)."""

    def __init__(
        self, ctl: HorizontalPodAutoscalerController, key: str, hpa: Obj, original: Obj
    ) -> None:
        self.ctl = ctl
        self.key = key
        self.hpa = hpa
        self.original = original
        self.spec: Obj = hpa.get("spec") or {}
        self.status: Obj = hpa.setdefault("status", {})
        self.ns = str((hpa.get("metadata") or {}).get("namespace", ""))
        self.now = ctl.clock.now()

    # --- helpers ----------------------------------------------------------------------------
    def condition(self, ctype: str, status: str, reason: str, message: str) -> None:
        conditions = self.status.setdefault("conditions", [])
        set_condition(conditions, ctype, status, reason, message, rfc3339(self.now))

    async def event(self, type_: str, reason: str, message: str) -> None:
        await self.ctl.recorder.event(self.hpa, type_, reason, message)

    async def write_status(self) -> None:
        if self.status == self.original:
            return
        try:
            await self.ctl.client.update(HPAS, self.hpa, self.ns, sub="status")
        except StatusError as e:
            await self.event("Warning", "FailedUpdateStatus", e.message)
            raise

    def set_status(
        self, current: int, desired: int, metrics: list[Obj] | None, rescaled: bool
    ) -> None:
        """``setStatus``: the status rebuilt, conditions and lastScaleTime kept."""
        old = self.status
        status: Obj = {"currentReplicas": current, "desiredReplicas": desired}
        if rescaled:
            status["lastScaleTime"] = rfc3339(self.now)
        elif old.get("lastScaleTime"):
            status["lastScaleTime"] = old["lastScaleTime"]
        if metrics:
            status["currentMetrics"] = metrics
        if old.get("conditions"):
            status["conditions"] = old["conditions"]
        if not status["currentReplicas"]:
            status.pop("currentReplicas")  # omitempty in v2
        self.hpa["status"] = self.status = status

    async def failed_scale(self, message: str) -> None:
        await self.event("Warning", "FailedGetScale", message)
        self.condition(
            "AbleToScale",
            "False",
            "FailedGetScale",
            f"the HPA controller was unable to get the target's current scale: {message}",
        )
        await self.write_status()

    # --- the steps ----------------------------------------------------------------------------
    async def run(self) -> None:
        ref = self.spec.get("scaleTargetRef") or {}
        kind, name = str(ref.get("kind", "")), str(ref.get("name", ""))
        try:
            resource = await self.ctl.targets.resolve(str(ref.get("apiVersion") or "v1"), kind)
            scale = await self.ctl.client.request("GET", resource.path(self.ns, name, "scale"))
        except MappingError as e:
            await self.failed_scale(str(e))
            return
        except StatusError as e:
            await self.failed_scale(e.message)
            return
        self.condition(
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        )
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        history = self.ctl.histories.setdefault(self.key, History())
        history.record_initial(current, self.now)
        min_r = self.spec.get("minReplicas")
        min_replicas = 1 if min_r is None else int(min_r)
        max_replicas = int(self.spec.get("maxReplicas") or 0)
        metric_statuses: list[Obj] | None = None
        reason, desired, rescale = "", 0, True
        if current == 0 and min_replicas != 0:
            rescale = False
            self.condition(
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            )
        elif current > max_replicas:
            reason, desired = "Current number of replicas above Spec.MaxReplicas", max_replicas
        elif current < min_replicas:
            reason, desired = "Current number of replicas below Spec.MinReplicas", min_replicas
        else:
            proposed, metric, metric_statuses, error = await self.compute_metrics(scale, current)
            if proposed == -1:
                self.set_status(
                    current, int(self.status.get("desiredReplicas") or 0), metric_statuses, False
                )
                await self.write_status()
                await self.event("Warning", "FailedComputeMetricsReplicas", error)
                return
            if error:
                log.info("hpa %s: %s", self.key, error)
            desired = max(desired, proposed)
            if desired > current:
                reason = f"{metric} above target"
            if desired < current:
                reason = "All metrics below target"
            behavior = self.spec.get("behavior")
            conditions: list[Condition]
            if behavior is None:
                desired, conditions = normalize_desired_replicas(
                    history, self.now, current, desired, min_replicas, max_replicas,
                    self.ctl.downscale_stabilization,
                )  # fmt: skip
            else:
                eff = effective_behavior(behavior, self.ctl.downscale_stabilization) or {}
                desired, conditions = normalize_with_behaviors(
                    history, self.now, current, desired, min_replicas, max_replicas, eff
                )
            for c in conditions:
                self.condition(*c)
            rescale = desired != current
        if rescale:
            scale.setdefault("spec", {})["replicas"] = desired
            ref_resource = await self.ctl.targets.resolve(str(ref.get("apiVersion") or "v1"), kind)
            try:
                await self.ctl.client.request(
                    "PUT", ref_resource.path(self.ns, name, "scale"), body=scale
                )
            except StatusError as e:
                await self.event(
                    "Warning",
                    "FailedRescale",
                    f"New size: {desired}; reason: {reason}; error: {e.message}",
                )
                self.condition(
                    "AbleToScale",
                    "False",
                    "FailedUpdateScale",
                    f"the HPA controller was unable to update the target scale: {e.message}",
                )
                self.set_status(
                    current, int(self.status.get("desiredReplicas") or 0), metric_statuses, False
                )
                await self.write_status()
                return
            self.condition(
                "AbleToScale",
                "True",
                "SucceededRescale",
                f"the HPA controller was able to update the target scale to {desired}",
            )
            await self.event(
                "Normal", "SuccessfulRescale", f"New size: {desired}; reason: {reason}"
            )
            store_scale_event(history, self.spec.get("behavior"), current, desired, self.now)
            log.info("hpa %s: rescaled %d -> %d (%s)", self.key, current, desired, reason)
        else:
            desired = current
        self.set_status(current, desired, metric_statuses, rescale)
        await self.write_status()

    async def compute_metrics(
        self, scale: Obj, spec_replicas: int
    ) -> tuple[int, str, list[Obj] | None, str]:
        """``computeReplicasForMetrics``: (replicas or -1, metric, statuses, error)."""
        selector = await self.parse_selector(str((scale.get("status") or {}).get("selector") or ""))
        if isinstance(selector, str):
            return -1, "", None, selector
        specs = [m for m in self.spec.get("metrics") or () if isinstance(m, dict)]
        statuses: list[Obj] = [{"type": ""} for _ in specs]
        proposals: list[Proposal] = []
        sel_text = str((scale.get("status") or {}).get("selector") or "")
        for i, spec in enumerate(specs):
            p, st = await self.compute_metric(spec, spec_replicas, selector, sel_text)
            if st is not None:
                statuses[i] = st
            if p.error:
                await self.event("Warning", p.reason, p.message)
            proposals.append(p)
        replicas, metric, error, failed = combine_proposals(proposals, spec_replicas)
        if replicas == -1:
            if failed is not None:
                self.condition(
                    "ScalingActive",
                    "False",
                    failed.reason,
                    f"the HPA was unable to compute the replica count: {failed.message}",
                )
            return -1, "", statuses, error
        self.condition(
            "ScalingActive",
            "True",
            "ValidMetricFound",
            f"the HPA was able to successfully calculate a replica count from {metric}",
        )
        return replicas, metric, statuses, error

    async def parse_selector(self, text: str) -> LabelSelector | str:
        """``validateAndParseSelector``: the selector, or the error text (conditions set)."""
        if not text:
            await self.event("Warning", "SelectorRequired", "selector is required")
            self.condition(
                "ScalingActive",
                "False",
                "InvalidSelector",
                "the HPA target's scale is missing a selector",
            )
            return "selector is required"
        try:
            selector = try_parse_label_selector(text)
        except SelectorError as e:
            msg = f"couldn't convert selector into a corresponding internal selector object: {e}"
            await self.event("Warning", "InvalidSelector", msg)
            self.condition("ScalingActive", "False", "InvalidSelector", msg)
            return msg
        self.ctl.selectors[self.key] = selector
        pods = self.ctl.pods_of(self.ns, selector)
        owners = set()
        for other, sel in self.ctl.selectors.items():
            if sel is None or not other.startswith(f"{self.ns}/"):
                continue
            if any(sel.matches((p.get("metadata") or {}).get("labels") or {}) for p in pods):
                owners.add(other)
        if len(owners) > 1:
            keys = " ".join("{" + k.split("/", 1)[1] + " " + self.ns + "}" for k in sorted(owners))
            msg = f"pods by selector {text} are controlled by multiple HPAs: [{keys}]"
            await self.event("Warning", "AmbiguousSelector", msg)
            self.condition("ScalingActive", "False", "AmbiguousSelector", msg)
            return msg
        return selector

    async def compute_metric(
        self, spec: Obj, replicas: int, selector: LabelSelector, sel_text: str
    ) -> tuple[Proposal, Obj | None]:
        """``computeReplicasForMetric`` for one metric: its proposal and status."""
        mtype = spec.get("type")
        if mtype in ("Resource", "ContainerResource"):
            field = "resource" if mtype == "Resource" else "containerResource"
            src = spec.get(field) or {}
            res, container = str(src.get("name", "")), str(src.get("container") or "")
            reason = (
                "FailedGetResourceMetric"
                if mtype == "Resource"
                else "FailedGetContainerResourceMetric"
            )
            try:
                value, metric_name = await self.resource_proposal(
                    src.get("target") or {}, res, container, replicas, selector, sel_text
                )
            except ReplicaCalcError as e:
                what = f"{res} resource" if mtype == "Resource" else f"{container} container"
                return Proposal(
                    error=f"failed to get {what} metric value: {e}", reason=reason, message=str(e)
                ), None
            count, current = value
            status = {"type": mtype, field: {"name": res, "current": current}}
            if container:
                status[field] = {"name": res, "container": container, "current": current}
            if mtype == "ContainerResource":
                metric_name = metric_name.replace(
                    " resource utilization", " container resource utilization"
                )
            return Proposal(replicas=count, metric=metric_name), status
        source = {"Pods": ("pods", "FailedGetPodsMetric", "custom"),
                  "Object": ("object", "FailedGetObjectMetric", "custom"),
                  "External": ("external", "FailedGetExternalMetric", "external")}.get(str(mtype))  # fmt: skip
        if source is None:
            err = f'unknown metric source type "{mtype}"'
            return Proposal(error=err, reason="InvalidMetricSourceType", message=err), None
        field, reason, api = source
        metric = ((spec.get(field) or {}).get("metric") or {}).get("name", "")
        group = "custom.metrics.k8s.io" if api == "custom" else "external.metrics.k8s.io"
        err = (
            f"unable to get metric {metric}: unable to fetch metrics from {api} metrics API: "
            f"no {api} metrics API ({group}) is served"
        )
        what = {"pods": "pods metric value", "object": "object metric value"}.get(field, "")
        wrapped = (
            f"failed to get {what}: {err}"
            if what
            else f"failed to get {metric} external metric value: {err}"
        )
        return Proposal(error=wrapped, reason=reason, message=err), None

    async def resource_proposal(
        self,
        target: Obj,
        res: str,
        container: str,
        replicas: int,
        selector: LabelSelector,
        sel_text: str,
    ) -> tuple[tuple[int, Obj], str]:
        """``computeStatusForResourceMetricGeneric``: ((replicas, current), metric name)."""
        calc, now = self.ctl.calc, self.now
        if target.get("averageValue") is not None:
            try:
                metrics = await fetch_pod_metrics(
                    self.ctl.client, self.ns, sel_text, res, container
                )
            except ReplicaCalcError as e:
                raise ReplicaCalcError(
                    f"failed to get {res} usage: unable to get metrics for resource {res}: {e}"
                ) from None
            pods = self.ctl.pods_of(self.ns, selector)
            try:
                count, usage = calc.plain_replicas(
                    replicas, milli_value(str(target["averageValue"])), res, pods, metrics, now
                )
            except ReplicaCalcError as e:
                raise ReplicaCalcError(f"failed to get {res} usage: {e}") from None
            return (count, {"averageValue": _quantity(usage)}), f"{res} resource"
        util_target = target.get("averageUtilization")
        if util_target is None:
            raise ReplicaCalcError(
                "invalid resource metric source: neither an average utilization target nor "
                "an average value (usage) target was set"
            )
        try:
            metrics = await fetch_pod_metrics(self.ctl.client, self.ns, sel_text, res, container)
        except ReplicaCalcError as e:
            raise ReplicaCalcError(
                f"failed to get {res} utilization: unable to get metrics for resource {res}: {e}"
            ) from None
        pods = self.ctl.pods_of(self.ns, selector)
        try:
            count, util, raw = calc.resource_replicas(
                replicas, int(util_target), res, pods, metrics, now, container
            )
        except ReplicaCalcError as e:
            raise ReplicaCalcError(f"failed to get {res} utilization: {e}") from None
        current = {"averageUtilization": util, "averageValue": _quantity(raw)}
        return (count, current), f"{res} resource utilization (percentage of request)"


__all__ = ["HPAS", "HorizontalPodAutoscalerController"]
