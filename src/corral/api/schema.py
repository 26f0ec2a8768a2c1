"""The Kubernetes 1.32 type schemas, read from the pip-installed ``kubernetes-validate``.

That package ships the upstream OpenAPI definitions as JSON Schema (``$defs`` with the
``x-kubernetes-*`` extensions intact). Corral reads them at run time, never copies them:
they drive server-side field validation (unknown fields), strategic-merge-patch merge
keys and directives, server-side apply list semantics, and the ``/openapi/v3`` documents
that ``kubectl explain`` and ``kubectl apply`` read.

``SchemaNode`` is a thin, cached view over one definition with ``$ref`` resolved; it is
the only way other modules look at the schemas.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from datetime import datetime
from typing import Any

import orjson

from corral.util.jsontypes import NESTED, NUMBER, STR_OR_NUMBER

KUBE_VERSION = "v1.32.0"
_REF_PREFIX = "#/$defs/"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"


@functools.cache
def definitions() -> dict[str, Any]:
    """All ``$defs`` of the 1.32 schema set, keyed by OpenAPI definition name."""
    # Only the package's data file: finding it does not import the package (jsonschema, ~30 ms).
    spec = importlib.util.find_spec("kubernetes_validate")
    assert spec is not None and spec.origin is not None, "kubernetes_validate is a dependency"
    path = os.path.join(
        os.path.dirname(spec.origin),
        "kubernetes-json-schema",
        f"{KUBE_VERSION}-local",
        "_definitions.json",
    )
    with open(path, "rb") as f:
        data: dict[str, Any] = orjson.loads(f.read())["$defs"]
    return data


@functools.cache
def gvk_index() -> dict[tuple[str, str, str], str]:
    """(group, version, kind) -> definition name, from ``x-kubernetes-group-version-kind``."""
    out: dict[tuple[str, str, str], str] = {}
    for name, d in definitions().items():
        for gvk in d.get("x-kubernetes-group-version-kind", ()):
            key = (gvk.get("group", ""), gvk["version"], gvk["kind"])
            # Prefer the definition in the group's own package (core Event vs events Event).
            if key not in out or name.startswith("io.k8s.api."):
                out[key] = name
    return out


def _types(raw: dict[str, Any]) -> set[str]:
    t = raw.get("type")
    if t is None:
        return set()
    if isinstance(t, str):
        return {t}
    return {x for x in t if x != "null"}


# How typed decoding treats a schema position (``SchemaNode.decoding``), in
# ``check_types``'s order: kept as is, a struct, a map, a list, or a scalar checked as
# ``_value_ok`` checks it. Computed once per node rather than once per value.
_KEEP = 0
_OBJECT = 1
_MAP = 2
_LIST = 3
_SCALAR_ANY = 4
_SCALAR_QUANTITY = 5
_SCALAR_INT_OR_STRING = 6
_SCALAR_INTEGER = 7
_SCALAR_NUMBER = 8
_SCALAR_BOOLEAN = 9
_SCALAR_STRING = 10
_SCALAR_TIME = 11  # a string that, when not empty, must parse as RFC 3339


def _decoding(node: SchemaNode, types: set[str]) -> int:
    raw = node.raw
    if node.is_opaque or node.preserves_unknown:
        return _KEEP
    if node.is_object:
        return _OBJECT
    if node.is_map:
        return _MAP
    if node.is_list:
        return _LIST
    if node.name == _QUANTITY:
        return _SCALAR_QUANTITY
    if node.name == _INT_OR_STRING:
        return _SCALAR_INT_OR_STRING
    if not types or "oneOf" in raw:
        return _SCALAR_ANY
    if "integer" in types:
        return _SCALAR_INTEGER
    if "number" in types:
        return _SCALAR_NUMBER
    if "boolean" in types:
        return _SCALAR_BOOLEAN
    if "string" in types:
        return _SCALAR_TIME if raw.get("format") == "date-time" else _SCALAR_STRING
    return _SCALAR_ANY


class SchemaNode:
    """One schema position. Navigation returns ``None`` where the schema says nothing.

    Nodes are immutable and navigation is memoised (a node caches its children), and
    the shape predicates are computed once: every write walks the schema several
    times (field pruning, managedFields, patches), so this is a hot path.
    """

    __slots__ = (
        "_fields",
        "_items",
        "_value",
        "decoding",
        "is_list",
        "is_map",
        "is_object",
        "is_opaque",
        "list_map_keys",
        "list_type",
        "map_type",
        "name",
        "patch_merge_key",
        "patch_strategy",
        "preserves_unknown",
        "raw",
    )

    def __init__(self, raw: dict[str, Any], name: str = "") -> None:
        while "$ref" in raw:
            name = raw["$ref"][len(_REF_PREFIX) :]
            siblings = {k: v for k, v in raw.items() if k.startswith("x-kubernetes-")}
            raw = definitions()[name]
            if siblings:
                # Extensions written beside a $ref (e.g. retainKeys on
                # DeploymentSpec.strategy) belong to this position.
                raw = {**raw, **siblings}
        self.raw = raw
        self.name = name
        types = _types(raw)
        #: a struct with named fields
        self.is_object: bool = "properties" in raw
        #: a free-form map (``additionalProperties``), e.g. labels or ConfigMap data
        self.is_map: bool = "additionalProperties" in raw and not self.is_object
        self.is_list: bool = "array" in types or "items" in raw
        #: x-kubernetes-preserve-unknown-fields: fields beyond the known ones are kept
        #: (decoding and pruning leave such a node alone); with ``properties`` (a CRD
        #: schema) the known fields still have their schema for merges and apply
        self.preserves_unknown: bool = bool(raw.get("x-kubernetes-preserve-unknown-fields"))
        #: anything goes (RawExtension, JSON, x-kubernetes-preserve-unknown-fields alone)
        self.is_opaque: bool = (
            (self.preserves_unknown and not self.is_object)
            or not (self.is_object or self.is_map or self.is_list or types or "oneOf" in raw)
            # a bare "object" (FieldsV1, RawExtension, Patch) holds anything
            or (types == {"object"} and not self.is_object and not self.is_map)
        )
        self.patch_strategy: str = str(raw.get("x-kubernetes-patch-strategy", ""))
        self.patch_merge_key: str = str(raw.get("x-kubernetes-patch-merge-key", ""))
        lt = raw.get("x-kubernetes-list-type")
        #: ``atomic`` (default), ``set`` or ``map`` (server-side apply semantics)
        self.list_type: str = str(lt) if lt else ("map" if self.patch_merge_key else "atomic")
        keys = raw.get("x-kubernetes-list-map-keys")
        self.list_map_keys: list[str] = (
            list(keys) if keys else ([self.patch_merge_key] if self.patch_merge_key else [])
        )
        self.map_type: str = str(raw.get("x-kubernetes-map-type", "granular"))
        #: how typed decoding (``check_types``) treats a value here
        self.decoding: int = _decoding(self, types)
        self._fields: dict[str, SchemaNode | None] = {}
        self._items: SchemaNode | bool | None = False
        self._value: SchemaNode | bool | None = False

    def field(self, name: str) -> SchemaNode | None:
        try:
            return self._fields[name]
        except KeyError:
            pass
        props = self.raw.get("properties")
        node = SchemaNode(props[name], self.name) if props is not None and name in props else None
        self._fields[name] = node
        return node

    def value(self) -> SchemaNode | None:
        """The schema of a map's values."""
        if self._value is False:
            ap = self.raw.get("additionalProperties")
            self._value = SchemaNode(ap, self.name) if isinstance(ap, dict) else None
        assert not isinstance(self._value, bool)
        return self._value

    def items(self) -> SchemaNode | None:
        if self._items is False:
            it = self.raw.get("items")
            self._items = SchemaNode(it, self.name) if isinstance(it, dict) else None
        assert not isinstance(self._items, bool)
        return self._items

    def fields(self) -> list[str]:
        return list(self.raw.get("properties", {}))

    def __repr__(self) -> str:
        return f"SchemaNode({self.name})"


