"""``bench/client_cost.py``: the client's CPU per request, three ways.

Its timings depend on the machine and are never asserted. What is tested: one short
real run (one server, a few Lease renewals each way) that must renew through every way
(a refused request fails the run) and charge each a positive cost.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import uvloop


@pytest.fixture(scope="module")
def cc(import_bench: Callable[[str], ModuleType]) -> ModuleType:
    return import_bench("client_cost")


def test_a_short_run_renews_every_way(cc: ModuleType, tmp_path: Path) -> None:
    args = argparse.Namespace(requests=12, clients=3, leases=4, runs=2)
    report = uvloop.run(cc.run(args, tmp_path))
    costs = report["us_cpu_per_request"]
    assert set(costs) == {"client", "aiohttp", "session"}
    assert all(v > 0 for v in costs.values())
    assert all(len(v) == 2 for v in report["rounds"].values())
    assert report["client_over_aiohttp"] > 0
