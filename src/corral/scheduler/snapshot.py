"""The scheduler's node table: capacity, usage, labels and taints of every node, in arrays.

Called by the scheduler loop (and the offer allocator, which shares this accounting):
it feeds node and pod events in (``upsert_node``, ``remove_node``, ``add_pod``,
``remove_pod``), and ``decide``/``find_preemption`` read the table through
``framework.NodeTableView``. Updates are incremental and O(1) amortised: the numpy
buffers grow geometrically, a removed node's row is filled by the last row (swap
remove), and caches (nodes by label value, nodes by taint set) are rebuilt lazily only
after the labels or taints they summarise changed.

Only non-terminal pods should be added (``is_terminal`` tells); a pod bound to a node the
table does not know yet is kept aside and accounted when that node arrives, as
Kubernetes' scheduler cache does.

``pod_info`` parses a pod once: its effective requests as Kubernetes computes them
(``max(sum of containers, each init container) + overhead``, restartable init
containers counted with the containers, limits standing in for missing requests).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from corral.api.quantity import request_amount as _amount
from corral.api.volumes import LOCAL_PATH_ROOT
from corral.scheduler.framework import RESOURCES, Index, Mask, Obj, PodInfo

#: Kubernetes' scoring defaults for a container that requests no cpu / memory
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024

_NR = len(RESOURCES)
_TAINT_EFFECTS = ("NoSchedule", "NoExecute", "PreferNoSchedule")
_OVERHEAD_COLUMNS = frozenset(RESOURCES[:3])


def _container_requests(c: Obj) -> tuple[int, int, int, int, int]:
    """(cpu, memory, ephemeral-storage requests, then cpu and memory with the scoring
    defaults for what is not requested) of one container."""
    res = c.get("resources") or {}
    req = res.get("requests") or {}
    limits = res.get("limits")
    if limits:
        req = dict(req)
        for k, v in limits.items():
            req.setdefault(k, v)  # the defaulting rule: a limit alone is also the request
    cpu = _amount("cpu", req["cpu"]) if "cpu" in req else 0
    mem = _amount("memory", req["memory"]) if "memory" in req else 0
    eph = (
        _amount("ephemeral-storage", req["ephemeral-storage"]) if "ephemeral-storage" in req else 0
    )
    return (
        cpu,
        mem,
        eph,
        cpu if "cpu" in req else DEFAULT_MILLI_CPU,
        mem if "memory" in req else DEFAULT_MEMORY,
    )


def _effective(spec: Obj) -> tuple[list[int], list[int]]:
    """(requests per RESOURCES column with pods 0, non-zero cpu/memory) of a pod spec."""
    width = 5  # cpu, memory, ephemeral-storage, non-zero cpu, non-zero memory
    total = [0] * width
    for c in spec.get("containers") or ():
        r = _container_requests(c)
        total = [a + b for a, b in zip(total, r, strict=True)]
    inits = spec.get("initContainers")
    if inits:
        restartable = [0] * width
        init_max = [0] * width
        for c in inits:
            r = _container_requests(c)
            if c.get("restartPolicy") == "Always":  # a sidecar runs beside everything after it
                restartable = [a + b for a, b in zip(restartable, r, strict=True)]
                init_max = [max(m, s) for m, s in zip(init_max, restartable, strict=True)]
            else:
                init_max = [max(m, a + b) for m, a, b in zip(init_max, r, restartable, strict=True)]
        total = [max(a + b, m) for a, b, m in zip(total, restartable, init_max, strict=True)]
    out, nonzero = [*total[:3], 0], total[3:]
    overhead = spec.get("overhead")
    if overhead:
        for k, v in overhead.items():
            if k in _OVERHEAD_COLUMNS:
                amount = _amount(k, v)
                out[RESOURCES.index(k)] += amount
                if k in ("cpu", "memory"):
                    nonzero[RESOURCES.index(k)] += amount
    return out, nonzero


def _host_ports(spec: Obj) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    containers = list(spec.get("containers") or [])
    containers += [
        c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"
    ]
    for c in containers:
        for p in c.get("ports") or []:
            port = p.get("hostPort") or 0
            if isinstance(port, int) and port > 0:
                out.append((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", port))
    return out


def pod_info(pod: Obj) -> PodInfo:
    """Parse ``pod`` once for the plugins (see module docstring for the request rules)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    requests, nonzero = _effective(spec)
    requests[3] = 1
    return PodInfo(
        obj=pod,
        key=f"{meta.get('namespace', '')}/{meta.get('name', '')}",
        uid=meta.get("uid", ""),
        namespace=meta.get("namespace", ""),
        labels=dict(meta.get("labels") or {}),
        requests=np.array(requests, dtype=np.int64),
        priority=int(spec.get("priority") or 0),
        node_name=spec.get("nodeName") or "",
        node_selector=dict(spec.get("nodeSelector") or {}),
        affinity=dict(spec.get("affinity") or {}),
        tolerations=list(spec.get("tolerations") or []),
        host_ports=_host_ports(spec),
        spread=list(spec.get("topologySpreadConstraints") or []),
        scheduler_name=spec.get("schedulerName") or "default-scheduler",
        preemption_policy=spec.get("preemptionPolicy") or "PreemptLowerPriority",
        nonzero_requests=np.array(nonzero, dtype=np.int64),
        start_time=(pod.get("status") or {}).get("startTime") or "",
        claims=_claims(spec),
    )


