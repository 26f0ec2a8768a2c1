"""Strategy for marathon.corral.dev/v1 Apps: the long-running services of Marathon.

The Marathon service (``corral.marathon``, docs/marathon.md) keeps each app as one
namespaced App in namespace ``marathon``; the API is its only state. It writes ``spec``
from what a client sent to its v2 REST API (normalised, the RAML defaults filled in) and
``status`` (through the ``status`` subresource) from what it learns by running the app::

    metadata.name   a DNS label derived from the app id: a lowercase slug of the id's
                    path plus 10 hex digits of the id's SHA-1 (/web/api -> web-api-<hash>),
                    so that ids the slug folds together (/a/b, /a-b) stay apart
    spec.app        the Marathon app definition JSON, camelCase: {id, cmd | args,
                    container, cpus, mem, disk, gpus, instances, env, labels,
                    constraints, portDefinitions, healthChecks, upgradeStrategy,
                    dependencies, version, ...}
    spec.versions   the versions (timestamps) of the app's earlier definitions
    status          {tasksRunning, tasksStaged, tasksHealthy, tasksUnhealthy, queued,
                     deployments: [{id}], lastTaskFailure: {...}, version}

Ids are Marathon's ``PathId``s in their canonical form: absolute (``/`` first), at least
one segment, each segment dot-separated DNS labels (``ID_PATH_SEGMENT_PATTERN`` of
Marathon's ``PathId.scala``; the stored form has no ``.``/``..`` segments and no empty
ones), the last segment not one of the reserved ``restart``, ``tasks``, ``versions``.

The strategy is the stock one (status reset on create and kept on main-resource writes,
``generation`` bumped on a spec change). Validation checks the *shape* of what the
service writes, not Marathon's semantics (``cmd`` or ``args`` or a container, port and
health-check consistency, constraint operators, known dependencies), which the Marathon
API edge checks with Marathon's own messages: ``spec.app`` with a canonical absolute id,
non-negative numbers, the JSON types of the fields Marathon serialises, absolute and
distinct ``dependencies``; RFC 3339 versions. The id is immutable (``metadata.name`` is
derived from it). Unknown app fields are kept (``x-kubernetes-preserve-unknown-fields``),
as Marathon versions add fields.

App is not one of Kubernetes' 1.32 kinds, so its OpenAPI definitions are declared here
(``MarathonAppStrategy.definitions``), the way a CRD carries its schema: ``spec.app``
and ``status.lastTaskFailure`` preserve unknown fields (their properties are
documentation for ``kubectl explain``), the rest is typed. ``spec.app.id`` is a field
selector, so an app can be found by its Marathon id. Table columns are in
``apiserver/tables.py`` with every other kind's.

The plural ``apps`` is also the name of Kubernetes' ``apps`` group; kubectl resolves
``deployments.apps`` as a resource in a group and ``apps.marathon.corral.dev`` (or
``apps``, ``app``, ``mapp``) as this resource, so neither shadows the other.

Called by the generic store through the registry table (``table.py``); pure, no I/O.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from corral.api.errors import FieldError, duplicate, invalid, required
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

GROUP = "marathon.corral.dev"
VERSION = "v1"
KIND = "App"
#: the namespace the Marathon service keeps its apps in
NAMESPACE = "marathon"
#: OpenAPI definition names, by the convention of CRDs (reversed group, version, kind)
DEFINITION = "dev.corral.marathon.v1.App"
LIST_DEFINITION = "dev.corral.marathon.v1.AppList"

#: one segment of a Marathon path id (``PathId.ID_PATH_SEGMENT_PATTERN`` without the
#: ``.``/``..`` of relative ids): dot-separated DNS labels, i.e. an RFC 1123 subdomain
#: without its length limit
_SEGMENT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
#: a canonical absolute Marathon path id, e.g. ``/web/api`` or ``/prod/web.v2``
PATH_ID = re.compile(rf"(/{_SEGMENT})+")
PATH_ID_ERROR = (
    "must be an absolute path of '/'-separated segments, each consisting of lower case "
    "alphanumeric characters, '-' or '.', and starting and ending with an alphanumeric "
    f"character (e.g. '/web/api', regex used for validation is '^(/{_SEGMENT})+$')"
)
#: the last segments Marathon reserves for its own routes (``/v2/apps/{id}/tasks``...)
RESERVED = ("restart", "tasks", "versions")
RESERVED_ERROR = "must not end with any of the following reserved keywords: " + ", ".join(RESERVED)

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|z|[+-]\d{2}:\d{2})", re.ASCII)
_TIME_ERROR = 'must be an RFC 3339 date and time, e.g. "2026-12-04T10:00:00.000Z"'

# the app fields Marathon serialises, by JSON type (others are kept unchecked)
_APP_STRINGS = ("cmd", "user", "executor", "role", "killSelection")
_APP_BOOLEANS = ("requirePorts",)
_APP_ARRAYS = (
    "constraints",
    "healthChecks",
    "readinessChecks",
    "portDefinitions",
    "ports",
    "fetch",
    "networks",
)
_APP_STRING_ARRAYS = ("args", "uris", "storeUrls", "acceptedResourceRoles")
_APP_OBJECTS = (
    "container",
    "env",
    "labels",
    "upgradeStrategy",
    "unreachableStrategy",
    "residency",
    "ipAddress",
    "secrets",
    "versionInfo",
)
_APP_NUMBERS = ("cpus", "mem", "disk", "backoffFactor")
_APP_INTEGERS = (
    "instances",
    "gpus",
    "backoffSeconds",
    "maxLaunchDelaySeconds",
    "taskKillGracePeriodSeconds",
)
_STATUS_INTEGERS = ("tasksRunning", "tasksStaged", "tasksHealthy", "tasksUnhealthy", "queued")


def _strings(obj: Obj, key: str, path: str) -> list[FieldError]:
    """``obj[key]``, when present, an array of strings."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        return [type_invalid(f"{path}.{key}", value, "array")]
    return [
        type_invalid(f"{path}.{key}[{i}]", item, "string")
        for i, item in enumerate(value)
        if not isinstance(item, str)
    ]


