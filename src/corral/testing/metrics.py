"""Reading the API server's ``apiserver_request_duration_seconds`` histogram.

Benchmarks (``bench/scheduler_perf.py``) scrape ``/metrics`` before and after a span
and quote the server's write latency over it, as Kubernetes' API call SLO reads the
same histogram: Prometheus' ``histogram_quantile`` over the difference of the buckets;
and its write mix (requests per resource) from the difference of the counts.
"""

from __future__ import annotations

import re
from typing import Any

#: the verbs of ``apiserver_request_duration_seconds`` that write
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE", "APPLY")
_DURATION_COUNT = re.compile(
    r'^apiserver_request_duration_seconds_count\{(?=[^}]*verb="(\w+)")(?=(?:[^}]*,)?resource="([^"]*)")'
    r"[^}]*\} (\S+)$",
    re.MULTILINE,
)
_DURATION_BUCKET = re.compile(
    r'^apiserver_request_duration_seconds_bucket\{(?=[^}]*verb="(\w+)")[^}]*le="([^"]+)"\} (\S+)$',
    re.MULTILINE,
)


def write_buckets(metrics_text: str) -> dict[float, float]:
    """The server's ``apiserver_request_duration_seconds`` buckets (upper bound ->
    cumulative count) summed over every series of a write verb."""
    out: dict[float, float] = {}
    for verb, le, count in _DURATION_BUCKET.findall(metrics_text):
        if verb in WRITE_VERBS:
            bound = float("inf") if le == "+Inf" else float(le)
            out[bound] = out.get(bound, 0.0) + float(count)
    return out


def write_counts(before: str, after: str) -> dict[str, int]:
    """Write requests per resource (subresources included) between two ``/metrics``
    texts: what the server was asked to write, read without a watch of its own."""
    out: dict[str, int] = {}
    for sign, text in ((-1, before), (1, after)):
        for verb, resource, count in _DURATION_COUNT.findall(text):
            if verb in WRITE_VERBS:
                out[resource] = out.get(resource, 0) + sign * int(float(count))
    return {k: v for k, v in sorted(out.items()) if v}


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus' ``histogram_quantile`` over cumulative ``buckets`` (+Inf included):
    linear interpolation inside the bucket the rank falls in (its lower bound 0 for the
    first bucket); the highest finite bound when the rank falls in +Inf; NaN when
    empty."""
    bounds = sorted(buckets)
    if not bounds or bounds[-1] != float("inf") or buckets[bounds[-1]] == 0:
        return float("nan")
    rank = q * buckets[bounds[-1]]
    prev_bound, prev_count = 0.0, 0.0
    for i, bound in enumerate(bounds):
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return bounds[-2] if i > 0 else float("nan")
            if i == 0 and bound <= 0:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return float("nan")


def write_latency(before: str, after: str) -> dict[str, Any]:
    """p50/p99 (ms) and count of the server's writes between two ``/metrics`` texts."""
    b0, b1 = write_buckets(before), write_buckets(after)
    span = {le: b1[le] - b0.get(le, 0.0) for le in b1}
    p50, p99 = histogram_quantile(0.5, span), histogram_quantile(0.99, span)
    return {
        "requests": int(span.get(float("inf"), 0)),
        "p50_ms": None if p50 != p50 else round(p50 * 1000, 1),
        "p99_ms": None if p99 != p99 else round(p99 * 1000, 1),
        "verbs": "|".join(WRITE_VERBS),
    }
