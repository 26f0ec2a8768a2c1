"""Ephemeral containers in the pure pod rules (``podstate``): tracked as they are added,
reported in ``ephemeralContainerStatuses``, and counted for neither phase nor readiness."""

from __future__ import annotations

from typing import Any

from corral.agent.drivers.base import ContainerHandle, ExitInfo, Sandbox
from corral.agent.podstate import add_ephemeral, new_pod_state, pod_phase, pod_status

Obj = dict[str, Any]


def _pod(*ephemeral: str) -> Obj:
    spec: Obj = {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}
    if ephemeral:
        spec["ephemeralContainers"] = [
            {"name": n, "image": "busybox", "targetContainerName": "main"} for n in ephemeral
        ]
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": spec, "status": {}}


def _handle(name: str) -> ContainerHandle:
    return ContainerHandle(f"id-{name}", "u1", name, 0, 100, 1000.0, "/tmp/x")


def _status(st: Any, pod: Obj) -> Obj:
    status: Obj = pod_status(pod, st, "oci", "10.0.0.1", 1010.0)
    return status


def test_added_ephemeral_containers_are_tracked_once() -> None:
    st = new_pod_state(_pod())
    assert add_ephemeral(st, _pod("d1")) == ["d1"]
    assert add_ephemeral(st, _pod("d1", "d2")) == ["d2"]
    assert [c.name for c in st.ephemeral_states()] == ["d1", "d2"]
    assert [c.name for c in st.app_states()] == ["main"]
    assert [c.name for c in new_pod_state(_pod("d1")).ephemeral_states()] == ["d1"]


def test_ephemeral_status_and_no_effect_on_phase_or_readiness() -> None:
    pod = _pod("debugger")
    st = new_pod_state(pod)
    st.sandbox = Sandbox("u1", "/tmp/x", "10.88.0.5")
    main, debugger = st.containers["main"], st.containers["debugger"]
    main.attempt, main.handle, main.ready, main.started = 0, _handle("main"), True, True
    status = _status(st, pod)
    assert [c["name"] for c in status["containerStatuses"]] == ["main"]
    [ec] = status["ephemeralContainerStatuses"]
    assert ec["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert status["phase"] == "Running"

    debugger.attempt, debugger.handle, debugger.started = 0, _handle("debugger"), True
    status = _status(st, pod)
    [ec] = status["ephemeralContainerStatuses"]
    assert "running" in ec["state"] and ec["ready"] is False
    assert ec["containerID"] == "oci://id-debugger"
    ready = {c["type"]: c["status"] for c in status["conditions"]}["Ready"]
    assert ready == "True"

    debugger.exit, debugger.done = ExitInfo(0, 1000.0, 1005.0), True
    status = _status(st, pod)
    [ec] = status["ephemeralContainerStatuses"]
    assert ec["state"]["terminated"]["exitCode"] == 0
    assert pod_phase(pod, st) == "Running"  # the debugger's exit ends nothing


def test_no_ephemeral_statuses_without_ephemeral_containers() -> None:
    pod = _pod()
    assert "ephemeralContainerStatuses" not in _status(new_pod_state(pod), pod)
