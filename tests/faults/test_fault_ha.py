"""Fault scenario ``ha`` (``corral.testing.faults.ha``), short form: a three-server
cluster on a three-member etcd under a write load; the leaders of the loops SIGKILLed
twice and restarted, one etcd member SIGKILLed: no acknowledged write lost, no pod bound
twice, the rollout begun before the kills completes, the pymesos framework keeps its
tasks, the loops resume.

The long form (20 leader kills) runs from ``make faults``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("pymesos", reason="pymesos: run scripts/pymesos-deps.sh")
if shutil.which("etcd") is None:
    pytest.skip("etcd: run scripts/test-deps.sh (Debian etcd-server)", allow_module_level=True)

from corral.testing.faults.ha import run

# pymesos drops its stream sockets without closing them when its process goes
pytestmark = [pytest.mark.timeout(300), pytest.mark.filterwarnings("ignore::ResourceWarning")]


def test_leader_kills_under_load(tmp_path: Path) -> None:
    figures = run(tmp_path, long=False)
    print(figures)
    assert figures["violations"] == [], f"invariants broken: {figures['violations']}"
    assert figures["leader_kills"] == 2, "the leaders were not killed twice"
    assert figures["operations"] > 0, "no write was acknowledged"
    for zero in ("acknowledged_writes_lost", "half_written", "rv_regressions", "watch_missed",
                 "watch_repeated", "pods_bound_twice", "duplicate_pods", "framework_tasks_lost",
                 "loops_not_resumed"):  # fmt: skip
        assert figures[zero] == 0, f"{zero}: {figures[zero]}"
    assert figures["rollout_completed"] is True, "the rollout did not complete after the kill"
    assert figures["writes_while_member_down"] > 0, "no write with one etcd member down"
