"""Tables for corral.api.validation: name formats, labels, annotations, object metadata."""

from __future__ import annotations

from typing import Any

import pytest

from corral.api.errors import invalid
from corral.api.validation import (
    go_intstr,
    go_label_selector,
    go_string_map,
    is_config_map_key,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
    label_selector_matches,
    validate_label_selector,
    validate_object_meta,
)

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
NAME_PART_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


@pytest.mark.parametrize(
    ("func", "value", "expected"),
    [
        (is_dns1123_subdomain, "example.com", []),
        (is_dns1123_subdomain, "Example", [SUBDOMAIN_MSG]),
        (is_dns1123_subdomain, "a" * 254, ["must be no more than 253 characters"]),
        (is_dns1123_label, "my-name", []),
        (is_dns1123_label, "a.b", ["must not contain dots"]),
        (is_dns1123_label, "-x", [LABEL_MSG]),
        (is_qualified_name, "example.com/MyName", []),
        (is_qualified_name, "bad key", [NAME_PART_MSG]),
        (is_qualified_name, "/x", ["prefix part must be non-empty"]),
        (is_qualified_name, "a" * 64, ["name part must be no more than 63 characters"]),
        (is_valid_label_value, "", []),
        (is_valid_label_value, "-bad", [LABEL_VALUE_MSG]),
        (is_config_map_key, "key.name", []),
        (is_config_map_key, "..x", ["must not start with '..'"]),
    ],
    ids=lambda v: v.__name__ if callable(v) else None,
)
def test_name_formats(func: Any, value: str, expected: list[str]) -> None:
    assert func(value) == expected


def test_config_key_empty_message() -> None:
    assert is_config_map_key("") == [
        "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
        "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
        "'[-._a-zA-Z0-9]+')"
    ]


def _meta(**kw: Any) -> dict[str, Any]:
    return {"name": "ok", "namespace": "default", **kw}


@pytest.mark.parametrize(
    ("meta", "namespaced", "fmt", "expected"),
    [
        (_meta(), True, "subdomain", []),
        ({"namespace": "default"}, True, "subdomain", ["metadata.name: Required value: name or generateName is required"]),
        ({"name": "x"}, True, "subdomain", ["metadata.namespace: Required value"]),
        (_meta(), False, "subdomain", ["metadata.namespace: Forbidden: not allowed on this type"]),
        (_meta(name="Bad"), True, "subdomain", [f'metadata.name: Invalid value: "Bad": {SUBDOMAIN_MSG}']),
        (_meta(name="a.b"), True, "label", ['metadata.name: Invalid value: "a.b": must not contain dots']),
        (_meta(name="a/b"), True, "path", ["metadata.name: Invalid value: \"a/b\": may not contain '/'"]),
        (_meta(name=".."), True, "path", ["metadata.name: Invalid value: \"..\": may not be '..'"]),
        (_meta(generateName="web-"), True, "subdomain", []),
        (_meta(labels={"app": "-x"}), True, "subdomain", [f'metadata.labels: Invalid value: "-x": {LABEL_VALUE_MSG}']),
        (_meta(annotations={"a": "x" * 262144}), True, "subdomain", ["metadata.annotations: Too long: must have at most 262144 bytes"]),
        (_meta(finalizers=["example.com/ok", "bad key"]), True, "subdomain", [f'metadata.finalizers: Invalid value: "bad key": {NAME_PART_MSG}']),
        (_meta(ownerReferences=[{"apiVersion": "v1", "kind": "X", "name": "n"}]), True, "subdomain",
         ['metadata.ownerReferences.uid: Invalid value: "": uid must not be empty']),
        (_meta(ownerReferences=[
            {"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": True},
            {"apiVersion": "v1", "kind": "B", "name": "b", "uid": "2", "controller": True},
        ]), True, "subdomain",
         ['metadata.ownerReferences: Invalid value: []string{"A/a", "B/b"}: Only one reference can have '
          'Controller set to true. Found "true" in references for A/a and B/b']),
    ],
    ids=["ok", "no-name", "no-namespace", "cluster-with-ns", "bad-subdomain", "label-dots",
         "path-slash", "path-dotdot", "generate-name", "label-value", "annotations-size",
         "finalizer", "owner-uid", "two-controllers"],
)  # fmt: skip
def test_validate_object_meta(
    meta: dict[str, Any], namespaced: bool, fmt: str, expected: list[str]
) -> None:
    assert [str(e) for e in validate_object_meta(meta, namespaced, fmt)] == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (go_string_map({"b": "2", "a": "1"}), 'map[string]string{"a":"1", "b":"2"}'),
        (go_intstr(0), 'intstr.IntOrString{Type:0, IntVal:0, StrVal:""}'),
        (go_intstr("0%"), 'intstr.IntOrString{Type:1, IntVal:0, StrVal:"0%"}'),
        (
            go_label_selector({"matchLabels": {"app": "x"}}),
            'v1.LabelSelector{MatchLabels:map[string]string{"app":"x"}, '
            "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}",
        ),
    ],
    ids=["map", "int", "percent", "selector"],
)
def test_go_rendering(value: Any, text: str) -> None:
    assert str(invalid("f", value, "d")) == f"f: Invalid value: {text}: d"


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({"matchLabels": {"a": "b"}}, []),
        ({"matchExpressions": [{"key": "a", "operator": "In"}]},
         ["s.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"]),
        ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
         ["s.matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"]),
        ({"matchExpressions": [{"key": "a", "operator": "Near"}]},
         ['s.matchExpressions[0].operator: Invalid value: "Near": not a valid selector operator']),
    ],
    ids=["ok", "in-no-values", "exists-values", "bad-operator"],
)  # fmt: skip
def test_validate_label_selector(selector: dict[str, Any], expected: list[str]) -> None:
    assert [str(e) for e in validate_label_selector(selector, "s")] == expected


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({}, {"a": "b"}, True),
        ({"matchLabels": {"a": "b"}}, {"a": "b", "c": "d"}, True),
        ({"matchLabels": {"a": "b"}}, {"a": "c"}, False),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["x", "y"]}]},
            {"a": "y"},
            True,
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["x"]}]},
            {"a": "x"},
            False,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {}, True),
    ],
    ids=["empty", "labels", "labels-miss", "in", "notin", "doesnotexist"],
)
def test_label_selector_matches(
    selector: dict[str, Any], labels: dict[str, str], matches: bool
) -> None:
    assert label_selector_matches(selector, labels) is matches
