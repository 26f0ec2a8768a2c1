"""Services end to end with nothing faked: a real server with its controllers (the
EndpointSlice controller writes the slices from the pods' readiness), a real ``oci`` agent
started with ``--proxy auto`` (its in-process proxy programs the host's iptables, as
kube-proxy does) and Deployments of busybox httpd pods that serve their own hostname.
Traffic goes from the host to the ClusterIP.

The cases: every replica serves; a scale-up adds endpoints; a pod that turns not-ready
gets no traffic until it is ready again; a Service that selects nothing refuses at once;
and a second agent whose CNI bridge cannot be created reports the plugin's error on its
pod (``FailedCreatePodSandBox``) while the pod stays ``ContainerCreating``.

Root only (runc, CNI, iptables); skips with the reason otherwise. No ``corral proxy`` runs
here: one proxy per host, the agent's. On the way out the module checks that the agent's
proxy removed every ``KUBE-*`` rule and that no shim, network namespace or mount of its
pods is left.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2ekit import (
    Cluster,
    Obj,
    condition,
    pod_manifest,
    require,
    running,
    running_cluster,
    state_of,
)

from corral.proxy.proxier import ROUTE_LOCALNET, IptablesBackend
from corral.testing.agent import AgentProcess

SERVE = "touch /tmp/ready; hostname > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"
BAD_BRIDGE = "corral-bridge-too-long"  # > 15 characters (IFNAMSIZ): the bridge plugin fails


def _skip_reason() -> str | None:
    if os.geteuid() != 0 or not shutil.which("iptables-restore"):
        return "the Service data path needs root and iptables-restore"
    return None


def iptables_save() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout


def our_rules() -> list[str]:
    return [ln for ln in iptables_save().splitlines() if "KUBE-" in ln]


def netns_left(pod_uids: set[str]) -> set[str]:
    """The network namespaces of these pods still on the host (the oci driver names them
    ``corral-<uid without dashes>[:16]``); other clusters' on this host are not ours."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names = {ln.split()[0] for ln in out.splitlines() if ln.strip()}
    return names & {"corral-" + uid.replace("-", "")[:16] for uid in pod_uids}


def pod_uids(cluster: Cluster) -> set[str]:
    """Every pod this cluster has had (each has at least its Scheduled event)."""
    out = cluster.kubectl("get", "events", "-A", "-o", "json").stdout
    return {
        e["involvedObject"]["uid"]
        for e in json.loads(out)["items"]
        if e["involvedObject"].get("kind") == "Pod" and e["involvedObject"].get("uid")
    }


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [ln.split()[4] for ln in f if ln.split()[4].startswith(f"{path}/")]


def shims_of(path: Path) -> list[str]:
    res = subprocess.run(["pgrep", "-f", f"shim.py {path}"], capture_output=True, text=True)
    return res.stdout.split()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if reason := _skip_reason():
        pytest.skip(reason)
    require("oci")
    assert not our_rules(), "KUBE-* rules exist before the test: another proxy runs here"
    localnet = Path("/proc/sys", *ROUTE_LOCALNET.split(".")).read_text()
    uids: set[str] = set()
    base = tmp_path_factory.mktemp("svcctl-oci")
    try:
        with running_cluster(
            base, "oci", "svcctl", controllers=True, workloads="deployments,replicasets",
            agent_args=["--proxy", "auto"],
        ) as c:  # fmt: skip
            yield c
            uids = pod_uids(c)
    finally:
        left = our_rules()
        if left:  # the agent's proxy failed to clean up: do it, then fail loudly below
            asyncio.run(IptablesBackend(localhost_nodeports=False).cleanup())
        Path("/proc/sys", *ROUTE_LOCALNET.split(".")).write_text(localnet)
    assert left == [], "the agent's proxy left its rules:\n" + "\n".join(left)
    assert uids and not netns_left(uids), f"pod netns left: {netns_left(uids)}"
    assert shims_of(base) == [], "shims left"
    assert mounts_under(base) == [], "mounts left"


@dataclass
class Web:
    ns: str
    cluster_ip: str

    @property
    def url(self) -> str:
        return f"http://{self.cluster_ip}/"

    @property
    def key(self) -> str:  # the proxy's name of the Service port, in its rule comments
        return f"{self.ns}/web:http"


