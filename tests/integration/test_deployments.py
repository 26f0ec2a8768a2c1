"""The Deployment controller against a real server, with the ReplicaSet controller beside it.

The server runs with ``--no-scheduler --no-controllers``; each test runs
``DeploymentController`` and ``ReplicaSetController`` in-process on one informer factory,
in its own namespace, and plays the node agent itself: every pod that appears is patched Running and Ready
(``pods/status``) unless the test holds readiness back. kubectl runs in a thread so the
loops keep going while it waits. Mirrors the conformance cases named in issue 5.
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
from corral.controllers.deployment import DEPLOYMENTS, REPLICASETS, DeploymentController
from corral.controllers.deployment_util import HASH_LABEL, REVISION
from corral.controllers.replicaset import ReplicaSetController
from corral.testing.wait import until
from corral.util.clock import rfc3339

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def dep_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(
        tmp_path_factory.mktemp("deploy") / "data", extra=["--no-scheduler", "--no-controllers"]
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def kctl(dep_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(dep_server.kubeconfig, tmp_path_factory.mktemp("kubecache"))


class Cluster:
    """One test's namespace, controllers and simulated kubelet."""

    def __init__(self, srv: RunningServer) -> None:
        self.client = Client.from_kubeconfig(srv.kubeconfig)
        self.ns = "d-" + uuid.uuid4().hex[:8]
        self.hold: set[str] = set()  # image names whose pods stay unready
        self.ready_delay = 0.0  # seconds before a new pod turns ready
        self._tasks: list[asyncio.Task[None]] = []
        self.factory = InformerFactory(self.client)

    async def start(self) -> None:
        await self.client.create(NAMESPACES, {"metadata": {"name": self.ns}})
        self.dc = DeploymentController(self.client, self.factory, workers=2)
        self.rsc = ReplicaSetController(self.client, self.factory, workers=2)
        self._tasks.append(asyncio.create_task(self.dc.run()))
        self._tasks.append(asyncio.create_task(self.rsc.run()))
        self._tasks.append(asyncio.create_task(self._kubelet()))
        await self.factory.wait_for_sync()

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

    async def _ready_later(self, pod: Obj) -> None:
        await asyncio.sleep(self.ready_delay)
        await self._ready(pod)

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
                        continue
                    images = {c.get("image") for c in pod["spec"]["containers"]}
                    if images & self.hold:
                        continue
                    conds = pod.get("status", {}).get("conditions") or []
                    if not any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
                        if self.ready_delay:
                            self._tasks.append(asyncio.create_task(self._ready_later(pod)))
                        else:
                            await self._ready(pod)
            except StatusError:
                rv = ""

    async def release(self, image: str) -> None:
        """Let pods of ``image`` become ready (those already there too)."""
        self.hold.discard(image)
        for p in await self.pods():
            if image in {c.get("image") for c in p["spec"]["containers"]}:
                await self._ready(p)

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.dc.queue.close()
        self.rsc.queue.close()
        await self.factory.stop()
        with contextlib.suppress(StatusError):
            await self.client.delete(NAMESPACES, self.ns)
        await self.client.close()

    # --- helpers ---------------------------------------------------------------------------
    async def deploy(self, name: str, replicas: int = 3, image: str = "web:v1", **spec: Any) -> Obj:
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": image}]},
                },
                **spec,
            },
        }
        return await self.client.create(DEPLOYMENTS, body, self.ns)

    async def get(self, name: str) -> Obj:
        return await self.client.get(DEPLOYMENTS, name, self.ns)

    async def set_image(self, name: str, image: str) -> None:
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}
        await self.client.patch(
            DEPLOYMENTS, name, patch, self.ns, patch_type="application/strategic-merge-patch+json"
        )

    async def rss(self) -> list[Obj]:
        items: list[Obj] = (await self.client.list(REPLICASETS, self.ns))["items"]
        return items

    async def pods(self) -> list[Obj]:
        items: list[Obj] = (await self.client.list(PODS, self.ns))["items"]
        return items

    async def complete(self, name: str) -> bool:
        """What ``kubectl rollout status`` waits for."""
        d = await self.get(name)
        st = d.get("status") or {}
        want = d["spec"]["replicas"]
        return bool(
            st.get("observedGeneration", 0) >= d["metadata"]["generation"]
            and st.get("updatedReplicas", 0) == want
            and st.get("replicas", 0) == want
            and st.get("availableReplicas", 0) == want
        )

    async def events(self, name: str) -> list[str]:
        items = (await self.client.list(EVENTS, self.ns))["items"]
        return [
            e["message"]
            for e in items
            if e["involvedObject"]["name"] == name and e["involvedObject"]["kind"] == "Deployment"
        ]


