"""The watch handler over real HTTP (aiohttp's test server, the real Registry and watch
cache): a ``watch`` value serves what authorization and priority-and-fairness were told
(``request_info.resolve``), and a stream that ends early gives its queued backlog back
to the cache's slow-watcher budget."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from corral.apiserver.handlers import ResourceHandler
from corral.apiserver.request import parse_path
from corral.apiserver.request_info import resolve
from corral.apiserver.store import Registry, WriteOptions

CM = "/api/v1/namespaces/default/configmaps"
BIG = 256 * 1024
#: what a handler raised (a client going away is not an error)
RAISED: list[Exception] = []


@pytest.fixture
async def server(registry: Registry) -> AsyncIterator[TestServer]:
    handler = ResourceHandler(registry)
    info = registry.by_gvr[("", "v1", "configmaps")]

    async def route(request: web.Request) -> web.StreamResponse:
        p = parse_path(request.path)
        assert p is not None
        try:
            return await handler.dispatch(request, p, info)
        except Exception as e:  # the API middleware would log it as a 500
            RAISED.append(e)
            raise

    app = web.Application()
    app.router.add_route("*", r"/{tail:[\s\S]*}", route)
    RAISED.clear()
    async with TestServer(app) as srv:
        yield srv


async def _create(registry: Registry, name: str, size: int = 10) -> None:
    info = registry.by_gvr[("", "v1", "configmaps")]
    obj = {"metadata": {"name": name}, "data": {"k": "x" * size}}
    await registry.create(info, "default", obj, WriteOptions())


@pytest.mark.parametrize("value", ["yes", "True", "TRUE", "t", ""])
async def test_watch_value_served_as_authorized(
    server: TestServer, registry: Registry, value: str
) -> None:
    """Upstream's rule: any value but "0" and "false" (any case) is a watch. Served as a
    list, ``watch=yes`` was authorized and admitted as a watch (the seat freed at once,
    width 1) but answered the whole list: a way around list width and RBAC's list verb."""
    await _create(registry, "a")
    query = {"watch": value, "timeoutSeconds": "1"}
    assert resolve("GET", CM, query).verb == "watch"
    async with TestClient(server) as client:
        resp = await client.get(CM, params=query)
        assert resp.status == 200
        first = orjson.loads(await resp.content.readline())
        assert first.get("type") == "ADDED", f"watch={value!r} was answered with {first}"
        resp.close()


async def test_an_ended_stream_gives_its_backlog_back(
    server: TestServer, registry: Registry
) -> None:
    """A client that stops reading, then goes away: the events still queued for it were
    counted in the slow-watcher budget; they must be uncounted when the stream ends, or
    the count only grows and, past its bound, healthy watchers get expired."""
    budget = registry.cache.backlog
    rc = registry.rcache(registry.by_gvr[("", "v1", "configmaps")])
    _reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(f"GET {CM}?watch=true HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        async with asyncio.timeout(30):  # a guard, not a measure
            while rc.watcher_count() == 0:
                await asyncio.sleep(0.01)
        n = 0
        # Until the stream's writes stall (the client reads nothing): then events pile up
        # in its queue (a create takes many loop turns, a stream that keeps up drains it)
        while budget.queued < 3 * BIG:
            await _create(registry, f"big-{n}", BIG)
            n += 1
            assert n < 400, "the stream never stalled"
    finally:
        writer.transport.abort()  # the client goes away with the stream unread
    async with asyncio.timeout(30):
        while rc.watcher_count():
            await asyncio.sleep(0.01)
    assert budget.queued == 0, f"{budget.queued} bytes still counted for a dead stream"
    assert RAISED == [], "a client gone mid-stream is not an internal error"


async def test_get_with_a_resource_version_ahead_of_the_cache_is_too_large(
    server: TestServer, registry: Registry
) -> None:
    """GET ?resourceVersion=R with R past what this server's cache has (R seen on another
    server; here past the store itself) answers upstream's 504 ResourceVersionTooLarge
    (client-go retries it) instead of an older object than the client has seen."""
    await _create(registry, "rv")
    ahead = registry.cache.revision + 1000
    async with TestClient(server) as client:
        ok = await client.get(f"{CM}/rv", params={"resourceVersion": "0"})
        assert ok.status == 200
        await client.get(f"{CM}/rv", params={"resourceVersion": str(ahead)})
    assert len(RAISED) == 1 and getattr(RAISED[0], "code", None) == 504
    assert RAISED[0].details["causes"][0]["reason"] == "ResourceVersionTooLarge"  # type: ignore[attr-defined]
