"""Strategy for mesos.corral.dev/v1 Frameworks: the schedulers subscribed to the Mesos master.

The Mesos master (``corral.mesos``) creates one cluster-scoped Framework per framework id
when a scheduler first subscribes, so that the framework outlives a master restart and
``kubectl get frameworks`` lists it; the framework's tasks are Pods in namespace
``mesos`` owned by it (``metadata.ownerReferences``), so deleting the Framework lets the
garbage collector remove them. ``spec.frameworkInfo`` is the Mesos ``FrameworkInfo`` as
the framework sent it, in its protobuf JSON mapping (snake_case: ``failover_timeout``,
``webui_url``); the master keeps ``status`` (connection, registration times, task counts,
allocated and offered resources) through the ``status`` subresource::

    spec.frameworkInfo   {user, name, id: {value}, roles | role, failover_timeout, ...}
    status               {connected, active, registeredTime, reregisteredTime?,
                          disconnectedTime?, tasks: {STATE: n}, allocated: {cpus, mem, ...},
                          offered: {...}}

The strategy is the stock one (status reset on create and kept on main-resource writes,
``generation`` bumped on a spec change). Validation covers what Mesos itself requires of
a ``FrameworkInfo`` (``name`` and ``user``, a non-negative ``failover_timeout``, valid and
distinct roles, not ``role`` and ``roles`` together, an id equal to the object's name)
and the types of the status fields; the rest of ``frameworkInfo`` is kept as sent.

Framework is not one of Kubernetes' 1.32 kinds, so its OpenAPI definitions are declared
here (``FrameworkStrategy.definitions``), the way a CRD carries its schema:
``frameworkInfo`` preserves unknown fields, ``status`` is typed. The store decodes and
prunes by them; ``/openapi/v3`` and ``/openapi/v2`` publish them (``kubectl explain``).
Table columns are in ``apiserver/tables.py`` with every other kind's.

Called by the generic store through the registry table (``table.py``); pure, no I/O.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from corral.api import mesos
from corral.api.errors import FieldError, duplicate, forbidden, invalid, required
from corral.api.mesos import role_error
from corral.api.validation import NEGATIVE_ERROR
from corral.apiserver.registry.base import META_REF, Obj, Strategy, kind_definitions
from corral.apiserver.registry.fields import is_number, parses, type_invalid

KIND = "Framework"
#: OpenAPI definition names, by the convention of CRDs (reversed group, version, kind)
DEFINITION = "dev.corral.mesos.v1.Framework"
LIST_DEFINITION = "dev.corral.mesos.v1.FrameworkList"

_TIMES = ("registeredTime", "reregisteredTime", "disconnectedTime")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|z|[+-]\d{2}:\d{2})$")
_TIME_ERROR = 'must be an RFC 3339 date and time, e.g. "2026-12-04T10:00:00Z"'


def _required_string(info: Obj, key: str, path: str) -> list[FieldError]:
    value = info.get(key)
    if value is None or value == "":
        return [required(f"{path}.{key}")]
    if not isinstance(value, str):
        return [type_invalid(f"{path}.{key}", value, "string")]
    return []


def _validate_roles(info: Obj, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    roles = info.get("roles")
    if roles is not None:
        if not isinstance(roles, list):
            return [type_invalid(f"{path}.roles", roles, "array")]
        seen: set[str] = set()
        for i, role in enumerate(roles):
            at = f"{path}.roles[{i}]"
            if not isinstance(role, str):
                errs.append(type_invalid(at, role, "string"))
            elif (why := role_error(role)) is not None:
                errs.append(invalid(at, role, why))
            elif role in seen:
                errs.append(duplicate(at, role))
            else:
                seen.add(role)
    role = info.get("role")
    if role is not None:
        if not isinstance(role, str):
            errs.append(type_invalid(f"{path}.role", role, "string"))
        elif (why := role_error(role)) is not None:
            errs.append(invalid(f"{path}.role", role, why))
        elif roles:
            errs.append(forbidden(f"{path}.role", "may not be set together with `roles`"))
    return errs


def validate_framework_info(info: Any, name: str, path: str) -> list[FieldError]:
    """A ``FrameworkInfo`` (protobuf JSON mapping) as Mesos requires it; ``name`` is the
    object's name, which a present ``id.value`` must equal."""
    if info is None:
        return [required(path)]
    if not isinstance(info, dict):
        return [type_invalid(path, info, "object")]
    errs = _required_string(info, "name", path)
    errs += _required_string(info, "user", path)
    timeout = info.get("failover_timeout")
    if timeout is not None:
        if not is_number(timeout):
            errs.append(type_invalid(f"{path}.failover_timeout", timeout, "number"))
        elif timeout < 0:
            errs.append(invalid(f"{path}.failover_timeout", timeout, NEGATIVE_ERROR))
    errs += _validate_roles(info, path)
    fid = info.get("id")
    if fid is not None:
        if not isinstance(fid, dict):
            errs.append(type_invalid(f"{path}.id", fid, "object"))
        elif fid.get("value") is None or fid.get("value") == "":
            errs.append(required(f"{path}.id.value"))
        elif fid["value"] != name:
            errs.append(invalid(f"{path}.id.value", fid["value"], "must equal metadata.name"))
    return errs


