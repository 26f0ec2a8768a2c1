"""Chronos' promises end to end (issue 12, items 4-7): each due slot runs once and only
once across a server restart, a crash of ``corral chronos`` and two of them at once;
the catch-up policies after downtime; async jobs; a diamond DAG with a retried branch,
"mark success" and "rerun from here"; ``maxRunSeconds`` and ``concurrent``; bad jobs
refused with Chronos' words and nothing stored.

Real processes: ``corral server --mesos-port --chronos-port`` (the Mesos master and
``corral chronos`` are its children) and a ``process`` agent. After killing a
``corral chronos``, the test starts another one with the same flags, as a supervisor
would (the server does not restart its children). Every run is checked twice: by its
slot in the ChronosJob's ``status.runs`` and by the task id (``ct:<slot>:<attempt>:
<name>``) of its pod in namespace ``mesos``.

The clusters run without the controller manager (``--no-controllers``; Mesos task pods
do not need it), which keeps ``restart_server`` shorter."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from corral.chronos.jobs import object_name
from corral.chronos.planner import Claim, parse_task_id
from corral.chronos.service import ChronosService
from corral.client.rest import Client
from corral.mesos.framework_client import SchedulerClient
from corral.testing.mesos import MesosCluster, mesos_cluster, wait
from corral.testing.process import free_port

chronos = pytest.importorskip("chronos", reason="chronos-python: pip install -e '.[test]'")

pytestmark = [
    pytest.mark.timeout(120),
    # chronos-python's httplib2 clients drop their sockets unclosed
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

Obj = dict[str, Any]
TASK_ID = "mesos.corral.dev/task-id"
#: the period of the scheduled jobs, in seconds (``PT2S``)
PERIOD = 2.0
#: ``epsilon`` of the catch-up jobs: a slot at least this old when claimed is late
EPSILON = 0.5
#: how far the moment a restarted Chronos has its jobs may lie before it is observed
FUZZ = 0.25


# --- processes -------------------------------------------------------------------------------
@dataclass
class ChronosProcess:
    """A ``corral chronos`` the test starts itself, as a supervisor would."""

    proc: subprocess.Popen[bytes]
    port: int

    @classmethod
    def start(cls, mc: MesosCluster, port: int, log: Path) -> ChronosProcess:
        argv = [
            sys.executable, "-m", "corral", "chronos",
            "--kubeconfig", str(mc.server.kubeconfig),
            "--port", str(port), "--bind", "127.0.0.1", "--master", mc.master,
            "--log-level", "INFO",
            # the flag the server gives its own Chronos when the master is open (OPEN)
            "--no-authenticate-http",
        ]  # fmt: skip
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        return cls(proc, port)

    @property
    def where(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Supervisor:
    """Keeps a ``corral chronos`` serving on a port: the ones the test starts, each after
    killing the previous one."""

    def __init__(self, mc: MesosCluster, port: int, logs: Path) -> None:
        self.mc, self.port, self.logs = mc, port, logs
        self.own: ChronosProcess | None = None
        self.started = 0

    @property
    def where(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL the Chronos serving now (the last one started)."""
        assert self.own is not None, "no Chronos of the test's is running"
        self.own.proc.kill()
        self.own.proc.wait()
        self.own = None

    def start(self) -> None:
        self.started += 1
        self.own = ChronosProcess.start(
            self.mc, self.port, self.logs / f"chronos-{self.started}.log"
        )

    def ensure(self) -> str:
        """A Chronos answers on the port (one is started if none does)."""
        if http(self.where, "GET", "/ping")[0] != 200:
            if self.own is not None:
                self.own.stop()
                self.own = None
            self.start()
            wait(lambda: http(self.where, "GET", "/ping")[0] == 200, "Chronos", 30)
        return self.where

    def close(self) -> None:
        if self.own is not None:
            self.own.stop()


@contextlib.contextmanager
def cluster_with_chronos(base: Path) -> Iterator[tuple[MesosCluster, str]]:
    port = free_port()
    with mesos_cluster(
        base, runtimes=("process",), extra=["--chronos-port", str(port), "--no-controllers"]
    ) as mc:
        where = f"127.0.0.1:{port}"
        wait(lambda: http(where, "GET", "/ping")[0] == 200, "the Chronos API", 30)
        yield mc, where


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MesosCluster, Supervisor]]:
    base = tmp_path_factory.mktemp("chronos-once")
    # Chronos runs as the test's own process, not the server's child: the server would
    # start a killed child again within a second, and these tests choose the outage
    with mesos_cluster(base, runtimes=("process",), extra=["--no-controllers"]) as mc:
        sup = Supervisor(mc, free_port(), base)
        try:
            sup.ensure()
            yield mc, sup
        finally:
            sup.close()


@pytest.fixture
def api(shared: tuple[MesosCluster, Supervisor]) -> tuple[MesosCluster, str]:
    """The shared cluster and its Chronos API (restarted if a test left none)."""
    mc, sup = shared
    return mc, sup.ensure()


