"""Checks of a CRD version's ``openAPIV3Schema``, worded as apiextensions-apiserver's.

Called through :func:`corral.api.structural.check_schema` by the CRD strategy's
validation (create and update of a CustomResourceDefinition). It runs, on the raw
schema dict, the same families of checks as upstream and in the same order:

1. the structural-schema invariants (``pkg/apiserver/schema/validation.go``): types
   specified, ``metadata`` only restricting name/generateName, no types, defaults,
   descriptions or x-kubernetes extensions inside allOf/anyOf/oneOf/not, everything
   named in value validations also specified structurally;
2. when the schema is structural, the defaults (each must validate against its own
   schema and be unchanged by pruning);
3. the OpenAPI checks of ``ValidateCustomResourceDefinitionOpenAPISchema``: unsupported
   keywords ($ref, definitions, patternProperties...), list/map type combinations, CEL
   rules (compile, fieldPath, reason, oldSelf where values cannot be correlated).

Field paths are built as Kubernetes' ``field.Path`` prints them:
``spec.versions[0].schema.openAPIV3Schema.properties[spec].type``.
"""

from __future__ import annotations

import copy
from typing import Any

from corral.api.errors import (
    FieldError,
    GoValue,
    forbidden,
    invalid,
    not_supported,
    required,
)
from corral.api.structural_cel import validate_cel
from corral.api.structural_rules import compile_rules, rule_shape_errors
from corral.api.structural_shape import key, structural_errors
from corral.api.structural_validate import (
    bad_value,
    validate_value,
)

_TYPES = ["array", "boolean", "integer", "number", "object", "string"]
_META = ("metadata", "kind", "apiVersion")
_ROOT_ALLOWED_WITH_STATUS = {
    "description",
    "type",
    "format",
    "title",
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
    "required",
    "items",
    "properties",
    "externalDocs",
    "example",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
}
_ROOT_ALLOWED_GO = (
    "[Description Type Format Title Maximum ExclusiveMaximum Minimum ExclusiveMinimum "
    "MaxLength MinLength Pattern MaxItems MinItems UniqueItems MultipleOf Required Items "
    "Properties ExternalDocs Example XPreserveUnknownFields XValidations]"
)


def check_schema(
    schema: dict[str, Any], path: str, status_enabled: bool = False
) -> list[FieldError]:
    """All errors of ``schema`` (a version's openAPIV3Schema) found at ``path``.

    ``path`` names the schema itself (``spec.versions[0].schema.openAPIV3Schema``).
    ``status_enabled`` adds upstream's restriction of the root to a few keywords when
    the status subresource is on. An empty list means the schema is accepted.
    """
    errs: list[FieldError] = []
    if not isinstance(schema, dict):
        return [invalid(path, "", "must be an object")]
    if status_enabled:
        errs.extend(_check_root_with_status(schema, path))
    if schema.get("nullable"):
        errs.append(forbidden(f"{path}.nullable", "nullable cannot be true at the root"))
    structural = structural_errors(schema, path)
    if structural:
        errs.extend(structural)
        cel_ok = False
    else:
        defaults = _default_errors(schema, path)
        errs.extend(defaults)
        cel_ok = not defaults
    schema_errs, cel_errs = _openapi_errors(schema, path, _Ctx(root=True), cel_ok)
    errs.extend(schema_errs)
    errs.extend(cel_errs)
    return errs


def _check_root_with_status(schema: dict[str, Any], path: str) -> list[FieldError]:
    for k, v in schema.items():
        if v in (None, "", [], {}, False, 0):
            continue
        if k == "type":
            if v != "object":
                return [
                    invalid(
                        f"{path}.type",
                        v,
                        'only "object" is allowed as the type at the root of the schema if the status subresource is enabled',
                    )
                ]
            continue
        if k not in _ROOT_ALLOWED_WITH_STATUS:
            return [
                invalid(
                    path,
                    GoValue("apiextensions.JSONSchemaProps{...}"),
                    f"only {_ROOT_ALLOWED_GO} fields are allowed at the root of the schema if the status subresource is enabled",
                )
            ]
    return []


# --- 2. defaults ---------------------------------------------------------------------------


