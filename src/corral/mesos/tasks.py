"""Mesos tasks as pods: the API the master calls, and the validation of a TaskInfo.

The master (``master.py``) handles a LAUNCH by calling, per TaskInfo:

- :func:`validate_task`: None when the task can run on the offer, else the message of
  the TASK_ERROR (REASON_TASK_INVALID) it sends back;
- :func:`task_pod` (``taskpod.py``): the Pod manifest it creates and binds;

and, on every pod or node event, :func:`task_status` (``taskstatus.py``) for the
TaskStatus the pod now stands for, and :func:`is_terminal_state`. All of it is pure.

Validation runs Mesos' own checks in Mesos' order (``src/master/validation.cpp``
``task::validate``, ``src/common/validation.cpp``) with Mesos' words, then what a Pod
needs beyond them, with Corral's words: a container type Corral runs (DOCKER, or MESOS
with a Docker image or none; no Appc), host-path volumes only, environment names the API server
accepts, no SECRET variables, a command that can run, cpus or mem, and a TaskInfo small
enough for the pod's annotations. Where Mesos rejects a JSON document before validation
(a missing required field) the message is ``Missing required fields: ...``. Mesos allows
an empty task name and rejects only the ids ``.`` and ``..`` (not a leading dot); so does
this.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from corral.api.validation import is_env_var_name
from corral.mesos.taskpod import (
    ANNOTATIONS_LIMIT,
    annotation_bytes,
    duration_ns,
    image_of,
    is_custom_executor,
    limit_value,
    port_mappings,
    running_parts,
    task_pod,
    value_of,
)
from corral.mesos.taskstatus import is_terminal_state, task_status
from corral.offers.resources import MB, format_ranges, parse_resources, ranges_contain

Obj = dict[str, Any]
#: Mesos' NAME_MAX for ids (they name sandbox directories)
MAX_ID_LENGTH = 255
_HEALTH_NUMBERS = ("delay_seconds", "grace_period_seconds", "interval_seconds", "timeout_seconds")
_NETWORKS = ("HOST", "BRIDGE", "NONE", "USER")

__all__ = ["is_terminal_state", "task_pod", "task_status", "validate_task"]


def _id_error(value: str) -> str | None:
    """``common::validation::validateID``."""
    if not value:
        return "ID must not be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"ID must not be greater than {MAX_ID_LENGTH} characters"
    if value in (".", ".."):
        return f"'{value}' is disallowed"
    if any(c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in value):
        return f"'{value}' contains invalid characters"
    return None


def _port_ok(port: Any) -> bool:
    return isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535


def _env_error(command: Obj) -> str | None:
    """``validateEnvironment``, plus what a pod's ``env`` accepts."""
    env = command.get("environment") or {}
    for var in env.get("variables") or [] if isinstance(env, dict) else []:
        if not isinstance(var, dict):
            return "Environment variable must be an object"
        name, kind = str(var.get("name") or ""), var.get("type", "VALUE")
        if kind == "UNKNOWN":
            return "Environment variable of type 'UNKNOWN' is not allowed"
        if kind == "SECRET":
            return f"Environment variable '{name}' of type 'SECRET' is not supported"
        if kind != "VALUE":
            return f"Environment variable '{name}' has unknown type '{kind}'"
        if not isinstance(var.get("value"), str):
            return f"Environment variable '{name}' of type 'VALUE' must have a value set"
        if "secret" in var:
            return f"Environment variable '{name}' of type 'VALUE' must not have a secret set"
        msgs = is_env_var_name(name) if name else ["must not be empty"]
        if msgs:
            return f"Environment variable name '{name}' is invalid: {msgs[0]}"
    return None


