# ruff: noqa: F811  (the fixture ``cluster`` is imported from e2ekit; see its docstring)
"""The pod lifecycle end to end, as Kubernetes defines it: probes (httpGet, tcpSocket, exec,
the startup gate), restart policies and the crash-loop back-off, init container failure,
envFrom and the downward API, configMap/secret/emptyDir volumes (a configMap updated in
place), graceful termination with SIGKILL after the grace, ``kubectl logs -f / --tail /
--previous``, ``kubectl exec -it`` through a real pseudo-terminal, and the kubelet's Events.

A real server, a local registry with busybox, and a real ``corral agent`` subprocess per
runtime (``process`` and ``oci``), driven with the real kubectl, as ``test_pods.py``. The
process runtime runs the container's command on the host (no mount namespace, pod IP
127.0.0.1), so tests of volume contents and the hostname are oci-only, and paths the
containers use are unique per test. Needs root; skips with the reason otherwise.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from e2ekit import (
    Cluster,
    Obj,
    cluster,  # noqa: F401
    condition,
    container_state,
    phase,
    pod_manifest,
    running,
    state_of,
)

from corral.testing.process import free_port
from corral.testing.wait import eventually as until

#: the agents re-read configMap and secret volumes every second, not every 10 s: the
#: update that ``test_configmap_and_secret_volumes_follow_updates`` waits for comes sooner
AGENT_ARGS = ["--volume-refresh-seconds", "1"]


def table_status(cluster: Cluster, ns: str, name: str) -> str:
    """The STATUS column of ``kubectl get pod``."""
    out = cluster.kubectl("get", "pod", name, "-n", ns, "--no-headers").stdout
    return str(out.split()[2])


def host_dir(manifest: Obj, path: Path) -> None:
    """Mount host directory ``path`` at its own path into every container: the same
    directory for both runtimes (the process runtime sees the host's file system)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    manifest["spec"].setdefault("volumes", []).append(
        {"name": "host", "hostPath": {"path": str(path)}}
    )
    for c in manifest["spec"]["containers"]:
        c.setdefault("volumeMounts", []).append({"name": "host", "mountPath": str(path)})


def _is_pod_event(ev: Obj, pod: Obj, container: str = "main") -> bool:
    """``ev`` is about ``pod`` (and its container, as the kubelet's fieldPath says)."""
    io = ev["involvedObject"]
    meta = pod["metadata"]
    return bool(
        io.get("kind") == "Pod"
        and io.get("apiVersion") == "v1"
        and io.get("name") == meta["name"]
        and io.get("namespace") == meta["namespace"]
        and io.get("uid") == meta["uid"]
        and io.get("fieldPath") == f"spec.containers{{{container}}}"
    )


# --- probes ---------------------------------------------------------------------------------


def test_readiness_http_probe_gates_ready_until_the_file_is_served(cluster: Cluster) -> None:
    ns = cluster.ns()
    port = free_port()
    www = f"/tmp/www-{uuid.uuid4().hex[:8]}"  # the host's /tmp for the process runtime
    cmd = ["sh", "-c", f"mkdir -p {www}; exec busybox httpd -f -p {port} -h {www}"]
    probe = {"httpGet": {"path": "/ready", "port": port}, "periodSeconds": 1}
    manifest = pod_manifest("web", cluster.image, cmd, container={"readinessProbe": probe})
    try:
        cluster.apply(ns, manifest)
        pod = cluster.wait_pod(ns, "web", running)
        # running but not ready: the probe gets 404 until the file exists
        ev = cluster.wait_event(ns, "web", "Unhealthy", "statuscode: 404")
        assert ev["message"] == "Readiness probe failed: HTTP probe failed with statuscode: 404"
        pod = cluster.pod(ns, "web")
        assert condition(pod, "Ready") == "False"
        assert condition(pod, "ContainersReady") == "False"
        assert container_state(pod)["ready"] is False
        assert table_status(cluster, ns, "web") == "Running"
        cluster.exec(ns, "web", "touch", f"{www}/ready")
        pod = cluster.wait_pod(ns, "web", lambda p: condition(p, "Ready") == "True")
        assert condition(pod, "ContainersReady") == "True"
        assert condition(pod, "Initialized") == "True"
        assert condition(pod, "PodScheduled") == "True"
        assert container_state(pod)["ready"] is True
        ip = pod["status"]["podIP"]
        assert pod["status"]["hostIP"] == "127.0.0.1"
        if cluster.runtime == "oci":  # the pod's own address on the CNI bridge
            assert ip != "127.0.0.1"
        with urllib.request.urlopen(f"http://{ip}:{port}/ready", timeout=5) as r:
            assert r.status == 200
        # the kubelet's events for the start, about this pod
        reasons = {e["reason"] for e in cluster.events(ns, "web") if _is_pod_event(e, pod)}
        want = {"Created", "Started", "Unhealthy"}
        if cluster.runtime == "oci":
            want.add("Pulled")
        assert want <= reasons
    finally:
        shutil.rmtree(www, ignore_errors=True)


