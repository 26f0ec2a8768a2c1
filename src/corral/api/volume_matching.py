"""Which PersistentVolume serves which claim: the one matcher of the control plane.

Pure functions over plain objects, shared so that the parts that decide about volumes
cannot disagree: the PV binder (``controllers/persistentvolume.py``), the local-path
provisioner (``controllers/localpath.py``), the scheduler's VolumeBinding plugin and its
PreBind (``scheduler/plugins/volumebinding.py``, ``scheduler/volumes.py``) and the
DefaultStorageClass admission (``apiserver/volume_admission.py``). They follow
Kubernetes 1.32's ``pkg/controller/volume/persistentvolume/util`` and
``component-helpers/storage/volume``:

- classes: the beta annotation ``volume.beta.kubernetes.io/storage-class`` wins over
  ``spec.storageClassName`` on claims and volumes alike (``GetPersistentVolumeClaimClass``,
  ``GetPersistentVolumeClass``); the default class is the newest one annotated
  ``is-default-class: "true"`` (GA or beta), ties by name (``GetDefaultClass``);
- ``find_matching_volume`` is ``FindMatchingVolume``: a volume bound or pre-bound to the
  claim wins (unless its node affinity excludes the given node); otherwise the smallest
  Available volume of the claim's class that is large enough, of the claim's volume
  mode, matching its selector and (with a node) its access modes and the node;
- ``find_best_match`` is the PV controller's ``findBestMatchForClaim``:
  ``find_matching_volume`` over the access-mode index (fewest modes first);
- ``check_claim`` says what Corral's local-path provisioner can never provision.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from fractions import Fraction
from typing import Any

from corral.api.quantity import parse_quantity
from corral.api.selectors import (
    SelectorError,
    node_selector_term_matches,
    try_selector_from_object,
)
from corral.api.volumes import DEFAULT_CLASS

Obj = dict[str, Any]

BETA_CLASS = "volume.beta.kubernetes.io/storage-class"
BETA_DEFAULT_CLASS = "storageclass.beta.kubernetes.io/is-default-class"
#: the access modes a local-path volume (a directory on one node) offers
LOCAL_PATH_MODES = ("ReadWriteOnce", "ReadWriteOncePod")


def _meta(obj: Obj) -> Obj:
    m: Obj = obj.get("metadata") or {}
    return m


def _spec(obj: Obj) -> Obj:
    s: Obj = obj.get("spec") or {}
    return s


def _annotations(obj: Obj) -> dict[str, str]:
    a: dict[str, str] = _meta(obj).get("annotations") or {}
    return a


def claim_class(claim: Obj) -> str:
    """The claim's class (``GetPersistentVolumeClaimClass``): the beta annotation if
    present, else ``spec.storageClassName``, else ""."""
    beta = _annotations(claim).get(BETA_CLASS)
    if beta is not None:
        return str(beta)
    return str(_spec(claim).get("storageClassName") or "")


def volume_class(pv: Obj) -> str:
    """The volume's class (``GetPersistentVolumeClass``): the beta annotation if present,
    else ``spec.storageClassName``, else ""."""
    beta = _annotations(pv).get(BETA_CLASS)
    if beta is not None:
        return str(beta)
    return str(_spec(pv).get("storageClassName") or "")


def claim_names_class(claim: Obj) -> bool:
    """Whether the claim chose a class itself (the field, even ``""``, or the beta
    annotation): such a claim never gets the default class."""
    return _spec(claim).get("storageClassName") is not None or BETA_CLASS in _annotations(claim)


def is_default_class(sc: Obj) -> bool:
    """Whether a StorageClass is annotated as default (GA or beta annotation ``"true"``)."""
    a = _annotations(sc)
    return "true" in (a.get(DEFAULT_CLASS), a.get(BETA_DEFAULT_CLASS))


def default_class(classes: Iterable[Obj]) -> str | None:
    """``GetDefaultClass``: the name of the newest default class (ties by name), or None."""
    defaults = [c for c in classes if is_default_class(c)]
    if not defaults:
        return None
    defaults.sort(key=lambda c: str(_meta(c).get("name", "")))
    defaults.sort(key=lambda c: str(_meta(c).get("creationTimestamp", "")), reverse=True)
    return str(_meta(defaults[0])["name"])


def storage_quantity(q: Any) -> Fraction:
    """A storage quantity's value; a missing or unparsable one counts as 0."""
    try:
        return parse_quantity(q) if q is not None else Fraction(0)
    except (ValueError, TypeError, ArithmeticError):
        return Fraction(0)