@pytest.fixture
async def cluster(dep_server: RunningServer) -> AsyncIterator[Cluster]:
    c = Cluster(dep_server)
    await c.start()
    try:
        yield c
    finally:
        await c.close()


def cond(d: Obj, type_: str) -> Obj:
    return next((c for c in d.get("status", {}).get("conditions") or [] if c["type"] == type_), {})


def revision(o: Obj) -> str:
    return str((o["metadata"].get("annotations") or {}).get(REVISION, ""))


# --- lifecycle ----------------------------------------------------------------------------------
async def test_lifecycle_of_a_deployment(cluster: Cluster) -> None:
    """Deployment should run the lifecycle of a Deployment."""
    await cluster.deploy("web", replicas=3)
    await until(lambda: cluster.complete("web"))
    d = await cluster.get("web")
    st = d["status"]
    assert st["readyReplicas"] == 3 and st.get("unavailableReplicas", 0) == 0
    assert st["observedGeneration"] == d["metadata"]["generation"]
    assert revision(d) == "1"
    assert cond(d, "Available")["reason"] == "MinimumReplicasAvailable"
    assert cond(d, "Available")["message"] == "Deployment has minimum availability."
    (rs,) = await cluster.rss()
    h = rs["metadata"]["labels"][HASH_LABEL]
    assert rs["metadata"]["name"] == f"web-{h}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", HASH_LABEL: h}
    assert rs["spec"]["template"]["metadata"]["labels"][HASH_LABEL] == h
    ann = rs["metadata"]["annotations"]
    assert ann[REVISION] == "1"
    assert ann["deployment.kubernetes.io/desired-replicas"] == "3"
    assert ann["deployment.kubernetes.io/max-replicas"] == "4"  # 3 + ceil(25% of 3)
    prog = cond(d, "Progressing")
    assert prog["reason"] == "NewReplicaSetAvailable"
    assert prog["message"] == f'ReplicaSet "web-{h}" has successfully progressed.'
    assert f"Scaled up replica set web-{h} from 0 to 3" in await cluster.events("web")
    assert all(p["metadata"]["labels"][HASH_LABEL] == h for p in await cluster.pods())

    # a template change rolls out a second ReplicaSet; the first is scaled to 0 and kept
    await cluster.set_image("web", "web:v2")
    await until(lambda: cluster.complete("web"))
    d = await cluster.get("web")
    assert revision(d) == "2"
    rss = {r["metadata"]["name"]: r for r in await cluster.rss()}
    assert len(rss) == 2 and rss[f"web-{h}"]["spec"]["replicas"] == 0
    assert {p["spec"]["containers"][0]["image"] for p in await cluster.pods()} == {"web:v2"}

    # deleting the Deployment lets the garbage collector remove its ReplicaSets
    await cluster.client.delete(DEPLOYMENTS, "web", cluster.ns)

    async def gone() -> bool:
        return not await cluster.rss()

    await until(gone)


