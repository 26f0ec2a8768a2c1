# ruff: noqa: F811  (the fixture ``cluster`` is imported from e2ekit; see its docstring)
"""Real pods end to end: a real server and scheduler, a real ``corral agent`` with the
``oci`` runtime (runc, CNI bridge, images pulled from a local registry built from
busybox-static) and the ``process`` runtime, driven with the real kubectl.

The oci module needs root, runc, the CNI plugins, skopeo, umoci and docker-registry; it
skips with the reason when one is missing (CI installs them all, see scripts/test-deps.sh).
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

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

from corral.testing.wait import eventually as until


def test_pod_runs_and_its_output_is_in_kubectl_logs(cluster: Cluster) -> None:
    ns = cluster.ns()
    cmd = ["sh", "-c", "echo hello from $0; echo to-stderr >&2; sleep 3600"]
    cluster.apply(ns, pod_manifest("hello", cluster.image, cmd))
    pod = cluster.wait_pod(ns, "hello", running)
    assert pod["status"]["podIP"]
    assert pod["status"]["hostIP"] == "127.0.0.1"
    conds = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conds["Ready"] == "True" and conds["ContainersReady"] == "True"

    def logged() -> bool:
        out = cluster.kubectl("logs", "hello", "-n", ns).stdout
        return "hello from sh" in out and "to-stderr" in out

    until(logged, timeout=10)
    out = cluster.kubectl("logs", "hello", "-n", ns, "--timestamps").stdout
    assert out.splitlines()[0].split(" ", 1)[0].endswith("Z")
    table = cluster.kubectl("get", "pod", "hello", "-n", ns).stdout
    assert "Running" in table and "1/1" in table


def test_exec_prints_the_pod_hostname_and_returns_exit_codes(cluster: Cluster) -> None:
    ns = cluster.ns()
    cluster.apply(ns, pod_manifest("ex", cluster.image, ["sleep", "3600"]))
    cluster.wait_pod(ns, "ex", running)
    if cluster.runtime == "oci":
        out = cluster.kubectl("exec", "ex", "-n", ns, "--", "hostname").stdout
        assert out.strip() == "ex"
    res = cluster.kubectl("exec", "ex", "-n", ns, "--", "sh", "-c", "echo out; exit 3", check=False)
    assert res.returncode == 3
    assert "out" in res.stdout
    assert "command terminated with exit code 3" in res.stderr


def test_graceful_delete_delivers_sigterm_first(cluster: Cluster, tmp_path: Path) -> None:
    ns = cluster.ns()
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    # a hostPath mounted at its own path: the same file for both runtimes
    script = (
        f"trap 'echo TERM >> {out}/signals; exit 0' TERM; echo started; "
        "while true; do sleep 0.1; done"
    )
    manifest = pod_manifest(
        "grace", cluster.image, ["sh", "-c", script],
        container={"volumeMounts": [{"name": "out", "mountPath": str(out)}]},
    )  # fmt: skip
    manifest["spec"]["volumes"] = [{"name": "out", "hostPath": {"path": str(out)}}]
    cluster.apply(ns, manifest)
    cluster.wait_pod(ns, "grace", running)
    until(lambda: "started" in cluster.kubectl("logs", "grace", "-n", ns).stdout, timeout=10)
    cluster.kubectl("delete", "pod", "grace", "-n", ns, "--wait=true", timeout=60)
    assert (out / "signals").read_text().split() == ["TERM"]


def test_memory_hog_is_oom_killed_and_64mi_limit_holds(cluster: Cluster) -> None:
    ns = cluster.ns()
    limits = {"resources": {"limits": {"memory": "64Mi"}}}
    hog = ["sh", "-c", "echo hogging; exec dd if=/dev/zero of=/dev/null bs=200M count=1"]
    cluster.apply(
        ns, pod_manifest("hog", cluster.image, hog, container=limits, restartPolicy="Never")
    )
    pod = cluster.wait_pod(ns, "hog", phase("Failed"))
    term = container_state(pod)["state"]["terminated"]
    assert term["reason"] == "OOMKilled"
    assert term["exitCode"] == 137
    ok = ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=16M count=1 && echo fits"]
    cluster.apply(
        ns, pod_manifest("fits", cluster.image, ok, container=limits, restartPolicy="Never")
    )
    cluster.wait_pod(ns, "fits", phase("Succeeded"))
    assert "fits" in cluster.kubectl("logs", "fits", "-n", ns).stdout


def test_failing_liveness_probe_restarts_the_container(cluster: Cluster) -> None:
    ns = cluster.ns()
    probe = {
        "livenessProbe": {
            "exec": {"command": ["sh", "-c", "test -e /tmp/healthy-$HOSTNAME_MARK"]},
            "periodSeconds": 1,
            "failureThreshold": 1,
            # killed with the probe's grace, not the pod's 60 s (more than the wait below:
            # an ``sh`` as PID 1 ignores SIGTERM), as the kubelet since 1.25
            "terminationGracePeriodSeconds": 1,
        },
        "env": [{"name": "HOSTNAME_MARK", "value": uuid.uuid4().hex}],
    }
    cmd = [
        "sh",
        "-c",
        "touch /tmp/healthy-$HOSTNAME_MARK; sleep 2; rm -f /tmp/healthy-$HOSTNAME_MARK; sleep 3600",
    ]
    live = pod_manifest("live", cluster.image, cmd, container=probe)
    live["spec"]["terminationGracePeriodSeconds"] = 60
    cluster.apply(ns, live)
    pod = cluster.wait_pod(
        ns, "live", lambda p: container_state(p).get("restartCount", 0) >= 1, timeout=40
    )
    events = cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout
    reasons = {e["reason"] for e in json.loads(events)["items"]}
    assert "Unhealthy" in reasons and "Killing" in reasons
    assert pod["status"]["containerStatuses"][0]["lastState"]["terminated"]


@pytest.mark.one_runtime("process")  # the back-off is the agent's, ~10 s a runtime
def test_crash_loop_backs_off_with_growing_delays(cluster: Cluster) -> None:
    ns = cluster.ns()
    cluster.apply(ns, pod_manifest("crash", cluster.image, ["sh", "-c", "echo boom; exit 1"]))
    pod = cluster.wait_pod(
        ns, "crash",
        lambda p: (container_state(p).get("state") or {}).get("waiting", {}).get("reason") == "CrashLoopBackOff",
        timeout=40,
    )  # fmt: skip
    cs = container_state(pod)
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert (
        "back-off 10s" in cs["state"]["waiting"]["message"]
        or "back-off 20s" in cs["state"]["waiting"]["message"]
    )
    table = cluster.kubectl("get", "pod", "crash", "-n", ns).stdout
    assert "CrashLoopBackOff" in table
    # the back-off grows: 10 s after the second exit, 20 s after the third
    cluster.wait_pod(
        ns, "crash",
        lambda p: "back-off 20s" in str((container_state(p).get("state") or {}).get("waiting")),
        timeout=60,
    )  # fmt: skip
    describe = cluster.kubectl("describe", "pod", "crash", "-n", ns).stdout
    assert "Back-off restarting failed container" in describe


def test_agent_restart_keeps_running_pods(cluster: Cluster) -> None:
    ns = cluster.ns()
    cluster.apply(ns, pod_manifest("keep", cluster.image, ["sleep", "3600"]))
    pod = cluster.wait_pod(ns, "keep", running)
    cid = container_state(pod)["containerID"]
    state = json.loads(cluster.kubectl("get", "pod", "keep", "-n", ns, "-o", "json").stdout)
    uid = state["metadata"]["uid"]
    pids_before = _container_pids(cluster, uid)
    assert pids_before
    cluster.agent.restart()
    # the agent found its container again: same container, same process, no restart
    time.sleep(1.0)
    pod = cluster.wait_pod(ns, "keep", running)
    assert container_state(pod)["containerID"] == cid
    assert container_state(pod)["restartCount"] == 0
    assert _container_pids(cluster, uid) == pids_before
    res = cluster.kubectl("exec", "keep", "-n", ns, "--", "echo", "still-here")
    assert "still-here" in res.stdout


def _container_pids(cluster: Cluster, uid: str) -> list[int]:
    """The main pids the agent's driver recorded for the pod's containers."""
    pids = []
    for state in cluster.agent.data_dir.rglob("state.json"):
        try:
            doc = json.loads(state.read_text())
            handle = json.loads((state.parent / "handle.json").read_text())
        except (OSError, ValueError):
            continue
        if handle.get("pod_uid") == uid:
            pid = int(doc.get("pid") or 0)
            if pid and Path(f"/proc/{pid}").exists():
                pids.append(pid)
    return sorted(pids)


def test_bad_input_shows_the_kubernetes_reason(cluster: Cluster) -> None:
    ns = cluster.ns()

    def waiting_reason(p: Obj) -> str:
        return str((container_state(p).get("state") or {}).get("waiting", {}).get("reason", ""))

    vol = pod_manifest("novol", cluster.image, ["sleep", "3600"])
    vol["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "absent"}}]
    vol["spec"]["containers"][0]["volumeMounts"] = [{"name": "cfg", "mountPath": "/cfg"}]
    cluster.apply(ns, vol)
    env = pod_manifest("noenv", cluster.image, ["sleep", "3600"])
    env["spec"]["containers"][0]["env"] = [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}
    ]
    cluster.apply(ns, env)
    badcmd = pod_manifest("badcmd", cluster.image, ["/no/such/binary"])
    cluster.apply(ns, badcmd)
    cluster.wait_pod(ns, "noenv", lambda p: waiting_reason(p) == "CreateContainerConfigError")
    cluster.wait_pod(
        ns,
        "badcmd",
        lambda p: (
            waiting_reason(p) in ("RunContainerError", "CrashLoopBackOff", "StartError")
            or (container_state(p).get("lastState") or {}).get("terminated")
        ),
    )
    until(
        lambda: "FailedMount" in cluster.kubectl("describe", "pod", "novol", "-n", ns).stdout,
        timeout=20,
    )
    assert waiting_reason(cluster.pod(ns, "novol")) == "ContainerCreating"
    if cluster.runtime == "oci":
        assert cluster.registry is not None  # never Docker Hub: the local registry only
        missing = pod_manifest("noimg", f"{cluster.registry.host}/library/nope:1", ["true"])
        cluster.apply(ns, missing)
        cluster.wait_pod(
            ns, "noimg", lambda p: waiting_reason(p) in ("ErrImagePull", "ImagePullBackOff")
        )
        cluster.wait_pod(ns, "noimg", lambda p: waiting_reason(p) == "ImagePullBackOff", timeout=20)
    needs_8m = ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=8M count=1 && sleep 3600"]
    tiny = pod_manifest("tiny", cluster.image, needs_8m, restartPolicy="Never")
    tiny["spec"]["containers"][0]["resources"] = {"limits": {"memory": "1Mi"}}
    cluster.apply(ns, tiny)  # too little memory to even start: a reason, not a hang
    cluster.wait_pod(
        ns, "tiny",
        lambda p: waiting_reason(p) in ("RunContainerError", "CreateContainerError")
        or (p.get("status") or {}).get("phase") == "Failed",
    )  # fmt: skip
    huge = pod_manifest("huge", cluster.image, ["sleep", "3600"])
    huge["spec"]["containers"][0]["resources"] = {"requests": {"memory": "100Ti"}}
    cluster.apply(ns, huge)  # more than any node has: Pending, and the scheduler says why
    until(
        lambda: (
            "Insufficient memory" in cluster.kubectl("describe", "pod", "huge", "-n", ns).stdout
        ),
        timeout=20,
    )
    assert cluster.pod(ns, "huge")["status"]["phase"] == "Pending"
    # the node is undisturbed: a good pod still runs beside them
    cluster.apply(ns, pod_manifest("good", cluster.image, ["sleep", "3600"]))
    cluster.wait_pod(ns, "good", running)
    # the ConfigMap appears: the pods waiting on it start
    cluster.kubectl("create", "configmap", "absent", "-n", ns, "--from-literal=k=v")
    cluster.wait_pod(ns, "noenv", running, timeout=30)
    cluster.wait_pod(ns, "novol", running, timeout=60)


def test_init_containers_env_and_configmap_volume(cluster: Cluster) -> None:
    ns = cluster.ns()
    cluster.kubectl("create", "configmap", "cfg", "-n", ns, "--from-literal=greeting=hi")
    cluster.kubectl("create", "service", "clusterip", "web", "-n", ns, "--tcp=80:8080")
    svc_ip = cluster.kubectl(
        "get", "svc", "web", "-n", ns, "-o", "jsonpath={.spec.clusterIP}"
    ).stdout
    manifest = pod_manifest(
        "full",
        cluster.image,
        [
            "sh",
            "-c",
            "echo G=$G N=$N; cat /cfg/greeting; echo; echo S=$WEB_SERVICE_HOST:$WEB_SERVICE_PORT; sleep 3600",
        ],
        container={
            "env": [
                {"name": "G", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
                {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
            "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}],
        },
    )
    manifest["spec"]["initContainers"] = [
        {"name": "init", "image": cluster.image, "command": ["sh", "-c", "echo init-ran"]}
    ]
    manifest["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "cfg"}}]
    cluster.apply(ns, manifest)
    pod = cluster.wait_pod(ns, "full", running)
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    until(lambda: "G=hi N=full" in cluster.kubectl("logs", "full", "-n", ns).stdout, timeout=10)
    if cluster.runtime == "oci":  # the process runtime has no mount namespace
        assert "hi" in cluster.kubectl("logs", "full", "-n", ns).stdout.splitlines()[1]
    assert "init-ran" in cluster.kubectl("logs", "full", "-n", ns, "-c", "init").stdout
    # the service variables of the pod's namespace, as the kubelet sets them
    assert f"S={svc_ip}:80" in cluster.kubectl("logs", "full", "-n", ns).stdout


def test_security_context_and_limits_reach_the_container(cluster: Cluster) -> None:
    if cluster.runtime != "oci":
        pytest.skip("user, capabilities and a read-only root need a container (oci)")
    ns = cluster.ns()
    manifest = pod_manifest(
        "secure",
        cluster.image,
        ["sleep", "3600"],
        container={
            "securityContext": {
                "runAsUser": 1000,
                "runAsGroup": 2000,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
            },
            "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}},
        },
    )
    cluster.apply(ns, manifest)
    cluster.wait_pod(ns, "secure", running)

    def sh(script: str) -> Any:
        return cluster.kubectl("exec", "secure", "-n", ns, "--", "sh", "-c", script, check=False)

    assert sh("id -u; id -g").stdout.split() == ["1000", "2000"]
    res = sh("touch /new-file")
    assert res.returncode != 0 and "Read-only file system" in res.stderr
    # only NET_BIND_SERVICE (bit 10) is left in the bounding set (a non-root user's
    # effective set is empty, as on any Linux container runtime)
    cap_bnd = sh("grep CapBnd /proc/self/status").stdout.split()[1]
    assert int(cap_bnd, 16) == 1 << 10
    # the limits are the container's cgroup's (runc shows a container its own cgroup)
    assert sh("cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us").stdout.strip() == "25000"
    assert sh("cat /sys/fs/cgroup/memory/memory.limit_in_bytes").stdout.strip() == str(64 << 20)


def test_pods_resolve_services_through_the_node_local_dns(cluster: Cluster) -> None:
    if cluster.runtime != "oci":
        pytest.skip("process-runtime pods use the host's resolver")
    ns = cluster.ns()
    cluster.kubectl("create", "service", "clusterip", "web", "-n", ns, "--tcp=80:8080")
    ip = cluster.kubectl("get", "svc", "web", "-n", ns, "-o", "jsonpath={.spec.clusterIP}").stdout
    cluster.apply(ns, pod_manifest("dig", cluster.image, ["sleep", "3600"]))
    cluster.wait_pod(ns, "dig", running)
    resolv = cluster.kubectl("exec", "dig", "-n", ns, "--", "cat", "/etc/resolv.conf").stdout
    assert f"search {ns}.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "options ndots:5" in resolv

    def resolves(name: str) -> bool:
        res = cluster.kubectl("exec", "dig", "-n", ns, "--", "nslookup", name, check=False)
        return ip in res.stdout

    until(lambda: resolves(f"web.{ns}.svc.cluster.local"), timeout=20)
    assert resolves("web")  # through the search path
    res = cluster.kubectl(
        "exec", "dig", "-n", ns, "--", "nslookup", f"nope.{ns}.svc.cluster.local", check=False
    )
    assert res.returncode != 0


def test_host_port_reaches_the_pod(cluster: Cluster) -> None:
    if cluster.runtime != "oci":
        pytest.skip("process-runtime pods bind the host's ports themselves")
    ns = cluster.ns()
    serve = ["sh", "-c", "echo from-hostport > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
    manifest = pod_manifest(
        "hp", cluster.image, serve,
        container={"ports": [{"containerPort": 8080, "hostPort": 18080}]},
    )  # fmt: skip
    cluster.apply(ns, manifest)
    cluster.wait_pod(ns, "hp", running)

    def answers(host: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://{host}:18080/", timeout=2) as r:
                return bool(r.read().decode().strip() == "from-hostport")
        except OSError:
            return False

    until(lambda: answers("127.0.0.1"), timeout=10)  # the node's address
    # (grace 1 s: httpd as PID 1 ignores SIGTERM, and the stop is not what is checked here)
    cluster.kubectl("delete", "pod", "hp", "-n", ns, "--grace-period=1", "--wait=true", timeout=60)
    assert not answers("127.0.0.1")  # the mapping went with the pod
