"""A Mesos TaskInfo as the Pod that runs it (pure: dicts in, a manifest out).

Every Mesos task is stored and run as a Pod (DESIGN.md, "the pod is the universal unit
of work"). The master (``master.py``) validates a LAUNCH with ``tasks.validate_task`` and
then calls :func:`task_pod` for the manifest it creates and binds to the offered node;
``tasks.validate_task`` shares the readers here (command form, image, probes) so that
what it accepts is exactly what this module can express as a valid Pod.

What runs, as Mesos decides it (``src/launcher/executor.cpp``, ``src/docker/docker.cpp``,
``isolators/docker/runtime.cpp``, ``slave.cpp``):

- a command task (``TaskInfo.command``) or a task of the DEFAULT executor (LAUNCH_GROUP):
  the task's CommandInfo in the task's ContainerInfo, with the task's health check as
  probes, its kill policy as the grace period (3 s, the command executor's default) and
  ``max_completion_time`` as ``activeDeadlineSeconds``;
- a CUSTOM executor (``ExecutorInfo.command``): the executor's CommandInfo in the
  executor's ContainerInfo; it receives the task over the agent's executor API and owns
  health checks and kill policy (grace period: ``shutdown_grace_period``, default 5 s).

The command (``CommandInfo.shell``, default true):

=====================  =====================================  =========================
CommandInfo            MESOS container / host                 DOCKER container
=====================  =====================================  =========================
shell, value           command ``/bin/sh -c value``           same (entrypoint replaced)
argv, value            command ``[value]``, args              args ``[value] + arguments``
                       ``arguments[1:]`` (argv[0] is          (``docker run image value
                       ``arguments[0]``)                      args...``: entrypoint kept)
argv, no value, image  args ``arguments`` (image entrypoint)  args ``arguments``
=====================  =====================================  =========================

The environment is what Mesos' command executor hands its task: ``MESOS_FRAMEWORK_ID``,
``MESOS_EXECUTOR_ID`` (the task id for a command task, as Mesos names the command
executor), ``MESOS_SLAVE_ID`` (Mesos exports no ``MESOS_AGENT_ID``), ``MESOS_CHECKPOINT``
and ``MESOS_ALLOCATION_ROLE``, plus ``MESOS_TASK_ID`` (not set by Mesos; Marathon sets
it and tasks expect it) and, for a custom executor, ``MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD``.
The CommandInfo's variables override them, as in Mesos. The agent adds ``MESOS_SANDBOX``,
``MESOS_DIRECTORY`` and ``MESOS_AGENT_ENDPOINT`` (``agent/mesos_task.py``).

``CommandInfo.user`` becomes ``securityContext.runAsUser`` when it is numeric (or
``root``); a user *name* cannot be resolved without the node's passwd file, so it stays
only in the ``TASK_INFO`` annotation for the agent. ``FrameworkInfo.user`` is not applied.

Not expressed (accepted and ignored, as a Mesos agent without the matching isolator
would): ``DockerInfo.parameters``, ``ContainerInfo.hostname``, ``TaskInfo.check``
(generalized checks), ``HTTPCheckInfo.statuses`` (built-in executors ignore it too).
HTTP and TCP probes go to the pod IP, where Mesos' checks use 127.0.0.1.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

from corral.api import mesos as names
from corral.api.validation import is_qualified_name, is_valid_label_value
from corral.offers.resources import MB, parse_resources

Obj = dict[str, Any]

CONTAINER_NAME = "task"
#: executor.cpp: ``Duration gracePeriod = Seconds(3)`` unless the KillPolicy says otherwise
COMMAND_KILL_GRACE_NS = 3_000_000_000
#: slave/constants.hpp ``DEFAULT_EXECUTOR_SHUTDOWN_GRACE_PERIOD``
EXECUTOR_SHUTDOWN_GRACE_NS = 5_000_000_000
#: HealthCheck field defaults (mesos.proto)
HEALTH_DEFAULTS = {
    "delay_seconds": 15.0,
    "interval_seconds": 10.0,
    "timeout_seconds": 20.0,
    "consecutive_failures": 3,
    "grace_period_seconds": 10.0,
}
#: ``timeout_seconds: 0`` means "no timeout" in Mesos; a probe needs a number
NO_TIMEOUT = 2**31 - 1
#: the API server's limit on all annotations of one object (``TotalAnnotationSizeLimitB``)
ANNOTATIONS_LIMIT = 256 * 1024
_MI = 2**20
_NUMERIC = re.compile(r"^[0-9]+$")


# --- reading a TaskInfo ---------------------------------------------------------------------


def value_of(field: Any) -> str:
    """The string of an id message (``{"value": "x"}``); "" when absent or malformed."""
    if isinstance(field, dict) and isinstance(field.get("value"), str):
        return str(field["value"])
    return ""


def duration_ns(duration: Any) -> int | None:
    """``DurationInfo.nanoseconds`` (a number, or a string: int64 in proto3 JSON)."""
    if not isinstance(duration, dict) or "nanoseconds" not in duration:
        return None
    raw = duration["nanoseconds"]
    if isinstance(raw, bool):
        raise ValueError("nanoseconds must be an integer")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ValueError("nanoseconds must be an integer") from None


def is_custom_executor(executor: Obj | None) -> bool:
    """A CUSTOM executor runs its own command; the DEFAULT one runs the task's. An unset
    type is inferred from ``command`` as Mesos does for LAUNCH (mesos.proto)."""
    if not executor:
        return False
    kind = executor.get("type")
    if kind in (None, "UNKNOWN"):
        return executor.get("command") is not None
    return bool(kind == "CUSTOM")


def running_parts(task: Obj, executor: Obj | None) -> tuple[Obj | None, Obj | None]:
    """(CommandInfo, ContainerInfo) of what the pod's container runs."""
    if is_custom_executor(executor):
        assert executor is not None
        return executor.get("command"), executor.get("container")
    return task.get("command"), task.get("container")


