"""``services/status``: upstream's ipMode defaulting and ValidateLoadBalancerStatus."""

from __future__ import annotations

from typing import Any

import pytest

from corral.apiserver.registry.services import ServiceStrategy

Obj = dict[str, Any]


def svc(*ingress: Obj, type_: str = "LoadBalancer") -> Obj:
    return {
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {"type": type_, "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": list(ingress)} if ingress else {}},
    }


def test_ip_mode_defaults_to_vip() -> None:
    new = svc({"ip": "10.0.0.1"}, {"hostname": "lb.example.com"})
    ServiceStrategy().prepare_for_status_update(new, svc())
    assert new["status"]["loadBalancer"]["ingress"] == [
        {"ip": "10.0.0.1", "ipMode": "VIP"},
        {"hostname": "lb.example.com"},
    ]


@pytest.mark.parametrize(
    ("new", "want"),
    [
        (svc({"ip": "10.0.0.1", "ipMode": "VIP"}), []),
        (svc({"ip": "10.0.0.1", "ipMode": "Proxy"}, {"hostname": "lb.example.com"}), []),
        (svc(), []),
        (svc(type_="ClusterIP"), []),
        (svc({"ip": "10.0.0.1", "ipMode": "VIP"}, type_="ClusterIP"),
         ["status.loadBalancer.ingress: Forbidden: may only be used when `spec.type` is 'LoadBalancer'"]),
        (svc({"ip": "10.0.0.300", "ipMode": "VIP"}),
         ['status.loadBalancer.ingress[0].ip: Invalid value: "10.0.0.300": must be a valid IP '
          "address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]),
        (svc({"ip": "10.0.0.1"}),
         ["status.loadBalancer.ingress[0].ipMode: Required value: must be specified when `ip` is set"]),
        (svc({"hostname": "lb.example.com", "ipMode": "VIP"}),
         ["status.loadBalancer.ingress[0].ipMode: Forbidden: may not be specified when `ip` is not set"]),
        (svc({"ip": "10.0.0.1", "ipMode": "Direct"}),
         ['status.loadBalancer.ingress[0].ipMode: Unsupported value: "Direct": supported values: "Proxy", "VIP"']),
        (svc({"hostname": "10.0.0.1"}),
         ['status.loadBalancer.ingress[0].hostname: Invalid value: "10.0.0.1": must be a DNS name, not an IP address']),
    ],
    ids=["vip", "proxy-and-hostname", "empty", "empty-on-clusterip", "ingress-on-clusterip",
         "bad-ip", "ip-without-mode", "mode-without-ip", "unknown-mode", "hostname-is-an-ip"],
)  # fmt: skip
def test_validate_load_balancer_status(new: Obj, want: list[str]) -> None:
    assert [str(e) for e in ServiceStrategy().validate_status_update(new, svc())] == want


@pytest.mark.parametrize(
    ("new_type", "kept"),
    [("LoadBalancer", True), ("NodePort", False), ("ClusterIP", False)],
)
def test_update_away_from_load_balancer_clears_its_status(new_type: str, kept: bool) -> None:
    """Upstream's dropTypeDependentFields: the main-resource update that changes the type
    clears ``status.loadBalancer`` (no stale address survives for the proxy to serve)."""
    old = svc({"ip": "10.0.0.1", "ipMode": "VIP"})
    new = svc(type_=new_type)
    del new["status"]
    ServiceStrategy().prepare_for_update(new, old)
    assert new["status"]["loadBalancer"] == (old["status"]["loadBalancer"] if kept else {})
