"""Test kit: N test hosts on one machine, as network namespaces on a bridge.

``TestHosts.create(n, base)`` builds, in the root network namespace, a bridge
``chost-<id>`` holding ``192.168.<x>.1/24`` (a /24 no address or route here uses), and
for each host ``i`` a network namespace ``chost-<id>-<i>`` wired to it by a veth pair
(``chv-<id>-<i>`` on the bridge, ``eth0`` inside with ``192.168.<x>.(10+i)/24``, ``lo``
up, default route via the bridge, ``ip_forward`` on). Host ``i`` owns the pod CIDR
``10.90.i.0/24``; every other host, and the root namespace (so the test process can
reach pods), routes it via host ``i``'s address: host-gw routing, as flannel's host-gw
backend does, no overlay. All traffic stays on these namespaces and the bridge.

``start_server`` runs ``corral server --bind 192.168.<x>.1`` (its certificate then
names that address, and its kubeconfig points at it, so agents inside the namespaces
and kubectl outside both reach it); ``start_agents`` runs one ``corral agent --runtime
oci --proxy auto`` per host inside its namespace. The agents run under ``nsenter
--net=...`` rather than ``ip netns exec``: the latter also gives the command a private
``/sys`` in which ``/sys/fs/cgroup`` is not mounted, and runc needs the cgroup tree. So
an agent shares the machine's mount namespace (cgroups, ``/run/netns`` for its pods'
namespaces, its overlay mounts) and owns only its network stack: its CNI bridge
``cbr0``, its pods' veths, and its own iptables (the Service proxy's rules are per
network namespace).

``teardown`` (safe to call after any failure, and more than once) stops the agents,
resets each data directory (``corral agent --reset`` in the namespace), stops the
server, and deletes the namespaces, veths, routes and bridge.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from corral.testing.agent import AgentProcess
from corral.testing.process import ServerProcess

AGENT_PORT = 10250
POD_CIDR = "10.90.{}.0/24"  # outside 10.88/16 (the default) and 10.89/16 (other tests)
POD_BRIDGE = "cbr0"


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    """Run ``ip ARGS`` (in ``netns`` when given); its stdout. Raises ``RuntimeError``
    with ip's message when ``check`` and it fails."""
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {res.stderr.strip()}")
    return res.stdout


def free_subnet() -> ipaddress.IPv4Network:
    """A 192.168.x.0/24 that overlaps no address and no route of the root namespace."""
    used: list[ipaddress.IPv4Network] = []
    for line in ip("-4", "-o", "addr").splitlines():
        used.append(ipaddress.IPv4Interface(line.split()[3]).network)
    for line in ip("-4", "route").splitlines():
        dst = line.split()[0]
        if dst != "default":
            used.append(ipaddress.IPv4Network(dst, strict=False))
    for x in range(200, 255):
        net = ipaddress.IPv4Network(f"192.168.{x}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError("no free 192.168.x.0/24 for the test hosts")


class BoundServer(ServerProcess):
    """A ``corral server --bind ADDR``: ready when ADDR:port answers; URL on ADDR."""

    @property
    def host(self) -> str:
        return self.argv[self.argv.index("--bind") + 1]

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=0.2),
            ):
                if self.kubeconfig.exists():
                    return
            time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log.read_text()}")


@dataclass
class TestHost:
    """One host: its network namespace, address, pod CIDR, data dir and agent."""

    __test__ = False  # not a pytest class

    index: int
    name: str  # the Node's name: host-<i>
    netns: str
    veth: str  # the bridge's end of the pair
    ip: str
    pod_cidr: str
    data_dir: Path
    agent: AgentProcess | None = None

    @property
    def prefix(self) -> list[str]:
        """Run a command in this host's network namespace (and the machine's mounts)."""
        return ["nsenter", f"--net=/run/netns/{self.netns}", "--"]

    def net_flags(self) -> list[str]:
        return ["--node-ip", self.ip, "--pod-cidr", self.pod_cidr, "--bridge", POD_BRIDGE]

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.prefix, *argv], capture_output=True, text=True, timeout=60, check=check
        )


