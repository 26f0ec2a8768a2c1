"""The shared volume matcher (corral.api.volume_matching): classes with the beta
annotation first, the default class, what local-path refuses, FindMatchingVolume."""

from __future__ import annotations

from typing import Any

import pytest

from corral.api.selectors import node_selector_term_matches
from corral.api.volume_matching import (
    check_claim,
    claim_class,
    default_class,
    find_matching_volume,
    node_affinity_error,
    volume_class,
)

Obj = dict[str, Any]
BETA = "volume.beta.kubernetes.io/storage-class"


def _obj(cls: str | None = None, beta: str | None = None, **spec: Any) -> Obj:
    meta: Obj = {"name": "x", "namespace": "ns", "uid": "u"}
    if beta is not None:
        meta["annotations"] = {BETA: beta}
    if cls is not None:
        spec["storageClassName"] = cls
    return {"metadata": meta, "spec": spec}


@pytest.mark.parametrize(
    ("cls", "beta", "want"),
    [("fast", None, "fast"), (None, "slow", "slow"), ("fast", "slow", "slow"), (None, None, "")],
    ids=["field", "beta", "beta-wins", "none"],
)
def test_class_of_claims_and_volumes(cls: str | None, beta: str | None, want: str) -> None:
    """GetPersistentVolumeClaimClass / GetPersistentVolumeClass: the beta annotation wins."""
    assert claim_class(_obj(cls, beta)) == want
    assert volume_class(_obj(cls, beta)) == want


def _sc(name: str, created: str, default: str = "", beta: str = "") -> Obj:
    a = {}
    if default:
        a["storageclass.kubernetes.io/is-default-class"] = default
    if beta:
        a["storageclass.beta.kubernetes.io/is-default-class"] = beta
    return {"metadata": {"name": name, "creationTimestamp": created, "annotations": a}}


@pytest.mark.parametrize(
    ("classes", "want"),
    [
        ([], None),
        ([_sc("a", "1", "false")], None),
        ([_sc("a", "1", "true"), _sc("b", "2", beta="true")], "b"),
        ([_sc("b", "1", "true"), _sc("a", "1", "true")], "a"),
    ],
    ids=["none", "not-default", "newest", "tie-by-name"],
)
def test_default_class(classes: list[Obj], want: str | None) -> None:
    assert default_class(classes) == want


@pytest.mark.parametrize(
    ("spec", "refused"),
    [
        ({"accessModes": ["ReadWriteOnce"]}, ""),
        ({"accessModes": ["ReadWriteOncePod"]}, ""),
        ({"accessModes": ["ReadWriteMany"]}, "access mode ReadWriteMany is not supported"),
        ({"accessModes": ["ReadOnlyMany"]}, "access mode ReadOnlyMany is not supported"),
        ({"accessModes": ["ReadWriteOnce"], "volumeMode": "Block"}, "Filesystem volume mode"),
    ],
    ids=["rwo", "rwop", "rwx", "rox", "block"],
)
def test_check_claim(spec: Obj, refused: str) -> None:
    got = check_claim({"spec": spec})
    assert (refused in got) if refused else got == ""


def _pv(
    name: str,
    size: str = "1Gi",
    cls: str = "c",
    phase: str = "Available",
    host: str = "",
    ref: Obj | None = None,
    modes: tuple[str, ...] = ("ReadWriteOnce",),
    beta: str | None = None,
) -> Obj:
    spec: Obj = {"capacity": {"storage": size}, "storageClassName": cls, "accessModes": list(modes)}
    if host:
        term = {"matchExpressions": [{"key": "h", "operator": "In", "values": [host]}]}
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [term]}}
    if ref is not None:
        spec["claimRef"] = ref
    meta: Obj = {"name": name}
    if beta is not None:
        meta["annotations"] = {BETA: beta}
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


CLAIM = {
    "metadata": {"name": "d", "namespace": "ns", "uid": "u"},
    "spec": {
        "storageClassName": "c",
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
    },
}
MINE = {"namespace": "ns", "name": "d", "uid": "u"}

# (volumes, delay binding, node labels or None) -> the chosen volume
FIND_CASES: list[tuple[str, list[Obj], bool, dict[str, str] | None, str | None]] = [
    ("smallest", [_pv("big", "5Gi"), _pv("small", "2Gi"), _pv("tiny", "1Mi")], False, None, "small"),
    ("only-available", [_pv("a", phase="Released"), _pv("b", phase="Bound")], False, None, None),
    ("beta-annotated-volume", [_pv("a", cls="", beta="c")], False, None, "a"),
    ("delay-without-node", [_pv("a")], True, None, None),
    ("delay-pre-bound", [_pv("a"), _pv("b", "9Gi", ref=MINE)], True, None, "b"),
    ("node-affinity", [_pv("a", host="n2"), _pv("b", "2Gi", host="n1")], True, {"h": "n1"}, "b"),
    ("pre-bound-elsewhere", [_pv("a", host="n2", ref=MINE), _pv("b")], True, {"h": "n1"}, None),
    ("access-modes-with-node", [_pv("a", modes=("ReadOnlyMany",))], True, {"h": "n1"}, None),
    ("claimed-by-another", [_pv("a", ref={**MINE, "uid": "x"})], False, None, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("pvs", "delay", "labels", "want"),
    [c[1:] for c in FIND_CASES],
    ids=[c[0] for c in FIND_CASES],
)
def test_find_matching_volume(
    pvs: list[Obj], delay: bool, labels: dict[str, str] | None, want: str | None
) -> None:
    got = find_matching_volume(CLAIM, pvs, delay, labels, (), "n1")
    assert (got["metadata"]["name"] if got else None) == want


def test_find_matching_volume_excludes() -> None:
    pvs = [_pv("a"), _pv("b", "2Gi")]
    got = find_matching_volume(CLAIM, pvs, True, {}, {"a"}, "n1")
    assert got is not None and got["metadata"]["name"] == "b"


@pytest.mark.parametrize(
    ("term", "want"),
    [
        ({"matchExpressions": [{"key": "h", "operator": "In", "values": ["n1"]}]}, True),
        ({"matchExpressions": [{"key": "h", "operator": "NotIn", "values": ["n1"]}]}, False),
        ({"matchExpressions": [{"key": "z", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "n", "operator": "Gt", "values": ["3"]}]}, True),
        ({"matchExpressions": [{"key": "n", "operator": "Lt", "values": ["3"]}]}, False),
        ({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}, True),
        ({"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["n1"]}]}, False),
        ({}, False),
    ],
    ids=["in", "not-in", "does-not-exist", "gt", "lt", "field", "unknown-field", "empty"],
)
def test_node_selector_term(term: Obj, want: bool) -> None:
    assert node_selector_term_matches(term, {"h": "n1", "n": "5"}, "n1") is want


def test_node_affinity_error_wording() -> None:
    assert node_affinity_error(_pv("a", host="n2"), "n1", {"h": "n1"}) == (
        "no matching NodeSelectorTerms"
    )
    assert node_affinity_error(_pv("a"), "n1", {}) == ""
