"""CronJob controller: schedules by table (zones, macros, missed starts), history pruning,
and ``sync`` against the fake client and a fake clock (no test waits for a minute)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from test_job import FakeClient, FakeClock

from corral.client.rest import Client
from corral.controllers.base import InformerFactory
from corral.controllers.cronjob import (
    CRONJOBS,
    SCHEDULED_TIMESTAMP,
    CronJobController,
    Schedule,
    ScheduleError,
    job_name,
    jobs_to_prune,
    most_recent_schedule_time,
    unmet_schedule_time,
)
from corral.controllers.job import JOBS
from corral.util.clock import rfc3339

Obj = dict[str, Any]


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize(
    ("spec", "zone", "after", "expected"),
    [
        ("*/5 * * * *", "UTC", "2024-01-01T00:00:00+00:00", "2024-01-01T00:05:00+00:00"),
        ("*/5 * * * *", "UTC", "2024-01-01T00:03:59+00:00", "2024-01-01T00:05:00+00:00"),
        ("0 9 * * 1-5", "UTC", "2024-01-05T10:00:00+00:00", "2024-01-08T09:00:00+00:00"),
        ("@hourly", "UTC", "2024-01-01T00:30:00+00:00", "2024-01-01T01:00:00+00:00"),
        ("@daily", "UTC", "2024-01-01T00:30:00+00:00", "2024-01-02T00:00:00+00:00"),
        ("@weekly", "UTC", "2024-01-01T00:00:00+00:00", "2024-01-07T00:00:00+00:00"),
        ("@monthly", "UTC", "2024-01-15T00:00:00+00:00", "2024-02-01T00:00:00+00:00"),
        ("@yearly", "UTC", "2024-06-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00"),
        ("0 9 * * *", "Europe/Paris", "2024-01-01T00:00:00+00:00", "2024-01-01T08:00:00+00:00"),
        ("0 9 * * *", "Europe/Paris", "2024-07-01T00:00:00+00:00", "2024-07-01T07:00:00+00:00"),
        ("0 0 * * *", "Asia/Tokyo", "2024-01-01T00:00:00+00:00", "2024-01-01T15:00:00+00:00"),
        ("@every 90s", "UTC", "2024-01-01T00:00:00.5+00:00", "2024-01-01T00:01:30+00:00"),
    ],
    ids=[
        "step", "step-mid", "weekdays", "hourly", "daily", "weekly", "monthly", "yearly",
        "paris-winter", "paris-summer", "tokyo", "every",
    ],
)  # fmt: skip
def test_next_schedule_time(spec: str, zone: str, after: str, expected: str) -> None:
    assert Schedule(spec, ZoneInfo(zone)).next(ts(after)) == ts(expected)


@pytest.mark.parametrize("spec", ["* * * *", "61 * * * *", "@fortnightly", "@every soon"], ids=str)
def test_bad_schedules(spec: str) -> None:
    with pytest.raises(ScheduleError):
        Schedule(spec)


MIN = 60.0
E0 = ts("2024-01-01T00:00:00+00:00")


@pytest.mark.parametrize(
    ("earliest", "now", "recent", "count"),
    [
        (E0, E0 + 30, None, 0),
        (E0, E0 + MIN, E0 + MIN, 1),
        (E0, E0 + 90, E0 + MIN, 1),
        (E0, E0 + 5 * MIN + 1, E0 + 5 * MIN, 5),
        (E0, E0 + 200 * MIN, E0 + 200 * MIN, 200),
        (E0, E0 + 5000 * MIN + 7, E0 + 5000 * MIN, 5000),
    ],
    ids=["none-yet", "exactly-one", "one", "five", "many", "very-many-estimated"],
)
def test_most_recent_schedule_time(
    earliest: float, now: float, recent: float | None, count: int
) -> None:
    assert most_recent_schedule_time(earliest, now, Schedule("* * * * *")) == (recent, count)


def _cronjob(**spec: Any) -> Obj:
    base: Obj = {
        "schedule": "*/1 * * * *",
        "concurrencyPolicy": "Allow",
        "suspend": False,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 1,
        "jobTemplate": {
            "metadata": {"labels": {"app": "tick"}},
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "OnFailure",
                        "containers": [{"name": "c", "image": "busybox"}],
                    }
                }
            },
        },
    }
    base.update(spec)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "tick", "namespace": "ns"},
        "spec": base,
    }


@pytest.mark.parametrize(
    ("spec", "status", "now", "expected"),
    [
        ({}, {}, E0 + 30, (None, 0)),
        ({}, {}, E0 + 61, (E0 + MIN, 1)),
        ({}, {"lastScheduleTime": rfc3339(E0 + MIN)}, E0 + 90, (None, 0)),
        ({}, {"lastScheduleTime": rfc3339(E0 + MIN)}, E0 + 181, (E0 + 3 * MIN, 2)),
        ({"startingDeadlineSeconds": 30}, {}, E0 + 10 * MIN + 10, (E0 + 10 * MIN, 1)),
        ({"startingDeadlineSeconds": 30}, {}, E0 + 10 * MIN + 45, (None, 0)),
        ({}, {}, E0 + 150 * MIN, (E0 + 150 * MIN, 150)),
    ],
    ids=[
        "before-first", "first-due", "already-done", "two-missed", "deadline-window",
        "deadline-passed", "too-many",
    ],
)  # fmt: skip
def test_unmet_schedule_time(
    spec: Obj, status: Obj, now: float, expected: tuple[float | None, int]
) -> None:
    cj = _cronjob(**spec)
    cj["metadata"]["creationTimestamp"] = rfc3339(E0)
    cj["status"] = status
    assert unmet_schedule_time(cj, now, Schedule(cj["spec"]["schedule"])) == expected


def _finished(name: str, kind: str, start: str | None) -> Obj:
    st: Obj = {"conditions": [{"type": kind, "status": "True"}]}
    if start:
        st["startTime"] = start
    return {"metadata": {"name": name}, "status": st}


def test_jobs_to_prune_oldest_first() -> None:
    jobs = [
        _finished("a", "Complete", "2024-01-01T00:03:00Z"),
        _finished("b", "Complete", "2024-01-01T00:01:00Z"),
        _finished("c", "Complete", None),
        _finished("d", "Complete", "2024-01-01T00:02:00Z"),
        _finished("e", "Failed", "2024-01-01T00:01:00Z"),
        _finished("f", "Failed", "2024-01-01T00:04:00Z"),
        {"metadata": {"name": "running"}, "status": {}},
    ]
    names = [j["metadata"]["name"] for j in jobs_to_prune(jobs, 2, 1)]
    assert names == ["b", "d", "e"]
    assert jobs_to_prune(jobs, None, None) == []


# --- sync ---------------------------------------------------------------------------------------


class Harness:
    def __init__(self) -> None:
        self.clock = FakeClock(E0 + 5)
        self.client = FakeClient(self.clock)
        factory = InformerFactory(cast(Client, self.client))
        self.ctrl = CronJobController(cast(Client, self.client), factory, clock=self.clock)
        self.client.attach(factory, CRONJOBS, JOBS)

    def add(self, cj: Obj) -> None:
        self.client.seed(CRONJOBS, cj)

    async def tick(self, seconds: float) -> Obj:
        self.clock.advance(seconds)
        await self.ctrl.sync("ns/tick")
        return self.client.objects[("cronjobs", "ns", "tick")]

    def jobs(self) -> list[Obj]:
        return self.client.of("jobs")

    async def finish(self, job: Obj, kind: str = "Complete") -> None:
        now = rfc3339(self.clock.now())
        status: Obj = {"startTime": now, "conditions": [{"type": kind, "status": "True"}]}
        if kind == "Complete":
            status["completionTime"] = now
        await self.client.update(JOBS, {**job, "status": status}, "ns", sub="status")

    def reasons(self) -> list[str]:
        return [r for r, _ in self.client.events]


async def test_creates_jobs_on_schedule_concurrently() -> None:
    h = Harness()
    h.add(_cronjob())
    cj = await h.tick(0)
    assert h.jobs() == [] and "lastScheduleTime" not in cj.get("status", {})
    cj = await h.tick(60)
    (job,) = h.jobs()
    assert job["metadata"]["name"] == job_name(cj, E0 + MIN) == f"tick-{int(E0 // 60) + 1}"
    assert job["metadata"]["annotations"][SCHEDULED_TIMESTAMP] == "2024-01-01T00:01:00Z"
    assert job["metadata"]["labels"] == {"app": "tick"}
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert cj["status"]["lastScheduleTime"] == "2024-01-01T00:01:00Z"
    assert [r["name"] for r in cj["status"]["active"]] == [job["metadata"]["name"]]
    assert ("SuccessfulCreate", f"Created job {job['metadata']['name']}") in h.client.events
    cj = await h.tick(0)  # the same minute again: nothing new
    assert len(h.jobs()) == 1
    cj = await h.tick(60)
    assert len(h.jobs()) == 2 and len(cj["status"]["active"]) == 2


async def test_completed_job_leaves_active_and_sets_last_successful_time() -> None:
    h = Harness()
    h.add(_cronjob())
    await h.tick(60)
    (job,) = h.jobs()
    h.clock.advance(10)
    await h.finish(job)
    cj = await h.tick(0)
    assert "active" not in cj["status"]
    assert cj["status"]["lastSuccessfulTime"] == rfc3339(E0 + 75)
    assert "SawCompletedJob" in h.reasons()
    assert any(m.endswith("condition: Complete") for _, m in h.client.events)


async def test_forbid_skips_while_active() -> None:
    h = Harness()
    h.add(_cronjob(concurrencyPolicy="Forbid"))
    await h.tick(60)
    await h.tick(60)
    assert len(h.jobs()) == 1 and "JobAlreadyActive" in h.reasons()
    await h.finish(h.jobs()[0])
    await h.tick(60)
    assert len(h.jobs()) == 2


async def test_replace_deletes_the_running_job() -> None:
    h = Harness()
    h.add(_cronjob(concurrencyPolicy="Replace"))
    await h.tick(60)
    first = h.jobs()[0]["metadata"]["name"]
    cj = await h.tick(60)
    names = [j["metadata"]["name"] for j in h.jobs()]
    assert first not in names and len(names) == 1
    assert [r["name"] for r in cj["status"]["active"]] == names
    assert ("SuccessfulDelete", f"Deleted job {first}") in h.client.events


async def test_suspend_and_starting_deadline() -> None:
    h = Harness()
    h.add(_cronjob(suspend=True, startingDeadlineSeconds=30))
    await h.tick(120)
    assert h.jobs() == []
    cj = h.client.objects[("cronjobs", "ns", "tick")]
    cj["spec"]["suspend"] = False
    await h.client.update(CRONJOBS, cj, "ns")
    await h.tick(40)  # 00:02:45: 00:02 is 45 s late, past the 30 s deadline
    assert h.jobs() == []
    assert "MissSchedule" not in h.reasons()  # outside the window: not even looked at
    await h.tick(20)  # 00:03:05: 00:03 is in the window
    assert [j["metadata"]["name"] for j in h.jobs()] == [f"tick-{int(E0 // 60) + 3}"]


async def test_start_older_than_deadline_is_skipped() -> None:
    # Kubernetes looks for unmet times only inside [now - startingDeadlineSeconds, now],
    # so a start that is too late is silently skipped and the next one is taken
    h = Harness()
    h.add(_cronjob(schedule="*/2 * * * *", startingDeadlineSeconds=90))
    await h.tick(220)  # 00:03:45: the 00:02 start is 105 s late
    assert h.jobs() == []
    await h.tick(45)  # 00:04:30
    assert [j["metadata"]["name"] for j in h.jobs()] == [f"tick-{int(E0 // 60) + 4}"]


async def test_too_many_missed_times_still_starts_the_latest() -> None:
    h = Harness()
    h.add(_cronjob())
    await h.tick(150 * MIN)
    assert "TooManyMissedTimes" in h.reasons()
    assert len(h.jobs()) == 1


async def test_history_limits_prune_oldest() -> None:
    h = Harness()
    h.add(_cronjob(successfulJobsHistoryLimit=1, failedJobsHistoryLimit=0))
    for _ in range(3):
        await h.tick(60)
        newest = max(h.jobs(), key=lambda j: j["metadata"]["name"])
        await h.finish(newest)
    await h.tick(1)
    assert len(h.jobs()) == 1
    await h.tick(59)
    newest = max(h.jobs(), key=lambda j: j["metadata"]["name"])
    await h.finish(newest, "Failed")
    await h.tick(1)
    assert all(
        (j.get("status") or {}).get("conditions", [{}])[0].get("type") == "Complete"
        for j in h.jobs()
    )
    assert h.reasons().count("SuccessfulDelete") == 3


async def test_time_zone_annotation() -> None:
    h = Harness()
    h.add(_cronjob(timeZone="Asia/Tokyo"))
    await h.tick(60)
    job = h.jobs()[0]
    assert job["metadata"]["annotations"][SCHEDULED_TIMESTAMP] == "2024-01-01T09:01:00+09:00"


async def test_requeues_for_next_schedule_time() -> None:
    h = Harness()
    h.add(_cronjob(schedule="@hourly"))
    await h.tick(0)
    due = h.ctrl.queue._timers["ns/tick"].when()
    import asyncio

    remaining = due - asyncio.get_running_loop().time()
    assert 3590 < remaining <= 3595.1
    h.ctrl.queue.close()


def test_utc_default_zone() -> None:
    assert Schedule("0 0 * * *").zone is UTC
