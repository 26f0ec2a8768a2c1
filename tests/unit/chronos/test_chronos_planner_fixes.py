"""The planner's answers to the review of issue 12 (one test per bug, sans-I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from corral.chronos.planner import (
    Claim,
    Kill,
    Launch,
    Planner,
    Revive,
    WriteStatus,
    parse_task_id,
    task_id,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp()
Obj = dict[str, Any]


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


class Store:
    """The stored statuses, as the service's writes leave them."""

    def __init__(self) -> None:
        self.status: dict[str, Obj] = {}

    def apply(self, p: Planner, out: list[Any], *, claim: bool = True) -> list[Any]:
        rest: list[Any] = []
        for ins in out:
            if isinstance(ins, Claim) and claim:
                st = self.status.setdefault(ins.job, {})
                st.update(getattr(ins, "status", {}), lastSlot=ins.slot_ms)
                rest += self.apply(p, p.claimed(ins.job, ins.slot_ms))
            elif isinstance(ins, WriteStatus):
                self.status.setdefault(ins.job, {}).update(ins.status)
                rest.append(ins)
            else:
                rest.append(ins)
        return rest


def tasks_of(out: list[Any]) -> list[str]:
    return [t["task_id"]["value"] for i in out if isinstance(i, Launch) for t in i.tasks]


def upd(p: Planner, tid: str, state: str, now: float) -> list[Any]:
    return p.update({"task_id": {"value": tid}, "state": state, "agent_id": {"value": "n1"}}, now)


def claims(out: list[Any]) -> list[int]:
    return [i.slot_ms for i in out if isinstance(i, Claim)]


# --- 2: a failed claim is rolled back ----------------------------------------------------------------
def test_a_failed_claim_rolls_the_planner_back_and_the_slot_is_due_again() -> None:
    p = Planner()
    spec = job("x", schedule=f"R/{iso(T0)}/PT1H")
    (c,) = [i for i in p.upsert(spec, {}, T0 + 1) if isinstance(i, Claim)]
    assert p.jobs["x"].status["lastSlot"] == c.slot_ms
    assert p.claim_failed("x", c.slot_ms) == []
    assert "lastSlot" not in p.jobs["x"].status
    assert claims(p.tick(T0 + 2)) == [c.slot_ms]  # the same slot, claimed again


# --- 3: duplicated terminal updates; maxRunSeconds kills once ----------------------------------------
def test_a_duplicated_task_failed_queues_one_retry() -> None:
    p, s = Planner(), Store()
    s.apply(p, p.upsert(job("f", retries=3, schedule=f"R/{iso(T0)}/PT1H"), {}, T0 + 1))
    (tid,) = tasks_of(p.offers([offer()], T0 + 2))
    upd(p, tid, "TASK_FAILED", T0 + 3)
    upd(p, tid, "TASK_FAILED", T0 + 3.1)  # the master resent it
    assert [(r.slot_ms, r.attempt) for r in p.queue] == [(int(T0 * 1000), 1)]


def test_max_run_seconds_kills_once_then_again_only_after_a_while() -> None:
    p, s = Planner(), Store()
    s.apply(p, p.upsert(job("slow", schedule=f"R/{iso(T0)}/PT1H", maxRunSeconds=5), {}, T0 + 1))
    (tid,) = tasks_of(p.offers([offer()], T0 + 1))
    upd(p, tid, "TASK_RUNNING", T0 + 1)
    kills = [i.task_id for t in (7, 8, 9, 10) for i in p.tick(T0 + t) if isinstance(i, Kill)]
    assert kills == [tid]
    later = [i.task_id for i in p.tick(T0 + 7 + 31) if isinstance(i, Kill)]
    assert later == [tid]
    # the kill it asked for is a failure (an error, after retries)
    out = upd(p, tid, "TASK_KILLED", T0 + 40)
    (ws,) = [i for i in out if isinstance(i, WriteStatus)]
    assert ws.status["errorCount"] == 1