def requested(claim: Obj) -> Fraction:
    """The claim's ``spec.resources.requests.storage`` (0 when absent or invalid)."""
    return storage_quantity(
        ((_spec(claim).get("resources") or {}).get("requests") or {}).get("storage")
    )


def capacity(pv: Obj) -> Fraction:
    """The volume's ``spec.capacity.storage`` (0 when absent or invalid)."""
    return storage_quantity((_spec(pv).get("capacity") or {}).get("storage"))


def volume_mode(obj: Obj) -> str:
    """``spec.volumeMode`` of a claim or a volume (``Filesystem`` when unset)."""
    return str(_spec(obj).get("volumeMode") or "Filesystem")


def access_modes_fit(claim: Obj, pv: Obj) -> bool:
    """``CheckAccessModes``: every mode the claim asks for is one the volume offers."""
    return set(_spec(claim).get("accessModes") or ()) <= set(_spec(pv).get("accessModes") or ())


def is_bound_to(pv: Obj, claim: Obj) -> bool:
    """``IsVolumeBoundToClaim``: the volume's claimRef names the claim, with its uid or
    with none (pre-bound by name)."""
    ref = _spec(pv).get("claimRef")
    if not isinstance(ref, dict):
        return False
    m = _meta(claim)
    if ref.get("name") != m.get("name") or ref.get("namespace") != m.get("namespace"):
        return False
    return not ref.get("uid") or ref.get("uid") == m.get("uid")


def node_affinity_error(pv: Obj, node: str, labels: Mapping[str, str]) -> str:
    """``CheckNodeAffinity``: "" when the volume's required node affinity (if any) admits
    the node, else upstream's error text."""
    required = (_spec(pv).get("nodeAffinity") or {}).get("required")
    if not required:
        return ""
    terms = required.get("nodeSelectorTerms") or []
    if any(node_selector_term_matches(t, labels, node) for t in terms):
        return ""
    return "no matching NodeSelectorTerms"


def mismatch(pv: Obj, claim: Obj) -> str:
    """``checkVolumeSatisfyClaim``: why ``pv`` cannot serve ``claim`` ("" when it can)."""
    if capacity(pv) < requested(claim):
        return "requested PV is too small"
    if volume_class(pv) != claim_class(claim):
        return "storageClassName does not match"
    if volume_mode(pv) != volume_mode(claim):
        return "incompatible volumeMode"
    if not access_modes_fit(claim, pv):
        return "incompatible accessMode"
    return ""


def check_claim(claim: Obj) -> str:
    """What no local-path volume can serve ("" when it can be provisioned): a local-path
    volume is one directory on one node, so only single-node access modes and the
    Filesystem mode. The provisioner's ProvisioningFailed event and the scheduler's
    FailedScheduling message both carry this text."""
    bad = [m for m in _spec(claim).get("accessModes") or () if m not in LOCAL_PATH_MODES]
    if bad:
        return (
            f"access mode {bad[0]} is not supported: a local path volume is on one node "
            "(ReadWriteOnce or ReadWriteOncePod)"
        )
    if volume_mode(claim) != "Filesystem":
        return "only the Filesystem volume mode is supported"
    return ""


