"""The scheduling queue: which pending pod the scheduler tries next, and when.

Sans-I/O (time comes from an injected ``Clock``); ``scheduler.Scheduler`` feeds it pod
and cluster events and pops from it. Three places a pod can wait, as in Kubernetes'
PriorityQueue::

        add ──► active ──pop──► in flight ──done──► (forgotten: bound or gone)
                  ▲  ▲              │  │
                  │  └── back-off ◄─┘  └──► unschedulable
                  │       (timer)  backoff      │ (no node fits)
                  └─────────────────────────────┘
                    cluster event (node added/changed, pod deleted) or 5 minutes

- **active**: a heap ordered by priority (higher first), then by when the pod was
  first queued (older first).
- **back-off**: pods whose last attempt failed wait 1 s, doubling per attempt to 10 s
  (``podInitialBackoff``/``podMaxBackoff``) before going back to active.
- **unschedulable**: pods no node fits wait for a cluster event that may help
  (``move_all``); they go back after 5 minutes regardless. A pod that failed while an
  event arrived during its attempt goes to back-off instead, so the event is not lost.

A key is queued once (``add`` of a queued pod updates it in place); ``delete`` drops it
wherever it is. Heaps are lazy: stale entries are skipped when they surface.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from corral.util.clock import Clock

Obj = dict[str, Any]

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0
MAX_UNSCHEDULABLE = 300.0

ACTIVE, BACKOFF, UNSCHEDULABLE, IN_FLIGHT = "active", "backoff", "unschedulable", "in-flight"


@dataclass
class QueuedPod:
    """One pending pod as the queue holds it (``pod`` is the latest object seen)."""

    key: str
    pod: Obj
    priority: int
    #: when the pod was first queued (the tie-break within a priority)
    queued_at: float
    attempts: int = 0
    where: str = ACTIVE
    #: when its back-off ends (back-off) or when it was parked (unschedulable)
    since: float = 0.0
    #: the move counter when it was popped (see ``unschedulable``)
    popped_at_move: int = 0
    seq: int = field(default=0)


class SchedulingQueue:
    """Active, back-off and unschedulable pods, de-duplicated by key."""

    def __init__(
        self,
        clock: Clock,
        *,
        initial_backoff: float = INITIAL_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        max_unschedulable: float = MAX_UNSCHEDULABLE,
    ) -> None:
        self.clock = clock
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable = max_unschedulable
        self.pods: dict[str, QueuedPod] = {}
        self._active: list[tuple[int, float, int, str]] = []
        self._backoff: list[tuple[float, int, str]] = []
        #: unschedulable keys -> when parked, in the order parked (so oldest first)
        self._parked: dict[str, float] = {}
        self._counter = itertools.count(1)
        #: bumped by every ``move_all``; an attempt that saw none parks as unschedulable
        self.moves = 0

    # --- feeding ----------------------------------------------------------------------------
    def add(self, key: str, pod: Obj, priority: int = 0) -> None:
        """A pending pod appeared or changed. A changed unschedulable pod is retried."""
        q = self.pods.get(key)
        if q is None:
            q = QueuedPod(key, pod, priority, self.clock.monotonic())
            self.pods[key] = q
            self._to_active(q)
            return
        changed = _spec_changed(q.pod, pod)
        q.pod = pod
        if q.where == ACTIVE and priority != q.priority:
            q.priority = priority
            self._to_active(q)
        q.priority = priority
        if q.where == UNSCHEDULABLE and changed:
            self._requeue(q)

    update = add

    def delete(self, key: str) -> None:
        """The pod is gone or no longer ours (bound, deleted, other scheduler)."""
        self.pods.pop(key, None)
        self._parked.pop(key, None)

    def move_all(self) -> None:
        """A cluster event that may make unschedulable pods fit (node added or changed,
        pod deleted or finished): retry them, respecting their back-off."""
        self.moves += 1
        for key in list(self._parked):
            self._requeue(self.pods[key])

    def move_matching(self, wanted: Callable[[Obj], bool]) -> None:
        """A cluster event that concerns only some pods (a claim, volume or class
        changed: pods with claims): retry the parked pods ``wanted`` accepts."""
        self.moves += 1
        for key in [k for k in self._parked if wanted(self.pods[k].pod)]:
            self._requeue(self.pods[key])

    # --- attempts ------------------------------------------------------------------------
    def pop(self) -> QueuedPod | None:
        """The next pod to try (highest priority, oldest), now in flight; None if none."""
        self.flush()
        while self._active:
            _, _, seq, key = heapq.heappop(self._active)
            q = self.pods.get(key)
            if q is None or q.seq != seq or q.where != ACTIVE:
                continue
            q.where = IN_FLIGHT
            q.attempts += 1
            q.popped_at_move = self.moves
            return q
        return None

    def done(self, key: str) -> None:
        """The attempt placed the pod (assumed and binding): forget it."""
        self.delete(key)

    def backoff(self, key: str) -> None:
        """The attempt failed (an API error, a lost binding race): retry after back-off."""
        q = self.pods.get(key)
        if q is not None:
            self._to_backoff(q)

    def unschedulable(self, key: str) -> None:
        """No node fits: wait for a cluster event, unless one came during the attempt."""
        q = self.pods.get(key)
        if q is None:
            return
        if q.where == IN_FLIGHT and q.popped_at_move != self.moves:
            self._to_backoff(q)
            return
        q.where = UNSCHEDULABLE
        q.since = self.clock.monotonic()
        q.seq = next(self._counter)
        self._parked.pop(key, None)
        self._parked[key] = q.since

    # --- time ------------------------------------------------------------------------------
    def flush(self) -> None:
        """Move back-off pods whose time came, and pods parked too long, to active."""
        now = self.clock.monotonic()
        while self._backoff and self._backoff[0][0] <= now:
            _, seq, key = heapq.heappop(self._backoff)
            q = self.pods.get(key)
            if q is not None and q.seq == seq and q.where == BACKOFF:
                self._to_active(q)
        for key, since in list(self._parked.items()):
            if now - since < self.max_unschedulable:
                break
            self._requeue(self.pods[key])

    def next_due(self) -> float | None:
        """Monotonic time of the next back-off end or unschedulable timeout (None: none)."""
        due = [t for t, _, _ in self._backoff[:1]]
        due += [
            since + self.max_unschedulable for since in itertools.islice(self._parked.values(), 1)
        ]
        return min(due) if due else None

    def backoff_of(self, q: QueuedPod) -> float:
        """1 s doubling per attempt, at most 10 s."""
        return float(min(self.initial_backoff * 2.0 ** max(q.attempts - 1, 0), self.max_backoff))

    # --- introspection -------------------------------------------------------------------------
    def where(self, key: str) -> str | None:
        q = self.pods.get(key)
        return q.where if q is not None else None

    def counts(self) -> dict[str, int]:
        out = {ACTIVE: 0, BACKOFF: 0, UNSCHEDULABLE: 0, IN_FLIGHT: 0}
        for q in self.pods.values():
            out[q.where] += 1
        return out

    def has_active(self) -> bool:
        """Whether ``pop`` would return a pod now."""
        self.flush()
        while self._active:
            _, _, seq, key = self._active[0]
            q = self.pods.get(key)
            if q is not None and q.seq == seq and q.where == ACTIVE:
                return True
            heapq.heappop(self._active)
        return False

    def __len__(self) -> int:
        return len(self.pods)

    def __contains__(self, key: object) -> bool:
        return key in self.pods

    # --- moves -----------------------------------------------------------------------------------
    def _to_active(self, q: QueuedPod) -> None:
        q.where = ACTIVE
        q.seq = next(self._counter)
        heapq.heappush(self._active, (-q.priority, q.queued_at, q.seq, q.key))

    def _to_backoff(self, q: QueuedPod) -> None:
        q.where = BACKOFF
        q.seq = next(self._counter)
        q.since = self.clock.monotonic() + self.backoff_of(q)
        heapq.heappush(self._backoff, (q.since, q.seq, q.key))

    def _requeue(self, q: QueuedPod) -> None:
        """Out of unschedulable: to back-off if its back-off is not over, else active."""
        self._parked.pop(q.key, None)
        ends = q.since + self.backoff_of(q) if q.where == UNSCHEDULABLE else 0.0
        if q.attempts and ends > self.clock.monotonic():
            q.where = BACKOFF
            q.seq = next(self._counter)
            q.since = ends
            heapq.heappush(self._backoff, (ends, q.seq, q.key))
        else:
            self._to_active(q)


def _spec_changed(old: Obj, new: Obj) -> bool:
    """Whether an update may change where the pod fits (spec, labels)."""
    return old.get("spec") != new.get("spec") or (old.get("metadata") or {}).get("labels") != (
        new.get("metadata") or {}
    ).get("labels")
