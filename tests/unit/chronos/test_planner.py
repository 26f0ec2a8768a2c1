"""The Chronos planner, sans-I/O: events in, instructions out, time given."""

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


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def job(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "command": "true",
        "cpus": 0.1,
        "mem": 32,
        "disk": 0,
        "retries": 0,
        **fields,
    }


def offer(oid: str = "O1", agent: str = "n1", cpus: float = 4, mem: float = 4096) -> dict[str, Any]:
    return {
        "id": {"value": oid},
        "agent_id": {"value": agent},
        "hostname": agent,
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
        ],
        "attributes": [{"name": "rack", "type": "TEXT", "text": {"value": "r1"}}],
    }


def claim_all(p: Planner, out: list[Any]) -> list[Any]:
    """What the service does: each claim written, then ``claimed``."""
    more: list[Any] = []
    for ins in out:
        if isinstance(ins, Claim):
            more += p.claimed(ins.job, ins.slot_ms)
        else:
            more.append(ins)
    return more


def run_new(p: Planner, name: str, spec: dict[str, Any], now: float) -> list[Any]:
    """Add a job whose first slot is later, and run it now (``PUT job/NAME``)."""
    out = [i for i in p.upsert(spec, {}, now) if not isinstance(i, Claim)]
    return out + p.run_now(name, now)


def launch(p: Planner, now: float) -> list[dict[str, Any]]:
    out = p.offers([offer()], now)
    return [t for ins in out if isinstance(ins, Launch) for t in ins.tasks]


def update(p: Planner, tid: str, state: str, now: float) -> list[Any]:
    return p.update({"task_id": {"value": tid}, "state": state, "agent_id": {"value": "n1"}}, now)


def test_task_ids_round_trip() -> None:
    tid = task_id("etl.daily-x", 1_700_000_000_000, 2)
    assert tid == "ct:1700000000000:2:etl.daily-x"
    assert parse_task_id(tid) == ("etl.daily-x", 1_700_000_000_000, 2)
    assert parse_task_id("not-chronos") is None


def test_a_scheduled_job_runs_each_slot_once() -> None:
    p = Planner()
    out = p.upsert(job("every2", schedule=f"R/{iso(T0)}/PT2S"), {}, T0 + 0.1)
    claims = [i for i in out if isinstance(i, Claim)]
    assert [c.slot_ms for c in claims] == [int(T0 * 1000)]
    claim_all(p, out)
    (task,) = launch(p, T0 + 0.2)
    assert task["task_id"]["value"] == task_id("every2", int(T0 * 1000), 0)
    assert task["command"]["value"] == "true"
    update(p, task["task_id"]["value"], "TASK_RUNNING", T0 + 0.3)
    done = update(p, task["task_id"]["value"], "TASK_FINISHED", T0 + 0.5)
    (ws,) = [i for i in done if isinstance(i, WriteStatus)]
    assert ws.status["successCount"] == 1
    assert ws.status["lastSuccess"].startswith("2026-03-01T12:00:00")
    assert not [i for i in p.tick(T0 + 1.0) if isinstance(i, Claim)]  # nothing due
    nxt = [i for i in p.tick(T0 + 2.05) if isinstance(i, Claim)]
    assert [c.slot_ms for c in nxt] == [int((T0 + 2) * 1000)]
    # the same tick again claims nothing more
    assert not [i for i in p.tick(T0 + 2.06) if isinstance(i, Claim)]


def test_retries_then_an_error() -> None:
    p = Planner()
    claim_all(
        p, run_new(p, "flaky", job("flaky", retries=2, schedule=f"R1/{iso(T0 + 3600)}/PT1H"), T0)
    )
    errors = []
    for attempt in range(3):
        (task,) = launch(p, T0 + attempt)
        assert parse_task_id(task["task_id"]["value"])[2] == attempt  # type: ignore[index]
        out = update(p, task["task_id"]["value"], "TASK_FAILED", T0 + attempt + 0.5)
        errors += [i for i in out if isinstance(i, WriteStatus)]
    assert len(errors) == 1
    assert errors[0].status["errorCount"] == 1
    assert errors[0].status["errorsSinceLastSuccess"] == 1
    assert not p.queue


