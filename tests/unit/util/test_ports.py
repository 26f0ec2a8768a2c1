"""``corral.util.ports``: ports picked together are distinct, as an etcd cluster needs.

``corral up --servers 3`` failed once in the suite ("initial cluster ... has duplicate
url"): its etcd members' peer ports were picked one at a time, and the kernel handed a
just-closed port out twice. These tests bind the picked ports for real."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from corral.util.etcd_process import EtcdCluster
from corral.util.ports import free_port, free_ports


def test_ports_picked_together_are_distinct_and_bindable() -> None:
    ports = free_ports(64)
    assert len(set(ports)) == 64
    socks = []
    try:
        for p in ports:  # nothing listens on them: each binds
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            socks.append(s)
    finally:
        for s in socks:
            s.close()


def test_one_port_on_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    try:
        port = free_port("::1")
    except OSError as e:  # IPv6 compiled in but ::1 not configured
        pytest.skip(f"::1 unusable here: {e}")
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", port))


def test_an_etcd_cluster_never_gives_two_members_one_port(tmp_path: Path) -> None:
    for _ in range(20):  # the planning only: no etcd is started
        cluster = EtcdCluster(tmp_path, members=3)
        ports = [p for m in cluster.members for p in (m.client_port, m.peer_port)]
        assert len(set(ports)) == 6, ports
