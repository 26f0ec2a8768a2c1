"""The Chronos service: the I/O shell around the planner.

``run`` keeps ChronosJob objects (namespace ``chronos``) in an informer, subscribes to
the Mesos master as a framework (``framework_client.SchedulerClient``; its id is kept in
the ConfigMap ``chronos/chronos-framework`` so a restarted Chronos fails over and keeps
its tasks), ticks the planner at every due slot (at least once a second), and carries
out its instructions. The REST API's calls are ``api.ChronosApi``'s (a base class).

Nothing the planner asks for is awaited where events are read: ``dispatch`` hands
claims and status writes to ``writes.JobWrites`` (per job in order, across jobs at
once) and master calls (ACCEPT, DECLINE, KILL) to tasks of their own, so neither the
tick loop nor the SUBSCRIBE stream waits on the API server or an unreachable master.
REVIVE and SUPPRESS go through one ``offercalls.OfferState`` task, serially, as the
planner's flag stands when each is sent.

Exactly once: a ``Claim`` is a status write conditional on the object's
``resourceVersion`` (``status.lastSlot``, the rewritten schedule and ``openRuns``); only
once it is durable is the run queued for an offer; a failed claim rolls the planner
back. Status UPDATEs are acknowledged explicitly, only once every write their result
caused is durable (a failed write: no acknowledgement, so the master sends the update
again, and the job's results are written again before that one is acknowledged).
After a restart, reconciliation shows which claimed slots (``openRuns``) have a task;
``Planner.settle`` runs the others once (docs/chronos.md). Jobs changed by another
process (a second Chronos, fenced off by Mesos' failover once this one subscribes)
reach the planner through the informer: its claims and results are adopted. Fenced off
itself (the master says the framework failed over to another Chronos), ``run`` logs one
line and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from corral.api.errors import StatusError
from corral.chronos import dag, jobs
from corral.chronos.api import ChronosApi
from corral.chronos.instructions import (
    Claim,
    Decline,
    Instruction,
    Kill,
    Launch,
    Revive,
    Suppress,
    WriteStatus,
    parse_task_id,
)
from corral.chronos.offercalls import OfferState
from corral.chronos.planner import RESULT_FIELDS, TERMINAL_FAILURES, Planner
from corral.chronos.taskinfo import ts
from corral.chronos.writes import LOST, WON, JobWrites
from corral.client.basic_auth import basic_header
from corral.client.informer import Informer
from corral.client.rest import CHRONOS_JOBS, CONFIGMAPS, NAMESPACES, Client
from corral.mesos.framework_client import FrameworkError, SchedulerCallError, SchedulerClient

log = logging.getLogger("corral.chronos")

Obj = dict[str, Any]
NAMESPACE = "chronos"
FRAMEWORK_CONFIGMAP = "chronos-framework"
TERMINAL_STATES = ("TASK_FINISHED", *TERMINAL_FAILURES)
#: how long after SUBSCRIBED reconciliation may take before unconfirmed slots run
SETTLE_SECONDS = 3.0


class Fenced(Exception):
    """Another Chronos took the framework over: this one stops."""


class ChronosService(ChronosApi):
    """See the module docstring."""

    def __init__(
        self,
        client: Client,
        master: str,
        *,
        leader: str = "127.0.0.1:4400",
        clock: Callable[[], float] = time.time,
        role: str = "*",
        write_concurrency: int | None = None,
        principal: str = "",
        secret: str = "",
    ) -> None:
        self.client = client
        self.master = master
        #: who this framework authenticates to the master as (HTTP basic), or ""
        self.principal = principal
        self.secret = secret
        self.leader_address = leader
        self.now = clock
        self.role = role
        self.planner = Planner()
        self.informer = Informer(client, CHRONOS_JOBS, namespace=NAMESPACE)
        self.framework: SchedulerClient | None = None
        self._wake = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._loose: set[asyncio.Task[None]] = set()  # before ``run`` (tests)
        self.ready = asyncio.Event()
        self.fenced = ""  # why this process stopped, once another Chronos took over
        self._counters: dict[str, int] = {"runs_launched": 0, "accepts_failed": 0}
        self._skipped_logged: dict[str, str] = {}
        kw = {} if write_concurrency is None else {"concurrency": write_concurrency}
        self.writes = JobWrites(client, self.informer, self._spawn, self.planner_open_runs, **kw)
        self.offer_state = OfferState(lambda: self.framework, lambda: self.planner.suppressed)

    def _authorization(self) -> str | None:
        """The ``Authorization`` header towards the master (``--mesos-authentication-*``)."""
        if not (self.principal and self.secret):
            return None
        return basic_header(self.principal, self.secret)

    def planner_open_runs(self, name: str) -> Obj | None:
        return self.planner.open_runs(name)

    @property
    def counters(self) -> dict[str, int]:
        return {**self._counters, **self.writes.counters, **self.offer_state.calls}

    # --- running ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve until cancelled; return (after one log line) when fenced off."""
        try:
            await self._run()
        except* Fenced as eg:
            self.fenced = str(eg.exceptions[0])
            log.error("chronos: stopping: %s", self.fenced)

    async def _run(self) -> None:
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
                due += self._upsert_stored(obj, now)
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
            if self.principal:
                info["principal"] = self.principal
            self.framework = SchedulerClient(
                self.master,
                info,
                on_event=self._on_event,
                framework_id=fid,
                implicit_acks=False,
                authorization=self._authorization(),
            )
            tg.create_task(self._framework_run(self.framework), name="chronos-framework")
            tg.create_task(self.offer_state.run(), name="chronos-offer-state")
            self.dispatch(due)
            self.ready.set()
            tg.create_task(self._loop(), name="chronos-loop")

    async def _framework_run(self, fw: SchedulerClient) -> None:
        try:
            await fw.run()
        except FrameworkError as e:
            why = "another Chronos took it over" if "failed over" in str(e) else "torn down"
            raise Fenced(
                f"the master ended framework {fw.framework_id} for this Chronos ({e}): {why}"
            ) from None

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            # one ``now`` for the tick and the next wake-up: with a second reading, a slot
            # falling between the two would be slept over (up to 1 s late, and skipped
            # under ``catchUp: none`` with a shorter ``epsilon``)
            now = self.now()
            self.dispatch(self.planner.tick(now))
            nxt = self.planner.next_due(now)
            wait = 1.0 if nxt is None else min(1.0, max(0.0, nxt - self.now()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 0.005)):
                    await self._wake.wait()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` supervised (in ``run``'s task group; before it, kept here)."""
        if self._tg is not None:
            self._tg.create_task(self._guarded(coro))
            return
        task = asyncio.get_running_loop().create_task(self._guarded(coro))
        self._loose.add(task)
        task.add_done_callback(self._loose.discard)

    async def _guarded(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("chronos: a background step failed")

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

    # --- jobs as stored -------------------------------------------------------------------------
    def _upsert_stored(self, obj: Obj, now: float) -> list[Instruction]:
        """A ChronosJob as stored (maybe by kubectl, past the API's checks): into the
        planner; one that cannot be used is skipped with a logged reason, never fatal."""
        name = ""
        try:
            job = _current(obj)
            name = str(job.get("name") or "")
            if not name:
                return []
            created = ts((obj.get("metadata") or {}).get("creationTimestamp"))
            out = self.planner.upsert(job, dict(obj.get("status") or {}), now, created=created)
        except Exception as e:  # one bad object must not stop Chronos
            key = (obj.get("metadata") or {}).get("name", "?")
            log.warning("chronos: job %s skipped: it cannot be read: %s", name or key, e)
            return []
        self._note_skipped(name)
        return out

    def _note_skipped(self, name: str) -> None:
        st = self.planner.jobs.get(name)
        why = st.invalid if st is not None else ""
        if why and self._skipped_logged.get(name) != why:
            log.warning("chronos: job %s skipped: %s", name, why)
        self._skipped_logged[name] = why

    def _on_job_event(self, kind: str, obj: Obj, old: Obj | None) -> None:
        """A ChronosJob changed, maybe by another Chronos (two at once, or one being
        replaced) or kubectl: a job this planner does not know is added, a deleted one
        removed (its children re-parented as Chronos does), and the claims and results
        another process recorded are adopted (so the next result written here does not
        overwrite them, and a slot recorded there is not run again here). A job replaced
        through another Chronos is re-read at the next start."""
        try:
            job = _current(obj)
            name = str(job.get("name") or "")
        except Exception:  # an unreadable object: skipped at upsert
            return
        if not name:
            return
        if kind == "DELETED":
            if name in self.planner.jobs and self._object(name) is None:
                self._spawn(self._removed(name))
            return
        status = dict(obj.get("status") or {})
        if name not in self.planner.jobs:
            self.dispatch(self._upsert_stored(obj, self.now()))
        elif self.planner.observe(name, status):
            self._spawn(self._settle_later(reconcile=True))

    async def _removed(self, name: str) -> None:
        """Chronos' ``deregisterJob``: the children with other parents lose this one."""
        orphans = self.planner.orphans_of(name)
        await self.carry_out(self.planner.remove(name))
        for child, parents in orphans:
            await self._reparent(child, parents)

    async def _reparent(self, child: str, parents: list[str]) -> None:
        st = self.planner.jobs.get(child)
        if st is None:
            return
        job = {**st.job, "parents": parents}
        try:
            made = await self.client.patch(
                CHRONOS_JOBS,
                jobs.object_name(child),
                {"spec": {"job": {"parents": parents}}},
                NAMESPACE,
            )
            self.informer.apply("MODIFIED", made)
        except StatusError as e:
            if e.code != 404:
                raise
        self.dispatch(self.planner.upsert(job, {}, self.now()))

    async def _settle_later(self, *, reconcile: bool = False) -> None:
        """Run the claimed slots no task was found for, once reconciliation had time."""
        if reconcile and self.framework is not None:
            with contextlib.suppress(SchedulerCallError):
                await self.framework.reconcile([])
        await asyncio.sleep(SETTLE_SECONDS)
        self.dispatch(self.planner.settle())

    # --- events from the master -----------------------------------------------------------------
    async def _on_event(self, event: Obj) -> None:
        kind = event.get("type")
        now = self.now()
        if kind == "SUBSCRIBED":
            fid = event["subscribed"]["framework_id"]["value"]
            await self._store_framework_id(fid)
            self._spawn(self._reconcile())
            self.dispatch(self.planner.subscribed())
            self.offer_state.subscribed()
            self._spawn(self._settle_later())
        elif kind == "OFFERS":
            offers = (event.get("offers") or {}).get("offers") or []
            self.dispatch(self.planner.offers(offers, now))
        elif kind == "UPDATE":
            status = (event.get("update") or {}).get("status") or {}
            waits = self.dispatch(self.planner.update(status, now))
            self._spawn(self._acknowledge(status, waits))
        elif kind == "ERROR":
            log.info("chronos: the master says: %s", (event.get("error") or {}).get("message"))

    async def _reconcile(self) -> None:
        if self.framework is not None:
            with contextlib.suppress(SchedulerCallError):
                await self.framework.reconcile([])

    async def _acknowledge(self, status: Obj, waits: list[asyncio.Future[Any]]) -> None:
        """ACKNOWLEDGE an update once what it caused is durable: its own writes, and
        the job's writes still in flight (an update sent again while its result is
        being written). A job whose last write failed has its results written again
        first. Nothing is acknowledged when a write fails: the master resends."""
        if not status.get("uuid") or self.framework is None:
            return
        parsed = parse_task_id((status.get("task_id") or {}).get("value", ""))
        name = parsed[0] if parsed else ""
        ends = status.get("state") in TERMINAL_STATES
        # only an end has a result to be durable; TASK_RUNNING and the like go at once
        last = self.writes.last.get(name) if ends else None
        if last is not None and last.done() and not last.cancelled() and last.exception():
            st = self.planner.jobs.get(name)
            if st is not None:
                again = {k: st.status[k] for k in (*RESULT_FIELDS, "openRuns") if k in st.status}
                waits.append(self.writes.patch(name, again))
        elif last is not None and not last.done():
            waits.append(last)
        for fut in waits:
            try:
                await fut
            except Exception as e:  # not durable: not acknowledged
                log.info("chronos: update of %s not acknowledged: %s", name or "?", e)
                return
        try:
            await self.framework.acknowledge(status)
        except SchedulerCallError as e:  # the master resends what is not acknowledged
            log.info("chronos: acknowledgement not delivered: %s", e)

    # --- instructions -------------------------------------------------------------------------
    def dispatch(self, instructions: list[Instruction]) -> list[asyncio.Future[Any]]:
        """Start carrying out ``instructions`` without waiting; the futures of the
        writes among them (a claim's resolves once the planner was told its outcome)."""
        waits: list[asyncio.Future[Any]] = []
        for ins in instructions:
            if isinstance(ins, Claim):
                waits.append(self._start_claim(ins))
            elif isinstance(ins, WriteStatus):
                fut = self.writes.patch(ins.job, ins.status, ins.disable)
                fut.add_done_callback(lambda _f: self._wake.set())
                waits.append(fut)
            elif isinstance(ins, Revive | Suppress):
                self.offer_state.poke()
            elif self.framework is not None:
                self._spawn(self._master_call(ins))
        return waits

    async def carry_out(self, instructions: list[Instruction]) -> None:
        """``dispatch`` and wait until the writes are durable (raises if one failed)."""
        for fut in self.dispatch(instructions):
            await fut

    def _start_claim(self, ins: Claim) -> asyncio.Future[str]:
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        written = self.writes.claim(ins)

        def told(f: asyncio.Future[str]) -> None:
            if f.cancelled():
                done.cancel()
                return
            error = f.exception()
            if error is not None:
                log.warning("chronos: claim of %s slot %d failed: %s", ins.job, ins.slot_ms, error)
                self.dispatch(self.planner.claim_failed(ins.job, ins.slot_ms))
                self._wake.set()
                done.set_exception(error)
                return
            outcome = f.result()
            if outcome == WON:
                self.dispatch(self.planner.claimed(ins.job, ins.slot_ms))
            else:
                self.dispatch(self.planner.claim_lost(ins.job, ins.slot_ms))
                self._adopt_stored(ins.job)
            done.set_result(outcome)

        written.add_done_callback(told)
        return done

    async def _claim(self, ins: Claim) -> bool:
        """Claim one slot and wait for the outcome (True: this process runs it)."""
        return await self._start_claim(ins) == WON

    async def _master_call(self, ins: Instruction) -> None:
        fw = self.framework
        if fw is None:
            return
        try:
            if isinstance(ins, Launch):
                self._counters["runs_launched"] += len(ins.tasks)
                await fw.launch(ins.offer_id, list(ins.tasks), refuse_seconds=1.0)
            elif isinstance(ins, Decline):
                await fw.decline(list(ins.offer_ids), refuse_seconds=ins.refuse_seconds)
            elif isinstance(ins, Kill):
                await fw.kill(ins.task_id, ins.agent_id or None)
        except SchedulerCallError as e:
            log.warning("chronos: %s failed: %s", type(ins).__name__, e)
            if isinstance(ins, Launch):
                self._counters["accepts_failed"] += 1
                self._counters["runs_launched"] -= len(ins.tasks)
                tids = [t["task_id"]["value"] for t in ins.tasks]
                self.dispatch(self.planner.launch_failed(tids))

    def _object(self, name: str) -> Obj | None:
        return self.informer.get(f"{NAMESPACE}/{jobs.object_name(name)}")

    def _adopt_stored(self, name: str) -> None:
        """After a lost claim: the stored status (the winner's claim, read by the claim
        write) is observed again, so that a claim its process never launches runs here."""
        obj = self._object(name)
        if obj is not None and self.planner.observe(name, dict(obj.get("status") or {})):
            self._spawn(self._settle_later(reconcile=True))

    # --- the REST API's writes (http.Service; the reads are ``ChronosApi``'s) --------------------
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
        created = ts((made.get("metadata") or {}).get("creationTimestamp"))
        out = self.planner.upsert(job, status, now, created=created)  # first: the informer's
        self.informer.apply("MODIFIED" if obj else "ADDED", made)  # handler then knows it
        await self.carry_out(out)
        self._wake.set()

    async def delete(self, name: str) -> bool:
        if name not in self.planner.jobs:
            return False
        orphans = self.planner.orphans_of(name)
        await self.carry_out(self.planner.remove(name))
        try:
            await self.client.delete(CHRONOS_JOBS, jobs.object_name(name), NAMESPACE)
        except StatusError as e:
            if e.code != 404:
                raise
        for child, parents in orphans:
            await self._reparent(child, parents)
        return True

    async def run_now(self, name: str, arguments: list[str] | None) -> bool:
        if name not in self.planner.jobs:
            return False
        await self.carry_out(self.planner.run_now(name, self.now(), tuple(arguments or ())))
        return True

    async def kill_tasks(self, name: str) -> bool:
        if name not in self.planner.jobs:
            return False
        await self.carry_out(self.planner.kill_all(name, self.now()))
        return True

    async def mark_success(self, name: str) -> bool:
        if name not in self.planner.jobs:
            return False
        await self.carry_out(self.planner.mark_success(name, self.now()))
        return True


def _current(obj: Obj) -> Obj:
    """The job of an object, with the schedule as runs have rewritten it."""
    job = dict((obj.get("spec") or {}).get("job") or {})
    rewritten = (obj.get("status") or {}).get("schedule")
    if rewritten and job.get("schedule"):
        job["schedule"] = rewritten
    return job


__all__ = ["LOST", "WON", "ChronosService", "Fenced"]
