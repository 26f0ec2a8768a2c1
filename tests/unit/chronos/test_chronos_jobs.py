"""A Chronos job's JSON: defaults, every validation message, object names, the JSON out."""

from __future__ import annotations

import re
from typing import Any

import pytest

from corral.chronos import jobs
from corral.chronos.jobs import JobError

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
SCHEDULE = "R/2026-01-01T00:00:00Z/PT1H"
KNOWN = {"a", "b", "etl"}


def known(name: str) -> bool:
    return name in KNOWN


def scheduled(**fields: Any) -> dict[str, Any]:
    return {"name": "job1", "command": "echo 1", "schedule": SCHEDULE, **fields}


def dependent(**fields: Any) -> dict[str, Any]:
    return {"name": "child", "command": "echo 2", "parents": ["a"], **fields}


def norm(body: Any, dep: bool = False, **kw: Any) -> dict[str, Any]:
    return jobs.normalize(body, dependent=dep, known=known, now=NOW, **kw)


COMMON_DEFAULTS: dict[str, Any] = {
    "shell": True,
    "executor": "",
    "executorFlags": "",
    "taskInfoData": "",
    "retries": 2,
    "owner": "",
    "ownerName": "",
    "description": "",
    "cpus": 0.1,
    "disk": 256.0,
    "mem": 128.0,
    "disabled": False,
    "softError": False,
    "dataProcessingJobType": False,
    "fetch": [],
    "uris": [],
    "environmentVariables": [],
    "arguments": [],
    "highPriority": False,
    "runAsUser": "root",
    "concurrent": False,
    "maxCompletionTime": 0,
    "constraints": [],
    "epsilon": "PT60S",
    "async": False,
    "maxRunSeconds": 0,
    "catchUp": "last",
}


# --- defaults ----------------------------------------------------------------------------------
def test_a_scheduled_job_gets_chronos_defaults() -> None:
    assert norm(scheduled()) == {
        "name": "job1",
        "command": "echo 1",
        **COMMON_DEFAULTS,
        "schedule": SCHEDULE,
        "scheduleTimeZone": "",
    }


def test_a_dependent_job_gets_chronos_defaults() -> None:
    assert norm(dependent(), dep=True) == {
        "name": "child",
        "command": "echo 2",
        **COMMON_DEFAULTS,
        "parents": ["a"],
    }


