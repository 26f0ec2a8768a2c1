"""``kubectl logs`` / ``kubectl exec`` and the ``kubernetes`` client, through the real API
server to a real ``AgentServer``.

The agent server runs in a background thread with its own event loop, over a test
``ContainerLookup`` that serves CRI log files written here and runs exec commands as
real host subprocesses. A Node object points at it (InternalIP 127.0.0.1 and its port in
``daemonEndpoints``); pods bound to that node have Running container statuses.
"""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.stream import stream

from conftest import Kubectl, Raw, RunningServer, api_client_for, start_server
from corral.agent.drivers.base import ContainerHandle, ExecSession
from corral.agent.drivers.shimctl import spawn_exec
from corral.agent.server import AgentServer
from corral.testing.process import free_port

NS = "logs"
NODE = "agent-node"
STARTED = "2026-01-01T00:00:00Z"


# --- a ContainerLookup over files and host processes ----------------------------------------
class HostExecDriver:
    """Just the ``exec`` part of a Driver: runs the command on the host, with the drivers'
    own exec sessions (pipes, or a pty for ``tty``)."""

    name = "test"

    async def exec(
        self, handle: ContainerHandle, argv: list[str], *, tty: bool, stdin: bool
    ) -> ExecSession:
        return await spawn_exec(argv, tty=tty, stdin=stdin, cwd=handle.state_dir)


