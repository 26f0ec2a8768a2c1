"""Pod admission: default toleration seconds, priority resolution and the binding guard.

- ``DefaultTolerationSeconds.admit`` is a pod write hook doing what Kubernetes'
  DefaultTolerationSeconds admission plugin does: a pod created without a toleration of
  ``node.kubernetes.io/not-ready:NoExecute`` (or ``unreachable``) gets one, operator
  Exists, with ``tolerationSeconds`` from ``corral server
  --default-not-ready-toleration-seconds`` / ``--default-unreachable-toleration-seconds``
  (300 each). A toleration with an empty key or empty effect counts as one. The taint
  eviction controller then deletes the pod that long after its node became NotReady or
  unreachable. Upstream also runs it on updates; here updates are left alone because the
  hook runs after update validation and field ownership (a pod keeps what it was
  created with, and pod updates may not remove tolerations).
- ``PriorityAdmission.admit`` is a pod write hook (``registry.write_hooks[("",
  "pods")]``) doing what Kubernetes' Priority admission plugin does on create: a pod
  naming ``priorityClassName`` gets that class's ``value`` as ``spec.priority`` and its
  ``preemptionPolicy`` (403 ``no PriorityClass with name X was found`` when it does not
  exist); a pod naming none gets the ``globalDefault`` class, if any. Updates are left
  alone (the pod spec is immutable anyway).
- ``NodeUsage`` keeps, per node, the summed requests of the non-terminal pods bound to
  it, updated from the watch cache's change listener, so that ``NodeUsage.reserve`` (the
  ``("", "pods/binding")`` hook run by the ``binding`` handler) can refuse, in
  O(resources), a binding that would overcommit the node. Kubernetes has no such check;
  Corral has it so that two schedulers can never double-book a node. A reservation
  covers the write in flight: two bindings racing for the last cpu see each other.

- ``DisruptionBudgets`` (the PodDisruptionBudget check at eviction) lives in
  ``disruption_budgets.py`` and is re-exported here.

The API server must not import the scheduler (sibling layers), so pod requests are
computed here from ``corral.api.quantity`` as the scheduler's NodeResourcesFit counts
them: max(sum of containers (plus restartable init containers), each init container)
plus the pod overhead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from corral.api import errors
from corral.api.quantity import request_amount as _amount
from corral.apiserver.disruption_budgets import (
    DISRUPTION_BUDGET_CAUSE as DISRUPTION_BUDGET_CAUSE,
)
from corral.apiserver.disruption_budgets import PDB_VIOLATION as PDB_VIOLATION
from corral.apiserver.disruption_budgets import TOO_MANY_REQUESTS as TOO_MANY_REQUESTS
from corral.apiserver.disruption_budgets import DisruptionBudgets as DisruptionBudgets
from corral.apiserver.disruption_budgets import desired_healthy as desired_healthy
from corral.storage.cache import DELETED, Entry, ResourceCache

Obj = dict[str, Any]
Vector = tuple[int, int, int, int]

#: the columns checked at binding, in order; cpu in millicores, the rest in units
RESOURCES = ("cpu", "memory", "ephemeral-storage", "pods")
_TERMINAL = ("Succeeded", "Failed")
_SYSTEM_CLASSES = {
    "system-cluster-critical": (2_000_000_000, "PreemptLowerPriority"),
    "system-node-critical": (2_000_001_000, "PreemptLowerPriority"),
}


# --- requests ------------------------------------------------------------------------------
def _container_requests(c: Any) -> list[int]:
    req = ((c.get("resources") or {}).get("requests") or {}) if isinstance(c, dict) else {}
    return [_amount(r, req[r]) if r in req else 0 for r in RESOURCES[:3]]


def pod_requests(pod: Obj) -> Vector:
    """The pod's effective requests (cpu millicores, memory, ephemeral-storage, pods=1)."""
    spec = pod.get("spec") or {}
    total = [0, 0, 0]
    for c in spec.get("containers") or []:
        total = [a + b for a, b in zip(total, _container_requests(c), strict=True)]
    sidecars = [0, 0, 0]
    init_max = [0, 0, 0]
    for c in spec.get("initContainers") or []:
        req = _container_requests(c)
        if isinstance(c, dict) and c.get("restartPolicy") == "Always":
            sidecars = [a + b for a, b in zip(sidecars, req, strict=True)]
            total = [a + b for a, b in zip(total, req, strict=True)]
        else:
            # a regular init container runs beside the sidecars started before it
            init_max = [max(m, r + s) for m, r, s in zip(init_max, req, sidecars, strict=True)]
    eff = [max(t, i) for t, i in zip(total, init_max, strict=True)]
    overhead = spec.get("overhead") or {}
    for i, r in enumerate(RESOURCES[:3]):
        if r in overhead:
            eff[i] += _amount(r, overhead[r])
    return (eff[0], eff[1], eff[2], 1)


