"""LoadBalancer Services end to end: a real server, a real ``oci`` agent with its in-process
proxy (``--proxy auto``: kube-proxy's iptables rules), a busybox httpd pod, and the
service-lb controller in a ``corral controller-manager`` of the test's own (with the
EndpointSlice controller), started twice: first as k3s' ServiceLB (the ingress is the
node's InternalIP, whatever the agent reports), then with ``--service-lb-pool`` (a /30 in
10.x that no interface of this host has: the host reaches it through the OUTPUT DNAT).

Checked with the real kubectl and the ``kubernetes`` client: ``status.loadBalancer.ingress``
is filled, ``kubectl get svc`` prints the EXTERNAL-IP, an HTTP GET from the host to
ingress-ip:port answers from the pod, type ClusterIP removes the ingress (and its rule),
and a pool address answers. Root only (runc, CNI, iptables); skips with the reason
otherwise. On the way out: the agent's proxy removed every ``KUBE-*`` rule (the fixture
removes them and fails otherwise), and the pool addresses were never put on the host.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from e2ekit import Cluster, Obj, condition, pod_manifest, require, running, running_cluster
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from corral.proxy.proxier import ROUTE_LOCALNET, IptablesBackend

PORT = 18080  # the Service's port: what the load balancer answers on
SERVE = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"


def _skip_reason() -> str | None:
    if os.geteuid() != 0 or not shutil.which("iptables-restore"):
        return "the Service data path needs root and iptables-restore"
    return None


def our_rules() -> list[str]:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    return [ln for ln in out.splitlines() if "KUBE-" in ln]


def host_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Every network on an interface or in a route of this host."""
    nets = []
    for cmd in (["ip", "-o", "addr", "show"], ["ip", "route", "show", "table", "all"]):
        out = subprocess.run(cmd, capture_output=True, text=True).stdout
        for word in out.split():
            try:
                nets.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                continue
    return nets


def free_pool() -> str:
    """A /30 in 10.x that no interface or route of this host touches."""
    taken = host_networks()
    for second in range(251, 255):
        for third in range(0, 256, 17):
            net = ipaddress.ip_network(f"10.{second}.{third}.4/30")
            if not any(net.overlaps(t) for t in taken if t.version == 4 and t.prefixlen > 0):
                return str(net)
    pytest.skip("no free /30 in 10.251-254.x for the pool")


@dataclass
class ControllerManager:
    """``corral controller-manager`` of this test (the server runs none)."""

    kubeconfig: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> None:
        self.stop()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "corral", "controller-manager", "--kubeconfig",
                 str(self.kubeconfig), "--controllers", "endpointslice,service-lb-controller",
                 *extra],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if reason := _skip_reason():
        pytest.skip(reason)
    require("oci")
    assert not our_rules(), "KUBE-* rules exist before the test: another proxy runs here"
    localnet = Path("/proc/sys", *ROUTE_LOCALNET.split(".")).read_text()
    base = tmp_path_factory.mktemp("lb-oci")
    try:
        with running_cluster(base, "oci", "lb", agent_args=["--proxy", "auto"]) as c:
            yield c
    finally:
        left = our_rules()
        if left:  # the agent's proxy failed to clean up: do it, then fail loudly below
            asyncio.run(IptablesBackend(localhost_nodeports=False).cleanup())
        Path("/proc/sys", *ROUTE_LOCALNET.split(".")).write_text(localnet)
    assert left == [], "the agent's proxy left its rules:\n" + "\n".join(left)


@pytest.fixture(scope="module")
def manager(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControllerManager]:
    cm = ControllerManager(
        cluster.server.kubeconfig, tmp_path_factory.mktemp("cm") / "controller-manager.log"
    )
    cm.start()
    try:
        yield cm
    finally:
        cm.stop()


@pytest.fixture(scope="module")
def api(cluster: Cluster) -> Iterator[k8s.CoreV1Api]:
    api_client = k8s_config.new_client_from_config(str(cluster.server.kubeconfig))
    try:
        yield k8s.CoreV1Api(api_client)
    finally:
        api_client.close()


@pytest.fixture(scope="module")
def ns(cluster: Cluster, manager: ControllerManager) -> str:
    ns = cluster.ns()
    pod = pod_manifest("web", cluster.image, ["sh", "-c", SERVE])
    pod["metadata"]["labels"] = {"app": "web"}
    pod["spec"]["containers"][0]["readinessProbe"] = {
        "tcpSocket": {"port": 8080},
        "periodSeconds": 1,
    }
    cluster.apply(ns, pod)
    cluster.wait_pod(ns, "web", lambda p: running(p) and condition(p, "Ready") == "True")
    return ns


def lb_service(name: str, **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": PORT, "targetPort": 8080}],
            **spec,
        },
    }