# --- HTTP --------------------------------------------------------------------------------------
def http(where: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """(status, decoded body) of a raw request to a Chronos API; (0, None) when down."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"http://{where}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"} if data is not None else {},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            status, raw, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        status, raw, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
    except OSError:
        return 0, None
    if "json" in ctype and raw:
        return status, json.loads(raw)
    return status, raw.decode()


def listed(where: str) -> list[str]:
    status, body = http(where, "GET", "/v1/scheduler/jobs")
    return [j["name"] for j in body] if status == 200 and isinstance(body, list) else []


def chronos_job(where: str, name: str) -> Obj:
    status, body = http(where, "GET", f"/v1/scheduler/job/{name}")
    assert status == 200, body
    return dict(body)


def skipped(where: str) -> int:
    status, body = http(where, "GET", "/metrics")
    assert status == 200, body
    return int(body["counters"]["runs.skipped"]["count"])


def add(where: str, body: Obj) -> None:
    path = "/v1/scheduler/dependency" if body.get("parents") else "/v1/scheduler/iso8601"
    status, answer = http(where, "POST", path, body)
    assert status == 204, answer


def run(where: str, name: str) -> None:
    status, answer = http(where, "PUT", f"/v1/scheduler/job/{name}")
    assert status == 204, answer


def delete(where: str, *names: str) -> None:
    for name in names:
        http(where, "DELETE", f"/v1/scheduler/job/{name}")


# --- the API server's side -----------------------------------------------------------------------
CHRONOSJOBS = "/apis/chronos.corral.dev/v1/namespaces/chronos/chronosjobs"


def stored(mc: MesosCluster, name: str) -> Obj | None:
    """The ChronosJob object of job ``name``, None when there is none."""
    try:
        return dict(mc.kube(f"{CHRONOSJOBS}/{object_name(name)}"))
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def stored_names(mc: MesosCluster) -> set[str]:
    return {i["spec"]["job"]["name"] for i in mc.kube(CHRONOSJOBS)["items"]}


def status_of(mc: MesosCluster, name: str) -> Obj:
    return dict(((stored(mc, name) or {}).get("status")) or {})


def runs_of(mc: MesosCluster, name: str) -> list[Obj]:
    return list(status_of(mc, name).get("runs") or [])


def count(mc: MesosCluster, name: str, what: str = "successCount") -> int:
    return int(status_of(mc, name).get(what) or 0)


def wait_count(
    mc: MesosCluster, name: str, n: int, what: str = "successCount", timeout: float = 30
) -> None:
    wait(lambda: count(mc, name, what) >= n, f"{what} {n} of {name}", timeout)


def pod_tasks(mc: MesosCluster, name: str) -> list[tuple[int, int]]:
    """(slot ms, attempt) of every pod in namespace ``mesos`` that ran job ``name``."""
    out = []
    for pod in mc.task_pods():
        parsed = parse_task_id((pod["metadata"].get("annotations") or {}).get(TASK_ID, ""))
        if parsed is not None and parsed[0] == name:
            out.append((parsed[1], parsed[2]))
    return out


def task_states(mc: MesosCluster, name: str) -> dict[str, str]:
    """The Mesos state of every task of job ``name`` the master knows."""
    out: dict[str, str] = {}
    for fw in mc.get("/state")["frameworks"]:
        for t in fw.get("tasks", []) + fw.get("completed_tasks", []):
            parsed = parse_task_id(t["id"])
            if parsed is not None and parsed[0] == name:
                out[t["id"]] = t["state"]
    return out


def each_slot_once(mc: MesosCluster, name: str, timeout: float = 20) -> list[int]:
    """The slots of the job's runs, once every pod of it is recorded in its status:
    no slot recorded twice, no task id launched twice, a pod for each recorded run."""
    got: list[tuple[list[int], list[tuple[int, int]]]] = []

    def settled() -> bool:
        runs = [int(r["slot"]) for r in runs_of(mc, name)]
        pods = pod_tasks(mc, name)
        got[:] = [(runs, pods)]
        return {s for s, _ in pods} <= set(runs)

    wait(settled, f"every pod of {name} recorded in its status", timeout)
    runs, pods = got[0]
    assert runs, f"{name} never ran"
    twice = sorted(s for s, n in Counter(runs).items() if n > 1)
    assert not twice, f"slots recorded twice: {[iso(s / 1000) for s in twice]}"
    tasks = Counter(pods)
    assert all(n == 1 for n in tasks.values()), f"a task id ran twice: {tasks}"
    firsts = Counter(slot for slot, attempt in pods if attempt == 0)
    assert all(n == 1 for n in firsts.values()), f"a slot launched twice: {firsts}"
    assert {s for s, _ in pods} == set(runs), f"pods {sorted(pods)} vs runs {sorted(runs)}"
    return sorted(runs)


def framework_id(mc: MesosCluster) -> Callable[[], str | None]:
    def get() -> str | None:
        try:
            cm = mc.kube("/api/v1/namespaces/chronos/configmaps/chronos-framework")
        except urllib.error.HTTPError:
            return None
        return str(cm["data"]["frameworkId"])

    return get


# --- time ----------------------------------------------------------------------------------------
def iso(ts: float) -> str:
    ms = round(ts * 1000)
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{ms % 1000:03d}Z"
    )


def grid(start: float, lo: float, hi: float) -> list[int]:
    """The slots (ms) of ``R/start/PT2S`` in ``(lo, hi]`` (seconds)."""
    k = max(0, int((lo - start) // PERIOD) - 1)
    out = []
    while start + k * PERIOD <= hi:
        if start + k * PERIOD > lo:
            out.append(round((start + k * PERIOD) * 1000))
        k += 1
    return out


def sleep_to_phase(start: float, phase: float) -> None:
    """Sleep until ``phase`` seconds after a slot of ``R/start/PT2S``."""
    time.sleep((phase - (time.time() - start)) % PERIOD)


def job(name: str, **fields: Any) -> Obj:
    return {
        "name": name,
        "command": "true",
        "owner": "ops@example.com",
        "disabled": False,
        "cpus": 0.01,
        "mem": 16,
        "disk": 0,
        **fields,
    }


def every_2s(name: str, **fields: Any) -> tuple[Obj, float]:
    start = float(int(time.time()) + 2)
    return job(name, schedule=f"R/{iso(start)}/PT2S", **fields), start


class Availability:
    """Polls a Chronos API every 50 ms for whether it lists job ``name``. An outage is
    a time it does not: ``up`` is when it is listed again (the restarted planner has it,
    and its first tick, which claims the catch-up, came just before), ``down`` the last
    time it was listed before."""

    def __init__(self, where: str, name: str) -> None:
        self.where, self.name = where, name
        self.samples: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Availability:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self.name in listed(self.where)))
            self._stop.wait(0.05)

    def outages(self) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        last_ok: float | None = None
        down = False
        for t, ok in list(self.samples):
            if ok:
                if down and last_ok is not None:
                    out.append((last_ok, t))
                last_ok, down = t, False
            elif last_ok is not None:
                down = True
        return out

    def outage_after(self, t: float, timeout: float = 40) -> tuple[float, float]:
        """The (down, up) of the first outage ending after ``t``, once it ended."""

        def ended() -> tuple[float, float] | None:
            return next((o for o in self.outages() if o[1] > t), None)

        return tuple(wait(ended, f"{self.name} listed again", timeout))  # type: ignore[return-value]


def check_all_ran(runs: list[int], start: float, lo: float, hi: float) -> None:
    """Every slot of ``R/start/PT2S`` in ``[lo, hi]`` (seconds) ran."""
    missing = sorted(set(grid(start, lo - 0.001, hi)) - set(runs))
    assert not missing, f"slots that did not run: {[iso(s / 1000) for s in missing]}"


def after_outage(
    runs: list[int], start: float, down: float, up: float, policy: str
) -> tuple[int, list[int]]:
    """Check the runs of the slots missed during the outage ``(down, up)`` against the
    catch-up ``policy``; returns the last slot claimed before it and the late runs.

    A slot is missed if it fell after the last one claimed before the outage and no
    later than the moment Chronos came back (``up``, observed within ``FUZZ``). The
    newest of them is the current one: ``none`` runs it only if it was not ``EPSILON``
    old then, ``last`` runs it in any case, ``all`` runs every missed slot."""
    # a slot the old process claimed as it went down, after it was last seen, is its
    last = max(s for s in runs if s <= (down + 0.5) * 1000)
    missed = grid(start, last / 1000, up)
    assert len(missed) >= 2, f"the outage should span several periods: {missed}"
    late = sorted(s for s in runs if last < s <= up * 1000)
    newest = missed[-1]
    age = up - newest / 1000  # how old the newest slot was (at most) when Chronos came back
    on_time = age < FUZZ  # it may have come due just after Chronos came back: then it
    # ran on time, and the one before was the newest missed slot
    shown = f"after the outage {iso(down)}..{iso(up)}: {[iso(s / 1000) for s in late]}"
    if policy == "all":
        assert late == missed, shown
    elif policy == "last":
        expected = [[newest]] + ([[missed[-2], newest]] if on_time else [])
        assert late in expected, shown
    else:
        if age < EPSILON - 0.01:  # not late for sure: it runs
            assert late == [newest], shown
        elif age >= EPSILON + FUZZ:  # late for sure: nothing missed runs
            assert late == [], shown
        else:
            assert late in ([], [newest]), shown
    return last, late


# --- 1. exactly once across restarts ---------------------------------------------------------------
@pytest.mark.slow  # ~10-20 s: `make test-slow` (the suite keeps under 15 min)
def test_each_slot_runs_once_across_a_server_restart(tmp_path: Path) -> None:
    """``restart_server`` stops the server, the master and ``corral chronos`` for several
    periods: the slots claimed before run once, one catch-up run follows (``catchUp``
    ``last``, the default), then the schedule goes on; no slot runs twice."""
    with cluster_with_chronos(tmp_path) as (mc, where):
        body, start = every_2s("tick", concurrent=True)
        add(where, body)
        with Availability(where, "tick") as av:
            wait_count(mc, "tick", 2)
            t = time.time()
            mc.restart_server()
            down, up = av.outage_after(t)
            wait(
                lambda: any(s > up * 1000 for s in (r["slot"] for r in runs_of(mc, "tick"))),
                "a run after the restart",
                30,
            )
            wait_count(mc, "tick", count(mc, "tick") + 2)
        end = time.time()
        runs = each_slot_once(mc, "tick")
        last, late = after_outage(runs, start, down, up, "last")
        check_all_ran(runs, start, start, last / 1000)
        check_all_ran(runs, start, late[-1] / 1000, end - PERIOD)


@pytest.mark.parametrize(
    "policy",
    [
        "last",
        pytest.param("none", marks=pytest.mark.slow),
        pytest.param("all", marks=pytest.mark.slow),
    ],
)
def test_each_slot_runs_once_across_a_chronos_crash_by_catch_up_policy(
    shared: tuple[MesosCluster, Supervisor], policy: str
) -> None:
    """SIGKILL the Chronos (the server's child first, then the one started last) in the
    middle of a period, and start another with the same flags several periods later, so
    that it comes back in the middle of a period too: the missed slots run as the
    policy says (``none``: not one, as the current slot is late by then; ``last``: one;
    ``all``: every one), the schedule goes on, and no slot runs twice."""
    mc, sup = shared
    where = sup.ensure()
    name = f"crash-{policy}"
    body, start = every_2s(name, catchUp=policy, epsilon=f"PT{EPSILON}S", concurrent=True)
    add(where, body)
    try:
        with Availability(where, name) as av:
            wait_count(mc, name, 2)
            sleep_to_phase(start, 1.0)
            t = time.time()
            sup.kill()
            time.sleep(PERIOD)
            sleep_to_phase(start, 0.7)  # it has its jobs ~0.5 s after it starts: mid-period
            sup.start()
            down, up = av.outage_after(t)
            wait(lambda: any(r["slot"] > up * 1000 for r in runs_of(mc, name)), "a run after", 30)
            wait_count(mc, name, count(mc, name) + 2)
        end = time.time()
        runs = each_slot_once(mc, name)
        last, late = after_outage(runs, start, down, up, policy)
        check_all_ran(runs, start, start, last / 1000)
        resumed = late[-1] / 1000 if late else up
        check_all_ran(runs, start, resumed, end - PERIOD)
        print(f"{policy}: came back {up - max(grid(start, 0, up)) / 1000:.2f} s into a period")
    finally:
        delete(sup.where, name)


def test_a_replaced_schedule_is_kept_across_a_restart(
    shared: tuple[MesosCluster, Supervisor],
) -> None:
    """A job that ran (its status holds its schedule as runs rewrote it) gets a new
    schedule: the API shows the new one, and so does a restarted Chronos, which runs
    nothing of the old one."""
    mc, sup = shared
    where = sup.ensure()
    name = "replaced"
    body, _ = every_2s(name)
    add(where, body)
    try:
        wait_count(mc, name, 1)
        add(where, job(name, schedule="R/2031-01-01T00:00:00Z/PT1H"))
        replaced = time.time()
        assert chronos_job(where, name)["schedule"].startswith("R/2031-01-01T00:00:00")
        sup.kill()
        sup.start()
        wait(lambda: name in listed(where), "the restarted Chronos to have the job", 20)
        assert chronos_job(where, name)["schedule"].startswith("R/2031-01-01T00:00:00")
        assert "schedule" not in status_of(mc, name)
        assert stored(mc, name)["spec"]["job"]["schedule"] == "R/2031-01-01T00:00:00Z/PT1H"  # type: ignore[index]
        time.sleep(2 * PERIOD)
        assert not [r for r in runs_of(mc, name) if r["slot"] > replaced * 1000]
    finally:
        delete(sup.where, name)


def test_a_new_chronos_is_not_starved_by_the_filters_of_the_one_before(
    shared: tuple[MesosCluster, Supervisor],
) -> None:
    """The master keeps a framework's refusal filters across a failover: a Chronos that
    declined the agent's offers for a long while, then died, must not leave its
    successor without offers. The successor revives (or suppresses, then revives when
    a run waits) as it subscribes."""
    mc, sup = shared
    sup.ensure()
    fid = wait(framework_id(mc), "Chronos to store its framework id", 20)
    sup.kill()

    async def decline_for_long() -> None:
        declined = asyncio.Event()
        holder: list[SchedulerClient] = []

        async def on_event(event: Obj) -> None:
            if event["type"] == "OFFERS" and not declined.is_set():
                ids = [o["id"]["value"] for o in event["offers"]["offers"]]
                await holder[0].decline(ids, refuse_seconds=600)
                declined.set()

        info = {"user": "root", "name": "chronos", "roles": ["*"], "failover_timeout": 3600.0}
        client = SchedulerClient(mc.master, info, on_event=on_event, framework_id=fid)
        holder.append(client)
        task = asyncio.create_task(client.run())
        try:
            async with asyncio.timeout(20):
                await client.connected.wait()
                await client.revive()  # whatever the one killed left, offers come
                await declined.wait()
        finally:
            await client.close()  # no TEARDOWN: the framework stays, its filter too
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(decline_for_long())
    sup.start()
    where = sup.ensure()
    name = "after-filters"
    add(where, job(name, schedule="R/2030-01-01T00:00:00Z/P1D"))
    try:
        run(where, name)
        wait_count(mc, name, 1, timeout=20)
    finally:
        delete(where, name)


# --- 2. two Chronos at once -----------------------------------------------------------------------
def test_the_claim_is_conditional_one_of_two_claimers_wins(api: tuple[MesosCluster, str]) -> None:
    """Two Chronos services claim the same slot at the same instant, each from its own
    (equally fresh) cache: the API server takes one write, the other gets a 409, reads
    the object again, sees the slot claimed and gives up. The winner here never
    launches it (a process fenced off right after its claim): the running Chronos sees
    the claim, finds no task for it, and runs it, once."""
    mc, where = api
    name = "claimed-once"
    add(where, job(name, schedule="R/2030-01-01T00:00:00Z/P1D"))
    slot = int(time.time() * 1000)

    async def race() -> tuple[list[bool], list[int]]:
        clients = [Client.from_kubeconfig(mc.server.kubeconfig) for _ in range(2)]
        services = [ChronosService(c, mc.master) for c in clients]
        informers = [asyncio.create_task(s.informer.run()) for s in services]
        try:
            for s in services:
                await s.informer.wait_for_sync(timeout=30)
                assert s._object(name) is not None
            won = await asyncio.gather(*(s._claim(Claim(name, slot, None)) for s in services))
            return list(won), [s.counters["claims_lost"] for s in services]
        finally:
            for t in informers:
                t.cancel()
            await asyncio.gather(*informers, return_exceptions=True)
            for c in clients:
                await c.close()

    try:
        won, lost = asyncio.run(race())
        assert sorted(won) == [False, True]
        assert sorted(lost) == [0, 1]
        assert status_of(mc, name)["lastSlot"] == slot
        wait_count(mc, name, 1, timeout=20)
        assert each_slot_once(mc, name) == [slot]
        time.sleep(1)
        assert pod_tasks(mc, name) == [(slot, 0)]
    finally:
        delete(where, name)


@pytest.mark.slow  # ~10-20 s: `make test-slow` (the suite keeps under 15 min)
def test_two_chronos_at_once_run_each_slot_once(
    shared: tuple[MesosCluster, Supervisor], tmp_path: Path
) -> None:
    """A second ``corral chronos`` on another port, against the same master and API
    server: it subscribes with the framework id both read from the ConfigMap, so Mesos
    fails the framework over to it and the first one, fenced off, stops; the second
    keeps the schedule. No slot runs twice, none is lost."""
    mc, sup = shared
    where = sup.ensure()
    name = "duo"
    body, start = every_2s(name, concurrent=True)
    add(where, body)
    second = ChronosProcess.start(mc, free_port(), tmp_path / "second.log")
    try:
        wait_count(mc, name, 2)
        wait(lambda: name in listed(second.where), "the second Chronos to have the job", 20)
        wait(lambda: http(where, "GET", "/ping")[0] == 0, "the first Chronos to stop", 20)
        assert second.proc.poll() is None
        wait_count(mc, name, count(mc, name) + 3)
        end = time.time()
        assert name in listed(second.where)
        runs = each_slot_once(mc, name)
        check_all_ran(runs, start, start, end - PERIOD)
    finally:
        second.stop()
        delete(sup.ensure(), name)


# --- 3. async jobs ----------------------------------------------------------------------------------
def test_an_async_job_succeeds_when_told_and_then_its_children_run(
    api: tuple[MesosCluster, str],
) -> None:
    mc, where = api
    add(where, job("async-a", schedule="R/2030-01-01T00:00:00Z/P1D", **{"async": True}))
    add(where, job("async-b", parents=["async-a"]))
    try:
        run(where, "async-a")
        wait(lambda: "TASK_FINISHED" in task_states(mc, "async-a").values(), "its task to end")
        wait(
            lambda: "node,async-a,fresh,idle" in http(where, "GET", "/v1/scheduler/graph/csv")[1],
            "the run to be over for Chronos",
        )
        time.sleep(0.5)
        assert count(mc, "async-a") == 0 and count(mc, "async-a", "errorCount") == 0
        assert runs_of(mc, "async-a") == []
        assert count(mc, "async-b") == 0 and not pod_tasks(mc, "async-b")
        status, text = http(where, "PUT", "/v1/scheduler/job/success/async-a")
        assert (status, text) == (200, "marked job async-a as successful: true")
        assert chronos_job(where, "async-a")["successCount"] == 1
        wait_count(mc, "async-b", 1)
        assert count(mc, "async-a") == 1
        (a,) = runs_of(mc, "async-a")
        (b,) = runs_of(mc, "async-b")
        assert a["status"] == b["status"] == "success"
        assert b["startTime"] >= a["endTime"]
    finally:
        delete(where, "async-b", "async-a")


# --- 4. DAG ---------------------------------------------------------------------------------------
def test_a_diamond_waits_for_both_branches_and_reruns_from_a_node(
    api: tuple[MesosCluster, str], tmp_path: Path
) -> None:
    """A -> B, A -> C, B + C -> D, where C fails once (``retries`` 1) then succeeds: D
    runs once, after both. ``PUT job/B`` (rerun from here) runs B and then D again,
    with C's last success; A and C do not run again."""
    mc, where = api
    marker = tmp_path / "c-failed-once"
    fail_once = f"if [ -e {marker} ]; then exit 0; else touch {marker}; exit 1; fi"
    add(where, job("dag-a", schedule="R/2030-01-01T00:00:00Z/P1D"))
    add(where, job("dag-b", parents=["dag-a"], command="sleep 1"))
    add(where, job("dag-c", parents=["dag-a"], command=fail_once, retries=1))
    add(where, job("dag-d", parents=["dag-b", "dag-c"]))
    names = ("dag-d", "dag-c", "dag-b", "dag-a")
    try:
        run(where, "dag-a")
        wait_count(mc, "dag-d", 1)
        time.sleep(1.5)  # nothing more comes
        assert {n: count(mc, n) for n in names} == {n: 1 for n in names}
        assert count(mc, "dag-c", "errorCount") == 0
        c_slot = runs_of(mc, "dag-c")[0]["slot"]
        assert sorted(pod_tasks(mc, "dag-c")) == [(c_slot, 0), (c_slot, 1)]
        assert [r["attempt"] for r in runs_of(mc, "dag-c")] == [1]
        (d,) = runs_of(mc, "dag-d")
        for parent in ("dag-b", "dag-c"):
            assert d["startTime"] >= runs_of(mc, parent)[0]["endTime"]
        assert len(pod_tasks(mc, "dag-d")) == 1

        run(where, "dag-b")  # rerun from here
        wait_count(mc, "dag-d", 2)
        time.sleep(1.5)
        assert {n: count(mc, n) for n in names} == {
            "dag-a": 1, "dag-b": 2, "dag-c": 1, "dag-d": 2,
        }  # fmt: skip
        assert runs_of(mc, "dag-d")[1]["startTime"] >= runs_of(mc, "dag-b")[1]["endTime"]
        for n in names:
            each_slot_once(mc, n)
    finally:
        delete(where, *names)


def test_mark_success_on_a_failed_parent_releases_its_child(api: tuple[MesosCluster, str]) -> None:
    mc, where = api
    add(where, job("ms-parent", schedule="R/2030-01-01T00:00:00Z/P1D", command="exit 3", retries=0))
    add(where, job("ms-child", parents=["ms-parent"]))
    try:
        run(where, "ms-parent")
        wait_count(mc, "ms-parent", 1, "errorCount")
        time.sleep(1)
        assert count(mc, "ms-child") == 0 and not pod_tasks(mc, "ms-child")
        why = http(where, "GET", "/corral/why/ms-child")[1]["reasons"]
        assert any("ms-parent" in line for line in why), why
        status, text = http(where, "PUT", "/v1/scheduler/job/success/ms-parent")
        assert (status, text) == (200, "marked job ms-parent as successful: true")
        wait_count(mc, "ms-child", 1)
        assert chronos_job(where, "ms-parent")["successCount"] == 1
        assert chronos_job(where, "ms-parent")["errorCount"] == 1
        assert len(pod_tasks(mc, "ms-parent")) == 1  # marked, not run again
    finally:
        delete(where, "ms-child", "ms-parent")


# --- 5. maxRunSeconds and concurrent -----------------------------------------------------------------
def test_max_run_seconds_kills_an_overlong_run_then_it_is_an_error(
    api: tuple[MesosCluster, str],
) -> None:
    mc, where = api
    name = "overlong"
    add(where, job(name, schedule="R/2030-01-01T00:00:00Z/P1D", command="sleep 600",
                   maxRunSeconds=2, retries=1))  # fmt: skip
    try:
        t = time.time()
        run(where, name)
        wait_count(mc, name, 1, "errorCount", timeout=40)
        took = time.time() - t
        states = task_states(mc, name)
        assert sorted(states.values()) == ["TASK_KILLED", "TASK_KILLED"], states
        (r,) = runs_of(mc, name)  # one error, after its retry
        # both attempts of the one slot (the master deletes a killed task's pod)
        tasks = sorted(parse_task_id(t) or ("", 0, 0) for t in states)
        assert tasks == [(name, r["slot"], 0), (name, r["slot"], 1)]
        assert (r["status"], r["attempt"]) == ("failure", 1)
        assert 2.0 <= r["duration"] < 10
        assert count(mc, name) == 0
        assert took < 30
    finally:
        delete(where, name)


def test_a_job_that_is_not_concurrent_skips_a_slot_while_it_runs(
    api: tuple[MesosCluster, str],
) -> None:
    mc, where = api
    name = "slow"
    before = skipped(where)
    start = float(int(time.time()) + 1)
    add(where, job(name, schedule=f"R/{iso(start)}/PT1S", command="sleep 2.5"))
    try:
        wait_count(mc, name, 2, timeout=30)
        assert skipped(where) - before >= 2
        runs = sorted(runs_of(mc, name), key=lambda r: r["slot"])
        for prev, nxt in itertools.pairwise(runs):
            assert nxt["slot"] - prev["slot"] >= 2000  # the slots between were skipped
            assert nxt["startTime"] >= prev["endTime"]  # never two at once
        states = task_states(mc, name)
        assert list(states.values()).count("TASK_RUNNING") <= 1
        each_slot_once(mc, name)
    finally:
        delete(where, name)


# --- 6. bad input ---------------------------------------------------------------------------------
BAD = [
    ("iso8601", job("early", schedule="R/1969-12-31T00:00:00Z/PT1H"),
     "Scheduled start date '1969-12-31T00:00:00.000Z' is before 1970!"),
    ("iso8601", job("a b", schedule="R/2030-01-01T00:00:00Z/PT1H"),
     "the job's name is invalid. Allowed names: '([\\w\\.-]+)'"),
    ("iso8601", job("x/y", schedule="R/2030-01-01T00:00:00Z/PT1H"),
     "the job's name is invalid. Allowed names: '([\\w\\.-]+)'"),
    ("iso8601", job("both", schedule="R/2030-01-01T00:00:00Z/PT1H", parents=["bad-root"]),
     "Job must only include 1 of ['schedule', 'parents']"),
    ("dependency", job("both-dep", schedule="R/2030-01-01T00:00:00Z/PT1H", parents=["bad-root"]),
     "Job must only include 1 of ['schedule', 'parents']"),
    ("iso8601", job("neither"), "Job must include one of ['schedule', 'parents']"),
    ("dependency", job("neither-dep"), "Job must include one of ['schedule', 'parents']"),
    ("dependency", job("orphan", parents=["no-such-job"]),
     "Parent no-such-job of job orphan not found in job graph!"),
    ("dependency", job("bad-root", parents=["bad-child"]),
     "Parent bad-child of job bad-root would create a cycle: bad-root -> bad-child -> bad-root"),
    ("iso8601", job("no-duration", schedule="R/2030-01-01T00:00:00Z/PT"),
     "Cannot parse schedule 'R/2030-01-01T00:00:00Z/PT' (wtf bro)"),
    ("iso8601", job("mars", schedule="R/2030-01-01T00:00:00Z/PT1H",
                    scheduleTimeZone="Mars/Olympus_Mons"),
     "Unknown scheduleTimeZone 'Mars/Olympus_Mons'"),
]  # fmt: skip


def test_bad_jobs_are_refused_with_chronos_words_and_nothing_is_stored(
    api: tuple[MesosCluster, str], caplog: pytest.LogCaptureFixture
) -> None:
    mc, where = api
    add(where, job("bad-root", schedule="R/2030-01-01T00:00:00Z/PT1H"))
    add(where, job("bad-child", parents=["bad-root"]))
    try:
        jobs_before = http(where, "GET", "/v1/scheduler/jobs")[1]
        objects_before = {n: stored(mc, n) for n in ("bad-root", "bad-child")}
        names_before = stored_names(mc)
        for kind, body, message in BAD:
            for prefix in ("/v1/scheduler", "/scheduler"):
                status, answer = http(where, "POST", f"{prefix}/{kind}", body)
                assert (status, answer) == (400, {"message": message, "status": "Bad Request"})
        # chronos-python: what it sends comes back as the same 400 (it logs the message);
        # both or neither of schedule and parents it refuses itself
        c = chronos.connect(where)
        caplog.set_level(logging.ERROR, logger="chronos")
        for _kind, body, message in BAD:
            if "Job must" in message:
                with pytest.raises((chronos.OneOfViolationError, chronos.MissingFieldError)):
                    c.add(body)
                continue
            caplog.clear()
            with pytest.raises(chronos.ChronosAPIError):
                c.add(body)
            assert message[:100] in caplog.text
        assert http(where, "GET", "/v1/scheduler/jobs")[1] == jobs_before
        assert stored_names(mc) == names_before
        assert {n: stored(mc, n) for n in ("bad-root", "bad-child")} == objects_before
        for _, body, _ in BAD:
            if body["name"] not in ("bad-root", "bad-child"):
                assert stored(mc, body["name"]) is None
        assert "parents" not in chronos_job(where, "bad-root")
    finally:
        delete(where, "bad-child", "bad-root")


# --- 6. what the review of issue 12 found ------------------------------------------------------------
def test_a_job_stored_by_kubectl_with_a_bad_schedule_is_skipped_not_fatal(
    shared: tuple[MesosCluster, Supervisor],
) -> None:
    """ChronosJobs written past the REST API (kubectl) with a schedule Chronos cannot
    parse or an unknown ``catchUp``: Chronos keeps serving, skips them with a reason
    that ``corral why job/NAME`` gives, and starts again with them stored."""
    mc, sup = shared
    where = sup.ensure()
    bad = {
        "kube-bad-schedule": {"schedule": "every minute"},
        "kube-bad-catchup": {"schedule": "R/2030-01-01T00:00:00Z/P1D", "catchUp": "sometimes"},
    }
    for name, fields in bad.items():
        body = {
            "apiVersion": "chronos.corral.dev/v1",
            "kind": "ChronosJob",
            "metadata": {"name": object_name(name), "namespace": "chronos"},
            "spec": {"job": {"name": name, "command": "true", **fields}},
        }
        mc.kube_post(CHRONOSJOBS, body)
    try:
        wait(lambda: set(bad) <= set(listed(where)), "Chronos to list the stored jobs", 20)
        why = http(where, "GET", "/corral/why/kube-bad-schedule")[1]["reasons"]
        assert any("Cannot parse schedule 'every minute'" in r for r in why), why
        why = http(where, "GET", "/corral/why/kube-bad-catchup")[1]["reasons"]
        assert any("catchUp" in r for r in why), why
        sup.kill()  # a Chronos starting with them stored
        where = sup.ensure()
        wait(lambda: set(bad) <= set(listed(where)), "the restarted Chronos to list them", 20)
        name = "after-bad"
        add(where, job(name, schedule="R/2030-01-01T00:00:00Z/P1D"))
        run(where, name)
        wait_count(mc, name, 1)
        delete(where, name)
    finally:
        delete(sup.ensure(), *bad)


def test_deleting_a_parent_takes_it_out_of_the_parents_of_its_children(
    api: tuple[MesosCluster, str],
) -> None:
    """Chronos' ``deregisterJob``: a child with other parents loses the deleted one (in
    its stored spec too) and runs after the others; an only child keeps it, and ``why``
    says its parent does not exist."""
    mc, where = api
    add(where, job("rp-a", schedule="R/2030-01-01T00:00:00Z/P1D"))
    add(where, job("rp-b", schedule="R/2030-01-01T00:00:00Z/P1D"))
    add(where, job("rp-both", parents=["rp-a", "rp-b"]))
    add(where, job("rp-only", parents=["rp-a"]))
    try:
        delete(where, "rp-a")
        wait(lambda: chronos_job(where, "rp-both")["parents"] == ["rp-b"], "rp-both re-parented")
        assert (stored(mc, "rp-both") or {})["spec"]["job"]["parents"] == ["rp-b"]
        assert chronos_job(where, "rp-only")["parents"] == ["rp-a"]
        why = http(where, "GET", "/corral/why/rp-only")[1]["reasons"]
        assert any("do not exist" in r for r in why), why
        run(where, "rp-b")
        wait_count(mc, "rp-both", 1)  # it no longer waits for rp-a
    finally:
        delete(where, "rp-only", "rp-both", "rp-b")


def test_a_task_killed_through_the_api_is_neither_retried_nor_an_error(
    api: tuple[MesosCluster, str],
) -> None:
    mc, where = api
    name = "killed-by-user"
    add(where, job(name, schedule="R/2030-01-01T00:00:00Z/P1D", command="sleep 600", retries=2))
    try:
        run(where, name)
        wait(lambda: "TASK_RUNNING" in task_states(mc, name).values(), "its task to run", 40)
        status, answer = http(where, "DELETE", f"/v1/scheduler/task/kill/{name}")
        assert status == 204, answer
        wait(lambda: [r["status"] for r in runs_of(mc, name)] == ["killed"], "the kill recorded")
        time.sleep(2)  # a retry would be queued and launched by now
        assert list(task_states(mc, name).values()) == ["TASK_KILLED"]
        assert count(mc, name, "errorCount") == 0 and count(mc, name) == 0
        assert not status_of(mc, name).get("openRuns")
    finally:
        delete(where, name)


def test_a_fenced_off_chronos_exits_cleanly_with_one_line(
    shared: tuple[MesosCluster, Supervisor], tmp_path: Path
) -> None:
    """Another Chronos takes the framework over: the one fenced off stops, exit code 0,
    a one-line reason in its log and no traceback."""
    mc, sup = shared
    sup.ensure()
    first = ChronosProcess.start(mc, free_port(), tmp_path / "first.log")
    second: ChronosProcess | None = None
    try:
        wait(lambda: http(first.where, "GET", "/ping")[0] == 200, "the first Chronos", 30)
        fid = framework_id(mc)
        wait(lambda: "subscribed" in (tmp_path / "first.log").read_text(), "it to subscribe", 30)
        second = ChronosProcess.start(mc, free_port(), tmp_path / "second.log")
        wait(lambda: first.proc.poll() is not None, "the first Chronos to stop", 30)
        assert first.proc.returncode == 0
        text = (tmp_path / "first.log").read_text()
        assert "Traceback" not in text, text
        (line,) = [x for x in text.splitlines() if "chronos: stopping:" in x]
        assert "another Chronos took it over" in line
        assert fid() is not None
    finally:
        first.stop()
        if second is not None:
            second.stop()
        sup.ensure()
