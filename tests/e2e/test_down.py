"""``corral down`` and a host used by more than one cluster (issue 13).

Real ``corral up`` processes with ``oci`` agents (runc, the CNI bridge, the iptables
proxy): ``corral down`` stops a running cluster and leaves nothing of it on the host
(looked up with ``ip``, ``iptables-save``, ``/proc`` and ``/sys/fs/cgroup`` by
``corral.testing.up.leftovers``), a second cluster while one runs is refused at once
naming the first one's data dir, and a two-agent cluster in a fresh data dir runs pods on
both nodes after a one-agent cluster was stopped with Ctrl-C (its bridge, with the old
subnet on it, is left behind). The long form (20 pods, timed) is ``bench/lifecycle_perf.py``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Kubectl, start_server
from corral.testing.process import free_port
from corral.testing.up import (
    UpProcess,
    cluster_processes,
    leftovers,
    marked_bridges,
    wait_clean,
)
from corral.testing.wait import eventually

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="corral up's oci agents need root"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed"),
    pytest.mark.skipif(
        not Path("/usr/lib/cni/bridge").exists(), reason="the CNI plugins are not installed"
    ),
    pytest.mark.timeout(300),
]

IMAGE = "corral.local/busybox:1.35"  # corral up imports it into each agent's store


@pytest.fixture
def clusters(tmp_path: Path) -> Iterator[list[UpProcess]]:
    """Clusters a test starts (``UpProcess`` under ``tmp_path``); whatever the test left
    is taken down with ``corral down --purge`` on the way out."""
    made: list[UpProcess] = []
    yield made
    for up in reversed(made):
        if up.data_dir.exists():
            up.down("--purge")


def _kubectl(up: UpProcess) -> Kubectl:
    return Kubectl(up.kubeconfig, up.data_dir.parent / f"{up.data_dir.name}-kubecache")


def _pods(k: Kubectl) -> list[dict]:  # type: ignore[type-arg]
    return list(json.loads(k("get", "pods", "-o", "json").stdout)["items"])


def _running(pod: dict) -> bool:  # type: ignore[type-arg]
    return (pod.get("status") or {}).get("phase") == "Running"


def _run_pod(k: Kubectl, name: str, node: str = "", host_port: int = 0) -> None:
    container: dict = {"name": "main", "image": IMAGE, "command": ["sleep", "3600"]}  # type: ignore[type-arg]
    if host_port:
        container["ports"] = [{"containerPort": 8080, "hostPort": host_port}]
    spec: dict = {"containers": [container], "terminationGracePeriodSeconds": 1}  # type: ignore[type-arg]
    if node:
        spec["nodeName"] = node
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
    k("apply", "-f", "-", input=json.dumps(pod))


def _bridge_addresses(name: str) -> list[str]:
    out = subprocess.run(
        ["ip", "-j", "-4", "addr", "show", "dev", name], capture_output=True, text=True
    ).stdout
    return [
        f"{a['local']}/{a['prefixlen']}"
        for link in json.loads(out or "[]")
        for a in link.get("addr_info", [])
    ]


def test_down_removes_everything_and_a_second_cluster_is_refused_meanwhile(
    tmp_path: Path, clusters: list[UpProcess]
) -> None:
    a = UpProcess(tmp_path / "a", free_port())
    clusters.append(a)
    a.start()
    k = _kubectl(a)
    k("create", "deployment", "web", f"--image={IMAGE}", "--replicas=2", "--", "sleep", "3600")
    k("expose", "deployment", "web", "--port=80")  # the proxy writes KUBE-SVC-* chains
    _run_pod(k, "hostport", host_port=free_port())  # the portmap plugin's chains
    eventually(lambda: len(_pods(k)) == 3 and all(map(_running, _pods(k))), timeout=60)
    during = {kind: list(v) for kind, v in leftovers(a.data_dir).items()}
    assert during["bridges"] == ["corral-n0"] and len(during["network namespaces"]) == 3
    assert any("CNI-DN-" in line for line in during["iptables chains"])
    assert during["mounts"] and during["cgroups"] and during["processes"]

    # a second cluster (its own data dir and ports) is refused at once, naming the first
    b = UpProcess(tmp_path / "b", free_port())
    clusters.append(b)
    b.launch()
    assert b.proc is not None
    assert b.proc.wait(30) == 1, b.output()
    assert f"corral down --data-dir {a.data_dir}" in b.output()
    assert not marked_bridges(b.data_dir) and not cluster_processes(b.data_dir)
    assert _bridge_addresses("corral-n0") == ["10.89.0.1/24"]  # and took nothing over
    assert all(map(_running, _pods(k)))

    res = a.down()
    print(res.stdout)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "removed 3 pod sandboxes" in res.stdout
    assert "removed 1 bridges (corral-n0)" in res.stdout
    assert a.proc is not None and a.proc.poll() is not None  # corral up was stopped
    wait_clean(a.data_dir, bridges=("corral-n0",))
    assert (a.data_dir / "state.db").exists()  # kept without --purge

    res = a.down("--purge")
    assert res.returncode == 0 and not a.data_dir.exists(), res.stdout + res.stderr


def test_a_new_cluster_after_ctrl_c_runs_pods_on_both_nodes(
    tmp_path: Path, clusters: list[UpProcess]
) -> None:
    old = UpProcess(tmp_path / "old", free_port())
    clusters.append(old)
    old.start()
    # the agent sets its bridge up once the node has its pod CIDR
    eventually(lambda: _bridge_addresses("corral-n0") == ["10.89.0.1/24"], timeout=30)
    assert old.signal(signal.SIGINT) == 0  # Ctrl-C: its bridge stays, with its subnet
    assert _bridge_addresses("corral-n0") == ["10.89.0.1/24"]

    new = UpProcess(tmp_path / "new", free_port(), agents=2)
    clusters.append(new)
    new.start()
    k = _kubectl(new)
    nodes = json.loads(k("get", "nodes", "-o", "json").stdout)["items"]
    cidrs = {n["metadata"]["name"]: n["spec"]["podCIDR"] for n in nodes}
    print(f"pod CIDRs of the new cluster: {cidrs}")
    for i, name in enumerate(sorted(cidrs)):
        _run_pod(k, f"on-{i}", node=name)

    def both_running() -> bool:
        pods = _pods(k)
        return len(pods) == 2 and all(map(_running, pods))

    try:
        eventually(both_running, timeout=60)
    except AssertionError:
        raise AssertionError(
            "pods not running on both nodes:\n"
            + k("get", "events", "--field-selector", "type=Warning").stdout
        ) from None
    for pod in _pods(k):  # each in its own node's pod CIDR, on that node's bridge
        cidr = ipaddress.ip_network(cidrs[pod["spec"]["nodeName"]])
        assert ipaddress.ip_address(pod["status"]["podIP"]) in cidr
    for i, name in enumerate(sorted(cidrs)):
        gateway = ipaddress.ip_network(cidrs[name])[1]
        assert _bridge_addresses(f"corral-n{i}") == [f"{gateway}/24"]

    t0 = time.monotonic()
    res = new.down()
    print(res.stdout, f"corral down: {time.monotonic() - t0:.1f} s")
    assert res.returncode == 0, res.stdout + res.stderr
    wait_clean(new.data_dir, bridges=("corral-n0", "corral-n1"))
    res = old.down("--purge")
    assert res.returncode == 0, res.stdout + res.stderr


def test_an_agent_refuses_a_node_dns_address_someone_else_serves(tmp_path: Path) -> None:
    """The node-local DNS address (the bridge's gateway, port 53) held by another process
    stops the agent with a message, rather than leaving its pods asking that process."""
    srv = start_server(tmp_path / "server")
    # another cluster's DNS: a process named as Corral's (the host's own DNS server on
    # 0.0.0.0:53 only gets a warning: the agent starts without node-local DNS)
    hold = (
        "import socket, sys, time\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.setsockopt(socket.SOL_IP, 15, 1)\n"  # IP_FREEBIND: the bridge does not exist yet
        "s.bind(('10.252.9.1', 53)); print('bound', flush=True); time.sleep(120)\n"
    )
    taken = subprocess.Popen(
        [sys.executable, "-c", hold, "corral-dns-of-another-cluster"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert taken.stdout is not None and taken.stdout.readline().strip() == "bound"
    agent_dir = tmp_path / "agent"
    base = [
        sys.executable,
        "-m",
        "corral",
        "agent",
        "--runtime",
        "oci",
        "--data-dir",
        str(agent_dir),
    ]
    try:
        res = subprocess.run(
            [*base, "--kubeconfig", str(srv.kubeconfig), "--name", f"dns-{uuid.uuid4().hex[:4]}",
             "--port", str(free_port()), "--pod-cidr", "10.252.9.0/24", "--bridge", "crl-dnstest"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert res.returncode == 1, res.stdout + res.stderr
        assert "node-local DNS: 10.252.9.1:53 is already served by" in res.stderr, res.stderr
    finally:
        taken.kill()
        taken.communicate()
        subprocess.run([*base, "--reset"], capture_output=True, timeout=60)
        srv.stop()
    wait_clean(agent_dir, bridges=("crl-dnstest",))
