"""Chronos: 1,000 one-minute jobs on hollow agents, each run on time and once (issue 12).

``python -m bench.chronos_perf --out FILE [--sections planner,cluster]``

1. **planner** — ``Planner.tick`` in-process, sans-I/O, on a ``FakeClock``: 1,000 jobs
   (``R/<start>/PT1M``, the same start) all due in the same second; each cycle the clock
   moves one minute and ``tick`` returns 1,000 ``Claim``s. Reported (median of ``--runs``
   runs of ``--cycles`` cycles): p50/p99 of that tick, of an idle tick (nothing due: the
   service ticks at every due slot and at least once a second) and of ``next_due`` (the
   service computes it after every tick).

2. **cluster** — the real components: a fresh ``corral server --mesos-port P
   --hollow-nodes N --no-controllers`` (API server, scheduler with the Mesos master, N
   hollow nodes of 4 cpus / 32 GiB / 110 pods) and a ``ChronosService`` in this process,
   its REST API served on a free port, its ``clock=`` an ``AccelClock``: simulated time
   runs at a rate k the benchmark sets per phase (frozen while the jobs are created).
   1,000 jobs are created through the REST API (``POST /v1/scheduler/iso8601``, aiohttp, 8
   at a time): ``R/<start_i>/PT1M`` with the starts 60 ms apart (spread over the minute),
   ``command: true``, 0.01 cpu, 300 MB (``--task-mem``; Chronos also launches no more
   runs into an offer than its ``pods``, the node's free pod slots), Chronos' other
   defaults. Then the clock runs through the phases below; every slot is claimed,
   queued, launched into an offer and becomes a pod on a hollow node.

   Hollow pods never end by themselves and a task pod carries no hollow exit annotation
   (``mesos/taskpod.task_pod`` writes only the Mesos ones), so the benchmark ends each run
   ``--run-seconds`` (10) simulated seconds after its TASK_RUNNING by writing the pod's
   status as a hollow node does when its container exits 0 (``hollow.exited_status``:
   phase Succeeded); the master sends TASK_FINISHED and Chronos records a success.

   Phases (contiguous in simulated time; each slot belongs to the phase it falls in):

   - ``realtime-1..W`` (k = 1, ``--windows`` 1 of ``--window-seconds`` 60, i.e. 1,000 runs
     each): the issue's load, 16.7 runs/s, on the service as shipped;
   - ``gap`` (k = 1, 3 s, not reported): the last real-time runs start;
   - ``hour`` (k = ``--k`` 20, ``--accelerated-minutes`` 60 simulated minutes, 180 s): the
     issue's simulated hour (60,000 runs), sped up k times: how many run, how late (in
     simulated seconds: what the 1 s target is about; and in real ms), none twice.

   Per run (a slot of a job): when it was claimed (the tick that returned it), launched
   (the ``offers`` call that put it into an ACCEPT) and reached TASK_RUNNING, at the
   master (the update's ``timestamp``, mapped to simulated time) and as Chronos processed
   it (the ``now`` of ``Planner.update``). Lateness = that time - the slot, in simulated
   seconds (what the 1 s target is about) and in real ms. Per phase: runs expected (every
   slot in it), claimed, launched, reached TASK_RUNNING; slots claimed, launched (attempt
   0) or running twice (must be 0); the latency of ``GET /v1/scheduler/jobs`` (a poller,
   every 0.5 s); CPU of the machine, of this process (Chronos, its REST API, the run ender,
   the poller) and of the server's process tree; how long the service spends handling an
   event of the scheduler stream (``service_awaits``: the stream is read serially) and
   what its writes cost (``service_counters``).

   Under an accelerated clock the service's loop sleeps for the simulated seconds its
   clock says are left, as real seconds (``service._loop``), k times too long; a waker
   sets its ``_wake`` at every slot's real time while k > 1.

Figures are reported, never asserted. Everything this starts is stopped in ``finally``
blocks: the framework torn down (TEARDOWN: the master kills its tasks and deletes their
pods; ``task_pods_left`` counts what remains), the REST API closed, the server (and with it
the scheduler and the hollow nodes; ``server_processes_left``) stopped, the temp dir removed.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import gc
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.mesos_perf import _machine_jiffies, _tree_jiffies, percentile
from bench.report import write_report
from corral.chronos import jobs as chronos_jobs
from corral.chronos.planner import (
    TERMINAL_FAILURES,
    Claim,
    Instruction,
    Launch,
    Planner,
    parse_task_id,
)
from corral.chronos.service import ChronosService
from corral.testing.clock import FakeClock

Obj = dict[str, Any]
Key = tuple[str, int]  # (job name, slot ms)

JOBS = 1000
TASK_CPUS = 0.01
TASK_MEM_MB = 300.0
TERMINAL = ("TASK_FINISHED", *TERMINAL_FAILURES)


def iso_ms(ms: int) -> str:
    """``2026-01-01T00:00:00.060Z`` (a schedule start with milliseconds)."""
    day = datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{day}.{ms % 1000:03d}Z"


def job_body(i: int, start_ms: int, mem: float = TASK_MEM_MB) -> Obj:
    return {
        "name": f"bench-{i:04d}",
        "command": "true",
        "owner": "bench@corral.dev",
        "schedule": f"R/{iso_ms(start_ms)}/PT1M",
        "cpus": TASK_CPUS,
        "mem": mem,
    }


def _ms(values: list[float]) -> Obj:
    return {
        "p50_ms": round(1000 * percentile(values, 0.5), 3),
        "p99_ms": round(1000 * percentile(values, 0.99), 3),
        "max_ms": round(1000 * max(values), 3),
    }


# -- planner: one tick with 1,000 jobs due ---------------------------------------------------------
def planner_run(jobs: int, cycles: int) -> Obj:
    clock = FakeClock(1_700_000_000.0)
    start_ms = round(clock.now() * 1000) + 10_000
    planner = Planner()
    for i in range(jobs):
        job = chronos_jobs.normalize(
            job_body(i, start_ms), dependent=False, known=lambda _n: False, now=clock.now()
        )
        planner.upsert(job, {}, clock.now())
    clock.advance(10.5)  # the first slot of every job passed half a second ago
    due: list[float] = []
    idle: list[float] = []
    nxt: list[float] = []
    for c in range(cycles):
        if c:
            clock.advance(60.0)
        t0 = time.perf_counter()
        out = planner.tick(clock.now())
        due.append(time.perf_counter() - t0)
        if sum(isinstance(i, Claim) for i in out) != jobs:
            raise RuntimeError(f"cycle {c}: {len(out)} instructions, want {jobs} claims")
        # as the service goes on: each claim written, its run launched and done
        for ins in out:
            if isinstance(ins, Claim):
                planner.claimed(ins.job, ins.slot_ms)
        planner.queue.clear()
        for st in planner.jobs.values():
            st.open.clear()
        t0 = time.perf_counter()
        idle_out = planner.tick(clock.now() + 0.1)
        idle.append(time.perf_counter() - t0)
        if idle_out:
            raise RuntimeError(f"cycle {c}: an idle tick returned {len(idle_out)} instructions")
        t0 = time.perf_counter()
        planner.next_due(clock.now() + 0.1)
        nxt.append(time.perf_counter() - t0)
    return {"tick_due": _ms(due), "tick_idle": _ms(idle), "next_due": _ms(nxt)}


def bench_planner(args: argparse.Namespace) -> Obj:
    runs = []
    for r in range(args.runs):
        gc.collect()
        runs.append(planner_run(args.jobs, args.cycles))
        x = runs[-1]
        print(
            f"planner run {r + 1}: tick with {args.jobs} due p50 {x['tick_due']['p50_ms']} ms, "
            f"p99 {x['tick_due']['p99_ms']} ms; idle tick p50 {x['tick_idle']['p50_ms']} ms; "
            f"next_due p50 {x['next_due']['p50_ms']} ms",
            flush=True,
        )
    med = {
        f"{kind}_{q}": statistics.median(r[kind][q] for r in runs)
        for kind in ("tick_due", "tick_idle", "next_due")
        for q in ("p50_ms", "p99_ms")
    }
    return {
        "plan": {
            "jobs": args.jobs,
            "schedule": "R/<the same start>/PT1M",
            "cycles": args.cycles,
            "clock": "FakeClock, one minute per cycle",
        },
        "median": med,
        "runs": runs,
    }


# -- cluster: the real components ------------------------------------------------------------------
class AccelClock:
    """Simulated unix time running at ``rate`` x real time; ``set_rate`` starts a new
    stretch (rate 0 freezes it) and keeps it continuous. ``sim_of``/``real_of`` map
    between wall time and simulated time across the stretches."""

    def __init__(self, sim: float) -> None:
        self.stretches: list[tuple[float, float, float]] = [(time.time(), sim, 0.0)]

    @property
    def rate(self) -> float:
        return self.stretches[-1][2]

    def __call__(self) -> float:
        real0, sim0, rate = self.stretches[-1]
        return sim0 + rate * (time.time() - real0)

    def set_rate(self, rate: float) -> float:
        """Run at ``rate`` from now on; the simulated time of the change."""
        real = time.time()
        sim = self.sim_of(real)
        self.stretches.append((real, sim, rate))
        return sim

    def sim_of(self, real: float) -> float:
        i = max(0, bisect.bisect_right([s[0] for s in self.stretches], real) - 1)
        real0, sim0, rate = self.stretches[i]
        return sim0 + rate * (real - real0)

    def real_of(self, sim: float) -> float:
        """The wall time at simulated ``sim`` (in a running stretch)."""
        best = self.stretches[0]
        for s in self.stretches:
            if s[1] <= sim and s[2] > 0:
                best = s
        real0, sim0, rate = best
        return real0 + (sim - sim0) / rate if rate > 0 else real0


class Record:
    """What happened to each run, keyed by (job, slot ms)."""

    def __init__(self) -> None:
        self.claims: dict[Key, list[float]] = {}
        self.launches: dict[Key, list[tuple[int, float]]] = {}  # (attempt, simulated time)
        self.running_master: dict[str, float] = {}  # task id -> simulated time
        self.running_seen: dict[str, float] = {}
        self.finished: dict[str, str] = {}  # task id -> terminal state
        self.failures: dict[str, int] = {}  # state, reason and message -> how many
        self.last_launch = 0.0  # wall time
        self.on_running: Any = None  # callback(task id)


class RecordingPlanner(Planner):
    """The service's planner, unchanged, noting what it decides and when."""

    def __init__(self, rec: Record, clock: AccelClock) -> None:
        super().__init__()
        self.rec = rec
        self.clock = clock

    def tick(self, now: float) -> list[Instruction]:
        out = super().tick(now)
        for ins in out:
            if isinstance(ins, Claim):
                self.rec.claims.setdefault((ins.job, ins.slot_ms), []).append(now)
        return out

    def offers(self, offers: list[Obj], now: float) -> list[Instruction]:
        out = super().offers(offers, now)
        for ins in out:
            if isinstance(ins, Launch):
                self.rec.last_launch = time.time()
                for t in ins.tasks:
                    parsed = parse_task_id(t["task_id"]["value"])
                    if parsed is not None:
                        name, slot, attempt = parsed
                        self.rec.launches.setdefault((name, slot), []).append((attempt, now))
        return out

    def update(self, status: Obj, now: float) -> list[Instruction]:
        tid = (status.get("task_id") or {}).get("value", "")
        state = status.get("state")
        if state == "TASK_RUNNING" and tid not in self.rec.running_seen:
            self.rec.running_seen[tid] = now
            ts = status.get("timestamp")
            self.rec.running_master[tid] = (
                self.clock.sim_of(float(ts)) if isinstance(ts, (int, float)) else now
            )
            if self.rec.on_running is not None:
                self.rec.on_running(tid)
        elif state in TERMINAL and tid not in self.rec.finished:
            self.rec.finished[tid] = str(state)
            if state != "TASK_FINISHED":
                message = re.sub(r'"[^"]*"', '"..."', str(status.get("message", "")))
                why = f"{state} {status.get('reason', '')}: {message}"[:200]
                self.rec.failures[why] = self.rec.failures.get(why, 0) + 1
        return super().update(status, now)