def _health_error(check: Any) -> str | None:
    """``common::validation::validateHealthCheck`` plus probe-expressible ports."""
    if not isinstance(check, dict) or "type" not in check:
        return "HealthCheck must specify 'type'"
    kind = check["type"]
    if kind == "COMMAND":
        command = check.get("command")
        if not isinstance(command, dict):
            return "Expecting 'command' to be set for COMMAND health check"
        if not command.get("value"):
            what = (
                "'shell command'"
                if command.get("shell", True) is not False
                else "'executable path'"
            )
            return f"Command health check must contain {what}"
        err = _env_error(command)
        if err:
            return f"Health check's `CommandInfo` is invalid: {err}"
    elif kind == "HTTP":
        http = check.get("http")
        if not isinstance(http, dict):
            return "Expecting 'http' to be set for HTTP health check"
        scheme = http.get("scheme")
        if scheme is not None and scheme not in ("http", "https"):
            return f"Unsupported HTTP health check scheme: '{scheme}'"
        path = http.get("path")
        if path is not None and not str(path).startswith("/"):
            return f"The path '{path}' of HTTP health check must start with '/'"
        if not _port_ok(http.get("port")):
            return "HTTP health check needs a 'port' between 1 and 65535"
    elif kind == "TCP":
        tcp = check.get("tcp")
        if not isinstance(tcp, dict):
            return "Expecting 'tcp' to be set for TCP health check"
        if not _port_ok(tcp.get("port")):
            return "TCP health check needs a 'port' between 1 and 65535"
    else:
        return f"'{kind}' is not a valid health check type"
    for field in _HEALTH_NUMBERS:
        value = check.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            return f"Expecting '{field}' to be a number"
        if value < 0:
            return f"Expecting '{field}' to be non-negative"
    failures = check.get("consecutive_failures")
    if failures is not None and (
        not isinstance(failures, int) or isinstance(failures, bool) or failures < 0
    ):
        return "Expecting 'consecutive_failures' to be a non-negative integer"
    return None


def _volume_error(vol: Any) -> str | None:
    """``validateVolume``, then what Corral mounts: host paths at absolute paths."""
    if not isinstance(vol, dict):
        return "Invalid volume: a volume must be an object"
    if sum(k in vol for k in ("host_path", "image", "source")) != 1:
        return "Invalid volume: Only one of them should be set: 'host_path', 'image' and 'source'"
    source = vol.get("source")
    if isinstance(source, dict):
        kind = source.get("type")
        if kind == "HOST_PATH" and not (source.get("host_path") or {}).get("path"):
            return "Invalid volume: 'source.host_path' is not set for HOST_PATH volume"
        if kind != "HOST_PATH":
            return f"Invalid volume: volume source type '{kind}' is not supported (HOST_PATH only)"
    elif "image" in vol:
        return "Invalid volume: image volumes are not supported"
    path = vol.get("container_path")
    if not isinstance(path, str) or not path.startswith("/"):
        return f"Invalid volume: 'container_path' must be an absolute path, not {path!r}"
    if vol.get("mode", "RW") not in ("RW", "RO"):
        return f"Invalid volume: unknown mode {vol.get('mode')!r}"
    return None


def _container_error(container: Any) -> str | None:
    """``validateContainerInfo``, then the container types and images Corral runs."""
    if not isinstance(container, dict):
        return "ContainerInfo must be an object"
    kind = container.get("type")
    if kind not in ("DOCKER", "MESOS"):
        return f"container type {kind!r} is not supported (DOCKER or MESOS)"
    for vol in container.get("volumes") or []:
        err = _volume_error(vol)
        if err:
            return err
    if kind == "DOCKER":
        docker = container.get("docker")
        if not isinstance(docker, dict):
            return "DockerInfo 'docker' is not set for DOCKER typed ContainerInfo"
        if any(
            isinstance(p, dict) and p.get("key") == "name" for p in docker.get("parameters") or []
        ):
            return "Parameter in DockerInfo must not be 'name'"
        if not str(docker.get("image") or "").strip():
            return "DockerInfo 'image' is not set"
        if docker.get("network", "HOST") not in _NETWORKS:
            return f"Unknown DockerInfo network '{docker.get('network')}'"
    else:
        image = (container.get("mesos") or {}).get("image")
        if image is not None:
            if not isinstance(image, dict):
                return "Image must be an object"
            if image.get("type") == "APPC" or "appc" in image:
                return "Appc images are not supported (use a Docker image)"
            if not str((image.get("docker") or {}).get("name") or "").strip():
                return "Image 'docker.name' is not set"
    for m in port_mappings(container):
        if not _port_ok(m.get("container_port")):
            return "Port mapping 'container_port' must be between 1 and 65535"
        host = m.get("host_port", 0)
        if not (_port_ok(host) or host == 0):
            return "Port mapping 'host_port' must be between 0 and 65535"
    return None


