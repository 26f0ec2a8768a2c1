"""``corral agent``: run a node agent with the ``process``, ``oci`` or ``hollow`` runtime.

``hollow`` (simulated nodes) is ``corral.agent.hollow.main``; ``process`` and ``oci`` build
a driver, an image store and a ``NodeAgent`` here. Without ``--runtime`` the agent picks
``oci`` when it runs as root and finds ``runc``, and says why when it falls back to
``process``.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import logging
import os
import shutil
import socket
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.agent.auth import ServingTLS
from corral.agent.dns import host_resolv_conf, parse_resolv_conf
from corral.agent.drivers.base import Driver
from corral.agent.images import RegistryHosts
from corral.agent.images.store import ImageStore
from corral.agent.kubelet import NodeAgent
from corral.agent.node import parse_labels, serve_until_signalled
from corral.client.rest import NODES, Client, KubeConfig, add_server_flag
from corral.util import eventloop
from corral.util.gc_tuning import settling
from corral.util.paths import absolute_path

if TYPE_CHECKING:
    from corral.proxy.proxier import Proxier

log = logging.getLogger("corral.agent")

DEFAULT_POD_CIDR = "10.88.0.0/16"


def pick_runtime() -> tuple[str, str]:
    """(runtime, why): ``oci`` when root and runc are there, else ``process``."""
    if os.geteuid() != 0:
        return "process", "not running as root, so containers cannot be created"
    if shutil.which("runc") is None:
        return "process", "runc is not installed (apt install runc)"
    return "oci", "running as root with runc"


def default_data_dir(name: str) -> Path:
    base = Path("/var/lib/corral") if os.geteuid() == 0 else Path.home() / ".corral"
    return base / "agents" / name


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="corral agent", description="Run a node agent.")
    add_server_flag(p)
    p.add_argument("--kubeconfig", default="", help="kubeconfig with the agent's credentials")
    p.add_argument(
        "--token",
        default="",
        help="join with this bootstrap token (corral token create) when there is no "
        "kubeconfig: the node gets its own certificate in DATA_DIR/kubeconfig",
    )
    p.add_argument(
        "--ca-cert-hash",
        default="",
        metavar="sha256:HEX",
        help="with --token: the cluster CA's public key hash the server must present",
    )
    p.add_argument(
        "--name", default=socket.gethostname(), help="node name (hollow --count: prefix)"
    )
    p.add_argument(
        "--runtime",
        choices=["process", "oci", "hollow"],
        default=None,
        help="runtime driver (default: oci as root with runc, else process)",
    )
    p.add_argument("--count", type=int, default=None, help="hollow: nodes NAME-0..NAME-{N-1}")
    p.add_argument(
        "--data-dir", type=absolute_path, default=None, help="agent state (pods, images)"
    )
    p.add_argument("--labels", default="", help="extra node labels, k=v,k2=v2")
    p.add_argument("--node-ip", default="127.0.0.1", help="the node's InternalIP")
    p.add_argument("--port", type=int, default=10250, help="logs/exec port (0: any free)")
    p.add_argument(
        "--tls-cert-file", default="", help="serving certificate of the agent API (HTTPS)"
    )
    p.add_argument("--tls-private-key-file", default="", help="its private key")
    p.add_argument(
        "--client-ca-file",
        default="",
        help="CA of the client certificates accepted (default: the kubeconfig's CA)",
    )
    p.add_argument(
        "--registry-mirror",
        action="append",
        default=[],
        metavar="REGISTRY=URL[,URL]",
        help="pull REGISTRY's images from URL first (repeatable), e.g. docker.io=http://127.0.0.1:5000",
    )
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="contact HOST over plain HTTP or without verifying its certificate (repeatable; "
        "loopback hosts always are)",
    )
    p.add_argument(
        "--registry-config",
        type=Path,
        default=None,
        metavar="FILE",
        help="registry mirrors for every registry: a registries.toml (containerd's hosts.toml "
        "per registry) or a registries.yaml (k3s' mirrors/configs); corral up passes its own",
    )
    p.add_argument(
        "--cluster-dns",
        default="",
        metavar="IP[,IP]",
        help="the pods' nameservers (the cluster DNS Service's IP); empty: the host's",
    )
    p.add_argument("--cluster-domain", default="cluster.local", help="the cluster's DNS domain")
    p.add_argument(
        "--node-dns",
        choices=["auto", "off"],
        default="auto",
        help="oci: serve the cluster zone on the pod bridge's gateway, port 53, and make it "
        "the pods' nameserver (auto, unless --cluster-dns names one)",
    )
    p.add_argument(
        "--proxy",
        choices=["off", "auto", "iptables", "userspace"],
        default="off",
        help="also run this node's Service proxy (kube-proxy's job): auto = iptables as "
        "root, else userspace; corral up turns it on for its first agent",
    )
    p.add_argument(
        "--pod-cidr",
        default=None,
        help="oci: pod IPs come from here, published as the Node's spec.podCIDR (default "
        "10.88.0.0/16, not published); 'auto': the spec.podCIDR the server allocates "
        "(controller-manager --allocate-node-cidrs; corral up does)",
    )
    p.add_argument(
        "--cluster-cidr",
        default="",
        help="all pods' IPs (the proxy masquerades traffic from outside it); default: --pod-cidr",
    )
    p.add_argument("--bridge", default="corral0", help="oci: the CNI bridge of this agent")
    p.add_argument("--pod-pids-limit", type=int, default=None, help="pids limit of every container")
    p.add_argument(
        "--seccomp-default",
        action="store_true",
        help="oci: containers without a seccompProfile get RuntimeDefault instead of "
        "Unconfined (the kubelet's --seccomp-default); Localhost profiles: DATA/seccomp/",
    )
    p.add_argument(
        "--node-lease-duration-seconds",
        type=int,
        default=40,
        metavar="N",
        help="the node Lease's duration; it is renewed every quarter of it (the "
        "kubelet's nodeLeaseDurationSeconds, default 40)",
    )
    p.add_argument(
        "--volume-refresh-seconds",
        type=float,
        default=10.0,
        metavar="S",
        help="how often the running pods' configMap, secret and projected volumes are "
        "re-read, so that they follow updates (default 10)",
    )
    p.add_argument(
        "--reset",
        action="store_true",
        help="stop and remove every container and sandbox this data dir holds, then exit",
    )
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--exit-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)
    return p


def make_driver(
    runtime: str,
    data_dir: Path,
    node_ip: str,
    pod_cidr: str = "10.88.0.0/16",
    bridge: str = "corral0",
) -> Driver:
    if runtime == "oci":
        from corral.agent.drivers.cni import PodNetwork
        from corral.agent.drivers.oci import OciDriver

        network = PodNetwork(ipam_dir=data_dir / "oci" / "cni", bridge=bridge, subnet=pod_cidr)
        return OciDriver(data_dir / "oci", host_ip=node_ip, network=network)
    from corral.agent.drivers.process import ProcessDriver

    return ProcessDriver(data_dir / "process", ip=node_ip)


def _host_upstreams() -> list[tuple[str, int]]:
    """The host's own nameservers: where the node-local DNS sends other names."""
    servers, _, _ = parse_resolv_conf(host_resolv_conf())
    return [(ip, 53) for ip in servers]


