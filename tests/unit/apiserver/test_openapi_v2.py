"""The /openapi/v2 document: Swagger 2.0 conversion, gnostic protobuf encoding, serving.

The protobuf bytes are decoded back with a small wire-format reader and the field
numbers of gnostic's ``OpenAPIv2.proto`` written out here (independently of the
module's own table), as kubectl would read them.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from corral.apiserver.openapi import OpenAPIDocs
from corral.apiserver.openapi_v2 import (
    JSON_CT,
    PROTOBUF_CT,
    OpenAPIV2,
    convert_definition,
    convert_paths,
    convert_schema,
    encode_document,
    negotiate,
    yaml_text,
)
from corral.apiserver.registry.table import RESOURCES

Fields = dict[int, list[Any]]

# gnostic openapi.v2 field numbers used below
DOC_SWAGGER, DOC_INFO, DOC_PATHS, DOC_DEFINITIONS = 1, 2, 8, 9
INFO_VERSION = 2
NAMED_NAME, NAMED_VALUE = 1, 2
ANY_YAML = 2
PATHS_PATH = 2
PATH_ITEM_PUT = 3
OP_PARAMETERS, OP_RESPONSES, OP_EXT = 8, 9, 13
PARAMS_ITEM_PARAMETER = 1
PARAM_BODY, PARAM_NON_BODY = 1, 2
BODY_NAME, BODY_SCHEMA = 2, 5
NON_BODY_QUERY = 3
QUERY_NAME, QUERY_TYPE = 4, 6
RESPONSES_CODE = 1
RESPONSE_VALUE_RESPONSE = 1
RESPONSE_SCHEMA = 2
SCHEMA_ITEM_SCHEMA = 1
SCHEMA_REF, SCHEMA_DESCRIPTION, SCHEMA_REQUIRED = 1, 4, 19
SCHEMA_ADDITIONAL, SCHEMA_TYPE, SCHEMA_ITEMS, SCHEMA_PROPERTIES, SCHEMA_EXT = 21, 22, 23, 25, 31
ADDITIONAL_SCHEMA, ADDITIONAL_BOOL = 1, 2


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def parse(data: bytes) -> Fields:
    """One message level: field number -> values (ints, floats or raw bytes)."""
    out: Fields = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value = struct.unpack("<d", data[pos : pos + 8])[0]
            pos += 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value = data[pos : pos + length]
            pos += length
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def one(fields: Fields, number: int) -> Fields:
    (raw,) = fields[number]
    return parse(raw)


def text(fields: Fields, number: int) -> str:
    (raw,) = fields[number]
    return str(raw.decode())


def named(fields: Fields, number: int) -> dict[str, Fields]:
    """Repeated ``Named*`` entries as name -> parsed value."""
    out = {}
    for raw in fields.get(number, []):
        entry = parse(raw)
        out[text(entry, NAMED_NAME)] = one(entry, NAMED_VALUE)
    return out


def extensions(fields: Fields, number: int) -> dict[str, Any]:
    return {name: yaml.safe_load(text(v, ANY_YAML)) for name, v in named(fields, number).items()}


@pytest.fixture(scope="module")
def v2() -> OpenAPIV2:
    return OpenAPIV2(OpenAPIDocs(RESOURCES))


@pytest.fixture(scope="module")
def decoded(v2: OpenAPIV2) -> Fields:
    return parse(v2.body(PROTOBUF_CT))


@pytest.fixture(scope="module")
def defs(decoded: Fields) -> dict[str, Fields]:
    return named(one(decoded, DOC_DEFINITIONS), 1)


# --- conversion -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "prop", "want"),
    [
        ({"$ref": "#/$defs/a.B"}, "", {"$ref": "#/definitions/a.B"}),
        (
            {"$ref": "#/$defs/a.B", "description": "d"},
            "",
            {"$ref": "#/definitions/a.B", "description": "d"},
        ),
        ({"type": ["string", "null"]}, "", {"type": "string"}),
        ({"type": ["string", "null"], "enum": ["v1"]}, "apiVersion", {"type": "string"}),
        ({"type": "string", "enum": ["A", "B"]}, "policy", {"type": "string", "enum": ["A", "B"]}),
        (
            {"properties": {"a": {"type": ["integer", "null"]}}},
            "",
            {"properties": {"a": {"type": "integer"}}, "type": "object"},
        ),
        ({"type": ["array", "null"]}, "", {"type": "array", "items": {}}),
        (
            {"type": "object", "additionalProperties": {"$ref": "#/$defs/q.Q"}},
            "",
            {"type": "object", "additionalProperties": {"$ref": "#/definitions/q.Q"}},
        ),
        (
            {"oneOf": [{"type": "string"}], "x-kubernetes-map-type": "atomic"},
            "",
            {"x-kubernetes-map-type": "atomic"},
        ),
    ],
    ids=[
        "ref",
        "ref-keeps-description",
        "nullable-type",
        "apiVersion-enum-dropped",
        "other-enum-kept",
        "properties-get-object-type",
        "array-gets-items",
        "map-of-refs",
        "oneOf-dropped-extension-kept",
    ],
)
def test_convert_schema(node: dict[str, Any], prop: str, want: dict[str, Any]) -> None:
    assert convert_schema(node, prop=prop) == want


@pytest.mark.parametrize(
    ("name", "want"),
    [
        (
            "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
            {"type": "string", "format": "int-or-string", "description": "d"},
        ),
        ("io.k8s.apimachinery.pkg.api.resource.Quantity", {"type": "string", "description": "d"}),
    ],
    ids=["int-or-string", "quantity"],
)
def test_scalar_unions_become_strings(name: str, want: dict[str, Any]) -> None:
    node = {"oneOf": [{"type": ["string", "null"]}, {"type": ["integer", "null"]}]}
    assert convert_definition(name, {**node, "description": "d"}) == want


def test_paths_take_swagger2_shapes() -> None:
    v3 = {
        "/api/v1/x": {
            "parameters": [{"name": "pretty", "in": "query", "schema": {"type": "string"}}],
            "post": {
                "operationId": "createX",
                "x-kubernetes-action": "post",
                "parameters": [
                    {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                ],
                "requestBody": {
                    "content": {"*/*": {"schema": {"$ref": "#/components/schemas/a.X"}}},
                    "required": True,
                },
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/a.X"}},
                            "application/yaml": {"schema": {"$ref": "#/components/schemas/a.X"}},
                        },
                    },
                    "401": {"description": "Unauthorized"},
                },
            },
        }
    }
    assert convert_paths(v3) == {
        "/api/v1/x": {
            "parameters": [{"name": "pretty", "in": "query", "type": "string"}],
            "post": {
                "operationId": "createX",
                "x-kubernetes-action": "post",
                "parameters": [
                    {
                        "name": "body",
                        "in": "body",
                        "required": True,
                        "schema": {"$ref": "#/definitions/a.X"},
                    },
                    {"name": "dryRun", "in": "query", "type": "string"},
                ],
                "responses": {
                    "200": {"description": "OK", "schema": {"$ref": "#/definitions/a.X"}},
                    "401": {"description": "Unauthorized"},
                },
                "consumes": ["*/*"],
                "produces": ["application/json", "application/yaml"],
                "schemes": ["https"],
            },
        }
    }


def test_json_document(v2: OpenAPIV2) -> None:
    doc = orjson.loads(v2.body(JSON_CT))
    assert doc["swagger"] == "2.0"
    cm = doc["definitions"]["io.k8s.api.core.v1.ConfigMap"]
    assert cm["type"] == "object"
    assert cm["x-kubernetes-group-version-kind"] == [
        {"group": "", "kind": "ConfigMap", "version": "v1"}
    ]
    targets = orjson.dumps(doc).decode().split('"$ref":"#/definitions/')[1:]
    assert targets
    for raw in targets:
        assert raw.split('"', 1)[0] in doc["definitions"]


# --- protobuf ---------------------------------------------------------------------------


def test_document_header(decoded: Fields) -> None:
    assert text(decoded, DOC_SWAGGER) == "2.0"
    assert text(one(decoded, DOC_INFO), INFO_VERSION).startswith("v1.")


@pytest.mark.parametrize(
    ("definition", "gvk"),
    [
        ("io.k8s.api.core.v1.ConfigMap", {"group": "", "version": "v1", "kind": "ConfigMap"}),
        ("io.k8s.api.apps.v1.Deployment", {"group": "apps", "version": "v1", "kind": "Deployment"}),
        ("io.k8s.api.core.v1.Pod", {"group": "", "version": "v1", "kind": "Pod"}),
    ],
    ids=["configmap", "deployment", "pod"],
)
def test_definitions_carry_gvk(
    defs: dict[str, Fields], definition: str, gvk: dict[str, str]
) -> None:
    schema = defs[definition]
    assert extensions(schema, SCHEMA_EXT)["x-kubernetes-group-version-kind"] == [gvk]
    assert [v.decode() for v in one(schema, SCHEMA_TYPE)[1]] == ["object"]
    assert "metadata" in named(one(schema, SCHEMA_PROPERTIES), 1)


def test_list_field_with_patch_extensions(defs: dict[str, Fields]) -> None:
    containers = named(one(defs["io.k8s.api.core.v1.PodSpec"], SCHEMA_PROPERTIES), 1)["containers"]
    assert one(containers, SCHEMA_TYPE)[1] == [b"array"]
    (item,) = [parse(raw) for raw in one(containers, SCHEMA_ITEMS)[1]]
    assert text(item, SCHEMA_REF) == "#/definitions/io.k8s.api.core.v1.Container"
    ext = extensions(containers, SCHEMA_EXT)
    assert ext["x-kubernetes-patch-merge-key"] == "name"
    assert ext["x-kubernetes-patch-strategy"] == "merge"
    assert ext["x-kubernetes-list-type"] == "map"
    assert ext["x-kubernetes-list-map-keys"] == ["name"]
    assert b"containers" in defs["io.k8s.api.core.v1.PodSpec"][SCHEMA_REQUIRED]


def test_map_field(defs: dict[str, Fields]) -> None:
    data = named(one(defs["io.k8s.api.core.v1.ConfigMap"], SCHEMA_PROPERTIES), 1)["data"]
    value = one(one(data, SCHEMA_ADDITIONAL), ADDITIONAL_SCHEMA)
    assert one(value, SCHEMA_TYPE)[1] == [b"string"]


def test_int_or_string_is_a_string(defs: dict[str, Fields]) -> None:
    ios = defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert one(ios, SCHEMA_TYPE)[1] == [b"string"]


def test_every_reference_resolves(defs: dict[str, Fields]) -> None:
    def refs(schema: Fields) -> list[str]:
        out = [raw.decode() for raw in schema.get(SCHEMA_REF, [])]
        for number in (SCHEMA_ITEMS, SCHEMA_PROPERTIES, SCHEMA_ADDITIONAL):
            for raw in schema.get(number, []):
                wrapper = parse(raw)
                for sub in wrapper.get(1, []):
                    sub_fields = parse(sub)
                    if number == SCHEMA_PROPERTIES:
                        sub_fields = one(sub_fields, NAMED_VALUE)
                    out.extend(refs(sub_fields))
        return out

    for schema in defs.values():
        for ref in refs(schema):
            assert ref.removeprefix("#/definitions/") in defs


def test_put_operation(decoded: Fields) -> None:
    paths = named(one(decoded, DOC_PATHS), PATHS_PATH)
    put = one(paths["/api/v1/namespaces/{namespace}/configmaps/{name}"], PATH_ITEM_PUT)
    params = [one(parse(raw), PARAMS_ITEM_PARAMETER) for raw in put[OP_PARAMETERS]]
    body = one(params[0], PARAM_BODY)
    assert text(body, BODY_NAME) == "body"
    assert text(one(body, BODY_SCHEMA), SCHEMA_REF) == "#/definitions/io.k8s.api.core.v1.ConfigMap"
    queries = {
        text(q, QUERY_NAME): text(q, QUERY_TYPE)
        for q in (one(one(p, PARAM_NON_BODY), NON_BODY_QUERY) for p in params[1:])
    }
    assert queries["fieldValidation"] == "string"
    responses = named(one(put, OP_RESPONSES), RESPONSES_CODE)
    ok = one(one(responses["200"], RESPONSE_VALUE_RESPONSE), RESPONSE_SCHEMA)
    assert text(one(ok, SCHEMA_ITEM_SCHEMA), SCHEMA_REF).endswith(".ConfigMap")
    assert extensions(put, OP_EXT) == {
        "x-kubernetes-action": "put",
        "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
    }


@pytest.mark.parametrize(
    ("schema", "want"),
    [
        ({"additionalProperties": False}, {ADDITIONAL_BOOL: [0]}),
        ({"additionalProperties": True}, {ADDITIONAL_BOOL: [1]}),
    ],
    ids=["false-is-written", "true"],
)
def test_additional_properties_bool(schema: dict[str, Any], want: Fields) -> None:
    doc = {"definitions": {"a": schema}}
    (entry,) = one(parse(encode_document(doc)), DOC_DEFINITIONS)[1]
    assert one(one(parse(entry), NAMED_VALUE), SCHEMA_ADDITIONAL) == want


@pytest.mark.parametrize(
    ("schema", "number", "want"),
    [
        ({"maxLength": 5}, 11, [5]),
        ({"minimum": -1.5}, 9, [-1.5]),
        ({"minLength": -1}, 12, [(1 << 64) - 1]),
        ({"uniqueItems": False}, 16, None),
        ({"description": ""}, 4, None),
    ],
    ids=["int64", "double", "negative-int64", "false-omitted", "empty-omitted"],
)
def test_scalars(schema: dict[str, Any], number: int, want: list[Any] | None) -> None:
    (entry,) = one(parse(encode_document({"definitions": {"a": schema}})), DOC_DEFINITIONS)[1]
    assert one(parse(entry), NAMED_VALUE).get(number) == want


@pytest.mark.parametrize(
    ("value", "want"),
    [("merge", "merge\n"), ([{"group": ""}], "- group: ''\n"), (True, "true\n")],
    ids=["scalar-no-document-end", "list", "bool"],
)
def test_yaml_text(value: Any, want: str) -> None:
    assert yaml_text(value) == want


# --- serving ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "want"),
    [
        ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf", PROTOBUF_CT),
        ("application/com.github.proto-openapi.spec.v2.v1.0+protobuf", PROTOBUF_CT),
        ("application/json", JSON_CT),
        ("application/json;q=0.9", JSON_CT),
        ("", JSON_CT),
        ("*/*", JSON_CT),
        ("text/html", None),
        ("text/html, application/json", JSON_CT),
    ],
    ids=["protobuf", "protobuf-dot", "json", "json-q", "empty", "any", "html", "second-clause"],
)
def test_negotiate(accept: str, want: str | None) -> None:
    assert negotiate(accept) == want


@pytest.fixture
async def client(v2: OpenAPIV2) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        return v2.response(request)

    app = web.Application()
    app.router.add_get("/openapi/v2", handle)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_serves_protobuf_gzipped(
    client: TestClient[web.Request, web.Application], v2: OpenAPIV2
) -> None:
    resp = await client.get(
        "/openapi/v2",
        headers={
            "Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
            "Accept-Encoding": "gzip",
        },
        auto_decompress=False,
    )
    assert resp.status == 200
    assert resp.headers["Content-Type"] == PROTOBUF_CT
    assert resp.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(await resp.read()) == v2.body(PROTOBUF_CT)


async def test_etag_and_not_modified(
    client: TestClient[web.Request, web.Application], v2: OpenAPIV2
) -> None:
    resp = await client.get("/openapi/v2")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == JSON_CT
    etag = resp.headers["ETag"]
    assert etag == v2.etag and len(etag) == 130
    assert await resp.read() == v2.body(JSON_CT)
    again = await client.get("/openapi/v2", headers={"If-None-Match": etag})
    assert again.status == 304


async def test_not_acceptable(client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.get("/openapi/v2", headers={"Accept": "text/html"})
    assert resp.status == 406
