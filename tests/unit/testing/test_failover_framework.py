"""The fault scenarios' pymesos framework (``corral.testing.faults.failover_framework``)
survives a call its master refuses.

``test_fault_ha`` failed once in CI: a master lost its leadership 8 ms after the
framework subscribed to it, answered the framework's DECLINE ``503 No leader elected`` (as
a Mesos master does then), and pymesos raised that from inside its event thread, which
died: the framework never reconnected. libmesos' driver never raises a call's failure to
the scheduler, so the framework now drops (and records) it.

Here a real pymesos driver, in the state it was in (subscribed: a stream id and a
FrameworkID), calls a real Corral master app that has just lost its leadership with no
successor known."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import addict
import pymesos
from aiohttp.test_utils import TestServer

from corral.client.rest import Client, KubeConfig
from corral.mesos.http import build_app
from corral.mesos.master import Master
from corral.offers.allocator import Allocator
from corral.scheduler.scheduler import Scheduler
from corral.testing.clock import FakeClock
from corral.testing.faults.failover_framework import Launcher
from corral.testing.mesos import resources
from corral.util import leadership


class Lost:
    """A master's elector right after it stopped leading: nobody holds the Lease."""

    @property
    def is_leader(self) -> bool:
        return False

    def leader_advertise(self) -> dict[str, str] | None:
        return None


def _offer(cpus: float) -> addict.Dict:
    return addict.Dict(
        {"id": {"value": "O1"}, "agent_id": {"value": "A1"}, "resources": resources(cpus, 64)}
    )


async def test_calls_a_demoted_master_refuses_are_recorded_not_raised(tmp_path: Path) -> None:
    clock = FakeClock()
    client = Client(KubeConfig("https://127.0.0.1:1", "token", None))  # never reached
    sched = Scheduler(client, clock=clock)
    app = build_app(Master(client, sched, Allocator(sched.table, clock), clock=clock))
    app[leadership.LEADERSHIP] = Lost()
    out = tmp_path / "fw.jsonl"
    fw = Launcher(out, "t", tasks=1)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        driver = pymesos.MesosSchedulerDriver(
            fw, {"user": "root", "name": "t"}, f"127.0.0.1:{server.port}", use_addict=True
        )
        driver._master = f"127.0.0.1:{server.port}"  # (what its event thread sets)
        driver.stream_id = "stream-1"  # subscribed...
        driver.framework_id = "F1"  # ...as F1
        # one offer launched, then a reconciliation: each refused with a 503, each a
        # RuntimeError out of pymesos' _send, which the callbacks must not raise; the
        # launch that did not happen is tried again on the next offer, under a new id
        await asyncio.to_thread(fw.resourceOffers, driver, [_offer(1.0), _offer(1.0)])
        await asyncio.to_thread(fw.reregistered, driver, {})
        driver._close()  # its keep-alive connection to the master
    finally:
        await server.close()
        await client.close()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    failed = [(r["call_failed"], r["why"]) for r in records if "call_failed" in r]
    assert [call for call, _ in failed] == ["ACCEPT", "ACCEPT", "RECONCILE"]
    assert all("503" in why for _, why in failed), failed
    assert (fw.launched, fw.live) == (2, set())  # t-0 and t-1 tried, neither live
