"""Tests for corral.api.apply: FieldsV1 encoding, Update ownership and server-side apply.

Expected shapes follow the server-side apply documentation (kubernetes.io) and the
structured-merge-diff conflict wording the real apiserver answers with.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from corral.api.apply import fields_of, record_update, server_side_apply
from corral.api.errors import StatusError
from corral.api.schema import SchemaNode, for_kind

T0 = "2026-11-27T14:03:45Z"
T1 = "2026-11-27T14:05:00Z"
T2 = "2026-11-27T14:06:00Z"


def _schema(group: str, version: str, kind: str) -> SchemaNode:
    node = for_kind(group, version, kind)
    assert node is not None
    return node


DEPLOY = _schema("apps", "v1", "Deployment")
CONFIGMAP = _schema("", "v1", "ConfigMap")


def _deployment(replicas: int = 2, image: str = "nginx:1.25") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": image}]},
            },
        },
    }


def _entries(obj: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["manager"], e["operation"]) for e in obj["metadata"].get("managedFields", [])]


def _entry(obj: dict[str, Any], manager: str, operation: str) -> dict[str, Any]:
    for e in obj["metadata"]["managedFields"]:
        if (e["manager"], e["operation"]) == (manager, operation):
            result: dict[str, Any] = e
            return result
    raise AssertionError(f"no entry for {manager}/{operation}")


# --- fields_of ------------------------------------------------------------------------------

FIELDS_CASES = [
    (
        "deployment",
        DEPLOY,
        _deployment(),
        {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {
                        "f:containers": {
                            'k:{"name":"nginx"}': {".": {}, "f:image": {}, "f:name": {}}
                        }
                    },
                },
            },
        },
    ),
    (
        "set-finalizers",
        DEPLOY,
        {"metadata": {"name": "x", "finalizers": ["a/b", "x"]}},
        {"f:metadata": {"f:finalizers": {'v:"a/b"': {}, 'v:"x"': {}}}},
    ),
    (
        "multi-key-ports-sorted",
        DEPLOY,
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "c", "ports": [{"protocol": "TCP", "containerPort": 80}]}
                        ]
                    }
                }
            }
        },
        {
            "f:spec": {
                "f:template": {
                    "f:spec": {
                        "f:containers": {
                            'k:{"name":"c"}': {
                                ".": {},
                                "f:name": {},
                                "f:ports": {
                                    'k:{"containerPort":80,"protocol":"TCP"}': {
                                        ".": {},
                                        "f:containerPort": {},
                                        "f:protocol": {},
                                    }
                                },
                            }
                        }
                    }
                }
            }
        },
    ),
    (
        "atomic-list-and-empty-map",
        DEPLOY,
        {"spec": {"template": {"spec": {"tolerations": [{"key": "k"}], "securityContext": {}}}}},
        {"f:spec": {"f:template": {"f:spec": {"f:securityContext": {}, "f:tolerations": {}}}}},
    ),
    (
        "status-not-recorded-on-main-resource",
        DEPLOY,
        {"spec": {"replicas": 1}, "status": {"replicas": 1}},
        {"f:spec": {"f:replicas": {}}},
    ),
    (
        "configmap-data",
        CONFIGMAP,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}},
        {"f:data": {"f:k": {}}},
    ),
    (
        "schemaless",
        None,
        {"spec": {"a": {"b": 1}, "l": [1]}},
        {"f:spec": {".": {}, "f:a": {".": {}, "f:b": {}}, "f:l": {}}},
    ),
]


@pytest.mark.parametrize(
    ("node", "obj", "expected"), [c[1:] for c in FIELDS_CASES], ids=[c[0] for c in FIELDS_CASES]
)
def test_fields_of(node: SchemaNode | None, obj: dict[str, Any], expected: dict[str, Any]) -> None:
    assert fields_of(obj, node) == expected


def test_fields_of_dot_comes_first() -> None:
    fields = fields_of(_deployment(), DEPLOY)
    item = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"nginx"}']
    assert list(item) == [".", "f:image", "f:name"]


# --- record_update --------------------------------------------------------------------------


def test_record_update_on_create_owns_everything() -> None:
    obj = _deployment()
    obj["metadata"]["uid"] = "u"
    record_update(obj, None, "kubectl-create", "apps/v1", T0, DEPLOY)
    (entry,) = obj["metadata"]["managedFields"]
    assert entry == {
        "manager": "kubectl-create",
        "operation": "Update",
        "apiVersion": "apps/v1",
        "time": T0,
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {
                        "f:containers": {
                            'k:{"name":"nginx"}': {".": {}, "f:image": {}, "f:name": {}}
                        }
                    },
                },
            },
        },
    }


def test_record_update_moves_changed_fields() -> None:
    old = _deployment()
    record_update(old, None, "kubectl-create", "apps/v1", T0, DEPLOY)
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 5
    record_update(new, old, "kubectl-scale", "apps/v1", T1, DEPLOY)
    assert _entries(new) == [("kubectl-create", "Update"), ("kubectl-scale", "Update")]
    assert "f:replicas" not in _entry(new, "kubectl-create", "Update")["fieldsV1"]["f:spec"]
    assert _entry(new, "kubectl-scale", "Update")["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert _entry(new, "kubectl-scale", "Update")["time"] == T1


def test_record_update_drops_emptied_entries_and_keeps_time_when_unchanged() -> None:
    created = _deployment()
    record_update(created, None, "kubectl-create", "apps/v1", T0, DEPLOY)
    scaled = copy.deepcopy(created)
    scaled["spec"]["replicas"] = 3
    record_update(scaled, created, "a", "apps/v1", T1, DEPLOY)
    rescaled = copy.deepcopy(scaled)
    rescaled["spec"]["replicas"] = 4
    record_update(rescaled, scaled, "b", "apps/v1", T2, DEPLOY)
    assert _entries(rescaled) == [("kubectl-create", "Update"), ("b", "Update")]
    same = copy.deepcopy(rescaled)
    record_update(same, rescaled, "b", "apps/v1", "2026-11-27T15:00:00Z", DEPLOY)
    assert same["metadata"]["managedFields"] == rescaled["metadata"]["managedFields"]


def test_record_update_removed_field_leaves_all_sets() -> None:
    old: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"k": "v", "j": "x"},
    }
    record_update(old, None, "a", "v1", T0, CONFIGMAP)
    new = copy.deepcopy(old)
    del new["data"]["k"]
    record_update(new, old, "b", "v1", T1, CONFIGMAP)
    assert _entries(new) == [("a", "Update")]
    assert _entry(new, "a", "Update")["fieldsV1"] == {"f:data": {".": {}, "f:j": {}}}


def test_record_update_status_subresource() -> None:
    old = _deployment()
    record_update(old, None, "kubectl-create", "apps/v1", T0, DEPLOY)
    new = copy.deepcopy(old)
    new["status"] = {"replicas": 2}
    record_update(new, old, "kube-controller-manager", "apps/v1", T1, DEPLOY, subresource="status")
    entry = _entry(new, "kube-controller-manager", "Update")
    assert entry["subresource"] == "status"
    assert entry["fieldsV1"] == {"f:status": {"f:replicas": {}}}
    assert list(entry) == [
        "manager",
        "operation",
        "apiVersion",
        "time",
        "fieldsType",
        "fieldsV1",
        "subresource",
    ]


def test_record_update_empty_struct_and_list_are_leaves() -> None:
    """structured-merge-diff takes an empty struct or list, empty or absent on the other
    side too, for a leaf: a create's and an update's ``securityContext: {}`` is a field."""
    created = _deployment()
    created["spec"]["template"]["spec"]["securityContext"] = {}
    record_update(created, None, "kubectl-create", "apps/v1", T0, DEPLOY)
    tree = _entry(created, "kubectl-create", "Update")["fieldsV1"]
    assert tree["f:spec"]["f:template"]["f:spec"]["f:securityContext"] == {}
    new = copy.deepcopy(created)
    new["spec"]["template"]["spec"]["tolerations"] = []
    record_update(new, created, "b", "apps/v1", T1, DEPLOY)
    assert _entry(new, "b", "Update")["fieldsV1"] == {
        "f:spec": {"f:template": {"f:spec": {"f:tolerations": {}}}}
    }


# --- server-side apply ----------------------------------------------------------------------


def test_apply_creates_and_records() -> None:
    applied = _deployment()
    obj = server_side_apply(None, applied, "kubectl", "apps/v1", False, T0, DEPLOY)
    assert obj["spec"] == applied["spec"]
    (entry,) = obj["metadata"]["managedFields"]
    assert entry["manager"] == "kubectl"
    assert entry["operation"] == "Apply"
    assert entry["time"] == T0
    assert entry["fieldsV1"] == fields_of(applied, DEPLOY)
    assert "managedFields" not in applied["metadata"]


def test_reapply_unchanged_is_a_no_op() -> None:
    first = server_side_apply(None, _deployment(), "kubectl", "apps/v1", False, T0, DEPLOY)
    again = server_side_apply(first, _deployment(), "kubectl", "apps/v1", False, T1, DEPLOY)
    assert again == first


def test_apply_dropping_a_field_removes_it() -> None:
    first = server_side_apply(None, _deployment(), "kubectl", "apps/v1", False, T0, DEPLOY)
    smaller = _deployment()
    del smaller["spec"]["replicas"]
    del smaller["metadata"]["labels"]
    second = server_side_apply(first, smaller, "kubectl", "apps/v1", False, T1, DEPLOY)
    assert "replicas" not in second["spec"]
    assert "labels" not in second["metadata"]
    assert second["metadata"]["name"] == "web"
    assert _entry(second, "kubectl", "Apply")["time"] == T1


def test_apply_keeps_field_another_manager_owns() -> None:
    first = server_side_apply(None, _deployment(), "a", "apps/v1", False, T0, DEPLOY)
    second = server_side_apply(first, _deployment(), "b", "apps/v1", False, T1, DEPLOY)
    smaller = _deployment()
    del smaller["spec"]["replicas"]
    third = server_side_apply(second, smaller, "a", "apps/v1", False, T2, DEPLOY)
    assert third["spec"]["replicas"] == 2


def test_apply_conflict_with_updater() -> None:
    live = _deployment(replicas=3)
    record_update(live, None, "kubectl-client-side-apply", "apps/v1", T0, DEPLOY)
    with pytest.raises(StatusError) as info:
        server_side_apply(live, _deployment(replicas=5), "kubectl", "apps/v1", False, T1, DEPLOY)
    assert info.value.status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas',
        "reason": "Conflict",
        "details": {
            "causes": [
                {
                    "reason": "FieldManagerConflict",
                    "message": 'conflict with "kubectl-client-side-apply" using apps/v1',
                    "field": ".spec.replicas",
                }
            ]
        },
        "code": 409,
    }


def test_apply_conflicts_listed_per_manager() -> None:
    live = _deployment(replicas=3)
    record_update(live, None, "mgr", "apps/v1", T0, DEPLOY)
    with pytest.raises(StatusError) as info:
        server_side_apply(
            live,
            _deployment(replicas=5, image="nginx:1.27"),
            "kubectl",
            "apps/v1",
            False,
            T1,
            DEPLOY,
        )
    assert info.value.message == (
        'Apply failed with 2 conflicts: conflicts with "mgr" using apps/v1:\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="nginx"].image'
    )
    assert info.value.details is not None
    assert [c["field"] for c in info.value.details["causes"]] == [
        ".spec.replicas",
        '.spec.template.spec.containers[name="nginx"].image',
    ]


def test_apply_conflict_with_other_applier_has_no_version() -> None:
    live = server_side_apply(None, _deployment(replicas=3), "other", "apps/v1", False, T0, DEPLOY)
    with pytest.raises(StatusError) as info:
        server_side_apply(live, _deployment(replicas=5), "kubectl", "apps/v1", False, T1, DEPLOY)
    assert (
        info.value.message == 'Apply failed with 1 conflict: conflict with "other": .spec.replicas'
    )


def test_same_value_is_shared_not_a_conflict() -> None:
    live = _deployment(replicas=3)
    record_update(live, None, "mgr", "apps/v1", T0, DEPLOY)
    obj = server_side_apply(live, _deployment(replicas=3), "kubectl", "apps/v1", False, T1, DEPLOY)
    assert "f:replicas" in _entry(obj, "mgr", "Update")["fieldsV1"]["f:spec"]
    assert "f:replicas" in _entry(obj, "kubectl", "Apply")["fieldsV1"]["f:spec"]


def test_force_takes_ownership() -> None:
    live = _deployment(replicas=3)
    record_update(live, None, "mgr", "apps/v1", T0, DEPLOY)
    obj = server_side_apply(live, _deployment(replicas=5), "kubectl", "apps/v1", True, T1, DEPLOY)
    assert obj["spec"]["replicas"] == 5
    assert "f:replicas" not in _entry(obj, "mgr", "Update")["fieldsV1"]["f:spec"]
    assert _entries(obj) == [("kubectl", "Apply"), ("mgr", "Update")]


def test_apply_merges_containers_by_name() -> None:
    live = _deployment()
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})
    record_update(live, None, "kubectl-create", "apps/v1", T0, DEPLOY)
    applied = _deployment()
    applied["spec"]["template"]["spec"]["containers"] = [
        {"name": "nginx", "image": "nginx:1.25", "env": [{"name": "A", "value": "1"}]}
    ]
    obj = server_side_apply(live, applied, "kubectl", "apps/v1", False, T1, DEPLOY)
    assert obj["spec"]["template"]["spec"]["containers"] == [
        {"name": "nginx", "image": "nginx:1.25", "env": [{"name": "A", "value": "1"}]},
        {"name": "sidecar", "image": "busybox"},
    ]


def test_apply_unions_finalizers() -> None:
    live = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["a"]}}
    record_update(live, None, "x", "v1", T0, CONFIGMAP)
    applied = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "finalizers": ["b"]},
    }
    obj = server_side_apply(live, applied, "kubectl", "v1", False, T1, CONFIGMAP)
    assert obj["metadata"]["finalizers"] == ["a", "b"]


def test_apply_does_not_mutate_inputs() -> None:
    live = _deployment(replicas=3)
    record_update(live, None, "mgr", "apps/v1", T0, DEPLOY)
    applied = _deployment(replicas=5)
    live_copy, applied_copy = copy.deepcopy(live), copy.deepcopy(applied)
    server_side_apply(live, applied, "kubectl", "apps/v1", True, T1, DEPLOY)
    assert (live, applied) == (live_copy, applied_copy)


APPLY_ERRORS = [
    (
        "managed-fields-set",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "managedFields": []},
        },
        "metadata.managedFields must be nil",
    ),
    (
        "wrong-version",
        {"apiVersion": "apps/v1beta1", "kind": "Deployment", "metadata": {"name": "web"}},
        "Incorrect version specified in apply patch. Specified patch version: apps/v1beta1, expected: apps/v1",
    ),
]


@pytest.mark.parametrize(
    ("applied", "message"), [c[1:] for c in APPLY_ERRORS], ids=[c[0] for c in APPLY_ERRORS]
)
def test_apply_bad_request(applied: dict[str, Any], message: str) -> None:
    with pytest.raises(StatusError) as info:
        server_side_apply(None, applied, "kubectl", "apps/v1", False, T0, DEPLOY)
    assert (info.value.code, info.value.message) == (400, message)


# --- the create fast path records exactly what the general comparison would ---------------

_CREATED = [
    (
        "",
        "v1",
        "Pod",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "p",
                "namespace": "d",
                "labels": {"a": "b"},
                "finalizers": ["x/y"],
            },
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": "i",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "env": [{"name": "E", "value": "1"}],
                        "resources": {},
                    }
                ],
                "securityContext": {},
                "tolerations": [{"key": "k", "operator": "Exists"}],
            },
            "status": {"phase": "Pending"},
        },
    ),
    (
        "apps",
        "v1",
        "Deployment",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d", "annotations": {"x": "y"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"a": "b"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        },
    ),
    (
        "",
        "v1",
        "ConfigMap",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}},
    ),
    ("", "v1", "ConfigMap", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
]


@pytest.mark.parametrize(
    ("group", "version", "kind", "obj"), _CREATED, ids=["pod", "deployment", "empty-data", "bare"]
)
def test_create_fast_path_matches_comparison(
    group: str, version: str, kind: str, obj: dict[str, Any]
) -> None:
    from corral.api.apply import _comparison, encode_fields
    from corral.api.schema import for_kind

    node = for_kind(group, version, kind)
    fast = copy.deepcopy(obj)
    record_update(fast, None, "m", f"{group}/{version}".lstrip("/"), "2026-11-27T00:00:00Z", node)
    slow = encode_fields(_comparison(None, obj, node, "").changed())
    got = fast["metadata"].get("managedFields", [{}])[0].get("fieldsV1", {})
    assert got == slow
    assert json.dumps(got) == json.dumps(slow)  # same order at every level


# --- stored entries a write leaves alone ---------------------------------------------------

_PES = ["f:a", "f:b", "f:metadata", 'k:{"name":"x"}', 'v:"q"', "i:0", "i:2", "i:10", "i:01", "x:a"]
_LEAVES: list[Any] = [{}, None, 0, "", [], "s", {".": {}}, {".": 1}]


def _random_fields(rng: Any, depth: int) -> Any:
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(_LEAVES)
    return {
        rng.choice([*_PES, "."]): _random_fields(rng, depth - 1) for _ in range(rng.randint(0, 4))
    }


def test_stored_fields_read_without_decoding_match_decoding() -> None:
    """``_owns`` and ``_canonical`` answer what decoding then encoding would, for any tree
    (unsorted keys, odd leaves, elements that sort alike)."""
    import random

    from corral.api.apply import _canonical, _owns, decode_fields, encode_fields

    rng = random.Random(19)
    for _ in range(3000):
        tree = _random_fields(rng, 4)
        paths = decode_fields(tree)
        canonical = _canonical(tree)
        if canonical is not None:
            assert json.dumps(canonical) == json.dumps(encode_fields(paths))
        probes = {("f:a",), ("f:a", "f:b"), ("i:0",)}
        for p in paths:
            probes |= {p, (*p, "f:a"), p[:-1]}
        for p in probes - {()}:
            assert _owns(tree, p) == (p in paths), (tree, p)


def test_canonical_tree_is_taken_as_it_is_and_order_is_fieldsv1_order() -> None:
    """``_canonical_as_is`` says yes only when ``_canonical`` gives the same tree back
    (same JSON: order counts; it may say no to some of those, which then take the long
    way), and then the stored tree is reused; ``_sorted_pes`` (a plain string sort when
    that is FieldsV1 order) sorts as ``_pe_sort_key`` does."""
    import random

    from corral.api.apply import (
        _canonical,
        _canonical_as_is,
        _Manager,
        _pe_sort_key,
        _sorted_pes,
        decode_fields,
        encode_fields,
    )

    rng = random.Random(21)
    reused = 0
    for _ in range(3000):
        tree = _random_fields(rng, 4)
        if not isinstance(tree, dict):
            continue
        if rng.random() < 0.5 and _canonical(tree) is not None:
            tree = _canonical(tree)  # canonical trees are the common case: test them too
        canonical = _canonical(tree)
        as_is = canonical is not None and json.dumps(canonical) == json.dumps(tree)
        if _canonical_as_is(tree, False):
            assert as_is, tree
        m = _Manager("m", "Update", "v1", "", None, None, tree)
        out = m.fields_v1()
        assert json.dumps(out) == json.dumps(encode_fields(decode_fields(tree)))
        if out is tree:
            assert as_is, tree
            reused += 1
        pes = rng.sample(_PES, rng.randint(0, len(_PES)))
        assert _sorted_pes(pes) == sorted(pes, key=_pe_sort_key)
    assert reused > 100


def test_rewrite_of_own_fields_keeps_other_entries_and_bumps_time() -> None:
    """A status-style write that changes values a manager already owns (a Lease renewal):
    its set stays, its time moves (upstream's managedFieldsUpdater), others are untouched;
    a stored entry in non-canonical order comes back in FieldsV1 order, as before."""
    old = _deployment()
    record_update(old, None, "creator", "apps/v1", T0, DEPLOY)
    entry = old["metadata"]["managedFields"][0]
    entry["fieldsV1"] = dict(reversed(list(entry["fieldsV1"].items())))  # unsorted
    mid = copy.deepcopy(old)
    mid["status"] = {"replicas": 1, "observedGeneration": 1}
    record_update(mid, old, "ctl", "apps/v1", T1, DEPLOY, "status")
    new = copy.deepcopy(mid)
    new["status"]["replicas"] = 2
    record_update(new, mid, "ctl", "apps/v1", T2, DEPLOY, "status")
    assert _entry(new, "ctl", "Update")["time"] == T2
    assert _entry(new, "ctl", "Update")["fieldsV1"] == _entry(mid, "ctl", "Update")["fieldsV1"]
    creator = _entry(new, "creator", "Update")
    assert list(creator["fieldsV1"]) == ["f:metadata", "f:spec"]
    assert creator["time"] == T0
    same = copy.deepcopy(new)
    record_update(same, new, "ctl", "apps/v1", "2026-11-27T15:00:00Z", DEPLOY, "status")
    assert same["metadata"]["managedFields"] == new["metadata"]["managedFields"]


def test_int_to_float_of_same_value_is_a_change() -> None:
    """``2`` and ``2.0`` are equal in Python but not in JSON: the write still owns it."""
    old = _deployment(replicas=2)
    record_update(old, None, "creator", "apps/v1", T0, DEPLOY)
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 2.0
    record_update(new, old, "scaler", "apps/v1", T1, DEPLOY)
    assert _entry(new, "scaler", "Update")["fieldsV1"] == {"f:spec": {"f:replicas": {}}}


# --- the comparison walked in place ---------------------------------------------------------

_META_VALUES: list[Any] = [
    {"name": "a", "labels": {"x": "1"}},
    {"name": "a", "labels": {"x": 1}},
    {"name": "a", "labels": {"x": True}, "managedFields": [{"manager": "m"}]},
    {"name": "b", "managedFields": [{"manager": "n"}], "ownerReferences": [{"uid": "u"}]},
    {"managedFields": []},
    {},
    "not a map",
    None,
]
_SPEC_VALUES: list[Any] = [
    {"renewTime": "t1", "holderIdentity": "h"},
    {"renewTime": "t2", "holderIdentity": "h", "leaseTransitions": 1},
    {"renewTime": "t2", "leaseTransitions": 1.0},
    {"containers": [{"name": "c", "image": "i"}]},
    [],
    None,
]


def _random_object(rng: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1"}
    if rng.random() < 0.8:
        obj["metadata"] = copy.deepcopy(rng.choice(_META_VALUES))
    if rng.random() < 0.8:
        obj["spec"] = copy.deepcopy(rng.choice(_SPEC_VALUES))
    if rng.random() < 0.3:
        obj["status"] = {"phase": rng.choice(["A", "B"])}
    if rng.random() < 0.2:
        obj["kind"] = rng.choice(["Lease", "Pod", 1])
    return obj


def test_comparison_in_place_is_the_comparison_of_copies_without_managed_fields() -> None:
    """``_comparison`` walks the two objects in place, leaving managedFields out as it
    goes: the same paths as ``_compare`` over copies without managedFields, for shared
    and separate metadata, absent or odd metadata, objects of a kind or of no schema."""
    import random

    from corral.api.apply import (
        _compare,
        _Comparison,
        _comparison,
        _strip,
        _without_managed,
    )

    rng = random.Random(21)
    nodes = [
        for_kind("coordination.k8s.io", "v1", "Lease"),
        for_kind("", "v1", "Pod"),
        for_kind("", "v1", "ConfigMap"),
        None,
    ]
    for _ in range(4000):
        new = _random_object(rng)
        old: dict[str, Any] | None = _random_object(rng) if rng.random() < 0.9 else None
        if old is not None and rng.random() < 0.3 and "metadata" in new:
            old["metadata"] = new["metadata"]  # one value shared, as a one-decode write has
        node = rng.choice(nodes)
        for sub in ("", "status"):
            want = _Comparison()
            _compare(_without_managed(old), _without_managed(new), node, (), want)
            got = _comparison(old, new, node, sub)
            assert got.added == _strip(want.added, sub), (old, new)
            assert got.modified == _strip(want.modified, sub), (old, new)
            assert got.removed == _strip(want.removed, sub), (old, new)
