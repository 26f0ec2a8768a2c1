"""``corral agent``: run a node agent with the ``process``, ``oci`` or ``hollow`` runtime.

``hollow`` (simulated nodes) is ``corral.agent.hollow.main``; ``process`` and ``oci`` build
a driver, an image store and a ``NodeAgent`` here. Without ``--runtime`` the agent picks
``oci`` when it runs as root and finds ``runc``, and says why when it falls back to
``process``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import socket
from pathlib import Path

from corral.agent.drivers.base import Driver
from corral.agent.images import RegistryHosts
from corral.agent.images.store import ImageStore
from corral.agent.kubelet import NodeAgent
from corral.agent.node import parse_labels, run_loop, serve_until_signalled
from corral.client.rest import Client, KubeConfig

log = logging.getLogger("corral.agent")


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
    p.add_argument("--server", default="", help="API server URL (overrides the kubeconfig's)")
    p.add_argument("--kubeconfig", default="", help="kubeconfig with the agent's credentials")
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
    p.add_argument("--data-dir", type=Path, default=None, help="agent state (pods, images)")
    p.add_argument("--labels", default="", help="extra node labels, k=v,k2=v2")
    p.add_argument("--node-ip", default="127.0.0.1", help="the node's InternalIP")
    p.add_argument("--port", type=int, default=10250, help="logs/exec port (0: any free)")
    p.add_argument(
        "--registry-mirror",
        action="append",
        default=[],
        metavar="REGISTRY=URL[,URL]",
        help="pull REGISTRY's images from URL first (repeatable), e.g. docker.io=http://127.0.0.1:5000",
    )
    p.add_argument(
        "--cluster-dns",
        default="",
        metavar="IP[,IP]",
        help="the pods' nameservers (the cluster DNS Service's IP); empty: the host's",
    )
    p.add_argument("--cluster-domain", default="cluster.local", help="the cluster's DNS domain")
    p.add_argument("--pod-cidr", default="10.88.0.0/16", help="oci: pod IPs come from here")
    p.add_argument("--bridge", default="corral0", help="oci: the CNI bridge of this agent")
    p.add_argument("--pod-pids-limit", type=int, default=None, help="pids limit of every container")
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


async def reset(driver: Driver) -> int:
    """Stop and remove everything ``driver`` recovers (``corral agent --reset``)."""
    sandboxes, containers = await driver.recover()
    for r in containers:
        if r.exit is None:
            await driver.stop(r.handle, 2.0)
        await driver.remove(r.handle)
    for sb in sandboxes:
        await driver.remove_sandbox(sb)
    print(f"removed {len(containers)} containers and {len(sandboxes)} pod sandboxes", flush=True)
    return 0


def main(argv: list[str]) -> int:
    """``corral agent ...``: run until SIGINT/SIGTERM (running pods keep running)."""
    parser = build_parser()
    args, _ = parser.parse_known_args(argv)
    if args.runtime == "hollow":
        from corral.agent import hollow

        return hollow.main(argv)
    args = parser.parse_args(argv)
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
        hosts = RegistryHosts.from_flags(args.registry_mirror, (), data_dir / "certs.d")
    except ValueError as e:
        parser.error(str(e))
    data_dir.mkdir(parents=True, exist_ok=True)
    driver = make_driver(runtime, data_dir, args.node_ip, args.pod_cidr, args.bridge)
    if args.reset:
        return asyncio.run(reset(driver))
    if not args.kubeconfig:
        parser.error("--kubeconfig is required")
    cfg = KubeConfig.load(args.kubeconfig)
    if args.server:
        cfg = KubeConfig(args.server.rstrip("/"), cfg.token, cfg.ca_pem)
    images = ImageStore(data_dir / "images", hosts)
    client = Client(cfg, connections=16, user_agent=f"corral-agent/{runtime}")
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
        pids_limit=args.pod_pids_limit,
        cluster_dns=tuple(x.strip() for x in args.cluster_dns.split(",") if x.strip()),
        cluster_domain=args.cluster_domain,
    )
    run_loop(lambda: serve_until_signalled(agent.run, client, args.exit_on_stdin_eof))
    return 0
