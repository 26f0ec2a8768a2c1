"""Marathon groups: nesting, relative ids and dependencies, every group error, the
start and stop order, scaleBy, and the tree the ``marathon`` client reads."""

from __future__ import annotations

import collections
import collections.abc
from typing import Any

import pytest

collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]

from marathon.models import MarathonGroup  # noqa: E402

from corral.marathon import apps, groups  # noqa: E402
from corral.marathon.apps import AppError  # noqa: E402

NOW = "2026-01-01T00:00:00.000Z"
CYCLE = {
    "message": "Object is not valid",
    "details": [{"path": "/", "errors": ["Dependency graph has cyclic dependencies."]}],
}
CMD = "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."


def a(app_id: str, *deps: str, **fields: Any) -> dict[str, Any]:
    return {"id": app_id, "cmd": "sleep 1", "dependencies": list(deps), **fields}


def flat(*items: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {x["id"]: apps.normalize(x) for x in items}


#: the example of Marathon's application-groups.md
PRODUCT = {
    "id": "/product",
    "groups": [
        {
            "id": "/product/database",
            "apps": [{"id": "/product/database/mongo", "cmd": "m"}, {"id": "mysql", "cmd": "s"}],
        },
        {
            "id": "service",
            "dependencies": ["../database"],
            "apps": [{"id": "rails-app", "cmd": "r"}, {"id": "play-app", "cmd": "p"}],
        },
    ],
}


def test_nested_group_in_canonical_form() -> None:
    got = groups.normalize_group(PRODUCT)
    assert [g["id"] for g in got["groups"]] == ["/product/database", "/product/service"]
    assert got["enforceRole"] is False and got["apps"] == [] and got["dependencies"] == []
    service = got["groups"][1]
    assert service["dependencies"] == ["/product/database"]
    assert "enforceRole" not in service
    assert [x["id"] for x in service["apps"]] == [
        "/product/service/rails-app",
        "/product/service/play-app",
    ]
    assert service["apps"][0] == apps.normalize({"id": "/product/service/rails-app", "cmd": "r"})
    assert sorted(groups.flatten(got)) == [
        "/product/database/mongo",
        "/product/database/mysql",
        "/product/service/play-app",
        "/product/service/rails-app",
    ]
    assert groups.group_dependencies(got) == {"/product/service": ["/product/database"]}


VALID: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    # (id, body, normalize_group() keyword arguments, expected fields)
    ("root-no-id", {"apps": [a("web")]}, {}, {"id": "/", "dependencies": []}),
    ("id-relative-to-url", {"id": "b", "apps": [a("web")]}, {"group_id": "/a"}, {"id": "/a/b"}),
    ("id-from-url", {"apps": []}, {"group_id": "//a//b/"}, {"id": "/a/b"}),
    ("id-dotdot", {"id": "x/../b"}, {"group_id": "/a"}, {"id": "/a/b"}),
    (
        "group-dependencies",
        {"id": "/p/s", "dependencies": ["../db", "/abs", "sub", "../db"]},
        {},
        {"dependencies": ["/p/db", "/abs", "/p/s/sub"]},
    ),
    (
        "top-level-enforce-role",
        {"id": "/dev", "enforceRole": True, "apps": [a("web")]},
        {},
        {"enforceRole": True},
    ),
    ("duplicate-app-last-wins", {"id": "/g", "apps": [a("web"), a("web", instances=3)]}, {}, {}),
]


@pytest.mark.parametrize(
    ("body", "kwargs", "expected"), [v[1:] for v in VALID], ids=[v[0] for v in VALID]
)
def test_valid_groups(
    body: dict[str, Any], kwargs: dict[str, Any], expected: dict[str, Any]
) -> None:
    got = groups.normalize_group(body, **kwargs)
    for key, value in expected.items():
        assert got[key] == value, key


def test_app_dependencies_are_relative_to_their_group() -> None:
    got = groups.normalize_group({"id": "/p", "apps": [a("web", "db", "../other", "/abs")]})
    assert got["apps"][0]["id"] == "/p/web"
    assert got["apps"][0]["dependencies"] == ["/p/db", "/other", "/abs"]


