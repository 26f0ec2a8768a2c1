"""Whether an offer fits one instance of an app, and the TaskInfo that launches it.

Pure. ``scheduler.Scheduler.offers`` calls ``OfferSpace.of`` once per offer, then
``match`` for each instance it wants to place (the answer is a ``Placement`` or the
reason the offer was declined, counted in the queue's ``processedOffersSummary``), and
``task_info`` for the placement it takes (``OfferSpace.take`` consumes its resources).

What an instance needs: ``cpus``, ``mem``, ``disk``, one pod slot (when the offer carries
the custom resource ``pods``, the node's free pod slots: every Mesos task is a pod, so an
offer takes at most that many instances however small they are; the task does not
request ``pods``) and a host port for every port
definition (host networking) or port mapping with a ``hostPort`` (bridge): ``0`` is any
port of the offer's ``ports`` ranges, another number that very port (host networking
only with ``requirePorts``; without it Marathon picks dynamic ports too). Constraints
(``[field, OPERATOR, value]``, field ``hostname`` or an agent attribute) are read
against the instances of the app already placed (``placed``: their hosts and
attributes), as Marathon's ``Constraints.meetsConstraint`` does:

    UNIQUE      no other instance has this value
    CLUSTER     the value is ``value`` (or, without one, the value of the others)
    GROUP_BY    this value has no more instances than the least-used value seen
    LIKE/UNLIKE the value matches / does not match the regex ``value`` (whole string)
    MAX_PER     fewer than ``value`` instances have this value
    IS          the value is ``value``

The health check (the app's first: a Mesos task has one) goes into the TaskInfo as a
Mesos ``HealthCheck``; the agent turns it into the pod's probes and reports
``TaskStatus.healthy``. Its port is the host port of ``portIndex`` on host networking,
the container port on a bridge (probes go to the pod's address).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from corral.api.mesos import label_safe

Obj = dict[str, Any]

# the reasons of ``processedOffersSummary`` (Marathon's ``NoOfferMatchReason``)
UNFULFILLED_ROLE = "UnfulfilledRole"
UNFULFILLED_CONSTRAINT = "UnfulfilledConstraint"
INSUFFICIENT_CPUS = "InsufficientCpus"
INSUFFICIENT_MEMORY = "InsufficientMemory"
INSUFFICIENT_DISK = "InsufficientDisk"
INSUFFICIENT_PORTS = "InsufficientPorts"
#: Corral's: the offer's ``pods`` (free pod slots of its node) are used up
INSUFFICIENT_PODS = "InsufficientPods"
REASONS = (
    UNFULFILLED_ROLE,
    UNFULFILLED_CONSTRAINT,
    "NoCorrespondingReservationFound",
    "AgentMaintenance",
    INSUFFICIENT_PODS,
    INSUFFICIENT_CPUS,
    INSUFFICIENT_MEMORY,
    INSUFFICIENT_DISK,
    "InsufficientGpus",
    INSUFFICIENT_PORTS,
    "DeclinedScarceResources",
)
#: the labels every instance's task (and so its pod) carries
APP_LABEL = "marathon.corral.dev/app"
APP_ID_KEY = "marathon.corral.dev/app-id"
VERSION_KEY = "marathon.corral.dev/version"
CONFIG_VERSION_KEY = "marathon.corral.dev/config-version"
#: the CNI network a MESOS container on ``container/bridge`` joins (Marathon's default)
MESOS_BRIDGE = "mesos-bridge"
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")


@dataclass
class OfferSpace:
    """What is left of one offer while instances are placed into it. ``pods``: the
    pod slots left (None: the offer carries no ``pods`` resource, nothing to count)."""

    offer_id: str
    agent_id: str
    hostname: str
    attributes: dict[str, str]
    cpus: float
    mem: float
    disk: float
    ports: list[tuple[int, int]] = field(default_factory=list)
    pods: int | None = None

    @classmethod
    def of(cls, offer: Obj) -> OfferSpace:
        scalars = {"cpus": 0.0, "mem": 0.0, "disk": 0.0}
        pods: float | None = None
        ports: list[tuple[int, int]] = []
        for r in offer.get("resources") or []:
            name = r.get("name")
            if name in scalars and r.get("type", "SCALAR") == "SCALAR":
                scalars[name] += float((r.get("scalar") or {}).get("value") or 0.0)
            elif name == "pods" and r.get("type", "SCALAR") == "SCALAR":
                pods = (pods or 0.0) + float((r.get("scalar") or {}).get("value") or 0.0)
            elif name == "ports":
                for rng in (r.get("ranges") or {}).get("range") or []:
                    ports.append((int(rng["begin"]), int(rng["end"])))
        return cls(
            offer_id=str((offer.get("id") or {}).get("value") or ""),
            agent_id=str((offer.get("agent_id") or {}).get("value") or ""),
            hostname=str(offer.get("hostname") or ""),
            attributes=attributes_of(offer),
            cpus=scalars["cpus"],
            mem=scalars["mem"],
            disk=scalars["disk"],
            ports=sorted(ports),
            pods=None if pods is None else int(pods + 1e-9),
        )

    def has_port(self, port: int) -> bool:
        return any(b <= port <= e for b, e in self.ports)

    def full(self) -> bool:
        """No pod slot left: no instance fits, whatever it needs."""
        return self.pods is not None and self.pods <= 0

    def take(self, app: Obj, ports: list[int]) -> None:
        if self.pods is not None:
            self.pods -= 1
        self.cpus -= float(app.get("cpus") or 0)
        self.mem -= float(app.get("mem") or 0)
        self.disk -= float(app.get("disk") or 0)
        for p in ports:
            out: list[tuple[int, int]] = []
            for b, e in self.ports:
                if b <= p <= e:
                    if b < p:
                        out.append((b, p - 1))
                    if p < e:
                        out.append((p + 1, e))
                else:
                    out.append((b, e))
            self.ports = out


@dataclass(frozen=True)
class Placed:
    """Where an instance of the app runs (for constraints)."""

    hostname: str
    attributes: dict[str, str]


@dataclass(frozen=True)
class Placement:
    """The host ports an instance gets in an offer (in port-definition order)."""

    host_ports: list[int]


def attributes_of(offer: Obj) -> dict[str, str]:
    out: dict[str, str] = {}
    for a in offer.get("attributes") or []:
        name = str(a.get("name") or "")
        if a.get("type") == "TEXT":
            out[name] = str((a.get("text") or {}).get("value") or "")
        elif a.get("type") == "SCALAR":
            out[name] = f"{float((a.get('scalar') or {}).get('value') or 0):g}"
        elif a.get("type") == "RANGES":
            rngs = (a.get("ranges") or {}).get("range") or []
            out[name] = ",".join(f"[{r.get('begin')}-{r.get('end')}]" for r in rngs)
        elif a.get("type") == "SET":
            out[name] = ",".join(str(x) for x in (a.get("set") or {}).get("item") or [])
    return out


def bridged(app: Obj) -> bool:
    return any(n.get("mode") != "host" for n in app.get("networks") or [])


def port_requests(app: Obj) -> list[int | None]:
    """One entry per port the app declares: the host port it asks for (0: any, None:
    no host port, as a bridge mapping without ``hostPort``)."""
    if bridged(app):
        return [
            (None if m.get("hostPort") is None else int(m["hostPort"]))
            for m in (app.get("container") or {}).get("portMappings") or []
        ]
    require = bool(app.get("requirePorts"))
    return [int(d.get("port") or 0) if require else 0 for d in app.get("portDefinitions") or []]


def _value(space: OfferSpace, name: str) -> str | None:
    if name == "hostname":
        return space.hostname
    return space.attributes.get(name)


def _placed_value(p: Placed, name: str) -> str | None:
    return p.hostname if name == "hostname" else p.attributes.get(name)


def constraint_ok(c: list[str], space: OfferSpace, placed: list[Placed]) -> bool:
    name, op = c[0], c[1].upper()
    arg = c[2] if len(c) > 2 else ""
    have = _value(space, name)
    others = [v for v in (_placed_value(p, name) for p in placed) if v is not None]
    if op == "UNLIKE":
        return have is None or re.fullmatch(arg, have) is None
    if have is None:
        return False
    if op == "UNIQUE":
        return have not in others
    if op == "CLUSTER":
        return have == arg if arg else all(v == have for v in others)
    if op == "LIKE":
        return re.fullmatch(arg, have) is not None
    if op == "IS":
        return have == arg
    if op == "MAX_PER":
        return others.count(have) < int(arg or 1)
    if op == "GROUP_BY":
        counts: dict[str, int] = {}
        for v in others:
            counts[v] = counts.get(v, 0) + 1
        if have not in counts:
            return True
        return counts[have] <= min(counts.values())
    return True


def match(app: Obj, space: OfferSpace, placed: list[Placed], role: str = "*") -> Placement | str:
    """A ``Placement`` of one instance of ``app`` in what is left of the offer, or the
    first reason it does not fit (one of ``REASONS``)."""
    accepted = app.get("acceptedResourceRoles") or []
    if accepted and "*" not in accepted and role not in accepted:
        return UNFULFILLED_ROLE
    for c in app.get("constraints") or []:
        if not constraint_ok(list(c), space, placed):
            return UNFULFILLED_CONSTRAINT
    if space.full():
        return INSUFFICIENT_PODS
    if space.cpus + 1e-9 < float(app.get("cpus") or 0):
        return INSUFFICIENT_CPUS
    if space.mem + 1e-9 < float(app.get("mem") or 0):
        return INSUFFICIENT_MEMORY
    if space.disk + 1e-9 < float(app.get("disk") or 0):
        return INSUFFICIENT_DISK
    picked: list[int] = []
    fixed = [p for p in port_requests(app) if p]
    for want in port_requests(app):
        if want is None:
            continue
        if want:
            if not space.has_port(want) or want in picked:
                return INSUFFICIENT_PORTS
            picked.append(want)
            continue
        port = _free_port(space, set(picked) | set(fixed))
        if port is None:
            return INSUFFICIENT_PORTS
        picked.append(port)
    return Placement(picked)


def _free_port(space: OfferSpace, taken: set[int]) -> int | None:
    for b, e in space.ports:
        for p in range(b, e + 1):
            if p not in taken:
                return p
    return None


def _label_ok(key: str, value: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return bool(_LABEL_VALUE.match(name)) and (value == "" or bool(_LABEL_VALUE.match(value)))


def environment(app: Obj, tid: str, host: str, ports: list[int]) -> dict[str, str]:
    """The variables Marathon gives a task (``EnvironmentHelper``), then the app's."""
    env: dict[str, str] = {}
    names = _port_names(app)
    for i, p in enumerate(ports):
        env[f"PORT{i}"] = str(p)
        if names[i]:
            env[f"PORT_{names[i].upper().replace('-', '_')}"] = str(p)
    if ports:
        env["PORT"] = str(ports[0])
        env["PORTS"] = ",".join(str(p) for p in ports)
    env["HOST"] = host
    env["MESOS_TASK_ID"] = tid
    env["MARATHON_APP_ID"] = str(app["id"])
    env["MARATHON_APP_VERSION"] = str(app.get("version") or "")
    env["MARATHON_APP_RESOURCE_CPUS"] = f"{float(app.get('cpus') or 0):g}"
    env["MARATHON_APP_RESOURCE_MEM"] = f"{float(app.get('mem') or 0):g}"
    env["MARATHON_APP_RESOURCE_DISK"] = f"{float(app.get('disk') or 0):g}"
    labels = app.get("labels") or {}
    env["MARATHON_APP_LABELS"] = " ".join(sorted(k for k in labels if re.fullmatch(r"\w+", k)))
    for k in labels:
        if re.fullmatch(r"\w+", k):
            env[f"MARATHON_APP_LABEL_{k.upper()}"] = str(labels[k])
    for k, v in (app.get("env") or {}).items():
        if isinstance(v, str):
            env[k] = v
    return env


