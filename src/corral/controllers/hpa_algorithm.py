"""The HorizontalPodAutoscaler's replica calculation, sans I/O: replica counts from
pods, their requests and their metrics, and the choice among the metrics' proposals.

``controllers/hpa.py`` (the shell) fetches the target's ``/scale``, the selected pods and
their metrics, and calls in here; nothing here awaits, and time is an argument (``now``,
unix seconds) so tests drive it with a fake clock. The rules are Kubernetes 1.32's
(``pkg/controller/podautoscaler``: ``replica_calculator.go``, ``horizontal.go``), with
their error texts, condition reasons and messages, because users and tools read them:

```
  pods + metrics ──> group (ready / unready / missing / ignored) ──> usage ratio
        │    |1 - ratio| <= tolerance: keep;  missing pods count 100% (down) or 0% (up);
        │    unready pods count 0% on a scale-up; a flip of direction: keep
        ▼
  proposal per metric ──> the largest (combine_proposals) ──> stabilise (window of
  recommendations) ──> rate limits (behaviour policies, or the legacy 2x/4 pods) ──> clamp
```

Stabilisation and rate limits are ``hpa_behavior.py``'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from corral.api.conditions import find_condition
from corral.api.quantity import milli_value
from corral.util.clock import parse_rfc3339

Obj = Mapping[str, Any]
MAX_INT32 = 2**31 - 1
MIN_INT32 = -(2**31)


class ReplicaCalcError(Exception):
    """A replica count cannot be computed; the text is upstream's error text."""


@dataclass(frozen=True)
class PodMetric:
    """One pod's usage of a resource (milli-units) and when and over what it was measured."""

    value: int
    timestamp: float
    window: float


# --- pods ----------------------------------------------------------------------------------


def _time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None


def group_pods(
    pods: Sequence[Obj],
    metrics: Mapping[str, PodMetric],
    resource: str,
    cpu_initialization_period: float,
    delay_of_initial_readiness_status: float,
    now: float,
) -> tuple[int, set[str], set[str], set[str]]:
    """``groupPods``: (ready count, unready, missing, ignored) pod names.

    Deleted and failed pods are ignored; pending ones unready; pods without a metric
    missing. For CPU, a pod still in its initialisation period counts as unready while
    not Ready or until one metric window has passed since it became Ready; after it, only
    a pod that never became Ready (within the initial readiness delay) does.
    """
    ready = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        meta = pod.get("metadata") or {}
        name = str(meta.get("name", ""))
        phase = (pod.get("status") or {}).get("phase")
        if meta.get("deletionTimestamp") or phase == "Failed":
            ignored.add(name)
            continue
        if phase == "Pending":
            unready.add(name)
            continue
        metric = metrics.get(name)
        if metric is None:
            missing.add(name)
            continue
        if resource == "cpu":
            cond = find_condition(cast(dict[str, Any], pod), "Ready")
            start = _time((pod.get("status") or {}).get("startTime"))
            if cond is None or start is None:
                is_unready = True
            else:
                transition = _time(cond.get("lastTransitionTime")) or 0.0
                if start + cpu_initialization_period > now:
                    is_unready = (
                        cond.get("status") == "False"
                        or metric.timestamp < transition + metric.window
                    )
                else:
                    is_unready = (
                        cond.get("status") == "False"
                        and start + delay_of_initial_readiness_status > transition
                    )
            if is_unready:
                unready.add(name)
                continue
        ready += 1
    return ready, unready, missing, ignored


def _containers(pod: Obj) -> list[Obj]:
    """The regular containers and the restartable (sidecar) init containers."""
    spec = pod.get("spec") or {}
    out = [c for c in spec.get("containers") or () if isinstance(c, Mapping)]
    for c in spec.get("initContainers") or ():
        if isinstance(c, Mapping) and c.get("restartPolicy") == "Always":
            out.append(c)
    return out