# the probe and the restart are the agent's; an oci pod's own address is dialled by the
# readiness probe above, an oci liveness restart in test_pods.py's liveness test
@pytest.mark.one_runtime("process")
def test_tcp_liveness_probe_restarts_when_the_port_closes(cluster: Cluster) -> None:
    ns = cluster.ns()
    port = free_port()
    script = f"busybox httpd -f -p {port} -h / & sleep 2; kill $!; echo closed; sleep 3600"
    probe = {"tcpSocket": {"port": port}, "periodSeconds": 1, "failureThreshold": 1}
    # sh as an oci container's PID 1 ignores the SIGTERM of the restart: 1 s of grace, not 5
    manifest = pod_manifest(
        "tcp", cluster.image, ["sh", "-c", script], container={"livenessProbe": probe},
        terminationGracePeriodSeconds=1,
    )  # fmt: skip
    cluster.apply(ns, manifest)
    pod = cluster.wait_pod(ns, "tcp", lambda p: container_state(p).get("restartCount", 0) >= 1)
    assert container_state(pod)["lastState"]["terminated"]
    events = [e for e in cluster.events(ns, "tcp") if _is_pod_event(e, pod)]
    unhealthy = [e["message"] for e in events if e["reason"] == "Unhealthy"]
    assert any(m.startswith("Liveness probe failed: dial tcp") for m in unhealthy), unhealthy
    killing = [e["message"] for e in events if e["reason"] == "Killing"]
    assert "Container main failed liveness probe, will be restarted" in killing


@pytest.mark.one_runtime("process")  # the probes' gating is the agent's (exec probes: both)
def test_startup_probe_holds_liveness_and_readiness_until_it_succeeds(cluster: Cluster) -> None:
    ns = cluster.ns()
    mark = f"/tmp/started-{uuid.uuid4().hex[:8]}"
    check = {"exec": {"command": ["test", "-e", mark]}, "periodSeconds": 1}
    container = {
        "startupProbe": {**check, "failureThreshold": 120},
        # would kill the container at once if it ran before the startup probe passed
        "livenessProbe": {**check, "failureThreshold": 1},
        "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
    }
    try:
        cluster.apply(
            ns, pod_manifest("slow", cluster.image, ["sleep", "3600"], container=container)
        )
        cluster.wait_pod(ns, "slow", running)
        until(lambda: _startup_failures(cluster, ns) >= 2, timeout=20, interval=0.2)
        pod = cluster.pod(ns, "slow")
        cs = container_state(pod)
        assert cs["started"] is False and cs["ready"] is False and cs["restartCount"] == 0
        assert condition(pod, "Ready") == "False"
        cluster.exec(ns, "slow", "touch", mark)
        pod = cluster.wait_pod(ns, "slow", lambda p: container_state(p).get("ready") is True)
        cs = container_state(pod)
        assert cs["started"] is True and cs["restartCount"] == 0
        assert condition(pod, "Ready") == "True"
    finally:
        Path(mark).unlink(missing_ok=True)


def _startup_failures(cluster: Cluster, ns: str) -> int:
    return sum(
        int(e.get("count") or 1)
        for e in cluster.events(ns, "slow")
        if e["reason"] == "Unhealthy" and e["message"].startswith("Startup probe failed")
    )


# --- restart policies, back-off, logs --------------------------------------------------------


