"""Scrapes in, NodeMetrics and PodMetrics out: the pure half of the metrics server.

``parse_scrape`` reads one agent's ``/metrics/resource`` text (the kubelet's metric
names, ``agent/resource_metrics.py``) with prometheus_client's text parser into a
``NodeScrape``. ``MetricsStore`` keeps the last two points of each node and container, as
metrics-server's storage does, and answers usage as metrics-server computes it: memory is
the last working set; CPU is the rate of the cumulative counter between the two points
(nanocores), with ``window`` the time between them. A node or container with a single
point, a counter that went backwards or a container whose start time changed (it
restarted) has no usage until its next scrape; a pod is only reported when every one of
its scraped containers has usage. ``node_metrics``/``pod_metrics`` build the JSON objects
exactly as metrics-server serves them (``usage.cpu`` in ``n``, ``memory`` in ``Ki`` where
whole, ``window`` as a Go duration).

Called by ``metrics/server.py``; no I/O, unit-tested in tests/unit/metrics/.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from corral.api.quantity import BINARY_SI, DECIMAL_SI, format_quantity
from corral.util.clock import rfc3339

Obj = dict[str, Any]
API_VERSION = "metrics.k8s.io/v1beta1"


@dataclass(frozen=True)
class Point:
    """One reading: cumulative CPU seconds, working set bytes, when (unix seconds)."""

    cpu_seconds: float
    memory_bytes: int
    timestamp: float
    start_time: float = 0.0  # containers: when the container started


@dataclass
class NodeScrape:
    node: Point | None = None
    #: (namespace, pod, container) -> point
    containers: dict[tuple[str, str, str], Point] = field(default_factory=dict)


@dataclass(frozen=True)
class Usage:
    """Usage over the window ending at ``timestamp``."""

    nanocores: int
    memory_bytes: int
    timestamp: float
    window: float


def parse_scrape(text: str, now: float) -> NodeScrape:
    """The node and container points of one ``/metrics/resource`` answer; samples with no
    timestamp are taken at ``now``. Raises ``ValueError`` on text that is not the format."""
    out = NodeScrape()
    node_cpu: tuple[float, float] | None = None
    node_mem: tuple[float, float] | None = None
    cpu: dict[tuple[str, str, str], tuple[float, float]] = {}
    mem: dict[tuple[str, str, str], tuple[float, float]] = {}
    start: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            ts = float(s.timestamp) if s.timestamp is not None else now
            v = float(s.value)
            if math.isnan(v):
                continue
            key = (
                s.labels.get("namespace", ""),
                s.labels.get("pod", ""),
                s.labels.get("container", ""),
            )
            if s.name == "node_cpu_usage_seconds_total":
                node_cpu = (v, ts)
            elif s.name == "node_memory_working_set_bytes":
                node_mem = (v, ts)
            elif s.name == "container_cpu_usage_seconds_total":
                cpu[key] = (v, ts)
            elif s.name == "container_memory_working_set_bytes":
                mem[key] = (v, ts)
            elif s.name == "container_start_time_seconds":
                start[key] = v
    if node_cpu is not None and node_mem is not None:
        out.node = Point(node_cpu[0], int(node_mem[0]), node_cpu[1])
    for key, (c, ts) in cpu.items():
        if key in mem:
            out.containers[key] = Point(c, int(mem[key][0]), ts, start.get(key, 0.0))
    return out


def rate(prev: Point, last: Point) -> Usage | None:
    """Usage between two points of one counter; None when it cannot be told (one point
    older than the other the wrong way, a counter reset, a restarted container)."""
    window = last.timestamp - prev.timestamp
    if window <= 0 or last.cpu_seconds < prev.cpu_seconds:
        return None
    if last.start_time != prev.start_time:
        return None
    nanocores = round((last.cpu_seconds - prev.cpu_seconds) / window * 1e9)
    return Usage(nanocores, last.memory_bytes, last.timestamp, window)


class MetricsStore:
    """The last two points of every node and container, replaced scrape by scrape."""

    def __init__(self) -> None:
        self.nodes: dict[str, tuple[Point | None, Point]] = {}
        #: (namespace, pod) -> container -> (prev, last)
        self.pods: dict[tuple[str, str], dict[str, tuple[Point | None, Point]]] = {}
        self._pods_of: dict[str, set[tuple[str, str]]] = {}  # node -> its pods' keys

    def store(self, node: str, scrape: NodeScrape) -> None:
        if scrape.node is not None:
            old = self.nodes.get(node)
            self.nodes[node] = (_prev(old, scrape.node), scrape.node)
        pods: dict[tuple[str, str], dict[str, tuple[Point | None, Point]]] = {}
        for (ns, pod, container), point in scrape.containers.items():
            before = self.pods.get((ns, pod), {}).get(container)
            pods.setdefault((ns, pod), {})[container] = (_prev(before, point), point)
        for key in self._pods_of.get(node, set()) - pods.keys():
            self.pods.pop(key, None)
        self.pods.update(pods)
        self._pods_of[node] = set(pods)

    def forget(self, node: str) -> None:
        self.nodes.pop(node, None)
        for key in self._pods_of.pop(node, set()):
            self.pods.pop(key, None)

    def node_usage(self, node: str) -> Usage | None:
        pair = self.nodes.get(node)
        if pair is None or pair[0] is None:
            return None
        return rate(pair[0], pair[1])

    def pod_usage(self, namespace: str, pod: str) -> dict[str, Usage] | None:
        """Container name -> usage, or None unless every container has one."""
        containers = self.pods.get((namespace, pod))
        if not containers:
            return None
        out: dict[str, Usage] = {}
        for name, (prev, last) in containers.items():
            u = rate(prev, last) if prev is not None else None
            if u is None:
                return None
            out[name] = u
        return out


def _prev(old: tuple[Point | None, Point] | None, new: Point) -> Point | None:
    """The point to rate ``new`` against: the last one, unless it is not older."""
    if old is None:
        return None
    last = old[1]
    if last.timestamp >= new.timestamp:  # the agent answered the same sample again
        return old[0]
    return last


# --- the JSON metrics-server answers ------------------------------------------------------------


def cpu_quantity(nanocores: int) -> str:
    """``resource.NewScaledQuantity(n, resource.Nano)`` as it serialises: ``12345n``,
    ``5m``, ``0``."""
    return format_quantity(Fraction(nanocores, 1_000_000_000), DECIMAL_SI)


def memory_quantity(nbytes: int) -> str:
    """``resource.NewQuantity(b, resource.BinarySI)``: ``10240Ki``, ``1Mi``, ``1000``."""
    return format_quantity(nbytes, BINARY_SI)


def go_duration(seconds: float) -> str:
    """``time.Duration.String()``: ``15s``, ``1.5s``, ``2m0.001s``, ``0s``."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    neg = ns < 0
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, div in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= div:
                return ("-" if neg else "") + _frac(ns, div) + unit
    h, rest = divmod(ns, 3_600_000_000_000)
    m, rest = divmod(rest, 60_000_000_000)
    out = ""
    if h:
        out += f"{h}h"
    if h or m:
        out += f"{m}m"
    out += _frac(rest, 1_000_000_000) + "s"
    return ("-" if neg else "") + out


