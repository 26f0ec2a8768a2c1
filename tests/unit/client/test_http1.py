"""The lean HTTP/1.1 client (``corral.client.http1``) against real servers on loopback:
aiohttp's web server for the answers it writes (lengths, chunks, gzip, keep-alive, TLS),
and a raw asyncio server for what aiohttp never writes (an interim answer, a body that
ends with the connection, a close in the middle of an answer, a malformed head)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import json
import socket
import ssl
import threading
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from corral.apiserver.certs import ensure_pki
from corral.client import http1
from corral.client.failover import may_resend, never_sent


def _pool(port: int, scheme: str = "http", ctx: ssl.SSLContext | bool = False) -> http1.Pool:
    pool = http1.pool_for(
        f"{scheme}://127.0.0.1:{port}", ctx, [("User-Agent", "t")], limit=4, connect_timeout=2
    )
    assert pool is not None
    return pool


class Web:
    """An aiohttp server on loopback that notes each request's client port."""

    def __init__(self) -> None:
        self.peers: list[int] = []
        self.seen: list[tuple[str, str, bytes, dict[str, str]]] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(self.app)
        self.port = 0

    async def start(self, ctx: ssl.SSLContext | None = None) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.peers.append(peer[1] if peer else 0)
        body = await request.read()
        self.seen.append((request.method, request.path_qs, body, dict(request.headers)))
        path = request.path
        if path == "/chunked":
            resp = web.StreamResponse()
            await resp.prepare(request)
            for part in (b'{"a":', b"1,", b'"b":2}'):
                await resp.write(part)
            await resp.write_eof()
            return resp
        if path == "/gzip":
            return web.Response(
                body=gzip.compress(b'{"z":true}'), headers={"Content-Encoding": "gzip"}
            )
        if path == "/close":
            return web.Response(body=b"bye", headers={"Connection": "close"})
        if path == "/missing":
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        return web.Response(body=b'{"ok":1}', content_type="application/json")

    async def stop(self) -> None:
        await self.runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[Web]:
    s = Web()
    await s.start()
    yield s
    await s.stop()


async def test_answers_with_a_length_reuse_one_connection(server: Web) -> None:
    pool = _pool(server.port)
    try:
        body = b'{"x":1}'
        got = await pool.request("PATCH", "/a?b=c%20d", body, [("Content-Type", "x/y")])
        assert got == (200, b'{"ok":1}')
        assert await pool.request("GET", "/b", None) == (200, b'{"ok":1}')
        status, raw = await pool.request("GET", "/missing", None)
        assert (status, json.loads(raw)) == (404, {"kind": "Status", "code": 404})
        assert len(set(server.peers)) == 1  # one keep-alive connection
        method, path_qs, sent, headers = server.seen[0]
        assert (method, path_qs, sent) == ("PATCH", "/a?b=c%20d", body)
        assert headers["Content-Type"] == "x/y" and headers["User-Agent"] == "t"
        assert headers["Host"] == f"127.0.0.1:{server.port}"
        assert headers["Accept-Encoding"] == "gzip"
        assert server.seen[1][3].get("Content-Length") is None  # a GET carries no body
    finally:
        pool.close()


async def test_chunked_and_gzip_answers(server: Web) -> None:
    pool = _pool(server.port)
    try:
        assert await pool.request("GET", "/chunked", None) == (200, b'{"a":1,"b":2}')
        assert await pool.request("GET", "/gzip", None) == (200, b'{"z":true}')
        assert await pool.request("POST", "/c", None) == (200, b'{"ok":1}')
        assert server.seen[-1][3]["Content-Length"] == "0"
        assert len(set(server.peers)) == 1
    finally:
        pool.close()


async def test_connection_close_is_not_reused(server: Web) -> None:
    pool = _pool(server.port)
    try:
        assert await pool.request("GET", "/close", None) == (200, b"bye")
        assert await pool.request("GET", "/x", None) == (200, b'{"ok":1}')
        assert len(set(server.peers)) == 2
    finally:
        pool.close()


