"""pymesos (unmodified, from PyPI) against Corral's Mesos master: command tasks on a
real agent, offers on hollow nodes, kills, reconciliation, teardown and failover."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mesoskit import Framework, command_task, mesos_cluster, scalar, wait

pytestmark = pytest.mark.timeout(180)


def test_command_tasks_run_and_finish_on_a_real_agent(tmp_path: Path) -> None:
    launched: list[str] = []

    def on_offers(driver: Any, offers: list[Any]) -> None:
        for offer in offers:
            if launched or scalar(offer.resources, "cpus") < 0.1:
                driver.declineOffer(offer.id, {"refuse_seconds": 5})
                continue
            task = command_task(offer, "hello", "echo hello from $MESOS_TASK_ID; sleep 1")
            launched.append("hello")
            driver.launchTasks(offer.id, [task], {"refuse_seconds": 5})

    with mesos_cluster(tmp_path, runtimes=("process",)) as c:
        fw = Framework.start(c.master, "smoke", on_offers)
        try:
            wait(lambda: "TASK_FINISHED" in fw.recorder.states("hello"), "TASK_FINISHED", 60)
            states = fw.recorder.states("hello")
            assert "TASK_RUNNING" in states
            assert states.index("TASK_RUNNING") < states.index("TASK_FINISHED")
            update = next(u for u in fw.recorder.updates if u["state"] == "TASK_FINISHED")
            assert update["agent_id"]["value"] == c.agents[0].name
            pods = c.task_pods()
            assert len(pods) == 1
            assert pods[0]["spec"]["nodeName"] == c.agents[0].name
            assert pods[0]["status"]["phase"] == "Succeeded"
            state = c.get("/state")
            assert state["frameworks"][0]["name"] == "smoke"
        finally:
            fw.stop()