@functools.cache
def for_kind(group: str, version: str, kind: str) -> SchemaNode | None:
    name = gvk_index().get((group, version, kind))
    if name is None:
        return None
    return SchemaNode(definitions()[name], name)


def unknown_fields(obj: Any, node: SchemaNode | None, path: str = "") -> list[str]:
    """Paths (``spec.foo``, ``spec.containers[0].bar``) of fields the schema does not know."""
    out: list[str] = []
    if node is None or node.is_opaque or node.preserves_unknown:
        return out
    if isinstance(obj, dict):
        if node.is_object:
            for key, val in obj.items():
                child = node.field(key)
                sub = f"{path}.{key}" if path else key
                if child is None:
                    out.append(sub)
                else:
                    out.extend(unknown_fields(val, child, sub))
        elif node.is_map:
            vnode = node.value()
            for key, val in obj.items():
                out.extend(unknown_fields(val, vnode, f"{path}.{key}" if path else key))
    elif isinstance(obj, list) and node.is_list:
        inode = node.items()
        for i, val in enumerate(obj):
            out.extend(unknown_fields(val, inode, f"{path}[{i}]"))
    return out


def prune_unknown(obj: Any, node: SchemaNode | None, path: str = "") -> list[str]:
    """Remove fields the schema does not know from ``obj`` in place; return their paths.

    The real server drops unknown fields when it decodes into its typed structs; with
    ``fieldValidation=Strict`` it refuses them, with ``Warn`` it warns (the caller decides).
    """
    out: list[str] = []
    if node is None or node.is_opaque or node.preserves_unknown:
        return out
    if isinstance(obj, dict):
        if node.is_object:
            for key in list(obj):
                child = node.field(key)
                sub = f"{path}.{key}" if path else key
                if child is None:
                    del obj[key]
                    out.append(sub)
                else:
                    out.extend(prune_unknown(obj[key], child, sub))
        elif node.is_map:
            vnode = node.value()
            for key, val in obj.items():
                out.extend(prune_unknown(val, vnode, f"{path}.{key}" if path else key))
    elif isinstance(obj, list) and node.is_list:
        inode = node.items()
        for i, val in enumerate(obj):
            out.extend(prune_unknown(val, inode, f"{path}[{i}]"))
    return out


