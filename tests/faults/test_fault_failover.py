"""Fault scenario ``failover`` (``corral.testing.faults.failover``), short form: a pymesos
framework process SIGKILLed and started again with its FrameworkID within its
failover_timeout keeps its tasks, one that stays away past it loses them; the scheduler
and the controller manager SIGKILLed mid-rollout resume without duplicate pods.

The long form (3 failovers each way, 5 rollouts of 40 replicas, 10 kills) runs from
``make faults``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pymesos", reason="pymesos: run scripts/pymesos-deps.sh")

from corral.testing.faults.failover import run

# pymesos drops its stream sockets without closing them when its process goes
pytestmark = [pytest.mark.timeout(300), pytest.mark.filterwarnings("ignore::ResourceWarning")]


def test_framework_and_loop_failover(tmp_path: Path) -> None:
    figures = run(tmp_path, long=False)
    print(figures)
    assert figures["violations"] == [], f"invariants broken: {figures['violations']}"
    assert figures["framework_tasks_lost_within_timeout"] == 0, (
        "a framework that failed over within its failover_timeout lost or restarted tasks"
    )
    assert figures["tasks_left_after_timeout"] == 0, (
        "tasks of a framework removed after its failover_timeout still run"
    )
    assert figures["rollout_kills"] == 2, "the scheduler and controller manager were not killed"
    assert figures["duplicate_pods"] == 0, "the restarted loops made duplicate pods"
    assert figures["rollout_completed"] is True, "the rollout did not complete after the kills"