def service(name: str, selector: dict[str, str]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        },
    }


def deployment(name: str, image: str, node: str, replicas: int = 3) -> Obj:
    pod = pod_manifest("x", image, ["sh", "-c", SERVE])
    pod["spec"]["containers"][0]["readinessProbe"] = {
        "exec": {"command": ["test", "-e", "/tmp/ready"]},
        "periodSeconds": 1,
    }
    # on the agent with the working network (the module adds a broken node later)
    pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod["spec"]},
        },
    }


def ready_pods(cluster: Cluster, ns: str) -> dict[str, str]:
    """name -> IP of the web pods that run and are Ready."""
    return {
        p["metadata"]["name"]: p["status"]["podIP"]
        for p in cluster.live_pods(ns, "app=web")
        if running(p) and condition(p, "Ready") == "True" and p["status"].get("podIP")
    }


def slice_endpoints(cluster: Cluster, ns: str, svc: str) -> dict[str, Obj]:
    """pod name -> its endpoint in the Service's EndpointSlices (the controller's)."""
    out = cluster.kubectl(
        "get", "endpointslices", "-n", ns, "-l", f"kubernetes.io/service-name={svc}", "-o", "json"
    ).stdout
    return {
        e["targetRef"]["name"]: e
        for s in json.loads(out)["items"]
        for e in s.get("endpoints") or []
        if e.get("targetRef")
    }


def rule_endpoints(key: str) -> set[str]:
    """The endpoint IPs the proxy's rules send ``key``'s ClusterIP traffic to."""
    out = set()
    for ln in iptables_save().splitlines():
        if f"{key} -> " in ln and "-j KUBE-SEP-" in ln:
            out.add(ln.split(f"{key} -> ")[1].split(":")[0].strip('"'))
    return out


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str, timeout: float = 5) -> str:
    with _DIRECT.open(url, timeout=timeout) as r:
        return str(r.read().decode().strip())


def wait_rules(cluster: Cluster, web: Web, ips: set[str], what: str) -> None:
    """Until the proxy's rules for the web Service send to exactly ``ips``."""
    cluster.wait(
        f"{what}: the rules send to {sorted(ips)} (now {sorted(rule_endpoints(web.key))})",
        lambda: rule_endpoints(web.key) == ips,
        timeout=30,
    )


@pytest.fixture(scope="module")
def web(cluster: Cluster) -> Web:
    ns = cluster.ns()
    cluster.apply(ns, deployment("web", cluster.image, cluster.agent.name))
    cluster.apply(ns, service("web", {"app": "web"}))
    cluster.wait("three web pods ready", lambda: len(ready_pods(cluster, ns)) == 3, timeout=60)
    ip = cluster.get(ns, "service/web")["spec"]["clusterIP"]
    return Web(ns, ip)


def test_every_replica_serves(cluster: Cluster, web: Web) -> None:
    pods = ready_pods(cluster, web.ns)
    wait_rules(cluster, web, set(pods.values()), "three replicas")
    seen = [fetch(web.url) for _ in range(100)]
    assert set(seen) == set(pods), f"answers {sorted(set(seen))}, pods {sorted(pods)}"


def test_scaling_up_adds_endpoints(cluster: Cluster, web: Web) -> None:
    t0 = time.monotonic()
    cluster.kubectl("scale", "deployment/web", "-n", web.ns, "--replicas=5")
    seen: set[str] = set()
    errors: list[str] = []

    def five_answer() -> bool:
        for _ in range(10):
            try:
                seen.add(fetch(web.url, timeout=2))
            except OSError as e:
                errors.append(repr(e))
        return len(seen) == 5

    cluster.wait(f"five pods answer (so far {sorted(seen)})", five_answer, timeout=60)
    print(f"\nscale 3 -> 5: the 5th pod answered {time.monotonic() - t0:.1f} s after the scale")
    live = {p["metadata"]["name"] for p in cluster.live_pods(web.ns, "app=web")}
    assert seen == live
    assert not errors, f"requests failed while scaling: {errors[:5]}"


