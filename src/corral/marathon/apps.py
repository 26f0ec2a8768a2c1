"""A Marathon app definition: read and validated with Marathon's 422 answers, brought to
canonical form with Marathon's defaults, versioned, and shown back with only the keys the
``marathon`` 0.13.0 client accepts.

Pure. ``http.py`` calls ``normalize`` on every ``POST /v2/apps`` and ``PUT``/``PATCH
/v2/apps/{id}`` body (an ``AppError`` is the 422 answer and nothing is stored),
``with_version`` to stamp the stored definition, and ``to_client``/``task_to_client`` to
answer reads; ``groups.py`` calls ``normalize`` for the apps of a group; ``plan.py`` reads
``config_changed`` and the version info. This module is the app's whole interface: it
holds the pipeline, the canonical form and the versions, and re-exports the names its
callers need from the ``apps_*`` modules below it, which never import it.

The rules are Marathon 1.10's (mesosphere/marathon master 2021-07), read in the RAML types
(``docs/docs/rest-api/public/api/v2/types/*.raml``), ``AppNormalization``,
``AppValidation``, ``AppDefinition.validBasicAppDefinition``, ``SchedulingValidation``,
``NetworkValidation``, ``PathId`` and ``AppConversion``. ``normalize`` runs them in
Marathon's stages, each in its own module so that it reads against one part of
Marathon's source:

1. **the JSON reader** (``apps_schema``, the RAML-generated play-json ``Reads``): types,
   ``minimum``, ``pattern``... A failure is ``{"message": "Invalid JSON", "details":
   [{"path": "/cpus", "errors": ["error.min"]}]}`` (play-json's codes; Marathon answers
   422 when every error is a validation error, as here). Unknown keys are ignored,
   ``null`` is the same as leaving a key out;
2. **the deprecated API** (``apps_rules.check_old_api``: ``validateOldAppAPI``), then its
   translation (``apps_translate``: ``ports`` to ``portDefinitions``, ``uris`` to
   ``fetch``, ``container.docker.network`` and ``ipAddress`` to ``networks``,
   ``container.docker.portMappings`` to ``container.portMappings``);
3. **the canonical rules** (``apps_rules.check_app``): ``{"message": "Object is not
   valid", "details": [...]}`` with Marathon's messages and paths (``/`` for rules on the
   whole app, ``/healthChecks(0)`` for list items).

Then the defaults, filled in here in ``AppConversion``'s key order: cpus 1, mem 128, disk
0, gpus 0, instances 1, backoffSeconds 1, backoffFactor 1.15, maxLaunchDelaySeconds 300
(the 1.10 RAML; 3600 before 1.8), requirePorts false, killSelection ``YOUNGEST_FIRST``,
upgradeStrategy ``{1.0, 1.0}``, unreachableStrategy ``{inactiveAfterSeconds: 0,
expungeAfterSeconds: 0}``, executor "", role ``*``, networks ``[{"mode": "host"}]``, one
port definition ``{"port": 0, "protocol": "tcp", "name": "default"}``
(``Apps.DefaultPortDefinitions``) when no ports are given on host networking, one port
mapping ``{"containerPort": 0, "hostPort": 0, "servicePort": 0, "protocol": "tcp", "name":
"default"}`` when none is given on a bridge; health checks get Marathon's defaults (grace
300 s, interval 60 s, timeout 20 s, 3 failures, portIndex 0, ipProtocol IPv4, delay 15 s),
readiness checks theirs (``readinessCheck``, HTTP, ``/``, ``http-api``, 30 s, 10 s,
``[200]``).

Where Marathon would answer 500 for a user's mistake (``NormalizationException``, a
health check whose ``protocol`` and ``command`` disagree), this answers the 422 with
Marathon's message at ``/`` or at the check. Features Marathon ships disabled stay
disabled with Marathon's message (secrets, GPUs, external volumes); persistent volumes
(resident apps) are refused: Corral's agents keep no reservations.

The stored definition is this module's canonical form (the keys below, always present
where Marathon has a default); ``version``/``versionInfo`` are added by ``with_version``.
The client's view of it is ``apps_view``'s; the 422 answer (``apps_errors``) and path
ids (``apps_ids``) are shared with ``groups.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from corral.marathon.apps_errors import (
    E_ARR,
    E_BOOL,
    E_ENUM,
    E_INT,
    E_LONG,
    E_MAX,
    E_MAX_LEN,
    E_MIN,
    E_MIN_LEN,
    E_MISSING,
    E_NUM,
    E_OBJ,
    E_PATTERN,
    E_STR,
    INVALID_JSON,
    INVALID_OBJECT,
    AppError,
    Errors,
    Obj,
)
from corral.marathon.apps_ids import canonical_id, parent_id, path_errors, path_id_ok, split_id
from corral.marathon.apps_rules import check_app, check_old_api
from corral.marathon.apps_schema import (
    DEFAULT_ROLE,
    DEFAULTS,
    HOST_NETWORK,
    MESOS_HEALTH,
    default_mapping,
    read_app,
    unique_items,
)
from corral.marathon.apps_translate import default_port_index, place_ports, translate
from corral.marathon.apps_view import (
    APP_KEYS,
    EMBEDS,
    TASK_KEYS,
    resolve_embed,
    task_to_client,
    timestamp,
    to_client,
)

__all__ = [
    "APP_KEYS",
    "DEFAULTS",
    "EMBEDS",
    "E_ARR",
    "E_BOOL",
    "E_ENUM",
    "E_INT",
    "E_LONG",
    "E_MAX",
    "E_MAX_LEN",
    "E_MIN",
    "E_MIN_LEN",
    "E_MISSING",
    "E_NUM",
    "E_OBJ",
    "E_PATTERN",
    "E_STR",
    "INVALID_JSON",
    "INVALID_OBJECT",
    "TASK_KEYS",
    "AppError",
    "canonical_id",
    "config_changed",
    "normalize",
    "parent_id",
    "path_errors",
    "path_id_ok",
    "resolve_embed",
    "rollback_version",
    "task_to_client",
    "timestamp",
    "to_client",
    "version_of",
    "with_version",
]

VERSION_ONLY_MESSAGE = "The 'version' field may only be combined with the 'id' field."

#: keys a client may post back from a read, or that only ``with_version`` sets
_NOT_DEFINITION = frozenset(
    [
        "version",
        "versionInfo",
        "tasks",
        "tasksRunning",
        "tasksStaged",
        "tasksHealthy",
        "tasksUnhealthy",
        "deployments",
        "lastTaskFailure",
        "taskStats",
        "tasksStats",
        "readinessCheckResults",
    ]
)


def rollback_version(body: Any) -> str | None:
    """The version a ``PUT /v2/apps/{id}`` body asks to roll back to (``{"version": V}``,
    ``id`` allowed beside it), else None; an ``AppError`` when ``version`` comes with any
    other field (``validateAppUpdateVersion``)."""
    if not isinstance(body, dict) or body.get("version") is None:
        return None
    others = [k for k, v in body.items() if v is not None and k not in ("id", "version")]
    if others:
        raise AppError.at("/", VERSION_ONLY_MESSAGE)
    version = body["version"]
    if not isinstance(version, str):
        raise AppError.at("/version", E_STR, message=INVALID_JSON)
    return version


def normalize(
    body: Any,
    *,
    app_id: str | None = None,
    partial: bool = False,
    base: Mapping[str, Any] | None = None,
    parent: str = "/",
    enforce_role: bool = False,
) -> Obj:
    """Validate ``body`` and return the app in canonical form (see the module docstring);
    raise ``AppError`` (nothing to store) otherwise.

    ``app_id`` is the id from the URL (``PUT /v2/apps/{id}``): it replaces the body's.
    ``partial`` with a ``base`` (the stored app) is Marathon's partial update (``PUT``
    without ``partialUpdate=false``, ``PATCH``): every field the body gives replaces the
    stored one whole, the others stay. Without ``partial``, ``base`` only contributes its
    ``role`` to the roles allowed. ``parent`` resolves relative ids and dependencies (the
    group an app is posted in); ``enforce_role``: the app's top-level group enforces its
    role (``enforceRole``), which then is the default and only role.
    """
    e = Errors()
    if partial and base is not None:
        if rollback_version(body) is not None:
            raise ValueError("a rollback body: call rollback_version() and restore that version")
        update = read_app(body, e, update=True)
        e.check(INVALID_JSON)
        check_old_api(update, e)
        e.check()
        translate(update, e)
        e.check()
        merged = {k: v for k, v in base.items() if k not in _NOT_DEFINITION}
        merged.update(update)
        merged["id"] = base["id"]
        return normalize(
            merged, app_id=app_id or base["id"], base=base, parent=parent, enforce_role=enforce_role
        )
    if app_id is not None:
        body = {**body, "id": canonical_id(app_id)} if isinstance(body, dict) else body
    a = read_app(body, e, update=False)
    e.check(INVALID_JSON)
    check_old_api(a, e)
    e.check()
    a["id"] = canonical_id(a["id"], parent)
    if "dependencies" in a:
        a["dependencies"] = unique_items(canonical_id(d, parent) for d in a["dependencies"])
    ports_given = bool(a.get("portDefinitions"))
    translate(a, e)
    place_ports(a)
    e.check()
    if ports_given or (a.get("container") or {}).get("portMappings") is not None:
        default_port_index(a)
    segments = split_id(a["id"])
    top = segments[0] if len(segments) > 1 else None
    default_role = top if enforce_role and top else DEFAULT_ROLE
    valid_roles = (
        {default_role} if enforce_role and top else {DEFAULT_ROLE, *([top] if top else [])}
    )
    if base is not None and base.get("role"):
        valid_roles.add(base["role"])
    a.setdefault("role", default_role)
    check_app(a, valid_roles, e)
    e.check()
    return _finish(a)


# ---------------------------------------------------------------------------------------
# the canonical form


def _health_out(hc: Obj) -> Obj:
    """``appHealthCheckWrites``: the keys Marathon shows for each kind of check."""
    protocol = hc["protocol"]
    out: Obj = {"gracePeriodSeconds": hc["gracePeriodSeconds"]}
    if protocol == "COMMAND":
        out["command"] = dict(hc["command"])
    if protocol in ("HTTP", "HTTPS"):
        out["ignoreHttp1xx"] = hc.get("ignoreHttp1xx", False)
    out["intervalSeconds"] = hc["intervalSeconds"]
    out["maxConsecutiveFailures"] = hc["maxConsecutiveFailures"]
    if protocol in ("HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS") and "path" in hc:
        out["path"] = hc["path"]
    if protocol != "COMMAND":
        if "port" in hc:
            out["port"] = hc["port"]
        if "portIndex" in hc or "port" not in hc:
            out["portIndex"] = hc.get("portIndex", 0)
    out["protocol"] = protocol
    out["ipProtocol"] = hc["ipProtocol"] if protocol in MESOS_HEALTH else "IPv4"
    out["timeoutSeconds"] = hc["timeoutSeconds"]
    out["delaySeconds"] = hc["delaySeconds"] if protocol in (*MESOS_HEALTH, "COMMAND") else 15
    return out


def _container_out(container: Obj, networks: list[Obj]) -> Obj:
    out: Obj = {"type": container["type"]}
    docker = container.get("docker")
    if docker is not None:
        if container["type"] == "DOCKER":
            out["docker"] = {
                "forcePullImage": docker["forcePullImage"],
                "image": docker["image"],
                "parameters": [dict(p) for p in docker["parameters"]],
                "privileged": docker["privileged"],
            }
        else:
            out["docker"] = {"image": docker["image"], "forcePullImage": docker["forcePullImage"]}
    out["volumes"] = [dict(v) for v in container["volumes"]]
    if "portMappings" in container:
        bridged = any(n["mode"] == "container/bridge" for n in networks)
        out["portMappings"] = [
            {"containerPort": m["containerPort"], "hostPort": m.get("hostPort", 0), **m}
            if bridged
            else dict(m)
            for m in container["portMappings"]
        ]
    return out


def _finish(a: Obj) -> Obj:
    """Marathon's defaults and ``forPostValidation``, in ``AppConversion``'s key order."""
    networks = [dict(n) for n in a.get("networks") or []] or [dict(HOST_NETWORK)]
    host = all(n["mode"] == "host" for n in networks)
    container = a.get("container")
    if container is None and not host:  # NetworkedContainer: a default Mesos container
        container = {
            "type": "MESOS",
            "volumes": [],
            "portMappings": [default_mapping(name="default")],
        }
    out: Obj = {"id": a["id"]}
    if a.get("acceptedResourceRoles"):
        out["acceptedResourceRoles"] = list(a["acceptedResourceRoles"])
    if a.get("args"):
        out["args"] = list(a["args"])
    out["backoffFactor"] = a.get("backoffFactor", DEFAULTS["backoffFactor"])
    out["backoffSeconds"] = a.get("backoffSeconds", DEFAULTS["backoffSeconds"])
    if a.get("cmd") is not None:
        out["cmd"] = a["cmd"]
    out["constraints"] = [[c[0], c[1].upper(), *c[2:]] for c in a.get("constraints") or []]
    if container is not None:
        out["container"] = _container_out(container, networks)
    out["cpus"] = float(a.get("cpus", DEFAULTS["cpus"]))
    out["dependencies"] = list(a.get("dependencies") or [])
    out["disk"] = float(a.get("disk", DEFAULTS["disk"]))
    out["env"] = dict(a.get("env") or {})
    out["executor"] = a.get("executor", DEFAULTS["executor"])
    out["fetch"] = [dict(f) for f in a.get("fetch") or []]
    out["gpus"] = a.get("gpus", DEFAULTS["gpus"])
    out["healthChecks"] = unique_items(_health_out(hc) for hc in a.get("healthChecks") or [])
    out["instances"] = a.get("instances", DEFAULTS["instances"])
    out["labels"] = dict(a.get("labels") or {})
    out["maxLaunchDelaySeconds"] = a.get("maxLaunchDelaySeconds", DEFAULTS["maxLaunchDelaySeconds"])
    out["mem"] = float(a.get("mem", DEFAULTS["mem"]))
    out["networks"] = networks
    if host:
        out["portDefinitions"] = [dict(d) for d in a.get("portDefinitions") or []]
    out["readinessChecks"] = [dict(rc) for rc in a.get("readinessChecks") or []]
    out["requirePorts"] = a.get("requirePorts", False) if host else False
    if a.get("taskKillGracePeriodSeconds") is not None:
        out["taskKillGracePeriodSeconds"] = a["taskKillGracePeriodSeconds"]
    out["upgradeStrategy"] = dict(a.get("upgradeStrategy") or DEFAULTS["upgradeStrategy"])
    if a.get("user") is not None:
        out["user"] = a["user"]
    unreachable = a.get("unreachableStrategy", DEFAULTS["unreachableStrategy"])
    out["unreachableStrategy"] = dict(unreachable) if isinstance(unreachable, dict) else unreachable
    out["killSelection"] = a.get("killSelection", DEFAULTS["killSelection"])
    if a.get("tty") is not None:
        out["tty"] = a["tty"]
    out["role"] = a["role"]
    return out


# ---------------------------------------------------------------------------------------
# versions


def version_of(app: Mapping[str, Any]) -> str:
    """The app's version (the timestamp of its last change of any kind)."""
    version: str = app["version"]
    return version


