"""The event loop a long-running ``corral`` command runs on: uvloop when it is installed.

uvloop's loop, transports and TLS are compiled; on asyncio's own selector loop the same
work costs more of the process's CPU (issue 19: the controller manager, which spends
most of its time reading watch streams, ran on asyncio's loop while every other
component ran on uvloop). ``install`` makes it the loop of every later ``asyncio.run``;
``run`` runs one coroutine to its end on it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


def install() -> None:
    """Make uvloop the policy's loop when it is installed; else leave asyncio's."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``main()`` to the end on uvloop when it is installed, else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
