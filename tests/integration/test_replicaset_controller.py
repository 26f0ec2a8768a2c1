"""ReplicaSet and ReplicationController controllers against a real server.

The server runs with ``--no-scheduler`` and no agent: pods stay unscheduled unless a test
binds them, and a test marks pods Running/Ready itself by writing ``pods/status``. The
controller manager runs in-process as an asyncio task with Corral's REST client. Mirrors
the conformance cases "ReplicaSet should adopt matching pods on creation and release no
longer matching pods", "Replicaset should have a working scale subresource" and
"ReplicaSet should list and delete a collection of ReplicaSets", plus RC basics, status
counts, scale-down order and garbage collection of the pods of a deleted ReplicaSet.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from conftest import Kubectl, RunningServer, start_server
from corral.api.errors import StatusError
from corral.client.rest import EVENTS, NAMESPACES, NODES, PODS, PRIORITY_CLASSES, Client
from corral.controllers.manager import ControllerManager
from corral.controllers.replicaset import REPLICASETS, REPLICATIONCONTROLLERS

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def rs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("rs") / "data", extra=["--no-scheduler"])
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def kc(rs_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(rs_server.kubeconfig, tmp_path_factory.mktemp("kubecache"))


async def until(pred: Callable[[], Awaitable[bool]], timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not await pred():
            await asyncio.sleep(0.05)


def now_str() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Env:
    """One test's namespace, client and running controller manager."""

    def __init__(self, srv: RunningServer) -> None:
        self.client = Client.from_kubeconfig(srv.kubeconfig)
        self.ns = "rs-" + uuid.uuid4().hex[:8]

    def rs(self, name: str, replicas: int, labels: Obj | None = None, **spec: Any) -> Obj:
        labels = labels or {"app": name}
        return {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": name, "labels": dict(labels)},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": dict(labels)},
                "template": {
                    "metadata": {"labels": dict(labels)},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
                **spec,
            },
        }

    async def create_rs(self, name: str, replicas: int, **kw: Any) -> Obj:
        return await self.client.create(REPLICASETS, self.rs(name, replicas, **kw), self.ns)

    async def pods(self, selector: str = "") -> list[Obj]:
        items: list[Obj] = (await self.client.list(PODS, self.ns, label_selector=selector))["items"]
        return items

    async def active(self, selector: str = "") -> list[Obj]:
        return [p for p in await self.pods(selector) if not p["metadata"].get("deletionTimestamp")]

    async def count_is(self, n: int, selector: str = "") -> bool:
        return len(await self.active(selector)) == n

    async def mark_ready(self, pod: Obj, restarts: int = 0) -> None:
        status = {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now_str()},
            ],
            "containerStatuses": [
                {
                    "name": "c",
                    "image": "busybox",
                    "imageID": "",
                    "ready": True,
                    "restartCount": restarts,
                    "started": True,
                    "state": {"running": {"startedAt": now_str()}},
                }
            ],
        }
        await self.client.patch(
            PODS, pod["metadata"]["name"], {"status": status}, self.ns, sub="status"
        )

    async def rs_status(self, name: str, res: Any = REPLICASETS) -> Obj:
        obj: Obj = await self.client.get(res, name, self.ns)
        st: Obj = obj.get("status") or {}
        return st

    async def events(self, name: str) -> list[Obj]:
        items = (await self.client.list(EVENTS, self.ns))["items"]
        return [e for e in items if e["involvedObject"]["name"] == name]


@pytest.fixture
async def env(rs_server: RunningServer) -> AsyncIterator[Env]:
    e = Env(rs_server)
    await e.client.create(NAMESPACES, {"metadata": {"name": e.ns}})
    manager = ControllerManager(e.client)
    task = asyncio.create_task(manager.run())
    try:
        async with asyncio.timeout(20):
            await manager.ready.wait()
        yield e
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        try:
            await e.client.delete(NAMESPACES, e.ns)
        except StatusError:
            pass
        await e.client.close()