def node_allocatable(node: Obj) -> Vector | None:
    """status.allocatable (else capacity) as a vector; None when the node states neither."""
    status = node.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity")
    if not isinstance(alloc, dict) or not alloc:
        return None
    big = 1 << 62
    out = [_amount(r, alloc[r]) if r in alloc else big for r in RESOURCES]
    return (out[0], out[1], out[2], out[3])


#: the internal field (``WatchCache`` entry fields, not selectable: the API accepts only the
#: strategy's selectors) in which the cache keeps each Node's ``status.allocatable`` and
#: ``status.capacity`` as JSON, computed at write time from the decoded object
ALLOCATABLE_FIELD = "__allocatable"


def _allocatable_field(node: Obj) -> str:
    status = node.get("status") or {}
    return orjson.dumps([status.get("allocatable"), status.get("capacity")]).decode()


def _format(resource: str, amount: int) -> str:
    if resource == "cpu":
        return f"{amount // 1000}" if amount % 1000 == 0 else f"{amount}m"
    return str(amount)


# --- priority ------------------------------------------------------------------------------
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
DEFAULT_TOLERATION_SECONDS = 300


class DefaultTolerationSeconds:
    """Adds the not-ready/unreachable ``NoExecute`` tolerations on pod create."""

    def __init__(
        self,
        pods: ResourceCache,
        not_ready_seconds: int = DEFAULT_TOLERATION_SECONDS,
        unreachable_seconds: int = DEFAULT_TOLERATION_SECONDS,
    ) -> None:
        self.pods = pods
        self.defaults = (
            (TAINT_NOT_READY, not_ready_seconds),
            (TAINT_UNREACHABLE, unreachable_seconds),
        )

    def admit(self, pod: Obj, key: str) -> None:
        if key in self.pods.entries:
            return None  # an update
        spec = pod.setdefault("spec", {})
        tolerations = spec.get("tolerations")
        if not isinstance(tolerations, list):
            tolerations = spec["tolerations"] = []
        have = [t for t in tolerations if isinstance(t, dict)]
        for taint_key, seconds in self.defaults:
            if not any(
                (t.get("key") or "") in (taint_key, "")
                and (t.get("effect") or "") in ("NoExecute", "")
                for t in have
            ):
                tolerations.append(
                    {
                        "key": taint_key,
                        "operator": "Exists",
                        "effect": "NoExecute",
                        "tolerationSeconds": seconds,
                    }
                )
        return None


