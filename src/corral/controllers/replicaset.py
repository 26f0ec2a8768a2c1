"""ReplicaSet and ReplicationController controllers: keep ``spec.replicas`` pods running.

Run by ``ControllerManager`` (controllers/manager.py) inside ``corral server`` / ``corral
up`` or standalone ``corral controller-manager``. One shared logic serves both kinds
(``apps/v1 ReplicaSet`` with an object selector, ``v1 ReplicationController`` with a map
selector), as Kubernetes' pkg/controller/replicaset does.

``sync(key)`` for one owner, level-triggered::

    owner gone ------------------------------------> forget its expectations, done
    list the namespace's active pods (not terminating, not Succeeded/Failed)
    claim: adopt matching orphans, release owned pods that stopped matching
    expectations satisfied and owner not being deleted?
        too few  -> create min(diff, 500) pods in slow-start batches 1, 2, 4, ...
        too many -> delete the least valuable min(diff, 500) pods (``deletion_order``)
    status (/status): replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
        observedGeneration, ReplicaFailure condition while creates/deletes fail
    requeue after the time left until a ready pod counts as available (minReadySeconds)

Expectations (``Expectations``) count the creations and names the deletions in flight per
owner; until the informer has observed them (or 5 minutes passed) ``sync`` only claims and
writes status, so a slow watch never makes it create twice. The pure parts (expectations,
slow-start batch sizes, the scale-down ranking, status arithmetic) take plain values and a
clock so that their unit tests need no server.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from corral.api.errors import StatusError
from corral.api.selectors import (
    LabelSelector,
    SelectorError,
    selector_from_map,
    try_selector_from_object,
)
from corral.client.informer import Informer
from corral.client.rest import PODS, REPLICASETS, REPLICATIONCONTROLLERS, Client, Resource
from corral.controllers.base import (
    NAMESPACE_INDEX,
    Controller,
    InformerFactory,
    clone,
    controller_ref,
    namespace_index,
)
from corral.util.clock import Clock, parse_rfc3339, rfc3339

log = logging.getLogger("corral.controllers.replicaset")

Obj = dict[str, Any]


#: at most this many creations or deletions per sync (kube-controller-manager's BurstReplicas)
BURST_REPLICAS = 500
#: the first slow-start batch (SlowStartInitialBatchSize)
SLOW_START_INITIAL_BATCH = 1
#: expectations not met within this long are given up (ExpectationsTimeout)
EXPECTATIONS_TIMEOUT = 300.0
#: lower cost pods are deleted first on scale-down
POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"

# Event reasons and the condition, spelled as Kubernetes does.
SUCCESSFUL_CREATE = "SuccessfulCreate"
FAILED_CREATE = "FailedCreate"
SUCCESSFUL_DELETE = "SuccessfulDelete"
FAILED_DELETE = "FailedDelete"
REPLICA_FAILURE = "ReplicaFailure"
NAMESPACE_TERMINATING = "NamespaceTerminating"


# --- expectations ----------------------------------------------------------------------------


@dataclass
class _Expected:
    adds: int
    deletes: set[str]
    since: float


@dataclass
class Expectations:
    """Creations and deletions an owner waits to observe (client-go's UID-tracking kind).

    ``expect_*`` replace the record for ``key``; ``*_observed`` lower it (deletions only
    for the pod keys that were expected, so a graceful delete is not counted twice).
    ``satisfied`` is true with no record, once everything was observed, or after
    ``timeout`` seconds of the clock's monotonic time.
    """

    clock: Clock
    timeout: float = EXPECTATIONS_TIMEOUT
    _records: dict[str, _Expected] = field(default_factory=dict)

    def expect_creations(self, key: str, adds: int) -> None:
        self._records[key] = _Expected(adds, set(), self.clock.monotonic())

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        self._records[key] = _Expected(0, set(pod_keys), self.clock.monotonic())

    def creation_observed(self, key: str, n: int = 1) -> None:
        rec = self._records.get(key)
        if rec is not None:
            rec.adds -= n

    def deletion_observed(self, key: str, pod_key: str) -> None:
        rec = self._records.get(key)
        if rec is not None:
            rec.deletes.discard(pod_key)

    def pending(self, key: str) -> tuple[int, int]:
        """(creations, deletions) still expected."""
        rec = self._records.get(key)
        return (0, 0) if rec is None else (max(rec.adds, 0), len(rec.deletes))

    def satisfied(self, key: str) -> bool:
        rec = self._records.get(key)
        if rec is None or (rec.adds <= 0 and not rec.deletes):
            return True
        return self.clock.monotonic() - rec.since > self.timeout

    def delete(self, key: str) -> None:
        self._records.pop(key, None)


# --- slow start ------------------------------------------------------------------------------


def slow_start_batches(count: int, initial: int = SLOW_START_INITIAL_BATCH) -> list[int]:
    """The batch sizes ``slow_start`` uses for ``count`` calls: 1, 2, 4, ... then the rest."""
    out: list[int] = []
    remaining = count
    size = min(remaining, initial)
    while size > 0:
        out.append(size)
        remaining -= size
        size = min(2 * size, remaining)
    return out


async def slow_start(
    count: int, fn: Callable[[], Awaitable[None]], initial: int = SLOW_START_INITIAL_BATCH
) -> tuple[int, StatusError | Exception | None]:
    """Call ``fn`` ``count`` times in doubling concurrent batches; stop after a failing batch.

    Returns (successes, the first error or None): a quota or admission error costs one
    call, not ``count``.
    """
    successes = 0
    for size in slow_start_batches(count, initial):
        results = await asyncio.gather(*(fn() for _ in range(size)), return_exceptions=True)
        errors: list[Exception] = []
        for r in results:
            if isinstance(r, asyncio.CancelledError):
                raise r
            if isinstance(r, Exception):
                errors.append(r)
            elif isinstance(r, BaseException):
                raise r
        successes += size - len(errors)
        if errors:
            return successes, errors[0]
    return successes, None


# --- pod predicates ----------------------------------------------------------------------------


def _meta(obj: Obj) -> Obj:
    m: Obj = obj.get("metadata") or {}
    return m


def pod_key(pod: Obj) -> str:
    m = _meta(pod)
    return f"{m.get('namespace', '')}/{m.get('name', '')}"


def is_pod_active(pod: Obj) -> bool:
    """Counted as a replica: not terminal (Succeeded/Failed) and not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not _meta(pod).get("deletionTimestamp")


def _ready_condition(pod: Obj) -> Obj | None:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return dict(c)
    return None


def is_pod_ready(pod: Obj) -> bool:
    c = _ready_condition(pod)
    return c is not None and c.get("status") == "True"


def ready_since(pod: Obj) -> float | None:
    """When the Ready condition last became True (None: not ready or no time)."""
    c = _ready_condition(pod)
    if c is None or c.get("status") != "True" or not c.get("lastTransitionTime"):
        return None
    return parse_rfc3339(str(c["lastTransitionTime"]))


def available_in(pod: Obj, min_ready_seconds: int, now: float) -> float | None:
    """0 if available now, seconds until it will be if only waiting, None if not ready."""
    if not is_pod_ready(pod):
        return None
    if min_ready_seconds <= 0:
        return 0.0
    since = ready_since(pod)
    if since is None:
        return None
    left = since + min_ready_seconds - now
    return 0.0 if left < 0 else max(left, 0.001)


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def controller_of(obj: Obj) -> Obj | None:
    for ref in _meta(obj).get("ownerReferences") or ():
        if ref.get("controller"):
            return dict(ref)
    return None


# --- scale-down ranking (ActivePodsWithRanks) ----------------------------------------------------

_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def _deletion_cost(pod: Obj) -> int:
    raw = (_meta(pod).get("annotations") or {}).get(POD_DELETION_COST)
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


def _max_restarts(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or ()
    return max((int(s.get("restartCount") or 0) for s in statuses), default=0)


def _created(pod: Obj) -> float | None:
    ts = _meta(pod).get("creationTimestamp")
    return parse_rfc3339(str(ts)) if ts else None


def _log_rank(t: float, now: float) -> int:
    d = round((now - t) * 1e9)  # nanoseconds, as Go's time.Duration
    return int(math.log2(d)) if d > 0 else -1


def _newer_first(t1: float | None, t2: float | None, now: float | None) -> bool | None:
    """Is 1 before 2 when newer goes first (absent first), logarithmic buckets; None: tie."""
    if t1 == t2:
        return None
    if t1 is None or t2 is None:
        return t1 is None
    if now is None:
        return t1 > t2
    diff = _log_rank(t1, now) - _log_rank(t2, now)
    return None if diff == 0 else diff < 0


def deletion_less(a: Obj, rank_a: int, b: Obj, rank_b: int, now: float | None) -> bool:
    """Should ``a`` be deleted before ``b``? Kubernetes' ``ActivePodsWithRanks.Less``.

    1. unassigned < assigned; 2. Pending < Unknown < Running; 3. not ready < ready;
    4. lower pod-deletion-cost; 5. more related pods on the same node (higher rank);
    6. both ready: ready more recently first; 7. more container restarts first;
    8. no creation time < newer < older. Times in 6 and 8 compare in log2 buckets of
    their age (LogarithmicScaleDown); a tie inside one bucket is broken by uid.
    """
    node_a = bool((a.get("spec") or {}).get("nodeName"))
    node_b = bool((b.get("spec") or {}).get("nodeName"))
    if node_a != node_b:
        return not node_a
    pa = _PHASE_ORDER.get(str((a.get("status") or {}).get("phase")), 0)
    pb = _PHASE_ORDER.get(str((b.get("status") or {}).get("phase")), 0)
    if pa != pb:
        return pa < pb
    ra, rb = is_pod_ready(a), is_pod_ready(b)
    if ra != rb:
        return not ra
    ca, cb = _deletion_cost(a), _deletion_cost(b)
    if ca != cb:
        return ca < cb
    if rank_a != rank_b:
        return rank_a > rank_b
    uid_tie = str(_meta(a).get("uid", "")) < str(_meta(b).get("uid", ""))
    if ra and rb:
        ta, tb = ready_since(a), ready_since(b)
        if ta != tb:
            first = _newer_first(ta, tb, now)
            return uid_tie if first is None else first
    xa, xb = _max_restarts(a), _max_restarts(b)
    if xa != xb:
        return xa > xb
    ta, tb = _created(a), _created(b)
    if ta != tb:
        first = _newer_first(ta, tb, now)
        return uid_tie if first is None else first
    return False


def deletion_order(pods: list[Obj], related: Iterable[Obj], now: float | None) -> list[Obj]:
    """``pods`` least valuable first; ranks count ``related`` active pods per node."""
    on_node: dict[str, int] = {}
    for p in related:
        node = (p.get("spec") or {}).get("nodeName")
        if node and is_pod_active(p):
            on_node[node] = on_node.get(node, 0) + 1
    ranked = [(p, on_node.get((p.get("spec") or {}).get("nodeName") or "", 0)) for p in pods]

    def cmp(x: tuple[Obj, int], y: tuple[Obj, int]) -> int:
        if deletion_less(x[0], x[1], y[0], y[1], now):
            return -1
        if deletion_less(y[0], y[1], x[0], x[1], now):
            return 1
        return 0

    return [p for p, _ in sorted(ranked, key=functools.cmp_to_key(cmp))]


# --- status ------------------------------------------------------------------------------------


def calculate_status(
    owner: Obj,
    pods: list[Obj],
    template_labels: Mapping[str, str],
    manage_error: str | None,
    now: float,
) -> Obj:
    """The owner's new ``status`` from its claimed active pods (zero counts left out)."""
    spec = owner.get("spec") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    want = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    tmpl = selector_from_map(template_labels)
    fully = sum(1 for p in pods if tmpl.matches(_meta(p).get("labels") or {}))
    ready = sum(1 for p in pods if is_pod_ready(p))
    available = sum(1 for p in pods if available_in(p, min_ready, now) == 0.0)
    old = owner.get("status") or {}
    conditions = [dict(c) for c in old.get("conditions") or ()]
    failure = next((c for c in conditions if c.get("type") == REPLICA_FAILURE), None)
    if manage_error is not None and failure is None:
        reason = FAILED_CREATE if len(pods) < want else FAILED_DELETE
        conditions.append(
            {
                "type": REPLICA_FAILURE,
                "status": "True",
                "lastTransitionTime": rfc3339(now),
                "reason": reason,
                "message": manage_error,
            }
        )
    elif manage_error is None and failure is not None:
        conditions = [c for c in conditions if c.get("type") != REPLICA_FAILURE]
    status: Obj = {"replicas": len(pods)}
    for name, n in (
        ("fullyLabeledReplicas", fully),
        ("readyReplicas", ready),
        ("availableReplicas", available),
    ):
        if n:
            status[name] = n
    if "observedGeneration" in old:
        status["observedGeneration"] = old["observedGeneration"]
    if conditions:
        status["conditions"] = conditions
    return status


def _status_equal(a: Obj, b: Obj) -> bool:
    keys = (
        "replicas",
        "fullyLabeledReplicas",
        "readyReplicas",
        "availableReplicas",
        "observedGeneration",
    )
    if any(int(a.get(k) or 0) != int(b.get(k) or 0) for k in keys):
        return False
    return list(a.get("conditions") or []) == list(b.get("conditions") or [])


def pod_from_template(owner: Obj, api_version: str, kind: str) -> Obj:
    """The pod to create for ``owner`` (labels, annotations, finalizers, spec of the template)."""
    template = (owner.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    meta: Obj = {
        "generateName": f"{_meta(owner)['name']}-",
        "ownerReferences": [controller_ref(owner, api_version, kind)],
    }
    for k in ("labels", "annotations", "finalizers"):
        if tmeta.get(k):
            meta[k] = clone(tmeta[k])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": clone(template.get("spec") or {}),
    }


def _namespace_terminating(e: Exception) -> bool:
    if not isinstance(e, StatusError):
        return False
    causes = (e.details or {}).get("causes") or ()
    return any(c.get("reason") == NAMESPACE_TERMINATING for c in causes) or (
        e.code == 403 and "because it is being terminated" in e.message
    )


# --- the controllers -----------------------------------------------------------------------------


class ReplicaSetController(Controller):
    """Keeps ``spec.replicas`` pods for each ReplicaSet (subclass: ReplicationControllers)."""

    name: ClassVar[str] = "replicaset"
    resource: ClassVar[Resource] = REPLICASETS
    api_version: ClassVar[str] = "apps/v1"
    kind: ClassVar[str] = "ReplicaSet"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 4,
        clock: Clock | None = None,
        burst_replicas: int = BURST_REPLICAS,
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        self.burst_replicas = burst_replicas
        self.expectations = Expectations(self.clock)
        self.owners: Informer = factory.informer(self.resource)
        self.pods: Informer = factory.informer(PODS)
        self._ns_index = NAMESPACE_INDEX  # shared with other controllers (base.py)
        for inf in (self.owners, self.pods):
            inf.add_index(self._ns_index, namespace_index)
        self.owners.add_handler(self._on_owner)
        self.pods.add_handler(self._on_pod)

    # --- kind specifics ----------------------------------------------------------------------
    def selector(self, owner: Obj) -> LabelSelector:
        """The owner's pod selector; raises SelectorError when it does not parse."""
        return try_selector_from_object((owner.get("spec") or {}).get("selector"))

    def related_pods(self, owner: Obj, pods: list[Obj]) -> list[Obj]:
        """Pods whose nodes count for the scale-down rank: those of every ReplicaSet with
        the same controller (a Deployment's old and new sets), else the owner's own."""
        ref = controller_of(owner)
        if ref is None:
            return pods
        ns = str(_meta(owner).get("namespace", ""))
        siblings = {
            str(_meta(o).get("uid"))
            for o in self.owners.by_index(self._ns_index, ns)
            if (controller_of(o) or {}).get("uid") == ref.get("uid")
        }
        return [
            p
            for p in self.pods.by_index(self._ns_index, ns)
            if is_pod_active(p) and (controller_of(p) or {}).get("uid") in siblings
        ]

    @property
    def component(self) -> str:
        return "replicaset-controller"

    def _involved(self, owner: Obj) -> Obj:
        return {**owner, "apiVersion": self.api_version, "kind": self.kind}

    # --- handlers (never await; only enqueue and count) ---------------------------------------
    def _on_owner(self, _type: str, obj: Obj, _old: Obj | None) -> None:
        self.enqueue(obj)

    def _resolve(self, pod: Obj, ref: Obj) -> str | None:
        if ref.get("kind") != self.kind or _group(str(ref.get("apiVersion", ""))) != _group(
            self.api_version
        ):
            return None
        key = f"{_meta(pod).get('namespace', '')}/{ref.get('name')}"
        owner = self.owners.get(key)
        if owner is None or _meta(owner).get("uid") != ref.get("uid"):
            return None
        return key

    def _matching_owners(self, pod: Obj) -> list[str]:
        labels = _meta(pod).get("labels") or {}
        out = []
        for o in self.owners.by_index(self._ns_index, str(_meta(pod).get("namespace", ""))):
            try:
                sel = self.selector(o)
            except SelectorError:
                continue
            if sel.empty or sel.nothing:  # an empty selector matches nothing here
                continue
            if sel.matches(labels):
                out.append(f"{_meta(o).get('namespace', '')}/{_meta(o)['name']}")
        return out

    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        if type_ == "DELETED":
            self._pod_deleted(pod)
        elif type_ == "ADDED" or old is None:
            self._pod_added(pod)
        else:
            self._pod_updated(old, pod)

    def _pod_added(self, pod: Obj) -> None:
        if _meta(pod).get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        ref = controller_of(pod)
        if ref is not None:
            key = self._resolve(pod, ref)
            if key is not None:
                self.expectations.creation_observed(key)
                self.queue.add(key)
            return
        for key in self._matching_owners(pod):
            self.queue.add(key)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        if _meta(old).get("resourceVersion") == _meta(cur).get("resourceVersion"):
            return
        labels_changed = _meta(old).get("labels") != _meta(cur).get("labels")
        if _meta(cur).get("deletionTimestamp"):
            self._pod_deleted(cur)
            if labels_changed:
                self._pod_deleted(old)
            return
        cur_ref, old_ref = controller_of(cur), controller_of(old)
        ref_changed = (cur_ref or {}).get("uid") != (old_ref or {}).get("uid")
        if ref_changed and old_ref is not None:
            key = self._resolve(old, old_ref)
            if key is not None:
                self.queue.add(key)
        if cur_ref is not None:
            key = self._resolve(cur, cur_ref)
            if key is not None:
                self.queue.add(key)
                owner = self.owners.get(key) or {}
                min_ready = int((owner.get("spec") or {}).get("minReadySeconds") or 0)
                if min_ready > 0 and not is_pod_ready(old) and is_pod_ready(cur):
                    self.queue.add_after(key, float(min_ready))
            return
        if labels_changed or ref_changed:
            for key in self._matching_owners(cur):
                self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        ref = controller_of(pod)
        if ref is None:
            return
        key = self._resolve(pod, ref)
        if key is not None:
            self.expectations.deletion_observed(key, pod_key(pod))
            self.queue.add(key)

    # --- sync ------------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        owner = self.owners.get(key)
        if owner is None:
            self.expectations.delete(key)
            return
        try:
            selector = self.selector(owner)
        except SelectorError as e:  # the API validates selectors; nothing to retry
            log.warning("%s %s: invalid selector: %s", self.kind, key, e)
            return
        needs_sync = self.expectations.satisfied(key)
        ns = str(_meta(owner).get("namespace", ""))
        active = [p for p in self.pods.by_index(self._ns_index, ns) if is_pod_active(p)]
        pods = await self.claim_pods(owner, selector, active)
        error: Exception | None = None
        if needs_sync and not _meta(owner).get("deletionTimestamp"):
            try:
                await self.manage_replicas(key, owner, pods)
            except StatusError as e:
                error = e
        now = self.clock.now()
        template = (owner.get("spec") or {}).get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        message = str(error) if error is not None else None
        status = calculate_status(owner, pods, labels, message, now)
        await self.update_status(owner, status)
        if error is not None:
            raise error
        spec = owner.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        if min_ready > 0:
            waits = [w for p in pods if (w := available_in(p, min_ready, now))]
            if waits:
                self.queue.add_after(key, min(waits) + 0.05)

    async def claim_pods(self, owner: Obj, selector: LabelSelector, pods: list[Obj]) -> list[Obj]:
        """The owner's pods after adopting matching orphans and releasing strays."""
        uid = _meta(owner).get("uid")
        deleting = bool(_meta(owner).get("deletionTimestamp"))
        claimed: list[Obj] = []
        errors: list[StatusError] = []
        can_adopt: bool | None = None  # checked once, uncached, before the first adoption
        for pod in pods:
            ref = controller_of(pod)
            matches = selector.matches(_meta(pod).get("labels") or {})
            if ref is not None:
                if ref.get("uid") != uid:
                    continue
                if matches:
                    claimed.append(pod)
                elif not deleting:
                    await self._release(owner, pod, errors)
                continue
            if deleting or not matches or _meta(pod).get("deletionTimestamp"):
                continue
            if can_adopt is None:
                can_adopt = await self._can_adopt(owner, errors)
            if not can_adopt:
                continue
            adopted = await self._adopt(owner, pod, errors)
            if adopted is not None:
                claimed.append(adopted)
        if errors:
            raise errors[0]
        return claimed

    async def _can_adopt(self, owner: Obj, errors: list[StatusError]) -> bool:
        """The owner, read uncached, is the same object and not being deleted."""
        m = _meta(owner)
        try:
            fresh = await self.client.get(self.resource, m["name"], m.get("namespace"))
        except StatusError as e:
            if e.code != 404:
                errors.append(e)
            return False
        return _meta(fresh).get("uid") == m.get("uid") and not _meta(fresh).get("deletionTimestamp")

    async def _adopt(self, owner: Obj, pod: Obj, errors: list[StatusError]) -> Obj | None:
        m = _meta(pod)
        body = {
            "metadata": {
                "ownerReferences": [controller_ref(owner, self.api_version, self.kind)],
                "uid": m.get("uid"),
            }
        }
        try:
            return await self.client.patch(
                PODS,
                m["name"],
                body,
                m.get("namespace"),
                patch_type="application/strategic-merge-patch+json",
            )
        except StatusError as e:
            if e.code != 404:
                errors.append(e)
            return None

    async def _release(self, owner: Obj, pod: Obj, errors: list[StatusError]) -> None:
        m = _meta(pod)
        body = {
            "metadata": {
                "ownerReferences": [{"$patch": "delete", "uid": _meta(owner).get("uid")}],
                "uid": m.get("uid"),
            }
        }
        try:
            await self.client.patch(
                PODS,
                m["name"],
                body,
                m.get("namespace"),
                patch_type="application/strategic-merge-patch+json",
            )
        except StatusError as e:
            if e.code not in (404, 422):  # gone, or being deleted: nothing to release
                errors.append(e)

    async def manage_replicas(self, key: str, owner: Obj, pods: list[Obj]) -> None:
        """Create or delete pods toward ``spec.replicas``; raises the first API error."""
        spec = owner.get("spec") or {}
        want = int(spec["replicas"]) if spec.get("replicas") is not None else 1
        diff = len(pods) - want
        ns = _meta(owner).get("namespace")
        involved = self._involved(owner)
        if diff < 0:
            n = min(-diff, self.burst_replicas)
            self.expectations.expect_creations(key, n)
            body = pod_from_template(owner, self.api_version, self.kind)

            async def create() -> None:
                try:
                    made = await self.client.create(PODS, body, ns)
                except StatusError as e:
                    await self.recorder.event(
                        involved, "Warning", FAILED_CREATE, f"Error creating: {e.message}"
                    )
                    if _namespace_terminating(e):
                        return  # the pod would be deleted at once anyway
                    raise
                await self.recorder.event(
                    involved, "Normal", SUCCESSFUL_CREATE, f"Created pod: {_meta(made)['name']}"
                )

            made, err = await slow_start(n, create)
            if made < n:
                self.expectations.creation_observed(key, n - made)
            if err is not None:
                raise err
        elif diff > 0:
            n = min(diff, self.burst_replicas)
            victims = deletion_order(pods, self.related_pods(owner, pods), self.clock.now())[:n]
            self.expectations.expect_deletions(key, [pod_key(p) for p in victims])
            results = await asyncio.gather(
                *(self._delete(key, involved, p) for p in victims), return_exceptions=True
            )
            for r in results:
                if isinstance(r, BaseException):
                    raise r

    async def _delete(self, key: str, involved: Obj, pod: Obj) -> None:
        m = _meta(pod)
        try:
            await self.client.delete(PODS, m["name"], m.get("namespace"))
        except StatusError as e:
            self.expectations.deletion_observed(key, pod_key(pod))
            if e.code == 404:
                return
            await self.recorder.event(
                involved, "Warning", FAILED_DELETE, f"Error deleting: {e.message}"
            )
            raise
        await self.recorder.event(
            involved, "Normal", SUCCESSFUL_DELETE, f"Deleted pod: {m['name']}"
        )

    async def update_status(self, owner: Obj, status: Obj) -> None:
        """Write ``status`` with ``observedGeneration`` through /status unless unchanged."""
        m = _meta(owner)
        status = {**status, "observedGeneration": m.get("generation", 0)}
        if _status_equal(owner.get("status") or {}, status):
            return
        patch: Obj = {
            k: status.get(k)
            for k in (
                "replicas",
                "fullyLabeledReplicas",
                "readyReplicas",
                "availableReplicas",
                "observedGeneration",
                "conditions",
            )
        }
        try:
            await self.client.patch(
                self.resource, m["name"], {"status": patch}, m.get("namespace"), sub="status"
            )
        except StatusError as e:
            if e.code != 404:
                raise


class ReplicationControllerController(ReplicaSetController):
    """The same loop for ``v1 ReplicationController`` (a map selector)."""

    name: ClassVar[str] = "replicationcontroller"
    resource: ClassVar[Resource] = REPLICATIONCONTROLLERS
    api_version: ClassVar[str] = "v1"
    kind: ClassVar[str] = "ReplicationController"

    def selector(self, owner: Obj) -> LabelSelector:
        return selector_from_map((owner.get("spec") or {}).get("selector"))

    def related_pods(self, owner: Obj, pods: list[Obj]) -> list[Obj]:
        return pods

    @property
    def component(self) -> str:
        return "replication-controller"