class BenchService(ChronosService):
    """``ChronosService`` as shipped, timing how long it handles each event of the
    scheduler stream (read serially: the next event waits for it)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        #: seconds spent awaiting, by what
        self.spent: dict[str, list[float]] = {}

    def _note(self, what: str, t0: float) -> None:
        self.spent.setdefault(what, []).append(time.perf_counter() - t0)

    async def _on_event(self, event: Obj) -> None:
        t0 = time.perf_counter()
        kind = str(event.get("type"))
        if kind == "UPDATE":
            kind += " " + str(((event.get("update") or {}).get("status") or {}).get("state"))
        try:
            await super()._on_event(event)
        finally:
            self._note(f"event {kind} (stream)", t0)


async def waker(svc: ChronosService, clock: AccelClock, slots: list[float]) -> None:
    """While the clock runs faster than real time, wake the service's loop at every slot
    (its own sleep is in real seconds of what its clock says is left)."""
    i = 0
    while i < len(slots):
        now = clock()
        j = bisect.bisect_right(slots, now, lo=i)
        if j > i and clock.rate > 1:
            svc._wake.set()
        i = j
        rate = clock.rate
        wait = 0.05 if rate <= 1 or i >= len(slots) else (slots[i] - now) / rate
        await asyncio.sleep(min(0.05, max(0.0, wait)))


@dataclass
class Phase:
    name: str
    rate: float
    sim_seconds: float
    reported: bool = True
    # filled in while it runs
    start: float = 0.0  # simulated
    end: float = 0.0
    real_start: float = 0.0  # wall
    real_end: float = 0.0
    jiffies: tuple[int, int, int, int] = (0, 0, 0, 0)  # machine busy, total, ours, server


def _proc_jiffies(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _stats(values: list[float], scale: float = 1.0, digits: int = 3) -> Obj:
    if not values:
        return {"samples": 0}
    return {
        "samples": len(values),
        "p50": round(scale * percentile(values, 0.5), digits),
        "p99": round(scale * percentile(values, 0.99), digits),
        "max": round(scale * max(values), digits),
    }


async def _master_state(session: aiohttp.ClientSession, master: str) -> Obj:
    async with session.get(f"http://{master}/state") as r:
        out: Obj = await r.json(content_type=None)
        return out


async def cluster_run(args: argparse.Namespace, work: Path) -> Obj:
    from aiohttp import web

    from bench.server import BenchServer
    from corral.agent.hollow import exited_status
    from corral.api import mesos as mesos_names
    from corral.chronos.http import build_app
    from corral.client.rest import PODS, Client
    from corral.testing.process import free_port

    mport, cport = free_port(), free_port()
    master = f"127.0.0.1:{mport}"
    extra = ["--mesos-port", str(mport), "--hollow-nodes", str(args.nodes), "--no-controllers"]
    srv = BenchServer.start(work / "server", extra=extra)
    server_pids: set[int] = set()
    client: Client | None = None
    runner: web.AppRunner | None = None
    svc: BenchService | None = None
    background: list[asyncio.Task[Any]] = []
    pending: set[asyncio.Task[None]] = set()
    handles: list[asyncio.TimerHandle] = []
    out: Obj = {"server": srv.argv}
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
    try:
        await _wait_for_agents(session, master, args.nodes)
        server_pids = _descendants(srv.pid)
        client = Client.from_kubeconfig(srv.kubeconfig, user_agent="bench-chronos")
        clock = AccelClock(float(int(time.time())))
        rec = Record()
        svc = BenchService(client, master, leader=f"127.0.0.1:{cport}", clock=clock)
        svc.planner = RecordingPlanner(rec, clock)
        runner = web.AppRunner(build_app(svc), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", cport).start()
        background.append(asyncio.create_task(svc.run(), name="chronos"))
        deadline = time.monotonic() + 60
        while svc.framework is None or not svc.framework.connected.is_set():
            if time.monotonic() > deadline or background[0].done():
                raise RuntimeError("Chronos did not subscribe to the master")
            await asyncio.sleep(0.1)
        fw = svc.framework
        api = f"http://127.0.0.1:{cport}"

        # the jobs, through the REST API, while the simulated clock stands still
        begin_ms = round(clock() * 1000) + 1000
        starts = [begin_ms + round(i * 60_000 / args.jobs) for i in range(args.jobs)]
        bodies = [job_body(i, s, args.task_mem) for i, s in enumerate(starts)]
        sem = asyncio.Semaphore(8)

        async def create(body: Obj) -> None:
            async with sem, session.post(f"{api}/v1/scheduler/iso8601", json=body) as r:
                if r.status != 204:
                    raise RuntimeError(f"POST iso8601 {body['name']}: {r.status} {await r.text()}")

        t0 = time.monotonic()
        await asyncio.gather(*(create(b) for b in bodies))
        create_s = time.monotonic() - t0
        async with session.get(f"{api}/v1/scheduler/jobs") as r:
            listed = await r.json(content_type=None)
        if len(listed) != args.jobs:
            raise RuntimeError(f"GET jobs lists {len(listed)} jobs, want {args.jobs}")
        print(
            f"  {args.jobs} jobs created through the REST API in {create_s:.1f} s "
            f"({args.jobs / create_s:.0f}/s)",
            flush=True,
        )

        # ending the runs: the pod's status as a hollow node writes it when its container
        # exits 0, run_seconds (simulated) after TASK_RUNNING
        async def finish(tid: str) -> None:
            name = mesos_names.task_pod_name(fw.framework_id or "", tid)
            pod = {
                "metadata": {"uid": ""},
                "spec": {"containers": [{"name": "task", "image": mesos_names.HOST_IMAGE}]},
            }
            now = time.time()
            status = exited_status(pod, 0, now - args.run_seconds / max(clock.rate, 1e-9), now)
            assert client is not None
            with contextlib.suppress(Exception):
                await client.patch(
                    PODS, name, {"status": status}, mesos_names.NAMESPACE, sub="status"
                )

        loop = asyncio.get_running_loop()

        def on_running(tid: str) -> None:
            def fire() -> None:
                t = loop.create_task(finish(tid))
                pending.add(t)
                t.add_done_callback(pending.discard)

            handles.append(loop.call_later(args.run_seconds / max(clock.rate, 1e-9), fire))

        rec.on_running = on_running

        # the phases
        phases = [Phase(f"realtime-{w + 1}", 1.0, args.window_seconds) for w in range(args.windows)]
        if args.accelerated_minutes > 0:
            # the real-time window's last runs reach TASK_RUNNING before the clock speeds up
            phases.append(Phase("gap", 1.0, 3.0, reported=False))
            phases.append(Phase("hour", args.k, 60.0 * args.accelerated_minutes))
        total = sum(p.sim_seconds for p in phases)
        minutes = int(total // 60) + 2
        slots = sorted(s / 1000 + 60.0 * m for s in starts for m in range(minutes))
        api_lat: list[tuple[float, float]] = []  # (wall time, seconds)
        api_bytes = 0
        stop = asyncio.Event()

        async def poll() -> None:
            nonlocal api_bytes
            while not stop.is_set():
                t = time.perf_counter()
                async with session.get(f"{api}/v1/scheduler/jobs") as r:
                    body = await r.read()
                api_lat.append((time.time(), time.perf_counter() - t))
                api_bytes = len(body)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)

        def jiffies() -> tuple[int, int, int, int]:
            busy, total_j = _machine_jiffies()
            return busy, total_j, _proc_jiffies(os.getpid()), _tree_jiffies([srv.pid])

        background.append(asyncio.create_task(waker(svc, clock, slots), name="waker"))
        background.append(asyncio.create_task(poll(), name="poller"))
        for i, ph in enumerate(phases):
            if i == 0:  # the first slot 0.2 s (simulated) after the start
                clock.stretches[-1] = (time.time(), begin_ms / 1000 - 0.2, 0.0)
            ph.start = clock.set_rate(ph.rate)
            ph.real_start, ph.jiffies = time.time(), jiffies()
            svc._wake.set()
            end = ph.start + ph.sim_seconds
            while clock() < end:
                await asyncio.sleep(min(0.5, max(0.005, (end - clock()) / ph.rate)))
            print(f"  phase {ph.name} done: {len(rec.running_master)} runs so far", flush=True)
        last = clock.set_rate(1.0)
        real_last, jiffies_last = time.time(), jiffies()
        for i, ph in enumerate(phases):
            ph.end = phases[i + 1].start if i + 1 < len(phases) else last
            ph.real_end = phases[i + 1].real_start if i + 1 < len(phases) else real_last
        # drain: the runs of the last phase that were claimed and queued get to run
        deadline = time.monotonic() + args.drain
        while time.monotonic() < deadline and (
            svc.planner.queue or any(r.state == "launched" for r in svc.planner.running.values())
        ):
            await asyncio.sleep(0.2)
        stop.set()

        # the runs, by (job, slot)
        running: dict[Key, list[tuple[float, float]]] = {}
        for tid, t_master in rec.running_master.items():
            p = parse_task_id(tid)
            if p is not None:
                running.setdefault((p[0], p[1]), []).append((t_master, rec.running_seen[tid]))
        by_phase: list[Obj] = []
        for i, ph in enumerate(phases):
            if not ph.reported:
                continue
            nxt = phases[i + 1].jiffies if i + 1 < len(phases) else jiffies_last
            by_phase.append(
                _phase_report(ph, nxt, bodies, starts, rec, running, clock, api_lat, svc)
            )
        out.update(
            {
                "jobs": args.jobs,
                "hollow_nodes": args.nodes,
                "jobs_created_per_s": round(args.jobs / create_s, 1),
                "run_seconds_simulated": args.run_seconds,
                "phases": by_phase,
                "api_get_jobs_body_bytes": api_bytes,
                "slots_claimed_twice": sum(len(v) > 1 for v in rec.claims.values()),
                "slots_running_twice": sum(len(v) > 1 for v in running.values()),
                "terminal_states": _count(rec.finished.values()),
                "failures": rec.failures,
                "chronos_metrics": {k: v["count"] for k, v in svc.metrics()["counters"].items()},
                "service_counters": dict(svc.counters),
                "service_awaits": {
                    what: {
                        "count": len(v),
                        "p50_ms": round(1000 * percentile(v, 0.5), 2),
                        "p99_ms": round(1000 * percentile(v, 0.99), 2),
                        "total_s": round(sum(v), 2),
                    }
                    for what, v in sorted(svc.spent.items())
                },
            }
        )
    finally:
        for h in handles:
            h.cancel()
        for t in list(pending):
            t.cancel()
        if svc is not None and svc.framework is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(svc.framework.teardown(), 30)
        for t in background:
            t.cancel()
        for t in background:
            with contextlib.suppress(BaseException):
                await t
        if svc is not None and svc.framework is not None:
            with contextlib.suppress(Exception):
                await svc.framework.close()
        if runner is not None:
            await runner.cleanup()
        try:
            out["task_pods_left"] = await _pods_left(client) if client is not None else -1
            with contextlib.suppress(Exception):
                out["frameworks_left"] = len((await _master_state(session, master))["frameworks"])
        finally:
            if client is not None:
                await client.close()
            await session.close()
            srv.stop()
            out["server_processes_left"] = _reap(server_pids)
    return out


def _phase_report(
    ph: Phase,
    next_jiffies: tuple[int, int, int, int],
    bodies: list[Obj],
    starts: list[int],
    rec: Record,
    running: dict[Key, list[tuple[float, float]]],
    clock: AccelClock,
    api_lat: list[tuple[float, float]],
    svc: BenchService,
) -> Obj:
    lo, hi = round(ph.start * 1000), round(ph.end * 1000)
    expected: list[Key] = []
    for body, s in zip(bodies, starts, strict=True):
        m = max(0, -(-(lo - s) // 60_000))  # the first slot at or after lo
        while s + 60_000 * m < hi:
            expected.append((body["name"], s + 60_000 * m))
            m += 1
    claimed = [k for k in expected if k in rec.claims]
    launched = [k for k in expected if any(a == 0 for a, _ in rec.launches.get(k, []))]
    ran = [k for k in expected if k in running]

    def late(times: dict[Key, float]) -> tuple[list[float], list[float]]:
        sim = [t - k[1] / 1000 for k, t in times.items()]
        real = [clock.real_of(t) - clock.real_of(k[1] / 1000) for k, t in times.items()]
        return sim, real

    out: Obj = {
        "phase": ph.name,
        "rate": ph.rate,
        "simulated_s": round(ph.end - ph.start, 2),
        "real_s": round(ph.real_end - ph.real_start, 2),
        "runs_expected": len(expected),
        "runs_claimed": len(claimed),
        "runs_launched": len(launched),
        "runs_reached_running": len(ran),
        "runs_missing": len(expected) - len(ran),
        "slots_claimed_twice": sum(len(rec.claims[k]) > 1 for k in claimed),
        "slots_launched_twice": sum(
            sum(a == 0 for a, _ in rec.launches.get(k, [])) > 1 for k in launched
        ),
        "slots_running_twice": sum(len(running[k]) > 1 for k in ran),
        "retried_attempts": sum(sum(a > 0 for a, _ in rec.launches.get(k, [])) for k in expected),
    }
    for what, times in (
        ("claim", {k: rec.claims[k][0] for k in claimed}),
        ("launch", {k: min(t for a, t in rec.launches[k] if a == 0) for k in launched}),
        ("running_master", {k: min(x[0] for x in running[k]) for k in ran}),
        ("running_seen", {k: min(x[1] for x in running[k]) for k in ran}),
    ):
        sim, real = late(times)
        out[f"lateness_{what}_s"] = _stats(sim)
        out[f"lateness_{what}_real_ms"] = _stats(real, 1000.0, 1)
        if what.startswith("running"):
            out[f"lateness_{what}_s"]["within_1s"] = sum(v <= 1.0 for v in sim)
    lat = [x for t, x in api_lat if ph.real_start <= t < ph.real_end]
    out["api_get_jobs_ms"] = _stats(lat, 1000.0, 1)
    busy0, total0, ours0, srv0 = ph.jiffies
    busy1, total1, ours1, srv1 = next_jiffies
    real_s = max(1e-3, ph.real_end - ph.real_start)
    ticks = os.sysconf("SC_CLK_TCK")
    out["machine_busy_pct"] = round(100 * (busy1 - busy0) / max(1, total1 - total0), 1)
    # % of one core, like the other benchmarks' cpu figures
    out["this_process_cpu_pct"] = round(100 * (ours1 - ours0) / ticks / real_s, 1)
    out["server_tree_cpu_pct"] = round(100 * (srv1 - srv0) / ticks / real_s, 1)
    if ran:  # from the phase's start to the last of its runs reaching TASK_RUNNING
        last = max(clock.real_of(min(x[0] for x in running[k])) for k in ran)
        out["runs_per_real_s"] = round(len(ran) / max(real_s, last - ph.real_start), 1)
    return out


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


async def _wait_for_agents(session: aiohttp.ClientSession, master: str, n: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(aiohttp.ClientError, OSError, ValueError):
            if len((await _master_state(session, master)).get("slaves") or []) >= n:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Mesos master did not see {n} hollow agents")
        await asyncio.sleep(0.2)


async def _pods_left(client: Any, timeout: float = 30.0) -> int:
    from corral.api import mesos as mesos_names
    from corral.client.rest import PODS

    deadline = time.monotonic() + timeout
    left = -1
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            left = len((await client.list(PODS, mesos_names.NAMESPACE))["items"])
            if left == 0:
                return 0
        await asyncio.sleep(0.3)
    return left


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d.name))
    seen: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, []))
    return seen


def _reap(pids: set[int], timeout: float = 10.0) -> int:
    """Wait for the server's processes to be gone; SIGKILL stragglers (ours, by pid).
    How many had to be killed."""
    deadline = time.monotonic() + timeout
    alive = {p for p in pids if Path(f"/proc/{p}").exists()}
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = {p for p in alive if Path(f"/proc/{p}").exists()}
    for p in alive:
        with contextlib.suppress(OSError):
            os.kill(p, 9)
    return len(alive)


def bench_cluster(args: argparse.Namespace) -> Obj:
    print(
        f"cluster: {args.jobs} jobs on {args.nodes} hollow nodes; "
        f"{args.windows} real-time windows of {args.window_seconds:g} s, "
        f"{args.accelerated_minutes} simulated minutes at x{args.k:g}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="corral-chronos-") as tmp:
        x = asyncio.run(cluster_run(args, Path(tmp)))
    for ph in x["phases"]:
        lm, ls = ph["lateness_running_master_s"], ph["lateness_running_seen_s"]
        print(
            f"  {ph['phase']} (x{ph['rate']:g}): runs {ph['runs_reached_running']}/"
            f"{ph['runs_expected']} (claimed {ph['runs_claimed']}, twice "
            f"{ph['slots_running_twice']}); lateness to TASK_RUNNING at the master p50 "
            f"{lm.get('p50')} s, p99 {lm.get('p99')} s, max {lm.get('max')} s; seen by Chronos "
            f"p50 {ls.get('p50')} s, p99 {ls.get('p99')} s; GET jobs p50 "
            f"{ph['api_get_jobs_ms'].get('p50')} ms, p99 {ph['api_get_jobs_ms'].get('p99')} ms; "
            f"this process {ph['this_process_cpu_pct']}%, server {ph['server_tree_cpu_pct']}%, "
            f"machine {ph['machine_busy_pct']}%",
            flush=True,
        )
    print(
        f"  pods left {x.get('task_pods_left')}, frameworks left {x.get('frameworks_left')}, "
        f"server processes killed {x.get('server_processes_left')}",
        flush=True,
    )
    windows = [p for p in x["phases"] if p["phase"].startswith("realtime")]
    med: Obj = {}
    if windows:
        for what in ("claim", "launch", "running_master", "running_seen"):
            for q in ("p50", "p99", "max"):
                key = f"lateness_{what}_s"
                vals = [w[key][q] for w in windows if q in w[key]]
                if vals:
                    med[f"{key}_{q}"] = statistics.median(vals)
        for q in ("p50", "p99"):
            vals = [w["api_get_jobs_ms"][q] for w in windows if q in w["api_get_jobs_ms"]]
            if vals:
                med[f"api_get_jobs_ms_{q}"] = statistics.median(vals)
        for k in ("runs_expected", "runs_reached_running", "slots_running_twice"):
            med[f"{k}_total"] = sum(w[k] for w in windows)
    return {
        "plan": {
            "jobs": args.jobs,
            "schedule": "R/<start_i>/PT1M, starts 60 ms apart over one minute",
            "task": f"command 'true', {TASK_CPUS} cpus, {args.task_mem:g} MB",
            "hollow_nodes": f"{args.nodes} (4 cpus, 32 GiB, 110 pods each)",
            "end_of_runs": f"pod status written Succeeded {args.run_seconds:g} simulated s "
            "after TASK_RUNNING (as a hollow node does when its container exits 0)",
            "phases": [
                f"realtime-1..{args.windows}: x1, {args.window_seconds:g} s each",
                "gap: x1, 3 s (not reported)",
                f"hour: x{args.k:g}, {args.accelerated_minutes} simulated minutes",
            ],
        },
        "median_of_realtime_windows": med,
        "target": "every due run starts within 1 s of its time",
        "run": x,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.chronos_perf")
    p.add_argument("--out", default="bench/results/chronos.json")
    p.add_argument("--sections", default="planner,cluster")
    p.add_argument("--runs", type=int, default=3, help="planner runs")
    p.add_argument("--jobs", type=int, default=JOBS)
    p.add_argument("--cycles", type=int, default=30, help="planner cycles per run")
    p.add_argument("--nodes", type=int, default=10, help="hollow nodes")
    p.add_argument("--windows", type=int, default=1, help="real-time windows")
    p.add_argument("--window-seconds", type=float, default=60.0)
    p.add_argument("--k", type=float, default=20.0, help="rate of the simulated hour")
    p.add_argument("--accelerated-minutes", type=int, default=60)
    p.add_argument("--run-seconds", type=float, default=10.0, help="simulated run length")
    p.add_argument(
        "--task-mem",
        type=float,
        default=TASK_MEM_MB,
        help="MB per run; below 32768/110 an offer can hold more runs than the node has pods",
    )
    p.add_argument("--drain", type=float, default=15.0, help="real s for queued runs at the end")
    args = p.parse_args(argv)
    from bench.run import git_info, machine_info

    report: Obj = {
        "command": sys.argv,
        "machine": machine_info(),
        "git": git_info(),
        "sections": {},
    }
    sections = args.sections.split(",")
    if "planner" in sections:
        report["sections"]["planner"] = bench_planner(args)
    if "cluster" in sections:
        report["sections"]["cluster"] = bench_cluster(args)
    report["machine"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
