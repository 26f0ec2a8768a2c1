"""The node table seen as Mesos agents: which rows are agents, what they have free, which
ports they can offer, and their attributes.

The allocator (``offers/allocator.py``) and its reports (``offers/report.py``) read the
scheduler's ``NodeTable`` only through this view, so the Kubernetes-to-Mesos mapping is
in one place: an agent is a node that is neither cordoned nor tainted NoSchedule or
NoExecute (PreferNoSchedule still schedules), its agent id is the node name, free is
allocatable minus requested (pods and offer holds alike), its free pod slots (what an
offer advertises as the ``pods`` resource) allocatable pods minus the pods placed (offer
holds take none), and attributes are the node's
labels as Mesos TEXT attributes. Whole-table answers are numpy arrays computed at once;
per-row answers (ports, attributes) are asked only for rows about to be offered.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from corral.offers.resources import Ranges, normalize_ranges, ports_to_ranges, subtract_ranges
from corral.scheduler.framework import Mask
from corral.scheduler.snapshot import NodeTable

#: taint effects that keep a node out of the agents
BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")

Attributes = tuple[dict[str, Any], ...]


class AgentView:
    """See the module docstring; reads ``table``, never writes it."""

    def __init__(self, table: NodeTable, port_range: tuple[int, int]) -> None:
        self.table = table
        lo, hi = port_range
        self.port_range: Ranges = normalize_ranges([(lo, hi)]) if lo <= hi else ()
        self._attrs: dict[str, tuple[dict[str, str], Attributes]] = {}

    def mask(self) -> Mask:
        """Rows that are agents: schedulable, not tainted NoSchedule/NoExecute, with room
        for another pod (a task is a pod: a node at its pods limit has nothing to offer)."""
        t = self.table
        mask: Mask = ~t.unschedulable
        pods = t.allocatable[:, 3]
        mask &= (pods <= 0) | (t.requested[:, 3] < pods)
        for sig, rows in t.taint_groups().items():
            if any(effect in BLOCKING_EFFECTS for _, _, effect in sig):
                mask[rows] = False
        return mask

    def free(self) -> npt.NDArray[np.int64]:
        """Allocatable minus requested, cpu/mem/disk columns, every row (may be < 0)."""
        t = self.table
        free: npt.NDArray[np.int64] = t.allocatable[:, :3] - t.requested[:, :3]
        return free

    def pod_room(self, row: int) -> int | None:
        """How many more pods the row's node takes now (None: it has no pods limit)."""
        t = self.table
        limit = int(t.allocatable[row, 3])
        if limit <= 0:
            return None
        return max(0, limit - int(t.requested[row, 3]))

    def ports(self, row: int, offered: Iterable[Ranges] = ()) -> Ranges:
        """The port range minus the host ports of the row's pods and ``offered`` ranges."""
        used = self.table.used_ports[row]
        cut = [r for ranges in offered for r in ranges]
        if not used and not cut:
            return self.port_range
        cut.extend(ports_to_ranges(p for _, _, p in used))
        return subtract_ranges(self.port_range, cut)

    def attributes(self, row: int, agent: str) -> Attributes:
        """Node labels as Mesos TEXT attributes, cached while the labels are unchanged
        (the table replaces a node's labels dict when they change)."""
        labels = self.table.labels[row]
        cached = self._attrs.get(agent)
        if cached is not None and cached[0] is labels:
            return cached[1]
        attrs = tuple({"name": k, "type": "TEXT", "text": {"value": v}} for k, v in labels.items())
        if len(self._attrs) > 2 * len(self.table) + 64:  # nodes went away: drop theirs
            self._attrs = {a: c for a, c in self._attrs.items() if self.table.row(a) is not None}
        self._attrs[agent] = (labels, attrs)
        return attrs
