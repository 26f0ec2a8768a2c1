"""The slow-watcher bound of the watch cache: it measures what a client has left
unread, so one event bigger than the bound does not expire a watcher that keeps up."""

from __future__ import annotations

import orjson

from corral.storage.base import KV, PUT, Event
from corral.storage.cache import BacklogBudget, ResourceCache, Watcher


def _put(rc: ResourceCache, name: str, rev: int, size: int) -> None:
    obj = {"metadata": {"name": name, "namespace": "default"}, "data": {"x": "a" * size}}
    key = f"{rc.prefix}default/{name}"
    rc.apply(Event(PUT, KV(key, obj, orjson.dumps(obj), rev, rev), None, rev))


def test_one_big_event_does_not_expire_a_watcher_that_keeps_up() -> None:
    """A 20 KB object past a 10 KB bound, to a watcher with nothing queued: delivered
    (upstream expires a watcher whose buffer is full, never one with an empty buffer);
    every watcher of the resource got a 410 for each such write, and re-listed."""
    rc = ResourceCache("/registry/g.example.com/foos/", {}, budget=BacklogBudget(10_000))
    w = Watcher(None, None, None)
    rc.add_watcher(w, 0, 0)
    _put(rc, "big", 1, 20_000)
    ev = w.queue.get_nowait()
    assert ev is not None and ev.type == "ADDED", f"got {ev and ev.type}: expired"
    assert not w.closed and rc.budget.expired == 0
    _put(rc, "big2", 2, 20_000)  # still unread: the next one is past the bound
    _put(rc, "big3", 3, 20_000)
    assert w.closed and rc.budget.expired == 1
