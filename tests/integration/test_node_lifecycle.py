"""Node lifecycle against the real server, controller manager and hollow agents, driven by
the real kubectl: cordon/uncordon, a node whose agent dies going Unknown and tainted with
its pods evicted and recreated elsewhere, ``kubectl drain`` through the eviction API, and
a PodDisruptionBudget refusing an eviction.

One cluster per module: ``corral server`` (with its scheduler, default toleration seconds
2), ``corral controller-manager`` with a 3 s grace period, and two hollow agent processes
renewing Leases every second: one for node A (killed by the test), one for B and C.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import Kubectl, RunningServer, start_server
from corral.testing.wait import eventually

Obj = dict[str, Any]

#: a hollow agent process that renews its Leases every second (the CLI renews every 10 s)
AGENT = """
import asyncio, sys
from corral.agent.hollow import HollowAgent
from corral.client.rest import Client

async def main() -> None:
    client = Client.from_kubeconfig(sys.argv[1])
    agent = HollowAgent(client, sys.argv[2:], renew_interval=1.0, start_delay=0.05, grace_cap=0.2)
    await agent.run()

asyncio.run(main())
"""


@dataclass
class Cluster:
    srv: RunningServer
    kc: Kubectl
    procs: dict[str, subprocess.Popen[bytes]]
    nodes: dict[str, str]  # A, B, C -> node name


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("nlc")
    srv = start_server(
        root / "data",
        extra=[
            "--default-unreachable-toleration-seconds",
            "2",
            "--default-not-ready-toleration-seconds",
            "2",
        ],
    )
    kc = Kubectl(srv.kubeconfig, root / "cache")
    tag = uuid.uuid4().hex[:4]
    nodes = {k: f"nlc-{k.lower()}-{tag}" for k in "ABC"}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    log = open(root / "children.log", "ab")  # noqa: SIM115 (closed below)
    try:
        procs["cm"] = subprocess.Popen(
            [sys.executable, "-m", "corral", "controller-manager", "--kubeconfig",
             str(srv.kubeconfig), "--node-monitor-grace-period", "3s",
             "--node-monitor-period", "500ms", "--log-level", "warning"],
            stdout=log, stderr=log,
        )  # fmt: skip
        procs["agent-a"] = subprocess.Popen(
            [sys.executable, "-c", AGENT, str(srv.kubeconfig), nodes["A"]], stdout=log, stderr=log
        )
        procs["agent-bc"] = subprocess.Popen(
            [sys.executable, "-c", AGENT, str(srv.kubeconfig), nodes["B"], nodes["C"]],
            stdout=log,
            stderr=log,
        )

        def all_ready() -> bool:
            items = _json(kc, "get", "nodes")["items"]
            ready = {n["metadata"]["name"] for n in items if _ready(n) == "True"}
            return set(nodes.values()) <= ready

        eventually(all_ready, 30, what="three Ready nodes")
        yield Cluster(srv, kc, procs, nodes)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()
        srv.stop()


def _json(kc: Kubectl, *args: str) -> Obj:
    out: Obj = json.loads(kc(*args, "-o", "json").stdout)
    return out


def _ready(node: Obj) -> str:
    for c in node.get("status", {}).get("conditions") or []:
        if c["type"] == "Ready":
            return str(c["status"])
    return ""


def _taints(kc: Kubectl, node: str) -> set[tuple[str, str]]:
    n = _json(kc, "get", "node", node)
    return {(t["key"], t["effect"]) for t in n.get("spec", {}).get("taints") or []}


def _live_pods(kc: Kubectl, ns: str, selector: str) -> list[Obj]:
    items = _json(kc, "get", "pods", "-n", ns, "-l", selector)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _replicaset(name: str, replicas: int) -> str:
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                },
            },
        }
    )


UNSCHED = ("node.kubernetes.io/unschedulable", "NoSchedule")
UNREACH = {
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoSchedule"),
}


def test_unreachable_node_pods_evicted_and_recreated(cluster: Cluster) -> None:
    kc, a, b, c = cluster.kc, *cluster.nodes.values()
    ns = "nlc-" + uuid.uuid4().hex[:6]
    kc("create", "namespace", ns)
    # cordon B and C so the ReplicaSet lands on A
    for n in (b, c):
        assert "cordoned" in kc("cordon", n).stdout
    for n in (b, c):
        assert _json(kc, "get", "node", n)["spec"]["unschedulable"] is True
        eventually(lambda n=n: UNSCHED in _taints(kc, n), 15, what="the unschedulable taint")  # type: ignore[misc]
    kc("apply", "-n", ns, "-f", "-", input=_replicaset("web", 2))

    def running_on_a() -> bool:
        pods = _live_pods(kc, ns, "app=web")
        return len(pods) == 2 and all(
            p["spec"].get("nodeName") == a and p["status"].get("phase") == "Running" for p in pods
        )

    eventually(running_on_a, 30, what="two pods running on A")
    pod = _live_pods(kc, ns, "app=web")[0]
    assert {
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 2,
    } in pod["spec"]["tolerations"]  # DefaultTolerationSeconds, with the server's flag
    for n in (b, c):
        assert "uncordoned" in kc("uncordon", n).stdout
    for n in (b, c):
        eventually(lambda n=n: UNSCHED not in _taints(kc, n), 15, what="the taint gone")  # type: ignore[misc]

    old = {p["metadata"]["name"] for p in _live_pods(kc, ns, "app=web")}
    agent = cluster.procs["agent-a"]
    agent.kill()
    agent.wait()

    def unknown_and_tainted() -> bool:
        node = _json(kc, "get", "node", a)
        return _ready(node) == "Unknown" and _taints(kc, a) >= UNREACH

    eventually(unknown_and_tainted, 20, what="node A Unknown and tainted unreachable")
    node = _json(kc, "get", "node", a)
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["reason"], ready["message"]) == (
        "NodeStatusUnknown",
        "Kubelet stopped posting node status.",
    )
    assert any(t["effect"] == "NoExecute" and t.get("timeAdded") for t in node["spec"]["taints"])
    assert "NotReady" in kc("get", "node", a).stdout

    def moved() -> bool:
        pods = _live_pods(kc, ns, "app=web")
        return (
            len(pods) == 2
            and not old & {p["metadata"]["name"] for p in pods}
            and all(
                p["spec"].get("nodeName") in (b, c) and p["status"].get("phase") == "Running"
                for p in pods
            )
        )

    eventually(moved, 30, what="the ReplicaSet's pods evicted from A and running on B/C")
    gone = [p for p in _json(kc, "get", "pods", "-n", ns)["items"] if p["metadata"]["name"] in old]
    for p in gone:  # still terminating on the dead node, marked by the taint manager
        conds = {c["type"]: c for c in p["status"].get("conditions") or []}
        assert conds["DisruptionTarget"]["reason"] == "DeletionByTaintManager"
        assert conds["Ready"]["status"] == "False"
    events = _json(kc, "get", "events", "-n", ns)["items"]
    assert any(e["reason"] == "TaintManagerEviction" for e in events)


def test_drain_moves_replicaset_pods_keeps_daemonset(cluster: Cluster, tmp_path: Path) -> None:
    kc, _a, b, c = cluster.kc, *cluster.nodes.values()
    ns = "drain-" + uuid.uuid4().hex[:6]
    kc("create", "namespace", ns)
    kc("cordon", c)  # the ReplicaSet's pods start on B (the DaemonSet's go on C too)
    kc("apply", "-n", ns, "-f", "-", input=_replicaset("app", 4))
    ds = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }
    kc("apply", "-n", ns, "-f", "-", input=json.dumps(ds))
    bare = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bare"},
        "spec": {
            "nodeName": b,
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "scratch", "emptyDir": {}}],
        },
    }
    kc("apply", "-n", ns, "-f", "-", input=json.dumps(bare))

    def settled() -> bool:
        app = _live_pods(kc, ns, "app=app")
        agents = _live_pods(kc, ns, "app=agent")
        running = all(p["status"].get("phase") == "Running" for p in app + agents)
        on_b = any(p["spec"].get("nodeName") == b for p in app)
        return (
            len(app) == 4 and running and on_b and {p["spec"]["nodeName"] for p in agents} == {b, c}
        )

    eventually(settled, 30, what="ReplicaSet pods (some on B) and DaemonSet pods on B and C")
    kc("uncordon", c)
    ds_pod_b = next(p for p in _live_pods(kc, ns, "app=agent") if p["spec"]["nodeName"] == b)

    out = kc(
        "drain", b, "--ignore-daemonsets", "--delete-emptydir-data", "--force", "--timeout=60s",
        timeout=90,
    )  # fmt: skip
    assert f"node/{b} drained" in out.stdout, out.stdout + out.stderr
    assert "evicting pod" in out.stdout + out.stderr

    node = _json(kc, "get", "node", b)
    assert node["spec"]["unschedulable"] is True
    app = _live_pods(kc, ns, "app=app")
    assert not [p for p in app if p["spec"].get("nodeName") == b]
    assert kc("get", "pod", "bare", "-n", ns, check=False).returncode != 0  # forced out
    agents = {p["metadata"]["name"]: p for p in _live_pods(kc, ns, "app=agent")}
    assert ds_pod_b["metadata"]["name"] in agents  # the DaemonSet pod stays

    def replaced_on_c() -> bool:
        pods = _live_pods(kc, ns, "app=app")
        return len(pods) == 4 and all(
            p["spec"].get("nodeName") == c and p["status"].get("phase") == "Running" for p in pods
        )

    eventually(replaced_on_c, 30, what="the ReplicaSet back to 4 pods, all on C")
    kc("uncordon", b)


def test_eviction_refused_by_disruption_budget(cluster: Cluster) -> None:
    from kubernetes import client, config

    kc = cluster.kc
    ns = "pdb-" + uuid.uuid4().hex[:6]
    kc("create", "namespace", ns)
    kc("apply", "-n", ns, "-f", "-", input=_replicaset("guarded", 2))
    kc("create", "pdb", "guard", "-n", ns, "--selector=app=guarded", "--min-available=2")

    def ready() -> list[Obj]:
        pods = _live_pods(kc, ns, "app=guarded")
        ok = len(pods) == 2 and all(
            any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions") or []
            )
            for p in pods
        )
        return pods if ok else []

    pods = eventually(ready, 30, what="two ready pods")
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(cluster.srv.kubeconfig), client_configuration=cfg)
    with client.ApiClient(cfg) as api:
        core = client.CoreV1Api(api)
        name = pods[0]["metadata"]["name"]
        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=ns))
        with pytest.raises(client.ApiException) as e:
            core.create_namespaced_pod_eviction(name, ns, body)
        assert e.value.status == 429
        status = json.loads(e.value.body)
        assert (
            status["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
        )
        assert status["details"]["causes"][0]["reason"] == "DisruptionBudget"
        kc("patch", "pdb", "guard", "-n", ns, "--type=merge", "-p", '{"spec":{"minAvailable":1}}')
        core.create_namespaced_pod_eviction(name, ns, body)
    got = kc("get", "pod", name, "-n", ns, "-o", "json", check=False)
    if got.returncode == 0:  # still terminating: evicted, marked as such
        pod = json.loads(got.stdout)
        assert pod["metadata"].get("deletionTimestamp")
        conds = {c["type"]: c for c in pod["status"].get("conditions") or []}
        assert conds["DisruptionTarget"]["reason"] == "EvictionByEvictionAPI"
