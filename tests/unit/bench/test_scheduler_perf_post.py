"""``bench/scheduler_perf.py``'s load generator: ``_post_all`` sends every body once, by
either client (the lean HTTP/1.1 pool the shape uses, or an aiohttp session), notes when
each was sent and how long it took, and fails on an answer of 300 or more.

A real aiohttp server on loopback answers; ``bench`` is imported by ``import_bench``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import ModuleType

import aiohttp
import orjson
import pytest
from aiohttp import web
from yarl import URL

from corral.client.http1 import Pool


@pytest.fixture(scope="module")
def sp(import_bench: Callable[[str], ModuleType]) -> ModuleType:
    return import_bench("scheduler_perf")


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[dict[str, object]]]]:
    got: list[dict[str, object]] = []

    async def create(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        if request.headers.get("Content-Type") != "application/json":
            return web.Response(status=415)
        if body["metadata"]["name"] == "refused":
            return web.Response(status=409, body=b'{"reason":"AlreadyExists"}')
        got.append(body)
        return web.Response(status=201, body=orjson.dumps(body))

    app = web.Application()
    app.router.add_post("/pods", create)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", got
    finally:
        await runner.cleanup()


def _bodies(n: int) -> list[dict[str, object]]:
    return [{"metadata": {"name": f"p-{i}"}} for i in range(n)]


async def test_the_lean_client_posts_every_body_once(
    sp: ModuleType, server: tuple[str, list[dict[str, object]]]
) -> None:
    url, got = server
    pool = Pool(URL(url), False, [], limit=4)
    sent: dict[str, float] = {}
    took: list[float] = []
    try:
        await sp._post_all(sp.lean_post(pool), "/pods", _bodies(50), 8, sent, took)
    finally:
        pool.close()
    assert sorted(b["metadata"]["name"] for b in got) == sorted(f"p-{i}" for i in range(50))  # type: ignore[index]
    assert set(sent) == {f"p-{i}" for i in range(50)}
    assert len(took) == 50 and all(t >= 0 for t in took)


async def test_an_aiohttp_session_posts_every_body_once(
    sp: ModuleType, server: tuple[str, list[dict[str, object]]]
) -> None:
    url, got = server
    async with aiohttp.ClientSession(base_url=url) as s:
        await sp._post_all(sp.aiohttp_post(s), "/pods", _bodies(20), 4)
    assert len(got) == 20


@pytest.mark.parametrize("client", ["lean", "aiohttp"])
async def test_a_refused_create_fails_the_load(
    sp: ModuleType, server: tuple[str, list[dict[str, object]]], client: str
) -> None:
    url, _ = server
    pool = Pool(URL(url), False, [], limit=2)
    try:
        async with aiohttp.ClientSession(base_url=url) as s:
            post = sp.lean_post(pool) if client == "lean" else sp.aiohttp_post(s)
            with pytest.raises(RuntimeError, match="POST /pods: 409"):
                await sp._post_all(post, "/pods", [{"metadata": {"name": "refused"}}], 1)
    finally:
        pool.close()
