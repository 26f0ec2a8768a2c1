"""The ``/openapi/v3`` documents: an index plus one OpenAPI 3.0 document per group-version.

The HTTP layer serves ``OpenAPIDocs.index()`` at ``GET /openapi/v3`` and
``OpenAPIDocs.document(gv)`` at ``GET /openapi/v3/<gv>``. kubectl reads them for three
things: ``kubectl explain`` (the ``components.schemas`` with their
``x-kubernetes-group-version-kind``), server-side field validation (``create``/``apply``
look for a PATCH operation of the object's GVK that accepts ``fieldValidation``; without
it kubectl falls back to client-side validation, which needs the protobuf v2 document we
do not serve) and patch metadata.

The documents are generated at run time from the registry table and the Kubernetes 1.32
definitions shipped by ``kubernetes-validate`` (``corral.api.schema.definitions()``, JSON
Schema ``$defs``), plus the definitions Corral's own kinds declare in their strategies
(``Strategy.definitions``, e.g. mesos.corral.dev Frameworks). The definitions are
converted back to the OpenAPI 3.0 dialect the real server publishes: ``$ref`` points into
``#/components/schemas``, a ``$ref`` with sibling keys is wrapped in ``allOf``, nullable
type lists become a single type, the ``enum`` that ``kubernetes-validate`` adds on
``apiVersion``/``kind`` is dropped, ``IntOrString`` and ``Quantity`` take their upstream
``oneOf`` shape.

Each document is built once, on first use, and kept as bytes; its hash (uppercase hex
SHA-512 of those bytes, as the real server computes it) is the cache key kubectl puts in
``?hash=`` and stores on disk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from corral.api.schema import KUBE_VERSION, definitions, gvk_index
from corral.apiserver.reviews import REVIEW_ROWS

if TYPE_CHECKING:
    from corral.apiserver.registry.base import ResourceInfo

Schema = dict[str, Any]

_DEFS_PREFIX = "#/$defs/"
_COMPONENTS_PREFIX = "#/components/schemas/"

_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
STATUS_DEF = _META + "Status"
DELETE_OPTIONS_DEF = _META + "DeleteOptions"
PATCH_DEF = _META + "Patch"
API_RESOURCE_LIST_DEF = _META + "APIResourceList"
SCALE_DEF = "io.k8s.api.autoscaling.v1.Scale"
INT_OR_STRING_DEF = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY_DEF = "io.k8s.apimachinery.pkg.api.resource.Quantity"

SCALE_GVK = {"group": "autoscaling", "version": "v1", "kind": "Scale"}

PATCH_CONTENT_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
_RESPONSE_TYPES = ("application/json", "application/yaml")
_LIST_RESPONSE_TYPES = (*_RESPONSE_TYPES, "application/json;stream=watch")
#: subresources that stream (exec, attach...): ``x-kubernetes-action: connect``.
_CONNECT_SUBRESOURCES = frozenset({"exec", "attach", "portforward", "proxy"})


# --- schema conversion: JSON Schema ($defs) -> OpenAPI 3.0 ---------------------------


def _single_type(value: Any) -> Any:
    """``["string", "null"]`` -> ``"string"``; a plain type is kept."""
    if isinstance(value, list):
        kept = [t for t in value if t != "null"]
        return kept[0] if len(kept) == 1 else kept
    return value


def _scalar_union(types: Sequence[str], description: str | None, **extra: Any) -> Schema:
    """``IntOrString`` and ``Quantity`` as upstream publishes them: a ``oneOf`` of types.

    No ``type`` on purpose: ``kubectl explain`` then names the field after the
    definition (``<IntOrString>``, ``map[string]Quantity``), as against a real server.
    """
    out: Schema = {"oneOf": [{"type": t} for t in types], **extra}
    if description:
        out["description"] = description
    return out


def convert_schema(node: Schema, *, prop: str = "") -> Schema:
    """One JSON Schema node as OpenAPI 3.0 (pure; ``node`` is not mutated).

    ``prop`` is the property name the node sits under: ``apiVersion`` and ``kind`` lose
    the ``enum`` that ``kubernetes-validate`` added (the upstream documents have none).
    """
    out: Schema = {}
    for key, value in node.items():
        if key == "$ref":
            continue
        if key == "type":
            out["type"] = _single_type(value)
        elif key == "enum" and prop in ("apiVersion", "kind"):
            continue
        elif key == "properties":
            out["properties"] = {
                name: convert_schema(sub, prop=name) for name, sub in value.items()
            }
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = convert_schema(value)
        elif key in ("allOf", "oneOf", "anyOf"):
            out[key] = [convert_schema(sub) for sub in value]
        else:
            out[key] = value
    ref = node.get("$ref")
    if ref is not None:
        target = _COMPONENTS_PREFIX + ref.removeprefix(_DEFS_PREFIX)
        if not out:
            return {"$ref": target}
        # OpenAPI 3.0 ignores siblings of $ref: the upstream documents wrap it.
        return {"allOf": [{"$ref": target}], **out}
    return out


def convert_definition(name: str, node: Schema) -> Schema:
    """A whole named definition, with the special scalar types made upstream-shaped."""
    if name == INT_OR_STRING_DEF:
        return _scalar_union(("integer", "string"), node.get("description"), format="int-or-string")
    if name == QUANTITY_DEF:
        return _scalar_union(("string", "number"), node.get("description"))
    return convert_schema(node)


def _refs(node: Any, names: bool = False) -> Iterable[str]:
    """Definition names ``node`` refers to (directly, not transitively); ``names``: node
    is a ``properties`` map, whose keys are field names (JSONSchemaProps has a field
    called ``x-kubernetes-validations``), not extensions."""
    if isinstance(node, dict):
        for key, value in node.items():
            if names:
                yield from _refs(value)
            elif key == "$ref" and isinstance(value, str) and value.startswith(_DEFS_PREFIX):
                yield value[len(_DEFS_PREFIX) :]
            elif not key.startswith("x-kubernetes-"):
                yield from _refs(value, key == "properties")
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def reachable(roots: Iterable[str], defs: dict[str, Schema]) -> list[str]:
    """Every definition reachable from ``roots`` via ``$ref`` (roots included), sorted."""
    seen: set[str] = set()
    todo = [r for r in roots if r in defs]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(r for r in _refs(defs[name]) if r not in seen and r in defs)
    return sorted(seen)


# --- paths -------------------------------------------------------------------------


def gv_path(group: str, version: str) -> str:
    """``api/v1`` for the core group, ``apis/<group>/<version>`` otherwise."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _group_word(group: str) -> str:
    """``rbac.authorization.k8s.io`` -> ``RbacAuthorization``; ``""`` -> ``Core``."""
    if not group:
        return "Core"
    parts = group.removesuffix(".k8s.io").split(".")
    return "".join(p[:1].upper() + p[1:] for p in parts)


