"""``corral marathon`` (the Marathon service: the v2 REST API + a framework on the Mesos
master) and ``corral why app/ID``. Called by ``cli.main``; ``corral server
--marathon-port`` starts ``corral marathon`` as a child process beside the scheduler.

The REST API is ``corral.marathon.http.make_app(service, bus)``; this adds
``GET /corral/why/{id}`` (what ``corral why app/ID`` reads) to the app it returns.
"""

from __future__ import annotations

import argparse
import logging
import urllib.parse
from typing import Any

from corral.cli import frameworks

log = logging.getLogger("corral.marathon")

DEFAULT_MARATHON = "127.0.0.1:8080"
WHY_PATH = "/corral/why/"


def add_parsers(sub: Any) -> None:
    from corral.client.rest import add_server_flag

    p = sub.add_parser(
        "marathon",
        help="run Marathon (long-running services) as a framework on the Mesos master",
    )
    p.add_argument("--kubeconfig", default=None, help="how to reach the API server")
    add_server_flag(p)
    p.add_argument("--port", type=int, default=8080, help="Marathon REST API port")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    p.add_argument(
        "--master",
        default="127.0.0.1:5050",
        help="the Mesos master, HOST:PORT[,HOST:PORT...] (several elected masters: tried in turn)",
    )
    p.add_argument("--role", default="*", help="the Mesos role its instances are offered under")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--exit-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)
    frameworks.add_auth_flags(p, "Marathon")
    from corral.client import election

    election.add_flags(p, "Marathon's framework and state")


def build_web_app(service: Any, bus: Any, reviewer: Any = None) -> Any:
    """The REST API (``http.make_app``, authenticated with a ``reviewer``) plus the
    ``why`` route."""
    from aiohttp import web

    from corral.marathon.http import make_app

    app = make_app(service, bus, reviewer)

    async def why(request: web.Request) -> web.Response:
        app_id = "/" + request.match_info["app_id"].strip("/")
        if service.app(app_id) is None:
            return web.json_response({"message": f"App '{app_id}' does not exist"}, status=404)
        return web.json_response({"reasons": service.why(app_id)})

    app.router.add_get(WHY_PATH + "{app_id:.+}", why)
    return app


async def _serve(args: argparse.Namespace, own_process: bool = True) -> None:
    from corral.cli.scheduler import default_kubeconfig
    from corral.client import election
    from corral.client.rest import Client
    from corral.marathon.events import EventBus
    from corral.marathon.service import MarathonService

    client = Client.from_kubeconfig(
        args.kubeconfig or default_kubeconfig(),
        servers=getattr(args, "server", ""),
        user_agent="corral-marathon",
    )
    host = "127.0.0.1" if args.bind in ("0.0.0.0", "::") else args.bind
    bus = EventBus()
    principal, secret = frameworks.mesos_credentials(args)
    service = MarathonService(
        client,
        args.master,
        leader=f"{host}:{args.port}",
        events=bus,
        role=args.role,
        principal=principal,
        secret=secret,
    )

    async def close() -> None:
        await service.close()
        bus.close_all()
        await client.close()

    log.info("Marathon API on http://%s:%d (Mesos master %s)", args.bind, args.port, args.master)
    await frameworks.serve(
        "marathon",
        build_web_app(service, bus, frameworks.reviewer(client, args)),
        service.run(),
        bind=args.bind,
        port=args.port,
        exit_on_stdin_eof=args.exit_on_stdin_eof,
        close=close,
        own_process=own_process,
        loaded=service.ready,
        elected=election.elector(
            client, args, "marathon", {"marathon": election.advertised(args.bind, args.port)}
        ),
    )


def run(args: argparse.Namespace) -> int:
    return frameworks.run("marathon", args.log_level, lambda: _serve(args))


def why_app(args: argparse.Namespace, app_id: str) -> int:
    """``corral why app/ID``: what the app waits for (a deployment, offers, back-off)."""
    where = getattr(args, "marathon", None) or DEFAULT_MARATHON
    path = urllib.parse.quote(app_id.strip("/"), safe="/")
    url = f"http://{where}{WHY_PATH}{path}"
    return frameworks.why("Marathon", where, url, f"app/{app_id.strip('/')}")
