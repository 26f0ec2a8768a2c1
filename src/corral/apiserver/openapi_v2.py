"""The ``/openapi/v2`` document: Swagger 2.0, as gnostic protobuf or as JSON.

kubectl 1.32 still reads the v2 document for client-side validation: when the
``/openapi/v3`` documents do not show that the server validates fields for a GVK (a file
whose kind is ``List``, an unknown kind), ``apply``/``create`` fetch ``GET /openapi/v2``
with ``Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`` (protobuf
only) and check every object against its ``definitions``, found through each
definition's ``x-kubernetes-group-version-kind`` extension. ``kubectl explain
--output=plaintext-openapiv2`` reads it too. ``APIApp`` routes the path to
``OpenAPIV2.response``.

The document is built once, on first request, from the same sources as the v3
documents: the paths come from ``OpenAPIDocs`` (converted back to the Swagger 2.0
shapes: ``requestBody`` becomes a ``body`` parameter, response ``content`` becomes
``schema`` plus ``produces``) and the definitions from ``corral.api.schema.definitions()``
and the strategies of Corral's own kinds (``OpenAPIDocs.all_definitions``; JSON Schema
turned into Swagger 2.0: ``#/definitions/`` references, single types,
``IntOrString`` and ``Quantity`` as the strings upstream publishes). Only the definitions
the served group-versions reach are published, as upstream does.

The protobuf form is message ``openapi.v2.Document`` of gnostic's ``OpenAPIv2.proto``.
No protobuf library is needed: ``_MESSAGES`` below is our own field table (field numbers
and wire kinds, read from the descriptor compiled into kubectl) for the messages a
Kubernetes document uses, and ``_encode`` writes the wire format from it. Vendor
extensions (``x-kubernetes-*``) become ``NamedAny`` entries whose ``Any.yaml`` holds the
value as YAML, which is how kubectl reads them back. The JSON and protobuf bodies, their
gzip forms and the ETag (uppercase hex SHA-512, as kube-openapi computes it) are cached.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson
import yaml
from aiohttp import web

from corral.api.schema import KUBE_VERSION

if TYPE_CHECKING:
    from corral.apiserver.openapi import OpenAPIDocs

Schema = dict[str, Any]

JSON_CT = "application/json"

_DEFS_PREFIX = "#/$defs/"
_COMPONENTS_PREFIX = "#/components/schemas/"
_DEFINITIONS_PREFIX = "#/definitions/"

INT_OR_STRING_DEF = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY_DEF = "io.k8s.apimachinery.pkg.api.resource.Quantity"

#: JSON Schema keys Swagger 2.0 has no place for
_DROPPED = frozenset({"oneOf", "anyOf", "not", "$schema", "$id", "$defs"})


# --- definitions: JSON Schema ($defs) -> Swagger 2.0 ----------------------------------


def _single_type(value: Any) -> Any:
    """``["string", "null"]`` -> ``"string"`` (kubectl rejects multi-type schemas)."""
    if isinstance(value, list):
        kept = [t for t in value if t != "null"]
        return kept[0] if kept else None
    return value


def convert_schema(node: Schema, *, prop: str = "") -> Schema:
    """One JSON Schema node as Swagger 2.0 (pure; ``node`` is not mutated).

    ``$ref`` keeps its sibling keys (``description``), as the upstream v2 document does;
    ``oneOf``/``anyOf``, which Swagger 2.0 lacks, are dropped; an object with
    ``properties`` gets ``type: object``; an array always has ``items`` (kubectl refuses
    an array without exactly one item schema). ``prop`` is the property name the node sits
    under: ``apiVersion``/``kind`` lose the ``enum`` ``kubernetes-validate`` added.
    """
    out: Schema = {}
    for key, value in node.items():
        if key == "$ref":
            out["$ref"] = _DEFINITIONS_PREFIX + str(value).removeprefix(_DEFS_PREFIX)
        elif key == "type":
            single = _single_type(value)
            if single is not None:
                out["type"] = single
        elif key in _DROPPED or (key == "enum" and prop in ("apiVersion", "kind")):
            continue
        elif key == "properties":
            out["properties"] = {
                name: convert_schema(sub, prop=name) for name, sub in value.items()
            }
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = convert_schema(value)
        elif key == "allOf":
            out["allOf"] = [convert_schema(sub) for sub in value]
        else:
            out[key] = value
    if "properties" in out and "type" not in out and "$ref" not in out:
        out["type"] = "object"
    if out.get("type") == "array" and "items" not in out:
        out["items"] = {}
    return out


def convert_definition(name: str, node: Schema) -> Schema:
    """A whole named definition; ``IntOrString``/``Quantity`` become upstream's strings."""
    if name in (INT_OR_STRING_DEF, QUANTITY_DEF):
        out: Schema = {"type": "string"}
        if name == INT_OR_STRING_DEF:
            out["format"] = "int-or-string"
        if node.get("description"):
            out["description"] = node["description"]
        return out
    return convert_schema(node)