# restart policies, phases and the previous run's log are the agent's; an oci container
# restarted in test_pods.py's liveness test, its exit codes in test_pods.py's oci runs
@pytest.mark.one_runtime("process")
def test_restart_policies_phases_and_previous_logs(cluster: Cluster, tmp_path: Path) -> None:
    ns = cluster.ns()
    count = tmp_path / "count"
    flaky_cmd = (
        f"n=$(cat {count}/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}/n; "
        "echo attempt-$n; exit 1"
    )
    flaky = pod_manifest("flaky", cluster.image, ["sh", "-c", flaky_cmd], restartPolicy="OnFailure")
    host_dir(flaky, count)
    cluster.apply(ns, flaky)
    ok = pod_manifest("ok", cluster.image, ["sh", "-c", "echo done"], restartPolicy="OnFailure")
    cluster.apply(ns, ok)
    never = pod_manifest("never", cluster.image, ["sh", "-c", "exit 3"], restartPolicy="Never")
    cluster.apply(ns, never)

    pod = cluster.wait_pod(ns, "ok", phase("Succeeded"))
    term = state_of(pod)["terminated"]
    assert (term["reason"], term["exitCode"]) == ("Completed", 0)
    assert container_state(pod)["restartCount"] == 0
    assert condition(pod, "Ready") == "False"
    assert table_status(cluster, ns, "ok") == "Completed"

    pod = cluster.wait_pod(ns, "never", phase("Failed"))
    term = state_of(pod)["terminated"]
    assert (term["reason"], term["exitCode"]) == ("Error", 3)
    assert container_state(pod)["restartCount"] == 0
    assert table_status(cluster, ns, "never") == "Error"

    # OnFailure + exit 1: restarted at once, then held in CrashLoopBackOff (10 s)
    pod = cluster.wait_pod(
        ns,
        "flaky",
        lambda p: (
            container_state(p).get("restartCount") == 1
            and state_of(p).get("waiting", {}).get("reason") == "CrashLoopBackOff"
        ),
    )
    assert pod["status"]["phase"] == "Running"
    assert container_state(pod)["lastState"]["terminated"]["exitCode"] == 1
    assert cluster.logs(ns, "flaky").split() == ["attempt-2"]
    assert cluster.logs(ns, "flaky", "--previous").split() == ["attempt-1"]
    backoff = cluster.wait_event(ns, "flaky", "BackOff")
    assert _is_pod_event(backoff, pod)
    assert backoff["message"].startswith("Back-off restarting failed container main")


# the agent serves the logs (each driver's CRI log file: test_harness.py, both runtimes'
# output in kubectl logs: test_pods.py's first test)
@pytest.mark.one_runtime("process")
def test_logs_follow_ends_with_the_container_and_tail(cluster: Cluster) -> None:
    ns = cluster.ns()
    script = "echo line-1; echo line-2; sleep 2; echo line-3"
    cluster.apply(
        ns, pod_manifest("lines", cluster.image, ["sh", "-c", script], restartPolicy="Never")
    )
    cluster.wait_pod(ns, "lines", lambda p: running(p) or phase("Succeeded")(p))
    follow = cluster.kubectl("logs", "-f", "lines", "-n", ns, timeout=30)
    assert follow.stdout.split() == ["line-1", "line-2", "line-3"]
    cluster.wait_pod(ns, "lines", phase("Succeeded"))
    assert cluster.logs(ns, "lines", "--tail=1").split() == ["line-3"]
    assert cluster.logs(ns, "lines", "--since=1h").split() == ["line-1", "line-2", "line-3"]
    stamped = cluster.logs(ns, "lines", "--timestamps", "--tail=2").splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["line-2", "line-3"]


# --- init containers ------------------------------------------------------------------------


