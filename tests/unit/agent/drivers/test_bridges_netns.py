"""``bridges.claim_bridge`` and ``conflicts`` against the real kernel, in a private network
namespace (root only): the bridges, veths and addresses a used host has, made in a
namespace of the test's own (``ip netns exec`` gives it its own ``/sys/class/net``), so
the host's interfaces are never touched.

The case of issue 13: a bridge left by a stopped cluster with another subnet on it is
brought to the new pod CIDR; one with pods of another cluster attached, or marked by an
agent that still runs, is refused with a message naming that cluster's data dir.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from corral.agent.drivers.bridges import start_ticks

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip"),
    reason="needs root and ip (a private network namespace)",
)

CLAIM = r"""
import json, sys
from pathlib import Path
from corral.agent.drivers import bridges
name, subnet, data_dir = sys.argv[1:4]
try:
    done = bridges.claim_bridge(name, subnet, Path(data_dir))
except bridges.BridgeConflict as e:
    print(json.dumps({"conflict": str(e)}))
else:
    print(json.dumps({"done": done}))
"""

CONFLICTS = r"""
import json, sys
from pathlib import Path
from corral.agent.drivers import bridges
print(json.dumps(bridges.conflicts(Path(sys.argv[1]), sys.argv[2].split(","), sys.argv[3])))
"""


class Netns:
    def __init__(self, name: str) -> None:
        self.name = name

    def ip(self, *argv: str) -> str:
        res = subprocess.run(
            ["ip", "netns", "exec", self.name, "ip", *argv],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return res.stdout

    def python(self, code: str, *argv: str) -> object:
        res = subprocess.run(
            ["ip", "netns", "exec", self.name, sys.executable, "-c", code, *argv],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return json.loads(res.stdout)

    def claim(self, bridge: str, subnet: str, data_dir: str) -> dict[str, object]:
        out = self.python(CLAIM, bridge, subnet, data_dir)
        assert isinstance(out, dict)
        return out

    def addresses(self, link: str) -> list[str]:
        links = json.loads(self.ip("-j", "-4", "addr", "show", "dev", link))
        return [f"{a['local']}/{a['prefixlen']}" for lk in links for a in lk["addr_info"]]

    def alias(self, link: str) -> str:
        (info,) = json.loads(self.ip("-j", "-d", "link", "show", "dev", link))
        return str(info.get("ifalias", ""))

    def stale_bridge(self, name: str, address: str, alias: str = "") -> None:
        self.ip("link", "add", name, "type", "bridge")
        self.ip("addr", "add", address, "dev", name)
        if alias:
            self.ip("link", "set", "dev", name, "alias", alias)


def _netns(prefix: str) -> Iterator[Netns]:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield Netns(name)
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


@pytest.fixture
def ns() -> Iterator[Netns]:
    yield from _netns("corral-brtest")


@pytest.fixture
def pod_ns() -> Iterator[Netns]:
    """A second namespace: a pod of another cluster, attached by a veth."""
    yield from _netns("corral-brpod")


DEAD = "corral pid=999999999.1 dir=/old/cluster/agents/node"  # no such process


def test_a_new_bridge_gets_the_gateway_address_and_our_mark(ns: Netns) -> None:
    out = ns.claim("br0", "10.251.1.0/24", "/new/agents/a")
    assert "conflict" not in out
    assert ns.addresses("br0") == ["10.251.1.1/24"]
    assert ns.alias("br0").startswith("corral pid=")
    assert ns.alias("br0").endswith(" dir=/new/agents/a")


def test_a_stopped_clusters_bridge_is_brought_to_our_subnet(ns: Netns) -> None:
    ns.stale_bridge("br0", "10.251.0.1/24", DEAD)  # what `make test` left: another subnet
    out = ns.claim("br0", "10.251.1.0/24", "/new/agents/a")
    assert "conflict" not in out, out
    assert ns.addresses("br0") == ["10.251.1.1/24"]
    assert ns.alias("br0").endswith(" dir=/new/agents/a")
    # unmarked (made before bridges were marked) and idle: taken over as well
    ns.stale_bridge("br1", "10.251.7.1/24")
    assert "conflict" not in ns.claim("br1", "10.251.2.0/24", "/new/agents/b")
    assert ns.addresses("br1") == ["10.251.2.1/24"]


def test_a_bridge_with_pods_of_another_cluster_is_refused(ns: Netns, pod_ns: Netns) -> None:
    ns.stale_bridge("br0", "10.251.0.1/24", DEAD)
    ns.ip("link", "add", "vethh", "type", "veth", "peer", "name", "eth0", "netns", pod_ns.name)
    ns.ip("link", "set", "vethh", "master", "br0", "up")
    out = ns.claim("br0", "10.251.1.0/24", "/new/agents/a")
    msg = str(out.get("conflict"))
    assert "1 running pod(s) of /old/cluster/agents/node" in msg, out
    assert "corral down --data-dir /old/cluster" in msg
    assert ns.addresses("br0") == ["10.251.0.1/24"]  # untouched
    # its own agent (same data dir) takes it back with its pods
    assert "conflict" not in ns.claim("br0", "10.251.0.0/24", "/old/cluster/agents/node")


def test_a_bridge_of_a_running_agent_is_refused(ns: Netns) -> None:
    agent = subprocess.Popen(["sleep", "60"])  # stands for the other cluster's agent
    try:
        mark = f"corral pid={agent.pid}.{start_ticks(agent.pid)} dir=/other/agents/n0"
        ns.stale_bridge("br0", "10.251.0.1/24", mark)
        out = ns.claim("br0", "10.251.1.0/24", "/new/agents/a")
        assert "belongs to the running agent of /other/agents/n0" in str(out.get("conflict"))
        assert "corral down --data-dir /other" in str(out.get("conflict"))
        found = ns.python(CONFLICTS, "/new", "br0,br1", "10.251.0.0/16")
        assert isinstance(found, list) and len(found) == 1 and "/other/agents/n0" in found[0]
        assert ns.python(CONFLICTS, "/other", "br0", "10.251.0.0/16") == []  # its own
    finally:
        agent.kill()
        agent.wait()
    assert "conflict" not in ns.claim("br0", "10.251.1.0/24", "/new/agents/a")  # gone now


def test_a_stale_overlapping_address_elsewhere_is_removed_a_foreign_one_refused(
    ns: Netns,
) -> None:
    ns.stale_bridge("corral-n7", "10.251.1.1/24", DEAD)  # same subnet, another bridge
    out = ns.claim("br0", "10.251.1.0/24", "/new/agents/a")
    assert "conflict" not in out, out
    assert ns.addresses("corral-n7") == []
    assert ns.addresses("br0") == ["10.251.1.1/24"]
    ns.ip("link", "add", "eth9", "type", "veth", "peer", "name", "eth9p")
    ns.ip("addr", "add", "10.251.2.5/24", "dev", "eth9")
    out = ns.claim("br1", "10.251.2.0/24", "/new/agents/b")
    assert "eth9 has 10.251.2.5/24, which overlaps" in str(out.get("conflict")), out
