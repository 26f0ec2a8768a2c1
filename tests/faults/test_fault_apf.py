"""Overload, server side: API Priority and Fairness and slow watchers on a real server.

One ``corral server`` with two seats in all (``--max-requests-inflight 1
--max-mutating-requests-inflight 1``) and a 50 ms queue wait
(``--request-timeout 0.2``): a flood of one non-master user (impersonated by the admin,
allowed to list ConfigMaps by its own ClusterRole) gets 429s with Retry-After and
upstream's Status, while a node's Lease updates (``system:node:n1``, level node-high)
and the admin's requests (exempt) all pass. Then two raw watch sockets stop reading
after the headers while 200 kB ConfigMaps are written: both watchers are expired (what
the server queues for them stays under ``--watch-backlog-bytes``), and the one that
reads again gets the 410 ERROR event at the end of a stream it did not receive whole.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from corral.testing.process import ServerProcess as RunningServer

FLOOD_NS = "flood"
WATCH_NS = "watched"
BACKLOG = 2 * 1024 * 1024
FLOODER = {"Impersonate-User": "flooder"}
NODE = {"Impersonate-User": "system:node:n1", "Impersonate-Group": "system:nodes"}
LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
FLOOD_OBJECTS = 300


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    s = RunningServer.start(
        tmp_path_factory.mktemp("apf") / "data",
        timeout=30.0,
        extra=[
            "--no-scheduler", "--no-controllers", "--no-metrics-server",
            "--max-requests-inflight", "1",
            "--max-mutating-requests-inflight", "1",
            "--request-timeout", "0.2",
            "--watch-backlog-bytes", str(BACKLOG),
        ],
    )  # fmt: skip
    try:
        yield s
    finally:
        s.stop()


class Client:
    """aiohttp against the server as the admin, optionally impersonating."""

    def __init__(self, srv: RunningServer, session: aiohttp.ClientSession) -> None:
        self.url = srv.url
        self.auth = {"Authorization": f"Bearer {srv.token}"}
        self.session = session

    async def __call__(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        h = {**self.auth, **(headers or {})}
        async with self.session.request(method, self.url + path, json=body, headers=h) as r:
            return r.status, dict(r.headers), await r.read()


def _session(srv: RunningServer, connections: int) -> aiohttp.ClientSession:
    conn = aiohttp.TCPConnector(ssl=srv.ssl_context(), limit=connections)
    return aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=60))


def _cm(name: str, size: int) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": {"blob": "x" * size}}


async def _setup(c: Client) -> None:
    st, _, body = await c("POST", "/api/v1/namespaces", {"metadata": {"name": FLOOD_NS}})
    assert st == 201, body
    role = {
        "metadata": {"name": "flood-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
    }
    binding = {
        "metadata": {"name": "flood-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "flood-reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                      "name": "flooder"}],
    }  # fmt: skip
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    for path, obj in ((f"{rbac}/clusterroles", role), (f"{rbac}/clusterrolebindings", binding)):
        st, _, body = await c("POST", path, obj)
        assert st == 201, body

    async def make(i: int) -> None:
        st, _, body = await c("POST", f"/api/v1/namespaces/{FLOOD_NS}/configmaps", _cm(f"c{i}", 10))
        assert st == 201, body

    # each Table list decodes 300 objects in chunks, giving the loop back between them:
    # a list holds its seat across turns, so the flood's lists really overlap and queue
    for start in range(0, FLOOD_OBJECTS, 20):
        await asyncio.gather(*(make(i) for i in range(start, start + 20)))


async def _flood(c: Client, per_connection: int) -> list[tuple[int, dict[str, str], bytes]]:
    out = []
    for _ in range(per_connection):
        h = {**FLOODER, "Accept": TABLE}  # as kubectl get asks
        out.append(await c("GET", f"/api/v1/namespaces/{FLOOD_NS}/configmaps", None, h))
    return out


async def _heartbeats(c: Client, n: int) -> list[int]:
    lease = {"metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1"}}
    st, _, body = await c("POST", LEASES, lease, NODE)
    assert st == 201, body
    codes = []
    for i in range(n):
        st, _, body = await c("GET", f"{LEASES}/n1", None, NODE)
        codes.append(st)
        if st == 200:
            obj = json.loads(body)
            obj["spec"]["leaseDurationSeconds"] = 40 + i
            st, _, _ = await c("PUT", f"{LEASES}/n1", obj, NODE)
            codes.append(st)
        await asyncio.sleep(0.02)
    return codes


async def _admin(c: Client, n: int) -> list[int]:
    codes = []
    for _ in range(n):
        st, _, _ = await c("GET", "/api/v1/namespaces")
        codes.append(st)
        await asyncio.sleep(0.02)
    return codes


def test_flood_gets_429_while_node_leases_and_masters_pass(srv: RunningServer) -> None:
    async def main() -> None:
        async with _session(srv, 100) as s:
            c = Client(srv, s)
            await _setup(c)
            floods = [asyncio.create_task(_flood(c, 4)) for _ in range(50)]
            await asyncio.sleep(0.1)  # the flood is on
            beats, admin = await asyncio.gather(_heartbeats(c, 15), _admin(c, 15))
            results = [r for f in floods for r in await f]
            st, _, metrics = await c("GET", "/metrics")
        rejected = [r for r in results if r[0] == 429]
        assert rejected, f"no 429 among {len(results)} flood requests"
        assert {r[0] for r in results} <= {200, 429}
        _, headers, body = rejected[0]
        assert headers.get("Retry-After") == "1"
        status = json.loads(body)
        assert status["reason"] == "TooManyRequests" and status["code"] == 429
        assert status["message"] == "Too many requests, please try again later."
        assert status["details"] == {"retryAfterSeconds": 1}
        ok = next(r for r in results if r[0] == 200)
        assert "X-Kubernetes-PF-FlowSchema-UID" in ok[1]
        assert "X-Kubernetes-PF-PriorityLevel-UID" in ok[1]
        assert beats and set(beats) == {200}, f"node Lease requests: {beats}"
        assert admin and set(admin) == {200}, f"system:masters requests: {admin}"
        assert st == 200 and b'rejected_requests_total{priority_level="global-default"' in metrics

    asyncio.run(main())


def _watch_socket(srv: RunningServer, path: str) -> tuple[ssl.SSLSocket, bytes]:
    """A TLS socket with a small receive buffer that sent the watch and read the
    response headers; returns it and the body bytes read with them."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    raw.settimeout(30)
    raw.connect(("127.0.0.1", srv.port))
    s = srv.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")
    s.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {srv.token}\r\n\r\n".encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        more = s.recv(4096)
        assert more, "connection closed before the headers"
        buf += more
    head, _, rest = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return s, rest


