"""chronos.corral.dev/v1 ChronosJobs against a real server: the ``kubernetes`` client's
namespaced custom-object calls in namespace ``chronos``, Corral's own client (the one the
Chronos service uses: field selector, watch, the slot claim as a status write with a
``resourceVersion`` precondition), kubectl (discovery, table, category, explain, apply,
delete) and validation answered with 422 and field paths."""

from __future__ import annotations

import asyncio
import copy
import json
import random
import subprocess
import uuid
from collections.abc import AsyncGenerator, Callable
from typing import Any, cast

import pytest
import yaml
from kindkit import CustomObjects, never_500
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from conftest import RunningServer
from corral.api.errors import StatusError
from corral.client.rest import CHRONOS_JOBS, Client

GROUP, VERSION, PLURAL, NS = "chronos.corral.dev", "v1", "chronosjobs", "chronos"
URL = f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}"
SCHEDULE = "R/2026-01-01T00:00:00Z/PT1H"
Obj = dict[str, Any]
#: the conftest fixtures, by what they are called with
Kubectl = Callable[..., subprocess.CompletedProcess[str]]
Raw = Callable[..., tuple[int, dict[str, str], bytes]]


def new_names(prefix: str = "etl_hourly") -> tuple[str, str]:
    """A fresh (Chronos name, object name) pair, the object name a DNS label."""
    suffix = uuid.uuid4().hex[:10]
    return f"{prefix}_{suffix}", f"{prefix.replace('_', '-')}-{suffix}"


def job_json(job_name: str, **kw: Any) -> Obj:
    """A job as Chronos serialises it, the server defaults filled in."""
    out: Obj = {
        "name": job_name,
        "command": "echo 1",
        "shell": True,
        "arguments": [],
        "schedule": SCHEDULE,
        "scheduleTimeZone": "",
        "parents": [],
        "epsilon": "PT60S",
        "owner": "ops@x.com",
        "disabled": False,
        "retries": 2,
        "cpus": 0.1,
        "mem": 128,
        "disk": 256,
        "concurrent": False,
        "environmentVariables": [{"name": "A", "value": "1"}],
        "constraints": [["rack", "EQUALS", "r1"]],
        **kw,
    }
    return {k: v for k, v in out.items() if v is not ...}  # ``...``: leave the key out


def chronos_job(obj_name: str, job_name: str, **kw: Any) -> Obj:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ChronosJob",
        "metadata": {"name": obj_name, "namespace": NS},
        "spec": {"job": job_json(job_name, **kw)},
    }


STATUS: Obj = {
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
        }
    ],
    "state": "idle",
}


class ChronosJobs(CustomObjects):
    """The ``kubernetes`` client's custom-object calls for ChronosJobs, typed."""

    def __init__(self, api_client: client.ApiClient) -> None:
        super().__init__(api_client, GROUP, VERSION, PLURAL, NS)

    def create(self, obj_name: str, job_name: str, **kw: Any) -> Obj:
        return self.create_body(chronos_job(obj_name, job_name, **kw))


@pytest.fixture
def jobs(api_client: client.ApiClient) -> ChronosJobs:
    return ChronosJobs(api_client)


# --- the Python client ---------------------------------------------------------------


def test_python_client_create_list_patch_status(jobs: ChronosJobs) -> None:
    name, obj_name = new_names()
    made = jobs.create(obj_name, name, futureField={"kept": True})
    assert made["metadata"]["generation"] == 1 and "status" not in made
    assert made["metadata"]["namespace"] == NS
    assert made["spec"]["job"]["futureField"] == {"kept": True}  # unknown job fields kept
    assert made["spec"]["job"]["constraints"] == [["rack", "EQUALS", "r1"]]
    listed = jobs.list()
    assert listed["kind"] == "ChronosJobList"
    assert obj_name in [i["metadata"]["name"] for i in listed["items"]]
    assert obj_name in [i["metadata"]["name"] for i in jobs.list_all()["items"]]

    patch = {"status": STATUS, "spec": {"job": {"command": "rm -rf /"}}}
    patched = jobs.patch_status(obj_name, patch)
    assert patched["status"] == STATUS
    assert patched["spec"] == made["spec"]  # /status writes nothing but status
    assert patched["metadata"]["generation"] == 1

    # the next slot claimed, the run list replaced, state moved on
    claim = {"lastSlot": 1764846000000, "state": "running", "runs": []}
    claimed = jobs.patch_status(obj_name, {"status": claim})["status"]
    assert claimed["lastSlot"] == 1764846000000 and claimed["runs"] == []
    assert claimed["successCount"] == 3  # a merge patch keeps the rest

    # a spec write (Chronos' upsert) keeps status and bumps the generation
    spec = jobs.patch(
        obj_name, {"spec": {"job": {"disabled": True, "schedule": "R0/2026-01-01T00:00:00Z/PT1H"}}}
    )
    assert spec["metadata"]["generation"] == 2
    assert spec["spec"]["job"]["disabled"] is True
    assert spec["status"]["lastSlot"] == 1764846000000
    # the job name is immutable: the object's name is derived from it
    with pytest.raises(ApiException) as e:
        jobs.patch(obj_name, {"spec": {"job": {"name": "renamed"}}})
    assert e.value.status == 422
    (cause,) = json.loads(cast(str, e.value.body))["details"]["causes"]
    assert cause["field"] == "spec.job.name"
    assert cause["message"] == 'Invalid value: "renamed": field is immutable'
    jobs.delete(obj_name)
    assert not jobs.exists(obj_name)


