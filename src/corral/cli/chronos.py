"""``corral chronos`` (the Chronos service: REST API + a framework on the Mesos master)
and ``corral why job/NAME``. Called by ``cli.main``; ``corral server --chronos-port``
starts ``corral chronos`` as a child process beside the scheduler.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

log = logging.getLogger("corral.chronos")

DEFAULT_CHRONOS = "127.0.0.1:4400"


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "chronos",
        help="run Chronos (ISO 8601 and dependent batch jobs) as a framework on the Mesos master",
    )
    p.add_argument("--kubeconfig", default=None, help="how to reach the API server")
    p.add_argument("--port", type=int, default=4400, help="Chronos REST API port")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    p.add_argument("--master", default="127.0.0.1:5050", help="the Mesos master, HOST:PORT")
    p.add_argument("--role", default="*", help="the Mesos role its runs are offered under")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--exit-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)


async def _serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    from corral.chronos.http import build_app
    from corral.chronos.service import ChronosService
    from corral.cli.scheduler import _stdin_eof, default_kubeconfig
    from corral.client.rest import Client

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    client = Client.from_kubeconfig(
        args.kubeconfig or default_kubeconfig(), user_agent="corral-chronos"
    )
    host = "127.0.0.1" if args.bind in ("0.0.0.0", "::") else args.bind
    service = ChronosService(client, args.master, leader=f"{host}:{args.port}", role=args.role)
    runner = web.AppRunner(build_app(service), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    await web.TCPSite(runner, args.bind, args.port).start()
    log.info("Chronos API on http://%s:%d (Mesos master %s)", args.bind, args.port, args.master)
    task = asyncio.create_task(service.run(), name="chronos")
    waits: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
    if args.exit_on_stdin_eof:
        waits.append(asyncio.create_task(_stdin_eof()))
    try:
        await asyncio.wait([task, *waits], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in [task, *waits]:
            t.cancel()
        for t in [task, *waits]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if service.framework is not None:
            await service.framework.close()
        await runner.cleanup()
        await client.close()
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    try:
        asyncio.run(_serve(args))
    except OSError as e:
        print(f"corral chronos: {e}", file=sys.stderr)
        return 1
    return 0


def why_job(args: argparse.Namespace, name: str) -> int:
    """``corral why job/NAME``: what the job waits for (a parent, a slot, offers)."""
    where = getattr(args, "chronos", None) or DEFAULT_CHRONOS
    url = f"http://{where}/corral/why/{urllib.parse.quote(name, safe='')}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            data = json.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read()).get("message") or f"HTTP {e.code}"
        except ValueError:
            message = f"HTTP {e.code}"
        print(f"corral why: job/{name}: {message}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"corral why: cannot reach Chronos at {where}: {e}", file=sys.stderr)
        return 1
    print(f"job/{name}:")
    for line in data.get("reasons") or []:
        print(f"  {line}")
    return 0
