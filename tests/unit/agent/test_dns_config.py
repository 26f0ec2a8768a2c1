"""A pod's resolv.conf for each dnsPolicy (the kubelet's rules)."""

from __future__ import annotations

from typing import Any

import pytest

from corral.agent.dns import parse_resolv_conf, pod_resolv_conf

HOST = "# host\nnameserver 192.0.2.53\nsearch corp.example\noptions edns0\n"


def _pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "web"}, "spec": spec}


@pytest.mark.parametrize(
    ("spec", "cluster_dns", "want"),
    [
        (
            {},
            ["10.96.0.10"],
            "nameserver 10.96.0.10\n"
            "search web.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
            "options ndots:5\n",
        ),
        ({}, [], "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n"),
        (
            {"dnsPolicy": "Default"},
            ["10.96.0.10"],
            "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n",
        ),
        (
            {"hostNetwork": True},
            ["10.96.0.10"],
            "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n",
        ),
        (
            {"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"},
            ["10.96.0.10"],
            "nameserver 10.96.0.10\n"
            "search web.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
            "options ndots:5\n",
        ),
        (
            {
                "dnsPolicy": "None",
                "dnsConfig": {
                    "nameservers": ["1.2.3.4"],
                    "searches": ["a.example"],
                    "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
                },
            },
            ["10.96.0.10"],
            "nameserver 1.2.3.4\nsearch a.example\noptions ndots:2 edns0\n",
        ),
        (
            {"dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}},
            ["10.96.0.10"],
            "nameserver 10.96.0.10\n"
            "search web.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
            "options ndots:1\n",
        ),
    ],
    ids=[
        "cluster-first",
        "no-cluster-dns",
        "default",
        "host-network",
        "with-host-net",
        "none",
        "options-merged",
    ],
)
def test_pod_resolv_conf(spec: dict[str, Any], cluster_dns: list[str], want: str) -> None:
    assert pod_resolv_conf(_pod(**spec), cluster_dns, "cluster.local", HOST) == want


def test_parse_resolv_conf() -> None:
    assert parse_resolv_conf(HOST) == (["192.0.2.53"], ["corp.example"], ["edns0"])
