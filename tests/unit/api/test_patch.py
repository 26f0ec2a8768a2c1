"""Tests for corral.api.patch: JSON patch, JSON merge patch and strategic merge patch.

Strategic cases come from the SIG API Machinery "Strategic Merge Patch" document, the
kubernetes.io "Update API Objects in Place Using kubectl patch" task and patches kubectl
1.32 was observed sending (apply, set image, rollout restart).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from corral.api.errors import StatusError
from corral.api.patch import json_patch, merge_patch, strategic_merge_patch
from corral.api.schema import SchemaNode, for_kind


def _deployment_schema() -> SchemaNode:
    node = for_kind("apps", "v1", "Deployment")
    assert node is not None
    return node


def _deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a", "b", "c"]},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx:1.25",
                            "ports": [{"containerPort": 80}],
                            "args": ["a", "b"],
                        },
                        {"name": "sidecar", "image": "busybox"},
                    ],
                    "tolerations": [{"key": "k1"}],
                },
            },
        },
    }


# --- JSON patch -------------------------------------------------------------------------

JSON_PATCH_CASES = [
    (
        "replace",
        [{"op": "replace", "path": "/spec/replicas", "value": 3}],
        lambda d: d["spec"].__setitem__("replicas", 3),
    ),
    (
        "add-append",
        [{"op": "add", "path": "/metadata/finalizers/-", "value": "d"}],
        lambda d: d["metadata"]["finalizers"].append("d"),
    ),
    (
        "remove",
        [{"op": "remove", "path": "/metadata/labels/app"}],
        lambda d: d["metadata"]["labels"].pop("app"),
    ),
    (
        "test-then-replace",
        [
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 2},
        ],
        lambda d: d["spec"].__setitem__("replicas", 2),
    ),
    ("null-body", None, lambda d: None),
]


@pytest.mark.parametrize(
    ("ops", "edit"), [c[1:] for c in JSON_PATCH_CASES], ids=[c[0] for c in JSON_PATCH_CASES]
)
def test_json_patch_applies(ops: Any, edit: Any) -> None:
    doc = _deployment()
    before = copy.deepcopy(doc)
    expected = copy.deepcopy(doc)
    edit(expected)
    assert json_patch(doc, ops) == expected
    assert doc == before


JSON_PATCH_ERRORS = [
    (
        "not-a-list",
        {"op": "add"},
        400,
        "BadRequest",
        "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
    ),
    (
        "list-of-strings",
        ["x"],
        400,
        "BadRequest",
        "json: cannot unmarshal string into Go value of type jsonpatch.Operation",
    ),
    (
        "failed-test",
        [{"op": "test", "path": "/spec/replicas", "value": 9}],
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
    ),
    (
        "missing-path",
        [{"op": "remove", "path": "/spec/nosuch"}],
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
    ),
    (
        "unknown-op",
        [{"op": "frob", "path": "/spec"}],
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
    ),
]


@pytest.mark.parametrize(
    ("ops", "code", "reason", "message"),
    [c[1:] for c in JSON_PATCH_ERRORS],
    ids=[c[0] for c in JSON_PATCH_ERRORS],
)
def test_json_patch_errors(ops: Any, code: int, reason: str, message: str) -> None:
    with pytest.raises(StatusError) as info:
        json_patch(_deployment(), ops)
    assert (info.value.code, info.value.reason, info.value.message) == (code, reason, message)


def test_json_patch_422_has_empty_details() -> None:
    with pytest.raises(StatusError) as info:
        json_patch(_deployment(), [{"op": "test", "path": "/spec/replicas", "value": 9}])
    assert info.value.body() == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"the server rejected our request due to an error in our request",'
        b'"reason":"Invalid","details":{},"code":422}\n'
    )


# --- JSON merge patch -------------------------------------------------------------------

MERGE_CASES = [
    ("set-scalar", {"a": 1}, {"a": 2}, {"a": 2}),
    ("null-deletes", {"a": 1, "b": 2}, {"a": None}, {"b": 2}),
    ("nested-merge", {"m": {"x": 1, "y": 2}}, {"m": {"y": None, "z": 3}}, {"m": {"x": 1, "z": 3}}),
    ("list-replaced", {"l": [1, 2, 3]}, {"l": [4]}, {"l": [4]}),
    ("new-object-nulls-pruned", {}, {"m": {"a": None, "b": 1}}, {"m": {"b": 1}}),
    ("object-replaces-scalar", {"a": 1}, {"a": {"b": 1}}, {"a": {"b": 1}}),
    (
        "label",
        {"metadata": {"name": "x"}},
        {"metadata": {"labels": {"x": "y"}}},
        {"metadata": {"name": "x", "labels": {"x": "y"}}},
    ),
]


@pytest.mark.parametrize(
    ("doc", "patch", "expected"), [c[1:] for c in MERGE_CASES], ids=[c[0] for c in MERGE_CASES]
)
def test_merge_patch(doc: dict[str, Any], patch: Any, expected: dict[str, Any]) -> None:
    before = copy.deepcopy(doc)
    assert merge_patch(doc, patch) == expected
    assert doc == before


@pytest.mark.parametrize("patch", [None, [1], "x", 3], ids=["null", "list", "string", "number"])
def test_merge_patch_rejects_non_object(patch: Any) -> None:
    with pytest.raises(StatusError) as info:
        merge_patch({}, patch)
    assert (info.value.code, info.value.reason, info.value.message) == (
        400,
        "BadRequest",
        "Invalid JSON Patch",
    )


# --- strategic merge patch --------------------------------------------------------------


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = doc["spec"]["template"]["spec"]["containers"]
    return result


def _pod_spec_patch(spec: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": spec}}}


SMP_CASES: list[tuple[str, dict[str, Any] | None, Any]] = [
    (
        "kubectl-set-image",
        _pod_spec_patch(
            {
                "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
                "containers": [{"image": "nginx:1.27", "name": "nginx"}],
            }
        ),
        lambda d: (
            _containers(d)
            == [
                {
                    "name": "nginx",
                    "image": "nginx:1.27",
                    "ports": [{"containerPort": 80}],
                    "args": ["a", "b"],
                },
                {"name": "sidecar", "image": "busybox"},
            ]
        ),
    ),
    (
        "add-container-merges-by-name",
        _pod_spec_patch({"containers": [{"name": "log-tailer", "image": "log-tailer-1.0"}]}),
        lambda d: [c["name"] for c in _containers(d)] == ["log-tailer", "nginx", "sidecar"],
    ),
    (
        "delete-directive-in-list",
        _pod_spec_patch({"containers": [{"$patch": "delete", "name": "sidecar"}]}),
        lambda d: [c["name"] for c in _containers(d)] == ["nginx"],
    ),
    (
        "replace-directive-in-list",
        _pod_spec_patch({"containers": [{"name": "only", "image": "x"}, {"$patch": "replace"}]}),
        lambda d: _containers(d) == [{"name": "only", "image": "x"}],
    ),
    (
        "replace-directive-in-map",
        {"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}},
        lambda d: d["spec"]["strategy"] == {"type": "Recreate"},
    ),
    (
        "delete-directive-in-map",
        {"spec": {"strategy": {"rollingUpdate": {"$patch": "delete"}}}},
        lambda d: d["spec"]["strategy"] == {"type": "RollingUpdate"},
    ),
    (
        "null-deletes-key",
        {"spec": {"strategy": {"rollingUpdate": None}}},
        lambda d: d["spec"]["strategy"] == {"type": "RollingUpdate"},
    ),
    (
        "retain-keys",
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
        lambda d: d["spec"]["strategy"] == {"type": "Recreate"},
    ),
    (
        "finalizers-union",
        {"metadata": {"finalizers": ["d", "a"]}},
        lambda d: d["metadata"]["finalizers"] == ["d", "a", "b", "c"],
    ),
    (
        "delete-from-primitive-list",
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "c"]}},
        lambda d: d["metadata"]["finalizers"] == ["a"],
    ),
    (
        "set-element-order-primitives",
        {"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"]}},
        lambda d: d["metadata"]["finalizers"] == ["b", "c", "a"],
    ),
    (
        "set-element-order-maps",
        _pod_spec_patch({"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "nginx"}]}),
        lambda d: [c["name"] for c in _containers(d)] == ["sidecar", "nginx"],
    ),
    (
        "atomic-list-replaced",
        _pod_spec_patch({"tolerations": [{"key": "k2"}]}),
        lambda d: d["spec"]["template"]["spec"]["tolerations"] == [{"key": "k2"}],
    ),
    (
        "primitive-list-without-strategy-replaced",
        _pod_spec_patch({"containers": [{"name": "nginx", "args": ["c"]}]}),
        lambda d: _containers(d)[0]["args"] == ["c"],
    ),
    (
        "nested-merge-list-ports",
        _pod_spec_patch({"containers": [{"name": "nginx", "ports": [{"containerPort": 443}]}]}),
        lambda d: _containers(d)[0]["ports"] == [{"containerPort": 443}, {"containerPort": 80}],
    ),
    (
        "rollout-restart-annotation",
        {
            "spec": {
                "template": {
                    "metadata": {
                        "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-27T14:03:45Z"}
                    }
                }
            }
        },
        lambda d: (
            d["spec"]["template"]["metadata"]
            == {
                "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-27T14:03:45Z"},
            }
        ),
    ),
    (
        "kubectl-apply-replicas-and-image",
        {
            "metadata": {
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"}
            },
            "spec": {
                "replicas": 3,
                **_pod_spec_patch(
                    {
                        "$setElementOrder/containers": [{"name": "nginx"}],
                        "containers": [{"image": "nginx:1.26", "name": "nginx"}],
                    }
                )["spec"],
            },
        },
        lambda d: (
            d["spec"]["replicas"] == 3
            and _containers(d)[0]["image"] == "nginx:1.26"
            and d["metadata"]["annotations"]
            == {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"}
        ),
    ),
    (
        "new-list-strips-directives",
        _pod_spec_patch(
            {
                "initContainers": [
                    {"name": "init", "image": "x"},
                    {"$patch": "delete", "name": "gone"},
                ]
            }
        ),
        lambda d: (
            d["spec"]["template"]["spec"]["initContainers"] == [{"name": "init", "image": "x"}]
        ),
    ),
    ("null-body-no-op", None, lambda d: d == _deployment()),
]


@pytest.mark.parametrize(
    ("patch", "check"), [c[1:] for c in SMP_CASES], ids=[c[0] for c in SMP_CASES]
)
def test_strategic_merge_patch(patch: Any, check: Any) -> None:
    doc = _deployment()
    before = copy.deepcopy(doc)
    patch_before = copy.deepcopy(patch)
    result = strategic_merge_patch(doc, patch, _deployment_schema())
    assert check(result), result
    assert doc == before
    assert patch == patch_before


@pytest.mark.parametrize(
    ("patch", "check"), [c[1:] for c in SMP_CASES], ids=[c[0] for c in SMP_CASES]
)
def test_strategic_merge_patch_owned_is_copy_on_write(patch: Any, check: Any) -> None:
    """``owned``: ``doc`` is not copied, yet not changed either (the API server uses one
    decode as the patch's base and the old object); the result is the copying one's,
    key order included, and shares what the patch left alone."""
    doc = _deployment()
    before = copy.deepcopy(doc)
    copied = strategic_merge_patch(copy.deepcopy(doc), copy.deepcopy(patch), _deployment_schema())
    result = strategic_merge_patch(doc, copy.deepcopy(patch), _deployment_schema(), owned=True)
    assert check(result), result
    assert doc == before
    assert repr(result) == repr(copied)
    if patch is not None and "metadata" not in patch:
        assert result["metadata"] is doc["metadata"]


def test_strategic_without_schema_is_merge_patch() -> None:
    doc = {"spec": {"items": [1, 2], "m": {"a": 1, "b": 2}}}
    patch = {"spec": {"items": [3], "m": {"a": None, "c": 3}}}
    assert strategic_merge_patch(doc, patch, None) == merge_patch(doc, patch)


def test_strategic_pdb_selector_replace_strategy_beside_ref() -> None:
    node = for_kind("policy", "v1", "PodDisruptionBudget")
    doc = {"spec": {"selector": {"matchLabels": {"a": "1"}}}}
    patch = {"spec": {"selector": {"matchLabels": {"b": "2"}}}}
    assert strategic_merge_patch(doc, patch, node) == patch


SMP_ERRORS = [
    (
        "not-an-object",
        ["x"],
        400,
        "BadRequest",
        "json: cannot unmarshal array into Go value of type map[string]interface {}",
    ),
    (
        "bad-retain-keys-type",
        {"spec": {"strategy": {"$retainKeys": "type"}}},
        400,
        "BadRequest",
        "invalid patch format of retainKeys",
    ),
    (
        "patch-key-not-retained",
        {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}},
        400,
        "BadRequest",
        "invalid patch format of retainKeys",
    ),
    (
        "bad-delete-list",
        {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}},
        400,
        "BadRequest",
        "invalid patch format of primitive list",
    ),
    (
        "bad-order-list",
        {"metadata": {"$setElementOrder/finalizers": "a"}},
        400,
        "BadRequest",
        "invalid patch type of setElementOrder list",
    ),
    (
        "list-of-lists",
        {"metadata": {"finalizers": [["x"]]}},
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
    ),
    (
        "unknown-map-directive",
        {"spec": {"strategy": {"$patch": "frob"}}},
        500,
        "",
        "unknown patch type: frob in map: map[$patch:frob]",
    ),
    (
        "list-merge-directive",
        _pod_spec_patch({"containers": [{"$patch": "merge"}]}),
        500,
        "",
        "merging lists cannot yet be specified in the patch",
    ),
    (
        "missing-merge-key",
        _pod_spec_patch({"containers": [{"image": "x"}]}),
        500,
        "",
        "map: map[image:x] does not contain declared merge key: name",
    ),
]


@pytest.mark.parametrize(
    ("patch", "code", "reason", "message"),
    [c[1:] for c in SMP_ERRORS],
    ids=[c[0] for c in SMP_ERRORS],
)
def test_strategic_merge_patch_errors(patch: Any, code: int, reason: str, message: str) -> None:
    with pytest.raises(StatusError) as info:
        strategic_merge_patch(_deployment(), patch, _deployment_schema())
    assert (info.value.code, info.value.reason, info.value.message) == (code, reason, message)
