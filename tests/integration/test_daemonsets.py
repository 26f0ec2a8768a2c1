"""The DaemonSet controller against a real server whose scheduler binds the daemon pods.

The server runs the scheduler but not the workload controllers; each test runs
``DaemonSetController`` in-process, creates its own nodes (Node objects with
allocatable, named with a per-test tag) and plays the kubelet: a bound pod is patched
Running and Ready, a pod being deleted is removed. kubectl runs in a thread so the loops
keep going while it waits. Mirrors "Daemon set should run and stop simple daemon" and
"should list and delete a collection of DaemonSets".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from conftest import Kubectl, RunningServer, start_server
from corral.api.errors import StatusError
from corral.client.rest import (
    CONTROLLERREVISIONS,
    DAEMONSETS,
    EVENTS,
    NAMESPACES,
    NODES,
    PODS,
    Client,
)
from corral.controllers.base import InformerFactory
from corral.controllers.daemonset import HASH_LABEL, DaemonSetController, target_node
from corral.testing.wait import until
from corral.util.clock import rfc3339

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def ds_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("ds") / "data")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def kctl(ds_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(ds_server.kubeconfig, tmp_path_factory.mktemp("kubecache"))


class Cluster:
    """One test's namespace, nodes, controller and simulated kubelet."""

    def __init__(self, srv: RunningServer) -> None:
        self.client = Client.from_kubeconfig(srv.kubeconfig)
        self.ns = "ds-" + uuid.uuid4().hex[:8]
        self.tag = uuid.uuid4().hex[:4]
        self.nodes: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.factory = InformerFactory(self.client)

    async def start(self) -> None:
        await self.client.create(NAMESPACES, {"metadata": {"name": self.ns}})
        self.dsc = DaemonSetController(self.client, self.factory, workers=2)
        self._tasks.append(asyncio.create_task(self.dsc.run()))
        self._tasks.append(asyncio.create_task(self._kubelet()))
        await self.factory.wait_for_sync()

    async def node(
        self,
        name: str,
        labels: dict[str, str] | None = None,
        taints: list[Obj] | None = None,
        unschedulable: bool = False,
    ) -> str:
        full = f"{name}-{self.tag}"
        alloc = {"cpu": "4", "memory": "8Gi", "pods": "110"}
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

    async def _ready(self, pod: Obj) -> None:
        now = rfc3339(time.time())
        body = {
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                ],
            }
        }
        with contextlib.suppress(StatusError):
            await self.client.patch(PODS, pod["metadata"]["name"], body, self.ns, sub="status")

    async def _kubelet(self) -> None:
        rv = ""
        while True:
            try:
                async for ev in self.client.watch(PODS, self.ns, resource_version=rv):
                    pod = ev.get("object") or {}
                    rv = pod.get("metadata", {}).get("resourceVersion", rv)
                    if ev.get("type") not in ("ADDED", "MODIFIED"):
                        continue
                    if pod["metadata"].get("deletionTimestamp"):
                        with contextlib.suppress(StatusError):
                            await self.client.delete(
                                PODS, pod["metadata"]["name"], self.ns, grace_period=0
                            )
                        continue
                    if not pod["spec"].get("nodeName"):
                        continue
                    conds = pod.get("status", {}).get("conditions") or []
                    if not any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
                        await self._ready(pod)
            except StatusError:
                rv = ""

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.dsc.queue.close()
        await self.factory.stop()
        with contextlib.suppress(StatusError):
            await self.client.request("DELETE", PODS.path(self.ns), body={"gracePeriodSeconds": 0})
        for n in self.nodes:
            with contextlib.suppress(StatusError):
                await self.client.delete(NODES, n)
        with contextlib.suppress(StatusError):
            await self.client.delete(NAMESPACES, self.ns)
        await self.client.close()

    # --- helpers ---------------------------------------------------------------------------
    async def daemonset(self, name: str, image: str = "d:v1", **pod_spec: Any) -> Obj:
        body = {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": image}], **pod_spec},
                },
            },
        }
        return await self.client.create(DAEMONSETS, body, self.ns)

    async def pods(self, app: str) -> list[Obj]:
        lst = await self.client.list(PODS, self.ns, label_selector=f"app={app}")
        return [p for p in lst["items"] if not p["metadata"].get("deletionTimestamp")]

    async def placement(self, app: str) -> dict[str, list[str]]:
        """node -> images of the live pods of ``app`` bound there."""
        out: dict[str, list[str]] = {}
        for p in await self.pods(app):
            node = p["spec"].get("nodeName") or ""
            out.setdefault(node, []).append(p["spec"]["containers"][0]["image"])
        return out

    async def ready_on(self, app: str, nodes: list[str], image: str = "d:v1") -> bool:
        pods = await self.pods(app)
        ready = {
            p["spec"].get("nodeName")
            for p in pods
            if p["spec"]["containers"][0]["image"] == image
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p.get("status", {}).get("conditions") or []
            )
        }
        return ready == set(nodes) and len(pods) == len(nodes)

    async def status(self, name: str) -> Obj:
        ds = await self.client.get(DAEMONSETS, name, self.ns)
        st: Obj = ds.get("status") or {}
        return st


