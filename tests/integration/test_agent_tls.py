"""The agent's API on TLS, authenticated and authorised as the kubelet's: a real
``corral server`` (its cluster CA, TokenReview and SubjectAccessReview), a real
``AgentServer`` with a serving certificate from that CA, and the real kubectl.

- no credentials: 401; a token whose user lacks ``nodes/proxy``: 403 with the kubelet's
  text; the API server's own path (``kubectl logs``, over HTTPS with its
  ``kube-apiserver-kubelet-client`` certificate): works.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from kubernetes import client

from conftest import Kubectl, RunningServer, api_client_for, start_server
from corral.agent.auth import AgentAuth, ServingTLS
from corral.agent.server import AgentServer
from corral.api.nodes import AGENT_SCHEME
from corral.client.rest import Client
from corral.client.reviews import Reviewer

NODE = "tls-node"
NS = "agent-tls"


class OneLog:
    """A node with one container whose log says hello."""

    def __init__(self, root: Path) -> None:
        self.file = root / "0.log"
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"
        self.file.write_text(f"{stamp} stdout F hello over tls\n")

    def log_files(self, namespace: str, pod: str, container: str) -> list[Path] | None:
        return [self.file] if (namespace, pod, container) == (NS, "p1", "c1") else None

    def is_running(self, namespace: str, pod: str, container: str) -> bool:
        return True

    def exec_target(self, namespace: str, pod: str, container: str) -> None:
        return None


class AgentThread:
    """A TLS AgentServer on its own event loop in a daemon thread."""

    def __init__(self, srv: RunningServer, lookup: OneLog) -> None:
        self.srv = srv
        self.lookup = lookup
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: AgentServer | None = None
        self.client: Client | None = None

    async def _start(self) -> AgentServer:
        from corral.apiserver.certs import ensure_serving_pair

        crt, key = ensure_serving_pair(self.srv.data_dir, f"agent-{NODE}", [NODE, "127.0.0.1"])
        ca = (self.srv.data_dir / "pki" / "ca.crt").read_bytes()
        self.client = Client.from_kubeconfig(self.srv.kubeconfig)
        auth = AgentAuth(NODE, Reviewer(self.client))
        tls = ServingTLS(crt, key, ca)
        server = AgentServer(self.lookup, "", "127.0.0.1", 0, tls=tls, auth=auth)
        await server.start()
        return server

    async def _stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        if self.client is not None:
            await self.client.close()

    def __enter__(self) -> AgentServer:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self.server

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    s = start_server(tmp_path_factory.mktemp("agent-tls") / "data", extra=["--no-scheduler"])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def v1(srv: RunningServer) -> Iterator[client.CoreV1Api]:
    with api_client_for(srv.kubeconfig) as c:
        yield client.CoreV1Api(c)


@pytest.fixture(scope="module")
def agent(
    srv: RunningServer, v1: client.CoreV1Api, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgentServer]:
    with AgentThread(srv, OneLog(tmp_path_factory.mktemp("node"))) as server:
        v1.create_node({"metadata": {"name": NODE, "annotations": {AGENT_SCHEME: "https"}}})
        v1.patch_node_status(
            NODE,
            {
                "status": {
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": server.port}},
                }
            },
        )
        v1.create_namespace({"metadata": {"name": NS}})
        v1.create_namespaced_pod(
            NS,
            {
                "metadata": {"name": "p1"},
                "spec": {"nodeName": NODE, "containers": [{"name": "c1", "image": "busybox"}]},
            },
        )
        status = {
            "name": "c1",
            "ready": True,
            "restartCount": 0,
            "image": "busybox",
            "imageID": "",
            "containerID": "process://c1",
            "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}},
        }
        v1.patch_namespaced_pod_status(
            "p1", NS, {"status": {"phase": "Running", "containerStatuses": [status]}}
        )
        # a user with no rights on nodes: a ServiceAccount's token
        v1.create_namespaced_service_account(NS, {"metadata": {"name": "nobody"}})
        yield server


def _get(url: str, ca: Path, token: str = "") -> tuple[int, str]:
    async def go() -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        ctx = ssl.create_default_context(cafile=str(ca))
        async with aiohttp.ClientSession() as s, s.get(url, ssl=ctx, headers=headers) as r:
            return r.status, await r.text()

    return asyncio.run(go())


def test_kubectl_logs_reaches_the_tls_agent(agent: AgentServer, srv: RunningServer) -> None:
    kubectl = Kubectl(srv.kubeconfig, srv.data_dir / "kubecache")
    out = kubectl("logs", "-n", NS, "p1").stdout
    assert out == "hello over tls\n"


def test_no_credentials_is_401(agent: AgentServer, srv: RunningServer) -> None:
    url = f"https://127.0.0.1:{agent.port}/containerLogs/{NS}/p1/c1"
    status, _ = _get(url, srv.data_dir / "pki" / "ca.crt")
    assert status == 401
    status, _ = _get(url, srv.data_dir / "pki" / "ca.crt", token="not-a-token")
    assert status == 401


def test_user_without_nodes_proxy_is_403(agent: AgentServer, srv: RunningServer) -> None:
    kubectl = Kubectl(srv.kubeconfig, srv.data_dir / "kubecache")
    token = kubectl("create", "token", "nobody", "-n", NS).stdout.strip()
    url = f"https://127.0.0.1:{agent.port}/containerLogs/{NS}/p1/c1"
    status, text = _get(url, srv.data_dir / "pki" / "ca.crt", token=token)
    assert status == 403
    assert text == (
        f"Forbidden (user=system:serviceaccount:{NS}:nobody, verb=get, resource=nodes, "
        "subresource(s)=[proxy])"
    )
    # the admin token (system:masters) through TokenReview: allowed
    status, text = _get(url, srv.data_dir / "pki" / "ca.crt", token=srv.token)
    assert (status, text) == (200, "hello over tls\n")
