"""Pure parts of serving custom resources: printer-column JSONPath and cells, the naming
controller's verdict, and the rows one CRD becomes."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from corral.apiserver.crds import CustomResources
from corral.apiserver.registry.custom import eval_json_path, parse_json_path, strategy_for

Obj = dict[str, Any]

OBJ: Obj = {
    "metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:00Z"},
    "spec": {"n": 3, "f": 1.5, "ok": True, "tags": ["x", "y"], "m": {"k.v": "w"}},
    "status": {
        "conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "Synced", "status": "False"},
        ]
    },
}


@pytest.mark.parametrize(
    ("path", "want"),
    [
        (".spec.n", [3]),
        (".spec.tags[1]", ["y"]),
        (".spec.tags[-1]", ["y"]),
        (".spec.tags[*]", ["x", "y"]),
        (".spec.m['k.v']", ["w"]),
        ('.status.conditions[?(@.type=="Ready")].status', ["True"]),
        (".status.conditions[?(@.type!='Ready')].type", ["Synced"]),
        (".spec.missing", []),
        ("{.spec.ok}", [True]),
    ],
    ids=lambda v: str(v),
)
def test_json_path(path: str, want: list[Any]) -> None:
    steps = parse_json_path(path)
    assert steps is not None
    assert eval_json_path(OBJ, steps) == want


def _crd(**names: Any) -> Obj:
    plural = names.get("plural", "foos")
    n = {"plural": plural, "singular": plural[:-1], "kind": "Foo", "listKind": "FooList"}
    n.update(names)
    return {
        "metadata": {"name": f"{n['plural']}.g.example.com"},
        "spec": {
            "group": "g.example.com",
            "scope": "Namespaced",
            "names": n,
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": {"type": "object", "properties": {}}},
                        }
                    },
                    "additionalPrinterColumns": [
                        {"name": "N", "type": "integer", "jsonPath": ".spec.n"},
                        {"name": "F", "type": "number", "jsonPath": ".spec.f"},
                        {"name": "Ok", "type": "boolean", "jsonPath": ".spec.ok"},
                        {"name": "Tags", "type": "string", "jsonPath": ".spec.tags"},
                        {"name": "Gone", "type": "string", "jsonPath": ".spec.gone"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                }
            ],
        },
    }


def _accepted(crd: Obj) -> Obj:
    crd = copy.deepcopy(crd)
    crd["status"] = {
        "acceptedNames": dict(crd["spec"]["names"]),
        "conditions": [{"type": "NamesAccepted", "status": "True"}],
    }
    return crd


@pytest.mark.parametrize(
    ("names", "reason", "message"),
    [
        (
            {"plural": "bars", "kind": "Bar", "listKind": "BarList"},
            "NoConflicts",
            "no conflicts found",
        ),
        (
            {"plural": "bars", "singular": "foo", "kind": "Bar", "listKind": "BarList"},
            "SingularConflict",
            '"foo" is already in use',
        ),
        (
            {"plural": "bars", "kind": "Foo", "listKind": "BarList"},
            "KindConflict",
            '"Foo" is already in use',
        ),
        (
            {"plural": "bars", "kind": "Bar", "listKind": "BarList", "shortNames": ["foos"]},
            "ShortNamesConflict",
            '"foos" is already in use',
        ),
    ],
    ids=["free", "singular", "kind", "short-name"],
)
def test_names(names: Obj, reason: str, message: str) -> None:
    existing = _accepted(_crd(shortNames=["f"]))
    new = _crd(**names)
    accepted, cond, established = CustomResources.names(new, [existing, new])
    assert (cond["reason"], cond["message"]) == (reason, message)
    if reason == "NoConflicts":
        assert accepted == new["spec"]["names"]
        assert established == {
            "type": "Established",
            "status": "True",
            "reason": "InitialNamesAccepted",
            "message": "the initial names have been accepted",
        }
    else:
        assert cond["status"] == "False"
        assert established["reason"] == "NotAccepted"


def test_rows_and_table() -> None:
    crd = _crd()
    crd["spec"]["versions"].append({**crd["spec"]["versions"][0], "name": "v2", "storage": False})
    crd["spec"]["versions"].append(
        {**crd["spec"]["versions"][0], "name": "v0", "storage": False, "served": False}
    )
    rows = CustomResources.rows(crd)
    assert [(r.version, r.storage) for r in rows] == [
        ("v1", None),
        ("v2", ("g.example.com", "foos")),
    ]
    s = strategy_for(crd, crd["spec"]["versions"][0])
    cols = s.table_columns()
    assert cols is not None
    assert [c["name"] for c in cols] == ["Name", "N", "F", "Ok", "Tags", "Gone", "Age"]
    assert (
        cols[1]["description"] == "Custom resource definition column (in JSONPath format): .spec.n"
    )
    now = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    assert s.table_row(OBJ, now) == ["a", 3, 1.5, True, '["x","y"]', None, "5m"]


def test_default_age_column() -> None:
    crd = _crd()
    del crd["spec"]["versions"][0]["additionalPrinterColumns"]
    s = strategy_for(crd, crd["spec"]["versions"][0])
    cols = s.table_columns()
    assert cols is not None
    assert [(c["name"], c["type"]) for c in cols] == [("Name", "string"), ("Age", "date")]
    assert s.table_row(OBJ, datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)) == ["a", "30s"]


def test_rows_without_served_version_and_empty_name_lists() -> None:
    crd = _crd(shortNames=[], categories=[])
    rows = CustomResources.rows(crd)
    assert [(r.short_names, r.categories, r.singular) for r in rows] == [((), (), "foo")]
    crd["spec"]["versions"][0]["served"] = False
    assert CustomResources.rows(crd) == []


def test_rows_use_accepted_names() -> None:
    crd = _crd(shortNames=["taken"])
    accepted = {"plural": "foos", "singular": "foo", "kind": "Foo", "listKind": "FooList"}
    (row,) = CustomResources.rows(crd, accepted)
    assert (row.plural, row.kind, row.short_names) == ("foos", "Foo", ())


def test_established_crd_keeps_being_served_on_a_conflict() -> None:
    """A short name another CRD holds: NamesAccepted False, Established stays True."""
    other = _accepted(_crd(plural="bars", kind="Bar", listKind="BarList", shortNames=["b"]))
    mine = _accepted(_crd())
    mine["status"]["conditions"].append({"type": "Established", "status": "True"})
    mine["spec"]["names"]["shortNames"] = ["b"]
    accepted, cond, established = CustomResources.names(mine, [other, mine])
    assert cond["reason"] == "ShortNamesConflict"
    assert established["status"] == "True"
    assert "shortNames" not in accepted


def test_metadata_errors_come_first_and_hold_back_rules() -> None:
    crd = _crd()
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"] = [
        {"rule": "has(self.spec)"}
    ]
    s = strategy_for(crd, crd["spec"]["versions"][0])
    assert s.validate_metadata({"metadata": {}}, True) == []
    got = [str(e) for e in s.validate({"metadata": {"namespace": "default"}, "spec": {}})]
    assert got[0] == "metadata.name: Required value: name or generateName is required"
    assert got[1:] == [
        '<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation'
    ]


def test_discovery_puts_builtin_groups_first() -> None:
    from corral.apiserver.discovery import _group_order

    groups = ["aa.example.com", "storage.k8s.io", "apps", "mesos.corral.dev", "autoscaling"]
    groups += ["apiregistration.k8s.io", "apiextensions.k8s.io"]
    custom = frozenset({"aa.example.com"})
    assert sorted(groups, key=lambda g: _group_order(g, custom)) == [
        "apiregistration.k8s.io",
        "apps",
        "autoscaling",
        "storage.k8s.io",
        "apiextensions.k8s.io",
        "mesos.corral.dev",
        "aa.example.com",
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (
            '{"a":' * 300 + "1" + "}" * 300,
            "application/json",
            "error decoding JSON: exceeded max depth",
        ),
        (
            '{"a":' * 2000 + "1" + "}" * 2000,
            "application/json",
            "error decoding JSON: exceeded max depth",
        ),
        ("[" * 300 + "]" * 300, "application/json", "error decoding JSON: exceeded max depth"),
        (
            "a:\n" + "".join("  " * i + "b:\n" for i in range(1, 1500)),
            "application/yaml",
            "error converting YAML to JSON: exceeded max depth",
        ),
    ],
    ids=["json-300", "json-2000", "arrays", "yaml"],
)
def test_deep_bodies_are_bad_requests(body: str, content_type: str, message: str) -> None:
    from corral.api import errors
    from corral.apiserver.request import decode_body

    with pytest.raises(errors.StatusError) as e:
        decode_body(body.encode(), content_type)
    assert (e.value.code, e.value.message) == (400, message)
    assert decode_body(('{"a":' * 150 + "1" + "}" * 150).encode(), "application/json")


def test_converter_converts_each_object_version_once() -> None:
    crd = _crd()
    (row,) = CustomResources.rows(crd)
    assert row.converter is not None
    decoded: list[int] = []

    def obj() -> Obj:
        decoded.append(1)
        return {"apiVersion": "g.example.com/v1", "kind": "Foo", "metadata": {"name": "a"}}

    first = row.converter.raw("k", 5, obj)  # type: ignore[attr-defined]
    assert row.converter.raw("k", 5, obj) is first  # type: ignore[attr-defined]
    assert len(decoded) == 1
    row.converter.raw("k", 6, obj)  # type: ignore[attr-defined]
    assert len(decoded) == 2
