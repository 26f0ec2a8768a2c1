"""VolumeBinding: a pod's PersistentVolumeClaims must be usable on the node (PreFilter,
Filter), and claims waiting for their first consumer are provisioned there (PreBind).

Registered in the plugin registry; run by ``scheduler.decide``. The plugin itself stays
pure: the scheduler shell resolves the pod's claims from its PVC, PV and StorageClass
informers once per attempt (:func:`resolve`, only for pods that name a claim, so other
pods pay nothing) into ``PodInfo.volumes``, a :class:`PodVolumes`; PreFilter and Filter
read only that and the node table. The shell's PreBind (``scheduler.py``) annotates each
claim in ``PodVolumes.to_provision`` with ``volume.kubernetes.io/selected-node`` and waits
for the claims to be Bound before it binds the pod.

Upstream's (1.32) rules and words:

- PreFilter (every node rejected, ``0/N nodes are available: <message>.``): a missing
  claim (``persistentvolumeclaim "x" not found``), a claim being deleted or Lost, an
  unbound claim whose class binds Immediately (or is unknown, or none):
  ``pod has unbound immediate PersistentVolumeClaims``;
- Filter, per node: a bound claim whose PersistentVolume's required node affinity excludes
  the node (``node(s) had volume node affinity conflict``), or whose volume does not
  exist; an unbound ``WaitForFirstConsumer`` claim that no available volume
  (``matching_volumes``: class, modes, size, selector) can take on the node and that
  cannot be provisioned there either: no provisioner (``kubernetes.io/no-provisioner``)
  or the class' ``allowedTopologies`` exclude the node (``node(s) didn't find available
  persistent volumes to bind``), or, for Corral's local-path provisioner, the node's
  agent keeps no local volumes (no ``LOCAL_PATH_ROOT``): ``node(s) did not have enough
  free storage``.

At PreBind a claim goes to the first matching volume that admits the chosen node
(``choose_volume``: the scheduler writes the volume's ``claimRef`` and the PV controller
completes the binding), else it is provisioned there. Two claims of one pod may pick
the same volume at Filter (upstream tracks the volumes chosen within one pod there);
PreBind does not give one volume to two claims.

All these rejections are UnschedulableAndUnresolvable: preemption cannot fix them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np

from corral.api.quantity import parse_quantity
from corral.api.selectors import SelectorError, try_selector_from_object
from corral.api.volumes import BIND_COMPLETED, LOCAL_PATH_PROVISIONER
from corral.scheduler.framework import Failure, Index, Mask, NodeTableView, Obj, PodInfo, register
from corral.scheduler.plugins.nodeaffinity import term_mask

BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
NODE_CONFLICT = "node(s) had volume node affinity conflict"
NOT_ENOUGH_SPACE = "node(s) did not have enough free storage"
PV_NOT_EXIST = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
NO_PROVISIONER = "kubernetes.io/no-provisioner"
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"

Getter = Callable[[str], Obj | None]


@dataclass(frozen=True)
class PodVolumes:
    """A pod's claims as the scheduler's caches showed them at the start of an attempt."""

    #: a PreFilter rejection (every node fails with it), "" if none
    error: str = ""
    #: PersistentVolumes of the bound claims
    bound: tuple[Obj, ...] = ()
    #: some bound claim names a PersistentVolume that does not exist
    missing_pv: bool = False
    #: the unbound WaitForFirstConsumer claims, bound or provisioned at PreBind
    unbound: tuple[Unbound, ...] = ()


@dataclass(frozen=True)
class Unbound:
    """An unbound WaitForFirstConsumer claim and the static volumes that could take it."""

    key: str  # ns/name
    claim: Obj
    cls: Obj
    #: available PersistentVolumes that satisfy the claim, pre-bound first, then smallest
    candidates: tuple[Obj, ...] = ()


def is_bound(pvc: Obj) -> bool:
    """Upstream's ``isPVCFullyBound``: a volume named and the binding completed."""
    spec = pvc.get("spec") or {}
    meta = pvc.get("metadata") or {}
    if not spec.get("volumeName"):
        return False
    done = BIND_COMPLETED in (meta.get("annotations") or {})
    return done or (pvc.get("status") or {}).get("phase") == "Bound"


def claim_class(pvc: Obj) -> str:
    spec = pvc.get("spec") or {}
    name = spec.get("storageClassName")
    if name is None:  # the beta annotation still wins when the field is unset
        name = (
            (pvc.get("metadata") or {})
            .get("annotations", {})
            .get("volume.beta.kubernetes.io/storage-class")
        )
    return str(name or "")


