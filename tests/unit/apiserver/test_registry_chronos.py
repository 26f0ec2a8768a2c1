"""chronos.corral.dev/v1 ChronosJob: the strategy through the shared registry suite, its
status rules, its table row, schema, field selector, discovery and OpenAPI entries."""

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
from corral.apiserver.registry.chronos import (
    DEFINITION,
    DEFINITIONS,
    LIST_DEFINITION,
    ChronosJobStrategy,
)
from corral.apiserver.registry.table import RESOURCES, by_plural

from .test_strategies import create, update

GROUP, PLURAL = "chronos.corral.dev", "chronosjobs"
OBJ_NAME = "etl-hourly-3f2a9c01de"
SCHEDULE = "R/2026-01-01T00:00:00Z/PT1H"


def job(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "etl_hourly", "command": "echo 1", "schedule": SCHEDULE}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not ...}  # ``...``: leave the key out


def chj(obj_name: str = OBJ_NAME, **kw: Any) -> dict[str, Any]:
    return {"metadata": {"name": obj_name, "namespace": "chronos"}, "spec": {"job": job(**kw)}}


#: a job as the Chronos service writes it: Chronos' JSON with the server defaults
FULL_JOB = job(
    shell=True,
    arguments=[],
    scheduleTimeZone="",
    parents=[],
    epsilon="PT60S",
    owner="ops@x.com",
    ownerName="",
    description="",
    disabled=False,
    retries=2,
    cpus=0.1,
    mem=128,
    disk=256,
    concurrent=False,
    highPriority=False,
    runAsUser="root",
    executor="",
    executorFlags="",
    uris=[],
    fetch=[],
    environmentVariables=[{"name": "A", "value": "1"}],
    constraints=[["rack", "EQUALS", "r1"]],
    container={"type": "DOCKER", "image": "busybox", "network": "BRIDGE", "volumes": []},
    successCount=0,
    errorCount=0,
    lastSuccess="",
    lastError="",
    errorsSinceLastSuccess=0,
    softError=False,
    dataProcessingJobType=False,
)
STATUS = {
    "successCount": 3,
    "errorCount": 1,
    "errorsSinceLastSuccess": 0,
    "lastSuccess": "2026-12-04T10:00:00.000Z",
    "lastError": "",
    "lastSlot": 1764842400000,
    "schedule": "R/2026-12-04T10:00:00.000Z/PT1H",
    "lastFinishedSlot": 1764842400000,
    "lastFinishedAttempt": 0,
    "runs": [
        {
            "taskId": "ct:1764842400000:0:etl_hourly",
            "slot": 1764842400000,
            "attempt": 0,
            "startTime": "2026-12-04T10:00:00.100Z",
            "endTime": "2026-12-04T10:00:01.200Z",
            "duration": 1.1,
            "status": "TASK_FINISHED",
            "agent": "node-1",
            "exitCode": 0,  # unknown run fields are kept
        }
    ],
    "state": "idle",
}

# fmt: off
VALID: list[dict[str, Any]] = [
    chj(),
    {"metadata": {"name": OBJ_NAME, "namespace": "chronos"}, "spec": {"job": FULL_JOB}},
    chj(name="a", command=""),                                     # an empty command is Chronos' business
    chj(schedule=..., parents=["etl_hourly", "a.b-c"]),            # a dependent job
    chj(schedule="", parents=["p"], scheduleTimeZone=""),          # "" is no schedule
    chj(schedule=None, parents=["p"]),
    chj(parents=[]),                                               # [] is no parents
    chj(schedule="not even ISO 8601"),                             # semantics: the Chronos API's
    chj(cpus=0, mem=0, disk=0, retries=0),
    chj(mem=128.5, retries=2.0),
    chj(lastSuccess="2026-12-04T10:00:00Z", lastError="2026-12-04T11:00:00.5+01:00"),
    chj(futureField={"kept": True}),
    {"metadata": {"name": OBJ_NAME, "namespace": "default"}, "spec": {"job": job()}},  # any namespace
]