def test_duplicate_app_ids_last_wins() -> None:
    got = groups.normalize_group({"id": "/g", "apps": [a("web"), a("web", instances=3)]})
    assert [(x["id"], x["instances"]) for x in got["apps"]] == [("/g/web", 3)]


def test_enforced_role_is_the_apps_role() -> None:
    got = groups.normalize_group(
        {"id": "/dev", "enforceRole": True, "groups": [{"id": "sub", "apps": [a("web")]}]}
    )
    assert got["groups"][0]["apps"][0]["role"] == "dev"
    below = groups.normalize_group({"apps": [a("web")]}, group_id="/dev/sub", enforce_role=True)
    assert below["apps"][0]["role"] == "dev"
    assert groups.normalize_group({"id": "/dev", "apps": [a("web")]})["apps"][0]["role"] == "*"


def test_existing_app_keeps_its_role() -> None:
    existing = {"/g/web": {**apps.normalize(a("/g/web")), "role": "legacy"}}
    got = groups.normalize_group({"id": "/g", "apps": [a("web", role="legacy")]}, existing=existing)
    assert got["apps"][0]["role"] == "legacy"


ERRORS: list[tuple[str, Any, dict[str, Any], str, dict[str, list[str]]]] = [
    # (id, body, kwargs, message, details)
    ("not-an-object", [], {}, "Invalid JSON", {"/": ["error.expected.jsobject"]}),
    ("id-type", {"id": 1}, {}, "Invalid JSON", {"/id": ["error.expected.jsstring"]}),
    ("id-pattern", {"id": "/Prod"}, {}, "Invalid JSON", {"/id": ["error.pattern"]}),
    (
        "id-reserved",
        {"id": "/a/versions"},
        {},
        "Object is not valid",
        {
            "/id": [
                "must not end with any of the following reserved keywords: restart, tasks, versions, ., .."
            ]
        },
    ),
    (
        "apps-not-array",
        {"id": "/g", "apps": {}},
        {},
        "Invalid JSON",
        {"/apps": ["error.expected.jsarray"]},
    ),
    (
        "app-reader-error",
        {"id": "/g", "apps": [a("web", cpus=0)]},
        {},
        "Invalid JSON",
        {"/apps(0)/cpus": ["error.min"]},
    ),
    (
        "app-rule-error",
        {"id": "/g", "apps": [{"id": "web"}]},
        {},
        "Object is not valid",
        {"/apps(0)": [CMD]},
    ),
    (
        "app-not-child",
        {"id": "/g", "apps": [a("/other/web")]},
        {},
        "Object is not valid",
        {"/apps(0)/id": ["Identifier is not child of '/g'"]},
    ),
    (
        "app-too-deep",
        {"id": "/g", "apps": [a("x/web")]},
        {},
        "Object is not valid",
        {"/apps(0)/id": ["Identifier is not child of '/g'"]},
    ),
    (
        "group-missing-id",
        {"id": "/g", "groups": [{"apps": []}]},
        {},
        "Invalid JSON",
        {"/groups(0)/id": ["error.path.missing"]},
    ),
    (
        "group-not-child",
        {"id": "/g", "groups": [{"id": "/h/x"}]},
        {},
        "Object is not valid",
        {"/groups(0)/id": ["Identifier is not child of '/g'"]},
    ),
    (
        "nested-app-rule",
        {"id": "/g", "groups": [{"id": "s", "apps": [{"id": "web", "args": ["x"], "cmd": "y"}]}]},
        {},
        "Object is not valid",
        {"/groups(0)/apps(0)": [CMD]},
    ),
    (
        "nested-app-reader",
        {"id": "/g", "groups": [{"id": "s", "apps": [a("web", mem=-1)]}]},
        {},
        "Invalid JSON",
        {"/groups(0)/apps(0)/mem": ["error.min"]},
    ),
    (
        "reader-errors-first",
        {"id": "/g", "apps": [{"id": "web"}, a("db", cpus=0)]},
        {},
        "Invalid JSON",
        {"/apps(1)/cpus": ["error.min"]},
    ),
    (
        "enforce-role-nested",
        {"id": "/g", "groups": [{"id": "s", "enforceRole": True}]},
        {},
        "Object is not valid",
        {
            "/groups(0)/enforceRole": [
                "enforceRole can only be set for top-level groups, and /g/s is not top-level"
            ]
        },
    ),
    (
        "enforce-role-type",
        {"id": "/g", "enforceRole": "yes"},
        {},
        "Invalid JSON",
        {"/enforceRole": ["error.expected.jsboolean"]},
    ),
    (
        "same-id",
        {"id": "/g", "apps": [a("x")], "groups": [{"id": "x"}]},
        {},
        "Object is not valid",
        {"/": ["Groups and Applications may not have the same identifier."]},
    ),
    (
        "nested-scale-by",
        {"id": "/g", "groups": [{"id": "s", "scaleBy": 2}]},
        {},
        "Object is not valid",
        {"/groups(0)/scaleBy": ["not allowed in conjunction with other properties."]},
    ),
    (
        "dependency-pattern",
        {"id": "/g", "dependencies": ["/A"]},
        {},
        "Invalid JSON",
        {"/dependencies(0)": ["error.pattern"]},
    ),
    (
        "dependency-type",
        {"id": "/g", "dependencies": [1]},
        {},
        "Invalid JSON",
        {"/dependencies(0)": ["error.expected.jsstring"]},
    ),
    (
        "dependency-reserved",
        {"id": "/g", "dependencies": ["/x/tasks"]},
        {},
        "Object is not valid",
        {
            "/dependencies(0)": [
                "must not end with any of the following reserved keywords: restart, tasks, versions, ., .."
            ]
        },
    ),
]


