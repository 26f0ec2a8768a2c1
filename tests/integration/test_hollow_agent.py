"""The hollow agent against a real server (with its scheduler): Nodes registered and Ready,
Leases renewed, pods Running with the fields kubectl shows, simulated exits, graceful
deletion, adoption after an agent restart, the ``main`` entry, and 200 nodes running 500
scheduled pods.

Each test runs its own ``HollowAgent`` in-process (an asyncio task) with uniquely named
nodes and its own namespace, and deletes its nodes afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from conftest import Kubectl, RunningServer, start_server
from corral.agent.hollow import EXIT_AFTER, EXIT_CODE, HollowAgent
from corral.agent.node import bounded
from corral.api.errors import StatusError
from corral.client.rest import LEASES, NAMESPACES, NODES, PODS, Client
from corral.testing.wait import until
from corral.util.clock import parse_rfc3339

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def hollow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("hollow") / "data")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def hkubectl(hollow_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(hollow_server.kubeconfig, tmp_path_factory.mktemp("hkube"))


class Env:
    """One test's client, namespace and node names."""

    def __init__(self, srv: RunningServer) -> None:
        self.client = Client.from_kubeconfig(srv.kubeconfig)
        self.ns = "h-" + uuid.uuid4().hex[:8]
        self.prefix = "hn-" + uuid.uuid4().hex[:6]
        self.nodes: set[str] = set()

    @asynccontextmanager
    async def agent(self, count: int, **kw: Any) -> AsyncIterator[HollowAgent]:
        names = [f"{self.prefix}-{i}" for i in range(count)]
        self.nodes.update(names)
        kw.setdefault("start_delay", 0.05)
        kw.setdefault("grace_cap", 0.2)
        agent = HollowAgent(self.client, names, kw.pop("labels", None), **kw)
        task = asyncio.create_task(agent.run())
        try:
            async with asyncio.timeout(60):
                ready = asyncio.create_task(agent.ready.wait())
                await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
                if task.done():
                    task.result()
            yield agent
        finally:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def pod(self, name: str, node: str = "", **extra: Any) -> Obj:
        annotations = extra.pop("annotations", None)
        meta: Obj = {"name": name}
        if annotations:
            meta["annotations"] = annotations
        spec: Obj = {"containers": [{"name": "main", "image": "busybox:1.36"}], **extra}
        if node:
            spec["nodeName"] = node
        return await self.client.create(PODS, {"metadata": meta, "spec": spec}, self.ns)

    async def get(self, name: str) -> Obj:
        return await self.client.get(PODS, name, self.ns)

    async def phase_is(self, name: str, phase: str) -> bool:
        return (await self.get(name)).get("status", {}).get("phase") == phase

    async def close(self) -> None:
        await self.client.request("DELETE", PODS.path(self.ns), body={"gracePeriodSeconds": 0})

        async def empty() -> bool:
            return not (await self.client.list(PODS, self.ns))["items"]

        await until(empty, timeout=60)

        def drop(n: str) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                for res, ns in ((NODES, None), (LEASES, "kube-node-lease")):
                    try:
                        await self.client.delete(res, n, ns)
                    except StatusError:
                        pass

            return run

        await bounded((drop(n) for n in self.nodes), 32)
        try:
            await self.client.delete(NAMESPACES, self.ns)
        except StatusError:
            pass
        await self.client.close()


@pytest.fixture
async def env(hollow_server: RunningServer) -> AsyncIterator[Env]:
    e = Env(hollow_server)
    await e.client.create(NAMESPACES, {"metadata": {"name": e.ns}})
    try:
        yield e
    finally:
        await e.close()


def condition(obj: Obj, type_: str) -> Obj:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


# --- nodes and leases -------------------------------------------------------------------------
async def test_nodes_registered_ready_with_kubelet_fields(env: Env, hkubectl: Kubectl) -> None:
    async with env.agent(3, labels={"zone": "z1"}, capacity={"cpu": "8", "memory": "16Gi"}):
        for name in sorted(env.nodes):
            node = await env.client.get(NODES, name)
            labels = node["metadata"]["labels"]
            assert labels["kubernetes.io/hostname"] == name
            assert labels["kubernetes.io/os"] == "linux"
            assert labels["kubernetes.io/arch"] == "amd64"
            assert labels["zone"] == "z1"
            st = node["status"]
            assert st["capacity"] == {"cpu": "8", "memory": "16Gi"} == st["allocatable"]
            ready = condition(node, "Ready")
            assert (ready["status"], ready["reason"]) == ("True", "KubeletReady")
            assert ready["message"] == "kubelet is posting ready status"
            for t in ("MemoryPressure", "DiskPressure", "PIDPressure"):
                assert condition(node, t)["status"] == "False"
            types = [a["type"] for a in st["addresses"]]
            assert types == ["InternalIP", "Hostname"]
            assert st["nodeInfo"]["kubeletVersion"] == "v1.32.0"
            assert st["nodeInfo"]["containerRuntimeVersion"] == "hollow://1.0"
        out = hkubectl("get", "nodes", "-l", "zone=z1", "--no-headers").stdout
        rows = [line.split() for line in out.splitlines()]
        assert sorted(r[0] for r in rows) == sorted(env.nodes)
        assert all(r[1] == "Ready" and r[-1] == "v1.32.0" for r in rows)


