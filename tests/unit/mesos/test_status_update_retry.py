"""``--status-update-retry``: every unacknowledged status update is resent after the
flag's interval, doubling (as a Mesos agent's status update manager: 10 s, then twice as
long each time, up to 10 min), whatever produced the update."""

from __future__ import annotations

import argparse

import pytest

from corral.cli.scheduler import add_mesos_flags
from corral.client.rest import Client, KubeConfig
from corral.mesos import updates
from corral.mesos.master import Master
from corral.mesos.model import TaskState
from corral.offers.allocator import Allocator
from corral.scheduler.scheduler import Scheduler
from corral.testing.clock import FakeClock

RETRY = 1.0  # the suite's short form


async def test_a_task_finished_by_the_master_is_resent_on_the_flags_schedule() -> None:
    clock = FakeClock()
    client = Client(KubeConfig("https://127.0.0.1:1", "token", None))
    try:
        sched = Scheduler(client, clock=clock)
        master = Master(
            client, sched, Allocator(sched.table, clock), clock=clock, status_update_retry=RETRY
        )
        # as ``calls._start`` makes it: the launch then fails before a pod ran
        t = TaskState(framework_id="fw", task_id="t1", pod_key="ns/p", agent="a", role="*", info={})
        updates.finish_locally(master, t, "TASK_ERROR", "REASON_TASK_INVALID", "bad")
        assert t.pending is not None and t.next_retry == clock.monotonic() + RETRY
        # the resend after that one comes RETRY later too (then 2 RETRY, ...), not 10 s later
        assert t.backoff == RETRY
    finally:
        await client.close()


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_the_flag_wants_a_positive_interval(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    p = argparse.ArgumentParser()
    add_mesos_flags(p)
    with pytest.raises(SystemExit):
        p.parse_args(["--status-update-retry", value])
    assert "want a positive number of seconds" in capsys.readouterr().err
    assert p.parse_args(["--status-update-retry", "0.5"]).status_update_retry == 0.5