def _port_names(app: Obj) -> list[str]:
    """The names of the ports that get host ports, in ``ports`` order."""
    if bridged(app):
        maps = (app.get("container") or {}).get("portMappings") or []
        return [str(m.get("name") or "") for m in maps if m.get("hostPort") is not None]
    return [str(d.get("name") or "") for d in app.get("portDefinitions") or []]


def _health_check(app: Obj, ports: list[int]) -> Obj | None:
    checks = app.get("healthChecks") or []
    if not checks:
        return None
    hc = checks[0]
    protocol = str(hc.get("protocol") or "HTTP").removeprefix("MESOS_")
    out: Obj = {
        "delay_seconds": float(hc.get("delaySeconds", 15)),
        "interval_seconds": float(hc.get("intervalSeconds", 60)),
        "timeout_seconds": float(hc.get("timeoutSeconds", 20)),
        "consecutive_failures": int(hc.get("maxConsecutiveFailures", 3)),
        "grace_period_seconds": float(hc.get("gracePeriodSeconds", 300)),
    }
    if protocol == "COMMAND":
        out["type"] = "COMMAND"
        out["command"] = {"value": str((hc.get("command") or {}).get("value") or "")}
        return out
    port = _check_port(app, hc, ports)
    if port is None:
        return None
    if protocol in ("HTTP", "HTTPS"):
        out["type"] = "HTTP"
        http: Obj = {"port": port, "path": str(hc.get("path") or "/")}
        if protocol == "HTTPS":
            http["scheme"] = "https"
        out["http"] = http
    else:
        out["type"] = "TCP"
        out["tcp"] = {"port": port}
    return out


