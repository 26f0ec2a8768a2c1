"""Strategy for chronos.corral.dev/v1 ChronosJobs: the jobs of the Chronos framework.

The Chronos service (``corral.chronos``, docs/chronos.md) keeps each job as one
namespaced ChronosJob in namespace ``chronos``; the API is its only state. It writes
``spec.job`` from what a client sent to its REST API and ``status`` (through the
``status`` subresource) from what it learns by running the job::

    metadata.name   a DNS label derived from the job name (Chronos names are [\\w.-]+)
    spec.job        the Chronos job JSON, camelCase, server defaults filled in:
                    {name, command, schedule | parents, scheduleTimeZone, owner, cpus,
                     mem, disk, retries, disabled, ...}
    status          {successCount, errorCount, errorsSinceLastSuccess,
                     lastSuccess, lastError ("" when unset, else RFC 3339),
                     lastSlot (ms since the epoch), schedule (as rewritten by claims),
                     lastFinishedSlot, lastFinishedAttempt, runs: [{taskId, slot,
                     attempt, startTime, endTime, duration, status, agent}],
                     state: idle|queued|running}

The strategy is the stock one (status reset on create and kept on main-resource writes,
``generation`` bumped on a spec change). Validation checks the *shape* of what the
service writes, not Chronos' semantics (a parseable ISO 8601 schedule, known parents,
no cycles), which the Chronos API edge checks with Chronos' own messages: ``spec.job``
with a ``[\\w.-]+`` name, a string command, exactly one of ``schedule`` and a non-empty
``parents``, non-negative numbers and the JSON types of the fields Chronos serialises;
the name is immutable (``metadata.name`` is derived from it). Unknown job fields are
kept (``x-kubernetes-preserve-unknown-fields``), as Chronos versions add fields.

ChronosJob is not one of Kubernetes' 1.32 kinds, so its OpenAPI definitions are declared
here (``ChronosJobStrategy.definitions``), the way a CRD carries its schema: ``spec.job``
and each of ``status.runs`` preserve unknown fields (their properties are documentation
for ``kubectl explain``), the rest of ``status`` is typed. ``spec.job.name`` is a field
selector, so a job can be found by its Chronos name. Table columns are in
``apiserver/tables.py`` with every other kind's.

Called by the generic store through the registry table (``table.py``); pure, no I/O.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from corral.api.errors import FieldError, duplicate, forbidden, invalid, not_supported, required
from corral.apiserver.registry.base import (
    Obj,
    Strategy,
    kind_definitions,
    schema_prop,
    schema_strings,
)
from corral.apiserver.registry.fields import (
    non_negative,
    parses,
    type_invalid,
    typed,
)

GROUP = "chronos.corral.dev"
VERSION = "v1"
KIND = "ChronosJob"
#: the namespace the Chronos service keeps its jobs in
NAMESPACE = "chronos"
#: OpenAPI definition names, by the convention of CRDs (reversed group, version, kind)
DEFINITION = "dev.corral.chronos.v1.ChronosJob"
LIST_DEFINITION = "dev.corral.chronos.v1.ChronosJobList"

#: a Chronos job name (Scala's ``[\w\.-]+``: ``\w`` is ASCII there)
JOB_NAME = re.compile(r"[\w.-]+", re.ASCII)
NAME_ERROR = (
    "must consist of letters, digits, '_', '.' or '-' (regex used for validation is '[\\w.-]+')"
)
STATES = ("idle", "queued", "running")

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|z|[+-]\d{2}:\d{2})", re.ASCII)
_TIME_ERROR = 'must be empty or an RFC 3339 date and time, e.g. "2026-12-04T10:00:00.000Z"'

# the job fields Chronos serialises, by JSON type (others are kept unchecked)
_JOB_STRINGS = (
    "scheduleTimeZone",
    "epsilon",
    "owner",
    "ownerName",
    "description",
    "runAsUser",
    "executor",
    "executorFlags",
)
_JOB_BOOLEANS = (
    "disabled",
    "shell",
    "async",
    "concurrent",
    "highPriority",
    "softError",
    "dataProcessingJobType",
)
_JOB_ARRAYS = ("arguments", "uris", "fetch", "environmentVariables", "constraints")
_JOB_NUMBERS = ("cpus", "mem", "disk", "gpus")
_JOB_INTEGERS = ("retries", "successCount", "errorCount", "errorsSinceLastSuccess")
_STATUS_INTEGERS = (
    "successCount",
    "errorCount",
    "errorsSinceLastSuccess",
    "lastSlot",
    "lastFinishedSlot",
    "lastFinishedAttempt",
)
_TIMES = ("lastSuccess", "lastError")


def _time(obj: Obj, key: str, path: str) -> list[FieldError]:
    """``obj[key]``, when present, ``""`` or an RFC 3339 time (Chronos' last run times)."""
    value = obj.get(key)
    if value is None or value == "":
        return []
    at = f"{path}.{key}"
    if not isinstance(value, str):
        return [type_invalid(at, value, "string")]
    if not _RFC3339.fullmatch(value) or not parses(value):
        return [invalid(at, value, _TIME_ERROR)]
    return []


def _name_errors(value: Any, path: str) -> list[FieldError]:
    if value is None or value == "":
        return [required(path)]
    if not isinstance(value, str):
        return [type_invalid(path, value, "string")]
    if not JOB_NAME.fullmatch(value):
        return [invalid(path, value, NAME_ERROR)]
    return []


def _validate_trigger(job: Obj, path: str) -> list[FieldError]:
    """Exactly one of a ``schedule`` and a non-empty ``parents`` (``""`` and ``[]`` are
    unset: Chronos serialises a scheduled job with ``parents: []``)."""
    schedule = job.get("schedule")
    parents = job.get("parents")
    errs: list[FieldError] = []
    if schedule is not None and not isinstance(schedule, str):
        errs.append(type_invalid(f"{path}.schedule", schedule, "string"))
    if parents is not None and not isinstance(parents, list):
        errs.append(type_invalid(f"{path}.parents", parents, "array"))
    if errs:
        return errs
    if parents:
        seen: set[str] = set()
        for i, parent in enumerate(parents):
            at = f"{path}.parents[{i}]"
            errs += _name_errors(parent, at)
            if isinstance(parent, str):
                if parent in seen:
                    errs.append(duplicate(at, parent))
                seen.add(parent)
        if schedule:
            errs.append(forbidden(f"{path}.parents", "may not be set together with `schedule`"))
    elif not schedule:
        errs.append(required(f"{path}.schedule", "one of `schedule` or `parents` is required"))
    return errs


def validate_job(job: Any, path: str = "spec.job") -> list[FieldError]:
    """The Chronos job JSON's shape (not its semantics: those are the Chronos API's)."""
    if job is None:
        return [required(path)]
    if not isinstance(job, dict):
        return [type_invalid(path, job, "object")]
    errs = _name_errors(job.get("name"), f"{path}.name")
    command = job.get("command")
    if command is None:
        errs.append(required(f"{path}.command"))
    elif not isinstance(command, str):
        errs.append(type_invalid(f"{path}.command", command, "string"))
    errs += _validate_trigger(job, path)
    errs += typed(job, _JOB_STRINGS, path, "string")
    errs += typed(job, _JOB_BOOLEANS, path, "boolean")
    errs += typed(job, _JOB_ARRAYS, path, "array")
    errs += typed(job, ("container",), path, "object")
    for key in _JOB_NUMBERS:
        errs += non_negative(job, key, path, integer=False)
    for key in _JOB_INTEGERS:
        errs += non_negative(job, key, path, integer=True)
    for key in _TIMES:
        errs += _time(job, key, path)
    return errs


def _validate_run(run: Any, path: str) -> list[FieldError]:
    if not isinstance(run, dict):
        return [type_invalid(path, run, "object")]
    errs = typed(run, ("taskId", "startTime", "endTime", "status", "agent"), path, "string")
    for key in ("slot", "attempt"):
        errs += non_negative(run, key, path, integer=True)
    return errs + non_negative(run, "duration", path, integer=False)


def validate_status(status: Any, path: str = "status") -> list[FieldError]:
    """The status fields the Chronos service writes, each checked when present."""
    if status is None:
        return []
    if not isinstance(status, dict):
        return [type_invalid(path, status, "object")]
    errs = typed(status, ("schedule",), path, "string")
    for key in _STATUS_INTEGERS:
        errs += non_negative(status, key, path, integer=True)
    for key in _TIMES:
        errs += _time(status, key, path)
    runs = status.get("runs")
    if runs is not None:
        if not isinstance(runs, list):
            errs.append(type_invalid(f"{path}.runs", runs, "array"))
        else:
            for i, run in enumerate(runs):
                errs += _validate_run(run, f"{path}.runs[{i}]")
    state = status.get("state")
    if state is not None and state not in STATES:
        errs.append(not_supported(f"{path}.state", state, list(STATES)))
    return errs


def job_name(obj: Obj) -> str:
    """The Chronos name of a ChronosJob (``spec.job.name``), ``""`` when absent."""
    spec = obj.get("spec")
    job = spec.get("job") if isinstance(spec, dict) else None
    name = job.get("name") if isinstance(job, dict) else None
    return name if isinstance(name, str) else ""


# --- OpenAPI definitions (JSON Schema, the ``$defs`` dialect of corral.api.schema) --------


_JOB = {
    "type": "object",
    "description": (
        "The job as Chronos serialises it (camelCase JSON, the server defaults filled in). "
        "Exactly one of schedule and parents is set. Fields a newer Chronos adds are kept."
    ),
    "properties": {
        "name": schema_prop("string", "The job's Chronos name ([\\w.-]+); immutable."),
        "command": schema_prop("string", "The command the job runs."),
        "shell": schema_prop("boolean", "Run the command through a shell (default true)."),
        "arguments": schema_strings("Arguments of the command when shell is false."),
        "schedule": schema_prop(
            "string",
            "The ISO 8601 repeating interval R[n]/<start>/<period>, e.g. "
            "R/2026-01-01T00:00:00Z/PT1H; unset for a dependent job.",
        ),
        "scheduleTimeZone": schema_prop(
            "string", "A time zone name overriding the zone of the schedule's start."
        ),
        "parents": schema_strings("The jobs that must all succeed before this dependent job runs."),
        "epsilon": schema_prop("string", "How late a run may start (ISO 8601 duration)."),
        "owner": schema_prop("string", "E-mail address(es) of the job's owner."),
        "ownerName": schema_prop("string", "The owner's name."),
        "description": schema_prop("string", "What the job does."),
        "disabled": schema_prop("boolean", "A disabled job is not run."),
        "retries": schema_prop("integer", "How many times a failed run is retried.", "int32"),
        "cpus": schema_prop("number", "CPUs a run asks for.", "double"),
        "mem": schema_prop("number", "Memory (MB) a run asks for.", "double"),
        "disk": schema_prop("number", "Disk (MB) a run asks for.", "double"),
        "concurrent": schema_prop("boolean", "Whether runs of the job may overlap."),
        "runAsUser": schema_prop("string", "The user a run's command runs as."),
        "container": {
            "type": "object",
            "description": "The container a run uses: type, image, network, volumes...",
            "x-kubernetes-preserve-unknown-fields": True,
        },
    },
    "required": ["name", "command"],
    "x-kubernetes-preserve-unknown-fields": True,
}

_SPEC = {
    "type": "object",
    "description": "The Chronos job.",
    "properties": {"job": _JOB},
    "required": ["job"],
}

_RUN = {
    "type": "object",
    "description": "One run of the job (one Mesos task).",
    "properties": {
        "taskId": schema_prop("string", "The Mesos task id, ct:<slot ms>:<attempt>:<job name>."),
        "slot": schema_prop(
            "integer", "The instant the run is for, in ms since the epoch.", "int64"
        ),
        "attempt": schema_prop("integer", "The attempt number (retries count up).", "int32"),
        "startTime": schema_prop("string", "When the run started."),
        "endTime": schema_prop("string", "When the run ended; unset while running."),
        "duration": schema_prop("number", "How long the run took, in seconds.", "double"),
        "status": schema_prop("string", "How the run went (its Mesos task state)."),
        "agent": schema_prop("string", "The agent the run's task ran on."),
    },
    "x-kubernetes-preserve-unknown-fields": True,
}

_STATUS = {
    "type": "object",
    "description": "What the Chronos service learnt by running the job.",
    "properties": {
        "successCount": schema_prop("integer", "Number of successful runs.", "int64"),
        "errorCount": schema_prop("integer", "Number of failed runs.", "int64"),
        "errorsSinceLastSuccess": schema_prop(
            "integer", "Number of failed runs since the last success.", "int64"
        ),
        "lastSuccess": schema_prop(
            "string", 'When the job last succeeded (RFC 3339), "" if it never did.'
        ),
        "lastError": schema_prop(
            "string", 'When the job last failed (RFC 3339), "" if it never did.'
        ),
        "lastSlot": schema_prop(
            "integer", "The last slot claimed for a run, in ms since the epoch.", "int64"
        ),
        "schedule": schema_prop(
            "string",
            "The schedule as rewritten when a slot is claimed (its start moved to the slot, "
            "its repetitions down by one); unset until then.",
        ),
        "lastFinishedSlot": schema_prop(
            "integer", "The slot of the last run whose result is recorded.", "int64"
        ),
        "lastFinishedAttempt": schema_prop(
            "integer", "The attempt of the last run whose result is recorded.", "int32"
        ),
        "runs": {"type": "array", "description": "Recent runs.", "items": _RUN},
        "state": schema_prop("string", "idle, queued or running."),
    },
}

DEFINITIONS: dict[str, dict[str, Any]] = kind_definitions(
    GROUP,
    VERSION,
    KIND,
    DEFINITION,
    (
        "ChronosJob is a batch job of Corral's Chronos framework, run on an ISO 8601 "
        "schedule or after its parents succeeded. Its runs are Pods in namespace mesos."
    ),
    _SPEC,
    _STATUS,
    "ChronosJobs",
)


class ChronosJobStrategy(Strategy):
    """Namespaced; ``spec.job`` and ``status`` both from the Chronos service."""

    has_status = True
    #: ``chronos.jobs.object_name``: a lowercase slug of the job name plus a short hash
    name_format = "label"
    definitions: ClassVar[dict[str, dict[str, Any]]] = DEFINITIONS
    field_selectors: ClassVar[dict[str, Any]] = {"spec.job.name": job_name}

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        if spec is None or isinstance(spec, dict):
            errs = validate_job((spec or {}).get("job"))
        else:
            errs = [type_invalid("spec", spec, "object")]
        return errs + validate_status(obj.get("status"))

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        before, after = job_name(old), job_name(new)
        if before and after and after != before:
            errs.append(invalid("spec.job.name", after, "field is immutable"))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_status(new.get("status"))