def test_a_chain_runs_in_order_and_a_diamond_waits_for_both_branches() -> None:
    p = Planner()
    p.upsert(job("a", schedule=f"R/{iso(T0 + 3600)}/PT1H"), {}, T0)
    p.upsert(job("b", parents=["a"]), {}, T0)
    p.upsert(job("c", parents=["a"], retries=1), {}, T0)
    p.upsert(job("d", parents=["b", "c"]), {}, T0)
    claim_all(p, p.run_now("a", T0))
    (ta,) = launch(p, T0 + 1)
    out = claim_all(p, update(p, ta["task_id"]["value"], "TASK_FINISHED", T0 + 2))
    tasks = launch(p, T0 + 3)
    by_job = {parse_task_id(t["task_id"]["value"])[0]: t for t in tasks}  # type: ignore[index]
    assert set(by_job) == {"b", "c"}
    assert not any(isinstance(i, Claim) for i in out)
    claim_all(p, update(p, by_job["b"]["task_id"]["value"], "TASK_FINISHED", T0 + 4))
    assert not launch(p, T0 + 4.5)  # d waits for c
    claim_all(p, update(p, by_job["c"]["task_id"]["value"], "TASK_FAILED", T0 + 5))
    (c_retry,) = launch(p, T0 + 5.5)
    assert parse_task_id(c_retry["task_id"]["value"])[:1] == ("c",)  # type: ignore[index]
    claim_all(p, update(p, c_retry["task_id"]["value"], "TASK_FINISHED", T0 + 6))
    (td,) = launch(p, T0 + 7)
    assert parse_task_id(td["task_id"]["value"])[0] == "d"  # type: ignore[index]
    why = " ".join(p.waiting_for("d", T0 + 7))
    assert "is launched" in why  # d runs; its next run waits for both parents again
    assert "parent(s): b, c" in why


def test_a_claimed_slot_runs_once_after_a_restart() -> None:
    slot = int(T0 * 1000)
    # found running by reconciliation: not launched again
    p = Planner()
    p.upsert(
        job("x", schedule=f"R/{iso(T0)}/PT1H"),
        {"lastSlot": slot, "schedule": f"R/{iso(T0 + 3600)}/PT1H"},
        T0 + 1,
    )
    update(p, task_id("x", slot, 0), "TASK_RUNNING", T0 + 1)
    assert not claim_all(p, p.settle())
    assert not p.queue
    # not found: it runs once
    q = Planner()
    q.upsert(job("x", schedule=f"R/{iso(T0)}/PT1H"), {"lastSlot": slot}, T0 + 1)
    claim_all(q, q.settle())
    assert [(r.job, r.slot_ms, r.attempt) for r in q.queue] == [("x", slot, 0)]
    # a result recorded already is not counted twice when its update comes again
    r = Planner()
    r.upsert(
        job("x", schedule=f"R/{iso(T0 + 3600)}/PT1H"),
        {"lastSlot": slot, "lastFinishedSlot": slot, "lastFinishedAttempt": 0, "successCount": 1},
        T0 + 1,
    )
    assert not update(r, task_id("x", slot, 0), "TASK_FINISHED", T0 + 2)
    assert not claim_all(r, r.settle())


def test_non_concurrent_jobs_skip_a_slot_while_running_and_max_run_seconds_kills() -> None:
    p = Planner()
    claim_all(p, p.upsert(job("slow", schedule=f"R/{iso(T0)}/PT1S", maxRunSeconds=5), {}, T0 + 0.1))
    (task,) = launch(p, T0 + 0.2)
    update(p, task["task_id"]["value"], "TASK_RUNNING", T0 + 0.3)
    assert not [i for i in p.tick(T0 + 1.5) if isinstance(i, Claim)]
    assert p.skipped >= 1
    kills = [i for i in p.tick(T0 + 6) if isinstance(i, Kill)]
    assert [k.task_id for k in kills] == [task["task_id"]["value"]]


