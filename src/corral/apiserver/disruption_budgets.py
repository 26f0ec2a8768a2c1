"""The PodDisruptionBudget check at eviction, safe with several API servers on one store.

``DisruptionBudgets.admit`` is the ``("", "pods/eviction")`` write hook the ``eviction``
handler runs before it deletes: the pod's PodDisruptionBudget (policy/v1) is evaluated
on the spot from the watch cache, since no disruption controller maintains PDB status:
expected pods = the non-terminal pods the budget selects (terminating ones too, as
upstream's count, so evicting one pod after another does not shrink the budget),
healthy = those Ready and not being deleted, evicted right now, or named in the budget's ``status.disruptedPods`` less than
two minutes ago (upstream's ``DeletionTimeout``); desired healthy from ``minAvailable``
or ``maxUnavailable`` (percentages round up), ``unhealthyPodEvictionPolicy`` as
upstream. No room answers 429 TooManyRequests "Cannot evict pod as it would violate the
pod's disruption budget." (kubectl drain retries it); two budgets on one pod answer 500,
as upstream. An eviction in flight on this server is reserved until its delete returns,
so concurrent evictions (kubectl drain sends them in parallel) cannot overrun a budget
together. Pending, finished and terminating pods are evicted without a budget.

Evictions through two servers see each other only through the store, so
``DisruptionBudgets.commit`` (an ``async_write_hooks`` entry the handler awaits after
the check, not on a dry run) does what upstream's ``EvictionREST.checkAndDecrement``
does: it writes the budget's status, the pod added to ``disruptedPods`` (entries older
than the timeout dropped) and ``disruptionsAllowed`` / ``currentHealthy`` /
``desiredHealthy`` / ``expectedPods`` as counted, with the budget's resourceVersion the
check read as precondition. Two evictions decided on the same budget state conflict
there; the loser waits for this server's cache to catch up (``storage.sync``) and
decides again (upstream retries on conflict too), so it now counts the winner's pod as
disrupted and is refused when that leaves no room.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from corral.api import errors
from corral.api.selectors import SelectorError, try_selector_from_object
from corral.storage.cache import ResourceCache
from corral.util.clock import parse_rfc3339

if TYPE_CHECKING:
    from corral.apiserver.store import AsyncRelease, Registry

Obj = dict[str, Any]

PDB_VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
DISRUPTION_BUDGET_CAUSE = "DisruptionBudget"
TOO_MANY_REQUESTS = "TooManyRequests"
#: upstream's DeletionTimeout: how long a pod in ``status.disruptedPods`` counts as
#: disrupted before it is seen deleting (seconds)
DELETION_TIMEOUT = 120.0
#: how many times a conflicting budget write is decided again (upstream: EvictionsRetry)
COMMIT_RETRIES = 5
FIELD_MANAGER = "corral-apiserver"
_TERMINAL = ("Succeeded", "Failed")

#: what ``admit`` decided for a pod: (budget key, its revision, expected, healthy, desired)
Decision = tuple[str, int, int, int, int]


def _is_ready(pod: Obj) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def _scaled(v: Any, total: int) -> int | None:
    """An IntOrString against ``total``: ints as they are, ``N%`` rounded up."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int):
        return v
    text = str(v)
    if text.endswith("%"):
        try:
            return math.ceil(int(text[:-1]) * total / 100)
        except ValueError:
            return None
    try:
        return int(text)
    except ValueError:
        return None


def desired_healthy(spec: Obj, expected: int) -> int:
    """How many selected pods the budget wants healthy, out of ``expected``."""
    if spec.get("maxUnavailable") is not None:
        unavailable = _scaled(spec["maxUnavailable"], expected) or 0
        return max(expected - unavailable, 0)
    if spec.get("minAvailable") is not None:
        return _scaled(spec["minAvailable"], expected) or 0
    return 0


def disrupted(pdb: Obj, now: float) -> dict[str, str]:
    """``status.disruptedPods`` without the entries past ``DELETION_TIMEOUT``."""
    out = {}
    for name, when in ((pdb.get("status") or {}).get("disruptedPods") or {}).items():
        try:
            if parse_rfc3339(str(when)) + DELETION_TIMEOUT > now:
                out[str(name)] = str(when)
        except ValueError:
            continue
    return out