_ZERO = {"integer": 0, "number": 0, "boolean": False, "string": ""}


def fill_required(obj: Any, node: SchemaNode | None) -> None:
    """Give required scalar fields that are missing their zero value, in place.

    Go structs serialise non-omitempty fields always (a new ReplicaSet's status reads
    ``{"replicas": 0}``), and the typed clients rely on it: the ``kubernetes`` Python
    client refuses an object whose required field is absent. Used on ``status``, which
    servers and controllers write, never on what a user must supply.
    """
    if node is None or obj is None:
        return
    if isinstance(obj, dict) and node.is_object:
        for name in node.raw.get("required", ()):
            if name not in obj:
                child = node.field(name)
                if child is not None:
                    kinds = _types(child.raw)
                    if len(kinds) == 1:
                        zero = _ZERO.get(next(iter(kinds)))
                        if zero is not None:
                            obj[name] = zero
        for key, val in obj.items():
            if isinstance(val, NESTED):
                fill_required(val, node.field(key))
    elif isinstance(obj, list) and node.is_list:
        inode = node.items()
        for val in obj:
            if isinstance(val, dict):
                fill_required(val, inode)


# --- typed decoding ----------------------------------------------------------------------


def _go_type(node: SchemaNode) -> str:
    """The Go type name a decoding error names (``int32``, ``v1.OwnerReference``...)."""
    if node.name == _QUANTITY:
        return "resource.Quantity"
    if node.name == _INT_OR_STRING:
        return "intstr.IntOrString"
    types = _types(node.raw)
    if node.is_object:
        parts = node.name.split(".")
        return f"{parts[-2]}.{parts[-1]}" if len(parts) >= 2 else "struct"
    if node.is_map:
        inner = node.value()
        return "map[string]" + (_go_type(inner) if inner is not None else "interface {}")
    if node.is_list:
        inner = node.items()
        return "[]" + (_go_type(inner) if inner is not None else "interface {}")
    if "integer" in types:
        return str(node.raw.get("format") or "int")
    if "number" in types:
        return "float64"
    if "boolean" in types:
        return "bool"
    return "string"


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, NUMBER):
        return f"number {value}"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class TypeMismatch(ValueError):
    """A value of the wrong JSON type for its field (what Go's decoder refuses)."""

    def __init__(self, kind: str, parent: str, path: str, go_type: str) -> None:
        where = f"Go struct field {parent}.{path}" if parent else "Go value"
        super().__init__(f"json: cannot unmarshal {kind} into {where} of type {go_type}")


def _value_ok(value: Any, node: SchemaNode) -> tuple[bool, Any]:
    """Whether a scalar fits ``node``; integral floats are taken as integers."""
    if node.name == _QUANTITY:
        from corral.api.quantity import is_valid_quantity

        if isinstance(value, bool) or not isinstance(value, STR_OR_NUMBER):
            return False, value
        return is_valid_quantity(value), value
    if node.name == _INT_OR_STRING:
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return isinstance(value, str) or (
            isinstance(value, int) and not isinstance(value, bool)
        ), value
    types = _types(node.raw)
    if not types or "oneOf" in node.raw:
        return True, value
    if "integer" in types:
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return isinstance(value, int) and not isinstance(value, bool), value
    if "number" in types:
        return isinstance(value, NUMBER) and not isinstance(value, bool), value
    if "boolean" in types:
        return isinstance(value, bool), value
    if "string" in types:
        if isinstance(value, str) and node.raw.get("format") == "date-time" and value:
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise BadTime(value) from None
        return isinstance(value, str), value
    return True, value


