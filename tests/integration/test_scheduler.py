"""The scheduler against a real server, with hollow nodes (Node objects with allocatable).

The server runs with ``--no-scheduler``; each test runs its own ``Scheduler`` in-process
as an asyncio task with Corral's REST client, in its own namespace, and deletes its
nodes afterwards so the next test starts from an empty cluster.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from conftest import Kubectl, RunningServer, start_server
from corral.api.errors import StatusError
from corral.api.quantity import milli_value, parse_quantity, value
from corral.client.rest import NAMESPACES, NODES, PODS, PRIORITY_CLASSES, Client
from corral.scheduler.scheduler import Scheduler
from corral.testing.wait import until

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def sched_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("sched") / "data", extra=["--no-scheduler"])
    yield srv
    srv.stop()


class Cluster:
    """One test's namespace and hollow nodes, and helpers to drive them."""

    def __init__(self, srv: RunningServer) -> None:
        self.srv = srv
        self.client = Client.from_kubeconfig(srv.kubeconfig)
        self.ns = "s-" + uuid.uuid4().hex[:8]
        self.tag = uuid.uuid4().hex[:4]
        self.nodes: list[str] = []

    async def node(
        self,
        name: str,
        cpu: str = "4",
        memory: str = "8Gi",
        pods: str = "110",
        labels: dict[str, str] | None = None,
        taints: list[Obj] | None = None,
        unschedulable: bool = False,
    ) -> str:
        full = f"{name}-{self.tag}"
        alloc = {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "100Gi"}
        spec: Obj = {}
        if taints:
            spec["taints"] = taints
        if unschedulable:
            spec["unschedulable"] = True
        body = {
            "metadata": {
                "name": full,
                "labels": {"kubernetes.io/hostname": full, **(labels or {})},
            },
            "spec": spec,
            "status": {"capacity": alloc, "allocatable": alloc},
        }
        await self.client.create(NODES, body)
        await self.client.patch(NODES, full, {"status": body["status"]}, sub="status")
        self.nodes.append(full)
        return full

    async def pod(
        self,
        name: str,
        cpu: str = "",
        memory: str = "",
        ns: str | None = None,
        **spec: Any,
    ) -> Obj:
        req = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
        container: Obj = {"name": "c", "image": "busybox"}
        if req:
            container["resources"] = {"requests": req}
        body = {"metadata": {"name": name}, "spec": {"containers": [container], **spec}}
        return await self.client.create(PODS, body, ns or self.ns)

    async def _empty(self) -> bool:
        return not await self.pods()

    async def get(self, name: str) -> Obj:
        return await self.client.get(PODS, name, self.ns)

    async def pods(self) -> list[Obj]:
        items: list[Obj] = (await self.client.list(PODS, self.ns))["items"]
        return items

    async def close(self) -> None:
        # pending pods left behind would be placed on the next test's nodes: remove them
        await self.client.request("DELETE", PODS.path(self.ns), body={"gracePeriodSeconds": 0})
        await until(lambda: self._empty(), timeout=60)
        for n in self.nodes:
            try:
                await self.client.delete(NODES, n)
            except StatusError:
                pass
        try:
            await self.client.delete(NAMESPACES, self.ns)
        except StatusError:
            pass
        await self.client.close()


@pytest.fixture
async def cluster(sched_server: RunningServer) -> AsyncIterator[Cluster]:
    c = Cluster(sched_server)
    await c.client.create(NAMESPACES, {"metadata": {"name": c.ns}})
    try:
        yield c
    finally:
        await c.close()


@asynccontextmanager
async def scheduling(c: Cluster, name: str = "default-scheduler") -> AsyncIterator[Scheduler]:
    s = Scheduler(c.client, name=name)
    task = asyncio.create_task(s.run())
    try:
        async with asyncio.timeout(30):
            await s.ready.wait()
        yield s
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


