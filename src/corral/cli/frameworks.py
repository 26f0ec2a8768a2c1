"""What ``corral chronos`` and ``corral marathon`` share: serving a framework's REST API
beside its service until a signal (or, as ``corral server``'s child, stdin's EOF), the
process's start-up (logging, uvloop, one clear line for a port in use), and the
``corral why KIND/NAME`` query of the framework's ``/corral/why/`` route.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from corral.util import eventloop
from corral.util.stopping import run_until_stopped

log = logging.getLogger("corral.cli")


async def serve(
    name: str,
    app: Any,
    service_run: Coroutine[Any, Any, None],
    *,
    bind: str,
    port: int,
    exit_on_stdin_eof: bool,
    close: Callable[[], Awaitable[None]],
    own_process: bool = True,
    elected: Any = None,
    loaded: asyncio.Event | None = None,
) -> None:
    """Serve the aiohttp ``app`` on ``bind:port`` and run ``service_run`` until it ends, a
    SIGINT/SIGTERM comes or (``exit_on_stdin_eof``) stdin closes; then ``close()`` the
    service and stop serving. The service's own failure is raised. Inside another
    process (``own_process`` false: ``corral up``) it installs no signal handlers and runs
    until cancelled. With an ``elected`` LeaderElector the listener answers at once (as a
    standby: the app finds the elector under ``LEADERSHIP``) and ``service_run`` runs
    only while this process holds the Lease; losing it raises ``LeadershipLost``. The
    app serves as the leader only once ``loaded`` is set (the service read its state)."""
    from aiohttp import web

    from corral.client import election

    if elected is not None:
        from corral.util.leadership import LEADERSHIP, LOADED

        app[LEADERSHIP] = elected
        if loaded is not None:
            app[LOADED] = loaded
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, bind, port).start()
    except BaseException:
        service_run.close()
        await runner.cleanup()
        raise

    async def work() -> None:
        await service_run

    try:
        await run_until_stopped(
            election.run_elected(elected, work),
            name=name,
            signals=own_process,
            exit_on_stdin_eof=exit_on_stdin_eof,
        )
    finally:
        service_run.close()  # never started when this process never led
        await close()
        await runner.cleanup()


def add_auth_flags(p: Any, what: str) -> None:
    """``--[no-]authenticate-http`` and Mesos' ``--mesos_authentication_*`` flags of
    ``corral marathon`` / ``corral chronos``."""
    import argparse

    p.add_argument(
        "--authenticate-http",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"require HTTP basic credentials (a Corral user and its token) and RBAC "
        f"on the {what} API (default: on)",
    )
    p.add_argument(
        "--mesos-authentication-principal",
        default="",
        metavar="USER",
        help="the principal to authenticate to the Mesos master as (a Corral user)",
    )
    p.add_argument(
        "--mesos-authentication-secret-file",
        default="",
        metavar="FILE",
        help="a file holding that principal's secret (one of its tokens)",
    )


def mesos_credentials(args: Any) -> tuple[str, str]:
    """(principal, secret) from the ``--mesos-authentication-*`` flags; ("", "") when
    unset. A secret file that cannot be read raises ``OSError``/``ValueError``."""
    from corral.client.basic_auth import read_secret_file

    principal = args.mesos_authentication_principal
    path = args.mesos_authentication_secret_file
    if not principal or not path:
        return "", ""
    return principal, read_secret_file(path)


def reviewer(client: Any, args: Any) -> Any:
    """A ``Reviewer`` for the REST API's authentication, or None with
    ``--no-authenticate-http``."""
    if not args.authenticate_http:
        return None
    from corral.client.reviews import Reviewer

    return Reviewer(client)


def run(command: str, log_level: str, main: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """``corral COMMAND``'s process: logging, uvloop when installed, ``main()`` in an event
    loop; an ``OSError`` (a port in use) is one line on stderr and exit status 1."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from corral.client.leaderelection import EXIT_LEADERSHIP_LOST, LeadershipLost

    try:
        eventloop.run(main)
    except OSError as e:
        print(f"corral {command}: {e}", file=sys.stderr)
        return 1
    except LeadershipLost as e:  # exit, to campaign afresh as a standby (as Marathon)
        log.error("corral %s: %s", command, e)
        return EXIT_LEADERSHIP_LOST
    return 0


def why(framework: str, where: str, url: str, what: str) -> int:
    """``corral why KIND/NAME``: GET ``url`` (a framework's ``/corral/why/...``) and print
    its reasons under ``what``; one line on stderr and status 1 when it cannot."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            data = json.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read()).get("message") or f"HTTP {e.code}"
        except ValueError:
            message = f"HTTP {e.code}"
        print(f"corral why: {what}: {message}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"corral why: cannot reach {framework} at {where}: {e}", file=sys.stderr)
        return 1
    print(f"{what}:")
    for line in data.get("reasons") or []:
        print(f"  {line}")
    return 0