class BadTime(ValueError):
    """A metav1.Time that does not parse as RFC 3339."""

    def __init__(self, value: str) -> None:
        super().__init__(
            f'parsing time "{value}" as "2006-01-02T15:04:05Z07:00": cannot parse "{value}" as "2006"'
        )


def _zero(node: SchemaNode | None) -> Any:
    if node is None:
        return None
    if node.is_object or node.is_map:
        return {}
    if node.is_list:
        return []
    types = _types(node.raw)
    if len(types) == 1:
        return _ZERO.get(next(iter(types)))
    return None


def check_types(
    obj: Any,
    node: SchemaNode | None,
    path: str = "",
    parent: str = "",
    unknown: list[str] | None = None,
    upath: str = "",
    *,
    stored: Any = None,
    stored_null_free: bool = False,
) -> Any:
    """Decode ``obj`` as Go would into the typed object ``node`` describes.

    Returns the value with nulls dropped from maps (a nil pointer is an absent field)
    and null list items turned into their zero value; raises ``TypeMismatch`` on the
    first value of the wrong JSON type, worded as Go's ``json: cannot unmarshal``.
    With ``unknown`` (a list), fields the schema does not know are dropped and their
    paths (``spec.containers[0].foo``) appended: pruning and decoding in one walk.
    ``path`` is Go's field path for messages, ``upath`` the indexed one for ``unknown``.

    ``stored`` is, for a patched object (the API server's PATCH), a fresh decode of the
    stored object the patch was applied to without copying it (a JSON merge patch shares
    the values it leaves alone). A map or list of ``obj`` that *is* the one at the same
    place in ``stored`` is taken as it is, not walked: the stored object was decoded when
    it was written, so decoding it again gives it back, except for the nulls some
    server writes put in on purpose (a condition's ``lastProbeTime: null``, as Go
    encodes a zero time), which it still drops. The result is the same as without
    ``stored``; only the walk is shorter. ``stored_null_free``: the caller knows the
    stored object holds no null at all (its JSON has no ``null``), so the shared
    containers are not searched for one.
    """
    try:
        if stored is not None:
            return _decode_patched(obj, node, unknown is not None, stored, stored_null_free)
        return _decode(obj, node, unknown is not None)
    except _Refused:
        pass
    # Something to report: walk again keeping the paths the error or the list names.
    return _check_types_reporting(obj, node, path, parent, unknown, upath)


class _Refused(Exception):
    """``_decode`` met something ``check_types`` reports (a value of the wrong type, a
    time that does not parse, an unknown field to list)."""


#: the decodings a stored container of each type was decoded under
_SHAPE_OF: dict[type, tuple[int, ...]] = {dict: (_KEEP, _OBJECT, _MAP), list: (_KEEP, _LIST)}


def _holds_null(value: Any) -> bool:
    """Whether a decoded JSON container may hold a null (a string spelling ``null``
    answers yes too: the caller then takes the long way)."""
    return b"null" in orjson.dumps(value)


def _decode_patched(
    obj: Any, node: SchemaNode | None, listing: bool, stored: Any, null_free: bool = False
) -> Any:
    """``_decode`` of a patched object, taking the containers it shares with ``stored``
    (see ``check_types``) as they are; ``null_free``: ``stored`` holds no null."""
    if node is None or not isinstance(obj, dict) or not isinstance(stored, dict):
        return _decode(obj, node, listing)
    how = node.decoding
    if how == _OBJECT:
        fields = node._fields
        out: dict[str, Any] = {}
        for key, val in obj.items():
            try:
                child = fields[key]
            except KeyError:
                child = node.field(key)
            if child is None:
                if listing:
                    raise _Refused
                if val is not None:
                    out[key] = val
                continue
            if val is None:
                continue
            was = stored.get(key)
            if val is was and child.decoding in _SHAPE_OF.get(type(val), ()):
                out[key] = (
                    val
                    if null_free or child.decoding == _KEEP or not _holds_null(val)
                    else _decode(val, child, listing)
                )
            elif isinstance(was, dict):
                out[key] = _decode_patched(val, child, listing, was, null_free)
            elif child.decoding == _SCALAR_STRING and isinstance(val, str):
                out[key] = val
            else:
                out[key] = _decode(val, child, listing)
        return out
    return _decode(obj, node, listing)


