"""Marathon's ``AppValidation`` rules for an app, with its messages at its paths:
``check_old_api`` (``validateOldAppAPI``) on the deprecated fields as given, and
``check_app`` (``validateCanonicalAppAPI``, ``AppDefinition.validBasicAppDefinition``,
``SchedulingValidation``, ``NetworkValidation``, ``ResourceRole``) on the app once
``apps_translate`` has put them in their canonical places.

Pure, and reads only. ``apps.normalize`` calls ``check_old_api`` after stage 1 and
``check_app`` last, and raises what each recorded in the ``Errors`` as ``Object is not
valid``. A rule records and carries on, so that one 422 lists every violation grouped by
path (``/`` for rules on the whole app, ``/healthChecks(0)`` for list items), as
Marathon's accumulating validators do. Features Marathon ships disabled stay disabled
with Marathon's message (secrets, GPUs, external volumes); persistent volumes (resident
apps) are refused: Corral's agents keep no reservations.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import cast

from corral.marathon.apps_errors import Errors, Obj
from corral.marathon.apps_ids import path_errors
from corral.marathon.apps_schema import DEFAULT_ROLE, DEFAULTS, INT32, MESOS_HEALTH

__all__ = [
    "CMD_ARGS_CONTAINER",
    "IP_PROTOCOL_MESSAGE",
    "IS_MESSAGE",
    "MIGRATION_MESSAGE",
    "OPERATORS",
    "OPERATOR_MESSAGE",
    "PORT_INDEX_MESSAGE",
    "SINGLE_INSTANCE_LABEL",
    "check_app",
    "check_old_api",
]

RANDOM_PORT = 0

OPERATORS = ("UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS")
_IS_VALUE_RE = re.compile(
    r"[a-zA-Z0-9_/.-]*"
)  # SchedulingValidationMessages.MesosLiteralOrFloatValue
_INT_RE = re.compile(r"[+-]?[0-9]+")  # what Java's Integer.parseInt takes

CMD_ARGS_CONTAINER = (
    "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."
)
PORT_INDEX_MESSAGE = "Health check port indices must address an element of the ports array or container port mappings."
IP_PROTOCOL_MESSAGE = (
    "IPv6 can only be used for container type DOCKER and Mesos http/https/tcp health checks"
)
OPERATOR_MESSAGE = (
    "operator must be one of the following UNIQUE, CLUSTER, GROUP_BY, LIKE, MAX_PER, UNLIKE or IS"
)
IS_MESSAGE = (
    "IS only supports Mesos text and float values "
    "(see http://mesos.apache.org/documentation/latest/attributes-resources/)"
)
MIGRATION_MESSAGE = (
    "DCOS_PACKAGE_FRAMEWORK_NAME and DCOS_MIGRATION_API_PATH must be defined"
    " when using DCOS_MIGRATION_API_VERSION"
)
SINGLE_INSTANCE_LABEL = "MARATHON_SINGLE_INSTANCE_APP"


def _feature(name: str) -> str:
    return f"Feature {name} is not enabled. Enable with --enable_features {name})"


# ---------------------------------------------------------------------------------------
# the deprecated API, as given


def check_old_api(a: Obj, e: Errors) -> None:
    """``AppValidation.validateOldAppAPI``."""
    container: Obj = a.get("container") or {}
    docker = container.get("docker")
    if docker is not None:
        if docker.get("credential") is not None:
            e.add("/container/docker/credential", "must be empty")
        if container["type"] == "MESOS":
            if docker.get("network") is not None:
                e.add("/container/docker/network", "must be empty")
            if docker["parameters"]:
                e.add("/container/docker/parameters", "must be empty")
            if docker.get("portMappings"):
                e.add("/container/docker/portMappings", "must be empty")
        if not _names_unique(docker.get("portMappings") or []):
            e.add("/container/docker/portMappings", "Port names must be unique.")
    ip = a.get("ipAddress")
    if ip is not None and container.get("type") == "DOCKER" and "discovery" in ip:
        e.add("/ipAddress", "ipAddress/discovery is not allowed for Docker containers")
    if a.get("uris") and a.get("fetch"):
        e.add("/uris", "may not be set in conjunction with fetch")
    if docker is not None and docker.get("network") is not None and a.get("networks"):
        e.add("/", "must not specify both container.docker.network and networks")
    if ip is not None and a.get("networks"):
        e.add("/", "must not specify both networks and ipAddress")
    ports = [p for p in a.get("ports") or [] if p != RANDOM_PORT]
    if len(set(ports)) != len(ports):
        e.add("/", "ports must be unique")
    if ip is not None and (a.get("ports") or a.get("portDefinitions")):
        e.add("/", "cannot specify both an IP address and port")
    if (
        "ports" in a
        and "portDefinitions" in a
        and [d["port"] for d in a["portDefinitions"]] != a["ports"]
    ):
        e.add("/", "cannot specify both ports and port definitions")


def _names_unique(items: Iterable[Obj]) -> bool:
    names = [x["name"] for x in items if x.get("name") is not None]
    return len(set(names)) == len(names)


# ---------------------------------------------------------------------------------------
# the canonical rules


def _check_path(path: str, e: Errors, at: str) -> None:
    for message in path_errors(path):
        e.add(at, message)


def _check_constraint(c: list[str], e: Errors, p: str) -> None:
    """``SchedulingValidation.complyWithAppConstraintRules``."""
    if not 2 <= len(c) <= 3:
        e.add(p, "Each constraint must have either 2 or 3 fields")
        return
    field, op, value = c[0], c[1].upper(), (c[2] if len(c) == 3 else None)
    if not field:
        e.add(p, "illegal constraint specification")
    elif op not in OPERATORS:
        e.add(p, OPERATOR_MESSAGE)
    elif op == "UNIQUE" and value is not None:
        e.add(p, "UNIQUE does not accept a value")
    elif op == "GROUP_BY" and value is not None and not _is_int(value):
        e.add(p, "GROUP BY must define an integer value or else no value at all")
    elif op == "MAX_PER" and (value is None or not _is_int(value)):
        e.add(p, "MAX_PER requires an integer value")
    elif op in ("LIKE", "UNLIKE"):
        if value is None:
            e.add(p, "LIKE and UNLIKE require a non-empty, regular expression value")
        else:
            try:
                re.compile(value)
            except re.error:
                e.add(p, "is not a valid regular expression")
    elif op == "IS" and not _IS_VALUE_RE.fullmatch(value or ""):
        e.add(p, IS_MESSAGE)


def _is_int(value: str) -> bool:
    return bool(_INT_RE.fullmatch(value)) and INT32[0] <= int(value) <= INT32[1]


def _check_networks(networks: list[Obj], e: Errors) -> None:
    """``NetworkValidation.ramlNetworksValidator`` and the default-name rule (Corral has
    no ``--default_network_name``)."""
    p = "/networks"
    modes = [n["mode"] for n in networks]
    if any(n["mode"] == "host" and (n.get("name") or n.get("labels")) for n in networks):
        e.add(p, "Host networks may not have names or labels")
    if any(n["mode"] == "container/bridge" and n.get("name") for n in networks):
        e.add(p, "Bridge networks may not have names")
    unnamed = sum(1 for n in networks if n["mode"] == "container" and not n.get("name"))
    names = [n["name"] for n in networks if n.get("name")]
    if unnamed > 1 or len(set(names)) != len(names):
        e.add(p, "Duplicate networks are not allowed")
    host, bridge, ct = (
        modes.count("host"),
        modes.count("container/bridge"),
        modes.count("container"),
    )
    if not (
        (host <= 1 and bridge == 0 and ct == 0)
        or (host == 0 and bridge <= 1 and ct == 0)
        or (host == 0 and bridge == 0 and ct > 0)
    ):
        e.add(
            p,
            "May specify a single host network, single bridge network, or else 1-to-n container networks",
        )
    if unnamed:
        e.add(p, "Network name must be specified when container network is selected.")


def _check_container(a: Obj, networks: list[Obj], e: Errors) -> None:
    container = a["container"]
    docker = container.get("docker")
    p = "/container"
    if container["type"] == "DOCKER" and docker is None:
        e.add(f"{p}/docker", "not defined")
    if docker is not None and docker.get("pullConfig") is not None:
        e.add(
            f"{p}/docker/pullConfig",
            "pullConfig is not supported with Docker containerizer"
            if container["type"] == "DOCKER"
            else _feature("secrets"),
        )
    mappings = container.get("portMappings") or []
    if not _names_unique(mappings):
        e.add(f"{p}/portMappings", "Port names must be unique.")
    names = [n["name"] for n in networks if n.get("name")]
    containers = sum(1 for n in networks if n["mode"] == "container")
    for i, m in enumerate(mappings):
        for j, name in enumerate(m.get("networkNames") or []):
            if name not in names:
                e.add(
                    f"{p}/portMappings({i})/networkNames({j})", f"is not one of ({','.join(names)})"
                )
        if containers > 1 and "hostPort" in m and len(m.get("networkNames") or []) != 1:
            e.add(
                f"{p}/portMappings({i})",
                "networkNames must be a single item list when hostPort is specified "
                "and more than 1 container network is defined",
            )
    if container["type"] == "DOCKER" and containers > 1:
        e.add(
            "/",
            "may only specify a single container network when using the Docker container engine",
        )
    for i, v in enumerate(container["volumes"]):
        q = f"{p}/volumes({i})"
        if "persistent" in v:
            e.add(q, "persistent volumes (resident apps) are not supported by Corral")
        elif "external" in v:
            e.add(q, _feature("external_volumes"))
        elif "secret" in v:
            e.add(q, _feature("secrets"))


def _check_health(a: Obj, indices: int, e: Errors) -> None:
    docker = (a.get("container") or {}).get("type") == "DOCKER"
    mesos = 0
    for i, hc in enumerate(a.get("healthChecks") or []):
        p = f"/healthChecks({i})"
        protocol = hc["protocol"]
        if "command" in hc and protocol != "COMMAND":
            e.add(p, f"illegal protocol {protocol} specified with command")
        elif protocol == "COMMAND" and "command" not in hc:
            e.add(p, "illegal protocol COMMAND for non-command health check")
        if protocol != "COMMAND" and "command" not in hc:
            index = hc.get("portIndex")
            if (index is not None and not 0 <= index < indices) or (
                index is None and "port" not in hc and indices != 1
            ):
                e.add(p, PORT_INDEX_MESSAGE)
        if hc["ipProtocol"] != "IPv4" and not (protocol in MESOS_HEALTH and docker):
            e.add(p, IP_PROTOCOL_MESSAGE)
        mesos += protocol in MESOS_HEALTH
    if mesos > 1:
        e.add("/", "AppDefinition can contain at most one Mesos health check")


def _check_readiness(a: Obj, port_names: set[str], e: Errors) -> None:
    checks = a.get("readinessChecks") or []
    if len(checks) > 1:
        e.add("/readinessChecks", f"got {len(checks)}, expected 1 or less")
    for i, rc in enumerate(checks):
        p = f"/readinessChecks({i})"
        if rc["portName"] not in port_names:
            e.add(f"{p}/portName", f"No port definition reference for portName {rc['portName']}")
        if not rc["timeoutSeconds"] < rc["intervalSeconds"]:
            e.add(
                f"{p}/timeoutSeconds",
                f"got {rc['timeoutSeconds']}, expected less than {rc['intervalSeconds']}",
            )


def _check_roles(a: Obj, valid_roles: set[str], e: Errors) -> None:
    role = a["role"]
    if role not in valid_roles:
        e.add("/role", f"got {role}, expected one of: [{', '.join(sorted(valid_roles))}]")
    accepted = a.get("acceptedResourceRoles")
    if accepted is None:
        return
    p = "/acceptedResourceRoles"
    if not accepted:
        e.add(p, "must not be empty")
    for i, name in enumerate(accepted):
        for message in _role_name_errors(name):
            e.add(f"{p}({i})", message)
    allowed = sorted({DEFAULT_ROLE, role})
    if accepted and not (len(accepted) <= 2 and set(accepted) <= set(allowed)):
        e.add(p, f"acceptedResourceRoles can only contain {' and '.join(allowed)}")


def _role_name_errors(name: str) -> list[str]:
    """``ResourceRole.validResourceRole``."""
    out = [f'A role name must not be "{bad}".' for bad in ("", ".", "..") if name == bad]
    if name.startswith("-"):
        out.append("A role name must not start with a '-'.")
    for char, what in (
        ("\t", "horizontal tab (\\x09)"),
        ("\n", "line feed (\\x0a)"),
        ("\x0b", "vertical tab (\\x0b)"),
        ("\x0c", "form feed (\\x0c)"),
        ("\r", "carriage return (\\x0d)"),
        (" ", "space (\\x20)"),
        ("/", "slash (\\x2f)"),
        ("\x7f", "backspace (\\x7f)"),
    ):
        if char in name:
            out.append(f"A role name must not include a {what} character.")
    return out


def check_app(a: Obj, valid_roles: set[str], e: Errors) -> None:
    """``validateCanonicalAppAPI`` and ``AppDefinition.validBasicAppDefinition`` on the
    translated app (``networks`` may still be empty: host)."""
    app_id = a["id"]
    _check_path(app_id, e, "/id")
    if app_id == "/":
        e.add("/id", "Path must contain at least one path element")
        e.add("/", "must not be root")
    for i, dep in enumerate(a.get("dependencies") or []):
        _check_path(dep, e, f"/dependencies({i})")
    networks = a.get("networks") or []
    _check_networks(networks, e)
    if a.get("container") is not None:
        _check_container(a, networks, e)
    defs = a.get("portDefinitions") or []
    if not _names_unique(defs):
        e.add("/portDefinitions", "Port names must be unique.")
    ports = [d["port"] for d in defs if d["port"] != RANDOM_PORT]
    if len(set(ports)) != len(ports):
        e.add("/portDefinitions", "Ports must be unique.")
    cmd, args = bool(a.get("cmd")), bool(a.get("args"))
    container = a.get("container")
    has_container = container is not None and (
        container.get("docker") is not None or container["type"] == "MESOS"
    )
    if not ((cmd != args) or (not (cmd and args) and has_container)):
        e.add("/", CMD_ARGS_CONTAINER)
    mappings = (container or {}).get("portMappings") or []
    _check_health(a, len(mappings) if mappings else len(defs), e)
    named = cast(list[Obj], (container or {}).get("portMappings", defs))
    _check_readiness(a, {m["name"] for m in named if "name" in m}, e)
    if a.get("gpus", 0) > 0:
        if container is not None and container["type"] == "DOCKER":
            e.add("/", "GPU resources only work with the Mesos containerizer")
        e.add("/", _feature("gpu_resources"))
    if a.get("secrets"):
        e.add("/secrets", _feature("secrets"))
    env = a.get("env") or {}
    if any(isinstance(v, dict) for v in env.values()):
        e.add(
            "/env",
            "use of secret-references in the environment requires the secrets feature to be enabled",
        )
    if any(k == "" for k in env):
        e.add("/env", "must not be empty")
    labels = a.get("labels") or {}
    if labels.get("DCOS_MIGRATION_API_VERSION") and not (
        labels["DCOS_MIGRATION_API_VERSION"] == "v1"
        and labels.get("DCOS_PACKAGE_FRAMEWORK_NAME")
        and labels.get("DCOS_MIGRATION_API_PATH")
    ):
        e.add("/", MIGRATION_MESSAGE)
    if labels.get(SINGLE_INSTANCE_LABEL) == "true":
        if a.get("instances", 1) > 1:
            e.add("/", "Single instance app may only have one instance")
        strategy = a.get("upgradeStrategy") or DEFAULTS["upgradeStrategy"]
        for key in ("minimumHealthCapacity", "maximumOverCapacity"):
            if strategy[key] != 0.0:
                e.add(f"/upgradeStrategy/{key}", f"got {strategy[key]}, expected 0.0")
    for i, c in enumerate(a.get("constraints") or []):
        _check_constraint(c, e, f"/constraints({i})")
    unreachable = a.get("unreachableStrategy")
    if (
        isinstance(unreachable, dict)
        and unreachable["inactiveAfterSeconds"] > unreachable["expungeAfterSeconds"]
    ):
        e.add(
            "/unreachableStrategy/inactiveAfterSeconds",
            f"inactiveAfterSeconds ({unreachable['inactiveAfterSeconds']}) must be less or equal to "
            f"expungeAfterSeconds, which is {unreachable['expungeAfterSeconds']}",
        )
    _check_roles(a, valid_roles, e)
