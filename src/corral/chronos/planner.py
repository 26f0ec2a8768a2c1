"""The Chronos brain, sans-I/O: which run is due, where it goes, what its end means.

``service.py`` feeds it events (the clock, jobs added or removed, offers, task status
updates, API requests) and carries out what it returns: claim a slot in the job's
object before launching (exactly once: the write is conditional, see docs/chronos.md),
launch tasks into offers, kill tasks, write a job's status, decline, revive, suppress.
Nothing here awaits or reads the wall clock: ``now`` is always given.

A run's life::

    due slot ──Claim──> claimed ──(service wrote it)──> queued ──offer fits──> Launch
        (scheduled: catch-up policy, epsilon; dependent: every parent succeeded since
         the child's last trigger; manual: run now)
    launched ──TASK_RUNNING──> running ──TASK_FINISHED──> success (children may follow)
                                   └──TASK_FAILED/KILLED/LOST/ERROR──> attempt < retries?
                                          yes: queued again (attempt + 1), no: error

Task ids are ``ct:<slot ms>:<attempt>:<job name>`` (Chronos' shape), so an update names
its job, slot and attempt without any other state.

A manual run (``PUT job/NAME``) is a "rerun from here": once it succeeds, the jobs below
it run again, a child waiting only for its parents below NAME (a parent outside them
counts with its last result, which must be a success). Another Chronos' claims and
results are adopted as the stored status shows them (``observe``).
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from corral.chronos import schedule as sched

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
MB = 1.0


def task_id(name: str, slot_ms: int, attempt: int) -> str:
    return f"ct:{slot_ms}:{attempt}:{name}"


def parse_task_id(tid: str) -> tuple[str, int, int] | None:
    """(job name, slot ms, attempt) of a Chronos task id, or None."""
    parts = tid.split(":", 3)
    if len(parts) != 4 or parts[0] != "ct":
        return None
    try:
        return parts[3], int(parts[1]), int(parts[2])
    except ValueError:
        return None


# --- instructions (what the service carries out) ----------------------------------------------
@dataclass(frozen=True)
class Claim:
    """Write ``status.lastSlot = slot`` (and the advanced schedule) conditionally, then
    tell the planner ``claimed`` (or ``claim_lost``)."""

    job: str
    slot_ms: int
    schedule: str | None  # the rewritten schedule text (scheduled jobs), else None


@dataclass(frozen=True)
class Launch:
    offer_id: str
    agent_id: str
    tasks: tuple[Obj, ...]


@dataclass(frozen=True)
class Decline:
    offer_ids: tuple[str, ...]
    refuse_seconds: float


@dataclass(frozen=True)
class Kill:
    task_id: str
    agent_id: str


@dataclass(frozen=True)
class WriteStatus:
    """Merge ``status`` into the job's object status (and ``disable`` the job)."""

    job: str
    status: Obj
    disable: bool = False


@dataclass(frozen=True)
class Revive:
    pass


@dataclass(frozen=True)
class Suppress:
    pass


Instruction = Claim | Launch | Decline | Kill | WriteStatus | Revive | Suppress


@dataclass
class Run:
    job: str
    slot_ms: int
    attempt: int
    arguments: tuple[str, ...] = ()
    task_id: str = ""
    agent: str = ""
    started: float | None = None  # TASK_RUNNING seen (unix s)
    launched: float | None = None
    state: str = "queued"  # queued | launched | running
    #: the job a "rerun from here" (``PUT job/NAME``) started at, "" for other runs;
    #: retries and the children this run triggers carry it on
    rerun: str = ""


@dataclass
class JobState:
    name: str
    job: Obj
    status: Obj
    schedule: sched.Schedule | None = None
    #: parent name -> unix time of its last success seen by this child's trigger logic
    parent_success: dict[str, float] = field(default_factory=dict)
    last_trigger: float = 0.0  # when a dependent job last ran (its own trigger)

    @property
    def parents(self) -> list[str]:
        return list(self.job.get("parents") or [])


