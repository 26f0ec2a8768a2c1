"""The metrics server's pure half: parsing the agents' exposition, CPU rates between two
scrapes, and the quantities and durations of NodeMetrics/PodMetrics as metrics-server
writes them; the agent's exposition round-trips through the parser."""

from __future__ import annotations

import pytest

from corral.agent.resource_metrics import ContainerUsage, Sample, _fmt, hollow_sample, render
from corral.metrics.store import (
    MetricsStore,
    NodeScrape,
    Point,
    cpu_quantity,
    go_duration,
    memory_quantity,
    node_metrics,
    parse_samples,
    parse_scrape,
    pod_metrics,
    rate,
)

KUBELET_TEXT = """\
# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="coredns",namespace="kube-system",pod="coredns-1"} 2.130215 1700000010000
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="coredns",namespace="kube-system",pod="coredns-1"} 1.5e+07 1700000010000
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="coredns",namespace="kube-system",pod="coredns-1"} 1.7e+09 1700000010000
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 123.5 1700000010500
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 1.2e+09 1700000010500
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
"""


def test_parse_kubelet_text() -> None:
    s = parse_scrape(KUBELET_TEXT, now=0.0)
    assert s.node == Point(123.5, 1_200_000_000, 1_700_000_010.5)
    assert s.containers == {
        ("kube-system", "coredns-1", "coredns"): Point(2.130215, 15_000_000, 1_700_000_010.0, 1.7e9)
    }


def test_agent_exposition_round_trips() -> None:
    sample = Sample(
        timestamp=1_700_000_000.25,
        node_cpu_seconds=10.5,
        node_memory_bytes=2048 * 1024,
        containers=[ContainerUsage("ns", "p", "c", 1.25, 4096, 1_699_999_000.0)],
    )
    text = render(sample)
    assert 'pod_cpu_usage_seconds_total{namespace="ns",pod="p"} 1.25 1700000000250' in text
    s = parse_scrape(text, now=0.0)
    assert s.node == Point(10.5, 2048 * 1024, 1_700_000_000.25)
    assert s.containers[("ns", "p", "c")] == Point(1.25, 4096, 1_700_000_000.25, 1_699_999_000.0)


RATES = [
    ("one-core", Point(10.0, 1, 100.0), Point(25.0, 2, 115.0), (1_000_000_000, 2, 15.0)),
    ("idle", Point(10.0, 1, 100.0), Point(10.0, 5, 101.0), (0, 5, 1.0)),
    ("quarter", Point(0.0, 0, 0.0), Point(0.5, 0, 2.0), (250_000_000, 0, 2.0)),
    ("counter-reset", Point(10.0, 1, 100.0), Point(1.0, 1, 101.0), None),
    ("same-time", Point(10.0, 1, 100.0), Point(11.0, 1, 100.0), None),
    ("restarted", Point(1.0, 1, 100.0, 5.0), Point(2.0, 1, 101.0, 6.0), None),
]


@pytest.mark.parametrize("prev,last,want", [r[1:] for r in RATES], ids=[r[0] for r in RATES])
def test_rate(prev: Point, last: Point, want: tuple[int, int, float] | None) -> None:
    u = rate(prev, last)
    if want is None:
        assert u is None
    else:
        assert u is not None
        assert (u.nanocores, u.memory_bytes, u.window) == want


def test_store_needs_two_scrapes_and_forgets_pods() -> None:
    store = MetricsStore()
    key = ("ns", "p", "c")
    store.store("n1", NodeScrape(Point(1.0, 10, 100.0), {key: Point(1.0, 10, 100.0)}))
    assert store.node_usage("n1") is None and store.pod_usage("ns", "p") is None
    store.store("n1", NodeScrape(Point(3.0, 20, 102.0), {key: Point(1.5, 30, 102.0)}))
    node = store.node_usage("n1")
    assert node is not None and node.nanocores == 1_000_000_000
    pod = store.pod_usage("ns", "p")
    assert pod is not None and pod["c"].nanocores == 250_000_000 and pod["c"].memory_bytes == 30
    store.store("n1", NodeScrape(Point(4.0, 20, 103.0), {}))  # the pod went away
    assert store.pod_usage("ns", "p") is None
    store.forget("n1")
    assert store.node_usage("n1") is None


QUANTITIES = [
    ("cpu-nanos", cpu_quantity, 123_456_789, "123456789n"),
    ("cpu-millis", cpu_quantity, 5_000_000, "5m"),
    ("cpu-cores", cpu_quantity, 2_000_000_000, "2"),
    ("cpu-zero", cpu_quantity, 0, "0"),
    ("mem-ki", memory_quantity, 4444 * 1024, "4444Ki"),
    ("mem-mi", memory_quantity, 1024 * 1024, "1Mi"),
    ("mem-bytes", memory_quantity, 1000, "1k"),
    ("mem-not-binary", memory_quantity, 1500, "1500"),
]


@pytest.mark.parametrize(
    "fn,value,want", [q[1:] for q in QUANTITIES], ids=[q[0] for q in QUANTITIES]
)
def test_quantities(fn, value: int, want: str) -> None:  # type: ignore[no-untyped-def]
    assert fn(value) == want


