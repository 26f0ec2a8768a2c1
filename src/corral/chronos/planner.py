"""The Chronos brain, sans-I/O: which run is due, where it goes, what its end means.

``service.py`` feeds it events (the clock, jobs added or removed, offers, task status
updates, API requests) and carries out what it returns (``instructions.py``): claim a
slot in the job's object before launching (exactly once: the write is conditional, see
docs/chronos.md), launch tasks into offers, kill tasks, write a job's status, and keep
the master's offer suppression equal to ``suppressed``. Nothing here awaits or reads the
wall clock: ``now`` is always given.

A run's life::

    due slot ──Claim──> claiming ──claimed──> queued ──offer fits──> Launch ──> launched
        │   (scheduled: catch-up policy, epsilon; dependent: every parent's run for
        │    the same trigger succeeded; manual: run now)         │ ACCEPT failed:
        └──claim_failed: rolled back, due again at the next tick  └──> queued again
    launched ──TASK_RUNNING──> running ──TASK_FINISHED──> success (children may follow)
                                   ├──TASK_KILLED (asked by a user / job deleted)──> killed:
                                   │      no retry, not an error (Chronos' handleKilledTask)
                                   └──TASK_FAILED/LOST/ERROR (or killed past maxRunSeconds)
                                          ──> attempt < retries? yes: queued again
                                              (attempt + 1), no: error

A claimed slot stays in ``status.openRuns`` (with its trigger, rerun root and arguments)
until its result is recorded, so after a restart every claimed slot without a result is
looked for among the framework's tasks and run once if none is found (``settle``),
concurrent jobs included. A terminal update is handled once per task id (a duplicate is
dropped). Children remember their parents' last successful runs in ``status.parentRuns``.

A manual run (``PUT job/NAME``) is a "rerun from here": once it succeeds, the jobs below
it run again, a child waiting only for its parents below NAME (a parent outside them
counts with its last result, which must be a success). Another Chronos' claims and
results are adopted as the stored status shows them (``observe``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from corral.api.mesos import POD_LIMIT_REACHED
from corral.chronos import schedule as sched
from corral.chronos.instructions import (
    Claim,
    Decline,
    Instruction,
    Kill,
    Launch,
    Revive,
    Run,
    Suppress,
    WriteStatus,
    parse_task_id,
    task_id,
)
from corral.chronos.taskinfo import (
    constraints_ok,
    needs,
    number,
    pod_slots,
    scalars,
    seconds,
    task_info,
)
from corral.chronos.taskinfo import iso as _iso
from corral.chronos.taskinfo import ts as _ts

__all__ = [
    "Claim",
    "Decline",
    "Instruction",
    "Kill",
    "Launch",
    "Planner",
    "Revive",
    "Run",
    "Suppress",
    "WriteStatus",
    "parse_task_id",
    "task_id",
    "task_info",
]

Obj = dict[str, Any]

TERMINAL_FAILURES = (
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_LOST",
    "TASK_ERROR",
    "TASK_DROPPED",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
    "TASK_UNKNOWN",
)
#: recent runs kept per job (for job/stat and the percentile lists)
KEEP_RUNS = 100
#: a run over ``maxRunSeconds`` is killed once, then again after this long if it lingers
KILL_AGAIN_SECONDS = 30.0
#: terminal task ids remembered to drop duplicated updates
KEEP_ENDED = 20_000
#: ``catchUp: all`` on a job that never ran: slots this long before its creation count
CREATED_GRACE_SECONDS = 60.0
LOOK_NOW = float("-inf")

#: why a job is not scheduled (``JobState.invalid``; ``corral why job/NAME`` says it)
BAD_SCHEDULE = "its schedule cannot be used"
BAD_CATCH_UP = "its catchUp is not one of none, last, all"


@dataclass
class JobState:
    name: str
    job: Obj
    status: Obj
    schedule: sched.Schedule | None = None
    #: parent name -> {"trigger": "<job>@<slot ms>", "at": unix s} of its last success
    #: seen by this child's trigger logic (stored as ``status.parentRuns``)
    parent_runs: dict[str, Obj] = field(default_factory=dict)
    last_trigger: float = 0.0  # when a dependent job last ran (``status.lastTriggerAt``)
    #: claimed slots whose result is not recorded: slot -> {trigger, rerun, arguments}
    open: dict[int, Obj] = field(default_factory=dict)
    claiming: set[int] = field(default_factory=set)  # claims being written
    epsilon_s: float | None = None  # parsed once per upsert, not per tick
    policy: str = "last"
    created: float | None = None  # the object's creationTimestamp (unix s)
    #: when ``tick`` has to look at the job next (its next slot, cached; ``LOOK_NOW``:
    #: at the next tick, after anything that may make a slot due)
    next_at: float | None = None
    invalid: str = ""  # not scheduled, and why (a job stored by kubectl, not the API)

    @property
    def parents(self) -> list[str]:
        return list(self.job.get("parents") or [])


@dataclass
class _Pending:
    """A claim being written: what its run carries, and what to roll back to."""

    info: Obj
    last_slot: Any
    schedule: sched.Schedule | None
    last_trigger: float


class Planner:
    """See the module docstring. Callers hold one per Chronos service."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobState] = {}
        self.queue: list[Run] = []  # claimed runs waiting for an offer
        self.running: dict[str, Run] = {}  # task id -> launched/running run
        #: whether the master should hold offers back (the shell converges to it)
        self.suppressed = False
        #: claimed slots whose run is not known yet (after a restart): (name, slot ms)
        self.unconfirmed: set[tuple[str, int]] = set()
        self.skipped = 0
        self._pending: dict[tuple[str, int], _Pending] = {}  # claims being written
        self._ended: OrderedDict[str, None] = OrderedDict()  # terminal task ids seen

    # --- jobs ---------------------------------------------------------------------------------
    def upsert(
        self, job: Obj, status: Obj, now: float, *, created: float | None = None
    ) -> list[Instruction]:
        """A job added or replaced. A job whose schedule or ``catchUp`` cannot be used
        (stored past the API's checks) is kept with ``invalid`` set and never run."""
        name = str(job["name"])
        st = self.jobs.get(name)
        schedule, invalid = None, ""
        if job.get("schedule"):
            try:
                schedule = sched.parse(
                    str(job["schedule"]), str(job.get("scheduleTimeZone") or ""), now
                )
            except Exception as e:  # any unusable schedule: skip the job
                invalid = f"{BAD_SCHEDULE}: {e}"
        policy = str(job.get("catchUp") or "last")
        if policy not in sched.POLICIES and not invalid:
            invalid = f"{BAD_CATCH_UP}: {policy!r}"
        if st is None:
            st = JobState(name, job, dict(status), schedule)
            self.jobs[name] = st
            st.created = created
            last = _ts(status.get("lastSuccess"))
            st.last_trigger = float(status.get("lastTriggerAt") or last or 0.0)
            st.parent_runs = dict(status.get("parentRuns") or {})
            st.open = _open_runs(status)
            for slot in st.open:
                if not _recorded(status, slot, 0):
                    # claimed before a restart, its end unknown: run it once unless the
                    # framework's tasks show it (``settle`` after reconciliation)
                    self.unconfirmed.add((name, slot))
        else:
            st.job, st.schedule = job, schedule
            st.status = {**st.status, **status}
        st.epsilon_s = seconds(job.get("epsilon"))
        st.policy = policy
        st.invalid = invalid
        st.next_at = LOOK_NOW
        return self.tick(now)

    def remove(self, name: str) -> list[Instruction]:
        """A job deleted: its runs are dropped and killed; a child with other parents
        loses it from its ``parents`` (Chronos' ``deregisterJob``), which the shell
        writes (``WriteStatus`` of the child's ``parentsRemoved``, see ``reparent``)."""
        self.jobs.pop(name, None)
        self.queue = [r for r in self.queue if r.job != name]
        self.unconfirmed = {u for u in self.unconfirmed if u[0] != name}
        out: list[Instruction] = []
        for r in self.running.values():
            if r.job == name:
                r.killed_at, r.kill_reason = r.killed_at or 0.0, "removed"
                out.append(Kill(r.task_id, r.agent))
        return out

    def orphans_of(self, name: str) -> list[tuple[str, list[str]]]:
        """Chronos' ``deregisterJob``: each child of ``name`` with more than one parent
        gets ``name`` taken out of its parents (the new parents listed here, for the
        shell to store in the child's spec); a child whose only parent it is keeps it
        and waits until a job of that name exists again (``waiting_for`` says so)."""
        out = []
        for st in self.jobs.values():
            parents = st.parents
            if name in parents and len(parents) > 1:
                out.append((st.name, [p for p in parents if p != name]))
        return out

    # --- time ---------------------------------------------------------------------------------
    def tick(self, now: float) -> list[Instruction]:
        """Claim every scheduled slot now due; kill runs over ``maxRunSeconds``. Cheap
        when nothing is due: a job is looked at only once its next slot has come."""
        out: list[Instruction] = []
        for st in self.jobs.values():
            if st.schedule is None or st.invalid or st.job.get("disabled"):
                continue
            if st.next_at is None:
                st.next_at = sched.next_slot(st.schedule, now - 1e-6)
            if st.next_at is None or now < st.next_at:
                continue
            out += self._due(st, now)
        for r in list(self.running.values()):
            owner = self.jobs.get(r.job)
            limit = number(owner.job.get("maxRunSeconds")) if owner is not None else 0
            began = r.started or r.launched
            if not limit or began is None or now - began <= limit:
                continue
            if r.killed_at is None or now - r.killed_at >= KILL_AGAIN_SECONDS:
                r.killed_at = now
                r.kill_reason = r.kill_reason or "maxRunSeconds"
                out.append(Kill(r.task_id, r.agent))
        for name, slot_ms in [k for k, p in self._pending.items() if p.info.get("again")]:
            again = self.jobs.get(name)
            p = self._pending[(name, slot_ms)]
            if again is None:
                del self._pending[(name, slot_ms)]
            elif int(again.status.get("lastSlot") or -1) == slot_ms:  # no later claim
                p.info.pop("again", None)
                out.append(Claim(name, slot_ms, None, self._claim_status(again, slot_ms, p.info)))
        return out

    def _due(self, st: JobState, now: float) -> list[Instruction]:
        assert st.schedule is not None
        out: list[Instruction] = []
        last = st.status.get("lastSlot")
        last_s = None if last is None else float(last) / 1000.0
        policy = st.policy
        if last_s is None and policy == "all":
            # nothing to catch up from before the job existed
            if st.created is None:
                policy = "last"
            else:
                last_s = st.created - max(st.epsilon_s or 0.0, CREATED_GRACE_SECONDS)
        serial = not st.job.get("concurrent")
        busy = serial and self._busy(st.name)
        if busy and policy == "all":
            st.next_at = LOOK_NOW  # missed slots wait for the run to end, then run in turn
            return out
        slots, advanced = sched.catch_up(st.schedule, last_s, now, policy, epsilon_s=st.epsilon_s)
        partial = serial and len(slots) > 1
        if partial:  # one after another: the rest stay due (the schedule not past them)
            slots = slots[:1]
            advanced = sched.advance(st.schedule, slots[0])
        previous, st.schedule = st.schedule, advanced
        for slot in slots:
            if busy:
                self.skipped += 1
                continue
            slot_ms = round(slot * 1000)
            out.append(self._claim(st, slot_ms, advanced.text(), previous=previous))
        st.next_at = LOOK_NOW if partial else sched.next_slot(st.schedule, now)
        return out

    def _busy(self, name: str) -> bool:
        st = self.jobs.get(name)
        if st is not None and st.claiming:
            return True
        return any(r.job == name for r in self.queue) or any(
            r.job == name for r in self.running.values()
        )

    def next_due(self, now: float) -> float | None:
        """When ``tick`` next has something to do (for the service's sleep); a job
        whose missed slots wait for its run to end is looked at on the next tick."""
        best: float | None = None
        for st in self.jobs.values():
            if st.schedule is None or st.invalid or st.job.get("disabled"):
                continue
            if st.next_at is None:
                st.next_at = sched.next_slot(st.schedule, now - 1e-6)
            nxt = st.next_at
            if nxt == LOOK_NOW:
                nxt = sched.next_slot(st.schedule, now - 1e-6)
            if nxt is not None and nxt > now - 1e-6 and (best is None or nxt < best):
                best = nxt
        return best

    # --- claims -------------------------------------------------------------------------------
    def _claim(
        self,
        st: JobState,
        slot_ms: int,
        schedule: str | None,
        *,
        previous: sched.Schedule | None = None,
        info: Obj | None = None,
        extra: Obj | None = None,
    ) -> Claim:
        info = {"trigger": f"{st.name}@{slot_ms}", **(info or {})}
        self._pending[(st.name, slot_ms)] = _Pending(
            info, st.status.get("lastSlot"), previous or st.schedule, st.last_trigger
        )
        st.status["lastSlot"] = slot_ms
        st.claiming.add(slot_ms)
        status = {**self._claim_status(st, slot_ms, info), **(extra or {})}
        return Claim(st.name, slot_ms, schedule, status)

    def _claim_status(self, st: JobState, slot_ms: int, info: Obj) -> Obj:
        runs = self.open_runs(st.name) or {}
        runs[str(slot_ms)] = _open_out({slot_ms: info})[str(slot_ms)]
        return {"openRuns": runs}

    def claimed(
        self, name: str, slot_ms: int, arguments: tuple[str, ...] | None = None
    ) -> list[Instruction]:
        """The claim is durable: queue the run (with what the claim carried)."""
        p = self._pending.pop((name, slot_ms), None)
        info: Obj = dict(p.info) if p is not None else {"trigger": f"{name}@{slot_ms}"}
        info.pop("again", None)
        if arguments is not None:
            info["arguments"] = list(arguments)
        st = self.jobs.get(name)
        if st is None:
            return []
        st.claiming.discard(slot_ms)
        st.open[slot_ms] = info
        self.queue.append(_run(name, slot_ms, 0, info))
        # an earlier claim of the job whose own write failed is in this one's openRuns
        for key in [k for k, p in self._pending.items() if k[0] == name and k[1] < slot_ms]:
            if self._pending[key].info.get("again"):
                earlier = self._pending.pop(key).info
                earlier.pop("again", None)
                st.claiming.discard(key[1])
                st.open[key[1]] = earlier
                self.queue.append(_run(name, key[1], 0, earlier))
        st.status["openRuns"] = _open_out(st.open)
        return self._want_offers()

    def claim_lost(self, name: str, slot_ms: int) -> list[Instruction]:
        """Another process holds the slot (the stored ``lastSlot`` is as late). This
        planner's ``lastSlot`` goes back to what it was before the claim, so that the
        caller's ``observe`` of the stored status adopts the other's claim as
        unconfirmed: the other process may be fenced off before it launches the run,
        which then runs here once unless its task shows up."""
        p = self._pending.pop((name, slot_ms), None)
        st = self.jobs.get(name)
        if st is not None:
            st.claiming.discard(slot_ms)
            st.next_at = LOOK_NOW
            if p is not None and int(st.status.get("lastSlot") or -1) == slot_ms:
                if p.last_slot is None:
                    st.status.pop("lastSlot", None)
                else:
                    st.status["lastSlot"] = p.last_slot
        return []

    def claim_failed(self, name: str, slot_ms: int) -> list[Instruction]:
        """The claim could not be written (the API server failed, not another
        process). A scheduled or manual claim that is the job's newest is rolled back:
        the planner's state is what it was before it (a scheduled slot is due again at
        the next tick; a manual run is refused to its caller). Any other claim (a
        dependency trigger, or one a later claim of a concurrent job followed) is
        written again at the next tick."""
        p = self._pending.get((name, slot_ms))
        st = self.jobs.get(name)
        if p is None or st is None:
            self._pending.pop((name, slot_ms), None)
            if st is not None:
                st.claiming.discard(slot_ms)
            return []
        newest = int(st.status.get("lastSlot") or -1) == slot_ms
        if newest and p.info.get("kind") != "dependent":
            del self._pending[(name, slot_ms)]
            st.claiming.discard(slot_ms)
            if p.last_slot is None:
                st.status.pop("lastSlot", None)
            else:
                st.status["lastSlot"] = p.last_slot
            if p.schedule is not None:
                st.schedule = p.schedule
            st.last_trigger = p.last_trigger
            st.next_at = LOOK_NOW
            return []
        p.info["again"] = True
        return []

    def run_now(self, name: str, now: float, arguments: tuple[str, ...] = ()) -> list[Instruction]:
        """A manual run (``PUT job/NAME``): claim the instant. It is a "rerun from
        here": once it succeeds, the jobs below it run again (``_children_after``).
        Its arguments go with this run only (kept in its claim, by slot)."""
        st = self.jobs.get(name)
        if st is None:
            return []
        info = {"arguments": list(arguments), "rerun": name, "kind": "manual"}
        return self._trigger(st, now, info)

    def _trigger(
        self, st: JobState, now: float, info: Obj, extra: Obj | None = None
    ) -> list[Instruction]:
        """A manual run or a dependency trigger: claim the instant."""
        slot_ms = max(int(now * 1000), int(st.status.get("lastSlot") or 0) + 1)
        claim = self._claim(st, slot_ms, None, info=info, extra=extra)
        st.last_trigger = now
        return [claim]

    def arguments_for(self, name: str) -> tuple[str, ...]:
        """Kept for callers of the old API: arguments now travel with their claim."""
        return ()

    def open_runs(self, name: str) -> Obj | None:
        """What ``status.openRuns`` of the job is to be now: the claimed slots without
        a result and those being claimed (None: no such job)."""
        st = self.jobs.get(name)
        if st is None:
            return None
        runs = dict(st.open)
        for s in st.claiming:
            p = self._pending.get((name, s))
            if p is not None:
                runs[s] = p.info
        return _open_out(runs)

    def settle(self) -> list[Instruction]:
        """Reconciliation is over: each claimed slot no task was found for runs now
        (attempt 0), so that it runs exactly once."""
        out: list[Instruction] = []
        for name, slot_ms in sorted(self.unconfirmed):
            st = self.jobs.get(name)
            if st is None or (_recorded(st.status, slot_ms, 0) and slot_ms not in st.open):
                continue  # its result came in meanwhile (an update, or another Chronos)
            if any(r.job == name and r.slot_ms == slot_ms for r in self.queue) or any(
                r.job == name and r.slot_ms == slot_ms for r in self.running.values()
            ):
                continue
            info = st.open.get(slot_ms) or {"trigger": f"{name}@{slot_ms}"}
            st.open[slot_ms] = info
            self.queue.append(_run(name, slot_ms, 0, info))
            out += self._want_offers()
        self.unconfirmed.clear()
        return out

    def observe(self, name: str, status: Obj) -> bool:
        """The job's status as stored, which another Chronos may have written: adopt
        results this planner has not seen (``successCount + errorCount`` grows by one
        per result, whoever records it), so the next result written here builds on them
        instead of overwriting them, and a later claim (its slot is not claimed again
        here). A claim with no result yet is unconfirmed, as after a restart: the other
        process may have been fenced off (Mesos failed its framework over to this one)
        before launching it. True when there is such a slot: the caller reconciles and
        then ``settle``s, so that it runs once, here, unless its task shows up."""
        st = self.jobs.get(name)
        if st is None:
            return False
        if _results(status) > _results(st.status):
            for key in RESULT_FIELDS:
                if key in status:
                    st.status[key] = status[key]
            stored_open = _open_runs(status)
            stored_last = int(status.get("lastSlot") or -1)
            st.open = {s: i for s, i in st.open.items() if s in stored_open or s > stored_last}
            st.status["openRuns"] = _open_out(st.open)
        slot = status.get("lastSlot")
        if slot is None or int(slot) <= int(st.status.get("lastSlot") or -1):
            return False
        st.status["lastSlot"] = slot_ms = int(slot)
        st.next_at = LOOK_NOW
        if _recorded(st.status, slot_ms, 0) or any(
            r.job == name and r.slot_ms == slot_ms for r in self.running.values()
        ):
            return False
        st.open[slot_ms] = _open_runs(status).get(slot_ms) or {"trigger": f"{name}@{slot_ms}"}
        self.unconfirmed.add((name, slot_ms))
        return True

    # --- offers -------------------------------------------------------------------------------
    def offers(self, offers: list[Obj], now: float) -> list[Instruction]:
        out: list[Instruction] = []
        declined: list[str] = []
        order = sorted(
            self.queue,
            key=lambda r: (
                (not self.jobs[r.job].job.get("highPriority"), r.slot_ms)
                if r.job in self.jobs
                else (True, r.slot_ms)
            ),
        )
        placed: set[int] = set()
        rooms: dict[str, float] = {}  # pod slots left by agent (its offers share them)
        for offer in offers:
            free = scalars(offer.get("resources") or [])
            agent = offer["agent_id"]["value"]
            slots = pod_slots(offer.get("resources") or [])
            if slots is not None:
                rooms.setdefault(agent, slots)
            tasks: list[Obj] = []
            for r in order:
                if agent in rooms and rooms[agent] < 1:
                    break  # the node has no room for another pod
                if id(r) in placed:
                    continue
                st = self.jobs.get(r.job)
                if st is None:
                    placed.add(id(r))
                    continue
                need = needs(st.job)
                if any(free[k] + 1e-9 < need[k] for k in need):
                    continue
                if not constraints_ok(st.job, offer):
                    continue
                for k in need:
                    free[k] -= need[k]
                if agent in rooms:
                    rooms[agent] -= 1
                r.task_id = task_id(r.job, r.slot_ms, r.attempt)
                r.agent = offer["agent_id"]["value"]
                r.launched = now
                r.state = "launched"
                tasks.append(task_info(st.job, r, r.agent))
                placed.add(id(r))
                self.running[r.task_id] = r
            if tasks:
                out.append(Launch(offer["id"]["value"], offer["agent_id"]["value"], tuple(tasks)))
            else:
                declined.append(offer["id"]["value"])
        if placed:
            self.queue = [r for r in self.queue if id(r) not in placed]
        if declined:
            out.append(Decline(tuple(declined), 5.0 if self.queue else 60.0))
        if not self.queue and not self.suppressed:
            self.suppressed = True
            out.append(Suppress())
        return out

    def launch_failed(self, task_ids: list[str]) -> list[Instruction]:
        """The ACCEPT carrying these tasks failed: their runs wait for an offer again
        (a status update for one of them later shows it launched after all)."""
        for tid in task_ids:
            r = self.running.get(tid)
            if r is None or r.state != "launched":
                continue
            del self.running[tid]
            r.state, r.task_id, r.agent, r.launched = "queued", "", "", None
            if r.job in self.jobs:
                self.queue.append(r)
        return self._want_offers() if self.queue else []

    def subscribed(self) -> list[Instruction]:
        """A new subscription (this process's first, or after a failover): the master
        may still hold the framework's refusal filters and suppression from before (a
        previous Chronos declined offers for a minute as it stopped), which a new
        process does not know of. Revive when runs wait (that drops the filters), else
        suppress, so that the next run to queue revives."""
        self.suppressed = not self.queue
        return [Suppress()] if self.suppressed else [Revive()]

    def _want_offers(self) -> list[Instruction]:
        if self.suppressed:
            self.suppressed = False
            return [Revive()]
        return []

    # --- task status --------------------------------------------------------------------------
    def update(self, status: Obj, now: float) -> list[Instruction]:
        tid = (status.get("task_id") or {}).get("value", "")
        parsed = parse_task_id(tid)
        if parsed is None:
            return []
        name, slot_ms, attempt = parsed
        state = str(status.get("state") or "")
        terminal = state == "TASK_FINISHED" or state in TERMINAL_FAILURES
        if terminal and tid in self._ended:
            return []  # a duplicated terminal update: handled once
        agent = (status.get("agent_id") or {}).get("value", "")
        st = self.jobs.get(name)
        r = self.running.get(tid)
        if r is None:
            queued = next((q for q in self.queue if q.job == name and q.slot_ms == slot_ms), None)
            if queued is not None and queued.attempt == attempt:
                # launched after all (its ACCEPT's answer was lost): no second launch
                self.queue.remove(queued)
                r = queued
                r.task_id, r.agent, r.launched, r.state = tid, agent, now, "launched"
                self.running[tid] = r
            elif queued is not None or _retried(self.running.values(), name, slot_ms, attempt):
                return []  # an older attempt's update: its retry is under way
            elif st is None or (_recorded(st.status, slot_ms, attempt) and slot_ms not in st.open):
                # a run from before a restart whose result is recorded already is not
                # counted twice
                return []
            else:
                info = st.open.get(slot_ms) or {"trigger": f"{name}@{slot_ms}"}
                st.open.setdefault(slot_ms, info)
                r = _run(name, slot_ms, attempt, info)
                r.task_id, r.agent, r.launched = tid, agent, now
                self.running[tid] = r
        self.unconfirmed.discard((name, slot_ms))
        if state in ("TASK_RUNNING", "TASK_STARTING", "TASK_STAGING"):
            if state == "TASK_RUNNING":
                r.state = "running"
                r.started = r.started or now
            r.agent = agent or r.agent
            return []
        if not terminal:
            return []
        if state == "TASK_ERROR" and POD_LIMIT_REACHED in str(status.get("message") or ""):
            # the offer's node had no room after all: the same run waits for another
            # offer (the task id is used again; not a retry, not a failure)
            del self.running[tid]
            r.state, r.task_id, r.agent, r.launched = "queued", "", "", None
            if st is not None:
                self.queue.append(r)
                return self._want_offers()
            return []
        self._ended[tid] = None
        while len(self._ended) > KEEP_ENDED:
            self._ended.popitem(last=False)
        del self.running[tid]
        if st is None:
            return []
        if state == "TASK_FINISHED":
            if st.job.get("async"):
                return []  # an async job succeeds when told (job/success)
            return self._success(st, r, now)
        if state == "TASK_KILLED" and r.kill_reason != "maxRunSeconds":
            return self._killed(st, r, now)
        return self._failure(st, r, now, state, str(status.get("message") or ""))

    def _record(self, st: JobState, r: Run, now: float, outcome: str) -> Obj:
        began = r.started or r.launched or now
        entry = {
            "taskId": r.task_id,
            "slot": r.slot_ms,
            "attempt": r.attempt,
            "agent": r.agent,
            "startTime": _iso(began),
            "endTime": _iso(now),
            "duration": max(0.0, now - began),
            "status": outcome,
        }
        runs = [*(st.status.get("runs") or []), entry][-KEEP_RUNS:]
        st.status["runs"] = runs
        done = st.status.get("lastFinishedSlot")
        if done is None or r.slot_ms > int(done):
            st.status["lastFinishedSlot"] = r.slot_ms
            st.status["lastFinishedAttempt"] = r.attempt
        elif r.slot_ms == int(done):
            st.status["lastFinishedAttempt"] = max(
                r.attempt, int(st.status.get("lastFinishedAttempt") or 0)
            )
        st.open.pop(r.slot_ms, None)
        st.status["openRuns"] = _open_out(st.open)
        st.status["lastRunTrigger"] = r.trigger
        st.next_at = LOOK_NOW  # a serial job's waiting slots may run now
        return {
            "runs": runs,
            "lastFinishedSlot": st.status["lastFinishedSlot"],
            "lastFinishedAttempt": st.status["lastFinishedAttempt"],
            "openRuns": st.status["openRuns"],
            "lastRunTrigger": r.trigger,
        }

    def _success(self, st: JobState, r: Run, now: float) -> list[Instruction]:
        patch = self._record(st, r, now, "success")
        st.status["successCount"] = int(st.status.get("successCount") or 0) + 1
        st.status["lastSuccess"] = _iso(now)
        st.status["errorsSinceLastSuccess"] = 0
        patch.update(
            successCount=st.status["successCount"],
            lastSuccess=st.status["lastSuccess"],
            errorsSinceLastSuccess=0,
        )
        disable = bool(st.schedule is not None and st.schedule.repeats == 0)
        out: list[Instruction] = [WriteStatus(st.name, patch, disable)]
        return out + self._children_after(st.name, r, now)

    def _killed(self, st: JobState, r: Run, now: float) -> list[Instruction]:
        """Killed on request (``DELETE task/kill``, the job deleted): the slot is done,
        neither retried nor an error (Chronos' ``handleKilledTask`` only notifies)."""
        return [WriteStatus(st.name, self._record(st, r, now, "killed"))]

    def mark_success(self, name: str, now: float) -> list[Instruction]:
        """``PUT job/success/NAME``: the job's last run counts as a success now (async
        jobs, "mark success" in a DAG); its children may run."""
        st = self.jobs.get(name)
        if st is None:
            return []
        slot = int(st.status.get("lastSlot") or now * 1000)
        info = st.open.get(slot) or {
            "trigger": str(st.status.get("lastRunTrigger") or f"{name}@{slot}")
        }
        r = _run(name, slot, 0, info)
        r.started = now
        return self._success(st, r, now)

    def _failure(
        self, st: JobState, r: Run, now: float, state: str, message: str
    ) -> list[Instruction]:
        retries = int(number(st.job.get("retries")))
        if r.attempt < retries and st.name in self.jobs:
            again = Run(
                st.name, r.slot_ms, r.attempt + 1, r.arguments, rerun=r.rerun, trigger=r.trigger
            )
            self.queue.append(again)
            return self._want_offers()
        patch = self._record(st, r, now, "failure")
        st.status["errorCount"] = int(st.status.get("errorCount") or 0) + 1
        st.status["lastError"] = _iso(now)
        st.status["errorsSinceLastSuccess"] = int(st.status.get("errorsSinceLastSuccess") or 0) + 1
        patch.update(
            errorCount=st.status["errorCount"],
            lastError=st.status["lastError"],
            errorsSinceLastSuccess=st.status["errorsSinceLastSuccess"],
        )
        return [WriteStatus(st.name, patch)]

    def _children_after(self, parent: str, run: Run, now: float) -> list[Instruction]:
        """A parent's run succeeded: each child whose every parent succeeded since the
        child's own last trigger, and whose parents set off by the same root job did so
        for the same trigger (a diamond A->B, A->C, B+C->D runs D for A's slot T only
        after both B and C succeeded for T), runs now with that trigger. In a rerun from
        job R (``run.rerun``), a parent outside the jobs below R is not rerun, so its
        last result counts: the child runs when each parent below R succeeded since the
        child's last trigger and each other parent's last result is a success. The
        children's ``parentRuns`` are written (in their claim when they run)."""
        out: list[Instruction] = []
        rerun = run.rerun
        below = self._below(rerun) if rerun else set()
        for st in self.jobs.values():
            if parent not in st.parents or st.job.get("disabled") or st.invalid:
                continue
            st.parent_runs[parent] = {"trigger": run.trigger, "at": now}
            extra: Obj = {"parentRuns": dict(st.parent_runs)}
            fresh = [
                p
                for p in st.parents
                if float((st.parent_runs.get(p) or {}).get("at") or 0.0) > st.last_trigger
            ]
            ok = all(
                p in fresh or (rerun and p not in below and self._last_succeeded(p))
                for p in st.parents
            )
            if ok and _same_trigger([str(st.parent_runs[p]["trigger"]) for p in fresh]):
                extra["lastTriggerAt"] = now
                info = {"trigger": run.trigger, "rerun": rerun, "kind": "dependent"}
                out += self._trigger(st, now, info, extra)
            else:
                out.append(WriteStatus(st.name, extra))
        return out

    def _below(self, root: str) -> set[str]:
        """``root`` and every job that depends on it, directly or not."""
        seen = {root}
        todo = [root]
        while todo:
            name = todo.pop()
            for st in self.jobs.values():
                if name in st.parents and st.name not in seen:
                    seen.add(st.name)
                    todo.append(st.name)
        return seen

    def _last_succeeded(self, name: str) -> bool:
        st = self.jobs.get(name)
        if st is None:
            return False
        ok, err = _ts(st.status.get("lastSuccess")), _ts(st.status.get("lastError"))
        return ok is not None and (err is None or ok >= err)

    # --- API helpers --------------------------------------------------------------------------
    def kill_all(self, name: str, now: float = 0.0) -> list[Instruction]:
        """``DELETE task/kill/NAME``: its queued runs dropped (their slots done), its
        running tasks killed (neither retried nor counted as errors)."""
        out: list[Instruction] = []
        st = self.jobs.get(name)
        dropped = [r for r in self.queue if r.job == name]
        self.queue = [r for r in self.queue if r.job != name]
        if st is not None and dropped:
            for r in dropped:
                st.open.pop(r.slot_ms, None)
            st.status["openRuns"] = _open_out(st.open)
            st.next_at = LOOK_NOW
            out.append(WriteStatus(name, {"openRuns": st.status["openRuns"]}))
        for r in self.running.values():
            if r.job == name:
                r.killed_at, r.kill_reason = now, "user"
                out.append(Kill(r.task_id, r.agent))
        return out

    def current_state(self, name: str) -> str:
        if any(r.job == name for r in self.running.values()):
            return "running"
        if any(r.job == name for r in self.queue):
            return "queued"
        return "idle"

    def waiting_for(self, name: str, now: float) -> list[str]:
        """Why job ``name`` is not running (``corral why job/NAME``)."""
        st = self.jobs.get(name)
        if st is None:
            return [f"no job named {name!r}"]
        out: list[str] = []
        if st.invalid:
            out.append(f"it is skipped: {st.invalid}")
        if st.job.get("disabled"):
            out.append("it is disabled")
        for r in self.queue:
            if r.job == name:
                out.append(
                    f"run of slot {_iso(r.slot_ms / 1000)} (attempt {r.attempt}) waits for an "
                    f"offer with cpus {number(st.job.get('cpus'))}, mem {number(st.job.get('mem'))} MB"
                    + (" matching its constraints" if st.job.get("constraints") else "")
                )
        for r in self.running.values():
            if r.job == name:
                out.append(f"run {r.task_id} is {r.state} on {r.agent or 'an agent'}")
        if st.parents:
            gone = [p for p in st.parents if p not in self.jobs]
            if gone:
                out.append("its parent(s) do not exist (deleted?): " + ", ".join(gone))
            missing = [
                p
                for p in st.parents
                if p in self.jobs
                and float((st.parent_runs.get(p) or {}).get("at") or 0.0) <= st.last_trigger
            ]
            if missing:
                out.append("it waits for a success of its parent(s): " + ", ".join(missing))
        elif st.schedule is not None and not st.job.get("disabled") and not st.invalid:
            nxt = sched.next_slot(st.schedule, now)
            out.append(
                f"its next slot is {_iso(nxt)}"
                if nxt is not None
                else "its schedule has no more runs"
            )
        return out or ["nothing: it is idle"]


