"""CEL ``x-kubernetes-validations`` rules on custom resources (the third validation pass).

Called by :meth:`corral.api.structural.StructuralSchema.validate` and by the CRD schema
checks (defaults must satisfy their rules). Walks the object with its schema, shapes each
value as upstream's ``UnstructuredToVal`` types it (numbers as double, formatted strings
as timestamp/duration/bytes, property names escaped), runs the rules through
:mod:`corral.api.cel`, and words failures as apiextensions' CEL validator does: the
message, the messageExpression, ``failed rule: <rule>``, the reason and fieldPath.
``oldSelf`` rules run only where an old value correlates (object keys unless the map is
atomic, map-list keys), and failures of unchanged values are dropped (ratcheting).
"""

from __future__ import annotations

import re
from typing import Any

from corral.api import cel
from corral.api.errors import FieldError, duplicate, invalid, required
from corral.api.structural_formats import cel_string
from corral.api.structural_validate import correlate_list, same


def _cel_value(schema: dict[str, Any] | None, value: Any) -> Any:
    """Shape a value for CEL as upstream's UnstructuredToVal types it (numbers as double)."""
    if schema is None:
        return value
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        if isinstance(addl, dict):  # a map: keys are data, reached as self['key']
            return {k: _cel_value(addl, v) for k, v in value.items()}
        out: dict[str, Any] = {}
        for k, v in value.items():
            name = cel.escape(k) if props else k  # object fields: escaped identifiers
            if name is not None:
                out[name] = _cel_value(props.get(k), v)
        return out
    if isinstance(value, list):
        items = schema.get("items")
        return [_cel_value(items if isinstance(items, dict) else None, v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and schema.get("type") == "number":
        return float(value)
    if isinstance(value, str) and schema.get("type") == "string" and schema.get("format"):
        return cel_string(value, str(schema["format"]))
    return value


def _reason_error(reason: str | None, path: str, type_name: str, detail: str) -> FieldError:
    if reason == "FieldValueForbidden":
        return FieldError("FieldValueForbidden", path, None, detail)
    if reason == "FieldValueRequired":
        return required(path, detail)
    if reason == "FieldValueDuplicate":
        return duplicate(path, type_name)
    return invalid(path, type_name, detail)


def _rule_string(rule: dict[str, Any]) -> str:
    return str(rule.get("message") or "").strip() or str(rule.get("rule", "")).strip()


def _normalized_field_path(fp: str) -> str:
    # ".spec.x" / "['a.b'].c" -> "spec.x" / "a.b.c" (upstream normalizes to a field.Path)
    out: list[str] = []
    for m in re.finditer(r"\.([^.\[]+)|\['((?:[^'\\]|\\.)*)'\]|\[(\d+)\]", fp):
        if m.group(1) is not None:
            out.append("." + m.group(1))
        elif m.group(2) is not None:
            out.append("." + m.group(2).replace("\\'", "'"))
        else:
            out.append(f"[{m.group(3)}]")
    return "".join(out).lstrip(".")


def validate_cel(
    schema: dict[str, Any] | None,
    value: Any,
    old: Any,
    path: str,
    has_old: bool,
    root: bool = False,
) -> list[FieldError]:
    """Evaluate every ``x-kubernetes-validations`` rule under ``schema`` on ``value``.

    At the resource ``root`` rules see apiVersion, kind and only the name and
    generateName of the metadata, as upstream's ``WithTypeAndObjectMeta``.
    """
    errs: list[FieldError] = []
    if schema is None or value is None:
        return errs
    rules = schema.get("x-kubernetes-validations")
    if rules:
        type_name = "" if schema.get("x-kubernetes-int-or-string") else schema.get("type", "")
        self_v = _cel_value(schema, _root_view(value) if root else value)
        has_old = has_old and old is not None
        old_v = _cel_value(schema, _root_view(old) if root else old) if has_old else None
        unchanged = has_old and same(value, old)
        for rule in rules:
            errs.extend(_run_rule(rule, self_v, old_v, has_old, unchanged, path, type_name))
    for sub in schema.get("allOf") or ():
        errs.extend(validate_cel(sub, value, old, path, has_old))
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            olds = correlate_list(schema, old if isinstance(old, list) else None)
            for i, v in enumerate(value):
                o = olds(v)
                errs.extend(validate_cel(items, v, o, f"{path}[{i}]", o is not None))
    elif isinstance(value, dict):
        correlatable = schema.get("x-kubernetes-map-type") != "atomic"
        old_map = old if (correlatable and isinstance(old, dict)) else {}
        addl = schema.get("additionalProperties")
        if isinstance(addl, dict):
            for k, v in value.items():
                errs.extend(validate_cel(addl, v, old_map.get(k), f"{path}[{k}]", k in old_map))
        props = schema.get("properties") or {}
        for k, v in value.items():
            if k in props:
                errs.extend(validate_cel(props[k], v, old_map.get(k), _join(path, k), k in old_map))
    return errs


def _root_view(obj: Any) -> Any:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return obj
    kept = {k: meta[k] for k in ("name", "generateName") if k in meta}
    return {**obj, "metadata": kept}


def _run_rule(
    rule: dict[str, Any],
    self_v: Any,
    old_v: Any,
    has_old: bool,
    unchanged: bool,
    path: str,
    type_name: str,
) -> list[FieldError]:
    src = str(rule.get("rule", ""))
    try:
        compiled = cel.compile_rule(src)
    except cel.CELCompileError as e:
        return [invalid(path, type_name, f"rule compile error: {e}")]
    if compiled.uses_old_self and not has_old and not rule.get("optionalOldSelf"):
        return []
    variables: dict[str, Any] = {"self": self_v}
    if compiled.uses_old_self:
        if rule.get("optionalOldSelf"):
            variables["oldSelf"] = cel.optional(old_v, has_old)
        else:
            variables["oldSelf"] = old_v
    try:
        result = cel.evaluate(compiled, variables)
    except cel.CELEvalError as e:
        text = str(e)
        if text.startswith("no such overload"):
            return [
                invalid(
                    path,
                    type_name,
                    f"'{text}': call arguments did not match a supported operator, function or macro signature for rule: {_rule_string(rule)}",
                )
            ]
        return [invalid(path, type_name, f"{text} evaluating rule: {_rule_string(rule)}")]
    if result is True or (unchanged and not compiled.uses_old_self):
        return []  # passed, or ratcheted: an unchanged value keeps its old failures
    err_path = path
    fp = rule.get("fieldPath")
    if fp:
        err_path = _join(path, _normalized_field_path(fp))
    message = str(rule.get("message") or "").strip() or f"failed rule: {_rule_string(rule)}"
    msg_expr = rule.get("messageExpression")
    if msg_expr:
        try:
            msg_vars = {"self": self_v, "oldSelf": old_v} if has_old else {"self": self_v}
            m = cel.evaluate(cel.compile_rule(msg_expr), msg_vars)
            text = m.strip() if isinstance(m, str) else ""
            if text and "\n" not in text and len(text.encode()) <= _MAX_MESSAGE_BYTES:
                message = text
        except (cel.CELCompileError, cel.CELEvalError):
            pass
    return [_reason_error(rule.get("reason"), err_path, type_name, message)]


_MAX_MESSAGE_BYTES = 5120  # celconfig.MaxEvaluatedMessageExpressionSizeBytes


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
