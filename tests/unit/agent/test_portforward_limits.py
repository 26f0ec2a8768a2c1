# ruff: noqa: F811  (the agent fixture is imported from test_agent_portforward)
"""What a port-forward client may not do to the node agent: inflate a small header block
into a huge one, send an endless control frame or WebSocket message, or stall a whole
session by writing to a pod that reads nothing (``agent/spdy.py``,
``agent/portforward.py``). A real aiohttp client against the real endpoint on the host
network, and a real TCP listener that never reads."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from test_agent_portforward import agent, new_deflate  # noqa: F401 - the agent fixture
from test_agent_portforward import client_syn_stream as syn_stream

from corral.agent import portforward, spdy

SPDY = "SPDY/3.1+portforward.k8s.io"
CHUNK = 256 * 1024
#: a deadline for a whole exchange (never a measurement): the old code hung here
DEADLINE = 30


# --- the codec --------------------------------------------------------------------------------
def test_a_header_block_that_inflates_past_the_limit_is_a_protocol_error() -> None:
    frame = syn_stream(new_deflate(), 1, {"streamtype": "data", "x": "a" * (4 << 20)})
    assert len(frame) < spdy.MAX_CONTROL  # a few KiB that would inflate to 4 MiB
    with pytest.raises(spdy.ProtocolError, match="inflates past"):
        spdy.Decoder().feed(frame)


def test_a_header_block_within_the_limit_is_read() -> None:
    frame = syn_stream(new_deflate(), 1, {"streamtype": "data", "x": "a" * 30000})
    [got] = spdy.Decoder().feed(frame)
    assert isinstance(got, spdy.SynStream) and got.headers["x"] == ["a" * 30000]


def test_an_oversized_control_frame_is_refused_from_its_head() -> None:
    head = struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, spdy.MAX_CONTROL + 1)
    with pytest.raises(spdy.ProtocolError, match="control frame"):
        spdy.Decoder().feed(head)  # no need to buffer the body to know


# --- the endpoint -----------------------------------------------------------------------------


@pytest.fixture
async def deaf_port() -> AsyncIterator[int]:
    """A port whose connections are accepted and never read (small receive buffers)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    held: list[socket.socket] = []

    async def accept() -> None:
        while True:
            conn, _ = await asyncio.get_running_loop().sock_accept(listener)
            held.append(conn)

    task = asyncio.create_task(accept())
    yield int(listener.getsockname()[1])
    task.cancel()
    for s in [*held, listener]:
        s.close()


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
        w.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def test_a_message_past_the_limit_closes_the_session(agent: TestServer) -> None:
    big = spdy.Encoder.data(99, b"\0" * spdy.MAX_DATA) + b"\0" * (128 * 1024)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(agent.make_url("/portForward/ns/web"), protocols=[SPDY]) as ws,
    ):
        with contextlib.suppress(ConnectionError):  # (the agent may be gone before the end)
            await ws.send_bytes(big)
            await ws.send_bytes(spdy.Encoder().ping(1))
        msg = await asyncio.wait_for(ws.receive(), DEADLINE)
        # the session ends (1009 Message Too Big, or a reset mid-message): no ping reply
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR), msg


async def test_a_pod_that_reads_nothing_loses_its_connection_not_the_session(
    agent: TestServer, deaf_port: int, echo_port: int
) -> None:
    deflate, dec = new_deflate(), spdy.Decoder()
    frames: list[spdy.Frame] = []
    arrived = asyncio.Event()

    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(agent.make_url("/portForward/ns/web"), protocols=[SPDY]) as ws,
    ):

        async def read() -> None:
            async for msg in ws:
                frames.extend(dec.feed(msg.data))
                arrived.set()

        async def until(done: Callable[[], bool]) -> None:
            while not done():
                arrived.clear()
                await arrived.wait()

        reader = asyncio.create_task(read())
        try:
            async with asyncio.timeout(DEADLINE):
                for sid, kind in ((1, "error"), (3, "data")):
                    h = {"streamtype": kind, "port": str(deaf_port), "requestid": "0"}
                    await ws.send_bytes(syn_stream(deflate, sid, h))
                chunk = spdy.Encoder.data(3, b"x" * CHUNK)
                sent = 0
                while spdy.RstStream(3, spdy.CANCEL) not in frames:
                    await ws.send_bytes(chunk)
                    sent += CHUNK
                    assert sent < 8 * portforward.INBOX_LIMIT
                    await asyncio.sleep(0)  # let the reader take what came
                assert spdy.RstStream(1, spdy.CANCEL) in frames
                # the session goes on: a ping, and a new connection to another port
                await ws.send_bytes(spdy.Encoder().ping(7))
                for sid, kind in ((5, "error"), (7, "data")):
                    h = {"streamtype": kind, "port": str(echo_port), "requestid": "1"}
                    await ws.send_bytes(syn_stream(deflate, sid, h))
                await ws.send_bytes(spdy.Encoder.data(7, b"still here", fin=True))
                await until(
                    lambda: (
                        spdy.Ping(7) in frames
                        and spdy.Data(7, b"", True) in frames
                        and spdy.Data(5, b"", True) in frames
                    )
                )
        finally:
            reader.cancel()
        echoed = b"".join(f.data for f in frames if isinstance(f, spdy.Data) and f.stream_id == 7)
        assert echoed == b"still here"


async def test_v4_a_pod_that_reads_nothing_loses_its_port_not_the_others(
    agent: TestServer, deaf_port: int, echo_port: int
) -> None:
    url = agent.make_url(f"/portForward/ns/web?ports={deaf_port},{echo_port}")
    got: dict[int, bytes] = {}
    arrived = asyncio.Event()
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, protocols=["v4.channel.k8s.io"]) as ws,
    ):

        async def read() -> None:
            async for msg in ws:
                got[msg.data[0]] = got.get(msg.data[0], b"") + msg.data[1:]
                arrived.set()

        reader = asyncio.create_task(read())
        try:
            async with asyncio.timeout(DEADLINE):
                chunk = b"\x00" + b"x" * CHUNK
                sent = 0
                while b"reset" not in got.get(1, b""):
                    await ws.send_bytes(chunk)
                    sent += CHUNK
                    assert sent < 8 * portforward.INBOX_LIMIT
                    await asyncio.sleep(0)
                await ws.send_bytes(b"\x02still here")
                while got.get(2, b"")[2:] != b"still here":
                    arrived.clear()
                    await arrived.wait()
        finally:
            reader.cancel()


async def test_a_reset_forgets_a_request_that_was_never_paired() -> None:
    sessions: list[portforward.SpdySession] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=[SPDY])
        await ws.prepare(request)
        sessions.append(portforward.SpdySession(ws, portforward.dialer("", "p")))
        await sessions[0].run()
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    server = TestServer(app)
    await server.start_server()
    deflate, dec = new_deflate(), spdy.Decoder()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(server.make_url("/"), protocols=[SPDY]) as ws,
        ):
            h = {"streamtype": "error", "port": "80", "requestid": "0"}
            await ws.send_bytes(syn_stream(deflate, 1, h))  # its data stream never comes
            await ws.send_bytes(spdy.Encoder().rst_stream(1, spdy.CANCEL))
            await ws.send_bytes(spdy.Encoder().ping(3))  # answered after the reset is read
            frames: list[spdy.Frame] = []
            async with asyncio.timeout(DEADLINE):
                while spdy.Ping(3) not in frames:
                    frames += dec.feed(await ws.receive_bytes())
            assert sessions[0].requests == {} and sessions[0].by_stream == {}
    finally:
        await server.close()
