"""Three hosts on one machine (``corral.testing.hosts``): network namespaces on a bridge,
one real ``oci`` agent in each (with its in-process iptables Service proxy and its
node-local DNS), a server with the controllers bound to the bridge's address.

A 3-replica Deployment of busybox httpd (each pod serves its hostname) is spread one
pod per host by required pod anti-affinity; a NodePort Service selects it. Checked:
pod to pod across hosts (host-gw routes the agents install), the NodePort on every host,
pod to Service from every host (all three pods answer), cluster DNS from a pod, and ``kubectl logs``/``exec`` for a pod on every
host (the API server proxies to each agent's node IP). The hosts cannot reach a
registry on 127.0.0.1, so the demo image is imported into each agent's image store
before it starts. Root only; skips with the reason otherwise.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2ekit import Obj, condition, running

from conftest import Kubectl
from corral.testing.hosts import TestHosts
from corral.testing.wait import eventually

IMAGE = "corral.local/busybox:1.35"
HOSTS = 3
NS = "multihost"


def _skip_reason() -> str | None:
    from corral.agent.images.demo import demo_tools_missing

    if os.geteuid() != 0:
        return "test hosts need root (network namespaces, runc, iptables)"
    for tool in ("runc", "nsenter", "iptables-restore", "skopeo"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path("/usr/lib/cni/bridge").exists():
        return "the CNI plugins are not installed (apt-get install containernetworking-plugins)"
    return demo_tools_missing()


@dataclass
class Cluster:
    hosts: TestHosts
    kubectl: Kubectl

    def pods(self, selector: str) -> list[Obj]:
        out = self.kubectl("get", "pods", "-n", NS, "-l", selector, "-o", "json").stdout
        items: list[Obj] = json.loads(out)["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def exec(self, pod: str, *argv: str) -> str:
        return str(self.kubectl("exec", pod, "-n", NS, "--", *argv).stdout)

    def wait(self, what: str, pred: Callable[[], bool], timeout: float = 60.0) -> None:
        try:
            eventually(pred, timeout=timeout, interval=0.2)
        except AssertionError:
            raise AssertionError(
                f"{what}: not reached within {timeout} s\n{self.hosts.logs()}"
            ) from None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if reason := _skip_reason():
        pytest.skip(reason)
    from corral.agent.images.demo import build_busybox
    from corral.agent.images.store import ImageStore

    base = tmp_path_factory.mktemp("multihost")
    layout = build_busybox(base / "layout", "1.35")
    hosts = TestHosts.create(HOSTS, base)
    try:
        srv = hosts.start_server(controllers=True)
        for h in hosts.hosts:
            asyncio.run(ImageStore(h.data_dir / "images").import_archive(layout, name=IMAGE))
        hosts.start_agents()
        kubectl = Kubectl(srv.kubeconfig, base / "kubecache")
        kubectl("create", "namespace", NS)
        yield Cluster(hosts, kubectl)
        kubectl("delete", "deployments,replicasets", "--all", "-A", "--wait=false", check=False)
        kubectl("delete", "pods", "--all", "-A", "--grace-period=1", "--wait=false", check=False)

        def no_pods() -> bool:
            return not json.loads(kubectl("get", "pods", "-A", "-o", "json").stdout)["items"]

        eventually(no_pods, timeout=30, interval=0.2)
    finally:
        hosts.teardown()


def deployment() -> Obj:
    script = (
        "echo serving on $(hostname); hostname > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"
    )
    labels = {"app": "web"}
    anti = {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}
        ]
    }
    container = {
        "name": "main",
        "image": IMAGE,
        "command": ["sh", "-c", script],
        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": HOSTS,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [container],
                    "affinity": {"podAntiAffinity": anti},
                    "terminationGracePeriodSeconds": 1,
                },
            },
        },
    }


SERVICE: Obj = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web"},
    "spec": {
        "type": "NodePort",
        "selector": {"app": "web"},
        "ports": [{"port": 80, "targetPort": 8080}],
    },
}


@dataclass
class Web:
    by_node: dict[str, tuple[str, str]]  # node -> (pod name, pod IP)
    cluster_ip: str
    node_port: int

    @property
    def names(self) -> set[str]:
        return {name for name, _ in self.by_node.values()}


@pytest.fixture(scope="module")
def web(cluster: Cluster) -> Web:
    for manifest in (deployment(), SERVICE):
        cluster.kubectl("apply", "-n", NS, "-f", "-", input=json.dumps(manifest))
    ready: list[Obj] = []

    def one_ready_per_host() -> bool:
        ready[:] = [
            p
            for p in cluster.pods("app=web")
            if running(p) and condition(p, "Ready") == "True" and p["status"].get("podIP")
        ]
        return len({p["spec"]["nodeName"] for p in ready}) == HOSTS == len(ready)

    cluster.wait("a ready web pod on every host", one_ready_per_host, timeout=60)
    by_node = {p["spec"]["nodeName"]: (p["metadata"]["name"], p["status"]["podIP"]) for p in ready}
    svc = json.loads(cluster.kubectl("get", "service/web", "-n", NS, "-o", "json").stdout)
    return Web(by_node, svc["spec"]["clusterIP"], int(svc["spec"]["ports"][0]["nodePort"]))


def test_pods_get_their_hosts_pod_cidr(cluster: Cluster, web: Web) -> None:
    for h in cluster.hosts.hosts:
        _, ip = web.by_node[h.name]
        assert ip.startswith(h.pod_cidr.rsplit(".", 2)[0] + "."), (h.name, ip, h.pod_cidr)


def test_pod_to_pod_across_hosts(cluster: Cluster, web: Web) -> None:
    for src, _ in web.by_node.values():
        for dst, ip in web.by_node.values():
            assert cluster.exec(src, "wget", "-qO-", f"http://{ip}:8080/").strip() == dst
    # and the root namespace (the test process) reaches every pod by the same routes
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for name, ip in web.by_node.values():
        with direct.open(f"http://{ip}:8080/", timeout=10) as r:
            assert r.read().decode().strip() == name


LOOP = "i=0; while [ $i -lt 30 ]; do wget -qO- http://{ip}/; i=$((i+1)); done; echo"


def test_pod_to_service_from_every_host(cluster: Cluster, web: Web) -> None:
    for node, (src, _) in sorted(web.by_node.items()):
        seen: set[str] = set()

        def all_answered(src: str = src, seen: set[str] = seen) -> bool:
            out = cluster.kubectl(
                "exec", src, "-n", NS, "--", "sh", "-c", LOOP.format(ip=web.cluster_ip),
                check=False,
            ).stdout  # fmt: skip
            seen.update(line.strip() for line in out.splitlines() if line.strip())
            return seen >= web.names

        cluster.wait(f"all three pods answer the Service from {node}", all_answered, 60)
        assert seen == web.names, f"from {node}: {sorted(seen)}"


def test_node_port_on_every_host(cluster: Cluster, web: Web) -> None:
    """From outside the hosts (the root namespace), each host's NodePort reaches all
    three pods, wherever they run."""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for h in cluster.hosts.hosts:
        seen: set[str] = set()

        def all_answered(ip: str = h.ip, seen: set[str] = seen) -> bool:
            for _ in range(10):
                try:
                    with direct.open(f"http://{ip}:{web.node_port}/", timeout=5) as r:
                        seen.add(r.read().decode().strip())
                except OSError:
                    return False
            return seen >= web.names

        cluster.wait(
            f"all three pods answer NodePort {web.node_port} on {h.name}", all_answered, 60
        )
        assert seen == web.names


def test_cluster_dns_from_a_pod(cluster: Cluster, web: Web) -> None:
    src, _ = web.by_node["host-1"]
    out = cluster.exec(src, "nslookup", f"web.{NS}.svc.cluster.local")
    assert web.cluster_ip in out, out


def test_logs_and_exec_on_every_host(cluster: Cluster, web: Web) -> None:
    for node, (name, _) in sorted(web.by_node.items()):
        logs = cluster.kubectl("logs", name, "-n", NS).stdout
        assert f"serving on {name}" in logs, (node, logs)
        assert cluster.exec(name, "hostname").strip() == name
        res = cluster.kubectl("exec", name, "-n", NS, "--", "sh", "-c", "exit 3", check=False)
        assert res.returncode == 3, (node, res.stderr)
