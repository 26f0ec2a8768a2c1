"""Fault scenario ``failover`` (issue 16, Deliver 4): framework and loop failover.

One ``corral server`` with the Mesos master and hollow nodes (``corral.testing.mesos``):

1. Framework failover. A pymesos framework in its own process
   (``failover_framework.py``) launches tasks and is SIGKILLed. Started again with its
   FrameworkID within ``failover_timeout``, it re-subscribes and its implicit
   reconciliation shows every task RUNNING, on the same pods, never restarted
   (``framework_tasks_lost_within_timeout``: 0); in the long form every other failover
   also SIGKILLs the Mesos master (the scheduler process) while the framework is away.
   Another one, killed and not started again, is removed once its ``failover_timeout``
   passes, and its tasks killed (``tasks_left_after_timeout``: 0). The driver-level variants (``driver.stop``,
   TEARDOWN, a refused re-subscription) are tests/integration/test_mesos_pymesos.py's.
2. Loop failover: ``failover_rollout.py`` SIGKILLs the scheduler and the controller
   manager mid-rollout and checks that they resume without duplicate pods.

``run(work, long=False)`` returns the figures: ``framework_failovers``,
``framework_tasks_lost_within_timeout``, ``tasks_left_after_timeout``,
``framework_removed_after_s`` (kill to removal, timeout 1 s), ``rollout_kills``,
``duplicate_pods``, ``rollout_completed``, ``peak_active_pods`` / ``max_pods_allowed``,
``resume_s`` {p50, p99} (kill to the restarted loop's first write), ``restart_s`` (kill
to the supervisor's new process: its back-off) and ``violations``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.mesos.taskstatus import is_terminal_state
from corral.testing.faults.failover_rollout import SCHEDULER, child_pid, run_rollouts
from corral.testing.wait import wait_for

Obj = dict[str, Any]

#: the failover timeout of the framework that comes back, and of the one that does not
KEPT_TIMEOUT = 60.0
LOST_TIMEOUT = 1.0
TASKS = 2
WAIT = 30.0


@dataclass
class FrameworkProcess:
    """``failover_framework`` in a child process; its callbacks are lines of ``out``."""

    proc: subprocess.Popen[bytes]
    out: Path

    @classmethod
    def start(
        cls, master: str, out: Path, name: str, *, tasks: int, timeout: float, fid: str = ""
    ) -> FrameworkProcess:
        argv = [sys.executable, "-m", "corral.testing.faults.failover_framework",
                "--master", master, "--out", str(out), "--name", name,
                "--tasks", str(tasks), "--failover-timeout", str(timeout)]  # fmt: skip
        if fid:
            argv += ["--id", fid]
        out.touch()
        with open(out.with_suffix(".log"), "ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        return cls(proc, out)

    def records(self) -> list[Obj]:
        return [json.loads(line) for line in self.out.read_text().splitlines() if line]

    def framework_id(self) -> str:
        return next((str(r["registered"]) for r in self.records() if "registered" in r), "")

    def states(self) -> dict[str, str]:
        """Each task's latest state."""
        return {r["update"]["task_id"]: r["update"]["state"]
                for r in self.records() if "update" in r}  # fmt: skip

    def running(self, n: int) -> bool:
        """Whether ``n`` tasks (or more: an ACCEPT whose answer was lost may have been
        applied) are RUNNING and none is still on its way; a launch that did not happen
        was replaced by the framework (``Launcher.resourceOffers``)."""
        states = list(self.states().values())
        return states.count("TASK_RUNNING") >= n and all(
            s == "TASK_RUNNING" or is_terminal_state(s) for s in states
        )

    def running_ids(self) -> set[str]:
        """The tasks whose latest state is RUNNING (not a replaced launch's)."""
        return {t for t, s in self.states().items() if s == "TASK_RUNNING"}

    def said(self) -> dict[str, str]:
        """Each task's latest state and reason, for a failure's message."""
        return {u["task_id"]: f"{u['state']} {u['reason']}".strip()
                for r in self.records() if (u := r.get("update"))}  # fmt: skip

    def reconciled(self) -> dict[str, str]:
        """Each task's state in the answers to the implicit reconciliation."""
        return {u["task_id"]: u["state"] for r in self.records()
                if (u := r.get("update")) and u["reason"] == "REASON_RECONCILIATION"}  # fmt: skip

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        """SIGTERM: the framework tears itself down."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def _wait(pred: Callable[[], Any], limit: float = WAIT) -> bool:
    return wait_for(pred, limit)


def _task_pods(cluster: Any, fid: str) -> dict[str, tuple[str, str]]:
    """The framework's task pods: task id -> (pod uid, container start time)."""
    from corral.api import mesos as names

    out: dict[str, tuple[str, str]] = {}
    for pod in cluster.task_pods():
        meta = pod["metadata"]
        if (meta.get("labels") or {}).get(names.FRAMEWORK_ID) != names.label_safe(fid):
            continue
        started = [json.dumps(c.get("state"), sort_keys=True) + str(c.get("restartCount"))
                   for c in (pod.get("status") or {}).get("containerStatuses") or []]  # fmt: skip
        out[meta["annotations"][names.TASK_ID]] = (meta["uid"], "|".join(started))
    return out