async def test_a_connection_idle_past_its_limit_is_replaced(
    server: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = _pool(server.port)
    try:
        await pool.request("GET", "/x", None)
        monkeypatch.setattr(http1, "IDLE_LIMIT", 0.0)
        await asyncio.sleep(0.01)
        await pool.request("GET", "/x", None)
        assert len(set(server.peers)) == 2
    finally:
        pool.close()


async def test_over_tls_and_a_wrong_ca(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "a", [])
    s = Web()
    await s.start(pki.ssl_context())
    try:
        good = ssl.create_default_context(cadata=pki.ca_pem.decode())
        pool = _pool(s.port, "https", good)
        assert await pool.request("GET", "/x", None) == (200, b'{"ok":1}')
        assert await pool.request("GET", "/chunked", None) == (200, b'{"a":1,"b":2}')
        pool.close()
        other = ensure_pki(tmp_path / "b", []).ca_pem
        bad = _pool(s.port, "https", ssl.create_default_context(cadata=other.decode()))
        with pytest.raises(aiohttp.ClientConnectorCertificateError) as e:
            await bad.request("POST", "/x", b"{}")
        assert never_sent(e.value)  # no connection: the create may go elsewhere
    finally:
        await s.stop()


async def test_a_refused_connection_is_never_sent() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pool = _pool(port)
    with pytest.raises(aiohttp.ClientConnectorError) as e:
        await pool.request("POST", "/x", b"{}")
    assert (e.value.host, e.value.port) == ("127.0.0.1", port)
    assert never_sent(e.value) and may_resend("POST", e.value)


# --- a raw server: what aiohttp's never writes -------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]


class Raw:
    """A server answering each request of each connection with ``handler(reader, writer,
    n)`` (``n`` counts requests over all connections); False from it closes the
    connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests = 0
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Raw:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                self.requests += 1
                if not await self.handler(reader, writer, self.requests):
                    return
        finally:
            writer.close()


def _answer(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)


async def _asked_twice(port: int, method: str, want: tuple[int, bytes]) -> None:
    """``method /x`` twice on a new pool, each answered ``want``."""
    pool = _pool(port)
    try:
        for _ in range(2):
            assert await pool.request(method, "/x", None) == want
    finally:
        pool.close()


async def test_an_interim_answer_then_the_real_one() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        _answer(
            w, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
        )
        return True

    async with Raw(handler) as srv:
        pool = _pool(srv.port)
        assert await pool.request("POST", "/x", b"{}") == (201, b"ok")
        assert await pool.request("POST", "/x", b"{}") == (201, b"ok")
        assert srv.connections == 1
        pool.close()


async def test_a_body_that_ends_with_the_connection() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        _answer(w, b"HTTP/1.0 200 OK\r\n\r\nall of it")
        await w.drain()
        return False

    async with Raw(handler) as srv:
        await _asked_twice(srv.port, "GET", (200, b"all of it"))
        assert srv.connections == 2


async def test_a_reused_connection_closed_unanswered() -> None:
    """The server answers the first request of a connection and closes on the second
    without a word: an idempotent request goes once more on a new connection, a POST is
    the caller's to repeat (it may have been applied)."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        if n % 2 == 0:
            return False
        _answer(w, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        return True

    async with Raw(handler) as srv:
        pool = _pool(srv.port)
        assert await pool.request("GET", "/x", None) == (200, b"1")
        assert await pool.request("PUT", "/x", b"{}") == (200, b"1")  # resent: request 3
        assert (srv.requests, srv.connections) == (3, 2)
        with pytest.raises(aiohttp.ServerDisconnectedError) as e:
            await pool.request("POST", "/x", b"{}")
        assert not may_resend("POST", e.value)
        pool.close()


def _threaded_server(closed: threading.Event, close_now: threading.Event) -> socket.socket:
    """A server on a thread: it answers each connection's requests until ``close_now``
    is set, then closes the connection at once (``closed`` says it is done)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(0.02)
                while True:
                    if close_now.is_set():
                        close_now.clear()
                        break
                    try:
                        data = conn.recv(65536)
                    except TimeoutError:
                        continue
                    if not data:
                        break
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
            closed.set()

    threading.Thread(target=serve, daemon=True).start()
    return listener


async def test_a_connection_the_server_closed_while_idle_is_not_written_into() -> None:
    """The server closes an idle connection; the close is in the kernel but the event
    loop has not run since: the pool sees it (``_peer_spoke``) and opens a new
    connection, so even a POST goes out safely."""
    closed, close_now = threading.Event(), threading.Event()
    listener = _threaded_server(closed, close_now)
    try:
        pool = _pool(listener.getsockname()[1])
        assert await pool.request("POST", "/x", b"{}") == (200, b"1")
        await asyncio.sleep(http1.CHECK_AFTER + 0.05)
        close_now.set()
        assert closed.wait(5)  # blocking: this loop does not run until the request
        assert not pool._idle[-1].closed
        assert await pool.request("POST", "/x", b"{}") == (200, b"1")
        pool.close()
    finally:
        listener.close()


async def test_a_request_cut_short_leaves_its_connection() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        if n == 1:
            _answer(w, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12")  # then silence
            return True
        _answer(w, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        return True

    async with Raw(handler) as srv:
        pool = _pool(srv.port)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await pool.request("GET", "/x", None)
        assert await pool.request("GET", "/x", None) == (200, b"1")
        assert srv.connections == 2  # the half-read one was aborted, not reused
        pool.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"SPDY/3 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc",
    ],
)
async def test_a_malformed_answer_is_a_payload_error(answer: bytes) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        _answer(w, answer)
        await asyncio.sleep(0.5)
        return False

    async with Raw(handler) as srv:
        pool = _pool(srv.port)
        with pytest.raises(aiohttp.ClientPayloadError):
            await pool.request("GET", "/x", None)
        pool.close()


def test_only_a_plain_server_url_gets_a_pool() -> None:
    assert http1.pool_for("https://10.0.0.1:6443", False, [], limit=1, connect_timeout=1)
    for url in ("https://h:1/prefix", "unix:///x", "https://u:p@h:1", "https://h:1?q=1"):
        assert http1.pool_for(url, False, [], limit=1, connect_timeout=1) is None
    assert URL("https://h").port == 443  # a default port is named in no Host header


# --- found in review (2026-12-07) ---------------------------------------------------------


async def _paced(w: asyncio.StreamWriter, *parts: bytes) -> None:
    """``parts`` written apart, so each arrives in a read of its own."""
    for part in parts:
        w.write(part)
        await w.drain()
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("end", [b"\r\n", b"X-Trailer: 1\r\n\r\n"], ids=["plain", "trailer"])
async def test_a_chunked_answer_whose_end_comes_in_a_read_of_its_own(end: bytes) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        await _paced(w, head + b"5\r\nhello\r\n0\r\n", end)
        return True

    async with Raw(handler) as srv:
        await _asked_twice(srv.port, "GET", (200, b"hello"))
        assert srv.connections == 1


@pytest.mark.parametrize("method,status", [("HEAD", 200), ("GET", 204), ("GET", 304)])
async def test_an_answer_without_a_body_even_if_its_headers_say_chunked(
    method: str, status: int
) -> None:
    """RFC 9112 6.3: a HEAD's answer, a 204 and a 304 end with their head."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        _answer(w, b"HTTP/1.1 %d X\r\nTransfer-Encoding: chunked\r\n\r\n" % status)
        return True

    async with Raw(handler) as srv:
        async with asyncio.timeout(5):
            await _asked_twice(srv.port, method, (status, b""))
        assert srv.connections == 1


async def test_the_resend_goes_on_a_new_connection() -> None:
    """The server drops each connection's second request unanswered. With two idle
    connections, an idempotent request resent after the first drop must not go on the
    other reused one (dropped too) but on a new connection."""
    seen: dict[int, int] = {}

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        k = id(w)
        seen[k] = seen.get(k, 0) + 1
        if seen[k] == 2:
            return False
        await asyncio.sleep(0.05)  # the first two requests overlap: two connections
        _answer(w, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        return True

    async with Raw(handler) as srv:
        pool = _pool(srv.port)
        both = [pool.request("GET", "/x", None) for _ in range(2)]
        assert await asyncio.gather(*both) == [(200, b"1")] * 2
        assert len(pool._idle) == 2
        assert await pool.request("GET", "/x", None) == (200, b"1")
        assert srv.connections == 3
        pool.close()


async def test_connections_idle_past_the_limit_close_though_never_picked(
    server: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The most recently used connection is picked first, so an older idle one may never
    be picked again: it is closed once past the limit all the same (aiohttp's pool closes
    its idle connections on a timer)."""
    pool = _pool(server.port)
    try:
        await asyncio.gather(*(pool.request("GET", "/x", None) for _ in range(2)))
        old = pool._idle[0]
        monkeypatch.setattr(http1, "IDLE_LIMIT", 0.2)
        for _ in range(6):  # the newer one, in use every 0.06 s, stays
            await asyncio.sleep(0.06)
            await pool.request("GET", "/x", None)
        assert old.closed and old not in pool._idle
        assert len(pool._idle) == 1
    finally:
        pool.close()


async def test_a_request_ending_after_the_pool_closed_closes_its_connection() -> None:
    release = asyncio.Event()

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        await release.wait()
        _answer(w, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        return True

    async with Raw(handler) as srv:
        pool = _pool(srv.port)
        pending = asyncio.create_task(pool.request("GET", "/x", None))
        await asyncio.sleep(0.05)
        pool.close()
        release.set()
        assert await pending == (200, b"1")
        assert pool._idle == []  # closed, not kept for a pool no one uses


def test_a_client_used_again_under_a_new_loop() -> None:
    """A ``Client`` whose lean pool kept an idle connection on a loop that has since
    closed (one ``asyncio.run`` after another): the next request starts a new pool, and
    the old connection is ended (the server sees it close) without an error."""
    from corral.client.rest import Client, KubeConfig

    listener = socket.create_server(("127.0.0.1", 0))
    ended: list[int] = []

    def one(conn: socket.socket, n: int) -> None:
        with conn:
            while conn.recv(65536):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        ended.append(n)

    def accept() -> None:
        n = 0
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                threading.Thread(target=one, args=(conn, n), daemon=True).start()
                n += 1

    threading.Thread(target=accept, daemon=True).start()
    try:
        client = Client(KubeConfig(f"http://127.0.0.1:{listener.getsockname()[1]}", "t", None))
        for _ in range(3):
            assert asyncio.run(client.request("GET", "/x")) == 1
        asyncio.run(client.close())
        deadline = time.monotonic() + 5
        while len(ended) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(ended) == [0, 1, 2]  # each connection ended, the old ones too
    finally:
        listener.close()
        with warnings.catch_warnings():  # the old loops' transports, their sockets shut
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