INVALID: list[tuple[dict[str, Any], str]] = [
    ({"metadata": {"name": OBJ_NAME}}, "spec.job: Required value"),
    ({"metadata": {"name": OBJ_NAME}, "spec": {}}, "spec.job: Required value"),
    ({"metadata": {"name": OBJ_NAME}, "spec": "x"}, 'spec: Invalid value: "x": must be of type object'),
    ({"metadata": {"name": OBJ_NAME}, "spec": {"job": ["x"]}}, 'spec.job: Invalid value: ["x"]: must be of type object'),
    (chj(name=...), "spec.job.name: Required value"),
    (chj(name=""), "spec.job.name: Required value"),
    (chj(name=7), "spec.job.name: Invalid value: 7: must be of type string"),
    (chj(name="job with spaces"), "spec.job.name: Invalid value: \"job with spaces\": must consist of letters, digits, '_', '.' or '-'"),
    (chj(name="a/b"), 'spec.job.name: Invalid value: "a/b"'),
    (chj(name="caf\u00e9"), "spec.job.name: Invalid value"),                # \w is ASCII, as in Scala
    (chj(name="a\n"), "spec.job.name: Invalid value"),
    (chj(command=...), "spec.job.command: Required value"),
    (chj(command=["echo", "1"]), 'spec.job.command: Invalid value: ["echo","1"]: must be of type string'),
    (chj(schedule=...), "spec.job.schedule: Required value: one of `schedule` or `parents` is required"),
    (chj(schedule="", parents=[]), "spec.job.schedule: Required value"),
    (chj(schedule=3600), "spec.job.schedule: Invalid value: 3600: must be of type string"),
    (chj(parents=["a"]), "spec.job.parents: Forbidden: may not be set together with `schedule`"),
    (chj(schedule=..., parents="a"), 'spec.job.parents: Invalid value: "a": must be of type array'),
    (chj(schedule=..., parents=["a", ""]), "spec.job.parents[1]: Required value"),
    (chj(schedule=..., parents=["a", 2]), "spec.job.parents[1]: Invalid value: 2: must be of type string"),
    (chj(schedule=..., parents=["a b"]), 'spec.job.parents[0]: Invalid value: "a b": must consist of'),
    (chj(schedule=..., parents=["a", "a"]), 'spec.job.parents[1]: Duplicate value: "a"'),
    (chj(cpus=-0.1), "spec.job.cpus: Invalid value: -0.1: must be greater than or equal to 0"),
    (chj(mem=-1), "spec.job.mem: Invalid value: -1: must be greater than or equal to 0"),
    (chj(disk="256"), 'spec.job.disk: Invalid value: "256": must be of type number'),
    (chj(cpus=True), "spec.job.cpus: Invalid value: true: must be of type number"),
    (chj(retries=-1), "spec.job.retries: Invalid value: -1: must be greater than or equal to 0"),
    (chj(retries=1.5), "spec.job.retries: Invalid value: 1.5: must be of type integer"),
    (chj(errorCount=-2), "spec.job.errorCount: Invalid value: -2: must be greater than or equal to 0"),
    (chj(disabled="false"), 'spec.job.disabled: Invalid value: "false": must be of type boolean'),
    (chj(owner=["a@x.com"]), 'spec.job.owner: Invalid value: ["a@x.com"]: must be of type string'),
    (chj(scheduleTimeZone=1), "spec.job.scheduleTimeZone: Invalid value: 1: must be of type string"),
    (chj(uris="http://x"), 'spec.job.uris: Invalid value: "http://x": must be of type array'),
    (chj(container="busybox"), 'spec.job.container: Invalid value: "busybox": must be of type object'),
    (chj(lastSuccess="yesterday"), 'spec.job.lastSuccess: Invalid value: "yesterday": must be empty or an RFC 3339'),
    (chj("Not_A_Label"), 'metadata.name: Invalid value: "Not_A_Label"'),
    (chj("a.b"), 'metadata.name: Invalid value: "a.b"'),                    # a DNS label, not a subdomain
]

