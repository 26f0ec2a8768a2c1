"""The CronJob controller (batch/v1 CronJob): Jobs on a cron schedule.

Run by the controller manager (``CronJobController(client, factory).run()``); tests
await ``sync(key)`` or call ``resync()`` after advancing a fake clock. As in Kubernetes
1.32 (pkg/controller/cronjob, controller v2), a sync:

1. reconciles ``status.active`` with the Jobs the CronJob owns (finished ones leave it:
   ``SawCompletedJob``; vanished ones too: ``MissingJob``) and moves
   ``lastSuccessfulTime`` to the latest completed Job;
2. unless deleting or suspended, finds the most recent unmet schedule time since
   ``lastScheduleTime`` (or creation), no earlier than ``now - startingDeadlineSeconds``;
   more than 100 missed times is reported (``TooManyMissedTimes``) but the latest is
   still started; one older than the starting deadline is skipped (``MissSchedule``);
3. applies concurrencyPolicy (Forbid skips while a Job is active, Replace deletes the
   active ones) and creates the Job ``<cronjob>-<scheduled minutes since the epoch>`` (the
   name is the lock against a double start);
4. prunes finished Jobs beyond the history limits (oldest first), writes status, and
   requeues itself for the next schedule time (``queue.add_after``): no polling.

Schedules are parsed by ``croniter`` (five fields and the ``@hourly`` style macros;
``@every <duration>`` as robfig/cron) in ``spec.timeZone`` or the controller's zone.
Time comes from the injected ``Clock``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, tzinfo
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter  # type: ignore[import-untyped]

from corral.api.errors import StatusError
from corral.client.rest import CRONJOBS, Client
from corral.controllers.base import Controller, InformerFactory, clone, controller_ref, owner_key
from corral.controllers.job import JOBS, finished_condition
from corral.util.clock import Clock, parse_rfc3339, rfc3339
from corral.util.durations import parse_go_duration

Obj = dict[str, Any]

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
#: requeue a little after the schedule time, for clock skew (nextScheduleDelta)
NEXT_SCHEDULE_DELTA = 0.1
TOO_MANY_MISSED = 100


class ScheduleError(ValueError):
    """The schedule cannot be parsed or never fires."""


def _go_duration(text: str) -> float:
    try:
        return parse_go_duration(text)
    except ValueError as e:
        raise ScheduleError(str(e)) from None


class Schedule:
    """A parsed ``spec.schedule`` in one time zone: ``next(t)`` is strictly after ``t``."""

    def __init__(self, spec: str, zone: tzinfo = UTC) -> None:
        self.spec = spec.strip()
        self.zone = zone
        self._every: float | None = None
        if self.spec.startswith("@every "):
            # robfig/cron: a constant delay, whole seconds, at least one
            self._every = max(1.0, math.floor(_go_duration(self.spec[len("@every ") :])))
            return
        if not self.spec.startswith("@") and len(self.spec.split()) != 5:
            raise ScheduleError(
                f"expected exactly 5 fields, found {len(self.spec.split())}: [{self.spec}]"
            )
        try:
            croniter(self.spec.replace("?", "*"), datetime.now(UTC))
        except (ValueError, KeyError) as e:
            raise ScheduleError(str(e) or self.spec) from None

    def next(self, t: float) -> float:
        base = math.floor(t)
        if self._every is not None:
            return base + self._every
        it = croniter(self.spec.replace("?", "*"), datetime.fromtimestamp(base, self.zone))
        try:
            got: datetime = it.get_next(datetime)
        except Exception as e:  # croniter: CroniterBadDateError (e.g. 30 February)
            raise ScheduleError(str(e)) from None
        return got.timestamp()

    def latest_at_or_before(self, t: float) -> float:
        base = math.floor(t) + 1
        if self._every is not None:
            return base - 1
        it = croniter(self.spec.replace("?", "*"), datetime.fromtimestamp(base, self.zone))
        try:
            got: datetime = it.get_prev(datetime)
        except Exception as e:
            raise ScheduleError(str(e)) from None
        return got.timestamp()


def zone_of(cronjob: Obj, default: tzinfo = UTC) -> tzinfo:
    """``spec.timeZone`` or the controller's zone; raises ZoneInfoNotFoundError."""
    tz = (cronjob.get("spec") or {}).get("timeZone")
    return ZoneInfo(tz) if tz else default


