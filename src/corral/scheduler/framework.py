"""The scheduling framework: what a plugin sees and returns, and the plugin registry.

Placement is decided over a ``NodeTable`` (scheduler/snapshot.py): one row per node,
its capacity and usage held in numpy arrays, so that a filter or a score runs over all
nodes at once instead of a Python loop per node. A plugin is a small class with a
``name`` and one or both of:

- ``filter(pod, table, candidates) -> list[Failure]``: for the node rows in
  ``candidates`` (an index array), which fail and why. Each ``Failure`` is a reason
  string exactly as Kubernetes words it (``Insufficient cpu``, ``node(s) didn't match
  Pod's node affinity/selector``...) and a boolean mask aligned with ``candidates``; a
  node may fail for several reasons of the same plugin (cpu and memory).
- ``pre_filter(pod) -> str`` (optional, beside ``filter``): a non-empty message rejects
  every node at once, as Kubernetes' PreFilter does (``0/N nodes are available: msg.``);
- ``score(pod, table, feasible) -> np.ndarray``: a score in [0, 100] per row of
  ``feasible``; the framework multiplies by the plugin's weight and sums.

As in Kubernetes, filters run in order and a node is reported under the first plugin
that rejects it; scores are normalised per plugin where the plugin says so.

``PodInfo`` is the pod parsed once per scheduling attempt (requests as a vector,
selectors, tolerations, ports...). Plugins must not mutate it or the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

Obj = dict[str, Any]
Mask = npt.NDArray[np.bool_]
Index = npt.NDArray[np.intp]
Scores = npt.NDArray[np.float64]

#: resource columns of the node table, in order
RESOURCES = ("cpu", "memory", "ephemeral-storage", "pods")
CPU, MEMORY, EPHEMERAL, PODS = range(4)


@dataclass(frozen=True, slots=True)
class Failure:
    """Nodes (a mask over the candidates) that fail for ``reason``."""

    reason: str
    mask: Mask


@dataclass
class PodInfo:
    """A pod as the plugins need it, parsed once per attempt (see ``snapshot.pod_info``)."""

    obj: Obj
    key: str  # namespace/name
    uid: str
    namespace: str
    labels: dict[str, str]
    #: effective requests (cpu millicores, memory bytes, ephemeral bytes, pods=1), as
    #: Kubernetes computes them: max(sum of containers, each init container) + overhead
    requests: npt.NDArray[np.int64]
    priority: int = 0
    node_name: str = ""  # spec.nodeName requested (the NodeName plugin)
    node_selector: dict[str, str] = field(default_factory=dict)
    affinity: Obj = field(default_factory=dict)
    tolerations: list[Obj] = field(default_factory=list)
    #: (hostIP, protocol, hostPort) the pod wants
    host_ports: list[tuple[str, str, int]] = field(default_factory=list)
    spread: list[Obj] = field(default_factory=list)  # topologySpreadConstraints
    scheduler_name: str = "default-scheduler"
    preemption_policy: str = "PreemptLowerPriority"
    #: cpu millicores and memory bytes with Kubernetes' scoring defaults (100m, 200Mi)
    #: for containers that request none: what LeastAllocated/MostAllocated weigh
    nonzero_requests: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(2, dtype=np.int64)
    )
    start_time: str = ""  # status.startTime (preemption prefers younger victims)
    #: names of the PersistentVolumeClaims the pod's volumes use (empty for most pods)
    claims: tuple[str, ...] = ()
    #: those claims resolved by the scheduler for one attempt (``volumebinding.PodVolumes``)
    volumes: Any = None


class NodeTableView(Protocol):
    """What plugins may read of the node table (snapshot.NodeTable implements it)."""

    names: list[str]
    #: allocatable and requested, shape (n, len(RESOURCES)), int64
    allocatable: npt.NDArray[np.int64]
    requested: npt.NDArray[np.int64]
    #: cpu and memory requested with the scoring defaults, shape (n, 2)
    nonzero_requested: npt.NDArray[np.int64]
    unschedulable: Mask
    labels: list[dict[str, str]]
    taints: list[list[Obj]]
    #: per node, the (hostIP, protocol, hostPort) in use by its pods
    used_ports: list[set[tuple[str, str, int]]]
    #: names of the nodes whose agent keeps local-path volumes (``LOCAL_PATH_ROOT``)
    local_path_nodes: set[str]

    def pods_on(self, row: int) -> list[PodInfo]: ...

    def rows_with_label(self, key: str) -> dict[str, Index]:
        """Node rows grouped by the value of label ``key`` (nodes without it left out)."""
        ...

    def __len__(self) -> int: ...

    def row(self, name: str) -> int | None: ...

    def taint_groups(self) -> dict[tuple[tuple[str, str, str], ...], Index]:
        """Node rows grouped by their (key, value, effect) taints (untainted nodes left out)."""
        ...

    def pods_with_anti_affinity(self) -> list[tuple[int, PodInfo]]:
        """(row, pod) of the placed pods that carry required pod anti-affinity."""
        ...

    def all_pods(self) -> list[tuple[int, PodInfo]]:
        """(row, pod) of every placed pod (plugins use it only when the pod needs it)."""
        ...


class FilterPlugin(Protocol):
    """A filter; its reasons that preemption can fix (evicting lower-priority pods frees
    resources, ports, anti-affinity and spread) are listed in ``resolvable``, like the
    Unschedulable (not UnschedulableAndUnresolvable) statuses of Kubernetes."""

    name: ClassVar[str]
    resolvable: ClassVar[frozenset[str]]

    def filter(self, pod: PodInfo, table: NodeTableView, candidates: Index) -> list[Failure]: ...


class ScorePlugin(Protocol):
    name: ClassVar[str]

    def score(self, pod: PodInfo, table: NodeTableView, feasible: Index) -> Scores: ...


#: name -> plugin class; plugins register themselves with ``@register``
REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    REGISTRY[cls.name] = cls  # type: ignore[attr-defined]
    return cls


@dataclass(frozen=True)
class Profile:
    """Which plugins run, in order, and each score plugin's weight (the defaults are
    Kubernetes' default profile; a scheduler configuration file can change them)."""

    filters: tuple[str, ...] = (
        "NodeUnschedulable",
        "NodeName",
        "TaintToleration",
        "NodeAffinity",
        "NodePorts",
        "NodeResourcesFit",
        "VolumeBinding",
        "PodTopologySpread",
        "InterPodAffinity",
    )
    scores: tuple[tuple[str, int], ...] = (
        ("TaintToleration", 3),
        ("NodeAffinity", 2),
        ("NodeResourcesFit", 1),
        ("PodTopologySpread", 2),
        ("InterPodAffinity", 2),
        ("NodeResourcesBalancedAllocation", 1),
    )
    #: LeastAllocated (spread) or MostAllocated (bin-pack), NodeResourcesFit's strategy
    scoring_strategy: str = "LeastAllocated"
    #: 0 = Kubernetes' adaptive default (50% at 100 nodes down to 5% at 5,000+)
    percentage_of_nodes_to_score: int = 0