async def _guarded(work: Coroutine[Any, Any, None], what: str) -> None:
    """Run a companion of the agent (the proxy); its failure is logged, and the agent and
    its pods go on."""
    try:
        await work
    except Exception:
        log.exception("%s stopped", what)


def _proxier(client: Client, args: argparse.Namespace, owner: Path) -> Proxier:
    """The Service proxy of this node (``corral.proxy``), in the agent's own loop; its
    iptables chains are claimed for ``owner`` (this agent's data dir)."""
    from corral.proxy.cmd import default_mode, make_backend
    from corral.proxy.proxier import Proxier

    mode = default_mode() if args.proxy == "auto" else args.proxy
    log.info("service proxy: %s", mode)
    backend = make_backend(mode, args.cluster_cidr or args.pod_cidr, str(owner.absolute()))
    return Proxier(client, args.name, args.node_ip, backend)


async def _wait_pod_cidr(client: Client, name: str, node: dict[str, Any]) -> str:
    """The Node's ``spec.podCIDR``: polled until the server's nodeipam controller sets it."""
    for attempt in range(600):
        cidr = str((node.get("spec") or {}).get("podCIDR") or "")
        if cidr:
            return cidr
        if attempt % 50 == 49:
            log.info("waiting for node %s to get a pod CIDR (controller-manager nodeipam)", name)
        await asyncio.sleep(0.1)
        node = await client.get(NODES, name)
    raise RuntimeError(f"node {name} got no pod CIDR in 60 s: is nodeipam running?")


