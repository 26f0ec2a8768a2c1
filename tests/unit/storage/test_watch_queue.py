"""``WatchQueue``: a watcher's one-consumer queue, its live counts, and ``get_within``
(the watch stream's wait for the next event or its bookmark timer)."""

from __future__ import annotations

import asyncio
import time

import pytest

from corral.storage.cache import BacklogBudget, Entry, WatchEvent
from corral.storage.watch_queue import WatchQueue


def _event(raw: bytes = b'{"a":1}', *, initial: bool = False) -> WatchEvent:
    return WatchEvent("ADDED", Entry("k", "", "k", raw, 1, {}, {}), initial=initial)


def test_items_come_out_in_order_and_counts_follow_the_live_ones() -> None:
    q = WatchQueue()
    q.budget = budget = BacklogBudget()
    first, replayed, last = _event(b"12345"), _event(b"123", initial=True), _event(b"1")
    for item in (first, replayed, last, None):
        q.put_nowait(item)
    assert (q.qsize(), q.live, q.live_bytes, budget.queued) == (4, 2, 6, 6)
    assert q.get_nowait() is first
    assert (q.live, q.live_bytes, budget.queued) == (1, 1, 1)
    assert q.get_nowait() is replayed  # an initial event was never counted
    assert q.get_nowait() is last
    assert q.get_nowait() is None
    assert q.empty() and (q.live, q.live_bytes, budget.queued) == (0, 0, 0)
    with pytest.raises(asyncio.QueueEmpty):
        q.get_nowait()


async def test_get_within_answers_at_once_when_an_event_is_queued() -> None:
    q = WatchQueue()
    e = _event()
    q.put_nowait(e)
    assert await q.get_within(0.0001) is e


async def test_get_within_wakes_on_a_put_and_times_out_without_one() -> None:
    q = WatchQueue()
    e = _event()
    asyncio.get_running_loop().call_later(0.05, q.put_nowait, e)
    start = time.monotonic()
    assert await q.get_within(10) is e
    assert time.monotonic() - start < 5
    with pytest.raises(TimeoutError):
        await q.get_within(0.05)
    q.put_nowait(None)  # the end of the stream is an item like any other
    assert await q.get_within(1) is None


async def test_a_cancelled_wait_leaves_the_queue_usable() -> None:
    q = WatchQueue()
    waiting = asyncio.create_task(q.get_within(30))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    e = _event()
    q.put_nowait(e)
    assert await q.get_within(1) is e


async def test_it_has_one_consumer() -> None:
    q = WatchQueue()
    first = asyncio.create_task(q.get_within(30))
    await asyncio.sleep(0.01)
    with pytest.raises(RuntimeError, match="one consumer"):
        await q.get_within(1)
    q.put_nowait(None)
    assert await first is None
