"""The SPDY/3 codec and the agent's port-forward endpoint on the host network (what the
``process`` runtime uses), driven by a real aiohttp WebSocket client against a real TCP
echo server. kubectl and the Python client against ``oci`` pods: tests/e2e."""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from corral.agent import portforward, spdy
from corral.api import errors


def client_syn_stream(deflate: zlib._Compress, sid: int, headers: dict[str, str]) -> bytes:
    """A SYN_STREAM as Go's framer writes one (its own header compressor stream)."""
    block = spdy.header_block({k: [v] for k, v in headers.items()})
    comp = deflate.compress(block) + deflate.flush(zlib.Z_SYNC_FLUSH)
    head = struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, 10 + len(comp))
    return head + struct.pack(">IIH", sid, 0, 0) + comp


def new_deflate() -> zlib._Compress:
    return zlib.compressobj(9, zlib.DEFLATED, 15, 9, zdict=spdy.DICTIONARY)


def test_the_dictionary_is_spdy3s() -> None:
    assert len(spdy.DICTIONARY) == 1423
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b",*,enq=0.")


def test_frames_split_anywhere_decode_in_order() -> None:
    deflate = new_deflate()
    stream = (
        client_syn_stream(deflate, 1, {"streamtype": "error", "port": "80", "requestid": "0"})
        + client_syn_stream(deflate, 3, {"streamtype": "data", "port": "80", "requestid": "0"})
        + spdy.Encoder.data(3, b"hello", fin=True)
        + spdy.Encoder().ping(7)
    )
    dec, frames = spdy.Decoder(), []
    for i in range(0, len(stream), 5):  # 5 bytes at a time: frames span feeds
        frames += dec.feed(stream[i : i + 5])
    assert frames == [
        spdy.SynStream(1, {"streamtype": ["error"], "port": ["80"], "requestid": ["0"]}, False),
        spdy.SynStream(3, {"streamtype": ["data"], "port": ["80"], "requestid": ["0"]}, False),
        spdy.Data(3, b"hello", True),
        spdy.Ping(7),
    ]


def test_replies_inflate_with_one_stream_per_direction() -> None:
    enc = spdy.Encoder()
    inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)
    for sid in (1, 3, 5):
        frame = enc.syn_reply(sid)
        first, second, got = struct.unpack_from(">III", frame)
        assert first == 0x80030000 | spdy.SYN_REPLY and got == sid
        assert second & 0xFFFFFF == len(frame) - 8
        assert spdy.parse_header_block(inflate.decompress(frame[12:])) == {}


def test_a_wrong_version_is_a_protocol_error() -> None:
    with pytest.raises(spdy.ProtocolError):
        spdy.Decoder().feed(struct.pack(">HHI", 0x8002, spdy.PING, 4) + b"\0\0\0\1")


@pytest.mark.parametrize(
    ("raw", "ports", "error"),
    [
        (["80"], [80], ""),
        (["80,8080", "9090"], [80, 8080, 9090], ""),
        (["x"], [], 'unable to parse "x" as a port'),
        (["0"], [], 'port "0" must be > 0'),
        (["70000"], [], 'unable to parse "70000" as a port: .*: value out of range'),
        (["-1"], [], 'parsing "-1": invalid syntax'),
        (["+80"], [], 'parsing "\\+80": invalid syntax'),
    ],
    ids=["one", "several", "not-a-number", "zero", "too-big", "negative", "signed"],
)
def test_ports_query(raw: list[str], ports: list[int], error: str) -> None:
    if error:
        with pytest.raises(errors.StatusError, match=error):
            portforward.parse_ports(raw)
    else:
        assert portforward.parse_ports(raw) == ports


# --- the endpoint, on the host network ----------------------------------------------------
class HostNetwork:
    def pod_network(self, namespace: str, pod: str) -> str | None:
        return "" if pod == "web" else None


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
    await server.wait_closed()


@pytest.fixture
async def agent() -> AsyncIterator[TestServer]:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            return await portforward.serve(request, HostNetwork())
        except errors.StatusError as e:
            return web.Response(status=e.code, body=e.body())

    app = web.Application()
    app.router.add_get("/portForward/{namespace}/{pod}", handler)
    server = TestServer(app)
    await server.start_server()
    yield server
    await server.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_v4_channels_echo_and_report_a_closed_port(agent: TestServer, echo_port: int) -> None:
    closed = free_port()
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            agent.make_url(f"/portForward/ns/web?ports={echo_port},{closed}"),
            protocols=["v5.channel.k8s.io", "v4.channel.k8s.io"],
        ) as ws,
    ):
        assert ws.protocol == "v4.channel.k8s.io"
        first = [(await ws.receive_bytes()) for _ in range(4)]
        assert first == [
            bytes([0]) + struct.pack("<H", echo_port),
            bytes([1]) + struct.pack("<H", echo_port),
            bytes([2]) + struct.pack("<H", closed),
            bytes([3]) + struct.pack("<H", closed),
        ]
        await ws.send_bytes(b"\x00ping")
        got = {}
        while len(got) < 2:
            msg = await asyncio.wait_for(ws.receive_bytes(), 10)
            got[msg[0]] = msg[1:]
        assert got[0] == b"ping"
        assert f"127.0.0.1:{closed}: connect: connection refused" in got[3].decode()


