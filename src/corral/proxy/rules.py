"""The Service data path as data: Services + EndpointSlices -> kube-proxy's iptables rules.

Pure functions, no I/O; ``proxier.py`` applies what they return and ``userspace.py``
relays by the same ``ServicePort`` table, so both modes follow one reading of the API.

Why iptables-restore and not nftables: this is kube-proxy's iptables mode, rule for rule
(chain names, hashes, comments, the 0x4000 masquerade mark, ``-m statistic --mode random``
and ``-m recent`` session affinity), so its behaviour and its ``iptables-save`` look are
the ones every Kubernetes operator and tool knows. ``iptables-restore --noflush`` applies
all our chains of both tables in one atomic commit while leaving every other rule on the
host alone (a ``:CHAIN`` line flushes only that chain); on the nf_tables backend
(``iptables-nft``) the same text is one nftables transaction.

The ruleset (``nat``)::

    PREROUTING, OUTPUT --> KUBE-SERVICES --(clusterIP:port)--> KUBE-SVC-<h>
                               |--(LB ingress IP:port)--> KUBE-EXT-<h>
                               |     (loadBalancerSourceRanges: KUBE-FW-<h> --(allowed src)--> KUBE-EXT-<h>)
                               |  (last) dst-type LOCAL --> KUBE-NODEPORTS
    KUBE-NODEPORTS --(nodePort)--> KUBE-EXT-<h> --> KUBE-MARK-MASQ, KUBE-SVC-<h>
        externalTrafficPolicy Local: KUBE-EXT-<h> --> [pod CIDR / src-type LOCAL: KUBE-SVC-<h>]
                                     else KUBE-SVL-<h> (this node's endpoints, no masquerade)
    KUBE-SVC-<h>: [mark masq if from outside the pod CIDR]
                  [affinity: -m recent --rcheck per endpoint]
                  statistic random 1/n, 1/(n-1), ... --> KUBE-SEP-<h'>
    KUBE-SEP-<h'>: hairpin (src == endpoint) -> KUBE-MARK-MASQ; DNAT to ip:port
    POSTROUTING --> KUBE-POSTROUTING: MASQUERADE what carries mark 0x4000

``filter``: a Service port without endpoints is REJECTed (icmp-port-unreachable, so a
client sees "connection refused" at once) in KUBE-SERVICES (from OUTPUT and FORWARD) and,
for its nodePort, in KUBE-EXTERNAL-SERVICES (from INPUT and FORWARD). With
``externalTrafficPolicy: Local`` and no endpoint on this node, the nodePort is DROPped
there instead ("has no local endpoints"); its ClusterIP still reaches every endpoint.
A load-balancer ingress IP (``status.loadBalancer.ingress``, ``ipMode`` VIP, whatever the
Service's type, as upstream) gets the same REJECT / DROP by address in
KUBE-EXTERNAL-SERVICES; with ``loadBalancerSourceRanges`` what KUBE-FW-<h> did not pass
on is dropped in KUBE-PROXY-FIREWALL (from INPUT, OUTPUT and FORWARD).

The jumps from the built-in chains are not part of the restore text (appending them on
every sync would duplicate them); ``JUMPS`` lists them for ``proxier`` to ensure once.
Chain hashes are upstream's: base32(sha256(servicePortName + protocol [+ endpoint]))[:16].
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

MASQ_MARK = "0x4000"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_SECONDS = 10800

#: (table, built-in chain, rule spec): the jumps into our chains, ensured with -C/-I
JUMPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("nat", "PREROUTING", ("-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES")),
    ("nat", "OUTPUT", ("-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES")),
    ("nat", "POSTROUTING", ("-m", "comment", "--comment", "kubernetes postrouting rules", "-j", "KUBE-POSTROUTING")),
    ("filter", "INPUT", ("-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes externally-visible service portals", "-j", "KUBE-EXTERNAL-SERVICES")),
    ("filter", "FORWARD", ("-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES")),
    ("filter", "FORWARD", ("-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes externally-visible service portals", "-j", "KUBE-EXTERNAL-SERVICES")),
    ("filter", "FORWARD", ("-m", "comment", "--comment", "kubernetes forwarding rules", "-j", "KUBE-FORWARD")),
    ("filter", "OUTPUT", ("-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES")),
    ("filter", "INPUT", ("-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes load balancer firewall", "-j", "KUBE-PROXY-FIREWALL")),
    ("filter", "OUTPUT", ("-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes load balancer firewall", "-j", "KUBE-PROXY-FIREWALL")),
    ("filter", "FORWARD", ("-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes load balancer firewall", "-j", "KUBE-PROXY-FIREWALL")),
)  # fmt: skip

#: the chains every ruleset declares, per table
FIXED_CHAINS: dict[str, tuple[str, ...]] = {
    "filter": ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-PROXY-FIREWALL"),
    "nat": ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"),
}
OUR_PREFIXES = ("KUBE-",)


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service and where its traffic goes (only the usable endpoints)."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # TCP, UDP, SCTP
    cluster_ip: str
    port: int
    node_port: int = 0
    affinity_seconds: int = 0  # > 0: sessionAffinity ClientIP
    endpoints: tuple[Endpoint, ...] = field(default=())
    #: externalTrafficPolicy Local (NodePort/LoadBalancer): external traffic only to
    #: ``local_endpoints`` (those of ``endpoints`` on this node), source IP kept
    external_local: bool = False
    local_endpoints: tuple[Endpoint, ...] = field(default=())
    #: the VIP-mode IPv4 addresses of ``status.loadBalancer.ingress``
    lb_ips: tuple[str, ...] = field(default=())
    #: ``spec.loadBalancerSourceRanges`` (IPv4 CIDRs): only they may use ``lb_ips``
    lb_source_ranges: tuple[str, ...] = field(default=())

    @property
    def port_key(self) -> str:
        """Upstream's ServicePortName.String(): ``ns/name`` plus ``:port`` when named."""
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port_name}" if self.port_name else base

    @property
    def proto(self) -> str:
        return self.protocol.lower()

    def _hash(self, extra: str = "") -> str:
        digest = hashlib.sha256((self.port_key + self.proto + extra).encode()).digest()
        return base64.b32encode(digest).decode()[:16]

    @property
    def svc_chain(self) -> str:
        return "KUBE-SVC-" + self._hash()

    @property
    def ext_chain(self) -> str:
        return "KUBE-EXT-" + self._hash()

    @property
    def fw_chain(self) -> str:
        return "KUBE-FW-" + self._hash()

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.lb_ips)

    @property
    def svl_chain(self) -> str:
        """Upstream's servicePortPolicyLocalChainName: the same hash as KUBE-SVC."""
        return "KUBE-SVL-" + self._hash()

    def sep_chain(self, ep: Endpoint) -> str:
        return "KUBE-SEP-" + self._hash(str(ep))