# --- 4: runs ending out of order ------------------------------------------------------------------
def test_runs_finishing_out_of_order_keep_the_latest_finished_slot() -> None:
    p, s = Planner(), Store()
    spec = job("c", schedule=f"R/{iso(T0)}/PT1S", concurrent=True)
    s.apply(p, p.upsert(spec, {}, T0 + 0.1))
    (first,) = tasks_of(p.offers([offer()], T0 + 0.2))
    s.apply(p, p.tick(T0 + 1.1))
    (second,) = tasks_of(p.offers([offer()], T0 + 1.2))
    s.apply(p, upd(p, second, "TASK_FINISHED", T0 + 1.5))
    s.apply(p, upd(p, first, "TASK_FINISHED", T0 + 2))
    assert s.status["c"]["lastFinishedSlot"] == int((T0 + 1) * 1000)
    assert s.status["c"]["successCount"] == 2
    assert s.status["c"]["openRuns"] == {}


# --- 5: a failed ACCEPT -----------------------------------------------------------------------------
def test_runs_of_a_failed_accept_wait_for_an_offer_again() -> None:
    p, s = Planner(), Store()
    s.apply(p, p.upsert(job("x", schedule=f"R/{iso(T0)}/PT1H"), {}, T0 + 1))
    out = p.offers([offer()], T0 + 1)
    (tid,) = tasks_of(out)
    assert p.suppressed  # the queue drained
    assert p.launch_failed([tid]) == [Revive()]
    assert [r.slot_ms for r in p.queue] == [int(T0 * 1000)] and not p.running
    assert tasks_of(p.offers([offer("O2")], T0 + 2)) == [tid]


def test_a_run_whose_accept_failed_but_launched_is_not_launched_twice() -> None:
    p, s = Planner(), Store()
    s.apply(p, p.upsert(job("x", schedule=f"R/{iso(T0)}/PT1H"), {}, T0 + 1))
    (tid,) = tasks_of(p.offers([offer()], T0 + 1))
    p.launch_failed([tid])
    upd(p, tid, "TASK_RUNNING", T0 + 2)  # the ACCEPT had reached the master after all
    assert not p.queue and tid in p.running


# --- 6a: a job stored with a bad schedule or catchUp -------------------------------------------------
def test_a_stored_job_with_a_bad_schedule_or_catch_up_is_skipped_and_why_says_so() -> None:
    p = Planner()
    assert p.upsert(job("bad", schedule="every minute"), {}, T0) == []
    assert p.upsert(job("odd", schedule=f"R/{iso(T0)}/PT1M", catchUp="some"), {}, T0) == []
    assert p.tick(T0 + 600) == []
    assert "Cannot parse schedule 'every minute'" in " ".join(p.waiting_for("bad", T0))
    assert "catchUp" in " ".join(p.waiting_for("odd", T0))
    # fixed: scheduled again
    assert claims(p.upsert(job("odd", schedule=f"R/{iso(T0)}/PT1M"), {}, T0 + 1))


# --- 7: catchUp all ---------------------------------------------------------------------------------
def test_catch_up_all_on_a_job_that_never_ran_starts_from_its_creation() -> None:
    p = Planner()
    spec = job("all", schedule="R/2020-01-01T00:00:00Z/PT1M", catchUp="all", concurrent=True)
    # created at T0 + 30, Chronos down until T0 + 150: the slots since then (and the
    # one just before the creation, within a minute of it) run; none from 2020 on
    out = p.upsert(spec, {}, T0 + 150, created=T0 + 30)
    assert claims(out) == [int((T0 + k) * 1000) for k in (0, 60, 120)]


def test_catch_up_all_runs_the_missed_slots_of_a_serial_job_one_after_another() -> None:
    p, s = Planner(), Store()
    spec = job("serial", schedule=f"R/{iso(T0)}/PT1M", catchUp="all")
    status = {"lastSlot": int(T0 * 1000), "lastFinishedSlot": int(T0 * 1000)}
    first = [i for i in p.upsert(spec, status, T0 + 245) if isinstance(i, Claim)]
    assert claims(first) == [int((T0 + 60) * 1000)]  # one, not four at once
    s.apply(p, first)
    done: list[int] = []
    now = T0 + 245
    for _ in range(6):
        out = p.offers([offer()], now)
        for tid in tasks_of(out):
            done.append(parse_task_id(tid)[1])  # type: ignore[index]
            assert len(p.running) == 1
            s.apply(p, upd(p, tid, "TASK_FINISHED", now + 1))
        now += 2
        s.apply(p, p.tick(now))
    assert done == [int((T0 + 60 * k) * 1000) for k in (1, 2, 3, 4)]