def _limits_error(task: Obj, vec: Any) -> str | None:
    """``validateResourceLimits`` (Mesos compares with the requested cpus and mem)."""
    limits = task.get("limits")
    if not limits:
        return None
    if not isinstance(limits, dict):
        return "Task's resource limits must be a map"
    if set(limits) - {"cpus", "mem"}:
        return "Only cpus and mem may be included in a task's resource limits"
    try:
        values = {k: limit_value(v) for k, v in limits.items()}
    except ValueError as e:
        return f"Task's resource limits are invalid: {e}"
    if "cpus" in values:
        if int(vec[0]) == 0:
            return "When a CPU limit is specified, a CPU request must also be specified"
        if values["cpus"] * 1000 < int(vec[0]) - 1e-6:
            return "The cpu limit must be greater than or equal to the cpu request"
    if "mem" in values:
        if int(vec[1]) == 0:
            return "When a memory limit is specified, a memory request must also be specified"
        if not math.isinf(values["mem"]) and values["mem"] * MB < int(vec[1]) - 1e-3:
            return "The memory limit must be greater than or equal to the memory request"
    return None


def _executor_error(task: Obj, executor: Obj | None) -> str | None:
    """``validateExecutor`` (the task side) and ``executor::validate``."""
    custom = is_custom_executor(executor)
    has_command = task.get("command") is not None
    if (custom and has_command) or (executor is None and not has_command):
        return "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"
    if executor is None:
        return None
    if not isinstance(executor, dict):
        return "ExecutorInfo must be an object"
    if not custom:  # DEFAULT
        if "command" in executor:
            return "'ExecutorInfo.command' must not be set for 'DEFAULT' executor"
        container = executor.get("container")
        if container is not None:
            if (container or {}).get("type") != "MESOS":
                return "'ExecutorInfo.container.type' must be 'MESOS' for 'DEFAULT' executor"
            if (container.get("mesos") or {}).get("image"):
                return "'ExecutorInfo.container.mesos.image' must not be set for 'DEFAULT' executor"
    elif not isinstance(executor.get("command"), dict):
        return "'ExecutorInfo.command' must be set for 'CUSTOM' executor"
    err = _id_error(value_of(executor.get("executor_id")))
    if err:
        return err
    try:
        grace = duration_ns(executor.get("shutdown_grace_period"))
    except ValueError:
        return "ExecutorInfo's 'shutdown_grace_period' must be an integer number of nanoseconds"
    if grace is not None and grace < 0:
        return "ExecutorInfo's 'shutdown_grace_period' must be non-negative"
    if custom:
        err = _env_error(executor["command"])
        if err:
            return f"Executor's `CommandInfo` is invalid: {err}"
    if executor.get("container") is not None:
        err = _container_error(executor["container"])
        if err:
            return f"Executor's `ContainerInfo` is invalid: {err}"
    try:
        parse_resources(list(executor.get("resources") or []))
    except ValueError as e:
        return f"Executor uses invalid resources: {e}"
    return None


def _fmt_resources(vec: Any, ports: Sequence[tuple[int, int]]) -> str:
    parts = []
    for i, (name, unit) in enumerate((("cpus", 1000), ("mem", MB), ("disk", MB), ("pods", 1))):
        if i < len(vec) and int(vec[i]) > 0:
            parts.append(f"{name}:{int(vec[i]) / unit:g}")
    if ports:
        parts.append(f"ports:{format_ranges(ports)}")
    return "; ".join(parts) or "{}"


def _runnable_error(task: Obj, executor: Obj | None) -> str | None:
    """The command can run (executor.cpp CHECKs; the image default when it has none)."""
    command, container = running_parts(task, executor)
    image, _ = image_of(container)
    custom = is_custom_executor(executor)
    what = (
        f"executor '{value_of((executor or {}).get('executor_id'))}'"
        if custom
        else f"task '{value_of(task.get('task_id'))}'"
    )
    if not isinstance(command, dict):
        return None if image else "Task has neither a command nor an image to run"
    user = command.get("user")
    if user is not None and not isinstance(user, str):
        return "CommandInfo 'user' must be a string"
    if command.get("shell", True) is not False:
        return None if command.get("value") else f"Shell command of {what} is not specified"
    if not command.get("value") and not image:
        return f"Executable of {what} is not specified"
    return None


