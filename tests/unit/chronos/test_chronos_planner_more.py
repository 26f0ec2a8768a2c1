"""The planner with the schedule, end to end on a fake clock: DST in a named zone,
catch-up after downtime, restarts and a second Chronos, "rerun from here", async jobs,
"mark success", ``maxRunSeconds``. What the service does with the instructions is
played by ``Shell`` (claims written, offers made, the status kept as stored)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from corral.chronos import schedule as sched
from corral.chronos.planner import (
    Claim,
    Instruction,
    Kill,
    Launch,
    Planner,
    Revive,
    Suppress,
    WriteStatus,
    parse_task_id,
    task_id,
)
from corral.chronos.service import ChronosService

NY = "America/New_York"
Obj = dict[str, Any]


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def job(name: str, **fields: Any) -> Obj:
    return {"name": name, "command": "true", "cpus": 0.1, "mem": 32, "retries": 0, **fields}


def offer(oid: str = "O1") -> Obj:
    return {
        "id": {"value": oid},
        "agent_id": {"value": "n1"},
        "hostname": "n1",
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 8}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 8192}},
        ],
    }


@dataclass
class Shell:
    """The service's part: a claim is written to the stored status (and succeeds unless
    the stored ``lastSlot`` is already as late), results are merged into it."""

    planner: Planner = field(default_factory=Planner)
    stored: dict[str, Obj] = field(default_factory=dict)  # job -> its stored status
    claims: list[tuple[str, int]] = field(default_factory=list)
    launched: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)

    def do(self, out: list[Instruction]) -> None:
        for ins in out:
            if isinstance(ins, Claim):
                status = self.stored.setdefault(ins.job, {})
                if int(status.get("lastSlot", -1)) >= ins.slot_ms:
                    # lost: another process claimed it (observed again, as the service does)
                    self.do(self.planner.claim_lost(ins.job, ins.slot_ms))
                    self.planner.observe(ins.job, dict(status))
                    continue
                status["lastSlot"] = ins.slot_ms
                if ins.schedule:
                    status["schedule"] = ins.schedule
                status.update(ins.status)
                self.claims.append((ins.job, ins.slot_ms))
                self.do(self.planner.claimed(ins.job, ins.slot_ms))
            elif isinstance(ins, WriteStatus):
                self.stored.setdefault(ins.job, {}).update(ins.status)
            elif isinstance(ins, Kill):
                self.killed.append(ins.task_id)

    def add(self, spec: Obj, now: float) -> None:
        self.do(self.planner.upsert(spec, dict(self.stored.get(spec["name"], {})), now))

    def tick(self, now: float) -> None:
        self.do(self.planner.tick(now))

    def offer(self, now: float) -> list[str]:
        tids = []
        for ins in self.planner.offers([offer()], now):
            if isinstance(ins, Launch):
                tids += [t["task_id"]["value"] for t in ins.tasks]
        self.launched += tids
        return tids

    def update(self, tid: str, state: str, now: float) -> None:
        status = {"task_id": {"value": tid}, "state": state, "agent_id": {"value": "n1"}}
        self.do(self.planner.update(status, now))

    def finish(self, now: float, state: str = "TASK_FINISHED") -> list[str]:
        """Launch what is queued and end it at once."""
        tids = self.offer(now)
        for tid in tids:
            self.update(tid, "TASK_RUNNING", now)
            self.update(tid, state, now + 0.1)
        return tids

    def slots(self, name: str) -> list[str]:
        return [iso(ms / 1000) for n, ms in self.claims if n == name]

    def restart(self) -> Shell:
        """A new Chronos process on the same stored state (its jobs re-read)."""
        return Shell(Planner(), self.stored)


# --- DST in a named zone ---------------------------------------------------------------------------
def run_days(shell: Shell, name: str, since: float, days: int) -> None:
    """Tick at every slot for ``days`` days, each run ending at once."""
    now = since
    for _ in range(days):
        nxt = shell.planner.next_due(now)
        assert nxt is not None
        now = nxt + 0.5
        shell.tick(now)
        shell.finish(now)


def daily(at: str, tz: str = NY) -> Obj:
    return job("nightly", schedule=f"R/{at}/P1D", scheduleTimeZone=tz)


def test_a_daily_0230_job_across_spring_forward_runs_at_0330_that_day_only() -> None:
    """02:30 does not exist on 2026-03-08 in New York: that day's run is at 03:30 EDT
    (the gap moves it forward), and the next days are at 02:30 again: the schedule
    rewritten after that run counts from 02:30, not from 03:30."""
    shell = Shell()
    shell.add(daily("2026-03-06T02:30:00"), ts("2026-03-05T12:00:00+00:00"))
    run_days(shell, "nightly", ts("2026-03-05T12:00:00+00:00"), 5)
    assert shell.slots("nightly") == [
        "2026-03-06T07:30:00Z",  # 02:30 EST
        "2026-03-07T07:30:00Z",  # 02:30 EST
        "2026-03-08T07:30:00Z",  # 02:30 does not exist: 03:30 EDT, the same instant
        "2026-03-09T06:30:00Z",  # 02:30 EDT
        "2026-03-10T06:30:00Z",
    ]
    # the stored schedule, as a restarted Chronos reads it back, says the same
    assert shell.stored["nightly"]["schedule"] == "R/2026-03-11T02:30:00.000-04:00/P1D"


def test_the_rewritten_schedule_in_the_gap_reads_back_as_the_same_slots() -> None:
    shell = Shell()
    shell.add(daily("2026-03-07T02:30:00"), ts("2026-03-07T00:00:00+00:00"))
    run_days(shell, "nightly", ts("2026-03-07T00:00:00+00:00"), 1)
    text = shell.stored["nightly"]["schedule"]
    assert text == "R/2026-03-08T02:30:00.000-05:00/P1D"  # the instant of 03:30 EDT
    s = sched.parse(text, NY)
    assert sched.format_time(s.start) == "2026-03-08T02:30:00.000-05:00"
    assert iso(s.start.timestamp()) == "2026-03-08T07:30:00Z"
    assert sched.parse(s.text(), NY) == s
    # read without the zone (a fixed offset), it is still the same instant
    assert sched.parse(text).start.timestamp() == s.start.timestamp()
    # a restart here goes on as if nothing happened
    again = shell.restart()
    again.add(shell.planner.jobs["nightly"].job, ts("2026-03-07T08:00:00+00:00"))
    run_days(again, "nightly", ts("2026-03-07T08:00:00+00:00"), 3)
    assert again.slots("nightly") == [
        "2026-03-08T07:30:00Z",
        "2026-03-09T06:30:00Z",
        "2026-03-10T06:30:00Z",
    ]


def test_a_daily_0230_job_across_fall_back_runs_25_hours_later() -> None:
    """02:30 on 2026-11-01 in New York comes once, after the repeated hour: EST."""
    shell = Shell()
    shell.add(daily("2026-10-30T02:30:00"), ts("2026-10-29T12:00:00+00:00"))
    run_days(shell, "nightly", ts("2026-10-29T12:00:00+00:00"), 4)
    assert shell.slots("nightly") == [
        "2026-10-30T06:30:00Z",  # 02:30 EDT
        "2026-10-31T06:30:00Z",
        "2026-11-01T07:30:00Z",  # 02:30 EST: 25 h after the one before
        "2026-11-02T07:30:00Z",
    ]


def test_a_daily_0130_job_on_fall_back_day_takes_the_earlier_0130() -> None:
    """01:30 happens twice on 2026-11-01 in New York: the run is at the first (EDT),
    and once only; the next day is 01:30 EST."""
    shell = Shell()
    shell.add(daily("2026-10-31T01:30:00"), ts("2026-10-30T12:00:00+00:00"))
    run_days(shell, "nightly", ts("2026-10-30T12:00:00+00:00"), 3)
    assert shell.slots("nightly") == [
        "2026-10-31T05:30:00Z",  # 01:30 EDT
        "2026-11-01T05:30:00Z",  # the first 01:30 (EDT), not 06:30Z (EST)
        "2026-11-02T06:30:00Z",  # 01:30 EST
    ]
    # nothing is due at the second 01:30
    assert not [
        i for i in shell.planner.tick(ts("2026-11-01T06:30:00+00:00")) if isinstance(i, Claim)
    ]


def test_hourly_jobs_in_a_zone_are_elapsed_time_across_dst() -> None:
    shell = Shell()
    shell.add(job("hourly", schedule="R/2026-03-08T00:30:00/PT1H", scheduleTimeZone=NY), 0)
    now = ts("2026-03-08T05:00:00+00:00")
    for _ in range(4):
        nxt = shell.planner.next_due(now)
        assert nxt is not None
        now = nxt + 0.1
        shell.tick(now)
        shell.finish(now)
    assert shell.slots("hourly") == [
        "2026-03-08T05:30:00Z",  # 00:30 EST
        "2026-03-08T06:30:00Z",  # 01:30 EST
        "2026-03-08T07:30:00Z",  # 03:30 EDT: an hour later
        "2026-03-08T08:30:00Z",
    ]


# --- catch-up after downtime ------------------------------------------------------------------------
T0 = ts("2026-03-01T12:00:00+00:00")


def every2(name: str = "tick", **fields: Any) -> Obj:
    return job(name, schedule=f"R/{iso(T0)}/PT2S", concurrent=True, epsilon="PT0.5S", **fields)


def down_for(policy: str, back_at: float) -> Shell:
    """Runs at T0, T0+2, then the process is gone until ``back_at``."""
    shell = Shell()
    shell.add(every2(catchUp=policy), T0 + 0.01)
    shell.finish(T0 + 0.02)
    shell.tick(T0 + 2.01)
    shell.finish(T0 + 2.02)
    again = shell.restart()
    again.add(every2(catchUp=policy), back_at)
    again.finish(back_at + 0.01)
    again.claims = shell.claims + again.claims
    return again


@pytest.mark.parametrize(
    ("policy", "back_at", "late"),
    [
        ("last", T0 + 8.3, [T0 + 8]),  # the newest missed slot, late or not
        ("last", T0 + 9.9, [T0 + 8]),
        ("none", T0 + 8.3, [T0 + 8]),  # 0.3 s old: not late (epsilon 0.5 s): it runs
        ("none", T0 + 9.2, []),  # 1.2 s old: late, and the others are older
        ("all", T0 + 9.2, [T0 + 4, T0 + 6, T0 + 8]),
    ],
    ids=["last", "last-late", "none-on-time", "none-late", "all"],
)
def test_catch_up_after_downtime(policy: str, back_at: float, late: list[float]) -> None:
    """Runs at T0 and T0+2, then nothing until ``back_at``: the missed slots T0+4,
    T0+6 and T0+8 run as the policy says; then the schedule goes on, each slot once."""
    shell = down_for(policy, back_at)
    assert shell.slots("tick") == [iso(T0), iso(T0 + 2)] + [iso(t) for t in late]
    shell.tick(T0 + 10.01)
    shell.tick(T0 + 10.02)
    assert shell.slots("tick")[-1] == iso(T0 + 10)
    assert len(set(shell.claims)) == len(shell.claims)


def test_catch_up_all_has_a_cap() -> None:
    shell = Shell()
    shell.add(job("cap", schedule=f"R/{iso(T0)}/PT1S", catchUp="all", concurrent=True), T0 + 0.1)
    again = shell.restart()
    again.add(shell.planner.jobs["cap"].job, T0 + 5000.5)
    assert len(again.claims) == 1000  # not 5000: no cliff
    assert again.claims[-1][1] == (T0 + 5000) * 1000


# --- exactly once across restarts and a second Chronos --------------------------------------------
def test_a_claimed_slot_whose_result_came_meanwhile_is_not_run_again() -> None:
    """Claimed before a restart and unconfirmed; its result is recorded (another
    Chronos recorded it, or its update came) before reconciliation is over: ``settle``
    does not run it again."""
    slot = int(T0 * 1000)
    p = Planner()
    p.upsert(job("x", schedule=f"R/{iso(T0)}/PT1H"), {"lastSlot": slot}, T0 + 1)
    assert p.unconfirmed == {("x", slot)}
    p.observe(
        "x",
        {"lastSlot": slot, "lastFinishedSlot": slot, "lastFinishedAttempt": 0, "successCount": 1},
    )
    assert p.settle() == []
    assert not p.queue


def test_a_second_chronos_adopts_the_results_and_claims_of_the_first() -> None:
    shell = Shell()
    shell.add(every2(), T0 + 0.01)
    second = shell.restart()  # a second process, started while the first runs
    second.add(every2(), T0 + 0.5)
    assert second.claims == [] and second.planner.unconfirmed == {("tick", int(T0 * 1000))}
    tid = shell.finish(T0 + 0.6)[0]
    # the second sees the first's result: it does not run the slot and builds on it
    assert second.planner.observe("tick", dict(shell.stored["tick"])) is False
    assert second.planner.settle() == []
    shell.tick(T0 + 2.01)  # the first claims the next slot and is fenced off before launching
    assert second.planner.observe("tick", dict(shell.stored["tick"])) is True
    second.tick(T0 + 2.02)
    assert second.claims == []  # the claim is the first's: not claimed again
    second.do(second.planner.settle())  # no task found for it: it runs here, once
    done = second.finish(T0 + 5)
    assert [parse_task_id(t)[1:] for t in done] == [(int((T0 + 2) * 1000), 0)]  # type: ignore[index]
    assert second.stored["tick"]["successCount"] == 2  # the first's result kept
    assert [r["taskId"] for r in second.stored["tick"]["runs"]] == [tid, done[0]]
    # an update of the first's task, resent after the failover, is not counted twice
    second.update(tid, "TASK_FINISHED", T0 + 6)
    assert second.stored["tick"]["successCount"] == 2


def test_a_lost_claim_whose_winner_is_fenced_off_runs_here_once() -> None:
    """Both Chronos claim the same slot at once; the first wins and is fenced off
    before launching it. The second, having lost the claim, holds the slot as
    unconfirmed (even though it saw the winner's claim while its own was pending) and
    runs it once after reconciliation showed no task."""
    shell = Shell()
    shell.add(every2(), T0 + 0.01)
    second = shell.restart()
    second.add(every2(), T0 + 0.5)
    shell.finish(T0 + 0.6)
    second.planner.observe("tick", dict(shell.stored["tick"]))
    second.do(second.planner.settle())
    slot = int((T0 + 2) * 1000)
    mine = second.planner.tick(T0 + 2.01)  # the second's claim, not yet written
    shell.tick(T0 + 2.01)  # the first's claim of the same slot is written first
    assert second.planner.observe("tick", dict(shell.stored["tick"])) is False  # pending
    second.do(mine)  # the second's claim is lost
    assert ("tick", slot) in second.planner.unconfirmed
    second.do(second.planner.settle())  # no task of the first's showed up
    done = second.finish(T0 + 3)
    assert [parse_task_id(t)[1:] for t in done] == [(slot, 0)]  # type: ignore[index]
    second.tick(T0 + 3.5)
    assert second.claims == []  # never claimed again here


def test_a_claim_seen_with_its_task_running_is_not_run_again() -> None:
    shell = Shell()
    shell.add(every2(), T0 + 0.01)
    second = shell.restart()
    second.add(every2(), T0 + 0.5)
    (tid,) = shell.offer(T0 + 0.6)
    second.update(tid, "TASK_RUNNING", T0 + 0.7)  # reconciliation after the failover
    assert second.planner.settle() == []
    second.update(tid, "TASK_FINISHED", T0 + 1)
    assert second.stored["tick"]["successCount"] == 1


def test_a_new_subscription_revives_when_runs_wait_else_suppresses() -> None:
    """The master may hold filters and suppression from a previous process."""
    p = Planner()
    assert p.subscribed() == [Suppress()]
    p.upsert(job("x", schedule=f"R/{iso(T0)}/PT1H"), {}, T0 + 1)
    assert p.claimed("x", int(T0 * 1000)) == [Revive()]  # the first run to queue revives
    assert p.subscribed() == [Revive()]  # a re-subscription with runs waiting


# --- DAG: rerun from here, mark success -------------------------------------------------------------
def diamond(shell: Shell, c_fails: bool = False) -> None:
    shell.add(job("a", schedule="R/2030-01-01T00:00:00Z/P1D"), T0)
    shell.add(job("b", parents=["a"]), T0)
    shell.add(job("c", parents=["a"], command="exit 1" if c_fails else "true"), T0)
    shell.add(job("d", parents=["b", "c"]), T0)


def ran(shell: Shell) -> list[str]:
    return [parse_task_id(t)[0] for t in shell.launched]  # type: ignore[index]


def test_rerun_from_a_branch_reruns_what_is_below_it_with_the_other_branch_as_it_was() -> None:
    shell = Shell()
    diamond(shell)
    shell.do(shell.planner.run_now("a", T0 + 1))
    for k in range(3):
        shell.finish(T0 + 2 + k)
    assert sorted(ran(shell)) == ["a", "b", "c", "d"]
    shell.do(shell.planner.run_now("b", T0 + 10))  # rerun from b
    for k in range(3):
        shell.finish(T0 + 11 + k)
    assert sorted(ran(shell)[4:]) == ["b", "d"]
    # a scheduled (or manual) run of a still needs both branches for d
    shell.do(shell.planner.run_now("a", T0 + 20))
    shell.finish(T0 + 21)
    launched = shell.offer(T0 + 22)
    assert sorted(parse_task_id(t)[0] for t in launched) == ["b", "c"]  # type: ignore[index]
    by = {parse_task_id(t)[0]: t for t in launched}  # type: ignore[index]
    shell.update(by["b"], "TASK_FINISHED", T0 + 23)
    assert not shell.offer(T0 + 24)  # d waits for c
    shell.update(by["c"], "TASK_FINISHED", T0 + 25)
    assert [parse_task_id(t)[0] for t in shell.offer(T0 + 26)] == ["d"]  # type: ignore[index]


def test_rerun_from_a_branch_waits_for_another_parent_whose_last_run_failed() -> None:
    shell = Shell()
    diamond(shell, c_fails=True)
    shell.do(shell.planner.run_now("a", T0 + 1))
    shell.finish(T0 + 2)
    launched = shell.offer(T0 + 3)
    by = {parse_task_id(t)[0]: t for t in launched}  # type: ignore[index]
    shell.update(by["b"], "TASK_FINISHED", T0 + 4)
    shell.update(by["c"], "TASK_FAILED", T0 + 4)
    shell.do(shell.planner.run_now("b", T0 + 10))
    shell.finish(T0 + 11)
    assert not shell.offer(T0 + 12)  # c's last run failed: d still waits for it
    assert "c" in " ".join(shell.planner.waiting_for("d", T0 + 12))
    shell.do(shell.planner.mark_success("c", T0 + 13))  # mark success releases d
    assert [parse_task_id(t)[0] for t in shell.offer(T0 + 14)] == ["d"]  # type: ignore[index]


def test_a_retried_rerun_still_reruns_what_is_below() -> None:
    shell = Shell()
    shell.add(job("p", schedule="R/2030-01-01T00:00:00Z/P1D"), T0)
    shell.add(job("q", parents=["p"], retries=1), T0)
    shell.add(job("other", schedule="R/2030-01-01T00:00:00Z/P1D"), T0)
    shell.add(job("r", parents=["q", "other"]), T0)
    shell.do(shell.planner.run_now("other", T0 + 1))
    shell.finish(T0 + 2)
    shell.do(shell.planner.run_now("q", T0 + 3))
    shell.finish(T0 + 4, state="TASK_FAILED")
    shell.finish(T0 + 5)  # the retry succeeds
    assert [parse_task_id(t)[0] for t in shell.offer(T0 + 6)] == ["r"]  # type: ignore[index]


def test_an_async_job_counts_only_when_marked_and_then_its_children_run() -> None:
    shell = Shell()
    shell.add(job("aa", schedule="R/2030-01-01T00:00:00Z/P1D", **{"async": True}), T0)
    shell.add(job("ab", parents=["aa"]), T0)
    shell.do(shell.planner.run_now("aa", T0 + 1))
    shell.finish(T0 + 2)
    assert "successCount" not in shell.stored.get("aa", {})
    assert not shell.offer(T0 + 3)
    shell.do(shell.planner.mark_success("aa", T0 + 4))
    assert shell.stored["aa"]["successCount"] == 1
    assert [parse_task_id(t)[0] for t in shell.offer(T0 + 5)] == ["ab"]  # type: ignore[index]


# --- maxRunSeconds ------------------------------------------------------------------------------------
def test_max_run_seconds_kills_each_attempt_then_it_is_an_error() -> None:
    shell = Shell()
    shell.add(job("long", schedule="R/2030-01-01T00:00:00Z/P1D", maxRunSeconds=2, retries=1), T0)
    shell.do(shell.planner.run_now("long", T0))
    for attempt in range(2):
        now = T0 + 10 * attempt
        (tid,) = shell.offer(now)
        assert parse_task_id(tid)[2] == attempt  # type: ignore[index]
        shell.update(tid, "TASK_RUNNING", now + 0.1)
        shell.tick(now + 2.0)
        assert tid not in shell.killed  # 1.9 s
        shell.tick(now + 2.2)
        assert shell.killed[-1] == tid
        shell.update(tid, "TASK_KILLED", now + 2.3)
    assert shell.stored["long"]["errorCount"] == 1
    assert [r["status"] for r in shell.stored["long"]["runs"]] == ["failure"]
    assert task_id("long", int(T0 * 1000), 1) == shell.stored["long"]["runs"][0]["taskId"]


# --- the service's clock loop --------------------------------------------------------------------
async def test_the_loop_does_not_sleep_over_a_slot_that_came_due_while_it_ticked() -> None:
    """The clock passes a slot between the tick and the planning of the next wake-up
    (the event loop fires timers up to a millisecond early; the tick takes a while):
    the next wake-up is planned from the tick's own ``now``, so the slot is claimed at
    once, not a second later (when ``catchUp: none`` with a short ``epsilon`` would skip
    it as late)."""
    readings = iter([T0 + 1.9999])  # the tick's reading; every later one is past the slot
    began = time.monotonic()

    def clock() -> float:
        return next(readings, T0 + 2.0001 + (time.monotonic() - began))

    svc = ChronosService(None, "127.0.0.1:5050", clock=clock)  # type: ignore[arg-type]
    spec = job("edge", schedule=f"R/{iso(T0 + 2)}/PT2S", catchUp="none", epsilon="PT0.5S")
    svc.planner.upsert(spec, {}, T0 + 0.1)
    claimed: list[int] = []

    def dispatch(out: list[Instruction]) -> list[Any]:
        claimed.extend(i.slot_ms for i in out if isinstance(i, Claim))
        return []

    svc.dispatch = dispatch  # type: ignore[method-assign]
    loop = asyncio.create_task(svc._loop())
    try:
        await asyncio.sleep(0.2)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    assert claimed == [int((T0 + 2) * 1000)]