def _default_errors(schema: dict[str, Any], path: str) -> list[FieldError]:
    root = dict(schema)
    root["x-kubernetes-embedded-resource"] = True
    return _defaults(root, path, inside_meta=False)


def _defaults(s: dict[str, Any], path: str, inside_meta: bool) -> list[FieldError]:
    from corral.api.structural import prune_value  # the pruning algorithm lives there

    errs: list[FieldError] = []
    if s.get("x-kubernetes-embedded-resource"):
        inside_meta = False
    if "default" in s and s["default"] is not None:
        dflt = s["default"]
        dpath = f"{path}.default"
        if not inside_meta and isinstance(dflt, dict | list):
            pruned = copy.deepcopy(dflt)
            prune_value(pruned, s)
            if pruned != dflt:
                errs.append(invalid(dpath, bad_value(dflt), "must not have unknown fields"))
        if not errs:
            verrs = validate_value(s, dflt, "")
            errs.extend(_rebase(e, dpath) for e in verrs)
            if not verrs:
                errs.extend(_rebase(e, dpath) for e in validate_cel(s, dflt, dflt, "", True))
    if isinstance(s.get("items"), dict):
        errs.extend(_defaults(s["items"], f"{path}.items", inside_meta))
    emb = s.get("x-kubernetes-embedded-resource")
    for k, sub in (s.get("properties") or {}).items():
        if isinstance(sub, dict):
            meta = inside_meta or bool(emb and k in _META)
            errs.extend(_defaults(sub, key(f"{path}.properties", k), meta))
    return errs


def _rebase(e: FieldError, prefix: str) -> FieldError:
    field = e.field
    return FieldError(e.type, f"{prefix}.{field}" if field else prefix, e.value, e.detail)


# --- 3. OpenAPI checks -----------------------------------------------------------------------


class _Ctx:
    __slots__ = ("defaults_reason", "forbid_old_self", "inside_meta", "root")

    def __init__(
        self,
        root: bool = False,
        inside_meta: bool = False,
        defaults_reason: str | None = None,
        forbid_old_self: str | None = None,
    ) -> None:
        self.root = root
        self.inside_meta = inside_meta
        self.defaults_reason = defaults_reason
        self.forbid_old_self = forbid_old_self

    def child(self, **kw: Any) -> _Ctx:
        c = _Ctx(False, self.inside_meta, self.defaults_reason, self.forbid_old_self)
        for k, v in kw.items():
            setattr(c, k, v)
        return c


def _standard(s: dict[str, Any], path: str, ctx: _Ctx) -> list[FieldError]:
    errs: list[FieldError] = []
    t = s.get("type")
    if isinstance(t, str) and t and t not in _TYPES:
        errs.append(not_supported(f"{path}.type", t, _TYPES))
    if "default" in s and ctx.defaults_reason is not None:
        errs.append(forbidden(f"{path}.default", f"must not be set {ctx.defaults_reason}"))
    if s.get("id"):
        errs.append(forbidden(f"{path}.id", "id is not supported"))
    if s.get("additionalItems") is not None:
        errs.append(forbidden(f"{path}.additionalItems", "additionalItems is not supported"))
    if s.get("patternProperties"):
        errs.append(forbidden(f"{path}.patternProperties", "patternProperties is not supported"))
    if s.get("definitions"):
        errs.append(forbidden(f"{path}.definitions", "definitions is not supported"))
    if s.get("dependencies") is not None:
        errs.append(forbidden(f"{path}.dependencies", "dependencies is not supported"))
    if "$ref" in s:
        errs.append(forbidden(f"{path}.$ref", "$ref is not supported"))
    if t == "null":
        errs.append(
            forbidden(f"{path}.type", "type cannot be set to null, use nullable as an alternative")
        )
    if isinstance(s.get("items"), list) and s["items"]:
        errs.append(forbidden(f"{path}.items", "items must be a schema object and not an array"))
    if ctx.inside_meta and s.get("x-kubernetes-embedded-resource"):
        errs.append(
            forbidden(
                f"{path}.x-kubernetes-embedded-resource", "must not be used inside of resource meta"
            )
        )
    return errs