def image_of(container: Obj | None) -> tuple[str | None, bool]:
    """(image, always pull) of a ContainerInfo; image None: the task runs on the host."""
    if not container:
        return None, False
    if container.get("type") == "DOCKER":
        docker = container.get("docker") or {}
        return str(docker.get("image") or "") or None, bool(docker.get("force_pull_image"))
    image = (container.get("mesos") or {}).get("image")
    if not image:
        return None, False
    name = str((image.get("docker") or {}).get("name") or "")
    return name or None, image.get("cached") is False


def pod_network(container: Obj | None) -> bool:
    """Whether the task gets its own network namespace: Docker BRIDGE/USER/NONE, or a
    MESOS container joining a named (CNI) network; everything else shares the host's."""
    if not container:
        return False
    if container.get("type") == "DOCKER":
        return (container.get("docker") or {}).get("network") in ("BRIDGE", "USER", "NONE")
    return any(isinstance(n, dict) and n.get("name") for n in container.get("network_infos") or [])


def port_mappings(container: Obj | None) -> list[Obj]:
    """``docker.port_mappings`` plus the port mappings of ``network_infos``."""
    if not container:
        return []
    out = list((container.get("docker") or {}).get("port_mappings") or [])
    for net in container.get("network_infos") or []:
        if isinstance(net, dict):
            out.extend(net.get("port_mappings") or [])
    return [m for m in out if isinstance(m, dict)]


def argv_of(command: Obj, *, docker: bool) -> tuple[list[str] | None, list[str] | None]:
    """(command, args) of a CommandInfo, per the table in the module docstring."""
    value = command.get("value")
    arguments = [str(a) for a in command.get("arguments") or []]
    if command.get("shell", True) is not False:
        return ["/bin/sh", "-c", str(value or "")], None
    if docker:
        args = ([str(value)] if value else []) + arguments
        return None, args or None
    if value:
        return [str(value)], arguments[1:] or None
    return None, arguments or None


def env_pairs(command: Obj | None) -> list[tuple[str, str]]:
    """The VALUE variables of a CommandInfo's environment, in order."""
    out = []
    for var in ((command or {}).get("environment") or {}).get("variables") or []:
        if isinstance(var, dict) and var.get("type", "VALUE") == "VALUE":
            out.append((str(var.get("name") or ""), str(var.get("value") or "")))
    return out


