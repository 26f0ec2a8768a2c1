"""A pymesos framework in a process of its own, for the framework failover fault
(``failover.py``): the scenario SIGKILLs it and starts it again with the FrameworkID it
printed, as an operator's supervisor would restart a crashed framework scheduler.

``python -m corral.testing.faults.failover_framework --master HOST:PORT --out FILE``
subscribes (``--id FID``: as that framework again), keeps ``--tasks N`` command tasks
launched, one per offer, unless it is failing over (a launch that did not happen is
replaced: ``Launcher.resourceOffers``), asks for an implicit reconciliation once
subscribed, and appends one JSON line per callback to ``FILE``:
``{"registered": FID}``, ``{"update": {"task_id": ..., "state": ..., "reason": ...}}``,
``{"error": MESSAGE}``, ``{"call_failed": CALL, "why": ...}`` (``Launcher.call``). It
runs until killed; SIGTERM, or an ERROR event, stops the driver with TEARDOWN (the
framework and its tasks go), as a framework that is done would.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pymesos

from corral.mesos.taskstatus import is_terminal_state
from corral.testing.mesos import command_task, scalar


class Launcher(pymesos.Scheduler):  # type: ignore[misc]
    """Launches ``tasks`` tasks (none when failing over) and logs every callback."""

    def __init__(self, out: Path, prefix: str, tasks: int) -> None:
        self.done = threading.Event()
        self.out = out
        self.prefix = prefix
        self.wanted = tasks
        self.launched = 0  # task ids used: PREFIX-0, PREFIX-1, ...
        self.live: set[str] = set()  # launched, not ended before it ran
        self.ran: set[str] = set()
        self.lock = threading.Lock()

    def emit(self, record: dict[str, Any]) -> None:
        with self.lock, self.out.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def call(self, name: str, method: Callable[..., Any], *args: Any) -> bool:
        """A driver call from a callback, as libmesos' driver makes it: never raising to
        the scheduler. A master that has just lost its leadership refuses calls (503 "No
        leader elected"), as a Mesos master does in that state; libmesos drops such a
        call and the failover redoes its work (offers rescinded, tasks reconciled), but
        pymesos raises it from inside its event thread, which then dies and never
        reconnects. So a failed call is recorded here, and dropped."""
        try:
            method(*args)
        except (RuntimeError, OSError) as e:
            self.emit({"call_failed": name, "why": str(e).splitlines()[0]})
            return False
        return True

    def registered(self, driver: Any, framework_id: Any, master_info: Any) -> None:
        self.emit({"registered": framework_id["value"]})
        self.call("RECONCILE", driver.reconcileTasks, [])

    def reregistered(self, driver: Any, master_info: Any) -> None:
        self.emit({"registered": driver.framework_id})
        self.call("RECONCILE", driver.reconcileTasks, [])

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:
        """One task per offer while fewer than ``wanted`` are live. A launch that did not
        happen (its ACCEPT refused, or the task ended before it ran: e.g. TASK_LOST when
        the master failed over between the ACCEPT and the task reaching its agent, as in
        Mesos) is replaced by a task of a new id, as Marathon replaces a lost instance."""
        for offer in offers:
            with self.lock:
                want = len(self.live) < self.wanted and scalar(offer.resources, "cpus") >= 0.1
                name = f"{self.prefix}-{self.launched}"
                if want:
                    self.launched += 1
                    self.live.add(name)
            if not want:
                self.call("DECLINE", driver.declineOffer, offer.id, {"refuse_seconds": 1})
                continue
            task = command_task(offer, name, "sleep 3600", 0.1, 32)
            if not self.call("ACCEPT", driver.launchTasks, offer.id, [task], {"refuse_seconds": 0}):
                with self.lock:
                    self.live.discard(name)

    def statusUpdate(self, driver: Any, update: Any) -> None:
        keep = {"task_id": update["task_id"]["value"], "state": update["state"]}
        keep["reason"] = update.get("reason") or ""
        self.emit({"update": keep})
        with self.lock:
            if keep["state"] == "TASK_RUNNING":
                self.ran.add(keep["task_id"])
            elif is_terminal_state(keep["state"]) and keep["task_id"] not in self.ran:
                self.live.discard(keep["task_id"])

    def error(self, driver: Any, message: str) -> None:
        """An ERROR event (e.g. the framework was removed): the driver must abort, as
        libmesos' does; pymesos leaves that to the scheduler."""
        self.emit({"error": message})
        self.done.set()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="failover_framework")
    p.add_argument("--master", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--name", default="failover")
    p.add_argument("--tasks", type=int, default=0)
    p.add_argument("--failover-timeout", type=float, default=60.0)
    p.add_argument("--id", default="")
    args = p.parse_args(argv)
    info: dict[str, Any] = {
        "user": "root",
        "name": args.name,
        "failover_timeout": args.failover_timeout,
    }
    if args.id:
        info["id"] = {"value": args.id}
    sched = Launcher(args.out, args.name, 0 if args.id else args.tasks)
    driver = pymesos.MesosSchedulerDriver(sched, info, args.master, use_addict=True)

    def on_term(signum: int, frame: FrameType | None) -> None:
        sched.done.set()

    signal.signal(signal.SIGTERM, on_term)
    driver.start()
    while not sched.done.wait(0.2):
        pass
    driver.stop()  # TEARDOWN, sent by the driver's thread as it ends
    driver.join()


if __name__ == "__main__":
    main()
