"""mesos.corral.dev/v1 Framework: the strategy through the shared registry suite, its
status rules, Mesos role names, its table row, schema, discovery and OpenAPI entries."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from corral.api.schema import SchemaNode, TypeMismatch, check_types
from corral.apiserver import tables
from corral.apiserver.discovery import Discovery
from corral.apiserver.openapi import OpenAPIDocs
from corral.apiserver.openapi_v2 import JSON_CT, OpenAPIV2
from corral.apiserver.registry.mesos import DEFINITION, DEFINITIONS, LIST_DEFINITION, role_error
from corral.apiserver.registry.table import RESOURCES, by_plural

from .test_strategies import create, update

GROUP, PLURAL = "mesos.corral.dev", "frameworks"
FID = "3f2a9c1e-0d7b-4b8e-9a51-6c2d1e0f4a7b-0000"


def info(**kw: Any) -> dict[str, Any]:
    return {"user": "root", "name": "my-framework", **kw}


def fw(fid: str = FID, **kw: Any) -> dict[str, Any]:
    return {"metadata": {"name": fid}, "spec": {"frameworkInfo": info(**kw)}}


FULL_INFO = info(
    id={"value": FID},
    failover_timeout=100,
    roles=["*"],
    capabilities=[{"type": "MULTI_ROLE"}],
    checkpoint=True,
    principal="",
    hostname="",
    webui_url="",
    labels={"labels": [{"key": "k", "value": "v"}]},
)
STATUS = {
    "connected": True,
    "active": True,
    "registeredTime": "2026-12-04T10:00:00Z",
    "reregisteredTime": "2026-12-04T11:00:00.5+01:00",
    "tasks": {"running": 2, "staging": 0, "finished": 5, "failed": 0, "killed": 0, "lost": 0},
    "allocated": {"cpus": 0.5, "mem": 128, "disk": 0},
    "offered": {"cpus": 1, "mem": 512, "disk": 0},
}

# fmt: off
VALID: list[dict[str, Any]] = [
    fw(),
    {"metadata": {"name": FID}, "spec": {"frameworkInfo": FULL_INFO}},
    fw(roles=["dev", "eng/backend", "a.b", "x-y"]),
    fw(role="dev"),
    fw(role="*", roles=[]),
    fw(failover_timeout=0),
    fw(failover_timeout=604800.5),
    fw("f.example.com", id={"value": "f.example.com"}),
    fw(extra_field_from_a_newer_mesos={"kept": True}),
]

INVALID: list[tuple[dict[str, Any], str]] = [
    ({"metadata": {"name": FID}}, "spec.frameworkInfo: Required value"),
    ({"metadata": {"name": FID}, "spec": {"frameworkInfo": "x"}},
     'spec.frameworkInfo: Invalid value: "x": must be of type object'),
    ({"metadata": {"name": FID}, "spec": {"frameworkInfo": {"user": "root"}}}, "spec.frameworkInfo.name: Required value"),
    (fw(name=""), "spec.frameworkInfo.name: Required value"),
    (fw(name=7), "spec.frameworkInfo.name: Invalid value: 7: must be of type string"),
    ({"metadata": {"name": FID}, "spec": {"frameworkInfo": {"name": "n"}}}, "spec.frameworkInfo.user: Required value"),
    (fw(user=""), "spec.frameworkInfo.user: Required value"),
    (fw(failover_timeout=-1), "spec.frameworkInfo.failover_timeout: Invalid value: -1: must be greater than or equal to 0"),
    (fw(failover_timeout="1w"), 'spec.frameworkInfo.failover_timeout: Invalid value: "1w": must be of type number'),
    (fw(failover_timeout=True), "spec.frameworkInfo.failover_timeout: Invalid value: true: must be of type number"),
    (fw(roles="dev"), 'spec.frameworkInfo.roles: Invalid value: "dev": must be of type array'),
    (fw(roles=["dev", 3]), "spec.frameworkInfo.roles[1]: Invalid value: 3: must be of type string"),
    (fw(roles=[""]), 'spec.frameworkInfo.roles[0]: Invalid value: "": Role names cannot be the empty string'),
    (fw(roles=["ok", "/a"]), 'spec.frameworkInfo.roles[1]: Invalid value: "/a": Role cannot start with a slash'),
    (fw(roles=["a/"]), "Role cannot end with a slash"),
    (fw(roles=["a//b"]), "Role cannot contain two adjacent slashes"),
    (fw(roles=["."]), "Role cannot include '.' as a component"),
    (fw(roles=["a/../b"]), "Role cannot include '..' as a component"),
    (fw(roles=["a/*"]), "Role cannot include '*' as a component"),
    (fw(roles=["-a"]), "Role component '-a' is invalid because it starts with a dash"),
    (fw(roles=["a/-b"]), "Role component '-b' is invalid because it starts with a dash"),
    (fw(roles=["a b"]), "spec.frameworkInfo.roles[0]: Invalid value: \"a b\": Role component 'a b' is invalid because it contains whitespace"),
    (fw(roles=["a\x01"]), "because it contains whitespace or a control character"),
    (fw(roles=["dev", "dev"]), 'spec.frameworkInfo.roles[1]: Duplicate value: "dev"'),
    (fw(role=".."), 'spec.frameworkInfo.role: Invalid value: "..": Role cannot include \'..\' as a component'),
    (fw(role=["dev"]), "spec.frameworkInfo.role: Invalid value: [\"dev\"]: must be of type string"),
    (fw(role="dev", roles=["ops"]), "spec.frameworkInfo.role: Forbidden: may not be set together with `roles`"),
    (fw(id={"value": "other-0000"}), 'spec.frameworkInfo.id.value: Invalid value: "other-0000": must equal metadata.name'),
    (fw(id={}), "spec.frameworkInfo.id.value: Required value"),
    (fw(id="x"), 'spec.frameworkInfo.id: Invalid value: "x": must be of type object'),
    (fw("Not_A_Name"), 'metadata.name: Invalid value: "Not_A_Name"'),
    ({**fw(), "metadata": {"name": FID, "namespace": "mesos"}}, "metadata.namespace: Forbidden: not allowed on this type"),
]

STATUS_INVALID: list[tuple[Any, str]] = [
    ("up", 'status: Invalid value: "up": must be of type object'),
    ({"connected": "yes"}, 'status.connected: Invalid value: "yes": must be of type boolean'),
    ({"active": 1}, "status.active: Invalid value: 1: must be of type boolean"),
    ({"registeredTime": "yesterday"}, 'status.registeredTime: Invalid value: "yesterday": must be an RFC 3339 date and time'),
    ({"disconnectedTime": "2026-12-04"}, 'status.disconnectedTime: Invalid value: "2026-12-04": must be an RFC 3339'),
    ({"reregisteredTime": "2026-13-04T10:00:00Z"}, "status.reregisteredTime: Invalid value"),
    ({"registeredTime": 1700000000}, "status.registeredTime: Invalid value: 1700000000: must be of type string"),
    ({"tasks": [1]}, "status.tasks: Invalid value: [1]: must be of type object"),
    ({"tasks": {"running": -1}}, "status.tasks.running: Invalid value: -1: must be greater than or equal to 0"),
    ({"tasks": {"running": 1.5}}, "status.tasks.running: Invalid value: 1.5: must be of type integer"),
    ({"tasks": {"running": "2"}}, 'status.tasks.running: Invalid value: "2": must be of type integer'),
    ({"allocated": {"cpus": "0.5"}}, 'status.allocated.cpus: Invalid value: "0.5": must be of type number'),
    ({"offered": {"mem": -512}}, "status.offered.mem: Invalid value: -512: must be greater than or equal to 0"),
]
# fmt: on


@pytest.mark.parametrize("obj", VALID, ids=[f"valid-{i}" for i in range(len(VALID))])
def test_valid_frameworks(obj: dict[str, Any]) -> None:
    made, errs = create(GROUP, PLURAL, obj)
    assert errs == []
    assert made["spec"] == obj["spec"]  # frameworkInfo kept as the framework sent it


@pytest.mark.parametrize(
    ("obj", "message"), INVALID, ids=[f"invalid-{i}" for i in range(len(INVALID))]
)
def test_invalid_frameworks(obj: dict[str, Any], message: str) -> None:
    _, errs = create(GROUP, PLURAL, obj)
    assert any(message in e for e in errs), errs


def test_status_reset_on_create_and_kept_on_update() -> None:
    made, errs = create(GROUP, PLURAL, {**fw(), "status": STATUS})
    assert errs == []
    assert "status" not in made  # the master writes status through /status
    assert made["metadata"]["generation"] == 1
    old = {**made, "status": STATUS}
    same = copy.deepcopy(old)
    same["status"] = {"connected": False}  # ignored on the main resource
    assert update(GROUP, PLURAL, old, same) == []
    strategy = by_plural(GROUP, PLURAL).strategy  # type: ignore[union-attr]
    strategy.prepare_for_update(same, old)
    assert same["status"] == STATUS and same["metadata"]["generation"] == 1
    changed = copy.deepcopy(old)
    changed["spec"]["frameworkInfo"]["failover_timeout"] = 5
    strategy.prepare_for_update(changed, old)
    assert changed["metadata"]["generation"] == 2


def test_status_update_changes_status_only() -> None:
    strategy = by_plural(GROUP, PLURAL).strategy  # type: ignore[union-attr]
    old, _ = create(GROUP, PLURAL, fw())
    new = copy.deepcopy(old)
    new["spec"]["frameworkInfo"]["name"] = "renamed"
    new["status"] = STATUS
    strategy.prepare_for_status_update(new, old)
    assert new["spec"] == old["spec"] and new["status"] == STATUS
    assert strategy.validate_status_update(new, old) == []


@pytest.mark.parametrize(
    ("status", "message"),
    STATUS_INVALID,
    ids=[f"status-{i}" for i in range(len(STATUS_INVALID))],
)
def test_invalid_status(status: Any, message: str) -> None:
    strategy = by_plural(GROUP, PLURAL).strategy  # type: ignore[union-attr]
    old, _ = create(GROUP, PLURAL, fw())
    errs = [str(e) for e in strategy.validate_status_update({**old, "status": status}, old)]
    assert any(message in e for e in errs), errs


@pytest.mark.parametrize(
    ("role", "ok"),
    [
        ("*", True),
        ("dev", True),
        ("eng/backend/x", True),
        ("a.b", True),
        ("a-", True),
        ("..a", True),
        ("", False),
        (".", False),
        ("..", False),
        ("-x", False),
        ("/a", False),
        ("a/", False),
        ("a//b", False),
        ("a/./b", False),
        ("**", True),
        ("a\tb", False),
        ("a\u00a0b", False),
        ("a\x7f", False),
    ],
)
def test_role_names(role: str, ok: bool) -> None:
    assert (role_error(role) is None) is ok


# --- table, schema, discovery, OpenAPI --------------------------------------------------

NOW = datetime(2026, 12, 4, 10, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("obj", "cells"),
    [
        (
            {
                "metadata": {"name": FID, "creationTimestamp": "2026-12-04T10:00:00Z"},
                "spec": {"frameworkInfo": {**FULL_INFO, "roles": ["dev", "ops"], "principal": "p"}},
                "status": STATUS,
            },
            [FID, "my-framework", "dev,ops", "True", 2, 0.5, 128, "5m", "True", "root", "p", ""],
        ),
        (
            {
                "metadata": {"name": FID, "creationTimestamp": "2026-12-04T10:04:00Z"},
                "spec": {"frameworkInfo": info(role="batch", hostname="h1")},
            },
            [FID, "my-framework", "batch", "False", 0, 0, 0, "60s", "False", "root", "", "h1"],
        ),
        (
            {
                "metadata": {"name": FID},
                "spec": {"frameworkInfo": info()},
                "status": {"allocated": {"mem": 2048.0}},
            },
            [FID, "my-framework", "*", "False", 0, 0, 2048, "<unknown>", "False", "root", "", ""],
        ),
    ],
    ids=["multi-role", "legacy-role", "defaults"],
)
def test_table(obj: dict[str, Any], cells: list[Any]) -> None:
    names = [c["name"] for c in tables.columns(PLURAL, GROUP)]
    wide = [c["name"] for c in tables.columns(PLURAL, GROUP) if c["priority"] == 1]
    assert names[:8] == ["Name", "Framework", "Roles", "Connected", "Tasks", "CPUs", "Mem", "Age"]
    assert wide == ["Active", "User", "Principal", "Hostname"]
    row = tables.row(PLURAL, GROUP, obj, NOW)
    assert row == cells
    assert [type(c) for c in row] == [type(c) for c in cells]  # 2048, not 2048.0


def test_schema_prunes_spec_but_keeps_framework_info() -> None:
    node = SchemaNode(DEFINITIONS[DEFINITION], DEFINITION)
    obj = {**fw(odd={"x": 1}), "status": STATUS}
    obj["spec"]["unknown"] = 1
    unknown: list[str] = []
    out = check_types(obj, node, unknown=unknown)
    assert unknown == ["spec.unknown"]
    assert out["spec"]["frameworkInfo"]["odd"] == {"x": 1}
    assert out["status"] == STATUS
    with pytest.raises(TypeMismatch, match="of type bool"):
        check_types({"status": {"connected": "yes"}}, node)


def test_discovery_lists_frameworks() -> None:
    disc = Discovery(RESOURCES, "127.0.0.1:6443")
    res = orjson.loads(disc.resource_lists["mesos.corral.dev/v1"])["resources"]
    assert res == [
        {
            "name": "frameworks",
            "singularName": "framework",
            "namespaced": False,
            "kind": "Framework",
            "verbs": list(by_plural(GROUP, PLURAL).verbs),  # type: ignore[union-attr]
            "shortNames": ["fw"],
            "categories": ["mesos"],
        },
        {
            "name": "frameworks/status",
            "singularName": "",
            "namespaced": False,
            "kind": "Framework",
            "verbs": ["get", "patch", "update"],
        },
    ]
    groups = [g["name"] for g in orjson.loads(disc.apis)["groups"]]
    assert "mesos.corral.dev" in groups
    (item,) = [
        i for i in orjson.loads(disc.aggregated_apis)["items"] if i["metadata"]["name"] == GROUP
    ]
    (fw_res,) = item["versions"][0]["resources"]
    assert fw_res["scope"] == "Cluster" and fw_res["subresources"][0]["subresource"] == "status"


def test_openapi_v3_describes_framework() -> None:
    doc = orjson.loads(OpenAPIDocs(RESOURCES).document("apis/mesos.corral.dev/v1") or b"{}")
    schemas = doc["components"]["schemas"]
    framework = schemas[DEFINITION]
    assert framework["x-kubernetes-group-version-kind"] == [
        {"group": GROUP, "kind": "Framework", "version": "v1"}
    ]
    info_schema = framework["properties"]["spec"]["properties"]["frameworkInfo"]
    assert info_schema["x-kubernetes-preserve-unknown-fields"] is True
    assert framework["properties"]["status"]["properties"]["connected"]["type"] == "boolean"
    assert LIST_DEFINITION in schemas
    text = orjson.dumps(doc).decode()
    for ref in text.split('"$ref":"#/components/schemas/')[1:]:
        assert ref.split('"', 1)[0] in schemas
    paths = doc["paths"]
    assert "/apis/mesos.corral.dev/v1/frameworks/{name}/status" in paths
    patch = paths["/apis/mesos.corral.dev/v1/frameworks/{name}"]["patch"]
    assert any(p["name"] == "fieldValidation" for p in patch["parameters"])


def test_openapi_v2_describes_framework() -> None:
    doc = orjson.loads(OpenAPIV2(OpenAPIDocs(RESOURCES)).body(JSON_CT))
    framework = doc["definitions"][DEFINITION]
    assert framework["properties"]["metadata"]["$ref"] == (
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    )
    assert doc["definitions"][LIST_DEFINITION]["properties"]["items"]["items"] == {
        "$ref": "#/definitions/" + DEFINITION
    }
    assert "/apis/mesos.corral.dev/v1/frameworks" in doc["paths"]