# --- 8: killed by a user ------------------------------------------------------------------------------
def test_a_task_killed_on_request_is_neither_retried_nor_an_error() -> None:
    p, s = Planner(), Store()
    s.apply(p, p.upsert(job("k", retries=2, schedule=f"R/{iso(T0)}/PT1H"), {}, T0 + 1))
    (tid,) = tasks_of(p.offers([offer()], T0 + 1))
    upd(p, tid, "TASK_RUNNING", T0 + 2)
    assert [i.task_id for i in p.kill_all("k", T0 + 3) if isinstance(i, Kill)] == [tid]
    s.apply(p, upd(p, tid, "TASK_KILLED", T0 + 4))
    assert not p.queue and not p.running
    assert int(s.status["k"].get("errorCount") or 0) == 0
    assert s.status["k"]["runs"][-1]["status"] == "killed"
    assert s.status["k"]["openRuns"] == {}


# --- 9: parents' successes persist; same trigger in a diamond -----------------------------------------
def diamond(p: Planner, s: Store) -> None:
    p.upsert(job("a", schedule="R/2030-01-01T00:00:00Z/P1D"), {}, T0)
    for name, parents in (("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"])):
        p.upsert(job(name, parents=parents), dict(s.status.get(name, {})), T0)


def run_to_end(p: Planner, s: Store, now: float, ends: dict[str, str]) -> list[str]:
    """Launch what is queued; end each as ``ends`` says (default: success)."""
    names = []
    for tid in tasks_of(p.offers([offer()], now)):
        name = parse_task_id(tid)[0]  # type: ignore[index]
        names.append(name)
        s.apply(p, upd(p, tid, ends.get(name, "TASK_FINISHED"), now + 0.5))
    return names


def test_a_diamond_child_runs_only_for_the_same_trigger_of_both_branches() -> None:
    p, s = Planner(), Store()
    diamond(p, s)
    s.apply(p, p.run_now("a", T0 + 1))  # trigger a@1
    assert run_to_end(p, s, T0 + 2, {}) == ["a"]
    assert sorted(run_to_end(p, s, T0 + 3, {"c": "TASK_FAILED"})) == ["b", "c"]
    s.apply(p, p.run_now("a", T0 + 10))  # trigger a@10
    assert run_to_end(p, s, T0 + 11, {}) == ["a"]
    # c succeeds for a@10 while b's last success is a@1's: d must not run yet
    b_c = {r.job: r for r in p.queue}
    assert set(b_c) == {"b", "c"}
    for tid in tasks_of(p.offers([offer()], T0 + 12)):
        if parse_task_id(tid)[0] == "c":  # type: ignore[index]
            s.apply(p, upd(p, tid, "TASK_FINISHED", T0 + 12.5))
            b_tid = next(t for t in p.running if parse_task_id(t)[0] == "b")  # type: ignore[index]
    assert not p.queue, "d ran with b's success of an older trigger"
    s.apply(p, upd(p, b_tid, "TASK_FINISHED", T0 + 13))
    (d,) = p.queue
    assert d.job == "d" and d.trigger == f"a@{int((T0 + 10) * 1000)}"


def test_the_successes_of_parents_survive_a_restart() -> None:
    p, s = Planner(), Store()
    diamond(p, s)
    s.apply(p, p.run_now("a", T0 + 1))
    run_to_end(p, s, T0 + 2, {})
    for tid in tasks_of(p.offers([offer()], T0 + 3)):
        if parse_task_id(tid)[0] == "b":  # type: ignore[index]
            s.apply(p, upd(p, tid, "TASK_FINISHED", T0 + 3.5))
            c_tid = next(t for t in p.running if parse_task_id(t)[0] == "c")  # type: ignore[index]
    # Chronos restarts: b's success must not be forgotten
    q = Planner()
    diamond(q, s)
    s.apply(q, upd(q, c_tid, "TASK_FINISHED", T0 + 5))
    assert [r.job for r in q.queue] == ["d"]


