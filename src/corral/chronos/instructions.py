"""What the Chronos planner tells its shell to do, and the runs it keeps.

``planner.Planner`` returns these; ``service.ChronosService`` carries them out (claims
and status writes to the API server, the rest to the Mesos master through the
framework client). Plain frozen dataclasses, no behaviour: tests compare them.

Task ids are ``ct:<slot ms>:<attempt>:<job name>`` (Chronos' shape), so an update names
its job, slot and attempt without any other state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from corral.mesos.framework_calls import Decline, Kill, Launch, Revive, Suppress

Obj = dict[str, Any]

__all__ = [
    "Claim",
    "Decline",
    "Instruction",
    "Kill",
    "Launch",
    "Revive",
    "Run",
    "Suppress",
    "WriteStatus",
    "parse_task_id",
    "task_id",
]


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


@dataclass(frozen=True)
class Claim:
    """Write ``status.lastSlot = slot`` (the rewritten ``schedule`` and the fields of
    ``status``, ``openRuns`` among them) conditionally on the object's resourceVersion,
    then tell the planner ``claimed``, ``claim_lost`` (another process has the slot) or
    ``claim_failed`` (the write failed: the planner rolls back)."""

    job: str
    slot_ms: int
    schedule: str | None  # the rewritten schedule text (scheduled jobs), else None
    status: Obj = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class WriteStatus:
    """Merge ``status`` into the job's object status (and ``disable`` the job)."""

    job: str
    status: Obj
    disable: bool = False


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
    #: what set this run off, ``<job>@<slot ms>``: its own slot for a scheduled or manual
    #: run, the trigger of the parent run that released it for a dependent one
    trigger: str = ""
    #: when the planner last asked to kill it, and why ("user", "maxRunSeconds", "removed")
    killed_at: float | None = None
    kill_reason: str = ""