def _decode(obj: Any, node: SchemaNode | None, listing: bool) -> Any:
    """``check_types``' common case, without the paths: the same value, or ``_Refused``
    where the reporting walk would raise or list an unknown field (``listing``)."""
    if node is None:
        return obj
    how = node.decoding
    if how == _OBJECT:
        if not isinstance(obj, dict):
            raise _Refused
        fields = node._fields
        out: dict[str, Any] = {}
        for key, val in obj.items():
            try:
                child = fields[key]
            except KeyError:
                child = node.field(key)
            if child is None:
                if listing:
                    raise _Refused
                if val is not None:
                    out[key] = val
                continue
            if val is None:
                continue
            if child.decoding == _SCALAR_STRING and isinstance(val, str):
                out[key] = val
            else:
                out[key] = _decode(val, child, listing)
        return out
    if how == _KEEP:
        return obj
    if how == _LIST:
        if not isinstance(obj, list):
            raise _Refused
        inode = node.items()
        return [_decode(v, inode, listing) if v is not None else _zero(inode) for v in obj]
    if how == _MAP:
        if not isinstance(obj, dict):
            raise _Refused
        vnode = node.value()
        return {
            k: _decode(v, vnode, listing) if v is not None else _zero(vnode) for k, v in obj.items()
        }
    if isinstance(obj, NESTED):
        raise _Refused
    if how == _SCALAR_STRING:
        if isinstance(obj, str):
            return obj
    elif how == _SCALAR_TIME:
        if isinstance(obj, str):
            if obj:
                try:
                    datetime.fromisoformat(obj.replace("Z", "+00:00"))
                except ValueError:
                    raise _Refused from None
            return obj
    elif how == _SCALAR_INTEGER:
        if isinstance(obj, float) and obj.is_integer():
            return int(obj)
        if isinstance(obj, int) and not isinstance(obj, bool):
            return obj
    elif how == _SCALAR_BOOLEAN:
        if isinstance(obj, bool):
            return obj
    elif how == _SCALAR_ANY:
        return obj
    else:  # quantity, int-or-string, number: as _value_ok decides
        ok, value = _value_ok(obj, node)
        if ok:
            return value
    raise _Refused


def _check_types_reporting(
    obj: Any,
    node: SchemaNode | None,
    path: str,
    parent: str,
    unknown: list[str] | None,
    upath: str,
) -> Any:
    """``check_types`` keeping the paths: it raises the ``TypeMismatch`` or ``BadTime``
    and lists the unknown fields."""
    if node is None or node.is_opaque or node.preserves_unknown:
        return obj
    if node.is_object:
        if not isinstance(obj, dict):
            raise TypeMismatch(_json_kind(obj), parent, path, _go_type(node))
        me = node.name.rsplit(".", 1)[-1]
        out: dict[str, Any] = {}
        for key, val in obj.items():
            child = node.field(key)
            if child is None:
                if unknown is None:
                    if val is not None:
                        out[key] = val
                else:
                    unknown.append(f"{upath}.{key}" if upath else key)
                continue
            if val is None:
                continue
            out[key] = _check_types_reporting(
                val,
                child,
                f"{path}.{key}" if path else key,
                me,
                unknown,
                f"{upath}.{key}" if upath else key,
            )
        return out
    if node.is_map:
        if not isinstance(obj, dict):
            raise TypeMismatch(_json_kind(obj), parent, path, _go_type(node))
        vnode = node.value()
        return {
            k: _check_types_reporting(v, vnode, f"{path}.{k}", parent, unknown, f"{upath}.{k}")
            if v is not None
            else _zero(vnode)
            for k, v in obj.items()
        }
    if node.is_list:
        if not isinstance(obj, list):
            raise TypeMismatch(_json_kind(obj), parent, path, _go_type(node))
        inode = node.items()
        return [
            _check_types_reporting(v, inode, path, parent, unknown, f"{upath}[{i}]")
            if v is not None
            else _zero(inode)
            for i, v in enumerate(obj)
        ]
    if isinstance(obj, NESTED):
        raise TypeMismatch(_json_kind(obj), parent, path, _go_type(node))
    ok, value = _value_ok(obj, node)
    if not ok:
        if node.name == _QUANTITY and isinstance(obj, str):
            raise TypeMismatch("string", parent, path, "resource.Quantity") from ValueError(
                "quantities must match the regular expression"
            )
        raise TypeMismatch(_json_kind(obj), parent, path, _go_type(node))
    return value
