"""The Mesos side of the ``partition`` scenario: a task of a framework that is NOT
partition-aware, on a host that is cut off.

Upstream Mesos (``docs/high-availability-framework-guide.md``, "Dealing with
Partitioned or Failed Agents"): when an agent is unreachable the master sends
``TASK_LOST`` for its tasks to frameworks without the ``PARTITION_AWARE`` capability;
such a framework typically relaunches the task elsewhere, and when the agent comes back
the master has it kill those tasks, so a lost task never reports ``TASK_RUNNING`` again
and its process is gone once the agent is back. ``MesosProbe`` is that framework (a real
``pymesos`` driver): ``launch(host)`` starts a command task on one host, ``relaunch``
starts its replacement on another after ``TASK_LOST``. The task's process carries the
run's marker in its argv and its task id as ``POD_UID`` in its environment, so
``partition.scan`` finds it on the machine.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from corral.testing.mesos import Framework, resources

Obj = dict[str, Any]


@dataclass
class _Wanted:
    task_id: str
    marker: str
    host: str | None  # run on this host (None: any but ``avoid``)
    avoid: str | None = None


@dataclass
class MesosProbe:
    """A non-partition-aware pymesos framework launching marked command tasks."""

    master: str
    image: str
    fw: Framework | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    wanted: list[_Wanted] = field(default_factory=list)

    def start(self) -> None:
        self.fw = Framework.start(self.master, name="partition-probe", on_offers=self._offers)

    def stop(self) -> None:
        if self.fw is not None:
            self.fw.stop()

    def _task(self, offer: Any, w: _Wanted) -> Obj:
        script = "while true; do sleep 1; done"
        return {
            "name": w.task_id,
            "task_id": {"value": w.task_id},
            "agent_id": {"value": offer["agent_id"]["value"]},
            "resources": resources(0.1, 32),
            "command": {
                "shell": False,
                "value": "sh",
                "arguments": ["sh", "-c", script, f"{w.marker}-mesos"],
                "environment": {"variables": [{"name": "POD_UID", "value": w.task_id}]},
            },
            "container": {
                "type": "MESOS",
                "mesos": {"image": {"type": "DOCKER", "docker": {"name": self.image}}},
            },
        }

    def _offers(self, driver: Any, offers: list[Any]) -> None:
        for offer in offers:
            host = str(offer.get("hostname") or offer["agent_id"]["value"])
            with self.lock:
                w = next(
                    (
                        w
                        for w in self.wanted
                        if (w.host is None or w.host == host) and w.avoid != host
                    ),
                    None,
                )
                if w is not None:
                    self.wanted.remove(w)
            # a call a master refuses (503 while it loses its leadership) is dropped, as
            # libmesos' driver drops it, not raised in pymesos' event thread (which would
            # die); a launch so dropped is wanted again
            try:
                if w is None:
                    driver.declineOffer(offer["id"], {"refuse_seconds": 0.5})
                else:
                    driver.launchTasks(offer["id"], [self._task(offer, w)])
            except (RuntimeError, OSError):
                if w is not None:
                    with self.lock:
                        self.wanted.append(w)

    def launch(self, task_id: str, marker: str, host: str | None, avoid: str | None = None) -> None:
        with self.lock:
            self.wanted.append(_Wanted(task_id, marker, host, avoid))
        if self.fw is not None:
            self.fw.driver.reviveOffers()

    def states(self, task_id: str) -> list[str]:
        assert self.fw is not None
        return list(self.fw.recorder.states(task_id))

    def kill(self, task_id: str) -> None:
        if self.fw is not None:
            self.fw.driver.killTask({"value": task_id})

    def back_to_running(self, task_id: str) -> bool:
        """The lost task reported TASK_RUNNING again after TASK_LOST (must not)."""
        st = self.states(task_id)
        return "TASK_LOST" in st and "TASK_RUNNING" in st[st.index("TASK_LOST") :]