async def test_spdy_tunnel_forwards_connections_and_answers_pings(
    agent: TestServer, echo_port: int
) -> None:
    deflate, dec = new_deflate(), spdy.Decoder()
    closed = free_port()

    async def frames(ws: aiohttp.ClientWebSocketResponse) -> list[spdy.Frame]:
        """Frames until every stream ended (FIN) and the ping came back."""
        out: list[spdy.Frame] = []
        while not (
            {f.stream_id for f in out if isinstance(f, spdy.Data) and f.fin} >= {1, 3, 5, 7}
            and spdy.Ping(9) in out
        ):
            out += dec.feed(await asyncio.wait_for(ws.receive_bytes(), 10))
        return out

    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            agent.make_url("/portForward/ns/web"), protocols=["SPDY/3.1+portforward.k8s.io"]
        ) as ws,
    ):
        assert ws.protocol == "SPDY/3.1+portforward.k8s.io"
        for req, port in (("0", echo_port), ("1", closed)):
            base = int(req) * 4
            for sid, kind in ((base + 1, "error"), (base + 3, "data")):
                h = {"streamtype": kind, "port": str(port), "requestid": req}
                await ws.send_bytes(client_syn_stream(deflate, sid, h))
        await ws.send_bytes(spdy.Encoder.data(3, b"over spdy", fin=True))
        await ws.send_bytes(spdy.Encoder().ping(9))
        got = await frames(ws)
        assert got.count(spdy.Ignored(spdy.SYN_REPLY)) == 4  # one per stream, first
        assert all(isinstance(f, spdy.Ignored) for f in got[:4])
        data = [f for f in got if isinstance(f, spdy.Data)]
        echoed = b"".join(f.data for f in data if f.stream_id == 3)
        assert echoed == b"over spdy"
        assert spdy.Data(1, b"", True) in data  # no error
        refused = b"".join(f.data for f in data if f.stream_id == 5).decode()
        assert f"127.0.0.1:{closed}: connect: connection refused" in refused


async def test_an_unknown_pod_is_404(agent: TestServer) -> None:
    async with aiohttp.ClientSession() as session:
        resp = await session.get(agent.make_url("/portForward/ns/other"))
        assert resp.status == 404
        assert 'pod \\"ns/other\\" is not running on this node' in await resp.text()


async def test_a_plain_get_is_told_what_is_wrong(agent: TestServer) -> None:
    async with aiohttp.ClientSession() as session:
        resp = await session.get(agent.make_url("/portForward/ns/web?ports=x"))
        assert resp.status == 400 and "unable to parse" in await resp.text()
        resp = await session.get(agent.make_url("/portForward/ns/web?ports=80"))
        assert resp.status == 400 and "Upgrade request required" in await resp.text()
        resp = await session.get(
            agent.make_url("/portForward/ns/web"),
            headers={
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Protocol": "v4.channel.k8s.io",
            },
        )
        assert resp.status == 400 and 'query parameter \\"port\\" is required' in await resp.text()


def test_inbox_refuses_past_its_limit_and_drops_after_close() -> None:
    box = portforward._Inbox()
    assert box.put(b"x" * portforward.INBOX_LIMIT)
    assert not box.put(b"y") and box.pending == portforward.INBOX_LIMIT
    box.close()  # the connection ended: what is queued and later bytes are dropped
    assert box.put(b"z" * (2 * portforward.INBOX_LIMIT))
    assert box.pending == 0 and box.queue.empty()


async def test_v4_channels_carry_megabytes_both_ways(agent: TestServer, echo_port: int) -> None:
    payload = bytes(range(256)) * (12 * 1024)  # 3 MiB, past the high-water marks
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            agent.make_url(f"/portForward/ns/web?ports={echo_port}"),
            protocols=["v4.channel.k8s.io"],
        ) as ws,
    ):

        async def send() -> None:
            for i in range(0, len(payload), 32768):
                await ws.send_bytes(b"\x00" + payload[i : i + 32768])

        for _ in range(2):  # the port on the data and the error channel
            assert (await ws.receive_bytes())[1:] == struct.pack("<H", echo_port)
        sender = asyncio.create_task(send())
        got = b""
        while len(got) < len(payload):
            msg = await asyncio.wait_for(ws.receive_bytes(), 10)
            assert msg[0] == 0
            got += msg[1:]
        await sender
        assert got == payload