@pytest.fixture
async def cl(ds_server: RunningServer) -> AsyncIterator[Cluster]:
    c = Cluster(ds_server)
    await c.start()
    try:
        yield c
    finally:
        await c.close()


async def test_run_and_stop_simple_daemon(cl: Cluster) -> None:
    nodes = [await cl.node(f"n{i}") for i in range(3)]
    await cl.daemonset("daemon-set")
    await until(lambda: cl.ready_on("daemon-set", nodes))
    pods = await cl.pods("daemon-set")
    pod = pods[0]
    # bound the 1.32 way: required node affinity on the node's name, placed by the scheduler
    terms = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert terms == [
        {
            "matchFields": [
                {"key": "metadata.name", "operator": "In", "values": [pod["spec"]["nodeName"]]}
            ]
        }
    ]
    assert target_node(pod) == pod["spec"]["nodeName"]
    keys = {(t.get("key"), t.get("effect")) for t in pod["spec"]["tolerations"]}
    assert ("node.kubernetes.io/unschedulable", "NoSchedule") in keys
    assert ("node.kubernetes.io/not-ready", "NoExecute") in keys
    assert pod["metadata"]["labels"][HASH_LABEL]
    ref = pod["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["controller"]) == ("DaemonSet", "daemon-set", True)

    async def status_full() -> bool:
        st = await cl.status("daemon-set")
        return (
            st.get("desiredNumberScheduled") == 3
            and st.get("currentNumberScheduled") == 3
            and st.get("numberReady") == 3
            and st.get("numberAvailable") == 3
            and st.get("updatedNumberScheduled") == 3
            and st.get("numberMisscheduled") == 0
            and st.get("observedGeneration") == 1
        )

    await until(status_full)
    # a deleted daemon pod is revived
    await cl.client.delete(PODS, pod["metadata"]["name"], cl.ns)
    await until(
        lambda: _revived(cl, "daemon-set", pod["metadata"]["name"], nodes),
    )
    evs = (await cl.client.list(EVENTS, cl.ns))["items"]
    reasons = {e["reason"] for e in evs if e["involvedObject"]["name"] == "daemon-set"}
    assert "SuccessfulCreate" in reasons
    # stop: deleting the DaemonSet removes its pods (garbage collector)
    await cl.client.delete(DAEMONSETS, "daemon-set", cl.ns, propagation="Foreground")

    async def gone() -> bool:
        return not await cl.pods("daemon-set")

    await until(gone)


async def _revived(cl: Cluster, app: str, old: str, nodes: list[str]) -> bool:
    pods = await cl.pods(app)
    return old not in {p["metadata"]["name"] for p in pods} and await cl.ready_on(app, nodes)


async def test_list_and_delete_a_collection(cl: Cluster, kctl: Kubectl) -> None:
    await cl.node("a")
    for n in ("ds-a", "ds-b", "ds-c"):
        await cl.daemonset(n)
        body = {"metadata": {"labels": {"daemonset-static": "true"}}}
        await cl.client.patch(DAEMONSETS, n, body, cl.ns)
    lst = await cl.client.list(DAEMONSETS, cl.ns, label_selector="daemonset-static=true")
    assert len(lst["items"]) == 3
    await cl.client.request(
        "DELETE", DAEMONSETS.path(cl.ns), params={"labelSelector": "daemonset-static=true"}
    )

    async def none_left() -> bool:
        left = await cl.client.list(DAEMONSETS, cl.ns, label_selector="daemonset-static=true")
        return not left["items"]

    await until(none_left)


async def test_node_selector_taints_cordon_and_new_nodes(cl: Cluster) -> None:
    blue = await cl.node("blue", labels={"color": "blue"})
    await cl.node("green", labels={"color": "green"})
    tainted = await cl.node(
        "tainted",
        labels={"color": "blue"},
        taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}],
    )
    cordoned = await cl.node("cordoned", labels={"color": "blue"}, unschedulable=True)
    await cl.daemonset("sel", nodeSelector={"color": "blue"})
    await until(lambda: cl.ready_on("sel", [blue, cordoned]))
    # a new eligible node gets a pod at once; relabelling a node removes its pod
    late = await cl.node("late", labels={"color": "blue"})
    await until(lambda: cl.ready_on("sel", [blue, cordoned, late]))
    await cl.client.patch(NODES, late, {"metadata": {"labels": {"color": "green"}}})
    await until(lambda: cl.ready_on("sel", [blue, cordoned]))
    # a NoExecute taint removes the pod; a toleration brings it back
    await cl.client.patch(
        NODES, blue, {"spec": {"taints": [{"key": "x", "value": "y", "effect": "NoExecute"}]}}
    )
    await until(lambda: cl.ready_on("sel", [cordoned]))
    assert tainted not in await cl.placement("sel")

    async def desired_one() -> bool:  # the status follows the pods (its own write)
        return bool((await cl.status("sel"))["desiredNumberScheduled"] == 1)

    await until(desired_one)
    tol = [{"key": "k", "operator": "Exists"}, {"key": "x", "operator": "Exists"}]
    await cl.client.patch(
        DAEMONSETS, "sel", {"spec": {"template": {"spec": {"tolerations": tol}}}}, cl.ns
    )
    await until(lambda: cl.ready_on("sel", [blue, cordoned, tainted]), timeout=60)