def _check_port(app: Obj, hc: Obj, ports: list[int]) -> int | None:
    if hc.get("port"):
        return int(hc["port"])
    index = int(hc.get("portIndex") or 0)
    if bridged(app):
        maps = (app.get("container") or {}).get("portMappings") or []
        if index >= len(maps):
            return None
        container_port = int(maps[index].get("containerPort") or 0)
        if container_port:
            return container_port
        host_ports = _mapping_host_ports(maps, ports)
        return host_ports[index]
    return ports[index] if index < len(ports) else None


def _mapping_host_ports(maps: list[Obj], ports: list[int]) -> list[int | None]:
    """The host port of each mapping (None: the mapping has none)."""
    out: list[int | None] = []
    it = iter(ports)
    for m in maps:
        out.append(next(it, None) if m.get("hostPort") is not None else None)
    return out


def _container(app: Obj, ports: list[int]) -> Obj | None:
    container = app.get("container")
    if not container:
        return None
    docker = container.get("docker") or {}
    image = str(docker.get("image") or "")
    volumes = [
        {
            "container_path": str(v["containerPath"]),
            "host_path": str(v["hostPath"]),
            "mode": str(v.get("mode") or "RW"),
        }
        for v in container.get("volumes") or []
        if v.get("hostPath") and v.get("containerPath")
    ]
    out: Obj = {"volumes": volumes} if volumes else {}
    mapped = []
    maps = container.get("portMappings") or []
    for m, host_port in zip(maps, _mapping_host_ports(maps, ports), strict=False):
        if host_port is None or not bridged(app):
            continue
        mapped.append(
            {
                "host_port": host_port,
                "container_port": int(m.get("containerPort") or 0) or host_port,
                "protocol": str(m.get("protocol") or "tcp"),
            }
        )
    if container.get("type") == "DOCKER":
        info: Obj = {
            "image": image,
            "network": "BRIDGE" if bridged(app) else "HOST",
            "force_pull_image": bool(docker.get("forcePullImage")),
            "privileged": bool(docker.get("privileged")),
        }
        if bridged(app):
            info["port_mappings"] = mapped
        return {"type": "DOCKER", "docker": info, **out}
    if bridged(app):  # a MESOS container on Marathon's bridge: its own network namespace
        out["network_infos"] = [{"name": MESOS_BRIDGE, "port_mappings": mapped}]
    if image:
        mesos = {"image": {"type": "DOCKER", "docker": {"name": image}}}
        return {"type": "MESOS", "mesos": mesos, **out}
    return {"type": "MESOS", **out} if out else None


