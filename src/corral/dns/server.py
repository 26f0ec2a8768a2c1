"""``corral dns``: the cluster DNS server (UDP and TCP) over Service and EndpointSlice informers.

``main(argv)`` is ``corral dns --kubeconfig FILE [--listen 127.0.0.1:53] [--domain
cluster.local] [--upstream IP[:PORT] ...] [--ttl 5]``, wired by the CLI like the controller
manager (``--exit-on-stdin-eof`` for a parent that starts it as a child). It binds UDP and
TCP on the same address and port at once (port 0 picks a free one), answers SERVFAIL for
cluster names until both caches have synced, then prints one line to stdout::

    corral dns: serving cluster.local on 127.0.0.1:5353 (udp, tcp)

Questions in the cluster domain (and PTR for addresses it knows) are answered from
``records.ClusterZone``; other names go to the ``--upstream`` servers in order (over the
transport the client used, each tried for 2 s), or are REFUSED when there is none.

The DNS library is dnspython, not dnslib's server: dnspython is the most used and most
actively maintained DNS toolkit for Python (regular releases, full RFC coverage, EDNS,
asyncio query functions to forward with), and it is only a codec and a client, so the
sockets stay ours: a small asyncio UDP protocol and TCP stream server, which is all a
server needs and lets the loop be one asyncio TaskGroup with the informers. dnslib's
``DNSServer`` is thread-per-socket (socketserver), which fits neither the informers'
event loop nor the project's structured-concurrency rule. Parsing and building are
``dns.message.from_wire``, ``dns.message.make_response`` and ``dns.rrset``; a response too
large for the client's UDP size (512, or its EDNS payload) is sent truncated (TC) so it
retries over TCP.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass

from corral.client.informer import Informer
from corral.client.rest import ENDPOINTSLICES, SERVICES, Client, add_server_flag
from corral.dns.records import DEFAULT_TTL, ClusterZone, service_key_of_slice
from corral.util import eventloop
from corral.util.stopping import stdin_eof

log = logging.getLogger("corral.dns")

#: seconds one upstream server has to answer a forwarded question
FORWARD_TIMEOUT = 2.0
#: seconds a TCP connection may sit idle between questions (RFC 7766 suggests seconds)
TCP_IDLE_TIMEOUT = 10.0
#: forwarded UDP questions in flight at once; more are dropped (the client retries)
MAX_FORWARDS = 256
#: the EDNS payload size we advertise (the DNS flag day 2020 value)
OUR_PAYLOAD = 1232

Address = tuple[str, int]


@dataclass(frozen=True)
class Forward:
    """A question that is not ours: send ``query`` upstream."""

    query: dns.message.Message


def parse_hostport(text: str, default_port: int) -> Address:
    """``IP``, ``IP:PORT``, ``[IPv6]:PORT`` or ``:PORT`` (all IPv4 interfaces)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:  # a bare IPv4 address, a host name, or a bare IPv6 address
        host, port = text, ""
    try:
        number = int(port) if port else default_port
    except ValueError:
        raise ValueError(f"invalid port in {text!r}") from None
    if not 0 <= number < 65536:
        raise ValueError(f"invalid port in {text!r}")
    return host or "0.0.0.0", number