async def test_orphan_propagation_keeps_replica_sets(cluster: Cluster) -> None:
    """should orphan RS created by deployment when deleteOptions.PropagationPolicy is Orphan."""
    await cluster.deploy("orph", replicas=2)
    await until(lambda: cluster.complete("orph"))
    await cluster.client.delete(DEPLOYMENTS, "orph", cluster.ns, propagation="Orphan")

    async def released() -> bool:
        rss = await cluster.rss()
        return len(rss) == 1 and not rss[0]["metadata"].get("ownerReferences")

    await until(released)
    assert len(await cluster.pods()) == 2
    # a new Deployment with the same selector and template adopts the orphan again
    await cluster.deploy("orph", replicas=2)
    await until(lambda: cluster.complete("orph"))
    (rs,) = await cluster.rss()
    d = await cluster.get("orph")
    assert rs["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]


async def test_rolling_update_deletes_old_pods_and_creates_new(cluster: Cluster) -> None:
    """RollingUpdateDeployment should delete old pods and create new ones."""
    labels = {"name": "sample-pod", "pod": "httpd"}
    rs_body = {
        "metadata": {
            "name": "test-rolling-update-controller",
            "labels": labels,
            "annotations": {REVISION: "3546343826724305832"},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "httpd", "image": "httpd:2.4"}]},
            },
        },
    }
    await cluster.client.create(REPLICASETS, rs_body, cluster.ns)

    async def one_ready() -> bool:
        rs = await cluster.client.get(REPLICASETS, "test-rolling-update-controller", cluster.ns)
        return bool(rs.get("status", {}).get("availableReplicas") == 1)

    await until(one_ready)
    body = {
        "metadata": {"name": "test-rolling-update-deployment", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "agnhost", "image": "agnhost:2.52"}]},
            },
        },
    }
    await cluster.client.create(DEPLOYMENTS, body, cluster.ns)
    await until(lambda: cluster.complete("test-rolling-update-deployment"))
    d = await cluster.get("test-rolling-update-deployment")
    assert revision(d) == "3546343826724305833"
    rss = await cluster.rss()
    assert len(rss) == 2
    old = next(r for r in rss if r["metadata"]["name"] == "test-rolling-update-controller")
    assert old["spec"]["replicas"] == 0
    assert old["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]  # adopted
    new = next(r for r in rss if r is not old)
    assert revision(new) == "3546343826724305833"

    async def only_new_pods() -> bool:
        pods = await cluster.pods()
        return len(pods) == 1 and pods[0]["spec"]["containers"][0]["image"] == "agnhost:2.52"

    await until(only_new_pods)


async def test_deployment_deletes_old_replica_sets(cluster: Cluster) -> None:
    """deployment should delete old replica sets (revisionHistoryLimit 0)."""
    labels = {"name": "cleanup-pod"}
    rs_body = {
        "metadata": {"name": "test-cleanup-controller", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "httpd", "image": "httpd:2.4"}]},
            },
        },
    }
    await cluster.client.create(REPLICASETS, rs_body, cluster.ns)
    body = {
        "metadata": {"name": "test-cleanup-deployment"},
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "agnhost", "image": "agnhost:2.52"}]},
            },
        },
    }
    await cluster.client.create(DEPLOYMENTS, body, cluster.ns)

    async def one_rs_left() -> bool:
        rss = await cluster.rss()
        return len(rss) == 1 and rss[0]["metadata"]["name"] != "test-cleanup-controller"

    await until(one_rs_left)
    await until(lambda: cluster.complete("test-cleanup-deployment"))


async def test_revision_history_limit_keeps_newest(cluster: Cluster) -> None:
    await cluster.deploy("hist", replicas=1, revisionHistoryLimit=2)
    for v in range(2, 6):
        await until(lambda: cluster.complete("hist"))
        await cluster.set_image("hist", f"web:v{v}")
    await until(lambda: cluster.complete("hist"))

    async def three_left() -> bool:
        return len(await cluster.rss()) == 3

    await until(three_left)
    revs = sorted(int(revision(r)) for r in await cluster.rss())
    assert revs == [3, 4, 5]


