"""Services end to end: a real server (with controllers), one real ``oci`` agent and a real
``corral proxy --mode iptables`` for its node; traffic from the host and from a pod.

The EndpointSlices are written by the test from the pods' IPs (the Services here have no
selector, so no EndpointSlice controller is involved): what is under test is the data
path. Root only (runc, CNI, iptables); skips with the reason otherwise. The proxy's
teardown removes every rule it added, and the fixture checks that, and removes them
itself, should the proxy have failed to.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2ekit import Cluster, Obj, condition, pod_manifest, require, running, running_cluster

from corral.proxy.proxier import ROUTE_LOCALNET, IptablesBackend
from corral.testing.wait import eventually

ROOT_CAUSE = "the Service data path needs root and iptables-restore"


def _skip_reason() -> str | None:
    if os.geteuid() != 0 or not shutil.which("iptables-restore"):
        return ROOT_CAUSE
    return None


def iptables_save() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout


def our_rules() -> list[str]:
    return [ln for ln in iptables_save().splitlines() if "KUBE-" in ln]


def sysctl(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text().strip()


@dataclass
class Proxy:
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if reason := _skip_reason():
        pytest.skip(reason)
    require("oci")
    base = tmp_path_factory.mktemp("services-oci")
    with running_cluster(
        base, "oci", "services", controllers=True, workloads="deployments,replicasets"
    ) as c:
        yield c


@pytest.fixture(scope="module")
def proxy(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    assert not our_rules(), "KUBE-* rules exist before the test: not ours to touch"
    localnet = sysctl(ROUTE_LOCALNET)
    log = tmp_path_factory.mktemp("proxy") / "proxy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "corral", "proxy", "--kubeconfig", str(cluster.server.kubeconfig),
             "--node-name", cluster.agent.name, "--node-ip", "127.0.0.1", "--mode", "iptables",
             "--log-level", "DEBUG"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    p = Proxy(proc, log)
    try:
        yield p
    finally:
        p.stop()
        if our_rules():  # the proxy failed to clean up: do it, then fail loudly below
            asyncio.run(IptablesBackend(localhost_nodeports=False).cleanup())
        Path("/proc/sys", *ROUTE_LOCALNET.split(".")).write_text(localnet)


@dataclass
class Web:
    ns: str
    pods: dict[str, str]  # name -> IP
    cluster_ip: str
    node_port: int


def service(name: str, type_: str = "ClusterIP", selector: dict[str, str] | None = None) -> Obj:
    spec: Obj = {"type": type_, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    if selector is not None:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def endpoint_slice(service: str, ns: str, pods: dict[str, str]) -> Obj:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{service}-test", "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [ip],
                "conditions": {"ready": True},
                "targetRef": {"kind": "Pod", "name": name, "namespace": ns},
            }
            for name, ip in sorted(pods.items())
        ],
    }


def deployment(name: str, image: str) -> Obj:
    script = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"
    pod = pod_manifest("x", image, ["sh", "-c", script])
    pod["spec"]["containers"][0]["readinessProbe"] = {
        "tcpSocket": {"port": 8080},
        "periodSeconds": 1,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod["spec"]},
        },
    }


@pytest.fixture(scope="module")
def web(cluster: Cluster, proxy: Proxy) -> Web:
    ns = cluster.ns()
    cluster.apply(ns, deployment("web", cluster.image))
    ready: list[Obj] = []

    def three_ready() -> bool:
        ready[:] = [
            p
            for p in cluster.live_pods(ns, "app=web")
            if running(p) and condition(p, "Ready") == "True" and p["status"].get("podIP")
        ]
        return len(ready) == 3

    cluster.wait("three web pods ready", three_ready, timeout=90)
    pods = {p["metadata"]["name"]: p["status"]["podIP"] for p in ready}
    cluster.apply(ns, service("web"))
    cluster.apply(ns, service("web-np", "NodePort"))
    for name in ("web", "web-np"):
        cluster.apply(ns, endpoint_slice(name, ns, pods))
    ip = cluster.get(ns, "service/web")["spec"]["clusterIP"]
    node_port = cluster.get(ns, "service/web-np")["spec"]["ports"][0]["nodePort"]
    return Web(ns, pods, ip, int(node_port))


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str, timeout: float = 5) -> str:
    with _DIRECT.open(url, timeout=timeout) as r:
        return str(r.read().decode().strip())


def fetch_until_ok(url: str, proxy: Proxy, timeout: float = 20) -> str:
    got: list[str] = []

    def ok() -> bool:
        try:
            got[:] = [fetch(url, timeout=2)]
            return True
        except OSError:
            return False

    try:
        eventually(ok, timeout=timeout, interval=0.2)
    except AssertionError:
        raise AssertionError(
            f"{url} never answered\nproxy log:\n{proxy.tail()}\nrules:\n" + "\n".join(our_rules())
        ) from None
    return got[0]


def test_cluster_ip_balances_over_every_ready_pod(web: Web, proxy: Proxy) -> None:
    url = f"http://{web.cluster_ip}/"
    fetch_until_ok(url, proxy)
    seen = [fetch(url) for _ in range(100)]
    assert set(seen) == set(web.pods), f"answers {sorted(set(seen))}"


def test_a_service_without_endpoints_refuses_at_once(cluster: Cluster, web: Web) -> None:
    cluster.apply(web.ns, service("nobody", selector={"app": "no-such-pod"}))
    ip = cluster.get(web.ns, "service/nobody")["spec"]["clusterIP"]
    eventually(lambda: f"{web.ns}/nobody:http has no endpoints" in iptables_save(), timeout=20)
    with pytest.raises(urllib.error.URLError) as err:
        fetch(f"http://{ip}/", timeout=20)
    assert isinstance(err.value.reason, ConnectionRefusedError), err.value.reason


def test_node_port_answers_on_localhost_and_the_node_ip(web: Web, proxy: Proxy) -> None:
    fetch_until_ok(f"http://127.0.0.1:{web.node_port}/", proxy)
    seen = {fetch(f"http://127.0.0.1:{web.node_port}/") for _ in range(30)}
    assert seen == set(web.pods)
    # the bridge's address is this node's too (addrtype LOCAL)
    assert fetch(f"http://10.88.0.1:{web.node_port}/") in web.pods


def test_a_pod_reaches_the_service_by_cluster_ip(cluster: Cluster, web: Web) -> None:
    cluster.apply(web.ns, pod_manifest("client", cluster.image, ["sleep", "3600"]))
    cluster.wait_pod(web.ns, "client", running)
    seen = {
        cluster.exec(web.ns, "client", "wget", "-qO-", f"http://{web.cluster_ip}/").strip()
        for _ in range(12)
    }
    assert seen <= set(web.pods) and len(seen) >= 2
    # and a web pod reaches itself through the Service (hairpin: masqueraded)
    name = sorted(web.pods)[0]
    out = cluster.exec(web.ns, name, "wget", "-qO-", f"http://{web.cluster_ip}/")
    assert out.strip() in web.pods


def test_client_ip_affinity_keeps_one_pod(cluster: Cluster, web: Web, proxy: Proxy) -> None:
    sticky = service("sticky")
    sticky["spec"]["sessionAffinity"] = "ClientIP"
    cluster.apply(web.ns, sticky)
    cluster.apply(web.ns, endpoint_slice("sticky", web.ns, web.pods))
    ip = cluster.get(web.ns, "service/sticky")["spec"]["clusterIP"]
    first = fetch_until_ok(f"http://{ip}/", proxy)
    assert {fetch(f"http://{ip}/") for _ in range(30)} == {first}


def test_endpoint_changes_reach_the_rules(cluster: Cluster, web: Web) -> None:
    keep = dict(sorted(web.pods.items())[:1])
    cluster.apply(web.ns, endpoint_slice("web", web.ns, keep))
    url = f"http://{web.cluster_ip}/"
    eventually(lambda: {fetch(url) for _ in range(10)} == set(keep), timeout=20)
    cluster.apply(web.ns, endpoint_slice("web", web.ns, web.pods))
    eventually(lambda: {fetch(url) for _ in range(40)} == set(web.pods), timeout=20)


def test_proxy_shutdown_removes_its_rules(proxy: Proxy) -> None:
    assert our_rules()
    rc = proxy.stop()
    assert rc == 0, proxy.tail()
    assert our_rules() == [], proxy.tail()
    assert "removed the service rules" in proxy.log.read_text()