def test_dependent_job(jobs: ChronosJobs) -> None:
    parent, parent_obj = new_names("extract")
    name, obj_name = new_names("report")
    jobs.create(parent_obj, parent)
    made = jobs.create(obj_name, name, schedule=..., scheduleTimeZone=..., parents=[parent])
    assert made["spec"]["job"]["parents"] == [parent] and "schedule" not in made["spec"]["job"]
    jobs.delete(obj_name)
    jobs.delete(parent_obj)


# --- Corral's own client: what the Chronos service does -----------------------------------


async def test_service_client_selects_watches_and_claims_slots(
    server: RunningServer, jobs: ChronosJobs
) -> None:
    c = Client.from_kubeconfig(server.kubeconfig)
    try:
        name, obj_name = new_names()
        listed = await c.list(CHRONOS_JOBS, NS)
        events = cast(
            AsyncGenerator[Obj, None],
            c.watch(
                CHRONOS_JOBS,
                NS,
                resource_version=listed["metadata"]["resourceVersion"],
                field_selector=f"spec.job.name={name}",
                timeout_seconds=20,
            ),
        )
        made = await c.create(CHRONOS_JOBS, chronos_job(obj_name, name), NS)
        async with asyncio.timeout(20):
            event = await anext(events)
        assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == obj_name
        await events.aclose()

        found = await c.list(CHRONOS_JOBS, NS, field_selector=f"spec.job.name={name}")
        assert [i["metadata"]["name"] for i in found["items"]] == [obj_name]
        other = await c.list(CHRONOS_JOBS, field_selector="spec.job.name=no_such_job")
        assert other["items"] == []

        # claiming a slot: a status write with the object's resourceVersion as a
        # precondition; of two Chronos processes claiming from the same version, one wins
        claim = copy.deepcopy(made)
        claim["status"] = {"lastSlot": 1764842400000, "state": "queued"}
        won = await c.update(CHRONOS_JOBS, claim, NS, sub="status")
        assert won["status"]["lastSlot"] == 1764842400000
        assert won["metadata"]["generation"] == 1
        rival = copy.deepcopy(claim)
        rival["status"]["lastSlot"] = 1764846000000
        with pytest.raises(StatusError) as e:
            await c.update(CHRONOS_JOBS, rival, NS, sub="status")
        assert e.value.code == 409 and e.value.reason == "Conflict"
        assert (await c.get(CHRONOS_JOBS, obj_name, NS))["status"]["lastSlot"] == 1764842400000
        await c.delete(CHRONOS_JOBS, obj_name, NS)
    finally:
        await c.close()


# --- kubectl ---------------------------------------------------------------------------


