"""The garbage collector's set-up for a long-running process whose first lists are in.

A control-plane process (the API server's watch cache, the scheduler's and the
controllers' informers, the hollow agent's thousands of nodes) holds a large heap of
decoded objects that live as long as the process. CPython's collector scans the young
generation every 700 net allocations and, each time it promotes, walks ever more of
that heap: decoding one 3 KB watch event then costs ~20x its own time (issue 19: the
scheduler spent 35-42% of its CPU on ``orjson.loads`` lines, nearly all of it the
collector). ``settle_heap`` moves everything alive now into the permanent generation
(``gc.freeze``), out of every later scan, and collects the young generation only every
50,000 net allocations. Objects that come later are young and collected as usual; the
collector stays on, so reference cycles are still freed. Only cycles among the frozen
objects would outlive their last reference, and these processes build none (decoded
JSON is acyclic).

The older generations keep CPython's thresholds on purpose. Every object that stays
alive (a cached pod: ~37 tracked objects) is walked once by a young pass and once by a
generation-1 pass, whatever the thresholds; raising the generation-1 one (20 -> 100)
only defers that walk. In a replay of real pod events (issue 19, 33k pods cached) it
looked 30% cheaper because the deferred pass had not come yet; at 53k pods it came, one
2.6 s pause instead of five of 0.35 s, for the same CPU in all. Freezing again later
(after a relist, after each generation-1 pass) would skip the walk but freezes whatever
cycles are alive then (asyncio tasks, exceptions): once dead, they would never be freed.

Called once per process: by ``apiserver/server.py`` after the watch cache's load, and
through ``settling`` by the commands ``corral scheduler``, ``corral controller-manager``
and ``corral agent`` (hollow or not) once their informers have synced. The set-up is
process-wide, so the loops call it from their commands, not from the classes that tests
(and ``corral up``'s in-process loops, in the server's already settled process) build.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

#: net allocations between two young-generation collections (CPython's default: 700)
YOUNG_THRESHOLD = 50_000


def settle_heap() -> None:
    """Collect once, freeze what survives, and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 20, 100)


def settling(
    work: Callable[[], Awaitable[Any]], ready: asyncio.Event
) -> Callable[[], Coroutine[Any, Any, None]]:
    """``work`` that calls ``settle_heap`` once ``ready`` is set (the first lists are in).

    The returned callable awaits ``work()`` exactly as before (its result, its errors, its
    cancellation); beside it one task waits for ``ready`` and is cancelled when the work
    ends, whichever way.
    """

    async def when_ready() -> None:
        await ready.wait()
        settle_heap()

    async def run() -> None:
        waiter = asyncio.create_task(when_ready(), name="gc-settle")
        try:
            await work()
        finally:
            waiter.cancel()

    return run
