"""The cluster zone's name -> records logic, from plain Service and EndpointSlice dicts."""

from __future__ import annotations

from typing import Any

import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from corral.dns.records import ClusterZone, service_key_of_slice

Obj = dict[str, Any]


def _svc(name: str, ns: str = "default", **spec: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def _slice(svc: str, ns: str, endpoints: list[Obj], ports: list[Obj], family: str = "IPv4") -> Obj:
    return {
        "metadata": {
            "name": f"{svc}-abcde",
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": family,
        "endpoints": endpoints,
        "ports": ports,
    }


SERVICES = [
    _svc(
        "web",
        clusterIP="10.96.0.20",
        clusterIPs=["10.96.0.20"],
        ports=[
            {"name": "http", "port": 80, "protocol": "TCP"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ],
    ),
    _svc("db", clusterIP="None", ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]),
    _svc("all", clusterIP="None", publishNotReadyAddresses=True, ports=[{"port": 1}]),
    _svc("ext", type="ExternalName", externalName="example.org"),
    _svc("v6", clusterIP="fd00::20", clusterIPs=["fd00::20"], ports=[{"port": 80}]),
    _svc("pending", ns="other"),  # no ClusterIP yet
]
SLICES = [
    _slice(
        "db",
        "default",
        [
            {"addresses": ["10.88.0.5"], "hostname": "db-0", "conditions": {"ready": True}},
            {"addresses": ["10.88.0.6"], "hostname": "db-1"},  # no condition: ready
            {"addresses": ["10.88.0.7"], "hostname": "db-2", "conditions": {"ready": False}},
            {"addresses": ["10.88.0.8"]},  # no hostname: known by its dashed IP
        ],
        [{"name": "pg", "port": 15432, "protocol": "TCP"}],
    ),
    _slice("all", "default", [{"addresses": ["10.88.1.1"], "conditions": {"ready": False}}], []),
    _slice("web", "default", [{"addresses": ["10.88.2.2"]}], [{"name": "http", "port": 8080}]),
]


def _zone() -> ClusterZone:
    services = {f"{s['metadata']['namespace']}/{s['metadata']['name']}": s for s in SERVICES}
    index: dict[str, list[Obj]] = {}
    for sl in SLICES:
        for key in service_key_of_slice(sl):
            index.setdefault(key, []).append(sl)
    return ClusterZone("cluster.local", services, lambda k: index.get(k, []), serial=42)


def _texts(rrsets: list[Any]) -> set[str]:
    return {f"{r.name} {dns.rdatatype.to_text(r.rdtype)} {rd}" for r in rrsets for rd in r}


S = ".default.svc.cluster.local."
CASES = [
    # (id, qname, qtype, rcode, answer records)
    ("clusterip-a", "web" + S, "A", "NOERROR", {f"web{S} A 10.96.0.20"}),
    ("clusterip-aaaa-nodata", "web" + S, "AAAA", "NOERROR", set()),
    ("case-insensitive", "WEB.Default.SVC.cluster.local.", "A", "NOERROR",
     {"WEB.Default.SVC.cluster.local. A 10.96.0.20"}),
    ("ipv6-clusterip", "v6" + S, "AAAA", "NOERROR", {f"v6{S} AAAA fd00::20"}),
    ("headless-ready-set", "db" + S, "A", "NOERROR",
     {f"db{S} A 10.88.0.5", f"db{S} A 10.88.0.6", f"db{S} A 10.88.0.8"}),
    ("headless-publish-not-ready", "all" + S, "A", "NOERROR", {f"all{S} A 10.88.1.1"}),
    ("endpoint-hostname", "db-0.db" + S, "A", "NOERROR", {f"db-0.db{S} A 10.88.0.5"}),
    ("endpoint-dashed-ip", "10-88-0-8.db" + S, "A", "NOERROR", {f"10-88-0-8.db{S} A 10.88.0.8"}),
    ("endpoint-not-ready", "db-2.db" + S, "A", "NXDOMAIN", set()),
    ("srv-named-port", "_http._tcp.web" + S, "SRV", "NOERROR", {f"_http._tcp.web{S} SRV 0 100 80 web{S}"}),
    ("srv-udp-port", "_dns._udp.web" + S, "SRV", "NOERROR", {f"_dns._udp.web{S} SRV 0 100 53 web{S}"}),
    ("srv-wrong-proto", "_http._udp.web" + S, "SRV", "NXDOMAIN", set()),
    ("srv-unknown-port", "_nope._tcp.web" + S, "SRV", "NXDOMAIN", set()),
    ("srv-name-asked-a", "_http._tcp.web" + S, "A", "NOERROR", set()),
    ("srv-headless", "_pg._tcp.db" + S, "SRV", "NOERROR", {
        f"_pg._tcp.db{S} SRV 0 33 15432 db-0.db{S}",
        f"_pg._tcp.db{S} SRV 0 33 15432 db-1.db{S}",
        f"_pg._tcp.db{S} SRV 0 33 15432 10-88-0-8.db{S}",
    }),
    ("srv-service-name", "web" + S, "SRV", "NOERROR",
     {f"web{S} SRV 0 100 80 web{S}", f"web{S} SRV 0 100 53 web{S}"}),
    ("proto-ent", "_tcp.web" + S, "A", "NOERROR", set()),
    ("external-name", "ext" + S, "A", "NOERROR", {f"ext{S} CNAME example.org."}),
    ("no-cluster-ip-yet", "pending.other.svc.cluster.local.", "A", "NOERROR", set()),
    ("unknown-service", "nope" + S, "A", "NXDOMAIN", set()),
    ("unknown-namespace", "web.nope.svc.cluster.local.", "A", "NXDOMAIN", set()),
    ("namespace-ent", "default.svc.cluster.local.", "A", "NOERROR", set()),
    ("empty-namespace", "nope.svc.cluster.local.", "A", "NXDOMAIN", set()),
    ("svc-ent", "svc.cluster.local.", "A", "NOERROR", set()),
    ("too-deep", "a.b.db" + S, "A", "NXDOMAIN", set()),
    ("outside-svc-tree", "foo.cluster.local.", "A", "NXDOMAIN", set()),
    ("apex-soa", "cluster.local.", "SOA", "NOERROR",
     {"cluster.local. SOA ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 5"}),
    ("apex-ns", "cluster.local.", "NS", "NOERROR", {"cluster.local. NS ns.dns.cluster.local."}),
    ("pod-insecure", "10-88-0-9.default.pod.cluster.local.", "A", "NOERROR",
     {"10-88-0-9.default.pod.cluster.local. A 10.88.0.9"}),
    ("pod-bad-ip", "10-88-0.default.pod.cluster.local.", "A", "NXDOMAIN", set()),
    ("ptr-clusterip", "20.0.96.10.in-addr.arpa.", "PTR", "NOERROR",
     {f"20.0.96.10.in-addr.arpa. PTR web{S}"}),
    ("ptr-endpoint", "5.0.88.10.in-addr.arpa.", "PTR", "NOERROR",
     {f"5.0.88.10.in-addr.arpa. PTR db-0.db{S}"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("qname", "qtype", "rcode", "records"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_resolve(qname: str, qtype: str, rcode: str, records: set[str]) -> None:
    answer = _zone().resolve(dns.name.from_text(qname), dns.rdatatype.from_text(qtype))
    assert answer is not None
    assert dns.rcode.to_text(answer.rcode) == rcode
    assert _texts(answer.answer) == records
    if not records:  # negative answers carry the zone's SOA, as CoreDNS writes it
        [soa] = answer.authority
        assert soa.name == dns.name.from_text("cluster.local.")
        assert soa.ttl == 5 and soa[0].minimum == 5
    else:
        assert all(r.ttl == 5 for r in answer.answer)


NOT_OURS = [
    ("other-domain-a", "example.org.", "A"),
    ("domain-suffix-lookalike", "web.default.svc.cluster.localhost.", "A"),
    ("ptr-unknown-ip", "9.9.9.9.in-addr.arpa.", "PTR"),
    ("a-in-reverse-zone", "20.0.96.10.in-addr.arpa.", "A"),
]


@pytest.mark.parametrize(
    ("qname", "qtype"), [c[1:] for c in NOT_OURS], ids=[c[0] for c in NOT_OURS]
)
def test_names_outside_the_zone_are_not_answered(qname: str, qtype: str) -> None:
    assert _zone().resolve(dns.name.from_text(qname), dns.rdatatype.from_text(qtype)) is None


def test_srv_answer_carries_target_addresses() -> None:
    answer = _zone().resolve(dns.name.from_text("_pg._tcp.db" + S), dns.rdatatype.SRV)
    assert answer is not None
    assert _texts(answer.additional) == {
        f"db-0.db{S} A 10.88.0.5",
        f"db-1.db{S} A 10.88.0.6",
        f"10-88-0-8.db{S} A 10.88.0.8",
    }


def test_custom_domain_and_ttl() -> None:
    svc = _svc("web", clusterIP="10.96.0.1", clusterIPs=["10.96.0.1"])
    zone = ClusterZone("corp.example", {"default/web": svc}, lambda k: [], ttl=30)
    answer = zone.resolve(dns.name.from_text("web.default.svc.corp.example."), dns.rdatatype.A)
    assert answer is not None and answer.answer[0].ttl == 30
    assert zone.resolve(dns.name.from_text("web.default.svc.cluster.local."), 1) is None