@pytest.mark.parametrize(
    ("body", "kwargs", "message", "details"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_group_errors(
    body: Any, kwargs: dict[str, Any], message: str, details: dict[str, list[str]]
) -> None:
    with pytest.raises(AppError) as err:
        groups.normalize_group(body, **kwargs)
    assert err.value.body() == {
        "message": message,
        "details": [{"path": p, "errors": e} for p, e in details.items()],
    }


ACTIONS: list[tuple[str, Any, tuple[str, Any] | None]] = [
    ("structural", {"id": "/g", "apps": []}, None),
    ("scale", {"scaleBy": 2}, ("scaleBy", 2.0)),
    ("scale-zero", {"scaleBy": 0}, ("scaleBy", 0.0)),
    ("rollback", {"version": NOW}, ("version", NOW)),
    ("nulls-ignored", {"scaleBy": 1.5, "apps": None}, ("scaleBy", 1.5)),
    ("not-an-object", [], None),
]


@pytest.mark.parametrize(
    ("body", "expected"), [x[1:] for x in ACTIONS], ids=[x[0] for x in ACTIONS]
)
def test_group_action(body: Any, expected: tuple[str, Any] | None) -> None:
    assert groups.group_action(body) == expected


@pytest.mark.parametrize(
    ("body", "path", "error", "message"),
    [
        (
            {"id": "/g", "scaleBy": 2},
            "/scaleBy",
            "not allowed in conjunction with other properties.",
            "Object is not valid",
        ),
        (
            {"version": NOW, "apps": []},
            "/version",
            "not allowed in conjunction with other properties.",
            "Object is not valid",
        ),
        ({"scaleBy": -1}, "/scaleBy", "error.min", "Invalid JSON"),
        ({"scaleBy": "2"}, "/scaleBy", "error.expected.jsnumber", "Invalid JSON"),
        ({"version": 3}, "/version", "error.expected.jsstring", "Invalid JSON"),
    ],
    ids=["scale-with-id", "version-with-apps", "scale-negative", "scale-string", "version-number"],
)
def test_group_action_errors(body: Any, path: str, error: str, message: str) -> None:
    with pytest.raises(AppError) as err:
        groups.group_action(body)
    assert err.value.body() == {"message": message, "details": [{"path": path, "errors": [error]}]}


def test_normalize_group_refuses_a_scale_body() -> None:
    with pytest.raises(ValueError, match="group_action"):
        groups.normalize_group({"scaleBy": 2})


# ---------------------------------------------------------------------------------------
# dependency order

ORDERS: list[
    tuple[
        str,
        dict[str, dict[str, Any]],
        dict[str, list[str]] | None,
        list[str] | None,
        list[list[str]],
    ]
] = [
    # (id, apps, group dependencies, only, start order)
    ("independent", flat(a("/b"), a("/a")), None, None, [["/a", "/b"]]),
    (
        "chain",
        flat(a("/web", "/app"), a("/app", "/db"), a("/db")),
        None,
        None,
        [["/db"], ["/app"], ["/web"]],
    ),
    (
        "diamond-longest-path",
        flat(a("/top", "/left", "/right"), a("/left", "/base"), a("/right"), a("/base")),
        None,
        None,
        [["/base", "/right"], ["/left"], ["/top"]],
    ),
    ("unknown-dependency-ignored", flat(a("/web", "/nowhere")), None, None, [["/web"]]),
    (
        "app-on-group",
        flat(a("/web", "/db"), a("/db/mongo"), a("/db/mysql", "/db/mongo")),
        None,
        None,
        [["/db/mongo"], ["/db/mysql"], ["/web"]],
    ),
    (
        "group-on-group",
        flat(a("/p/svc/rails"), a("/p/svc/play"), a("/p/db/mongo")),
        {"/p/svc": ["/p/db"]},
        None,
        [["/p/db/mongo"], ["/p/svc/play", "/p/svc/rails"]],
    ),
    (
        "group-on-app-ignored",
        flat(a("/p/svc/rails"), a("/p/db")),
        {"/p/svc": ["/p/db"]},
        None,
        [["/p/db", "/p/svc/rails"]],
    ),
    (
        "only-keeps-chain-lengths",
        flat(a("/web", "/app"), a("/app", "/db"), a("/db")),
        None,
        ["/web", "/db", "/ghost"],
        [["/db"], ["/web"]],
    ),
]


@pytest.mark.parametrize(
    ("app_map", "group_deps", "only", "expected"),
    [o[1:] for o in ORDERS],
    ids=[o[0] for o in ORDERS],
)
def test_start_and_stop_order(
    app_map: dict[str, dict[str, Any]],
    group_deps: dict[str, list[str]] | None,
    only: list[str] | None,
    expected: list[list[str]],
) -> None:
    assert groups.start_order(app_map, only=only, group_deps=group_deps) == expected
    assert groups.stop_order(app_map, only=only, group_deps=group_deps) == expected[::-1]


def test_group_dependency_on_a_group_as_marathon_groups_describe() -> None:
    tree = groups.normalize_group(PRODUCT)
    order = groups.start_order(groups.flatten(tree), group_deps=groups.group_dependencies(tree))
    assert order == [
        ["/product/database/mongo", "/product/database/mysql"],
        ["/product/service/play-app", "/product/service/rails-app"],
    ]


CYCLES: list[tuple[str, dict[str, dict[str, Any]], dict[str, list[str]] | None]] = [
    ("two-apps", flat(a("/a", "/b"), a("/b", "/a")), None),
    ("three-apps", flat(a("/a", "/b"), a("/b", "/c"), a("/c", "/a"), a("/d")), None),
    ("self", flat(a("/a", "/a")), None),
    ("own-group", flat(a("/g/a", "/g")), None),
    ("groups", flat(a("/x/a"), a("/y/b")), {"/x": ["/y"], "/y": ["/x"]}),
]


@pytest.mark.parametrize(
    ("app_map", "group_deps"), [c[1:] for c in CYCLES], ids=[c[0] for c in CYCLES]
)
def test_cycles(
    app_map: dict[str, dict[str, Any]], group_deps: dict[str, list[str]] | None
) -> None:
    with pytest.raises(AppError) as err:
        groups.start_order(app_map, group_deps=group_deps)
    assert err.value.body() == CYCLE


def test_a_long_chain_needs_no_recursion() -> None:
    chain = flat(*(a(f"/a{i}", f"/a{i + 1}") for i in range(3000)), a("/a3000"))
    order = groups.start_order(chain)
    assert len(order) == 3001 and order[0] == ["/a3000"] and order[-1] == ["/a0"]


def test_dependency_edges() -> None:
    app_map = flat(a("/web", "/db", "/x"), a("/db/m"), a("/db/s"), a("/cache/r"))
    edges = groups.dependency_edges(app_map, {"/db": ["/cache", "/web"]})
    assert edges == {
        "/web": {"/db/m", "/db/s"},
        "/db/m": {"/cache/r"},
        "/db/s": {"/cache/r"},
        "/cache/r": set(),
    }


@pytest.mark.parametrize(
    ("group_id", "factor", "expected"),
    [
        ("/g", 2, {"/g/a": 2, "/g/s/b": 6, "/h": 1}),
        ("/", 1.5, {"/g/a": 2, "/g/s/b": 5, "/h": 2}),
        ("/g/s", 0, {"/g/a": 1, "/g/s/b": 0, "/h": 1}),
    ],
    ids=["group", "root-rounds-up", "to-zero"],
)
def test_scale_by(group_id: str, factor: float, expected: dict[str, int]) -> None:
    app_map = flat(a("/g/a"), a("/g/s/b", instances=3), a("/h"))
    got = groups.scale_by(app_map, group_id, factor)
    assert {k: v["instances"] for k, v in got.items()} == expected
    assert app_map["/g/s/b"]["instances"] == 3


# ---------------------------------------------------------------------------------------
# the tree and the client's view


def test_tree_from_flat_apps() -> None:
    app_map = flat(a("/top"), a("/p/db/m"), a("/p/web"))
    records = {
        "/p": {"dependencies": [], "version": NOW, "enforceRole": False},
        "/empty/x": {"version": NOW},
    }
    got = groups.tree(app_map, groups=records)
    assert got["id"] == "/" and [x["id"] for x in got["apps"]] == ["/top"]
    assert [g["id"] for g in got["groups"]] == ["/empty", "/p"]
    empty, p = got["groups"]
    assert [g["id"] for g in empty["groups"]] == ["/empty/x"] and empty["groups"][0][
        "version"
    ] == NOW
    assert p["version"] == NOW and p["enforceRole"] is False
    assert [x["id"] for x in p["apps"]] == ["/p/web"]
    assert [g["id"] for g in p["groups"]] == ["/p/db"] and [
        x["id"] for x in p["groups"][0]["apps"]
    ] == ["/p/db/m"]
    sub = groups.tree(app_map, group_id="/p")
    assert sub["id"] == "/p" and [g["id"] for g in sub["groups"]] == ["/p/db"]
    assert groups.flatten(got) == app_map


def test_group_accepted_by_the_client() -> None:
    app_map = {
        k: apps.with_version(None, v, now=NOW)
        for k, v in groups.flatten(groups.normalize_group(PRODUCT)).items()
    }
    root = groups.tree(
        app_map,
        groups={
            "/product": {"version": NOW, "enforceRole": False},
            "/product/service": {"dependencies": ["/product/database"]},
        },
    )
    shown = groups.to_client(root)
    assert "enforceRole" not in shown["groups"][0]
    group = MarathonGroup.from_json(shown)
    product = group.groups[0]
    assert product.id == "/product" and product.version == NOW
    service = next(g for g in product.groups if g.id == "/product/service")
    assert service.dependencies == ["/product/database"]
    assert sorted(x.id for x in service.apps) == [
        "/product/service/play-app",
        "/product/service/rails-app",
    ]
    group.to_json()
    custom = groups.to_client(root, render_app=lambda x: {"id": x["id"]})
    assert custom["groups"][0]["groups"][0]["apps"][0] == {"id": "/product/database/mongo"}
