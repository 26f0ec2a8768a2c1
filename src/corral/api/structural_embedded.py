"""Embedded resources (``x-kubernetes-embedded-resource``) inside custom resources.

Called by :class:`corral.api.structural.StructuralSchema`: after pruning, the
``metadata`` of every nested embedded object is coerced to ObjectMeta (unknown fields
dropped and reported, as apiextensions' ``objectmeta.CoerceWithOptions`` does), and on
validation the embedded object must name its ``apiVersion`` and ``kind`` and carry valid
metadata (``objectmeta.Validate``). The resource root itself is the caller's business.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from corral.api.errors import FieldError, invalid, required
from corral.api.schema import SchemaNode, prune_unknown
from corral.api.validation import is_dns1035_label, validate_object_meta

_OBJECT_META = "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _embedded(x: Any, s: dict[str, Any] | None, path: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Every nested embedded object with its path (the root excluded)."""
    if s is None:
        return
    if isinstance(x, dict):
        if s.get("x-kubernetes-embedded-resource") and path:
            yield x, path
        props = s.get("properties") or {}
        addl = s.get("additionalProperties")
        for k, v in x.items():
            if k in props:
                yield from _embedded(v, props[k], _join(path, k))
            elif isinstance(addl, dict):
                yield from _embedded(v, addl, f"{path}[{k}]")
    elif isinstance(x, list):
        items = s.get("items")
        if isinstance(items, dict):
            for i, v in enumerate(x):
                yield from _embedded(v, items, f"{path}[{i}]")


def coerce_embedded(obj: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Drop unknown ObjectMeta fields of embedded objects; return their paths."""
    out: list[str] = []
    for emb, path in _embedded(obj, schema, ""):
        meta = emb.get("metadata")
        if isinstance(meta, dict):
            out.extend(prune_unknown(meta, _object_meta(), f"{path}.metadata"))
    return out


@functools.cache
def _object_meta() -> SchemaNode:
    return SchemaNode({"$ref": _OBJECT_META})


def validate_embedded(obj: dict[str, Any], schema: dict[str, Any]) -> list[FieldError]:
    """``objectmeta.Validate`` of the embedded objects below the root."""
    errs: list[FieldError] = []
    for emb, path in _embedded(obj, schema, ""):
        errs.extend(_validate_one(emb, path))
    return errs


def _validate_one(x: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if "apiVersion" not in x:
        errs.append(required(f"{path}.apiVersion", "must not be empty"))
    if "kind" not in x:
        errs.append(required(f"{path}.kind", "must not be empty"))
    for k, v in x.items():
        if k == "apiVersion":
            if not isinstance(v, str):
                errs.append(invalid(f"{path}.apiVersion", v, "must be a string"))
            elif not v:
                errs.append(invalid(f"{path}.apiVersion", v, "must not be empty"))
            elif v.count("/") > 1:
                errs.append(
                    invalid(f"{path}.apiVersion", v, f"unexpected GroupVersion string: {v}")
                )
        elif k == "kind":
            if not isinstance(v, str):
                errs.append(invalid(f"{path}.kind", v, "must be a string"))
            elif not v:
                errs.append(invalid(f"{path}.kind", v, "must not be empty"))
            elif msgs := is_dns1035_label(v.lower()):
                errs.append(
                    invalid(
                        f"{path}.kind",
                        v,
                        "may have mixed case, but should otherwise match: " + ",".join(msgs),
                    )
                )
        elif k == "metadata" and isinstance(v, dict):
            meta = dict(v)
            if not meta.get("name"):
                meta["name"] = "fakename"  # as upstream: a name is not required here
            for e in validate_object_meta(meta, bool(meta.get("namespace")), "path"):
                errs.append(FieldError(e.type, f"{path}.{e.field}", e.value, e.detail))
    return errs