def condition(pod: Obj) -> Obj:
    conds = (pod.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == "PodScheduled"), {})


def decided(pod: Obj) -> bool:
    if pod["spec"].get("nodeName"):
        return True
    c = condition(pod)
    return c.get("status") == "False" and c.get("reason") == "Unschedulable"


async def all_decided(c: Cluster, n: int) -> bool:
    pods = await c.pods()
    return len(pods) == n and all(decided(p) for p in pods)


async def node_of(c: Cluster, name: str) -> str:
    return str((await c.get(name))["spec"].get("nodeName") or "")


# --- resources --------------------------------------------------------------------------------
async def test_resources_respected_with_1000_random_pods(cluster: Cluster) -> None:
    rng = random.Random(7)
    for i in range(20):
        await cluster.node(
            f"n{i}",
            cpu=str(rng.choice([2, 4, 8])),
            memory=f"{rng.choice([4, 8, 16])}Gi",
            pods=str(rng.choice([20, 50, 110])),
        )
    sem = asyncio.Semaphore(32)

    async def make(i: int) -> None:
        async with sem:
            await cluster.pod(
                f"p{i}",
                cpu=f"{rng.choice([50, 100, 250, 500, 1000, 2000])}m",
                memory=f"{rng.choice([64, 128, 512, 1024, 4096])}Mi",
            )

    async with scheduling(cluster) as s:
        await asyncio.gather(*(make(i) for i in range(1000)))
        await until(lambda: all_decided(cluster, 1000), timeout=90)
        assert s.stats.bound > 0
    pods = await cluster.pods()
    nodes = {n["metadata"]["name"]: n for n in (await cluster.client.list(NODES))["items"]}
    used: dict[str, list[int]] = {}
    for p in pods:
        node = p["spec"].get("nodeName")
        if not node:
            continue
        req = p["spec"]["containers"][0]["resources"]["requests"]
        u = used.setdefault(node, [0, 0, 0])
        u[0] += milli_value(parse_quantity(req["cpu"]))
        u[1] += value(parse_quantity(req["memory"]))
        u[2] += 1
    free: dict[str, list[int]] = {}
    for node, n in nodes.items():
        if node not in cluster.nodes:
            continue
        alloc = n["status"]["allocatable"]
        cpu, mem, count = used.get(node, [0, 0, 0])
        free[node] = [
            milli_value(parse_quantity(alloc["cpu"])) - cpu,
            value(parse_quantity(alloc["memory"])) - mem,
            int(alloc["pods"]) - count,
        ]
        assert min(free[node]) >= 0, (node, free[node])  # never over allocatable
    assert sum(u[2] for u in used.values()) > 150
    # space only shrank during the test, so no pod left pending would fit anywhere now,
    # and each says why, the Kubernetes way
    pending = [p for p in pods if not p["spec"].get("nodeName")]
    assert pending
    for p in pending:
        req = p["spec"]["containers"][0]["resources"]["requests"]
        want = [milli_value(parse_quantity(req["cpu"])), value(parse_quantity(req["memory"])), 1]
        fits = [n for n, f in free.items() if all(w <= h for w, h in zip(want, f, strict=True))]
        assert not fits, (p["metadata"]["name"], want, fits)
        assert condition(p)["message"].startswith("0/20 nodes are available: ")


