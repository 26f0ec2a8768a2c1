"""The /openapi/v3 index and per-group-version documents built from the registry table."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from corral.apiserver.openapi import OpenAPIDocs, convert_definition, convert_schema, gv_path
from corral.apiserver.registry.base import ResourceInfo, ScaleAccess, Strategy


class _WithStatus(Strategy):
    has_status = True


def _res(
    group: str,
    kind: str,
    plural: str,
    namespaced: bool = True,
    *,
    status: bool = False,
    scale: bool = False,
    verbs: tuple[str, ...] | None = None,
    extra: tuple[tuple[str, str, tuple[str, ...], str, str], ...] = (),
) -> ResourceInfo:
    kwargs: dict[str, Any] = {"extra_subresources": extra}
    if verbs is not None:
        kwargs["verbs"] = verbs
    return ResourceInfo(
        group=group,
        version="v1",
        kind=kind,
        plural=plural,
        singular=kind.lower(),
        namespaced=namespaced,
        strategy=_WithStatus() if status else Strategy(),
        scale=ScaleAccess() if scale else None,
        **kwargs,
    )


RESOURCES = [
    _res(
        "",
        "Pod",
        "pods",
        status=True,
        extra=(
            ("log", "Pod", ("get",), "", ""),
            ("exec", "PodExecOptions", ("create", "get"), "", ""),
            ("eviction", "Eviction", ("create",), "policy", "v1"),
        ),
    ),
    _res("", "Node", "nodes", namespaced=False, status=True),
    _res("", "ComponentStatus", "componentstatuses", namespaced=False, verbs=("get", "list")),
    _res("apps", "Deployment", "deployments", status=True, scale=True),
    _res("example.corral.io", "Widget", "widgets"),
]


@pytest.fixture(scope="module")
def docs() -> OpenAPIDocs:
    return OpenAPIDocs(RESOURCES)


def _doc(docs: OpenAPIDocs, gv: str) -> dict[str, Any]:
    data = docs.document(gv)
    assert data is not None
    parsed: dict[str, Any] = orjson.loads(data)
    return parsed


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_index_lists_every_group_version_with_its_hash(docs: OpenAPIDocs) -> None:
    index = orjson.loads(docs.index())

    # the access reviews (apiserver/reviews.py) are always served, as in discovery
    assert sorted(index["paths"]) == [
        "api/v1",
        "apis/apps/v1",
        "apis/authentication.k8s.io/v1",
        "apis/authorization.k8s.io/v1",
        "apis/example.corral.io/v1",
    ]
    for gv, entry in index["paths"].items():
        data = docs.document(gv)
        assert data is not None
        digest = hashlib.sha512(data).hexdigest().upper()
        assert entry == {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
        assert docs.hash(gv) == digest


def test_documents_are_stable_across_builds(docs: OpenAPIDocs) -> None:
    again = OpenAPIDocs(RESOURCES)

    assert again.index() == docs.index()
    assert again.document("/apis/apps/v1") == docs.document("apis/apps/v1")


@pytest.mark.parametrize("gv", ["api/v2", "apis/batch/v1", ""], ids=["version", "group", "empty"])
def test_unknown_group_version(docs: OpenAPIDocs, gv: str) -> None:
    assert docs.document(gv) is None
    assert docs.hash(gv) == ""


@pytest.mark.parametrize(
    ("group", "version", "expected"),
    [("", "v1", "api/v1"), ("apps", "v1", "apis/apps/v1")],
    ids=["core", "named"],
)
def test_gv_path(group: str, version: str, expected: str) -> None:
    assert gv_path(group, version) == expected


@pytest.mark.parametrize(
    ("gv", "path", "method", "action", "gvk"),
    [
        ("api/v1", "/api/v1/namespaces/{namespace}/pods", "get", "list", ("", "Pod")),
        ("api/v1", "/api/v1/namespaces/{namespace}/pods", "post", "post", ("", "Pod")),
        (
            "api/v1",
            "/api/v1/namespaces/{namespace}/pods",
            "delete",
            "deletecollection",
            ("", "Pod"),
        ),
        ("api/v1", "/api/v1/namespaces/{namespace}/pods/{name}", "get", "get", ("", "Pod")),
        ("api/v1", "/api/v1/namespaces/{namespace}/pods/{name}", "put", "put", ("", "Pod")),
        ("api/v1", "/api/v1/namespaces/{namespace}/pods/{name}", "patch", "patch", ("", "Pod")),
        ("api/v1", "/api/v1/namespaces/{namespace}/pods/{name}", "delete", "delete", ("", "Pod")),
        (
            "api/v1",
            "/api/v1/namespaces/{namespace}/pods/{name}/status",
            "patch",
            "patch",
            ("", "Pod"),
        ),
        ("api/v1", "/api/v1/namespaces/{namespace}/pods/{name}/log", "get", "get", ("", "Pod")),
        (
            "api/v1",
            "/api/v1/namespaces/{namespace}/pods/{name}/exec",
            "post",
            "connect",
            ("", "PodExecOptions"),
        ),
        (
            "api/v1",
            "/api/v1/namespaces/{namespace}/pods/{name}/eviction",
            "post",
            "post",
            ("policy", "Eviction"),
        ),
        ("api/v1", "/api/v1/pods", "get", "list", ("", "Pod")),
        ("api/v1", "/api/v1/nodes", "get", "list", ("", "Node")),
        ("api/v1", "/api/v1/nodes/{name}", "patch", "patch", ("", "Node")),
        ("api/v1", "/api/v1/nodes/{name}/status", "put", "put", ("", "Node")),
        (
            "apis/apps/v1",
            "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
            "patch",
            "patch",
            ("autoscaling", "Scale"),
        ),
        (
            "apis/example.corral.io/v1",
            "/apis/example.corral.io/v1/namespaces/{namespace}/widgets/{name}",
            "get",
            "get",
            ("example.corral.io", "Widget"),
        ),
    ],
    ids=[
        "pods-list",
        "pods-create",
        "pods-deletecollection",
        "pod-get",
        "pod-update",
        "pod-patch",
        "pod-delete",
        "pod-status-patch",
        "pod-log",
        "pod-exec",
        "pod-eviction",
        "pods-all-namespaces",
        "nodes-list",
        "node-patch",
        "node-status-update",
        "deployment-scale-patch",
        "widget-get",
    ],
)
def test_operations(
    docs: OpenAPIDocs, gv: str, path: str, method: str, action: str, gvk: tuple[str, str]
) -> None:
    op = _doc(docs, gv)["paths"][path][method]

    assert op["x-kubernetes-action"] == action
    group, kind = gvk
    version = "v1"
    assert op["x-kubernetes-group-version-kind"] == {
        "group": group,
        "version": version,
        "kind": kind,
    }
    assert "200" in op["responses"]


@pytest.mark.parametrize(
    ("path", "absent"),
    [
        ("/api/v1/namespaces/{namespace}/nodes", None),
        ("/api/v1/namespaces/{namespace}/nodes/{name}", None),
        ("/api/v1/namespaces/{namespace}/pods/{name}/scale", None),
        ("/api/v1/componentstatuses/{name}", "patch"),
        ("/api/v1/componentstatuses", "post"),
        ("/api/v1/componentstatuses/{name}/status", None),
    ],
    ids=[
        "cluster-kind-not-namespaced",
        "cluster-kind-item-not-namespaced",
        "no-scale-for-pods",
        "verbs-limit-patch",
        "verbs-limit-create",
        "no-status",
    ],
)
def test_paths_not_served(docs: OpenAPIDocs, path: str, absent: str | None) -> None:
    paths = _doc(docs, "api/v1")["paths"]
    if absent is None:
        assert path not in paths
    else:
        assert absent not in paths[path]


def test_every_patch_accepts_field_validation(docs: OpenAPIDocs) -> None:
    for gv in ("api/v1", "apis/apps/v1", "apis/example.corral.io/v1"):
        patches = [ops["patch"] for ops in _doc(docs, gv)["paths"].values() if "patch" in ops]
        assert patches
        for op in patches:
            params = {p["name"]: p for p in op["parameters"]}
            assert params["fieldValidation"] == {
                "name": "fieldValidation",
                "in": "query",
                "description": params["fieldValidation"]["description"],
                "schema": {"type": "string", "uniqueItems": True},
            }
            assert {"dryRun", "fieldManager", "force"} <= set(params)
            assert sorted(op["requestBody"]["content"]) == [
                "application/apply-patch+yaml",
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            ]


@pytest.mark.parametrize(
    "gv", ["api/v1", "apis/apps/v1", "apis/example.corral.io/v1"], ids=["core", "apps", "custom"]
)
def test_every_ref_resolves_and_no_json_schema_left(docs: OpenAPIDocs, gv: str) -> None:
    doc = _doc(docs, gv)
    schemas = doc["components"]["schemas"]
    for key, value in _walk(doc):
        if key == "$ref":
            assert value.startswith("#/components/schemas/")
            assert value.removeprefix("#/components/schemas/") in schemas
        if key == "type" and not isinstance(value, dict):  # a dict: a property named "type"
            assert isinstance(value, str), value
        assert key != "$defs"
    assert doc["openapi"] == "3.0.0"
    assert doc["info"] == {"title": "Kubernetes", "version": "v1.32.0"}


@pytest.mark.parametrize(
    ("gv", "present", "absent"),
    [
        (
            "api/v1",
            [
                "io.k8s.api.core.v1.Pod",
                "io.k8s.api.core.v1.PodList",
                "io.k8s.api.core.v1.Container",
                "io.k8s.api.core.v1.NodeList",
                "io.k8s.api.policy.v1.Eviction",
                "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
                "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
                "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
                "io.k8s.apimachinery.pkg.api.resource.Quantity",
            ],
            ["io.k8s.api.autoscaling.v1.Scale", "io.k8s.api.apps.v1.Deployment"],
        ),
        (
            "apis/apps/v1",
            [
                "io.k8s.api.apps.v1.Deployment",
                "io.k8s.api.apps.v1.DeploymentList",
                "io.k8s.api.autoscaling.v1.Scale",
                "io.k8s.api.core.v1.PodTemplateSpec",
                "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
            ],
            ["io.k8s.api.core.v1.Node", "io.k8s.api.batch.v1.Job"],
        ),
    ],
    ids=["core", "apps"],
)
def test_reachable_schemas(
    docs: OpenAPIDocs, gv: str, present: list[str], absent: list[str]
) -> None:
    schemas = _doc(docs, gv)["components"]["schemas"]

    assert set(present) <= set(schemas)
    assert not set(absent) & set(schemas)


def test_kind_without_definition_gets_a_plain_object(docs: OpenAPIDocs) -> None:
    doc = _doc(docs, "apis/example.corral.io/v1")
    op = doc["paths"]["/apis/example.corral.io/v1/namespaces/{namespace}/widgets/{name}"]["get"]

    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {"type": "object"}


def test_pod_schema_is_upstream_shaped(docs: OpenAPIDocs) -> None:
    pod = _doc(docs, "api/v1")["components"]["schemas"]["io.k8s.api.core.v1.Pod"]

    assert pod["type"] == "object"
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    assert pod["properties"]["apiVersion"]["type"] == "string"
    assert "enum" not in pod["properties"]["apiVersion"]
    assert "enum" not in pod["properties"]["kind"]
    spec = pod["properties"]["spec"]
    assert spec["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}]
    assert spec["description"].startswith("Specification of the desired behavior")


def test_list_metadata_survives(docs: OpenAPIDocs) -> None:
    schemas = _doc(docs, "api/v1")["components"]["schemas"]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]

    assert containers["type"] == "array"
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-list-type"] == "map"
    assert containers["x-kubernetes-list-map-keys"] == ["name"]
    assert "containers" in schemas["io.k8s.api.core.v1.PodSpec"]["required"]


@pytest.mark.parametrize(
    ("node", "prop", "expected"),
    [
        ({"type": ["string", "null"]}, "", {"type": "string"}),
        (
            {"type": "array", "items": {"type": ["integer", "null"]}},
            "",
            {"type": "array", "items": {"type": "integer"}},
        ),
        ({"type": ["string", "null"], "enum": ["v1"]}, "apiVersion", {"type": "string"}),
        ({"type": ["string", "null"], "enum": ["Pod"]}, "kind", {"type": "string"}),
        ({"type": "string", "enum": ["A", "B"]}, "phase", {"type": "string", "enum": ["A", "B"]}),
        ({"$ref": "#/$defs/x.Y"}, "", {"$ref": "#/components/schemas/x.Y"}),
        (
            {"$ref": "#/$defs/x.Y", "description": "d"},
            "",
            {"allOf": [{"$ref": "#/components/schemas/x.Y"}], "description": "d"},
        ),
        (
            {"type": ["object", "null"], "additionalProperties": {"$ref": "#/$defs/x.Q"}},
            "",
            {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/x.Q"}},
        ),
        (
            {"properties": {"kind": {"type": "string", "enum": ["K"]}}},
            "",
            {"properties": {"kind": {"type": "string"}}},
        ),
        (
            {"x-kubernetes-unions": [{"discriminator": "type"}], "type": "object"},
            "",
            {"x-kubernetes-unions": [{"discriminator": "type"}], "type": "object"},
        ),
    ],
    ids=[
        "nullable-type",
        "array-items",
        "apiVersion-enum-dropped",
        "kind-enum-dropped",
        "other-enum-kept",
        "bare-ref",
        "ref-with-description",
        "map-values",
        "nested-kind-enum-dropped",
        "extensions-verbatim",
    ],
)
def test_convert_schema(node: dict[str, Any], prop: str, expected: dict[str, Any]) -> None:
    assert convert_schema(node, prop=prop) == expected


_UNION = {"oneOf": [{"type": ["string", "null"]}, {"type": ["integer", "null"]}]}


@pytest.mark.parametrize(
    ("name", "node", "expected"),
    [
        (
            "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
            _UNION,
            {"format": "int-or-string", "oneOf": [{"type": "integer"}, {"type": "string"}]},
        ),
        (
            "io.k8s.apimachinery.pkg.api.resource.Quantity",
            {**_UNION, "description": "q"},
            {"description": "q", "oneOf": [{"type": "string"}, {"type": "number"}]},
        ),
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
            {"description": "d", "format": "date-time", "type": ["string", "null"]},
            {"description": "d", "format": "date-time", "type": "string"},
        ),
    ],
    ids=["int-or-string", "quantity", "time"],
)
def test_convert_definition(name: str, node: dict[str, Any], expected: dict[str, Any]) -> None:
    assert convert_definition(name, node) == expected