def _tag(group: str, version: str) -> str:
    word = _group_word(group)
    return f"{word[:1].lower()}{word[1:]}_{version}"


def _query(name: str, description: str, type_: str = "string", **extra: Any) -> Schema:
    schema: Schema = {"type": type_, "uniqueItems": True}
    schema.update(extra)
    return {"name": name, "in": "query", "description": description, "schema": schema}


_P_DRY_RUN = _query("dryRun", "When present, modifications are not persisted. Valid value: All.")
_P_FIELD_MANAGER = _query("fieldManager", "A name associated with the actor making the change.")
_P_FIELD_VALIDATION = _query(
    "fieldValidation",
    "How the server treats unknown or duplicate fields: Ignore, Warn or Strict.",
)
_P_FORCE = _query("force", "Take ownership of conflicting fields on apply.", "boolean")
_P_PRETTY = _query("pretty", "If 'true', the output is pretty printed.")
_P_GRACE = _query("gracePeriodSeconds", "Seconds before the object is deleted.", "integer")
_P_IGNORE_READ_ERRORS = _query(
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "Delete a corrupt object that cannot be read.",
    "boolean",
)
_P_ORPHAN = _query("orphanDependents", "Deprecated: use propagationPolicy.", "boolean")
_P_PROPAGATION = _query(
    "propagationPolicy", "Garbage collection: Orphan, Background or Foreground."
)
_LIST_PARAMS = [
    _query("allowWatchBookmarks", "Ask for BOOKMARK watch events.", "boolean"),
    _query("continue", "The continue token of a previous paginated list."),
    _query("fieldSelector", "Restrict the list by field values."),
    _query("labelSelector", "Restrict the list by labels."),
    _query("limit", "Maximum number of items in one page.", "integer"),
    _query("resourceVersion", "Which resource version the list must be at least as new as."),
    _query("resourceVersionMatch", "How resourceVersion applies: Exact or NotOlderThan."),
    _query("sendInitialEvents", "Start a watch with synthetic ADDED events.", "boolean"),
    _query("timeoutSeconds", "Timeout of the list or watch call.", "integer"),
    _query("watch", "Watch for changes instead of listing.", "boolean"),
]
_DELETE_PARAMS = [_P_DRY_RUN, _P_GRACE, _P_IGNORE_READ_ERRORS, _P_ORPHAN, _P_PROPAGATION]
_DELETE_COLLECTION_PARAMS = sorted(
    [p for p in _LIST_PARAMS if p["name"] not in ("allowWatchBookmarks", "watch")] + _DELETE_PARAMS,
    key=lambda p: str(p["name"]),
)