STATUS_INVALID: list[tuple[Any, str]] = [
    ("idle", 'status: Invalid value: "idle": must be of type object'),
    ({"successCount": -1}, "status.successCount: Invalid value: -1: must be greater than or equal to 0"),
    ({"errorCount": 1.5}, "status.errorCount: Invalid value: 1.5: must be of type integer"),
    ({"errorsSinceLastSuccess": "2"}, 'status.errorsSinceLastSuccess: Invalid value: "2": must be of type integer'),
    ({"lastSuccess": "yesterday"}, 'status.lastSuccess: Invalid value: "yesterday": must be empty or an RFC 3339 date and time'),
    ({"lastError": "2026-12-04"}, 'status.lastError: Invalid value: "2026-12-04"'),
    ({"lastError": "2026-13-04T10:00:00Z"}, "status.lastError: Invalid value"),
    ({"lastError": "2026-12-04T10:00:00Z\n"}, "status.lastError: Invalid value"),
    ({"lastSuccess": 1764842400000}, "status.lastSuccess: Invalid value: 1764842400000: must be of type string"),
    ({"lastSlot": -5}, "status.lastSlot: Invalid value: -5: must be greater than or equal to 0"),
    ({"lastSlot": "1764842400000"}, 'status.lastSlot: Invalid value: "1764842400000": must be of type integer'),
    ({"schedule": 3600}, "status.schedule: Invalid value: 3600: must be of type string"),
    ({"lastFinishedSlot": -1}, "status.lastFinishedSlot: Invalid value: -1: must be greater than or equal to 0"),
    ({"lastFinishedAttempt": 0.5}, "status.lastFinishedAttempt: Invalid value: 0.5: must be of type integer"),
    ({"runs": {}}, "status.runs: Invalid value: {}: must be of type array"),
    ({"runs": ["x"]}, 'status.runs[0]: Invalid value: "x": must be of type object'),
    ({"runs": [{"slot": -1}]}, "status.runs[0].slot: Invalid value: -1: must be greater than or equal to 0"),
    ({"runs": [{}, {"attempt": "1"}]}, 'status.runs[1].attempt: Invalid value: "1": must be of type integer'),
    ({"runs": [{"taskId": 5}]}, "status.runs[0].taskId: Invalid value: 5: must be of type string"),
    ({"runs": [{"duration": -0.5}]}, "status.runs[0].duration: Invalid value: -0.5: must be greater than or equal to 0"),
    ({"state": "sleeping"}, 'status.state: Unsupported value: "sleeping": supported values: "idle", "queued", "running"'),
]
# fmt: on


def strategy() -> ChronosJobStrategy:
    s = by_plural(GROUP, PLURAL).strategy  # type: ignore[union-attr]
    assert isinstance(s, ChronosJobStrategy)
    return s


@pytest.mark.parametrize("obj", VALID, ids=[f"valid-{i}" for i in range(len(VALID))])
def test_valid_chronos_jobs(obj: dict[str, Any]) -> None:
    made, errs = create(GROUP, PLURAL, obj)
    assert errs == []
    assert made["spec"] == obj["spec"]  # the job kept as Chronos serialised it


@pytest.mark.parametrize(
    ("obj", "message"), INVALID, ids=[f"invalid-{i}" for i in range(len(INVALID))]
)
def test_invalid_chronos_jobs(obj: dict[str, Any], message: str) -> None:
    _, errs = create(GROUP, PLURAL, obj)
    assert any(message in e for e in errs), errs


def test_one_error_per_fault() -> None:
    _, errs = create(GROUP, PLURAL, chj(schedule=..., parents=["a", "a"], cpus=-1))
    assert errs == [
        'spec.job.parents[1]: Duplicate value: "a"',
        "spec.job.cpus: Invalid value: -1: must be greater than or equal to 0",
    ]


def test_status_reset_on_create_and_kept_on_update() -> None:
    made, errs = create(GROUP, PLURAL, {**chj(), "status": STATUS})
    assert errs == []
    assert "status" not in made  # the service writes status through /status
    assert made["metadata"]["generation"] == 1
    old = {**made, "status": STATUS}
    same = copy.deepcopy(old)
    same["status"] = {"successCount": 99}  # ignored on the main resource
    assert update(GROUP, PLURAL, old, same) == []
    strategy().prepare_for_update(same, old)
    assert same["status"] == STATUS and same["metadata"]["generation"] == 1
    changed = copy.deepcopy(old)
    changed["spec"]["job"]["disabled"] = True
    strategy().prepare_for_update(changed, old)
    assert changed["metadata"]["generation"] == 2