class Planner:
    """See the module docstring. Callers hold one per Chronos service."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobState] = {}
        self.queue: list[Run] = []  # claimed runs waiting for an offer
        self.running: dict[str, Run] = {}  # task id -> launched/running run
        self.suppressed = False
        #: slots claimed but whose run is not known yet (after a restart): name -> slot
        self.unconfirmed: dict[str, int] = {}
        self.skipped = 0
        self._args: dict[str, tuple[str, ...]] = {}  # arguments of manual runs being claimed
        self._rerun: dict[tuple[str, int], str] = {}  # (job, slot) being claimed -> rerun root

    # --- jobs ---------------------------------------------------------------------------------
    def upsert(self, job: Obj, status: Obj, now: float) -> list[Instruction]:
        name = str(job["name"])
        st = self.jobs.get(name)
        schedule = None
        if job.get("schedule"):
            schedule = sched.parse(
                str(job["schedule"]), str(job.get("scheduleTimeZone") or ""), now
            )
        if st is None:
            st = JobState(name, job, dict(status), schedule)
            self.jobs[name] = st
            last = _ts(status.get("lastSuccess"))
            st.last_trigger = last or 0.0
            claimed = status.get("lastSlot")
            if claimed is not None and not _recorded(status, int(claimed), 0):
                # claimed before a restart, its end unknown: run it once unless the
                # framework's tasks show it (``settle`` after reconciliation)
                self.unconfirmed[name] = int(claimed)
        else:
            st.job, st.schedule = job, schedule
            st.status = {**st.status, **status}
        return self.tick(now)

    def remove(self, name: str) -> list[Instruction]:
        self.jobs.pop(name, None)
        self.queue = [r for r in self.queue if r.job != name]
        return [Kill(r.task_id, r.agent) for r in self.running.values() if r.job == name]

    # --- time ---------------------------------------------------------------------------------
    def tick(self, now: float) -> list[Instruction]:
        """Claim every scheduled slot now due; kill runs over ``maxRunSeconds``."""
        out: list[Instruction] = []
        for st in self.jobs.values():
            if st.schedule is None or st.job.get("disabled"):
                continue
            last = st.status.get("lastSlot")
            last_s = None if last is None else float(last) / 1000.0
            epsilon = _seconds(st.job.get("epsilon"))
            slots, advanced = sched.catch_up(
                st.schedule,
                last_s,
                now,
                str(st.job.get("catchUp") or "last"),
                epsilon_s=epsilon,
            )
            st.schedule = advanced  # past now: missed slots run (by policy) or are skipped
            for slot in slots:
                if not st.job.get("concurrent") and self._busy(st.name):
                    self.skipped += 1
                    continue
                slot_ms = round(slot * 1000)
                st.status["lastSlot"] = slot_ms
                out.append(Claim(st.name, slot_ms, advanced.text()))
        for r in list(self.running.values()):
            limit = _number(self.jobs[r.job].job.get("maxRunSeconds")) if r.job in self.jobs else 0
            began = r.started or r.launched
            if limit and began is not None and now - began > limit:
                out.append(Kill(r.task_id, r.agent))
        return out

    def _busy(self, name: str) -> bool:
        return any(r.job == name for r in self.queue) or any(
            r.job == name for r in self.running.values()
        )

    def next_due(self, now: float) -> float | None:
        """When ``tick`` next has something to do (for the service's sleep)."""
        times: list[float] = []
        for st in self.jobs.values():
            if st.schedule is None or st.job.get("disabled"):
                continue
            nxt = sched.next_slot(st.schedule, now - 1e-6)
            if nxt is not None:
                times.append(nxt)
        return min(times) if times else None

    # --- claims -------------------------------------------------------------------------------
    def claimed(
        self, name: str, slot_ms: int, arguments: tuple[str, ...] = ()
    ) -> list[Instruction]:
        """The claim is durable: queue the run."""
        rerun = self._rerun.pop((name, slot_ms), "")
        if name not in self.jobs:
            return []
        self.queue.append(Run(name, slot_ms, 0, arguments, rerun=rerun))
        return self._want_offers()

    def run_now(self, name: str, now: float, arguments: tuple[str, ...] = ()) -> list[Instruction]:
        """A manual run (``PUT job/NAME``): claim the instant. It is a "rerun from
        here": once it succeeds, the jobs below it run again (``_children_after``)."""
        return self._trigger(name, now, arguments, rerun=name)

    def _trigger(
        self, name: str, now: float, arguments: tuple[str, ...] = (), *, rerun: str = ""
    ) -> list[Instruction]:
        """A manual run or a dependency trigger: claim the instant."""
        st = self.jobs.get(name)
        if st is None:
            return []
        slot_ms = max(int(now * 1000), int(st.status.get("lastSlot") or 0) + 1)
        st.status["lastSlot"] = slot_ms
        st.last_trigger = now
        self._args[name] = arguments
        if rerun:
            self._rerun[(name, slot_ms)] = rerun
        return [Claim(name, slot_ms, None)]

    def arguments_for(self, name: str) -> tuple[str, ...]:
        """The arguments of the manual run whose claim is being written."""
        return self._args.pop(name, ())

    def settle(self) -> list[Instruction]:
        """Reconciliation is over: each claimed slot no task was found for runs now
        (attempt 0), so that it runs exactly once."""
        out: list[Instruction] = []
        for name, slot_ms in list(self.unconfirmed.items()):
            del self.unconfirmed[name]
            st = self.jobs.get(name)
            if st is None or _recorded(st.status, slot_ms, 0):
                continue  # its result came in meanwhile (an update, or another Chronos)
            if not any(r.job == name and r.slot_ms == slot_ms for r in self.running.values()):
                out += self.claimed(name, slot_ms)
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
        slot = status.get("lastSlot")
        if slot is None or int(slot) <= int(st.status.get("lastSlot") or -1):
            return False
        st.status["lastSlot"] = slot_ms = int(slot)
        if _recorded(st.status, slot_ms, 0) or any(
            r.job == name and r.slot_ms == slot_ms for r in self.running.values()
        ):
            return False
        self.unconfirmed[name] = slot_ms
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
        for offer in offers:
            free = _scalars(offer.get("resources") or [])
            tasks: list[Obj] = []
            for r in list(order):
                st = self.jobs.get(r.job)
                if st is None:
                    order.remove(r)
                    self.queue.remove(r)
                    continue
                need = _needs(st.job)
                if any(free[k] + 1e-9 < need[k] for k in need):
                    continue
                if not _constraints_ok(st.job, offer):
                    continue
                for k in need:
                    free[k] -= need[k]
                r.task_id = task_id(r.job, r.slot_ms, r.attempt)
                r.agent = offer["agent_id"]["value"]
                r.launched = now
                r.state = "launched"
                tasks.append(task_info(st.job, r, r.agent))
                order.remove(r)
                self.queue.remove(r)
                self.running[r.task_id] = r
            if tasks:
                out.append(Launch(offer["id"]["value"], offer["agent_id"]["value"], tuple(tasks)))
            else:
                declined.append(offer["id"]["value"])
        if declined:
            out.append(Decline(tuple(declined), 5.0 if self.queue else 60.0))
        if not self.queue and not self.suppressed:
            self.suppressed = True
            out.append(Suppress())
        return out

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
        agent = (status.get("agent_id") or {}).get("value", "")
        st = self.jobs.get(name)
        r = self.running.get(tid)
        if r is None:
            # a run from before a restart (reconciliation, or an update resent until
            # acknowledged); one whose result is recorded already is not counted twice
            if st is None or _recorded(st.status, slot_ms, attempt):
                return []
            r = Run(name, slot_ms, attempt, task_id=tid, agent=agent, launched=now)
            self.running[tid] = r
        if self.unconfirmed.get(name) == slot_ms:
            del self.unconfirmed[name]
        if state == "TASK_RUNNING":
            r.state = "running"
            r.started = r.started or now
            r.agent = agent or r.agent
            return []
        if state == "TASK_FINISHED":
            del self.running[tid]
            if st is None or st.job.get("async"):
                return []  # an async job succeeds when told (job/success)
            return self._success(st, r, now)
        if state in TERMINAL_FAILURES:
            del self.running[tid]
            if st is None:
                return []
            return self._failure(st, r, now, state, str(status.get("message") or ""))
        return []

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
        st.status["lastFinishedSlot"] = r.slot_ms
        st.status["lastFinishedAttempt"] = r.attempt
        return {"runs": runs, "lastFinishedSlot": r.slot_ms, "lastFinishedAttempt": r.attempt}

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
        return out + self._children_after(st.name, now, r.rerun)

    def mark_success(self, name: str, now: float) -> list[Instruction]:
        """``PUT job/success/NAME``: the job's last run counts as a success now (async
        jobs, "mark success" in a DAG); its children may run."""
        st = self.jobs.get(name)
        if st is None:
            return []
        r = Run(name, int(st.status.get("lastSlot") or now * 1000), 0, task_id="", started=now)
        return self._success(st, r, now)

    def _failure(
        self, st: JobState, r: Run, now: float, state: str, message: str
    ) -> list[Instruction]:
        retries = int(_number(st.job.get("retries")))
        if r.attempt < retries and st.name in self.jobs:
            self.queue.append(Run(st.name, r.slot_ms, r.attempt + 1, r.arguments, rerun=r.rerun))
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

    def _children_after(self, parent: str, now: float, rerun: str = "") -> list[Instruction]:
        """A parent succeeded: each child whose every parent succeeded since the child's
        own last trigger runs now. In a rerun from job R (``rerun``), a parent outside
        the jobs below R is not rerun, so its last result counts: the child runs when
        each parent below R succeeded since the child's last trigger and each other
        parent's last result is a success (rerun B in A->B, A->C, B+C->D: D runs again
        after B, with C's last success)."""
        out: list[Instruction] = []
        below = self._below(rerun) if rerun else set()
        for st in self.jobs.values():
            if parent not in st.parents or st.job.get("disabled"):
                continue
            st.parent_success[parent] = now
            if all(
                st.parent_success.get(p, 0.0) > st.last_trigger
                or (rerun and p not in below and self._last_succeeded(p))
                for p in st.parents
            ):
                out += self._trigger(st.name, now, rerun=rerun)
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
    def kill_all(self, name: str) -> list[Instruction]:
        """``DELETE task/kill/NAME``: its queued runs dropped, its running tasks killed."""
        self.queue = [r for r in self.queue if r.job != name]
        return [Kill(r.task_id, r.agent) for r in self.running.values() if r.job == name]

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
        if st.job.get("disabled"):
            out.append("it is disabled")
        for r in self.queue:
            if r.job == name:
                out.append(
                    f"run of slot {_iso(r.slot_ms / 1000)} (attempt {r.attempt}) waits for an "
                    f"offer with cpus {_number(st.job.get('cpus'))}, mem {_number(st.job.get('mem'))} MB"
                    + (" matching its constraints" if st.job.get("constraints") else "")
                )
        for r in self.running.values():
            if r.job == name:
                out.append(f"run {r.task_id} is {r.state} on {r.agent or 'an agent'}")
        if st.parents:
            missing = [p for p in st.parents if st.parent_success.get(p, 0.0) <= st.last_trigger]
            if missing:
                out.append("it waits for a success of its parent(s): " + ", ".join(missing))
        elif st.schedule is not None and not st.job.get("disabled"):
            nxt = sched.next_slot(st.schedule, now)
            out.append(
                f"its next slot is {_iso(nxt)}"
                if nxt is not None
                else "its schedule has no more runs"
            )
        return out or ["nothing: it is idle"]


# --- helpers ------------------------------------------------------------------------------------
def task_info(job: Obj, r: Run, agent: str) -> Obj:
    """The Mesos TaskInfo of one run."""
    cmd: Obj = {"value": str(job.get("command") or ""), "shell": bool(job.get("shell", True))}
    args = [str(a) for a in (job.get("arguments") or [])] + list(r.arguments)
    if args:
        if cmd["shell"]:
            cmd["value"] = " ".join([cmd["value"], *(shlex.quote(a) for a in args)])
        else:
            cmd["arguments"] = [cmd["value"], *args]
    env = [
        {"name": str(e.get("name")), "value": str(e.get("value", ""))}
        for e in job.get("environmentVariables") or []
        if isinstance(e, dict) and e.get("name")
    ]
    env += [
        {"name": "CHRONOS_JOB_NAME", "value": str(job["name"])},
        {"name": "CHRONOS_RESOURCE_CPU", "value": str(_number(job.get("cpus")))},
        {"name": "CHRONOS_RESOURCE_MEM", "value": str(_number(job.get("mem")))},
        {"name": "CHRONOS_RESOURCE_DISK", "value": str(_number(job.get("disk")))},
    ]
    cmd["environment"] = {"variables": env}
    uris = [{"value": u} for u in job.get("uris") or [] if isinstance(u, str)]
    uris += [
        {"value": f["uri"], **{k: f[k] for k in ("executable", "extract", "cache") if k in f}}
        for f in job.get("fetch") or []
        if isinstance(f, dict) and f.get("uri")
    ]
    if uris:
        cmd["uris"] = uris
    need = _needs(job)
    resources = [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": need["cpus"]}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": need["mem"]}},
    ]
    if need["disk"]:
        resources.append({"name": "disk", "type": "SCALAR", "scalar": {"value": need["disk"]}})
    info: Obj = {
        "name": f"ChronosTask:{job['name']}",
        "task_id": {"value": r.task_id},
        "agent_id": {"value": agent},
        "resources": resources,
        "command": cmd,
        "labels": {
            "labels": [{"key": "chronos.corral.dev/job", "value": _label(str(job["name"]))}]
        },
    }
    container = job.get("container")
    if isinstance(container, dict) and container.get("image"):
        docker: Obj = {"image": container["image"]}
        if container.get("forcePullImage"):
            docker["force_pull_image"] = True
        network = str(container.get("network") or "").upper()
        if network in ("HOST", "BRIDGE"):
            docker["network"] = network
        info["container"] = {"type": "DOCKER", "docker": docker}
    return info


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