def config_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """``AppDefinition.isUpgrade``: anything but ``instances`` (and the version) differs;
    the set-valued fields compare as sets."""

    def canon(app: Mapping[str, Any]) -> Obj:
        out = {
            k: v
            for k, v in app.items()
            if k not in _NOT_DEFINITION and k not in ("id", "instances")
        }
        for key in ("constraints", "healthChecks", "dependencies", "acceptedResourceRoles"):
            if key in out:
                out[key] = sorted(repr(x) for x in out[key])
        return out

    return canon(old) != canon(new)


def with_version(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], *, now: str, restart: bool = False
) -> Obj:
    """``new`` with ``version`` and ``versionInfo`` as ``GroupVersioningUtil`` sets them:
    a new app or a config change moves all three to ``now``; a scale (only ``instances``
    differs) moves ``version`` and ``lastScalingAt``; a restart (``restart=True``, nothing
    else changed) moves ``version`` and ``lastConfigChangeAt``; no change keeps the old
    ones."""
    out = {k: v for k, v in new.items() if k not in ("version", "versionInfo")}
    if old is None or "versionInfo" not in old or config_changed(old, new):
        info = {"lastScalingAt": now, "lastConfigChangeAt": now}
        return {**out, "version": now, "versionInfo": info}
    info = dict(old["versionInfo"])
    if old.get("instances") != new.get("instances"):
        info["lastScalingAt"] = now
    elif restart:
        info["lastConfigChangeAt"] = now
    else:
        return {**out, "version": old["version"], "versionInfo": info}
    return {**out, "version": now, "versionInfo": info}