def test_job_name_is_immutable() -> None:
    old, _ = create(GROUP, PLURAL, chj())
    renamed = copy.deepcopy(old)
    renamed["spec"]["job"]["name"] = "etl_daily"
    assert update(GROUP, PLURAL, old, renamed) == [
        'spec.job.name: Invalid value: "etl_daily": field is immutable'
    ]
    rescheduled = copy.deepcopy(old)
    rescheduled["spec"]["job"] = job(schedule=..., parents=["a"])  # a trigger may change
    assert update(GROUP, PLURAL, old, rescheduled) == []


def test_status_update_changes_status_only() -> None:
    old, _ = create(GROUP, PLURAL, chj())
    new = copy.deepcopy(old)
    new["spec"]["job"]["command"] = "rm -rf /"
    new["status"] = STATUS
    strategy().prepare_for_status_update(new, old)
    assert new["spec"] == old["spec"] and new["status"] == STATUS
    assert strategy().validate_status_update(new, old) == []


@pytest.mark.parametrize(
    ("status", "message"),
    STATUS_INVALID,
    ids=[f"status-{i}" for i in range(len(STATUS_INVALID))],
)
def test_invalid_status(status: Any, message: str) -> None:
    old, _ = create(GROUP, PLURAL, chj())
    errs = [str(e) for e in strategy().validate_status_update({**old, "status": status}, old)]
    assert any(message in e for e in errs), errs


def test_field_selector_reads_the_chronos_name() -> None:
    select = strategy().field_selectors["spec.job.name"]
    assert select(chj()) == "etl_hourly"
    assert select({"spec": {"job": "x"}}) == "" and select({}) == ""


# --- table, schema, discovery, OpenAPI --------------------------------------------------

NOW = datetime(2026, 12, 4, 10, 5, tzinfo=UTC)
META = {"name": OBJ_NAME, "namespace": "chronos", "creationTimestamp": "2026-12-04T10:00:00Z"}


@pytest.mark.parametrize(
    ("obj", "cells"),
    [
        (
            {"metadata": META, "spec": {"job": FULL_JOB}, "status": STATUS},
            ["etl_hourly", SCHEDULE, "-", "2026-12-04T10:00:00.000Z", "<none>", 3, 1, "False",
             "5m", OBJ_NAME],
        ),
        (
            {
                "metadata": {**META, "name": "report-0c1d2e3f4a"},
                "spec": {"job": job(name="report", schedule=..., parents=["etl_hourly", "b"],
                                    disabled=True)},
                "status": {"lastError": "2026-12-04T09:00:00.000Z", "errorCount": 2},
            },
            ["report", "-", "etl_hourly,b", "<none>", "2026-12-04T09:00:00.000Z", 0, 2, "True",
             "5m", "report-0c1d2e3f4a"],
        ),
        (
            {"metadata": {"name": OBJ_NAME}, "spec": {"job": {"schedule": ""}}},
            ["", "-", "-", "<none>", "<none>", 0, 0, "False", "<unknown>", OBJ_NAME],
        ),
    ],
    ids=["scheduled", "dependent", "bare"],
)  # fmt: skip
def test_table(obj: dict[str, Any], cells: list[Any]) -> None:
    columns = tables.columns(PLURAL, GROUP)
    names = [c["name"] for c in columns if c["priority"] == 0]
    assert names == [
        "Name",
        "Schedule",
        "Parents",
        "Last Success",
        "Last Error",
        "Success",
        "Errors",
        "Disabled",
        "Age",
    ]
    (wide,) = [c for c in columns if c["priority"] == 1]
    assert wide["name"] == "Object" and wide["format"] == "name"  # kubectl's kind prefix goes here
    assert columns[0]["format"] == ""  # a Chronos name is no object name
    assert tables.row(PLURAL, GROUP, obj, NOW) == cells