def _openapi_errors(
    s: Any, path: str, ctx: _Ctx, cel_ok: bool
) -> tuple[list[FieldError], list[FieldError]]:
    errs: list[FieldError] = []
    cel_errs: list[FieldError] = []
    if not isinstance(s, dict):
        return errs, cel_errs

    def sub(child: Any, cpath: str, cctx: _Ctx, with_cel: bool = True) -> None:
        e, c = _openapi_errors(child, cpath, cctx, cel_ok and with_cel)
        errs.extend(e)
        cel_errs.extend(c)

    errs.extend(_standard(s, path, ctx))
    if s.get("uniqueItems"):
        errs.append(
            forbidden(
                f"{path}.uniqueItems",
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            )
        )
    addl = s.get("additionalProperties")
    props = s.get("properties") or {}
    if addl is not None:
        if props and (addl is False or isinstance(addl, dict)):
            errs.append(
                forbidden(
                    f"{path}.additionalProperties",
                    "additionalProperties and properties are mutual exclusive",
                )
            )
        actx = ctx.child()
        if ctx.inside_meta:
            actx.defaults_reason = "inside additionalProperties applying to object metadata"
        sub(addl, f"{path}.additionalProperties", actx)
    for name, p in props.items():
        pctx = ctx.child()
        if s.get("x-kubernetes-map-type") == "atomic":
            pctx.forbid_old_self = pctx.forbid_old_self or path
        if (ctx.root or s.get("x-kubernetes-embedded-resource")) and name in _META:
            pctx.inside_meta = True
            if ctx.root:
                pctx.defaults_reason = f"in top-level {name}"
        sub(p, key(f"{path}.properties", name), pctx)
    sub(s.get("not"), f"{path}.not", ctx.child(), False)
    for comb in ("allOf", "oneOf", "anyOf"):
        for i, c in enumerate(s.get(comb) or ()):
            sub(c, f"{path}.{comb}[{i}]", ctx.child(), False)
    for name, d in (s.get("definitions") or {}).items():
        sub(d, key(f"{path}.definitions", name), ctx.child(), False)
    items = s.get("items")
    if items is not None:
        ictx = ctx.child()
        if s.get("x-kubernetes-list-type") != "map":
            ictx.forbid_old_self = ictx.forbid_old_self or path
        if isinstance(items, dict):
            sub(items, f"{path}.items", ictx)
        elif isinstance(items, list):
            for i, it in enumerate(items):
                sub(it, f"{path}.items[{i}]", ictx)
    errs.extend(_extension_errors(s, path))
    rules = s.get("x-kubernetes-validations") or []
    if rules:
        rule_errs = rule_shape_errors(s, rules, path)
        errs.extend(rule_errs)
        if not errs and cel_ok:
            cel_errs.extend(compile_rules(rules, path, ctx.forbid_old_self, s, ctx.root))
    return errs, cel_errs


def _type_for(path: str, typ: str, want: str, extension: str) -> FieldError:
    """``type`` missing (Required) or other than ``want`` (Invalid) where ``extension``
    asks for it."""
    message = f"must be {want} if {extension} is specified"
    return required(f"{path}.type", message) if not typ else invalid(f"{path}.type", typ, message)


