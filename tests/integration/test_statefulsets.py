"""The StatefulSet controller against a real server.

The server runs with ``--no-scheduler --no-controllers`` (unbound pods are deleted at
once); each test runs ``StatefulSetController`` in-process in its own namespace and plays
the node agent itself: every pod that appears is patched Running and Ready
(``pods/status``) unless its name is held back. Mirrors the conformance cases of issue 5.
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
from corral.client.rest import EVENTS, NAMESPACES, PODS, Client
from corral.controllers.base import InformerFactory
from corral.controllers.statefulset import (
    CONTROLLERREVISIONS,
    POD_INDEX_LABEL,
    POD_NAME_LABEL,
    REVISION_LABEL,
    STATEFULSETS,
    StatefulSetController,
)
from corral.testing.wait import until
from corral.util.clock import rfc3339

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def sts_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(
        tmp_path_factory.mktemp("sts") / "data", extra=["--no-scheduler", "--no-controllers"]
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def kctl(sts_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(sts_server.kubeconfig, tmp_path_factory.mktemp("kubecache"))


class Cluster:
    """One test's namespace, controller and simulated kubelet."""

    def __init__(self, srv: RunningServer) -> None:
        self.client = Client.from_kubeconfig(srv.kubeconfig)
        self.ns = "s-" + uuid.uuid4().hex[:8]
        self.hold: set[str] = set()  # pod names that stay unready
        self.created: list[str] = []  # pod names in the order they appeared
        self._tasks: list[asyncio.Task[None]] = []
        self.factory = InformerFactory(self.client)

    async def start(self) -> None:
        await self.client.create(NAMESPACES, {"metadata": {"name": self.ns}})
        self.ctl = StatefulSetController(self.client, self.factory, workers=2)
        self._tasks.append(asyncio.create_task(self.ctl.run()))
        self._tasks.append(asyncio.create_task(self._kubelet()))
        await self.factory.wait_for_sync()

    async def ready(self, name: str) -> None:
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
            await self.client.patch(PODS, name, body, self.ns, sub="status")

    async def release(self, name: str) -> None:
        self.hold.discard(name)
        await self.ready(name)

    async def _kubelet(self) -> None:
        rv = ""
        while True:
            try:
                async for ev in self.client.watch(PODS, self.ns, resource_version=rv):
                    pod = ev.get("object") or {}
                    rv = pod.get("metadata", {}).get("resourceVersion", rv)
                    name = pod.get("metadata", {}).get("name", "")
                    if ev.get("type") == "ADDED":
                        self.created.append(name)
                    if ev.get("type") not in ("ADDED", "MODIFIED"):
                        continue
                    if pod["metadata"].get("deletionTimestamp") or name in self.hold:
                        continue
                    conds = pod.get("status", {}).get("conditions") or []
                    if not any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
                        await self.ready(name)
            except StatusError:
                rv = ""

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.ctl.queue.close()
        await self.factory.stop()
        with contextlib.suppress(StatusError):
            await self.client.delete(NAMESPACES, self.ns)
        await self.client.close()

    # --- helpers ---------------------------------------------------------------------------
    async def create(self, name: str, replicas: int = 3, image: str = "web:v1", **spec: Any) -> Obj:
        body = {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "serviceName": name,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": image}]},
                },
                **spec,
            },
        }
        return await self.client.create(STATEFULSETS, body, self.ns)

    async def get(self, name: str) -> Obj:
        return await self.client.get(STATEFULSETS, name, self.ns)

    async def set_image(self, name: str, image: str) -> None:
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}
        await self.client.patch(
            STATEFULSETS, name, patch, self.ns, patch_type="application/strategic-merge-patch+json"
        )

    async def pods(self) -> dict[str, Obj]:
        items: list[Obj] = (await self.client.list(PODS, self.ns))["items"]
        return {
            p["metadata"]["name"]: p for p in items if not p["metadata"].get("deletionTimestamp")
        }

    async def images(self) -> dict[str, str]:
        return {n: p["spec"]["containers"][0]["image"] for n, p in (await self.pods()).items()}

    async def settled(self, name: str) -> bool:
        """What ``kubectl rollout status`` waits for (RollingUpdate, no partition)."""
        s = await self.get(name)
        st = s.get("status") or {}
        want = s["spec"]["replicas"]
        return bool(
            st.get("observedGeneration", 0) >= s["metadata"]["generation"]
            and st.get("replicas", 0) == want
            and st.get("readyReplicas", 0) == want
            and st.get("updatedReplicas", 0) == want
            and st.get("currentRevision") == st.get("updateRevision")
            and len(await self.pods()) == want
        )

    async def events(self, name: str) -> list[str]:
        items = (await self.client.list(EVENTS, self.ns))["items"]
        return [
            e["message"]
            for e in items
            if e["involvedObject"]["name"] == name and e["involvedObject"]["kind"] == "StatefulSet"
        ]


