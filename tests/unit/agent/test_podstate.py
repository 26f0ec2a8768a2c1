"""The pure pod rules: restart policy, crash-loop back-off, phase and status."""

from __future__ import annotations

import pytest

from corral.agent.drivers.base import ContainerHandle, ExitInfo, Sandbox
from corral.agent.podstate import (
    BackOff,
    new_pod_state,
    pod_phase,
    pod_status,
    should_restart,
)


@pytest.mark.parametrize(
    ("policy", "code", "want"),
    [
        ("Always", 0, True),
        ("Always", 1, True),
        ("OnFailure", 0, False),
        ("OnFailure", 2, True),
        ("Never", 0, False),
        ("Never", 1, False),
    ],
    ids=lambda v: str(v),
)
def test_should_restart(policy: str, code: int, want: bool) -> None:
    assert should_restart(policy, code) is want


def test_backoff_first_restart_immediate_then_doubles_to_five_minutes() -> None:
    b = BackOff()
    waits = [b.after_exit(1.0) for _ in range(8)]
    assert waits == [0, 10, 20, 40, 80, 160, 300, 300]


def test_backoff_resets_after_ten_minutes_running() -> None:
    b = BackOff()
    for _ in range(4):
        b.after_exit(1.0)
    assert b.after_exit(601.0) == 0
    assert b.after_exit(1.0) == 10


def _pod(policy: str = "Always", init: bool = False, n: int = 1) -> dict:
    spec: dict = {
        "restartPolicy": policy,
        "containers": [{"name": f"c{i}", "image": "busybox"} for i in range(n)],
    }
    if init:
        spec["initContainers"] = [{"name": "init", "image": "busybox"}]
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": spec, "status": {}}


def _handle(name: str, attempt: int = 0) -> ContainerHandle:
    return ContainerHandle(f"id-{name}-{attempt}", "u1", name, attempt, 100, 1000.0, "/tmp/x")


def _exit(code: int, oom: bool = False) -> ExitInfo:
    return ExitInfo(exit_code=code, started_at=1000.0, finished_at=1005.0, oom_killed=oom)


def test_new_pod_is_pending_and_creating() -> None:
    pod = _pod()
    st = new_pod_state(pod)
    assert pod_phase(pod, st) == "Pending"
    status = pod_status(pod, st, "oci", "10.0.0.1", 2000.0)
    cs = status["containerStatuses"][0]
    assert cs["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert cs["ready"] is False and cs["restartCount"] == 0
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Ready"]["status"] == "False"
    assert conds["Ready"]["reason"] == "ContainersNotReady"
    assert conds["Initialized"]["status"] == "True"
    assert conds["PodScheduled"]["status"] == "True"
    assert status["hostIP"] == "10.0.0.1" and "podIP" not in status


def test_running_pod_status() -> None:
    pod = _pod()
    st = new_pod_state(pod)
    st.sandbox = Sandbox("u1", "/tmp/x", "10.88.0.5")
    c = st.containers["c0"]
    c.handle, c.attempt, c.ready, c.started = _handle("c0"), 0, True, True
    status = pod_status(pod, st, "oci", "10.0.0.1", 2000.0)
    assert status["phase"] == "Running"
    assert status["podIP"] == "10.88.0.5"
    cs = status["containerStatuses"][0]
    assert cs["containerID"] == "oci://id-c0-0"
    assert "running" in cs["state"] and cs["ready"] is True
    conds = {c["type"]: c["status"] for c in status["conditions"]}
    assert conds == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
        "PodScheduled": "True",
    }