def _claims(spec: Obj) -> tuple[str, ...]:
    """The claim names of ``spec.volumes`` (what the VolumeBinding plugin resolves)."""
    vols = spec.get("volumes")
    if not vols:
        return ()
    return tuple(
        str(v["persistentVolumeClaim"].get("claimName", ""))
        for v in vols
        if v.get("persistentVolumeClaim") is not None
    )


def is_terminal(pod: Obj) -> bool:
    """A Succeeded or Failed pod holds no resources."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def has_required_anti_affinity(pod: PodInfo) -> bool:
    anti = pod.affinity.get("podAntiAffinity") or {}
    return bool(anti.get("requiredDuringSchedulingIgnoredDuringExecution"))


@dataclass
class Cursor:
    """What ``decide`` carries from one pod to the next: where the next partial scan
    of the nodes starts (``percentageOfNodesToScore``) and the tie-breaking RNG."""

    next_start: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(0))


class NodeTable:
    """One row per node; see the module docstring. Implements ``framework.NodeTableView``."""

    def __init__(self, capacity: int = 64) -> None:
        cap = max(1, capacity)
        self._alloc = np.zeros((cap, _NR), dtype=np.int64)
        self._req = np.zeros((cap, _NR), dtype=np.int64)
        self._nz = np.zeros((cap, 2), dtype=np.int64)
        self._unsched = np.zeros(cap, dtype=np.bool_)
        self._n = 0
        self.names: list[str] = []
        self.labels: list[dict[str, str]] = []
        self.taints: list[list[Obj]] = []
        self.used_ports: list[set[tuple[str, str, int]]] = []
        self.local_path_nodes: set[str] = set()  # nodes annotated with LOCAL_PATH_ROOT
        self._pods: list[dict[str, PodInfo]] = []
        self._rows: dict[str, int] = {}
        self._pod_node: dict[str, str] = {}  # pod key -> node name (known or not)
        self._waiting: dict[str, dict[str, PodInfo]] = {}  # node name -> pods bound there
        self._anti: dict[str, PodInfo] = {}  # placed pods with required anti-affinity
        self._label_cache: dict[str, dict[str, Index]] = {}
        self._taint_cache: dict[tuple[tuple[str, str, str], ...], Index] | None = None
        self.cursor = Cursor()
        #: told of every pod accounted (+1) or released (-1), with the node it is on: the
        #: offer allocator charges pods to roles and frameworks through it
        self.pod_listeners: list[Callable[[PodInfo, str, int], None]] = []
        self._views()

    # -- views -------------------------------------------------------------------------

    def _views(self) -> None:
        n = self._n
        self.allocatable: npt.NDArray[np.int64] = self._alloc[:n]
        self.requested: npt.NDArray[np.int64] = self._req[:n]
        self.nonzero_requested: npt.NDArray[np.int64] = self._nz[:n]
        self.unschedulable: Mask = self._unsched[:n]

    def _grow(self) -> None:
        cap = self._alloc.shape[0] * 2
        for attr in ("_alloc", "_req", "_nz", "_unsched"):
            old = getattr(self, attr)
            new = np.zeros((cap, *old.shape[1:]), dtype=old.dtype)
            new[: self._n] = old[: self._n]
            setattr(self, attr, new)

    def __len__(self) -> int:
        return self._n

    def row(self, name: str) -> int | None:
        return self._rows.get(name)

    def free(self, row: int) -> npt.NDArray[np.int64]:
        """Allocatable minus requested of one node (a copy), per RESOURCES column."""
        free: npt.NDArray[np.int64] = self._alloc[row] - self._req[row]
        return free

    def pods_on(self, row: int) -> list[PodInfo]:
        return list(self._pods[row].values())

    def all_pods(self) -> list[tuple[int, PodInfo]]:
        return [(r, p) for r, pods in enumerate(self._pods) for p in pods.values()]

    def pods_with_anti_affinity(self) -> list[tuple[int, PodInfo]]:
        out = []
        for key, p in self._anti.items():
            r = self._rows.get(self._pod_node[key])
            if r is not None:
                out.append((r, p))
        return out

    def node_of(self, key: str) -> str | None:
        """The node a placed pod is accounted on (known or still waiting for its node)."""
        return self._pod_node.get(key)

    def rows_with_label(self, key: str) -> dict[str, Index]:
        cached = self._label_cache.get(key)
        if cached is None:
            groups: dict[str, list[int]] = {}
            for r, lbl in enumerate(self.labels):
                v = lbl.get(key)
                if v is not None:
                    groups.setdefault(v, []).append(r)
            cached = {v: np.array(rows, dtype=np.intp) for v, rows in groups.items()}
            self._label_cache[key] = cached
        return cached

    def taint_groups(self) -> dict[tuple[tuple[str, str, str], ...], Index]:
        if self._taint_cache is None:
            groups: dict[tuple[tuple[str, str, str], ...], list[int]] = {}
            for r, taints in enumerate(self.taints):
                if taints:
                    sig = tuple(
                        (t.get("key", ""), t.get("value", ""), t.get("effect", "")) for t in taints
                    )
                    groups.setdefault(sig, []).append(r)
            self._taint_cache = {s: np.array(rows, dtype=np.intp) for s, rows in groups.items()}
        return self._taint_cache

    # -- nodes -------------------------------------------------------------------------

    def upsert_node(self, node: Obj) -> None:
        """Add a node or refresh its allocatable, labels, taints and cordon flag."""
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        name = meta.get("name", "")
        resources = status.get("allocatable") or status.get("capacity") or {}
        alloc = [_amount(r, resources[r]) if r in resources else 0 for r in RESOURCES]
        labels = dict(meta.get("labels") or {})
        taints = [
            {"key": t.get("key", ""), "value": t.get("value", ""), "effect": t.get("effect", "")}
            for t in spec.get("taints") or []
        ]
        r = self._rows.get(name)
        if r is None:
            if self._n == self._alloc.shape[0]:
                self._grow()
            r = self._n
            self._n += 1
            self._rows[name] = r
            self.names.append(name)
            self.labels.append(labels)
            self.taints.append(taints)
            self.used_ports.append(set())
            self._pods.append({})
            self._req[r] = 0
            self._nz[r] = 0
            self._label_cache.clear()
            self._taint_cache = None
            self._views()
            for p in self._waiting.pop(name, {}).values():
                self._account(r, p, 1)
        else:
            if self.labels[r] != labels:
                self.labels[r] = labels
                self._label_cache.clear()
            if self.taints[r] != taints:
                self.taints[r] = taints
                self._taint_cache = None
        self._alloc[r] = alloc
        self._unsched[r] = bool(spec.get("unschedulable"))
        if (meta.get("annotations") or {}).get(LOCAL_PATH_ROOT):
            self.local_path_nodes.add(name)
        else:
            self.local_path_nodes.discard(name)

    def remove_node(self, name: str) -> None:
        """Drop a node; its pods wait (still accounted to that name) for it to come back."""
        self.local_path_nodes.discard(name)
        r = self._rows.pop(name, None)
        if r is None:
            return
        if self._pods[r]:
            self._waiting[name] = self._pods[r]
        last = self._n - 1
        if r != last:
            for arr in (self._alloc, self._req, self._nz, self._unsched):
                arr[r] = arr[last]
            self.names[r] = self.names[last]
            self.labels[r] = self.labels[last]
            self.taints[r] = self.taints[last]
            self.used_ports[r] = self.used_ports[last]
            self._pods[r] = self._pods[last]
            self._rows[self.names[r]] = r
        self.names.pop()
        self.labels.pop()
        self.taints.pop()
        self.used_ports.pop()
        self._pods.pop()
        self._n = last
        self._label_cache.clear()
        self._taint_cache = None
        self._views()

    # -- pods --------------------------------------------------------------------------

    def _account(self, r: int, pod: PodInfo, sign: int) -> None:
        self._req[r] += sign * pod.requests
        self._nz[r] += sign * pod.nonzero_requests
        if sign > 0:
            self._pods[r][pod.key] = pod
            self.used_ports[r].update(pod.host_ports)
        else:
            self._pods[r].pop(pod.key, None)
            if pod.host_ports:
                ports: set[tuple[str, str, int]] = set()
                for other in self._pods[r].values():
                    ports.update(other.host_ports)
                self.used_ports[r] = ports

    def add_pod(self, pod: PodInfo, node: str) -> None:
        """Account ``pod`` (non-terminal) on ``node``; re-adding a pod replaces it."""
        if pod.key in self._pod_node:
            self.remove_pod(pod.key)
        self._pod_node[pod.key] = node
        for listener in self.pod_listeners:
            listener(pod, node, 1)
        if has_required_anti_affinity(pod):
            self._anti[pod.key] = pod
        r = self._rows.get(node)
        if r is None:
            self._waiting.setdefault(node, {})[pod.key] = pod
        else:
            self._account(r, pod, 1)

    def remove_pod(self, key: str) -> PodInfo | None:
        """Stop accounting a pod (deleted, terminal or unbound); returns what was removed."""
        node = self._pod_node.pop(key, None)
        if node is None:
            return None
        self._anti.pop(key, None)
        r = self._rows.get(node)
        if r is None:
            waiting = self._waiting.get(node, {})
            pod = waiting.pop(key, None)
            if not waiting:
                self._waiting.pop(node, None)
        else:
            pod = self._pods[r].get(key)
            if pod is not None:
                self._account(r, pod, -1)
        if pod is not None:
            for listener in self.pod_listeners:
                listener(pod, node, -1)
        return pod
