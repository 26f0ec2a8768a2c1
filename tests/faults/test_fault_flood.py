"""Overload, short form: a 6 s flood of ``kubectl get pods -A`` from one non-admin user
on 50 connections against a real server with 10 hollow nodes and 300 pods; no node
heartbeat is missed, no node goes NotReady, and pods created during the flood are
scheduled (``corral.testing.faults.flood``; the long form, 60 s on 50 nodes, is ``make
faults``). Without priority and fairness the nodes' Lease renewals wait behind the
flood's lists and the test fails (heartbeats missed).
"""

from __future__ import annotations

from pathlib import Path

from corral.testing.faults import flood


def test_flood_starves_neither_heartbeats_nor_scheduler(tmp_path: Path) -> None:
    figures = flood.run(tmp_path, long=False)
    assert figures["heartbeats_missed"] == 0, f"node Leases renewed late or not at all: {figures}"
    assert figures["nodes_not_ready"] == 0, f"nodes went NotReady under the flood: {figures}"
    assert figures["pods_not_scheduled"] == 0, f"the scheduler was starved: {figures}"
    # the flood itself ran and reached the server (else nothing above was tested)
    served = figures["flood_served"]
    assert isinstance(served, int) and served > 0, f"no flood request was served: {figures}"
    assert figures["nodes_renewing"] == flood.SHORT.nodes, figures
    assert figures["violations"] == [], "\n".join(map(str, figures["violations"]))  # type: ignore[call-overload]