def validate_task(
    task: Obj,
    *,
    agent_id: str,
    offered: np.ndarray[Any, Any] | Sequence[int],
    offered_ports: Sequence[tuple[int, int]],
) -> str | None:
    """None if ``task`` can be launched on this offer (``offered``: the node-table vector
    left of the offers, its pods column the ``pods`` they advertise; ``offered_ports``:
    their port ranges), else the TASK_ERROR message. A task need not request ``pods``.

    ``task["executor"]`` is the task's ExecutorInfo (for LAUNCH_GROUP the master puts the
    group's executor there); its resources count toward the offer."""
    if not isinstance(task, dict):
        return "TaskInfo must be an object"
    missing = [f for f in ("name", "task_id", "agent_id") if f not in task]
    if missing:
        return "Missing required fields: " + ", ".join(missing)
    if not isinstance(task["name"], str):
        return "TaskInfo 'name' must be a string"
    executor = task.get("executor")
    if executor is not None and not isinstance(executor, dict):
        return "ExecutorInfo must be an object"
    state: dict[str, Any] = {}

    def ids() -> str | None:
        err = _id_error(value_of(task.get("task_id")))
        agent = value_of(task.get("agent_id"))
        if err is None and agent != agent_id:
            return f"Task uses invalid agent {agent} while agent {agent_id} is expected"
        return err

    def durations() -> str | None:
        for field, path, label in (
            ("kill_policy", ("grace_period",), "'kill_policy.grace_period'"),
            ("max_completion_time", (), "`max_completion_time`"),
        ):
            node = task.get(field)
            for key in path:
                node = (node or {}).get(key) if isinstance(node, dict) else None
            try:
                ns = duration_ns(node)
            except ValueError:
                return f"Task's {label} must be an integer number of nanoseconds"
            if ns is not None and ns < 0:
                return f"Task's {label} must be non-negative"
        return None

    def health() -> str | None:
        if task.get("health_check") is None:
            return None
        err = _health_error(task["health_check"])
        return f"Task uses invalid health check: {err}" if err else None

    def resources() -> str | None:
        if not task.get("resources"):
            return "Task uses no resources"
        try:
            state["vec"], state["ports"] = parse_resources(list(task["resources"]))
        except (TypeError, ValueError) as e:
            return f"Task uses invalid resources: {e}"
        return None

    def command() -> str | None:
        if not isinstance(task.get("command") or {}, dict):
            return "Task's `CommandInfo` must be an object"
        err = _env_error(task.get("command") or {})
        return f"Task's `CommandInfo` is invalid: {err}" if err else None

    def container() -> str | None:
        if task.get("container") is None:
            return None
        err = _container_error(task["container"])
        return f"Task's `ContainerInfo` is invalid: {err}" if err else None

    def fits() -> str | None:
        vec, ports = state["vec"], list(state["ports"])
        if executor:
            evec, eports = parse_resources(list(executor.get("resources") or []))
            vec, ports = vec + evec, ports + eports
        if int(vec[0]) == 0 and int(vec[1]) == 0:
            return "Task uses no cpus or mem"
        have = np.asarray(offered, dtype=np.int64)
        n = min(len(have), len(vec))
        if np.any(vec[:n] > have[:n]) or not ranges_contain(offered_ports, ports):
            return (
                f"Total resources {_fmt_resources(vec, ports)} required by task and its"
                f" executor is more than available {_fmt_resources(have, offered_ports)}"
            )
        return None

    def size() -> str | None:
        n = annotation_bytes(task)
        limit = ANNOTATIONS_LIMIT - 4096
        if n > limit:
            return f"Task is too large: its TaskInfo takes {n} bytes, a pod holds at most {limit}"
        return None

    checks: tuple[Callable[[], str | None], ...] = (
        ids,
        durations,
        health,
        resources,
        command,
        container,
        lambda: _limits_error(task, state["vec"]),
        lambda: _executor_error(task, executor),
        fits,
        lambda: _runnable_error(task, executor),
        size,
    )
    for check in checks:
        err = check()
        if err is not None:
            return err
    return None