class DNSServer:
    """Answers wire-format questions from a ``ClusterZone``; forwards or refuses the rest.

    ``respond`` is synchronous and pure over the zone's caches; only forwarding awaits.
    ``synced()`` tells whether the caches hold a first list (before that, cluster names get
    SERVFAIL rather than a wrong NXDOMAIN).
    """

    def __init__(
        self,
        zone: ClusterZone,
        upstreams: list[Address] | None = None,
        *,
        synced: Callable[[], bool] = lambda: True,
        forward_timeout: float = FORWARD_TIMEOUT,
    ) -> None:
        self.zone = zone
        self.upstreams = list(upstreams or [])
        self.synced = synced
        self.forward_timeout = forward_timeout
        self._forwards = asyncio.Semaphore(MAX_FORWARDS)
        self._datagrams: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue(maxsize=4096)
        self._tcp: asyncio.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None

    # --- answering ------------------------------------------------------------------------
    def respond(self, wire: bytes, *, tcp: bool) -> bytes | Forward | None:
        """The reply to one message, a ``Forward`` to send upstream, or ``None`` (drop:
        not even a DNS header, or itself a response)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.message.ShortHeader:
            return None
        except Exception:  # any malformed message: FORMERR with its id, as servers do
            if len(wire) < 12 or wire[2] & 0x80:
                return None
            bad = dns.message.Message(id=int.from_bytes(wire[:2], "big"))
            bad.flags = dns.flags.QR
            bad.set_rcode(dns.rcode.FORMERR)
            return bad.to_wire()
        if query.flags & dns.flags.QR:
            return None
        response = dns.message.make_response(
            query, recursion_available=bool(self.upstreams), our_payload=OUR_PAYLOAD
        )
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return self._render(query, response, tcp)
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return self._render(query, response, tcp)
        q = query.question[0]
        answer = self.zone.resolve(q.name, q.rdtype) if q.rdclass == dns.rdataclass.IN else None
        if answer is None:
            if q.rdclass == dns.rdataclass.IN and self.upstreams:
                return Forward(query)
            response.set_rcode(dns.rcode.REFUSED)
            return self._render(query, response, tcp)
        if not self.synced():
            response.set_rcode(dns.rcode.SERVFAIL)
            return self._render(query, response, tcp)
        response.flags |= dns.flags.AA
        response.set_rcode(answer.rcode)
        response.answer = answer.answer
        response.authority = answer.authority
        response.additional = answer.additional
        log.debug("%s %s -> %s", q.name, q.rdtype.name, answer.rcode.name)
        return self._render(query, response, tcp)

    @staticmethod
    def _render(query: dns.message.Message, response: dns.message.Message, tcp: bool) -> bytes:
        """Wire bytes that fit the client's limit; too large for UDP: truncated (TC)."""
        limit = 65535 if tcp else max(512, min(query.payload, 65535) if query.edns >= 0 else 512)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response.answer, response.authority, response.additional = [], [], []
            response.flags |= dns.flags.TC
            return response.to_wire(max_size=limit)

    async def forward(self, fwd: Forward, *, tcp: bool) -> bytes:
        """Ask each upstream in turn; SERVFAIL when none answers."""
        query = fwd.query
        for host, port in self.upstreams:
            try:
                if tcp:
                    reply = await dns.asyncquery.tcp(
                        query, host, timeout=self.forward_timeout, port=port
                    )
                else:
                    reply = await dns.asyncquery.udp(
                        query, host, timeout=self.forward_timeout, port=port
                    )
            except (dns.exception.DNSException, OSError, EOFError) as e:
                log.info("upstream %s:%s failed for %s: %s", host, port, query.question, e)
                continue
            return self._render(query, reply, tcp)
        response = dns.message.make_response(query, recursion_available=True)
        response.set_rcode(dns.rcode.SERVFAIL)
        return self._render(query, response, tcp)

    # --- sockets --------------------------------------------------------------------------
    async def bind(self, host: str, port: int, *, freebind: bool = False) -> Address:
        """Bind TCP, then UDP on the same port (port 0: a free one); returns the address.
        TCP connections are served at once; datagrams wait for ``run_udp``.

        ``freebind`` binds an address that is not (yet) on any interface (Linux
        ``IP_FREEBIND``): a node-local server on a bridge the first pod will create."""
        loop = asyncio.get_running_loop()
        if freebind:
            tcp_sock = _freebind_socket(socket.SOCK_STREAM, host, port)
            tcp_sock.listen(128)
            udp_sock = _freebind_socket(socket.SOCK_DGRAM, host, tcp_sock.getsockname()[1])
            self._tcp = await asyncio.start_server(self._tcp_client, sock=tcp_sock)
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _UDPProtocol(self._datagrams), sock=udp_sock
            )
            return host, int(tcp_sock.getsockname()[1])
        for attempt in range(20):
            tcp = await asyncio.start_server(self._tcp_client, host, port, reuse_address=True)
            bound = int(tcp.sockets[0].getsockname()[1])
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _UDPProtocol(self._datagrams), local_addr=(host, bound)
                )
            except OSError as e:
                tcp.close()
                await tcp.wait_closed()
                if port == 0 and e.errno == errno.EADDRINUSE and attempt < 19:
                    continue  # the free TCP port is taken for UDP: pick another
                raise
            self._tcp, self._udp = tcp, transport
            return host, bound
        raise AssertionError("unreachable")

    async def run_udp(self, tg: asyncio.TaskGroup) -> None:
        """Answer datagrams in arrival order; forwarded ones run as tasks of ``tg``.
        Closes both sockets when cancelled."""
        transport = self._udp
        assert transport is not None and self._tcp is not None, "bind() first"
        try:
            while True:
                data, addr = await self._datagrams.get()
                out = self.respond(data, tcp=False)
                if isinstance(out, bytes):
                    transport.sendto(out, addr)
                elif isinstance(out, Forward):
                    if self._forwards.locked():
                        log.warning("too many forwarded questions in flight; dropping one")
                        continue
                    await self._forwards.acquire()
                    tg.create_task(self._udp_forward(out, addr, transport))
        finally:
            transport.close()
            self._tcp.close()

    async def _udp_forward(
        self, fwd: Forward, addr: Address, transport: asyncio.DatagramTransport
    ) -> None:
        try:
            transport.sendto(await self.forward(fwd, tcp=False), addr)
        except Exception:  # one failed forward must not end the server
            log.exception("forwarding %s failed", fwd.query.question)
        finally:
            self._forwards.release()

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Length-prefixed messages (RFC 1035 4.2.2), answered in order, until the client
        closes or stays idle for ``TCP_IDLE_TIMEOUT``."""
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    data = await reader.readexactly(size)
                out = self.respond(data, tcp=True)
                if isinstance(out, Forward):
                    out = await self.forward(out, tcp=True)
                if out is None:
                    break
                writer.write(len(out).to_bytes(2, "big") + out)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


IP_FREEBIND = 15  # <linux/in.h>


def _freebind_socket(kind: int, host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def serve_zone(
    client: Client,
    listen: Address,
    *,
    domain: str = "cluster.local",
    ttl: int = DEFAULT_TTL,
    upstreams: list[Address] | None = None,
    freebind: bool = False,
    on_ready: Callable[[str, int], None] | None = None,
) -> None:
    """Serve the cluster zone on ``listen`` until cancelled (the node agent runs it in its
    own loop as a node-local DNS server); raises ``OSError`` if it cannot bind."""
    services = Informer(client, SERVICES)
    slices = Informer(client, ENDPOINTSLICES)
    slices.add_index("service", service_key_of_slice)
    zone = ClusterZone(
        domain,
        services.store,
        lambda key: slices.by_index("service", key),
        ttl=ttl,
        serial=int(time.time()),
    )

    def changed(_type: str, _obj: dict[str, Any], _old: dict[str, Any] | None) -> None:
        zone.serial = max(zone.serial + 1, int(time.time()))

    services.add_handler(changed)
    slices.add_handler(changed)
    server = DNSServer(zone, upstreams, synced=lambda: services.synced and slices.synced)
    host, port = await server.bind(*listen, freebind=freebind)
    async with asyncio.TaskGroup() as tg:  # run_udp closes both sockets when cancelled
        tg.create_task(server.run_udp(tg), name="dns-udp")
        tg.create_task(services.run(), name="informer-services")
        tg.create_task(slices.run(), name="informer-endpointslices")
        await services.wait_for_sync()
        await slices.wait_for_sync()
        if on_ready is not None:
            on_ready(host, port)


class _UDPProtocol(asyncio.DatagramProtocol):
    """Queues datagrams for ``DNSServer.run_udp``; drops them when the queue is full."""

    def __init__(self, queue: asyncio.Queue[tuple[bytes, Address]]) -> None:
        self.queue = queue

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait((data, (str(addr[0]), int(addr[1]))))

    def error_received(self, exc: Exception) -> None:
        log.debug("udp: %s", exc)


# --- the command ----------------------------------------------------------------------------
class _Stopped(Exception):
    """Raised in the serving TaskGroup's body to end it (and cancel its tasks)."""