class FileLookup:
    """Containers are directories ``root/<ns>/<pod>/logs/<container>/<attempt>.log``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.running: dict[tuple[str, str, str], bool] = {}

    def dir(self, ns: str, pod: str, container: str) -> Path:
        return self.root / ns / pod / "logs" / container

    def log_files(self, namespace: str, pod: str, container: str) -> list[Path] | None:
        d = self.dir(namespace, pod, container)
        if not d.is_dir():
            return None
        return sorted(d.glob("*.log"), key=lambda p: int(p.stem))

    def is_running(self, namespace: str, pod: str, container: str) -> bool:
        return self.running.get((namespace, pod, container), False)

    def exec_target(self, namespace: str, pod: str, container: str) -> Any:
        if not self.is_running(namespace, pod, container):
            return None
        handle = ContainerHandle(
            id=f"{pod}-{container}",
            pod_uid="uid",
            name=container,
            attempt=0,
            pid=0,
            started_at=0.0,
            state_dir=str(self.root),
        )
        return HostExecDriver(), handle


class AgentThread:
    """An AgentServer on its own event loop in a daemon thread."""

    def __init__(self, lookup: FileLookup, token: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = AgentServer(lookup, token, host="127.0.0.1", port=0, node_name=NODE)

    def __enter__(self) -> AgentServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self.server

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


# --- fixtures -----------------------------------------------------------------------------
def cri(when: datetime, stream_name: str, text: str, partial: bool = False) -> str:
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"
    return f"{stamp} {stream_name} {'P' if partial else 'F'} {text}\n"


def running_status(name: str, restarts: int = 0) -> dict[str, Any]:
    st: dict[str, Any] = {
        "name": name,
        "ready": True,
        "restartCount": restarts,
        "image": "busybox",
        "imageID": "",
        "containerID": f"process://{name}-{restarts}",
        "started": True,
        "state": {"running": {"startedAt": STARTED}},
        "lastState": {},
    }
    if restarts:
        st["lastState"] = {
            "terminated": {
                "exitCode": 1,
                "reason": "Error",
                "startedAt": STARTED,
                "finishedAt": STARTED,
                "containerID": f"process://{name}-{restarts - 1}",
            }
        }
    return st


def pod(name: str, containers: list[str], node: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": c, "image": "busybox"} for c in containers]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name}, "spec": spec}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    s = start_server(tmp_path_factory.mktemp("logs-exec") / "data", extra=["--no-scheduler"])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def v1(srv: RunningServer) -> Iterator[client.CoreV1Api]:
    with api_client_for(srv.kubeconfig) as c:
        yield client.CoreV1Api(c)


@pytest.fixture(scope="module")
def kubectl(srv: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(srv.kubeconfig, tmp_path_factory.mktemp("kubecache"))


@pytest.fixture(scope="module")
def lookup(tmp_path_factory: pytest.TempPathFactory) -> FileLookup:
    lk = FileLookup(tmp_path_factory.mktemp("node"))
    now = datetime.now(UTC)
    c1 = lk.dir(NS, "p1", "c1")
    c1.mkdir(parents=True)
    (c1 / "0.log").write_text(cri(now - timedelta(minutes=5), "stdout", "previous attempt"))
    (c1 / "1.log").write_text(
        cri(now - timedelta(hours=2), "stdout", "old line")
        + cri(now - timedelta(seconds=3), "stdout", "al", partial=True)
        + cri(now - timedelta(seconds=3), "stdout", "pha")
        + cri(now - timedelta(seconds=2), "stderr", "beta")
        + cri(now - timedelta(seconds=1), "stdout", "gamma")
    )
    c2 = lk.dir(NS, "p1", "c2")
    c2.mkdir(parents=True)
    (c2 / "0.log").write_text(cri(now, "stdout", "c2 says hi"))
    follow = lk.dir(NS, "p-follow", "c1")
    follow.mkdir(parents=True)
    (follow / "0.log").write_text(cri(now, "stdout", "first"))
    for key in ((NS, "p1", "c1"), (NS, "p1", "c2"), (NS, "p-follow", "c1")):
        lk.running[key] = True
    return lk


@pytest.fixture(scope="module")
def cluster(srv: RunningServer, v1: client.CoreV1Api, lookup: FileLookup) -> Iterator[AgentServer]:
    with AgentThread(lookup, srv.token) as agent:
        nodes = {
            NODE: {
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": agent.port}},
            },
            "dead-node": {  # an agent that is not listening
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": free_port()}},
            },
            "portless-node": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]},
        }
        for name, status in nodes.items():
            v1.create_node({"metadata": {"name": name}})
            v1.patch_node_status(name, {"status": status})
        v1.create_namespace({"metadata": {"name": NS}})
        pods = {
            "p1": (["c1", "c2"], NODE, [running_status("c1", 1), running_status("c2")]),
            "p-wait": (
                ["c1"],
                NODE,
                [
                    {
                        "name": "c1",
                        "ready": False,
                        "restartCount": 0,
                        "image": "busybox",
                        "imageID": "",
                        "state": {"waiting": {"reason": "ContainerCreating"}},
                    }
                ],
            ),
            "p-follow": (["c1"], NODE, [running_status("c1")]),
            "p-unbound": (["c1"], None, []),
            "p-dead": (["c1"], "dead-node", [running_status("c1")]),
            "p-portless": (["c1"], "portless-node", [running_status("c1")]),
        }
        for name, (containers, node, statuses) in pods.items():
            v1.create_namespaced_pod(NS, pod(name, containers, node))
            if statuses:
                v1.patch_namespaced_pod_status(
                    name, NS, {"status": {"phase": "Running", "containerStatuses": statuses}}
                )
        yield agent


# --- logs -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "out"),
    [
        (["-c", "c1"], "old line\nalpha\nbeta\ngamma\n"),
        (["-c", "c2"], "c2 says hi\n"),
        (["-c", "c1", "--tail=2"], "beta\ngamma\n"),
        (["-c", "c1", "--since=1h"], "alpha\nbeta\ngamma\n"),
        (["-c", "c1", "--previous"], "previous attempt\n"),
        (["-c", "c1", "--limit-bytes=6"], "old li"),
    ],
    ids=["c1", "c2", "tail", "since", "previous", "limit-bytes"],
)
def test_kubectl_logs(cluster: AgentServer, kubectl: Kubectl, args: list[str], out: str) -> None:
    assert kubectl("logs", "-n", NS, "p1", *args).stdout == out


def test_kubectl_logs_defaults_to_the_first_container(
    cluster: AgentServer, kubectl: Kubectl
) -> None:
    res = kubectl("logs", "-n", NS, "p1")
    assert res.stdout == "old line\nalpha\nbeta\ngamma\n"
    assert 'Defaulted container "c1" out of: c1, c2' in res.stderr


def test_kubectl_logs_timestamps(cluster: AgentServer, kubectl: Kubectl) -> None:
    lines = kubectl("logs", "-n", NS, "p1", "-c", "c1", "--timestamps").stdout.splitlines()
    texts = [line.split(" ", 1)[1] for line in lines]
    assert texts[0] == "old line" and texts[2:] == ["beta", "gamma"]
    # as the kubelet does, every record gets its time, the partial one too
    assert re.fullmatch(r"al\S+Z pha", texts[1]), texts[1]
    stamp = lines[0].split(" ", 1)[0]
    assert stamp.endswith("123Z")
    age = datetime.now(UTC) - datetime.fromisoformat(stamp[:26] + "+00:00")
    assert timedelta(hours=1) < age < timedelta(hours=3)


def test_kubectl_logs_follow_until_the_container_exits(
    cluster: AgentServer, kubectl: Kubectl, lookup: FileLookup
) -> None:
    key = (NS, "p-follow", "c1")
    log = lookup.dir(*key) / "0.log"
    cmd = [
        "kubectl", "--kubeconfig", str(kubectl.kubeconfig), "--cache-dir",
        str(kubectl.cache_dir), "logs", "-f", "-n", NS, "p-follow",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert lines.get(timeout=15) == "first\n"
        with log.open("a") as f:
            f.write(cri(datetime.now(UTC), "stderr", "more"))
        assert lines.get(timeout=15) == "more\n"
        assert proc.poll() is None  # still following
        lookup.running[key] = False  # the container exits
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(5)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_logs_follow_ends_upstream_when_the_client_leaves(
    cluster: AgentServer, kubectl: Kubectl
) -> None:
    def count() -> int:
        return cluster.active_log_streams

    cmd = [
        "kubectl", "--kubeconfig", str(kubectl.kubeconfig), "--cache-dir",
        str(kubectl.cache_dir), "logs", "-f", "-n", NS, "p1", "-c", "c1",
    ]  # fmt: skip
    # its own process group: the kubectl dispatcher runs the real kubectl as a child
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "old line\n"
        assert count() == 1  # the agent is following c1 (which keeps running)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15
        while count() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert count() == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["p1", "-c", "c9"], "container c9 is not valid for pod p1"),
        (
            ["p1", "-c", "c2", "--previous"],
            'previous terminated container "c2" in pod "p1" not found',
        ),
        (["p-unbound"], "pod p-unbound does not have a host assigned"),
        (["p-wait"], 'container "c1" in pod "p-wait" is waiting to start: ContainerCreating'),
        (["p-dead"], "connect: connection refused"),
        (["p-portless"], 'node "portless-node" has no agent endpoint'),
    ],
    ids=["bad-container", "no-previous", "unbound", "waiting", "agent-down", "no-agent-port"],
)
def test_kubectl_logs_errors(
    cluster: AgentServer, kubectl: Kubectl, args: list[str], message: str
) -> None:
    res = kubectl("logs", "-n", NS, *args, check=False)
    assert res.returncode != 0 and message in res.stderr, res.stderr


def test_log_without_container_on_a_two_container_pod(
    cluster: AgentServer, srv: RunningServer
) -> None:
    status, _, body = Raw(srv)("GET", f"/api/v1/namespaces/{NS}/pods/p1/log")
    assert status == 400
    assert b"a container name must be specified for pod p1, choose one of: [c1 c2]" in body


def test_python_client_logs(cluster: AgentServer, v1: client.CoreV1Api) -> None:
    assert v1.read_namespaced_pod_log("p1", NS, container="c1", tail_lines=1) == "gamma\n"
    assert v1.read_namespaced_pod_log("p1", NS, container="c1", previous=True) == (
        "previous attempt\n"
    )


# --- exec -----------------------------------------------------------------------------------
def test_kubectl_exec_separates_streams_and_exit_code(
    cluster: AgentServer, kubectl: Kubectl
) -> None:
    res = kubectl(
        "exec", "-n", NS, "p1", "-c", "c1", "--", "sh", "-c", "echo out; echo err >&2; exit 3",
        check=False,
    )  # fmt: skip
    assert res.returncode == 3, res.stderr
    assert res.stdout == "out\n"
    assert "err\n" in res.stderr
    assert "command terminated with exit code 3" in res.stderr


def test_kubectl_exec_success(cluster: AgentServer, kubectl: Kubectl) -> None:
    res = kubectl("exec", "-n", NS, "p1", "-c", "c2", "--", "echo", "hello", "world")
    assert res.stdout == "hello world\n"


def test_kubectl_exec_stdin(cluster: AgentServer, kubectl: Kubectl) -> None:
    data = "".join(f"line {i}\n" for i in range(2000))
    res = kubectl("exec", "-i", "-n", NS, "p1", "-c", "c1", "--", "cat", input=data)
    assert res.stdout == data


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["p1", "-c", "c9", "--", "true"], "container c9 is not valid for pod p1"),
        (["p-unbound", "--", "true"], "pod p-unbound does not have a host assigned"),
        (["p-wait", "--", "true"], 'container not found ("c1")'),
        (["p-dead", "--", "true"], "connect: connection refused"),
    ],
    ids=["bad-container", "unbound", "waiting", "agent-down"],
)
def test_kubectl_exec_errors(
    cluster: AgentServer, kubectl: Kubectl, args: list[str], message: str
) -> None:
    res = kubectl("exec", "-n", NS, *args, check=False)
    assert res.returncode != 0 and message in res.stderr, res.stderr


def test_exec_without_command(cluster: AgentServer, srv: RunningServer) -> None:
    status, _, body = Raw(srv)("GET", f"/api/v1/namespaces/{NS}/pods/p1/exec?container=c1")
    assert status == 400 and b"you must specify at least 1 command" in body


def test_python_client_exec(cluster: AgentServer, v1: client.CoreV1Api) -> None:
    resp = stream(
        v1.connect_get_namespaced_pod_exec,
        "p1",
        NS,
        container="c1",
        command=["sh", "-c", "echo hi; echo oops >&2; exit 7"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    deadline = time.monotonic() + 15
    out, err = "", ""
    while resp.is_open() and time.monotonic() < deadline:
        resp.update(timeout=1)
        out += resp.read_stdout() if resp.peek_stdout() else ""
        err += resp.read_stderr() if resp.peek_stderr() else ""
    assert not resp.is_open()
    out += resp.read_stdout() if resp.peek_stdout() else ""
    err += resp.read_stderr() if resp.peek_stderr() else ""
    resp.close()
    # the client leaves its socket open when the server closed first (its close() returns
    # early): close it, or the test run ends with an unclosed-socket warning
    resp.sock.shutdown()
    assert (out, err, resp.returncode) == ("hi\n", "oops\n", 7)


def test_python_client_exec_tty(cluster: AgentServer, v1: client.CoreV1Api) -> None:
    resp = stream(
        v1.connect_get_namespaced_pod_exec,
        "p1",
        NS,
        container="c1",
        command=["sh", "-c", "test -t 1 && echo on a tty; echo to stderr >&2; exit 5"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=True,
        _preload_content=False,
    )
    deadline = time.monotonic() + 15
    while resp.is_open() and time.monotonic() < deadline:
        resp.update(timeout=1)
    out = resp.read_stdout() if resp.peek_stdout() else ""
    resp.close()
    resp.sock.shutdown()
    assert out.replace("\r\n", "\n") == "on a tty\nto stderr\n"
    assert resp.returncode == 5
