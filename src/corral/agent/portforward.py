"""``pods/portforward`` on the node: TCP connections into a pod's network namespace.

``AgentServer`` routes ``GET /portForward/{namespace}/{pod}`` here (the API server has
checked the pod and proxies the client's WebSocket frames unchanged,
``apiserver/portforward.py``). Two wire protocols, chosen by WebSocket subprotocol:

``SPDY/3.1+portforward.k8s.io`` (kubectl 1.31+, its default ``PortForwardWebsockets``)
    A SPDY/3.1 session tunnelled in binary messages (``agent/spdy.py``). For every local
    connection kubectl opens two streams with headers ``streamType: error|data``,
    ``port`` and ``requestID``; each gets a SYN_REPLY at once. Once both of a request
    are there, the port is dialled: the data stream is the TCP byte stream both ways
    (the client's FIN half-closes the pod's socket; the pod's EOF is a FIN on the data
    stream); a failure is written on the error stream, as the kubelet words it; both
    streams end with a FIN. PINGs are echoed (kubectl pings every 10 s). Many
    connections share the session, in sequence or at once.
``v4.channel.k8s.io`` (the Python client's ``portforward``, ``?ports=P1,P2``)
    Each port ``i`` has data channel ``2i`` and error channel ``2i+1``; the first
    message on each is ``[channel, port & 0xff, port >> 8]``. Every port is dialled once,
    at once; a failure goes on its error channel. The WebSocket closes when every port's
    connection has ended (there is no per-channel close in v4).

Where the connection is made: ``PodNetworks.pod_network`` names the pod's network
namespace (``/run/netns/corral-...`` for ``oci``) or ``""`` for the host's (``process``,
``hostNetwork``). The socket is created in a short-lived thread that ``setns()``es into
the namespace and back (a socket belongs to the namespace it was made in, whichever
thread uses it later), then connected from the event loop to ``127.0.0.1:PORT``, else
``[::1]:PORT``, as containerd and CRI-O do. Nothing runs inside the pod.

Every task a session starts ends with it: a WebSocket that closes cancels its
connections and closes their sockets.

Limits (neither protocol has per-connection flow control, and one session carries many
connections): a WebSocket message is at most ``MAX_MESSAGE`` (a full SPDY DATA frame);
the session's reader never waits on one connection: a pod that leaves more than
``INBOX_LIMIT`` of the client's bytes unread has that connection reset (SPDY:
RST_STREAM CANCEL on both its streams; v4: its error channel says so and its socket
closes), while the other connections, pings and the close go on. The reader waits only
for the replies it queued itself (SYN_REPLY, PING, RST_STREAM) to go out.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from aiohttp import WSMsgType, web

from corral.agent import spdy
from corral.api import errors

log = logging.getLogger("corral.agent.portforward")

SPDY_TUNNEL = "SPDY/3.1+portforward.k8s.io"
CHANNELS_V4 = "v4.channel.k8s.io"
PROTOCOLS = (SPDY_TUNNEL, CHANNELS_V4)
PORT_REQUIRED = 'query parameter "port" is required'  # the kubelet's words
#: told on a v4 error channel when a connection is reset for its pod not reading
RESET = "error forwarding port {port}: the pod read none of the queued data: connection reset"
CLONE_NEWNET = 0x40000000
READ_SIZE = 64 * 1024
#: bytes queued for the client before a connection's reader waits for them to go out
HIGH_WATER = 1 << 20
#: bytes of the client's queued for one connection before it is reset: the session's
#: reader never waits on one connection (that would stall every other one, the pings and
#: the close), so a pod that stops reading loses its connection instead
INBOX_LIMIT = 16 * HIGH_WATER
#: the largest WebSocket message taken (a full 16 MiB SPDY DATA frame, and some room)
MAX_MESSAGE = spdy.MAX_DATA + 64 * 1024


@runtime_checkable
class PodNetworks(Protocol):
    """Implemented by the pod lifecycle (``NodeAgent``); called on the event loop."""

    def pod_network(self, namespace: str, pod: str) -> str | None:
        """The pod's network namespace path, ``""`` for the host's network, or ``None``
        when no such pod runs here."""
        ...


class DialError(Exception):
    """A port could not be connected; the message is what the client is shown."""


Dial = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


# --- connecting inside a network namespace ----------------------------------------------------
_libc = ctypes.CDLL(None, use_errno=True)


def _socket_in(netns: str, family: int) -> socket.socket:
    """A TCP socket of ``family`` created inside network namespace ``netns`` (runs in a
    thread of its own: setns affects the calling thread only)."""
    with open("/proc/thread-self/ns/net", "rb") as own, open(netns, "rb") as target:
        if _libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {netns}: {os.strerror(err)}")
        try:
            return socket.socket(family, socket.SOCK_STREAM)
        finally:
            if _libc.setns(own.fileno(), CLONE_NEWNET) != 0:  # pragma: no cover
                log.error("could not return to the agent's network namespace")


async def _new_socket(netns: str, family: int) -> socket.socket:
    if not netns:
        return socket.socket(family, socket.SOCK_STREAM)
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[socket.socket] = loop.create_future()

    def deliver(s: socket.socket | None, e: BaseException | None) -> None:
        if fut.done():
            if s is not None:
                s.close()
        elif s is not None:
            fut.set_result(s)
        else:
            fut.set_exception(e or OSError("no socket"))

    def run() -> None:
        try:
            s = _socket_in(netns, family)
        except BaseException as e:
            loop.call_soon_threadsafe(deliver, None, e)
        else:
            loop.call_soon_threadsafe(deliver, s, None)

    threading.Thread(target=run, name="portforward-setns", daemon=True).start()
    return await fut


async def _connect(netns: str, family: int, addr: str, port: int) -> socket.socket:
    s = await _new_socket(netns, family)
    try:
        s.setblocking(False)
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(s, (addr, port)), 10)
    except BaseException:
        s.close()
        raise
    return s


def _why(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "i/o timeout"
    if isinstance(e, OSError) and e.errno:
        return os.strerror(e.errno).lower()
    return str(e)


def dialer(netns: str, pod_uid: str) -> Dial:
    """Connects to a port of the pod (127.0.0.1, else ::1) in ``netns`` ("" = host)."""
    where = netns or "the host network"

    async def dial(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            s = await _connect(netns, socket.AF_INET, "127.0.0.1", port)
        except OSError as e4:
            try:
                s = await _connect(netns, socket.AF_INET6, "::1", port)
            except OSError as e6:
                raise DialError(
                    f"error forwarding port {port} to pod {pod_uid}, uid : failed to connect "
                    f'to localhost:{port} inside namespace "{where}", IPv4: dial tcp4 '
                    f"127.0.0.1:{port}: connect: {_why(e4)} IPv6 dial tcp6 [::1]:{port}: "
                    f"connect: {_why(e6)} "
                ) from None
        return await asyncio.open_connection(sock=s, limit=READ_SIZE)

    return dial


# --- the session plumbing shared by both protocols --------------------------------------------
class _Outbox:
    """Frames for the client, written in order by one task; producers wait while more
    than ``HIGH_WATER`` bytes are queued."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.pending = 0
        self.room = asyncio.Event()
        self.room.set()
        self.ended = False

    def put(self, frame: bytes) -> None:
        if self.ended:  # the writer is gone (the client left): nobody sends it
            return
        self.queue.put_nowait(frame)
        self.pending += len(frame)
        if self.pending > HIGH_WATER:
            self.room.clear()

    async def send(self, frame: bytes) -> None:
        self.put(frame)
        await self.room.wait()

    async def run(self) -> None:
        try:
            while (frame := await self.queue.get()) is not None:
                self.pending -= len(frame)
                if self.pending <= HIGH_WATER:
                    self.room.set()
                await self.ws.send_bytes(frame)
        finally:  # never leave a producer waiting for room that cannot come
            self.ended = True
            self.room.set()