def pod_requests(pods: Sequence[Obj], container: str, resource: str) -> dict[str, int]:
    """``calculatePodRequests``: each pod's summed request (milli) of ``resource`` over its
    containers (only ``container`` when given); raises on a container without one."""
    out: dict[str, int] = {}
    for pod in pods:
        name = str((pod.get("metadata") or {}).get("name", ""))
        total = 0
        for c in _containers(pod):
            if container and c.get("name") != container:
                continue
            req = ((c.get("resources") or {}).get("requests") or {}).get(resource)
            if req is None:
                raise ReplicaCalcError(
                    f"missing request for {resource} in container {c.get('name', '')} of Pod {name}"
                )
            total += milli_value(str(req))
        out[name] = total
    return out


def resource_utilization_ratio(
    metrics: Mapping[str, PodMetric], requests: Mapping[str, int], target_utilization: int
) -> tuple[float, int, int]:
    """``GetResourceUtilizationRatio``: (usage ratio, utilization %, average raw value)."""
    metrics_total = requests_total = entries = 0
    for name, metric in metrics.items():
        if name not in requests:  # extraneous metrics (missing requests are checked elsewhere)
            continue
        metrics_total += metric.value
        requests_total += requests[name]
        entries += 1
    if requests_total == 0:
        raise ReplicaCalcError("no metrics returned matched known pods")
    utilization = max(MIN_INT32, min(MAX_INT32, _go_div(metrics_total * 100, requests_total)))
    return utilization / target_utilization, utilization, _go_div(metrics_total, entries)


def metric_usage_ratio(metrics: Mapping[str, PodMetric], target_usage: int) -> tuple[float, int]:
    """``GetMetricUsageRatio``: (usage ratio, average usage)."""
    usage = _go_div(sum(m.value for m in metrics.values()), len(metrics))
    return usage / target_usage, usage