def _results(status: Obj) -> int:
    return int(status.get("successCount") or 0) + int(status.get("errorCount") or 0)


def _recorded(status: Obj, slot_ms: int, attempt: int) -> bool:
    """Whether the result of (slot, attempt) is in the job's status already."""
    done = status.get("lastFinishedSlot")
    if done is None:
        return False
    if slot_ms != int(done):
        return slot_ms < int(done)
    return attempt <= int(status.get("lastFinishedAttempt") or 0)


def _label(value: str) -> str:
    from corral.api.mesos import label_safe

    return label_safe(value)


def _needs(job: Obj) -> dict[str, float]:
    return {
        "cpus": _number(job.get("cpus")) or 0.1,
        "mem": _number(job.get("mem")) or 128.0,
        "disk": _number(job.get("disk")),
    }


def _scalars(resources: list[Obj]) -> dict[str, float]:
    out = {"cpus": 0.0, "mem": 0.0, "disk": 0.0}
    for r in resources:
        if r.get("name") in out and r.get("type", "SCALAR") == "SCALAR":
            out[r["name"]] += float((r.get("scalar") or {}).get("value") or 0.0)
    return out


def _constraints_ok(job: Obj, offer: Obj) -> bool:
    """Chronos' constraints: [attribute, EQUALS|LIKE|UNLIKE, value]; ``hostname`` too."""
    attrs = {"hostname": str(offer.get("hostname") or "")}
    for a in offer.get("attributes") or []:
        if a.get("type") == "TEXT":
            attrs[str(a.get("name"))] = str((a.get("text") or {}).get("value") or "")
        elif a.get("type") == "SCALAR":
            attrs[str(a.get("name"))] = str((a.get("scalar") or {}).get("value"))

    for c in job.get("constraints") or []:
        if not isinstance(c, list) or len(c) < 2:
            continue
        field_, op = str(c[0]), str(c[1]).upper()
        value = str(c[2]) if len(c) > 2 else ""
        have = attrs.get(field_)
        if op == "EQUALS" and have != value:
            return False
        if op == "LIKE" and (have is None or not re.fullmatch(value, have)):
            return False
        if op == "UNLIKE" and have is not None and re.fullmatch(value, have):
            return False
    return True


def _number(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return 0.0
    return f if math.isfinite(f) and f > 0 else 0.0


def _seconds(v: Any) -> float | None:
    """An ISO 8601 duration (``PT60S``) in seconds, None when absent or unreadable."""
    if not isinstance(v, str) or not v:
        return None
    try:
        return sched.duration_seconds(v)
    except ValueError:
        return None


def _iso(ts: float | None) -> str:
    if ts is None:
        return ""
    from datetime import UTC, datetime

    return (
        datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{int(ts * 1000) % 1000:03d}Z"
    )


def _ts(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