def test_a_not_ready_pod_gets_no_traffic(cluster: Cluster, web: Web) -> None:
    pods = ready_pods(cluster, web.ns)
    assert len(pods) == 5
    wait_rules(cluster, web, set(pods.values()), "five replicas")
    victim = sorted(pods)[0]
    cluster.exec(web.ns, victim, "rm", "/tmp/ready")

    def endpoint_ready(want: bool) -> bool:
        ep = slice_endpoints(cluster, web.ns, "web").get(victim)
        return ep is not None and ep["conditions"].get("ready") is want

    cluster.wait(f"{victim}'s endpoint ready=false", lambda: endpoint_ready(False), timeout=30)
    others = {ip for name, ip in pods.items() if name != victim}
    wait_rules(cluster, web, others, f"{victim} not ready")
    seen = [fetch(web.url) for _ in range(60)]
    assert victim not in seen
    assert set(seen) == set(pods) - {victim}

    cluster.exec(web.ns, victim, "touch", "/tmp/ready")
    cluster.wait(f"{victim}'s endpoint ready=true", lambda: endpoint_ready(True), timeout=30)
    cluster.wait(
        f"{victim} serves again",
        lambda: victim in {fetch(web.url) for _ in range(10)},
        timeout=30,
    )


def test_a_service_without_endpoints_refuses_at_once(cluster: Cluster, web: Web) -> None:
    cluster.apply(web.ns, service("nobody", {"app": "no-such-pod"}))
    ip = cluster.get(web.ns, "service/nobody")["spec"]["clusterIP"]
    cluster.wait(
        "the REJECT rule of nobody",
        lambda: f"{web.ns}/nobody:http has no endpoints" in iptables_save(),
        timeout=30,
    )
    t0 = time.monotonic()
    with pytest.raises(urllib.error.URLError) as err:
        fetch(f"http://{ip}/", timeout=20)
    print(f"\nno endpoints: refused after {(time.monotonic() - t0) * 1000:.1f} ms")
    assert isinstance(err.value.reason, ConnectionRefusedError), err.value.reason


@pytest.fixture
def broken_node(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second oci agent whose CNI bridge name is too long for the kernel; its name.
    (Its own pod CIDR, and no node-local DNS: nothing of the first agent's is shared.)"""
    assert cluster.registry is not None
    agent = AgentProcess.start(
        cluster.server.kubeconfig, f"svcctl-broken-{uuid.uuid4().hex[:4]}", "oci",
        tmp_path_factory.mktemp("broken-agent"),
        extra=["--bridge", BAD_BRIDGE, "--pod-cidr", "10.89.250.0/24", "--node-dns", "off",
               "--registry-mirror", f"docker.io=http://{cluster.registry.host}"],
    )  # fmt: skip
    try:
        yield agent.name
        # its pods go while it runs (they would stay Terminating otherwise)
        cluster.kubectl("delete", "pods", "-A", "--field-selector", f"spec.nodeName={agent.name}")
    finally:
        agent.stop()
        agent.reset()
        cluster.kubectl("delete", "node", agent.name, check=False)


def test_a_failing_cni_plugin_is_reported_on_the_pod(
    cluster: Cluster, web: Web, broken_node: str
) -> None:
    cluster.apply(
        web.ns, pod_manifest("stuck", cluster.image, ["sleep", "3600"], nodeName=broken_node)
    )
    event = cluster.wait_event(web.ns, "stuck", "FailedCreatePodSandBox", "CNI bridge ADD")
    message = f'failed to create bridge "{BAD_BRIDGE}"'
    assert message in event["message"], event["message"]
    described = cluster.kubectl("describe", "pod", "stuck", "-n", web.ns).stdout
    assert "FailedCreatePodSandBox" in described and message in described, described
    pod = cluster.pod(web.ns, "stuck")
    assert pod["status"].get("phase") == "Pending"
    assert state_of(pod).get("waiting", {}).get("reason") == "ContainerCreating", pod["status"]
    row = cluster.kubectl("get", "pod", "stuck", "-n", web.ns, "--no-headers").stdout
    assert "ContainerCreating" in row, row
