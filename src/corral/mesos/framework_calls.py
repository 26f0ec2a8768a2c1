"""What a sans-I/O framework planner (Chronos', Marathon's) asks its shell to send to the
Mesos master through ``framework_client.SchedulerClient``: plain frozen dataclasses, no
behaviour, so that tests compare them.

``Launch`` is an ACCEPT of one offer with its tasks, ``Decline`` a DECLINE with its
``refuse_seconds`` filter, ``Kill`` a KILL. ``Revive`` and ``Suppress`` say what the
planner wants now (offers or none); the shell sends them one at a time so the master's
state ends as the planner's flag stands when the call is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


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
class Revive:
    """The planner wants offers."""


@dataclass(frozen=True)
class Suppress:
    """The planner wants no offers."""
