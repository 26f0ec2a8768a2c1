"""Checks of ``x-kubernetes-validations`` rules in a CRD schema (shape, fieldPath, CEL).

Called by :func:`corral.api.structural_check.check_schema` for every schema node that
carries rules: the shape checks of ``ValidateCustomResourceDefinitionOpenAPISchema``
(empty rule, messages, reason, fieldPath) and, when the rest of the schema is valid,
compilation through :mod:`corral.api.cel` and the oldSelf placement rules.
"""

from __future__ import annotations

import re
from typing import Any

from corral.api import cel
from corral.api.errors import FieldError, GoValue, invalid, not_supported, required

_REASONS = ["FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"]


def _rule_repr(rule: dict[str, Any]) -> GoValue:
    def q(v: Any) -> str:
        return '"' + str(v or "").replace("\\", "\\\\").replace('"', '\\"') + '"'

    reason = rule.get("reason")
    reason_s = (
        f"(*apiextensions.FieldValueErrorReason)({q(reason)})"
        if reason
        else "(*apiextensions.FieldValueErrorReason)(nil)"
    )
    old = rule.get("optionalOldSelf")
    old_s = "(*bool)(nil)" if old is None else f"(*bool)({'true' if old else 'false'})"
    return GoValue(
        f"apiextensions.ValidationRule{{Rule:{q(rule.get('rule'))}, Message:{q(rule.get('message'))}, "
        f"MessageExpression:{q(rule.get('messageExpression'))}, Reason:{reason_s}, "
        f"FieldPath:{q(rule.get('fieldPath'))}, OptionalOldSelf:{old_s}}}"
    )


def rule_shape_errors(s: dict[str, Any], rules: list[Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, rule in enumerate(rules):
        rp = f"{path}.x-kubernetes-validations[{i}]"
        if not isinstance(rule, dict):
            errs.append(invalid(rp, "", "must be an object"))
            continue
        r = str(rule.get("rule") or "")
        msg = str(rule.get("message") or "")
        mexpr = str(rule.get("messageExpression") or "")
        if not r.strip():
            errs.append(required(f"{rp}.rule", "rule is not specified"))
        elif msg and not msg.strip():
            errs.append(invalid(f"{rp}.message", msg, "message must be non-empty if specified"))
        elif re.search(r"[\n\r]", msg.strip()):
            errs.append(invalid(f"{rp}.message", msg, "message must not contain line breaks"))
        elif re.search(r"[\n\r]", r.strip()) and not msg.strip():
            errs.append(
                required(f"{rp}.message", "message must be specified if rule contains line breaks")
            )
        if mexpr and not mexpr.strip():
            errs.append(
                required(
                    f"{rp}.messageExpression", "messageExpression must be non-empty if specified"
                )
            )
        reason = rule.get("reason")
        if reason is not None and reason not in _REASONS:
            errs.append(not_supported(f"{rp}.reason", reason, _REASONS))
        fp = rule.get("fieldPath")
        if fp:
            if not str(fp).strip():
                errs.append(
                    invalid(f"{rp}.fieldPath", fp, "fieldPath must be non-empty if specified")
                )
            if re.search(r"[\n\r]", str(fp)):
                errs.append(
                    invalid(f"{rp}.fieldPath", fp, "fieldPath must not contain line breaks")
                )
            if not _field_path_valid(s, str(fp)):
                errs.append(invalid(f"{rp}.fieldPath", fp, "fieldPath must be a valid path"))
    return errs


def _field_path_valid(s: dict[str, Any], fp: str) -> bool:
    """cel.ValidFieldPath: ``.a.b`` / ``['a.b']`` steps naming properties (or map keys)."""
    if not fp.startswith((".", "[")):
        return False
    pos = 0
    cur: dict[str, Any] | None = s
    pattern = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\['((?:[^'\\]|\\.)*)'\]")
    while pos < len(fp):
        m = pattern.match(fp, pos)
        if m is None or cur is None:
            return False
        name = m.group(1) if m.group(1) is not None else m.group(2).replace("\\'", "'")
        props = cur.get("properties") or {}
        addl = cur.get("additionalProperties")
        if name in props:
            cur = props[name]
        elif isinstance(addl, dict):
            cur = addl
        else:
            return False
        pos = m.end()
    return True


