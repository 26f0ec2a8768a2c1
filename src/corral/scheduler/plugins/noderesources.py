"""NodeResourcesFit (filter; LeastAllocated or MostAllocated score) and
NodeResourcesBalancedAllocation (score).

Registered in the plugin registry; run by ``scheduler.decide``. Everything is numpy over
the candidate rows, gathered once (``take``) and then taken column by column: numpy's
per-call cost, not the arithmetic, is what a few hundred rows pay, and its operations
over a short inner axis (a row's cpu and memory) are the slowest of all.

- fit: ``pods + 1 <= allocatable pods``, then each of cpu, memory and ephemeral-storage
  the pod requests must be ``<= allocatable - requested`` (a node can fail several);
- LeastAllocated: ``(allocatable - requested) * 100 // allocatable`` per resource, and
  MostAllocated ``requested * 100 // allocatable``, averaged over cpu and memory (equal
  weights); ``requested`` here counts 100m / 200Mi for containers that request nothing,
  as Kubernetes does, so that best-effort pods still spread;
- BalancedAllocation: ``(1 - |cpu fraction - memory fraction| / 2) * 100`` with the real
  requests, fractions capped at 1.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from corral.scheduler.framework import (
    CPU,
    EPHEMERAL,
    MEMORY,
    PODS,
    RESOURCES,
    Failure,
    Index,
    NodeTableView,
    PodInfo,
    Scores,
    register,
)

TOO_MANY_PODS = "Too many pods"
INSUFFICIENT = {r: f"Insufficient {r}" for r in RESOURCES[:3]}
LEAST_ALLOCATED = "LeastAllocated"
MOST_ALLOCATED = "MostAllocated"


def _all_positive(*columns: npt.NDArray[np.int64]) -> bool:
    """Whether every value is > 0 (``count_nonzero`` is numpy's cheap whole-array test)."""
    return all(np.count_nonzero(c > 0) == len(c) for c in columns)


@register
class NodeResourcesFit:
    name: ClassVar[str] = "NodeResourcesFit"
    resolvable: ClassVar[frozenset[str]] = frozenset({TOO_MANY_PODS, *INSUFFICIENT.values()})

    def __init__(self, strategy: str = LEAST_ALLOCATED) -> None:
        if strategy not in (LEAST_ALLOCATED, MOST_ALLOCATED):
            raise ValueError(f"unknown scoring strategy {strategy!r}")
        self.strategy = strategy

    @classmethod
    def from_profile(cls, profile: Any) -> NodeResourcesFit:
        return cls(profile.scoring_strategy)

    def filter(self, pod: PodInfo, table: NodeTableView, candidates: Index) -> list[Failure]:
        want = pod.requests
        # one (candidates x resources) comparison; ``take`` is numpy's cheap row gather
        free = table.allocatable.take(candidates, axis=0)
        free -= table.requested.take(candidates, axis=0)
        short = free < want
        if want[PODS] != 1:  # (a pod's own count is 1: one more must fit)
            short[:, PODS] = free[:, PODS] < 1
        out: list[Failure] = []
        if not short.any():  # (whole-array reductions: numpy's per-axis ones are slow)
            return out
        if short[:, PODS].any():
            out.append(Failure(TOO_MANY_PODS, short[:, PODS]))
        for col in (CPU, MEMORY, EPHEMERAL):
            if want[col] > 0 and short[:, col].any():
                out.append(Failure(INSUFFICIENT[RESOURCES[col]], short[:, col]))
        return out

    def score(self, pod: PodInfo, table: NodeTableView, feasible: Index) -> Scores:
        # rows gathered at once, then column by column: numpy is slow over a short inner
        # axis (a row's cpu and memory)
        rows = table.allocatable.take(feasible, axis=0)
        cpu, mem = rows[:, CPU], rows[:, MEMORY]
        nz = table.nonzero_requested.take(feasible, axis=0)
        if _all_positive(cpu, mem):  # every node has cpu and memory: both weigh, no guards
            total = self._per_resource(cpu, nz[:, 0] + pod.nonzero_requests[0])
            total += self._per_resource(mem, nz[:, 1] + pod.nonzero_requests[1])
            total //= 2
            return total.astype(np.float64)
        alloc = rows[:, [CPU, MEMORY]]
        req = nz + pod.nonzero_requests
        has = alloc > 0
        safe = np.where(has, alloc, 1)
        if self.strategy == LEAST_ALLOCATED:
            per = np.where(req > alloc, 0, ((alloc - req) * 100) // safe)
        else:
            per = (np.minimum(req, alloc) * 100) // safe
        per = np.where(has, per, 0)
        weights = has.sum(axis=1)
        total = per.sum(axis=1)
        return np.where(weights > 0, total // np.maximum(weights, 1), 0).astype(np.float64)

    def _per_resource(
        self, alloc: npt.NDArray[np.int64], req: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        """One resource's score per node (``alloc`` > 0 everywhere)."""
        if self.strategy == LEAST_ALLOCATED:
            per = alloc - req
            np.maximum(per, 0, out=per)
        else:
            per = np.minimum(req, alloc)
        per *= 100
        per //= alloc
        return per


def balanced_scores(
    alloc: npt.NDArray[np.int64], requested: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Per row of (cpu, memory) allocatable and requested: the BalancedAllocation score."""
    has = alloc > 0
    frac = np.minimum(requested / np.where(has, alloc, 1), 1.0)
    both = has.all(axis=1)
    std = np.where(both, np.abs(frac[:, 0] - frac[:, 1]) / 2, 0.0)
    out: npt.NDArray[np.float64] = np.floor((1 - std) * 100)
    return out


@register
class NodeResourcesBalancedAllocation:
    name: ClassVar[str] = "NodeResourcesBalancedAllocation"

    def score(self, pod: PodInfo, table: NodeTableView, feasible: Index) -> Scores:
        rows = table.allocatable.take(feasible, axis=0)
        used = table.requested.take(feasible, axis=0)
        cpu, mem = rows[:, CPU], rows[:, MEMORY]
        if not _all_positive(cpu, mem):  # a node lacks one: the general form
            cols = [CPU, MEMORY]
            return balanced_scores(rows[:, cols], used[:, cols] + pod.requests[cols])
        # column by column (see NodeResourcesFit.score), the same float operations
        cpu_frac = used[:, CPU] + pod.requests[CPU]
        cpu_frac = np.minimum(cpu_frac / cpu, 1.0)
        mem_frac = used[:, MEMORY] + pod.requests[MEMORY]
        mem_frac = np.minimum(mem_frac / mem, 1.0)
        std = np.abs(cpu_frac - mem_frac)
        std /= 2
        out: Scores = np.floor((1 - std) * 100)
        return out
