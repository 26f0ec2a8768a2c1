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
import os
from typing import Any

import orjson

KUBE_VERSION = "v1.32.0"
_REF_PREFIX = "#/$defs/"


@functools.cache
def definitions() -> dict[str, Any]:
    """All ``$defs`` of the 1.32 schema set, keyed by OpenAPI definition name."""
    import kubernetes_validate

    path = os.path.join(
        os.path.dirname(kubernetes_validate.__file__),
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


class SchemaNode:
    """One schema position. Navigation returns ``None`` where the schema says nothing."""

    __slots__ = ("name", "raw")

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

    # --- shape -----------------------------------------------------------------
    @property
    def is_object(self) -> bool:
        return "properties" in self.raw

    @property
    def is_map(self) -> bool:
        """A free-form map (``additionalProperties``), e.g. labels or ConfigMap data."""
        return "additionalProperties" in self.raw and "properties" not in self.raw

    @property
    def is_list(self) -> bool:
        return "array" in _types(self.raw) or "items" in self.raw

    @property
    def is_opaque(self) -> bool:
        """Anything goes (RawExtension, JSON, x-kubernetes-preserve-unknown-fields)."""
        r = self.raw
        if r.get("x-kubernetes-preserve-unknown-fields"):
            return True
        return not (self.is_object or self.is_map or self.is_list or _types(r) or "oneOf" in r)

    def field(self, name: str) -> SchemaNode | None:
        props = self.raw.get("properties")
        if props is not None and name in props:
            return SchemaNode(props[name], self.name)
        return None

    def value(self) -> SchemaNode | None:
        """The schema of a map's values."""
        ap = self.raw.get("additionalProperties")
        if isinstance(ap, dict):
            return SchemaNode(ap, self.name)
        return None

    def items(self) -> SchemaNode | None:
        it = self.raw.get("items")
        if isinstance(it, dict):
            return SchemaNode(it, self.name)
        return None

    def fields(self) -> list[str]:
        return list(self.raw.get("properties", {}))

    # --- list semantics ----------------------------------------------------------
    @property
    def patch_strategy(self) -> str:
        return str(self.raw.get("x-kubernetes-patch-strategy", ""))

    @property
    def patch_merge_key(self) -> str:
        return str(self.raw.get("x-kubernetes-patch-merge-key", ""))

    @property
    def list_type(self) -> str:
        """``atomic`` (default), ``set`` or ``map`` (server-side apply semantics)."""
        lt = self.raw.get("x-kubernetes-list-type")
        if lt:
            return str(lt)
        if self.patch_merge_key:
            return "map"
        return "atomic"

    @property
    def list_map_keys(self) -> list[str]:
        keys = self.raw.get("x-kubernetes-list-map-keys")
        if keys:
            return list(keys)
        return [self.patch_merge_key] if self.patch_merge_key else []

    @property
    def map_type(self) -> str:
        return str(self.raw.get("x-kubernetes-map-type", "granular"))

    def __repr__(self) -> str:
        return f"SchemaNode({self.name})"


def for_kind(group: str, version: str, kind: str) -> SchemaNode | None:
    name = gvk_index().get((group, version, kind))
    if name is None:
        return None
    return SchemaNode(definitions()[name], name)


def unknown_fields(obj: Any, node: SchemaNode | None, path: str = "") -> list[str]:
    """Paths (``spec.foo``, ``spec.containers[0].bar``) of fields the schema does not know."""
    out: list[str] = []
    if node is None or node.is_opaque:
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
    if node is None or node.is_opaque:
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
            if isinstance(val, dict | list):
                fill_required(val, node.field(key))
    elif isinstance(obj, list) and node.is_list:
        inode = node.items()
        for val in obj:
            if isinstance(val, dict):
                fill_required(val, inode)