def ingress(api: k8s.CoreV1Api, ns: str, name: str) -> list[tuple[Any, Any]]:
    svc = api.read_namespaced_service_status(name, ns)
    lb = svc.status.load_balancer if svc.status else None
    return [(i.ip, i.ip_mode) for i in (lb.ingress if lb else None) or []]


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def answers(url: str) -> str:
    try:
        with _DIRECT.open(url, timeout=2) as r:
            return str(r.read().decode().strip())
    except OSError:
        return ""


def node_internal_ip(api: k8s.CoreV1Api, name: str) -> str:
    status = api.read_node(name).status
    addrs = (status.addresses if status else None) or []
    return str(next(a.address for a in addrs if a.type == "InternalIP"))


def test_node_address_ingress_answers_and_goes_with_the_type(
    cluster: Cluster, api: k8s.CoreV1Api, ns: str
) -> None:
    node_ip = node_internal_ip(api, cluster.agent.name)
    cluster.apply(ns, lb_service("web"))
    cluster.wait(
        "the ingress is the node's address", lambda: ingress(api, ns, "web") == [(node_ip, "VIP")]
    )
    row = cluster.kubectl("get", "svc", "web", "-n", ns, "--no-headers").stdout.split()
    assert row[1] == "LoadBalancer" and row[3] == node_ip, row
    assert row[4].startswith(f"{PORT}:") and row[4].endswith("/TCP"), row  # with its nodePort
    url = f"http://{node_ip}:{PORT}/"
    cluster.wait(f"{url} answers from the pod", lambda: answers(url) == "web", timeout=20)
    reasons = [e["reason"] for e in cluster.get(ns, "events")["items"]
               if e["involvedObject"].get("name") == "web" and e["involvedObject"]["kind"] == "Service"]  # fmt: skip
    assert "EnsuredLoadBalancer" in reasons, reasons

    # node mode: a port of the node's address has one holder; the API server's is never given
    server = yaml.safe_load(Path(cluster.server.kubeconfig).read_text())["clusters"][0]
    api_port = urlsplit(server["cluster"]["server"]).port
    cluster.apply(ns, lb_service("second"))
    cluster.apply(ns, lb_service("capture", ports=[{"name": "https", "port": api_port}]))
    for name, holder in (("second", f"service {ns}/web"), ("capture", "the API server's")):
        cluster.wait(
            f"{name} stays pending with a warning naming {holder}",
            lambda name=name, holder=holder: any(  # type: ignore[misc]
                e["reason"] == "SyncLoadBalancerFailed" and holder in e["message"]
                for e in cluster.get(ns, "events")["items"]
                if e["involvedObject"].get("name") == name
            ),
        )
        assert ingress(api, ns, name) == []
    assert cluster.kubectl("get", "ns", ns).returncode == 0  # the API server still answers

    api.patch_namespaced_service("web", ns, {"spec": {"type": "ClusterIP"}})
    cluster.wait("the ingress is gone", lambda: ingress(api, ns, "web") == [])
    cluster.wait(  # the port was let go: the next Service in line takes it
        "second takes the port", lambda: ingress(api, ns, "second") == [(node_ip, "VIP")]
    )
    api.delete_namespaced_service("second", ns)
    api.delete_namespaced_service("capture", ns)
    cluster.wait(
        "the load-balancer rule is gone",
        lambda: not any(f"{ns}/web:http loadbalancer IP" in r for r in our_rules()),
    )
    row = cluster.kubectl("get", "svc", "web", "-n", ns, "--no-headers").stdout.split()
    assert row[1] == "ClusterIP" and row[3] == "<none>", row


def test_pool_address_answers_and_bad_requests_stay_pending(
    cluster: Cluster, api: k8s.CoreV1Api, ns: str, manager: ControllerManager
) -> None:
    pool = free_pool()
    first = str(ipaddress.ip_network(pool)[0])
    manager.start("--service-lb-pool", pool)
    cluster.apply(ns, lb_service("pooled"))
    cluster.wait(
        f"an address of {pool}", lambda: [ip for ip, _ in ingress(api, ns, "pooled")] == [first]
    )
    out = cluster.kubectl("get", "svc", "pooled", "-n", ns, "-o", "wide").stdout
    assert first in out.splitlines()[1], out
    url = f"http://{first}:{PORT}/"
    cluster.wait(f"{url} answers from the pod", lambda: answers(url) == "web", timeout=20)
    assert not any(ipaddress.ip_address(first) in n for n in host_networks() if n.prefixlen == 32)

    outside = "192.0.2.250"
    cluster.apply(ns, lb_service("outside", loadBalancerIP=outside))

    def warned() -> bool:
        return any(
            e["reason"] == "SyncLoadBalancerFailed" and outside in e["message"]
            for e in cluster.get(ns, "events")["items"]
            if e["involvedObject"].get("name") == "outside"
        )

    cluster.wait("a SyncLoadBalancerFailed event naming the address", warned)
    row = cluster.kubectl("get", "svc", "outside", "-n", ns, "--no-headers").stdout.split()
    assert row[3] == "<pending>", row