def _frac(value: int, div: int) -> str:
    whole, frac = divmod(value, div)
    if not frac:
        return str(whole)
    width = len(str(div)) - 1
    return f"{whole}.{str(frac).rjust(width, '0').rstrip('0')}"


def _usage(u: Usage) -> Obj:
    return {"cpu": cpu_quantity(u.nanocores), "memory": memory_quantity(u.memory_bytes)}


def node_metrics(node: Obj, u: Usage, now: float) -> Obj:
    """A NodeMetrics object for ``node`` (its labels copied, as metrics-server does)."""
    meta: Obj = {"name": node["metadata"]["name"], "creationTimestamp": rfc3339(now)}
    if node["metadata"].get("labels"):
        meta["labels"] = node["metadata"]["labels"]
    return {
        "kind": "NodeMetrics",
        "apiVersion": API_VERSION,
        "metadata": meta,
        "timestamp": rfc3339(u.timestamp),
        "window": go_duration(u.window),
        "usage": _usage(u),
    }


def pod_metrics(pod: Obj, containers: dict[str, Usage], now: float) -> Obj:
    """A PodMetrics object; timestamp and window of its earliest container sample."""
    first = min(containers.values(), key=lambda u: u.timestamp)
    meta: Obj = {
        "name": pod["metadata"]["name"],
        "namespace": pod["metadata"].get("namespace", ""),
        "creationTimestamp": rfc3339(now),
    }
    if pod["metadata"].get("labels"):
        meta["labels"] = pod["metadata"]["labels"]
    return {
        "kind": "PodMetrics",
        "apiVersion": API_VERSION,
        "metadata": meta,
        "timestamp": rfc3339(first.timestamp),
        "window": go_duration(first.window),
        "containers": [{"name": n, "usage": _usage(u)} for n, u in sorted(containers.items())],
    }


def metrics_list(kind: str, items: list[Obj]) -> Obj:
    return {"kind": kind, "apiVersion": API_VERSION, "metadata": {}, "items": items}
