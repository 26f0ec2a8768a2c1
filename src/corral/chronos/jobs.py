"""A Chronos job's JSON: validated with Chronos' messages, defaults filled in, named as
an API object, and shown back as ``GET /v1/scheduler/jobs`` shows it.

Pure. ``service.py`` calls ``normalize`` on every ``POST iso8601`` / ``POST dependency``
body (a ``JobError`` is the 400 answer, and nothing is stored), stores the result as
``spec.job`` of the ``ChronosJob`` object named ``object_name(name)``, and answers reads
with ``to_chronos(spec.job, status)``.

The shape follows Chronos' ``JobDeserializer``/``JobSerializer`` (mesos/chronos 3.x,
``docs/docs/api.md``), with these choices, each stricter than Chronos where Chronos
would store something it later fails on:

- a job needs a ``name`` matching ``[\\w.-]+`` (ASCII, as Java's ``\\w``; 3.x's check)
  and exactly one of ``schedule`` (``POST iso8601``) and non-empty ``parents`` (``POST
  dependency``); 3.x would turn a schedule-less body into "run once now";
- ``command`` may be missing or empty only for a job with a ``container`` (the image's
  own entrypoint runs); Chronos defaults it to "" and lets the task fail;
- types are checked (Chronos' Jackson code coerces anything with ``asText``); a JSON
  ``null`` is the same as leaving the field out; unknown fields are dropped, and so are
  the counters a client may post back (``successCount``...: they live in ``status``);
- ``cpus``, ``mem``, ``disk`` of 0 mean the server default (as in Chronos);
- constraints must use Chronos' operators (``EQUALS``, ``LIKE``, ``UNLIKE``; Chronos
  drops the others silently) and a ``LIKE``/``UNLIKE`` value must be a regex;
- Chronos 2.x fields are kept for 2.x clients: ``epsilon`` (an ISO 8601 duration with
  no years or months, default ``PT60S``) and ``async``; so is Chronos 3.x master's
  ``maxCompletionTime`` (seconds, 0 none); Corral adds ``maxRunSeconds`` (seconds, 0
  none; defaults to ``maxCompletionTime``) and ``catchUp`` (``none``, ``last``, ``all``;
  default ``last``).

Messages are Chronos' where it has one (``Cannot parse schedule '...' (wtf bro)``, ``the
job's name is invalid. Allowed names: '([\\w\\.-]+)'``, ``Error, parent does not exist``,
``Parent P of job J not found in job graph!``, ``Tried to add both uri (deprecated) and
fetch parameters on J``) or chronos-python's (``Job must include one of ['schedule',
'parents']``, ``Job must only include 1 of ['schedule', 'parents']``); Chronos answers
its ``require`` failures with a Java stack trace, of which only the message is kept.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from corral.chronos import schedule as sched

__all__ = [
    "CATCH_UP",
    "DEFAULTS",
    "NAME_RE",
    "JobError",
    "normalize",
    "object_name",
    "to_chronos",
]

Obj = dict[str, Any]

#: Chronos 3.x's job name check (``JobUtils.jobNamePattern``; ``\w`` is ASCII in Java)
NAME_RE = re.compile(r"^[\w.-]+$", re.ASCII)
NAME_ERROR = "the job's name is invalid. Allowed names: '([\\w\\.-]+)'"
CATCH_UP = ("none", "last", "all")
CONSTRAINT_OPERATORS = ("EQUALS", "LIKE", "UNLIKE")
CONTAINER_TYPES = ("DOCKER", "MESOS")
NETWORK_MODES = ("BRIDGE", "HOST", "USER")
VOLUME_MODES = ("RW", "RO")

#: server defaults (Chronos 3.x: ``--mesos_task_cpu/mem/disk``, ``--user``; 2.x:
#: ``--task_epsilon``), in the order Chronos serialises a job; ``normalize`` takes
#: overrides for the server's flags
DEFAULTS: Mapping[str, Any] = {
    "command": "",
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
_STRINGS = (
    "executor",
    "executorFlags",
    "taskInfoData",
    "owner",
    "ownerName",
    "description",
    "runAsUser",
)
_BOOLEANS = (
    "shell",
    "disabled",
    "softError",
    "dataProcessingJobType",
    "highPriority",
    "concurrent",
    "async",
)
#: the order of ``JobSerializer`` (the status counters among the job's fields); other
#: fields follow, then ``parents`` or ``schedule`` and ``scheduleTimeZone``
_ORDER = (
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
    "successCount",
    "errorCount",
    "lastSuccess",
    "lastError",
    "cpus",
    "disk",
    "mem",
    "disabled",
    "softError",
    "dataProcessingJobType",
    "errorsSinceLastSuccess",
    "fetch",
    "uris",
    "environmentVariables",
    "arguments",
    "highPriority",
    "runAsUser",
    "concurrent",
    "maxCompletionTime",
    "container",
    "constraints",
)
_COUNTERS = ("successCount", "errorCount", "lastSuccess", "lastError", "errorsSinceLastSuccess")


class JobError(ValueError):
    """A job Chronos (or Corral) refuses; ``str(e)`` is the 400 answer's message."""