def test_fields_in_chronos_order() -> None:
    keys = list(norm(scheduled(container={"image": "busybox"})))
    assert keys[:4] == ["name", "command", "shell", "executor"]
    assert keys.index("maxCompletionTime") < keys.index("container") < keys.index("constraints")
    assert keys[-2:] == ["schedule", "scheduleTimeZone"]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"cpus": 0, "mem": 0, "disk": 0}, {"cpus": 0.1, "mem": 128.0, "disk": 256.0}),
        ({"cpus": 2, "mem": 64}, {"cpus": 2.0, "mem": 64.0}),
        ({"owner": None, "retries": None}, {"owner": "", "retries": 2}),
        ({"retries": 5.0}, {"retries": 5}),
        ({"maxCompletionTime": 30}, {"maxCompletionTime": 30, "maxRunSeconds": 30}),
        ({"maxCompletionTime": 30, "maxRunSeconds": 10}, {"maxRunSeconds": 10}),
        (
            {"catchUp": "all", "epsilon": "PT5M", "async": True},
            {"catchUp": "all", "epsilon": "PT5M", "async": True},
        ),
        ({"parents": []}, {"schedule": SCHEDULE}),
        ({"scheduleTimeZone": "America/New_York"}, {"scheduleTimeZone": "America/New_York"}),
        (
            {"schedule": "R/2026-01-01T00:00:00+01:00/P1D"},
            {"schedule": "R/2026-01-01T00:00:00+01:00/P1D"},
        ),
        ({"schedule": "R5//PT1H"}, {"schedule": "R5/2025-12-31T23:59:59.000Z/PT1H"}),
        (
            {
                "environmentVariables": [
                    {"name": "A", "value": 1},
                    {"name": "B", "value": True},
                    {"name": "C"},
                ]
            },
            {
                "environmentVariables": [
                    {"name": "A", "value": "1"},
                    {"name": "B", "value": "true"},
                    {"name": "C", "value": ""},
                ]
            },
        ),
        ({"constraints": [["rack", "equals", "r1"]]}, {"constraints": [["rack", "EQUALS", "r1"]]}),
        (
            {"constraints": [["host", "LIKE", "n[0-9]+"]]},
            {"constraints": [["host", "LIKE", "n[0-9]+"]]},
        ),
        (
            {"fetch": [{"uri": "http://x/y.tgz"}]},
            {
                "fetch": [
                    {
                        "uri": "http://x/y.tgz",
                        "executable": False,
                        "cache": False,
                        "extract": True,
                        "output_file": "",
                    }
                ]
            },
        ),
        (
            {"uris": ["http://x/a"], "arguments": ["-v"]},
            {"uris": ["http://x/a"], "arguments": ["-v"]},
        ),
    ],
    ids=[
        "zero-resources-are-defaults",
        "resources-as-floats",
        "null-is-absent",
        "integral-float-retries",
        "maxCompletionTime-sets-maxRunSeconds",
        "maxRunSeconds-wins",
        "corral-and-2x-fields",
        "empty-parents-are-absent",
        "time-zone-kept",
        "schedule-kept-as-posted",
        "empty-start-fixed-at-now-minus-1s",
        "env-values-as-text",
        "constraint-operator-uppercased",
        "like-regex",
        "fetch-defaults",
        "uris-and-arguments",
    ],
)
def test_normalized_fields(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    job = norm(scheduled(**fields))
    assert {k: job[k] for k in expected} == expected


def test_server_defaults_can_be_overridden() -> None:
    job = norm(scheduled(), defaults={"cpus": 0.5, "runAsUser": "nobody", "epsilon": "PT30S"})
    assert (job["cpus"], job["runAsUser"], job["epsilon"]) == (0.5, "nobody", "PT30S")
    assert norm(scheduled(cpus=0), defaults={"cpus": 0.5})["cpus"] == 0.5


def test_unknown_fields_and_counters_are_dropped() -> None:
    job = norm(
        scheduled(
            color="blue",
            successCount=7,
            errorCount=1,
            lastSuccess="2025-01-01T00:00:00.000Z",
            lastError="",
            errorsSinceLastSuccess=0,
        )
    )
    assert not {"color", "successCount", "errorCount", "lastSuccess", "lastError"} & set(job)
    assert "errorsSinceLastSuccess" not in job


def test_a_container_job_may_have_no_command() -> None:
    job = norm({"name": "img", "schedule": SCHEDULE, "container": {"image": "busybox"}})
    assert job["command"] == ""
    assert job["container"] == {
        "type": "DOCKER",
        "image": "busybox",
        "network": "HOST",
        "volumes": [],
        "forcePullImage": False,
        "parameters": [],
    }


def test_a_container_is_normalized() -> None:
    job = norm(
        scheduled(
            container={
                "type": "docker",
                "image": "busybox",
                "network": "bridge",
                "volumes": [{"containerPath": "/data", "hostPath": "/srv", "mode": "ro"}],
                "forcePullImage": "true",
                "parameters": [{"key": "memory-swap", "value": 0}],
                "whatever": 1,
            }
        )
    )
    assert job["container"] == {
        "type": "DOCKER",
        "image": "busybox",
        "network": "BRIDGE",
        "volumes": [{"containerPath": "/data", "hostPath": "/srv", "mode": "RO"}],
        "forcePullImage": True,
        "parameters": [{"key": "memory-swap", "value": "0"}],
    }


def test_parents_are_kept_once_in_order() -> None:
    assert norm(dependent(parents=["b", "a", "b"]), dep=True)["parents"] == ["b", "a"]


# --- validation ----------------------------------------------------------------------------------
NAME_ERROR = "the job's name is invalid. Allowed names: '([\\w\\.-]+)'"
BAD = "Cannot parse schedule '{}' (wtf bro)"


@pytest.mark.parametrize(
    ("body", "dep", "message"),
    [
        ([], False, "the job must be a JSON object"),
        ("job", False, "the job must be a JSON object"),
        ({"command": "x", "schedule": SCHEDULE}, False, NAME_ERROR),
        (scheduled(name=""), False, NAME_ERROR),
        (scheduled(name=5), False, NAME_ERROR),
        (scheduled(name="job with spaces"), False, NAME_ERROR),
        (scheduled(name="jöb"), False, NAME_ERROR),
        (scheduled(name="a/b"), False, NAME_ERROR),
        (scheduled(name="job\n"), False, NAME_ERROR),
        (scheduled(parents=["a"]), False, "Job must only include 1 of ['schedule', 'parents']"),
        (dependent(schedule=SCHEDULE), True, "Job must only include 1 of ['schedule', 'parents']"),
        ({"name": "x", "command": "y"}, False, "Job must include one of ['schedule', 'parents']"),
        ({"name": "x", "command": "y"}, True, "Job must include one of ['schedule', 'parents']"),
        (dependent(parents=[]), True, "Error, parent does not exist"),
        (dependent(), False, "a job with parents is added with POST /scheduler/dependency"),
        (scheduled(), True, "a job with a schedule is added with POST /scheduler/iso8601"),
        (
            {"name": "x", "schedule": SCHEDULE},
            False,
            "missing required field command (it may be empty only with a container)",
        ),
        (
            scheduled(command=""),
            False,
            "missing required field command (it may be empty only with a container)",
        ),
        (scheduled(command=["ls"]), False, "command must be a string"),
        (scheduled(schedule="R/x/PT1H"), False, BAD.format("R/x/PT1H")),
        (
            scheduled(schedule="R/2026-01-01T00:00:00Z/PT0S"),
            False,
            BAD.format("R/2026-01-01T00:00:00Z/PT0S"),
        ),
        (
            scheduled(schedule="R/1969-07-20T20:17:00Z/P1Y"),
            False,
            "Scheduled start date '1969-07-20T20:17:00.000Z' is before 1970!",
        ),
        (scheduled(scheduleTimeZone="Mars/Base"), False, "Unknown scheduleTimeZone 'Mars/Base'"),
        (scheduled(schedule=3600), False, "schedule must be a string"),
        (scheduled(scheduleTimeZone=-5), False, "scheduleTimeZone must be a string"),
        (dependent(parents=["ghost"]), True, "Parent ghost of job child not found in job graph!"),
        (
            dependent(parents=["a", "child"]),
            True,
            "Job child cannot be its own parent: that would create a cycle",
        ),
        (dependent(parents="a"), True, "parents must be an array of job names"),
        (dependent(parents=[1]), True, "parents must be an array of job names"),
        (scheduled(shell="yes"), False, "shell must be a boolean"),
        (scheduled(disabled=1), False, "disabled must be a boolean"),
        (scheduled(owner=5), False, "owner must be a string"),
        (scheduled(cpus=-1), False, "cpus must be a non-negative number"),
        (scheduled(mem="1"), False, "mem must be a non-negative number"),
        (scheduled(disk=True), False, "disk must be a non-negative number"),
        (scheduled(cpus=float("nan")), False, "cpus must be a non-negative number"),
        (scheduled(retries=1.5), False, "retries must be a non-negative integer"),
        (scheduled(retries=-1), False, "retries must be a non-negative number"),
        (scheduled(maxRunSeconds=-5), False, "maxRunSeconds must be a non-negative number"),
        (scheduled(uris="http://x"), False, "uris must be an array"),
        (scheduled(arguments=[1]), False, "arguments must be an array of strings"),
        (
            scheduled(uris=["http://x/a"], fetch=[{"uri": "http://x/b"}]),
            False,
            "Tried to add both uri (deprecated) and fetch parameters on job1",
        ),
        (scheduled(fetch=[{}]), False, "fetch[0] must be an object with a uri"),
        (scheduled(fetch=[{"uri": "u", "cache": "no"}]), False, "fetch[0].cache must be a boolean"),
        (
            scheduled(environmentVariables=[{"value": "1"}]),
            False,
            "environmentVariables[0] must be an object with a name and a string value",
        ),
        (
            scheduled(environmentVariables=[{"name": "A", "value": {"x": 1}}]),
            False,
            "environmentVariables[0] must be an object with a name and a string value",
        ),
        (
            scheduled(constraints=[["rack", "NEAR", "r1"]]),
            False,
            "constraints[0] must be [attribute, EQUALS|LIKE|UNLIKE, value]",
        ),
        (
            scheduled(constraints=[["rack", "EQUALS"]]),
            False,
            "constraints[0] must be [attribute, EQUALS|LIKE|UNLIKE, value]",
        ),
        (scheduled(epsilon="soon"), False, "Cannot parse epsilon 'soon'"),
        (scheduled(epsilon="P1M"), False, "Cannot parse epsilon 'P1M'"),
        (scheduled(epsilon=60), False, "epsilon must be a string (an ISO 8601 duration)"),
        (scheduled(catchUp="sometimes"), False, "catchUp must be one of none, last, all"),
        (scheduled(container="busybox"), False, "container must be an object"),
        (scheduled(container={}), False, "missing required container field image"),
        (
            scheduled(container={"image": "b", "type": "RKT"}),
            False,
            "container.type must be one of DOCKER, MESOS",
        ),
        (
            scheduled(container={"image": "b", "network": "NAT"}),
            False,
            "container.network must be one of BRIDGE, HOST, USER",
        ),
        (
            scheduled(container={"image": "b", "volumes": [{"hostPath": "/x"}]}),
            False,
            "container.volumes[0] must be an object with a containerPath",
        ),
        (
            scheduled(container={"image": "b", "volumes": [{"containerPath": "/x", "mode": "RX"}]}),
            False,
            "container.volumes[0].mode must be RW or RO",
        ),
        (
            scheduled(container={"image": "b", "parameters": [{"value": "1"}]}),
            False,
            "container.parameters[0] must be an object with a key and a value",
        ),
    ],
    ids=[
        "array-body",
        "string-body",
        "no-name",
        "empty-name",
        "name-not-string",
        "name-with-spaces",
        "name-not-ascii",
        "name-with-slash",
        "name-with-newline",
        "iso8601-with-parents-too",
        "dependency-with-schedule-too",
        "neither-iso8601",
        "neither-dependency",
        "empty-parents",
        "parents-on-iso8601",
        "schedule-on-dependency",
        "no-command",
        "empty-command",
        "command-not-string",
        "malformed-schedule",
        "zero-period",
        "start-before-1970",
        "unknown-time-zone",
        "schedule-not-string",
        "time-zone-not-string",
        "unknown-parent",
        "own-parent",
        "parents-not-array",
        "parent-not-string",
        "shell-not-boolean",
        "disabled-not-boolean",
        "owner-not-string",
        "negative-cpus",
        "mem-as-string",
        "disk-as-boolean",
        "nan-cpus",
        "fractional-retries",
        "negative-retries",
        "negative-maxRunSeconds",
        "uris-not-array",
        "arguments-not-strings",
        "uris-and-fetch",
        "fetch-without-uri",
        "fetch-cache-not-boolean",
        "env-without-name",
        "env-value-object",
        "constraint-operator",
        "constraint-short",
        "epsilon-unreadable",
        "epsilon-with-months",
        "epsilon-not-string",
        "catch-up-policy",
        "container-not-object",
        "container-without-image",
        "container-type",
        "container-network",
        "volume-without-path",
        "volume-mode",
        "container-parameter",
    ],
)
def test_validation_messages(body: Any, dep: bool, message: str) -> None:
    with pytest.raises(JobError) as e:
        norm(body, dep)
    assert str(e.value) == message


def test_a_constraint_regex_must_compile() -> None:
    with pytest.raises(JobError, match=r"^constraints\[0\]: '\(' is not a regular expression"):
        norm(scheduled(constraints=[["host", "UNLIKE", "("]]))


@pytest.mark.parametrize("name", ["a", "etl.daily-v2", "A_B", "x" * 300, "0"], ids=str.__len__)
def test_chronos_names_are_accepted(name: str) -> None:
    assert jobs.NAME_RE.fullmatch(name)
    assert norm(scheduled(name=name))["name"] == name


# --- object names ------------------------------------------------------------------------------
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("etl-hourly", "etl-hourly-d7d4903196"),
        ("Job.With_Mixed-Case", "job-with-mixed-case-baf64cc2e9"),
        ("A.b", "a-b-5741d09ab0"),
        ("a_b", "a-b-eb2980a5a2"),
        ("a-b", "a-b-34fafddda8"),
        ("___", "job-bf2957508f"),
        ("x" * 200, "x" * 52 + "-94218caae9"),
    ],
    ids=["plain", "mixed", "dot", "underscore", "dash", "no-letters", "long"],
)
def test_object_name_is_a_stable_dns_label(name: str, expected: str) -> None:
    got = jobs.object_name(name)
    assert got == expected
    assert len(got) <= 63
    assert DNS_LABEL.fullmatch(got)