def _connected(cluster: Any, fid: str) -> bool | None:
    """Whether the master has ``fid`` connected; None once it is gone."""
    for fw in cluster.get("/state")["frameworks"]:
        if fw["id"] == fid:
            return bool(fw["connected"])
    return None


def _kill_master(cluster: Any, violations: list[str]) -> None:
    """SIGKILL the scheduler process (it serves the Mesos master); wait for the new one."""
    pid = child_pid(cluster.server.pid, SCHEDULER)
    if pid is None:
        violations.append("no scheduler process to kill")
        return
    os.kill(pid, signal.SIGKILL)
    if not _wait(lambda: child_pid(cluster.server.pid, SCHEDULER) not in (None, pid), 60):
        violations.append("the scheduler (Mesos master) was not started again")
    if not _wait(lambda: _healthy(cluster), 60):
        violations.append("the restarted Mesos master did not answer /health")


def _healthy(cluster: Any) -> bool:
    try:
        return cluster.get("/state") is not None
    except (OSError, ValueError):
        return False


def fail_over_within_timeout(
    cluster: Any, work: Path, n: int, violations: list[str], *, master_too: bool = False
) -> int:
    """Kill a framework with running tasks and start it again with its id (``master_too``:
    after killing the Mesos master as well, while it was away): how many of its tasks
    were lost or restarted (must be 0)."""
    first = FrameworkProcess.start(
        cluster.master, work / f"kept-{n}-0.jsonl", f"kept-{n}", tasks=TASKS, timeout=KEPT_TIMEOUT
    )
    back: FrameworkProcess | None = None
    try:
        if not _wait(lambda: first.running(TASKS)):
            violations.append(f"framework kept-{n}: its tasks never ran: {first.said()}")
            return TASKS
        fid = first.framework_id()
        ran = first.running_ids()  # their pods (a replaced launch's may still be going)
        before = {t: v for t, v in _task_pods(cluster, fid).items() if t in ran}
        first.kill()
        if not _wait(lambda: _connected(cluster, fid) is False):
            violations.append(f"the master did not see framework {fid} disconnect")
        if master_too:
            _kill_master(cluster, violations)
        back = FrameworkProcess.start(
            cluster.master, work / f"kept-{n}-1.jsonl", f"kept-{n}",
            tasks=0, timeout=KEPT_TIMEOUT, fid=fid,
        )  # fmt: skip
        if not _wait(lambda: len(back.reconciled()) >= TASKS or back.proc.poll() is not None):
            violations.append(f"framework {fid} failed over but was not reconciled")
        if back.framework_id() != fid:
            violations.append(f"framework {fid} came back as {back.framework_id()!r}")
        seen, after = back.reconciled(), _task_pods(cluster, fid)
        lost = sum(
            1 for task in before
            if seen.get(task) != "TASK_RUNNING" or after.get(task) != before[task]
        )  # fmt: skip
        if lost:
            violations.append(f"framework {fid} failed over within its timeout and lost or "
                              f"restarted {lost} tasks: {seen}, {before} -> {after}")  # fmt: skip
        if errors := sorted({r["error"] for r in back.records() if "error" in r}):
            violations.append(f"framework {fid} got errors on failover: {errors}")
        back.stop()  # TEARDOWN: gone, with its tasks
        if not _wait(lambda: _connected(cluster, fid) is None and not _task_pods(cluster, fid)):
            violations.append(f"framework {fid} or its tasks outlived its TEARDOWN")
        return lost
    finally:
        first.kill()
        if back is not None:
            back.kill()


