"""Clients given several API server URLs, against real ``corral server`` processes.

Two servers A and B on one etcd (one member), started with ``--peer-urls A,B``, so the
kubeconfigs they write carry the ``corral.dev/servers`` extension (which kubectl and the
``kubernetes`` client must accept); a hollow node runs on A's component kubeconfig.
Beside them, URLs that fail as a dead (refused) or frozen (accepting, never answering)
server does. Last, A is SIGKILLed under a watching informer and the hollow node: both
carry on through B.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import Kubectl, api_client_for, start_server
from corral.api.errors import StatusError
from corral.client.informer import Informer
from corral.client.rest import (
    CONFIGMAPS,
    LEASES,
    NAMESPACES,
    NODES,
    SERVERS_EXTENSION,
    Client,
    KubeConfig,
)
from corral.testing.process import ServerProcess, free_port, free_ports
from corral.util.etcd_process import EtcdCluster

HOLLOW = "ha-0"


@dataclass
class Pair:
    a: ServerProcess
    b: ServerProcess
    agent: subprocess.Popen[bytes]
    dead: str = field(default_factory=lambda: f"https://127.0.0.1:{free_port()}")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    base = tmp_path_factory.mktemp("failover")
    pa, pb = free_ports(2)
    peers = f"https://127.0.0.1:{pa},https://127.0.0.1:{pb}"
    servers: list[ServerProcess] = []
    agent: subprocess.Popen[bytes] | None = None
    with EtcdCluster(base / "etcd") as etcd:
        etcd.start()
        token = ["--token", uuid.uuid4().hex]  # both at once: one makes the PKI, one adopts
        common = ["--datastore", etcd.url, "--no-scheduler", "--peer-urls", peers, *token]
        try:
            with ThreadPoolExecutor(2) as pool:
                started = [
                    pool.submit(start_server, base / name, port=port, extra=common)
                    for name, port in (("a", pa), ("b", pb))
                ]
                failed = [f.exception() for f in started if f.exception() is not None]
                servers += [f.result() for f in started if f.exception() is None]
            if failed:
                raise failed[0]  # type: ignore[misc]
            a = servers[0]
            with (base / "agent.log").open("wb") as log:  # its Leases: renewed every second
                agent = subprocess.Popen(
                    [sys.executable, "-m", "corral", "agent", "--runtime", "hollow",
                     "--kubeconfig", str(a.data_dir / "pki" / "hollow-nodes.kubeconfig"),
                     "--name", "ha", "--count", "1", "--node-lease-duration-seconds", "4",
                     "--data-dir", str(base / "agent"), "--exit-on-stdin-eof"],
                    stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
            yield Pair(servers[0], servers[1], agent)
        finally:
            if agent is not None:
                agent.kill()
                agent.wait()
                assert agent.stdin is not None
                agent.stdin.close()
            for s in servers:
                s.stop()


def _client(pair: Pair, *servers: str, connect_timeout: float = 10) -> Client:
    cfg = KubeConfig.load(pair.a.kubeconfig, servers=list(servers))
    return Client(cfg, connect_timeout=connect_timeout)


async def _namespace(c: Client) -> str:
    ns = "fo-" + uuid.uuid4().hex[:6]
    await c.create(NAMESPACES, {"metadata": {"name": ns}})
    return ns


async def _until(pred: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await pred():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"no {what} within {timeout} s") from None


def test_kubeconfig_with_several_servers_loads_everywhere(pair: Pair, tmp_path: Path) -> None:
    path = pair.a.kubeconfig
    assert SERVERS_EXTENSION in path.read_text()
    assert KubeConfig.load(path).servers == [pair.a.url, pair.b.url]
    assert KubeConfig.load(pair.b.kubeconfig).servers == [pair.b.url, pair.a.url]
    kubectl = Kubectl(path, tmp_path / "cache")
    assert '"default"' in kubectl("get", "--raw", "/api/v1/namespaces/default").stdout
    view = kubectl("config", "view", "--raw", "-o", "jsonpath={.clusters[0].cluster.extensions}")
    assert SERVERS_EXTENSION in view.stdout  # kept, not rejected
    from kubernetes import client

    with api_client_for(path) as api:
        names = [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items]  # type: ignore[union-attr]
    assert "default" in names


async def test_create_on_a_dead_first_list_goes_through_once(pair: Pair) -> None:
    c = _client(pair, pair.dead, pair.a.url)
    try:
        ns = await _namespace(c)
        cm = {"metadata": {"generateName": "once-", "labels": {"t": "once"}}}
        await c.create(CONFIGMAPS, cm, ns)
        made = await c.list(CONFIGMAPS, ns, label_selector="t=once")
        assert len(made["items"]) == 1  # a generateName create repeated would make two
        assert c.server == pair.a.url
    finally:
        await c.close()


async def test_a_frozen_server_first_is_passed_over(pair: Pair) -> None:
    frozen = socket.socket()  # accepts TCP (the kernel does), never answers: SIGSTOPped
    frozen.bind(("127.0.0.1", 0))
    frozen.listen(16)
    url = f"https://127.0.0.1:{frozen.getsockname()[1]}"
    c = _client(pair, url, pair.a.url, connect_timeout=1)
    try:
        ns = await _namespace(c)  # the TLS handshake never completes: never sent, resent
        await c.create(CONFIGMAPS, {"metadata": {"generateName": "f-", "labels": {"t": "f"}}}, ns)
        assert len((await c.list(CONFIGMAPS, ns, label_selector="t=f"))["items"]) == 1
    finally:
        await c.close()
        frozen.close()


async def test_informer_and_hollow_node_carry_on_when_their_server_dies(pair: Pair) -> None:
    """A is SIGKILLed under an informer and a hollow node that both use it: the watch
    resumes on B from the last resourceVersion (cache kept, nothing replayed), the node's
    Lease keeps being renewed through B and the Node stays Ready."""
    c = _client(pair, pair.a.url, pair.dead, pair.b.url)
    b = Client(KubeConfig.load(pair.b.kubeconfig, servers=pair.b.url))  # B alone
    ns = await _namespace(c)
    inf = Informer(c, CONFIGMAPS, namespace=ns, label_selector="t=inf")
    for i in range(3):
        await c.create(
            CONFIGMAPS, {"metadata": {"name": f"before-{i}", "labels": {"t": "inf"}}}, ns
        )
    events: list[tuple[str, str]] = []
    inf.add_handler(lambda t, o, old: events.append((t, o["metadata"]["name"])))
    task = asyncio.create_task(inf.run())

    async def renewed_after(t: dt.datetime) -> bool:
        try:
            lease = await b.get(LEASES, HOLLOW, "kube-node-lease")
        except StatusError:
            return False
        renew = (lease.get("spec") or {}).get("renewTime")
        return isinstance(renew, str) and dt.datetime.fromisoformat(renew) > t

    async def ready() -> bool:
        try:
            node = await b.get(NODES, HOLLOW)
        except StatusError:
            return False
        conds = (node.get("status") or {}).get("conditions") or []
        return any(x["type"] == "Ready" and x["status"] == "True" for x in conds)

    try:
        await inf.wait_for_sync(10)
        await _until(ready, 30, f"Ready node {HOLLOW}")
        started = dt.datetime.now(dt.UTC)
        await _until(lambda: renewed_after(started), 10, "node Lease renewal")
        events.clear()
        pair.a.kill()
        killed = dt.datetime.now(dt.UTC)
        await c.create(CONFIGMAPS, {"metadata": {"name": "after", "labels": {"t": "inf"}}}, ns)
        assert c.server == pair.b.url

        async def seen() -> bool:
            return inf.get(f"{ns}/after") is not None

        await _until(seen, 20, "watch event through B")
        assert sorted(k.split("/")[1] for k in inf.store) == [
            "after",
            "before-0",
            "before-1",
            "before-2",
        ]
        assert events == [("ADDED", "after")]  # nothing lost, nothing replayed
        await _until(lambda: renewed_after(killed), 15, "node Lease renewal through B")
        assert await ready()
        assert pair.agent.poll() is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await c.close()
        await b.close()
