# ruff: noqa: F811  (the fixture ``cluster`` is imported from e2ekit; see its docstring)
"""Mesos task pods end to end: a real server, a real ``corral agent`` (``process`` and
``oci`` runtimes) and task-shaped pods made by hand as the master makes them (the
``corral.api.mesos`` annotations, ``hostNetwork``, ``restartPolicy: Never``, the
``corral-mesos`` scheduler name and a node bound up front), fetching their URIs from an
HTTP server on 127.0.0.1 that this module runs.

Checks: the URIs land in the sandbox (a tarball extracted, an executable made so); the
command runs in the sandbox with ``MESOS_SANDBOX``/``MESOS_DIRECTORY``, on the host's
filesystem (``oci``: read-only, the sandbox writable), its output in ``kubectl logs`` and
in the sandbox's ``stdout``; a 64Mi limit holds (a memory hog is OOMKilled); a fetch
failure fails the task with the reason in its status; an image task sees its sandbox at
``/mnt/mesos/sandbox`` (``oci``); and after deletion no sandbox, mount or cgroup is left.
"""

from __future__ import annotations

import http.server
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2ekit import (
    Cluster,
    Obj,
    cluster,  # noqa: F401
    container_state,
    phase,
    pod_manifest,
    running,
)

from corral.api import mesos
from corral.testing.wait import eventually as until

HELLO = b"#!/bin/sh\necho hello from the fetched script\n"
TOOL = b"#!/bin/sh\necho tool ran\n"


def _tarball(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


FILES = {"/pkg/app.tgz": _tarball({"app/hello.sh": HELLO}), "/pkg/tool": TOOL}


class _Files(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = FILES.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def files_url() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving ``FILES`` (the agent fetches from it)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def task_pod(
    cluster: Cluster,
    name: str,
    script: str,
    uris: list[Obj],
    *,
    image: str | None = None,
    memory: str = "64Mi",
) -> Obj:
    """A pod shaped as the master shapes a task: host command unless ``image``."""
    annotations = {mesos.TASK_ID: f"{name}.task-id", mesos.URIS: json.dumps(uris)}
    if image is None:
        annotations[mesos.HOST_COMMAND] = "true"
    container: Obj = {
        "name": "task",
        "image": image or mesos.HOST_IMAGE,
        "imagePullPolicy": "Never" if image is None else "IfNotPresent",
        "command": ["sh", "-c", script],
        "resources": {"limits": {"cpu": "500m", "memory": memory}},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {mesos.FRAMEWORK_ID: "fw-1", mesos.TASK_HASH: mesos.label_safe(name)},
            "annotations": annotations,
        },
        "spec": {
            "containers": [container],
            "restartPolicy": "Never",
            "enableServiceLinks": False,
            "automountServiceAccountToken": False,  # as the master's (mesos/taskpod.py)
            "hostNetwork": True,
            "schedulerName": mesos.SCHEDULER_NAME,  # nobody schedules it: bound up front
            "nodeName": cluster.agent.name,
            "terminationGracePeriodSeconds": 5,
        },
    }


def sandbox_of(cluster: Cluster, pod: Obj) -> Path:
    return cluster.agent.data_dir / "mesos" / "sandboxes" / str(pod["metadata"]["uid"])


def mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split(" ")[4] for line in f]


def cgroup_dirs(uid: str) -> list[Path]:
    root = Path("/sys/fs/cgroup")
    return [p for p in (*root.glob(f"*/corral/{uid}"), root / "corral" / uid) if p.exists()]


def delete_and_check_nothing_is_left(cluster: Cluster, ns: str, pod: Obj) -> None:
    """Delete ``pod`` and wait for it to go; then no sandbox, mount or cgroup of it may
    remain on this host."""
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    sandbox = sandbox_of(cluster, pod)
    cluster.kubectl("delete", "pod", name, "-n", ns, "--wait=true", timeout=60)
    # (a finished pod's object goes at once; the agent reclaims its resources right after)
    pod_dir = cluster.agent.data_dir / "pods" / uid
    cluster.wait("the sandbox removed", lambda: not sandbox.exists() and not pod_dir.exists())
    leftovers = [m for m in mount_points() if uid in m or str(sandbox) in m]
    assert not leftovers, leftovers
    assert not cgroup_dirs(uid)


