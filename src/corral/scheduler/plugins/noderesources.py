"""NodeResourcesFit (filter; LeastAllocated or MostAllocated score) and
NodeResourcesBalancedAllocation (score).

Registered in the plugin registry; run by ``scheduler.decide``. Everything is one numpy
expression over the candidate rows:

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
        alloc = table.allocatable[candidates]
        req = table.requested[candidates]
        out = []
        too_many = req[:, PODS] + 1 > alloc[:, PODS]
        if too_many.any():
            out.append(Failure(TOO_MANY_PODS, too_many))
        for col in (CPU, MEMORY, EPHEMERAL):
            want = int(pod.requests[col])
            if want > 0:
                short = want > alloc[:, col] - req[:, col]
                if short.any():
                    out.append(Failure(INSUFFICIENT[RESOURCES[col]], short))
        return out

    def score(self, pod: PodInfo, table: NodeTableView, feasible: Index) -> Scores:
        alloc = table.allocatable[feasible][:, [CPU, MEMORY]]
        req = table.nonzero_requested[feasible] + pod.nonzero_requests
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
        cols = [CPU, MEMORY]
        alloc = table.allocatable[feasible][:, cols]
        req = table.requested[feasible][:, cols] + pod.requests[cols]
        return balanced_scores(alloc, req)