# --- reading the API objects ---------------------------------------------------------------


def _usable(endpoints: list[Obj]) -> list[Obj]:
    """Ready endpoints; when none is, the serving-and-terminating ones (as upstream)."""

    def cond(ep: Obj, name: str, default: bool) -> bool:
        v = (ep.get("conditions") or {}).get(name)
        return default if v is None else bool(v)

    ready = [e for e in endpoints if cond(e, "ready", True)]
    if ready:
        return ready
    return [
        e
        for e in endpoints
        if cond(e, "serving", cond(e, "ready", True)) and cond(e, "terminating", False)
    ]


def _is_ipv4(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 4
    except ValueError:
        return False


def service_ports(
    services: Iterable[Obj], slices: Iterable[Obj], *, node_name: str = ""
) -> list[ServicePort]:
    """Every proxied port of ``services`` with its endpoints from ``slices``, sorted.

    Skipped as upstream: ExternalName and headless Services, non-IPv4 ClusterIPs and
    addresses. Endpoints are de-duplicated across the slices of one Service.
    ``node_name``: this proxy's node; endpoints whose ``nodeName`` is it are the local
    ones, used for external traffic of an ``externalTrafficPolicy: Local`` Service.
    """
    by_service: dict[tuple[str, str], list[Obj]] = {}
    for sl in slices:
        meta = sl.get("metadata") or {}
        svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if svc and sl.get("addressType") == "IPv4":
            by_service.setdefault((meta.get("namespace") or "", svc), []).append(sl)
    out: list[ServicePort] = []
    for svc in services:
        meta = svc.get("metadata") or {}
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP") or ""
        if spec.get("type") == "ExternalName" or not _is_ipv4(ip):
            continue
        ns, name = meta.get("namespace") or "", meta["name"]
        affinity = 0
        if spec.get("sessionAffinity") == "ClientIP":
            cfg = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
            affinity = int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_SECONDS)
        external_local = spec.get("externalTrafficPolicy") == "Local" and spec.get("type") in (
            "NodePort",
            "LoadBalancer",
        )
        lb_ips, lb_ranges = _load_balancer(svc)
        for p in spec.get("ports") or []:
            pname, proto = p.get("name") or "", p.get("protocol") or "TCP"
            eps: set[Endpoint] = set()
            local: set[Endpoint] = set()
            for sl in by_service.get((ns, name), []):
                sport = next(
                    (
                        sp
                        for sp in sl.get("ports") or []
                        if (sp.get("name") or "") == pname
                        and (sp.get("protocol") or "TCP") == proto
                    ),
                    None,
                )
                if sport is None or not sport.get("port"):
                    continue
                raw = sl.get("endpoints") or []
                for ep in _usable(raw):
                    eps.update(_addresses(ep, int(sport["port"])))
                if node_name:  # upstream: the local set falls back to terminating on its own
                    for ep in _usable([e for e in raw if e.get("nodeName") == node_name]):
                        local.update(_addresses(ep, int(sport["port"])))
            out.append(
                ServicePort(
                    ns,
                    name,
                    pname,
                    proto,
                    ip,
                    int(p["port"]),
                    int(p.get("nodePort") or 0),
                    affinity,
                    _sorted(eps),
                    external_local,
                    _sorted(local) if external_local else (),
                    lb_ips,
                    lb_ranges,
                )
            )
    out.sort(key=lambda sp: (sp.namespace, sp.name, sp.port_name, sp.protocol))
    return out


