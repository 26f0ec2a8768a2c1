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
  free storage``. A local-path claim the provisioner can never serve (the shared
  ``check_claim``: ReadWriteMany, Block...) cannot be provisioned anywhere: with no
  static volume for it, PreFilter rejects every node with
  ``persistentvolumeclaim "x" cannot be provisioned by rancher.io/local-path: <why>``.
  An unbound claim that a volume already names with its uid (pre-bound at an earlier
  PreBind, or provisioned) counts as bound to that volume.

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
from typing import ClassVar

import numpy as np

from corral.api.volume_matching import (
    candidate_volumes,
    check_claim,
    claim_class,
    find_matching_volume,
    is_bound_to,
    node_affinity_error,
)
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
    #: why the class' local-path provisioner cannot make a volume for it ("" if it can)
    refusal: str = ""


def cannot_provision(name: str) -> str:
    """The start of the PreFilter message for a claim nobody can provision."""
    return f'persistentvolumeclaim "{name}" cannot be provisioned by {LOCAL_PATH_PROVISIONER}'


def is_bound(pvc: Obj) -> bool:
    """Upstream's ``isPVCFullyBound``: a volume named and the binding completed."""
    spec = pvc.get("spec") or {}
    meta = pvc.get("metadata") or {}
    if not spec.get("volumeName"):
        return False
    done = BIND_COMPLETED in (meta.get("annotations") or {})
    return done or (pvc.get("status") or {}).get("phase") == "Bound"


def matching_volumes(claim: Obj, volumes: Iterable[Obj]) -> tuple[Obj, ...]:
    """The volumes that may take ``claim`` on some node (the shared
    ``candidate_volumes``: one bound or pre-bound to it, else the fitting Available
    ones, smallest first)."""
    return candidate_volumes(claim, volumes)


def _points_at(claim: Obj, volumes: Iterable[Obj]) -> Obj | None:
    """A volume whose claimRef names ``claim`` with its uid (the scheduler pre-bound it,
    or a provisioner made it): the claim is as good as bound to it."""
    meta = claim.get("metadata") or {}
    if not meta.get("uid"):
        return None
    for pv in volumes:
        ref = (pv.get("spec") or {}).get("claimRef")
        if isinstance(ref, dict) and ref.get("uid") == meta["uid"] and is_bound_to(pv, claim):
            return pv
    return None


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
            all_volumes = list(volumes())
            pv = _points_at(pvc, all_volumes)
            if pv is not None:
                bound.append(pv)  # its node affinity decides, as for a bound claim
                continue
            found = matching_volumes(pvc, all_volumes)
            refusal = ""
            if cls.get("provisioner") == LOCAL_PATH_PROVISIONER:
                refusal = check_claim(pvc)
                if refusal and not found:
                    return PodVolumes(error=f"{cannot_provision(name)}: {refusal}")
            unbound.append(Unbound(key, pvc, cls, found, refusal))
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


def volume_allows(pv: Obj, node: str, labels: dict[str, str]) -> bool:
    """Whether ``pv``'s required node affinity admits one node (for PreBind's choice)."""
    return not node_affinity_error(pv, node, labels)


def choose_volume(
    u: Unbound, node: str, labels: dict[str, str], taken: frozenset[str] = frozenset()
) -> Obj | None:
    """The static volume PreBind binds ``u`` to on ``node`` (the shared
    ``find_matching_volume`` with the node, none of ``taken``, the volumes the pod's
    other claims got); None: provision instead."""
    return find_matching_volume(u.claim, u.candidates, True, labels, taken, node)


@register
class VolumeBinding:
    """The VolumeBinding plugin: PreFilter and Filter over ``PodInfo.volumes`` (see the
    module docstring); PreBind lives in the scheduler shell (``scheduler/volumes.py``)."""

    name: ClassVar[str] = "VolumeBinding"
    resolvable: ClassVar[frozenset[str]] = frozenset()

    def pre_filter(self, pod: PodInfo) -> str:
        """The message that rejects every node, "" to go on to ``filter``."""
        vols: PodVolumes | None = pod.volumes
        return vols.error if vols is not None else ""

    def filter(self, pod: PodInfo, table: NodeTableView, candidates: Index) -> list[Failure]:
        """The nodes (of ``candidates``) each claim excludes, grouped by upstream's
        reason: a missing bound volume, a bound (or pre-bound) volume's node affinity, an
        unbound claim that neither a static volume nor its provisioner can serve there."""
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
            if provisioner == NO_PROVISIONER or u.refusal:
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
    "cannot_provision",
    "choose_volume",
    "is_bound",
    "matching_volumes",
    "resolve",
    "volume_allows",
]
