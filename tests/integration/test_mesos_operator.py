"""The Mesos master's operator API and read-only endpoints, through pymesos' own
operator driver (``MesosOperatorMasterDriver``) and plain HTTP."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from mesoskit import Framework, mesos_cluster, pymesos, wait
from test_mesos_pymesos import launch_n

# pymesos 0.3.15 drops sockets without closing them (its call connection after errors,
# its stream connection on failover): their ResourceWarning is not ours to fail on
pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


class Operator(pymesos.interface.OperatorMaster):  # type: ignore[misc]
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, Any]] = []

    def _add(self, kind: str, what: Any) -> None:
        with self.lock:
            self.events.append((kind, what))

    def taskAdded(self, task_info: Any) -> None:
        self._add("task_added", task_info)

    def taskUpdated(self, task_info: Any) -> None:
        self._add("task_updated", task_info)

    def frameworkAdded(self, framework_info: Any) -> None:
        self._add("framework_added", framework_info)

    def frameworkUpdated(self, framework_info: Any) -> None:
        self._add("framework_updated", framework_info)

    def frameworkRemoved(self, framework_info: Any) -> None:
        self._add("framework_removed", framework_info)

    def agentAdded(self, agent_info: Any) -> None:
        self._add("agent_added", agent_info)

    def agentRemoved(self, agent_info: Any) -> None:
        self._add("agent_removed", agent_info)

    def kinds(self) -> set[str]:
        with self.lock:
            return {k for k, _ in self.events}


def test_operator_calls_and_events(tmp_path: Path) -> None:
    with mesos_cluster(tmp_path, hollow=2) as c:
        wait(lambda: len(c.get("/state")["slaves"]) == 2, "2 hollow agents")
        op = Operator()
        driver = pymesos.MesosOperatorMasterDriver(c.master, op)
        driver.start()
        try:
            assert driver.getHealth()["get_health"]["healthy"] is True
            assert driver.getVersion()["get_version"]["version_info"]["version"] == "1.11.0"
            agents = driver.getAgents()["get_agents"]["agents"]
            assert len(agents) == 2
            assert {r["name"] for r in agents[0]["agent_info"]["resources"]} >= {"cpus", "mem"}
            driver.updateWeights([{"role": "analytics", "weight": 3.0}])
            assert {"role": "analytics", "weight": 3.0} in driver.getWeights()["get_weights"][
                "weight_infos"
            ]
            driver.setQuota(
                {
                    "role": "analytics",
                    "guarantee": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}}],
                }
            )
            infos = driver.getQuota()["get_quota"]["status"]["infos"]
            assert infos[0]["role"] == "analytics"
            assert infos[0]["guarantees"]["cpus"]["value"] == 2.0
            assert "mem" not in infos[0].get("limits", {})  # unnamed: unlimited
            driver.removeQuota("analytics")
            assert not driver.getQuota()["get_quota"]["status"]["infos"]
            # the operator's event stream sees a framework and its task come
            tasks, policy = launch_n("op", 1)
            fw = Framework.start(c.master, "watched", policy)
            try:
                wait(lambda: tasks and "TASK_RUNNING" in fw.recorder.states(tasks[0]), "running")
                wait(
                    lambda: {"framework_added", "task_added", "task_updated"} <= op.kinds(),
                    "events",
                )
                state = driver.getState()["get_state"]
                assert [t["task_id"]["value"] for t in state["get_tasks"]["tasks"]] == tasks
                frameworks = driver.getFrameworks()["get_frameworks"]["frameworks"]
                assert frameworks[0]["framework_info"]["name"] == "watched"
                roles = {r["name"] for r in driver.getRoles()["get_roles"]["roles"]}
                assert {"*", "kubernetes"} <= roles
                master = driver.getMaster()["get_master"]["master_info"]
                assert master["port"] == c.port
            finally:
                fw.stop()
            wait(lambda: "framework_removed" in op.kinds(), "framework removed event")
        finally:
            driver.stop()


def test_read_only_endpoints(tmp_path: Path) -> None:
    with mesos_cluster(tmp_path, hollow=1) as c:
        wait(lambda: len(c.get("/state")["slaves"]) == 1, "the hollow agent")
        assert c.get("/version")["version"] == "1.11.0"
        assert c.get("/master/state")["id"] == c.get("/state")["id"]
        summary = c.get("/state-summary")
        assert summary["slaves"][0]["resources"]["cpus"] == 4.0
        metrics = c.get("/metrics/snapshot")
        assert metrics["master/elected"] == 1.0
        assert metrics["master/cpus_total"] == 4.0
        assert metrics["master/slaves_active"] == 1.0
        with urllib.request.urlopen(f"http://{c.master}/health", timeout=5) as r:
            assert r.status == 200

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any) -> None:
                return None

        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as e:
            opener.open(f"http://{c.master}/master/redirect", timeout=5)
        assert e.value.code == 307
        assert e.value.headers["Location"] == f"//127.0.0.1:{c.port}"
        # an unknown operator call: 400 with a message
        with pytest.raises(urllib.error.HTTPError) as e:
            c.operator({"type": "NO_SUCH_CALL"})
        assert e.value.code == 400
