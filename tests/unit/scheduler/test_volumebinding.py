"""Tables for VolumeBinding: claims resolved from caches (``resolve``), PreFilter and
Filter through ``decide`` (so the FailedScheduling text is the one users see)."""

from __future__ import annotations

from typing import Any

import pytest

from corral.api.volumes import (
    BIND_COMPLETED,
    LOCAL_PATH_CLASS,
    LOCAL_PATH_PROVISIONER,
    LOCAL_PATH_ROOT,
)
from corral.scheduler.decide import build_plugins, decide, run_filters
from corral.scheduler.framework import Profile
from corral.scheduler.plugins.volumebinding import (
    PodVolumes,
    Unbound,
    choose_volume,
    matching_volumes,
    resolve,
    volume_allows,
)
from corral.scheduler.snapshot import NodeTable, pod_info

Obj = dict[str, Any]

NOT_HELPFUL = "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."  # sic, upstream


def _node(name: str, storage: bool = True, zone: str = "z1") -> Obj:
    return {
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "zone": zone},
            "annotations": {LOCAL_PATH_ROOT: f"/data/{name}/storage"} if storage else {},
        },
        "spec": {},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
    }


def _table() -> NodeTable:
    t = NodeTable(capacity=1)
    t.upsert_node(_node("a"))
    t.upsert_node(_node("b", zone="z2"))
    t.upsert_node(_node("c", storage=False))
    return t


def _claim(name: str, cls: str | None = LOCAL_PATH_CLASS, pv: str = "", **extra: Any) -> Obj:
    meta: Obj = {"name": name, "namespace": "ns", "uid": f"uid-{name}"}
    status: Obj = {"phase": "Pending"}
    if pv:
        meta["annotations"] = {BIND_COMPLETED: "yes"}
        status = {"phase": "Bound"}
    meta.update(extra.pop("meta", {}))
    spec: Obj = {
        "accessModes": ["ReadWriteOnce"],
        "volumeName": pv,
        "resources": {"requests": {"storage": extra.pop("size", "1Gi")}},
    }
    if "selector" in extra:
        spec["selector"] = extra.pop("selector")
    if cls is not None:
        spec["storageClassName"] = cls
    status.update(extra.pop("status", {}))
    return {"metadata": meta, "spec": spec, "status": status}


def _pv(
    name: str,
    hosts: list[str] | None = None,
    cls: str = "",
    size: str = "1Gi",
    ref: str = "",
    **meta: Any,
) -> Obj:
    spec: Obj = {
        "hostPath": {"path": f"/srv/{name}"},
        "capacity": {"storage": size},
        "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
        "storageClassName": cls,
    }
    if ref:
        spec["claimRef"] = {"namespace": "ns", "name": ref}
    if hosts is not None:
        spec["nodeAffinity"] = {
            "required": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": hosts}
                        ]
                    }
                ]
            }
        }
    return {"metadata": {"name": name, **meta}, "spec": spec, "status": {"phase": "Available"}}


def _class(name: str, provisioner: str, mode: str = "WaitForFirstConsumer", **extra: Any) -> Obj:
    return {
        "metadata": {"name": name},
        "provisioner": provisioner,
        "volumeBindingMode": mode,
        **extra,
    }


CLASSES = {
    LOCAL_PATH_CLASS: _class(LOCAL_PATH_CLASS, LOCAL_PATH_PROVISIONER),
    "fast": _class("fast", "example.com/fast", mode="Immediate"),
    "static": _class("static", "kubernetes.io/no-provisioner"),
    "zonal": _class(
        "zonal",
        "example.com/zonal",
        allowedTopologies=[{"matchLabelExpressions": [{"key": "zone", "values": ["z2"]}]}],
    ),
}
VOLUMES = {
    "pv-a": _pv("pv-a", ["a"]),
    "pv-any": _pv("pv-any"),
    "static-b": _pv("static-b", ["b"], cls="static", labels={"disk": "ssd"}),
    "static-c-big": _pv("static-c-big", ["c"], cls="static", size="10Gi"),
    "static-a-taken": _pv("static-a-taken", ["a"], cls="static", ref="other"),
    "local-c": _pv("local-c", ["c"], cls=LOCAL_PATH_CLASS),
}
# provisioned on node b for claim "p" (its uid): the binder has not finished yet
VOLUMES["prov-p"] = _pv("prov-p", ["b"], cls=LOCAL_PATH_CLASS, size="5Gi")
VOLUMES["prov-p"]["spec"]["claimRef"] = {"namespace": "ns", "name": "p", "uid": "uid-p"}
VOLUMES["prov-p"]["status"] = {"phase": "Bound"}


def _rwx(name: str) -> Obj:
    claim = _claim(name)
    claim["spec"]["accessModes"] = ["ReadWriteMany"]
    return claim


def _pod(*claims: str) -> Obj:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {
            "containers": [{"name": "c"}],
            "volumes": [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}}
                        for i, c in enumerate(claims)]
            + [{"name": "scratch", "emptyDir": {}}],
        },
    }  # fmt: skip


