"""Value validation of custom resources against their structural schema (passes 1 and 2).

Called by :class:`corral.api.structural.StructuralSchema.validate` (and by the CRD
schema checks for defaults). It reproduces, with upstream's wording, the OpenAPI keyword
validation of kube-openapi (messages such as ``spec.size in body should be less than or
equal to 10``, turned into field errors as apiextensions' ``kubeOpenAPIResultToFieldErrors``
does), with CRD validation ratcheting on update, and the ``x-kubernetes-list-type``
set/map uniqueness check. The CEL pass lives in :mod:`corral.api.structural_cel`.
Pure functions over JSON-like values; nothing is mutated.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from corral.api.errors import FieldError, GoValue, duplicate, invalid, not_supported, required
from corral.api.structural_formats import (
    compile_pattern,
    format_checker,
    pattern_error,
)

IN = "body"


# --- small helpers ----------------------------------------------------------------------


def _go_number(v: float | int) -> str:
    """``%v`` of a Go float64 (``10``, ``1.5``, ``1e+21``)."""
    if isinstance(v, int):
        return str(v)
    if v == int(v) and abs(v) < 1e21:
        return str(int(v))
    text = repr(v)
    if "e" in text:
        mant, exp = text.split("e")
        sign = "-" if exp.startswith("-") else "+"
        return f"{mant}e{sign}{exp.lstrip('+-').zfill(2)}"
    return text


def go_repr(value: Any) -> str:
    """Go's ``%#v`` of a decoded JSON value (``map[string]interface {}{"a":1}``)."""
    if value is None:
        return "interface {}(nil)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _go_number(value)
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(go_repr(v) for v in value) + "}"
    if isinstance(value, dict):
        inner = ", ".join(f"{orjson.dumps(k).decode()}:{go_repr(value[k])}" for k in sorted(value))
        return "map[string]interface {}{" + inner + "}"
    return str(value)


def bad_value(value: Any) -> Any:
    """A field error's value: objects and arrays rendered as Go renders them."""
    return GoValue(go_repr(value)) if isinstance(value, dict | list) else value