# --- placement constraints -------------------------------------------------------------------
async def test_node_selector_and_affinity(cluster: Cluster) -> None:
    a = await cluster.node("a", labels={"zone": "a", "disk": "ssd"})
    b = await cluster.node("b", labels={"zone": "b"})
    c = await cluster.node("c", labels={"zone": "c", "gen": "5"})

    def required(*exprs: Obj) -> Obj:
        return {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": list(exprs)}]
                }
            }
        }

    async with scheduling(cluster):
        await cluster.pod("sel", nodeSelector={"zone": "b"})
        await cluster.pod(
            "notin", affinity=required({"key": "zone", "operator": "NotIn", "values": ["a", "b"]})
        )
        await cluster.pod("exists", affinity=required({"key": "disk", "operator": "Exists"}))
        await cluster.pod(
            "gt", affinity=required({"key": "gen", "operator": "Gt", "values": ["4"]})
        )
        await cluster.pod("nowhere", nodeSelector={"zone": "z"})
        await until(lambda: all_decided(cluster, 5))
        assert await node_of(cluster, "sel") == b
        assert await node_of(cluster, "notin") == c
        assert await node_of(cluster, "exists") == a
        assert await node_of(cluster, "gt") == c
        nowhere = await cluster.get("nowhere")
        assert condition(nowhere)["message"].startswith(
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
        )