@pytest.fixture
async def cluster(sts_server: RunningServer) -> AsyncIterator[Cluster]:
    c = Cluster(sts_server)
    await c.start()
    try:
        yield c
    finally:
        await c.close()


async def test_pods_have_stable_identity_and_revision(cluster: Cluster) -> None:
    await cluster.create(
        "web",
        replicas=2,
        volumeClaimTemplates=[
            {
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        ],
    )
    await until(lambda: cluster.settled("web"))
    pods = await cluster.pods()
    assert sorted(pods) == ["web-0", "web-1"]
    s = await cluster.get("web")
    st = s["status"]
    revs = (await cluster.client.list(CONTROLLERREVISIONS, cluster.ns))["items"]
    assert [r["metadata"]["name"] for r in revs] == [st["updateRevision"]]
    assert revs[0]["revision"] == 1 and st["updateRevision"].startswith("web-")
    assert st["currentRevision"] == st["updateRevision"]
    assert (st["currentReplicas"], st["availableReplicas"], st["collisionCount"]) == (2, 2, 0)
    for i in range(2):
        p = pods[f"web-{i}"]
        labels = p["metadata"]["labels"]
        assert labels[POD_NAME_LABEL] == f"web-{i}" and labels[POD_INDEX_LABEL] == str(i)
        assert labels[REVISION_LABEL] == st["updateRevision"]
        assert (p["spec"]["hostname"], p["spec"]["subdomain"]) == (f"web-{i}", "web")
        claim = {"name": "data", "persistentVolumeClaim": {"claimName": f"data-web-{i}"}}
        assert claim in p["spec"]["volumes"]
        assert p["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    events = await cluster.events("web")
    assert "create Pod web-0 in StatefulSet web successful" in events


async def test_ordered_creation_waits_for_ready(cluster: Cluster) -> None:
    cluster.hold.add("o-1")
    await cluster.create("o", replicas=3)

    async def two() -> bool:
        return sorted(await cluster.pods()) == ["o-0", "o-1"]

    await until(two)
    await asyncio.sleep(0.5)  # give a wrong controller time to create o-2
    assert sorted(await cluster.pods()) == ["o-0", "o-1"]
    await cluster.release("o-1")
    await until(lambda: cluster.settled("o"))
    assert cluster.created == ["o-0", "o-1", "o-2"]


async def test_scale_down_highest_first_and_scale_subresource(
    cluster: Cluster, kctl: Kubectl
) -> None:
    """StatefulSet should have a working scale subresource."""
    await cluster.create("sc", replicas=1)
    await until(lambda: cluster.settled("sc"))
    path = STATEFULSETS.path(cluster.ns, "sc", "scale")
    scale = await cluster.client.request("GET", path)
    assert scale["spec"]["replicas"] == 1 and scale["status"]["selector"] == "app=sc"
    scale["spec"]["replicas"] = 4
    await cluster.client.request("PUT", path, body=scale)
    await until(lambda: cluster.settled("sc"))
    assert cluster.created == ["sc-0", "sc-1", "sc-2", "sc-3"]
    deleted: list[str] = []

    async def watch() -> None:
        async for ev in cluster.client.watch(PODS, cluster.ns):
            if ev["type"] == "DELETED":
                deleted.append(ev["object"]["metadata"]["name"])

    task = asyncio.create_task(watch())
    await asyncio.to_thread(kctl, "scale", "sts", "sc", "--replicas=1", "-n", cluster.ns)
    await until(lambda: cluster.settled("sc"))

    async def three() -> bool:
        return len(deleted) == 3

    await until(three)
    task.cancel()
    assert deleted == ["sc-3", "sc-2", "sc-1"]
    assert (await cluster.get("sc"))["spec"]["replicas"] == 1
    assert "delete Pod sc-3 in StatefulSet sc successful" in await cluster.events("sc")


async def test_rolling_update_with_partition(cluster: Cluster, kctl: Kubectl) -> None:
    part = {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}
    await cluster.create("ru", replicas=3, updateStrategy=part)
    await until(lambda: cluster.settled("ru"))
    first = (await cluster.get("ru"))["status"]["updateRevision"]
    await cluster.set_image("ru", "web:v2")

    async def partitioned() -> bool:
        st = (await cluster.get("ru"))["status"]
        return (await cluster.images()) == {
            "ru-0": "web:v1",
            "ru-1": "web:v1",
            "ru-2": "web:v2",
        } and (st.get("updatedReplicas") == 1 and st.get("readyReplicas") == 3)

    await until(partitioned)
    st = (await cluster.get("ru"))["status"]
    assert st["currentRevision"] == first != st["updateRevision"]
    assert st["currentReplicas"] == 2
    out = await asyncio.to_thread(
        kctl, "rollout", "status", "sts/ru", "-n", cluster.ns, "--timeout=20s"
    )
    assert "partitioned roll out complete" in out.stdout
    # lift the partition: the rest is updated from the highest ordinal down
    cluster.created.clear()
    await cluster.client.patch(
        STATEFULSETS,
        "ru",
        {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}},
        cluster.ns,
    )
    out = await asyncio.to_thread(
        kctl, "rollout", "status", "sts/ru", "-n", cluster.ns, "--timeout=30s"
    )
    assert "roll out complete" in out.stdout
    assert set((await cluster.images()).values()) == {"web:v2"}
    assert cluster.created == ["ru-1", "ru-0"]
    st = (await cluster.get("ru"))["status"]
    assert st["currentRevision"] == st["updateRevision"] and st["currentReplicas"] == 3
    revs = (await cluster.client.list(CONTROLLERREVISIONS, cluster.ns))["items"]
    assert sorted(r["revision"] for r in revs) == [1, 2]


async def test_on_delete_replaces_only_deleted_pods(cluster: Cluster) -> None:
    await cluster.create("od", replicas=2, updateStrategy={"type": "OnDelete"})
    await until(lambda: cluster.settled("od"))
    await cluster.set_image("od", "web:v2")

    async def observed() -> bool:
        s = await cluster.get("od")
        return bool(s["status"].get("observedGeneration") == s["metadata"]["generation"])

    await until(observed)
    assert (await cluster.images()) == {"od-0": "web:v1", "od-1": "web:v1"}
    await cluster.client.delete(PODS, "od-1", cluster.ns)

    async def replaced() -> bool:
        return (await cluster.images()) == {"od-0": "web:v1", "od-1": "web:v2"}

    await until(replaced)


async def test_parallel_creates_and_deletes_at_once(cluster: Cluster) -> None:
    cluster.hold.update({"par-0", "par-1", "par-2"})
    await cluster.create("par", replicas=3, podManagementPolicy="Parallel")

    async def all_three() -> bool:
        return sorted(await cluster.pods()) == ["par-0", "par-1", "par-2"]

    await until(all_three)  # none of them is ready, yet all exist
    for n in ("par-0", "par-1", "par-2"):
        await cluster.release(n)
    await until(lambda: cluster.settled("par"))
    await cluster.client.patch(STATEFULSETS, "par", {"spec": {"replicas": 0}}, cluster.ns)
    await until(lambda: cluster.settled("par"))
    assert await cluster.pods() == {}
