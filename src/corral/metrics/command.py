"""``corral metrics-server``: its flags and entry points.

``main`` is the command (``cli/main.py`` delegates to it, ``cli/errors.py`` reads
``build_parser``); ``serve`` is what ``corral up`` runs in the API server's process
(``cli/loops.py``). The server itself is ``metrics/server.py``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from corral.client.rest import Client, add_server_flag
from corral.metrics.server import DEFAULT_PORT, DEFAULT_RESOLUTION, MetricsServer
from corral.util import eventloop
from corral.util.durations import duration
from corral.util.stopping import run_until_stopped


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="corral metrics-server",
        description="Serve the resource metrics API (metrics.k8s.io/v1beta1) from the agents.",
    )
    p.add_argument("--kubeconfig", required=True, help="how to reach the API server")
    add_server_flag(p)
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"HTTPS port (default {DEFAULT_PORT}; 0: any)",
    )
    p.add_argument(
        "--advertise-address",
        default="",
        help="the address the API server reaches this one at (default: --bind, or this "
        "host's address when binding every address)",
    )
    p.add_argument(
        "--metric-resolution",
        type=duration,
        default=DEFAULT_RESOLUTION,
        metavar="DURATION",
        help="how often the agents are scraped (default 15s)",
    )
    p.add_argument(
        "--tls-cert-file",
        default="",
        metavar="FILE",
        help="serving certificate, issued by the kubeconfig's certificate authority (default: "
        "a self-signed one made at start)",
    )
    p.add_argument("--tls-private-key-file", default="", metavar="FILE", help="its key")
    p.add_argument(
        "--requestheader-client-ca-file",
        default="",
        metavar="FILE",
        help="the CA of the front proxy's client certificate, whose X-Remote-User/-Group "
        "headers are believed (default: kube-system/extension-apiserver-authentication's)",
    )
    p.add_argument(
        "--client-ca-file",
        default="",
        metavar="FILE",
        help="the CA of client certificates that authenticate their CN (default: "
        "kube-system/extension-apiserver-authentication's)",
    )
    p.add_argument("--exit-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--log-level", default="info", type=str.lower, choices=["debug", "info", "warning", "error"]
    )
    return p


def _server(args: argparse.Namespace) -> MetricsServer:
    client = Client.from_kubeconfig(
        args.kubeconfig, servers=getattr(args, "server", ""), user_agent="corral-metrics-server"
    )
    return MetricsServer(
        client,
        bind=args.bind,
        port=args.port,
        advertise=args.advertise_address,
        resolution=args.metric_resolution,
        tls_cert_file=args.tls_cert_file,
        tls_key_file=args.tls_private_key_file,
        requestheader_client_ca_file=args.requestheader_client_ca_file,
        client_ca_file=args.client_ca_file,
    )


async def _serve(server: MetricsServer, exit_on_stdin_eof: bool) -> None:
    try:
        await run_until_stopped(
            server.run(), name="metrics-server", exit_on_stdin_eof=exit_on_stdin_eof
        )
    finally:
        await server.client.close()


def main(argv: list[str]) -> int:
    """``corral metrics-server --kubeconfig FILE [--port P] [--bind A]``; exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        server = _server(args)
    except (OSError, ValueError) as e:
        print(f"corral metrics-server: {e}", file=sys.stderr)
        return 2
    eventloop.run(lambda: _serve(server, args.exit_on_stdin_eof))
    return 0


async def serve(argv: list[str]) -> None:
    """``corral metrics-server ARGS`` inside another process (``corral up``): no signal
    handlers, no logging set-up. Bad arguments raise ``ValueError``."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        raise ValueError(f"corral metrics-server: bad arguments {argv}") from None
    server = _server(args)
    try:
        await server.run()
    finally:
        await server.client.close()
