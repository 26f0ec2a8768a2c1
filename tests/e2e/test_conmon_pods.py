"""Pods on an ``oci`` agent whose containers all run under conmon
(``CORRAL_OCI_SUPERVISOR=conmon``), end to end with the real kubectl: the pause and app
containers are conmon's children, ``kubectl logs`` reads conmon's CRI log, ``kubectl exec
-it`` works through a real pseudo-terminal, exit codes and OOM kills reach the pod status,
and an agent restart leaves the running container alone. Needs root, runc, the CNI
plugins and conmon; skips with the reason otherwise."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2ekit import Cluster, container_state, phase, pod_manifest, require, running, running_cluster

from corral.agent.drivers.conmon import conmon_binary


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require("oci")
    if conmon_binary() is None:
        pytest.skip("conmon is not installed (apt-get install conmon)")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CORRAL_OCI_SUPERVISOR", "conmon")  # read by the agent's OciDriver
        with running_cluster(tmp_path_factory.mktemp("conmon"), "oci", "conmon") as c:
            yield c


def _monitors(cluster: Cluster, uid: str) -> dict[str, tuple[int, int]]:
    """(main pid, its parent) per container name of pod ``uid``, ``pause`` included."""
    out = {}
    for state in cluster.agent.data_dir.rglob("state.json"):
        try:
            doc = json.loads(state.read_text())
        except (OSError, ValueError):
            continue
        if "shim_pid" not in doc:  # (runc's own state.json)
            continue
        handle_file = state.parent / "handle.json"
        if handle_file.exists():
            handle = json.loads(handle_file.read_text())
            pod_uid, name = handle["pod_uid"], handle["name"]
        else:  # a sandbox's pause container: sandboxes/<uid>/
            pod_uid, name = state.parent.name, "pause"
        if pod_uid == uid and Path(f"/proc/{doc['pid']}").exists():
            stat = Path(f"/proc/{doc['pid']}/stat").read_text()
            out[name] = (int(doc["pid"]), int(stat[stat.rindex(")") + 2 :].split()[1]))
    return out


def _run_in_pty(argv: list[str], line: bytes, timeout: float = 30.0) -> tuple[int, str]:
    """Run ``argv`` on a new pseudo-terminal; type ``line`` once it prints; (rc, output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out, sent = bytearray(), False
    started = time.monotonic()
    try:
        while time.monotonic() < started + timeout:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the other side is gone
                    break
                if not chunk:
                    break
                out += chunk
            if not sent and (out or time.monotonic() - started > 5):
                os.write(master, line)
                sent = True
        return proc.wait(timeout=10), out.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_pods_under_conmon(cluster: Cluster) -> None:
    ns = cluster.ns()
    script = "echo hello; printf partial; exec sleep 3600"
    cluster.apply(ns, pod_manifest("web", cluster.image, ["sh", "-c", script]))
    cluster.apply(
        ns, pod_manifest("three", cluster.image, ["sh", "-c", "exit 3"], restartPolicy="Never")
    )
    hog = ["sh", "-c", "exec dd if=/dev/zero of=/dev/null bs=200M count=1"]
    limits = {"resources": {"limits": {"memory": "64Mi"}}}
    cluster.apply(
        ns, pod_manifest("hog", cluster.image, hog, container=limits, restartPolicy="Never")
    )

    pod = cluster.wait_pod(ns, "web", running)
    uid, cid = pod["metadata"]["uid"], container_state(pod)["containerID"]
    monitors = _monitors(cluster, uid)
    assert set(monitors) == {"pause", "main"}, monitors
    for pid, parent in monitors.values():
        assert Path(f"/proc/{parent}/comm").read_text().strip() == "conmon", (pid, parent)
    cluster.wait("the log", lambda: cluster.logs(ns, "web") == "hello\npartial")

    k = cluster.kubectl
    argv = ["kubectl", "--kubeconfig", str(k.kubeconfig), "--cache-dir", str(k.cache_dir),
            "exec", "-it", "web", "-n", ns, "--", "sh"]  # fmt: skip
    rc, out = _run_in_pty(argv, b"echo h''i; exit 3\r")
    assert rc == 3, out
    assert "hi" in [line.strip() for line in out.splitlines()], out

    term = container_state(cluster.wait_pod(ns, "three", phase("Failed")))["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (3, "Error")
    term = container_state(cluster.wait_pod(ns, "hog", phase("Failed")))["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (137, "OOMKilled")

    cluster.agent.restart()  # the container and its conmon carry on
    pod = cluster.wait_pod(ns, "web", running)
    assert container_state(pod)["containerID"] == cid
    assert container_state(pod)["restartCount"] == 0
    assert _monitors(cluster, uid) == monitors
    assert "still-here" in cluster.exec(ns, "web", "echo", "still-here")