async def test_taints_and_tolerations(cluster: Cluster) -> None:
    gpu = await cluster.node(
        "gpu", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
    )
    await cluster.node("db", taints=[{"key": "dedicated", "value": "db", "effect": "NoExecute"}])
    async with scheduling(cluster):
        await cluster.pod(
            "tolerant",
            tolerations=[
                {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
            ],
        )
        await cluster.pod("plain")
        await until(lambda: all_decided(cluster, 2))
        assert await node_of(cluster, "tolerant") == gpu
        msg = condition(await cluster.get("plain"))["message"]
        assert msg.startswith(
            "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, "
            "1 node(s) had untolerated taint {dedicated: gpu}."
        ), msg


async def test_cordoned_node_is_skipped(cluster: Cluster) -> None:
    await cluster.node("cordoned", unschedulable=True)
    open_ = await cluster.node("open")
    async with scheduling(cluster):
        for i in range(5):
            await cluster.pod(f"p{i}", cpu="100m")
        await until(lambda: all_decided(cluster, 5))
        assert {await node_of(cluster, f"p{i}") for i in range(5)} == {open_}, [
            condition(p) for p in await cluster.pods()
        ]
        await cluster.client.patch(NODES, open_, {"spec": {"unschedulable": True}})
        await cluster.pod("late")
        await until(lambda: all_decided(cluster, 6))
        msg = condition(await cluster.get("late"))["message"]
        assert msg.startswith("0/2 nodes are available: 2 node(s) were unschedulable."), msg
        # uncordoning is a node update: the parked pod is retried and placed
        await cluster.client.patch(NODES, open_, {"spec": {"unschedulable": False}})
        await until(lambda: _bound(cluster, "late"))


async def _bound(c: Cluster, name: str) -> bool:
    return bool(await node_of(c, name))


# --- what users see ----------------------------------------------------------------------------
@pytest.mark.kubectl
async def test_unschedulable_as_kubectl_describe_shows_it_and_corral_why(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    await cluster.node("small1", cpu="1")
    await cluster.node("small2", cpu="1500m")
    async with scheduling(cluster):
        await cluster.pod("big", cpu="2")
        await until(lambda: all_decided(cluster, 1))
    pod = await cluster.get("big")
    expected = (
        "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: "
        "2 No preemption victims found for incoming pod.."  # sic: Kubernetes doubles it
    )
    cond = condition(pod)
    assert cond["message"] == expected and cond["reason"] == "Unschedulable"
    kubectl = Kubectl(cluster.srv.kubeconfig, tmp_path_factory.mktemp("kc"))
    out = kubectl("describe", "pod", "big", "-n", cluster.ns).stdout
    assert "PodScheduled   False" in out, out
    events = out[out.index("Events:") :]
    assert "FailedScheduling" in events and "default-scheduler" in events, events
    assert "Warning" in events and "0/2 nodes are available: 2 Insufficient cpu." in events
    why = subprocess.run(
        [sys.executable, "-m", "corral", "why", "pod/big", "-n", cluster.ns,
         "--kubeconfig", str(cluster.srv.kubeconfig)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert why.returncode == 0, why.stderr
    lines = why.stdout.splitlines()
    assert lines[0] == f"pod/big: {expected}"
    assert lines[1].startswith("nearest miss: needs 2 cpu; best node small2-"), lines
    assert lines[1].endswith("has 1500m free"), lines


# --- priority and preemption ------------------------------------------------------------------
async def _hollow_kubelet(c: Cluster) -> None:
    """Finish graceful deletions, as a node agent would once the containers stopped."""
    while True:
        for p in await c.pods():
            if p["metadata"].get("deletionTimestamp"):
                try:
                    await c.client.delete(PODS, p["metadata"]["name"], c.ns, grace_period=0)
                except StatusError:
                    pass
        await asyncio.sleep(0.1)


async def test_priority_admission(cluster: Cluster) -> None:
    pc = f"mid-{cluster.tag}"
    await cluster.client.create(PRIORITY_CLASSES, {"metadata": {"name": pc}, "value": 500})
    try:
        made = await cluster.pod("with-class", priorityClassName=pc)
        assert made["spec"]["priority"] == 500
        assert made["spec"]["preemptionPolicy"] == "PreemptLowerPriority"
        crit = await cluster.pod("crit", priorityClassName="system-cluster-critical")
        assert crit["spec"]["priority"] == 2_000_000_000
        with pytest.raises(StatusError) as e:
            await cluster.pod("unknown", priorityClassName="nope")
        assert e.value.code == 403
        assert (
            e.value.message
            == 'pods "unknown" is forbidden: no PriorityClass with name nope was found'
        )
        with pytest.raises(StatusError) as e:
            await cluster.pod("mismatch", priorityClassName=pc, priority=7)
        assert e.value.code == 403 and "must not be provided in pod spec" in e.value.message
    finally:
        await cluster.client.delete(PRIORITY_CLASSES, pc)


async def test_preemption(cluster: Cluster) -> None:
    low, high = f"low-{cluster.tag}", f"high-{cluster.tag}"
    await cluster.client.create(PRIORITY_CLASSES, {"metadata": {"name": low}, "value": 100})
    await cluster.client.create(PRIORITY_CLASSES, {"metadata": {"name": high}, "value": 1000})
    node = await cluster.node("full", cpu="2")
    kubelet = asyncio.create_task(_hollow_kubelet(cluster))
    try:
        async with scheduling(cluster) as s:
            for i in range(4):
                await cluster.pod(f"low{i}", cpu="500m", priorityClassName=low)
            await until(lambda: all_decided(cluster, 4))
            assert all(p["spec"].get("nodeName") == node for p in await cluster.pods())
            await cluster.pod("vip", cpu="1", priorityClassName=high)

            async def vip_bound() -> bool:
                return await node_of(cluster, "vip") == node

            await until(vip_bound)
            assert s.stats.preemptions >= 1
        vip = await cluster.get("vip")
        assert vip["spec"]["priority"] == 1000
        assert vip["status"].get("nominatedNodeName") == node
        left = [
            p["metadata"]["name"] for p in await cluster.pods() if p["metadata"]["name"] != "vip"
        ]
        assert len(left) == 2, left  # exactly two 500m victims made room for 1 cpu
    finally:
        kubelet.cancel()
        await cluster.client.delete(PRIORITY_CLASSES, low)
        await cluster.client.delete(PRIORITY_CLASSES, high)


# --- several schedulers --------------------------------------------------------------------------
async def test_two_schedulers_side_by_side(cluster: Cluster) -> None:
    await cluster.node("shared")
    async with scheduling(cluster) as default:
        await cluster.pod("mine")
        await cluster.pod("theirs", schedulerName="other")
        await until(lambda: _bound(cluster, "mine"))
        await asyncio.sleep(0.5)  # give the default scheduler every chance to misbehave
        theirs = await cluster.get("theirs")
        assert not theirs["spec"].get("nodeName") and not condition(theirs)
        assert "theirs" not in {k.split("/")[1] for k in default.queue.pods}
        async with scheduling(cluster, "other") as other:
            await until(lambda: _bound(cluster, "theirs"))
            assert other.stats.bound == 1


# --- the API server's guard ------------------------------------------------------------------------
async def test_binding_overcommit_refused(cluster: Cluster) -> None:
    node = await cluster.node("last", cpu="1")
    for name in ("x", "y"):
        await cluster.pod(name, cpu="600m", schedulerName="nobody")

    async def bind(name: str) -> int:
        body = {"target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        try:
            await cluster.client.post_sub(PODS, name, "binding", body, cluster.ns)
        except StatusError as e:
            assert e.code == 409
            assert e.message.startswith(f'Operation cannot be fulfilled on pods/binding "{name}": ')
            assert f"node {node} does not have enough cpu" in e.message
            return 409
        return 201

    codes = await asyncio.gather(bind("x"), bind("y"))
    assert sorted(codes) == [201, 409]
    winner = "x" if codes[0] == 201 else "y"
    with pytest.raises(StatusError) as e:
        await cluster.client.post_sub(
            PODS, winner, "binding", {"target": {"name": node}}, cluster.ns
        )
    assert e.value.code == 409 and "is already assigned to node" in e.value.message
    # the loser fits once the winner is gone
    await cluster.client.delete(PODS, winner, cluster.ns, grace_period=0)
    loser = "y" if winner == "x" else "x"
    await cluster.client.post_sub(PODS, loser, "binding", {"target": {"name": node}}, cluster.ns)
    assert await node_of(cluster, loser) == node


# --- inter-pod affinity and spread -----------------------------------------------------------
async def test_pod_anti_affinity_and_affinity(cluster: Cluster) -> None:
    nodes = [await cluster.node(f"aa{i}", labels={"zone": f"z{i % 2}"}) for i in range(3)]
    anti = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {"app": "db"}},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }
    near = {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}
            ]
        }
    }
    async with scheduling(cluster):
        for i in range(4):
            body = {
                "metadata": {"name": f"db{i}", "labels": {"app": "db"}},
                "spec": {"affinity": anti, "containers": [{"name": "c", "image": "busybox"}]},
            }
            await cluster.client.create(PODS, body, cluster.ns)
        await until(lambda: all_decided(cluster, 4))
        placed = [await node_of(cluster, f"db{i}") for i in range(4)]
        bound = [n for n in placed if n]
        assert sorted(bound) == sorted(nodes)  # one per node, the fourth has nowhere to go
        stuck = next(f"db{i}" for i in range(4) if not placed[i])
        assert (
            "didn't match pod anti-affinity rules" in condition(await cluster.get(stuck))["message"]
        )
        await cluster.pod("web", affinity=near)
        await until(lambda: all_decided(cluster, 5))
        assert await node_of(cluster, "web") in nodes


async def test_topology_spread_do_not_schedule(cluster: Cluster) -> None:
    for i in range(4):
        await cluster.node(f"sp{i}", labels={"zone": "a" if i < 2 else "b"})
    spread = [
        {
            "maxSkew": 1,
            "topologyKey": "zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "spread"}},
        }
    ]
    async with scheduling(cluster):
        for i in range(6):
            body = {
                "metadata": {"name": f"s{i}", "labels": {"app": "spread"}},
                "spec": {
                    "topologySpreadConstraints": spread,
                    "containers": [{"name": "c", "image": "busybox"}],
                },
            }
            await cluster.client.create(PODS, body, cluster.ns)
        await until(lambda: all_decided(cluster, 6))
        zones: dict[str, int] = {}
        for i in range(6):
            node = await node_of(cluster, f"s{i}")
            assert node, f"s{i} was not placed"
            z = "a" if node.startswith("sp0") or node.startswith("sp1") else "b"
            zones[z] = zones.get(z, 0) + 1
        assert zones == {"a": 3, "b": 3}
