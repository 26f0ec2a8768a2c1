"""``kubectl run -it --rm``, ``kubectl attach`` and ``kubectl debug`` on real ``oci`` pods.

``pods/attach`` (``apiserver/attach.py`` -> ``agent/attach.py`` -> conmon's attach socket)
and ``pods/ephemeralcontainers`` (``apiserver/ephemeral.py``; the agent starts the
container in its target's PID namespace), driven by the real kubectl (through a
pseudo-terminal, with pexpect, where it needs one) and the real Python client; and a
``process`` pod, whose output is attached to through its log. Needs root, runc, the CNI
plugins and conmon; skips with the reason otherwise. The ``oci`` agent has a bridge and
pod CIDR of its own, so that other clusters on this host do not hold it up.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
from e2ekit import Cluster, phase, pod_manifest, require, running, running_cluster

from corral.agent.drivers.conmon import conmon_binary

EXPECT_TIMEOUT = 30
BRIDGE = "corral-attach"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require("oci")
    if conmon_binary() is None:
        pytest.skip("conmon is not installed (apt-get install conmon)")
    # a bridge and pod CIDR of its own: other clusters on this host may hold corral0
    agent_args = ["--bridge", BRIDGE, "--pod-cidr", "10.86.0.0/24"]
    try:
        with running_cluster(
            tmp_path_factory.mktemp("attach"), "oci", "attach", agent_args=agent_args
        ) as c:
            yield c
    finally:
        subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True, check=False)


def _kubectl_argv(cluster: Cluster, *args: str) -> list[str]:
    k = cluster.kubectl
    return ["--kubeconfig", str(k.kubeconfig), "--cache-dir", str(k.cache_dir), *args]


def _spawn(cluster: Cluster, *args: str) -> pexpect.spawn:
    """kubectl on a new 30x100 pseudo-terminal."""
    child = pexpect.spawn(
        "kubectl",
        _kubectl_argv(cluster, *args),
        timeout=EXPECT_TIMEOUT,
        dimensions=(30, 100),
        encoding="utf-8",
        codec_errors="replace",
    )
    return child


def _expect(cluster: Cluster, child: pexpect.spawn, pattern: Any) -> int:
    """``child.expect(pattern)``, failing with what kubectl printed and the agent's log."""
    try:
        return int(child.expect(pattern))
    except (pexpect.TIMEOUT, pexpect.EOF) as e:
        raise AssertionError(
            f"kubectl never printed {pattern!r} ({type(e).__name__}); it printed:\n"
            f"{child.before!r}\nagent log:\n{cluster.agent.log_tail(30)}"
        ) from None


def _gone(cluster: Cluster, ns: str, name: str) -> bool:
    res = cluster.kubectl("get", "pod", name, "-n", ns, "-o", "name", check=False)
    return res.returncode != 0 and "NotFound" in res.stderr


@pytest.mark.parametrize("flags", ["-it", "-i"], ids=["tty", "pipe"])
def test_run_rm_script_exit_code(cluster: Cluster, flags: str) -> None:
    """A here-string script through ``kubectl run -it --rm`` (a pty: ``stdin`` and ``tty``)
    and ``-i`` (a pipe, closed after the attach: ``stdinOnce``): its output, its exit
    code, and the pod deleted afterwards."""
    ns = cluster.ns()
    res = cluster.kubectl(
        "run", flags, "--rm", "--restart=Never", "t", f"--image={cluster.image}", "-n", ns,
        "--", "sh",
        input="echo out-$((6*7)); exit 3\n", check=False,
    )  # fmt: skip
    assert res.returncode == 3, (res.stdout, res.stderr)
    assert "couldn't attach" not in res.stderr, res.stderr  # (no fallback to the logs)
    assert "out-42" in res.stdout, (res.stdout, res.stderr)
    assert 'pod "t" deleted' in res.stdout + res.stderr
    cluster.wait("pod t deleted", lambda: _gone(cluster, ns, "t"))


TICKER = "i=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.2; done"


