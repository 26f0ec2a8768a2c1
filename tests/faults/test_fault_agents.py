"""Fault scenario ``agents`` (short form): the node agent SIGKILLed under ``corral up``
while pods run and are created; ``corral.testing.faults.agents`` does the work, one
cluster for the module, and each test reads one invariant off its figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.testing.faults import agents

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    work: Path = tmp_path_factory.mktemp("faults-agents")
    return agents.run(work, long=False)


def test_no_violations(figures: dict[str, object]) -> None:
    assert figures["violations"] == [], f"invariants broken by agent kills: {figures}"


def test_healthy_pods_keep_their_processes(figures: dict[str, object]) -> None:
    assert figures["agent_kills"] == 2, figures
    assert figures["healthy_pods_restarted"] == 0, f"an agent restart restarted pods: {figures}"


def test_pods_created_while_the_agent_was_down_start(figures: dict[str, object]) -> None:
    assert figures["pods_created_meanwhile"], f"no pod was created while no agent ran: {figures}"
    assert figures["pods_started"] == figures["pods_created_under_load"], figures


def test_corral_up_says_each_restart(figures: dict[str, object]) -> None:
    assert figures["restarts_said"] == figures["agent_kills"], figures
