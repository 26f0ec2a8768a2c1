"""The cluster zone: which records a name has, computed from Services and EndpointSlices.

``ClusterZone.resolve(qname, qtype)`` is pure: it reads two caches (Services by
``namespace/name`` and a function giving a Service's EndpointSlices) and returns an
``Answer`` (rcode and the answer, authority and additional sections as dnspython
RRsets), or ``None`` when the name is not ours (outside the cluster domain and not a
reverse name we know), which the server forwards upstream or refuses. It never does I/O,
so it is unit-tested with plain dicts; the server (``server.py``) feeds it informer
stores.

The names follow the Kubernetes DNS specification, as CoreDNS's kubernetes plugin
serves them (``<domain>`` is ``cluster.local`` by default)::

    <svc>.<ns>.svc.<domain>               A/AAAA  ClusterIP(s); headless: ready endpoints
                                          CNAME   spec.externalName (type ExternalName)
                                          SRV     one per port (like CoreDNS)
    _<port>._<proto>.<svc>.<ns>.svc.<domain>
                                          SRV     named ports; target <svc>.<ns>.svc.<domain>,
                                                  headless: one per endpoint, target
                                                  <endpoint>.<svc>.<ns>.svc.<domain>
    <endpoint>.<svc>.<ns>.svc.<domain>    A/AAAA  an endpoint, named by its hostname
                                                  (StatefulSet pods) or its dashed IP
    <a-b-c-d>.<ns>.pod.<domain>           A       the IP in the name (CoreDNS "pods insecure")
    <reversed ip>.in-addr.arpa / ip6.arpa PTR     ClusterIPs and headless endpoints we know

Unknown names in the domain are NXDOMAIN, names that exist without records of the asked
type are NODATA (NOERROR, empty answer: a resolver asking AAAA for an IPv4 Service must not
conclude the name is gone); both carry the zone's SOA in the authority section as CoreDNS
writes it (``ns.dns.<domain>``, ``hostmaster.<domain>``, refresh 7200, retry 1800, expire
86400, minimum = the answer TTL, SOA TTL = min(TTL, 300)). The answer TTL is 5 s, the
kubernetes plugin's default; so negative answers are cached 5 s too. (Old CoreDNS releases
hard-coded 30 for the SOA; the current plugin uses its ``ttl``.)

Not-ready endpoints are left out unless the Service sets ``publishNotReadyAddresses``; an
endpoint whose ``conditions.ready`` is absent counts as ready (the EndpointSlice API's rule).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset

Obj = dict[str, Any]

#: the kubernetes plugin's default answer TTL (seconds)
DEFAULT_TTL = 5
#: the label that ties an EndpointSlice to its Service
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

_IN = dns.rdataclass.IN
_A = dns.rdatatype.A
_AAAA = dns.rdatatype.AAAA
_SRV = dns.rdatatype.SRV
_CNAME = dns.rdatatype.CNAME
_SOA = dns.rdatatype.SOA
_NS = dns.rdatatype.NS
_PTR = dns.rdatatype.PTR
_ANY = dns.rdatatype.ANY
_REVERSE_ZONES = (dns.reversename.ipv4_reverse_domain, dns.reversename.ipv6_reverse_domain)


@dataclass
class Answer:
    """What to put in a response: rcode and the three record sections."""

    rcode: dns.rcode.Rcode = dns.rcode.NOERROR
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)


@dataclass(frozen=True)
class Endpoint:
    """One address of a Service's EndpointSlices, with the DNS label it is known by."""

    ip: str
    label: str


def service_key_of_slice(obj: Obj) -> list[str]:
    """``namespace/service`` of an EndpointSlice (its service-name label), for an index."""
    meta = obj.get("metadata") or {}
    svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [f"{meta.get('namespace', '')}/{svc}"] if svc else []


def _dashed(ip: str) -> str:
    """An IP as one DNS label: 10.88.0.5 -> 10-88-0-5, fd00::1 -> fd00--1."""
    return ip.replace(".", "-").replace(":", "-")


def _ip_type(ip: str) -> dns.rdatatype.RdataType | None:
    try:
        return _A if ipaddress.ip_address(ip).version == 4 else _AAAA
    except ValueError:
        return None