def _time(value: Any, path: str, empty_ok: bool) -> list[FieldError]:
    """An RFC 3339 time (Marathon's versions), ``""`` too when ``empty_ok``."""
    if value is None or (empty_ok and value == ""):
        return []
    if not isinstance(value, str):
        return [type_invalid(path, value, "string")]
    if not _RFC3339.fullmatch(value) or not parses(value):
        return [invalid(path, value, _TIME_ERROR)]
    return []


def path_id_errors(value: Any, path: str, app: bool = True) -> list[FieldError]:
    """A canonical absolute Marathon path id at ``path``; an app's (``app``) may not end
    with a reserved keyword, as Marathon routes ``/v2/apps/{id}/tasks`` and the like."""
    if value is None or value == "":
        return [required(path)]
    if not isinstance(value, str):
        return [type_invalid(path, value, "string")]
    if not value.startswith("/"):
        return [invalid(path, value, "must be absolute (start with '/')")]
    if value == "/":
        return [invalid(path, value, "must contain at least one path element")]
    if not PATH_ID.fullmatch(value):
        return [invalid(path, value, PATH_ID_ERROR)]
    if app and value.rsplit("/", 1)[-1] in RESERVED:
        return [invalid(path, value, RESERVED_ERROR)]
    return []


def _validate_dependencies(app: Obj, path: str) -> list[FieldError]:
    deps = app.get("dependencies")
    if deps is None:
        return []
    if not isinstance(deps, list):
        return [type_invalid(f"{path}.dependencies", deps, "array")]
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, dep in enumerate(deps):
        at = f"{path}.dependencies[{i}]"
        found = path_id_errors(dep, at, app=False)  # an app or a group
        errs += found
        if not found and dep in seen:
            errs.append(duplicate(at, dep))
        if isinstance(dep, str):
            seen.add(dep)
    return errs


def validate_app(app: Any, path: str = "spec.app") -> list[FieldError]:
    """The Marathon app definition's shape (not its semantics: those are the Marathon
    API's)."""
    if app is None:
        return [required(path)]
    if not isinstance(app, dict):
        return [type_invalid(path, app, "object")]
    errs = path_id_errors(app.get("id"), f"{path}.id")
    errs += typed(app, _APP_STRINGS, path, "string")
    errs += typed(app, _APP_BOOLEANS, path, "boolean")
    errs += typed(app, _APP_ARRAYS, path, "array")
    errs += typed(app, _APP_OBJECTS, path, "object")
    for key in _APP_STRING_ARRAYS:
        errs += _strings(app, key, path)
    for key in _APP_NUMBERS:
        errs += non_negative(app, key, path, integer=False)
    for key in _APP_INTEGERS:
        errs += non_negative(app, key, path, integer=True)
    errs += _validate_dependencies(app, path)
    return errs + _time(app.get("version"), f"{path}.version", empty_ok=False)