async def test_rolling_update_rollout_status_history_undo(cl: Cluster, kctl: Kubectl) -> None:
    nodes = [await cl.node(f"r{i}") for i in range(3)]
    await cl.daemonset("roll")
    await until(lambda: cl.ready_on("roll", nodes))
    res = await asyncio.to_thread(
        kctl, "rollout", "status", "ds/roll", "-n", cl.ns, "--timeout=30s"
    )
    assert 'daemon set "roll" successfully rolled out' in res.stdout
    await asyncio.to_thread(kctl, "set", "image", "ds/roll", "c=d:v2", "-n", cl.ns)
    seen_max = 0

    async def rolled() -> bool:
        nonlocal seen_max
        placement = await cl.placement("roll")
        seen_max = max(seen_max, max((len(v) for v in placement.values()), default=0))
        return await cl.ready_on("roll", nodes, "d:v2")

    watcher = asyncio.create_task(until(rolled, timeout=60))
    res = await asyncio.to_thread(
        kctl, "rollout", "status", "ds/roll", "-n", cl.ns, "--timeout=60s"
    )
    assert "successfully rolled out" in res.stdout
    await watcher
    assert seen_max <= 1  # maxSurge 0: never two pods on a node
    evs = (await cl.client.list(EVENTS, cl.ns))["items"]
    deleted = [e for e in evs if e["reason"] == "SuccessfulDelete"]
    assert deleted and deleted[0]["message"].startswith("Deleted pod: roll-")
    st = await cl.status("roll")
    assert st["updatedNumberScheduled"] == 3 and st.get("numberUnavailable", 0) == 0
    revs = (await cl.client.list(CONTROLLERREVISIONS, cl.ns))["items"]
    assert sorted(r["revision"] for r in revs) == [1, 2]
    assert all(r["metadata"]["name"].startswith("roll-") for r in revs)
    hist = await asyncio.to_thread(kctl, "rollout", "history", "ds/roll", "-n", cl.ns)
    assert hist.stdout.split()[:4] == ["daemonset.apps/roll", "REVISION", "CHANGE-CAUSE", "1"]
    one = await asyncio.to_thread(
        kctl, "rollout", "history", "ds/roll", "-n", cl.ns, "--revision=2"
    )
    assert "d:v2" in one.stdout
    got = await asyncio.to_thread(kctl, "get", "ds", "roll", "-n", cl.ns, "--no-headers")
    assert got.stdout.split()[1:6] == ["3", "3", "3", "3", "3"]
    await asyncio.to_thread(kctl, "rollout", "undo", "ds/roll", "-n", cl.ns)
    await until(lambda: cl.ready_on("roll", nodes, "d:v1"), timeout=60)

    async def bumped() -> bool:
        revs = (await cl.client.list(CONTROLLERREVISIONS, cl.ns))["items"]
        return sorted(r["revision"] for r in revs) == [2, 3]

    await until(bumped)


async def test_surge_update_and_on_delete(cl: Cluster) -> None:
    nodes = [await cl.node(f"s{i}") for i in range(2)]
    await cl.daemonset("surge")
    await until(lambda: cl.ready_on("surge", nodes))
    patch = {
        "spec": {
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {"spec": {"containers": [{"name": "c", "image": "d:v2"}]}},
        }
    }
    await cl.client.patch(DAEMONSETS, "surge", patch, cl.ns, patch_type=_SMP)
    await until(lambda: cl.ready_on("surge", nodes, "d:v2"), timeout=60)
    # OnDelete: a template change touches nothing until a pod is deleted
    patch = {
        "spec": {
            "updateStrategy": {"type": "OnDelete", "rollingUpdate": None},
            "template": {"spec": {"containers": [{"name": "c", "image": "d:v3"}]}},
        }
    }
    await cl.client.patch(DAEMONSETS, "surge", patch, cl.ns, patch_type=_SMP)

    async def observed() -> bool:
        return (await cl.status("surge")).get("observedGeneration") == 3

    await until(observed)
    assert await cl.ready_on("surge", nodes, "d:v2")
    victim = next(p for p in await cl.pods("surge") if p["spec"]["nodeName"] == nodes[0])
    await cl.client.delete(PODS, victim["metadata"]["name"], cl.ns)

    async def one_new() -> bool:
        placement = await cl.placement("surge")
        return placement.get(nodes[0]) == ["d:v3"] and placement.get(nodes[1]) == ["d:v2"]

    await until(one_new)


_SMP = "application/strategic-merge-patch+json"
