"""``SchedulerClient`` given several masters (``mesos/framework_client.py``): the list is
parsed, an unreachable master is skipped for the next one, and a standby that answers
503 (no leader yet) is left for the next one too. Fake masters in this process: the real
ones' leader behaviour is ``tests/integration/test_framework_leaders.py``."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiohttp import web

from corral.mesos.framework_client import SchedulerClient, master_list
from corral.testing.process import free_ports
from corral.testing.wait import until
from corral.util.recordio import encode

INFO = {"user": "root", "name": "several-masters"}


@pytest.mark.parametrize(
    ("given", "want"),
    [
        ("h1:5051", ["http://h1:5051"]),
        ("h1:5051, h2", ["http://h1:5051", "http://h2:5050"]),
        ("h1:5051,h1:5051,,h2:1", ["http://h1:5051", "http://h2:1"]),
        ("http://h1:5051,//h2:5052", ["http://h1:5051", "http://h2:5052"]),
    ],
    ids=["one", "default-port", "duplicates-and-blanks", "urls"],
)
def test_master_list(given: str, want: list[str]) -> None:
    assert master_list(given) == want


def test_master_list_needs_one() -> None:
    with pytest.raises(ValueError, match="no master"):
        master_list(" , ")


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def test_the_client_moves_past_dead_and_leaderless_masters() -> None:
    dead, standby, leader = free_ports(3)  # nothing listens on ``dead``
    seen: list[int] = []

    async def no_leader(request: web.Request) -> web.Response:
        seen.append(standby)
        return web.Response(status=503, text="No leader elected")

    async def leading(request: web.Request) -> web.StreamResponse:
        seen.append(leader)
        await request.read()
        resp = web.StreamResponse(headers={"Mesos-Stream-Id": "s1"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        subscribed = {"type": "SUBSCRIBED", "subscribed": {"framework_id": {"value": "F-1"}}}
        await resp.write(encode(orjson.dumps(subscribed)))
        await asyncio.sleep(3600)
        return resp

    runners = []
    for port, handler in ((standby, no_leader), (leader, leading)):
        app = web.Application()
        app.router.add_post("/api/v1/scheduler", handler)
        runners.append(await _serve(app, port))
    masters = ",".join(f"127.0.0.1:{p}" for p in (dead, standby, leader))
    client = SchedulerClient(masters, INFO, on_event=lambda event: None)
    run = asyncio.create_task(client.run())
    try:
        await until(lambda: asyncio.sleep(0, client.connected.is_set()), 10)
        assert client.master == f"http://127.0.0.1:{leader}"
        assert client.framework_id == "F-1"
        assert seen == [standby, leader]
    finally:
        await client.close()
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        for runner in runners:
            await runner.cleanup()