def limit_value(raw: Any) -> float:
    """A ``TaskInfo.limits`` entry: ``Value.Scalar`` (``{"value": x}``) or a bare number;
    ``"Infinity"`` (proto3 JSON of an infinite double) means no limit."""
    if isinstance(raw, dict):
        raw = raw.get("value")
    if isinstance(raw, bool):
        raise ValueError(f"invalid limit {raw!r}")
    if isinstance(raw, str):
        raw = raw.strip()
        if raw.lower() in ("infinity", "inf", "+inf"):
            return math.inf
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"invalid limit {raw!r}") from None
    if math.isnan(value) or value < 0:
        raise ValueError(f"invalid limit {raw!r}")
    return value


def total_resources(task: Obj, executor: Obj | None) -> tuple[Any, list[tuple[int, int]]]:
    """Task plus executor resources (the pod holds both): ``parse_resources`` output."""
    vec, ports = parse_resources(list(task.get("resources") or []))
    if executor:
        evec, eports = parse_resources(list(executor.get("resources") or []))
        vec, ports = vec + evec, ports + eports
    return vec, ports


# --- quantities -----------------------------------------------------------------------------


def cpu_quantity(millicores: int) -> str:
    return f"{millicores}m"


def bytes_quantity(n: int) -> str:
    return f"{n // _MI}Mi" if n % _MI == 0 else str(n)


def _seconds(value: float, minimum: int) -> int:
    return max(minimum, math.ceil(value - 1e-9))


# --- health check -> probes -----------------------------------------------------------------


def _exec_argv(command: Obj) -> list[str]:
    argv, args = argv_of(command, docker=False)
    argv = (argv or []) + (args or [])
    env = [f"{k}={v}" for k, v in env_pairs(command)]
    return ["env", *env, *argv] if env else argv


def probe_handler(check: Obj) -> Obj:
    """The probe action of a HealthCheck: exec (COMMAND), httpGet (HTTP), tcpSocket (TCP)."""
    kind = check.get("type")
    if kind == "COMMAND":
        return {"exec": {"command": _exec_argv(check.get("command") or {})}}
    if kind == "HTTP":
        http = check.get("http") or {}
        get: Obj = {"port": int(http["port"]), "path": http.get("path") or "/"}
        get["scheme"] = "HTTPS" if http.get("scheme") == "https" else "HTTP"
        return {"httpGet": get}
    return {"tcpSocket": {"port": int((check.get("tcp") or {})["port"])}}


def probes(check: Obj) -> Obj:
    """livenessProbe, readinessProbe (threshold 1: the Ready condition is
    ``TaskStatus.healthy``) and, when ``grace_period_seconds`` outlasts ``delay_seconds``,
    a startupProbe that tolerates failures until the grace period ends (failures during
    Mesos' grace period are ignored until the first success)."""
    opt = {k: check.get(k, d) for k, d in HEALTH_DEFAULTS.items()}
    timeout = float(opt["timeout_seconds"])
    common: Obj = {
        **probe_handler(check),
        "initialDelaySeconds": _seconds(float(opt["delay_seconds"]), 0),
        "periodSeconds": _seconds(float(opt["interval_seconds"]), 1),
        "timeoutSeconds": _seconds(timeout, 1) if timeout > 0 else NO_TIMEOUT,
        "successThreshold": 1,
    }
    failures = max(1, int(opt["consecutive_failures"]))
    out: Obj = {
        "livenessProbe": {**common, "failureThreshold": failures},
        "readinessProbe": {**common, "failureThreshold": 1},
    }
    extra = float(opt["grace_period_seconds"]) - float(opt["delay_seconds"])
    if extra > 0:
        tolerated = math.ceil(extra / common["periodSeconds"])
        out["startupProbe"] = {**common, "failureThreshold": tolerated + failures}
    return out


# --- the pod --------------------------------------------------------------------------------


