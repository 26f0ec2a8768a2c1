"""Custom Mesos executors end to end: a real server, a real ``corral agent`` (``process``
runtime) and a real pymesos ``MesosExecutorDriver`` speaking the agent's executor API.

Two task-shaped pods are made by hand as the master makes them (the ``corral.api.mesos``
annotations, ``hostNetwork``, a host command, bound up front), both running the same
executor id, as two tasks of one executor do on one node. The executor (a script written
here, run by this venv's Python) answers TASK_RUNNING on its task, replies to a framework
message with its own and then finishes its task; on KILL it reports TASK_KILLED and stops
its driver, which cuts its stream, so that pymesos ``os.killpg(0, SIGKILL)``s its own
process group after the shutdown grace period.

Checks: the executor's environment and session; EXECUTOR_STATUS going RUNNING then
FINISHED; a message POSTed to ``/mesos/executor-message`` coming back as an
``ExecutorMessage`` Event carrying the executor's reply; a second pod of the same executor
id getting its own task over its own endpoint; deleting it sending KILL, the executor
killing its process group (well before the pod's grace period could have ended it) with
the agent unharmed; deleting the finished one sending SHUTDOWN; and nothing left behind.
Under ``oci`` (skipped where it cannot run), the same executor in a pod network of its
own reaches the agent on the host's bridge address.

The agent here is a stand-alone one on plain HTTP (``running_cluster(tls=False)``): the
executor API and the framework-message path share its one port and the admin token is
the key. Under TLS the executor API moves to a plain-HTTP port of its own and the agent
API checks its callers (``agent/server.py``); these tests do not cover that layout yet.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2ekit import Cluster, require, running_cluster

from corral.api import mesos
from corral.client.rest import KubeConfig

Obj = dict[str, Any]

FID, EID, NS = "fw-e2e", "e2e-executor", mesos.NAMESPACE
GRACE = 20  # the pods' terminationGracePeriodSeconds: far more than the executor needs

EXECUTOR = """\
import json, os, sys, time
from pymesos import Executor, MesosExecutorDriver, decode_data, encode_data

OUT = sys.argv[1]


def note(**kw):
    with open(OUT, "a") as f:
        f.write(json.dumps(kw) + "\\n")


class TestExecutor(Executor):
    def registered(self, driver, executor_info, framework_info, agent_info):
        env = {k: v for k, v in os.environ.items() if k.startswith("MESOS_")}
        note(event="registered", pid=os.getpid(), pgid=os.getpgid(0), sid=os.getsid(0),
             env=env, framework=framework_info, agent=agent_info)

    def launchTask(self, driver, task):
        self.task_id = task["task_id"]
        note(event="launch", task=task["task_id"]["value"], data=task.get("data"))
        driver.sendStatusUpdate({"task_id": self.task_id, "state": "TASK_RUNNING"})

    def frameworkMessage(self, driver, message):
        data = decode_data(message)
        note(event="message", data=data.decode())
        driver.sendFrameworkMessage(encode_data(b"pong:" + data))
        driver.sendStatusUpdate({"task_id": self.task_id, "state": "TASK_FINISHED"})

    def killTask(self, driver, task_id):
        note(event="kill", task=task_id["value"])
        driver.sendStatusUpdate({"task_id": task_id, "state": "TASK_KILLED"})
        note(event="killed-recorded")  # (the agent answers once it has recorded it)
        driver.stop()  # cuts the stream: pymesos shuts down and kills its process group

    def shutdown(self, driver):
        note(event="shutdown")


MesosExecutorDriver(TestExecutor()).run()
note(event="driver-stopped")
time.sleep(600)  # only pymesos' os.killpg(0, SIGKILL), or the agent, ends this
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require("process")
    base = tmp_path_factory.mktemp("mesos-executor")
    with running_cluster(base, "process", "mesos-executor", tls=False) as c:
        c.kubectl("create", "namespace", NS, check=False)
        yield c


