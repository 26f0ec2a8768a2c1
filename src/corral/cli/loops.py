"""The control loops ``corral up`` runs inside the API server's process.

``IN_PROCESS`` maps a command (``scheduler``, with the Mesos master; ``controller-manager``;
``metrics-server``; ``chronos``; ``marathon``) to a coroutine of the argument list ``corral server`` would
give that command as a child process (``Server._start_child``). Each parses those
arguments with the command's own parser and runs the command's own work until cancelled,
as an ordinary API client over loopback HTTPS: the only difference from the child
process is that it installs no signal handlers (the server's Ctrl-C handler stays in
charge), sets up no logging and does not watch stdin. ``apiserver/children.py``
supervises them: a loop that raises is logged with its traceback and started again.

Why one process: each Python process of the control plane costs ~35-45 MB of interpreter,
aiohttp, uvloop and its imports before it holds any object; four of them beside the API
server were most of ``corral up``'s footprint (``bench/footprint.py``). The price is the
second core: the loops and the API server now share one event loop. ``corral up
--loops processes`` (and ``corral server``, by default) keeps the children, and every
command still runs alone on another machine.

Called by ``cli/main.py`` when it builds the ``Server``; imports each command lazily, so
only what runs is loaded.
"""

from __future__ import annotations

import argparse

from corral.apiserver.children import LoopMain


def _parse(command: str, argv: list[str]) -> argparse.Namespace:
    """``corral COMMAND ARGV`` parsed by the CLI's own parser; ``ValueError`` if bad."""
    from corral.cli.main import build_parser

    try:
        return build_parser().parse_args([command, *argv])
    except SystemExit:
        raise ValueError(f"corral {command}: bad arguments {argv}") from None


async def scheduler(argv: list[str]) -> None:
    """``corral scheduler ARGV`` (and its Mesos master with ``--mesos-port``)."""
    from corral.cli import scheduler as scheduler_cli
    from corral.scheduler import config

    args = _parse("scheduler", argv)
    cfg = config.load(args.config) if args.config else config.SchedulerConfig()
    await scheduler_cli.serve_scheduler(args, cfg.profile(args.scheduler_name))


async def controller_manager(argv: list[str]) -> None:
    """``corral controller-manager ARGV``."""
    from corral.controllers import manager

    await manager.serve(argv)


async def chronos(argv: list[str]) -> None:
    """``corral chronos ARGV``: its REST API and its framework on the master."""
    from corral.cli import chronos as chronos_cli

    await chronos_cli._serve(_parse("chronos", argv), own_process=False)


async def marathon(argv: list[str]) -> None:
    """``corral marathon ARGV``: its REST API and its framework on the master."""
    from corral.cli import marathon as marathon_cli

    await marathon_cli._serve(_parse("marathon", argv), own_process=False)


async def metrics_server(argv: list[str]) -> None:
    """``corral metrics-server ARGV``: the resource metrics API, scraping the agents."""
    from corral.metrics import command as metrics

    await metrics.serve(argv)


IN_PROCESS: dict[str, LoopMain] = {
    "scheduler": scheduler,
    "controller-manager": controller_manager,
    "metrics-server": metrics_server,
    "chronos": chronos,
    "marathon": marathon,
}