def test_object_names_of_similar_jobs_differ() -> None:
    names = ["A.b", "a_b", "a-b", "a.b", "A-B", "-a-b-", "a--b"]
    assert len({jobs.object_name(n) for n in names}) == len(names)


# --- the JSON out --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (
            {},
            {
                "successCount": 0,
                "errorCount": 0,
                "lastSuccess": "",
                "lastError": "",
                "errorsSinceLastSuccess": 0,
            },
        ),
        (
            {
                "successCount": 3,
                "lastSuccess": NOW,
                "lastError": NOW + 61.25,
                "errorCount": 1,
                "errorsSinceLastSuccess": 1,
            },
            {
                "successCount": 3,
                "errorCount": 1,
                "lastSuccess": "2026-01-01T00:00:00.000Z",
                "lastError": "2026-01-01T00:01:01.250Z",
                "errorsSinceLastSuccess": 1,
            },
        ),
        (
            {"lastSuccess": "2026-01-01T00:00:00.000Z", "lastError": None},
            {"lastSuccess": "2026-01-01T00:00:00.000Z", "lastError": ""},
        ),
    ],
    ids=["unset", "unix-seconds", "strings-kept"],
)
def test_to_chronos_counters_and_times(status: dict[str, Any], expected: dict[str, Any]) -> None:
    out = jobs.to_chronos(norm(scheduled()), status)
    assert {k: out[k] for k in expected} == expected