class DisruptionBudgets:
    """Refuses an eviction that would take a budget's healthy pods below its minimum
    (module docstring); ``registry`` None: the check alone (one server, unit tests)."""

    def __init__(
        self, pods: ResourceCache, pdbs: ResourceCache, registry: Registry | None = None
    ) -> None:
        self.pods = pods
        self.pdbs = pdbs
        self.registry = registry
        self._evicting: set[str] = set()
        self._decided: dict[str, Decision] = {}

    def _now(self) -> float:
        return self.registry.clock.now() if self.registry is not None else time.time()

    def _budgets_of(self, ns: str, labels: dict[str, str]) -> list[tuple[str, int, Obj]]:
        out = []
        for e in self.pdbs.entries.values():
            if e.namespace != ns:
                continue
            pdb = e.obj()
            try:
                sel = try_selector_from_object((pdb.get("spec") or {}).get("selector"))
            except SelectorError:
                continue
            if sel.matches(labels):
                out.append((e.key, e.revision, pdb))
        return out

    def admit(self, pod: Obj, key: str) -> Callable[[], None] | None:
        if key in self._evicting:
            return None  # the same pod evicted twice at once: the first one reserved
        decision = self._decide(pod, key)
        if decision is None:
            return None
        self._evicting.add(key)
        self._decided[key] = decision

        def release() -> None:
            self._evicting.discard(key)
            self._decided.pop(key, None)

        return release

    def _decide(self, pod: Obj, key: str) -> Decision | None:
        """The budget's verdict on evicting ``pod`` now: None (no budget to count), a
        Decision, or a raised 429/500."""
        meta = pod.get("metadata") or {}
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed", "Pending") or meta.get("deletionTimestamp"):
            return None
        ns = str(meta.get("namespace") or "")
        budgets = self._budgets_of(ns, dict(meta.get("labels") or {}))
        if not budgets:
            return None
        if len(budgets) > 1:
            raise errors.internal(
                "This pod has more than one PodDisruptionBudget, which the eviction "
                "subresource does not support."
            )
        pdb_key, pdb_rev, pdb = budgets[0]
        spec = pdb.get("spec") or {}
        sel = try_selector_from_object(spec.get("selector"))
        gone = disrupted(pdb, self._now())
        gone.pop(str(meta.get("name") or ""), None)
        expected = healthy = 0
        for e in self.pods.entries.values():
            if e.namespace != ns or not sel.matches(e.labels):
                continue
            other = e.obj()
            if (other.get("status") or {}).get("phase") in _TERMINAL:
                continue
            expected += 1  # a terminating pod too: it is not replaced yet (upstream's count)
            busy = e.deleting or (e.key != key and e.key in self._evicting)
            if _is_ready(other) and not busy and e.name not in gone:
                healthy += 1
        desired = desired_healthy(spec, expected)
        if not _is_ready(pod):
            policy = spec.get("unhealthyPodEvictionPolicy") or "IfHealthyBudget"
            if policy == "AlwaysAllow" or (healthy >= desired and desired > 0):
                return None
        if healthy - desired <= 0:
            name = (pdb.get("metadata") or {}).get("name", "")
            raise errors.StatusError(
                429,
                TOO_MANY_REQUESTS,
                PDB_VIOLATION,
                {
                    "causes": [
                        {
                            "reason": DISRUPTION_BUDGET_CAUSE,
                            "message": f"The disruption budget {name} needs {desired} "
                            f"healthy pods and has {healthy} currently",
                        }
                    ]
                },
            )
        return pdb_key, pdb_rev, expected, healthy, desired

    async def commit(self, pod: Obj, key: str) -> AsyncRelease | None:
        """Record the eviction ``admit`` allowed in the budget's status, conditional on
        the budget being as it was read; on a conflict decide again (module docstring)."""
        registry = self.registry
        for _ in range(COMMIT_RETRIES):
            decision = self._decided.get(key)
            if decision is None or registry is None:
                return None
            try:
                await self._record(registry, pod, decision)
                return None
            except errors.StatusError as e:
                if e.code != 409:
                    raise
            sync = getattr(registry.storage, "sync", None)
            if sync is not None:
                await sync()
            again = self._decide(pod, key)  # raises 429 when there is no room now
            if again is None:
                return None
            self._decided[key] = again
        raise errors.StatusError(429, TOO_MANY_REQUESTS, PDB_VIOLATION)

    async def _record(self, registry: Registry, pod: Obj, decision: Decision) -> None:
        from corral.apiserver.store import WriteOptions

        pdb_key, rev, expected, healthy, desired = decision
        entry = self.pdbs.entries.get(pdb_key)
        if entry is None:
            return  # the budget went meanwhile: nothing to count against
        info = registry.by_prefix[self.pdbs.prefix]
        name = str((pod.get("metadata") or {}).get("name") or "")
        pdb = entry.obj()
        meta = pdb["metadata"]
        if entry.revision != rev:
            raise errors.conflict(info.plural, info.group, str(meta.get("name") or ""))
        status = pdb.setdefault("status", {})
        status["disruptedPods"] = {**disrupted(pdb, self._now()), name: registry.now()}
        status["disruptionsAllowed"] = max(0, healthy - desired - 1)
        status["currentHealthy"] = healthy
        status["desiredHealthy"] = desired
        status["expectedPods"] = expected
        meta["resourceVersion"] = str(rev)
        opts = WriteOptions(field_manager=FIELD_MANAGER)
        await registry.update(info, entry.namespace, entry.name, pdb, opts, "status")
