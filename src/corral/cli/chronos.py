"""``corral chronos`` (the Chronos service: REST API + a framework on the Mesos master)
and ``corral why job/NAME``. Called by ``cli.main``; ``corral server --chronos-port``
starts ``corral chronos`` as a child process beside the scheduler.
"""

from __future__ import annotations

import argparse
import logging
import urllib.parse
from typing import Any

from corral.cli import frameworks

log = logging.getLogger("corral.chronos")

DEFAULT_CHRONOS = "127.0.0.1:4400"


def add_parsers(sub: Any) -> None:
    from corral.client.rest import add_server_flag

    p = sub.add_parser(
        "chronos",
        help="run Chronos (ISO 8601 and dependent batch jobs) as a framework on the Mesos master",
    )
    p.add_argument("--kubeconfig", default=None, help="how to reach the API server")
    add_server_flag(p)
    p.add_argument("--port", type=int, default=4400, help="Chronos REST API port")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    p.add_argument(
        "--master",
        default="127.0.0.1:5050",
        help="the Mesos master, HOST:PORT[,HOST:PORT...] (several elected masters: tried in turn)",
    )
    p.add_argument("--role", default="*", help="the Mesos role its runs are offered under")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--exit-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)
    frameworks.add_auth_flags(p, "Chronos")
    from corral.client import election

    election.add_flags(p, "Chronos's framework and state")


async def _serve(args: argparse.Namespace, own_process: bool = True) -> None:
    from corral.chronos.http import build_app
    from corral.chronos.service import ChronosService
    from corral.cli.scheduler import default_kubeconfig
    from corral.client import election
    from corral.client.rest import Client

    client = Client.from_kubeconfig(
        args.kubeconfig or default_kubeconfig(),
        servers=getattr(args, "server", ""),
        user_agent="corral-chronos",
    )
    host = "127.0.0.1" if args.bind in ("0.0.0.0", "::") else args.bind
    principal, secret = frameworks.mesos_credentials(args)
    service = ChronosService(
        client,
        args.master,
        leader=f"{host}:{args.port}",
        role=args.role,
        principal=principal,
        secret=secret,
    )

    async def close() -> None:
        if service.framework is not None:
            await service.framework.close()
        await client.close()

    log.info("Chronos API on http://%s:%d (Mesos master %s)", args.bind, args.port, args.master)
    await frameworks.serve(
        "chronos",
        build_app(service, frameworks.reviewer(client, args)),
        service.run(),
        bind=args.bind,
        port=args.port,
        exit_on_stdin_eof=args.exit_on_stdin_eof,
        close=close,
        own_process=own_process,
        loaded=service.ready,
        elected=election.elector(
            client, args, "chronos", {"chronos": election.advertised(args.bind, args.port)}
        ),
    )


def run(args: argparse.Namespace) -> int:
    return frameworks.run("chronos", args.log_level, lambda: _serve(args))


def why_job(args: argparse.Namespace, name: str) -> int:
    """``corral why job/NAME``: what the job waits for (a parent, a slot, offers)."""
    where = getattr(args, "chronos", None) or DEFAULT_CHRONOS
    url = f"http://{where}/corral/why/{urllib.parse.quote(name, safe='')}"
    return frameworks.why("Chronos", where, url, f"job/{name}")