@pytest.mark.kubectl
def test_kubectl_discovery_table_yaml_explain(kubectl: Kubectl, jobs: ChronosJobs) -> None:
    lines = kubectl("api-resources").stdout.splitlines()
    (row,) = [ln.split() for ln in lines if ln.split()[:1] == ["chronosjobs"]]
    assert row == ["chronosjobs", "chj", "chronos.corral.dev/v1", "true", "ChronosJob"]
    by_group = kubectl("api-resources", "--api-group", GROUP, "-o", "wide").stdout
    assert "chronos" in by_group.splitlines()[1].split()  # the category

    name, obj_name = new_names()
    jobs.create(obj_name, name)
    jobs.patch_status(obj_name, {"status": STATUS})
    parent_name, dep_obj = new_names("report")
    jobs.create(dep_obj, parent_name, schedule=..., parents=[name, "other"], disabled=True)

    table = kubectl("get", "chronosjobs", "-n", NS).stdout.splitlines()
    header = ["NAME", "SCHEDULE", "PARENTS", "LAST SUCCESS", "LAST ERROR", "SUCCESS", "ERRORS",
              "DISABLED", "AGE"]  # fmt: skip
    assert _columns(table[0]) == header
    (cells,) = [ln.split() for ln in table[1:] if ln.startswith(name + " ")]
    assert cells[:8] == [
        name,
        SCHEDULE,
        "-",
        "2026-12-04T10:00:00.000Z",
        "<none>",
        "3",
        "1",
        "False",
    ]
    (dep,) = [ln.split() for ln in table[1:] if ln.startswith(parent_name + " ")]
    assert dep[:8] == [parent_name, "-", f"{name},other", "<none>", "<none>", "0", "0", "True"]

    wide = kubectl("get", "chj", "-n", NS, "-o", "wide").stdout.splitlines()
    assert _columns(wide[0]) == [*header, "OBJECT"]
    (cells,) = [ln.split() for ln in wide[1:] if ln.startswith(name + " ")]
    assert cells[-1] == obj_name

    every = kubectl("get", "chj", "-A").stdout.splitlines()
    assert _columns(every[0]) == ["NAMESPACE", *header]
    assert any(ln.split()[:2] == [NS, name] for ln in every[1:])
    by_category = kubectl("get", "chronos", "-n", NS).stdout.splitlines()  # the category
    assert _columns(by_category[0])[:2] == ["NAME", "SCHEDULE"]
    assert any(ln.startswith(name + " ") for ln in by_category)
    shown = kubectl("get", "chj", "-n", NS, "--show-kind", "-o", "wide").stdout.splitlines()
    assert any(ln.split()[-1] == f"chronosjob.chronos.corral.dev/{obj_name}" for ln in shown)
    selected = kubectl(
        "get", "chj", "-n", NS, "--field-selector", f"spec.job.name={name}", "-o", "name"
    ).stdout.split()
    assert selected == [f"chronosjob.chronos.corral.dev/{obj_name}"]

    obj = yaml.safe_load(kubectl("get", "chronosjob", obj_name, "-n", NS, "-o", "yaml").stdout)
    assert obj["kind"] == "ChronosJob" and obj["apiVersion"] == "chronos.corral.dev/v1"
    assert obj["spec"]["job"]["constraints"] == [["rack", "EQUALS", "r1"]]
    assert obj["status"] == STATUS

    explain = kubectl("explain", "chronosjob").stdout
    assert "KIND:       ChronosJob" in explain and "chronos.corral.dev" in explain
    spec = kubectl("explain", "chronosjob.spec").stdout
    assert "FIELD: spec <Object>" in spec and "job\t<Object> -required-" in spec
    job = kubectl("explain", "chj.spec.job").stdout
    assert "schedule\t<string>" in job and "parents\t<[]string>" in job
    slot = kubectl("explain", "chronosjobs.status.lastSlot").stdout
    assert "FIELD: lastSlot <integer>" in slot

    out = kubectl("delete", "chronosjob", obj_name, "-n", NS).stdout
    assert out.strip() == f'chronosjob.chronos.corral.dev "{obj_name}" deleted'
    res = kubectl("get", "chj", obj_name, "-n", NS, check=False)
    assert res.returncode == 1
    assert f'chronosjobs.chronos.corral.dev "{obj_name}" not found' in res.stderr
    kubectl("delete", "chj", dep_obj, "-n", NS)


def _columns(header: str) -> list[str]:
    """The column names of a kubectl table header (two or more spaces between columns)."""
    return [c.strip() for c in header.split("  ") if c.strip()]