async def test_scale_subresource(cluster: Cluster) -> None:
    """Deployment should have a working scale subresource."""
    await cluster.deploy("sc", replicas=1)
    await until(lambda: cluster.complete("sc"))
    path = DEPLOYMENTS.path(cluster.ns, "sc", "scale")
    scale = await cluster.client.request("GET", path)
    assert scale["spec"]["replicas"] == 1 and scale["status"]["selector"] == "app=sc"
    scale["spec"]["replicas"] = 4
    await cluster.client.request("PUT", path, body=scale)
    await until(lambda: cluster.complete("sc"))
    (rs,) = await cluster.rss()
    assert rs["spec"]["replicas"] == 4
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "4"
    await cluster.client.patch(
        DEPLOYMENTS, "sc", {"spec": {"replicas": 2}}, cluster.ns, sub="scale"
    )
    await until(lambda: cluster.complete("sc"))
    assert len(await cluster.pods()) == 2
    events = await cluster.events("sc")
    name = rs["metadata"]["name"]
    assert f"Scaled up replica set {name} from 1 to 4" in events
    assert f"Scaled down replica set {name} from 4 to 2" in events


async def test_recreate(cluster: Cluster) -> None:
    await cluster.deploy("rc", replicas=3, strategy={"type": "Recreate"})
    await until(lambda: cluster.complete("rc"))
    seen_mixed = False
    stop = asyncio.Event()

    async def watch() -> None:
        nonlocal seen_mixed
        while not stop.is_set():
            images = {p["spec"]["containers"][0]["image"] for p in await cluster.pods()}
            seen_mixed = seen_mixed or len(images) > 1
            await asyncio.sleep(0.02)

    w = asyncio.create_task(watch())
    await cluster.set_image("rc", "web:v2")
    await until(lambda: cluster.complete("rc"))
    stop.set()
    await w
    assert not seen_mixed, "Recreate ran old and new pods together"
    assert {p["spec"]["containers"][0]["image"] for p in await cluster.pods()} == {"web:v2"}


async def test_paused_deployment_scales_but_does_not_roll(cluster: Cluster) -> None:
    await cluster.deploy("pz", replicas=2)
    await until(lambda: cluster.complete("pz"))
    await cluster.client.patch(DEPLOYMENTS, "pz", {"spec": {"paused": True}}, cluster.ns)

    async def paused_cond() -> bool:
        return cond(await cluster.get("pz"), "Progressing").get("reason") == "DeploymentPaused"

    await until(paused_cond)
    await cluster.set_image("pz", "web:v2")
    await cluster.client.patch(DEPLOYMENTS, "pz", {"spec": {"replicas": 3}}, cluster.ns)

    async def scaled() -> bool:
        d = await cluster.get("pz")
        return bool(
            d["status"].get("observedGeneration") == d["metadata"]["generation"]
            and d["status"].get("availableReplicas") == 3
        )

    await until(scaled)
    assert len(await cluster.rss()) == 1  # no new ReplicaSet while paused
    await cluster.client.patch(DEPLOYMENTS, "pz", {"spec": {"paused": False}}, cluster.ns)
    await until(lambda: cluster.complete("pz"))
    assert len(await cluster.rss()) == 2
    assert {p["spec"]["containers"][0]["image"] for p in await cluster.pods()} == {"web:v2"}


async def test_progress_deadline_exceeded(cluster: Cluster) -> None:
    await cluster.deploy("slow", replicas=1, progressDeadlineSeconds=1)
    await until(lambda: cluster.complete("slow"))
    cluster.hold.add("web:stuck")
    await cluster.set_image("slow", "web:stuck")

    async def timed_out() -> bool:
        c = cond(await cluster.get("slow"), "Progressing")
        return c.get("reason") == "ProgressDeadlineExceeded"

    await until(timed_out, timeout=20)
    d = await cluster.get("slow")
    new = next(r for r in await cluster.rss() if revision(r) == "2")
    assert cond(d, "Progressing") | {"lastUpdateTime": "", "lastTransitionTime": ""} == {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.',
        "lastUpdateTime": "",
        "lastTransitionTime": "",
    }