def _storage(obj: Obj, *path: str) -> Fraction:
    cur: Any = obj
    for p in path:
        cur = (cur or {}).get(p)
    try:
        return parse_quantity(cur) if cur is not None else Fraction(0)
    except (ValueError, TypeError):
        return Fraction(0)


def matching_volumes(claim: Obj, cls_name: str, volumes: Iterable[Obj]) -> tuple[Obj, ...]:
    """The volumes that may take ``claim`` (upstream's ``FindMatchingVolume`` without the
    node: class, not being deleted, unclaimed or pre-bound to this claim, volume mode,
    access modes, capacity, the claim's selector); pre-bound first, then smallest."""
    meta, spec = claim.get("metadata") or {}, claim.get("spec") or {}
    ns, name, uid = meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", "")
    want = _storage(claim, "spec", "resources", "requests", "storage")
    modes = set(spec.get("accessModes") or ())
    mode = spec.get("volumeMode") or "Filesystem"
    try:
        selector = (
            None if spec.get("selector") is None else try_selector_from_object(spec["selector"])
        )
    except SelectorError:
        return ()
    found: list[tuple[int, Fraction, str, Obj]] = []
    for pv in volumes:
        pmeta, pspec = pv.get("metadata") or {}, pv.get("spec") or {}
        if pmeta.get("deletionTimestamp") or (pspec.get("storageClassName") or "") != cls_name:
            continue
        ref = pspec.get("claimRef")
        if ref:
            if ref.get("namespace") != ns or ref.get("name") != name:
                continue
            if ref.get("uid") and ref.get("uid") != uid:
                continue
        elif (pv.get("status") or {}).get("phase") not in (None, "", "Pending", "Available"):
            continue
        if (pspec.get("volumeMode") or "Filesystem") != mode:
            continue
        if not modes <= set(pspec.get("accessModes") or ()):
            continue
        size = _storage(pv, "spec", "capacity", "storage")
        if size < want:
            continue
        if selector is not None and not selector.matches(pmeta.get("labels") or {}):
            continue
        found.append((0 if ref else 1, size, str(pmeta.get("name", "")), pv))
    found.sort(key=lambda f: f[:3])
    return tuple(f[3] for f in found)


def resolve(
    namespace: str,
    claims: tuple[str, ...],
    get_claim: Getter,
    get_volume: Getter,
    get_class: Getter,
    volumes: Callable[[], Iterable[Obj]] = tuple,
) -> PodVolumes:
    """PreFilter's reading of the caches: ``get_claim`` takes ``ns/name``, the others a
    name; each returns ``None`` for a missing object; ``volumes`` lists every volume
    (read only when an unbound WaitForFirstConsumer claim needs a static match)."""
    bound: list[Obj] = []
    missing = False
    unbound: list[Unbound] = []
    immediate = False
    for name in claims:
        key = f"{namespace}/{name}"
        pvc = get_claim(key)
        if pvc is None:
            return PodVolumes(error=f'persistentvolumeclaim "{name}" not found')
        if (pvc.get("status") or {}).get("phase") == "Lost":
            pv_name = (pvc.get("spec") or {}).get("volumeName") or ""
            return PodVolumes(
                error=f'persistentvolumeclaim "{name}" bound to non-existent '
                f'persistentvolume "{pv_name}"'
            )
        if (pvc.get("metadata") or {}).get("deletionTimestamp"):
            return PodVolumes(error=f'persistentvolumeclaim "{name}" is being deleted')
        if is_bound(pvc):
            pv = get_volume(str(pvc["spec"]["volumeName"]))
            if pv is None:
                missing = True
            else:
                bound.append(pv)
            continue
        cls_name = claim_class(pvc)
        cls = get_class(cls_name) if cls_name else None
        if (
            cls is not None
            and cls.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER
            and not (pvc.get("spec") or {}).get("volumeName")
        ):
            unbound.append(Unbound(key, pvc, cls, matching_volumes(pvc, cls_name, volumes())))
        else:
            immediate = True
    if immediate:
        return PodVolumes(error=UNBOUND_IMMEDIATE)
    return PodVolumes("", tuple(bound), missing, tuple(unbound))


def _topology_mask(table: NodeTableView, terms: list[Obj]) -> Mask:
    """StorageClass ``allowedTopologies`` (TopologySelectorTerms, OR of ANDs)."""
    out = np.zeros(len(table), dtype=np.bool_)
    for term in terms:
        exprs = [
            {"key": e.get("key", ""), "operator": "In", "values": list(e.get("values") or [])}
            for e in term.get("matchLabelExpressions") or []
        ]
        out |= term_mask(table, {"matchExpressions": exprs})
    return out