class _Inbox:
    """The client's bytes for one connection, until the pod takes them (``None``: the
    client's end). Never waited on: ``put`` answers False once more than ``INBOX_LIMIT``
    bytes are queued (a pod that stopped reading), and the caller resets the connection;
    neither protocol has flow control to slow one connection's client down alone."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.pending = 0
        self.closed = False

    def put(self, chunk: bytes | None) -> bool:
        """Queue ``chunk``; False (and nothing queued) when it would pass the limit."""
        if self.closed:  # the connection is gone: drop what still comes
            return True
        if chunk and self.pending + len(chunk) > INBOX_LIMIT:
            return False
        self.queue.put_nowait(chunk)
        if chunk:
            self.pending += len(chunk)
        return True

    async def get(self) -> bytes | None:
        chunk = await self.queue.get()
        if chunk:
            self.pending -= len(chunk)
        return chunk

    def close(self) -> None:
        """Nobody takes more: drop what is queued and whatever still comes."""
        self.closed = True
        self.pending = 0
        while not self.queue.empty():
            self.queue.get_nowait()


async def _copy_to_pod(inbound: _Inbox, writer: asyncio.StreamWriter) -> None:
    """The client's bytes to the pod; the client's end half-closes the pod's socket."""
    try:
        while (chunk := await inbound.get()) is not None:
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    finally:
        inbound.close()


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()