async def test_ten_replica_rollout_keeps_availability(cluster: Cluster) -> None:
    """A 10-replica rollout never drops below replicas - maxUnavailable ready pods."""
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}
    await cluster.deploy("big", replicas=10, strategy=strategy)
    await until(lambda: cluster.complete("big"))
    lst = await cluster.client.list(PODS, cluster.ns)
    state: dict[str, Obj] = {p["metadata"]["name"]: p for p in lst["items"]}
    minimum, maximum = 10, 10
    cluster.ready_delay = 0.05  # new pods take a moment to turn ready

    def ready_count() -> int:
        return sum(
            1
            for p in state.values()
            if not p["metadata"].get("deletionTimestamp")
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p.get("status", {}).get("conditions") or []
            )
        )

    async def watch() -> None:
        nonlocal minimum, maximum
        rv = lst["metadata"]["resourceVersion"]
        async for ev in cluster.client.watch(PODS, cluster.ns, resource_version=rv):
            pod = ev["object"]
            if ev["type"] == "DELETED":
                state.pop(pod["metadata"]["name"], None)
            elif ev["type"] in ("ADDED", "MODIFIED"):
                state[pod["metadata"]["name"]] = pod
            minimum = min(minimum, ready_count())
            live = sum(1 for p in state.values() if not p["metadata"].get("deletionTimestamp"))
            maximum = max(maximum, live)

    w = asyncio.create_task(watch())
    await cluster.set_image("big", "web:v2")

    async def done() -> bool:
        images = {p["spec"]["containers"][0]["image"] for p in state.values()}
        return images == {"web:v2"} and await cluster.complete("big")

    await until(done, timeout=60)
    w.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await w
    assert minimum >= 8, f"availability dropped to {minimum}"
    assert maximum <= 13, f"{maximum} pods exceed replicas + maxSurge"


# --- kubectl -------------------------------------------------------------------------------------
async def test_kubectl_rollout_status_history_undo_restart(cluster: Cluster, kctl: Kubectl) -> None:
    ns = cluster.ns

    async def k(*args: str, check: bool = True) -> str:
        res = await asyncio.to_thread(kctl, "-n", ns, *args, check=check, timeout=90)
        return str(res.stdout) + str(res.stderr)

    await k("create", "deployment", "web", "--image=web:v1", "--replicas=3")
    out = await k("rollout", "status", "deploy/web", "--timeout=60s")
    assert 'deployment "web" successfully rolled out' in out
    await k("set", "image", "deploy/web", "web=web:v2")
    await k("annotate", "deploy/web", "kubernetes.io/change-cause=to v2")
    out = await k("rollout", "status", "deploy/web", "--timeout=60s")
    assert "successfully rolled out" in out
    hist = await k("rollout", "history", "deploy/web")
    assert "REVISION" in hist and "to v2" in hist
    lines = [ln.split()[0] for ln in hist.splitlines()[2:] if ln.strip()]
    assert lines == ["1", "2"]

    out = await k("rollout", "undo", "deploy/web")
    assert "rolled back" in out
    await k("rollout", "status", "deploy/web", "--timeout=60s")
    d = await cluster.get("web")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "web:v1"
    assert revision(d) == "3"
    rss = await cluster.rss()
    assert len(rss) == 2  # the old ReplicaSet came back with a new revision
    back = next(r for r in rss if revision(r) == "3")
    assert back["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    hist = await k("rollout", "history", "deploy/web")
    assert [ln.split()[0] for ln in hist.splitlines()[2:] if ln.strip()] == ["2", "3"]

    await k("rollout", "restart", "deploy/web")
    await k("rollout", "status", "deploy/web", "--timeout=60s")
    assert len(await cluster.rss()) == 3
    assert revision(await cluster.get("web")) == "4"

    await k("rollout", "pause", "deploy/web")
    await k("set", "image", "deploy/web", "web=web:v3")
    await k("scale", "deploy/web", "--replicas=5")

    async def five() -> bool:
        d = await cluster.get("web")
        return bool(d["status"].get("availableReplicas") == 5)

    await until(five)
    assert len(await cluster.rss()) == 3
    await k("rollout", "resume", "deploy/web")
    await k("rollout", "status", "deploy/web", "--timeout=60s")
    pods = await cluster.pods()
    assert len(pods) == 5 and {p["spec"]["containers"][0]["image"] for p in pods} == {"web:v3"}
    desc = await k("describe", "deploy/web")
    assert "ScalingReplicaSet" in desc
