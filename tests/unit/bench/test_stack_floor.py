"""``bench/stack_floor.py``'s arithmetic: per-pod counts x per-unit costs -> the ceiling.

The timings themselves are never asserted (they depend on the machine); what is tested is
the pure part the report's conclusion rests on: the combination of counts and costs, and
how the counts are read from a ``scheduler_perf --mode shape`` report. ``bench`` is not an
installed package: ``import_bench`` (``tests/conftest.py``) imports it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def sf(import_bench: Callable[[str], ModuleType]) -> ModuleType:
    return import_bench("stack_floor")


def test_counts_times_costs_give_the_floor_and_the_ceiling(sf: ModuleType) -> None:
    counts = sf.Counts(
        requests_per_pod=4.5, deliveries_per_pod=11.5, writes_per_pod=4.5, idle_cores=0.34
    )
    costs = sf.Costs(
        request_server_s=100e-6,
        request_client_s=100e-6,
        event_server_s=10e-6,
        event_client_s=10e-6,
        write_s=50e-6,
    )
    got = sf.stack_floor(counts, costs, 2.0)
    # 4.5 x 200 us + 11.5 x 20 us + 4.5 x 50 us = 900 + 230 + 225 us
    assert got["parts_ms_per_pod"] == pytest.approx(
        {"requests": 0.9, "watch_deliveries": 0.23, "durable_writes": 0.225}
    )
    assert got["cpu_ms_per_pod"] == pytest.approx(1.355)
    assert got["ceiling_pods_per_s"] == pytest.approx((2.0 - 0.34) / 1.355e-3)
    # the brief's own arithmetic: 1.6 ms per pod, 0.34 cores idle, 2 cores -> ~1,040 pods/s
    brief = sf.Costs(
        request_server_s=0, request_client_s=0, event_server_s=0, event_client_s=0, write_s=1.6e-3
    )
    one_write = sf.Counts(
        requests_per_pod=0, deliveries_per_pod=0, writes_per_pod=1, idle_cores=0.34
    )
    assert sf.stack_floor(one_write, brief, 2.0)["ceiling_pods_per_s"] == pytest.approx(1037.5)
    # an idle load that takes every core leaves nothing for pods
    busy = sf.Counts(requests_per_pod=1, deliveries_per_pod=1, writes_per_pod=1, idle_cores=3.0)
    assert sf.stack_floor(busy, costs, 2.0)["ceiling_pods_per_s"] == 0


def test_counts_are_read_from_a_shape_report(sf: ModuleType) -> None:
    run = {
        "pods": 10000,
        "pods_per_s": 461.1,
        "server_write_latency": {"requests": 37260, "p50_ms": 64.1},
        "writes_in_span": {"leases": 9525, "pods": 27533},
        "idle_cpu_s_per_s": {"server": 0.219, "hollow-agent": 0.103, "controller-manager": 0.022},
        "cpu_s": {"server": 19.4},
    }
    counts, sources = sf.counts_from_shape(sf.shape_run({"mode": "shape", "runs": [run]}))
    # lease renewals are the idle load, not per-pod work
    assert counts.requests_per_pod == pytest.approx((37260 - 9525) / 10000)
    assert counts.writes_per_pod == counts.requests_per_pod
    # each pod's first event reaches 3 watchers, its later ones 4 (the hollow agent too)
    assert counts.deliveries_per_pod == pytest.approx((10000 * 3 + 17533 * 4) / 10000)
    assert counts.idle_cores == pytest.approx(0.344)
    assert set(sources) == {
        "requests_per_pod",
        "writes_per_pod",
        "deliveries_per_pod",
        "idle_cores",
    }
    assert sf.shape_run(run) is run  # a bare run is read as is


@pytest.mark.parametrize("transport", ["tls", "tcp", "unix"])
def test_each_transport_serves_the_requests_and_the_watch(
    sf: ModuleType, transport: str, tmp_path: Path
) -> None:
    """The server and client roles speak over each transport: every request is answered
    200 and every event arrives (the roles raise otherwise); the figures themselves are
    not asserted."""
    data_dir = tmp_path / "data"
    sf.ensure_pki(data_dir, [])
    plan = argparse.Namespace(
        transport=transport,
        reps=1,
        requests=64,
        events=64,
        concurrency=4,
        low_concurrency=0,
    )
    got = sf.measure_http(plan, data_dir)
    for unit in ("request", "event_1", "event_16"):
        [(server_s, client_s)] = got[unit]
        assert server_s >= 0 and client_s >= 0