async def test_existing_node_gets_its_status_updated(env: Env) -> None:
    name = f"{env.prefix}-0"
    await env.client.create(NODES, {"metadata": {"name": name}})
    async with env.agent(1):
        node = await env.client.get(NODES, name)
        assert condition(node, "Ready")["status"] == "True"
        assert node["status"]["allocatable"]["pods"] == "110"
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == name


async def test_leases_renewed(env: Env) -> None:
    async with env.agent(2, renew_interval=0.2) as agent:
        name = f"{env.prefix}-1"

        async def renewed_twice() -> bool:
            return agent.leases.renewals >= 6

        await until(renewed_twice, timeout=20)
        first = await env.client.get(LEASES, name, "kube-node-lease")
        spec = first["spec"]
        assert (spec["holderIdentity"], spec["leaseDurationSeconds"]) == (name, 40)
        assert len(spec["renewTime"]) == len("2026-01-01T00:00:00.000000Z")
        node = await env.client.get(NODES, name)
        owner = first["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["uid"]) == ("Node", node["metadata"]["uid"])

        async def advanced() -> bool:
            lease = await env.client.get(LEASES, name, "kube-node-lease")
            return parse_rfc3339(lease["spec"]["renewTime"]) > parse_rfc3339(spec["renewTime"])

        await until(advanced, timeout=10)
        assert agent.leases.failures == 0


# --- pods ----------------------------------------------------------------------------------------
async def test_bound_pods_run_with_status_kubectl_shows(env: Env, hkubectl: Kubectl) -> None:
    async with env.agent(2):
        n0, n1 = f"{env.prefix}-0", f"{env.prefix}-1"
        await env.pod("direct", n0)
        await env.pod("bound", schedulerName="nobody")
        await env.client.post_sub(
            PODS,
            "bound",
            "binding",
            {"metadata": {"name": "bound"}, "target": {"kind": "Node", "name": n1}},
            env.ns,
        )
        for name in ("direct", "bound"):
            await until(lambda name=name: env.phase_is(name, "Running"))  # type: ignore[misc]
        a, b = await env.get("direct"), await env.get("bound")
        assert a["status"]["podIP"] != b["status"]["podIP"]
        node = await env.client.get(NODES, n0)
        assert a["status"]["hostIP"] == node["status"]["addresses"][0]["address"]
        st = a["status"]
        assert st["startTime"]
        for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
            c = condition(a, t)
            assert c["status"] == "True" and c["lastTransitionTime"], t
        (cs,) = st["containerStatuses"]
        assert (cs["name"], cs["image"]) == ("main", "busybox:1.36")
        assert cs["imageID"] and cs["containerID"].startswith("hollow://")
        assert cs["ready"] is True and cs["started"] is True and cs["restartCount"] == 0
        assert cs["state"]["running"]["startedAt"]
        out = hkubectl("get", "pods", "-n", env.ns, "-o", "wide", "--no-headers").stdout
        rows = {r.split()[0]: r.split() for r in out.splitlines()}
        # NAME READY STATUS RESTARTS AGE IP NODE NOMINATED READINESS
        assert rows["direct"][1:3] == ["1/1", "Running"]
        assert rows["direct"][5:7] == [st["podIP"], n0]
        assert rows["bound"][6] == n1


@pytest.mark.parametrize(
    ("policy", "code", "phase", "reason"),
    [
        ("Never", "0", "Succeeded", "Completed"),
        ("Never", "3", "Failed", "Error"),
        ("OnFailure", "0", "Succeeded", "Completed"),
    ],
    ids=["never-ok", "never-fail", "onfailure-ok"],
)
async def test_exit_after_ends_the_pod(
    env: Env, hkubectl: Kubectl, policy: str, code: str, phase: str, reason: str
) -> None:
    async with env.agent(1):
        ann = {EXIT_AFTER: "300ms", EXIT_CODE: code}
        await env.pod("job", f"{env.prefix}-0", restartPolicy=policy, annotations=ann)
        await until(lambda: env.phase_is("job", phase))
        p = await env.get("job")
        term = p["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (term["exitCode"], term["reason"]) == (int(code), reason)
        assert condition(p, "Ready")["status"] == "False"
        out = hkubectl("get", "pod", "job", "-n", env.ns, "--no-headers").stdout.split()
        assert out[2] == reason


@pytest.mark.parametrize(
    ("policy", "code"), [("Always", "0"), ("OnFailure", "1")], ids=["always", "onfailure-fail"]
)
async def test_exit_after_restarts_the_container(env: Env, policy: str, code: str) -> None:
    async with env.agent(1):
        ann = {EXIT_AFTER: "200ms", EXIT_CODE: code}
        await env.pod("svc", f"{env.prefix}-0", restartPolicy=policy, annotations=ann)

        async def restarted() -> bool:
            cs = (await env.get("svc")).get("status", {}).get("containerStatuses") or []
            return bool(cs) and cs[0]["restartCount"] >= 2

        await until(restarted)
        p = await env.get("svc")
        assert p["status"]["phase"] == "Running"
        cs = p["status"]["containerStatuses"][0]
        assert cs["state"].get("running")
        assert cs["lastState"]["terminated"]["exitCode"] == int(code)


async def test_kubectl_delete_completes_promptly(env: Env, hkubectl: Kubectl) -> None:
    async with env.agent(1, grace_cap=1.0):
        await env.pod("victim", f"{env.prefix}-0")
        await until(lambda: env.phase_is("victim", "Running"))
        t0 = time.monotonic()
        await asyncio.to_thread(hkubectl, "delete", "pod", "victim", "-n", env.ns, timeout=30)
        assert time.monotonic() - t0 < 8
        with pytest.raises(StatusError) as e:
            await env.get("victim")
        assert e.value.code == 404


async def test_restarted_agent_adopts_running_pods(env: Env) -> None:
    async with env.agent(1):
        await env.pod("keep", f"{env.prefix}-0")
        await until(lambda: env.phase_is("keep", "Running"))
    before = await env.get("keep")
    async with env.agent(1) as again:
        await until(lambda: asyncio.sleep(0, again.stats.adopted == 1))
        await env.pod("new", f"{env.prefix}-0")
        await until(lambda: env.phase_is("new", "Running"))
        assert again.stats.started == 1
    after = await env.get("keep")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert (await env.get("new"))["status"]["podIP"] != before["status"]["podIP"]


def test_main_entry_registers_count_nodes(hollow_server: RunningServer) -> None:
    prefix = "cli-" + uuid.uuid4().hex[:6]
    argv = [
        sys.executable, "-c", "import sys; from corral.agent.hollow import main; sys.exit(main(sys.argv[1:]))",
        "--server", hollow_server.url, "--kubeconfig", str(hollow_server.kubeconfig),
        "--name", prefix, "--runtime", "hollow", "--count", "3", "--data-dir", "/nonexistent",
        "--labels", "tier=cli",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    client = Client.from_kubeconfig(hollow_server.kubeconfig)

    async def wait_nodes() -> list[str]:
        try:
            found: list[str] = []

            async def three() -> bool:
                items = (await client.list(NODES, label_selector="tier=cli"))["items"]
                found[:] = sorted(n["metadata"]["name"] for n in items)
                return len(found) == 3

            await until(three, timeout=30)
            for n in found:
                await client.delete(NODES, n)
            return found
        finally:
            await client.close()

    try:
        assert asyncio.run(wait_nodes()) == [f"{prefix}-{i}" for i in range(3)]
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out.decode()


# --- scale -----------------------------------------------------------------------------------------
@pytest.mark.timeout(240)
async def test_200_nodes_run_500_scheduled_pods(env: Env) -> None:
    async with env.agent(200, labels={"hollow-scale": env.prefix}) as agent:

        def make(i: int) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                await env.pod(
                    f"p{i}",
                    nodeSelector={"hollow-scale": env.prefix},
                    containers=[
                        {
                            "name": "main",
                            "image": "busybox",
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                        }
                    ],
                )

            return run

        await bounded((make(i) for i in range(500)), 32)

        async def all_running() -> bool:
            pods = (await env.client.list(PODS, env.ns))["items"]
            return len(pods) == 500 and all(p["status"].get("phase") == "Running" for p in pods)

        await until(all_running, timeout=180)
        pods = (await env.client.list(PODS, env.ns))["items"]
        assert len({p["status"]["podIP"] for p in pods}) == 500
        assert {p["spec"]["nodeName"] for p in pods} <= env.nodes
        assert len({p["spec"]["nodeName"] for p in pods}) > 100  # spread, not piled up
        assert agent.stats.started == 500