def _affinity_mask(table: NodeTableView, pv: Obj) -> Mask | None:
    required = ((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required")
    if not required:
        return None
    out = np.zeros(len(table), dtype=np.bool_)
    for term in required.get("nodeSelectorTerms") or []:
        out |= term_mask(table, term)
    return out


def _requirement_matches(expr: Obj, labels: dict[str, str]) -> bool:
    key, op = expr.get("key", ""), expr.get("operator", "")
    values = [str(v) for v in expr.get("values") or ()]
    have = labels.get(key)
    if op == "In":
        return have is not None and have in values
    if op == "NotIn":
        return have is None or have not in values
    if op == "Exists":
        return have is not None
    if op == "DoesNotExist":
        return have is None
    if op in ("Gt", "Lt") and have is not None and len(values) == 1:
        try:
            a, b = int(have), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def volume_allows(pv: Obj, node: str, labels: dict[str, str]) -> bool:
    """Whether ``pv``'s required node affinity admits one node (for PreBind's choice)."""
    required = ((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required")
    if not required:
        return True
    for term in required.get("nodeSelectorTerms") or []:
        exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
        if not exprs and not fields:
            continue
        fields_ok = all(
            f.get("key") == "metadata.name" and _requirement_matches(f, {"metadata.name": node})
            for f in fields
        )
        if fields_ok and all(_requirement_matches(e, labels) for e in exprs):
            return True
    return False


def choose_volume(
    u: Unbound, node: str, labels: dict[str, str], taken: frozenset[str] = frozenset()
) -> Obj | None:
    """The static volume PreBind binds ``u`` to on ``node`` (none of ``taken``, the
    volumes the pod's other claims got); None: provision instead."""
    for pv in u.candidates:
        if (pv.get("metadata") or {}).get("name") not in taken and volume_allows(pv, node, labels):
            return pv
    return None


@register
class VolumeBinding:
    name: ClassVar[str] = "VolumeBinding"
    resolvable: ClassVar[frozenset[str]] = frozenset()

    def pre_filter(self, pod: PodInfo) -> str:
        """The message that rejects every node, "" to go on to ``filter``."""
        vols: PodVolumes | None = pod.volumes
        return vols.error if vols is not None else ""

    def filter(self, pod: PodInfo, table: NodeTableView, candidates: Index) -> list[Failure]:
        vols: PodVolumes | None = pod.volumes
        if vols is None:
            return []
        out: list[Failure] = []
        n = len(candidates)
        if vols.missing_pv:
            out.append(Failure(PV_NOT_EXIST, np.ones(n, dtype=np.bool_)))
        conflict = np.zeros(n, dtype=np.bool_)
        for pv in vols.bound:
            allowed = _affinity_mask(table, pv)
            if allowed is not None:
                conflict |= ~allowed[candidates]
        if conflict.any():
            out.append(Failure(NODE_CONFLICT, conflict))
        unmatched = np.zeros(n, dtype=np.bool_)
        no_room = np.zeros(n, dtype=np.bool_)
        for u in vols.unbound:
            static = np.zeros(len(table), dtype=np.bool_)
            for pv in u.candidates:
                allowed = _affinity_mask(table, pv)
                static |= True if allowed is None else allowed
            ok = static[candidates]
            provisioner = str(u.cls.get("provisioner") or "")
            if provisioner == NO_PROVISIONER:
                unmatched |= ~ok
                continue
            topo = np.ones(n, dtype=np.bool_)
            if terms := u.cls.get("allowedTopologies"):
                topo = _topology_mask(table, terms)[candidates]
            room = np.ones(n, dtype=np.bool_)
            if provisioner == LOCAL_PATH_PROVISIONER:
                roots, names = table.local_path_nodes, table.names
                room = np.fromiter((names[r] in roots for r in candidates), dtype=np.bool_, count=n)
            unmatched |= ~ok & ~topo
            no_room |= ~ok & topo & ~room
        no_room &= ~unmatched  # one reason per node, as upstream's first failing check
        if unmatched.any():
            out.append(Failure(BIND_CONFLICT, unmatched))
        if no_room.any():
            out.append(Failure(NOT_ENOUGH_SPACE, no_room))
        return out


__all__ = [
    "BIND_CONFLICT",
    "NODE_CONFLICT",
    "NOT_ENOUGH_SPACE",
    "PV_NOT_EXIST",
    "UNBOUND_IMMEDIATE",
    "PodVolumes",
    "Unbound",
    "VolumeBinding",
    "choose_volume",
    "is_bound",
    "matching_volumes",
    "resolve",
    "volume_allows",
]