def _decide(claims: dict[str, Obj], *names: str) -> tuple[str | None, str, PodVolumes]:
    info = pod_info(_pod(*names))
    assert info.claims == names
    info.volumes = resolve(
        "ns",
        info.claims,
        lambda k: claims.get(k.partition("/")[2]),
        VOLUMES.get,
        CLASSES.get,
        VOLUMES.values,
    )
    d = decide(info, _table(), Profile(), preemption=True)
    return d.node, d.message, info.volumes


CASES: list[tuple[str, dict[str, Obj], tuple[str, ...], set[str], str]] = [
    # id, claims in the cache, claims the pod names, nodes it may go to, message when none
    ("bound-anywhere", {"d": _claim("d", pv="pv-any")}, ("d",), {"a", "b", "c"}, ""),
    ("bound-to-node-a", {"d": _claim("d", pv="pv-a")}, ("d",), {"a"}, ""),
    (
        "missing-claim",
        {},
        ("d",),
        set(),
        f'0/3 nodes are available: persistentvolumeclaim "d" not found. {NOT_HELPFUL}',
    ),
    (
        "unbound-immediate",
        {"d": _claim("d", cls="fast")},
        ("d",),
        set(),
        f"0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. {NOT_HELPFUL}",
    ),
    (
        "no-class-is-immediate",
        {"d": _claim("d", cls=None)},
        ("d",),
        set(),
        f"0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. {NOT_HELPFUL}",
    ),
    (
        "unknown-class-is-immediate",
        {"d": _claim("d", cls="nope")},
        ("d",),
        set(),
        f"0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. {NOT_HELPFUL}",
    ),
    (
        "being-deleted",
        {"d": _claim("d", meta={"deletionTimestamp": "2026-01-01T00:00:00Z"})},
        ("d",),
        set(),
        f'0/3 nodes are available: persistentvolumeclaim "d" is being deleted. {NOT_HELPFUL}',
    ),
    (
        "lost",
        {"d": _claim("d", pv="gone", status={"phase": "Lost"})},
        ("d",),
        set(),
        '0/3 nodes are available: persistentvolumeclaim "d" bound to non-existent '
        f'persistentvolume "gone". {NOT_HELPFUL}',
    ),
    (
        "bound-pv-missing",
        {"d": _claim("d", pv="gone")},
        ("d",),
        set(),
        "0/3 nodes are available: 3 node(s) unavailable due to one or more pvc(s) bound "
        f"to non-existent pv(s). {NOT_HELPFUL}",
    ),
    # a volume already names the claim with its uid: as good as bound, its node decides
    ("provisioned-for-it-on-b", {"p": _claim("p", size="5Gi")}, ("p",), {"b"}, ""),
    # nobody can provision it: every node is rejected with the reason (issue 17 item 5)
    (
        "local-path-cannot-serve-rwx",
        {"x": _rwx("x")},
        ("x",),
        set(),
        '0/3 nodes are available: persistentvolumeclaim "x" cannot be provisioned by '
        "rancher.io/local-path: access mode ReadWriteMany is not supported: a local path "
        f"volume is on one node (ReadWriteOnce or ReadWriteOncePod). {NOT_HELPFUL}",
    ),
    # too big for the static local-c: provisioned, only where an agent keeps volumes
    ("local-path-wffc", {"d": _claim("d", size="5Gi")}, ("d",), {"a", "b"}, ""),
    (
        "local-path-and-bound-elsewhere",
        {"d": _claim("d", size="5Gi"), "e": _claim("e", pv="pv-a")},
        ("d", "e"),
        {"a"},
        "",
    ),
    ("static-wffc", {"d": _claim("d", cls="static")}, ("d",), {"b", "c"}, ""),
    ("static-wffc-size", {"d": _claim("d", cls="static", size="5Gi")}, ("d",), {"c"}, ""),
    (
        "static-wffc-selector",
        {"d": _claim("d", cls="static", selector={"matchLabels": {"disk": "ssd"}})},
        ("d",),
        {"b"},
        "",
    ),
    (
        "static-wffc-unmatched",
        {"d": _claim("d", cls="static", size="20Gi")},
        ("d",),
        set(),
        "0/3 nodes are available: 3 node(s) didn't find available persistent volumes to bind. "
        + NOT_HELPFUL,
    ),
    # a volume pre-bound to the claim is its only choice (FindMatchingVolume returns it, or
    # nothing where its node affinity fails): only node a
    ("static-pre-bound", {"other": _claim("other", cls="static")}, ("other",), {"a"}, ""),
    # node c has no local-path root, but a static local-path volume there
    (
        "local-path-static-or-provisioned",
        {"d": _claim("d")},
        ("d",),
        {"a", "b", "c"},
        "",
    ),
    ("allowed-topologies", {"d": _claim("d", cls="zonal")}, ("d",), {"b"}, ""),
]


