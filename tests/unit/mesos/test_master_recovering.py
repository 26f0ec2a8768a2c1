"""A Mesos master that has just taken its Lease answers its leader-only endpoints ``503
Master has not finished recovery`` (Mesos' words) until it has recovered its frameworks
and tasks (``Master.ready``), never from an empty state; what every master answers
itself (``/health``, ``/redirect``, ``/version``) stays open."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from corral.client.rest import Client, KubeConfig
from corral.mesos.http import build_app
from corral.mesos.master import Master
from corral.offers.allocator import Allocator
from corral.scheduler.scheduler import Scheduler
from corral.testing.clock import FakeClock
from corral.util import leadership


class Held:
    """A Lease holder (the ``Leadership`` protocol, as ``LeaderElector`` while leading)."""

    @property
    def is_leader(self) -> bool:
        return True

    def leader_advertise(self) -> dict[str, str] | None:
        return {"mesos": "127.0.0.1:1"}


def master_app() -> tuple[Client, Master, web.Application]:
    """A master (never run: nothing reaches its API server) and its HTTP app."""
    clock = FakeClock()
    client = Client(KubeConfig("https://127.0.0.1:1", "token", None))
    sched = Scheduler(client, clock=clock)
    master = Master(client, sched, Allocator(sched.table, clock), clock=clock)
    return client, master, build_app(master)


async def test_a_new_leader_refuses_until_it_has_recovered() -> None:
    client, master, app = master_app()
    app[leadership.LEADERSHIP] = Held()
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as http:
            for path in ("/master/state", "/master/frameworks", "/master/tasks"):
                resp = await http.get(path)
                assert (resp.status, await resp.text()) == (
                    503,
                    "Master has not finished recovery",
                ), path
            resp = await http.post("/api/v1", json={"type": "GET_FRAMEWORKS"})
            assert resp.status == 503
            assert (await http.get("/version")).status == 200
            assert (await http.get("/redirect", allow_redirects=False)).status == 307
            master.ready.set()  # recovered
            resp = await http.get("/master/state")
            assert resp.status == 200 and (await resp.json())["frameworks"] == []
    finally:
        await client.close()


class Left:
    """A restarted standby: the Lease is still held by this listener's previous run
    (same advertised address, another identity) or, later, by another master."""

    def __init__(self, advertise: dict[str, str], holder: str) -> None:
        self.advertise = advertise
        self.holder = holder

    @property
    def is_leader(self) -> bool:
        return False

    def leader_advertise(self) -> dict[str, str] | None:
        return {"mesos": self.holder}


async def test_a_standby_named_by_its_own_old_lease_says_no_leader_instead_of_looping() -> None:
    client, _, app = master_app()
    elector = Left({"mesos": "127.0.0.1:5050"}, holder="127.0.0.1:5050")
    app[leadership.LEADERSHIP] = elector
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as http:
            resp = await http.post("/api/v1/scheduler", json={}, allow_redirects=False)
            assert (resp.status, await resp.text()) == (503, "No leader elected")
            elector.holder = "127.0.0.1:5051"  # another master took the Lease
            resp = await http.post("/api/v1/scheduler", json={}, allow_redirects=False)
            assert resp.status == 307
            assert resp.headers["Location"] == "//127.0.0.1:5051/api/v1/scheduler"
    finally:
        await client.close()
