"""How a long-running ``corral`` command stops: a signal, or its parent going away.

``corral server`` starts its loops (scheduler, controller manager, Chronos, Marathon,
DNS...) as child processes with ``--exit-on-stdin-eof`` and holds their stdin open: when
the server stops or dies, the pipe closes and the child must end too. ``run_until_stopped``
is what each command's ``main`` awaits: its work until the work ends by itself, SIGINT or
SIGTERM comes, or stdin closes; then the work is cancelled and awaited, and its own
failure, if any, raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Coroutine
from typing import Any


async def stdin_eof() -> None:
    """Returns when stdin closes: the parent that started this process is gone."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
        )
    except (ValueError, OSError):  # not a pipe (a regular file): block in a thread
        await asyncio.to_thread(sys.stdin.buffer.read)
        return
    try:
        while await reader.read(65536):
            pass
    finally:
        transport.close()


async def run_until_stopped(
    work: Coroutine[Any, Any, None],
    *,
    name: str = "main",
    signals: bool = True,
    exit_on_stdin_eof: bool = False,
) -> None:
    """Run ``work`` until it ends, a SIGINT/SIGTERM arrives (``signals``) or stdin closes
    (``exit_on_stdin_eof``); then cancel it and wait for it. Raises what ``work`` raised
    (a cancellation from outside is passed on too)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled = (signal.SIGINT, signal.SIGTERM) if signals else ()
    for sig in handled:
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(work, name=name)
    waits: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
    if exit_on_stdin_eof:
        waits.append(asyncio.create_task(stdin_eof()))
    try:
        await asyncio.wait([task, *waits], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in [task, *waits]:
            t.cancel()
        for t in [task, *waits]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for sig in handled:
            loop.remove_signal_handler(sig)
    if not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