# the init containers' gating is the agent's; an oci init container runs in test_pods.py
@pytest.mark.one_runtime("process")
def test_failed_init_container_fails_the_pod_with_never(cluster: Cluster) -> None:
    ns = cluster.ns()
    manifest = pod_manifest("initfail", cluster.image, ["sleep", "3600"], restartPolicy="Never")
    manifest["spec"]["initContainers"] = [
        {"name": "init", "image": cluster.image, "command": ["sh", "-c", "echo nope; exit 2"]}
    ]
    cluster.apply(ns, manifest)
    pod = cluster.wait_pod(ns, "initfail", phase("Failed"))
    term = state_of(pod, "init", init=True)["terminated"]
    assert (term["reason"], term["exitCode"]) == ("Error", 2)
    assert state_of(pod, "main") == {"waiting": {"reason": "PodInitializing"}}
    assert condition(pod, "Initialized") == "False"
    assert condition(pod, "Ready") == "False"
    assert table_status(cluster, ns, "initfail") == "Init:Error"
    assert "nope" in cluster.logs(ns, "initfail", "-c", "init")

    looping = pod_manifest("initloop", cluster.image, ["sleep", "3600"])
    looping["spec"]["initContainers"] = manifest["spec"]["initContainers"]
    cluster.apply(ns, looping)
    cluster.wait_pod(
        ns,
        "initloop",
        lambda p: (
            state_of(p, "init", init=True).get("waiting", {}).get("reason") == "CrashLoopBackOff"
        ),
    )
    pod = cluster.pod(ns, "initloop")
    assert pod["status"]["phase"] == "Pending"
    assert table_status(cluster, ns, "initloop") == "Init:CrashLoopBackOff"


# --- env and volumes ------------------------------------------------------------------------


def test_env_from_configmap_with_prefix_secret_and_downward_api(cluster: Cluster) -> None:
    ns = cluster.ns()
    cluster.kubectl("create", "configmap", "settings", "-n", ns,
                    "--from-literal=COLOR=blue", "--from-literal=SIZE=9")  # fmt: skip
    cluster.kubectl("create", "secret", "generic", "creds", "-n", ns, "--from-literal=TOKEN=s3cr3t")
    show = "echo C=$CFG_COLOR/$CFG_SIZE T=$TOKEN NS=$NS NODE=$NODE IP=$IP; sleep 3600"
    container = {
        "envFrom": [
            {"prefix": "CFG_", "configMapRef": {"name": "settings"}},
            {"secretRef": {"name": "creds"}},
        ],
        "env": [
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ],
    }
    cluster.apply(ns, pod_manifest("env", cluster.image, ["sh", "-c", show], container=container))
    pod = cluster.wait_pod(ns, "env", running)
    want = f"C=blue/9 T=s3cr3t NS={ns} NODE={cluster.agent.name} IP={pod['status']['podIP']}"
    until(lambda: cluster.logs(ns, "env").strip() == want, timeout=10, interval=0.2)


def test_configmap_and_secret_volumes_follow_updates(cluster: Cluster) -> None:
    if cluster.runtime != "oci":
        pytest.skip("the process runtime has no mount namespace")
    ns = cluster.ns()
    cluster.kubectl("create", "configmap", "cfg", "-n", ns, "--from-literal=greeting=hello")
    cluster.kubectl("create", "secret", "generic", "sec", "-n", ns, "--from-literal=token=t0k")
    manifest = pod_manifest(
        "vols", cluster.image, ["sleep", "3600"],
        container={"volumeMounts": [
            {"name": "cfg", "mountPath": "/cfg"},
            {"name": "sec", "mountPath": "/sec", "readOnly": True},
        ]},
    )  # fmt: skip
    manifest["spec"]["volumes"] = [
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "sec", "secret": {"secretName": "sec"}},
    ]
    cluster.apply(ns, manifest)
    cluster.wait_pod(ns, "vols", running)
    assert cluster.exec(ns, "vols", "cat", "/cfg/greeting") == "hello"
    assert cluster.exec(ns, "vols", "cat", "/sec/token") == "t0k"
    cluster.kubectl("patch", "configmap", "cfg", "-n", ns, "-p", '{"data":{"greeting":"bonjour"}}')
    cluster.kubectl("patch", "secret", "sec", "-n", ns, "-p", '{"data":{"token":"bjN3"}}')
    until(lambda: cluster.exec(ns, "vols", "cat", "/cfg/greeting") == "bonjour", timeout=25)
    until(lambda: cluster.exec(ns, "vols", "cat", "/sec/token") == "n3w", timeout=25)
    assert condition(cluster.pod(ns, "vols"), "Ready") == "True"  # the container kept running
    assert container_state(cluster.pod(ns, "vols"))["restartCount"] == 0