@pytest.fixture(scope="module")
def oci_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require("oci")
    base = tmp_path_factory.mktemp("mesos-executor-oci")
    with running_cluster(base, "oci", "mesos-executor", tls=False) as c:
        c.kubectl("create", "namespace", NS, check=False)
        yield c


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def executor_pod(cluster: Cluster, name: str, script: Path, out: Path, **spec: Any) -> Obj:
    task_id = f"{name}.task"
    info = {
        "name": name,
        "task_id": {"value": task_id},
        "agent_id": {"value": cluster.agent.name},
        "data": b64(b"payload of " + name.encode()),
        "resources": [],
        "executor": {
            "executor_id": {"value": EID},
            "framework_id": {"value": FID},
            "command": {"value": f"{sys.executable} {script}"},
            "shutdown_grace_period": {"nanoseconds": 2_000_000_000},
        },
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {mesos.FRAMEWORK_ID: FID, mesos.TASK_HASH: mesos.label_safe(task_id)},
            "annotations": {
                mesos.TASK_ID: task_id,
                mesos.TASK_INFO: json.dumps(info),
                mesos.EXECUTOR_ID: EID,
                mesos.HOST_COMMAND: "true",
            },
        },
        "spec": {
            "containers": [
                {
                    "name": "task",
                    "image": mesos.HOST_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": [sys.executable, str(script), str(out)],
                }
            ],
            "restartPolicy": "Never",
            "enableServiceLinks": False,
            "automountServiceAccountToken": False,  # as the master's (mesos/taskpod.py)
            "hostNetwork": True,
            "schedulerName": mesos.SCHEDULER_NAME,  # nobody schedules it: bound up front
            "nodeName": cluster.agent.name,
            "terminationGracePeriodSeconds": GRACE,
            **spec,
        },
    }


def notes(out: Path) -> list[Obj]:
    try:
        return [json.loads(line) for line in out.read_text().splitlines()]
    except (OSError, ValueError):
        return []


def note(out: Path, event: str) -> Obj:
    found = [n for n in notes(out) if n["event"] == event]
    assert found, f"the executor never noted {event!r}: {notes(out)}"
    return found[0]


def executor_status(cluster: Cluster, name: str) -> Obj:
    annotations = cluster.pod(NS, name)["metadata"].get("annotations") or {}
    raw = annotations.get(mesos.EXECUTOR_STATUS)
    return dict(json.loads(raw)) if raw else {}


def wait_state(cluster: Cluster, name: str, state: str) -> Obj:
    cluster.wait(f"{name}: {state}", lambda: executor_status(cluster, name).get("state") == state)
    return executor_status(cluster, name)


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def accepts(endpoint: str) -> bool:
    host, port = endpoint.split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