@dataclass
class TestHosts:
    """N test hosts on bridge ``bridge`` (``subnet``); see the module docstring."""

    __test__ = False

    id: str
    bridge: str
    subnet: ipaddress.IPv4Network
    base: Path
    hosts: list[TestHost] = field(default_factory=list)
    server: BoundServer | None = None

    @property
    def gateway(self) -> str:
        return str(self.subnet[1])

    @classmethod
    def create(cls, n: int, base: Path) -> TestHosts:
        """Build the bridge and ``n`` hosts (torn down again if any step fails)."""
        hid = uuid.uuid4().hex[:4]
        subnet = free_subnet()
        th = cls(hid, f"chost-{hid}", subnet, base)
        try:
            th._build(n)
        except BaseException:
            th.teardown()
            raise
        return th

    def _build(self, n: int) -> None:
        prefix = self.subnet.prefixlen
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.gateway}/{prefix}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for i in range(n):
            h = TestHost(
                index=i,
                name=f"host-{i}",
                netns=f"{self.bridge}-{i}",
                veth=f"chv-{self.id}-{i}",
                ip=str(self.subnet[10 + i]),
                pod_cidr=POD_CIDR.format(i),
                data_dir=self.base / f"host-{i}",
            )
            self.hosts.append(h)
            ip("netns", "add", h.netns)
            ip("link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns)
            ip("link", "set", h.veth, "master", self.bridge, "up")
            ip("addr", "add", f"{h.ip}/{prefix}", "dev", "eth0", netns=h.netns)
            ip("link", "set", "lo", "up", netns=h.netns)
            ip("link", "set", "eth0", "up", netns=h.netns)
            ip("route", "add", "default", "via", self.gateway, netns=h.netns)
            h.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        # host-gw: the root namespace (the test process) reaches each host's pods via the
        # host; between the hosts, the agents install these routes themselves
        # (agent/routes.py, from the Nodes' spec.podCIDR)
        for h in self.hosts:
            ip("route", "add", h.pod_cidr, "via", h.ip, "dev", self.bridge)

    def start_server(
        self, *, controllers: bool = True, extra: list[str] | None = None
    ) -> BoundServer:
        """``corral server --bind <gateway> EXTRA...`` under ``base/server``."""
        extra = [
            "--bind", self.gateway, *([] if controllers else ["--no-controllers"]), *(extra or [])
        ]  # fmt: skip
        self.server = BoundServer.start(self.base / "server", extra=extra, timeout=30.0)
        return self.server

    def start_agents(self, extra: list[str] | None = None, timeout: float = 60.0) -> None:
        """One oci agent per host, inside its namespace; returns once every Node is Ready."""
        assert self.server is not None, "start_server first"
        for h in self.hosts:
            h.data_dir.mkdir(parents=True, exist_ok=True)
            h.agent = AgentProcess(
                self.server.kubeconfig,
                h.name,
                "oci",
                h.data_dir,
                AGENT_PORT,
                [*h.net_flags(), "--proxy", "auto", *(extra or [])],
                prefix=h.prefix,
                host=h.ip,
            )
            h.agent.launch(timeout)

    def logs(self, lines: int = 30) -> str:
        """The tail of every agent's log, for failure messages."""
        return "\n".join(
            f"--- {h.name} ---\n{h.agent.log_tail(lines)}" for h in self.hosts if h.agent
        )

    def teardown(self) -> None:
        """Stop and reset the agents, stop the server, delete namespaces, links and routes.
        Each step runs whatever failed before it; the first error is raised at the end."""
        errors: list[BaseException] = []

        def attempt(step: Callable[..., object], *args: object) -> None:
            try:
                step(*args)
            except Exception as e:  # collected, raised below
                errors.append(e)

        for h in self.hosts:
            if h.agent is not None:
                attempt(h.agent.stop)
        for h in self.hosts:
            if h.data_dir.exists() and Path("/run/netns", h.netns).exists():
                attempt(self._reset, h)
            h.agent = None
        if self.server is not None:
            attempt(self.server.stop)
        for h in self.hosts:
            ip("route", "del", h.pod_cidr, "via", h.ip, "dev", self.bridge, check=False)
            ip("netns", "delete", h.netns, check=False)
            ip("link", "delete", h.veth, check=False)
        ip("link", "delete", self.bridge, check=False)
        netns = {line.split()[0] for line in ip("netns", "list").splitlines() if line}
        leftovers = [h.netns for h in self.hosts if h.netns in netns]
        if self.bridge in ip("-o", "link", "show", check=False):
            leftovers.append(self.bridge)
        self.hosts = []
        if leftovers:
            errors.append(RuntimeError(f"test hosts left behind: {leftovers}"))
        if errors:
            raise errors[0]

    @staticmethod
    def _reset(h: TestHost) -> None:
        argv = [*h.prefix, sys.executable, "-m", "corral", "agent", "--reset", "--runtime"]
        argv += ["oci", "--data-dir", str(h.data_dir), "--name", h.name, *h.net_flags()]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise RuntimeError(f"reset of {h.name} failed: {res.stdout}{res.stderr}")