def test_empty_dir_is_shared_by_the_containers_of_a_pod(cluster: Cluster) -> None:
    if cluster.runtime != "oci":
        pytest.skip("the process runtime has no mount namespace")
    ns = cluster.ns()
    mount = {"volumeMounts": [{"name": "scratch", "mountPath": "/data"}]}
    writer = ["sh", "-c", "echo from-$(hostname) > /data/note; sleep 3600"]
    manifest = pod_manifest("pair", cluster.image, writer, container=mount)
    manifest["spec"]["containers"].append(
        {"name": "reader", "image": cluster.image, "command": ["sleep", "3600"], **mount}
    )
    manifest["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    cluster.apply(ns, manifest)
    cluster.wait_pod(ns, "pair", lambda p: condition(p, "Ready") == "True")

    def shared() -> bool:
        res = cluster.kubectl("exec", "pair", "-n", ns, "-c", "reader", "--", "cat", "/data/note",
                              check=False)  # fmt: skip
        return bool(res.stdout.strip() == "from-pair")

    until(shared, timeout=10, interval=0.2)


# --- termination ----------------------------------------------------------------------------


# the grace is timed by the agent; each driver's SIGKILL after a grace is in
# test_harness.py::test_stop_kills_after_grace, an oci SIGTERM on delete in test_pods.py
@pytest.mark.one_runtime("process")
def test_container_ignoring_sigterm_is_killed_after_the_grace_period(
    cluster: Cluster, tmp_path: Path
) -> None:
    ns = cluster.ns()
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    log = out / "ticks"
    # SIGTERM is noted and ignored; ticks go on until SIGKILL (a hostPath at its own path
    # is the same file for both runtimes)
    script = (
        f"trap 'echo TERM >> {log}' TERM; echo started; "
        f"while true; do echo tick >> {log}; sleep 0.2; done"
    )
    manifest = pod_manifest("stubborn", cluster.image, ["sh", "-c", script])
    manifest["spec"]["terminationGracePeriodSeconds"] = 2
    manifest["spec"]["containers"][0]["volumeMounts"] = [{"name": "out", "mountPath": str(out)}]
    manifest["spec"]["volumes"] = [{"name": "out", "hostPath": {"path": str(out)}}]
    cluster.apply(ns, manifest)
    pod = cluster.wait_pod(ns, "stubborn", running)
    until(lambda: "started" in cluster.logs(ns, "stubborn"), timeout=10, interval=0.2)
    cluster.kubectl("delete", "pod", "stubborn", "-n", ns, "--wait=true", timeout=60)
    lines = log.read_text().split()
    assert "TERM" in lines  # SIGTERM came first ...
    assert "tick" in lines[lines.index("TERM") + 1 :]  # ... it kept running through the grace ...
    final = log.read_text()
    time.sleep(1.0)
    assert log.read_text() == final  # ... and was killed: no tick after the pod is gone
    killing = [e for e in cluster.events(ns, "stubborn") if e["reason"] == "Killing"]
    assert killing and _is_pod_event(killing[0], pod)
    assert killing[0]["message"] == "Stopping container main"


# --- exec through a terminal ----------------------------------------------------------------


def _run_in_pty(argv: list[str], line: bytes, timeout: float = 30.0) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as stdin/stdout/stderr; once it prints
    something (the remote shell's prompt) type ``line``; return (exit code, output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out = bytearray()
    sent = False
    started = time.monotonic()
    deadline = started + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every writer of the terminal is gone
                    break
                if not chunk:
                    break
                out += chunk
            if not sent and (out or time.monotonic() - started > 5):
                os.write(master, line)
                sent = True
        return proc.wait(timeout=max(1.0, deadline - time.monotonic())), out.decode(
            errors="replace"
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_exec_it_through_a_real_terminal_returns_the_exit_code(cluster: Cluster) -> None:
    ns = cluster.ns()
    cluster.apply(ns, pod_manifest("term", cluster.image, ["sleep", "3600"]))
    cluster.wait_pod(ns, "term", running)
    k = cluster.kubectl
    argv = ["kubectl", "--kubeconfig", str(k.kubeconfig), "--cache-dir", str(k.cache_dir),
            "exec", "-it", "term", "-n", ns, "--", "sh"]  # fmt: skip
    rc, out = _run_in_pty(argv, b"echo h''i; exit 3\r")
    assert rc == 3, out
    assert "hi" in [line.strip() for line in out.splitlines()], out
