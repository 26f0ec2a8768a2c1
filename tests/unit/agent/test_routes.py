"""Which routes to other nodes' pods an agent keeps (host-gw)."""

from __future__ import annotations

from typing import Any

import pytest

from corral.agent.routes import node_route


def _node(name: str, cidr: str, ip: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"podCIDR": cidr} if cidr else {},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ]
        },
    }


@pytest.mark.parametrize(
    ("node", "want"),
    [
        (_node("b", "10.90.1.0/24", "192.168.5.11"), ("10.90.1.0/24", "192.168.5.11")),
        (_node("a", "10.90.0.0/24", "192.168.5.10"), None),  # this node
        (_node("b", "", "192.168.5.11"), None),  # no pod CIDR yet
        (_node("b", "10.90.1.0/24", "127.0.0.1"), None),  # same host (corral up --agents N)
        (_node("b", "10.90.1.0/24", "192.168.5.10"), None),  # our own address
        (_node("b", "10.90.0.0/16", "192.168.5.11"), None),  # overlaps our own pods
        (_node("b", "not-a-cidr", "192.168.5.11"), None),
    ],
    ids=["other-node", "self", "no-cidr", "loopback", "own-ip", "overlap", "bad-cidr"],
)
def test_node_route(node: dict[str, Any], want: tuple[str, str] | None) -> None:
    assert node_route(node, "a", "192.168.5.10", "10.90.0.0/24") == want
