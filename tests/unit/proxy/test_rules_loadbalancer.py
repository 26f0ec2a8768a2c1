"""LoadBalancer ingress in kube-proxy's iptables rules (pure): reading the VIPs from the
Service's status, the KUBE-SERVICES rules that send them to KUBE-EXT (or KUBE-FW with
``loadBalancerSourceRanges``), and the filter rules when there is nowhere to send them."""

from __future__ import annotations

from typing import Any

import pytest

from corral.proxy.rules import Endpoint, ServicePort, iptables_ruleset, service_ports

Obj = dict[str, Any]
KEY = "ns/web:http"


def lb_service(*ingress: Obj, type_: str = "LoadBalancer", **spec: Any) -> Obj:
    return {
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {
            "type": type_,
            "clusterIP": "10.96.0.10",
            "ports": [{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}],
            **spec,
        },
        "status": {"loadBalancer": {"ingress": list(ingress)}},
    }


@pytest.mark.parametrize(
    ("service", "ips", "ranges"),
    [
        (lb_service({"ip": "192.168.5.7", "ipMode": "VIP"}), ("192.168.5.7",), ()),
        (lb_service({"ip": "192.168.5.7"}, {"ip": "10.250.3.4"}), ("192.168.5.7", "10.250.3.4"), ()),
        (lb_service({"ip": "192.168.5.7", "ipMode": "Proxy"}), (), ()),
        (lb_service({"hostname": "lb.example.com"}, {"ip": "fd00::1"}), (), ()),
        (lb_service({"ip": "192.168.5.7"}, loadBalancerSourceRanges=["10.0.0.0/8 ", "fd00::/8", "bad"]),
         ("192.168.5.7",), ("10.0.0.0/8",)),
        (lb_service(), (), ()),
        (lb_service({"ip": "192.168.5.7"}, type_="NodePort"), (), ()),
        (lb_service({"ip": "192.168.5.7"}, type_="ClusterIP", loadBalancerSourceRanges=["10.0.0.0/8"]), (), ()),
    ],
    ids=["vip", "several", "proxy-mode-skipped", "hostname-and-ipv6-skipped", "source-ranges",
         "pending", "stale-status-of-nodeport", "stale-status-of-clusterip"],
)  # fmt: skip
def test_service_ports_read_the_ingress(
    service: Obj, ips: tuple[str, ...], ranges: tuple[str, ...]
) -> None:
    (sp,) = service_ports([service], [])
    assert (sp.lb_ips, sp.lb_source_ranges) == (ips, ranges)


def lb_port(
    n_endpoints: int = 2,
    *,
    node_port: int = 30080,
    local: bool = False,
    local_endpoints: int = 0,
    ranges: tuple[str, ...] = (),
) -> ServicePort:
    eps = tuple(Endpoint(f"10.88.0.{i + 2}", 8080) for i in range(n_endpoints))
    return ServicePort(
        "ns", "web", "http", "TCP", "10.96.0.10", 80, node_port, 0, eps,
        local, eps[:local_endpoints], ("192.168.5.7",), ranges,
    )  # fmt: skip


def rules_of(text: str, table: str) -> list[str]:
    section = text.split(f"*{table}\n", 1)[1].split("COMMIT", 1)[0]
    return [ln for ln in section.splitlines() if ln.startswith("-A")]


SP = lb_port()
EXT, SVC, FW = SP.ext_chain, SP.svc_chain, SP.fw_chain
LB_MATCH = "-m tcp -p tcp -d 192.168.5.7/32 --dport 80"