def find_matching_volume(
    claim: Obj,
    pvs: Iterable[Obj],
    delay_binding: bool,
    node_labels: Mapping[str, str] | None = None,
    excluded: Collection[str] = (),
    node: str = "",
) -> Obj | None:
    """``FindMatchingVolume``: the volume for ``claim`` among ``pvs`` (none of the names
    in ``excluded``), or None.

    Without a node (``node_labels`` None: the PV controller), a volume bound or
    pre-bound to the claim is returned, and when ``delay_binding`` nothing else (the
    scheduler chooses). With a node (the scheduler), the volume's node affinity must
    admit it (``node`` is its name, for ``matchFields``) and its access modes must
    include the claim's. Otherwise: the smallest Available volume of the claim's class
    whose size, volume mode and labels (the claim's selector) fit, the first one in
    ``pvs``' order among equals.
    """
    try:
        raw = _spec(claim).get("selector")
        selector = try_selector_from_object(raw) if raw is not None else None
    except SelectorError:
        return None
    want, cls, mode = requested(claim), claim_class(claim), volume_mode(claim)
    best: Obj | None = None
    best_size = Fraction(0)
    for pv in pvs:
        if _meta(pv).get("name") in excluded:
            continue
        if _spec(pv).get("claimRef") is not None and not is_bound_to(pv, claim):
            continue
        size = capacity(pv)
        if size < want or volume_mode(pv) != mode or _meta(pv).get("deletionTimestamp"):
            continue
        affinity_ok = node_labels is None or not node_affinity_error(pv, node, node_labels)
        if is_bound_to(pv, claim):
            return pv if affinity_ok else None
        if node_labels is None and delay_binding:
            continue  # the scheduler binds the unbound volumes of delayed classes
        if (pv.get("status") or {}).get("phase") != "Available":
            continue
        if selector is not None and not selector.matches(_meta(pv).get("labels") or {}):
            continue
        if volume_class(pv) != cls or not affinity_ok:
            continue
        if node_labels is not None and not access_modes_fit(claim, pv):
            continue
        if best is None or size < best_size:
            best, best_size = pv, size
    return best


def find_best_match(claim: Obj, volumes: list[Obj], delay_binding: bool) -> Obj | None:
    """``findBestMatchForClaim`` over the access-mode index: for each set of access modes
    the volumes offer that includes the claim's (fewest modes first), the shared
    ``find_matching_volume`` among the volumes with exactly that set; None: no match."""
    groups: dict[frozenset[str], list[Obj]] = {}
    for pv in volumes:
        if access_modes_fit(claim, pv):
            groups.setdefault(frozenset(_spec(pv).get("accessModes") or ()), []).append(pv)
    for modes in sorted(groups, key=lambda m: (len(m), sorted(m))):
        group = sorted(groups[modes], key=lambda v: str(_meta(v).get("name", "")))
        best = find_matching_volume(claim, group, delay_binding)
        if best is not None:
            return best
    return None


def claim_ref(claim: Obj) -> Obj:
    """The ``spec.claimRef`` of a volume bound to ``claim`` (``GetReference``)."""
    m = _meta(claim)
    return {
        "kind": "PersistentVolumeClaim",
        "namespace": m.get("namespace", ""),
        "name": m.get("name", ""),
        "uid": m.get("uid", ""),
        "apiVersion": "v1",
        "resourceVersion": m.get("resourceVersion", ""),
    }


def candidate_volumes(claim: Obj, pvs: Iterable[Obj]) -> tuple[Obj, ...]:
    """What ``find_matching_volume`` may return for ``claim`` on some node, before the
    node is known (the scheduler's per-attempt list; its Filter then applies each
    volume's node affinity): a volume bound or pre-bound to the claim alone if there is
    one, else the Available volumes that fit, smallest first (ties by name)."""
    try:
        raw = _spec(claim).get("selector")
        selector = try_selector_from_object(raw) if raw is not None else None
    except SelectorError:
        return ()
    want, cls, mode = requested(claim), claim_class(claim), volume_mode(claim)
    found: list[tuple[Fraction, str, Obj]] = []
    for pv in pvs:
        if _spec(pv).get("claimRef") is not None and not is_bound_to(pv, claim):
            continue
        size = capacity(pv)
        if size < want or volume_mode(pv) != mode or _meta(pv).get("deletionTimestamp"):
            continue
        if is_bound_to(pv, claim):
            return (pv,)
        if (pv.get("status") or {}).get("phase") != "Available":
            continue
        if selector is not None and not selector.matches(_meta(pv).get("labels") or {}):
            continue
        if volume_class(pv) != cls or not access_modes_fit(claim, pv):
            continue
        found.append((size, str(_meta(pv).get("name", "")), pv))
    found.sort(key=lambda f: f[:2])
    return tuple(f[2] for f in found)


__all__ = [
    "BETA_CLASS",
    "BETA_DEFAULT_CLASS",
    "LOCAL_PATH_MODES",
    "access_modes_fit",
    "candidate_volumes",
    "capacity",
    "check_claim",
    "claim_class",
    "claim_names_class",
    "claim_ref",
    "default_class",
    "find_best_match",
    "find_matching_volume",
    "is_bound_to",
    "is_default_class",
    "mismatch",
    "node_affinity_error",
    "requested",
    "storage_quantity",
    "volume_class",
    "volume_mode",
]
