"""The client's fail-over between API servers (``corral.client.failover`` and ``Client``).

The servers here are real HTTP listeners on loopback that fail the way a dead, frozen or
shutting-down API server does (refused, cut off after reading a request, 503, silent);
the real ``corral server`` cases are in tests/integration/test_client_failover.py.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from corral.api.errors import StatusError
from corral.apiserver.certs import write_kubeconfig
from corral.client.failover import ServerRing, may_resend
from corral.client.rest import (
    CONFIGMAPS,
    SERVERS_EXTENSION,
    Client,
    KubeConfig,
    parse_servers,
)
from corral.testing.process import free_port

CM: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "x", "namespace": "default"},
}


# --- sans-I/O ---------------------------------------------------------------------------------
def test_ring_is_sticky_and_moves_once_per_failure() -> None:
    ring = ServerRing()
    servers = ["a", "b", "c"]
    assert ring.pick(servers) == "a"
    ring.failed(servers, "a", "refused")
    ring.failed(servers, "a", "refused")  # a second request in flight on a: no second move
    assert ring.pick(servers) == "b" and ring.pick(servers) == "b"
    ring.failed(servers, "b", "reset")
    ring.failed(servers, "c", "reset")
    assert ring.pick(servers) == "a"  # round the list
    assert ring.pick(["x", "y"]) == "x"  # a reloaded kubeconfig: its first server


@pytest.mark.parametrize(
    ("method", "exc", "resend"),
    [
        ("POST", aiohttp.ClientConnectorError(None, OSError(111, "refused")), True),  # type: ignore[arg-type]
        ("PATCH", aiohttp.ConnectionTimeoutError(), True),
        ("POST", aiohttp.ServerDisconnectedError(), False),
        ("PUT", aiohttp.ClientOSError(104, "reset"), False),
        ("DELETE", aiohttp.ClientPayloadError("cut"), False),
        ("GET", aiohttp.ServerDisconnectedError(), True),
        ("GET", aiohttp.ClientPayloadError("cut"), True),
        ("GET", aiohttp.SocketTimeoutError(), True),
        ("GET", ValueError("not the server's fault"), False),
    ],
    ids=[
        "create-refused",
        "patch-connect-timeout",
        "create-cut-off",
        "update-reset",
        "delete-cut-off",
        "get-disconnected",
        "get-cut-off",
        "get-silent",
        "get-other-error",
    ],
)
def test_what_may_be_resent(method: str, exc: BaseException, resend: bool) -> None:
    assert may_resend(method, exc) is resend


def test_kubeconfig_servers(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    write_kubeconfig(
        path, "https://a:6443", b"CA", "tok", servers=["https://b:6443/", "https://a:6443"]
    )
    text = path.read_text()
    assert SERVERS_EXTENSION in text
    cfg = KubeConfig.load(path)
    assert cfg.server == "https://a:6443"
    assert cfg.servers == ["https://a:6443", "https://b:6443"]
    over = KubeConfig.load(path, servers="https://c:1, https://d:2")
    assert (over.server, over.servers) == ("https://c:1", ["https://c:1", "https://d:2"])
    write_kubeconfig(path, "https://a:6443", b"CA", "tok")  # one server: no extension
    assert SERVERS_EXTENSION not in path.read_text()
    assert KubeConfig.load(path).servers == ["https://a:6443"]
    assert parse_servers(["a,b", "b", " c/ "]) == ["a", "b", "c"]


# --- over real sockets ---------------------------------------------------------------------
async def serve_every_path(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> tuple[web.AppRunner, int]:
    """An HTTP server on 127.0.0.1 that sends every method and path to ``handler``: its
    runner (clean it up) and its port."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


