"""Mesos task pods on the agent, the pure parts: which pods are tasks and where their
sandbox is (corral.agent.mesos_task), their environment and mounts per driver, the
sandbox preparation, the phase of a task whose launch failed (podstate), and the
host-root ``config.json`` (ocispec) with its mount-point check (oci)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corral.agent.drivers.base import ContainerSpec, ExitInfo, Mount
from corral.agent.drivers.oci import host_mount_problem
from corral.agent.drivers.ocispec import HOST_ROOT_MOUNT, container_config
from corral.agent.mesos_fetch import FetchError
from corral.agent.mesos_task import (
    CONTAINER_SANDBOX,
    MesosTask,
    orphan_sandboxes,
    prepare_sandbox,
    sandboxes_dir,
    task_env,
    task_mounts,
    task_of,
)
from corral.agent.podstate import new_pod_state, pod_phase, pod_status
from corral.api import mesos

Obj = dict[str, Any]


def task_pod(annotations: dict[str, str] | None = None, uid: str = "u-1") -> Obj:
    return {
        "metadata": {"name": "t", "namespace": "mesos", "uid": uid, "annotations": annotations},
        "spec": {
            "containers": [{"name": "task", "image": mesos.HOST_IMAGE}],
            "restartPolicy": "Never",
            "schedulerName": mesos.SCHEDULER_NAME,
        },
    }


def test_only_pods_with_a_task_id_are_tasks(tmp_path: Path) -> None:
    root = sandboxes_dir(tmp_path)
    assert root == tmp_path / "mesos" / "sandboxes"
    assert task_of(task_pod(None), root) is None
    assert task_of(task_pod({"other": "x"}), root) is None
    host = task_of(task_pod({mesos.TASK_ID: "a b/c", mesos.HOST_COMMAND: "true"}), root)
    assert host == MesosTask("a b/c", True, None, root / "u-1")
    image = task_of(task_pod({mesos.TASK_ID: "x", mesos.URIS: "[]"}), root)
    assert image is not None and not image.host_command and image.uris == "[]"


@pytest.mark.parametrize(
    ("host_command", "driver", "inside", "mounts"),
    [
        (True, "process", "SANDBOX", []),
        (True, "oci", "SANDBOX", [("SANDBOX", "SANDBOX")]),
        (False, "process", "SANDBOX", []),
        (False, "oci", CONTAINER_SANDBOX, [("SANDBOX", CONTAINER_SANDBOX)]),
    ],
    ids=["host-process", "host-oci", "image-process", "image-oci"],
)
def test_where_the_sandbox_appears(
    tmp_path: Path, host_command: bool, driver: str, inside: str, mounts: list[tuple[str, str]]
) -> None:
    sandbox = tmp_path / "sb"
    sandbox.mkdir()
    task = MesosTask("t", host_command, None, sandbox)
    env = {"PATH": "/bin"}
    task_env(task, driver, env, own=())
    fill = str(sandbox)
    scratch = {"TMPDIR": f"{fill}/tmp"} if host_command and driver == "oci" else {}
    assert env == {
        "PATH": "/bin",
        "MESOS_SANDBOX": inside.replace("SANDBOX", fill),
        "MESOS_DIRECTORY": fill,
        **scratch,
    }
    got = [(m.host_path, m.container_path, m.read_only) for m in task_mounts(task, driver)]
    assert got == [
        (h.replace("SANDBOX", fill), c.replace("SANDBOX", fill), False) for h, c in mounts
    ]
    if scratch:  # a scratch dir as a /tmp is: the host's /tmp stays visible, read-only
        assert (sandbox / "tmp").stat().st_mode & 0o7777 == 0o1777


def test_the_containers_own_env_wins(tmp_path: Path) -> None:
    task = MesosTask("t", True, None, tmp_path)
    env = {"MESOS_SANDBOX": "/mine"}
    task_env(task, "process", env, own=["MESOS_SANDBOX"])
    assert env == {"MESOS_SANDBOX": "/mine", "MESOS_DIRECTORY": str(tmp_path)}


def test_prepare_sandbox_fetches_and_reports_bad_uris(tmp_path: Path) -> None:
    src = tmp_path / "script.sh"
    src.write_text("#!/bin/sh\n")
    uris = json.dumps([{"value": str(src), "executable": True}])
    task = MesosTask("t", True, uris, tmp_path / "sandboxes" / "u")
    assert prepare_sandbox(task) == 1
    assert (task.sandbox / "script.sh").stat().st_mode & 0o777 == 0o755
    assert prepare_sandbox(MesosTask("t", True, None, tmp_path / "sandboxes" / "v")) == 0
    with pytest.raises(FetchError, match="invalid URI list"):
        prepare_sandbox(MesosTask("t", True, "not json", tmp_path / "sandboxes" / "w"))


def test_orphan_sandboxes_are_those_of_pods_not_here(tmp_path: Path) -> None:
    assert orphan_sandboxes(tmp_path / "none", set()) == []
    for uid in ("a", "b", "c"):
        (tmp_path / uid).mkdir()
    assert orphan_sandboxes(tmp_path, {"b"}) == [tmp_path / "a", tmp_path / "c"]


def test_a_task_that_never_launched_is_failed_and_still_waiting() -> None:
    pod = task_pod({mesos.TASK_ID: "t"})
    st = new_pod_state(pod)
    c = st.containers["task"]
    c.waiting = ("CreateContainerError", "failed to fetch the task's URIs: HTTP 404")
    assert pod_phase(pod, st) == "Pending"
    c.done = True  # given up (restartPolicy Never)
    assert pod_phase(pod, st) == "Failed"
    status = pod_status(pod, st, "process", "127.0.0.1", 0.0)
    waiting = status["containerStatuses"][0]["state"]["waiting"]
    assert waiting == {
        "reason": "CreateContainerError",
        "message": "failed to fetch the task's URIs: HTTP 404",
    }
    # an init container given up before it ran fails the pod too
    pod["spec"]["initContainers"] = [{"name": "init", "image": "x"}]
    st = new_pod_state(pod)
    st.containers["init"].done = True
    assert pod_phase(pod, st) == "Failed"
    st.containers["init"].done, st.containers["init"].exit = False, ExitInfo(0, 0.0, 1.0)
    assert pod_phase(pod, st) == "Pending"


def _spec(**kw: Any) -> ContainerSpec:
    return ContainerSpec(
        pod_uid="u", namespace="n", pod_name="p", name="c", attempt=0, argv=["true"],
        env={}, log_path=Path("/x"), **kw,
    )  # fmt: skip


@pytest.mark.parametrize("netns", [None, "/run/netns/x"], ids=["host-network", "pod-network"])
def test_host_root_config_binds_the_host_read_only(netns: str | None) -> None:
    sandbox = Mount("/data/sb", "/data/sb")
    cfg = container_config(
        _spec(host_rootfs=True, mounts=(sandbox,), read_only_root=True),
        rootfs="/b/rootfs", env={}, pause_pid=7, netns=netns, etc_files={}, cgroups_path="/c",
    )  # fmt: skip
    mounts = cfg["mounts"]
    assert mounts[0] == HOST_ROOT_MOUNT and "rro" in HOST_ROOT_MOUNT["options"]
    assert cfg["root"] == {"path": "/b/rootfs", "readonly": False}  # rro does it
    dests = [m["destination"] for m in mounts]
    assert ("/sys" in dests) == (netns is not None)  # the host's sysfs cannot be remounted
    assert "/proc" in dests and "/dev" in dests and dests[-1] == "/data/sb"
    plain = container_config(
        _spec(), rootfs="/r", env={}, pause_pid=7, netns=netns, etc_files={}, cgroups_path="/c"
    )
    assert HOST_ROOT_MOUNT not in plain["mounts"]


def test_host_root_mount_points_must_exist_or_be_creatable(tmp_path: Path) -> None:
    sandbox = tmp_path / "sb"
    (sandbox / "tmp").mkdir(parents=True)
    ok = (
        Mount(str(sandbox / "tmp"), "/tmp"),
        Mount(str(sandbox), str(sandbox)),
        Mount("/srv/vol", str(sandbox / "new" / "vol")),  # inside the writable sandbox
        Mount("/srv/fuse", "/dev/fuse"),  # inside the container's own /dev
        Mount("/etc", "/etc", read_only=True),
        Mount("/srv/x", "/etc/passwd"),  # exists in the read-only mount's source
    )
    assert host_mount_problem(ok) is None
    problem = host_mount_problem((Mount("/srv/d", "/no-such-dir-on-this-host"),))
    assert problem is not None and '"/no-such-dir-on-this-host" does not exist' in problem
    over_etc = Mount(str(sandbox), "/etc", read_only=True)
    assert host_mount_problem((over_etc, Mount("/x", "/etc/tmp"))) is None
    assert host_mount_problem((over_etc, Mount("/x", "/etc/passwd"))) is not None
