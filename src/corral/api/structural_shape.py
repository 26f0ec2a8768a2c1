"""The structural-schema invariants of a CRD schema (apiextensions' ``ValidateStructural``).

Called by :func:`corral.api.structural_check.check_schema`. A schema is structural when
every field says its type (or is int-or-string / preserves unknown fields), ``metadata``
at the root restricts only name and generateName, and the value validations (allOf,
anyOf, oneOf, not) add no types, defaults, descriptions or x-kubernetes extensions nor
name fields the structural part does not. Errors come sorted by message, as upstream.
"""

from __future__ import annotations

from typing import Any

from corral.api.errors import FieldError, forbidden, invalid, required
from corral.api.structural_formats import pattern_error

_INT_OR_STRING_ANYOF = [{"type": "integer"}, {"type": "string"}]
# Keys a value-validation (nested) schema may not carry to stay structural.
_NESTED_FORBIDDEN = [
    ("type", "must be empty to be structural"),
    ("additionalProperties", "must be undefined to be structural"),
    ("default", "must be undefined to be structural"),
    ("title", "must be empty to be structural"),
    ("description", "must be empty to be structural"),
    ("nullable", "must be false to be structural"),
    ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
    ("x-kubernetes-embedded-resource", "must be false to be structural"),
    ("x-kubernetes-int-or-string", "must be false to be structural"),
    ("x-kubernetes-list-map-keys", "must be empty to be structural"),
    ("x-kubernetes-list-type", "must be undefined to be structural"),
    ("x-kubernetes-map-type", "must be undefined to be structural"),
    ("x-kubernetes-validations", "must be empty to be structural"),
]


def key(path: str, name: str) -> str:
    return f"{path}[{name}]"


def structural_errors(schema: dict[str, Any], path: str) -> list[FieldError]:
    errs = _invariants(schema, "root", path)
    errs.extend(_completeness(schema, path))
    errs.sort(key=str)
    return errs


