"""The event loop a long-running ``corral`` command runs on: uvloop when it is installed.

uvloop's loop, transports and TLS are compiled; on asyncio's own selector loop the same
work costs more of the process's CPU (issue 19: the controller manager, which spends
most of its time reading watch streams, took ~6% more CPU on asyncio's loop). ``run``
runs one coroutine to its end on it, without touching the process's event-loop policy,
so an in-process caller (a test) keeps its own loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``main()`` to the end on uvloop when it is installed, else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