def _path_param(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "description": description,
        "required": True,
        "schema": {"type": "string", "uniqueItems": True},
    }


def _content(schema: Schema, types: Sequence[str] = _RESPONSE_TYPES) -> Schema:
    return {t: {"schema": schema} for t in types}


def _ref(name: str | None) -> Schema:
    return {"$ref": _COMPONENTS_PREFIX + name} if name else {"type": "object"}


def _responses(codes: dict[str, Schema | None], types: Sequence[str] = _RESPONSE_TYPES) -> Schema:
    out: Schema = {}
    for code, schema in codes.items():
        entry: Schema = {"description": _REASONS[code]}
        if schema is not None:
            entry["content"] = _content(schema, types)
        out[code] = entry
    out["401"] = {"description": "Unauthorized"}
    return out


_REASONS = {"200": "OK", "201": "Created", "202": "Accepted"}


class _GVBuilder:
    """Collects the paths and schema roots of one group-version; ``gvks`` names the
    definition of each (group, version, kind)."""

    def __init__(self, group: str, version: str, gvks: dict[tuple[str, str, str], str]) -> None:
        self.group = group
        self.version = version
        self.gvks = gvks
        self.prefix = "/" + gv_path(group, version)
        self.paths: dict[str, Schema] = {}
        self.roots: set[str] = {STATUS_DEF, API_RESOURCE_LIST_DEF, PATCH_DEF, DELETE_OPTIONS_DEF}
        self.paths[self.prefix + "/"] = {
            "get": {
                "description": "get available resources",
                "operationId": f"get{_group_word(group)}{version.capitalize()}APIResources",
                "tags": [_tag(group, version)],
                "responses": _responses({"200": _ref(API_RESOURCE_LIST_DEF)}),
            }
        }

    def _definition(self, group: str, version: str, kind: str) -> str | None:
        name = self.gvks.get((group, version, kind))
        if name is not None:
            self.roots.add(name)
        return name

    def _op(
        self,
        verb: str,
        action: str,
        gvk: Schema,
        op_id: str,
        parameters: list[Schema],
        responses: Schema,
        body: Schema | None = None,
    ) -> Schema:
        op: Schema = {
            "description": f"{verb} {gvk['kind']}",
            "operationId": op_id,
            "tags": [_tag(self.group, self.version)],
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "responses": responses,
        }
        if parameters:
            op["parameters"] = parameters
        if body is not None:
            op["requestBody"] = {"content": body, "required": True}
        return op

    def _item_ops(
        self, verbs: Iterable[str], gvk: Schema, schema: Schema, op_suffix: str
    ) -> Schema:
        """get/put/patch(/delete) operations on one object or subresource."""
        ops: Schema = {}
        verbs = set(verbs)
        if "get" in verbs:
            ops["get"] = self._op(
                "read", "get", gvk, "read" + op_suffix, [], _responses({"200": schema})
            )
        if "update" in verbs:
            ops["put"] = self._op(
                "replace",
                "put",
                gvk,
                "replace" + op_suffix,
                [_P_DRY_RUN, _P_FIELD_MANAGER, _P_FIELD_VALIDATION],
                _responses({"200": schema, "201": schema}),
                body=_content(schema, ("*/*",)),
            )
        if "patch" in verbs:
            ops["patch"] = self._op(
                "partially update",
                "patch",
                gvk,
                "patch" + op_suffix,
                [_P_DRY_RUN, _P_FIELD_MANAGER, _P_FIELD_VALIDATION, _P_FORCE],
                _responses({"200": schema, "201": schema}),
                body=_content(_ref(PATCH_DEF), PATCH_CONTENT_TYPES),
            )
        return ops

    def add(self, res: ResourceInfo) -> None:
        gvk = {"group": res.group, "version": res.version, "kind": res.kind}
        schema = _ref(self._definition(res.group, res.version, res.kind))
        list_schema = _ref(self._definition(res.group, res.version, res.list_kind))
        status_schema = _ref(STATUS_DEF)
        delete_schema = _ref(DELETE_OPTIONS_DEF)
        verbs = set(res.verbs)
        word = _group_word(res.group) + res.version.capitalize()
        scope = "Namespaced" if res.namespaced else ""
        if res.namespaced:
            base = f"{self.prefix}/namespaces/{{namespace}}/{res.plural}"
            base_params = [_path_param("namespace", "object name and auth scope")]
        else:
            base = f"{self.prefix}/{res.plural}"
            base_params = []
        name_param = _path_param("name", f"name of the {res.kind}")

        collection: Schema = {}
        if "list" in verbs:
            collection["get"] = self._op(
                "list or watch",
                "list",
                gvk,
                f"list{word}{scope}{res.kind}",
                _LIST_PARAMS,
                _responses({"200": list_schema}, _LIST_RESPONSE_TYPES),
            )
        if "create" in verbs:
            collection["post"] = self._op(
                "create",
                "post",
                gvk,
                f"create{word}{scope}{res.kind}",
                [_P_DRY_RUN, _P_FIELD_MANAGER, _P_FIELD_VALIDATION],
                _responses({"200": schema, "201": schema, "202": schema}),
                body=_content(schema, ("*/*",)),
            )
        if "deletecollection" in verbs:
            collection["delete"] = self._op(
                "delete collection of",
                "deletecollection",
                gvk,
                f"delete{word}Collection{scope}{res.kind}",
                _DELETE_COLLECTION_PARAMS,
                _responses({"200": status_schema}),
                body=_content(delete_schema, ("*/*",)),
            )
        if collection:
            self.paths[base] = {"parameters": [*base_params, _P_PRETTY], **collection}

        item = self._item_ops(verbs, gvk, schema, f"{word}{scope}{res.kind}")
        if "delete" in verbs:
            deleted = schema if res.strategy.return_deleted_object else status_schema
            item["delete"] = self._op(
                "delete",
                "delete",
                gvk,
                f"delete{word}{scope}{res.kind}",
                _DELETE_PARAMS,
                _responses({"200": deleted, "202": deleted}),
                body=_content(delete_schema, ("*/*",)),
            )
        item_params = [name_param, *base_params, _P_PRETTY]
        if item:
            self.paths[f"{base}/{{name}}"] = {"parameters": item_params, **item}

        if res.namespaced and "list" in verbs:
            self.paths[f"{self.prefix}/{res.plural}"] = {
                "parameters": [_P_PRETTY],
                "get": self._op(
                    "list or watch",
                    "list",
                    gvk,
                    f"list{word}{res.kind}ForAllNamespaces",
                    _LIST_PARAMS,
                    _responses({"200": list_schema}, _LIST_RESPONSE_TYPES),
                ),
            }

        if res.strategy.has_status:
            ops = self._item_ops(
                ("get", "patch", "update"), gvk, schema, f"{word}{scope}{res.kind}Status"
            )
            self.paths[f"{base}/{{name}}/status"] = {"parameters": item_params, **ops}
        if res.scale is not None:
            self.roots.add(SCALE_DEF)
            ops = self._item_ops(
                ("get", "patch", "update"),
                SCALE_GVK,
                _ref(SCALE_DEF),
                f"{word}{scope}{res.kind}Scale",
            )
            self.paths[f"{base}/{{name}}/scale"] = {"parameters": item_params, **ops}
        for sub, kind, sub_verbs, sub_group, sub_version in res.extra_subresources:
            if not sub_version:
                sub_group, sub_version = res.group, res.version
            self._add_extra(
                f"{base}/{{name}}/{sub}",
                item_params,
                sub,
                {"group": sub_group, "version": sub_version, "kind": kind},
                sub_verbs,
                f"{word}{scope}{res.kind}{sub[:1].upper()}{sub[1:]}",
            )

    def _add_extra(
        self,
        path: str,
        params: list[Schema],
        sub: str,
        gvk: Schema,
        verbs: Iterable[str],
        op_suffix: str,
    ) -> None:
        """``pods/log``, ``pods/exec``, ``pods/binding``, ``pods/eviction`` and the like."""
        ops: Schema = {}
        verbs = set(verbs)
        text = {"type": "string"}
        if sub in _CONNECT_SUBRESOURCES:
            for method, verb in (("get", "get"), ("post", "create")):
                if verb in verbs:
                    ops[method] = self._op(
                        "connect to",
                        "connect",
                        gvk,
                        f"connect{method.capitalize()}{op_suffix}",
                        [],
                        _responses({"200": text}, ("*/*",)),
                    )
        else:
            schema = (
                text
                if sub == "log"
                else _ref(self._definition(gvk["group"], gvk["version"], gvk["kind"]))
            )
            types = ("text/plain",) if sub == "log" else _RESPONSE_TYPES
            if "get" in verbs:
                ops["get"] = self._op(
                    "read", "get", gvk, "read" + op_suffix, [], _responses({"200": schema}, types)
                )
            if "create" in verbs:
                ops["post"] = self._op(
                    "create",
                    "post",
                    gvk,
                    "create" + op_suffix,
                    [_P_DRY_RUN, _P_FIELD_MANAGER, _P_FIELD_VALIDATION],
                    _responses({"200": schema, "201": schema, "202": schema}),
                    body=_content(schema, ("*/*",)),
                )
            ops.update(self._item_ops(verbs - {"get"}, gvk, schema, op_suffix))
        if ops:
            self.paths[path] = {"parameters": params, **ops}