# --- 10: deleting a parent ----------------------------------------------------------------------------
def test_deleting_a_parent_takes_it_out_of_children_with_other_parents() -> None:
    p = Planner()
    p.upsert(job("a", schedule=f"R/{iso(T0 + 3600)}/PT1H"), {}, T0)
    p.upsert(job("b", schedule=f"R/{iso(T0 + 3600)}/PT1H"), {}, T0)
    p.upsert(job("both", parents=["a", "b"]), {}, T0)
    p.upsert(job("only", parents=["a"]), {}, T0)
    assert p.orphans_of("a") == [("both", ["b"])]
    p.remove("a")
    assert "do not exist" in " ".join(p.waiting_for("only", T0))


# --- 11: manual-run arguments go with their run --------------------------------------------------------
def test_the_arguments_of_a_manual_run_go_with_that_run() -> None:
    p, s = Planner(), Store()
    p.upsert(job("m", schedule=f"R/{iso(T0 + 3600)}/PT1H", concurrent=True), {}, T0)
    one = p.run_now("m", T0 + 1, ("--day", "1"))
    two = p.run_now("m", T0 + 2, ("--day", "2"))  # before the first claim is written
    s.apply(p, two)
    s.apply(p, one)
    out = p.offers([offer()], T0 + 3)
    commands = {
        parse_task_id(t["task_id"]["value"])[1]: t["command"]["value"]  # type: ignore[index]
        for i in out
        if isinstance(i, Launch)
        for t in i.tasks
    }
    assert commands == {int((T0 + 1) * 1000): "true --day 1", int((T0 + 2) * 1000): "true --day 2"}


# --- 12: a concurrent job's claimed slots survive a crash ----------------------------------------------
def test_every_open_slot_of_a_concurrent_job_runs_once_after_a_restart() -> None:
    p, s = Planner(), Store()
    spec = job("cc", schedule=f"R/{iso(T0)}/PT1S", concurrent=True)
    s.apply(p, p.upsert(spec, {}, T0 + 0.1))
    s.apply(p, p.tick(T0 + 1.1))
    tids = tasks_of(p.offers([offer()], T0 + 1.2))
    assert len(tids) == 2
    s.apply(p, upd(p, tids[1], "TASK_FINISHED", T0 + 1.5))  # the later slot ends first
    # crash: the earlier slot's task never launched (say); a new process settles it
    q = Planner()
    q.upsert(spec, dict(s.status["cc"]), T0 + 1.6)
    assert q.unconfirmed == {("cc", int(T0 * 1000))}
    q.settle()
    assert [(r.slot_ms, r.attempt) for r in q.queue] == [(int(T0 * 1000), 0)]
    # and the later slot's result, sent again, is not counted twice
    assert upd(q, task_id("cc", int((T0 + 1) * 1000), 0), "TASK_FINISHED", T0 + 2) == []


def test_a_failed_claim_followed_by_a_later_one_runs_with_it() -> None:
    """Two slots of a concurrent job claimed at once; the first write fails, the second
    (which stores both in ``openRuns``) succeeds: both run, once."""
    p = Planner()
    spec = job("cc", schedule=f"R/{iso(T0)}/PT1S", concurrent=True, catchUp="all")
    first, second = [i for i in p.upsert(spec, {}, T0 + 1.5, created=T0) if isinstance(i, Claim)]
    assert set(second.status["openRuns"]) == {str(first.slot_ms), str(second.slot_ms)}
    p.claim_failed("cc", first.slot_ms)
    assert claims(p.tick(T0 + 1.6)) == []  # not claimed again behind the later claim
    p.claimed("cc", second.slot_ms)
    assert sorted(r.slot_ms for r in p.queue) == [first.slot_ms, second.slot_ms]
    assert claims(p.tick(T0 + 1.7)) == []