# --- SPDY over WebSocket (kubectl) --------------------------------------------------------------
@dataclass
class _Request:
    """One forwarded connection: kubectl's error and data streams of one ``requestID``."""

    key: str
    port: int
    error_id: int = 0
    data_id: int = 0
    inbound: _Inbox = field(default_factory=_Inbox)
    task: asyncio.Task[None] | None = None


class SpdySession:
    """Serves one ``SPDY/3.1+portforward.k8s.io`` WebSocket until it closes."""

    def __init__(self, ws: web.WebSocketResponse, dial: Dial) -> None:
        self.ws = ws
        self.dial = dial
        self.out = _Outbox(ws)
        self.enc = spdy.Encoder()
        self.requests: dict[str, _Request] = {}
        self.by_stream: dict[int, _Request] = {}

    async def run(self) -> None:
        writer = asyncio.create_task(self.out.run())
        dec = spdy.Decoder()
        try:
            async for msg in self.ws:
                if msg.type != WSMsgType.BINARY:
                    continue
                for frame in dec.feed(msg.data):
                    if not self._handle(frame):
                        return
                # the replies (SYN_REPLY, PING, RST) queue at most one message's worth
                await self.out.room.wait()
        except spdy.ProtocolError as e:
            log.info("port-forward session ended: %s", e)
        finally:
            await _stop([r.task for r in self.requests.values() if r.task is not None])
            self.out.queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(writer, 2)
            await _stop([writer])

    def _handle(self, frame: spdy.Frame) -> bool:
        """Act on one frame; False ends the session."""
        if isinstance(frame, spdy.SynStream):
            self._syn_stream(frame)
        elif isinstance(frame, spdy.Data):
            req = self.by_stream.get(frame.stream_id)
            if req is not None and frame.stream_id == req.data_id:
                if frame.data and not req.inbound.put(frame.data):
                    log.info(
                        "port-forward: port %d: the pod reads nothing of %d bytes queued; "
                        "resetting the connection",
                        req.port,
                        req.inbound.pending,
                    )
                    for sid in (req.data_id, req.error_id):
                        if sid:
                            self.out.put(self.enc.rst_stream(sid, spdy.CANCEL))
                    self._drop(req)
                elif frame.fin:
                    req.inbound.put(None)
        elif isinstance(frame, spdy.Ping):
            self.out.put(self.enc.ping(frame.id))
        elif isinstance(frame, spdy.RstStream):
            req = self.by_stream.get(frame.stream_id)
            if req is not None:
                self._drop(req)
        elif isinstance(frame, spdy.GoAway):
            return False
        return True

    def _drop(self, req: _Request) -> None:
        """Forget a request (paired or not) and stop its connection, if one runs."""
        req.inbound.close()
        if req.task is not None:
            req.task.cancel()  # its ``finally`` forgets it too
        if self.requests.get(req.key) is req:
            del self.requests[req.key]
        for sid in (req.data_id, req.error_id):
            if self.by_stream.get(sid) is req:
                del self.by_stream[sid]

    def _syn_stream(self, frame: spdy.SynStream) -> None:
        sid, h = frame.stream_id, frame.headers
        kind = (h.get("streamtype") or [""])[0]
        request_id = (h.get("requestid") or [""])[0]
        try:
            port = int((h.get("port") or [""])[0])
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            self.out.put(self.enc.rst_stream(sid, spdy.PROTOCOL_ERROR))
            return
        if kind not in ("data", "error"):
            self.out.put(self.enc.rst_stream(sid, spdy.PROTOCOL_ERROR))
            return
        # old clients send no requestID: pair by stream ids (error first, then data)
        key = request_id or str(sid - 2 if kind == "data" else sid)
        req = self.requests.setdefault(key, _Request(key, port))
        if kind == "data":
            req.data_id = sid
        else:
            req.error_id = sid
        self.by_stream[sid] = req
        self.out.put(self.enc.syn_reply(sid))
        if req.data_id and req.error_id and req.task is None:
            req.task = asyncio.create_task(self._forward(key, req))

    async def _forward(self, key: str, req: _Request) -> None:
        try:
            try:
                reader, writer = await self.dial(req.port)
            except DialError as e:
                log.info("port-forward: %s", e)
                self.out.put(self.enc.data(req.data_id, b"", fin=True))
                self.out.put(self.enc.data(req.error_id, str(e).encode(), fin=True))
                return
            up = asyncio.create_task(_copy_to_pod(req.inbound, writer))
            try:
                while chunk := await reader.read(READ_SIZE):
                    await self.out.send(self.enc.data(req.data_id, chunk))
            except ConnectionError:
                pass
            finally:
                await _stop([up])
                _close(writer)
            self.out.put(self.enc.data(req.data_id, b"", fin=True))
            self.out.put(self.enc.data(req.error_id, b"", fin=True))
        finally:
            self._drop(req)


