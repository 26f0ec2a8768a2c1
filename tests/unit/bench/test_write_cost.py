"""``bench/write_cost.py``: the server's CPU per write of each of the shape's kinds.

Its timings depend on the machine and are never asserted. What is tested: the chunking
and the arithmetic its ratios rest on, and one short real run (one server, a few writes
of every kind) that must send every kind successfully and charge each a positive cost:
a write the server refuses fails the run.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import uvloop


@pytest.fixture(scope="module")
def wc(import_bench: Callable[[str], ModuleType]) -> ModuleType:
    return import_bench("write_cost")


def test_chunks_cover_every_write_once(wc: ModuleType) -> None:
    assert wc.chunks(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert wc.chunks(3, 250) == [(0, 3)]
    with pytest.raises(ValueError, match="positive"):
        wc.chunks(0, 4)


def test_summary_gives_microseconds_per_write_and_the_ratio(wc: ModuleType) -> None:
    got = wc.summary({"head": 0.8, "base": 1.0}, 4000)
    assert got == {"head": 200.0, "base": 250.0, "ratio": 0.8}
    assert wc.summary({"head": 0.8}, 4000) == {"head": 200.0}


def test_each_kind_is_the_components_own_write(wc: ModuleType) -> None:
    kinds = wc.writes(1_700_000_000.0)
    assert list(kinds) == [
        "pod_create", "binding", "pod_status", "lease_create", "lease_renewal",
        "configmap_create",
    ]  # fmt: skip
    method, path, body, ctype = kinds["binding"](7)
    assert (method, path) == ("POST", "/api/v1/namespaces/default/pods/p7/binding")
    assert body["target"] == {"apiVersion": "v1", "kind": "Node", "name": "hollow-7"}
    method, path, body, ctype = kinds["pod_status"](7)
    assert (method, ctype) == ("PATCH", "application/merge-patch+json")
    assert body["status"]["phase"] == "Running"
    method, path, body, ctype = kinds["lease_renewal"](7)
    assert path.endswith("/namespaces/kube-node-lease/leases/l7")
    assert body["spec"]["holderIdentity"] == "l7"


def test_a_short_run_sends_every_kind(wc: ModuleType, tmp_path: Path) -> None:
    args = argparse.Namespace(
        base="",
        writes=6,
        chunk=4,
        clients=3,
        watchers=1,
        kinds=list(wc.writes(0.0)),
        profile="",
        rate=200,
    )
    report = uvloop.run(wc.run(args, tmp_path))
    assert set(report["us_cpu_per_write"]) == set(args.kinds)
    for kind, cost in report["us_cpu_per_write"].items():
        assert cost["head"] > 0, kind
        assert "base" not in cost
    assert re.fullmatch(r".*/corral \((compiled|interpreted: .+)\)", report["source"]["head"])