def most_recent_schedule_time(
    earliest: float, now: float, schedule: Schedule
) -> tuple[float | None, int]:
    """The latest schedule time in (earliest, now] and how many there were."""
    t1 = schedule.next(earliest)
    if now < t1:
        return None, 0
    t = t1
    count = 1
    while count <= 10 * TOO_MANY_MISSED:
        nt = schedule.next(t)
        if nt > now:
            return t, count
        t, count = nt, count + 1
    # very many: take the latest directly and estimate the count by the first period
    latest = schedule.latest_at_or_before(now)
    period = max(schedule.next(t1) - t1, 1.0)
    return latest, count + int((latest - t) / period)


def unmet_schedule_time(cronjob: Obj, now: float, schedule: Schedule) -> tuple[float | None, int]:
    """The schedule time a Job is due for (or None) and the number of missed times."""
    meta = cronjob.get("metadata") or {}
    status = cronjob.get("status") or {}
    spec = cronjob.get("spec") or {}
    earliest = parse_rfc3339(status.get("lastScheduleTime") or meta["creationTimestamp"])
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None:
        earliest = max(earliest, now - int(deadline))
    if earliest > now:
        return None, 0
    return most_recent_schedule_time(earliest, now, schedule)


def next_requeue_delay(cronjob: Obj, now: float, schedule: Schedule) -> float:
    """Seconds until the next schedule time after the most recent one (plus a pad)."""
    meta = cronjob.get("metadata") or {}
    status = cronjob.get("status") or {}
    earliest = parse_rfc3339(status.get("lastScheduleTime") or meta["creationTimestamp"])
    try:
        recent, _ = most_recent_schedule_time(earliest, now, schedule)
    except ScheduleError:
        recent = now
    return schedule.next(recent if recent is not None else earliest) + NEXT_SCHEDULE_DELTA - now


def job_name(cronjob: Obj, scheduled: float) -> str:
    return f"{cronjob['metadata']['name']}-{int(scheduled) // 60}"


def go_rfc3339(ts: float, zone: tzinfo) -> str:
    """``time.RFC3339`` in a zone: ``Z`` for a zero offset, else ``+01:00``."""
    d = datetime.fromtimestamp(int(ts), zone)
    text = d.strftime("%Y-%m-%dT%H:%M:%S")
    off = d.utcoffset()
    if not off:
        return text + "Z"
    mins = int(off.total_seconds()) // 60
    sign = "+" if mins >= 0 else "-"
    mins = abs(mins)
    return f"{text}{sign}{mins // 60:02d}:{mins % 60:02d}"


def job_from_template(cronjob: Obj, scheduled: float, zone: tzinfo) -> Obj:
    """The Job a CronJob starts for ``scheduled``."""
    template = (cronjob.get("spec") or {}).get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP] = go_rfc3339(scheduled, zone)
    meta: Obj = {
        "name": job_name(cronjob, scheduled),
        "namespace": cronjob["metadata"].get("namespace"),
        "annotations": annotations,
        "ownerReferences": [controller_ref(cronjob, "batch/v1", "CronJob")],
    }
    if tmeta.get("labels"):
        meta["labels"] = dict(tmeta["labels"])
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": clone(template.get("spec") or {}),
    }


def jobs_to_prune(
    jobs: list[Obj], successful_limit: int | None, failed_limit: int | None
) -> list[Obj]:
    """Finished Jobs beyond the history limits, oldest (by startTime, then name) first."""
    out: list[Obj] = []
    for kind, limit in (("Complete", successful_limit), ("Failed", failed_limit)):
        if limit is None:
            continue
        done = [j for j in jobs if (finished_condition(j) or {}).get("type") == kind]
        done.sort(key=_start_order)
        out += done[: max(0, len(done) - limit)]
    return out


def _start_order(job: Obj) -> tuple[int, str, str]:
    start = (job.get("status") or {}).get("startTime")
    return (0 if start else 1, start or "", str(job["metadata"]["name"]))


def _ref(job: Obj) -> Obj:
    meta = job["metadata"]
    return {
        "kind": "Job",
        "namespace": meta.get("namespace"),
        "name": meta["name"],
        "uid": meta.get("uid"),
        "apiVersion": "batch/v1",
        "resourceVersion": meta.get("resourceVersion"),
    }


