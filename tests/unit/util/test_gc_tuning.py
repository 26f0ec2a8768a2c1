"""``util/gc_tuning.settling``: the heap is settled once the work says it has synced, and
the work's result, errors and cancellation pass through unchanged. (``settle_heap`` itself
is replaced by a recorder: it would freeze the test process's heap.)"""

from __future__ import annotations

import asyncio

import pytest

from corral.util import gc_tuning


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(gc_tuning, "settle_heap", lambda: calls.append("settled"))
    return calls


async def test_the_heap_is_settled_once_the_work_is_ready(settled: list[str]) -> None:
    ready = asyncio.Event()
    seen: list[list[str]] = []

    async def work() -> None:
        await asyncio.sleep(0)
        seen.append(list(settled))  # not before the first lists are in
        ready.set()
        await asyncio.sleep(0.01)
        seen.append(list(settled))

    await gc_tuning.settling(work, ready)()
    assert seen == [[], ["settled"]]


async def test_work_that_ends_or_fails_before_it_is_ready_settles_nothing(
    settled: list[str],
) -> None:
    ready = asyncio.Event()

    async def fails() -> None:
        raise RuntimeError("no server")

    with pytest.raises(RuntimeError, match="no server"):  # as raised, not in a group
        await gc_tuning.settling(fails, ready)()

    async def ends() -> None:
        await asyncio.sleep(0)

    await gc_tuning.settling(ends, ready)()
    ready.set()
    await asyncio.sleep(0.01)
    assert settled == []


async def test_cancelling_the_work_passes_through(settled: list[str]) -> None:
    ready = asyncio.Event()
    task = asyncio.create_task(gc_tuning.settling(asyncio.Event().wait, ready)())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    ready.set()
    await asyncio.sleep(0.01)
    assert settled == []
