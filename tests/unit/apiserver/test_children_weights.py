"""Children's CPU weights (``apiserver/children.py``, ``NICENESS``): the scheduler and the
controller manager run at kubeadm's CPU weights below the server's, every thread of
them, again after a restart; the other children at the server's own."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from corral.apiserver import children as children_mod
from corral.apiserver.children import NICENESS, Children

#: writes the nice value of its main thread and of a thread it starts, then sleeps
REPORTER = """
import os, sys, threading, time
def nice():
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
seen = []
t = threading.Thread(target=lambda: seen.append(nice()))
t.start(); t.join()
with open(sys.argv[1], "a") as f:
    f.write(f"{nice()} {seen[0]}\\n")
time.sleep(60)
"""


async def _lines(path: Path, n: int) -> list[str]:
    async with asyncio.timeout(20):
        while True:
            lines = path.read_text().splitlines() if path.exists() else []
            if len(lines) >= n:
                return lines
            await asyncio.sleep(0.02)


async def test_kubeadm_weights_for_scheduler_and_controller_manager(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(children_mod, "POLL_SECONDS", 0.02)
    monkeypatch.setattr(children_mod, "BACKOFF_FIRST", 0.05)
    base = os.getpriority(os.PRIO_PROCESS, 0)
    kids = Children()
    try:
        runs = {}
        for name in ("scheduler", "controller-manager", "agent"):
            out = tmp_path / f"{name}.txt"
            kids.start(name, [sys.executable, "-c", REPORTER, str(out), "--name", "n1"])
            runs[name] = out
        for name, out in runs.items():
            want = min(19, base + NICENESS.get(name, 0))
            assert await _lines(out, 1) == [f"{want} {want}"], name
        assert NICENESS["scheduler"] > NICENESS["controller-manager"] > 0
        # a restarted scheduler is lowered again
        sched = next(c for c in kids.children if c.name == "scheduler")
        assert sched.proc is not None
        first = sched.proc.pid
        os.kill(first, signal.SIGKILL)
        lines = await _lines(runs["scheduler"], 2)
        want = min(19, base + NICENESS["scheduler"])
        assert lines[1] == f"{want} {want}"
        assert sched.proc is not None and sched.proc.pid != first
    finally:
        await kids.stop(grace=5)


def test_a_child_that_already_exited_is_left_alone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    children_mod._lower_weight(proc.pid, 4)  # reaped: no such process, no error