# --- normalize ----------------------------------------------------------------------------------
def normalize(
    body: Any,
    *,
    dependent: bool,
    known: Callable[[str], bool],
    now: float,
    defaults: Mapping[str, Any] | None = None,
) -> Obj:
    """The job to store from a ``POST iso8601`` (``dependent=False``) or ``POST
    dependency`` body: validated, defaults filled in, unknown fields dropped. ``known``
    tells whether a job of that name exists (for ``parents``), ``now`` resolves an empty
    schedule start. Raises ``JobError``; cycles are ``dag.check``'s to find."""
    if not isinstance(body, Mapping):
        raise JobError("the job must be a JSON object")
    b = {k: v for k, v in body.items() if v is not None}
    base = {**DEFAULTS, **(defaults or {})}

    name = b.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise JobError(NAME_ERROR)

    has_schedule = "schedule" in b and b["schedule"] != ""
    has_parents = "parents" in b and b["parents"] != []
    if has_schedule and has_parents:
        raise JobError("Job must only include 1 of ['schedule', 'parents']")
    if not has_schedule and not has_parents:
        if dependent and "parents" in b:
            raise JobError("Error, parent does not exist")
        raise JobError("Job must include one of ['schedule', 'parents']")
    if dependent and has_schedule:
        raise JobError("a job with a schedule is added with POST /scheduler/iso8601")
    if not dependent and has_parents:
        raise JobError("a job with parents is added with POST /scheduler/dependency")

    # the trigger first, as Chronos checks the schedule right after the name
    trigger: Obj = {}
    if dependent:
        trigger["parents"] = _parents(name, b["parents"], known)
    else:
        trigger.update(_schedule(b["schedule"], b.get("scheduleTimeZone", ""), now))

    job: Obj = {"name": name}
    container = _container(b["container"]) if "container" in b else None
    command = b.get("command", "")
    if not isinstance(command, str):
        raise JobError("command must be a string")
    if command == "" and container is None:
        raise JobError("missing required field command (it may be empty only with a container)")
    job["command"] = command

    for key in DEFAULTS:
        if key == "command":
            continue
        value = b.get(key, base[key])
        if key in _STRINGS:
            job[key] = _string(key, value)
        elif key in _BOOLEANS:
            job[key] = _boolean(key, value)
        elif key in ("cpus", "mem", "disk"):
            n = _number(key, value)
            job[key] = float(n if n > 0 else base[key])
        elif key == "retries":
            job[key] = _integer(key, value)
        elif key in ("maxCompletionTime", "maxRunSeconds"):
            job[key] = _number(key, value)
        elif key in ("uris", "arguments"):
            job[key] = _string_list(key, value)
        elif key == "fetch":
            job[key] = [_fetch(i, f) for i, f in enumerate(_list(key, value))]
        elif key == "environmentVariables":
            job[key] = [_env(i, e) for i, e in enumerate(_list(key, value))]
        elif key == "constraints":
            job[key] = [_constraint(i, c) for i, c in enumerate(_list(key, value))]
        elif key == "epsilon":
            job[key] = _epsilon(value)
        elif key == "catchUp":
            if value not in CATCH_UP:
                raise JobError(f"catchUp must be one of {', '.join(CATCH_UP)}")
            job[key] = value
    if job["uris"] and job["fetch"]:
        raise JobError(f"Tried to add both uri (deprecated) and fetch parameters on {name}")
    if "maxRunSeconds" not in b and job["maxCompletionTime"]:
        job["maxRunSeconds"] = job["maxCompletionTime"]
    if container is not None:
        job["container"] = container
    job = {k: job[k] for k in (*_ORDER, *DEFAULTS) if k in job}  # Chronos' order
    job.update(trigger)
    return job


