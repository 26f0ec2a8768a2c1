"""A watcher's event queue: one consumer (its HTTP stream), counting the live events and
bytes it holds against the watch cache's backlog budget.

Apart from ``storage/cache.py`` because it is the watch path's one coroutine: that
module has none, so it can be compiled (``corral/native.py``), and this stays
interpreted."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from corral.storage.cache import BacklogBudget, WatchEvent


class WatchQueue:
    """A watcher's queue (one consumer: its HTTP stream) that counts the live events and
    bytes it holds.

    Not an ``asyncio.Queue``: every event of a watch passes through here, and that
    queue's bookkeeping (getter and putter deques, unfinished-task counts, a future per
    ``get``) cost more than the event's own fan-out; ``get_within`` waits with one future
    and one timer, and not at all when an event is queued, where ``asyncio.wait_for``
    of ``get()`` made a task each time."""

    __slots__ = ("_items", "_waiter", "budget", "live", "live_bytes")

    def __init__(self) -> None:
        self._items: deque[WatchEvent | None] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.live = 0
        self.live_bytes = 0
        self.budget: BacklogBudget | None = None

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: WatchEvent | None) -> None:
        self._items.append(item)
        if item is not None and not item.initial:
            size = len(item.entry.raw)
            self.live += 1
            self.live_bytes += size
            if self.budget is not None:
                self.budget.queued += size
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> WatchEvent | None:
        if not self._items:
            raise asyncio.QueueEmpty
        item = self._items.popleft()
        if item is not None and not item.initial:
            size = len(item.entry.raw)
            self.live -= 1
            self.live_bytes -= size
            if self.budget is not None:
                self.budget.queued -= size
        return item

    async def get_within(self, timeout: float) -> WatchEvent | None:
        """The next item, waiting at most ``timeout`` seconds (then ``TimeoutError``)."""
        if not self._items:
            await self._wait(timeout)
            if not self._items:
                raise TimeoutError
        return self.get_nowait()

    async def _wait(self, timeout: float) -> None:
        if self._waiter is not None:
            raise RuntimeError("a WatchQueue has one consumer")
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            timer.cancel()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
