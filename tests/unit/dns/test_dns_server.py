"""``DNSServer.respond``: wire in, wire (or a forward) out, without sockets."""

from __future__ import annotations

from typing import Any

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from corral.dns.records import ClusterZone
from corral.dns.server import DNSServer, Forward, parse_hostport

Obj = dict[str, Any]

# a headless service with 100 ready endpoints: too large for a 512-byte UDP answer
BIG = {
    "metadata": {"name": "big", "namespace": "default"},
    "spec": {"clusterIP": "None", "ports": [{"port": 80}]},
}
BIG_SLICE = {
    "metadata": {"name": "big-1", "namespace": "default"},
    "addressType": "IPv4",
    "endpoints": [{"addresses": [f"10.88.1.{i}"]} for i in range(1, 101)],
}
WEB = {
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"]},
}


def _server(**kw: Any) -> DNSServer:
    services = {"default/big": BIG, "default/web": WEB}
    zone = ClusterZone(
        "cluster.local", services, lambda k: [BIG_SLICE] if k == "default/big" else []
    )
    return DNSServer(zone, **kw)


def _ask(
    server: DNSServer, name: str, rdtype: str = "A", *, tcp: bool = False, **kw: Any
) -> dns.message.Message:
    q = dns.message.make_query(name, dns.rdatatype.from_text(rdtype), **kw)
    out = server.respond(q.to_wire(), tcp=tcp)
    assert isinstance(out, bytes)
    r = dns.message.from_wire(out)
    assert r.id == q.id and r.flags & dns.flags.QR
    return r


def test_answer_is_authoritative_and_echoes_the_question() -> None:
    r = _ask(_server(), "web.default.svc.cluster.local.")
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert not r.flags & dns.flags.RA  # no upstream: no recursion offered
    assert [str(q.name) for q in r.question] == ["web.default.svc.cluster.local."]
    assert [rd.to_text() for rd in r.answer[0]] == ["10.96.0.9"]


@pytest.mark.parametrize(
    ("kw", "truncated", "count"),
    [
        ({}, True, 0),  # plain UDP: 512 bytes
        ({"use_edns": 0, "payload": 4096}, False, 100),  # EDNS: room for all of them
    ],
    ids=["udp-512-truncated", "udp-edns-fits"],
)
def test_udp_size_limit(kw: dict[str, Any], truncated: bool, count: int) -> None:
    r = _ask(_server(), "big.default.svc.cluster.local.", **kw)
    assert bool(r.flags & dns.flags.TC) is truncated
    assert sum(len(rrs) for rrs in r.answer) == count


def test_tcp_has_no_512_limit() -> None:
    r = _ask(_server(), "big.default.svc.cluster.local.", tcp=True)
    assert not r.flags & dns.flags.TC and len(r.answer[0]) == 100


def test_outside_the_domain() -> None:
    assert _ask(_server(), "example.org.").rcode() == dns.rcode.REFUSED
    q = dns.message.make_query("example.org.", "A")
    out = _server(upstreams=[("127.0.0.1", 5353)]).respond(q.to_wire(), tcp=False)
    assert isinstance(out, Forward) and out.query.id == q.id


def test_servfail_until_the_caches_sync() -> None:
    r = _ask(_server(synced=lambda: False), "web.default.svc.cluster.local.")
    assert r.rcode() == dns.rcode.SERVFAIL


def test_bad_messages() -> None:
    server = _server()
    assert server.respond(b"\x01\x02", tcp=False) is None  # not even a header
    garbage = b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05abc"
    out = server.respond(garbage, tcp=False)
    assert isinstance(out, bytes)
    r = dns.message.from_wire(out)
    assert r.id == 0xABCD and r.rcode() == dns.rcode.FORMERR
    q = dns.message.make_query("web.default.svc.cluster.local.", "A")
    q.set_opcode(dns.opcode.NOTIFY)
    out = server.respond(q.to_wire(), tcp=False)
    assert isinstance(out, bytes)
    assert dns.message.from_wire(out).rcode() == dns.rcode.NOTIMP


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("127.0.0.1:53", ("127.0.0.1", 53)),
        ("10.0.0.1", ("10.0.0.1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("::1", ("::1", 53)),
        (":5353", ("0.0.0.0", 5353)),
    ],
    ids=["ipv4-port", "ipv4", "ipv6-port", "ipv6", "any"],
)
def test_parse_hostport(text: str, want: tuple[str, int]) -> None:
    assert parse_hostport(text, 53) == want


def test_parse_hostport_rejects_bad_ports() -> None:
    with pytest.raises(ValueError):
        parse_hostport("127.0.0.1:x", 53)
    with pytest.raises(ValueError):
        parse_hostport("127.0.0.1:70000", 53)