@pytest.mark.parametrize(
    ("sp", "nat_has", "filter_has", "absent"),
    [
        (
            lb_port(),
            [
                f'-A KUBE-SERVICES -m comment --comment "{KEY} loadbalancer IP" {LB_MATCH} -j {EXT}',
                f'-A {EXT} -m comment --comment "masquerade traffic for {KEY} external destinations" -j KUBE-MARK-MASQ',
                f"-A {EXT} -j {SVC}",
                f"-A KUBE-NODEPORTS -m comment --comment {KEY} -m tcp -p tcp --dport 30080 -j {EXT}",
            ],
            [],
            ["KUBE-FW-", "KUBE-PROXY-FIREWALL -m"],
        ),
        (  # allocateLoadBalancerNodePorts false: no nodePort, the EXT chain all the same
            lb_port(node_port=0),
            [f'-A KUBE-SERVICES -m comment --comment "{KEY} loadbalancer IP" {LB_MATCH} -j {EXT}',
             f"-A {EXT} -j {SVC}"],
            [],
            ["KUBE-NODEPORTS -m"],
        ),
        (
            lb_port(0),
            [],
            [f'-A KUBE-EXTERNAL-SERVICES -m comment --comment "{KEY} has no endpoints" {LB_MATCH}'
             " -j REJECT --reject-with icmp-port-unreachable"],
            ["loadbalancer IP", EXT],
        ),
        (  # externalTrafficPolicy Local, nothing on this node: the VIP is dropped
            lb_port(local=True),
            [f'-A KUBE-SERVICES -m comment --comment "{KEY} loadbalancer IP" {LB_MATCH} -j {EXT}',
             f'-A {EXT} -m comment --comment "route LOCAL traffic for {KEY} external destinations"'
             f" -m addrtype --src-type LOCAL -j {SVC}"],
            [f'-A KUBE-EXTERNAL-SERVICES -m comment --comment "{KEY} has no local endpoints" {LB_MATCH} -j DROP'],
            [f"-A {EXT} -j KUBE-SVL-"],
        ),
        (
            lb_port(local=True, local_endpoints=1),
            [f"-A {EXT} -j {SP.svl_chain}"],
            [],
            ["has no local endpoints"],
        ),
        (
            lb_port(ranges=("10.0.0.0/8",)),
            [f'-A KUBE-SERVICES -m comment --comment "{KEY} loadbalancer IP" {LB_MATCH} -j {FW}',
             f'-A {FW} -m comment --comment "{KEY} loadbalancer IP" -s 10.0.0.0/8 -j {EXT}',
             f'-A {FW} -m comment --comment "other traffic to {KEY} will be dropped by KUBE-PROXY-FIREWALL"'],
            [f'-A KUBE-PROXY-FIREWALL -m comment --comment "{KEY} traffic not accepted by {FW}" {LB_MATCH} -j DROP'],
            ["-s 192.168.5.7/32"],
        ),
    ],
    ids=["cluster-policy", "no-node-port", "no-endpoints", "local-no-local-endpoints",
         "local-with-local-endpoint", "source-ranges"],
)  # fmt: skip
def test_load_balancer_rules(
    sp: ServicePort, nat_has: list[str], filter_has: list[str], absent: list[str]
) -> None:
    text = iptables_ruleset([sp], cluster_cidr="10.88.0.0/16").text
    nat, filt = rules_of(text, "nat"), rules_of(text, "filter")
    for rule in nat_has:
        assert rule in nat, "\n".join(nat)
    for rule in filter_has:
        assert rule in filt, "\n".join(filt)
    for piece in absent:
        assert not any(piece in r for r in nat + filt), piece


def test_source_ranges_with_the_node_admit_the_vip_itself() -> None:
    sp = lb_port(ranges=("192.168.0.0/16",))
    nat = rules_of(iptables_ruleset([sp], node_ip="192.168.5.7").text, "nat")
    assert f'-A {FW} -m comment --comment "{KEY} loadbalancer IP" -s 192.168.5.7/32 -j {EXT}' in nat


def test_lb_chains_are_declared_and_the_firewall_chain_is_fixed() -> None:
    rs = iptables_ruleset([lb_port(ranges=("10.0.0.0/8",))])
    assert {EXT, FW, SVC} <= rs.chains["nat"]
    assert "KUBE-PROXY-FIREWALL" in rs.chains["filter"]
    assert ":KUBE-PROXY-FIREWALL - [0:0]" in rs.text


def test_fw_chain_name_is_upstreams() -> None:
    # kube-proxy's own test fixture: ns5/svc5:p80 over TCP
    assert ServicePort("ns5", "svc5", "p80", "TCP", "172.30.0.45", 80).fw_chain == (
        "KUBE-FW-NUKIZ6OKUXPJNT4C"
    )