async def _node_dns(client: Client, ip: str, domain: str) -> None:
    """The node-local cluster DNS (``corral.dns``) on the pod bridge's gateway, port 53;
    a failure to bind is logged, not fatal (the pods then cannot resolve cluster names)."""
    from corral.dns.server import serve_zone

    def ready(host: str, port: int) -> None:
        log.info("node-local DNS for %s on %s:%d", domain, host, port)

    try:
        await serve_zone(
            client, (ip, 53), domain=domain, upstreams=_host_upstreams(), freebind=True,
            on_ready=ready,
        )  # fmt: skip
    except OSError as e:
        holder, corral = await asyncio.to_thread(_port53_holder, ip)
        if e.errno == errno.EADDRINUSE and corral:  # another cluster's pods' DNS: refuse
            from corral.agent.drivers.bridges import BridgeConflict

            raise BridgeConflict(
                f"node-local DNS: {ip}:53 is already served by {holder}, another cluster's "
                "agent; stop it (corral down --data-dir DIR)"
            ) from e
        # the host's own DNS server (dnsmasq, bind...) on 0.0.0.0:53: the pods go without
        log.warning("node-local DNS on %s:53 not started: %s (held by %s)", ip, e, holder)


def _port53_holder(ip: str) -> tuple[str, bool]:
    """Who listens on ``ip``'s UDP port 53 here (itself or the wildcard address, from
    ``ss``), and whether it is a Corral process."""
    import re
    import subprocess

    res = subprocess.run(
        ["ss", "-H", "-lunp", "sport = :53"], capture_output=True, text=True, check=False
    )
    mine = (f"{ip}:53", "0.0.0.0:53", "*:53", "[::]:53")
    users = [
        line.split("users:", 1)[1]
        for line in res.stdout.splitlines()
        if "users:" in line and len(line.split()) > 3 and line.split()[3] in mine
    ]
    corral = False
    for pid in re.findall(r"pid=(\d+)", " ".join(users)):
        try:
            corral = corral or b"corral" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
    return "another process " + (", ".join(users) if users else "(unknown)"), corral


def _claim_host_network(
    args: argparse.Namespace, runtime: str, data_dir: Path, auto_cidr: bool
) -> None:
    """Before starting: the host's KUBE-* chains (when this agent runs the iptables
    proxy) and, with an explicit ``--pod-cidr``, the bridge must not be another live
    cluster's. Raises ``ChainsConflict`` or ``BridgeConflict``."""
    if os.geteuid() != 0:
        return
    if args.proxy in ("auto", "iptables"):
        from corral.proxy import owner as chains_owner
        from corral.proxy.cmd import default_mode

        if args.proxy == "iptables" or default_mode() == "iptables":
            chains_owner.check(str(data_dir.absolute()))
    if runtime == "oci" and not auto_cidr:
        _claim_bridge(args.bridge, args.pod_cidr, data_dir)


def _claim_bridge(bridge: str, subnet: str, data_dir: Path) -> None:
    """Make ``bridge`` this agent's with ``subnet``'s gateway (``bridges.claim_bridge``).
    ``BridgeConflict`` stops the agent; other failures are left to the CNI plugin."""
    from corral.agent.drivers.bridges import claim_bridge

    try:
        for change in claim_bridge(bridge, subnet, data_dir):
            log.info("pod network: %s", change)
    except OSError as e:
        log.warning("bridge %s not prepared (the CNI plugin will try): %s", bridge, e)