class Counting:
    """An HTTP server that answers every request with ``status`` and counts them; a watch
    gets one event, then the end of the stream (``break_watch``: the connection dropped)."""

    def __init__(self, status: int = 200, *, break_watch: bool = False) -> None:
        self.status = status
        self.break_watch = break_watch
        self.requests: list[str] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.method)
        if self.status != 200:
            body = {"kind": "Status", "code": self.status, "reason": "ServiceUnavailable"}
            return web.json_response(body, status=self.status)
        if request.query.get("watch"):
            resp = web.StreamResponse()
            await resp.prepare(request)
            meta = {**CM["metadata"], "resourceVersion": "7"}
            ev = {"type": "ADDED", "object": {**CM, "metadata": meta}}
            await resp.write(orjson.dumps(ev) + b"\n")
            if self.break_watch and request.transport is not None:
                request.transport.abort()
            return resp
        return web.json_response(CM, status=201 if request.method == "POST" else 200)

    async def start(self) -> Counting:
        self.runner, port = await serve_every_path(self._handle)
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class CutOff:
    """A server that reads each request and drops the connection without answering, as
    one killed while the request was in flight."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.server: asyncio.Server | None = None
        self.url = ""

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head.split(b" ", 1)[0].decode())
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.transport.abort()

    async def start(self) -> CutOff:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def good() -> AsyncIterator[Counting]:
    srv = await Counting().start()
    yield srv
    await srv.stop()


def _client(*urls: str, connect_timeout: float = 10) -> Client:
    cfg = KubeConfig(urls[0], "tok", None, servers=list(urls))
    return Client(cfg, connect_timeout=connect_timeout)


async def test_create_after_a_refusing_server_is_sent_once(good: Counting) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    c = _client(dead, good.url)
    try:
        made = await c.create(CONFIGMAPS, CM, "default")
        assert made["metadata"]["name"] == "x"
        assert good.requests == ["POST"]
        assert c.server == good.url  # sticky: the next request goes straight there
        await c.get(CONFIGMAPS, "x", "default")
        assert good.requests == ["POST", "GET"]
    finally:
        await c.close()


async def test_a_write_cut_off_is_reported_a_read_is_resent(good: Counting) -> None:
    cut = await CutOff().start()
    c = _client(cut.url, good.url)
    try:
        with pytest.raises(aiohttp.ClientError):
            await c.create(CONFIGMAPS, CM, "default")
        assert cut.requests == ["POST"] and good.requests == []  # never sent twice
        assert c.server == good.url  # but the client moved on
        c._ring.current = cut.url  # back on the cutting server: a GET goes through
        got = await c.get(CONFIGMAPS, "x", "default")
        assert got["metadata"]["name"] == "x"
        # (aiohttp itself resends an idempotent GET once on a fresh connection first)
        assert cut.requests.count("POST") == 1 and "GET" in cut.requests
        assert good.requests == ["GET"]
    finally:
        await c.close()
        await cut.stop()


async def test_503_moves_on_reads_retried_writes_reported(good: Counting) -> None:
    busy = await Counting(status=503).start()
    c = _client(busy.url, good.url)
    try:
        await c.get(CONFIGMAPS, "x", "default")
        assert busy.requests == ["GET"] and good.requests == ["GET"]
        c._ring.current = busy.url
        with pytest.raises(StatusError) as e:
            await c.create(CONFIGMAPS, CM, "default")
        assert e.value.code == 503 and good.requests == ["GET"]
        assert c.server == good.url
    finally:
        await c.close()
        await busy.stop()


async def test_every_server_down_raises_the_last_error() -> None:
    c = _client(f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(aiohttp.ClientConnectorError):
            await c.create(CONFIGMAPS, CM, "default")
    finally:
        await c.close()


async def test_a_silent_server_times_out_and_the_next_request_goes_elsewhere(
    good: Counting,
) -> None:
    frozen = socket.socket()  # listening, never accepting: a SIGSTOPped server over plain HTTP
    frozen.bind(("127.0.0.1", 0))
    frozen.listen(16)
    c = _client(f"http://127.0.0.1:{frozen.getsockname()[1]}", good.url)
    try:
        with pytest.raises(TimeoutError):
            await c.request("GET", "/api/v1/namespaces/default/configmaps/x", timeout=0.5)
        await c.get(CONFIGMAPS, "x", "default")
        assert good.requests == ["GET"]
    finally:
        await c.close()
        frozen.close()


async def test_watch_opens_on_the_next_server_and_a_broken_stream_moves_on(
    good: Counting,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    c = _client(dead, good.url)
    try:
        events = [ev async for ev in c.watch(CONFIGMAPS, "default", resource_version="5")]
        assert [e["type"] for e in events] == ["ADDED"] and good.requests == ["GET"]
    finally:
        await c.close()


async def test_a_broken_watch_raises_and_the_next_one_opens_elsewhere(good: Counting) -> None:
    breaker = await Counting(break_watch=True).start()
    c = _client(breaker.url, good.url)
    seen: list[str] = []
    try:
        with pytest.raises(aiohttp.ClientError):  # the caller resumes from its last RV
            async for ev in c.watch(CONFIGMAPS, "default", resource_version="5"):
                seen.append(ev["type"])
        assert seen == ["ADDED"] and c.server == good.url
        seen += [ev["type"] async for ev in c.watch(CONFIGMAPS, "default", resource_version="7")]
        assert seen == ["ADDED", "ADDED"] and good.requests == ["GET"]
    finally:
        await c.close()
        await breaker.stop()


async def test_an_answer_the_caller_has_no_use_for_is_not_decoded(good: Counting) -> None:
    c = _client(good.url)
    path = CONFIGMAPS.path("default", "x", "status")
    try:
        assert await c.request("PATCH", path, body={"data": {}}, decode=False) is None
        assert (await c.request("PATCH", path, body={"data": {}}))["metadata"]["name"] == "x"
        assert good.requests == ["PATCH", "PATCH"]
        failing = await Counting(status=404).start()
        other = _client(failing.url)
        try:  # an error is still raised from its Status body
            with pytest.raises(StatusError):
                await other.request("PATCH", path, body={}, decode=False)
        finally:
            await other.close()
            await failing.stop()
    finally:
        await c.close()