def validate_versions(versions: Any, path: str = "spec.versions") -> list[FieldError]:
    """The versions of the earlier definitions: distinct RFC 3339 times."""
    if versions is None:
        return []
    if not isinstance(versions, list):
        return [type_invalid(path, versions, "array")]
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, version in enumerate(versions):
        at = f"{path}[{i}]"
        found = _time(version, at, empty_ok=False) if version is not None else [required(at)]
        errs += found
        if not found and version in seen:
            errs.append(duplicate(at, version))
        if isinstance(version, str):
            seen.add(version)
    return errs


def _validate_deployments(status: Obj, path: str) -> list[FieldError]:
    deployments = status.get("deployments")
    if deployments is None:
        return []
    at = f"{path}.deployments"
    if not isinstance(deployments, list):
        return [type_invalid(at, deployments, "array")]
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, item in enumerate(deployments):
        if not isinstance(item, dict):
            errs.append(type_invalid(f"{at}[{i}]", item, "object"))
            continue
        did = item.get("id")
        if did is None or did == "":
            errs.append(required(f"{at}[{i}].id"))
        elif not isinstance(did, str):
            errs.append(type_invalid(f"{at}[{i}].id", did, "string"))
        elif did in seen:
            errs.append(duplicate(f"{at}[{i}].id", did))
        else:
            seen.add(did)
    return errs


def validate_status(status: Any, path: str = "status") -> list[FieldError]:
    """The status fields the Marathon service writes, each checked when present."""
    if status is None:
        return []
    if not isinstance(status, dict):
        return [type_invalid(path, status, "object")]
    errs: list[FieldError] = []
    for key in _STATUS_INTEGERS:
        errs += non_negative(status, key, path, integer=True)
    errs += _validate_deployments(status, path)
    errs += typed(status, ("lastTaskFailure",), path, "object")
    return errs + _time(status.get("version"), f"{path}.version", empty_ok=True)


def app_id(obj: Obj) -> str:
    """The Marathon id of an App (``spec.app.id``), ``""`` when absent."""
    spec = obj.get("spec")
    app = spec.get("app") if isinstance(spec, dict) else None
    value = app.get("id") if isinstance(app, dict) else None
    return value if isinstance(value, str) else ""


# --- OpenAPI definitions (JSON Schema, the ``$defs`` dialect of corral.api.schema) --------


def _free(doc: str) -> dict[str, Any]:
    """An object whose contents are Marathon's business (kept as written)."""
    return {"type": "object", "description": doc, "x-kubernetes-preserve-unknown-fields": True}


def _objects(doc: str) -> dict[str, Any]:
    """An array of objects whose contents are Marathon's business."""
    return {"type": "array", "description": doc, "items": _free("One element.")}