def test_crash_loop_shows_waiting_with_last_state() -> None:
    pod = _pod("Always")
    st = new_pod_state(pod)
    c = st.containers["c0"]
    c.handle, c.attempt, c.exit = _handle("c0", 3), 3, _exit(1)
    c.restart_at = 9999.0
    c.waiting = ("CrashLoopBackOff", "back-off 40s restarting failed container=c0")
    assert pod_phase(pod, st) == "Running"
    cs = pod_status(pod, st, "oci", "h", 2000.0)["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert cs["restartCount"] == 3


@pytest.mark.parametrize(
    ("policy", "codes", "phase"),
    [
        ("Never", [0, 0], "Succeeded"),
        ("Never", [0, 1], "Failed"),
        ("OnFailure", [0, 0], "Succeeded"),
        ("OnFailure", [0, 1], "Running"),
        ("Always", [0, 0], "Running"),
    ],
    ids=lambda v: str(v),
)
def test_phase_after_exits(policy: str, codes: list[int], phase: str) -> None:
    pod = _pod(policy, n=2)
    st = new_pod_state(pod)
    for i, code in enumerate(codes):
        c = st.containers[f"c{i}"]
        c.handle, c.attempt, c.exit = _handle(f"c{i}"), 0, _exit(code)
        c.done = not should_restart(policy, code)
    assert pod_phase(pod, st) == phase


def test_oom_killed_reason() -> None:
    pod = _pod("Never")
    st = new_pod_state(pod)
    c = st.containers["c0"]
    c.handle, c.attempt, c.exit, c.done = _handle("c0"), 0, _exit(137, oom=True), True
    status = pod_status(pod, st, "oci", "h", 2000.0)
    assert status["phase"] == "Failed"
    assert status["containerStatuses"][0]["state"]["terminated"]["reason"] == "OOMKilled"


def test_init_containers_gate_the_app_containers() -> None:
    pod = _pod(init=True)
    st = new_pod_state(pod)
    assert pod_phase(pod, st) == "Pending"
    status = pod_status(pod, st, "oci", "h", 2000.0)
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Initialized"]["status"] == "False"
    assert conds["Initialized"]["message"] == "containers with incomplete status: [init]"
    init = st.containers["init"]
    init.handle, init.attempt, init.exit = _handle("init"), 0, _exit(0)
    status = pod_status(pod, st, "oci", "h", 2000.0)
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Initialized"]["status"] == "True"
    assert status["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"


def test_failed_init_with_never_fails_the_pod() -> None:
    pod = _pod("Never", init=True)
    st = new_pod_state(pod)
    init = st.containers["init"]
    init.handle, init.attempt, init.exit, init.done = _handle("init"), 0, _exit(2), True
    assert pod_phase(pod, st) == "Failed"
    # as the kubelet: still not initialized (kubectl shows Init:Error, not the app
    # container's PodInitializing), and not ready because the pod failed
    status = pod_status(pod, st, "oci", "h", 2000.0)
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Initialized"]["status"] == "False"
    assert conds["Initialized"]["reason"] == "ContainersNotInitialized"
    assert conds["Initialized"]["message"] == "containers with incomplete status: [init]"
    assert status["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Error"
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    for type_ in ("Ready", "ContainersReady"):
        assert (conds[type_]["status"], conds[type_]["reason"]) == ("False", "PodFailed")
        assert "message" not in conds[type_]


@pytest.mark.parametrize(
    ("code", "phase", "reason"),
    [(0, "Succeeded", "PodCompleted"), (1, "Failed", "PodFailed")],
    ids=["succeeded", "failed"],
)
def test_finished_pod_conditions(code: int, phase: str, reason: str) -> None:
    pod = _pod("Never", init=True)
    st = new_pod_state(pod)
    init = st.containers["init"]
    init.handle, init.attempt, init.exit = _handle("init"), 0, _exit(0)
    c = st.containers["c0"]
    c.handle, c.attempt, c.exit, c.done = _handle("c0"), 0, _exit(code), True
    status = pod_status(pod, st, "oci", "h", 2000.0)
    assert status["phase"] == phase
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Initialized"]["status"] == "True"
    assert (conds["Ready"]["status"], conds["Ready"]["reason"]) == ("False", reason)
    assert (conds["ContainersReady"]["status"], conds["ContainersReady"]["reason"]) == (
        "False",
        reason,
    )


def test_transition_time_kept_while_status_unchanged() -> None:
    pod = _pod()
    st = new_pod_state(pod)
    first = pod_status(pod, st, "oci", "h", 2000.0)
    pod["status"] = first
    again = pod_status(pod, st, "oci", "h", 3000.0)
    assert first["conditions"] == again["conditions"]
