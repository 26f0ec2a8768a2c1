"""Two real agents on one cluster: the scheduler spreads pods over both nodes, and
``kubectl logs`` / ``kubectl exec`` reach a pod whichever node runs it (the API server
proxies to that node's agent). The process runtime, so it runs wherever the agent can.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Kubectl, RunningServer, start_server
from corral.testing.agent import AgentProcess
from corral.testing.wait import eventually


@pytest.fixture(scope="module")
def two_nodes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningServer, Kubectl, list[AgentProcess]]]:
    base: Path = tmp_path_factory.mktemp("two-nodes")
    srv = start_server(base / "server")
    agents: list[AgentProcess] = []
    try:
        for i in range(2):
            agents.append(
                AgentProcess.start(
                    srv.kubeconfig, f"n{i}-{uuid.uuid4().hex[:4]}", "process", base / f"a{i}"
                )
            )
        kubectl = Kubectl(srv.kubeconfig, base / "kubecache")
        yield srv, kubectl, agents
        kubectl(
            "delete", "pods", "--all", "-A", "--grace-period=1", "--wait=true",
            timeout=120, check=False,
        )  # fmt: skip
    finally:
        for a in agents:
            a.stop()
            a.reset()
        srv.stop()


def test_logs_and_exec_reach_pods_on_either_node(
    two_nodes: tuple[RunningServer, Kubectl, list[AgentProcess]],
) -> None:
    _, kubectl, agents = two_nodes
    for a in agents:
        manifest = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"on-{a.name}"},
            "spec": {
                "nodeName": a.name,
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox",
                        "command": ["sh", "-c", f"echo I run on {a.name}; sleep 3600"],
                    }
                ],
            },
        }
        kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def all_running() -> bool:
        pods = json.loads(kubectl("get", "pods", "-o", "json").stdout)["items"]
        return len(pods) == 2 and all(p["status"].get("phase") == "Running" for p in pods)

    eventually(all_running, timeout=30)
    for a in agents:
        name = f"on-{a.name}"
        eventually(
            lambda n=name, a=a: f"I run on {a.name}" in kubectl("logs", n).stdout, timeout=10
        )
        res = kubectl("exec", name, "--", "sh", "-c", "echo from-exec; exit 4", check=False)
        assert res.returncode == 4 and "from-exec" in res.stdout
    nodes = {
        p["spec"]["nodeName"]
        for p in json.loads(kubectl("get", "pods", "-o", "json").stdout)["items"]
    }
    assert nodes == {a.name for a in agents}