_APP = {
    "type": "object",
    "description": (
        "The app definition as Marathon serialises it (camelCase JSON, the server defaults "
        "filled in). Fields a newer Marathon adds are kept."
    ),
    "properties": {
        "id": schema_prop(
            "string",
            "The app's absolute Marathon path id, e.g. /web/api: segments of lowercase "
            "letters, digits, '-' and '.'; immutable.",
        ),
        "cmd": schema_prop("string", "The command the instances run (through /bin/sh -c)."),
        "args": schema_strings("The command as an argument vector, instead of cmd."),
        "user": schema_prop("string", "The user the instances run as."),
        "instances": schema_prop("integer", "Number of instances to run (default 1).", "int32"),
        "cpus": schema_prop("number", "CPUs each instance asks for (default 1).", "double"),
        "mem": schema_prop("number", "Memory (MB) each instance asks for (default 128).", "double"),
        "disk": schema_prop("number", "Disk (MB) each instance asks for (default 0).", "double"),
        "gpus": schema_prop("integer", "GPUs each instance asks for (default 0).", "int32"),
        "container": _free(
            "The container the instances run in: type (DOCKER or MESOS), docker.image, "
            "portMappings, volumes..."
        ),
        "env": _free("Environment variables of the instances, by name."),
        "labels": _free("Labels of the app (string values)."),
        "constraints": {
            "type": "array",
            "description": "Placement constraints, each [field, operator(, value)]; the "
            "operators: UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER, IS.",
            "items": {"type": "array", "items": {"type": "string"}},
        },
        "acceptedResourceRoles": schema_strings("The roles of the offers instances may use."),
        "portDefinitions": _objects(
            "The host ports each instance needs: {port, protocol, name, labels}; port 0 "
            "asks for any port.",
        ),
        "requirePorts": schema_prop("boolean", "Use the given host ports as they are."),
        "healthChecks": _objects(
            "Health checks: {protocol, path, portIndex, gracePeriodSeconds, "
            "intervalSeconds, timeoutSeconds, maxConsecutiveFailures}.",
        ),
        "readinessChecks": _objects("Readiness checks a deployment waits for."),
        "dependencies": schema_strings(
            "Absolute ids of the apps and groups this app depends on: they start first."
        ),
        "upgradeStrategy": _free(
            "How a deployment replaces instances: minimumHealthCapacity and "
            "maximumOverCapacity (fractions of instances, default 1 and 1)."
        ),
        "backoffSeconds": schema_prop(
            "integer", "The launch delay after a failure (default 1).", "int32"
        ),
        "backoffFactor": schema_prop(
            "number", "What the delay is multiplied by on each failure (default 1.15).", "double"
        ),
        "maxLaunchDelaySeconds": schema_prop("integer", "The longest launch delay.", "int32"),
        "killSelection": schema_prop(
            "string", "Which instances go first on a scale down: YOUNGEST_FIRST or OLDEST_FIRST."
        ),
        "fetch": _objects("Artifacts fetched into the sandbox: {uri, extract, executable}."),
        "uris": schema_strings("URIs fetched into the sandbox (deprecated: fetch)."),
        "version": schema_prop("string", "The version of this definition (when it was made)."),
        "versionInfo": _free("lastScalingAt and lastConfigChangeAt."),
    },
    "required": ["id"],
    "x-kubernetes-preserve-unknown-fields": True,
}

_SPEC = {
    "type": "object",
    "description": "The Marathon app.",
    "properties": {
        "app": _APP,
        "versions": schema_strings(
            "The versions of the app's earlier definitions (RFC 3339 times), for rollback."
        ),
    },
    "required": ["app"],
}

_STATUS = {
    "type": "object",
    "description": "What the Marathon service learnt by running the app.",
    "properties": {
        "tasksRunning": schema_prop("integer", "Number of the app's running tasks.", "int32"),
        "tasksStaged": schema_prop("integer", "Number of the app's tasks being launched.", "int32"),
        "tasksHealthy": schema_prop(
            "integer", "Number of the app's tasks whose health checks pass.", "int32"
        ),
        "tasksUnhealthy": schema_prop(
            "integer", "Number of the app's tasks whose health checks fail.", "int32"
        ),
        "queued": schema_prop("integer", "Number of instances waiting to be launched.", "int32"),
        "deployments": {
            "type": "array",
            "description": "The deployments in progress that touch the app.",
            "items": {
                "type": "object",
                "description": "A deployment.",
                "properties": {"id": schema_prop("string", "The deployment's id.")},
                "required": ["id"],
            },
        },
        "lastTaskFailure": {
            "type": "object",
            "description": "The app's last failed task: appId, taskId, state, message, host, "
            "timestamp, version.",
            "x-kubernetes-preserve-unknown-fields": True,
        },
        "version": schema_prop("string", "The version of the definition the app runs."),
    },
}

DEFINITIONS: dict[str, dict[str, Any]] = kind_definitions(
    GROUP,
    VERSION,
    KIND,
    DEFINITION,
    (
        "App is a long-running service of Corral's Marathon framework. Its instances "
        "are Mesos tasks, Pods in namespace mesos."
    ),
    _SPEC,
    _STATUS,
    "Apps",
)


class MarathonAppStrategy(Strategy):
    """Namespaced; ``spec`` and ``status`` both from the Marathon service."""

    has_status = True
    #: a lowercase slug of the app id plus a short hash (see the module docstring)
    name_format = "label"
    definitions: ClassVar[dict[str, dict[str, Any]]] = DEFINITIONS
    field_selectors: ClassVar[dict[str, Any]] = {"spec.app.id": app_id}

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        if spec is None or isinstance(spec, dict):
            spec = spec or {}
            errs = validate_app(spec.get("app")) + validate_versions(spec.get("versions"))
        else:
            errs = [type_invalid("spec", spec, "object")]
        return errs + validate_status(obj.get("status"))

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        before, after = app_id(old), app_id(new)
        if before and after and after != before:
            errs.append(invalid("spec.app.id", after, "field is immutable"))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_status(new.get("status"))