DURATIONS = [
    ("seconds", 15.0, "15s"),
    ("fraction", 1.003000021, "1.003000021s"),
    ("millis", 0.5, "500ms"),
    ("minutes", 62.5, "1m2.5s"),
    ("hours", 3600.0, "1h0m0s"),
    ("zero", 0.0, "0s"),
]


@pytest.mark.parametrize("seconds,want", [d[1:] for d in DURATIONS], ids=[d[0] for d in DURATIONS])
def test_go_duration(seconds: float, want: str) -> None:
    assert go_duration(seconds) == want


FLOATS = [
    ("int", 42.0, "42"),
    ("frac", 2.130215, "2.130215"),
    ("big", 15_000_000.0, "1.5e+07"),
    ("million", 1_234_567.0, "1.234567e+06"),
    ("small", 0.00001, "1e-05"),
    ("zero", 0.0, "0"),
    ("int-type", 268_435_456, "2.68435456e+08"),
    ("small-int", 4096, "4096"),
    ("below-million", 999_999.5, "999999.5"),
    ("ten-thousandth", 0.0001, "0.0001"),
    ("leading-zeros", 0.000123, "0.000123"),
    ("negative", -2.5, "-2.5"),
    ("huge", 1e21, "1e+21"),
    ("long", 123456789.0, "1.23456789e+08"),
    ("inf", float("inf"), "+Inf"),
]


@pytest.mark.parametrize("value,want", [f[1:] for f in FLOATS], ids=[f[0] for f in FLOATS])
def test_exposition_floats_as_go_writes_them(value: float, want: str) -> None:
    assert _fmt(value) == want


def test_metrics_objects() -> None:
    store = MetricsStore()
    key = ("ns", "p", "c")
    store.store("n1", NodeScrape(Point(1.0, 0, 100.0), {key: Point(1.0, 0, 100.0)}))
    store.store("n1", NodeScrape(Point(2.0, 2048, 101.0), {key: Point(1.5, 1024, 101.0)}))
    u = store.node_usage("n1")
    assert u is not None
    node = {"metadata": {"name": "n1", "labels": {"a": "b"}}}
    nm = node_metrics(node, u, 200.0)
    assert nm["kind"] == "NodeMetrics" and nm["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert nm["metadata"] == {
        "name": "n1",
        "creationTimestamp": "1970-01-01T00:03:20Z",
        "labels": {"a": "b"},
    }
    assert (nm["timestamp"], nm["window"]) == ("1970-01-01T00:01:41Z", "1s")
    assert nm["usage"] == {"cpu": "1", "memory": "2Ki"}
    containers = store.pod_usage("ns", "p")
    assert containers is not None
    pm = pod_metrics({"metadata": {"name": "p", "namespace": "ns"}}, containers, 200.0)
    assert pm["containers"] == [{"name": "c", "usage": {"cpu": "500m", "memory": "1Ki"}}]


SAMPLE_LINES = [
    ("plain", 'node_cpu_usage_seconds_total 12.5 1700000000123', ("node_cpu_usage_seconds_total", {}, 12.5, 1700000000.123)),
    ("labels", 'container_start_time_seconds{container="c",namespace="ns",pod="p"} 1.7e+09', ("container_start_time_seconds", {"container": "c", "namespace": "ns", "pod": "p"}, 1.7e9, None)),
    ("escapes", 'container_memory_working_set_bytes{pod="a\\"b\\\\",namespace="n"} 4096 5', ("container_memory_working_set_bytes", {"pod": 'a"b\\', "namespace": "n"}, 4096.0, 0.005)),
]  # fmt: skip


@pytest.mark.parametrize(
    "line,want", [c[1:] for c in SAMPLE_LINES], ids=[c[0] for c in SAMPLE_LINES]
)
def test_parse_samples(line: str, want: tuple[object, ...]) -> None:
    assert list(parse_samples("# HELP x\nother_metric 1\n" + line + "\n")) == [want]


@pytest.mark.parametrize(
    "line",
    [
        "node_cpu_usage_seconds_total",
        'node_cpu_usage_seconds_total{a="1" 2',
        "node_cpu_usage_seconds_total 1 2 3",
    ],
)
def test_parse_samples_rejects(line: str) -> None:
    with pytest.raises(ValueError):
        list(parse_samples(line))


def test_hollow_sample_timestamps_are_whole_milliseconds() -> None:
    """Values are computed at the millisecond the exposition states: a rate between two
    scrapes is exact (half of a 400m request is 200m, not 200.4m)."""
    pod = {"metadata": {"namespace": "n", "name": "p"}, "status": {"phase": "Running", "startTime": "2026-01-01T00:00:00Z"},
           "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "400m"}}}]}}  # fmt: skip
    a = parse_scrape(render(hollow_sample([pod], 0.0, 1767225610.1234567)), 0.0)
    b = parse_scrape(render(hollow_sample([pod], 0.0, 1767225611.3339)), 0.0)
    pa, pb = a.containers[("n", "p", "c")], b.containers[("n", "p", "c")]
    assert (pb.cpu_seconds - pa.cpu_seconds) / (pb.timestamp - pa.timestamp) == pytest.approx(
        0.2, abs=1e-9
    )
