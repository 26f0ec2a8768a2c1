"""marathon.corral.dev/v1 App: the strategy through the shared registry suite, its
Marathon path-id and status rules, its table row, schema, field selector, discovery and
OpenAPI entries (next to apps/v1, whose group has the name of this plural)."""

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
from corral.apiserver.registry.marathon import (
    DEFINITION,
    DEFINITIONS,
    LIST_DEFINITION,
    PATH_ID_ERROR,
    RESERVED_ERROR,
    MarathonAppStrategy,
)
from corral.apiserver.registry.table import RESOURCES, by_plural

from .test_strategies import create, update

GROUP, PLURAL = "marathon.corral.dev", "apps"
OBJ_NAME = "web-api-3f2a9c01de"
VERSION = "2026-12-04T10:00:00.000Z"


def app(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "/web/api", "cmd": "python3 -m http.server $PORT0"}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not ...}  # ``...``: leave the key out


def mapp(obj_name: str = OBJ_NAME, versions: Any = ..., **kw: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"app": app(**kw)}
    if versions is not ...:
        spec["versions"] = versions
    return {"metadata": {"name": obj_name, "namespace": "marathon"}, "spec": spec}


#: an app as the Marathon service writes it: Marathon's JSON with the RAML defaults
FULL_APP = app(
    args=None,
    user="nobody",
    env={"LOG": "info", "DB_PASSWORD": {"secret": "db"}},
    instances=2,
    cpus=0.25,
    mem=64,
    disk=0,
    gpus=0,
    executor="",
    constraints=[["hostname", "UNIQUE"], ["rack", "GROUP_BY", "2"]],
    uris=[],
    fetch=[{"uri": "https://x/a.tgz", "extract": True}],
    storeUrls=[],
    backoffSeconds=1,
    backoffFactor=1.15,
    maxLaunchDelaySeconds=300,
    container={
        "type": "DOCKER",
        "docker": {"image": "nginx:1.27", "network": "BRIDGE", "privileged": False},
        "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}],
        "volumes": [{"containerPath": "/data", "hostPath": "/srv", "mode": "RW"}],
    },
    healthChecks=[{"protocol": "HTTP", "path": "/", "portIndex": 0, "gracePeriodSeconds": 300}],
    readinessChecks=[],
    dependencies=["/db", "/prod/cache.v2"],
    upgradeStrategy={"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0},
    unreachableStrategy={"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0},
    killSelection="YOUNGEST_FIRST",
    labels={"team": "x"},
    acceptedResourceRoles=["*"],
    portDefinitions=[{"port": 10000, "protocol": "tcp", "name": "http", "labels": {}}],
    requirePorts=False,
    ipAddress=None,
    secrets={},
    residency=None,
    networks=[{"mode": "container/bridge"}],
    taskKillGracePeriodSeconds=5,
    role="*",
    version=VERSION,
    versionInfo={"lastScalingAt": VERSION, "lastConfigChangeAt": VERSION},
)
STATUS: dict[str, Any] = {
    "tasksRunning": 2,
    "tasksStaged": 1,
    "tasksHealthy": 2,
    "tasksUnhealthy": 0,
    "queued": 1,
    "deployments": [{"id": "97c136bf-5a28-4821-9d94-480d9fbb01c8"}],
    "lastTaskFailure": {
        "appId": "/web/api",
        "taskId": "web_api.1f2e",
        "state": "TASK_FAILED",
        "message": "Command exited with status 1",
        "host": "node-1",
        "timestamp": "2026-12-04T09:59:00.000Z",
        "version": VERSION,
        "slaveId": "S0",  # unknown failure fields are kept
    },
    "version": VERSION,
}

# fmt: off
VALID: list[dict[str, Any]] = [
    mapp(),
    {"metadata": {"name": OBJ_NAME, "namespace": "marathon"}, "spec": {"app": FULL_APP, "versions": [VERSION]}},
    mapp(cmd=..., args=["nginx", "-g", "daemon off;"]),
    mapp(cmd=...),                                                  # cmd/args/container: the Marathon API's
    mapp(id="/a"),
    mapp(id="/prod/web.v2/api-1"),                                  # segments are dot-separated labels
    mapp(id="/tasks/web"),                                          # reserved only as the last segment
    mapp(id="/web/restarter"),
    mapp(id="/" + "a" * 300),                                       # Marathon sets no length limit
    mapp(instances=0, cpus=0, mem=0, disk=0, gpus=0),
    mapp(instances=2.0, mem=128.5, backoffSeconds=1.0),
    mapp(versions=[]),
    mapp(versions=["2026-12-04T09:00:00.000Z", "2026-12-04T10:00:00Z", "2026-12-04T11:00:00.5+01:00"]),
    mapp(dependencies=[]),
    mapp(futureField={"kept": True}, container={"type": "MESOS", "docker": {"image": "x"}}),
    mapp(killSelection="whatever"),                                 # semantics: the Marathon API's
    {"metadata": {"name": OBJ_NAME, "namespace": "default"}, "spec": {"app": app()}},  # any namespace
]

INVALID: list[tuple[dict[str, Any], str]] = [
    ({"metadata": {"name": OBJ_NAME}}, "spec.app: Required value"),
    ({"metadata": {"name": OBJ_NAME}, "spec": {}}, "spec.app: Required value"),
    ({"metadata": {"name": OBJ_NAME}, "spec": "x"}, 'spec: Invalid value: "x": must be of type object'),
    ({"metadata": {"name": OBJ_NAME}, "spec": {"app": ["x"]}}, 'spec.app: Invalid value: ["x"]: must be of type object'),
    (mapp(id=...), "spec.app.id: Required value"),
    (mapp(id=""), "spec.app.id: Required value"),
    (mapp(id=7), "spec.app.id: Invalid value: 7: must be of type string"),
    (mapp(id="web"), "spec.app.id: Invalid value: \"web\": must be absolute (start with '/')"),
    (mapp(id="web/api"), "spec.app.id: Invalid value: \"web/api\": must be absolute"),
    (mapp(id="/"), 'spec.app.id: Invalid value: "/": must contain at least one path element'),
    (mapp(id="/Web"), f'spec.app.id: Invalid value: "/Web": {PATH_ID_ERROR}'),
    (mapp(id="/web/"), 'spec.app.id: Invalid value: "/web/": must be an absolute path of'),
    (mapp(id="/web//api"), 'spec.app.id: Invalid value: "/web//api"'),
    (mapp(id="/web/../api"), 'spec.app.id: Invalid value: "/web/../api"'),  # stored canonical
    (mapp(id="/web/./api"), 'spec.app.id: Invalid value: "/web/./api"'),
    (mapp(id="/-web"), 'spec.app.id: Invalid value: "/-web"'),
    (mapp(id="/web-"), 'spec.app.id: Invalid value: "/web-"'),
    (mapp(id="/web.-a"), 'spec.app.id: Invalid value: "/web.-a"'),
    (mapp(id="/a..b"), 'spec.app.id: Invalid value: "/a..b"'),
    (mapp(id="/web_api"), 'spec.app.id: Invalid value: "/web_api"'),
    (mapp(id="/web api"), 'spec.app.id: Invalid value: "/web api"'),
    (mapp(id="/web\n"), "spec.app.id: Invalid value"),
    (mapp(id="/caf\u00e9"), "spec.app.id: Invalid value"),
    (mapp(id="/web/tasks"), f'spec.app.id: Invalid value: "/web/tasks": {RESERVED_ERROR}'),
    (mapp(id="/restart"), "must not end with any of the following reserved keywords: restart, tasks, versions"),
    (mapp(id="/web/versions"), 'spec.app.id: Invalid value: "/web/versions": must not end with'),
    (mapp(cmd=["echo"]), 'spec.app.cmd: Invalid value: ["echo"]: must be of type string'),
    (mapp(args="echo 1"), 'spec.app.args: Invalid value: "echo 1": must be of type array'),
    (mapp(args=["echo", 1]), "spec.app.args[1]: Invalid value: 1: must be of type string"),
    (mapp(cpus=-0.1), "spec.app.cpus: Invalid value: -0.1: must be greater than or equal to 0"),
    (mapp(mem=-1), "spec.app.mem: Invalid value: -1: must be greater than or equal to 0"),
    (mapp(disk="256"), 'spec.app.disk: Invalid value: "256": must be of type number'),
    (mapp(cpus=True), "spec.app.cpus: Invalid value: true: must be of type number"),
    (mapp(instances=-1), "spec.app.instances: Invalid value: -1: must be greater than or equal to 0"),
    (mapp(instances=1.5), "spec.app.instances: Invalid value: 1.5: must be of type integer"),
    (mapp(instances="2"), 'spec.app.instances: Invalid value: "2": must be of type integer'),
    (mapp(gpus=0.5), "spec.app.gpus: Invalid value: 0.5: must be of type integer"),
    (mapp(backoffSeconds=-1), "spec.app.backoffSeconds: Invalid value: -1: must be greater than or equal to 0"),
    (mapp(backoffFactor=-1.15), "spec.app.backoffFactor: Invalid value: -1.15: must be greater than or equal to 0"),
    (mapp(maxLaunchDelaySeconds=-300), "spec.app.maxLaunchDelaySeconds: Invalid value: -300"),
    (mapp(taskKillGracePeriodSeconds="5"), 'spec.app.taskKillGracePeriodSeconds: Invalid value: "5": must be of type integer'),
    (mapp(requirePorts="false"), 'spec.app.requirePorts: Invalid value: "false": must be of type boolean'),
    (mapp(user=0), "spec.app.user: Invalid value: 0: must be of type string"),
    (mapp(container="nginx"), 'spec.app.container: Invalid value: "nginx": must be of type object'),
    (mapp(env=[["A", "1"]]), 'spec.app.env: Invalid value: [["A","1"]]: must be of type object'),
    (mapp(labels="team=x"), 'spec.app.labels: Invalid value: "team=x": must be of type object'),
    (mapp(constraints={"hostname": "UNIQUE"}), "spec.app.constraints: Invalid value: {\"hostname\":\"UNIQUE\"}: must be of type array"),
    (mapp(healthChecks={}), "spec.app.healthChecks: Invalid value: {}: must be of type array"),
    (mapp(portDefinitions=80), "spec.app.portDefinitions: Invalid value: 80: must be of type array"),
    (mapp(acceptedResourceRoles=["*", 1]), "spec.app.acceptedResourceRoles[1]: Invalid value: 1: must be of type string"),
    (mapp(uris="http://x"), 'spec.app.uris: Invalid value: "http://x": must be of type array'),
    (mapp(upgradeStrategy=1), "spec.app.upgradeStrategy: Invalid value: 1: must be of type object"),
    (mapp(dependencies="/db"), 'spec.app.dependencies: Invalid value: "/db": must be of type array'),
    (mapp(dependencies=["/db", "cache"]), 'spec.app.dependencies[1]: Invalid value: "cache": must be absolute'),
    (mapp(dependencies=["/db", "/Cache"]), 'spec.app.dependencies[1]: Invalid value: "/Cache": must be an absolute path of'),
    (mapp(dependencies=["/db", ""]), "spec.app.dependencies[1]: Required value"),
    (mapp(dependencies=["/db", 3]), "spec.app.dependencies[1]: Invalid value: 3: must be of type string"),
    (mapp(dependencies=["/db", "/db"]), 'spec.app.dependencies[1]: Duplicate value: "/db"'),
    (mapp(version="yesterday"), 'spec.app.version: Invalid value: "yesterday": must be an RFC 3339 date and time'),
    (mapp(version=1764842400000), "spec.app.version: Invalid value: 1764842400000: must be of type string"),
    (mapp(versions="2026-12-04T10:00:00Z"), 'spec.versions: Invalid value: "2026-12-04T10:00:00Z": must be of type array'),
    (mapp(versions=[VERSION, "2026-12-04"]), 'spec.versions[1]: Invalid value: "2026-12-04": must be an RFC 3339 date and time'),
    (mapp(versions=[""]), 'spec.versions[0]: Invalid value: "": must be an RFC 3339'),
    (mapp(versions=[None]), "spec.versions[0]: Required value"),
    (mapp(versions=[5]), "spec.versions[0]: Invalid value: 5: must be of type string"),
    (mapp(versions=["2026-13-04T10:00:00Z"]), "spec.versions[0]: Invalid value"),
    (mapp(versions=[VERSION, VERSION]), f'spec.versions[1]: Duplicate value: "{VERSION}"'),
    (mapp("Web_Api"), 'metadata.name: Invalid value: "Web_Api"'),
    (mapp("web.api"), 'metadata.name: Invalid value: "web.api"'),   # a DNS label, not a subdomain
]

STATUS_INVALID: list[tuple[Any, str]] = [
    ("running", 'status: Invalid value: "running": must be of type object'),
    ({"tasksRunning": -1}, "status.tasksRunning: Invalid value: -1: must be greater than or equal to 0"),
    ({"tasksStaged": 1.5}, "status.tasksStaged: Invalid value: 1.5: must be of type integer"),
    ({"tasksHealthy": "2"}, 'status.tasksHealthy: Invalid value: "2": must be of type integer'),
    ({"tasksUnhealthy": True}, "status.tasksUnhealthy: Invalid value: true: must be of type integer"),
    ({"queued": -3}, "status.queued: Invalid value: -3: must be greater than or equal to 0"),
    ({"deployments": {"id": "d"}}, 'status.deployments: Invalid value: {"id":"d"}: must be of type array'),
    ({"deployments": ["d"]}, 'status.deployments[0]: Invalid value: "d": must be of type object'),
    ({"deployments": [{"id": "d"}, {}]}, "status.deployments[1].id: Required value"),
    ({"deployments": [{"id": 7}]}, "status.deployments[0].id: Invalid value: 7: must be of type string"),
    ({"deployments": [{"id": "d"}, {"id": "d"}]}, 'status.deployments[1].id: Duplicate value: "d"'),
    ({"lastTaskFailure": "boom"}, 'status.lastTaskFailure: Invalid value: "boom": must be of type object'),
    ({"version": "yesterday"}, 'status.version: Invalid value: "yesterday": must be an RFC 3339 date and time'),
    ({"version": 1}, "status.version: Invalid value: 1: must be of type string"),
]
# fmt: on


def strategy() -> MarathonAppStrategy:
    s = by_plural(GROUP, PLURAL).strategy  # type: ignore[union-attr]
    assert isinstance(s, MarathonAppStrategy)
    return s


@pytest.mark.parametrize("obj", VALID, ids=[f"valid-{i}" for i in range(len(VALID))])
def test_valid_apps(obj: dict[str, Any]) -> None:
    made, errs = create(GROUP, PLURAL, obj)
    assert errs == []
    assert made["spec"] == obj["spec"]  # the app kept as Marathon serialised it


@pytest.mark.parametrize(
    ("obj", "message"), INVALID, ids=[f"invalid-{i}" for i in range(len(INVALID))]
)
def test_invalid_apps(obj: dict[str, Any], message: str) -> None:
    _, errs = create(GROUP, PLURAL, obj)
    assert any(message in e for e in errs), errs


def test_one_error_per_fault() -> None:
    _, errs = create(GROUP, PLURAL, mapp(versions=["x"], dependencies=["/a", "/a"], cpus=-1))
    assert errs == [
        "spec.app.cpus: Invalid value: -1: must be greater than or equal to 0",
        'spec.app.dependencies[1]: Duplicate value: "/a"',
        'spec.versions[0]: Invalid value: "x": must be an RFC 3339 date and time, '
        'e.g. "2026-12-04T10:00:00.000Z"',
    ]


def test_the_id_error_names_its_regex() -> None:
    _, errs = create(GROUP, PLURAL, mapp(id="/Web"))
    assert errs == [
        "spec.app.id: Invalid value: \"/Web\": must be an absolute path of '/'-separated "
        "segments, each consisting of lower case alphanumeric characters, '-' or '.', and "
        "starting and ending with an alphanumeric character (e.g. '/web/api', regex used for "
        "validation is '^(/[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)+$')"
    ]


def test_status_reset_on_create_and_kept_on_update() -> None:
    made, errs = create(GROUP, PLURAL, {**mapp(), "status": STATUS})
    assert errs == []
    assert "status" not in made  # the service writes status through /status
    assert made["metadata"]["generation"] == 1
    old = {**made, "status": STATUS}
    same = copy.deepcopy(old)
    same["status"] = {"tasksRunning": 99}  # ignored on the main resource
    assert update(GROUP, PLURAL, old, same) == []
    strategy().prepare_for_update(same, old)
    assert same["status"] == STATUS and same["metadata"]["generation"] == 1
    scaled = copy.deepcopy(old)
    scaled["spec"]["app"]["instances"] = 3
    strategy().prepare_for_update(scaled, old)
    assert scaled["metadata"]["generation"] == 2
    versioned = copy.deepcopy(old)
    versioned["spec"]["versions"] = [VERSION]  # the version history is spec too
    strategy().prepare_for_update(versioned, old)
    assert versioned["metadata"]["generation"] == 2


def test_app_id_is_immutable() -> None:
    old, _ = create(GROUP, PLURAL, mapp())
    moved = copy.deepcopy(old)
    moved["spec"]["app"]["id"] = "/web/api2"
    assert update(GROUP, PLURAL, old, moved) == [
        'spec.app.id: Invalid value: "/web/api2": field is immutable'
    ]
    changed = copy.deepcopy(old)
    changed["spec"]["app"] = app(cmd=..., args=["x"], instances=5)  # the rest may change
    changed["spec"]["versions"] = [VERSION]
    assert update(GROUP, PLURAL, old, changed) == []


def test_status_update_changes_status_only() -> None:
    old, _ = create(GROUP, PLURAL, mapp())
    new = copy.deepcopy(old)
    new["spec"]["app"]["cmd"] = "rm -rf /"
    new["status"] = STATUS
    strategy().prepare_for_status_update(new, old)
    assert new["spec"] == old["spec"] and new["status"] == STATUS
    assert strategy().validate_status_update(new, old) == []
    assert strategy().validate_status_update({**old, "status": {"version": ""}}, old) == []


@pytest.mark.parametrize(
    ("status", "message"),
    STATUS_INVALID,
    ids=[f"status-{i}" for i in range(len(STATUS_INVALID))],
)
def test_invalid_status(status: Any, message: str) -> None:
    old, _ = create(GROUP, PLURAL, mapp())
    errs = [str(e) for e in strategy().validate_status_update({**old, "status": status}, old)]
    assert any(message in e for e in errs), errs


def test_field_selector_reads_the_marathon_id() -> None:
    select = strategy().field_selectors["spec.app.id"]
    assert select(mapp()) == "/web/api"
    assert select({"spec": {"app": "x"}}) == "" and select({}) == ""
    assert select({"spec": {"app": {"id": 5}}}) == ""


# --- table, schema, discovery, OpenAPI --------------------------------------------------

NOW = datetime(2026, 12, 4, 10, 5, tzinfo=UTC)
META = {"name": OBJ_NAME, "namespace": "marathon", "creationTimestamp": "2026-12-04T10:00:00Z"}


@pytest.mark.parametrize(
    ("obj", "cells"),
    [
        (
            {"metadata": META, "spec": {"app": FULL_APP}, "status": STATUS},
            ["/web/api", 2, 2, 2, 1, 0.25, 64, "5m", OBJ_NAME, "nginx:1.27",
             "python3 -m http.server $PORT0"],
        ),
        (
            {
                "metadata": {**META, "name": "db-0c1d2e3f4a"},
                "spec": {"app": app(id="/db", cmd=..., args=["postgres", "-p", "5432"],
                                    instances=0, cpus=1.0, mem=1024.5)},
                "status": {"tasksRunning": 1, "deployments": [{"id": "a"}, {"id": "b"}]},
            },
            ["/db", 0, 1, 0, 2, 1, 1024.5, "5m", "db-0c1d2e3f4a", "<none>", "postgres -p 5432"],
        ),
        (
            {"metadata": {"name": OBJ_NAME}, "spec": {"app": {"container": {"docker": {}}}}},
            ["", 1, 0, 0, 0, 1, 128, "<unknown>", OBJ_NAME, "<none>", "<none>"],
        ),
        (
            {"metadata": {"name": OBJ_NAME}, "spec": {"app": {"instances": "2", "cpus": True}},
             "status": {"tasksRunning": "1", "deployments": "a"}},
            ["", 1, 0, 0, 0, 1, 128, "<unknown>", OBJ_NAME, "<none>", "<none>"],
        ),
    ],
    ids=["full", "args", "defaults", "wrong-types"],
)  # fmt: skip
def test_table(obj: dict[str, Any], cells: list[Any]) -> None:
    columns = tables.columns(PLURAL, GROUP)
    names = [c["name"] for c in columns if c["priority"] == 0]
    assert names == ["ID", "Instances", "Running", "Healthy", "Deployments", "CPUs", "Mem", "Age"]
    wide = [c for c in columns if c["priority"] == 1]
    assert [c["name"] for c in wide] == ["Object", "Image", "Cmd"]
    assert wide[0]["format"] == "name"  # kubectl's kind prefix goes here
    assert columns[0]["format"] == ""  # a Marathon id is no object name
    assert all(c["description"] for c in columns)
    assert tables.row(PLURAL, GROUP, obj, NOW) == cells


def test_apps_v1_tables_are_untouched() -> None:
    """The Deployment printer is keyed by its group, not by the plural ``apps``."""
    assert tables.columns("deployments", "apps")[1]["name"] == "Ready"
    assert not tables.has_table("apps", "apps") and not tables.has_table("apps", "")


def test_schema_prunes_spec_but_keeps_the_app() -> None:
    node = SchemaNode(DEFINITIONS[DEFINITION], DEFINITION)
    obj = {**mapp(odd={"x": 1}, versions=[VERSION]), "status": STATUS}
    obj["spec"]["unknown"] = 1
    obj["status"] = {**STATUS, "bogus": True}
    unknown: list[str] = []
    out = check_types(obj, node, unknown=unknown)
    assert unknown == ["spec.unknown", "status.bogus"]
    assert out["spec"]["app"]["odd"] == {"x": 1}
    assert out["spec"]["versions"] == [VERSION]
    assert out["status"] == STATUS  # lastTaskFailure.slaveId kept
    with pytest.raises(TypeMismatch, match="of type int32"):
        check_types({"status": {"tasksRunning": "two"}}, node)
    with pytest.raises(TypeMismatch, match="of type string"):
        check_types({"status": {"version": 5}}, node)
    with pytest.raises(TypeMismatch, match="of type string"):
        check_types({"spec": {"versions": [5]}}, node)


def test_discovery_lists_apps_beside_the_apps_group() -> None:
    disc = Discovery(RESOURCES, "127.0.0.1:6443")
    res = orjson.loads(disc.resource_lists["marathon.corral.dev/v1"])["resources"]
    assert res == [
        {
            "name": "apps",
            "singularName": "app",
            "namespaced": True,
            "kind": "App",
            "verbs": list(by_plural(GROUP, PLURAL).verbs),  # type: ignore[union-attr]
            "shortNames": ["mapp"],
            "categories": ["marathon"],
        },
        {
            "name": "apps/status",
            "singularName": "",
            "namespaced": True,
            "kind": "App",
            "verbs": ["get", "patch", "update"],
        },
    ]
    apps_v1 = orjson.loads(disc.resource_lists["apps/v1"])["resources"]
    assert "apps" not in [r["name"] for r in apps_v1]
    assert "deployments" in [r["name"] for r in apps_v1]
    groups = [g["name"] for g in orjson.loads(disc.apis)["groups"]]
    assert GROUP in groups and "apps" in groups
    (item,) = [
        i for i in orjson.loads(disc.aggregated_apis)["items"] if i["metadata"]["name"] == GROUP
    ]
    (app_res,) = item["versions"][0]["resources"]
    assert app_res["scope"] == "Namespaced" and app_res["resource"] == "apps"
    assert app_res["subresources"][0]["subresource"] == "status"


def test_openapi_v3_describes_app() -> None:
    doc = orjson.loads(OpenAPIDocs(RESOURCES).document("apis/marathon.corral.dev/v1") or b"{}")
    schemas = doc["components"]["schemas"]
    marathon_app = schemas[DEFINITION]
    assert marathon_app["x-kubernetes-group-version-kind"] == [
        {"group": GROUP, "kind": "App", "version": "v1"}
    ]
    app_schema = marathon_app["properties"]["spec"]["properties"]["app"]
    assert app_schema["x-kubernetes-preserve-unknown-fields"] is True
    assert app_schema["required"] == ["id"]
    assert app_schema["properties"]["constraints"]["items"]["items"]["type"] == "string"
    status = marathon_app["properties"]["status"]["properties"]
    assert status["tasksRunning"] == {
        "type": "integer",
        "format": "int32",
        "description": status["tasksRunning"]["description"],
    }
    assert status["lastTaskFailure"]["x-kubernetes-preserve-unknown-fields"] is True
    assert LIST_DEFINITION in schemas
    text = orjson.dumps(doc).decode()
    for ref in text.split('"$ref":"#/components/schemas/')[1:]:
        assert ref.split('"', 1)[0] in schemas
    paths = doc["paths"]
    item = "/apis/marathon.corral.dev/v1/namespaces/{namespace}/apps/{name}"
    assert item + "/status" in paths
    assert "/apis/marathon.corral.dev/v1/apps" in paths  # all namespaces
    assert any(p["name"] == "fieldValidation" for p in paths[item]["patch"]["parameters"])
    apps_v1 = orjson.loads(OpenAPIDocs(RESOURCES).document("apis/apps/v1") or b"{}")
    assert DEFINITION not in apps_v1["components"]["schemas"]
    assert not any("/apps/v1/namespaces/{namespace}/apps" in p for p in apps_v1["paths"])


def test_openapi_v2_describes_app() -> None:
    doc = orjson.loads(OpenAPIV2(OpenAPIDocs(RESOURCES)).body(JSON_CT))
    marathon_app = doc["definitions"][DEFINITION]
    assert marathon_app["properties"]["metadata"]["$ref"] == (
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    )
    assert doc["definitions"][LIST_DEFINITION]["properties"]["items"]["items"] == {
        "$ref": "#/definitions/" + DEFINITION
    }
    assert "/apis/marathon.corral.dev/v1/namespaces/{namespace}/apps" in doc["paths"]
    assert "/apis/apps/v1/namespaces/{namespace}/deployments" in doc["paths"]