class PodWatch:
    """Every version of one pod until it is deleted (``kubectl get -w``), in a thread."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.seen: list[Obj] = []
        self.proc = subprocess.Popen(
            ["kubectl", "--kubeconfig", str(cluster.server.kubeconfig), "get", "pod", name,
             "-n", NS, "-w", "-o", "json"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        decoder, buf = json.JSONDecoder(), ""
        for line in self.proc.stdout:
            buf += line
            try:
                obj, end = decoder.raw_decode(buf.strip())
            except ValueError:
                continue
            self.seen.append(obj)
            buf = buf.strip()[end:]

    def stop(self) -> list[Obj]:
        self.proc.terminate()
        self.proc.wait(10)
        self.thread.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return self.seen


def delete(cluster: Cluster, name: str) -> float:
    """Delete pod ``name`` and wait for it to go; how long that took."""
    t0 = time.monotonic()
    cluster.kubectl("delete", "pod", name, "-n", NS, "--wait=false")

    def gone() -> bool:
        res = cluster.kubectl("get", "pod", name, "-n", NS, "-o", "name", check=False)
        return res.returncode != 0 and "NotFound" in res.stderr

    cluster.wait(f"pod {name} gone", gone, timeout=GRACE - 5)
    return time.monotonic() - t0


def agent_alive(cluster: Cluster) -> bool:
    proc = cluster.agent.proc
    if proc is None or proc.poll() is not None:
        return False
    url = f"http://127.0.0.1:{cluster.agent.port}/healthz"
    with urllib.request.urlopen(url, timeout=5) as r:
        return bool(r.status == 200)


def test_a_pymesos_executor_runs_its_task_over_the_agent_s_executor_api(
    cluster: Cluster, tmp_path: Path
) -> None:
    script = tmp_path / "executor.py"
    script.write_text(EXECUTOR)
    out1, out2 = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    cluster.apply(NS, executor_pod(cluster, "first", script, out1))
    running = wait_state(cluster, "first", "TASK_RUNNING")
    assert running["source"] == "SOURCE_EXECUTOR"
    assert running["agent_id"] == {"value": cluster.agent.name}
    assert running["executor_id"] == {"value": EID}
    assert running["task_id"] == {"value": "first.task"}

    # its environment, and a session of its own (pymesos' killpg cannot reach the agent)
    pod1 = cluster.pod(NS, "first")
    sandbox = cluster.agent.data_dir / "mesos" / "sandboxes" / pod1["metadata"]["uid"]
    reg1 = note(out1, "registered")
    env = reg1["env"]
    assert env["MESOS_FRAMEWORK_ID"] == FID and env["MESOS_EXECUTOR_ID"] == EID
    assert env["MESOS_SANDBOX"] == env["MESOS_DIRECTORY"] == str(sandbox)
    assert env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"] == "2secs"
    assert env["MESOS_AGENT_ENDPOINT"].endswith(f":{cluster.agent.port}")
    assert "MESOS_CHECKPOINT" not in env
    agent_pid = cluster.agent.pid
    assert reg1["pgid"] == reg1["sid"] == reg1["pid"]
    assert reg1["pgid"] != os.getpgid(agent_pid) and reg1["sid"] != os.getsid(agent_pid)
    assert reg1["framework"]["id"] == {"value": FID}
    assert reg1["agent"]["id"] == {"value": cluster.agent.name}
    assert note(out1, "launch") == {
        "event": "launch",
        "task": "first.task",
        "data": b64(b"payload of first"),
    }

    # a framework message in, the executor's reply out as an Event, then its task ends
    token = KubeConfig.load(cluster.server.kubeconfig).token
    message = {"framework_id": FID, "executor_id": EID, "data": b64(b"ping")}
    req = urllib.request.Request(
        f"http://127.0.0.1:{cluster.agent.port}/mesos/executor-message",
        data=json.dumps(message).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 202
    event = cluster.wait_event(NS, "first", "ExecutorMessage")
    assert event["message"] == b64(b"pong:ping") and event["type"] == "Normal"
    assert event["involvedObject"]["uid"] == pod1["metadata"]["uid"]
    assert event["source"]["component"] == "corral-agent"
    assert event["reportingInstance"] == cluster.agent.name
    wait_state(cluster, "first", "TASK_FINISHED")

    # a second task of the same executor id on this node: its own endpoint, its own task
    cluster.apply(NS, executor_pod(cluster, "second", script, out2))
    wait_state(cluster, "second", "TASK_RUNNING")
    uids = [pod1["metadata"]["uid"], cluster.pod(NS, "second")["metadata"]["uid"]]
    reg2 = note(out2, "registered")
    endpoints = [reg1["env"]["MESOS_AGENT_ENDPOINT"], reg2["env"]["MESOS_AGENT_ENDPOINT"]]
    assert endpoints[0] != endpoints[1]
    assert note(out2, "launch")["task"] == "second.task"
    assert executor_status(cluster, "first")["state"] == "TASK_FINISHED"

    # deleting it: KILL; the executor reports TASK_KILLED, cuts its stream and pymesos
    # kills its process group after 2 s; the agent lives on
    watch = PodWatch(cluster, "second")
    took = delete(cluster, "second")
    versions = watch.stop()
    assert took < GRACE - 5  # the executor ended itself: the agent would have waited GRACE
    assert note(out2, "kill")["task"] == "second.task"
    note(out2, "killed-recorded")
    states = [
        json.loads(v["metadata"]["annotations"][mesos.EXECUTOR_STATUS])["state"]
        for v in versions
        if mesos.EXECUTOR_STATUS in (v["metadata"].get("annotations") or {})
    ]
    assert "TASK_KILLED" in states, states
    assert not pid_alive(reg2["pid"])
    assert agent_alive(cluster)

    # deleting the finished one: SHUTDOWN (nothing to kill), and it goes the same way
    delete(cluster, "first")
    note(out1, "shutdown")
    assert "kill" not in [n["event"] for n in notes(out1)]
    assert not pid_alive(reg1["pid"])
    assert agent_alive(cluster)

    # nothing left: sandboxes, pod directories, cgroups, endpoints
    data = cluster.agent.data_dir
    left = [
        p
        for uid in uids
        for p in (data / "pods" / uid, data / "mesos" / "sandboxes" / uid)
        if p.exists()
    ]
    cgroups = Path("/sys/fs/cgroup")
    left += [
        p
        for uid in uids
        for p in (*cgroups.glob(f"*/corral/{uid}"), cgroups / "corral" / uid)
        if p.exists()
    ]
    assert not left
    assert not any(accepts(e) for e in endpoints)


def test_a_pod_network_executor_reaches_the_agent_from_its_own_network(
    oci_cluster: Cluster,
) -> None:
    """Under ``oci``, a task pod off the host network (its own network and pid namespace)
    dials the host's address on its bridge, where the agent listens for it (the agent
    itself is on 127.0.0.1), and is known there by its pod IP."""
    cluster = oci_cluster
    # the task sees the host's root read-only and a /tmp of its own: its files live in a
    # host directory outside /tmp, bound in read-write at the same path
    shared = Path("/var/tmp") / f"corral-e2e-executor-{os.getpid()}"
    shared.mkdir(parents=True, exist_ok=True)
    try:
        script, out = shared / "executor.py", shared / "podnet.jsonl"
        script.write_text(EXECUTOR)
        manifest = executor_pod(cluster, "podnet", script, out, hostNetwork=False)
        manifest["spec"]["volumes"] = [{"name": "shared", "hostPath": {"path": str(shared)}}]
        manifest["spec"]["containers"][0]["volumeMounts"] = [
            {"name": "shared", "mountPath": str(shared)}
        ]
        cluster.apply(NS, manifest)
        wait_state(cluster, "podnet", "TASK_RUNNING")
        pod = cluster.pod(NS, "podnet")
        assert pod["status"]["podIP"] != pod["status"]["hostIP"]
        reg = note(out, "registered")
        host = reg["env"]["MESOS_AGENT_ENDPOINT"].rsplit(":", 1)[0]
        assert host not in ("127.0.0.1", pod["status"]["podIP"]) and not host.startswith("127.")
        assert reg["pid"] == 1  # a pid namespace of its own: killpg(0) stays inside
        token = KubeConfig.load(cluster.server.kubeconfig).token
        message = {"framework_id": FID, "executor_id": EID, "data": b64(b"hello")}
        req = urllib.request.Request(
            f"http://127.0.0.1:{cluster.agent.port}/mesos/executor-message",
            data=json.dumps(message).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 202
        event = cluster.wait_event(NS, "podnet", "ExecutorMessage")
        assert event["message"] == b64(b"pong:hello")
        wait_state(cluster, "podnet", "TASK_FINISHED")
        assert delete(cluster, "podnet") < GRACE - 5  # SHUTDOWN: it ended itself
        note(out, "shutdown")
        assert agent_alive(cluster)
        assert not accepts(f"{host}:{cluster.agent.port}")  # its listener went with it
    finally:
        shutil.rmtree(shared, ignore_errors=True)