async def serve(
    client: Client, args: argparse.Namespace, upstreams: list[Address], listen: Address
) -> None:
    """Informers, zone and sockets in one TaskGroup until SIGINT/SIGTERM (or stdin EOF).

    Raises ``OSError`` when the address cannot be bound."""
    services = Informer(client, SERVICES)
    slices = Informer(client, ENDPOINTSLICES)
    slices.add_index("service", service_key_of_slice)
    zone = ClusterZone(
        args.domain,
        services.store,
        lambda key: slices.by_index("service", key),
        ttl=args.ttl,
        serial=int(time.time()),
    )

    def changed(_type: str, _obj: dict[str, Any], _old: dict[str, Any] | None) -> None:
        zone.serial = max(zone.serial + 1, int(time.time()))

    services.add_handler(changed)
    slices.add_handler(changed)
    server = DNSServer(zone, upstreams, synced=lambda: services.synced and slices.synced)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def announce(host: str, port: int) -> None:
        while not (services.synced and slices.synced):
            try:
                await services.wait_for_sync(timeout=60)
                await slices.wait_for_sync(timeout=60)
            except TimeoutError:
                log.warning("still waiting for the first list of Services and EndpointSlices")
        print(f"corral dns: serving {args.domain} on {host}:{port} (udp, tcp)", flush=True)
        log.info("serving %s on %s:%s (udp, tcp)", zone.origin, host, port)

    async def stdin_watch() -> None:
        await stdin_eof()
        stop.set()

    try:
        host, port = await server.bind(*listen)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(server.run_udp(tg), name="dns-udp")
            tg.create_task(services.run(), name="informer-services")
            tg.create_task(slices.run(), name="informer-endpointslices")
            tg.create_task(announce(host, port), name="dns-announce")
            if args.exit_on_stdin_eof:
                tg.create_task(stdin_watch(), name="dns-stdin")
            await stop.wait()
            raise _Stopped
    except* _Stopped:
        pass
    finally:
        await client.close()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="corral dns", description="Serve cluster DNS from Services and EndpointSlices."
    )
    p.add_argument("--kubeconfig", required=True, help="how to reach the API server")
    add_server_flag(p)
    p.add_argument(
        "--listen",
        default="127.0.0.1:53",
        metavar="IP:PORT",
        help="address for UDP and TCP (port 0: any free port; default 127.0.0.1:53)",
    )
    p.add_argument("--domain", default="cluster.local", help="the cluster domain")
    p.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="IP[:PORT]",
        help="server for names outside the cluster domain (repeatable; none: REFUSED)",
    )
    p.add_argument("--ttl", type=int, default=DEFAULT_TTL, help="answer TTL in seconds")
    p.add_argument("--exit-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--log-level", default="info", type=str.lower, choices=["debug", "info", "warning", "error"]
    )
    return p


def main(argv: list[str]) -> int:
    """``corral dns --kubeconfig FILE [--listen IP:PORT] ...``; exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        listen = parse_hostport(args.listen, 53)
        upstreams = [parse_hostport(u, 53) for u in args.upstream]
    except ValueError as e:
        print(f"corral dns: {e}", file=sys.stderr)
        return 2
    if not 0 <= args.ttl <= 3600:
        print("corral dns: --ttl must be 0..3600", file=sys.stderr)
        return 2
    try:
        client = Client.from_kubeconfig(
            args.kubeconfig, servers=getattr(args, "server", ""), user_agent="corral-dns"
        )
    except (OSError, KeyError, StopIteration, TypeError) as e:
        print(f"corral dns: cannot read {args.kubeconfig}: {e}", file=sys.stderr)
        return 2
    try:
        eventloop.run(lambda: serve(client, args, upstreams, listen))
    except OSError as e:
        print(f"corral dns: cannot listen on {args.listen}: {e}", file=sys.stderr)
        return 1
    return 0
