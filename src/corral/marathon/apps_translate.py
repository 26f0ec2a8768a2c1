"""Stage 2 of reading an app: the deprecated API moved to its canonical places, as
Marathon's ``AppNormalization`` (``forDeprecated``, ``forDeprecatedUpdates``) does it:
``uris`` to ``fetch``, ``ports`` to ``portDefinitions``, ``ipAddress`` and
``container.docker.network`` to ``networks``, ``container.docker.portMappings`` and
``ipAddress.discovery.ports`` to ``container.portMappings``; then where the ports go for
the networking chosen, and the health checks' default ``portIndex``.

Pure. ``apps.normalize`` is the only caller: after ``apps_rules.check_old_api`` has
refused the combinations the old API forbids, and before ``apps_rules.check_app`` sees
the result. Each function edits the stage-1 read it is given in place (``normalize``
owns it) and records what cannot be translated in the ``Errors``: Marathon answers 500
there (a ``NormalizationException``), this answers the 422 with Marathon's message at
``/``.
"""

from __future__ import annotations

from corral.marathon.apps_errors import Errors, Obj
from corral.marathon.apps_schema import DEFAULT_PORT_DEFINITION, default_mapping

__all__ = ["default_port_index", "place_ports", "translate"]

MESOS_BRIDGE_NAME = "mesos-bridge"  # Marathon's --mesos_bridge_name default
EXTRACT_SUFFIXES = (
    ".tar",
    ".tar.gz",
    ".tar.bz2",
    ".tar.xz",
    ".gz",
    ".tgz",
    ".tbz2",
    ".txz",
    ".zip",
)


def _fetch_from_uris(a: Obj, e: Errors) -> None:
    """``AppNormalization.Artifacts``: ``uris`` become ``fetch`` entries."""
    uris = a.pop("uris", None)
    if uris and a.get("fetch"):
        e.add("/", "cannot specify both uris and fetch fields")
    elif uris:
        a["fetch"] = [
            {
                "uri": u,
                "extract": u.split("?", 1)[0].split("#", 1)[0].endswith(EXTRACT_SUFFIXES),
                "executable": False,
                "cache": False,
            }
            for u in uris
        ]


def _translate_networks(a: Obj, e: Errors) -> list[Obj] | None:
    """``AppNormalization.NetworkTranslation``: ``ipAddress`` and
    ``container.docker.network`` as ``networks``; None when none of the three is given."""
    ip = a.pop("ipAddress", None)
    docker = (a.get("container") or {}).get("docker") or {}
    kind = docker.pop("network", None)
    given: list[Obj] | None = a.get("networks") or None
    if given is not None and (ip is not None or kind is not None):
        e.add("/", "cannot mix deprecated and canonical network APIs")
        return given
    if kind == "NONE":
        e.add("/", "unsupported docker network type NONE")
        return None
    labels = {"labels": ip["labels"]} if ip is not None and ip.get("labels") else {}
    if kind == "HOST":
        return [{"mode": "host"}]
    if kind == "BRIDGE":
        return [{"mode": "container/bridge", **labels}]
    if kind == "USER":
        name = {"name": ip["networkName"]} if ip is not None and "networkName" in ip else {}
        return [{"mode": "container", **name, **labels}]
    if ip is not None:
        if ip.get("networkName") == MESOS_BRIDGE_NAME:
            return [{"mode": "container/bridge", **labels}]
        name = {"name": ip["networkName"]} if "networkName" in ip else {}
        return [{"mode": "container", **name, **labels}]
    return given


def _migrate_container(a: Obj, ip: Obj | None, e: Errors) -> None:
    """``migrateDockerPortMappings`` and ``migrateIpDiscovery``: port mappings live in
    ``container.portMappings``."""
    container = a.get("container")
    if container is None:
        return
    docker = container.get("docker") or {}
    old = docker.pop("portMappings", None)
    if old:
        if container.get("portMappings"):
            e.add("/", "cannot specify both portMappings and docker.portMappings")
        else:
            container["portMappings"] = old
    elif old is not None and "portMappings" not in container:
        container["portMappings"] = old
    ports = ((ip or {}).get("discovery") or {}).get("ports") or []
    if ports:
        if container["type"] != "MESOS":
            e.add(
                "/",
                f"ipAddress.discovery.ports do not apply for container type {container['type']}",
            )
        elif container.get("portMappings"):
            e.add("/", "container.portMappings and ipAddress.discovery.ports must not both be set")
        else:
            container["portMappings"] = [
                {
                    "containerPort": port["number"],
                    "servicePort": 0,
                    "protocol": port["protocol"],
                    "name": port["name"],
                    "labels": port["labels"],
                }
                for port in ports
            ]


def translate(a: Obj, e: Errors) -> None:
    """The deprecated fields of ``a`` in their canonical places (in place): what
    ``AppNormalization.forDeprecated``/``forDeprecatedUpdates`` do before merging."""
    _fetch_from_uris(a, e)
    ip = a.get("ipAddress")
    if ip is not None and a.get("container") is None:
        a["container"] = {"type": "MESOS", "volumes": []}
    _migrate_container(a, ip, e)
    networks = _translate_networks(a, e)
    if networks is not None:
        a["networks"] = networks
    ports = a.pop("ports", None)
    if ports is not None and "portDefinitions" not in a:
        a["portDefinitions"] = [{"port": p, "protocol": "tcp", "labels": {}} for p in ports]


def place_ports(a: Obj) -> None:
    """``forDeprecated``'s port rules: default port definitions on host networking, none
    otherwise; port mappings only off the host network, a default one, and as many as
    there were port definitions."""
    networks = a.get("networks") or []
    bridged = any(n["mode"] != "host" for n in networks)
    given = a.get("portDefinitions")
    if bridged:
        a.pop("portDefinitions", None)
    elif given is None:
        a["portDefinitions"] = [dict(DEFAULT_PORT_DEFINITION, labels={})]
    container = a.get("container")
    if container is None:
        return
    if not bridged:
        container.pop("portMappings", None)
        return
    if container.get("portMappings") is None:
        container["portMappings"] = [default_mapping(name="default")]
    delta = len(given or []) - len(container["portMappings"])
    container["portMappings"].extend(default_mapping() for _ in range(delta))


def default_port_index(a: Obj) -> None:
    """``AppNormalization.normalizeHealthChecks``: a check on a port (not ``COMMAND``)
    that names neither ``port`` nor ``portIndex`` gets ``portIndex: 0``; Marathon does it
    only when the app declares ports (else the check must find exactly one port)."""
    for hc in a.get("healthChecks") or []:
        if hc["protocol"] != "COMMAND" and "port" not in hc and "portIndex" not in hc:
            hc["portIndex"] = 0
