"""Free TCP ports, picked by the kernel: ``free_port(host)`` and ``free_ports(n, host)``.

A port is free when a socket bound to port 0 gets it; it is closed again before the
caller's process binds it. Ports wanted together (an etcd cluster's client and peer
ports, the API ports of ``corral up --servers N``) are picked with ``free_ports``, which
holds every socket until all are chosen: two separate ``free_port`` calls may return the
same port (the kernel hands a just-closed port out again), and an etcd cluster whose
members share a peer URL refuses to start.
"""

from __future__ import annotations

import socket
from collections.abc import Collection


def free_ports(count: int, host: str = "127.0.0.1", avoid: Collection[int] = ()) -> list[int]:
    """``count`` distinct TCP ports on ``host`` (IPv4 or IPv6) that nothing listens on
    right now, held together while chosen, none of them in ``avoid`` (ports picked
    earlier for something not yet listening)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            s = socket.socket(family, socket.SOCK_STREAM)
            socks.append(s)  # held (closed below) even when its port is one to avoid
            s.bind((host, 0))
            port = int(s.getsockname()[1])
            if port not in avoid:
                ports.append(port)
        return ports
    finally:
        for s in socks:
            s.close()


def free_port(host: str = "127.0.0.1") -> int:
    """One TCP port on ``host`` that nothing listens on right now."""
    return free_ports(1, host)[0]