# --- helpers ------------------------------------------------------------------------------------
#: the status fields a recorded result writes (``_record``, ``_success``, ``_failure``)
RESULT_FIELDS = (
    "runs",
    "lastFinishedSlot",
    "lastFinishedAttempt",
    "successCount",
    "errorCount",
    "lastSuccess",
    "lastError",
    "errorsSinceLastSuccess",
)


def _run(name: str, slot_ms: int, attempt: int, info: Obj) -> Run:
    return Run(
        name,
        slot_ms,
        attempt,
        tuple(str(a) for a in info.get("arguments") or ()),
        rerun=str(info.get("rerun") or ""),
        trigger=str(info.get("trigger") or f"{name}@{slot_ms}"),
    )


def _open_runs(status: Obj) -> dict[int, Obj]:
    """``status.openRuns`` (slot ms as text -> run info) read back; an object written
    before it existed has its ``lastSlot`` open unless its result is recorded."""
    raw = status.get("openRuns")
    if isinstance(raw, dict):
        out: dict[int, Obj] = {}
        for k, v in raw.items():
            try:
                out[int(k)] = dict(v) if isinstance(v, dict) else {}
            except (TypeError, ValueError):
                continue
        return out
    claimed = status.get("lastSlot")
    if claimed is not None and not _recorded(status, int(claimed), 0):
        return {int(claimed): {}}
    return {}