def _load_balancer(svc: Obj) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The Service's load-balancer VIPs (``ipMode`` Proxy ones are the load balancer's
    business, as upstream) and its source ranges, IPv4 only. Only a ``LoadBalancer``
    Service has any: a status left over from an earlier type is ignored (as kube-proxy)."""
    if (svc.get("spec") or {}).get("type") != "LoadBalancer":
        return (), ()
    lb = (svc.get("status") or {}).get("loadBalancer") or {}
    ips: list[str] = []
    for ing in lb.get("ingress") or []:
        ip = str((ing or {}).get("ip") or "")
        if _is_ipv4(ip) and (ing.get("ipMode") or "VIP") == "VIP" and ip not in ips:
            ips.append(ip)
    ranges: list[str] = []
    for text in (svc.get("spec") or {}).get("loadBalancerSourceRanges") or []:
        try:
            net = ipaddress.ip_network(str(text).strip(), strict=False)
        except ValueError:
            continue
        if net.version == 4 and str(net) not in ranges:
            ranges.append(str(net))
    return tuple(ips), tuple(ranges) if ips else ()


def _addresses(ep: Obj, port: int) -> list[Endpoint]:
    return [Endpoint(a, port) for a in ep.get("addresses") or [] if _is_ipv4(a)]


def _sorted(eps: Iterable[Endpoint]) -> tuple[Endpoint, ...]:
    return tuple(sorted(eps, key=lambda e: (ipaddress.ip_address(e.ip), e.port)))


# --- the iptables-restore text ---------------------------------------------------------------


def _q(comment: str) -> str:
    return f'"{comment}"' if any(c in comment for c in " \t'") else comment


def _match(sp: ServicePort) -> str:
    return f"-m {sp.proto} -p {sp.proto}"


@dataclass
class Ruleset:
    """The restore text and the chains it declares (``chains[table]``), for stale-chain
    removal on the next sync."""

    text: str
    chains: dict[str, set[str]]


def _balance(sp: ServicePort, chain: str, endpoints: tuple[Endpoint, ...]) -> list[str]:
    """Upstream's writeServiceToEndpointRules: affinity checks, then a random split."""
    key, out = sp.port_key, []
    if sp.affinity_seconds:
        for ep in endpoints:
            sep = sp.sep_chain(ep)
            out.append(
                f"-A {chain} -m comment --comment {_q(f'{key} -> {ep}')} -m recent --name {sep}"
                f" --mask 255.255.255.255 --rsource --rcheck --seconds {sp.affinity_seconds}"
                f" --reap -j {sep}"
            )
    n = len(endpoints)
    for i, ep in enumerate(endpoints):
        sep = sp.sep_chain(ep)
        prob = "" if i == n - 1 else f" -m statistic --mode random --probability {1 / (n - i):.10f}"
        out.append(f"-A {chain} -m comment --comment {_q(f'{key} -> {ep}')}{prob} -j {sep}")
    return out


