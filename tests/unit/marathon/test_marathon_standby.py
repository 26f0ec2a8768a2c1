"""A Marathon that has just taken its Lease does not answer from an empty state: until
its service has loaded the apps (``util.leadership.LOADED``) it is not the leader to its
HTTP layer, so a request waits for it (``wait_for_leader``) and is refused with Marathon's
``502 Could not determine the current leader`` if the load does not finish in time,
then served once it has."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer
from test_marathon_http import FakeService, app_body, seed

from corral.marathon.events import EventBus
from corral.marathon.http import make_app
from corral.util import leadership


class Held:
    """A Lease holder (the ``Leadership`` protocol, as ``LeaderElector`` while leading)."""

    def __init__(self, advertise: dict[str, str]) -> None:
        self.advertise = advertise

    @property
    def is_leader(self) -> bool:
        return True

    def leader_advertise(self) -> dict[str, str] | None:
        return dict(self.advertise)


async def test_a_new_leader_answers_only_once_its_apps_are_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(leadership, "LEADER_WAIT", 0.2)
    monkeypatch.setattr(leadership, "LEADER_POLL", 0.05)
    service = FakeService()  # empty until the service has read the store
    app = make_app(service, EventBus())
    held = Held({})
    loaded = asyncio.Event()
    app[leadership.LEADERSHIP] = held
    app[leadership.LOADED] = loaded
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    held.advertise["marathon"] = f"127.0.0.1:{server.port}"  # as it is on the Lease
    try:
        async with TestClient(server) as client:
            resp = await client.get("/v2/apps/web")
            assert resp.status == 502
            assert (await resp.json())["message"] == "Could not determine the current leader"
            # the Lease names it all along
            resp = await client.get("/v2/leader")
            assert await resp.json() == {"leader": f"127.0.0.1:{server.port}"}
            await seed(service, app_body("/web"))
            loaded.set()
            resp = await client.get("/v2/apps/web")
            assert resp.status == 200
            assert resp.headers["X-Marathon-Leader"] == f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()
