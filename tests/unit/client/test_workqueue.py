"""The de-duplicating work queue."""

from __future__ import annotations

import asyncio

from corral.client.informer import WorkQueue


async def test_dedup_and_dirty_requeue() -> None:
    q = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    k = await q.get()
    assert k == "a"
    q.add("a")  # while processing: re-queued when done, not twice
    assert len(q) == 1
    q.done("a")
    assert len(q) == 2


async def test_retry_backs_off_and_forget_resets() -> None:
    q = WorkQueue()
    d1 = q.retry("x")
    d2 = q._failures["x"]
    assert d1 == 0.005 and d2 == 1
    await asyncio.sleep(0.02)
    assert await asyncio.wait_for(q.get(), 1) == "x"
    q.done("x")
    assert q.retry("x") == 0.01
    q.forget("x")
    assert "x" not in q._failures
    q.close()