def _labels(task: Obj, framework_id: str, agent: str, role: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for label in (task.get("labels") or {}).get("labels") or []:
        if not isinstance(label, dict):
            continue
        key, value = label.get("key"), label.get("value", "")
        if not isinstance(key, str) or not isinstance(value, str):
            continue
        if key.startswith(names.GROUP + "/"):
            continue  # ours below
        if is_qualified_name(key) or is_valid_label_value(value):
            continue  # not a valid Kubernetes label: kept only in TASK_INFO
        out[key] = value
    out.update(
        {
            names.FRAMEWORK_ID: names.label_safe(framework_id),
            names.TASK_HASH: names.label_safe(value_of(task.get("task_id"))),
            names.AGENT_ID: names.label_safe(agent),
            names.ROLE: names.label_safe(role),
        }
    )
    return out


def format_duration(ns: int) -> str:
    """A duration as stout prints it and pymesos parses it (``5secs``, ``100ms``)."""
    if ns % 1_000_000_000 == 0 or ns >= 1_000_000_000:
        return f"{ns / 1e9:g}secs"
    return f"{ns / 1e6:g}ms"


def _environment(
    task: Obj,
    command: Obj | None,
    *,
    framework_id: str,
    framework_info: Obj,
    agent: str,
    role: str,
    executor: Obj | None,
    custom: bool,
) -> list[Obj]:
    task_id = value_of(task.get("task_id"))
    env: dict[str, str] = {
        "MESOS_FRAMEWORK_ID": framework_id,
        "MESOS_EXECUTOR_ID": value_of((executor or {}).get("executor_id")) or task_id,
        "MESOS_SLAVE_ID": agent,
    }
    if framework_info.get("checkpoint"):
        # only when set: pymesos' executor takes any non-empty value for true
        env["MESOS_CHECKPOINT"] = "1"
    if custom:
        assert executor is not None
        grace = duration_ns(executor.get("shutdown_grace_period"))
        env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"] = format_duration(
            EXECUTOR_SHUTDOWN_GRACE_NS if grace is None else grace
        )
    else:
        env["MESOS_TASK_ID"] = task_id
    for name, val in env_pairs(command):
        env[name] = val
    if not custom:
        env["MESOS_ALLOCATION_ROLE"] = role  # executor.cpp sets it after the task's own
    return [{"name": k, "value": v} for k, v in env.items()]


def _resources(task: Obj, executor: Obj | None) -> Obj:
    vec, _ = total_resources(task, executor)
    cpu, mem, disk = int(vec[0]), int(vec[1]), int(vec[2])
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if cpu:
        requests["cpu"] = limits["cpu"] = cpu_quantity(cpu)
    if mem:
        requests["memory"] = limits["memory"] = bytes_quantity(mem)
    if disk:
        requests["ephemeral-storage"] = bytes_quantity(disk)
    for name, raw in (task.get("limits") or {}).items():
        value = limit_value(raw)
        key = "cpu" if name == "cpus" else "memory"
        if math.isinf(value):
            limits.pop(key, None)
        elif key == "cpu":
            limits[key] = cpu_quantity(round(value * 1000))
        else:
            limits[key] = bytes_quantity(round(value * MB))
    out: Obj = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _protocols(raw: Any) -> list[str]:
    out = [p.strip().upper() for p in str(raw or "tcp").split(",") if p.strip()]
    return [p for p in out if p in ("TCP", "UDP")] or ["TCP"]


def _ports(task: Obj, executor: Obj | None, container: Obj | None, host_net: bool) -> list[Obj]:
    out: list[Obj] = []
    if host_net:
        _, ranges = total_resources(task, executor)
        seen: set[int] = set()
        for begin, end in ranges:
            for port in range(max(begin, 1), end + 1):
                if port not in seen:
                    seen.add(port)
                    out.append({"containerPort": port, "hostPort": port, "protocol": "TCP"})
        return out
    for m in port_mappings(container):
        for proto in _protocols(m.get("protocol")):
            mapped: Obj = {"containerPort": int(m["container_port"]), "protocol": proto}
            if int(m.get("host_port") or 0) > 0:
                mapped["hostPort"] = int(m["host_port"])
            out.append(mapped)
    return out


def _volumes(container: Obj | None) -> tuple[list[Obj], list[Obj]]:
    volumes: list[Obj] = []
    mounts: list[Obj] = []
    for i, vol in enumerate((container or {}).get("volumes") or []):
        host = vol.get("host_path") or ((vol.get("source") or {}).get("host_path") or {}).get(
            "path"
        )
        name = f"volume-{i}"
        volumes.append({"name": name, "hostPath": {"path": str(host)}})
        mount: Obj = {"name": name, "mountPath": str(vol["container_path"])}
        if vol.get("mode") == "RO":
            mount["readOnly"] = True
        mounts.append(mount)
    return volumes, mounts