def task_info(app: Obj, tid: str, space: OfferSpace, placement: Placement) -> Obj:
    """The TaskInfo of one instance of ``app`` placed in the offer."""
    ports = placement.host_ports
    env = environment(app, tid, space.hostname, ports)
    command: Obj = {"environment": {"variables": [{"name": k, "value": v} for k, v in env.items()]}}
    if app.get("cmd") is not None:
        command.update(shell=True, value=str(app["cmd"]))
    else:
        command.update(shell=False, arguments=[str(a) for a in app.get("args") or []])
    uris = [
        {k: f[k] for k in ("extract", "executable", "cache") if k in f} | {"value": f["uri"]}
        for f in app.get("fetch") or []
        if f.get("uri")
    ]
    if uris:
        command["uris"] = uris
    if app.get("user") and app.get("container") is None:
        command["user"] = str(app["user"])
    resources: list[Obj] = [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": float(app.get("cpus") or 0)}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": float(app.get("mem") or 0)}},
    ]
    if float(app.get("disk") or 0) > 0:
        resources.append({"name": "disk", "type": "SCALAR", "scalar": {"value": app["disk"]}})
    if ports:
        ranges = [{"begin": p, "end": p} for p in sorted(ports)]
        resources.append({"name": "ports", "type": "RANGES", "ranges": {"range": ranges}})
    labels = [{"key": k, "value": str(v)} for k, v in (app.get("labels") or {}).items()]
    labels = [lab for lab in labels if _label_ok(lab["key"], lab["value"])]
    labels += [
        {"key": APP_LABEL, "value": app_label(str(app["id"]))},
        {"key": APP_ID_KEY, "value": str(app["id"])},
        {"key": VERSION_KEY, "value": str(app.get("version") or "")},
        {"key": CONFIG_VERSION_KEY, "value": config_version(app)},
    ]
    info: Obj = {
        "name": safe_name(str(app["id"])),
        "task_id": {"value": tid},
        "agent_id": {"value": space.agent_id},
        "resources": resources,
        "command": command,
        "labels": {"labels": labels},
    }
    container = _container(app, ports)
    if container is not None:
        info["container"] = container
    check = _health_check(app, ports)
    if check is not None:
        info["health_check"] = check
    grace = app.get("taskKillGracePeriodSeconds")
    if grace:
        info["kill_policy"] = {"grace_period": {"nanoseconds": int(float(grace) * 1e9)}}
    return info