async def reset(driver: Driver, data_dir: Path) -> int:
    """Stop and remove everything ``driver`` recovers (``corral agent --reset``), the
    pods' volume mounts, the Mesos task sandboxes of those pods, the bridge this agent made once no pod is
    attached to it, and the portmap plugin's chains once no hostPort uses them."""
    import shutil

    from corral.agent.drivers.bridges import delete_bridge, owned_by
    from corral.agent.mesos_task import sandboxes_dir
    from corral.agent.teardown import clear

    containers, sandboxes = await clear(driver)
    if os.geteuid() == 0:  # the volumes (tmpfs) of pods the agent had not torn down
        from corral.agent.volumes import unmount_pod_volumes

        await unmount_pod_volumes(data_dir / "pods")
    tasks = sandboxes_dir(data_dir)
    n = len(list(tasks.iterdir())) if tasks.is_dir() else 0
    shutil.rmtree(tasks, ignore_errors=True)
    bridges = []
    if os.geteuid() == 0:
        for br in owned_by(data_dir):
            if not br.ports and br.owner is not None and br.owner.dir == str(data_dir.absolute()):
                delete_bridge(br.name)
                bridges.append(br.name)
        if shutil.which("iptables-save"):
            from corral.agent.drivers.cni import remove_idle_portmap_chains

            remove_idle_portmap_chains()
        from corral.agent.teardown import remove_empty_cgroup_parents

        remove_empty_cgroup_parents()
    print(
        f"removed {containers} containers, {sandboxes} pod sandboxes, "
        f"{n} Mesos task sandboxes and {len(bridges)} bridges {' '.join(bridges)}".rstrip(),
        flush=True,
    )
    return 0


def _serving_tls(
    parser: argparse.ArgumentParser, args: argparse.Namespace, ca_pem: bytes | None
) -> ServingTLS | None:
    """The agent API's TLS from ``--tls-cert-file``/``--tls-private-key-file`` (None:
    plain HTTP, as a stand-alone test agent)."""
    if not args.tls_cert_file and not args.tls_private_key_file:
        return None
    if not args.tls_cert_file or not args.tls_private_key_file:
        parser.error("--tls-cert-file and --tls-private-key-file go together")
    try:
        client_ca = Path(args.client_ca_file).read_bytes() if args.client_ca_file else ca_pem
        return ServingTLS(Path(args.tls_cert_file), Path(args.tls_private_key_file), client_ca)
    except (OSError, ValueError) as e:
        parser.error(f"the agent's serving certificate: {e}")


