"""The Chronos service's shell, with the API server and the master replaced by
recorders (what is tested is the order and durability of what the shell sends, which
the real components cannot be made to fail on cue): acknowledgements only after a
durable write, REVIVE/SUPPRESS sent one at a time as the planner's flag stands, master
calls kept off the event and tick paths."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from corral.api.errors import StatusError
from corral.chronos import jobs
from corral.chronos.instructions import Kill
from corral.chronos.offercalls import OfferState
from corral.chronos.service import ChronosService

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp()
Obj = dict[str, Any]


class Api:
    """Records status patches; fails them while ``failing``."""

    def __init__(self) -> None:
        self.failing = True
        self.patches: list[Obj] = []

    async def patch(self, res: Any, name: str, body: Obj, ns: str, sub: str = "") -> Obj:
        await asyncio.sleep(0)
        if self.failing:
            raise StatusError(500, "InternalError", "the store is down")
        self.patches.append(body)
        return obj_of(name, body.get("status") or {})


class Master:
    def __init__(self) -> None:
        self.acked: list[str] = []
        self.calls: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.suppressed: bool | None = None
        self.hang = asyncio.Event()

    async def acknowledge(self, status: Obj) -> None:
        self.acked.append(status["uuid"])

    async def _offer_call(self, suppress: bool, seconds: float) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(seconds)
        self.suppressed = suppress  # as the master sees it when the call arrives
        self.calls.append("SUPPRESS" if suppress else "REVIVE")
        self.in_flight -= 1

    async def suppress(self) -> None:
        await self._offer_call(True, 0.02)  # slower than a REVIVE: it could overtake

    async def revive(self) -> None:
        await self._offer_call(False, 0.0)

    async def kill(self, task_id: str, agent_id: str | None = None) -> None:
        self.calls.append("KILL")
        await self.hang.wait()  # an unreachable master


def obj_of(oname: str, status: Obj) -> Obj:
    return {
        "metadata": {"name": oname, "namespace": "chronos", "resourceVersion": "1"},
        "spec": {"job": {}},
        "status": status,
    }


async def settle(svc: ChronosService) -> None:
    while svc._loose:
        await asyncio.gather(*list(svc._loose), return_exceptions=True)


def finished(tid: str, uuid: str) -> Obj:
    status = {
        "task_id": {"value": tid},
        "state": "TASK_FINISHED",
        "uuid": uuid,
        "agent_id": {"value": "n1"},
    }
    return {"type": "UPDATE", "update": {"status": status}}


async def test_an_update_is_acknowledged_only_once_its_result_is_durable() -> None:
    api, master = Api(), Master()
    svc = ChronosService(api, "127.0.0.1:5050", clock=lambda: T0 + 5)  # type: ignore[arg-type]
    svc.framework = master  # type: ignore[assignment]
    svc.writes.backoff = 0.001
    spec = {
        "name": "x",
        "command": "true",
        "schedule": f"R/{datetime.fromtimestamp(T0, UTC):%Y-%m-%dT%H:%M:%SZ}/PT1H",
    }
    svc.informer.apply("ADDED", obj_of(jobs.object_name("x"), {}))
    svc.planner.upsert(spec, {}, T0 + 1)
    svc.planner.claimed("x", int(T0 * 1000))
    (launch,) = [i for i in svc.planner.offers([_offer()], T0 + 2) if hasattr(i, "tasks")]
    tid = launch.tasks[0]["task_id"]["value"]
    await svc._on_event(finished(tid, "u1"))
    await settle(svc)
    assert master.acked == []  # the write failed: the master will send it again
    api.failing = False
    await svc._on_event(finished(tid, "u1"))  # sent again; the planner has it already
    await settle(svc)
    assert master.acked == ["u1"]
    assert api.patches and api.patches[-1]["status"]["successCount"] == 1


async def test_revive_and_suppress_go_one_at_a_time_and_end_as_the_planner_wants() -> None:
    master = Master()
    wanted = [False]
    state = OfferState(lambda: master, lambda: wanted[0])  # type: ignore[arg-type,return-value]
    runner = asyncio.create_task(state.run())
    try:
        for flag in (True, False, True, False, True, False):
            wanted[0] = flag
            state.poke()
            await asyncio.sleep(0)
        while master.in_flight or state.master_suppressed != wanted[0]:
            await asyncio.sleep(0.005)
    finally:
        runner.cancel()
    assert master.most_in_flight == 1
    assert master.suppressed is False  # the master ends as the planner wants: offers


async def test_master_calls_do_not_hold_up_the_caller() -> None:
    master = Master()
    svc = ChronosService(None, "127.0.0.1:5050")  # type: ignore[arg-type]
    svc.framework = master  # type: ignore[assignment]
    waits = svc.dispatch([Kill("ct:1:0:x", "n1")])  # returns at once, nothing to await
    assert waits == []
    await asyncio.sleep(0.01)
    assert master.calls == ["KILL"]  # sent, and still waiting for the master
    master.hang.set()
    await settle(svc)


def _offer() -> Obj:
    return {
        "id": {"value": "O1"},
        "agent_id": {"value": "n1"},
        "hostname": "n1",
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 4}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 4096}},
        ],
    }
