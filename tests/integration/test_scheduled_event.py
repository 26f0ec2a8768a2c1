"""The scheduler's ``Scheduled`` Event, as kube-scheduler records it: events.k8s.io/v1,
reason Scheduled, action Binding, reportingController default-scheduler, note
``Successfully assigned NS/POD to NODE``; ``kubectl describe pod`` lists it.

Runs against the shared server and its real ``corral scheduler`` child. The node is
tainted so no other test's pods land on it, and is deleted afterwards.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from conftest import Kubectl

pytestmark = pytest.mark.kubectl


@pytest.fixture
def node(kubectl: Kubectl) -> Iterator[str]:
    name = f"sched-ev-{uuid.uuid4().hex[:6]}"
    alloc = {"cpu": "4", "memory": "8Gi", "pods": "110"}
    body = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {"taints": [{"key": "corral.test/only", "value": name, "effect": "NoSchedule"}]},
        "status": {"capacity": alloc, "allocatable": alloc},
    }
    kubectl("create", "-f", "-", input=json.dumps(body))
    yield name
    kubectl("delete", "node", name, "--wait=false", check=False)


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    ns = f"sched-ev-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    yield ns
    kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_binding_records_the_scheduled_event(kubectl: Kubectl, node: str, namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "placed", "namespace": namespace},
        "spec": {
            "containers": [{"name": "c", "image": "busybox"}],
            "nodeSelector": {"kubernetes.io/hostname": node},
            "tolerations": [{"key": "corral.test/only", "operator": "Exists"}],
        },
    }
    kubectl("create", "-f", "-", input=json.dumps(pod))
    selector = "reason=Scheduled,regarding.name=placed"

    def scheduled() -> list[dict]:  # type: ignore[type-arg]
        out = kubectl("get", "events.v1.events.k8s.io", "-n", namespace,
                      "--field-selector", selector, "-o", "json").stdout  # fmt: skip
        return list(json.loads(out)["items"])

    from corral.testing.wait import eventually

    eventually(lambda: bool(scheduled()), timeout=30)
    [ev] = scheduled()
    assert ev["type"] == "Normal"
    assert ev["action"] == "Binding"
    assert ev["reportingController"] == "default-scheduler"
    assert ev["reportingInstance"].startswith("default-scheduler-")
    assert ev["note"] == f"Successfully assigned {namespace}/placed to {node}"
    assert ev["regarding"]["kind"] == "Pod" and ev["regarding"]["uid"]
    assert ev["eventTime"]
    bound = json.loads(kubectl("get", "pod", "placed", "-n", namespace, "-o", "json").stdout)
    assert bound["spec"]["nodeName"] == node
    assert ev["regarding"]["uid"] == bound["metadata"]["uid"]

    described = kubectl("describe", "pod", "placed", "-n", namespace).stdout
    events = described[described.index("Events:") :]
    line = next(ln for ln in events.splitlines() if "Scheduled" in ln)
    assert line.split()[:2] == ["Normal", "Scheduled"], line
    assert "default-scheduler" in line, line
    assert line.endswith(f"Successfully assigned {namespace}/placed to {node}"), line