# --- v4 channels (the Python client) ------------------------------------------------------------
def parse_ports(raw: list[str]) -> list[int]:
    """``ports`` query values (each may be comma-separated), as the kubelet checks them."""
    ports: list[int] = []
    for value in raw:
        for p in value.split(","):
            # Go's strconv.ParseUint(p, 10, 16): ASCII digits only, no sign, at most 65535
            why = "invalid syntax" if not (p.isascii() and p.isdigit()) else ""
            if not why and int(p) > 65535:
                why = "value out of range"
            if why:
                raise errors.bad_request(
                    f'unable to parse "{p}" as a port: strconv.ParseUint: parsing "{p}": {why}'
                )
            port = int(p)
            if port < 1:
                raise errors.bad_request(f'port "{p}" must be > 0')
            ports.append(port)
    return ports


async def serve_channels(ws: web.WebSocketResponse, ports: list[int], dial: Dial) -> None:
    """Forward ``ports`` over the ``v4.channel.k8s.io`` framing until every connection
    ended or the client left."""
    out = _Outbox(ws)
    inbound = [_Inbox() for _ in ports]
    for i, port in enumerate(ports):
        prefix = bytes([port & 0xFF, port >> 8])
        out.put(bytes([2 * i]) + prefix)
        out.put(bytes([2 * i + 1]) + prefix)

    async def forward(i: int, port: int) -> None:
        data, error = bytes([2 * i]), bytes([2 * i + 1])
        try:
            try:
                reader, writer = await dial(port)
            except DialError as e:
                log.info("port-forward: %s", e)
                out.put(error + str(e).encode())
                return
            up = asyncio.create_task(_copy_to_pod(inbound[i], writer))
            try:
                while chunk := await reader.read(READ_SIZE):
                    await out.send(data + chunk)
            except ConnectionError:
                pass
            finally:
                await _stop([up])
                _close(writer)
        finally:
            inbound[i].close()

    async def from_client() -> None:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY and msg.data:
                ch = msg.data[0]
                if ch % 2 == 0 and ch // 2 < len(ports) and len(msg.data) > 1:
                    i = ch // 2
                    if not inbound[i].put(msg.data[1:]):  # the pod reads nothing: end it
                        log.info("port-forward: port %d: the pod reads nothing", ports[i])
                        inbound[i].close()
                        forwards[i].cancel()
                        out.put(bytes([2 * i + 1]) + RESET.format(port=ports[i]).encode())
                await out.room.wait()

    writer = asyncio.create_task(out.run())
    forwards = [asyncio.create_task(forward(i, p)) for i, p in enumerate(ports)]
    client = asyncio.create_task(from_client())

    async def all_forwarded() -> None:
        await asyncio.gather(*forwards, return_exceptions=True)

    done = asyncio.create_task(all_forwarded())
    try:
        await asyncio.wait([client, done], return_when=asyncio.FIRST_COMPLETED)
    finally:
        await _stop([client, done, *forwards])
        out.queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(writer, 2)
        await _stop([writer])


# --- the endpoint -----------------------------------------------------------------------------
async def serve(request: web.Request, networks: PodNetworks | None) -> web.StreamResponse:
    """``GET /portForward/{namespace}/{pod}[?ports=..&uid=..]`` as a WebSocket."""
    ns, pod = request.match_info["namespace"], request.match_info["pod"]
    netns = networks.pod_network(ns, pod) if networks is not None else None
    if netns is None:
        raise errors.StatusError(
            404, errors.NOT_FOUND, f'pod "{ns}/{pod}" is not running on this node'
        )
    ports = parse_ports(request.query.getall("ports", []))  # first: the probe GET says it
    ws = web.WebSocketResponse(protocols=PROTOCOLS, max_msg_size=MAX_MESSAGE, autoping=True)
    if not ws.can_prepare(request).ok:
        raise errors.bad_request("Upgrade request required")
    if ws.can_prepare(request).protocol != SPDY_TUNNEL and not ports:
        raise errors.bad_request(PORT_REQUIRED)
    dial = dialer(netns, request.query.get("uid", "") or pod)
    await ws.prepare(request)
    try:
        if ws.ws_protocol == SPDY_TUNNEL:
            await SpdySession(ws, dial).run()
        else:
            await serve_channels(ws, ports, dial)
    finally:
        await ws.close()
    return ws