def test_host_command_task_runs_in_its_fetched_sandbox(cluster: Cluster, files_url: str) -> None:
    ns = cluster.ns()
    probe = ""
    if cluster.runtime == "oci":  # (under process a write would really land on the host)
        probe = (
            "if touch /usr/corral-ro-probe 2>/dev/null; then echo root-writable;"
            ' else echo root-read-only; fi; echo tmp > "$TMPDIR/t" && echo tmp-writable; '
        )
    script = (
        'set -e; ./app/hello.sh > "$MESOS_SANDBOX/out"; ./bin/tool >> out; '
        'echo "sandbox=$MESOS_SANDBOX directory=$MESOS_DIRECTORY pwd=$(pwd)"; '
        f"cat out; cat /etc/hostname; {probe}echo to-stderr >&2"
    )
    uris: list[Obj] = [
        {"value": f"{files_url}/pkg/app.tgz"},
        {"value": f"{files_url}/pkg/tool", "executable": True, "output_file": "bin/tool"},
    ]
    cluster.apply(ns, task_pod(cluster, "hosttask", script, uris))
    pod = cluster.wait_pod(ns, "hosttask", phase("Succeeded"))
    sandbox = sandbox_of(cluster, pod)
    logs = cluster.logs(ns, "hosttask")
    assert f"sandbox={sandbox} directory={sandbox} pwd={sandbox}" in logs
    assert "hello from the fetched script\ntool ran\n" in logs
    assert Path("/etc/hostname").read_text().strip() in logs.splitlines()  # the host's file
    if cluster.runtime == "oci":  # the host's root read-only, a TMPDIR in the sandbox
        assert "root-read-only" in logs and "tmp-writable" in logs
        assert (sandbox / "tmp" / "t").read_text() == "tmp\n"
    # the sandbox holds what was fetched, what the task wrote, and Mesos' stdout/stderr
    assert (sandbox / "app.tgz").is_file() and (sandbox / "app" / "hello.sh").is_file()
    assert (sandbox / "bin" / "tool").stat().st_mode & 0o777 == 0o755
    assert (sandbox / "out").read_text() == "hello from the fetched script\ntool ran\n"
    assert "hello from the fetched script" in (sandbox / "stdout").read_text()
    assert (sandbox / "stderr").read_text() == "to-stderr\n"
    delete_and_check_nothing_is_left(cluster, ns, pod)


def test_host_command_task_memory_limit_holds(cluster: Cluster, files_url: str) -> None:
    ns = cluster.ns()
    hog = "echo hogging; exec dd if=/dev/zero of=/dev/null bs=200M count=1"
    cluster.apply(ns, task_pod(cluster, "hog", hog, []))
    pod = cluster.wait_pod(ns, "hog", phase("Failed"))
    term = container_state(pod)["state"]["terminated"]
    assert (term["reason"], term["exitCode"]) == ("OOMKilled", 137)
    fits = "dd if=/dev/zero of=/dev/null bs=16M count=1 && echo fits"
    cluster.apply(ns, task_pod(cluster, "fits", fits, []))
    cluster.wait_pod(ns, "fits", phase("Succeeded"))
    assert "fits" in cluster.logs(ns, "fits")
    delete_and_check_nothing_is_left(cluster, ns, pod)