def stay_away(cluster: Any, work: Path, n: int, violations: list[str]) -> tuple[int, float]:
    """Kill a framework and never start it again: how many of its tasks are left once
    the master removed it (must be 0), and how long the removal took after the kill."""
    fw = FrameworkProcess.start(
        cluster.master, work / f"lost-{n}.jsonl", f"lost-{n}", tasks=TASKS, timeout=LOST_TIMEOUT
    )
    try:
        if not _wait(lambda: fw.running(TASKS)):
            violations.append(f"framework lost-{n}: its tasks never ran: {fw.said()}")
            return 0, 0.0
        fid = fw.framework_id()
        fw.kill()
        killed = time.monotonic()
        if not _wait(lambda: _connected(cluster, fid) is None):
            violations.append(f"framework {fid} not removed {WAIT:.0f} s after its timeout")
        removed = time.monotonic() - killed
        _wait(lambda: not _task_pods(cluster, fid), 10)
        left = len(_task_pods(cluster, fid))
        if left:
            violations.append(f"framework {fid} removed but {left} of its tasks still run")
        return left, removed
    finally:
        fw.kill()


def run(work: Path, *, long: bool = False) -> dict[str, object]:
    """The scenario (module docstring); ``long``: 3 failovers each way, 5 rollouts of 40
    replicas with 2 kills each; short: one of each, one rollout of 20 replicas."""
    from corral.testing.mesos import mesos_cluster

    failovers, rollouts, replicas = (3, 5, 40) if long else (1, 1, 20)
    violations: list[str] = []
    lost = left = 0
    removal: list[float] = []
    with mesos_cluster(work, hollow=4) as cluster:
        _wait(lambda: len(cluster.get("/state")["slaves"]) == 4)
        for n in range(failovers):
            lost += fail_over_within_timeout(cluster, work, n, violations, master_too=n % 2 == 1)
            stayed, took = stay_away(cluster, work, n, violations)
            left += stayed
            removal.append(round(took, 3))
        loops = asyncio.run(
            run_rollouts(
                cluster.server.kubeconfig, cluster.server.pid, replicas=replicas, rollouts=rollouts
            )
        )
    loop_violations = loops.pop("violations")
    assert isinstance(loop_violations, list)
    return {
        "framework_failovers": failovers,
        "framework_tasks_lost_within_timeout": lost,
        "tasks_left_after_timeout": left,
        "framework_failover_timeout_s": LOST_TIMEOUT,
        "framework_removed_after_s": max(removal) if removal else None,
        **loops,
        "violations": violations + loop_violations,
    }


if __name__ == "__main__":  # python -m corral.testing.faults.failover [--long] WORKDIR
    import tempfile

    with contextlib.ExitStack() as stack:
        args = sys.argv[1:]
        long_form = "--long" in args
        rest = [a for a in args if a != "--long"]
        where = Path(rest[0]) if rest else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        print(json.dumps(run(where, long=long_form), indent=2))