def safe_name(app_id: str) -> str:
    """The task name Marathon gives (the app id's last segments, dotted)."""
    return ".".join(reversed([s for s in app_id.split("/") if s]))


def app_label(app_id: str) -> str:
    """The value of ``APP_LABEL`` on an app's pods (a valid label value)."""
    return label_safe("_".join(s for s in app_id.split("/") if s))


def config_version(app: Obj) -> str:
    info = app.get("versionInfo") or {}
    return str(info.get("lastConfigChangeAt") or app.get("version") or "")


def readiness_url(app: Obj, check: Obj, ports: list[int], address: str) -> str | None:
    """Where a readiness check probes an instance at ``address`` (its IP): the host
    port of the port named ``portName``, or on a bridge that mapping's container port."""
    name = str(check.get("portName") or "http-api")
    scheme = "https" if check.get("protocol") == "HTTPS" else "http"
    path = "/" + str(check.get("path") or "/").lstrip("/")
    if bridged(app):
        maps = (app.get("container") or {}).get("portMappings") or []
        for m, host_port in zip(maps, _mapping_host_ports(maps, ports), strict=False):
            if m.get("name") == name:
                port = int(m.get("containerPort") or 0) or host_port
                return f"{scheme}://{address}:{port}{path}" if port else None
        return None
    names = _port_names(app)
    if name in names and names.index(name) < len(ports):
        return f"{scheme}://{address}:{ports[names.index(name)]}{path}"
    return None