def kind_of(value: Any) -> str:
    """The OpenAPI type name of a decoded JSON value (as kube-openapi names it)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def schema_types(schema: dict[str, Any]) -> list[str]:
    if schema.get("x-kubernetes-int-or-string"):
        return ["integer", "string"]
    t = schema.get("type")
    return [t] if isinstance(t, str) and t else []


def _type_error(path: str, types: str, got: str) -> FieldError:
    return FieldError(
        "FieldValueTypeInvalid", path, got, f'{path} in {IN} must be of type {types}: "{got}"'
    )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --- pass 1: OpenAPI keywords ------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    """``reflect.DeepEqual`` of decoded JSON (``1`` and ``1.0`` and ``True`` all differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


NO_OLD: Any = object()  # "no correlated old value" (distinct from an old null)


def validate_value(
    schema: dict[str, Any], value: Any, path: str, root: bool = False, old: Any = NO_OLD
) -> list[FieldError]:
    """kube-openapi's SchemaValidator on one value (``path`` "" at the root).

    ``old`` is the correlated value before an update: a subtree equal to it reports no
    errors (upstream's CRD validation ratcheting, on by default since 1.30).
    """
    if old is not NO_OLD and same(value, old):
        return []
    errs: list[FieldError] = []
    types = schema_types(schema)
    if value is None:
        if types and not schema.get("nullable"):
            errs.append(_type_error(path, ",".join(types), "null"))
        _check_enum(schema, value, path, errs)
        return errs
    got = kind_of(value)
    ok_type = not types or got in types
    if not ok_type and got == "number" and "integer" in types and float(value).is_integer():
        ok_type = True
    if not ok_type and got == "integer" and "number" in types:
        ok_type = True
    if not ok_type:
        errs.append(_type_error(path, ",".join(types), got))
    _check_combinators(schema, value, path, errs)
    if got == "string":
        _check_string(schema, value, path, errs)
    elif got in ("integer", "number"):
        _check_number(schema, value, path, errs)
    elif got == "array":
        _check_array(schema, value, path, errs, old)
    _check_enum(schema, value, path, errs)
    if got == "object":
        _check_object(schema, value, path, errs, root, old)
    return errs


def _check_string(schema: dict[str, Any], value: str, path: str, errs: list[FieldError]) -> None:
    n = len(value)
    if "maxLength" in schema and n > schema["maxLength"]:
        errs.append(
            FieldError(
                "FieldValueTooLong", path, None, f"may not be more than {schema['maxLength']} bytes"
            )
        )
    if "minLength" in schema and n < schema["minLength"]:
        errs.append(
            invalid(
                path, value, f"{path} in {IN} should be at least {schema['minLength']} chars long"
            )
        )
    if "pattern" in schema:
        rx = compile_pattern(schema["pattern"])
        if rx is None:
            why = pattern_error(schema["pattern"])
            errs.append(
                invalid(
                    path,
                    value,
                    f"{path} in {IN} should match '{schema['pattern']}, but pattern is invalid: {why}'",
                )
            )
        elif not rx.search(value):
            errs.append(invalid(path, value, f"{path} in {IN} should match '{schema['pattern']}'"))
    fmt = schema.get("format")
    if fmt:
        check = format_checker(fmt)
        if check is not None and not check(value):
            errs.append(
                FieldError(
                    "FieldValueTypeInvalid",
                    path,
                    value,
                    f"{path} in {IN} must be of type {fmt}: {orjson.dumps(value).decode()}",
                )
            )


def _check_number(schema: dict[str, Any], value: float, path: str, errs: list[FieldError]) -> None:
    mult = schema.get("multipleOf")
    if mult:
        q = value / mult
        if not (isinstance(value, int) and isinstance(mult, int) and value % mult == 0) and (
            not math.isfinite(q) or q != round(q)
        ):
            errs.append(
                invalid(path, value, f"{path} in {IN} should be a multiple of {_go_number(mult)}")
            )
    if "maximum" in schema:
        mx = schema["maximum"]
        excl = bool(schema.get("exclusiveMaximum"))
        if value > mx or (excl and value == mx):
            word = "less than" if excl else "less than or equal to"
            errs.append(invalid(path, value, f"{path} in {IN} should be {word} {_go_number(mx)}"))
    if "minimum" in schema:
        mn = schema["minimum"]
        excl = bool(schema.get("exclusiveMinimum"))
        if value < mn or (excl and value == mn):
            word = "greater than" if excl else "greater than or equal to"
            errs.append(invalid(path, value, f"{path} in {IN} should be {word} {_go_number(mn)}"))


def _canon(value: Any) -> bytes:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _check_array(
    schema: dict[str, Any], value: list[Any], path: str, errs: list[FieldError], old: Any
) -> None:
    n = len(value)
    if "minItems" in schema and n < schema["minItems"]:
        errs.append(
            invalid(path, n, f"{path} in {IN} should have at least {schema['minItems']} items")
        )
    if "maxItems" in schema and n > schema["maxItems"]:
        errs.append(
            FieldError(
                "FieldValueTooMany", path, n, f"must have at most {schema['maxItems']} items"
            )
        )
    if schema.get("uniqueItems") and len({_canon(v) for v in value}) != n:
        errs.append(invalid(path, "", f"{path} in {IN} shouldn't contain duplicates"))
    items = schema.get("items")
    if isinstance(items, dict):
        olds = correlate_list(schema, old if isinstance(old, list) else None)
        for i, v in enumerate(value):
            o = olds(v)
            errs.extend(validate_value(items, v, f"{path}[{i}]", old=NO_OLD if o is None else o))


def _check_enum(schema: dict[str, Any], value: Any, path: str, errs: list[FieldError]) -> None:
    enum = schema.get("enum")
    if not enum:
        return
    cv = _canon(value)
    if any(_canon(e) == cv for e in enum):
        return
    supported = [e if isinstance(e, str) else orjson.dumps(e).decode() for e in enum]
    errs.append(not_supported(path, bad_value(value), supported))


def _check_object(
    schema: dict[str, Any],
    value: dict[str, Any],
    path: str,
    errs: list[FieldError],
    root: bool,
    old: Any,
) -> None:
    n = len(value)
    if "minProperties" in schema and n < schema["minProperties"]:
        errs.append(
            invalid(
                path, n, f"{path} in {IN} should have at least {schema['minProperties']} properties"
            )
        )
    if "maxProperties" in schema and n > schema["maxProperties"]:
        errs.append(
            FieldError(
                "FieldValueTooMany", path, n, f"must have at most {schema['maxProperties']} items"
            )
        )
    props: dict[str, Any] = schema.get("properties") or {}
    addl = schema.get("additionalProperties")
    old_map = old if isinstance(old, dict) else {}
    for key, v in value.items():
        if root and key == "metadata":
            # ObjectMeta is the caller's; the schema may only restrict name/generateName.
            mprops = (props.get("metadata") or {}).get("properties") or {}
            if isinstance(v, dict):
                for mk in ("name", "generateName"):
                    if mk in mprops and mk in v:
                        errs.extend(validate_value(mprops[mk], v[mk], f"metadata.{mk}"))
            continue
        o = NO_OLD if root and key in ("apiVersion", "kind") else old_map.get(key, NO_OLD)
        sub = props.get(key)
        if sub is not None:
            errs.extend(validate_value(sub, v, _join(path, key), old=o))
        elif isinstance(addl, dict):
            errs.extend(validate_value(addl, v, _join(path, key), old=o))
        elif addl is False:
            errs.append(invalid(path, key, f"{path}.{key} in {IN} is a forbidden property"))
    for key in schema.get("required") or ():
        if key not in value:
            errs.append(required(_join(path, key)))


def _fewest(results: list[list[FieldError]]) -> list[FieldError]:
    best = results[0]
    for r in results[1:]:
        if len(r) < len(best):
            best = r
    return best


def _check_combinators(
    schema: dict[str, Any], value: Any, path: str, errs: list[FieldError]
) -> None:
    # Composite errors are not openapi Validation errors: upstream reports them at the
    # caller's field path (nil, "<nil>", for a custom resource) with the quoted schema
    # path in the message; "" here.
    if "anyOf" in schema:
        results = [validate_value(s, value, path) for s in schema["anyOf"]]
        if all(results):
            errs.append(invalid("", "", f'"{path}" must validate at least one schema (anyOf)'))
            errs.extend(_fewest(results))
    if "oneOf" in schema:
        results = [validate_value(s, value, path) for s in schema["oneOf"]]
        ok = sum(1 for r in results if not r)
        if ok != 1:
            more = "Found none valid" if ok == 0 else f"Found {ok} valid alternatives"
            errs.append(
                invalid(
                    "<nil>", "", f'"{path}" must validate one and only one schema (oneOf). {more}'
                )
            )
            if ok == 0:
                errs.extend(_fewest(results))
    if "allOf" in schema:
        results = [validate_value(s, value, path) for s in schema["allOf"]]
        bad = [r for r in results if r]
        for r in bad:
            errs.extend(r)
        if bad:
            more = ". None validated" if len(bad) == len(results) else ""
            errs.append(invalid("", "", f'"{path}" must validate all the schemas (allOf){more}'))
    if isinstance(schema.get("not"), dict) and not validate_value(schema["not"], value, path):
        errs.append(invalid("", "", f'"{path}" must not validate the schema (not)'))


# --- pass 2: list-type set / map uniqueness ------------------------------------------------


def validate_list_types(schema: dict[str, Any] | None, value: Any, path: str) -> list[FieldError]:
    """``listtype.ValidateListSetsAndMaps``: duplicates in ``set`` and ``map`` lists."""
    errs: list[FieldError] = []
    if schema is None:
        return errs
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        for k, v in value.items():
            if isinstance(addl, dict):
                errs.extend(validate_list_types(addl, v, f"{path}[{k}]"))
            if k in props:
                errs.extend(validate_list_types(props[k], v, _join(path, k)))
    elif isinstance(value, list):
        lt = schema.get("x-kubernetes-list-type")
        if lt == "set":
            errs.extend(duplicate(f"{path}[{i}]", bad_value(value[i])) for i in _non_unique(value))
        elif lt == "map":
            errs.extend(_list_map_dups(schema, value, path))
        items = schema.get("items")
        if isinstance(items, dict):
            for i, v in enumerate(value):
                errs.extend(validate_list_types(items, v, f"{path}[{i}]"))
    return errs


def _non_unique(values: list[Any]) -> list[int]:
    seen: dict[bytes, int] = {}
    out: list[int] = []
    for i, v in enumerate(values):
        key = orjson.dumps(v, option=orjson.OPT_SORT_KEYS)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] == 2:
            out.append(i)
    return out