@pytest.mark.kubectl
def test_kubectl_apply_checks_fields_by_the_schema(kubectl: Kubectl, jobs: ChronosJobs) -> None:
    name, obj_name = new_names()
    body = chronos_job(obj_name, name)
    body["spec"]["bogus"] = 1
    body["spec"]["job"]["futureField"] = {"kept": True}
    strict = kubectl("apply", "-f", "-", input=json.dumps(body), check=False)
    assert strict.returncode == 1
    assert 'strict decoding error: unknown field "spec.bogus"' in strict.stderr
    res = kubectl("apply", "--validate=warn", "-f", "-", input=json.dumps(body))
    assert 'unknown field "spec.bogus"' in res.stderr
    obj = json.loads(kubectl("get", "chj", obj_name, "-n", NS, "-o", "json").stdout)
    assert "bogus" not in obj["spec"]
    assert obj["spec"]["job"]["futureField"] == {"kept": True}
    del body["spec"]["bogus"]
    body["spec"]["job"]["retries"] = 5  # applied again: an update
    kubectl("apply", "-f", "-", input=json.dumps(body))
    obj = json.loads(kubectl("get", "chj", obj_name, "-n", NS, "-o", "json").stdout)
    assert obj["spec"]["job"]["retries"] == 5 and obj["metadata"]["generation"] == 2
    kubectl("delete", "chj", obj_name, "-n", NS)


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "field", "message"),
    [
        ({"name": ...}, "spec.job.name", "Required value"),
        ({"name": "job with spaces"}, "spec.job.name", 'Invalid value: "job with spaces": must consist of'),
        ({"command": ...}, "spec.job.command", "Required value"),
        ({"command": ["echo"]}, "spec.job.command", 'Invalid value: ["echo"]: must be of type string'),
        ({"schedule": ...}, "spec.job.schedule", "Required value: one of `schedule` or `parents` is required"),
        ({"parents": ["a"]}, "spec.job.parents", "Forbidden: may not be set together with `schedule`"),
        ({"schedule": ..., "parents": ["a", "a b"]}, "spec.job.parents[1]", 'Invalid value: "a b": must consist of'),
        ({"cpus": -0.5}, "spec.job.cpus", "Invalid value: -0.5: must be greater than or equal to 0"),
        ({"retries": -1}, "spec.job.retries", "Invalid value: -1: must be greater than or equal to 0"),
        ({"disabled": "no"}, "spec.job.disabled", 'Invalid value: "no": must be of type boolean'),
    ],
    ids=["no-name", "bad-name", "no-command", "bad-command", "no-trigger", "both-triggers",
         "bad-parent", "negative-cpus", "negative-retries", "bad-disabled"],
)  # fmt: skip
def test_invalid_jobs_are_422(
    raw: Raw, jobs: ChronosJobs, kw: Obj, field: str, message: str
) -> None:
    name, obj_name = new_names()
    status, _, body = raw("POST", URL, chronos_job(obj_name, name, **kw))
    assert status == 422, body
    err = json.loads(body)
    assert err["reason"] == "Invalid"
    assert err["details"]["group"] == GROUP and err["details"]["kind"] == "ChronosJob"
    causes = err["details"]["causes"]
    assert any(c["field"] == field and c["message"].startswith(message) for c in causes), causes
    assert (
        f'ChronosJob.chronos.corral.dev "{obj_name}" is invalid: {field}: {message}'
        in (err["message"])
    )


def test_invalid_names_and_spec_are_422(raw: Raw, jobs: ChronosJobs) -> None:
    name, _ = new_names()
    status, _, body = raw("POST", URL, chronos_job(name, name))  # "_" is no DNS label
    assert status == 422, body
    assert json.loads(body)["details"]["causes"][0]["field"] == "metadata.name"
    status, _, body = raw("POST", URL, {**chronos_job("x-1", name), "spec": {}})
    assert status == 422, body
    assert json.loads(body)["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.job"}
    ]


def test_invalid_status_is_refused(raw: Raw, jobs: ChronosJobs) -> None:
    name, obj_name = new_names()
    assert raw("POST", URL, chronos_job(obj_name, name))[0] == 201
    merge = {"Content-Type": "application/merge-patch+json"}
    cases: list[tuple[Obj, int, str]] = [
        ({"successCount": -1}, 422, "status.successCount"),
        ({"lastSlot": -1}, 422, "status.lastSlot"),
        ({"lastSuccess": "yesterday"}, 422, "status.lastSuccess"),
        ({"lastError": "2026-12-04"}, 422, "status.lastError"),
        ({"state": "sleeping"}, 422, "status.state"),
        ({"runs": [{"attempt": -1}]}, 422, "status.runs[0].attempt"),
        ({"runs": ["x"]}, 422, "status.runs[0]"),
        ({"errorCount": "1"}, 400, "of type int64"),  # wrong JSON types fail typed decoding
        ({"lastSuccess": 5}, 400, "of type string"),
    ]
    for patch, code, where in cases:
        status, _, body = raw("PATCH", f"{URL}/{obj_name}/status", {"status": patch}, merge)
        assert status == code, (patch, body)
        err = json.loads(body)
        if code == 422:
            assert err["details"]["causes"][0]["field"] == where, err
        else:
            assert where in err["message"], err
    ok = {"status": {"lastSuccess": "", "lastError": "2026-12-04T11:00:00.000Z"}}
    assert raw("PATCH", f"{URL}/{obj_name}/status", ok, merge)[0] == 200
    assert raw("DELETE", f"{URL}/{obj_name}")[0] == 200


def test_mutations_never_500(raw: Raw, jobs: ChronosJobs) -> None:
    """Every field of a full ChronosJob replaced by values of the wrong type: 4xx or success."""
    seed = chronos_job("seed", "seed")
    seed["status"] = copy.deepcopy(STATUS)
    bad = never_500(raw, URL, seed, random.Random("chronosjobs"), 4)
    assert not bad, "\n".join(bad[:20])