def iptables_ruleset(
    ports: Iterable[ServicePort],
    *,
    cluster_cidr: str = "",
    stale: Mapping[str, Iterable[str]] | None = None,
    node_ip: str = "",
) -> Ruleset:
    """The complete ``iptables-restore --noflush`` input for ``ports``.

    ``cluster_cidr``: traffic to a ClusterIP from outside it is masqueraded (as
    kube-proxy's ``--cluster-cidr``); empty: all of it (``--masquerade-all``).
    ``stale``: chains of an earlier ruleset (per table) to delete when no longer declared.
    ``node_ip``: this node's address; with ``loadBalancerSourceRanges`` that include it,
    the host may reach the Service's VIPs from the VIPs themselves (as upstream).
    """
    filt: list[str] = []
    nat: list[str] = []
    chains: dict[str, list[str]] = {t: list(c) for t, c in FIXED_CHAINS.items()}
    nat += [
        f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT"'
        " -j MASQUERADE --random-fully",
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
    ]
    filt += [
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules"'
        f" -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule"'
        " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ]
    nodeports: list[str] = []
    for sp in ports:
        key, m = sp.port_key, _match(sp)
        dst = f"-d {sp.cluster_ip}/32 --dport {sp.port}"
        lb_dst = [f"-d {ip}/32 --dport {sp.port}" for ip in sp.lb_ips]
        has_external = bool(sp.endpoints) and (not sp.external_local or bool(sp.local_endpoints))
        if not sp.endpoints:
            why, target = f"{key} has no endpoints", "REJECT --reject-with icmp-port-unreachable"
            filt.append(f"-A KUBE-SERVICES -m comment --comment {_q(why)} {m} {dst} -j {target}")
        else:
            why, target = f"{key} has no local endpoints", "DROP"
        svc = sp.svc_chain
        ext = sp.ext_chain
        uses_fw = bool(sp.endpoints and sp.lb_ips and sp.lb_source_ranges)
        lb_chain = sp.fw_chain if uses_fw else ext
        if sp.endpoints:
            chains["nat"].append(svc)
            nat.append(
                f"-A KUBE-SERVICES -m comment --comment {_q(f'{key} cluster IP')} {m} {dst} -j {svc}"
            )
            nat += [
                f"-A KUBE-SERVICES -m comment --comment {_q(f'{key} loadbalancer IP')} {m} {d}"
                f" -j {lb_chain}"
                for d in lb_dst
            ]
        if uses_fw:
            filt += [
                f"-A KUBE-PROXY-FIREWALL -m comment --comment"
                f" {_q(f'{key} traffic not accepted by {sp.fw_chain}')} {m} {d} -j DROP"
                for d in lb_dst
            ]
        if not has_external:
            filt += [
                f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {_q(why)} {m} {d} -j {target}"
                for d in lb_dst
            ]
            if sp.node_port:
                filt.append(
                    f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {_q(why)}"
                    f" -m addrtype --dst-type LOCAL {m} --dport {sp.node_port} -j {target}"
                )
        if not sp.endpoints:
            continue
        src = f"! -s {cluster_cidr} " if cluster_cidr else ""
        nat.append(
            f"-A {svc} -m comment --comment {_q(f'{key} cluster IP')} {m} {dst} {src}-j KUBE-MARK-MASQ"
        )
        if sp.node_port:
            nodeports.append(
                f"-A KUBE-NODEPORTS -m comment --comment {_q(key)} {m} --dport {sp.node_port} -j {ext}"
            )
        if sp.externally_accessible:
            chains["nat"].append(ext)
            if not sp.external_local:
                nat.append(
                    f"-A {ext} -m comment --comment {_q(f'masquerade traffic for {key} external destinations')} -j KUBE-MARK-MASQ"
                )
                nat.append(f"-A {ext} -j {svc}")
            else:
                # as upstream: pods and the node itself are not "external" (they go by
                # the cluster policy); the rest keeps its source IP on a local endpoint
                if cluster_cidr:
                    nat.append(
                        f"-A {ext} -m comment --comment {_q(f'pod traffic for {key} external destinations')}"
                        f" -s {cluster_cidr} -j {svc}"
                    )
                nat.append(
                    f"-A {ext} -m comment --comment {_q(f'masquerade LOCAL traffic for {key} external destinations')}"
                    " -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ"
                )
                nat.append(
                    f"-A {ext} -m comment --comment {_q(f'route LOCAL traffic for {key} external destinations')}"
                    f" -m addrtype --src-type LOCAL -j {svc}"
                )
                if sp.local_endpoints:
                    nat.append(f"-A {ext} -j {sp.svl_chain}")
        if uses_fw:
            fw = sp.fw_chain
            chains["nat"].append(fw)
            head = f"-A {fw} -m comment --comment {_q(f'{key} loadbalancer IP')}"
            nat += [f"{head} -s {cidr} -j {ext}" for cidr in sp.lb_source_ranges]
            if node_ip and any(
                ipaddress.ip_address(node_ip) in ipaddress.ip_network(c)
                for c in sp.lb_source_ranges
            ):  # a VIP on this host answers a request from the host with itself as source
                nat += [f"{head} -s {ip}/32 -j {ext}" for ip in sp.lb_ips]
            nat.append(
                f"-A {fw} -m comment --comment"
                f" {_q(f'other traffic to {key} will be dropped by KUBE-PROXY-FIREWALL')}"
            )
        nat += _balance(sp, svc, sp.endpoints)
        if sp.externally_accessible and sp.external_local and sp.local_endpoints:
            chains["nat"].append(sp.svl_chain)
            nat += _balance(sp, sp.svl_chain, sp.local_endpoints)
        for ep in _sorted({*sp.endpoints, *sp.local_endpoints}):
            sep = sp.sep_chain(ep)
            chains["nat"].append(sep)
            recent = (
                f" -m recent --name {sep} --mask 255.255.255.255 --rsource --set"
                if sp.affinity_seconds
                else ""
            )
            nat.append(f"-A {sep} -m comment --comment {_q(key)} -s {ep.ip}/32 -j KUBE-MARK-MASQ")
            nat.append(
                f"-A {sep} -m comment --comment {_q(key)}{recent} {m} -j DNAT --to-destination {ep}"
            )
    nat += nodeports
    nat.append(
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must'
        ' be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS'
    )
    declared = {t: set(c) for t, c in chains.items()}
    gone = {t: sorted(set((stale or {}).get(t, ())) - declared[t]) for t in chains}
    lines: list[str] = []
    for table, rules in (("filter", filt), ("nat", nat)):
        lines.append(f"*{table}")
        lines += [f":{c} - [0:0]" for c in chains[table]]
        lines += [f":{c} - [0:0]" for c in gone[table]]
        lines += rules
        lines += [f"-X {c}" for c in gone[table]]
        lines.append("COMMIT")
    return Ruleset("\n".join(lines) + "\n", declared)


def cleanup_ruleset(chains: Mapping[str, Iterable[str]]) -> str:
    """Restore text that flushes and deletes ``chains`` (per table); the jumps into them
    must be gone first."""
    lines: list[str] = []
    for table in ("filter", "nat"):
        names = sorted(set(chains.get(table, ())))
        if not names:
            continue
        lines.append(f"*{table}")
        lines += [f":{c} - [0:0]" for c in names]
        lines += [f"-X {c}" for c in names]
        lines.append("COMMIT")
    return "\n".join(lines) + "\n" if lines else ""


def our_chains(save_output: str) -> dict[str, set[str]]:
    """The KUBE-* chains (per table) in ``iptables-save`` output."""
    found: dict[str, set[str]] = {}
    table = ""
    for line in save_output.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":") and table:
            name = line[1:].split(" ", 1)[0]
            if name.startswith(OUR_PREFIXES):
                found.setdefault(table, set()).add(name)
    return found