def _owner_uid(job: Obj) -> str | None:
    for ref in (job.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller") and ref.get("kind") == "CronJob":
            return str(ref.get("uid"))
    return None


def _index_by_cronjob(job: Obj) -> list[str]:
    k = owner_key(job, "CronJob")
    return [k] if k else []


class CronJobController(Controller):
    """Starts Jobs on schedule (see the module docstring)."""

    name: ClassVar[str] = "cronjob"
    JOB_INDEX: ClassVar[str] = "cronjob-owner"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 4,
        clock: Clock | None = None,
        zone: tzinfo = UTC,
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        self.zone = zone
        self.cronjobs = factory.informer(CRONJOBS)
        self.jobs = factory.informer(JOBS)
        self.jobs.add_index(self.JOB_INDEX, _index_by_cronjob)
        self.cronjobs.add_handler(lambda _t, obj, _old: self.enqueue(obj))
        self.jobs.add_handler(self.enqueue_owner("CronJob"))

    @property
    def component(self) -> str:
        return "cronjob-controller"

    def resync(self) -> None:
        """Look at every CronJob now (after a fake clock moved, or a clock jump)."""
        for key in list(self.cronjobs.store):
            self.queue.add(key)

    async def sync(self, key: str) -> None:
        cj = self.cronjobs.get(key)
        if cj is None:
            return
        uid = cj["metadata"].get("uid")
        jobs = [j for j in self.jobs.by_index(self.JOB_INDEX, key) if _owner_uid(j) == uid]
        status = clone(cj.get("status") or {})
        requeue = await self._sync_cronjob(cj, status, jobs)
        if not cj["metadata"].get("deletionTimestamp"):
            await self._prune(cj, status, jobs)
        if status != (cj.get("status") or {}):
            body = clone(cj)
            body["status"] = status
            await self.client.update(CRONJOBS, body, cj["metadata"]["namespace"], sub="status")
        if requeue is not None:
            self.queue.add_after(key, max(requeue, 0.0))

    async def _sync_cronjob(self, cj: Obj, status: Obj, jobs: list[Obj]) -> float | None:
        """Everything but pruning; mutates ``status``; returns the requeue delay."""
        ns = cj["metadata"]["namespace"]
        now = self.clock.now()
        active: list[Obj] = list(status.get("active") or [])
        active_uids = {r.get("uid") for r in active}
        children = {j["metadata"].get("uid") for j in jobs}
        for j in jobs:
            juid = j["metadata"].get("uid")
            done = finished_condition(j)
            if juid not in active_uids and not done:
                await self.recorder.event(
                    cj,
                    "Warning",
                    "UnexpectedJob",
                    f"Saw a job that the controller did not create or forgot: {j['metadata']['name']}",
                )
            elif juid in active_uids and done:
                active = [r for r in active if r.get("uid") != juid]
                await self.recorder.event(
                    cj,
                    "Normal",
                    "SawCompletedJob",
                    f"Saw completed job: {j['metadata']['name']}, condition: {done.get('type')}",
                )
            if done and done.get("type") == "Complete":
                finished = (j.get("status") or {}).get("completionTime")
                last = status.get("lastSuccessfulTime")
                if finished and (not last or parse_rfc3339(finished) > parse_rfc3339(last)):
                    status["lastSuccessfulTime"] = finished
        for ref in list(active):
            if ref.get("uid") in children:
                continue
            try:
                await self.client.get(JOBS, str(ref.get("name")), ref.get("namespace") or ns)
            except StatusError as e:
                if e.code != 404:
                    raise
                await self.recorder.event(
                    cj, "Normal", "MissingJob", f"Active job went missing: {ref.get('name')}"
                )
                active = [r for r in active if r.get("uid") != ref.get("uid")]
        _set_active(status, active)

        if cj["metadata"].get("deletionTimestamp"):
            return None
        spec = cj.get("spec") or {}
        try:
            zone = zone_of(cj, self.zone)
        except (ZoneInfoNotFoundError, ValueError) as e:
            tz = spec.get("timeZone")
            await self.recorder.event(
                cj, "Warning", "UnknownTimeZone", f'invalid timeZone: "{tz}": {e}'
            )
            return None
        if spec.get("suspend"):
            return None
        try:
            schedule = Schedule(str(spec.get("schedule") or ""), zone)
        except ScheduleError as e:
            await self.recorder.event(
                cj,
                "Warning",
                "UnparseableSchedule",
                f'unparseable schedule: "{spec.get("schedule")}" : {e}',
            )
            return None
        try:
            scheduled, missed = unmet_schedule_time(cj, now, schedule)
        except ScheduleError as e:
            await self.recorder.event(
                cj, "Warning", "InvalidSchedule", f"invalid schedule: {spec.get('schedule')} : {e}"
            )
            return None
        if missed > TOO_MANY_MISSED:
            await self.recorder.event(
                cj,
                "Warning",
                "TooManyMissedTimes",
                f"too many missed start times: {missed}. Set or decrease "
                ".spec.startingDeadlineSeconds or check clock skew",
            )
        view = {**cj, "status": status}
        if scheduled is None:
            return next_requeue_delay(view, now, schedule)
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and scheduled + int(deadline) < now:
            when = datetime.fromtimestamp(int(scheduled), UTC).strftime(
                "%a, %d %b %Y %H:%M:%S +0000"
            )
            await self.recorder.event(
                cj, "Warning", "MissSchedule", f"Missed scheduled time to start a job: {when}"
            )
            return next_requeue_delay(view, now, schedule)
        name = job_name(cj, scheduled)
        last = status.get("lastScheduleTime")
        if any(r.get("name") == name for r in active) or (
            last and parse_rfc3339(last) == int(scheduled)
        ):
            return next_requeue_delay(view, now, schedule)
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and active:
            await self.recorder.event(
                cj,
                "Normal",
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid",
            )
            return next_requeue_delay(view, now, schedule)
        if policy == "Replace":
            for ref in list(active):
                await self._delete_job(cj, str(ref.get("name")), ns)
                active = [r for r in active if r.get("uid") != ref.get("uid")]
        try:
            made = await self.client.create(JOBS, job_from_template(cj, scheduled, zone), ns)
        except StatusError as e:
            if e.code != 409:
                await self.recorder.event(
                    cj, "Warning", "FailedCreate", f"Error creating job: {e.message}"
                )
                raise
            # made earlier (a lost status write): adopt it into the status if it is ours
            made = await self.client.get(JOBS, name, ns)
            if _owner_uid(made) != cj["metadata"].get("uid"):
                raise
        else:
            await self.recorder.event(cj, "Normal", "SuccessfulCreate", f"Created job {name}")
        active.append(_ref(made))
        _set_active(status, active)
        status["lastScheduleTime"] = rfc3339(scheduled)
        return next_requeue_delay({**cj, "status": status}, now, schedule)

    async def _delete_job(self, cj: Obj, name: str, ns: str) -> bool:
        try:
            await self.client.delete(JOBS, name, ns, propagation="Background")
        except StatusError as e:
            if e.code == 404:
                return True
            await self.recorder.event(cj, "Warning", "FailedDelete", f"Deleted job: {e.message}")
            raise
        await self.recorder.event(cj, "Normal", "SuccessfulDelete", f"Deleted job {name}")
        return True

    async def _prune(self, cj: Obj, status: Obj, jobs: list[Obj]) -> None:
        spec = cj.get("spec") or {}
        doomed = jobs_to_prune(
            jobs, spec.get("successfulJobsHistoryLimit"), spec.get("failedJobsHistoryLimit")
        )
        for j in doomed:
            await self._delete_job(cj, j["metadata"]["name"], cj["metadata"]["namespace"])
            juid = j["metadata"].get("uid")
            _set_active(status, [r for r in status.get("active") or [] if r.get("uid") != juid])


def _set_active(status: Obj, active: list[Obj]) -> None:
    if active:
        status["active"] = active
    else:
        status.pop("active", None)


__all__ = [
    "CRONJOBS",
    "CronJobController",
    "Schedule",
    "ScheduleError",
    "job_from_template",
    "job_name",
    "jobs_to_prune",
    "most_recent_schedule_time",
    "next_requeue_delay",
    "unmet_schedule_time",
    "zone_of",
]