def _read_chunked(s: ssl.SSLSocket, buf: bytes) -> bytes:
    """The de-chunked body up to its last chunk (or the connection's end)."""
    out = b""
    while True:
        while b"\r\n" not in buf:
            more = s.recv(65536)
            if not more:
                return out
            buf += more
        size_line, _, buf = buf.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out
        while len(buf) < size + 2:
            more = s.recv(65536)
            if not more:
                return out + buf
            buf += more
        out += buf[:size]
        buf = buf[size + 2 :]


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_watchers_that_stop_reading_end_with_410(srv: RunningServer) -> None:
    async def namespace() -> None:
        async with _session(srv, 1) as s:
            st, _, body = await Client(srv, s)(
                "POST", "/api/v1/namespaces", {"metadata": {"name": WATCH_NS}}
            )
            assert st == 201, body

    asyncio.run(namespace())
    path = f"/api/v1/namespaces/{WATCH_NS}/configmaps?watch=true"
    slow, slow_rest = _watch_socket(srv, path)
    stuck, _ = _watch_socket(srv, path)
    written = 60  # 12 MB at most, six times the bound
    try:

        async def write() -> tuple[int, str]:
            """Write until both watchers are expired (then the slow one reads at once,
            well within its grace), at most ``written`` 200 kB objects."""
            async with _session(srv, 4) as s:
                c = Client(srv, s)
                text = ""
                for i in range(written):
                    st, _, body = await c(
                        "POST", f"/api/v1/namespaces/{WATCH_NS}/configmaps", _cm(f"w{i}", 200_000)
                    )
                    assert st == 201, body
                    st, _, metrics = await c("GET", "/metrics")
                    assert st == 200
                    text = metrics.decode()
                    if _metric(text, "corral_watch_expired_total") >= 2:
                        return i + 1, text
                return written, text

        sent, metrics = asyncio.run(write())
        assert _metric(metrics, "corral_watch_expired_total") >= 2, metrics
        assert _metric(metrics, "corral_watch_backlog_bytes") <= BACKLOG, metrics
        lines = [json.loads(x) for x in _read_chunked(slow, slow_rest).splitlines() if x]
        added = [x for x in lines if x["type"] == "ADDED"]
        assert len(added) < sent, "the slow watcher was buffered whole"
        last = lines[-1]
        assert last["type"] == "ERROR", [x["type"] for x in lines[-3:]]
        assert (last["object"]["code"], last["object"]["reason"]) == (410, "Expired")
    finally:
        slow.close()
        stuck.close()