def _open_out(runs: dict[int, Obj]) -> Obj:
    return {str(s): {k: v for k, v in i.items() if k != "again"} for s, i in sorted(runs.items())}


def _same_trigger(triggers: list[str]) -> bool:
    """Whether runs set off by the same root job were set off by the same slot of it."""
    by_root: dict[str, str] = {}
    for t in triggers:
        root = t.rsplit("@", 1)[0]
        if by_root.setdefault(root, t) != t:
            return False
    return True


def _retried(runs: Any, name: str, slot_ms: int, attempt: int) -> bool:
    return any(r.job == name and r.slot_ms == slot_ms and r.attempt > attempt for r in runs)


def _results(status: Obj) -> int:
    return int(status.get("successCount") or 0) + int(status.get("errorCount") or 0)


def _recorded(status: Obj, slot_ms: int, attempt: int) -> bool:
    """Whether the result of (slot, attempt) is in the job's status already (a slot
    still in ``openRuns`` is not: runs of a concurrent job may end out of order)."""
    raw = status.get("openRuns")
    if isinstance(raw, dict) and str(slot_ms) in raw:
        return False
    done = status.get("lastFinishedSlot")
    if done is None:
        return False
    if slot_ms != int(done):
        return slot_ms < int(done)
    return attempt <= int(status.get("lastFinishedAttempt") or 0)