def compile_rules(
    rules: list[dict[str, Any]],
    path: str,
    forbid_old_self: str | None,
    schema: dict[str, Any] | None = None,
    root: bool = False,
) -> list[FieldError]:
    """Compile each rule of the schema node ``schema`` (``root``: the resource root)."""
    errs: list[FieldError] = []
    for i, rule in enumerate(rules):
        rp = f"{path}.x-kubernetes-validations[{i}]"
        src = str(rule.get("rule", ""))
        try:
            compiled = cel.compile_rule(src)
        except cel.CELCompileError as e:
            errs.append(invalid(f"{rp}.rule", _rule_repr(rule), f"compilation failed: {e}"))
            continue
        undefined = undefined_field(src, schema, root) if schema is not None else None
        if undefined is not None:
            errs.append(invalid(f"{rp}.rule", _rule_repr(rule), f"compilation failed: {undefined}"))
            continue
        mexpr = rule.get("messageExpression")
        if mexpr and str(mexpr).strip():
            try:
                cel.compile_rule(str(mexpr))
            except cel.CELCompileError as e:
                errs.append(
                    invalid(
                        f"{rp}.messageExpression",
                        _rule_repr(rule),
                        f"messageExpression compilation failed: {e}",
                    )
                )
        if compiled.uses_old_self:
            if forbid_old_self is not None:
                errs.append(
                    invalid(
                        f"{rp}.rule",
                        rule.get("rule"),
                        f"oldSelf cannot be used on the uncorrelatable portion of the schema within {forbid_old_self}",
                    )
                )
        elif rule.get("optionalOldSelf") is not None:
            errs.append(
                invalid(
                    f"{rp}.optionalOldSelf",
                    rule["optionalOldSelf"],
                    "may not be set if oldSelf is not used in rule",
                )
            )
    return errs


# --- a light static check: fields selected from self / oldSelf must exist ------------------

_TOKEN = re.compile(
    r"(?P<str>[rRbB]{0,2}(?:'{3}.*?'{3}|\"{3}.*?\"{3}|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"))"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<dot>\.)|(?P<ws>\s+)|(?P<other>.)",
    re.S,
)
_ROOT_META = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}}
_UNDEFINED: dict[str, Any] = {"x-undefined": True}


def undefined_field(src: str, schema: dict[str, Any], root: bool) -> str | None:
    """cel-go's "undefined field" for ``self.a.b`` chains the schema does not declare.

    Without a type checker this follows only plain selections rooted at ``self`` or
    ``oldSelf`` (not macro variables), stopping at anything dynamic (preserve-unknown
    fields, int-or-string, maps, method calls, indexing).
    """
    tokens = [(m.lastgroup or "", m.group(), m.start()) for m in _TOKEN.finditer(src)]
    tokens = [t for t in tokens if t[0] != "ws"]
    for i, (kind, text, _pos) in enumerate(tokens):
        if kind != "ident" or text not in ("self", "oldSelf"):
            continue
        if i > 0 and tokens[i - 1][0] == "dot":
            continue
        cur: dict[str, Any] | None = schema
        at_root = root
        j = i + 1
        while cur is not None and j + 1 < len(tokens) and tokens[j][0] == "dot":
            name_kind, name, _ = tokens[j + 1]
            if name_kind != "ident" or (j + 2 < len(tokens) and tokens[j + 2][1] == "("):
                break
            cur = _select(cur, name, at_root)
            if cur is _UNDEFINED:
                return _undefined_message(src, tokens[j][2], name)
            at_root = False
            j += 2
    return None


def _select(s: dict[str, Any], name: str, root: bool) -> dict[str, Any] | None:
    """The schema of field ``name`` (an escaped CEL identifier), None when dynamic."""
    if s.get("x-kubernetes-preserve-unknown-fields") or s.get("x-kubernetes-int-or-string"):
        return None
    if s.get("type") != "object":
        return None
    props: dict[str, Any] = dict(s.get("properties") or {})
    if root:
        props.update(_ROOT_META)
        meta = dict(props.get("metadata") or {"type": "object"})
        meta["properties"] = {"name": {"type": "string"}, "generateName": {"type": "string"}}
        props["metadata"] = meta
    for prop, sub in props.items():
        if cel.escape(prop) == name:
            return sub if isinstance(sub, dict) else None
    if s.get("additionalProperties") is not None or not props:
        return None  # a map, or an object with no declared fields: dynamic here
    return _UNDEFINED


def _undefined_message(src: str, pos: int, name: str) -> str:
    line = src.count("\n", 0, pos) + 1
    start = src.rfind("\n", 0, pos) + 1
    end = src.find("\n", pos)
    text = src[start : end if end >= 0 else len(src)]
    col = pos - start
    return f"ERROR: <input>:{line}:{col + 1}: undefined field '{name}'\n | {text}\n | {'.' * col}^"