class ClusterZone:
    """The records of one cluster domain, read from caches at query time.

    ``services`` maps ``namespace/name`` to Service objects (an informer's store);
    ``slices_for(key)`` gives the EndpointSlices of the Service ``key`` (an informer index).
    Neither is mutated. ``serial`` is the SOA serial; the server bumps it on changes.
    """

    def __init__(
        self,
        domain: str,
        services: Mapping[str, Obj],
        slices_for: Callable[[str], Iterable[Obj]],
        *,
        ttl: int = DEFAULT_TTL,
        serial: int = 1,
    ) -> None:
        self.origin = dns.name.from_text(domain.strip(".") + ".")
        self.services = services
        self.slices_for = slices_for
        self.ttl = ttl
        self.serial = serial

    # --- entry point --------------------------------------------------------------------
    def resolve(self, qname: dns.name.Name, qtype: int) -> Answer | None:
        """Records for one question; ``None`` when the name is not this zone's."""
        if qname.is_subdomain(self.origin):
            labels = [
                lab.decode("ascii", "replace").lower()
                for lab in qname.relativize(self.origin).labels
            ]
            labels.reverse()  # from the domain outwards: ["svc", ns, svc, ...]
            return self._in_zone(qname, qtype, labels)
        if qtype in (_PTR, _ANY) and any(qname.is_subdomain(z) for z in _REVERSE_ZONES):
            return self._reverse(qname)
        return None

    # --- helpers building answers ----------------------------------------------------------
    def soa(self) -> dns.rrset.RRset:
        text = (
            f"ns.dns.{self.origin} hostmaster.{self.origin} {self.serial} 7200 1800 86400 "
            f"{self.ttl}"
        )
        return self._rrset(self.origin, _SOA, [text], ttl=min(self.ttl, 300))

    def _rrset(
        self,
        name: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        texts: Iterable[str],
        ttl: int | None = None,
    ) -> dns.rrset.RRset:
        rrs = dns.rrset.RRset(name, _IN, rdtype)
        for t in texts:
            rrs.add(dns.rdata.from_text(_IN, rdtype, t), self.ttl if ttl is None else ttl)
        return rrs

    def _negative(self, rcode: dns.rcode.Rcode) -> Answer:
        return Answer(rcode, authority=[self.soa()])

    def _addresses(
        self, name: dns.name.Name, qtype: int, ips: Iterable[str]
    ) -> list[dns.rrset.RRset]:
        """A and/or AAAA RRsets for ``ips`` as ``qtype`` asks (ANY: both)."""
        out = []
        for rdtype in (_A, _AAAA):
            if qtype not in (rdtype, _ANY):
                continue
            chosen = sorted({ip for ip in ips if _ip_type(ip) == rdtype})
            if chosen:
                out.append(self._rrset(name, rdtype, chosen))
        return out

    def _name(self, *labels: str) -> dns.name.Name:
        return dns.name.Name([lab.encode() for lab in labels]).concatenate(self.origin)

    # --- the zone -------------------------------------------------------------------------
    def _in_zone(self, qname: dns.name.Name, qtype: int, labels: list[str]) -> Answer:
        if not labels:  # the apex
            if qtype in (_SOA, _ANY):
                return Answer(answer=[self.soa()])
            if qtype == _NS:
                return Answer(answer=[self._rrset(self.origin, _NS, [f"ns.dns.{self.origin}"])])
            return self._negative(dns.rcode.NOERROR)
        if labels[0] == "svc":
            return self._svc_tree(qname, qtype, labels[1:])
        if labels[0] == "pod":
            return self._pod(qname, qtype, labels[1:])
        return self._negative(dns.rcode.NXDOMAIN)

    def _pod(self, qname: dns.name.Name, qtype: int, labels: list[str]) -> Answer:
        """``<a-b-c-d>.<ns>.pod.<domain>``: the address written in the name."""
        if len(labels) < 2:
            has_ns = len(labels) == 0 or self._namespace_known(labels[0])
            return self._negative(dns.rcode.NOERROR if has_ns else dns.rcode.NXDOMAIN)
        if len(labels) != 2:
            return self._negative(dns.rcode.NXDOMAIN)
        text = labels[1]
        ip = next(
            (c for c in (text.replace("-", "."), text.replace("-", ":")) if _ip_type(c)), None
        )
        if ip is None:
            return self._negative(dns.rcode.NXDOMAIN)
        rrsets = self._addresses(qname, qtype, [str(ipaddress.ip_address(ip))])
        return Answer(answer=rrsets) if rrsets else self._negative(dns.rcode.NOERROR)

    def _namespace_known(self, ns: str) -> bool:
        """A namespace "exists" in DNS while it holds a Service (an empty non-terminal)."""
        prefix = ns + "/"
        return any(k.startswith(prefix) for k in self.services)

    def _svc_tree(self, qname: dns.name.Name, qtype: int, labels: list[str]) -> Answer:
        if not labels:  # svc.<domain>
            return self._negative(dns.rcode.NOERROR)
        ns = labels[0]
        if len(labels) == 1:
            known = self._namespace_known(ns)
            return self._negative(dns.rcode.NOERROR if known else dns.rcode.NXDOMAIN)
        svc = self.services.get(f"{ns}/{labels[1]}")
        if svc is None:
            return self._negative(dns.rcode.NXDOMAIN)
        rest = labels[2:]
        if not rest:
            return self._service(qname, qtype, svc)
        if rest[0].startswith("_"):
            return self._srv_name(qname, qtype, svc, rest)
        if len(rest) == 1:
            return self._endpoint(qname, qtype, svc, rest[0])
        return self._negative(dns.rcode.NXDOMAIN)

    # --- one Service ----------------------------------------------------------------------
    def _key(self, svc: Obj) -> str:
        meta = svc["metadata"]
        return f"{meta.get('namespace', '')}/{meta['name']}"

    def _service_name(self, svc: Obj) -> dns.name.Name:
        meta = svc["metadata"]
        return self._name(meta["name"], meta.get("namespace", ""), "svc")

    @staticmethod
    def _headless(svc: Obj) -> bool:
        return (svc.get("spec") or {}).get("clusterIP") == "None"

    @staticmethod
    def _cluster_ips(svc: Obj) -> list[str]:
        spec = svc.get("spec") or {}
        ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
        return [ip for ip in ips if ip and ip != "None"]

    def endpoints(self, svc: Obj) -> list[Endpoint]:
        """The Service's endpoints DNS publishes: ready ones (all with
        ``publishNotReadyAddresses``), each address once, in a stable order."""
        publish_all = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
        seen: dict[str, Endpoint] = {}
        for sl in self.slices_for(self._key(svc)):
            if sl.get("addressType") not in ("IPv4", "IPv6"):
                continue  # FQDN slices are not served (deprecated upstream too)
            for ep in sl.get("endpoints") or ():
                ready = (ep.get("conditions") or {}).get("ready")
                if ready is False and not publish_all:
                    continue
                for ip in ep.get("addresses") or ():
                    if ip not in seen and _ip_type(ip) is not None:
                        seen[ip] = Endpoint(ip, ep.get("hostname") or _dashed(ip))
        return sorted(seen.values(), key=lambda e: (e.label, e.ip))

    def _service(self, qname: dns.name.Name, qtype: int, svc: Obj) -> Answer:
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName" and spec.get("externalName"):
            target = dns.name.from_text(str(spec["externalName"]).rstrip(".") + ".")
            return Answer(answer=[self._rrset(qname, _CNAME, [target.to_text()])])
        if qtype == _SRV:
            return self._srv(qname, svc, port_name=None, proto=None)
        headless = self._headless(svc)
        ips = [e.ip for e in self.endpoints(svc)] if headless else self._cluster_ips(svc)
        rrsets = self._addresses(qname, qtype, ips)
        return Answer(answer=rrsets) if rrsets else self._negative(dns.rcode.NOERROR)

    def _endpoint(self, qname: dns.name.Name, qtype: int, svc: Obj, label: str) -> Answer:
        ips = [e.ip for e in self.endpoints(svc) if e.label == label]
        if not ips:
            return self._negative(dns.rcode.NXDOMAIN)
        rrsets = self._addresses(qname, qtype, ips)
        return Answer(answer=rrsets) if rrsets else self._negative(dns.rcode.NOERROR)

    def _srv_name(self, qname: dns.name.Name, qtype: int, svc: Obj, rest: list[str]) -> Answer:
        """``_<port>._<proto>.<svc>...`` (SRV) or ``_<proto>.<svc>...`` (an empty
        non-terminal when some port has that protocol)."""
        ports = (svc.get("spec") or {}).get("ports") or []
        protos = {str(p.get("protocol") or "TCP").lower() for p in ports}
        if len(rest) == 1:
            exists = rest[0][1:] in protos
            return self._negative(dns.rcode.NOERROR if exists else dns.rcode.NXDOMAIN)
        if len(rest) != 2 or not rest[1].startswith("_"):
            return self._negative(dns.rcode.NXDOMAIN)
        port_name, proto = rest[1][1:], rest[0][1:]
        answer = self._srv(qname, svc, port_name=port_name, proto=proto)
        if not answer.answer:
            return self._negative(dns.rcode.NXDOMAIN)
        if qtype not in (_SRV, _ANY):
            return self._negative(dns.rcode.NOERROR)
        return answer

    def _srv(
        self, qname: dns.name.Name, svc: Obj, *, port_name: str | None, proto: str | None
    ) -> Answer:
        """SRV records for the Service's ports matching ``port_name``/``proto`` (``None``:
        any port, named or not, as CoreDNS answers an SRV query for the service name)."""

        def matches(p: Obj) -> bool:
            if proto is not None and str(p.get("protocol") or "TCP").lower() != proto:
                return False
            return port_name is None or str(p.get("name") or "").lower() == port_name

        spec_ports = [p for p in (svc.get("spec") or {}).get("ports") or () if matches(p)]
        if not spec_ports:
            return self._negative(dns.rcode.NOERROR)
        svc_name = self._service_name(svc)
        srv = dns.rrset.RRset(qname, _IN, _SRV)
        extra: list[dns.rrset.RRset] = []
        if not self._headless(svc):
            for p in spec_ports:
                srv.add(dns.rdata.from_text(_IN, _SRV, f"0 100 {p['port']} {svc_name}"), self.ttl)
            extra = self._addresses(svc_name, _ANY, self._cluster_ips(svc))
        else:
            wanted = {
                (str(p.get("name") or ""), str(p.get("protocol") or "TCP")) for p in spec_ports
            }
            eps = self.endpoints(svc)
            ports = sorted(
                {
                    int(sp["port"])
                    for sl in self.slices_for(self._key(svc))
                    for sp in sl.get("ports") or ()
                    if sp.get("port") is not None
                    and (str(sp.get("name") or ""), str(sp.get("protocol") or "TCP")) in wanted
                }
            )
            weight = max(1, 100 // max(1, len(eps) * len(ports)))
            for e in eps:
                target = dns.name.Name([e.label.encode()]).concatenate(svc_name)
                for port in ports:
                    srv.add(dns.rdata.from_text(_IN, _SRV, f"0 {weight} {port} {target}"), self.ttl)
                extra.extend(self._addresses(target, _ANY, [e.ip]))
            if not ports:
                return self._negative(dns.rcode.NOERROR)
        return Answer(answer=[srv], additional=extra)

    # --- reverse names --------------------------------------------------------------------
    def _reverse(self, qname: dns.name.Name) -> Answer | None:
        """PTR for a ClusterIP or a headless endpoint we know; ``None`` otherwise (so the
        question goes upstream, like CoreDNS's ``fallthrough in-addr.arpa ip6.arpa``).
        A scan over the Services: reverse look-ups are rare."""
        try:
            ip = str(ipaddress.ip_address(dns.reversename.to_address(qname)))
        except (dns.exception.DNSException, ValueError):
            return None
        for svc in self.services.values():
            if ip in self._cluster_ips(svc):
                return Answer(answer=[self._rrset(qname, _PTR, [str(self._service_name(svc))])])
            if self._headless(svc):
                for e in self.endpoints(svc):
                    if e.ip == ip:
                        name = dns.name.Name([e.label.encode()]).concatenate(
                            self._service_name(svc)
                        )
                        return Answer(answer=[self._rrset(qname, _PTR, [str(name)])])
        return None
