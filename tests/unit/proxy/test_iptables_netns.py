"""The iptables backend against the real kernel, in a private network namespace.

Root only (skips otherwise). Each test makes its own namespace (``ip netns add``) with a
dummy interface, runs ``IptablesBackend`` there through ``Runner(prefix=ip netns exec)``,
and sends real connections from inside it: the host's own tables are never touched.
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

from corral.proxy.proxier import IptablesBackend, Runner
from corral.proxy.rules import Endpoint, ServicePort

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("iptables-restore") or not shutil.which("ip"),
    reason="needs root, ip and iptables-restore (a private network namespace)",
)

# servers on 10.1.0.2-4 (each answers its own address), then N connections to a target
PROBE = r"""
import json, socket, sys, threading
target, port, n, ports = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
def serve(addr, p):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, p)); s.listen(64)
    while True:
        c, _ = s.accept(); c.sendall(addr.encode()); c.close()
for addr, p in ports:
    threading.Thread(target=serve, args=(addr, p), daemon=True).start()
import time; time.sleep(0.2)
out = []
for _ in range(n):
    c = socket.socket(); c.settimeout(5)
    try:
        c.connect((target, port)); out.append(c.recv(100).decode())
    except OSError as e:
        out.append(type(e).__name__)
    finally:
        c.close()
print(json.dumps(out))
"""


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"corral-proxytest-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:

        def sh(*argv: str) -> None:
            subprocess.run(["ip", "netns", "exec", name, *argv], check=True)

        sh("ip", "link", "set", "lo", "up")
        sh("ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1")
        sh("ip", "link", "set", "d1", "up")
        sh("ip", "link", "set", "d0", "up")
        sh("ip", "addr", "add", "10.1.0.1/24", "dev", "d0")
        for i in (2, 3, 4):
            sh("ip", "addr", "add", f"10.1.0.{i}/32", "dev", "d0")
        sh("ip", "route", "add", "default", "dev", "d0")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def save(ns: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "iptables-save"], capture_output=True, text=True, check=True
    ).stdout


def route_localnet(ns: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "sysctl", "-n", "net.ipv4.conf.all.route_localnet"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def probe(ns: str, target: str, port: int, n: int, servers: list[tuple[str, int]]) -> list[str]:
    out = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", PROBE, target, str(port), str(n),
         json.dumps(servers)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    result: list[str] = json.loads(out.stdout)
    return result


def sp(name: str, ip: str, eps: list[str], *, node_port: int = 0, affinity: int = 0) -> ServicePort:
    return ServicePort(
        "t", name, "", "TCP", ip, 80, node_port, affinity, tuple(Endpoint(e, 8080) for e in eps)
    )


async def test_rules_apply_balance_reject_and_clean_up(netns: str) -> None:
    backend = IptablesBackend(Runner(prefix=("ip", "netns", "exec", netns)), cluster_cidr="")
    eps = ["10.1.0.2", "10.1.0.3", "10.1.0.4"]
    servers = [(e, 8080) for e in eps]
    # a new namespace inherits the host's value (1 where a cluster's proxy runs on the host)
    before = route_localnet(netns)
    ports = [
        sp("web", "10.96.0.10", eps, node_port=30080),
        sp("sticky", "10.96.0.11", eps, affinity=60),
        sp("empty", "10.96.0.12", [], node_port=30081),
    ]
    try:
        await backend.sync(ports)
        await backend.sync(ports)  # idempotent: no duplicate jumps
        text = save(netns)
        assert text.count("-j KUBE-SERVICES") == 4  # nat PREROUTING, OUTPUT; filter FORWARD, OUTPUT
        assert ports[0].svc_chain in text

        answers = probe(netns, "10.96.0.10", 80, 60, servers)
        assert set(answers) == set(eps)
        assert set(probe(netns, "10.1.0.1", 30080, 30, servers)) == set(eps)  # the nodePort
        assert len(set(probe(netns, "10.96.0.11", 80, 20, servers))) == 1  # ClientIP affinity
        assert probe(netns, "10.96.0.12", 80, 1, servers) == ["ConnectionRefusedError"]
        assert probe(netns, "10.1.0.1", 30081, 1, servers) == ["ConnectionRefusedError"]

        # an endpoint goes: its chain is deleted in the same restore
        gone = ports[0].sep_chain(Endpoint("10.1.0.4", 8080))
        await backend.sync([sp("web", "10.96.0.10", eps[:2], node_port=30080)])
        text = save(netns)
        assert gone not in text and ports[1].svc_chain not in text
        assert set(probe(netns, "10.96.0.10", 80, 30, servers)) == set(eps[:2])
    finally:
        await backend.cleanup()
    assert "KUBE-" not in save(netns)
    assert route_localnet(netns) == before  # what the namespace began with, restored


async def test_a_fresh_backend_replaces_leftover_chains(netns: str) -> None:
    run = Runner(prefix=("ip", "netns", "exec", netns))
    old = IptablesBackend(run)
    await old.sync([sp("old", "10.96.0.20", ["10.1.0.2"])])
    new = IptablesBackend(run)  # a restarted proxy: reconciles what it finds
    try:
        await new.sync([sp("new", "10.96.0.21", ["10.1.0.3"])])
        text = save(netns)
        assert sp("old", "", []).svc_chain not in text
        assert sp("new", "", []).svc_chain in text
    finally:
        await new.cleanup()
    assert "KUBE-" not in save(netns)