def test_to_chronos_shows_the_rewritten_schedule_in_chronos_order() -> None:
    job = norm(scheduled(container={"image": "busybox"}))
    out = jobs.to_chronos(job, {"schedule": "R/2026-01-01T05:00:00.000Z/PT1H"})
    assert out["schedule"] == "R/2026-01-01T05:00:00.000Z/PT1H"
    keys = list(out)
    assert keys[:10] == [
        "name",
        "command",
        "shell",
        "executor",
        "executorFlags",
        "taskInfoData",
        "retries",
        "owner",
        "ownerName",
        "description",
    ]
    assert keys[10:14] == ["successCount", "errorCount", "lastSuccess", "lastError"]
    assert keys.index("dataProcessingJobType") + 1 == keys.index("errorsSinceLastSuccess")
    assert keys.index("container") + 1 == keys.index("constraints")
    assert keys[-2:] == ["schedule", "scheduleTimeZone"]
    assert {"epsilon", "async", "catchUp", "maxRunSeconds"} <= set(keys)


def test_to_chronos_of_a_dependent_job_has_parents_not_a_schedule() -> None:
    out = jobs.to_chronos(norm(dependent(parents=["a", "b"]), dep=True), {"schedule": "stale"})
    assert out["parents"] == ["a", "b"]
    assert "schedule" not in out
    assert "scheduleTimeZone" not in out


@pytest.mark.parametrize(
    ("body", "dep"),
    [
        (
            scheduled(
                container={"image": "busybox"}, environmentVariables=[{"name": "A", "value": "1"}]
            ),
            False,
        ),
        (dependent(parents=["a", "b"], constraints=[["rack", "LIKE", "r.*"]]), True),
    ],
    ids=["scheduled", "dependent"],
)
def test_a_job_read_back_and_posted_again_is_the_same(body: dict[str, Any], dep: bool) -> None:
    """chronos-python's ``update`` posts what ``list`` gave, counters included."""
    job = norm(body, dep)
    shown = jobs.to_chronos(job, {"successCount": 2, "lastSuccess": NOW})
    assert norm(shown, dep) == job


def test_the_schedule_is_checked_first_as_in_chronos() -> None:
    with pytest.raises(JobError, match=r"^Cannot parse schedule 'R/x/PT1H' \(wtf bro\)$"):
        norm(scheduled(schedule="R/x/PT1H", shell="yes", command=""))
