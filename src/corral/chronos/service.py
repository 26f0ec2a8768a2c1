"""The Chronos service: the I/O shell around the planner.

``run`` keeps ChronosJob objects (namespace ``chronos``) in an informer, subscribes to
the Mesos master as a framework (``framework.SchedulerClient``; its id is kept in the
ConfigMap ``chronos/chronos-framework`` so a restarted Chronos fails over and keeps its
tasks), ticks the planner at every due slot (at least once a second), and carries out
its instructions. It is also the ``http.Service`` the REST API calls.

Exactly once: a ``Claim`` is a status write conditional on the object's
``resourceVersion`` (``status.lastSlot`` and the rewritten schedule); only once it is
durable is the run queued for an offer. After a restart, reconciliation shows which
claimed slots have a task; ``Planner.settle`` runs the others once (docs/chronos.md).
UPDATEs are acknowledged only after their result is written (the client acknowledges
after ``_on_event`` returns), so a crash before the write gets the update again. The
slots due when it starts (the catch-up after downtime) are claimed like any other. Jobs
changed by another process (a second Chronos, fenced off by Mesos' failover once this
one subscribes) reach the planner through the informer: its claims and results are
adopted, and a claim of its with neither a task nor a result runs here, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from corral.api.errors import StatusError
from corral.chronos import dag, jobs, stats
from corral.chronos.planner import (
    Claim,
    Decline,
    Instruction,
    Kill,
    Launch,
    Planner,
    Revive,
    Suppress,
    WriteStatus,
)
from corral.client.informer import Informer
from corral.client.rest import CHRONOS_JOBS, CONFIGMAPS, NAMESPACES, Client
from corral.mesos.framework_client import SchedulerCallError, SchedulerClient

log = logging.getLogger("corral.chronos")

Obj = dict[str, Any]
NAMESPACE = "chronos"
FRAMEWORK_CONFIGMAP = "chronos-framework"
#: how long after SUBSCRIBED reconciliation may take before unconfirmed slots run
SETTLE_SECONDS = 3.0


class ChronosService:
    """See the module docstring."""

    def __init__(
        self,
        client: Client,
        master: str,
        *,
        leader: str = "127.0.0.1:4400",
        clock: Callable[[], float] = time.time,
        role: str = "*",
    ) -> None:
        self.client = client
        self.master = master
        self.leader_address = leader
        self.now = clock
        self.role = role
        self.planner = Planner()
        self.informer = Informer(client, CHRONOS_JOBS, namespace=NAMESPACE)
        self.framework: SchedulerClient | None = None
        self._wake = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self.ready = asyncio.Event()
        self.counters: dict[str, int] = {"runs_launched": 0, "claims_lost": 0}

    # --- running ------------------------------------------------------------------------------
    async def run(self) -> None:
        await self._ensure_namespace()
        fid = await self._stored_framework_id()
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self.informer.run(), name="chronos-jobs-informer")
            await self.informer.wait_for_sync(timeout=120)
            now = self.now()
            # the slots due now (catch-up after downtime) are claimed below, once the
            # framework client exists: dropping them would skip the catch-up run
            due: list[Instruction] = []
            for obj in list(self.informer.store.values()):
                job = _current(obj)
                if job.get("name"):
                    due += self.planner.upsert(job, dict(obj.get("status") or {}), now)
            self.informer.add_handler(self._on_job_event)
            info = {
                "user": "root",
                "name": "chronos",
                "roles": [self.role],
                "capabilities": [{"type": "MULTI_ROLE"}, {"type": "PARTITION_AWARE"}],
                "failover_timeout": 7 * 24 * 3600.0,
                "checkpoint": True,
                "webui_url": f"http://{self.leader_address}",
            }
            self.framework = SchedulerClient(
                self.master, info, on_event=self._on_event, framework_id=fid, implicit_acks=True
            )
            tg.create_task(self.framework.run(), name="chronos-framework")
            await self.dispatch(due)
            self.ready.set()
            tg.create_task(self._loop(), name="chronos-loop")

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            # one ``now`` for the tick and the next wake-up: with a second reading, a slot
            # falling between the two would be slept over (up to 1 s late, and skipped
            # under ``catchUp: none`` with a shorter ``epsilon``)
            now = self.now()
            await self.dispatch(self.planner.tick(now))
            nxt = self.planner.next_due(now)
            wait = 1.0 if nxt is None else min(1.0, max(0.0, nxt - self.now()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 0.005)):
                    await self._wake.wait()

    def _spawn(self, coro: Any) -> None:
        if self._tg is None:
            coro.close()
            return
        self._tg.create_task(self._guarded(coro))

    async def _guarded(self, coro: Any) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("chronos: a write failed")

    async def _ensure_namespace(self) -> None:
        try:
            await self.client.create(
                NAMESPACES,
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
            )
        except StatusError as e:
            if e.code != 409:
                raise

    async def _stored_framework_id(self) -> str | None:
        try:
            cm = await self.client.get(CONFIGMAPS, FRAMEWORK_CONFIGMAP, NAMESPACE)
        except StatusError as e:
            if e.code == 404:
                return None
            raise
        return (cm.get("data") or {}).get("frameworkId") or None

    async def _store_framework_id(self, fid: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": FRAMEWORK_CONFIGMAP, "namespace": NAMESPACE},
            "data": {"frameworkId": fid},
        }
        try:
            await self.client.create(CONFIGMAPS, body, NAMESPACE)
        except StatusError as e:
            if e.code != 409:
                raise
            await self.client.update(CONFIGMAPS, body, NAMESPACE)

    # --- events from the master -----------------------------------------------------------------
    async def _on_event(self, event: Obj) -> None:
        kind = event.get("type")
        now = self.now()
        if kind == "SUBSCRIBED":
            fid = event["subscribed"]["framework_id"]["value"]
            await self._store_framework_id(fid)
            assert self.framework is not None
            await self.framework.reconcile([])
            await self.dispatch(self.planner.subscribed())
            self._spawn(self._settle_later())
        elif kind == "OFFERS":
            offers = (event.get("offers") or {}).get("offers") or []
            await self.dispatch(self.planner.offers(offers, now))
        elif kind == "UPDATE":
            status = (event.get("update") or {}).get("status") or {}
            await self.dispatch(self.planner.update(status, now))
        elif kind == "ERROR":
            log.error("chronos: the master says: %s", (event.get("error") or {}).get("message"))

    def _on_job_event(self, kind: str, obj: Obj, old: Obj | None) -> None:
        """A ChronosJob changed, maybe by another Chronos (two at once, or one being
        replaced): a job this planner does not know is added, a deleted one removed, and
        the claims and results another process recorded are adopted (so the next result
        written here does not overwrite them, and a slot recorded there is not run again
        here). A job replaced through another Chronos is re-read at the next start."""
        job = _current(obj)
        name = str(job.get("name") or "")
        if not name:
            return
        if kind == "DELETED":
            if name in self.planner.jobs and self._object(name) is None:
                self._spawn(self.dispatch(self.planner.remove(name)))
            return
        status = dict(obj.get("status") or {})
        if name not in self.planner.jobs:
            self._spawn(self.dispatch(self.planner.upsert(job, status, self.now())))
        elif self.planner.observe(name, status):
            self._spawn(self._settle_later(reconcile=True))

    async def _settle_later(self, *, reconcile: bool = False) -> None:
        """Run the claimed slots no task was found for, once reconciliation had time."""
        if reconcile and self.framework is not None:
            with contextlib.suppress(SchedulerCallError):
                await self.framework.reconcile([])
        await asyncio.sleep(SETTLE_SECONDS)
        await self.dispatch(self.planner.settle())

    # --- instructions -------------------------------------------------------------------------
    async def dispatch(self, instructions: list[Instruction]) -> None:
        for ins in instructions:
            try:
                await self._carry_out(ins)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("chronos: %s failed", type(ins).__name__)

    async def _carry_out(self, ins: Instruction) -> None:
        fw = self.framework
        if isinstance(ins, Claim):
            if await self._claim(ins):
                args = self.planner.arguments_for(ins.job)
                await self.dispatch(self.planner.claimed(ins.job, ins.slot_ms, args))
        elif isinstance(ins, WriteStatus):
            await self._write_status(ins.job, ins.status, ins.disable)
            self._wake.set()
        elif fw is None:
            return
        elif isinstance(ins, Launch):
            self.counters["runs_launched"] += len(ins.tasks)
            await fw.launch(ins.offer_id, list(ins.tasks), refuse_seconds=1.0)
        elif isinstance(ins, Decline):
            await fw.decline(list(ins.offer_ids), refuse_seconds=ins.refuse_seconds)
        elif isinstance(ins, Kill):
            await fw.kill(ins.task_id, ins.agent_id or None)
        elif isinstance(ins, Revive):
            await fw.revive()
        elif isinstance(ins, Suppress):
            await fw.suppress()

    def _object(self, name: str) -> Obj | None:
        return self.informer.get(f"{NAMESPACE}/{jobs.object_name(name)}")

    async def _claim(self, ins: Claim) -> bool:
        """The conditional status write that makes a slot this process's to run."""
        for _ in range(3):
            obj = self._object(ins.job)
            if obj is None:
                return False
            status = dict(obj.get("status") or {})
            # ``>=``: after a 409 the fresh object may show this very slot claimed by
            # another Chronos, which then runs it (not this one)
            if int(status.get("lastSlot") or -1) >= ins.slot_ms:
                self.counters["claims_lost"] += 1
                return False
            status["lastSlot"] = ins.slot_ms
            if ins.schedule:
                status["schedule"] = ins.schedule
            body = {**obj, "status": status}
            try:
                made = await self.client.update(CHRONOS_JOBS, body, NAMESPACE, sub="status")
            except StatusError as e:
                if e.code != 409:
                    raise
                fresh = await self.client.get(CHRONOS_JOBS, obj["metadata"]["name"], NAMESPACE)
                self.informer.apply("MODIFIED", fresh)
                continue
            self.informer.apply("MODIFIED", made)
            return True
        self.counters["claims_lost"] += 1
        return False

    async def _write_status(self, name: str, patch: Obj, disable: bool) -> None:
        oname = jobs.object_name(name)
        try:
            made = await self.client.patch(
                CHRONOS_JOBS, oname, {"status": patch}, NAMESPACE, sub="status"
            )
            self.informer.apply("MODIFIED", made)
            if disable:
                made = await self.client.patch(
                    CHRONOS_JOBS, oname, {"spec": {"job": {"disabled": True}}}, NAMESPACE
                )
                self.informer.apply("MODIFIED", made)
                st = self.planner.jobs.get(name)
                if st is not None:
                    st.job = {**st.job, "disabled": True}
        except StatusError as e:
            if e.code != 404:
                raise

    # --- the REST API's service (http.Service) ---------------------------------------------------
    def _known(self, name: str) -> bool:
        return name in self.planner.jobs

    async def upsert(self, body: Any, *, dependent: bool) -> None:
        try:
            await self._upsert(body, dependent=dependent)
        except StatusError as e:  # the API server refused the object: a 400 for Chronos
            raise jobs.JobError(e.message) from None

    async def _upsert(self, body: Any, *, dependent: bool) -> None:
        now = self.now()
        job = jobs.normalize(body, dependent=dependent, known=self._known, now=now)
        name = str(job["name"])
        existing = {n: st.job for n, st in self.planner.jobs.items()}
        dag.check(existing, name, list(job.get("parents") or []))
        oname = jobs.object_name(name)
        obj = self._object(name)
        if obj is None:
            body_obj = {
                "apiVersion": "chronos.corral.dev/v1",
                "kind": "ChronosJob",
                "metadata": {"name": oname, "namespace": NAMESPACE},
                "spec": {"job": job},
            }
            made = await self.client.create(CHRONOS_JOBS, body_obj, NAMESPACE)
            status: Obj = {}
        else:
            # a replaced job keeps its counts; a new schedule starts from its own start
            made = await self.client.update(
                CHRONOS_JOBS, {**obj, "spec": {**(obj.get("spec") or {}), "job": job}}, NAMESPACE
            )
            status = dict(made.get("status") or {})
            if job.get("schedule") != ((obj.get("spec") or {}).get("job") or {}).get("schedule"):
                status.pop("schedule", None)
                status.pop("lastSlot", None)
                # the old schedule as runs rewrote it goes from the stored status too, or
                # the API and a restarted Chronos (``_current``) would go on with it
                if "schedule" in (made.get("status") or {}):
                    made = await self.client.patch(
                        CHRONOS_JOBS, oname, {"status": {"schedule": None}}, NAMESPACE, sub="status"
                    )
                known = self.planner.jobs.get(name)
                if known is not None:
                    known.status.pop("schedule", None)
        out = self.planner.upsert(job, status, now)  # first: the informer's handler
        self.informer.apply("MODIFIED" if obj else "ADDED", made)  # then knows the job
        await self.dispatch(out)
        self._wake.set()

    def _chronos(self, name: str) -> Obj | None:
        st = self.planner.jobs.get(name)
        if st is None:
            return None
        obj = self._object(name) or {}
        status = {**(obj.get("status") or {}), **st.status}
        job = dict(st.job)
        if st.schedule is not None:
            job["schedule"] = st.schedule.text()  # as Chronos shows it: rewritten by runs
        return jobs.to_chronos(job, status)

    def jobs(self) -> list[Obj]:
        out = [self._chronos(n) for n in sorted(self.planner.jobs)]
        return [j for j in out if j is not None]

    def job(self, name: str) -> Obj | None:
        return self._chronos(name)

    async def delete(self, name: str) -> bool:
        if name not in self.planner.jobs:
            return False
        await self.dispatch(self.planner.remove(name))
        try:
            await self.client.delete(CHRONOS_JOBS, jobs.object_name(name), NAMESPACE)
        except StatusError as e:
            if e.code != 404:
                raise
        return True

    async def run_now(self, name: str, arguments: list[str] | None) -> bool:
        if name not in self.planner.jobs:
            return False
        await self.dispatch(self.planner.run_now(name, self.now(), tuple(arguments or ())))
        return True

    async def kill_tasks(self, name: str) -> bool:
        if name not in self.planner.jobs:
            return False
        await self.dispatch(self.planner.kill_all(name))
        return True

    async def mark_success(self, name: str) -> bool:
        if name not in self.planner.jobs:
            return False
        await self.dispatch(self.planner.mark_success(name, self.now()))
        return True

    def _runs(self, name: str) -> list[Obj]:
        st = self.planner.jobs.get(name)
        return list((st.status.get("runs") if st else None) or [])

    def job_stat(self, name: str) -> Obj | None:
        if name not in self.planner.jobs:
            return None
        runs = self._runs(name)
        durations = [float(r.get("duration") or 0.0) for r in runs]
        return {
            "histogram": stats.histogram(durations),
            "taskStatHistory": [stats.task_stat({**r, "jobName": name}) for r in runs],
        }

    def percentiles(self, which: str) -> list[Obj]:
        by_job = {
            n: [float(r.get("duration") or 0.0) for r in self._runs(n)] for n in self.planner.jobs
        }
        return stats.percentile_list(by_job, which)

    def graph_csv(self) -> str:
        all_jobs = {n: st.job for n, st in self.planner.jobs.items()}
        last = {n: _last_state(st.status) for n, st in self.planner.jobs.items()}
        current = {n: self.planner.current_state(n) for n in self.planner.jobs}
        return dag.csv(all_jobs, last, current)

    def graph_dot(self) -> str:
        return dag.dot({n: st.job for n, st in self.planner.jobs.items()})

    def metrics(self) -> Obj:
        success = sum(int(st.status.get("successCount") or 0) for st in self.planner.jobs.values())
        errors = sum(int(st.status.get("errorCount") or 0) for st in self.planner.jobs.values())
        return {
            "version": "3.0.0",
            "gauges": {
                "jobs.count": {"value": len(self.planner.jobs)},
                "jobs.queued": {"value": len(self.planner.queue)},
                "jobs.running": {"value": len(self.planner.running)},
            },
            "counters": {
                "runs.success": {"count": success},
                "runs.failure": {"count": errors},
                "runs.launched": {"count": self.counters["runs_launched"]},
                "runs.skipped": {"count": self.planner.skipped},
                "claims.lost": {"count": self.counters["claims_lost"]},
            },
            "histograms": {},
            "meters": {},
            "timers": {},
        }

    def leader(self) -> str:
        return self.leader_address

    def why(self, name: str) -> list[str]:
        return self.planner.waiting_for(name, self.now())


def _current(obj: Obj) -> Obj:
    """The job of an object, with the schedule as runs have rewritten it."""
    job = dict((obj.get("spec") or {}).get("job") or {})
    rewritten = (obj.get("status") or {}).get("schedule")
    if rewritten and job.get("schedule"):
        job["schedule"] = rewritten
    return job


def _last_state(status: Obj) -> str:
    ok, err = str(status.get("lastSuccess") or ""), str(status.get("lastError") or "")
    if not ok and not err:
        return "fresh"
    return "success" if ok >= err else "failure"
