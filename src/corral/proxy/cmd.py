"""``corral proxy``: run the Service data path for one node until SIGTERM/SIGINT.

``--mode iptables`` (the default as root with ``iptables-restore``) programs kube-proxy's
rules; ``--mode userspace`` (the default otherwise) relays in this process. Either way
the rules or listeners are removed when the command exits. ``nftables`` is accepted by
name only to say it is not built (see ``rules``' docstring for why iptables-restore).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

from corral.client.rest import Client, add_server_flag
from corral.proxy import owner as chains_owner
from corral.proxy.proxier import Backend, IptablesBackend, Proxier
from corral.proxy.userspace import UserspaceBackend

log = logging.getLogger("corral.proxy")


def default_mode() -> str:
    if os.geteuid() == 0 and shutil.which("iptables-restore"):
        return "iptables"
    return "userspace"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="corral proxy", description="Run a node's Service proxy.")
    p.add_argument("--kubeconfig", required=True, help="kubeconfig of the API server")
    add_server_flag(p)
    p.add_argument("--node-name", default=socket.gethostname(), help="this node's name")
    p.add_argument("--node-ip", default="127.0.0.1", help="this node's IP")
    p.add_argument(
        "--mode",
        choices=["iptables", "nftables", "userspace"],
        default=None,
        help="data path (default: iptables as root, else userspace)",
    )
    p.add_argument(
        "--cluster-cidr",
        default="10.88.0.0/16",
        help="pod CIDR: traffic to a ClusterIP from outside it is masqueraded ('' = all)",
    )
    p.add_argument(
        "--min-sync-period", type=float, default=0.05, help="seconds between syncs at least"
    )
    p.add_argument("--log-level", default="INFO")
    return p


def make_backend(mode: str, cluster_cidr: str, owner: str = "") -> Backend:
    """The backend of ``mode``; ``owner`` (an agent's data dir, a kubeconfig) claims the
    host's KUBE-* chains for the iptables one (``owner.py``)."""
    if mode == "iptables":
        return IptablesBackend(cluster_cidr=cluster_cidr, owner=owner)
    return UserspaceBackend(own_cluster_ips=os.geteuid() == 0)


async def _serve(proxier: Proxier, client: Client) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await proxier.run()
    except asyncio.CancelledError:
        log.info("stopping")
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    mode = args.mode or default_mode()
    if mode == "nftables":
        print("corral proxy: --mode nftables is not built; use iptables", file=sys.stderr)
        return 2
    if mode == "iptables" and os.geteuid() != 0:
        print("corral proxy: --mode iptables needs root; use --mode userspace", file=sys.stderr)
        return 2
    owner = str(Path(args.kubeconfig).absolute())
    if mode == "iptables":
        try:
            chains_owner.check(owner)
        except chains_owner.ChainsConflict as e:
            print(f"corral proxy: {e}", file=sys.stderr)
            return 1
    client = Client.from_kubeconfig(
        args.kubeconfig, servers=getattr(args, "server", ""), user_agent="corral-proxy"
    )
    proxier = Proxier(
        client,
        args.node_name,
        args.node_ip,
        make_backend(mode, args.cluster_cidr, owner),
        min_sync_interval=args.min_sync_period,
    )
    log.info("proxy for node %s (%s), mode %s", args.node_name, args.node_ip, mode)
    asyncio.run(_serve(proxier, client))
    return 0


if __name__ == "__main__":
    sys.exit(main())
