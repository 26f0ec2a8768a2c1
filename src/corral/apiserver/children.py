"""The child processes of ``corral server`` (scheduler, controller manager, chronos,
marathon, agents), kept running: a child that exits while the server runs is started
again after a back-off (1 s, doubling to 30 s; back to 1 s once a run lasted a minute),
as a process supervisor would.

Each child is ``corral COMMAND --kubeconfig F ... --exit-on-stdin-eof``: it exits when
its stdin closes, so it never outlives the server, even after a SIGKILL. ``stop`` closes
every child's stdin and sends SIGTERM to all of them at once, then waits for them
together (SIGKILL after ``grace`` seconds), so stopping costs the slowest child's exit,
not the sum of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import time
from dataclasses import dataclass, field

log = logging.getLogger("corral.apiserver")

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
#: a run this long resets the back-off
STABLE_SECONDS = 60.0
POLL_SECONDS = 0.5


@dataclass
class Child:
    """One supervised process: its command line and its current process."""

    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    backoff: float = BACKOFF_FIRST
    due: float | None = None  # when to start it again after an exit

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE)
        self.started = time.monotonic()
        self.due = None


@dataclass
class Children:
    """The supervised children of one server (module docstring)."""

    children: list[Child] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _stopping: bool = False

    def start(self, name: str, argv: list[str]) -> Child:
        child = Child(name, argv)
        child.start()
        self.children.append(child)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._supervise(), name="children")
        return child

    async def _supervise(self) -> None:
        while not self._stopping:
            now = time.monotonic()
            for child in self.children:
                self._check(child, now)
            await asyncio.sleep(POLL_SECONDS)

    def _check(self, child: Child, now: float) -> None:
        proc = child.proc
        if child.due is not None:
            if now >= child.due:
                log.warning("starting corral %s again (restart %d)", child.name, child.restarts)
                child.start()
            return
        if proc is None or (code := proc.poll()) is None:
            return
        if now - child.started >= STABLE_SECONDS:
            child.backoff = BACKOFF_FIRST
        child.restarts += 1
        child.due = now + child.backoff
        log.warning(
            "corral %s exited with status %s; starting it again in %.0f s",
            child.name,
            code,
            child.backoff,
        )
        child.backoff = min(BACKOFF_MAX, child.backoff * 2)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop every child at once; SIGKILL what is still there after ``grace`` s."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        procs = [c.proc for c in self.children if c.proc is not None]
        self.children = []
        for proc in procs:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()  # the child's signal to stop
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        deadline = time.monotonic() + grace
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                await asyncio.to_thread(proc.wait)
