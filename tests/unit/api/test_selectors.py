"""Label and field selectors: grammar, matching, canonical strings and upstream error text."""

from __future__ import annotations

from typing import Any

import pytest

from corral.api.errors import StatusError
from corral.api.selectors import (
    FieldSelector,
    LabelSelector,
    format_label_selector,
    format_labels,
    parse_field_selector,
    parse_label_selector,
    selector_from_map,
    selector_from_object,
)

PARSE_CASES = [
    ("", ""),
    ("app=web", "app=web"),
    ("app==web", "app==web"),
    ("app!=web", "app!=web"),
    ("tier in (b,a),app=web", "app=web,tier in (a,b)"),
    ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
    ("  app = web ,  !debug ", "app=web,!debug"),
    ("a>5,b<3", "a>5,b<3"),
    ("k in (in,notin)", "k in (in,notin)"),
    ("app=", "app="),
    ("example.com/app=web", "example.com/app=web"),
]


@pytest.mark.parametrize(
    ("text", "canonical"), PARSE_CASES, ids=[c[0] or "empty" for c in PARSE_CASES]
)
def test_parse_and_print(text: str, canonical: str) -> None:
    assert str(parse_label_selector(text)) == canonical


QNAME = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
ERROR_CASES = [
    (
        "app:monolith",
        f'unable to parse requirement: <nil>: Invalid value: "app:monolith": name part {QNAME}',
    ),
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a in b", "unable to parse requirement: found 'b' expected: '('"),
    ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("a,", "found '', expected: identifier after ','"),
    ("x=a b", "found 'b', expected: ',' or 'end of string'"),
    ("=a", "found '=', expected: !, identifier, or 'end of string'"),
    ("a=(", "unable to parse requirement: found '(', expected: identifier"),
    (
        "a>b",
        "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, "
        "the value must be an integer",
    ),
    (
        "a=-bad",
        'unable to parse requirement: values[0][a]: Invalid value: "-bad": a valid label must be '
        "an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and "
        "end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex "
        "used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
    ),
    (
        "a/b/c=d",
        'unable to parse requirement: <nil>: Invalid value: "a/b/c": a qualified name '
        + QNAME
        + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_parse_errors_are_bad_requests(text: str, message: str) -> None:
    with pytest.raises(StatusError) as info:
        parse_label_selector(text)
    assert info.value.code == 400
    assert info.value.reason == "BadRequest"
    assert info.value.message == message


MATCH_CASES: list[tuple[str, dict[str, str] | None, bool]] = [
    ("", None, True),
    ("app=web", {"app": "web"}, True),
    ("app=web", {"app": "db"}, False),
    ("app=web", {}, False),
    ("app!=web", {}, True),
    ("app!=web", {"app": "web"}, False),
    ("tier in (a,b)", {"tier": "b"}, True),
    ("tier in (a,b)", {"tier": "c"}, False),
    ("tier notin (a,b)", {}, True),
    ("tier notin (a,b)", {"tier": "a"}, False),
    ("app", {"app": ""}, True),
    ("!app", {"app": ""}, False),
    ("!app", {"other": "x"}, True),
    ("n>5", {"n": "6"}, True),
    ("n>5", {"n": "5"}, False),
    ("n>5", {"n": "x"}, False),
    ("n<5", {"n": "-1"}, True),
    ("n<5", {}, False),
    ("a=1,b=2", {"a": "1", "b": "2"}, True),
    ("a=1,b=2", {"a": "1"}, False),
]


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    MATCH_CASES,
    ids=[f"{c[0] or 'empty'}-{c[1]}" for c in MATCH_CASES],
)
def test_matches(text: str, labels: dict[str, str] | None, expected: bool) -> None:
    assert parse_label_selector(text).matches(labels) is expected


def test_exact_values_and_empty() -> None:
    sel = parse_label_selector("app=web,tier in (a),x in (a,b),y!=z")
    assert sel.exact_values() == {"app": "web", "tier": "a"}
    assert parse_label_selector("").empty
    assert not sel.empty
    assert LabelSelector().matches({"a": "b"})


OBJECT_CASES: list[tuple[str, dict[str, Any] | None, str, dict[str, str], bool]] = [
    ("nil-matches-nothing", None, "", {}, False),
    ("empty-matches-everything", {}, "", {"a": "b"}, True),
    ("match-labels", {"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2", {"a": "1", "b": "2"}, True),
    (
        "expressions",
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["z", "a"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "gpu", "operator": "Exists"},
                {"key": "old", "operator": "DoesNotExist"},
            ],
        },
        "app=web,env notin (prod),gpu,!old,tier in (a,z)",
        {"app": "web", "tier": "a", "gpu": ""},
        True,
    ),
]


@pytest.mark.parametrize(
    ("sel", "text", "labels", "expected"),
    [c[1:] for c in OBJECT_CASES],
    ids=[c[0] for c in OBJECT_CASES],
)
def test_selector_from_object(
    sel: dict[str, Any] | None, text: str, labels: dict[str, str], expected: bool
) -> None:
    selector = selector_from_object(sel)
    assert str(selector) == text
    assert selector.matches(labels) is expected