def _run_as_user(command: Obj | None) -> int | None:
    user = str((command or {}).get("user") or "")
    if user == "root":
        return 0
    return int(user) if _NUMERIC.match(user) else None


def task_pod(
    task: Obj,
    *,
    framework_id: str,
    framework_uid: str,
    framework_info: Obj,
    role: str,
    agent: str,
    executor: Obj | None = None,
) -> Obj:
    """The Pod manifest of a validated TaskInfo (not bound: the master binds it to
    ``agent``). ``executor`` defaults to ``task["executor"]``."""
    if executor is None:
        executor = task.get("executor") or None
    custom = is_custom_executor(executor)
    command, container = running_parts(task, executor)
    image, always = image_of(container)
    host_net = not pod_network(container)
    task_id = value_of(task.get("task_id"))

    annotations = {
        names.TASK_ID: task_id,
        names.TASK_INFO: orjson.dumps(task).decode(),
    }
    uris = (command or {}).get("uris")
    if uris:
        annotations[names.URIS] = orjson.dumps(uris).decode()
    if image is None:
        annotations[names.HOST_COMMAND] = "true"
    if executor:
        annotations[names.EXECUTOR_ID] = value_of(executor.get("executor_id"))

    c: Obj = {"name": CONTAINER_NAME}
    if image is None:
        c.update(image=names.HOST_IMAGE, imagePullPolicy="Never")
    else:
        c.update(image=image, imagePullPolicy="Always" if always else "IfNotPresent")
    if command:
        argv, args = argv_of(command, docker=(container or {}).get("type") == "DOCKER")
        if argv:
            c["command"] = argv
        if args:
            c["args"] = args
    c["env"] = _environment(
        task,
        command,
        framework_id=framework_id,
        framework_info=framework_info,
        agent=agent,
        role=role,
        executor=executor,
        custom=custom,
    )
    resources = _resources(task, executor)
    if resources:
        c["resources"] = resources
    ports = _ports(task, executor, container, host_net)
    if ports:
        c["ports"] = ports
    if task.get("health_check") and not custom:
        c.update(probes(task["health_check"]))
    volumes, mounts = _volumes(container)
    if mounts:
        c["volumeMounts"] = mounts
    security: Obj = {}
    uid = _run_as_user(command)
    if uid is not None:
        security["runAsUser"] = uid
    if ((container or {}).get("docker") or {}).get("privileged"):
        security["privileged"] = True
    if security:
        c["securityContext"] = security

    if custom:
        assert executor is not None
        grace = duration_ns(executor.get("shutdown_grace_period"))
        grace_ns = EXECUTOR_SHUTDOWN_GRACE_NS if grace is None else grace
    else:
        grace = duration_ns((task.get("kill_policy") or {}).get("grace_period"))
        grace_ns = COMMAND_KILL_GRACE_NS if grace is None else grace
    spec: Obj = {
        "schedulerName": names.SCHEDULER_NAME,
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": _seconds(grace_ns / 1e9, 0),
        "containers": [c],
    }
    if host_net:
        spec["hostNetwork"] = True
    deadline = duration_ns(task.get("max_completion_time"))
    if deadline and deadline > 0 and not custom:
        spec["activeDeadlineSeconds"] = _seconds(deadline / 1e9, 1)
    if volumes:
        spec["volumes"] = volumes

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": names.task_pod_name(framework_id, task_id),
            "namespace": names.NAMESPACE,
            "labels": _labels(task, framework_id, agent, role),
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": f"{names.GROUP}/{names.VERSION}",
                    "kind": "Framework",
                    "name": framework_id,
                    "uid": framework_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


def annotation_bytes(task: Obj) -> int:
    """What the TASK_INFO and URIS annotations of ``task``'s pod weigh."""
    size = len(orjson.dumps(task))
    for part in (task.get("command"), (task.get("executor") or {}).get("command")):
        uris = (part or {}).get("uris")
        if uris:
            size += len(orjson.dumps(uris))
    return size
