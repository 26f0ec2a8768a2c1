"""The taint eviction controller: pods leave nodes with NoExecute taints they do not
tolerate (Kubernetes' NoExecuteTaintManager, pkg/controller/tainteviction).

Run by ``ControllerManager`` (controllers/manager.py, name ``taint-eviction-controller``,
as kube-controller-manager 1.29+ names it). The node lifecycle controller
(``nodelifecycle.py``) adds ``node.kubernetes.io/unreachable:NoExecute`` and
``not-ready:NoExecute``; this controller acts on those and on any NoExecute taint a user
adds (``kubectl taint node n k=v:NoExecute``).

``sync(node)`` decides for each pod bound to the node (``eviction_time``, pure)::

    a NoExecute taint no toleration matches ──────────────> delete now
    all tolerated; each taint's first matching toleration
      has no tolerationSeconds ──────────────────────────> keep (tolerated forever)
      else deadline = min over taints of
           (taint.timeAdded + that toleration's seconds) ──> delete at the deadline
                                                             (re-queued until then)

Seconds <= 0 mean at once. Upstream counts from when its own watch saw the taint; here a
taint's ``timeAdded`` is the start (what the node lifecycle controller stamps), so the
deadline survives a controller restart; a taint without ``timeAdded`` counts from when
this controller first saw it. Deleting: the pod gets the ``DisruptionTarget`` condition
(reason ``DeletionByTaintManager``), an Event ``TaintManagerEviction`` ("Marking for
deletion Pod ns/name"), then an ordinary delete (its own grace period; the ReplicaSet
etc. replace it at once since a terminating pod no longer counts). A scheduled eviction
that no longer applies (taint removed, toleration added) gets the "Cancelling deletion"
event. Time comes from the injected clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from corral.api.errors import StatusError
from corral.api.taints import tolerates
from corral.client.informer import Informer
from corral.client.rest import NODES, PODS, Client
from corral.controllers.base import (
    NODE_NAME_INDEX,
    Controller,
    InformerFactory,
    clone,
    node_name_index,
)
from corral.util.clock import Clock, parse_rfc3339, rfc3339

log = logging.getLogger("corral.controllers.taint_eviction")

Obj = dict[str, Any]

TAINT_MANAGER_EVICTION = "TaintManagerEviction"
DISRUPTION_TARGET = "DisruptionTarget"
DELETION_BY_TAINT_MANAGER = "DeletionByTaintManager"
DELETION_MESSAGE = "Taint manager: deleting due to NoExecute taint"

_POD_NODE_INDEX = NODE_NAME_INDEX  # shared with other controllers (base.py)


def no_execute_taints(node: Obj) -> list[Obj]:
    return [
        t for t in (node.get("spec") or {}).get("taints") or () if t.get("effect") == "NoExecute"
    ]


def eviction_time(
    tolerations: Iterable[Obj], taints: Iterable[Obj], since: Callable[[Obj], float]
) -> float | None:
    """When a pod with ``tolerations`` must leave a node with NoExecute ``taints``:
    ``-inf`` (at once), a time (``since(taint)`` + toleration seconds, the earliest over
    the taints), or ``None`` (tolerated forever, or no taints)."""
    tols = list(tolerations)
    deadline: float | None = None
    for taint in taints:
        used = next((t for t in tols if tolerates(t, taint)), None)
        if used is None:
            return float("-inf")
        seconds = used.get("tolerationSeconds")
        if seconds is None:
            continue
        at = since(taint) + max(0, int(seconds))
        deadline = at if deadline is None else min(deadline, at)
    return deadline


class TaintEvictionController(Controller):
    """Deletes pods from NoExecute-tainted nodes (see the module docstring)."""

    name: ClassVar[str] = "taint-eviction-controller"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 4,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        self.nodes: Informer = factory.informer(NODES)
        self.pods: Informer = factory.informer(PODS)
        self.pods.add_index(_POD_NODE_INDEX, node_name_index)
        self.nodes.add_handler(self._on_node)
        self.pods.add_handler(self._on_pod)
        #: (node, taint key, value) -> when first seen, for taints without timeAdded
        self._first_seen: dict[tuple[str, str, str], float] = {}
        #: pod key -> its scheduled eviction time (for the "Cancelling deletion" event)
        self._scheduled: dict[str, float] = {}

    @property
    def component(self) -> str:
        return "taint-eviction-controller"

    def _on_node(self, type_: str, node: Obj, old: Obj | None) -> None:
        if (
            type_ == "MODIFIED"
            and old is not None
            and no_execute_taints(old) == no_execute_taints(node)
        ):
            return
        self.queue.add(str(node["metadata"]["name"]))

    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        spec = pod.get("spec") or {}
        node = spec.get("nodeName")
        if type_ == "DELETED":
            self._scheduled.pop(_key(pod), None)
            return
        if not node:
            return
        if old is not None:
            was = old.get("spec") or {}
            if was.get("nodeName") == node and was.get("tolerations") == spec.get("tolerations"):
                return
        n = self.nodes.get(str(node))
        if n is not None and no_execute_taints(n):
            self.queue.add(str(node))

    def _since(self, node: str) -> Callable[[Obj], float]:
        def since(taint: Obj) -> float:
            added = taint.get("timeAdded")
            if added:
                try:
                    return parse_rfc3339(str(added))
                except ValueError:
                    pass
            ident = (node, str(taint.get("key") or ""), str(taint.get("value") or ""))
            return self._first_seen.setdefault(ident, self.clock.now())

        return since

    async def sync(self, key: str) -> None:
        node = self.nodes.get(key)
        pods = [p for p in self.pods.by_index(_POD_NODE_INDEX, key)]
        taints = no_execute_taints(node) if node is not None else []
        for ident in [i for i in self._first_seen if i[0] == key]:
            if not any((t.get("key") or "", t.get("value") or "") == ident[1:] for t in taints):
                del self._first_seen[ident]
        now = self.clock.now()
        since = self._since(key)
        soonest: float | None = None
        for pod in pods:
            meta = pod.get("metadata") or {}
            if meta.get("deletionTimestamp"):
                continue
            pkey = _key(pod)
            at = eviction_time((pod.get("spec") or {}).get("tolerations") or (), taints, since)
            if at is None:
                if self._scheduled.pop(pkey, None) is not None:
                    await self.recorder.event(
                        _pod_ref(pod),
                        "Normal",
                        TAINT_MANAGER_EVICTION,
                        f"Cancelling deletion of Pod {pkey}",
                    )
                continue
            if at > now:
                self._scheduled[pkey] = at
                soonest = at if soonest is None else min(soonest, at)
                continue
            await self._evict(pod)
        if soonest is not None:
            self.queue.add_after(key, max(0.0, soonest - now) + 0.05)

    async def _evict(self, pod: Obj) -> None:
        """addConditionAndDeletePod: the DisruptionTarget condition, then delete."""
        meta = pod["metadata"]
        ns, name = meta.get("namespace"), meta["name"]
        pkey = _key(pod)
        self._scheduled.pop(pkey, None)
        log.info("deleting pod %s: NoExecute taint not tolerated", pkey)
        await self.recorder.event(
            _pod_ref(pod), "Normal", TAINT_MANAGER_EVICTION, f"Marking for deletion Pod {pkey}"
        )
        conds = [dict(c) for c in (pod.get("status") or {}).get("conditions") or ()]
        if not any(
            c.get("type") == DISRUPTION_TARGET and c.get("reason") == DELETION_BY_TAINT_MANAGER
            for c in conds
        ):
            conds = [c for c in conds if c.get("type") != DISRUPTION_TARGET]
            conds.append(
                {
                    "type": DISRUPTION_TARGET,
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": rfc3339(self.clock.now()),
                    "reason": DELETION_BY_TAINT_MANAGER,
                    "message": DELETION_MESSAGE,
                }
            )
            new = clone(pod)
            new.setdefault("status", {})["conditions"] = conds
            try:
                await self.client.update(PODS, new, ns, sub="status")
            except StatusError as e:
                if e.code == 404:
                    return
                raise
        try:
            await self.client.delete(PODS, name, ns)
        except StatusError as e:
            if e.code != 404:
                raise


def _key(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _pod_ref(pod: Obj) -> Obj:
    out = dict(pod)
    out.setdefault("apiVersion", "v1")
    out.setdefault("kind", "Pod")
    return out