def _schedule(text: Any, tz: Any, now: float) -> Obj:
    if not isinstance(text, str):
        raise JobError("schedule must be a string")
    if not isinstance(tz, str):
        raise JobError("scheduleTimeZone must be a string")
    try:
        parsed = sched.parse(text, tz, now)
    except sched.ScheduleError as e:
        raise JobError(str(e)) from None
    # an empty start is "now - 1 s": fixed here, or every reading would move it
    m = sched.SCHEDULE_RE.fullmatch(text)
    shown = parsed.text() if m is not None and m.group(2) == "" else text
    return {"schedule": shown, "scheduleTimeZone": tz}


def _parents(name: str, value: Any, known: Callable[[str], bool]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise JobError("parents must be an array of job names")
    parents = list(dict.fromkeys(value))  # a set in Chronos: once each, in order
    if not parents:
        raise JobError("Error, parent does not exist")
    for p in parents:
        if p == name:
            raise JobError(f"Job {name} cannot be its own parent: that would create a cycle")
        if not known(p):
            raise JobError(f"Parent {p} of job {name} not found in job graph!")
    return parents


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise JobError(f"{key} must be a string")
    return value


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise JobError(f"{key} must be a boolean")
    return value


def _number(key: str, value: Any) -> float | int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise JobError(f"{key} must be a non-negative number")
    return value


def _integer(key: str, value: Any) -> int:
    n = _number(key, value)
    if isinstance(n, float) and not n.is_integer():
        raise JobError(f"{key} must be a non-negative integer")
    return int(n)


def _list(key: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise JobError(f"{key} must be an array")
    return value


def _string_list(key: str, value: Any) -> list[str]:
    items = _list(key, value)
    if not all(isinstance(v, str) for v in items):
        raise JobError(f"{key} must be an array of strings")
    return list(items)


def _scalar_text(value: Any) -> str | None:
    """A JSON scalar as Jackson's ``asText`` gives it (``true``, ``1``, ``1.5``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and math.isfinite(value):
        return str(value)
    return None


def _env(i: int, value: Any) -> Obj:
    if isinstance(value, Mapping) and isinstance(value.get("name"), str) and value["name"]:
        text = _scalar_text(value.get("value", ""))
        if text is not None:
            return {"name": value["name"], "value": text}
    raise JobError(f"environmentVariables[{i}] must be an object with a name and a string value")


def _fetch(i: int, value: Any) -> Obj:
    if not isinstance(value, Mapping) or not isinstance(value.get("uri"), str) or not value["uri"]:
        raise JobError(f"fetch[{i}] must be an object with a uri")
    out: Obj = {"uri": value["uri"]}
    for key, default in (("executable", False), ("cache", False), ("extract", True)):
        out[key] = _boolean(f"fetch[{i}].{key}", value.get(key, default))
    out["output_file"] = _string(f"fetch[{i}].output_file", value.get("output_file", ""))
    return out


def _constraint(i: int, value: Any) -> list[str]:
    shape = f"constraints[{i}] must be [attribute, {'|'.join(CONSTRAINT_OPERATORS)}, value]"
    if not isinstance(value, list) or len(value) != 3 or not all(isinstance(v, str) for v in value):
        raise JobError(shape)
    attribute, operator, target = value
    operator = operator.upper()
    if operator not in CONSTRAINT_OPERATORS:
        raise JobError(shape)
    if operator != "EQUALS":
        try:
            re.compile(target)
        except re.error as e:
            raise JobError(
                f"constraints[{i}]: '{target}' is not a regular expression: {e}"
            ) from None
    return [attribute, operator, target]


def _epsilon(value: Any) -> str:
    if not isinstance(value, str):
        raise JobError("epsilon must be a string (an ISO 8601 duration)")
    try:
        sched.duration_seconds(value)
    except ValueError:
        raise JobError(f"Cannot parse epsilon '{value}'") from None
    return value


def _container(value: Any) -> Obj:
    if not isinstance(value, Mapping):
        raise JobError("container must be an object")
    image = value.get("image")
    if not isinstance(image, str) or not image:
        raise JobError("missing required container field image")
    ctype = _string("container.type", value.get("type") or "DOCKER").upper()
    if ctype not in CONTAINER_TYPES:
        raise JobError(f"container.type must be one of {', '.join(CONTAINER_TYPES)}")
    network = _string("container.network", value.get("network") or "HOST").upper()
    if network not in NETWORK_MODES:
        raise JobError(f"container.network must be one of {', '.join(NETWORK_MODES)}")
    out: Obj = {"type": ctype, "image": image, "network": network}
    if value.get("networkName") is not None:
        out["networkName"] = _string("container.networkName", value["networkName"])
    if value.get("networkInfos") is not None:
        out["networkInfos"] = _list("container.networkInfos", value["networkInfos"])
    volumes = []
    for i, v in enumerate(_list("container.volumes", value.get("volumes") or [])):
        if not isinstance(v, Mapping) or not isinstance(v.get("containerPath"), str):
            raise JobError(f"container.volumes[{i}] must be an object with a containerPath")
        vol: Obj = {"containerPath": v["containerPath"]}
        if v.get("hostPath") is not None:
            vol["hostPath"] = _string(f"container.volumes[{i}].hostPath", v["hostPath"])
        if v.get("mode") is not None:
            mode = _string(f"container.volumes[{i}].mode", v["mode"]).upper()
            if mode not in VOLUME_MODES:
                raise JobError(f"container.volumes[{i}].mode must be RW or RO")
            vol["mode"] = mode
        if v.get("external") is not None:
            vol["external"] = v["external"]
        volumes.append(vol)
    out["volumes"] = volumes
    force = value.get("forcePullImage", False)
    if isinstance(force, str) and force.lower() in ("true", "false"):
        force = force.lower() == "true"  # Chronos reads it with asText.toBoolean
    out["forcePullImage"] = _boolean("container.forcePullImage", force)
    parameters = []
    for i, p in enumerate(_list("container.parameters", value.get("parameters") or [])):
        key, text = (
            (p.get("key"), _scalar_text(p.get("value"))) if isinstance(p, Mapping) else (None, None)
        )
        if not isinstance(key, str) or text is None:
            raise JobError(f"container.parameters[{i}] must be an object with a key and a value")
        parameters.append({"key": key, "value": text})
    out["parameters"] = parameters
    return out


# --- names and the JSON back out --------------------------------------------------------------
def object_name(name: str) -> str:
    """The ``ChronosJob`` object's name: a DNS-1123 label (at most 63 characters) made of
    a lowercase slug of the job name and 10 hex digits of its SHA-1, so that names the
    slug folds together (``A.b``, ``a_b``) stay apart. Stable across versions."""
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:10]
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:52].strip("-")
    return f"{slug}-{digest}" if slug else f"job-{digest}"


def _time_text(value: Any) -> str:
    """``lastSuccess``/``lastError``: "" when unset, else ISO 8601 UTC with ms."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        ms = math.floor(value * 1000)
        return sched.format_time(
            datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
        )
    raise TypeError(f"not a time: {value!r}")


def to_chronos(job: Mapping[str, Any], status: Mapping[str, Any]) -> Obj:
    """The job as ``GET /v1/scheduler/jobs`` shows it: its fields in Chronos' order, the
    counters (``successCount``, ``errorCount``, ``errorsSinceLastSuccess``) and the last
    success and error (``""`` when unset, else ``2026-01-01T00:00:00.000Z``; ``status``
    may hold unix seconds or such strings), and for a scheduled job the schedule as runs
    rewrote it (``status["schedule"]`` when set)."""
    counters: Obj = {
        "successCount": int(status.get("successCount") or 0),
        "errorCount": int(status.get("errorCount") or 0),
        "lastSuccess": _time_text(status.get("lastSuccess")),
        "lastError": _time_text(status.get("lastError")),
        "errorsSinceLastSuccess": int(status.get("errorsSinceLastSuccess") or 0),
    }
    out: Obj = {}
    for key in _ORDER:
        if key in _COUNTERS:
            out[key] = counters[key]
        elif key in job:
            out[key] = job[key]
    for key, value in job.items():
        if key not in out and key not in ("schedule", "scheduleTimeZone", "parents"):
            out[key] = value
    if job.get("parents"):
        out["parents"] = list(job["parents"])
    else:
        out["schedule"] = str(status.get("schedule") or job.get("schedule") or "")
        out["scheduleTimeZone"] = str(job.get("scheduleTimeZone") or "")
    return out