def _go_div(a: int, b: int) -> int:
    """Go's integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _ceil(x: float) -> int:
    return math.ceil(x)


@dataclass(frozen=True)
class ReplicaCalculator:
    """``ReplicaCalculator`` with the controller manager's tolerance and CPU periods."""

    tolerance: float = 0.1
    cpu_initialization_period: float = 300.0
    delay_of_initial_readiness_status: float = 30.0

    def resource_replicas(
        self,
        current: int,
        target_utilization: int,
        resource: str,
        pods: Sequence[Obj],
        metrics: Mapping[str, PodMetric],
        now: float,
        container: str = "",
    ) -> tuple[int, int, int]:
        """``GetResourceReplicas`` (Utilization target): (replicas, utilization %, raw
        average milli-value). ``metrics`` is what the metrics API answered, by pod name."""
        metrics, ready, unready, missing = self._grouped(pods, metrics, resource, now)
        requests = pod_requests(pods, container, resource)
        ratio, utilization, raw = resource_utilization_ratio(metrics, requests, target_utilization)
        up_with_unready = bool(unready) and ratio > 1.0
        if not up_with_unready and not missing:
            if abs(1.0 - ratio) <= self.tolerance:
                return current, utilization, raw
            return _ceil(ratio * ready), utilization, raw
        if missing:
            if ratio < 1.0:  # scale-down: missing pods use 100% (or the target if above)
                fallback = max(100, target_utilization)
                for name in missing:
                    metrics[name] = PodMetric(_go_div(requests[name] * fallback, 100), 0, 0)
            elif ratio > 1.0:  # scale-up: missing pods use 0%
                for name in missing:
                    metrics[name] = PodMetric(0, 0, 0)
        if up_with_unready:
            for name in unready:
                metrics[name] = PodMetric(0, 0, 0)
        new_ratio, _, _ = resource_utilization_ratio(metrics, requests, target_utilization)
        return self._rebalanced(current, ratio, new_ratio, len(metrics)), utilization, raw

    def plain_replicas(
        self,
        current: int,
        target_usage: int,
        resource: str,
        pods: Sequence[Obj],
        metrics: Mapping[str, PodMetric],
        now: float,
    ) -> tuple[int, int]:
        """``calcPlainMetricReplicas`` (AverageValue target, milli): (replicas, usage)."""
        metrics, ready, unready, missing = self._grouped(pods, metrics, resource, now)
        ratio, usage = metric_usage_ratio(metrics, target_usage)
        up_with_unready = bool(unready) and ratio > 1.0
        if not up_with_unready and not missing:
            if abs(1.0 - ratio) <= self.tolerance:
                return current, usage
            return _ceil(ratio * ready), usage
        if missing:
            for name in missing:
                metrics[name] = PodMetric(target_usage if ratio < 1.0 else 0, 0, 0)
        if up_with_unready:
            for name in unready:
                metrics[name] = PodMetric(0, 0, 0)
        new_ratio, _ = metric_usage_ratio(metrics, target_usage)
        return self._rebalanced(current, ratio, new_ratio, len(metrics)), usage

    def _grouped(
        self, pods: Sequence[Obj], metrics: Mapping[str, PodMetric], resource: str, now: float
    ) -> tuple[dict[str, PodMetric], int, set[str], set[str]]:
        """The start both calculations share: (the metrics of the pods that count, the
        ready count, the unready and the missing pod names); errors as upstream's."""
        if not pods:
            raise ReplicaCalcError("no pods returned by selector while calculating replica count")
        usable = dict(metrics)
        ready, unready, missing, ignored = group_pods(
            pods,
            usable,
            resource,
            self.cpu_initialization_period,
            self.delay_of_initial_readiness_status,
            now,
        )
        for name in ignored | unready:
            usable.pop(name, None)
        if not usable:
            raise ReplicaCalcError(
                "did not receive metrics for targeted pods (pods might be unready)"
            )
        return usable, ready, unready, missing

    def _rebalanced(self, current: int, ratio: float, new_ratio: float, count: int) -> int:
        """The end both calculations share, once missing and unready pods are filled in:
        ``current`` when the new ratio is within tolerance or flips the direction of
        ``ratio``, else ``ceil(new_ratio * count)`` unless that moves the other way."""
        if (
            abs(1.0 - new_ratio) <= self.tolerance
            or (ratio < 1.0 < new_ratio)
            or (ratio > 1.0 > new_ratio)
        ):
            return current
        replicas = _ceil(new_ratio * count)
        if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
            return current
        return replicas


# --- combining the metrics' proposals --------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    """One metric's outcome: a replica count and its description, or an error with the
    ScalingActive=False condition it sets (reason, message)."""

    replicas: int = 0
    metric: str = ""
    error: str = ""
    reason: str = ""
    message: str = ""


def combine_proposals(
    proposals: Sequence[Proposal], spec_replicas: int
) -> tuple[int, str, str, Proposal | None]:
    """``computeReplicasForMetrics``: (replicas, metric, error, failed) where ``replicas``
    is -1 when nothing can be done (every metric failed, or some failed and the rest
    would scale down); ``failed`` is the first failed proposal (its condition applies
    when replicas is -1), ``error`` the wrapped text upstream logs and records."""
    replicas, metric, first, invalid = 0, "", None, 0
    for p in proposals:
        if p.error:
            if first is None:
                first = p
            invalid += 1
            continue
        if replicas == 0 or p.replicas > replicas:
            replicas, metric = p.replicas, p.metric
    error = ""
    if first is not None:
        error = (
            f"invalid metrics ({invalid} invalid out of {len(proposals)}), "
            f"first error is: {first.error}"
        )
    if invalid >= len(proposals) or (invalid > 0 and replicas < spec_replicas):
        return -1, "", error, first
    return replicas, metric, error, first


__all__ = [
    "PodMetric",
    "Proposal",
    "ReplicaCalcError",
    "ReplicaCalculator",
    "combine_proposals",
    "group_pods",
    "pod_requests",
    "resource_utilization_ratio",
]