class OpenAPIDocs:
    """The ``/openapi/v3`` index and per-group-version documents for a registry table."""

    def __init__(self, resources: Sequence[ResourceInfo]) -> None:
        self._resources: dict[str, list[ResourceInfo]] = {}
        self._docs: dict[str, bytes] = {}
        self._hashes: dict[str, str] = {}
        self._converted: dict[str, Schema] = {}
        #: bumped by every ``set_resources``: ``OpenAPIV2`` rebuilds when it changed
        self.generation = 0
        self.set_resources(resources)

    def set_resources(self, resources: Sequence[ResourceInfo]) -> None:
        """Serve the documents of this set of rows (the registry table plus the custom
        resources of established CRDs, ``apiserver/crds.py``). Documents of
        group-versions whose rows are the same objects as before stay cached; the others
        and the index are rebuilt on next use, with new hashes."""
        old = self._resources
        self._resources = {}
        # the access reviews are served beside the registry table, as in discovery
        resources = list(resources) + [r for r in REVIEW_ROWS if r not in resources]
        #: definitions the strategies of kinds outside Kubernetes 1.32 declare
        self._declared: dict[str, Schema] = {}
        self._declared_v2: dict[str, Schema] = {}
        for res in resources:
            self._resources.setdefault(gv_path(res.group, res.version), []).append(res)
            st = res.strategy
            self._declared.update(st.published_definitions or st.definitions)
            self._declared_v2.update(st.published_definitions_v2 or st.definitions)
        self._gvks = dict(gvk_index())
        for name, node in self._declared.items():
            for gvk in node.get("x-kubernetes-group-version-kind", ()):
                self._gvks.setdefault((gvk.get("group", ""), gvk["version"], gvk["kind"]), name)
        for gv in set(old) | set(self._resources):
            before, after = old.get(gv, []), self._resources.get(gv, [])
            if len(before) != len(after) or any(
                a is not b for a, b in zip(before, after, strict=True)
            ):
                self._docs.pop(gv, None)
                self._hashes.pop(gv, None)
                for res in before:
                    for name in res.strategy.definitions:
                        self._converted.pop(name, None)
        self._definitions: dict[str, Schema] | None = None
        self._definitions_v2: dict[str, Schema] | None = None
        self._index: bytes | None = None
        self.generation += 1

    @property
    def group_versions(self) -> list[str]:
        """The served ``gv_path``s (``api/v1``, ``apis/apps/v1``...), sorted."""
        return sorted(self._resources)

    def index(self) -> bytes:
        """``GET /openapi/v3``: each group-version with its content-hashed URL."""
        if self._index is None:
            paths = {
                gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={self.hash(gv)}"}
                for gv in self.group_versions
            }
            self._index = orjson.dumps({"paths": paths})
        return self._index

    def document(self, gv_path: str) -> bytes | None:
        """The OpenAPI 3.0 document of ``api/v1`` or ``apis/<group>/<version>``; None if unknown."""
        gv = gv_path.strip("/")
        cached = self._docs.get(gv)
        if cached is not None:
            return cached
        resources = self._resources.get(gv)
        if resources is None:
            return None
        data = orjson.dumps(self._build(resources), option=orjson.OPT_SORT_KEYS)
        self._docs[gv] = data
        self._hashes[gv] = hashlib.sha512(data).hexdigest().upper()
        return data

    def hash(self, gv_path: str) -> str:
        """Uppercase hex SHA-512 of the document; ``""`` for an unknown group-version."""
        gv = gv_path.strip("/")
        if self.document(gv) is None:
            return ""
        return self._hashes[gv]

    def all_definitions(self, v2: bool = False) -> dict[str, Schema]:
        """Every definition the documents may name: Kubernetes 1.32's and the declared ones
        (JSON Schema ``$defs`` dialect; ``openapi_v2`` converts them too, asking with
        ``v2`` for what a strategy publishes in v2)."""
        if v2:
            if self._definitions_v2 is None:
                self._definitions_v2 = {**definitions(), **self._declared_v2}
            return self._definitions_v2
        if self._definitions is None:
            self._definitions = {**definitions(), **self._declared}
        return self._definitions

    def _schema(self, name: str, defs: dict[str, Schema]) -> Schema:
        out = self._converted.get(name)
        if out is None:
            out = self._converted[name] = convert_definition(name, defs[name])
        return out

    def _build(self, resources: Sequence[ResourceInfo]) -> Schema:
        first = resources[0]
        builder = _GVBuilder(first.group, first.version, self._gvks)
        for res in resources:
            builder.add(res)
        defs = self.all_definitions()
        schemas = {name: self._schema(name, defs) for name in reachable(builder.roots, defs)}
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": KUBE_VERSION},
            "paths": builder.paths,
            "components": {"schemas": schemas},
        }
