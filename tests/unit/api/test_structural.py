"""Tests for corral.api.structural: CRD schema checks, pruning, defaulting, validation.

Expected messages are apiextensions-apiserver's and kube-openapi's (v1.32 sources):
``kubeOpenAPIResultToFieldErrors`` wording for keyword errors, ``ValidateStructural`` and
``ValidateCustomResourceDefinitionOpenAPISchema`` for schema checks.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from corral.api.schema import SchemaNode
from corral.api.structural import StructuralSchema, check_schema, published_schema

P = "spec.versions[0].schema.openAPIV3Schema"


def obj_schema(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


SPEC = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                "color": {"type": "string", "enum": ["red", "blue"]},
                "size": {"type": "integer", "maximum": 10},
                "name": {"type": "string", "maxLength": 5, "minLength": 2, "pattern": "^[a-z]+$"},
                "ratio": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
                "step": {"type": "integer", "multipleOf": 5},
                "port": {"x-kubernetes-int-or-string": True},
                "tags": {
                    "type": "array",
                    "items": {"type": "string"},
                    "maxItems": 2,
                    "minItems": 1,
                },
                "labels": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "maxProperties": 1,
                    "minProperties": 1,
                },
                "opt": {"type": "string", "nullable": True},
                "when": {"type": "string", "format": "date-time"},
                "ip": {"type": "string", "format": "ipv4"},
                "id": {"type": "string", "format": "uuid"},
                "host": {"type": "string", "format": "hostname"},
                "count32": {"type": "integer", "format": "int32"},
                "flag": {"type": "boolean"},
                "set": {
                    "type": "array",
                    "x-kubernetes-list-type": "set",
                    "items": {"type": "string"},
                },
                "ports": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                    },
                },
                "choice": {"type": "string", "anyOf": [{"enum": ["a"]}, {"enum": ["b"]}]},
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}
SS = StructuralSchema(SPEC)


def test_spec_schema_is_accepted() -> None:
    assert check_schema(SPEC, P) == []


# --- validate: keyword errors ---------------------------------------------------------

VALIDATE_CASES = [
    ("ok", {"size": 3}, []),
    (
        "type-integer",
        {"size": 3, "replicas": "string"},
        [
            'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"'
        ],
    ),
    ("type-number-accepts-int", {"size": 3, "ratio": 2}, []),
    ("type-integer-accepts-integral-float", {"size": 3.0}, []),
    (
        "type-integer-float",
        {"size": 3.5},
        ['spec.size: Invalid value: "number": spec.size in body must be of type integer: "number"'],
    ),
    (
        "type-null-and-enum",
        {"size": 3, "color": None},
        [
            'spec.color: Invalid value: "null": spec.color in body must be of type string: "null"',
            'spec.color: Unsupported value: null: supported values: "red", "blue"',
        ],
    ),
    (
        "type-null",
        {"size": 3, "name": None},
        ['spec.name: Invalid value: "null": spec.name in body must be of type string: "null"'],
    ),
    ("nullable", {"size": 3, "opt": None}, []),
    (
        "bool",
        {"size": 3, "flag": "yes"},
        ['spec.flag: Invalid value: "string": spec.flag in body must be of type boolean: "string"'],
    ),
    (
        "enum",
        {"size": 3, "color": "pink"},
        ['spec.color: Unsupported value: "pink": supported values: "red", "blue"'],
    ),
    (
        "maximum",
        {"size": 11},
        ["spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10"],
    ),
    (
        "minimum",
        {"size": 3, "replicas": 0},
        [
            "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"
        ],
    ),
    (
        "exclusive-minimum",
        {"size": 3, "ratio": 0},
        ["spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0"],
    ),
    (
        "multiple-of",
        {"size": 3, "step": 7},
        ["spec.step: Invalid value: 7: spec.step in body should be a multiple of 5"],
    ),
    (
        "max-length",
        {"size": 3, "name": "abcdefg"},
        ["spec.name: Too long: may not be more than 5 bytes"],
    ),
    (
        "min-length",
        {"size": 3, "name": "a"},
        ['spec.name: Invalid value: "a": spec.name in body should be at least 2 chars long'],
    ),
    (
        "pattern",
        {"size": 3, "name": "AB"},
        ["spec.name: Invalid value: \"AB\": spec.name in body should match '^[a-z]+$'"],
    ),
    (
        "max-items",
        {"size": 3, "tags": ["a", "b", "c"]},
        ["spec.tags: Too many: 3: must have at most 2 items"],
    ),
    (
        "min-items",
        {"size": 3, "tags": []},
        ["spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items"],
    ),
    (
        "items-type",
        {"size": 3, "tags": ["a", 1]},
        [
            'spec.tags[1]: Invalid value: "integer": spec.tags[1] in body must be of type string: "integer"'
        ],
    ),
    (
        "max-properties",
        {"size": 3, "labels": {"a": "1", "b": "2"}},
        ["spec.labels: Too many: 2: must have at most 1 items"],
    ),
    (
        "min-properties",
        {"size": 3, "labels": {}},
        ["spec.labels: Invalid value: 0: spec.labels in body should have at least 1 properties"],
    ),
    (
        "additional-properties",
        {"size": 3, "labels": {"a": 1}},
        [
            'spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer"'
        ],
    ),
    ("required", {}, ["spec.size: Required value"]),
    ("int-or-string-int", {"size": 3, "port": 80}, []),
    ("int-or-string-str", {"size": 3, "port": "http"}, []),
    (
        "int-or-string-bad",
        {"size": 3, "port": True},
        [
            'spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"'
        ],
    ),
    (
        "format-date-time",
        {"size": 3, "when": "yesterday"},
        [
            'spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday"'
        ],
    ),
    ("format-date-time-ok", {"size": 3, "when": "2024-01-02T03:04:05Z"}, []),
    (
        "format-ipv4",
        {"size": 3, "ip": "1.2.3"},
        ['spec.ip: Invalid value: "1.2.3": spec.ip in body must be of type ipv4: "1.2.3"'],
    ),
    ("format-uuid-ok", {"size": 3, "id": "123e4567-e89b-12d3-a456-426614174000"}, []),
    (
        "format-uuid",
        {"size": 3, "id": "nope"},
        ['spec.id: Invalid value: "nope": spec.id in body must be of type uuid: "nope"'],
    ),
    ("format-hostname-ok", {"size": 3, "host": "www.example.com"}, []),
    (
        "format-hostname",
        {"size": 3, "host": "-bad-"},
        ['spec.host: Invalid value: "-bad-": spec.host in body must be of type hostname: "-bad-"'],
    ),
    ("format-int32-not-enforced", {"size": 3, "count32": 2**40}, []),
    (
        "set-duplicate",
        {"size": 3, "set": ["a", "b", "a"]},
        ['spec.set[2]: Duplicate value: "a"'],
    ),
    (
        "map-duplicate",
        {"size": 3, "ports": [{"name": "a", "port": 1}, {"name": "a", "port": 2}]},
        ['spec.ports[1]: Duplicate value: map[string]interface {}{"name":"a"}'],
    ),
    (
        "map-items-required",
        {"size": 3, "ports": [{"port": 1}]},
        ["spec.ports[0].name: Required value"],
    ),
    (
        "any-of",
        {"size": 3, "choice": "c"},
        [
            '<nil>: Invalid value: "": "spec.choice" must validate at least one schema (anyOf)',
            'spec.choice: Unsupported value: "c": supported values: "a"',
        ],
    ),
    ("any-of-ok", {"size": 3, "choice": "b"}, []),
    ("preserve-unknown", {"size": 3}, []),
]


@pytest.mark.parametrize(
    ("spec", "want"), [c[1:] for c in VALIDATE_CASES], ids=[c[0] for c in VALIDATE_CASES]
)
def test_validate_keywords(spec: dict[str, Any], want: list[str]) -> None:
    obj = {"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"}, "spec": spec}
    assert [str(e) for e in SS.validate(obj)] == want


def test_validate_required_at_root() -> None:
    s = StructuralSchema(
        {"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object"}}}
    )
    errs = s.validate({"apiVersion": "x/v1", "kind": "K", "metadata": {}})
    assert [str(e) for e in errs] == ["spec: Required value"]
    assert errs[0].type == "FieldValueRequired"


def test_validate_type_invalid_cause_reason() -> None:
    errs = SS.validate({"spec": {"size": "x"}})
    assert errs[0].type == "FieldValueTypeInvalid"


# --- validate: CEL -----------------------------------------------------------------------

CEL_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.min <= self.max", "message": "min must not exceed max"},
                {
                    "rule": "!has(self.mode) || self.mode != 'off'",
                    "messageExpression": "'mode ' + self.mode + ' is not allowed'",
                },
                {"rule": "self.max <= 100", "fieldPath": ".max", "reason": "FieldValueForbidden"},
                {"rule": "self.min == oldSelf.min", "message": "min is immutable"},
            ],
            "properties": {
                "min": {"type": "integer"},
                "max": {"type": "integer"},
                "mode": {"type": "string"},
                "name": {
                    "type": "string",
                    "x-kubernetes-validations": [{"rule": "self.startsWith('a')"}],
                },
                "items": {
                    "type": "array",
                    "items": {"type": "string"},
                    "x-kubernetes-validations": [
                        {"rule": "self.all(x, x.size() < 4)", "message": "items too long"}
                    ],
                },
                "ratio": {"type": "number", "x-kubernetes-validations": [{"rule": "self > 0.5"}]},
                "m": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "integer",
                        "x-kubernetes-validations": [{"rule": "self >= 0"}],
                    },
                },
            },
        }
    },
}
CEL = StructuralSchema(CEL_SCHEMA)

CEL_CASES = [
    ("ok", {"min": 1, "max": 2}, None, []),
    (
        "message",
        {"min": 3, "max": 2},
        None,
        ['spec: Invalid value: "object": min must not exceed max'],
    ),
    (
        "message-expression",
        {"min": 1, "max": 2, "mode": "off"},
        None,
        ['spec: Invalid value: "object": mode off is not allowed'],
    ),
    (
        "field-path-reason",
        {"min": 1, "max": 200},
        None,
        ["spec.max: Forbidden: failed rule: self.max <= 100"],
    ),
    (
        "default-message",
        {"min": 1, "max": 2, "name": "bob"},
        None,
        ["spec.name: Invalid value: \"string\": failed rule: self.startsWith('a')"],
    ),
    (
        "list-rule",
        {"min": 1, "max": 2, "items": ["abcd"]},
        None,
        ['spec.items: Invalid value: "array": items too long'],
    ),
    ("number-is-double", {"min": 1, "max": 2, "ratio": 1}, None, []),
    (
        "map-values",
        {"min": 1, "max": 2, "m": {"a": -1}},
        None,
        ['spec.m[a]: Invalid value: "integer": failed rule: self >= 0'],
    ),
    (
        "no-such-key",
        {"max": 2},
        None,
        [
            'spec: Invalid value: "object": no such key: min evaluating rule: min must not exceed max'
        ],
    ),
    ("transition-skipped-on-create", {"min": 1, "max": 2}, None, []),
    ("transition-ok", {"min": 1, "max": 2}, {"min": 1, "max": 5}, []),
    (
        "transition-violated",
        {"min": 2, "max": 2},
        {"min": 1, "max": 5},
        ['spec: Invalid value: "object": min is immutable'],
    ),
]


@pytest.mark.parametrize(
    ("spec", "old", "want"), [c[1:] for c in CEL_CASES], ids=[c[0] for c in CEL_CASES]
)
def test_validate_cel(spec: dict[str, Any], old: dict[str, Any] | None, want: list[str]) -> None:
    old_obj = {"spec": old} if old is not None else None
    assert [str(e) for e in CEL.validate({"spec": spec}, old_obj)] == want


def test_cel_schema_is_accepted() -> None:
    assert check_schema(CEL_SCHEMA, P) == []


# --- prune ---------------------------------------------------------------------------------

PRUNE_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "a": {"type": "string"},
                "list": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"x": {"type": "integer"}}},
                },
                "free": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {
                        "known": {"type": "object", "properties": {"k": {"type": "string"}}}
                    },
                },
                "map": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"v": {"type": "string"}},
                    },
                },
                "pod": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {"spec": {"type": "object"}},
                },
                "n": {"type": "string"},
                "nn": {"type": "string", "nullable": True},
            },
        }
    },
}
PRUNE_CASES = [
    ("unknown-top", {"spec": {"a": "x"}, "extra": 1}, {"spec": {"a": "x"}}, ["extra"]),
    ("unknown-nested", {"spec": {"a": "x", "b": 1}}, {"spec": {"a": "x"}}, ["spec.b"]),
    (
        "in-list",
        {"spec": {"list": [{"x": 1, "y": 2}]}},
        {"spec": {"list": [{"x": 1}]}},
        ["spec.list[0].y"],
    ),
    (
        "preserve",
        {"spec": {"free": {"any": {"thing": 1}, "known": {"k": "v", "z": 1}}}},
        {"spec": {"free": {"any": {"thing": 1}, "known": {"k": "v"}}}},
        ["spec.free.known.z"],
    ),
    (
        "additional-properties",
        {"spec": {"map": {"k": {"v": "1", "w": "2"}}}},
        {"spec": {"map": {"k": {"v": "1"}}}},
        ["spec.map.k.w"],
    ),
    (
        "embedded-keeps-meta",
        {
            "spec": {
                "pod": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "p"},
                    "spec": {},
                    "junk": 1,
                }
            }
        },
        {
            "spec": {
                "pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}
            }
        },
        ["spec.pod.junk"],
    ),
    (
        "null-non-nullable-dropped",
        {"spec": {"n": None, "nn": None}},
        {"spec": {"nn": None}},
        [],
    ),
    ("sorted", {"spec": {"z": 1, "b": 2}, "y": 1}, {"spec": {}}, ["spec.b", "spec.z", "y"]),
]


@pytest.mark.parametrize(
    ("obj", "want", "removed"), [c[1:] for c in PRUNE_CASES], ids=[c[0] for c in PRUNE_CASES]
)
def test_prune(obj: dict[str, Any], want: dict[str, Any], removed: list[str]) -> None:
    meta = {"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a", "labels": {"x": "y"}}}
    obj = {**meta, **obj}
    got = StructuralSchema(PRUNE_SCHEMA).prune(obj)
    assert obj == {**meta, **want}
    assert got == removed


# --- default -------------------------------------------------------------------------------

DEFAULT_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "default": {},
            "properties": {
                "replicas": {"type": "integer", "default": 1},
                "mode": {"type": "string", "default": "on"},
                "opt": {"type": "string", "nullable": True, "default": "d"},
                "list": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"p": {"type": "integer", "default": 80}},
                    },
                },
                "map": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"q": {"type": "string", "default": "z"}},
                    },
                },
                "strs": {"type": "array", "items": {"type": "string", "default": "s"}},
            },
        }
    },
}
DEFAULT_CASES = [
    ("absent-spec", {}, {"spec": {"replicas": 1, "mode": "on", "opt": "d"}}),
    ("kept", {"spec": {"replicas": 3}}, {"spec": {"replicas": 3, "mode": "on", "opt": "d"}}),
    (
        "null-non-nullable",
        {"spec": {"mode": None}},
        {"spec": {"replicas": 1, "mode": "on", "opt": "d"}},
    ),
    (
        "null-nullable-kept",
        {"spec": {"opt": None}},
        {"spec": {"replicas": 1, "mode": "on", "opt": None}},
    ),
    (
        "in-items",
        {"spec": {"list": [{}, {"p": 1}]}},
        {"spec": {"replicas": 1, "mode": "on", "opt": "d", "list": [{"p": 80}, {"p": 1}]}},
    ),
    (
        "in-map",
        {"spec": {"map": {"a": {}}}},
        {"spec": {"replicas": 1, "mode": "on", "opt": "d", "map": {"a": {"q": "z"}}}},
    ),
    (
        "null-items",
        {"spec": {"strs": [None, "x"]}},
        {"spec": {"replicas": 1, "mode": "on", "opt": "d", "strs": ["s", "x"]}},
    ),
]


@pytest.mark.parametrize(
    ("obj", "want"), [c[1:] for c in DEFAULT_CASES], ids=[c[0] for c in DEFAULT_CASES]
)
def test_default(obj: dict[str, Any], want: dict[str, Any]) -> None:
    StructuralSchema(DEFAULT_SCHEMA).default(obj)
    assert obj == want


def test_default_does_not_share_default_objects() -> None:
    s = StructuralSchema(DEFAULT_SCHEMA)
    a: dict[str, Any] = {}
    s.default(a)
    a["spec"]["replicas"] = 9
    b: dict[str, Any] = {}
    s.default(b)
    assert b["spec"]["replicas"] == 1


# --- check_schema --------------------------------------------------------------------------

CHECK_CASES = [
    (
        "set-nullable-items",
        obj_schema(
            x={
                "type": "array",
                "x-kubernetes-list-type": "set",
                "items": {"type": "string", "nullable": True},
            }
        ),
        [
            f"{P}.properties[x].items.nullable: Forbidden: cannot be nullable when x-kubernetes-list-type is set"
        ],
    ),
    (
        "map-key-nullable",
        obj_schema(
            x={
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["n"],
                "items": {
                    "type": "object",
                    "required": ["n"],
                    "properties": {"n": {"type": "string", "nullable": True}},
                },
            }
        ),
        [
            f"{P}.properties[x].items.properties[n].nullable: Forbidden: this property is in x-kubernetes-list-map-keys, so it cannot be nullable"
        ],
    ),
    (
        "map-key-defaulted",
        obj_schema(
            x={
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["n"],
                "items": {
                    "type": "object",
                    "properties": {"n": {"type": "string", "default": "a"}},
                },
            }
        ),
        [],
    ),
    (
        "cel-undefined-field",
        obj_schema(
            x={
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "x-kubernetes-validations": [{"rule": "self.b == 'x'"}],
            }
        ),
        "compilation failed: ERROR: <input>:1:5: undefined field 'b'",
    ),
    (
        "cel-root-metadata-labels",
        {"type": "object", "x-kubernetes-validations": [{"rule": "has(self.metadata.labels)"}]},
        "undefined field 'labels'",
    ),
    ("minimal", {"type": "object"}, []),
    (
        "root-type-missing",
        {"properties": {"spec": {"type": "object"}}},
        [f"{P}.type: Required value: must not be empty at the root"],
    ),
    (
        "root-not-object",
        {"type": "string"},
        [f'{P}.type: Invalid value: "string": must be object at the root'],
    ),
    (
        "field-type-missing",
        obj_schema(spec={"properties": {}}),
        [
            f"{P}.properties[spec].type: Required value: must not be empty for specified object fields"
        ],
    ),
    (
        "items-type-missing",
        obj_schema(l={"type": "array", "items": {}}),
        [
            f"{P}.properties[l].items.type: Required value: must not be empty for specified array items"
        ],
    ),
    (
        "items-missing",
        obj_schema(l={"type": "array"}),
        [f"{P}.properties[l].items: Required value: must be specified"],
    ),
    (
        "preserve-without-type",
        obj_schema(x={"x-kubernetes-preserve-unknown-fields": True}),
        [],
    ),
    ("int-or-string", obj_schema(x={"x-kubernetes-int-or-string": True}), []),
    (
        "int-or-string-anyof",
        obj_schema(
            x={
                "x-kubernetes-int-or-string": True,
                "anyOf": [{"type": "integer"}, {"type": "string"}],
            }
        ),
        [],
    ),
    (
        "type-in-anyof",
        obj_schema(x={"type": "string", "anyOf": [{"type": "string"}]}),
        [f"{P}.properties[x].anyOf[0].type: Forbidden: must be empty to be structural"],
    ),
    (
        "completeness",
        obj_schema(x={"type": "object", "anyOf": [{"properties": {"a": {}}}]}),
        [
            f"{P}.properties[x].properties[a]: Required value: because it is defined in {P}.properties[x].anyOf[0].properties[a]"
        ],
    ),
    (
        "additional-and-properties",
        obj_schema(
            x={
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "additionalProperties": {"type": "string"},
            }
        ),
        [
            f"{P}.properties[x].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
        ],
    ),
    (
        "additional-at-root",
        {"type": "object", "additionalProperties": {"type": "string"}},
        [f"{P}.additionalProperties: Forbidden: must not be used at the root"],
    ),
    (
        "metadata-name-ok",
        obj_schema(
            metadata={"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}}}
        ),
        [],
    ),
    (
        "metadata-labels",
        obj_schema(metadata={"type": "object", "properties": {"labels": {"type": "object"}}}),
        [
            f"{P}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
        ],
    ),
    (
        "metadata-default",
        obj_schema(metadata={"type": "object", "default": {}}),
        [f"{P}.properties[metadata].default: Forbidden: must not be set in top-level metadata"],
    ),
    (
        "ref",
        obj_schema(x={"type": "object", "$ref": "#/foo"}),
        [f"{P}.properties[x].$ref: Forbidden: $ref is not supported"],
    ),
    (
        "pattern-properties",
        obj_schema(x={"type": "object", "patternProperties": {"a": {"type": "string"}}}),
        [f"{P}.properties[x].patternProperties: Forbidden: patternProperties is not supported"],
    ),
    (
        "definitions",
        {"type": "object", "definitions": {"a": {"type": "string"}}},
        [f"{P}.definitions: Forbidden: definitions is not supported"],
    ),
    (
        "unique-items",
        obj_schema(x={"type": "array", "items": {"type": "string"}, "uniqueItems": True}),
        [
            f"{P}.properties[x].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
        ],
    ),
    (
        "bad-type",
        obj_schema(x={"type": "str"}),
        [
            f'{P}.properties[x].type: Unsupported value: "str": supported values: "array", "boolean", "integer", "number", "object", "string"'
        ],
    ),
    (
        "null-type",
        obj_schema(x={"type": "null"}),
        [
            f'{P}.properties[x].type: Unsupported value: "null": supported values: "array", "boolean", "integer", "number", "object", "string"',
            f"{P}.properties[x].type: Forbidden: type cannot be set to null, use nullable as an alternative",
        ],
    ),
    (
        "nullable-root",
        {"type": "object", "nullable": True},
        [f"{P}.nullable: Forbidden: nullable cannot be true at the root"],
    ),
    (
        "list-type-bad",
        obj_schema(
            x={"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "bag"}
        ),
        [
            f'{P}.properties[x].x-kubernetes-list-type: Unsupported value: "bag": supported values: "atomic", "set", "map"'
        ],
    ),
    (
        "list-type-on-object",
        obj_schema(x={"type": "object", "x-kubernetes-list-type": "set"}),
        [
            f'{P}.properties[x].type: Invalid value: "object": must be array if x-kubernetes-list-type is specified'
        ],
    ),
    (
        "map-keys-missing",
        obj_schema(
            x={
                "type": "array",
                "x-kubernetes-list-type": "map",
                "items": {"type": "object", "properties": {"n": {"type": "string"}}},
            }
        ),
        [
            f"{P}.properties[x].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map"
        ],
    ),
    (
        "map-keys-unknown",
        obj_schema(
            x={
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["k"],
                "items": {"type": "object", "properties": {"n": {"type": "string"}}},
            }
        ),
        [
            f'{P}.properties[x].x-kubernetes-list-map-keys: Invalid value: []string{{"k"}}: entries must all be names of item properties'
        ],
    ),
    (
        "map-keys-not-required",
        obj_schema(
            x={
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["n"],
                "items": {"type": "object", "properties": {"n": {"type": "string"}}},
            }
        ),
        [
            f"{P}.properties[x].items.properties[n].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"
        ],
    ),
    (
        "map-keys-scalar",
        obj_schema(
            x={
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["n"],
                "items": {
                    "type": "object",
                    "required": ["n"],
                    "properties": {"n": {"type": "object"}},
                },
            }
        ),
        [
            f'{P}.properties[x].items.properties[n].type: Invalid value: "object": must be a scalar type if parent array\'s x-kubernetes-list-type is map'
        ],
    ),
    (
        "map-items-not-object",
        obj_schema(
            x={
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["n"],
                "items": {"type": "string"},
            }
        ),
        [
            f'{P}.properties[x].items.type: Invalid value: "string": must be object if parent array\'s x-kubernetes-list-type is map'
        ],
    ),
    (
        "map-type-bad",
        obj_schema(x={"type": "object", "x-kubernetes-map-type": "loose"}),
        [
            f'{P}.properties[x].x-kubernetes-map-type: Unsupported value: "loose": supported values: "atomic", "granular"'
        ],
    ),
    (
        "preserve-false",
        obj_schema(x={"type": "object", "x-kubernetes-preserve-unknown-fields": False}),
        [
            f"{P}.properties[x].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined"
        ],
    ),
    (
        "embedded-needs-object",
        obj_schema(
            x={"x-kubernetes-embedded-resource": True, "x-kubernetes-preserve-unknown-fields": True}
        ),
        [
            f"{P}.properties[x].type: Required value: must be object if x-kubernetes-embedded-resource is true"
        ],
    ),
    (
        "default-wrong-type",
        obj_schema(x={"type": "integer", "default": "a"}),
        [
            f'{P}.properties[x].default: Invalid value: "string":  in body must be of type integer: "string"'
        ],
    ),
    (
        "default-out-of-range",
        obj_schema(x={"type": "integer", "maximum": 3, "default": 5}),
        [
            f"{P}.properties[x].default: Invalid value: 5:  in body should be less than or equal to 3"
        ],
    ),
    (
        "default-unknown-fields",
        obj_schema(
            x={"type": "object", "properties": {"a": {"type": "string"}}, "default": {"b": "1"}}
        ),
        [
            f'{P}.properties[x].default: Invalid value: map[string]interface {{}}{{"b":"1"}}: must not have unknown fields'
        ],
    ),
    (
        "pattern-invalid",
        obj_schema(x={"type": "string", "pattern": "(a"}),
        [
            f'{P}.properties[x].pattern: Invalid value: "(a": must be a valid regular expression, but isn\'t: error parsing regexp: missing closing ): `(a`'
        ],
    ),
    (
        "cel-syntax",
        obj_schema(x={"type": "string", "x-kubernetes-validations": [{"rule": "self =="}]}),
        "compilation failed",
    ),
    (
        "cel-unknown-function",
        obj_schema(
            x={"type": "string", "x-kubernetes-validations": [{"rule": "self.frobnicate()"}]}
        ),
        "undeclared reference to 'frobnicate'",
    ),
    (
        "cel-empty-rule",
        obj_schema(x={"type": "string", "x-kubernetes-validations": [{"rule": " "}]}),
        [
            f"{P}.properties[x].x-kubernetes-validations[0].rule: Required value: rule is not specified"
        ],
    ),
    (
        "cel-bad-reason",
        obj_schema(
            x={"type": "string", "x-kubernetes-validations": [{"rule": "true", "reason": "Nope"}]}
        ),
        [
            f'{P}.properties[x].x-kubernetes-validations[0].reason: Unsupported value: "Nope": supported values: "FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"'
        ],
    ),
    (
        "cel-bad-field-path",
        obj_schema(
            x={
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "x-kubernetes-validations": [{"rule": "true", "fieldPath": ".b"}],
            }
        ),
        [
            f'{P}.properties[x].x-kubernetes-validations[0].fieldPath: Invalid value: ".b": fieldPath must be a valid path'
        ],
    ),
    (
        "cel-old-self-in-list",
        obj_schema(
            x={
                "type": "array",
                "items": {
                    "type": "string",
                    "x-kubernetes-validations": [{"rule": "self == oldSelf"}],
                },
            }
        ),
        [
            f'{P}.properties[x].items.x-kubernetes-validations[0].rule: Invalid value: "self == oldSelf": oldSelf cannot be used on the uncorrelatable portion of the schema within {P}.properties[x]'
        ],
    ),
    (
        "cel-optional-old-self-unused",
        obj_schema(
            x={
                "type": "string",
                "x-kubernetes-validations": [{"rule": "true", "optionalOldSelf": True}],
            }
        ),
        [
            f"{P}.properties[x].x-kubernetes-validations[0].optionalOldSelf: Invalid value: true: may not be set if oldSelf is not used in rule"
        ],
    ),
    (
        "cel-old-self-in-map-list-ok",
        obj_schema(
            x={
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["n"],
                "items": {
                    "type": "object",
                    "required": ["n"],
                    "properties": {"n": {"type": "string"}},
                    "x-kubernetes-validations": [{"rule": "self == oldSelf"}],
                },
            }
        ),
        [],
    ),
]


@pytest.mark.parametrize(
    ("schema", "want"), [c[1:] for c in CHECK_CASES], ids=[c[0] for c in CHECK_CASES]
)
def test_check_schema(schema: dict[str, Any], want: list[str] | str) -> None:
    got = [str(e) for e in check_schema(schema, P)]
    if isinstance(want, str):
        assert len(got) == 1 and want in got[0], got
        assert (
            ".x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{"
            in got[0]
        )
    else:
        assert got == want


def test_check_schema_status_subresource_root() -> None:
    schema = {
        "type": "object",
        "anyOf": [{"required": ["spec"]}],
        "properties": {"spec": {"type": "object"}},
    }
    assert check_schema(schema, P) == []
    got = [str(e) for e in check_schema(schema, P, status_enabled=True)]
    assert (
        len(got) == 1
        and "fields are allowed at the root of the schema if the status subresource is enabled"
        in got[0]
    )


# --- published views -------------------------------------------------------------------------


def test_node_schema_feeds_schema_node() -> None:
    node = SchemaNode(SS.node_schema())
    meta = node.field("metadata")
    assert meta is not None and meta.field("labels") is not None
    ports = node.field("spec").field("ports")  # type: ignore[union-attr]
    assert ports is not None and ports.list_type == "map" and ports.list_map_keys == ["name"]
    assert node.field("apiVersion") is not None and node.field("kind") is not None
    assert "metadata" not in SPEC["properties"]  # the input is not mutated


def test_published_schema_v3() -> None:
    schema = copy.deepcopy(SPEC)
    schema["properties"]["spec"]["example"] = {"size": 1}
    out = published_schema(schema)
    assert (
        out["properties"]["metadata"]["$ref"]
        == "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    )
    assert out["properties"]["apiVersion"]["type"] == "string"
    assert out["properties"]["kind"]["description"].startswith("Kind is a string value")
    spec = out["properties"]["spec"]
    assert "example" not in spec
    assert spec["properties"]["port"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert spec["properties"]["opt"]["nullable"] is True
    assert schema == {
        **SPEC,
        "properties": {
            **SPEC["properties"],
            "spec": {**SPEC["properties"]["spec"], "example": {"size": 1}},
        },
    }


def test_published_schema_v2() -> None:
    out = published_schema(SPEC, v2=True)
    assert (
        out["properties"]["metadata"]["$ref"]
        == "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    )
    spec = out["properties"]["spec"]
    assert spec["properties"]["opt"] == {}  # nullable: no type in v2
    assert "anyOf" not in spec["properties"]["port"] and "anyOf" not in spec["properties"]["choice"]
    assert "default" not in spec["properties"]["replicas"]
    assert out["properties"]["status"] == {"x-kubernetes-preserve-unknown-fields": True}
    assert published_schema(
        {"type": "object", "x-kubernetes-preserve-unknown-fields": True}, v2=True
    ) == {"type": "object"}


def test_published_schema_embedded_resource() -> None:
    schema = obj_schema(
        tpl={
            "type": "object",
            "x-kubernetes-embedded-resource": True,
            "x-kubernetes-preserve-unknown-fields": True,
        }
    )
    tpl = published_schema(schema)["properties"]["tpl"]
    assert set(tpl["properties"]) == {"apiVersion", "kind", "metadata"}
    assert tpl["required"] == ["kind", "apiVersion"]


# --- update semantics: ratcheting, blocking errors, root rules ------------------------------

RATCHET_SCHEMA = {
    "type": "object",
    "x-kubernetes-validations": [{"rule": "has(self.spec)", "message": "spec is required"}],
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "a": {"type": "string", "maxLength": 3},
                "b": {"type": "string", "x-kubernetes-validations": [{"rule": "self != 'bad'"}]},
                "c": {"type": "integer", "maximum": 5},
                "set": {
                    "type": "array",
                    "x-kubernetes-list-type": "set",
                    "items": {"type": "string"},
                },
                "ports": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string"},
                            "port": {"type": "integer", "maximum": 100},
                            "proto": {
                                "type": "string",
                                "x-kubernetes-validations": [
                                    {"rule": "self == oldSelf", "message": "proto is immutable"}
                                ],
                            },
                        },
                    },
                },
                "once": {
                    "type": "string",
                    "x-kubernetes-validations": [
                        {
                            "rule": "!oldSelf.hasValue() || oldSelf.value() == self",
                            "optionalOldSelf": True,
                            "message": "once is write-once",
                        }
                    ],
                },
            },
        }
    },
}
RATCHET = StructuralSchema(RATCHET_SCHEMA)

UPDATE_CASES = [
    ("unchanged-invalid-kept", {"a": "toolong"}, {"a": "toolong"}, []),
    (
        "changed-invalid",
        {"a": "toolong2"},
        {"a": "toolong"},
        [
            "spec.a: Too long: may not be more than 3 bytes",
            '<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation',
        ],
    ),
    (
        "create-invalid",
        {"a": "toolong"},
        None,
        [
            "spec.a: Too long: may not be more than 3 bytes",
            '<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation',
        ],
    ),
    ("unchanged-cel-kept", {"b": "bad", "c": 1}, {"b": "bad", "c": 2}, []),
    (
        "changed-cel",
        {"b": "bad"},
        {"b": "ok"},
        ["spec.b: Invalid value: \"string\": failed rule: self != 'bad'"],
    ),
    (
        "map-list-item-correlated",
        {"ports": [{"name": "x", "port": 1}, {"name": "y", "port": 200}]},
        {"ports": [{"name": "y", "port": 200}]},
        [],
    ),
    (
        "map-list-item-changed",
        {"ports": [{"name": "y", "port": 201}]},
        {"ports": [{"name": "y", "port": 200}]},
        [
            "spec.ports[0].port: Invalid value: 201: spec.ports[0].port in body should be less than or equal to 100"
        ],
    ),
    (
        "transition-in-map-list",
        {"ports": [{"name": "y", "proto": "UDP"}]},
        {"ports": [{"name": "y", "proto": "TCP"}]},
        ['spec.ports[0].proto: Invalid value: "string": proto is immutable'],
    ),
    (
        "transition-new-item",
        {"ports": [{"name": "z", "proto": "UDP"}]},
        {"ports": [{"name": "y", "proto": "TCP"}]},
        [],
    ),
    ("optional-old-self-create", {"once": "a"}, None, []),
    (
        "optional-old-self-update",
        {"once": "b"},
        {"once": "a"},
        ['spec.once: Invalid value: "string": once is write-once'],
    ),
    ("set-dups-kept-if-old-had-them", {"set": ["a", "a", "b"]}, {"set": ["a", "a"]}, []),
    ("set-dups-new", {"set": ["a", "a"]}, {"set": ["a"]}, ['spec.set[1]: Duplicate value: "a"']),
]


@pytest.mark.parametrize(
    ("spec", "old", "want"), [c[1:] for c in UPDATE_CASES], ids=[c[0] for c in UPDATE_CASES]
)
def test_validate_update(spec: dict[str, Any], old: dict[str, Any] | None, want: list[str]) -> None:
    old_obj = {"spec": old} if old is not None else None
    assert [str(e) for e in RATCHET.validate({"spec": spec}, old_obj)] == want


def test_root_rule_reports_nil_path() -> None:
    assert [str(e) for e in RATCHET.validate({})] == [
        '<nil>: Invalid value: "object": spec is required'
    ]


def test_blocking_errors_skip_rules() -> None:
    got = [str(e) for e in RATCHET.validate({"spec": {"c": "x", "b": "bad"}})]
    assert got == [
        'spec.c: Invalid value: "string": spec.c in body must be of type integer: "string"',
        '<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation',
    ]


def test_prior_errors_block_rules() -> None:
    from corral.api.errors import required

    got = RATCHET.validate({"spec": {"b": "bad"}}, prior=[required("metadata.name")])
    assert [e.detail for e in got] == [
        "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"
    ]


# --- embedded resources -----------------------------------------------------------------------

EMBEDDED = StructuralSchema(
    obj_schema(
        spec=obj_schema(
            tpl={
                "type": "object",
                "x-kubernetes-embedded-resource": True,
                "x-kubernetes-preserve-unknown-fields": True,
            }
        )
    )
)

EMBEDDED_CASES = [
    (
        "ok",
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}}},
        [],
    ),
    (
        "missing-type-meta",
        {"metadata": {}},
        [
            "spec.tpl.apiVersion: Required value: must not be empty",
            "spec.tpl.kind: Required value: must not be empty",
        ],
    ),
    (
        "bad-kind",
        {"apiVersion": "v1", "kind": "Pod_x"},
        [
            "spec.tpl.kind: Invalid value: \"Pod_x\": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
        ],
    ),
    (
        "bad-api-version",
        {"apiVersion": "a/b/c", "kind": "Pod"},
        ['spec.tpl.apiVersion: Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c'],
    ),
    (
        "bad-label",
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"a": "b c"}}},
        'spec.tpl.metadata.labels: Invalid value: "b c"',
    ),
]


@pytest.mark.parametrize(
    ("tpl", "want"), [c[1:] for c in EMBEDDED_CASES], ids=[c[0] for c in EMBEDDED_CASES]
)
def test_validate_embedded(tpl: dict[str, Any], want: list[str] | str) -> None:
    got = [str(e) for e in EMBEDDED.validate({"spec": {"tpl": tpl}})]
    if isinstance(want, str):
        assert len(got) == 1 and got[0].startswith(want), got
    else:
        assert got == want


def test_prune_embedded_metadata() -> None:
    obj = {
        "spec": {
            "tpl": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "bogus": 1},
                "x": {"y": 1},
            }
        }
    }
    assert EMBEDDED.prune(obj) == ["spec.tpl.metadata.bogus"]
    assert obj["spec"]["tpl"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "x": {"y": 1},
    }


def test_cel_sees_escaped_property_names() -> None:
    s = StructuralSchema(
        obj_schema(
            spec={
                "type": "object",
                "properties": {"max-size": {"type": "integer"}, "namespace": {"type": "string"}},
                "x-kubernetes-validations": [
                    {"rule": "self.max__dash__size < 10 && self.__namespace__ != 'kube-system'"}
                ],
            }
        )
    )
    assert s.validate({"spec": {"max-size": 3, "namespace": "a"}}) == []
    assert len(s.validate({"spec": {"max-size": 30, "namespace": "a"}})) == 1


def test_metadata_name_restrictions_apply() -> None:
    s = StructuralSchema(
        obj_schema(
            metadata={"type": "object", "properties": {"name": {"type": "string", "maxLength": 5}}}
        )
    )
    assert [str(e) for e in s.validate({"metadata": {"name": "toolongname"}})] == [
        "metadata.name: Too long: may not be more than 5 bytes"
    ]
    assert s.validate({"metadata": {"name": "ok"}}) == []


def test_root_rules_see_only_name_of_metadata() -> None:
    s = StructuralSchema(
        {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.metadata.name.startsWith('a') && self.kind == 'K'"}
            ],
        }
    )
    assert s.validate({"kind": "K", "metadata": {"name": "abc", "labels": {"x": "y"}}}) == []
    assert len(s.validate({"kind": "K", "metadata": {"name": "xyz"}})) == 1