def test_schema_prunes_spec_but_keeps_the_job() -> None:
    node = SchemaNode(DEFINITIONS[DEFINITION], DEFINITION)
    obj = {**chj(odd={"x": 1}), "status": STATUS}
    obj["spec"]["unknown"] = 1
    obj["status"] = {**STATUS, "bogus": True}
    unknown: list[str] = []
    out = check_types(obj, node, unknown=unknown)
    assert unknown == ["spec.unknown", "status.bogus"]
    assert out["spec"]["job"]["odd"] == {"x": 1}
    assert out["status"] == STATUS  # runs[0].exitCode kept
    with pytest.raises(TypeMismatch, match="of type int64"):
        check_types({"status": {"lastSlot": "soon"}}, node)
    with pytest.raises(TypeMismatch, match="of type string"):
        check_types({"status": {"lastSuccess": 5}}, node)
    assert check_types({"status": {"lastSuccess": ""}}, node) == {"status": {"lastSuccess": ""}}


def test_discovery_lists_chronos_jobs() -> None:
    disc = Discovery(RESOURCES, "127.0.0.1:6443")
    res = orjson.loads(disc.resource_lists["chronos.corral.dev/v1"])["resources"]
    assert res == [
        {
            "name": "chronosjobs",
            "singularName": "chronosjob",
            "namespaced": True,
            "kind": "ChronosJob",
            "verbs": list(by_plural(GROUP, PLURAL).verbs),  # type: ignore[union-attr]
            "shortNames": ["chj"],
            "categories": ["chronos"],
        },
        {
            "name": "chronosjobs/status",
            "singularName": "",
            "namespaced": True,
            "kind": "ChronosJob",
            "verbs": ["get", "patch", "update"],
        },
    ]
    groups = [g["name"] for g in orjson.loads(disc.apis)["groups"]]
    assert GROUP in groups
    (item,) = [
        i for i in orjson.loads(disc.aggregated_apis)["items"] if i["metadata"]["name"] == GROUP
    ]
    (chj_res,) = item["versions"][0]["resources"]
    assert chj_res["scope"] == "Namespaced"
    assert chj_res["subresources"][0]["subresource"] == "status"


def test_openapi_v3_describes_chronos_job() -> None:
    doc = orjson.loads(OpenAPIDocs(RESOURCES).document("apis/chronos.corral.dev/v1") or b"{}")
    schemas = doc["components"]["schemas"]
    chronos_job = schemas[DEFINITION]
    assert chronos_job["x-kubernetes-group-version-kind"] == [
        {"group": GROUP, "kind": "ChronosJob", "version": "v1"}
    ]
    job_schema = chronos_job["properties"]["spec"]["properties"]["job"]
    assert job_schema["x-kubernetes-preserve-unknown-fields"] is True
    assert job_schema["properties"]["schedule"]["type"] == "string"
    status = chronos_job["properties"]["status"]["properties"]
    assert status["lastSlot"] == {
        "type": "integer",
        "format": "int64",
        "description": status["lastSlot"]["description"],
    }
    assert LIST_DEFINITION in schemas
    text = orjson.dumps(doc).decode()
    for ref in text.split('"$ref":"#/components/schemas/')[1:]:
        assert ref.split('"', 1)[0] in schemas
    paths = doc["paths"]
    item = "/apis/chronos.corral.dev/v1/namespaces/{namespace}/chronosjobs/{name}"
    assert item + "/status" in paths
    assert "/apis/chronos.corral.dev/v1/chronosjobs" in paths  # all namespaces
    assert any(p["name"] == "fieldValidation" for p in paths[item]["patch"]["parameters"])


def test_openapi_v2_describes_chronos_job() -> None:
    doc = orjson.loads(OpenAPIV2(OpenAPIDocs(RESOURCES)).body(JSON_CT))
    chronos_job = doc["definitions"][DEFINITION]
    assert chronos_job["properties"]["metadata"]["$ref"] == (
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    )
    assert doc["definitions"][LIST_DEFINITION]["properties"]["items"]["items"] == {
        "$ref": "#/definitions/" + DEFINITION
    }
    assert "/apis/chronos.corral.dev/v1/namespaces/{namespace}/chronosjobs" in doc["paths"]