@pytest.mark.parametrize(
    ("claims", "names", "nodes", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decide_with_claims(
    claims: dict[str, Obj], names: tuple[str, ...], nodes: set[str], message: str
) -> None:
    node, msg, vols = _decide(claims, *names)
    if nodes:
        assert node in nodes, msg
        info = pod_info(_pod(*names))
        info.volumes = vols
        table = _table()
        f = run_filters(info, table, Profile(), build_plugins(Profile()))
        assert {table.names[r] for r in f.feasible} == nodes
    else:
        assert node is None
        assert msg == message


REASON_CASES = [
    (
        "node-affinity-conflict",
        {"d": _claim("d", pv="pv-a")},
        {"b", "c"},
        "node(s) had volume node affinity conflict",
    ),
    (
        "no-local-storage",
        {"d": _claim("d", size="5Gi")},
        {"c"},
        "node(s) did not have enough free storage",
    ),
    (
        "topology",
        {"d": _claim("d", cls="zonal")},
        {"a", "c"},
        "node(s) didn't find available persistent volumes to bind",
    ),
]


@pytest.mark.parametrize(
    ("claims", "rejected", "reason"),
    [c[1:] for c in REASON_CASES],
    ids=[c[0] for c in REASON_CASES],
)
def test_filter_reasons(claims: dict[str, Obj], rejected: set[str], reason: str) -> None:
    """The nodes VolumeBinding rejects, counted under upstream's reason."""
    info = pod_info(_pod(*claims))
    info.volumes = resolve(
        "ns",
        info.claims,
        lambda k: claims.get(k.partition("/")[2]),
        VOLUMES.get,
        CLASSES.get,
        VOLUMES.values,
    )
    table = _table()
    f = run_filters(info, table, Profile(), build_plugins(Profile()))
    assert f.reasons == {reason: len(rejected)}
    assert {table.names[r] for r in f.feasible} == {"a", "b", "c"} - rejected
    assert f.unresolvable.sum() == len(rejected)  # preemption cannot help


def test_resolve_lists_unbound_claims() -> None:
    claims = {"d": _claim("d"), "e": _claim("e", pv="pv-any")}
    _, _, vols = _decide(claims, "d", "e")
    assert [u.key for u in vols.unbound] == ["ns/d"]
    assert [pv["metadata"]["name"] for pv in vols.unbound[0].candidates] == ["local-c"]
    assert [pv["metadata"]["name"] for pv in vols.bound] == ["pv-any"]


def test_candidates_pre_bound_first_then_smallest() -> None:
    vols = [
        _pv("big", cls="s", size="5Gi"),
        _pv("small", cls="s", size="2Gi"),
        _pv("mine", cls="s", size="9Gi", ref="d"),
        _pv("gone", cls="s", deletionTimestamp="2026-01-01T00:00:00Z"),
        _pv("wrong-class", cls="t"),
    ]
    claim = _claim("d", cls="s", size="2Gi")
    # a volume pre-bound to the claim is its only candidate (FindMatchingVolume returns it)
    assert [pv["metadata"]["name"] for pv in matching_volumes(claim, vols)] == ["mine"]
    got = matching_volumes(claim, [v for v in vols if v["metadata"]["name"] != "mine"])
    assert [pv["metadata"]["name"] for pv in got] == ["small", "big"]


CHOOSE_CASES = [
    ("first-admitting", "b", {"kubernetes.io/hostname": "b"}, frozenset(), "on-b"),
    ("none-then-provision", "z", {"kubernetes.io/hostname": "z"}, frozenset(), None),
    ("no-labels", "q", {}, frozenset(), None),
    ("taken-by-a-sibling", "b", {"kubernetes.io/hostname": "b"}, frozenset({"on-b"}), "b2"),
]


@pytest.mark.parametrize(
    ("node", "labels", "taken", "want"),
    [c[1:] for c in CHOOSE_CASES],
    ids=[c[0] for c in CHOOSE_CASES],
)
def test_choose_volume(
    node: str, labels: dict[str, str], taken: frozenset[str], want: str | None
) -> None:
    pvs = (_pv("on-a", ["a"]), _pv("on-b", ["b"]), _pv("b2", ["b"]))
    u = Unbound("ns/d", _claim("d", cls=""), CLASSES["static"], pvs)
    got = choose_volume(u, node, labels, taken)
    assert (got["metadata"]["name"] if got else None) == want


def test_volume_allows_match_fields() -> None:
    pv = _pv("x")
    pv["spec"]["nodeAffinity"] = {
        "required": {
            "nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
            ]
        }
    }
    assert volume_allows(pv, "n1", {}) and not volume_allows(pv, "n2", {})


def test_pods_without_claims_skip_the_plugin() -> None:
    info = pod_info({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": []}})
    assert info.claims == () and info.volumes is None
    d = decide(info, _table(), Profile())
    assert d.node in {"a", "b", "c"}


def test_local_path_nodes_follow_the_annotation() -> None:
    t = _table()
    assert t.local_path_nodes == {"a", "b"}
    t.upsert_node(_node("a", storage=False))
    t.upsert_node(_node("c"))
    assert t.local_path_nodes == {"b", "c"}
    t.remove_node("b")
    assert t.local_path_nodes == {"c"}