def _kubectl_attach_lines(cluster: Cluster, ns: str, pod: str, n: int) -> list[str]:
    """The first ``n`` lines ``kubectl attach POD`` prints; checks they are consecutive
    ticks."""
    with subprocess.Popen(
        ["kubectl", *_kubectl_argv(cluster, "attach", pod, "-n", ns)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline() for _ in range(n)]
        finally:
            proc.kill()
    assert all(line.startswith("tick-") for line in lines), lines
    numbers = [int(line.strip().removeprefix("tick-")) for line in lines]
    assert numbers == list(range(numbers[0], numbers[0] + n)), numbers
    return lines


def test_attach_to_output(cluster: Cluster) -> None:
    """``kubectl attach`` and the Python client's ``connect_get_namespaced_pod_attach``
    stream a running container's output."""
    from kubernetes import client, config
    from kubernetes.stream import stream

    ns = cluster.ns()
    cluster.apply(ns, pod_manifest("ticker", cluster.image, ["sh", "-c", TICKER]))
    cluster.wait_pod(ns, "ticker", running)
    _kubectl_attach_lines(cluster, ns, "ticker", 3)

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(cluster.server.kubeconfig), client_configuration=cfg)
    with client.ApiClient(cfg) as api:
        resp = stream(
            client.CoreV1Api(api).connect_get_namespaced_pod_attach,
            "ticker", ns, stdout=True, stderr=True, stdin=False, tty=False,
            _preload_content=False,
        )  # fmt: skip
        try:
            out = ""
            for _ in range(50):
                resp.update(timeout=1)
                out += resp.read_stdout()
                if out.count("\n") >= 2:
                    break
        finally:
            resp.close()
    assert out.startswith("tick-") and out.count("\n") >= 2, out


def test_attach_it_types_into_tty(cluster: Cluster) -> None:
    """``kubectl attach -it`` to a ``stdin``/``tty`` container: typed lines reach its shell,
    the pty has the client's size, and the session ends with the shell."""
    ns = cluster.ns()
    container = {"stdin": True, "tty": True}
    cluster.apply(
        ns, pod_manifest("shell", cluster.image, ["sh"], container=container, restartPolicy="Never")
    )
    cluster.wait_pod(ns, "shell", running)
    child = _spawn(cluster, "attach", "-it", "shell", "-n", ns)
    try:
        _expect(cluster, child, "If you don't see a command prompt")
        child.sendline("echo typed-$((6*7))")
        _expect(cluster, child, "typed-42")
        # kubectl sends its size beside the input, not before it: ask until it is applied
        for _ in range(30):
            child.sendline("stty size")
            if _expect(cluster, child, [r"30 100", r"\d+ \d+"]) == 0:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(
                f"the pty never got kubectl's size, 30 rows and 100 columns: it says "
                f"{child.after!r}\nagent log:\n{cluster.agent.log_tail(30)}"
            )
        child.sendline("exit 4")
        _expect(cluster, child, pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, child.before
    pod = cluster.wait_pod(ns, "shell", phase("Failed"))
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 4


def test_debug_target_sees_its_processes(cluster: Cluster) -> None:
    """``kubectl debug -it --target``: an ephemeral container in the target's PID
    namespace, attached through a pty; ``ps`` shows the target's process."""
    ns = cluster.ns()
    cluster.apply(ns, pod_manifest("app", cluster.image, ["sleep", "7777"]))
    cluster.wait_pod(ns, "app", running)
    child = _spawn(
        cluster, "debug", "-it", "pod/app", f"--image={cluster.image}", "--target=main",
        "-n", ns, "--", "sh",
    )  # fmt: skip
    try:
        _expect(cluster, child, "If you don't see a command prompt")
        child.sendline("ps -o pid,args")
        _expect(cluster, child, r"1 sleep 7777")
        child.sendline("exit")
        _expect(cluster, child, pexpect.EOF)
    finally:
        child.close(force=True)
    pod = cluster.pod(ns, "app")
    [ec] = pod["spec"]["ephemeralContainers"]
    assert ec["targetContainerName"] == "main" and ec["name"].startswith("debugger-")

    def terminated() -> bool:
        statuses = cluster.pod(ns, "app")["status"].get("ephemeralContainerStatuses") or []
        return bool(statuses) and "terminated" in statuses[0]["state"]

    cluster.wait("the debugger's status turns terminated", terminated)
    assert running(cluster.pod(ns, "app"))  # the pod itself carries on

    # the subresource: GET answers the Pod; existing ephemeral containers stay as they are
    got = json.loads(
        cluster.kubectl(
            "get", "--raw", f"/api/v1/namespaces/{ns}/pods/app/ephemeralcontainers"
        ).stdout
    )
    assert got["kind"] == "Pod" and got["spec"]["ephemeralContainers"] == [ec]
    patch = {"spec": {"ephemeralContainers": [{**ec, "image": "other:1"}]}}
    res = cluster.kubectl(
        "patch", "pod", "app", "-n", ns, "--subresource=ephemeralcontainers",
        "--type=strategic", "-p", json.dumps(patch), check=False,
    )  # fmt: skip
    assert res.returncode != 0
    assert f'existing ephemeral containers \\"{ec["name"]}\\" may not be changed' in res.stderr or (
        f'existing ephemeral containers "{ec["name"]}" may not be changed' in res.stderr
    ), res.stderr


def test_python_client_attach_writes_text_frames(cluster: Cluster) -> None:
    """The Python client's ``write_stdin(str)`` and its resize JSON are text frames: both
    reach the container (a shell on a tty answers ``stty size`` with the sent size)."""
    from kubernetes import client, config
    from kubernetes.stream import stream

    ns = cluster.ns()
    container = {"stdin": True, "tty": True}
    cluster.apply(ns, pod_manifest("tty", cluster.image, ["sh"], container=container))
    cluster.wait_pod(ns, "tty", running)
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(cluster.server.kubeconfig), client_configuration=cfg)
    with client.ApiClient(cfg) as api:
        resp = stream(
            client.CoreV1Api(api).connect_get_namespaced_pod_attach,
            "tty", ns, stdin=True, stdout=True, stderr=True, tty=True,
            _preload_content=False,
        )  # fmt: skip
        try:
            resp.write_channel(4, json.dumps({"Width": 91, "Height": 17}))  # a text frame
            resp.write_stdin("echo typed-$((6*7)); stty size\n")  # a text frame
            out = ""
            for _ in range(30):
                resp.update(timeout=1)
                out += resp.read_stdout()
                if "typed-42" in out and "17 91" in out:
                    break
        finally:
            resp.close()
    assert "typed-42" in out and "17 91" in out, out