def _list_map_dups(schema: dict[str, Any], value: list[Any], path: str) -> list[FieldError]:
    for i, x in enumerate(value):
        if x is not None and not isinstance(x, dict):
            return [
                invalid(
                    f"{path}[{i}]", bad_value(x), "must be an object for an array of list-type map"
                )
            ]
    if len(value) <= 1:
        return []
    key_names: list[str] = schema.get("x-kubernetes-list-map-keys") or []
    keys = [{k: x[k] for k in key_names if k in x} if isinstance(x, dict) else {} for x in value]
    return [duplicate(f"{path}[{i}]", bad_value(keys[i])) for i in _non_unique(keys)]


def correlate_list(schema: dict[str, Any], old: list[Any] | None) -> Any:
    """A look-up of an item's old self: by key in ``map`` lists, else nothing (None)."""
    keys = schema.get("x-kubernetes-list-map-keys") or []
    if old is None or schema.get("x-kubernetes-list-type") != "map" or not keys:
        return lambda _v: None
    index: dict[bytes, Any] = {}
    for o in old:
        if isinstance(o, dict):
            index.setdefault(orjson.dumps([o.get(k) for k in keys]), o)

    def get(v: Any) -> Any:
        if not isinstance(v, dict):
            return None
        return index.get(orjson.dumps([v.get(k) for k in keys]))

    return get