def _validate_counts(value: Any, path: str, integer: bool) -> list[FieldError]:
    """A map of non-negative numbers (integers when ``integer``)."""
    if not isinstance(value, dict):
        return [type_invalid(path, value, "object")]
    errs: list[FieldError] = []
    for key, n in value.items():
        at = f"{path}.{key}"
        if not is_number(n) or (integer and isinstance(n, float) and not n.is_integer()):
            errs.append(type_invalid(at, n, "integer" if integer else "number"))
        elif n < 0:
            errs.append(invalid(at, n, NEGATIVE_ERROR))
    return errs


def validate_status(status: Any, path: str = "status") -> list[FieldError]:
    """The status fields the master writes, each typed when present."""
    if status is None:
        return []
    if not isinstance(status, dict):
        return [type_invalid(path, status, "object")]
    errs: list[FieldError] = []
    for key in ("connected", "active"):
        value = status.get(key)
        if value is not None and not isinstance(value, bool):
            errs.append(type_invalid(f"{path}.{key}", value, "boolean"))
    for key in _TIMES:
        value = status.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            errs.append(type_invalid(f"{path}.{key}", value, "string"))
        elif not _RFC3339.match(value) or not parses(value):
            errs.append(invalid(f"{path}.{key}", value, _TIME_ERROR))
    if status.get("tasks") is not None:
        errs += _validate_counts(status["tasks"], f"{path}.tasks", integer=True)
    for key in ("allocated", "offered"):
        if status.get(key) is not None:
            errs += _validate_counts(status[key], f"{path}.{key}", integer=False)
    return errs


# --- OpenAPI definitions (JSON Schema, the ``$defs`` dialect of corral.api.schema) --------


def _time(doc: str) -> dict[str, Any]:
    return {"$ref": META_REF + "Time", "description": doc}


def _amounts(doc: str, type_: str, fmt: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": doc,
        "additionalProperties": {"type": type_, "format": fmt},
    }


_FRAMEWORK_INFO = {
    "type": "object",
    "description": (
        "The Mesos FrameworkInfo the framework subscribed with, in its protobuf JSON "
        "mapping (snake_case field names): user, name, id.value, failover_timeout, "
        "checkpoint, roles (or the deprecated role), capabilities, principal, hostname, "
        "webui_url, labels. Kept as the framework sent it."
    ),
    "x-kubernetes-preserve-unknown-fields": True,
}

_SPEC = {
    "type": "object",
    "description": "What the framework registered as.",
    "properties": {"frameworkInfo": _FRAMEWORK_INFO},
    "required": ["frameworkInfo"],
}

_STATUS = {
    "type": "object",
    "description": "The framework as the Mesos master last saw it.",
    "properties": {
        "connected": {
            "type": "boolean",
            "description": "Whether the framework's scheduler is connected to the master.",
        },
        "active": {
            "type": "boolean",
            "description": "Whether the framework receives offers (false once deactivated).",
        },
        "registeredTime": _time("When the framework first subscribed."),
        "reregisteredTime": _time("When the framework last subscribed again (failover)."),
        "disconnectedTime": _time("When the scheduler disconnected; unset while connected."),
        "tasks": _amounts("Number of the framework's tasks by state.", "integer", "int64"),
        "allocated": _amounts(
            "Scalar resources held by the framework's tasks (cpus, mem and disk in MB...).",
            "number",
            "double",
        ),
        "offered": _amounts(
            "Scalar resources in the framework's outstanding offers.", "number", "double"
        ),
    },
}

DEFINITIONS: dict[str, dict[str, Any]] = kind_definitions(
    mesos.GROUP,
    mesos.VERSION,
    KIND,
    DEFINITION,
    (
        "Framework is a Mesos framework (a scheduler) subscribed to Corral's Mesos "
        "master. Its tasks are Pods in namespace mesos owned by it."
    ),
    _SPEC,
    _STATUS,
    "Frameworks",
)


class FrameworkStrategy(Strategy):
    """Cluster-scoped; ``spec`` from the framework, ``status`` from the master."""

    has_status = True
    definitions: ClassVar[dict[str, dict[str, Any]]] = DEFINITIONS

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        spec = spec if isinstance(spec, dict) else {}
        name = str((obj.get("metadata") or {}).get("name") or "")
        errs = validate_framework_info(spec.get("frameworkInfo"), name, "spec.frameworkInfo")
        return errs + validate_status(obj.get("status"))

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_status(new.get("status"))