def _invariants(s: dict[str, Any], lvl: str, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    typ = s.get("type") or ""
    items = s.get("items")
    if typ == "array" and items is None:
        errs.append(required(f"{path}.items", "must be specified"))
    if isinstance(items, dict):
        errs.extend(_invariants(items, "item", f"{path}.items"))
    for k, v in (s.get("properties") or {}).items():
        if isinstance(v, dict):
            errs.extend(_invariants(v, "field", key(f"{path}.properties", k)))
    addl = s.get("additionalProperties")
    if addl is not None:
        if lvl == "root":
            errs.append(forbidden(f"{path}.additionalProperties", "must not be used at the root"))
        if isinstance(addl, dict):
            errs.extend(_invariants(addl, "field", f"{path}.additionalProperties"))
    ios = bool(s.get("x-kubernetes-int-or-string"))
    puf = bool(s.get("x-kubernetes-preserve-unknown-fields"))
    emb = bool(s.get("x-kubernetes-embedded-resource"))
    if ios and puf:
        errs.append(
            invalid(
                f"{path}.x-kubernetes-preserve-unknown-fields",
                True,
                "must be false if x-kubernetes-int-or-string is true",
            )
        )
    if ios and emb:
        errs.append(
            invalid(
                f"{path}.x-kubernetes-embedded-resource",
                True,
                "must be false if x-kubernetes-int-or-string is true",
            )
        )
    skip_any = s.get("anyOf") == _INT_OR_STRING_ANYOF
    all_of = s.get("allOf") or []
    skip_first_all_any = (
        bool(all_of)
        and isinstance(all_of[0], dict)
        and all_of[0].get("anyOf") == _INT_OR_STRING_ANYOF
    )
    errs.extend(_value_validation(s, skip_any, skip_first_all_any, lvl, path))
    if emb and typ != "object":
        if not typ:
            errs.append(
                required(f"{path}.type", "must be object if x-kubernetes-embedded-resource is true")
            )
        else:
            errs.append(
                invalid(
                    f"{path}.type", typ, "must be object if x-kubernetes-embedded-resource is true"
                )
            )
    elif not typ and not ios and not puf:
        detail = {
            "root": "must not be empty at the root",
            "item": "must not be empty for specified array items",
            "field": "must not be empty for specified object fields",
        }[lvl]
        errs.append(required(f"{path}.type", detail))
    if emb and addl is not None:
        errs.append(
            forbidden(
                f"{path}.additionalProperties",
                "must not be used if x-kubernetes-embedded-resource is set",
            )
        )
    if lvl == "root" and typ and typ != "object":
        errs.append(invalid(f"{path}.type", typ, "must be object at the root"))
    props = s.get("properties") or {}
    check_meta = lvl == "root" or emb
    for name in ("kind", "apiVersion"):
        if name in props and check_meta and (props[name] or {}).get("type") != "string":
            errs.append(
                invalid(
                    f"{key(f'{path}.properties', name)}.type",
                    (props[name] or {}).get("type", ""),
                    "must be string",
                )
            )
    if "metadata" in props and isinstance(props["metadata"], dict):
        errs.extend(
            _metadata(props["metadata"], check_meta, lvl, key(f"{path}.properties", "metadata"))
        )
    if emb and not puf and not props:
        errs.append(
            required(
                f"{path}.properties",
                "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
            )
        )
    return errs


# Keys NewStructural drops (not part of a structural schema): they never count.
_NOT_STRUCTURAL = frozenset(("example", "externalDocs", "id", "$schema"))


def _metadata(m: dict[str, Any], check: bool, lvl: str, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if check and m.get("type") != "object":
        errs.append(invalid(f"{path}.type", m.get("type", ""), "must be object"))
    if lvl == "root":
        rest = {
            k: v
            for k, v in m.items()
            if k not in ("type", "default", "properties")
            and k not in _NOT_STRUCTURAL
            and v not in (None, False, "")
        }
        props = m.get("properties") or {}
        if set(props) <= {"name", "generateName"}:
            props = {}
        # Descriptions, titles and value validations are structural, so they count too.
        if props or rest:
            errs.append(
                forbidden(
                    path,
                    "must not specify anything other than name and generateName, but metadata is implicitly specified",
                )
            )
    return errs


def _value_validation(
    v: dict[str, Any], skip_any: bool, skip_first_all_any: bool, lvl: str, path: str
) -> list[FieldError]:
    errs: list[FieldError] = []
    if not skip_any:
        for i, sub in enumerate(v.get("anyOf") or ()):
            errs.extend(_nested(sub, False, lvl, f"{path}.anyOf[{i}]"))
    for i, sub in enumerate(v.get("allOf") or ()):
        errs.extend(_nested(sub, skip_first_all_any and i == 0, lvl, f"{path}.allOf[{i}]"))
    for i, sub in enumerate(v.get("oneOf") or ()):
        errs.extend(_nested(sub, False, lvl, f"{path}.oneOf[{i}]"))
    if isinstance(v.get("not"), dict):
        errs.extend(_nested(v["not"], False, lvl, f"{path}.not"))
    bad = pattern_error(v["pattern"]) if isinstance(v.get("pattern"), str) else None
    if bad is not None:
        errs.append(
            invalid(
                f"{path}.pattern",
                v["pattern"],
                f"must be a valid regular expression, but isn't: {bad}",
            )
        )
    return errs


def _nested(v: Any, skip_any: bool, lvl: str, path: str) -> list[FieldError]:
    if not isinstance(v, dict):
        return []
    errs = _value_validation(v, skip_any, False, lvl, path)
    if isinstance(v.get("items"), dict):
        errs.extend(_nested(v["items"], False, lvl, f"{path}.items"))
    for k, sub in (v.get("properties") or {}).items():
        errs.extend(_nested(sub, False, "field", key(f"{path}.properties", k)))
    for name, detail in _NESTED_FORBIDDEN:
        val = v.get(name)
        if name == "additionalProperties" and val is not None:
            errs.append(forbidden(f"{path}.{name}", detail))
        elif name != "additionalProperties" and val not in (None, False, "", [], {}):
            if name == "default" and val is None:
                continue
            errs.append(forbidden(f"{path}.{name}", detail))
    if "metadata" in (v.get("properties") or {}):
        errs.append(
            forbidden(
                key(f"{path}.properties", "metadata"), "must not be specified in a nested context"
            )
        )
    return errs


def _completeness(s: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for comb in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(s.get(comb) or ()):
            errs.extend(_nested_complete(sub, s, path, f"{path}.{comb}[{i}]"))
    if isinstance(s.get("not"), dict):
        errs.extend(_nested_complete(s["not"], s, path, f"{path}.not"))
    if isinstance(s.get("items"), dict):
        errs.extend(_completeness(s["items"], f"{path}.items"))
    for k, sub in (s.get("properties") or {}).items():
        if isinstance(sub, dict):
            errs.extend(_completeness(sub, key(f"{path}.properties", k)))
    if isinstance(s.get("additionalProperties"), dict):
        errs.extend(_completeness(s["additionalProperties"], f"{path}.additionalProperties"))
    return errs


def _nested_complete(v: Any, s: dict[str, Any] | None, spath: str, vpath: str) -> list[FieldError]:
    if not isinstance(v, dict):
        return []
    if s is None:
        return [required(spath, f"because it is defined in {vpath}")]
    errs: list[FieldError] = []
    for comb in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(v.get(comb) or ()):
            errs.extend(_nested_complete(sub, s, spath, f"{vpath}.{comb}[{i}]"))
    if isinstance(v.get("not"), dict):
        errs.extend(_nested_complete(v["not"], s, spath, f"{vpath}.not"))
    if isinstance(v.get("items"), dict):
        items = s.get("items")
        errs.extend(
            _nested_complete(
                v["items"],
                items if isinstance(items, dict) else None,
                f"{spath}.items",
                f"{vpath}.items",
            )
        )
    props = s.get("properties") or {}
    for k, sub in (v.get("properties") or {}).items():
        if k not in props:
            errs.append(
                required(
                    key(f"{spath}.properties", k),
                    f"because it is defined in {key(f'{vpath}.properties', k)}",
                )
            )
        else:
            errs.extend(
                _nested_complete(
                    sub, props[k], key(f"{spath}.properties", k), key(f"{vpath}.properties", k)
                )
            )
    return errs
