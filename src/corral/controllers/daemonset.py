"""The DaemonSet controller: one pod of a DaemonSet on every eligible node.

Run by ``ControllerManager`` (controllers/manager.py, name ``daemonset``) inside ``corral
server`` / ``corral up`` or ``corral controller-manager``. Behaviour follows Kubernetes'
pkg/controller/daemon; the decisions are pure functions here (``node_should_run``,
``rolling_plan``, ``budgets``) so the unit tests drive them without a server.

``sync(key)`` for one DaemonSet, level-triggered::

    gone or being deleted ------------------------------> done (the GC removes pods)
    claim ControllerRevisions, then pods (refmanager.py): adopt orphans the selector
        matches, release owned ones it no longer matches
    history: the ControllerRevision whose data is the current template (created as
        ``<ds>-<hash>`` with revision max+1, or bumped to max+1 after ``rollout undo``)
    claimed pods, grouped by target node (spec.nodeName, or the
        ``matchFields metadata.name`` of a pod not yet bound)
    creates/deletes still in flight -------------------------> status only
    manage: a pod on each node that should run one (template + the node's name as
        required node affinity + the default DaemonSet tolerations; the scheduler binds
        it); failed pods deleted; pods on nodes that must not keep them, or on nodes
        that are gone, deleted; duplicates deleted
    RollingUpdate: delete old pods within maxUnavailable, or with maxSurge create new
        pods beside the old ones and delete an old pod once its replacement is available
    OnDelete: nothing more (a deleted pod comes back from the new template)
    history beyond revisionHistoryLimit not used by a pod deleted
    status: the counts ``kubectl get ds`` and ``rollout status`` read

Eligibility (``node_should_run``): spec.nodeName (if the template has one),
nodeSelector and required node affinity must match the node; an untolerated NoSchedule
taint stops new pods but keeps running ones, an untolerated NoExecute taint removes them.
A cordoned node stays eligible: DaemonSet pods tolerate ``node.kubernetes.io/
unschedulable`` (and the other default tolerations Kubernetes adds).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from corral.api.errors import StatusError
from corral.api.selectors import (
    LabelSelector,
    SelectorError,
    node_selector_term_matches,
    try_selector_from_object,
)
from corral.api.taints import tolerates
from corral.client.informer import Informer
from corral.client.rest import CONTROLLERREVISIONS, DAEMONSETS, NODES, PODS, Client
from corral.controllers import deployment_util as du
from corral.controllers.base import (
    CONTROLLER_UID_INDEX,
    ORPHAN_NAMESPACE_INDEX,
    Controller,
    InformerFactory,
    clone,
    controller_ref,
    controller_uid_index,
    orphan_namespace_index,
)
from corral.controllers.refmanager import RefManager, orphan_handler, selector_matches
from corral.util.clock import Clock, parse_rfc3339

log = logging.getLogger("corral.controllers.daemonset")

Obj = dict[str, Any]

HASH_LABEL = "controller-revision-hash"
GENERATION_LABEL = "pod-template-generation"
SUCCESSFUL_CREATE = "SuccessfulCreate"
SUCCESSFUL_DELETE = "SuccessfulDelete"
FAILED_CREATE = "FailedCreate"
FAILED_DAEMON_POD = "FailedDaemonPod"
#: the longest pause before a daemon pod that keeps failing on a node is recreated
FAILED_POD_MAX_BACKOFF = 15 * 60.0
#: how long a create or delete may stay unobserved before the sync stops waiting for it
EXPECTATION_TIMEOUT = 30.0

_NS_INDEX = "daemonset/namespace"
_POD_OWNER_INDEX = CONTROLLER_UID_INDEX  # shared with other controllers (base.py)
_CR_OWNER_INDEX = "daemonset/revision-controller-uid"
_ORPHAN_INDEX = ORPHAN_NAMESPACE_INDEX


def _taint_toleration(key: str, effect: str) -> Obj:
    return {"key": key, "operator": "Exists", "effect": effect}


#: what Kubernetes adds to every DaemonSet pod (util.AddOrUpdateDaemonPodTolerations)
DEFAULT_TOLERATIONS: tuple[Obj, ...] = (
    _taint_toleration("node.kubernetes.io/not-ready", "NoExecute"),
    _taint_toleration("node.kubernetes.io/unreachable", "NoExecute"),
    _taint_toleration("node.kubernetes.io/disk-pressure", "NoSchedule"),
    _taint_toleration("node.kubernetes.io/memory-pressure", "NoSchedule"),
    _taint_toleration("node.kubernetes.io/pid-pressure", "NoSchedule"),
    _taint_toleration("node.kubernetes.io/unschedulable", "NoSchedule"),
)


# --- pure helpers ---------------------------------------------------------------------------
def _meta(obj: Obj | None) -> Obj:
    m = (obj or {}).get("metadata")
    return m if isinstance(m, dict) else {}


def _spec(obj: Obj | None) -> Obj:
    s = (obj or {}).get("spec")
    return s if isinstance(s, dict) else {}


def _ns(obj: Obj) -> str:
    return str(_meta(obj).get("namespace") or "")


def _controller_of(obj: Obj) -> Obj | None:
    for ref in _meta(obj).get("ownerReferences") or ():
        if ref.get("controller"):
            return dict(ref)
    return None


def _selector(ds: Obj) -> LabelSelector | None:
    try:
        return try_selector_from_object(_spec(ds).get("selector"))
    except SelectorError:
        return None


def _pods_by_node(pods: Iterable[Obj]) -> dict[str, list[Obj]]:
    """Live (not terminating) pods grouped by ``target_node``."""
    out: dict[str, list[Obj]] = {}
    for pod in pods:
        if not _meta(pod).get("deletionTimestamp"):
            out.setdefault(target_node(pod), []).append(pod)
    return out


#: added too when the pod uses the host network (it needs no pod network to run)
HOST_NETWORK_TOLERATION = _taint_toleration("node.kubernetes.io/network-unavailable", "NoSchedule")


def add_default_tolerations(pod_spec: Obj) -> None:
    """``AddOrUpdateDaemonPodTolerations``: each default DaemonSet toleration (and, with
    ``hostNetwork``, network-unavailable) replaces a toleration of the same key, effect,
    operator and value (so a user's ``tolerationSeconds`` on it becomes forever), or is
    appended."""
    tols: list[Obj] = list(pod_spec.get("tolerations") or [])
    defaults = list(DEFAULT_TOLERATIONS)
    if pod_spec.get("hostNetwork"):
        defaults.append(HOST_NETWORK_TOLERATION)
    for t in defaults:
        same = [
            i
            for i, x in enumerate(tols)
            if (x.get("key") or "") == t["key"]
            and (x.get("effect") or "") == t["effect"]
            and (x.get("operator") or "Equal") == "Exists"
            and not x.get("value")
        ]
        if not same:
            tols.append(dict(t))
        for i in same:
            tols[i] = dict(t)
    pod_spec["tolerations"] = tols


def _term_matches(term: Obj, node: Obj) -> bool:
    labels = _meta(node).get("labels") or {}
    return node_selector_term_matches(term, labels, str(_meta(node).get("name", "")))


def node_matches(pod_spec: Obj, node: Obj) -> bool:
    """nodeName, nodeSelector and required node affinity of ``pod_spec`` allow ``node``."""
    name = pod_spec.get("nodeName")
    if name and name != _meta(node).get("name"):
        return False
    labels = _meta(node).get("labels") or {}
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if required is not None:
        return any(_term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])
    return True


def node_should_run(template: Obj, node: Obj) -> tuple[bool, bool]:
    """(should run a new daemon pod, should keep a running one) on ``node``.

    ``template`` is the DaemonSet's pod template; its tolerations are taken with the
    default DaemonSet tolerations added, as the pod will carry them.
    """
    pod_spec = clone(_spec(template))
    add_default_tolerations(pod_spec)
    if not node_matches(pod_spec, node):
        return False, False
    tols = pod_spec["tolerations"]
    run = keep = True
    for taint in _spec(node).get("taints") or []:
        effect = taint.get("effect")
        if effect not in ("NoSchedule", "NoExecute"):
            continue
        if any(tolerates(t, taint) for t in tols):
            continue
        run = False
        if effect == "NoExecute":
            keep = False
    return run, keep


def target_node(pod: Obj) -> str:
    """spec.nodeName, or the node named by the pod's ``matchFields metadata.name In``."""
    spec = _spec(pod)
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for f in term.get("matchFields") or []:
            vals = f.get("values") or []
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and len(vals) == 1:
                return str(vals[0])
    return ""


def set_node_affinity(pod_spec: Obj, node_name: str) -> None:
    """Pin the pod to ``node_name`` with required node affinity (Kubernetes 1.32's way:
    the required terms become one ``matchFields metadata.name In [node]`` term; the
    controller has already checked the node against the template's own terms)."""
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}
    affinity = pod_spec.setdefault("affinity", {}) or {}
    pod_spec["affinity"] = affinity
    na = affinity.setdefault("nodeAffinity", {}) or {}
    affinity["nodeAffinity"] = na
    na["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [term]}


def new_pod(ds: Obj, node_name: str, hash_: str) -> Obj:
    """The daemon pod of ``ds`` for ``node_name`` at template hash ``hash_``."""
    template = clone(_spec(ds).get("template") or {})
    tmeta = template.get("metadata") or {}
    labels = dict(tmeta.get("labels") or {})
    labels[HASH_LABEL] = hash_
    labels[GENERATION_LABEL] = str(_meta(ds).get("generation") or 1)
    meta: Obj = {
        "generateName": f"{_meta(ds)['name']}-",
        "labels": labels,
        "ownerReferences": [controller_ref(ds, "apps/v1", "DaemonSet")],
    }
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    spec = template.get("spec") or {}
    set_node_affinity(spec, node_name)
    add_default_tolerations(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def revision_data(ds: Obj) -> Obj:
    """A ControllerRevision's ``data``: the strategic merge patch that restores the
    template (what ``kubectl rollout undo`` applies)."""
    template = clone(_spec(ds).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def budgets(ds: Obj, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) of a RollingUpdate DaemonSet for ``desired`` nodes
    (percentages round up; both zero becomes maxUnavailable 1)."""
    ru = (_spec(ds).get("updateStrategy") or {}).get("rollingUpdate") or {}
    surge = du.scaled_value(ru.get("maxSurge"), desired, True)
    unavailable = du.scaled_value(ru.get("maxUnavailable", 1), desired, True)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def pod_hash(pod: Obj) -> str:
    return str((_meta(pod).get("labels") or {}).get(HASH_LABEL, ""))


def is_ready(pod: Obj) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def is_available(pod: Obj, min_ready: int, now: float) -> bool:
    """Ready for at least ``min_ready`` seconds."""
    if not is_ready(pod):
        return False
    if min_ready <= 0:
        return True
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready" and c.get("lastTransitionTime"):
            return parse_rfc3339(c["lastTransitionTime"]) + min_ready <= now
    return False


def _by_age(pod: Obj) -> tuple[str, str]:
    m = _meta(pod)
    return str(m.get("creationTimestamp") or ""), str(m.get("name") or "")


def rolling_plan(
    node_pods: Mapping[str, list[Obj]],
    hash_: str,
    max_surge: int,
    max_unavailable: int,
    available: Callable[[Obj], bool],
) -> tuple[list[Obj], list[str]]:
    """(old pods to delete, nodes to create an updated pod on) for one rolling step.

    ``node_pods`` maps every node that should run a daemon pod to its live pods (at most
    one old and one updated after ``manage``). Without surge: unavailable old pods go at
    once, available ones while fewer than ``max_unavailable`` nodes are unavailable.
    With surge: an updated pod is created beside an old one (at once when the old one is
    unavailable, else within ``max_surge``), and the old one goes when it is available.
    """
    delete: list[Obj] = []
    create: list[str] = []
    if max_surge == 0:
        unavailable = 0
        candidates: list[Obj] = []
        for node in sorted(node_pods):
            new = [p for p in node_pods[node] if pod_hash(p) == hash_]
            old = [p for p in node_pods[node] if pod_hash(p) != hash_]
            if bool(new) == bool(old):  # none yet, or both: manage handles it
                unavailable += 1
            elif new:
                if not available(new[0]):
                    unavailable += 1
            elif not available(old[0]):
                delete.append(old[0])
                unavailable += 1
            else:
                candidates.append(old[0])
        room = max(max_unavailable - unavailable, 0)
        return delete + candidates[:room], create
    surge = 0
    candidate_nodes: list[str] = []
    for node in sorted(node_pods):
        new = [p for p in node_pods[node] if pod_hash(p) == hash_]
        old = [p for p in node_pods[node] if pod_hash(p) != hash_]
        if not old:
            continue
        if not new:
            if not available(old[0]):
                create.append(node)
            else:
                candidate_nodes.append(node)
            continue
        surge += 1
        if available(new[0]):
            delete.extend(old)
    room = max(max_surge - surge, 0)
    return delete, create + candidate_nodes[:room]


def pods_to_keep(pods: list[Obj], hash_: str, surge: bool) -> list[Obj]:
    """Of several live pods on one node, those to keep: the oldest, or with surge the
    oldest old and the oldest updated one."""
    ordered = sorted(pods, key=_by_age)
    if not surge:
        return ordered[:1]
    new = [p for p in ordered if pod_hash(p) == hash_]
    old = [p for p in ordered if pod_hash(p) != hash_]
    return old[:1] + new[:1]


def calculate_status(
    ds: Obj,
    nodes: Iterable[Obj],
    node_pods: Mapping[str, list[Obj]],
    hash_: str,
    now: float,
) -> Obj:
    """The DaemonSet status from the nodes and its live pods by node."""
    template = _spec(ds).get("template") or {}
    min_ready = int(_spec(ds).get("minReadySeconds") or 0)
    desired = current = mis = ready = avail = updated = 0
    for node in nodes:
        name = str(_meta(node).get("name"))
        run, _keep = node_should_run(template, node)
        pods = node_pods.get(name) or []
        if run:
            desired += 1
            if pods:
                current += 1
                first = sorted(pods, key=_by_age)[0]
                if is_ready(first):
                    ready += 1
                    if is_available(first, min_ready, now):
                        avail += 1
                if any(pod_hash(p) == hash_ for p in pods):
                    updated += 1
        elif pods:
            mis += 1
    st: Obj = {
        "currentNumberScheduled": current,
        "numberMisscheduled": mis,
        "desiredNumberScheduled": desired,
        "numberReady": ready,
        "observedGeneration": int(_meta(ds).get("generation") or 0),
        "updatedNumberScheduled": updated,
        "numberAvailable": avail,
        "numberUnavailable": max(desired - avail, 0),
    }
    old = ds.get("status") or {}
    if old.get("collisionCount") is not None:
        st["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        st["conditions"] = old["conditions"]
    return {k: v for k, v in st.items() if v or k in _ALWAYS}


_ALWAYS = frozenset(
    ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady")
)


# --- the controller -----------------------------------------------------------------------------
class DaemonSetController(Controller):
    """Keeps a DaemonSet's pod on each eligible node (see the module docstring)."""

    name: ClassVar[str] = "daemonset"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 4,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        #: (daemonset key, node) -> (back-off, monotonic time it ends) after failed pods
        self._failures: dict[tuple[str, str], tuple[float, float]] = {}
        self.daemonsets: Informer = factory.informer(DAEMONSETS)
        self.pods: Informer = factory.informer(PODS)
        self.nodes: Informer = factory.informer(NODES)
        self.revisions: Informer = factory.informer(CONTROLLERREVISIONS)
        self.daemonsets.add_index(_NS_INDEX, lambda o: [_ns(o)])
        self.pods.add_index(_POD_OWNER_INDEX, controller_uid_index)
        self.revisions.add_index(
            _CR_OWNER_INDEX, lambda p: [str(r.get("uid"))] if (r := _controller_of(p)) else []
        )
        for inf in (self.pods, self.revisions):
            inf.add_index(_ORPHAN_INDEX, orphan_namespace_index)
        self.daemonsets.add_handler(lambda _t, o, _old: self.enqueue(o))
        for inf in (self.pods, self.revisions):
            inf.add_handler(self.enqueue_owner("DaemonSet"))
            inf.add_handler(
                orphan_handler(
                    lambda ns: self.daemonsets.by_index(_NS_INDEX, ns), _selector, self.enqueue
                )
            )
        self.nodes.add_handler(self._on_node)
        # DaemonSet key -> (pod names created not yet seen, names deleted not yet gone, when)
        self._expect: dict[str, tuple[set[str], set[str], float]] = {}

    def _on_node(self, type_: str, node: Obj, old: Obj | None) -> None:
        if type_ == "MODIFIED" and old is not None:
            before = (_meta(old).get("labels"), _spec(old).get("taints"), _spec(old))
            after = (_meta(node).get("labels"), _spec(node).get("taints"), _spec(node))
            if before == after:
                return
        for ds in list(self.daemonsets.store.values()):
            self.enqueue(ds)

    # --- expectations -------------------------------------------------------------------------
    def _satisfied(self, key: str) -> bool:
        exp = self._expect.get(key)
        if exp is None:
            return True
        created, deleted, when = exp
        ns = key.split("/", 1)[0]
        created = {n for n in created if self.pods.get(f"{ns}/{n}") is None}
        deleted = {
            n
            for n in deleted
            if (p := self.pods.get(f"{ns}/{n}")) is not None
            and not _meta(p).get("deletionTimestamp")
        }
        if (not created and not deleted) or time.monotonic() - when > EXPECTATION_TIMEOUT:
            self._expect.pop(key, None)
            return True
        self._expect[key] = (created, deleted, when)
        return False

    # --- sync ---------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        cached = self.daemonsets.get(key)
        if cached is None:
            self._expect.pop(key, None)
            return
        ds = clone(cached)
        ds.setdefault("apiVersion", "apps/v1")
        ds.setdefault("kind", "DaemonSet")
        if _meta(ds).get("deletionTimestamp"):
            return
        try:
            sel = try_selector_from_object(_spec(ds).get("selector"))
        except SelectorError as e:
            log.warning("daemonset %s: invalid selector: %s", key, e)
            return
        if sel.empty:
            return
        refs = RefManager(self.client, DAEMONSETS, ds, "apps/v1", "DaemonSet")
        uid, matches = str(_meta(ds).get("uid")), selector_matches(sel)
        revisions = await refs.claim(
            CONTROLLERREVISIONS, self._candidates(self.revisions, _CR_OWNER_INDEX, ds), matches
        )
        cur, old_revs = await self._history(ds, revisions)
        hash_ = str((_meta(cur).get("labels") or {}).get(HASH_LABEL, ""))
        nodes = list(self.nodes.store.values())
        pods = await refs.claim(PODS, self._candidates(self.pods, _POD_OWNER_INDEX, ds), matches)
        node_pods = _pods_by_node(pods)
        if self._satisfied(key):
            created, deleted = await self._manage(ds, nodes, node_pods, hash_)
            if not created and not deleted:
                strategy = (_spec(ds).get("updateStrategy") or {}).get("type") or "RollingUpdate"
                if strategy == "RollingUpdate":
                    created, deleted = await self._rolling_update(ds, nodes, node_pods, hash_)
            if created or deleted:
                self._expect[key] = (created, deleted, time.monotonic())
            await self._cleanup_history(ds, old_revs, node_pods)
        owned = [p for p in self.pods.by_index(_POD_OWNER_INDEX, uid) if matches(p)]
        await self._update_status(ds, nodes, _pods_by_node(owned), hash_)

    @staticmethod
    def _candidates(inf: Informer, owner_index: str, ds: Obj) -> list[Obj]:
        """What ``ds`` may claim: what it controls, and the orphans of its namespace."""
        return inf.by_index(owner_index, str(_meta(ds).get("uid"))) + inf.by_index(
            _ORPHAN_INDEX, _ns(ds)
        )

    async def _manage(
        self, ds: Obj, nodes: list[Obj], node_pods: dict[str, list[Obj]], hash_: str
    ) -> tuple[set[str], set[str]]:
        template = _spec(ds).get("template") or {}
        surge, _ = budgets(ds, len(nodes))
        rolling = ((_spec(ds).get("updateStrategy") or {}).get("type") or "RollingUpdate") == (
            "RollingUpdate"
        )
        surge_on = rolling and surge > 0
        to_create: list[str] = []
        to_delete: list[Obj] = []
        known = set()
        for node in nodes:
            name = str(_meta(node).get("name"))
            known.add(name)
            run, keep = node_should_run(template, node)
            pods = node_pods.get(name) or []
            if not keep:
                to_delete.extend(pods)
                continue
            if not run and not pods:
                continue
            failed = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed"]
            ds_key = f"{_ns(ds)}/{_meta(ds)['name']}"
            for p in failed:
                msg = (
                    f"Found failed daemon pod {_ns(p)}/{_meta(p)['name']} on node {name}, "
                    "will try to kill it"
                )
                await self.recorder.event(ds, "Warning", FAILED_DAEMON_POD, msg)
                self._note_failure(ds_key, name)
            to_delete.extend(failed)
            live = [p for p in pods if p not in failed]
            if not live:
                if run and not failed:
                    wait = self._backoff_left(ds_key, name)
                    if wait > 0:
                        # a pod that keeps failing is replaced after a growing pause
                        # (1 s doubling to 15 min, as Kubernetes), never in a hot loop
                        self.queue.add_after(ds_key, wait)
                    else:
                        to_create.append(name)
                continue
            keep_pods = pods_to_keep(live, hash_, surge_on)
            to_delete.extend(p for p in live if p not in keep_pods)
        for name, pods in node_pods.items():
            if name not in known:  # a node that is gone (or a pod with no target)
                to_delete.extend(pods)
        created = await self._create_pods(ds, to_create, hash_)
        deleted = await self._delete_pods(ds, to_delete)
        return created, deleted

    def _note_failure(self, ds_key: str, node: str) -> None:
        delay, _ = self._failures.get((ds_key, node), (0.0, 0.0))
        delay = min(max(1.0, delay * 2), FAILED_POD_MAX_BACKOFF)
        self._failures[(ds_key, node)] = (delay, self.clock.monotonic() + delay)

    def _backoff_left(self, ds_key: str, node: str) -> float:
        entry = self._failures.get((ds_key, node))
        return 0.0 if entry is None else max(0.0, entry[1] - self.clock.monotonic())

    async def _rolling_update(
        self, ds: Obj, nodes: list[Obj], node_pods: dict[str, list[Obj]], hash_: str
    ) -> tuple[set[str], set[str]]:
        template = _spec(ds).get("template") or {}
        eligible: dict[str, list[Obj]] = {}
        for node in nodes:
            name = str(_meta(node).get("name"))
            if node_should_run(template, node)[0]:
                eligible[name] = node_pods.get(name) or []
        surge, unavailable = budgets(ds, len(eligible))
        min_ready = int(_spec(ds).get("minReadySeconds") or 0)
        now = self.clock.now()
        delete, create = rolling_plan(
            eligible, hash_, surge, unavailable, lambda p: is_available(p, min_ready, now)
        )
        if min_ready > 0:
            self.queue.add_after(f"{_ns(ds)}/{_meta(ds)['name']}", float(min_ready) + 0.5)
        created = await self._create_pods(ds, create, hash_)
        deleted = await self._delete_pods(ds, delete)
        return created, deleted

    async def _create_pods(self, ds: Obj, node_names: list[str], hash_: str) -> set[str]:
        out: set[str] = set()
        for node in node_names:
            try:
                pod = await self.client.create(PODS, new_pod(ds, node, hash_), _ns(ds))
            except StatusError as e:
                await self.recorder.event(
                    ds, "Warning", FAILED_CREATE, f"Error creating: {e.message}"
                )
                raise
            name = str(_meta(pod)["name"])
            out.add(name)
            await self.recorder.event(ds, "Normal", SUCCESSFUL_CREATE, f"Created pod: {name}")
        return out

    async def _delete_pods(self, ds: Obj, pods: list[Obj]) -> set[str]:
        out: set[str] = set()
        seen: set[str] = set()
        for pod in pods:
            name = str(_meta(pod)["name"])
            if name in seen:
                continue
            seen.add(name)
            try:
                await self.client.delete(PODS, name, _ns(ds))
            except StatusError as e:
                if e.code == 404:
                    continue
                raise
            out.add(name)
            await self.recorder.event(ds, "Normal", SUCCESSFUL_DELETE, f"Deleted pod: {name}")
        return out

    # --- ControllerRevisions ----------------------------------------------------------------
    async def _history(self, ds: Obj, claimed: list[Obj]) -> tuple[Obj, list[Obj]]:
        """(current revision, the others) of the ``claimed`` revisions; creates or bumps
        the current one."""
        uid = str(_meta(ds).get("uid"))
        revs = sorted(claimed, key=lambda r: int(r.get("revision") or 0))
        data = revision_data(ds)
        max_rev = max((int(r.get("revision") or 0) for r in revs), default=0)
        same = [r for r in revs if r.get("data") == data]
        if same:
            cur = same[-1]
            others = [r for r in revs if r is not cur]
            if int(cur.get("revision") or 0) < max_rev:
                bumped = clone(cur)
                bumped["revision"] = max_rev + 1
                cur = await self.client.update(CONTROLLERREVISIONS, bumped, _ns(ds))
            return cur, others
        collision = (ds.get("status") or {}).get("collisionCount")
        hash_ = du.compute_hash(_spec(ds).get("template") or {}, collision)
        labels = dict(((_spec(ds).get("template") or {}).get("metadata") or {}).get("labels") or {})
        labels[HASH_LABEL] = hash_
        name = f"{str(_meta(ds)['name'])[:223]}-{hash_}"
        body: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {
                "name": name,
                "labels": labels,
                "ownerReferences": [controller_ref(ds, "apps/v1", "DaemonSet")],
            },
            "data": data,
            "revision": max_rev + 1,
        }
        try:
            cur = await self.client.create(CONTROLLERREVISIONS, body, _ns(ds))
        except StatusError as e:
            if e.code != 409 or e.reason != "AlreadyExists":
                raise
            found = await self.client.get(CONTROLLERREVISIONS, name, _ns(ds))
            ref = _controller_of(found) or {}
            if ref.get("uid") == uid and found.get("data") == data:
                cur = found
            else:  # a hash collision: another name next time
                ds.setdefault("status", {})["collisionCount"] = int(collision or 0) + 1
                await self.client.update(DAEMONSETS, ds, _ns(ds), sub="status")
                raise
        return cur, revs

    async def _cleanup_history(
        self, ds: Obj, old_revs: list[Obj], node_pods: dict[str, list[Obj]]
    ) -> None:
        limit = int(_spec(ds).get("revisionHistoryLimit", 10) or 0)
        excess = len(old_revs) - limit
        if excess <= 0:
            return
        live = {pod_hash(p) for pods in node_pods.values() for p in pods}
        for rev in sorted(old_revs, key=lambda r: int(r.get("revision") or 0)):
            if excess <= 0:
                break
            if (_meta(rev).get("labels") or {}).get(HASH_LABEL) in live:
                continue
            try:
                await self.client.delete(CONTROLLERREVISIONS, _meta(rev)["name"], _ns(ds))
            except StatusError as e:
                if e.code != 404:
                    raise
            excess -= 1

    # --- status -------------------------------------------------------------------------------
    async def _update_status(
        self, ds: Obj, nodes: list[Obj], node_pods: dict[str, list[Obj]], hash_: str
    ) -> None:
        now = self.clock.now()
        st = calculate_status(ds, nodes, node_pods, hash_, now)
        if st == (ds.get("status") or {}):
            return
        ds["status"] = st
        await self.client.update(DAEMONSETS, ds, _ns(ds), sub="status")
