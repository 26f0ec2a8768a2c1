"""The components ``corral server`` runs beside the API server, kept running: child
processes (scheduler, controller manager, chronos, marathon, agents) and, under ``corral
up``, the same loops as tasks in the server's own process (``Loop``). A child or loop
that ends while the server runs is started again after a back-off (at once when it
exited because it lost its leadership: ``EXIT_LEADERSHIP_LOST``, ``LeadershipLost``) (1 s, doubling to
10 s, the kubelet's systemd ``RestartSec``; back to 1 s once a run lasted
``STABLE_SECONDS``), as a process supervisor would;
a loop's exception is logged with its traceback first, so a crash is never silent. Both
the exit and the new start are logged at WARNING, naming the unit (an agent by its node)
and how it ended (a signal by name): ``corral up`` prints them on its terminal.

The back-off only slows a unit that fails soon after each start (supervisord's
``startsecs`` idea): one that ran 10 s had started fine, so its next crash costs 1 s, not
the growing delay of a crash loop. A SIGKILLed agent is thus back within about 2 s, and
even one killed again and again within about 12 s, well inside the 40 s after which its
Node would turn NotReady; it takes its running pods over
(``agent/kubelet.py``), so their containers never stop.

Each child is ``corral COMMAND --kubeconfig F ... --exit-on-stdin-eof``: it exits when
its stdin closes, so it never outlives the server, even after a SIGKILL. An in-process
loop gets the same command line (minus that flag) and talks to the API server over
loopback HTTPS exactly as the child would: only the process boundary is gone, so any of
them can still run alone (``corral scheduler``, ``corral controller-manager``, ...).
Children run at a lower CPU weight than the server where kubeadm's static pods do
(``NICENESS``): kubeadm requests 250m of CPU for kube-apiserver, 200m for
kube-controller-manager and 100m for kube-scheduler, so under contention the kernel gives
them CPU in those proportions. A child gets the nice increment over the server's own
whose CFS weight is nearest that ratio (scheduler +4: weight 423 against 1024, ~100/250;
controller manager +1: 820, ~200/250); an idle CPU still goes to whoever asks. Under
issue 19's load the server's event loop waited for a CPU 12.0% of the time instead of
13.1% (medians of 5 runs), as the scheduler and controller manager woke beside it.
``stop`` cancels every loop, closes every child's stdin and sends SIGTERM to all of them
at once, then waits for them together (SIGKILL after ``grace`` seconds), so stopping
costs the slowest one's exit, not the sum of them. ``restart`` stops and starts one unit
on purpose (a renewed client certificate, ``apiserver/cert_renewal.py``): no back-off,
no restart counted, the supervisor leaves it alone meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from corral.client.leaderelection import EXIT_LEADERSHIP_LOST, LeadershipLost

log = logging.getLogger("corral.apiserver")

BACKOFF_FIRST = 1.0
#: a crash loop restarts at most this often (the kubelet's unit: ``RestartSec=10``)
BACKOFF_MAX = 10.0
#: a run this long had started fine: the back-off starts again from ``BACKOFF_FIRST``
STABLE_SECONDS = 10.0
POLL_SECONDS = 0.5
#: how a unit that lost its leadership ended: it is started again at once, as a fresh
#: standby (no back-off: it did not crash, and the cluster may need it to campaign)
LOST_TERM = "lost its leadership"

#: nice increments over the server's of the children that kubeadm runs as static pods
#: with CPU requests below kube-apiserver's 250m (module docstring)
NICENESS = {"scheduler": 4, "controller-manager": 1}
#: the highest nice value (the lowest weight)
_NICE_MAX = 19

#: an in-process loop: ``corral COMMAND``'s work as a coroutine of its arguments; it runs
#: until cancelled (returning or raising counts as an exit) and installs no signal handlers
LoopMain = Callable[[list[str]], Coroutine[Any, Any, None]]


@dataclass
class Child:
    """One supervised process: its command line and its current process."""

    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    backoff: float = field(default_factory=lambda: BACKOFF_FIRST)  # read at start
    due: float | None = None  # when to start it again after an exit
    restarting: bool = False  # ``Children.restart`` stops and starts it: not an exit

    def start(self) -> None:
        old = self.proc
        if old is not None and old.stdin is not None:  # the ended run's pipe: not leaked
            with contextlib.suppress(OSError):
                old.stdin.close()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE)
        _lower_weight(self.proc.pid, NICENESS.get(self.name, 0))
        self.started = time.monotonic()
        self.due = None

    @property
    def title(self) -> str:
        """``corral agent NODE`` for an agent (``--name``), else ``corral COMMAND``."""
        node = _flag(self.argv, "--name")
        return f"corral {self.name} {node}" if node else f"corral {self.name}"


@dataclass
class Loop:
    """One supervised in-process loop: ``main(argv)`` as a task of the server's loop."""

    name: str
    argv: list[str]
    main: LoopMain
    task: asyncio.Task[None] | None = None
    started: float = 0.0
    restarts: int = 0
    backoff: float = field(default_factory=lambda: BACKOFF_FIRST)  # read at start
    due: float | None = None
    restarting: bool = False

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self.main(list(self.argv)), name=f"loop-{self.name}"
        )
        self.started = time.monotonic()
        self.due = None

    def ended(self) -> str | None:
        """How the current run ended (logged with the traceback), or None if running."""
        task = self.task
        if task is None or not task.done():
            return None
        if task.cancelled():
            return "was cancelled"
        exc = task.exception()
        if exc is None:
            return "returned"
        if isinstance(exc, LeadershipLost):
            return LOST_TERM
        log.error("corral %s (in-process) failed", self.name, exc_info=exc)
        return f"failed: {type(exc).__name__}: {exc}"