class PriorityAdmission:
    """Resolves ``priorityClassName`` into ``spec.priority`` on pod create."""

    def __init__(self, pods: ResourceCache, classes: ResourceCache) -> None:
        self.pods = pods
        self.classes = classes

    def _class(self, name: str) -> tuple[int, str] | None:
        if name in _SYSTEM_CLASSES:
            return _SYSTEM_CLASSES[name]
        e = self.classes.entries.get(self.classes.prefix + name)
        if e is None:
            return None
        pc = e.obj()
        return int(pc.get("value") or 0), str(pc.get("preemptionPolicy") or "PreemptLowerPriority")

    def _default(self) -> tuple[str, int, str] | None:
        """The globalDefault class (the lowest-valued one if several claim it)."""
        best: tuple[str, int, str] | None = None
        for e in self.classes.entries.values():
            if b'"globalDefault":true' not in e.raw:
                continue
            pc = e.obj()
            v = int(pc.get("value") or 0)
            if best is None or v < best[1]:
                best = (e.name, v, str(pc.get("preemptionPolicy") or "PreemptLowerPriority"))
        return best

    def admit(self, pod: Obj, key: str) -> None:
        if key in self.pods.entries:
            return None  # an update: priority was resolved when the pod was created
        spec = pod.setdefault("spec", {})
        name = (pod.get("metadata") or {}).get("name", "")
        class_name = spec.get("priorityClassName") or ""
        if not class_name:
            default = self._default()
            if default is None:
                spec.setdefault("priority", 0)
                return None
            class_name, priority, policy = default
            if spec.get("priority") in (None, 0):
                spec["priority"] = priority
            spec["priorityClassName"] = class_name
        else:
            found = self._class(class_name)
            if found is None:
                raise _forbidden(name, f"no PriorityClass with name {class_name} was found")
            priority, policy = found
        if spec.get("priority") is not None and spec["priority"] != priority:
            raise _forbidden(
                name,
                f"the integer value of priority ({spec['priority']}) must not be provided in "
                f"pod spec; priority admission controller computed {priority} from the given "
                "PriorityClass name",
            )
        spec["priority"] = priority
        have = spec.get("preemptionPolicy")
        # the pod strategy defaults PreemptLowerPriority before this hook runs, so only
        # a Never the class contradicts is known to come from the user
        if have == "Never" and policy != "Never":
            raise _forbidden(
                name,
                f"the string value of PreemptionPolicy ({have}) must not be provided in pod "
                f"spec; priority admission controller computed {policy} from the given "
                "PriorityClass name",
            )
        spec["preemptionPolicy"] = policy
        return None


def _forbidden(name: str, why: str) -> errors.StatusError:
    return errors.forbidden_error(f'pods "{name}" is forbidden: {why}', "pods", "", name)