# --- paths: the v3 documents' operations in Swagger 2.0 shape ------------------------


def _v2_refs(node: Any) -> Any:
    """A copy of ``node`` with ``#/components/schemas/`` references made ``#/definitions/``."""
    if isinstance(node, dict):
        return {
            k: (
                _DEFINITIONS_PREFIX + v.removeprefix(_COMPONENTS_PREFIX)
                if k == "$ref" and isinstance(v, str)
                else _v2_refs(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_v2_refs(v) for v in node]
    return node


def _v2_parameter(param: Schema) -> Schema:
    """A v3 query/path parameter: its ``schema`` keys move up beside ``name``/``in``."""
    out = {k: v for k, v in param.items() if k != "schema"}
    out.update(param.get("schema", {}))
    return out


def _v2_operation(op: Schema) -> Schema:
    out: Schema = {}
    params: list[Schema] = []
    consumes: list[str] = []
    produces: list[str] = []
    for key, value in op.items():
        if key == "parameters":
            params.extend(_v2_parameter(p) for p in value)
        elif key == "requestBody":
            content: Schema = value["content"]
            consumes.extend(content)
            schema = next(iter(content.values()))["schema"]
            body = {"name": "body", "in": "body", "required": True, "schema": _v2_refs(schema)}
            params.insert(0, body)
        elif key == "responses":
            responses: Schema = {}
            for code, resp in value.items():
                entry: Schema = {"description": resp.get("description", "")}
                resp_content: Schema = resp.get("content", {})
                if resp_content:
                    produces.extend(t for t in resp_content if t not in produces)
                    entry["schema"] = _v2_refs(next(iter(resp_content.values()))["schema"])
                responses[code] = entry
            out["responses"] = responses
        else:
            out[key] = value
    if consumes:
        out["consumes"] = consumes
    if produces:
        out["produces"] = produces
    out["schemes"] = ["https"]
    if params:
        out["parameters"] = params
    return out


def convert_paths(paths: Schema) -> Schema:
    """The ``paths`` of one v3 document in Swagger 2.0 shape."""
    out: Schema = {}
    for path, item in paths.items():
        v2_item: Schema = {}
        for key, value in item.items():
            if key == "parameters":
                v2_item["parameters"] = [_v2_parameter(p) for p in value]
            elif isinstance(value, dict):
                v2_item[key] = _v2_operation(value)
            else:
                v2_item[key] = value
        out[path] = v2_item
    return out


def build_document(docs: OpenAPIDocs) -> Schema:
    """The whole Swagger 2.0 document for the group-versions ``docs`` serves."""
    paths: Schema = {}
    names: set[str] = set()
    for gv in docs.group_versions:
        raw = docs.document(gv)
        if raw is None:
            continue
        v3 = orjson.loads(raw)
        paths.update(convert_paths(v3.get("paths", {})))
        names.update(v3.get("components", {}).get("schemas", {}))
    defs = docs.all_definitions(v2=True)
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": KUBE_VERSION},
        "paths": dict(sorted(paths.items())),
        "definitions": {n: convert_definition(n, defs[n]) for n in sorted(names) if n in defs},
    }


# --- protobuf: openapi.v2.Document from our field table -------------------------------

# Field kinds: "s" string, "S" repeated string, "b" bool, "d" double, "i" int64,
# "any" Any (YAML), "anys" repeated Any, "m:<Msg>" message, "M:<Msg>" repeated message,
# "named:<Msg>" a JSON object as repeated Named<Msg> {1 name, 2 value} (inside a
# wrapper message when the field itself is a message: see _WRAPPED), and special kinds
# handled in _encode_value. "x" is the repeated NamedAny vendor_extension field.
_Table = dict[str, tuple[int, str]]

_SCALARS_COMMON: _Table = {
    "maximum": (0, "d"),
    "exclusiveMaximum": (0, "b"),
    "minimum": (0, "d"),
    "exclusiveMinimum": (0, "b"),
    "maxLength": (0, "i"),
    "minLength": (0, "i"),
    "pattern": (0, "s"),
    "maxItems": (0, "i"),
    "minItems": (0, "i"),
    "uniqueItems": (0, "b"),
    "enum": (0, "anys"),
    "multipleOf": (0, "d"),
}


def _numbered(first: int, keys: Iterable[tuple[str, str]]) -> _Table:
    """Consecutive field numbers from ``first``, in the order given."""
    return {key: (first + i, kind) for i, (key, kind) in enumerate(keys)}


def _sub_schema(head: list[tuple[str, str]], allow_empty: bool) -> _Table:
    """The layout shared by ``QueryParameterSubSchema`` and ``PathParameterSubSchema``."""
    keys = [("required", "b"), ("in", "s"), ("description", "s"), ("name", "s")]
    if allow_empty:
        keys.append(("allowEmptyValue", "b"))
    keys += [*head, ("items", "m:PrimitivesItems"), ("collectionFormat", "s"), ("default", "any")]
    keys += [(k, kind) for k, (_, kind) in _SCALARS_COMMON.items()]
    keys.append(("x-", "x"))
    return _numbered(1, keys)


_TYPE_FORMAT = [("type", "s"), ("format", "s")]

_MESSAGES: dict[str, _Table] = {
    "Document": _numbered(
        1,
        [
            ("swagger", "s"),
            ("info", "m:Info"),
            ("host", "s"),
            ("basePath", "s"),
            ("schemes", "S"),
            ("consumes", "S"),
            ("produces", "S"),
            ("paths", "paths"),
            ("definitions", "named:Schema"),
            ("parameters", "unsupported"),
            ("responses", "unsupported"),
            ("security", "unsupported"),
            ("securityDefinitions", "unsupported"),
            ("tags", "unsupported"),
            ("externalDocs", "unsupported"),
            ("x-", "x"),
        ],
    ),
    "Info": _numbered(
        1,
        [
            ("title", "s"),
            ("version", "s"),
            ("description", "s"),
            ("termsOfService", "s"),
            ("contact", "unsupported"),
            ("license", "unsupported"),
            ("x-", "x"),
        ],
    ),
    "PathItem": _numbered(
        1,
        [
            ("$ref", "s"),
            ("get", "m:Operation"),
            ("put", "m:Operation"),
            ("post", "m:Operation"),
            ("delete", "m:Operation"),
            ("options", "m:Operation"),
            ("head", "m:Operation"),
            ("patch", "m:Operation"),
            ("parameters", "params"),
            ("x-", "x"),
        ],
    ),
    "Operation": _numbered(
        1,
        [
            ("tags", "S"),
            ("summary", "s"),
            ("description", "s"),
            ("externalDocs", "unsupported"),
            ("operationId", "s"),
            ("produces", "S"),
            ("consumes", "S"),
            ("parameters", "params"),
            ("responses", "responses"),
            ("schemes", "S"),
            ("deprecated", "b"),
            ("security", "unsupported"),
            ("x-", "x"),
        ],
    ),
    "BodyParameter": _numbered(
        1,
        [
            ("description", "s"),
            ("name", "s"),
            ("in", "s"),
            ("required", "b"),
            ("schema", "m:Schema"),
            ("x-", "x"),
        ],
    ),
    "QueryParameterSubSchema": _sub_schema(_TYPE_FORMAT, allow_empty=True),
    "PathParameterSubSchema": _sub_schema(_TYPE_FORMAT, allow_empty=False),
    "PrimitivesItems": _numbered(
        1,
        [
            *_TYPE_FORMAT,
            ("items", "m:PrimitivesItems"),
            ("collectionFormat", "s"),
            ("default", "any"),
            *((k, kind) for k, (_, kind) in _SCALARS_COMMON.items()),
            ("x-", "x"),
        ],
    ),
    "Response": _numbered(
        1,
        [
            ("description", "s"),
            ("schema", "schemaItem"),
            ("headers", "unsupported"),
            ("examples", "unsupported"),
            ("x-", "x"),
        ],
    ),
    "Schema": _numbered(
        1,
        [
            ("$ref", "s"),
            ("format", "s"),
            ("title", "s"),
            ("description", "s"),
            ("default", "any"),
            ("multipleOf", "d"),
            ("maximum", "d"),
            ("exclusiveMaximum", "b"),
            ("minimum", "d"),
            ("exclusiveMinimum", "b"),
            ("maxLength", "i"),
            ("minLength", "i"),
            ("pattern", "s"),
            ("maxItems", "i"),
            ("minItems", "i"),
            ("uniqueItems", "b"),
            ("maxProperties", "i"),
            ("minProperties", "i"),
            ("required", "S"),
            ("enum", "anys"),
            ("additionalProperties", "additional"),
            ("type", "typeItem"),
            ("items", "itemsItem"),
            ("allOf", "M:Schema"),
            ("properties", "named:Schema"),
            ("discriminator", "s"),
            ("readOnly", "b"),
            ("xml", "unsupported"),
            ("externalDocs", "unsupported"),
            ("example", "any"),
            ("x-", "x"),
        ],
    ),
}

# Fixed single-purpose numbers of the small wrapper messages.
_NAMED_NAME, _NAMED_VALUE = 1, 2  # Named*: name, value
_WRAPPED = 1  # Definitions/Properties.additional_properties, TypeItem/StringArray.value
_ANY_YAML = 2  # Any.yaml
_PATHS_PATH = 2  # Paths.path (1 is vendor_extension)
_ITEMS_SCHEMA = 1  # ItemsItem.schema
_ADDITIONAL_SCHEMA, _ADDITIONAL_BOOL = 1, 2  # AdditionalPropertiesItem oneof
_PARAMS_PARAMETER = 1  # ParametersItem.parameter (2 json_reference)
_PARAM_BODY, _PARAM_NON_BODY = 1, 2  # Parameter oneof
_NON_BODY = {"header": 1, "formData": 2, "query": 3, "path": 4}  # NonBodyParameter oneof
_RESPONSES_CODE = 1  # Responses.response_code (2 vendor_extension)
_RESPONSE_VALUE_RESPONSE = 1  # ResponseValue.response (2 json_reference)
_SCHEMA_ITEM_SCHEMA = 1  # SchemaItem.schema (2 file_schema)


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _bytes_field(number: int, data: bytes) -> bytes:
    return _tag(number, 2) + _varint(len(data)) + data


def _str_field(number: int, value: str) -> bytes:
    return _bytes_field(number, value.encode())


def yaml_text(value: Any) -> str:
    """``value`` as the YAML an ``Any.yaml`` holds (no ``...`` document-end marker)."""
    text = yaml.safe_dump(value, default_flow_style=False, sort_keys=False, width=1 << 20)
    return text.removesuffix("...\n")


def _any(value: Any) -> bytes:
    return _str_field(_ANY_YAML, yaml_text(value))


def _named(name: str, value: bytes) -> bytes:
    return _str_field(_NAMED_NAME, name) + _bytes_field(_NAMED_VALUE, value)


def _parameter(param: Schema) -> bytes:
    """A ``ParametersItem`` holding a body or a query/path/header parameter."""
    where = param.get("in", "")
    if where == "body":
        inner = _bytes_field(_PARAM_BODY, _encode("BodyParameter", param))
    else:
        msg = "PathParameterSubSchema" if where == "path" else "QueryParameterSubSchema"
        sub = _bytes_field(_NON_BODY.get(where, _NON_BODY["query"]), _encode(msg, param))
        inner = _bytes_field(_PARAM_NON_BODY, sub)
    return _bytes_field(_PARAMS_PARAMETER, inner)


def _encode_value(number: int, kind: str, value: Any) -> bytes:
    """One JSON value as the wire bytes of field ``number`` of kind ``kind``."""
    if kind == "s":
        return _str_field(number, str(value)) if value else b""
    if kind == "S":
        return b"".join(_str_field(number, str(v)) for v in value)
    if kind == "b":
        return _tag(number, 0) + b"\x01" if value else b""
    if kind == "i":
        return _tag(number, 0) + _varint(int(value)) if value else b""
    if kind == "d":
        return _tag(number, 1) + struct.pack("<d", float(value)) if value else b""
    if kind == "any":
        return _bytes_field(number, _any(value))
    if kind == "anys":
        return b"".join(_bytes_field(number, _any(v)) for v in value)
    if kind.startswith("m:"):
        return _bytes_field(number, _encode(kind[2:], value))
    if kind.startswith("M:"):
        return b"".join(_bytes_field(number, _encode(kind[2:], v)) for v in value)
    if kind.startswith("named:"):
        msg = kind[6:]
        wrapped = b"".join(
            _bytes_field(_WRAPPED, _named(name, _encode(msg, sub))) for name, sub in value.items()
        )
        return _bytes_field(number, wrapped)
    if kind == "paths":
        items = b"".join(
            _bytes_field(_PATHS_PATH, _named(path, _encode("PathItem", item)))
            for path, item in value.items()
        )
        return _bytes_field(number, items)
    if kind == "params":
        return b"".join(_bytes_field(number, _parameter(p)) for p in value)
    if kind == "responses":
        codes = b"".join(
            _bytes_field(
                _RESPONSES_CODE,
                _named(
                    code,
                    _bytes_field(_RESPONSE_VALUE_RESPONSE, _encode("Response", resp)),
                ),
            )
            for code, resp in value.items()
        )
        return _bytes_field(number, codes)
    if kind == "schemaItem":
        return _bytes_field(number, _bytes_field(_SCHEMA_ITEM_SCHEMA, _encode("Schema", value)))
    if kind == "typeItem":
        types = value if isinstance(value, list) else [value]
        return _bytes_field(number, b"".join(_str_field(_WRAPPED, t) for t in types))
    if kind == "itemsItem":
        schemas = value if isinstance(value, list) else [value]
        body = b"".join(_bytes_field(_ITEMS_SCHEMA, _encode("Schema", s)) for s in schemas)
        return _bytes_field(number, body)
    if kind == "additional":
        if isinstance(value, dict):
            inner = _bytes_field(_ADDITIONAL_SCHEMA, _encode("Schema", value))
        else:
            inner = _tag(_ADDITIONAL_BOOL, 0) + (b"\x01" if value else b"\x00")
        return _bytes_field(number, inner)
    return b""  # "unsupported": never produced for a Kubernetes document


def _encode(msg: str, obj: Schema) -> bytes:
    """``obj`` (a Swagger 2.0 JSON object) as the wire bytes of gnostic message ``msg``.

    Fields are written in field-number order; ``x-`` keys become ``NamedAny`` vendor
    extensions; keys the message does not have are dropped.
    """
    table = _MESSAGES[msg]
    parts: list[tuple[int, bytes]] = []
    extensions: list[bytes] = []
    for key, value in obj.items():
        if key.startswith("x-"):
            extensions.append(_named(key, _any(value)))
            continue
        spec = table.get(key)
        if spec is None or value is None:
            continue
        number, kind = spec
        parts.append((number, _encode_value(number, kind, value)))
    if extensions and "x-" in table:
        number = table["x-"][0]
        parts.append((number, b"".join(_bytes_field(number, e) for e in extensions)))
    parts.sort(key=lambda p: p[0])
    return b"".join(data for _, data in parts)


def encode_document(doc: Schema) -> bytes:
    """The Swagger 2.0 document ``doc`` as a serialised ``openapi.v2.Document``."""
    return _encode("Document", doc)


# --- serving ----------------------------------------------------------------------------

#: what kube-openapi answers for either protobuf media type it accepts
PROTOBUF_CT = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
_PROTOBUF_SUBTYPES = (
    "com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "com.github.proto-openapi.spec.v2.v1.0+protobuf",
)


def negotiate(accept: str) -> str | None:
    """The content type to answer ``Accept`` with: protobuf, JSON, or None (406).

    Clauses are taken in order (kubectl sends one); ``*/*``, ``application/*`` and an
    empty header mean JSON, as upstream's table lists JSON first.
    """
    for clause in (accept or "*/*").split(","):
        media = clause.split(";", 1)[0].strip().lower()
        kind, _, subtype = media.partition("/")
        if kind not in ("application", "*"):
            continue
        if subtype in _PROTOBUF_SUBTYPES:
            return PROTOBUF_CT
        if subtype in ("json", "*"):
            return JSON_CT
    return None


class _Body:
    """One encoded form: the bytes and their gzip form."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.gzipped = gzip.compress(data, compresslevel=6, mtime=0)


class OpenAPIV2:
    """``GET /openapi/v2``: built on first use from an ``OpenAPIDocs``, then cached."""

    def __init__(self, docs: OpenAPIDocs) -> None:
        self._docs = docs
        self._bodies: dict[str, _Body] = {}
        self._etag = ""
        self._generation = docs.generation

    def document(self) -> Schema:
        """The Swagger 2.0 document as a fresh JSON-shaped dict (not cached)."""
        return build_document(self._docs)

    def _build(self) -> dict[str, _Body]:
        if self._generation != self._docs.generation:  # the served rows changed (CRDs)
            self._bodies = {}
            self._generation = self._docs.generation
        if not self._bodies:
            doc = self.document()
            json_data = orjson.dumps(doc)
            # Upstream's ETag: uppercase hex SHA-512 of the JSON, shared by the
            # protobuf form (the responses say ``Vary: Accept``).
            self._etag = '"' + hashlib.sha512(json_data).hexdigest().upper() + '"'
            self._bodies = {JSON_CT: _Body(json_data), PROTOBUF_CT: _Body(encode_document(doc))}
        return self._bodies

    def body(self, content_type: str) -> bytes:
        """The cached document encoded as ``JSON_CT`` or ``PROTOBUF_CT``."""
        return self._build()[content_type].data

    @property
    def etag(self) -> str:
        """The quoted ETag of the current document."""
        self._build()
        return self._etag

    def response(self, request: web.Request) -> web.Response:
        """The protobuf or JSON body for ``request``; 304 when ``If-None-Match`` matches,
        406 when ``Accept`` names neither form."""
        content_type = negotiate(request.headers.get("Accept", ""))
        if content_type is None:
            return web.Response(status=406, headers={"Vary": "Accept"})
        body = self._build()[content_type]
        headers = {"ETag": self._etag, "Vary": "Accept", "Content-Type": content_type}
        if self._etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return web.Response(body=body.gzipped, headers=headers)
        return web.Response(body=body.data, headers=headers)