def test_fetch_failure_fails_the_task_with_the_reason(cluster: Cluster, files_url: str) -> None:
    ns = cluster.ns()
    missing = f"{files_url}/pkg/missing.tgz"
    cluster.apply(ns, task_pod(cluster, "nofetch", "echo never", [{"value": missing}]))
    pod = cluster.wait_pod(ns, "nofetch", phase("Failed"))
    waiting = container_state(pod)["state"]["waiting"]
    assert waiting["reason"] == "CreateContainerError"
    assert missing in waiting["message"] and "HTTP 404" in waiting["message"]
    describe = cluster.kubectl("describe", "pod", "nofetch", "-n", ns).stdout
    assert "CreateContainerError" in describe and "failed to fetch the task's URIs" in describe
    until(lambda: any(e["reason"] == "Failed" for e in cluster.events(ns, "nofetch")), timeout=10)
    delete_and_check_nothing_is_left(cluster, ns, pod)


def test_image_task_sees_its_sandbox_where_mesos_puts_it(cluster: Cluster, files_url: str) -> None:
    ns = cluster.ns()
    script = 'echo "sandbox=$MESOS_SANDBOX pwd=$(pwd)"; ./app/hello.sh > out; cat out'
    uris = [{"value": f"{files_url}/pkg/app.tgz"}]
    cluster.apply(ns, task_pod(cluster, "imgtask", script, uris, image=cluster.image))
    pod = cluster.wait_pod(ns, "imgtask", phase("Succeeded"))
    sandbox = sandbox_of(cluster, pod)
    inside = "/mnt/mesos/sandbox" if cluster.runtime == "oci" else str(sandbox)
    logs = cluster.logs(ns, "imgtask")
    assert f"sandbox={inside} pwd={inside}" in logs
    assert "hello from the fetched script" in logs
    assert (sandbox / "out").read_text() == "hello from the fetched script\n"
    delete_and_check_nothing_is_left(cluster, ns, pod)
    # and the agent's data directory holds no mount of any finished task
    data = str(cluster.agent.data_dir) + "/"
    assert not [m for m in mount_points() if m.startswith(data)]


def test_host_command_task_in_a_pod_network(cluster: Cluster, files_url: str) -> None:
    if cluster.runtime != "oci":
        pytest.skip("process-runtime pods always use the host's network")
    ns = cluster.ns()
    script = "cat /etc/hostname; ls /sys/class/net; echo done"
    manifest = task_pod(cluster, "podnet", script, [])
    manifest["spec"]["hostNetwork"] = False
    cluster.apply(ns, manifest)
    pod = cluster.wait_pod(ns, "podnet", phase("Succeeded"))
    logs = cluster.logs(ns, "podnet").split()
    assert logs[0] == "podnet" and "eth0" in logs and logs[-1] == "done"
    assert pod["status"]["podIP"] != pod["status"]["hostIP"]
    delete_and_check_nothing_is_left(cluster, ns, pod)


def test_a_running_host_task_holds_no_other_pod_s_mounts(cluster: Cluster, files_url: str) -> None:
    """The host root is bound into the task's mount namespace with every mount the host had
    then (another pod's rootfs and network namespace included); those must still go when
    that pod goes, while the task runs on."""
    if cluster.runtime != "oci":
        pytest.skip("process-runtime pods have no mount namespace")
    ns = cluster.ns()
    sleeper = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    cluster.apply(ns, pod_manifest("other", cluster.image, sleeper))
    other = cluster.wait_pod(ns, "other", running)
    cluster.apply(ns, task_pod(cluster, "longtask", sleeper[-1], []))
    task = cluster.wait_pod(ns, "longtask", running)
    cluster.kubectl("delete", "pod", "other", "-n", ns, "--wait=true", timeout=60)
    uid = other["metadata"]["uid"]
    cluster.wait("the other pod reclaimed", lambda: not cgroup_dirs(uid))
    data = str(cluster.agent.data_dir / "oci" / "containers") + "/"
    assert not [m for m in mount_points() if m.startswith(data)]
    assert not list(Path("/run/netns").glob("corral-" + uid.replace("-", "")[:16]))
    assert cluster.pod(ns, "longtask")["status"]["phase"] == "Running"
    delete_and_check_nothing_is_left(cluster, ns, task)