async def test_creates_replicas_with_owner_and_events(env: Env) -> None:
    rs = await env.create_rs("web", 3)
    await until(lambda: env.count_is(3, "app=web"))
    pods = await env.active("app=web")
    for p in pods:
        assert p["metadata"]["name"].startswith("web-")
        assert p["metadata"]["labels"] == {"app": "web"}
        assert p["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web",
                "uid": rs["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]

    async def status_ok() -> bool:
        st = await env.rs_status("web")
        return st.get("replicas") == 3 and st.get("observedGeneration") == 1

    await until(status_ok)

    async def events_ok() -> bool:
        evs = await env.events("web")
        created = {e["message"] for e in evs if e["reason"] == "SuccessfulCreate"}
        return created == {f"Created pod: {p['metadata']['name']}" for p in pods}

    await until(events_ok)
    ev = next(e for e in await env.events("web") if e["reason"] == "SuccessfulCreate")
    assert ev["source"]["component"] == "replicaset-controller"
    assert ev["involvedObject"]["kind"] == "ReplicaSet"
    # a deleted pod is replaced
    await env.client.delete(PODS, pods[0]["metadata"]["name"], env.ns)
    await until(lambda: env.count_is(3, "app=web"))
    # no double creation once settled
    await asyncio.sleep(0.3)
    assert len(await env.active("app=web")) == 3


async def test_status_counts_ready_available_fully_labeled(env: Env) -> None:
    rs = env.rs("st", 2, labels={"app": "st"})
    rs["spec"]["template"]["metadata"]["labels"]["extra"] = "x"
    await env.client.create(REPLICASETS, rs, env.ns)
    await until(lambda: env.count_is(2, "app=st"))
    # an adopted orphan that matches the selector but lacks the template's extra label
    await env.client.patch(REPLICASETS, "st", {"spec": {"replicas": 3}}, env.ns)
    await until(lambda: env.count_is(3, "app=st"))
    pods = await env.active("app=st")
    await env.client.patch(
        PODS, pods[0]["metadata"]["name"], {"metadata": {"labels": {"extra": None}}}, env.ns
    )
    for p in pods[:2]:
        await env.mark_ready(p)

    async def counts() -> bool:
        st = await env.rs_status("st")
        return (
            st.get("replicas") == 3
            and st.get("fullyLabeledReplicas") == 2
            and st.get("readyReplicas") == 2
            and st.get("availableReplicas") == 2
            and st.get("observedGeneration") == 2
        )

    try:
        await until(counts)
    finally:
        print(await env.rs_status("st"))


async def test_min_ready_seconds_delays_available(env: Env) -> None:
    await env.create_rs("mr", 1, minReadySeconds=2)
    await until(lambda: env.count_is(1, "app=mr"))
    await env.mark_ready((await env.active("app=mr"))[0])

    async def ready_not_available() -> bool:
        st = await env.rs_status("mr")
        return st.get("readyReplicas") == 1 and not st.get("availableReplicas")

    await until(ready_not_available)

    async def available() -> bool:
        return (await env.rs_status("mr")).get("availableReplicas") == 1

    await until(available, timeout=10)


async def test_adopt_on_creation_and_release(env: Env) -> None:
    """Conformance: ReplicaSet should adopt matching pods on creation and release no
    longer matching pods."""
    orphan = {
        "metadata": {"name": "pod-adoption-release", "labels": {"name": "pod-adoption-release"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    await env.client.create(PODS, orphan, env.ns)
    rs = await env.create_rs("pod-adoption-release", 1, labels={"name": "pod-adoption-release"})
    uid = rs["metadata"]["uid"]

    async def adopted() -> bool:
        p = await env.client.get(PODS, "pod-adoption-release", env.ns)
        refs = p["metadata"].get("ownerReferences") or []
        return any(r["uid"] == uid and r.get("controller") for r in refs)

    await until(adopted)
    await asyncio.sleep(0.2)
    assert len(await env.active("name=pod-adoption-release")) == 1  # adopted, none created
    # change the label: released, and a replacement is created
    await env.client.patch(
        PODS,
        "pod-adoption-release",
        {"metadata": {"labels": {"name": "not-matching-name"}}},
        env.ns,
    )

    async def released() -> bool:
        p = await env.client.get(PODS, "pod-adoption-release", env.ns)
        return not p["metadata"].get("ownerReferences")

    await until(released)
    await until(lambda: env.count_is(1, "name=pod-adoption-release"))


async def test_scale_subresource_and_kubectl_scale(env: Env, kc: Kubectl) -> None:
    """Conformance: Replicaset should have a working scale subresource."""
    await env.create_rs("sc", 1)
    await until(lambda: env.count_is(1, "app=sc"))
    scale = await env.client.get(REPLICASETS, "sc/scale", env.ns)
    assert scale["spec"]["replicas"] == 1
    scale["spec"]["replicas"] = 2
    await env.client.request("PUT", REPLICASETS.path(env.ns, "sc", "scale"), body=scale)
    await until(lambda: env.count_is(2, "app=sc"))
    await env.client.patch(REPLICASETS, "sc", {"spec": {"replicas": 4}}, env.ns, sub="scale")
    await until(lambda: env.count_is(4, "app=sc"))
    kc("scale", "rs", "sc", "--replicas=1", "-n", env.ns)
    await until(lambda: env.count_is(1, "app=sc"))

    async def deleted_events() -> bool:
        evs = [e for e in await env.events("sc") if e["reason"] == "SuccessfulDelete"]
        return len(evs) == 3 and all(e["message"].startswith("Deleted pod: sc-") for e in evs)

    await until(deleted_events)
    out = kc("describe", "rs", "sc", "-n", env.ns).stdout
    assert "SuccessfulCreate" in out and "Created pod: sc-" in out
    assert "SuccessfulDelete" in out


async def test_list_and_delete_collection(env: Env) -> None:
    """Conformance: ReplicaSet should list and delete a collection of ReplicaSets."""
    for i in range(3):
        await env.create_rs(f"coll-{i}", 1, labels={"coll": "yes", "i": str(i)})
    await until(lambda: env.count_is(3, "coll=yes"))
    lst = await env.client.list(REPLICASETS, env.ns, label_selector="coll=yes")
    assert len(lst["items"]) == 3
    await env.client.request(
        "DELETE",
        REPLICASETS.path(env.ns),
        params={"labelSelector": "coll=yes"},
        body={"propagationPolicy": "Background"},
    )

    async def gone() -> bool:
        lst = await env.client.list(REPLICASETS, env.ns, label_selector="coll=yes")
        return not lst["items"]

    await until(gone)
    await until(lambda: env.count_is(0, "coll=yes"))


async def test_delete_rs_collects_pods(env: Env, kc: Kubectl) -> None:
    await env.create_rs("gc", 3)
    await until(lambda: env.count_is(3, "app=gc"))
    kc("delete", "rs", "gc", "-n", env.ns, "--wait=true")
    await until(lambda: env.count_is(0, "app=gc"))


async def test_scale_down_deletes_least_valuable_first(env: Env) -> None:
    tag = env.ns
    for n in ("n1", "n2"):
        await env.client.create(NODES, {"metadata": {"name": f"{n}-{tag}"}})
    await env.create_rs("down", 5)
    await until(lambda: env.count_is(5, "app=down"))
    pods = sorted(await env.active("app=down"), key=lambda p: p["metadata"]["name"])
    names = [p["metadata"]["name"] for p in pods]
    # names[0]: unassigned Pending; names[1]: assigned, not ready; names[2]: ready with
    # restarts; names[3], names[4]: ready, no restarts
    for i, node in ((1, "n1"), (2, "n1"), (3, "n2"), (4, "n2")):
        await env.client.post_sub(
            PODS,
            names[i],
            "binding",
            {"metadata": {"name": names[i]}, "target": {"kind": "Node", "name": f"{node}-{tag}"}},
            env.ns,
        )
    await env.mark_ready(pods[2], restarts=3)
    await env.mark_ready(pods[3])
    await env.mark_ready(pods[4])

    async def ready3() -> bool:
        return (await env.rs_status("down")).get("readyReplicas") == 3

    await until(ready3)
    await env.client.patch(REPLICASETS, "down", {"spec": {"replicas": 2}}, env.ns)

    async def three_gone() -> bool:
        return {p["metadata"]["name"] for p in await env.active("app=down")} == set(names[3:])

    await until(three_gone)
    try:
        for n in ("n1", "n2"):
            await env.client.delete(NODES, f"{n}-{tag}")
    except StatusError:
        pass


async def test_replication_controller_basic(env: Env, kc: Kubectl) -> None:
    rc = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "rc"},
        "spec": {
            "replicas": 2,
            "selector": {"app": "rc"},
            "template": {
                "metadata": {"labels": {"app": "rc"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }
    made = await env.client.create(REPLICATIONCONTROLLERS, rc, env.ns)
    await until(lambda: env.count_is(2, "app=rc"))
    p = (await env.active("app=rc"))[0]
    ref = p["metadata"]["ownerReferences"][0]
    assert (ref["apiVersion"], ref["kind"], ref["uid"]) == (
        "v1",
        "ReplicationController",
        made["metadata"]["uid"],
    )
    await env.mark_ready(p)

    async def status_ok() -> bool:
        st = await env.rs_status("rc", REPLICATIONCONTROLLERS)
        return st.get("replicas") == 2 and st.get("readyReplicas") == 1

    await until(status_ok)
    kc("scale", "rc", "rc", "--replicas=3", "-n", env.ns)
    await until(lambda: env.count_is(3, "app=rc"))
    evs = await env.events("rc")
    assert any(e["source"]["component"] == "replication-controller" for e in evs)


async def test_failed_create_sets_replica_failure(env: Env) -> None:
    # a template whose pods admission refuses (the PriorityClass does not exist yet)
    cls = "rs-missing-" + env.ns
    rs = env.rs("bad", 2)
    rs["spec"]["template"]["spec"]["priorityClassName"] = cls
    await env.client.create(REPLICASETS, rs, env.ns)

    async def failed() -> bool:
        conds = (await env.rs_status("bad")).get("conditions") or []
        return any(c["type"] == "ReplicaFailure" and c["reason"] == "FailedCreate" for c in conds)

    await until(failed)
    cond = (await env.rs_status("bad"))["conditions"][0]
    assert cond["status"] == "True" and "is forbidden" in cond["message"]
    evs = [e for e in await env.events("bad") if e["reason"] == "FailedCreate"]
    assert evs and evs[0]["message"].startswith("Error creating: ")
    assert evs[0]["type"] == "Warning"
    # slow start: one failed create per attempt, not two
    assert not await env.pods("app=bad")
    # once the class exists the retry succeeds and the condition goes
    await env.client.create(PRIORITY_CLASSES, {"metadata": {"name": cls}, "value": 10})
    try:

        async def cleared() -> bool:
            st = await env.rs_status("bad")
            return not st.get("conditions") and st.get("replicas") == 2

        await until(cleared, timeout=30)
    finally:
        await env.client.delete(PRIORITY_CLASSES, cls)