@dataclass
class Children:
    """The supervised children of one server (module docstring)."""

    children: list[Child] = field(default_factory=list)
    loops: list[Loop] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _stopping: bool = False

    def start(self, name: str, argv: list[str]) -> Child:
        child = Child(name, argv)
        child.start()
        self.children.append(child)
        self._supervising()
        return child

    def start_loop(self, name: str, main: LoopMain, argv: list[str]) -> Loop:
        """Run ``main(argv)`` as a supervised task of the running event loop."""
        loop = Loop(name, argv, main)
        loop.start()
        self.loops.append(loop)
        self._supervising()
        return loop

    def _supervising(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._supervise(), name="children")

    async def _supervise(self) -> None:
        while not self._stopping:
            now = time.monotonic()
            units: list[Child | Loop] = [*self.children, *self.loops]
            for unit in units:
                if unit.restarting:
                    continue
                try:
                    if isinstance(unit, Child):
                        self._check(unit, now)
                    else:
                        self._check_loop(unit, now)
                except Exception:  # e.g. the child could not be started: try again later
                    log.exception("corral %s: starting it failed", unit.name)
                    unit.due = now + unit.backoff
                    unit.backoff = min(BACKOFF_MAX, unit.backoff * 2)
            await asyncio.sleep(POLL_SECONDS)

    def _check_loop(self, loop: Loop, now: float) -> None:
        if loop.due is not None:
            if now >= loop.due:
                log.warning("starting corral %s again (restart %d)", loop.name, loop.restarts)
                loop.start()
            return
        how = loop.ended()
        if how is None:
            return
        if now - loop.started >= STABLE_SECONDS or how == LOST_TERM:
            loop.backoff = BACKOFF_FIRST
        loop.restarts += 1
        loop.due = now + (0.0 if how == LOST_TERM else loop.backoff)
        log.warning(
            "corral %s (in-process) %s; starting it again in %.0f s",
            loop.name,
            how,
            loop.due - now,
        )
        loop.backoff = min(BACKOFF_MAX, loop.backoff * 2)

    def _check(self, child: Child, now: float) -> None:
        proc = child.proc
        if child.due is not None:
            if now >= child.due:
                log.warning("starting %s again (restart %d)", child.title, child.restarts)
                child.start()
            return
        if proc is None or (code := proc.poll()) is None:
            return
        lost = code == EXIT_LEADERSHIP_LOST
        if now - child.started >= STABLE_SECONDS or lost:
            child.backoff = BACKOFF_FIRST
        child.restarts += 1
        child.due = now + (0.0 if lost else child.backoff)
        log.warning(
            "%s %s; starting it again in %.0f s", child.title, _how_exited(code), child.due - now
        )
        child.backoff = min(BACKOFF_MAX, child.backoff * 2)

    def _units(self) -> list[Child | Loop]:
        return [*self.children, *self.loops]

    def using(self, text: str) -> list[Child | Loop]:
        """The children and loops whose command line has the argument ``text`` (a file
        such as their kubeconfig)."""
        return [u for u in self._units() if text in u.argv]

    async def restart(self, name: str, *, argv_has: str = "", grace: float = 10.0) -> int:
        """Stop and start again each child or loop called ``name`` (whose command line
        has the argument ``argv_has``, when given), one after the other; how many."""
        units = [u for u in self._units() if u.name == name]
        count = 0
        for unit in units:
            if not argv_has or argv_has in unit.argv:
                await self.restart_unit(unit, grace=grace)
                count += 1
        return count

    async def restart_unit(self, unit: Child | Loop, *, grace: float = 10.0) -> None:
        """Stop ``unit`` (a loop: cancelled; a child: stdin closed and SIGTERM, SIGKILL
        after ``grace`` s) and start it again at once with the same command line. Nothing
        is started once ``stop`` began."""
        unit.restarting = True
        try:
            if isinstance(unit, Loop):
                task = unit.task
                if task is not None and not task.done():
                    task.cancel()
                    await asyncio.wait([task], timeout=grace)
            else:
                await _end(unit.proc, grace)
            if self._stopping:
                return
            unit.start()
            unit.backoff = BACKOFF_FIRST
            log.info("restarted corral %s", unit.name)
        finally:
            unit.restarting = False

    async def stop(self, grace: float = 10.0) -> None:
        """Stop every loop and child at once; SIGKILL what is still there after ``grace`` s
        (a loop that ignores its cancellation that long is left behind, logged)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        tasks = [lp.task for lp in self.loops if lp.task is not None]
        self.loops = []
        for task in tasks:
            task.cancel()
        procs = [c.proc for c in self.children if c.proc is not None]
        self.children = []
        for proc in procs:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()  # the child's signal to stop
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        deadline = time.monotonic() + grace
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                log.error("corral %s did not stop within %.0f s", task.get_name(), grace)
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    log.warning("%s ended with %r", task.get_name(), task.exception())
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                await asyncio.to_thread(proc.wait)


def _lower_weight(pid: int, increment: int) -> None:
    """Set ``pid``'s nice value ``increment`` above this process's (``NICENESS``).

    Called as soon as the child is forked: it is still starting Python, so its main
    thread is its only one, and every thread it starts inherits the value (on Linux
    a nice value is per thread). Raising a nice value needs no privilege; a child
    that has already exited is left alone."""
    if increment <= 0:
        return
    value = min(_NICE_MAX, os.getpriority(os.PRIO_PROCESS, 0) + increment)
    with contextlib.suppress(ProcessLookupError):
        os.setpriority(os.PRIO_PROCESS, pid, value)


def _flag(argv: list[str], name: str) -> str:
    """The value after ``name`` in ``argv`` ("" when absent)."""
    for i, arg in enumerate(argv[:-1]):
        if arg == name:
            return argv[i + 1]
    return ""


def _how_exited(code: int) -> str:
    """``exited with status N`` or ``was killed by SIGKILL`` (Popen's negative codes)."""
    if code == EXIT_LEADERSHIP_LOST:
        return LOST_TERM
    if code >= 0:
        return f"exited with status {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


async def _end(proc: subprocess.Popen[bytes] | None, grace: float) -> None:
    """Close ``proc``'s stdin, SIGTERM it, and wait for it (SIGKILL after ``grace`` s)."""
    if proc is None or proc.poll() is not None:
        return
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    deadline = time.monotonic() + grace
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        await asyncio.to_thread(proc.wait)
