"""Structural schemas of CustomResourceDefinitions: prune, default, validate, publish.

The CRD machinery in the API server (the apiextensions.k8s.io/v1 strategy, the dynamic
custom-resource registry, discovery and OpenAPI) calls this module and nothing below it:

- :func:`check_schema` judges a CRD version's ``openAPIV3Schema`` as
  apiextensions-apiserver does (see :mod:`corral.api.structural_check`);
- :class:`StructuralSchema` wraps an accepted schema and, on each write of a custom
  resource, prunes unknown fields, applies defaults and validates the result
  (keywords, list types and CEL rules, see :mod:`corral.api.structural_validate`),
  in upstream's order: decode -> prune -> default -> validate;
- :meth:`StructuralSchema.node_schema` and :func:`published_schema` give the schema
  in the shapes that :class:`corral.api.schema.SchemaNode` (apply, merge) and the
  OpenAPI documents (``kubectl explain``) read.

Everything here is pure: the schema is a plain dict as stored in the CRD, objects are
decoded JSON, and only the methods documented as "in place" mutate their argument.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from corral.api.errors import FieldError, invalid
from corral.api.structural_cel import validate_cel
from corral.api.structural_check import check_schema
from corral.api.structural_embedded import coerce_embedded, validate_embedded
from corral.api.structural_validate import (
    NO_OLD,
    validate_list_types,
    validate_value,
)

__all__ = ["StructuralSchema", "check_schema", "published_schema"]

OBJECT_META_REF = "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_META_FIELDS = ("apiVersion", "kind", "metadata")
_API_VERSION_DESC = (
    "APIVersion defines the versioned schema of this representation of an object. Servers "
    "should convert recognized schemas to the latest internal value, and may reject "
    "unrecognized values. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
)
_KIND_DESC = (
    "Kind is a string value representing the REST resource this object represents. Servers "
    "may infer this from the endpoint the client submits requests to. Cannot be updated. In "
    "CamelCase. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)
_METADATA_DESC = (
    "Standard object's metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)


_BLOCKING = frozenset(
    (
        "FieldValueNotSupported",
        "FieldValueRequired",
        "FieldValueTooLong",
        "FieldValueTooMany",
        "FieldValueTypeInvalid",
    )
)
_NOT_CHECKED = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)


def _has_rules(s: Any) -> bool:
    if isinstance(s, list):
        return any(_has_rules(x) for x in s)
    if not isinstance(s, dict):
        return False
    if s.get("x-kubernetes-validations"):
        return True
    return any(_has_rules(s.get(k)) for k in ("items", "additionalProperties", "allOf")) or any(
        _has_rules(v) for v in (s.get("properties") or {}).values()
    )


def _sub(schema: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """The schema of property ``key`` of an object schema (properties, then additionalProperties)."""
    if schema is None:
        return None
    props = schema.get("properties")
    if props and key in props:
        sub: dict[str, Any] = props[key]
        return sub
    addl = schema.get("additionalProperties")
    return addl if isinstance(addl, dict) else None


class StructuralSchema:
    """One CRD version's schema, ready to prune, default and validate custom resources.

    Build it once per CRD version (after :func:`check_schema` accepted the schema) and
    reuse it: CEL rules are compiled on first use and cached by their text.
    """

    __slots__ = ("_has_embedded", "_has_rules", "schema")

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        text = orjson.dumps(schema)
        self._has_embedded = b'"x-kubernetes-embedded-resource":true' in text
        self._has_rules = _has_rules(schema)

    # --- pruning -----------------------------------------------------------------------

    def prune(self, obj: dict[str, Any]) -> list[str]:
        """Drop, in place, fields the schema does not know; return their sorted paths.

        Paths read as upstream's ``fieldValidation=Strict`` reports them, ``spec.foo``,
        ``spec.items[0].bar``. The root's apiVersion, kind and metadata are left alone.
        Afterwards, nulls of non-nullable fields without a default are removed, as
        upstream does right after pruning, and the metadata of nested embedded
        resources loses (and reports) the fields ObjectMeta does not have.
        """
        unknown: list[str] = []
        root = dict(self.schema)
        root["x-kubernetes-embedded-resource"] = True
        _prune(obj, root, "", unknown)
        _prune_nulls(obj, self.schema)
        unknown.sort()
        if self._has_embedded:
            unknown.extend(coerce_embedded(obj, self.schema))
        return unknown

    # --- defaulting --------------------------------------------------------------------

    def default(self, obj: dict[str, Any]) -> None:
        """Apply ``default`` values in place (absent fields and non-nullable nulls)."""
        _default(obj, self.schema)

    # --- validation --------------------------------------------------------------------

    def validate(
        self,
        obj: dict[str, Any],
        old: dict[str, Any] | None = None,
        prior: list[FieldError] | None = None,
    ) -> list[FieldError]:
        """All schema errors of ``obj``, as the custom resource strategy reports them.

        The keyword validation, the list-type set/map check and, unless an earlier
        error blocks them (a type, required, unsupported, too-long or too-many error,
        also among ``prior``, the caller's metadata errors), the CEL rules. On update
        (``old`` given) ``oldSelf`` rules run, and errors of values that did not change
        are dropped (upstream's validation ratcheting); list-type errors are checked only
        if the old object had none. Root-level errors carry the field ``<nil>``, as
        upstream's nil field path prints.
        """
        errs = validate_value(self.schema, obj, "", root=True, old=NO_OLD if old is None else old)
        if self._has_embedded:
            errs.extend(validate_embedded(obj, self.schema))
        if old is None or not validate_list_types(self.schema, old, ""):
            errs.extend(validate_list_types(self.schema, obj, ""))
        if any(e.type in _BLOCKING for e in [*(prior or ()), *errs]):
            if self._has_rules:
                errs.append(invalid("", "null", _NOT_CHECKED))
        elif self._has_rules:
            errs.extend(validate_cel(self.schema, obj, old, "", old is not None, root=True))
        return [e if e.field else FieldError(e.type, "<nil>", e.value, e.detail) for e in errs]

    # --- views -------------------------------------------------------------------------

    def node_schema(self) -> dict[str, Any]:
        """The schema as :class:`corral.api.schema.SchemaNode` reads it (ObjectMeta by $ref)."""
        out = dict(self.schema)
        props = dict(out.get("properties") or {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props["metadata"] = {"$ref": OBJECT_META_REF}
        out["properties"] = props
        out.setdefault("type", "object")
        return out


def published_schema(
    schema: dict[str, Any], v2: bool = False, meta_ref: str | None = None
) -> dict[str, Any]:
    """The schema as upstream publishes it in /openapi/v3 (or /openapi/v2 with ``v2=True``).

    As apiextensions-apiserver's OpenAPI builder does: the structural part only
    (``example``, ``externalDocs`` and other non-structural keys dropped),
    ``x-kubernetes-int-or-string`` unfolded into ``anyOf: [integer, string]``,
    apiVersion/kind (TypeMeta's descriptions) and metadata ($ref ObjectMeta) set at the
    root and in every ``x-kubernetes-embedded-resource``. For v2 additionally what
    Swagger 2.0 cannot say goes (allOf/anyOf/oneOf/not, nullable types, typed
    preserve-unknown-fields objects, defaults), and a root that preserves unknown
    fields is published as a bare ``{"type": "object"}``. The caller wraps the result
    (definition name, ``x-kubernetes-group-version-kind``). ``meta_ref`` replaces the
    ObjectMeta reference of the target document (a caller that converts the result
    further names it in its own dialect).
    """
    out: dict[str, Any] = _structural_copy(schema)
    _unfold(out)
    if v2:
        if out.get("x-kubernetes-preserve-unknown-fields"):
            return {"type": "object"}
        _to_v2(out)
    ref = meta_ref or (_OBJECT_META_V2 if v2 else _OBJECT_META_V3)
    props = out.setdefault("properties", {})
    props["metadata"] = {"$ref": ref, "description": _METADATA_DESC}
    props["apiVersion"] = {"description": _API_VERSION_DESC, "type": "string"}
    props["kind"] = {"description": _KIND_DESC, "type": "string"}
    _add_embedded(out, ref, v2)
    return out


_OBJECT_META_V3 = "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_OBJECT_META_V2 = "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_EMBEDDED_API_VERSION_DESC = (
    "apiVersion defines the versioned schema of this representation of an object. More "
    "info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
)
_EMBEDDED_KIND_DESC = (
    "kind is a string value representing the type of this object. In CamelCase. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)
# The keys a structural schema keeps (Generic, Extensions, ValueValidation, XValidations).
_STRUCTURAL_KEYS = frozenset(
    (
        "type",
        "nullable",
        "description",
        "title",
        "default",
        "format",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "uniqueItems",
        "multipleOf",
        "enum",
        "maxProperties",
        "minProperties",
        "required",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "items",
        "properties",
        "additionalProperties",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-list-type",
        "x-kubernetes-map-type",
        "x-kubernetes-validations",
    )
)
_INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]


def _structural_copy(s: Any) -> Any:
    if not isinstance(s, dict):
        return copy.deepcopy(s)
    out: dict[str, Any] = {}
    for k, v in s.items():
        if k not in _STRUCTURAL_KEYS or v is None or (v is False and k.startswith("x-")):
            continue
        if k == "properties" and isinstance(v, dict):
            out[k] = {pk: _structural_copy(pv) for pk, pv in v.items()}
        elif k in ("allOf", "anyOf", "oneOf") and isinstance(v, list):
            out[k] = [_structural_copy(x) for x in v]
        elif k in ("items", "additionalProperties", "not") and isinstance(v, dict):
            out[k] = _structural_copy(v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _children(s: dict[str, Any]) -> list[dict[str, Any]]:
    kids = [v for v in (s.get("properties") or {}).values() if isinstance(v, dict)]
    for key in ("items", "additionalProperties"):
        if isinstance(s.get(key), dict):
            kids.append(s[key])
    return kids


def _unfold(s: dict[str, Any]) -> None:
    for kid in _children(s):
        _unfold(kid)
    if not s.get("x-kubernetes-int-or-string"):
        return
    all_of = s.get("allOf") or []
    if s.get("anyOf") == _INT_OR_STRING or (
        all_of and isinstance(all_of[0], dict) and all_of[0].get("anyOf") == _INT_OR_STRING
    ):
        return
    if "anyOf" not in s:
        s["anyOf"] = copy.deepcopy(_INT_OR_STRING)
    else:
        s["allOf"] = [{"anyOf": copy.deepcopy(_INT_OR_STRING)}, *all_of]


def _to_v2(s: dict[str, Any]) -> None:
    """openapiv2.ToStructuralOpenAPIV2 plus the v2 handler's PruneDefaults."""
    for key in ("allOf", "oneOf", "anyOf", "not", "default"):
        s.pop(key, None)
    if s.pop("nullable", False):
        s.pop("type", None)
        s.pop("items", None)
        s.pop("properties", None)
    if s.get("x-kubernetes-preserve-unknown-fields"):
        s.pop("items", None)
        s.pop("properties", None)
        if s.get("type") == "object":
            del s["type"]
    if s.get("type") == "array" and "items" not in s:
        del s["type"]
    props = s.get("properties") or {}
    nullable = {k for k, v in props.items() if isinstance(v, dict) and v.get("nullable")}
    if nullable and "required" in s:
        s["required"] = [r for r in s["required"] if r not in nullable]
        if not s["required"]:
            del s["required"]
    addl = s.get("additionalProperties")
    if isinstance(addl, dict) and addl.get("nullable"):
        s.pop("required", None)
    for kid in _children(s):
        _to_v2(kid)


def _add_embedded(s: dict[str, Any], ref: str, v2: bool) -> None:
    for kid in _children(s):
        _add_embedded(kid, ref, v2)
    if v2 and s.get("x-kubernetes-preserve-unknown-fields"):
        return
    if s.get("x-kubernetes-embedded-resource"):
        props = s.setdefault("properties", {})
        props["apiVersion"] = {"description": _EMBEDDED_API_VERSION_DESC, "type": "string"}
        props["kind"] = {"description": _EMBEDDED_KIND_DESC, "type": "string"}
        props["metadata"] = {"$ref": ref, "description": _METADATA_DESC}
        req = s.setdefault("required", [])
        for name in ("kind", "apiVersion"):
            if name not in req:
                req.append(name)


# --- algorithms (pruning/algorithm.go, defaulting/algorithm.go, prunenulls.go) ----------


def prune_value(value: Any, schema: dict[str, Any]) -> list[str]:
    """Prune ``value`` in place against a sub-schema (no resource-root exemptions)."""
    unknown: list[str] = []
    _prune(value, schema, "", unknown)
    return unknown


def _child(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _prune(x: Any, s: dict[str, Any] | None, path: str, unknown: list[str]) -> None:
    if s is not None and s.get("x-kubernetes-preserve-unknown-fields"):
        _skip_prune(x, s, path, unknown)
        return
    if isinstance(x, dict):
        if s is None:
            for k in list(x):
                unknown.append(_child(path, k))
                del x[k]
            return
        embedded = s.get("x-kubernetes-embedded-resource")
        props = s.get("properties") or {}
        addl = s.get("additionalProperties")
        for k in list(x):
            if embedded and k in _META_FIELDS:
                continue
            if k in props:
                _prune(x[k], props[k], _child(path, k), unknown)
            elif addl is not None and addl is not False:
                _prune(x[k], addl if isinstance(addl, dict) else None, _child(path, k), unknown)
            else:
                unknown.append(_child(path, k))
                del x[k]
    elif isinstance(x, list):
        items = s.get("items") if s is not None else None
        for i, v in enumerate(x):
            _prune(v, items if isinstance(items, dict) else None, f"{path}[{i}]", unknown)


def _skip_prune(x: Any, s: dict[str, Any] | None, path: str, unknown: list[str]) -> None:
    if s is None:
        return
    if isinstance(x, dict):
        embedded = s.get("x-kubernetes-embedded-resource")
        props = s.get("properties") or {}
        addl = s.get("additionalProperties")
        for k, v in x.items():
            if embedded and k in _META_FIELDS:
                continue
            if k in props:
                _prune(v, props[k], _child(path, k), unknown)
            elif isinstance(addl, dict):
                _prune(v, addl, _child(path, k), unknown)
    elif isinstance(x, list):
        items = s.get("items")
        for i, v in enumerate(x):
            _skip_prune(v, items if isinstance(items, dict) else None, f"{path}[{i}]", unknown)


def _prune_nulls(x: Any, s: dict[str, Any] | None) -> None:
    if isinstance(x, dict):
        for k in list(x):
            sub = _sub(s, k)
            v = x[k]
            if v is None and sub is not None and not sub.get("nullable") and "default" not in sub:
                del x[k]
            else:
                _prune_nulls(v, sub)
    elif isinstance(x, list):
        items = s.get("items") if s is not None else None
        for v in x:
            _prune_nulls(v, items if isinstance(items, dict) else None)


def _non_nullable_null(v: Any, s: dict[str, Any] | None) -> bool:
    return v is None and s is not None and not s.get("nullable")


def _default(x: Any, s: dict[str, Any] | None) -> None:
    if s is None:
        return
    if isinstance(x, dict):
        props: dict[str, Any] = s.get("properties") or {}
        for k, prop in props.items():
            if "default" not in prop or prop["default"] is None:
                continue
            if k not in x or _non_nullable_null(x[k], prop):
                x[k] = copy.deepcopy(prop["default"])
        addl = s.get("additionalProperties")
        for k in list(x):
            if k in props:
                _default(x[k], props[k])
            elif isinstance(addl, dict):
                if _non_nullable_null(x[k], addl) and addl.get("default") is not None:
                    x[k] = copy.deepcopy(addl["default"])
                _default(x[k], addl)
    elif isinstance(x, list):
        items = s.get("items")
        if not isinstance(items, dict):
            return
        for i in range(len(x)):
            if _non_nullable_null(x[i], items) and items.get("default") is not None:
                x[i] = copy.deepcopy(items["default"])
            _default(x[i], items)