def main(argv: list[str]) -> int:
    """``corral agent ...``: run until SIGINT/SIGTERM (running pods keep running)."""
    parser = build_parser()
    args, _ = parser.parse_known_args(argv)
    if args.runtime == "hollow":
        from corral.agent import hollow

        return hollow.main(argv)
    args = parser.parse_args(argv)
    if args.node_lease_duration_seconds <= 0:  # as the kubelet's validation
        parser.error("--node-lease-duration-seconds must be greater than 0")
    if args.volume_refresh_seconds <= 0:
        parser.error("--volume-refresh-seconds must be greater than 0")
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    runtime = args.runtime
    if runtime is None:
        runtime, why = pick_runtime()
        log.info("runtime %s: %s", runtime, why)
    elif runtime == "oci":
        chosen, why = pick_runtime()
        if chosen != "oci":
            parser.error(f"--runtime oci: {why}")
    try:
        labels = parse_labels(args.labels)
        data_dir: Path = args.data_dir or default_data_dir(args.name)
        hosts = RegistryHosts.from_flags(
            args.registry_mirror, args.insecure_registry, data_dir / "certs.d", args.registry_config
        )
    except ValueError as e:
        parser.error(str(e))
    data_dir.mkdir(parents=True, exist_ok=True)
    published_cidr = args.pod_cidr if args.pod_cidr not in (None, "auto") else ""
    if args.pod_cidr is None:
        args.pod_cidr = DEFAULT_POD_CIDR
    auto_cidr = args.pod_cidr == "auto"
    if auto_cidr and not args.cluster_cidr:
        parser.error("--pod-cidr auto needs --cluster-cidr")
    first_cidr = args.cluster_cidr if auto_cidr else args.pod_cidr
    driver = make_driver(runtime, data_dir, args.node_ip, first_cidr, args.bridge)
    if args.reset:
        return asyncio.run(reset(driver, data_dir))
    joined = False
    if not args.kubeconfig and args.token:
        if not args.server:
            parser.error("--token needs --server")
        args.kubeconfig, joined = str(data_dir / "kubeconfig"), True
        if not (data_dir / "kubeconfig").exists():
            from corral.agent.bootstrap import JoinError, join

            try:
                asyncio.run(
                    join(
                        args.server, args.token, args.name, data_dir, ca_cert_hash=args.ca_cert_hash
                    )
                )
            except (JoinError, OSError) as e:
                print(f"corral agent: {e}", file=sys.stderr, flush=True)
                return 1
    if not args.kubeconfig:
        parser.error("--kubeconfig is required (or --server and --token to join)")
    try:  # what this agent would share with another cluster's on this host: refuse early
        _claim_host_network(args, runtime, data_dir, auto_cidr)
    except Exception as e:
        from corral.agent.drivers.bridges import BridgeConflict
        from corral.proxy.owner import ChainsConflict

        if not isinstance(e, (BridgeConflict, ChainsConflict)):
            raise
        print(f"corral agent: {e}", file=sys.stderr, flush=True)
        return 1
    cfg = KubeConfig.load(args.kubeconfig, servers=args.server)
    images = ImageStore(data_dir / "images", hosts)
    client = Client(cfg, connections=16, user_agent=f"corral-agent/{runtime}")
    cluster_dns = tuple(x.strip() for x in args.cluster_dns.split(",") if x.strip())
    node_dns: str | None = None
    if runtime == "oci" and not cluster_dns and args.node_dns == "auto" and not auto_cidr:
        node_dns = str(ipaddress.ip_network(args.pod_cidr, strict=False)[1])  # the gateway
        cluster_dns = (node_dns,)
    agent = NodeAgent(
        client,
        args.name,
        driver,
        data_dir=data_dir,
        images=images,
        node_ip=args.node_ip,
        port=args.port,
        labels=labels,
        token=cfg.token,
        tls=_serving_tls(parser, args, cfg.ca_pem),
        pids_limit=args.pod_pids_limit,
        cluster_dns=cluster_dns,
        cluster_domain=args.cluster_domain,
        pod_cidr=published_cidr,
        seccomp_default=args.seccomp_default,
        node_lease_duration=args.node_lease_duration_seconds,
        volume_refresh=args.volume_refresh_seconds,
    )

    proxier = _proxier(client, args, data_dir) if args.proxy != "off" else None

    async def run() -> None:
        async with asyncio.TaskGroup() as tg:

            async def pod_network(node: dict[str, Any]) -> None:
                """--pod-cidr auto: the bridge's subnet (and node-local DNS) from the
                Node's spec.podCIDR, once the server has allocated it."""
                cidr = await _wait_pod_cidr(client, args.name, node)
                if os.geteuid() == 0:
                    await asyncio.to_thread(_claim_bridge, args.bridge, cidr, data_dir)
                from corral.agent.drivers.cni import PodNetwork

                network = PodNetwork(
                    ipam_dir=data_dir / "oci" / "cni", bridge=args.bridge, subnet=cidr
                )
                driver.network = network  # type: ignore[attr-defined]
                log.info("pod network %s on %s", cidr, args.bridge)
                if args.node_dns == "auto" and not args.cluster_dns:
                    gateway = str(ipaddress.ip_network(cidr, strict=False)[1])
                    agent.ctx.cluster_dns = (gateway,)
                    tg.create_task(_node_dns(client, gateway, args.cluster_domain))

            if auto_cidr and runtime == "oci":
                agent.on_registered = pod_network
            if node_dns is not None:
                tg.create_task(_node_dns(client, node_dns, args.cluster_domain))
            if proxier is not None:
                tg.create_task(_guarded(proxier.run(), "the service proxy"))
            if joined:  # renew the node's client certificate at 80% of its lifetime
                from corral.agent.bootstrap import renew_loop

                renew = renew_loop(client, args.name, Path(args.kubeconfig), data_dir)
                tg.create_task(_guarded(renew, "certificate renewal"))
            if runtime == "oci" and os.geteuid() == 0:
                from corral.agent.routes import PodRoutes

                own = args.pod_cidr if not auto_cidr else ""
                routes = PodRoutes(client, args.name, args.node_ip, own)
                tg.create_task(_guarded(routes.run(), "the pod routes"))
            await settling(agent.run, agent.ready)()  # the collector, once synced

    from corral.agent.drivers.bridges import BridgeConflict

    refused: list[BaseException] = []
    try:
        eventloop.run(lambda: serve_until_signalled(run, client, args.exit_on_stdin_eof))
    except* BridgeConflict as group:  # the pod network is another cluster's: refuse
        refused.extend(group.exceptions)
    for conflict in refused:
        log.error("%s", conflict)
        print(f"corral agent: {conflict}", file=sys.stderr, flush=True)
    return 1 if refused else 0
