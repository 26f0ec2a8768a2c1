"""Services + EndpointSlices -> ServicePorts -> kube-proxy's iptables-restore text (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from corral.proxy.rules import (
    Endpoint,
    ServicePort,
    cleanup_ruleset,
    iptables_ruleset,
    our_chains,
    service_ports,
)

Obj = dict[str, Any]


def svc(name: str, ip: str = "10.96.0.10", ns: str = "default", **spec: Any) -> Obj:
    spec.setdefault("ports", [{"name": "http", "port": 80, "protocol": "TCP"}])
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": ip, "type": "ClusterIP", **spec},
    }


def ep(ip: str, **conditions: bool) -> Obj:
    return {"addresses": [ip], "conditions": conditions}


def slice_(
    service: str, endpoints: list[Obj], ns: str = "default", port: int = 8080, **kw: Any
) -> Obj:
    return {
        "metadata": {
            "name": f"{service}-x",
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": kw.get("address_type", "IPv4"),
        "ports": kw.get("ports", [{"name": "http", "port": port, "protocol": "TCP"}]),
        "endpoints": endpoints,
    }


def eps_of(services: list[Obj], slices: list[Obj]) -> list[list[str]]:
    return [[str(e) for e in sp.endpoints] for sp in service_ports(services, slices)]


@pytest.mark.parametrize(
    ("services", "slices", "want"),
    [
        ([svc("a")], [], [[]]),
        (
            [svc("a")],
            [slice_("a", [ep("10.88.0.3"), ep("10.88.0.2", ready=True)])],
            [["10.88.0.2:8080", "10.88.0.3:8080"]],
        ),
        (
            [svc("a")],
            [slice_("a", [ep("10.88.0.2", ready=False), ep("10.88.0.3", ready=True)])],
            [["10.88.0.3:8080"]],
        ),
        (  # no ready endpoint: serving and terminating ones still take traffic
            [svc("a")],
            [
                slice_(
                    "a",
                    [
                        ep("10.88.0.2", ready=False, serving=True, terminating=True),
                        ep("10.88.0.3", ready=False, serving=False, terminating=True),
                        ep("10.88.0.4", ready=False, serving=True, terminating=False),
                    ],
                )
            ],
            [["10.88.0.2:8080"]],
        ),
        ([svc("a")], [slice_("b", [ep("10.88.0.2")])], [[]]),
        ([svc("a")], [slice_("a", [ep("10.88.0.2")], ns="other")], [[]]),
        (  # the slice's port must match the service port by name and protocol
            [svc("a")],
            [slice_("a", [ep("10.88.0.2")], ports=[{"name": "metrics", "port": 9}])],
            [[]],
        ),
        (
            [svc("a")],
            [slice_("a", [ep("10.88.0.2")]), slice_("a", [ep("10.88.0.2"), ep("10.88.0.9")])],
            [["10.88.0.2:8080", "10.88.0.9:8080"]],
        ),
        ([svc("a")], [slice_("a", [ep("fd00::1")], address_type="IPv6")], [[]]),
        ([svc("h", ip="None")], [slice_("h", [ep("10.88.0.2")])], []),
        ([svc("x", ip="", type="ExternalName", externalName="example.com")], [], []),
    ],
    ids=[
        "no-slices",
        "ready-nil-counts-as-ready",
        "not-ready-left-out",
        "terminating-fallback",
        "other-service",
        "other-namespace",
        "port-name-mismatch",
        "deduplicated-across-slices",
        "ipv6-slice-ignored",
        "headless-skipped",
        "externalname-skipped",
    ],
)
def test_service_ports_take_usable_endpoints(
    services: list[Obj], slices: list[Obj], want: list[list[str]]
) -> None:
    assert eps_of(services, slices) == want


def test_service_port_fields_and_affinity() -> None:
    s = svc(
        "web",
        ports=[{"port": 80, "nodePort": 30080, "targetPort": 8080}],
        type="NodePort",
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
    )
    sl = slice_("web", [ep("10.88.0.2")], ports=[{"port": 8080}])
    (sp,) = service_ports([s], [sl])
    assert sp == ServicePort(
        "default", "web", "", "TCP", "10.96.0.10", 80, 30080, 60, (Endpoint("10.88.0.2", 8080),)
    )
    assert sp.port_key == "default/web"


def test_chain_names_are_upstreams_hashes() -> None:
    # kube-proxy's own test fixtures: ns1/svc1:p80 over TCP, endpoint 10.180.0.1:80
    sp = ServicePort("ns1", "svc1", "p80", "TCP", "172.30.0.41", 80)
    assert sp.svc_chain == "KUBE-SVC-XPGD46QRK7WJZT7O"
    assert sp.sep_chain(Endpoint("10.180.0.1", 80)) == "KUBE-SEP-SXIVWICOYRO3J4NJ"


def port(n_endpoints: int, *, node_port: int = 0, affinity: int = 0) -> ServicePort:
    eps = tuple(Endpoint(f"10.88.0.{i + 2}", 8080) for i in range(n_endpoints))
    return ServicePort("ns", "web", "http", "TCP", "10.96.0.10", 80, node_port, affinity, eps)


def rules_of(text: str, table: str) -> list[str]:
    section = text.split(f"*{table}\n", 1)[1].split("COMMIT", 1)[0]
    return [ln for ln in section.splitlines() if ln.startswith("-A")]


@pytest.mark.parametrize(
    ("sp", "nat_has", "filter_has", "absent"),
    [
        (
            port(0),
            [],
            [
                '-A KUBE-SERVICES -m comment --comment "ns/web:http has no endpoints" -m tcp -p tcp'
                " -d 10.96.0.10/32 --dport 80 -j REJECT --reject-with icmp-port-unreachable"
            ],
            ["KUBE-SVC-", "statistic"],
        ),
        (
            port(0, node_port=30080),
            [],
            [
                '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns/web:http has no endpoints"'
                " -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j REJECT"
                " --reject-with icmp-port-unreachable"
            ],
            ["KUBE-EXT-"],
        ),
        (
            port(1),
            [
                '-A KUBE-SERVICES -m comment --comment "ns/web:http cluster IP" -m tcp -p tcp'
                f" -d 10.96.0.10/32 --dport 80 -j {port(1).svc_chain}",
                f"-A {port(1).sep_chain(Endpoint('10.88.0.2', 8080))} -m comment --comment"
                " ns/web:http -m tcp -p tcp -j DNAT --to-destination 10.88.0.2:8080",
            ],
            [],
            ["statistic", "REJECT", "recent"],
        ),
        (
            port(3),
            [
                "-m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-",
                "-m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-",
                '--comment "ns/web:http -> 10.88.0.4:8080" -j KUBE-SEP-',
                "-s 10.88.0.3/32 -j KUBE-MARK-MASQ",
                "-d 10.96.0.10/32 --dport 80 ! -s 10.88.0.0/16 -j KUBE-MARK-MASQ",
            ],
            [],
            ["REJECT"],
        ),
        (
            port(2, node_port=30080),
            [
                f"-A KUBE-NODEPORTS -m comment --comment ns/web:http -m tcp -p tcp --dport 30080"
                f" -j {port(2).ext_chain}",
                f"-A {port(2).ext_chain} -j {port(2).svc_chain}",
            ],
            [],
            [],
        ),
        (
            port(2, affinity=60),
            [
                "-m recent --name KUBE-SEP-",
                "--mask 255.255.255.255 --rsource --rcheck --seconds 60 --reap -j KUBE-SEP-",
                "--rsource --set -m tcp -p tcp -j DNAT --to-destination 10.88.0.2:8080",
            ],
            [],
            [],
        ),
    ],
    ids=["no-endpoints", "no-endpoints-nodeport", "one", "three-random", "nodeport", "affinity"],
)
def test_iptables_ruleset(
    sp: ServicePort, nat_has: list[str], filter_has: list[str], absent: list[str]
) -> None:
    text = iptables_ruleset([sp], cluster_cidr="10.88.0.0/16").text
    nat, filt = "\n".join(rules_of(text, "nat")), "\n".join(rules_of(text, "filter"))
    for want in nat_has:
        assert want in nat
    for want in filter_has:
        assert want in filt
    for never in absent:
        assert never not in nat + filt
    # the node-port jump is always the last rule of KUBE-SERVICES
    services = [r for r in rules_of(text, "nat") if r.startswith("-A KUBE-SERVICES")]
    assert services[-1].endswith("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")


def test_probabilities_split_evenly() -> None:
    text = iptables_ruleset([port(4)]).text
    probs = [
        ln.split("--probability ")[1].split()[0] for ln in rules_of(text, "nat") if "prob" in ln
    ]
    assert probs == ["0.2500000000", "0.3333333333", "0.5000000000"]
    # without a cluster CIDR every ClusterIP connection is masqueraded
    assert "--dport 80 -j KUBE-MARK-MASQ" in text


def test_stale_chains_are_deleted_and_cleanup_removes_all() -> None:
    first = iptables_ruleset([port(2)])
    second = iptables_ruleset([port(1)], stale=first.chains)
    gone = port(2).sep_chain(Endpoint("10.88.0.3", 8080))
    assert f":{gone} - [0:0]" in second.text and f"-X {gone}" in second.text
    assert gone not in second.chains["nat"]
    assert "-X KUBE-SERVICES" not in second.text
    text = cleanup_ruleset(second.chains)
    assert "-X KUBE-SERVICES" in text and "-X KUBE-MARK-MASQ" in text
    assert cleanup_ruleset({}) == ""


def test_our_chains_reads_iptables_save() -> None:
    save = (
        "# Generated\n*filter\n:INPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:DOCKER - [0:0]\n"
        "COMMIT\n*nat\n:KUBE-SVC-ABC - [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
    )
    assert our_chains(save) == {"filter": {"KUBE-SERVICES"}, "nat": {"KUBE-SVC-ABC"}}


# --- externalTrafficPolicy: Local ------------------------------------------------------------


def local_ep(ip: str, node: str, **conditions: bool) -> Obj:
    return {"addresses": [ip], "nodeName": node, "conditions": conditions}


@pytest.mark.parametrize(
    ("spec", "endpoints", "node", "want_local", "want_eps"),
    [
        (
            {"type": "NodePort", "externalTrafficPolicy": "Local"},
            [local_ep("10.88.0.2", "n1"), local_ep("10.88.0.3", "n2")],
            "n1",
            (True, ["10.88.0.2:8080"]),
            ["10.88.0.2:8080", "10.88.0.3:8080"],
        ),
        (
            {"type": "LoadBalancer", "externalTrafficPolicy": "Local"},
            [local_ep("10.88.0.3", "n2")],
            "n1",
            (True, []),
            ["10.88.0.3:8080"],
        ),
        (  # a terminating local endpoint serves when no local one is ready
            {"type": "NodePort", "externalTrafficPolicy": "Local"},
            [
                local_ep("10.88.0.2", "n1", ready=False, serving=True, terminating=True),
                local_ep("10.88.0.3", "n2"),
            ],
            "n1",
            (True, ["10.88.0.2:8080"]),
            ["10.88.0.3:8080"],
        ),
        (
            {"type": "NodePort", "externalTrafficPolicy": "Cluster"},
            [local_ep("10.88.0.2", "n1")],
            "n1",
            (False, []),
            ["10.88.0.2:8080"],
        ),
        (  # not externally reachable: the policy does not apply
            {"type": "ClusterIP", "externalTrafficPolicy": "Local"},
            [local_ep("10.88.0.2", "n1")],
            "n1",
            (False, []),
            ["10.88.0.2:8080"],
        ),
        (  # no node name: nothing is local
            {"type": "NodePort", "externalTrafficPolicy": "Local"},
            [local_ep("10.88.0.2", "n1")],
            "",
            (True, []),
            ["10.88.0.2:8080"],
        ),
    ],
    ids=["nodeport", "lb-none-local", "local-terminating", "cluster", "clusterip", "no-node"],
)
def test_service_ports_local_endpoints(
    spec: Obj,
    endpoints: list[Obj],
    node: str,
    want_local: tuple[bool, list[str]],
    want_eps: list[str],
) -> None:
    s = svc("web", ports=[{"name": "http", "port": 80, "nodePort": 30080}], **spec)
    (sp,) = service_ports([s], [slice_("web", endpoints)], node_name=node)
    assert (sp.external_local, [str(e) for e in sp.local_endpoints]) == want_local
    assert [str(e) for e in sp.endpoints] == want_eps


def test_svl_chain_is_upstreams_hash() -> None:
    sp = ServicePort("ns1", "svc1", "p80", "TCP", "172.30.0.41", 80)
    assert sp.svl_chain == "KUBE-SVL-XPGD46QRK7WJZT7O"  # servicePortPolicyLocalChainName


def local_port(n_endpoints: int, local: tuple[int, ...], affinity: int = 0) -> ServicePort:
    eps = tuple(Endpoint(f"10.88.0.{i + 2}", 8080) for i in range(n_endpoints))
    return ServicePort(
        "ns", "web", "http", "TCP", "10.96.0.10", 80, 30080, affinity, eps, True,
        tuple(eps[i] for i in local),
    )  # fmt: skip


LP = local_port(3, (1,))
EXT, SVC, SVL = LP.ext_chain, LP.svc_chain, LP.svl_chain
SEP = [LP.sep_chain(Endpoint(f"10.88.0.{i + 2}", 8080)) for i in range(3)]


@pytest.mark.parametrize(
    ("sp", "want", "absent"),
    [
        (
            LP,
            [
                f"-A KUBE-NODEPORTS -m comment --comment ns/web:http -m tcp -p tcp --dport 30080 -j {EXT}",
                f'-A {EXT} -m comment --comment "pod traffic for ns/web:http external destinations"'
                f" -s 10.88.0.0/16 -j {SVC}",
                f'-A {EXT} -m comment --comment "masquerade LOCAL traffic for ns/web:http external'
                ' destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ',
                f'-A {EXT} -m comment --comment "route LOCAL traffic for ns/web:http external'
                f' destinations" -m addrtype --src-type LOCAL -j {SVC}',
                f"-A {EXT} -j {SVL}",
                f'-A {SVL} -m comment --comment "ns/web:http -> 10.88.0.3:8080" -j {SEP[1]}',
                # ClusterIP traffic still balances over every endpoint
                f"-d 10.96.0.10/32 --dport 80 -j {SVC}",
                f'-A {SVC} -m comment --comment "ns/web:http -> 10.88.0.4:8080" -j {SEP[2]}',
                f":{SVL} - [0:0]",
            ],
            ["masquerade traffic for", f"-A {EXT} -j {SVC}", "has no local endpoints"],
        ),
        (
            local_port(3, ()),
            [
                '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns/web:http has no local'
                ' endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j DROP',
                f"--src-type LOCAL -j {SVC}",
                f"-d 10.96.0.10/32 --dport 80 -j {SVC}",
            ],
            ["KUBE-SVL-", f"-A {EXT} -j", "REJECT"],
        ),
        (
            local_port(3, (0, 2), affinity=60),
            [
                f'-A {SVL} -m comment --comment "ns/web:http -> 10.88.0.2:8080" -m recent --name'
                f" {SEP[0]} --mask 255.255.255.255 --rsource --rcheck --seconds 60 --reap -j {SEP[0]}",
                f'-A {SVL} -m comment --comment "ns/web:http -> 10.88.0.2:8080" -m statistic'
                f" --mode random --probability 0.5000000000 -j {SEP[0]}",
                f'-A {SVL} -m comment --comment "ns/web:http -> 10.88.0.4:8080" -j {SEP[2]}',
            ],
            [],
        ),
    ],
    ids=["local-endpoint", "no-local-endpoint", "two-local-affinity"],
)
def test_external_traffic_policy_local(sp: ServicePort, want: list[str], absent: list[str]) -> None:
    rs = iptables_ruleset([sp], cluster_cidr="10.88.0.0/16")
    for line in want:
        assert line in rs.text
    for never in absent:
        assert never not in rs.text
    assert (SVL in rs.chains["nat"]) == bool(sp.local_endpoints)
    # every endpoint keeps its KUBE-SEP chain (ClusterIP traffic reaches all of them)
    assert all(f":{c} - [0:0]" in rs.text for c in SEP)
