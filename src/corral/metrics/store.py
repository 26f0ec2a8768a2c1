"""Scrapes in, NodeMetrics and PodMetrics out: the pure half of the metrics server.

``parse_scrape`` reads one agent's ``/metrics/resource`` text (the kubelet's metric
names, ``agent/resource_metrics.py``; the Prometheus text format, of which only the
sample lines of the five families used are read, by a small line parser: a general
parser costs ~1 ms per node, most of a core at 5,000 hollow nodes) into a ``NodeScrape``. ``MetricsStore`` keeps the last two points of each node and container, as
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
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from corral.api.quantity import BINARY_SI, DECIMAL_SI, format_quantity
from corral.util.clock import rfc3339

Obj = dict[str, Any]
API_VERSION = "metrics.k8s.io/v1beta1"

#: the families ``parse_scrape`` reads
WANTED = (
    "node_cpu_usage_seconds_total",
    "node_memory_working_set_bytes",
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "container_start_time_seconds",
)
_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+(-?\d+))?[ \t]*")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_UNESCAPE = re.compile(r"\\(.)")


def _label_value(text: str) -> str:
    return _UNESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def parse_samples(
    text: str, names: tuple[str, ...] = WANTED
) -> Iterator[tuple[str, dict[str, str], float, float | None]]:
    """(name, labels, value, timestamp in seconds or None) of each sample line of the
    families ``names``; ``ValueError`` on a line of them that is not the text format."""
    for line in text.splitlines():
        if not line.startswith(names):
            continue
        m = _SAMPLE.fullmatch(line)
        if m is None:
            raise ValueError(f"invalid sample line: {line[:100]!r}")
        name, raw_labels, value, ts = m.groups()
        if name not in names:
            continue
        labels: dict[str, str] = {}
        if raw_labels:
            pos = 0
            while pos < len(raw_labels):
                lm = _LABEL.match(raw_labels, pos)
                if lm is None or lm.end() == pos:
                    raise ValueError(f"invalid labels: {line[:100]!r}")
                labels[lm.group(1)] = _label_value(lm.group(2))
                pos = lm.end()
        yield name, labels, float(value), (int(ts) / 1000 if ts is not None else None)


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
    for name, labels, v, sample_ts in parse_samples(text):
        ts = sample_ts if sample_ts is not None else now
        if math.isnan(v):
            continue
        key = (labels.get("namespace", ""), labels.get("pod", ""), labels.get("container", ""))
        if name == "node_cpu_usage_seconds_total":
            node_cpu = (v, ts)
        elif name == "node_memory_working_set_bytes":
            node_mem = (v, ts)
        elif name == "container_cpu_usage_seconds_total":
            cpu[key] = (v, ts)
        elif name == "container_memory_working_set_bytes":
            mem[key] = (v, ts)
        elif name == "container_start_time_seconds":
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
    """``resource.NewQuantity(b, resource.BinarySI)``: ``10240Ki``, ``1Mi``, ``1500``, and
    ``1k`` for 1000 (Go writes values under 1024 in DecimalSI)."""
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