# --- binding guard -------------------------------------------------------------------------
class NodeUsage:
    """Per-node sums of bound pods' requests, and the binding check built on them."""

    def __init__(self, pods: ResourceCache, nodes: ResourceCache) -> None:
        self.pods = pods
        self.nodes = nodes
        #: pod key -> (uid, node it is counted on, requests)
        self._counted: dict[str, tuple[str, str, Vector]] = {}
        self._requests: dict[str, tuple[str, Vector]] = {}  # key -> (uid, requests)
        self.used: dict[str, list[int]] = {}
        self.reserved: dict[str, list[int]] = {}
        #: pod key -> release of its in-flight binding hold; the hold ends as soon as the
        #: cache listener counts the pod, so a pod is never counted twice (used + held)
        self._holds: dict[str, Callable[[], None]] = {}
        #: node name -> (what its allocatable was computed from, allocatable): the
        #: ``ALLOCATABLE_FIELD`` the cache keeps of each Node, so that bindings decode no
        #: Node (its status changes at every heartbeat, its allocatable rarely)
        self._allocatable: dict[str, tuple[str, Vector | None]] = {}
        nodes.field_funcs[ALLOCATABLE_FIELD] = _allocatable_field
        for e in list(pods.entries.values()):
            self._apply_pod("ADDED", e)

    # --- following the cache ----------------------------------------------------------
    def on_change(self, type_: str, entry: Entry, prev: Entry | None, rc: ResourceCache) -> None:
        """The watch cache's change listener: keep the sums of the pods resource."""
        if rc is self.pods:
            self._apply_pod(type_, entry)
        elif rc is self.nodes and type_ == DELETED:
            self._allocatable.pop(entry.name, None)

    def _apply_pod(self, type_: str, e: Entry) -> None:
        node = e.fields.get("spec.nodeName", "")
        counts = type_ != DELETED and node and e.fields.get("status.phase") not in _TERMINAL
        old = self._counted.get(e.key)
        if old is not None and (not counts or old[0] != e.uid or old[1] != node):
            self._add(old[1], old[2], -1)
            del self._counted[e.key]
            old = None
        if type_ == DELETED:
            self._requests.pop(e.key, None)
            return
        if counts and old is None:
            req = self._requests_of(e)
            self._counted[e.key] = (e.uid, node, req)
            self._add(node, req, 1)
            hold = self._holds.pop(e.key, None)
            if hold is not None:
                hold()

    def _requests_of(self, e: Entry) -> Vector:
        known = self._requests.get(e.key)
        if known is not None and known[0] == e.uid:
            return known[1]
        req = pod_requests(orjson.loads(e.raw))
        self._requests[e.key] = (e.uid, req)
        return req

    def _node_allocatable(self, node: str, entry: Entry) -> Vector | None:
        source = entry.fields.get(ALLOCATABLE_FIELD)
        # cached before NodeUsage was (no such field): known by its revision instead
        key = source or f"#{entry.revision}"
        known = self._allocatable.get(node)
        if known is not None and known[0] == key:
            return known[1]
        if source:
            alloc, capacity = orjson.loads(source)
            vector = node_allocatable({"status": {"allocatable": alloc, "capacity": capacity}})
        else:
            vector = node_allocatable(entry.obj())
        self._allocatable[node] = (key, vector)
        return vector

    def _add(self, node: str, req: Vector, sign: int) -> None:
        used = self.used.setdefault(node, [0, 0, 0, 0])
        for i, r in enumerate(req):
            used[i] += sign * r
        if not any(used):
            del self.used[node]

    # --- the binding hook ------------------------------------------------------------------
    def reserve(self, pod: Obj, key: str) -> Callable[[], None] | None:
        """Hold ``pod``'s requests on ``spec.nodeName`` for the binding write, or raise 409
        when the node cannot take them. Returns the release (call it once the write is
        done: by then the cache listener counts the pod)."""
        node = (pod.get("spec") or {}).get("nodeName") or ""
        entry = self.nodes.entries.get(self.nodes.prefix + node)
        if entry is None:
            return None  # Kubernetes binds to unknown nodes; the pod GC removes such pods
        alloc = self._node_allocatable(node, entry)
        if alloc is None:
            return None
        req = pod_requests(pod)
        used = self.used.get(node, [0, 0, 0, 0])
        held = self.reserved.get(node, [0, 0, 0, 0])
        for i, r in enumerate(req):
            if r and used[i] + held[i] + r > alloc[i]:
                res = RESOURCES[i]
                free = max(0, alloc[i] - used[i] - held[i])
                name = (pod.get("metadata") or {}).get("name", "")
                raise errors.conflict(
                    "pods/binding",
                    "",
                    name,
                    f"node {node} does not have enough {res}: the pod requests "
                    f"{_format(res, r)}, {_format(res, free)} of {_format(res, alloc[i])} is free",
                )
        held = self.reserved.setdefault(node, [0, 0, 0, 0])
        for i, r in enumerate(req):
            held[i] += r
        uid = (pod.get("metadata") or {}).get("uid")
        if uid:  # the cache listener counts the bound pod with these, not a decode of it
            self._requests[key] = (str(uid), req)
        done = False

        def release() -> None:
            nonlocal done
            if done:
                return
            done = True
            if self._holds.get(key) is release:
                del self._holds[key]
            h = self.reserved.get(node)
            if h is None:
                return
            for i, r in enumerate(req):
                h[i] -= r
            if not any(h):
                del self.reserved[node]

        self._holds[key] = release
        return release