OBJECT_ERRORS = [
    (
        "bad-operator",
        {"matchExpressions": [{"key": "a", "operator": "Gt"}]},
        '"Gt" is not a valid label selector operator',
    ),
    (
        "in-without-values",
        {"matchExpressions": [{"key": "a", "operator": "In"}]},
        "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty",
    ),
    (
        "exists-with-values",
        {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
        'values: Invalid value: []string{"x"}: values set must be empty for exists and does not exist',
    ),
    ("bad-key", {"matchLabels": {"a b": "x"}}, f'key: Invalid value: "a b": name part {QNAME}'),
]


@pytest.mark.parametrize(
    ("sel", "message"), [c[1:] for c in OBJECT_ERRORS], ids=[c[0] for c in OBJECT_ERRORS]
)
def test_selector_from_object_errors(sel: dict[str, Any], message: str) -> None:
    with pytest.raises(StatusError) as info:
        selector_from_object(sel)
    assert info.value.code == 400
    assert info.value.message == message


def test_format_label_selector() -> None:
    assert format_label_selector(None) == "<none>"
    assert format_label_selector({}) == "<none>"
    assert format_label_selector({"matchLabels": {"app": "web"}}) == "app=web"
    assert (
        format_label_selector({"matchExpressions": [{"key": "a", "operator": "Bad"}]}) == "<error>"
    )


def test_map_selectors_match_everything_when_empty() -> None:
    assert selector_from_map(None).matches({"x": "y"})
    assert selector_from_map({}).empty
    sel = selector_from_map({"b": "2", "a": "1"})
    assert str(sel) == "a=1,b=2"
    assert sel.matches({"a": "1", "b": "2", "c": "3"})
    assert not sel.matches({"a": "1"})
    assert format_labels({"b": "2", "a": "1"}) == "a=1,b=2"
    assert format_labels({}) == "<none>"


POD_FIELDS = ["metadata.name", "metadata.namespace", "spec.nodeName", "status.phase"]
FIELD_CASES = [
    ("empty", "", "", {}, True),
    ("equals", "spec.nodeName=n1", "spec.nodeName=n1", {"spec.nodeName": "n1"}, True),
    ("double-equals", "spec.nodeName==n1", "spec.nodeName=n1", {"spec.nodeName": "n2"}, False),
    (
        "not-equals",
        "status.phase!=Running",
        "status.phase!=Running",
        {"status.phase": "Pending"},
        True,
    ),
    ("empty-value", "spec.nodeName=", "spec.nodeName=", {}, True),
    (
        "and-sorted",
        "status.phase=Running,metadata.name=a",
        "metadata.name=a,status.phase=Running",
        {"metadata.name": "a", "status.phase": "Running"},
        True,
    ),
    (
        "escaped",
        "metadata.name=a\\,b\\=c",
        "metadata.name=a\\,b\\=c",
        {"metadata.name": "a,b=c"},
        True,
    ),
]


@pytest.mark.parametrize(
    ("text", "canonical", "fields", "expected"),
    [c[1:] for c in FIELD_CASES],
    ids=[c[0] for c in FIELD_CASES],
)
def test_field_selector(text: str, canonical: str, fields: dict[str, str], expected: bool) -> None:
    sel = parse_field_selector(text, POD_FIELDS)
    assert str(sel) == canonical
    assert sel.matches(fields) is expected


def test_field_selector_introspection() -> None:
    sel = parse_field_selector("spec.nodeName=n1,status.phase!=Failed", POD_FIELDS)
    assert sel.exact_values() == {"spec.nodeName": "n1"}
    assert sel.fields() == {"spec.nodeName", "status.phase"}
    assert FieldSelector().empty and not sel.empty


FIELD_ERRORS = [
    ("no-operator", "foo", POD_FIELDS, "invalid selector: 'foo'; can't understand 'foo'"),
    (
        "bad-escape",
        "metadata.name=a\\b",
        POD_FIELDS,
        "invalid field selector: invalid escape sequence: \\b",
    ),
    (
        "trailing-backslash",
        "metadata.name=a\\",
        POD_FIELDS,
        "invalid field selector: invalid escape sequence: \\",
    ),
    (
        "unescaped-equals",
        "metadata.name=a=b",
        POD_FIELDS,
        "invalid field selector: unescaped character in value: 61",
    ),
    ("custom-conversion", "spec.foo=x", POD_FIELDS, "field label not supported: spec.foo"),
    (
        "default-conversion",
        "foo.bar=baz",
        ["metadata.name", "metadata.namespace"],
        '"foo.bar" is not a known field selector: only "metadata.name", "metadata.namespace"',
    ),
]


@pytest.mark.parametrize(
    ("text", "allowed", "message"), [c[1:] for c in FIELD_ERRORS], ids=[c[0] for c in FIELD_ERRORS]
)
def test_field_selector_errors(text: str, allowed: list[str], message: str) -> None:
    with pytest.raises(StatusError) as info:
        parse_field_selector(text, allowed)
    assert info.value.code == 400
    assert info.value.message == message