def test_constraints_choose_the_offer() -> None:
    p = Planner()
    claim_all(
        p,
        run_new(
            p,
            "pinned",
            job(
                "pinned",
                constraints=[["rack", "EQUALS", "r2"]],
                schedule=f"R1/{iso(T0 + 3600)}/PT1H",
            ),
            T0,
        ),
    )
    assert not [i for i in p.offers([offer()], T0) if isinstance(i, Launch)]
    assert "constraints" in " ".join(p.waiting_for("pinned", T0))
    other = offer("O2", "n2")
    other["attributes"] = [{"name": "rack", "type": "TEXT", "text": {"value": "r2"}}]
    assert [i for i in p.offers([other], T0) if isinstance(i, Launch)]


def test_r1_disables_the_job_after_its_success_and_revive_when_work_appears() -> None:
    p = Planner()
    out = p.upsert(job("once", schedule=f"R1/{iso(T0)}/PT1H"), {}, T0 + 0.1)
    p.offers([], T0)  # nothing queued: suppress
    assert p.suppressed
    more = claim_all(p, out)
    assert any(isinstance(i, Revive) for i in more)
    (task,) = launch(p, T0 + 0.2)
    done = update(p, task["task_id"]["value"], "TASK_FINISHED", T0 + 1)
    (ws,) = [i for i in done if isinstance(i, WriteStatus)]
    assert ws.disable


def test_an_offer_takes_no_more_runs_than_its_node_has_pod_slots() -> None:
    p = Planner()
    for i in range(5):
        claim_all(p, run_new(p, f"j{i}", job(f"j{i}", schedule=f"R1/{iso(T0 + 3600)}/PT1H"), T0))
    small = offer()
    small["resources"].append({"name": "pods", "type": "SCALAR", "scalar": {"value": 2}})
    same_node = offer("O2")  # another offer of the same node shares its slots
    same_node["resources"].append({"name": "pods", "type": "SCALAR", "scalar": {"value": 2}})
    launched = [
        t for i in p.offers([small, same_node], T0) if isinstance(i, Launch) for t in i.tasks
    ]
    assert len(launched) == 2
    assert len(p.queue) == 3
    unlimited = offer("O3", "n2")  # no pods resource: no pods limit
    assert sum(len(i.tasks) for i in p.offers([unlimited], T0) if isinstance(i, Launch)) == 3


def test_a_run_refused_at_the_pods_limit_waits_for_another_offer_without_a_retry() -> None:
    from corral.mesos.calls import POD_LIMIT_REACHED

    p = Planner()
    claim_all(
        p, run_new(p, "full", job("full", retries=0, schedule=f"R1/{iso(T0 + 3600)}/PT1H"), T0)
    )
    [task] = launch(p, T0)
    tid = task["task_id"]["value"]
    out = p.update(
        {
            "task_id": {"value": tid},
            "state": "TASK_ERROR",
            "message": POD_LIMIT_REACHED.format(agent="n1"),
            "agent_id": {"value": "n1"},
        },
        T0 + 1,
    )
    assert not [i for i in out if isinstance(i, WriteStatus)]  # no failure recorded
    [again] = launch(p, T0 + 2)
    assert again["task_id"]["value"] == tid  # the same run, attempt 0: not a retry
    p.update(
        {"task_id": {"value": tid}, "state": "TASK_FINISHED", "agent_id": {"value": "n2"}}, T0 + 3
    )
    assert p.jobs["full"].status.get("successCount") == 1
    assert not p.jobs["full"].status.get("errorCount")