def test_debug_target_that_is_not_running_is_a_config_error(cluster: Cluster) -> None:
    """As the kubelet: an ephemeral container whose target does not run is not started
    in a PID namespace of its own; it waits, ``CreateContainerConfigError``."""
    from e2ekit import state_of

    ns = cluster.ns()
    pod = pod_manifest("done", cluster.image, ["true"], restartPolicy="Never")
    pod["spec"]["containers"].append(
        {"name": "side", "image": cluster.image, "command": ["sleep", "7777"]}
    )
    cluster.apply(ns, pod)
    cluster.wait("main exits", lambda: "terminated" in state_of(cluster.pod(ns, "done"), "main"))
    patch = {"spec": {"ephemeralContainers": [
        {"name": "dbg", "image": cluster.image, "command": ["sleep", "60"],
         "targetContainerName": "main"},
    ]}}  # fmt: skip
    cluster.kubectl(
        "patch", "pod", "done", "-n", ns, "--subresource=ephemeralcontainers",
        "--type=strategic", "-p", json.dumps(patch),
    )  # fmt: skip

    def waiting() -> dict[str, Any]:
        statuses = cluster.pod(ns, "done")["status"].get("ephemeralContainerStatuses") or []
        state = statuses[0]["state"] if statuses else {}
        assert "running" not in state and "terminated" not in state, state
        return dict(state.get("waiting") or {})

    cluster.wait(
        "the debugger waits", lambda: waiting().get("reason") == "CreateContainerConfigError"
    )
    assert waiting()["message"] == "unable to find target container main"


def test_attach_to_output_without_attach_socket(tmp_path: Path) -> None:
    """The ``process`` runtime has no attach socket: ``kubectl attach`` follows the
    container's log instead (output only)."""
    require("process")
    with running_cluster(tmp_path, "process", "attachproc") as c:
        ns = c.ns()
        script = f"echo to-stderr >&2; {TICKER}"
        c.apply(ns, pod_manifest("ticker", c.image, ["sh", "-c", script]))
        c.wait_pod(ns, "ticker", running)
        _kubectl_attach_lines(c, ns, "ticker", 3)
        c.kubectl("delete", "pod", "ticker", "-n", ns, "--grace-period=1")
