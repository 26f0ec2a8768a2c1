"""The registry fixture of the API server's unit tests: a real ``Registry`` over SQLite
in ``tmp_path`` with its watch cache fed by the store, and the ``default`` namespace.

A module changes what it gets by overriding ``registry_clock`` (a ``FakeClock`` where it
moves time), ``registry_namespaces`` or ``registry`` itself (which may request this one
to build on it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from corral.apiserver.registry.table import RESOURCES
from corral.apiserver.store import Registry, WriteOptions
from corral.storage.cache import WatchCache
from corral.storage.sqlite import SQLiteStorage
from corral.util.clock import Clock, SystemClock


@pytest.fixture
def registry_clock() -> Clock:
    """The registry's clock: the system's unless a module overrides this."""
    return SystemClock()


@pytest.fixture
def registry_namespaces() -> tuple[str, ...]:
    """The namespaces the registry starts with."""
    return ("default",)


@pytest.fixture
async def registry(
    tmp_path: Path, registry_clock: Clock, registry_namespaces: tuple[str, ...]
) -> AsyncIterator[Registry]:
    storage = SQLiteStorage(tmp_path / "state.db")
    await storage.start()
    try:
        cache = WatchCache()
        reg = Registry(storage, cache, RESOURCES, registry_clock)
        kvs, rev = await storage.list("/registry/")
        cache.load(kvs, rev, [], rev)
        storage.listeners.append(cache.apply)
        ns = reg.by_gvr[("", "v1", "namespaces")]
        for name in registry_namespaces:
            await reg.create(ns, "", {"metadata": {"name": name}}, WriteOptions())
        yield reg
    finally:
        await storage.close()