def _extension_errors(s: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    typ = s.get("type") or ""
    if s.get("x-kubernetes-preserve-unknown-fields") is False:
        errs.append(
            invalid(
                f"{path}.x-kubernetes-preserve-unknown-fields", False, "must be true or undefined"
            )
        )
    map_type = s.get("x-kubernetes-map-type")
    if map_type is not None and typ != "object":
        errs.append(_type_for(path, typ, "object", "x-kubernetes-map-type"))
    if map_type is not None and map_type not in ("atomic", "granular"):
        errs.append(
            not_supported(f"{path}.x-kubernetes-map-type", map_type, ["atomic", "granular"])
        )
    list_type = s.get("x-kubernetes-list-type")
    items = s.get("items")
    if list_type is not None and typ != "array":
        errs.append(_type_for(path, typ, "array", "x-kubernetes-list-type"))
    elif list_type == "set" and isinstance(items, dict):
        if items.get("type") == "array" and items.get("x-kubernetes-list-type") not in (
            None,
            "atomic",
        ):
            errs.append(
                invalid(
                    f"{path}.items.x-kubernetes-list-type",
                    items.get("x-kubernetes-list-type"),
                    "must be atomic as item of a list with x-kubernetes-list-type=set",
                )
            )
        if items.get("type") == "object" and items.get("x-kubernetes-map-type") != "atomic":
            errs.append(
                invalid(
                    f"{path}.items.x-kubernetes-map-type",
                    GoValue("(*string)(nil)")
                    if items.get("x-kubernetes-list-type") is None
                    else items.get("x-kubernetes-list-type"),
                    "must be atomic as item of a list with x-kubernetes-list-type=set",
                )
            )
    if list_type is not None and list_type not in ("atomic", "set", "map"):
        errs.append(
            not_supported(f"{path}.x-kubernetes-list-type", list_type, ["atomic", "set", "map"])
        )
    keys = s.get("x-kubernetes-list-map-keys") or []
    if keys:
        if list_type is None:
            errs.append(
                required(
                    f"{path}.x-kubernetes-list-type",
                    "must be map if x-kubernetes-list-map-keys is non-empty",
                )
            )
        elif list_type != "map":
            errs.append(
                invalid(
                    f"{path}.x-kubernetes-list-type",
                    list_type,
                    "must be map if x-kubernetes-list-map-keys is non-empty",
                )
            )
    if list_type == "map":
        if not keys:
            errs.append(
                required(
                    f"{path}.x-kubernetes-list-map-keys",
                    "must not be empty if x-kubernetes-list-type is map",
                )
            )
        if items is None:
            errs.append(
                required(f"{path}.items", "must have a schema if x-kubernetes-list-type is map")
            )
        elif not isinstance(items, dict):
            errs.append(
                invalid(
                    f"{path}.items",
                    "",
                    "must only have a single schema if x-kubernetes-list-type is map",
                )
            )
        elif items.get("type") != "object":
            errs.append(
                invalid(
                    f"{path}.items.type",
                    items.get("type", ""),
                    "must be object if parent array's x-kubernetes-list-type is map",
                )
            )
        else:
            iprops = items.get("properties") or {}
            seen: set[str] = set()
            keys_value = GoValue("[]string{" + ", ".join(f'"{k}"' for k in keys) + "}")
            for k in keys:
                if k in iprops:
                    if (iprops[k] or {}).get("type") in ("array", "object"):
                        errs.append(
                            invalid(
                                f"{key(f'{path}.items.properties', k)}.type",
                                "object",
                                "must be a scalar type if parent array's x-kubernetes-list-type is map",
                            )
                        )
                else:
                    errs.append(
                        invalid(
                            f"{path}.x-kubernetes-list-map-keys",
                            keys_value,
                            "entries must all be names of item properties",
                        )
                    )
                if k in seen:
                    errs.append(
                        invalid(
                            f"{path}.x-kubernetes-list-map-keys",
                            keys_value,
                            "must not contain duplicate entries",
                        )
                    )
                seen.add(k)
    if list_type in ("set", "map") and isinstance(items, dict):
        errs.extend(_map_set_keys(items, list_type, keys, path))
    return errs


def _map_set_keys(
    items: dict[str, Any], list_type: str, keys: list[str], path: str
) -> list[FieldError]:
    """validateMapListKeysMapSet: no nullable items; map keys required or defaulted."""
    errs: list[FieldError] = []
    if items.get("nullable"):
        errs.append(
            forbidden(
                f"{path}.items.nullable",
                f"cannot be nullable when x-kubernetes-list-type is {list_type}",
            )
        )
    if list_type != "map":
        return errs
    req = set(items.get("required") or ())
    iprops = items.get("properties") or {}
    for k in keys:
        p = iprops.get(k)
        if not isinstance(p, dict):
            continue
        kpath = key(f"{path}.items.properties", k)
        if k not in req and p.get("default") is None:
            errs.append(
                required(
                    f"{kpath}.default",
                    "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                )
            )
        if p.get("nullable"):
            errs.append(
                forbidden(
                    f"{kpath}.nullable",
                    "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                )
            )
    return errs
