"""TaskInfo -> Pod, TaskInfo validation and Pod -> TaskStatus (``corral.mesos.tasks``).

Three tables: TaskInfos and the pod fields they become (each pod is also run through the
API server's own create path and the Kubernetes 1.32 schema), invalid TaskInfos and the
TASK_ERROR message, and pod states with the TaskStatus they stand for.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import kubernetes_validate
import numpy as np
import pytest

from corral.api import mesos as names
from corral.apiserver.registry.table import RESOURCES
from corral.mesos import tasks
from corral.offers.resources import to_vector

Obj = dict[str, Any]

AGENT = "agent-1"
FW = "fw-0001"
TASK_ID = "task-1"
OFFER = np.array([2000, 1024 * 2**20, 4096 * 2**20, 110], dtype=np.int64)
OFFER_PORTS = [(31000, 32000)]


def res(
    cpus: float | None = 0.5,
    mem: float | None = 64,
    disk: float | None = None,
    ports: list[tuple[int, int]] | None = None,
) -> list[Obj]:
    out: list[Obj] = []
    for name, value in (("cpus", cpus), ("mem", mem), ("disk", disk)):
        if value is not None:
            out.append({"name": name, "type": "SCALAR", "scalar": {"value": value}})
    if ports:
        ranges = [{"begin": b, "end": e} for b, e in ports]
        out.append({"name": "ports", "type": "RANGES", "ranges": {"range": ranges}})
    return out


def task(**over: Any) -> Obj:
    """A valid command TaskInfo; keyword ``None`` removes a field."""
    t: Obj = {
        "name": "web",
        "task_id": {"value": TASK_ID},
        "agent_id": {"value": AGENT},
        "resources": res(),
        "command": {"value": "sleep 10"},
    }
    for k, v in over.items():
        if v is None:
            t.pop(k, None)
        else:
            t[k] = v
    return t


def docker(image: str = "nginx:1.27", **over: Any) -> Obj:
    return {"type": "DOCKER", "docker": {"image": image, **over}}


def mesos_image(name: str = "busybox:1.36", **over: Any) -> Obj:
    return {
        "type": "MESOS",
        "mesos": {"image": {"type": "DOCKER", "docker": {"name": name}, **over}},
    }


EXECUTOR: Obj = {
    "executor_id": {"value": "ex-1"},
    "name": "MinimalExecutor",
    "command": {
        "value": "python executor.py",
        "environment": {"variables": [{"name": "E", "value": "1"}]},
    },
    "resources": res(cpus=0.1, mem=32),
}


def make_pod(t: Obj, **kw: Any) -> Obj:
    args: Obj = {
        "framework_id": FW,
        "framework_uid": "0b8a9d6e-0000-4000-8000-00000000f001",
        "framework_info": {"name": "smoke", "user": "root"},
        "role": "*",
        "agent": AGENT,
    }
    args.update(kw)
    return tasks.task_pod(t, **args)


MISSING = object()


def at(obj: Any, path: str) -> Any:
    """``spec.containers.0.command``; MISSING when absent. Keys may hold dots
    (``metadata.annotations.mesos.corral.dev/task-id``): the longest key that matches wins."""
    parts = path.split(".")
    i = 0
    while i < len(parts):
        if isinstance(obj, list) and parts[i].isdigit() and int(parts[i]) < len(obj):
            obj, i = obj[int(parts[i])], i + 1
            continue
        if not isinstance(obj, dict):
            return MISSING
        for j in range(len(parts), i, -1):
            key = ".".join(parts[i:j])
            if key in obj:
                obj, i = obj[key], j
                break
        else:
            return MISSING
    return obj


def env_of(pod: Obj) -> dict[str, str]:
    return {e["name"]: e["value"] for e in pod["spec"]["containers"][0].get("env", [])}


C = "spec.containers.0."
SHELL = ["/bin/sh", "-c"]

# (id, TaskInfo, task_pod keyword arguments, {path: expected})
POD_CASES: list[tuple[str, Obj, Obj, Obj]] = [
    (
        "shell-host-command",
        task(),
        {},
        {
            C + "command": [*SHELL, "sleep 10"],
            C + "args": MISSING,
            C + "image": names.HOST_IMAGE,
            C + "imagePullPolicy": "Never",
            C + "name": "task",
            "metadata.annotations." + names.HOST_COMMAND: "true",
            "spec.hostNetwork": True,
            "spec.nodeName": MISSING,
        },
    ),
    (
        "argv-host",
        task(command={"shell": False, "value": "/bin/echo", "arguments": ["echo", "a", "b"]}),
        {},
        {C + "command": ["/bin/echo"], C + "args": ["a", "b"]},
    ),
    (
        "argv-no-arguments",
        task(command={"shell": False, "value": "/bin/true"}),
        {},
        {C + "command": ["/bin/true"], C + "args": MISSING},
    ),
    (
        "docker-shell",
        task(container=docker()),
        {},
        {
            C + "image": "nginx:1.27",
            C + "imagePullPolicy": "IfNotPresent",
            C + "command": [*SHELL, "sleep 10"],
            "metadata.annotations." + names.HOST_COMMAND: MISSING,
            "spec.hostNetwork": True,
        },
    ),
    (
        "docker-argv-image-entrypoint",
        task(container=docker(), command={"shell": False, "arguments": ["-g", "daemon off;"]}),
        {},
        {C + "command": MISSING, C + "args": ["-g", "daemon off;"]},
    ),
    (
        "docker-argv-value-is-cmd",
        task(container=docker(), command={"shell": False, "value": "nginx", "arguments": ["-g"]}),
        {},
        {C + "command": MISSING, C + "args": ["nginx", "-g"]},
    ),
    (
        "docker-force-pull",
        task(container=docker(force_pull_image=True)),
        {},
        {C + "imagePullPolicy": "Always"},
    ),
    (
        "mesos-image-argv",
        task(
            container=mesos_image(),
            command={"shell": False, "value": "/bin/sleep", "arguments": ["sleep", "5"]},
        ),
        {},
        {
            C + "image": "busybox:1.36",
            C + "imagePullPolicy": "IfNotPresent",
            C + "command": ["/bin/sleep"],
            C + "args": ["5"],
        },
    ),
    (
        "mesos-image-default-entrypoint",
        task(container=mesos_image(), command={"shell": False, "arguments": ["-x"]}),
        {},
        {C + "command": MISSING, C + "args": ["-x"]},
    ),
    (
        "mesos-image-not-cached",
        task(container=mesos_image(cached=False)),
        {},
        {C + "imagePullPolicy": "Always"},
    ),
    (
        "mesos-container-without-image",
        task(container={"type": "MESOS"}),
        {},
        {C + "image": names.HOST_IMAGE, "metadata.annotations." + names.HOST_COMMAND: "true"},
    ),
    (
        "resources",
        task(resources=res(cpus=0.25, mem=128, disk=512)),
        {},
        {
            C + "resources": {
                "requests": {"cpu": "250m", "memory": "128Mi", "ephemeral-storage": "512Mi"},
                "limits": {"cpu": "250m", "memory": "128Mi"},
            }
        },
    ),
    (
        "resources-fractional-mem",
        task(resources=res(cpus=1, mem=0.5)),
        {},
        {C + "resources.requests": {"cpu": "1000m", "memory": "524288"}},
    ),
    (
        "limits-infinite-cpu-and-mem",
        task(limits={"cpus": {"value": "Infinity"}, "mem": {"value": 256}}),
        {},
        {
            C + "resources.limits": {"memory": "256Mi"},
            C + "resources.requests": {"cpu": "500m", "memory": "64Mi"},
        },
    ),
    (
        "limits-bare-numbers",
        task(limits={"cpus": 2, "mem": "Infinity"}),
        {},
        {C + "resources.limits": {"cpu": "2000m"}},
    ),
    (
        "ports-host-network",
        task(resources=res(ports=[(31000, 31001), (31005, 31005)])),
        {},
        {
            C + "ports": [
                {"containerPort": p, "hostPort": p, "protocol": "TCP"}
                for p in (31000, 31001, 31005)
            ],
            "spec.hostNetwork": True,
        },
    ),
    (
        "docker-bridge-port-mappings",
        task(
            resources=res(ports=[(31000, 31000)]),
            container=docker(
                network="BRIDGE",
                port_mappings=[{"host_port": 31000, "container_port": 80, "protocol": "tcp"}],
            ),
        ),
        {},
        {
            C + "ports": [{"containerPort": 80, "hostPort": 31000, "protocol": "TCP"}],
            "spec.hostNetwork": MISSING,
        },
    ),
    (
        "docker-user-network-tcp-udp",
        task(
            container=docker(
                network="USER",
                port_mappings=[{"host_port": 0, "container_port": 53, "protocol": "tcp,udp"}],
            )
        ),
        {},
        {
            C + "ports": [
                {"containerPort": 53, "protocol": "TCP"},
                {"containerPort": 53, "protocol": "UDP"},
            ],
            "spec.hostNetwork": MISSING,
        },
    ),
    (
        "env",
        task(
            command={
                "value": "env",
                "environment": {
                    "variables": [
                        {"name": "A", "value": "1"},
                        {"name": "MESOS_TASK_ID", "value": "mine"},
                        {"name": "B", "type": "VALUE", "value": ""},
                    ]
                },
            }
        ),
        {"role": "web"},
        {
            C + "env": [
                {"name": "MESOS_FRAMEWORK_ID", "value": FW},
                {"name": "MESOS_EXECUTOR_ID", "value": TASK_ID},
                {"name": "MESOS_SLAVE_ID", "value": AGENT},
                {"name": "MESOS_TASK_ID", "value": "mine"},
                {"name": "A", "value": "1"},
                {"name": "B", "value": ""},
                {"name": "MESOS_ALLOCATION_ROLE", "value": "web"},
            ]
        },
    ),
    (
        "checkpointing-framework",
        task(),
        {"framework_info": {"name": "f", "checkpoint": True}},
        {C + "env.3": {"name": "MESOS_CHECKPOINT", "value": "1"}},
    ),
    (
        "health-command-defaults",
        task(health_check={"type": "COMMAND", "command": {"value": "test -f /ok"}}),
        {},
        {
            C + "livenessProbe": {
                "exec": {"command": [*SHELL, "test -f /ok"]},
                "initialDelaySeconds": 15,
                "periodSeconds": 10,
                "timeoutSeconds": 20,
                "successThreshold": 1,
                "failureThreshold": 3,
            },
            C + "readinessProbe.failureThreshold": 1,
            C + "readinessProbe.exec.command": [*SHELL, "test -f /ok"],
            C + "startupProbe": MISSING,
        },
    ),
    (
        "health-command-argv-env",
        task(
            health_check={
                "type": "COMMAND",
                "command": {
                    "shell": False,
                    "value": "/bin/check",
                    "arguments": ["check", "-v"],
                    "environment": {"variables": [{"name": "K", "value": "V"}]},
                },
            }
        ),
        {},
        {C + "livenessProbe.exec.command": ["env", "K=V", "/bin/check", "-v"]},
    ),
    (
        "health-http",
        task(
            health_check={
                "type": "HTTP",
                "http": {"scheme": "https", "port": 8443, "path": "/health"},
                "delay_seconds": 5,
                "interval_seconds": 2.5,
                "timeout_seconds": 1,
                "consecutive_failures": 5,
                "grace_period_seconds": 0,
            }
        ),
        {},
        {
            C + "livenessProbe": {
                "httpGet": {"port": 8443, "path": "/health", "scheme": "HTTPS"},
                "initialDelaySeconds": 5,
                "periodSeconds": 3,
                "timeoutSeconds": 1,
                "successThreshold": 1,
                "failureThreshold": 5,
            },
            C + "readinessProbe.httpGet": {"port": 8443, "path": "/health", "scheme": "HTTPS"},
        },
    ),
    (
        "health-http-defaults-path",
        task(health_check={"type": "HTTP", "http": {"port": 8080}}),
        {},
        {C + "livenessProbe.httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}},
    ),
    (
        "health-tcp",
        task(health_check={"type": "TCP", "tcp": {"port": 6379}, "timeout_seconds": 0}),
        {},
        {
            C + "livenessProbe.tcpSocket": {"port": 6379},
            C + "readinessProbe.tcpSocket": {"port": 6379},
            C + "livenessProbe.timeoutSeconds": 2**31 - 1,
        },
    ),
    (
        "health-grace-period-startup-probe",
        task(health_check={"type": "TCP", "tcp": {"port": 6379}, "grace_period_seconds": 30}),
        {},
        {
            C + "startupProbe.failureThreshold": 5,  # ceil((30 - 15) / 10) + 3
            C + "startupProbe.initialDelaySeconds": 15,
            C + "startupProbe.tcpSocket": {"port": 6379},
        },
    ),
    ("kill-policy-default-3s", task(), {}, {"spec.terminationGracePeriodSeconds": 3}),
    (
        "kill-policy",
        task(kill_policy={"grace_period": {"nanoseconds": 10_000_000_000}}),
        {},
        {"spec.terminationGracePeriodSeconds": 10},
    ),
    (
        "kill-policy-int64-string-rounds-up",
        task(kill_policy={"grace_period": {"nanoseconds": "1500000000"}}),
        {},
        {"spec.terminationGracePeriodSeconds": 2},
    ),
    (
        "max-completion-time",
        task(max_completion_time={"nanoseconds": 90_000_000_000}),
        {},
        {"spec.activeDeadlineSeconds": 90},
    ),
    (
        "labels",
        task(
            labels={
                "labels": [
                    {"key": "app", "value": "web"},
                    {"key": "example.com/tier", "value": "front"},
                    {"key": "flag"},
                    {"key": "bad key", "value": "x"},
                    {"key": "long", "value": "x" * 64},
                    {"key": names.ROLE, "value": "hijack"},
                ]
            }
        ),
        {"role": "*"},
        {
            "metadata.labels": {
                "app": "web",
                "example.com/tier": "front",
                "flag": "",
                names.FRAMEWORK_ID: FW,
                names.TASK_HASH: TASK_ID,
                names.AGENT_ID: AGENT,
                names.ROLE: names.label_safe("*"),
            }
        },
    ),
    (
        "metadata",
        task(task_id={"value": "My Task #1"}),
        {},
        {
            "metadata.name": names.task_pod_name(FW, "My Task #1"),
            "metadata.namespace": names.NAMESPACE,
            "metadata.labels." + names.TASK_HASH: names.label_safe("My Task #1"),
            "metadata.annotations." + names.TASK_ID: "My Task #1",
            "metadata.ownerReferences": [
                {
                    "apiVersion": "mesos.corral.dev/v1",
                    "kind": "Framework",
                    "name": FW,
                    "uid": "0b8a9d6e-0000-4000-8000-00000000f001",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "spec.schedulerName": names.SCHEDULER_NAME,
            "spec.restartPolicy": "Never",
            "spec.enableServiceLinks": False,
            "spec.automountServiceAccountToken": False,
        },
    ),
    (
        "uris",
        task(
            command={
                "value": "./run.sh",
                "uris": [{"value": "http://x/run.sh", "executable": True}],
            }
        ),
        {},
        {
            "metadata.annotations." + names.URIS: json.dumps(
                [{"value": "http://x/run.sh", "executable": True}], separators=(",", ":")
            )
        },
    ),
    ("no-uris", task(), {}, {"metadata.annotations." + names.URIS: MISSING}),
    (
        "user-numeric",
        task(command={"value": "id", "user": "1000"}),
        {},
        {C + "securityContext": {"runAsUser": 1000}},
    ),
    (
        "user-root",
        task(command={"value": "id", "user": "root"}),
        {},
        {C + "securityContext": {"runAsUser": 0}},
    ),
    (
        "user-name",
        task(command={"value": "id", "user": "nobody"}),
        {},
        {C + "securityContext": MISSING},
    ),
    (
        "docker-privileged",
        task(container=docker(privileged=True)),
        {},
        {C + "securityContext": {"privileged": True}},
    ),
    (
        "volumes-host-path",
        task(
            container={
                **docker(),
                "volumes": [
                    {"container_path": "/data", "host_path": "/srv/data", "mode": "RO"},
                    {
                        "container_path": "/logs",
                        "source": {"type": "HOST_PATH", "host_path": {"path": "/var/log"}},
                    },
                ],
            }
        ),
        {},
        {
            "spec.volumes": [
                {"name": "volume-0", "hostPath": {"path": "/srv/data"}},
                {"name": "volume-1", "hostPath": {"path": "/var/log"}},
            ],
            C + "volumeMounts": [
                {"name": "volume-0", "mountPath": "/data", "readOnly": True},
                {"name": "volume-1", "mountPath": "/logs"},
            ],
        },
    ),
    (
        "custom-executor",
        task(
            command=None,
            executor=EXECUTOR,
            health_check={"type": "TCP", "tcp": {"port": 80}},
            kill_policy={"grace_period": {"nanoseconds": 10_000_000_000}},
            max_completion_time={"nanoseconds": 90_000_000_000},
        ),
        {},
        {
            C + "command": [*SHELL, "python executor.py"],
            C + "env": [
                {"name": "MESOS_FRAMEWORK_ID", "value": FW},
                {"name": "MESOS_EXECUTOR_ID", "value": "ex-1"},
                {"name": "MESOS_SLAVE_ID", "value": AGENT},
                {"name": "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "value": "5secs"},
                {"name": "E", "value": "1"},
            ],
            C + "resources.requests": {"cpu": "600m", "memory": "96Mi"},
            C + "livenessProbe": MISSING,
            C + "readinessProbe": MISSING,
            "metadata.annotations." + names.EXECUTOR_ID: "ex-1",
            "spec.terminationGracePeriodSeconds": 5,
            "spec.activeDeadlineSeconds": MISSING,
        },
    ),
    (
        "custom-executor-keyword-and-grace",
        task(command=None),
        {"executor": {**EXECUTOR, "shutdown_grace_period": {"nanoseconds": 20_000_000_000}}},
        {
            C + "command": [*SHELL, "python executor.py"],
            "spec.terminationGracePeriodSeconds": 20,
            C + "env.3": {"name": "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "value": "20secs"},
        },
    ),
    (
        "custom-executor-docker-container",
        task(
            command=None,
            container=mesos_image("ignored:1"),
            executor={**EXECUTOR, "container": docker("exec:2")},
        ),
        {},
        {C + "image": "exec:2"},
    ),
    (
        "default-executor-task-group",
        task(
            container=mesos_image(),
            executor={
                "type": "DEFAULT",
                "executor_id": {"value": "default-ex"},
                "resources": res(cpus=0.1, mem=32),
            },
            health_check={"type": "TCP", "tcp": {"port": 80}},
        ),
        {},
        {
            C + "command": [*SHELL, "sleep 10"],
            C + "image": "busybox:1.36",
            "metadata.annotations." + names.EXECUTOR_ID: "default-ex",
            C + "env.1": {"name": "MESOS_EXECUTOR_ID", "value": "default-ex"},
            C + "env.3": {"name": "MESOS_TASK_ID", "value": TASK_ID},
            C + "livenessProbe.tcpSocket": {"port": 80},
            C + "resources.requests": {"cpu": "600m", "memory": "96Mi"},
        },
    ),
]


@pytest.mark.parametrize(
    ("t", "kw", "expected"), [c[1:] for c in POD_CASES], ids=[c[0] for c in POD_CASES]
)
def test_task_pod(t: Obj, kw: Obj, expected: Obj) -> None:
    pod = make_pod(t, **kw)
    got = {path: at(pod, path) for path in expected}
    assert got == expected
    assert json.loads(pod["metadata"]["annotations"][names.TASK_INFO]) == t


def _api_server_errors(pod: Obj) -> list[str]:
    """The API server's create path for a Pod, as the generic store runs it."""
    row = next(r for r in RESOURCES if r.group == "" and r.plural == "pods")
    obj = copy.deepcopy(pod)
    obj["metadata"]["uid"] = "0b8a9d6e-0000-4000-8000-000000000001"
    row.strategy.default(obj)
    row.strategy.prepare_for_create(obj)
    errs = row.strategy.validate_metadata(obj, True) + row.strategy.validate(obj)
    return [str(e) for e in errs]


@pytest.mark.parametrize(("t", "kw"), [c[1:3] for c in POD_CASES], ids=[c[0] for c in POD_CASES])
def test_task_pod_is_a_valid_pod(t: Obj, kw: Obj) -> None:
    pod = make_pod(t, **kw)
    launched = (
        {**t, "executor": kw["executor"]} if "executor" in kw else t
    )  # as the master merges it
    assert (
        tasks.validate_task(launched, agent_id=AGENT, offered=OFFER, offered_ports=OFFER_PORTS)
        is None
    )
    assert _api_server_errors(pod) == []
    try:
        kubernetes_validate.validate(pod, "1.32", strict=True)
    except kubernetes_validate.ValidationError as e:  # pragma: no cover - the failure message
        pytest.fail(str(e).splitlines()[0])


def test_task_pod_does_not_mutate_the_task() -> None:
    t = task(executor=None, health_check={"type": "TCP", "tcp": {"port": 80}})
    before = copy.deepcopy(t)
    make_pod(t)
    assert t == before


# --- validation -----------------------------------------------------------------------------


def _without(key: str) -> Obj:
    t = task()
    del t[key]
    return t


TOTAL = "Total resources {} required by task and its executor is more than available cpus:2; mem:1024; disk:4096; pods:110; ports:[31000-32000]"

# (id, TaskInfo, message: exact, or a prefix when it ends with "...")
INVALID: list[tuple[str, Any, str]] = [
    ("not-an-object", [], "TaskInfo must be an object"),
    ("missing-task-id", _without("task_id"), "Missing required fields: task_id"),
    ("missing-name", _without("name"), "Missing required fields: name"),
    ("missing-agent-id", _without("agent_id"), "Missing required fields: agent_id"),
    ("empty-task-id", task(task_id={"value": ""}), "ID must not be empty"),
    ("task-id-slash", task(task_id={"value": "a/b"}), "'a/b' contains invalid characters"),
    ("task-id-control", task(task_id={"value": "a\nb"}), "'a\nb' contains invalid characters"),
    ("task-id-dotdot", task(task_id={"value": ".."}), "'..' is disallowed"),
    (
        "task-id-too-long",
        task(task_id={"value": "x" * 256}),
        "ID must not be greater than 255 characters",
    ),
    (
        "wrong-agent",
        task(agent_id={"value": "other"}),
        f"Task uses invalid agent other while agent {AGENT} is expected",
    ),
    (
        "kill-policy-negative",
        task(kill_policy={"grace_period": {"nanoseconds": -1}}),
        "Task's 'kill_policy.grace_period' must be non-negative",
    ),
    (
        "max-completion-negative",
        task(max_completion_time={"nanoseconds": -5}),
        "Task's `max_completion_time` must be non-negative",
    ),
    (
        "health-no-type",
        task(health_check={"tcp": {"port": 80}}),
        "Task uses invalid health check: HealthCheck must specify 'type'",
    ),
    (
        "health-unknown-type",
        task(health_check={"type": "UNKNOWN"}),
        "Task uses invalid health check: 'UNKNOWN' is not a valid health check type",
    ),
    (
        "health-command-missing",
        task(health_check={"type": "COMMAND"}),
        "Task uses invalid health check: Expecting 'command' to be set for COMMAND health check",
    ),
    (
        "health-command-no-value",
        task(health_check={"type": "COMMAND", "command": {"shell": True}}),
        "Task uses invalid health check: Command health check must contain 'shell command'",
    ),
    (
        "health-argv-no-value",
        task(health_check={"type": "COMMAND", "command": {"shell": False}}),
        "Task uses invalid health check: Command health check must contain 'executable path'",
    ),
    (
        "health-http-scheme",
        task(health_check={"type": "HTTP", "http": {"port": 80, "scheme": "ftp"}}),
        "Task uses invalid health check: Unsupported HTTP health check scheme: 'ftp'",
    ),
    (
        "health-http-path",
        task(health_check={"type": "HTTP", "http": {"port": 80, "path": "health"}}),
        "Task uses invalid health check: The path 'health' of HTTP health check must start with '/'",
    ),
    (
        "health-http-missing",
        task(health_check={"type": "HTTP"}),
        "Task uses invalid health check: Expecting 'http' to be set for HTTP health check",
    ),
    (
        "health-tcp-no-port",
        task(health_check={"type": "TCP", "tcp": {}}),
        "Task uses invalid health check: TCP health check needs a 'port' between 1 and 65535",
    ),
    (
        "health-negative-interval",
        task(health_check={"type": "TCP", "tcp": {"port": 80}, "interval_seconds": -1}),
        "Task uses invalid health check: Expecting 'interval_seconds' to be non-negative",
    ),
    ("no-resources", task(resources=[]), "Task uses no resources"),
    (
        "malformed-resources",
        task(resources=[{"name": "cpus", "type": "SCALAR", "scalar": {"value": "lots"}}]),
        "Task uses invalid resources: ...",
    ),
    (
        "unknown-resource",
        task(resources=[*res(), {"name": "fpgas", "type": "SCALAR", "scalar": {"value": 1}}]),
        "Task uses invalid resources: ...",
    ),
    (
        "no-cpus-or-mem",
        task(resources=res(cpus=None, mem=None, disk=10)),
        "Task uses no cpus or mem",
    ),
    ("too-many-cpus", task(resources=res(cpus=8)), TOTAL.format("cpus:8; mem:64")),
    (
        "ports-not-offered",
        task(resources=res(ports=[(80, 80)])),
        TOTAL.format("cpus:0.5; mem:64; ports:[80-80]"),
    ),
    (
        "executor-resources-count",
        task(command=None, executor={**EXECUTOR, "resources": res(cpus=1.9, mem=32)}),
        TOTAL.format("cpus:2.4; mem:96"),
    ),
    (
        "neither-command-nor-executor",
        task(command=None),
        "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present",
    ),
    (
        "command-and-custom-executor",
        task(executor=EXECUTOR),
        "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present",
    ),
    (
        "shell-without-value",
        task(command={"shell": True}),
        f"Shell command of task '{TASK_ID}' is not specified",
    ),
    (
        "argv-without-value-on-host",
        task(command={"shell": False, "arguments": ["x"]}),
        f"Executable of task '{TASK_ID}' is not specified",
    ),
    (
        "secret-env",
        task(
            command={
                "value": "x",
                "environment": {
                    "variables": [
                        {
                            "name": "PASSWORD",
                            "type": "SECRET",
                            "secret": {"type": "REFERENCE", "reference": {"name": "p"}},
                        }
                    ]
                },
            }
        ),
        "Task's `CommandInfo` is invalid: Environment variable 'PASSWORD' of type 'SECRET' is not supported",
    ),
    (
        "env-without-value",
        task(command={"value": "x", "environment": {"variables": [{"name": "A"}]}}),
        "Task's `CommandInfo` is invalid: Environment variable 'A' of type 'VALUE' must have a value set",
    ),
    (
        "env-unknown-type",
        task(
            command={"value": "x", "environment": {"variables": [{"name": "A", "type": "UNKNOWN"}]}}
        ),
        "Task's `CommandInfo` is invalid: Environment variable of type 'UNKNOWN' is not allowed",
    ),
    (
        "env-name-invalid-for-a-pod",
        task(
            command={"value": "x", "environment": {"variables": [{"name": "1 BAD", "value": "v"}]}}
        ),
        "Task's `CommandInfo` is invalid: Environment variable name '1 BAD' is invalid: ...",
    ),
    (
        "container-type",
        task(container={"type": "APPC"}),
        "Task's `ContainerInfo` is invalid: container type 'APPC' is not supported (DOCKER or MESOS)",
    ),
    (
        "docker-without-docker-info",
        task(container={"type": "DOCKER"}),
        "Task's `ContainerInfo` is invalid: DockerInfo 'docker' is not set for DOCKER typed ContainerInfo",
    ),
    (
        "docker-without-image",
        task(container={"type": "DOCKER", "docker": {"network": "HOST"}}),
        "Task's `ContainerInfo` is invalid: DockerInfo 'image' is not set",
    ),
    (
        "docker-name-parameter",
        task(container=docker(parameters=[{"key": "name", "value": "x"}])),
        "Task's `ContainerInfo` is invalid: Parameter in DockerInfo must not be 'name'",
    ),
    (
        "docker-port-mapping-zero",
        task(
            container=docker(
                network="BRIDGE", port_mappings=[{"host_port": 31000, "container_port": 0}]
            )
        ),
        "Task's `ContainerInfo` is invalid: Port mapping 'container_port' must be between 1 and 65535",
    ),
    (
        "appc-image",
        task(
            container={
                "type": "MESOS",
                "mesos": {"image": {"type": "APPC", "appc": {"name": "coreos.com/etcd"}}},
            }
        ),
        "Task's `ContainerInfo` is invalid: Appc images are not supported (use a Docker image)",
    ),
    (
        "volume-two-sources",
        task(
            container={
                **docker(),
                "volumes": [{"container_path": "/d", "host_path": "/d", "image": {}}],
            }
        ),
        "Task's `ContainerInfo` is invalid: Invalid volume: Only one of them should be set: 'host_path', 'image' and 'source'",
    ),
    (
        "volume-sandbox-path",
        task(
            container={
                **docker(),
                "volumes": [
                    {"container_path": "/d", "source": {"type": "SANDBOX_PATH", "sandbox_path": {}}}
                ],
            }
        ),
        "Task's `ContainerInfo` is invalid: Invalid volume: volume source type 'SANDBOX_PATH' is not supported (HOST_PATH only)",
    ),
    (
        "volume-relative-path",
        task(container={**docker(), "volumes": [{"container_path": "data", "host_path": "/d"}]}),
        "Task's `ContainerInfo` is invalid: Invalid volume: 'container_path' must be an absolute path, not 'data'",
    ),
    (
        "limits-other-resource",
        task(limits={"disk": 10}),
        "Only cpus and mem may be included in a task's resource limits",
    ),
    (
        "cpu-limit-below-request",
        task(limits={"cpus": {"value": 0.1}}),
        "The cpu limit must be greater than or equal to the cpu request",
    ),
    (
        "mem-limit-below-request",
        task(limits={"mem": {"value": 32}}),
        "The memory limit must be greater than or equal to the memory request",
    ),
    (
        "mem-limit-without-request",
        task(resources=res(mem=None), limits={"mem": {"value": 32}}),
        "When a memory limit is specified, a memory request must also be specified",
    ),
    (
        "custom-executor-without-command",
        task(command=None, executor={"type": "CUSTOM", "executor_id": {"value": "e"}}),
        "'ExecutorInfo.command' must be set for 'CUSTOM' executor",
    ),
    (
        "default-executor-docker",
        task(executor={"type": "DEFAULT", "executor_id": {"value": "e"}, "container": docker()}),
        "'ExecutorInfo.container.type' must be 'MESOS' for 'DEFAULT' executor",
    ),
    (
        "default-executor-nothing-to-run",
        task(command=None, executor={"type": "DEFAULT", "executor_id": {"value": "e"}}),
        "Task has neither a command nor an image to run",
    ),
    (
        "executor-id",
        task(command=None, executor={**EXECUTOR, "executor_id": {"value": "a/b"}}),
        "'a/b' contains invalid characters",
    ),
    (
        "executor-grace-negative",
        task(command=None, executor={**EXECUTOR, "shutdown_grace_period": {"nanoseconds": -1}}),
        "ExecutorInfo's 'shutdown_grace_period' must be non-negative",
    ),
    (
        "executor-resources",
        task(
            command=None, executor={**EXECUTOR, "resources": [{"name": "cpus", "type": "RANGES"}]}
        ),
        "Executor uses invalid resources: ...",
    ),
    (
        "executor-env",
        task(
            command=None,
            executor={
                **EXECUTOR,
                "command": {
                    "value": "x",
                    "environment": {"variables": [{"name": "A", "type": "SECRET"}]},
                },
            },
        ),
        "Executor's `CommandInfo` is invalid: Environment variable 'A' of type 'SECRET' is not supported",
    ),
    ("too-large", task(data="A" * 300_000), "Task is too large: ..."),
]


@pytest.mark.parametrize(("t", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_validate_task_rejects(t: Any, message: str) -> None:
    got = tasks.validate_task(t, agent_id=AGENT, offered=OFFER, offered_ports=OFFER_PORTS)
    if message.endswith("..."):
        assert got is not None and got.startswith(message[:-3]), got
    else:
        assert got == message


VALID: list[tuple[str, Obj]] = [
    ("command", task()),
    ("empty-name-as-mesos", task(name="")),
    ("leading-dot-id-as-mesos", task(task_id={"value": ".hidden"})),
    ("exact-fit", task(resources=res(cpus=2, mem=1024, ports=[(31000, 32000)]))),
    ("custom-executor", task(command=None, executor=EXECUTOR)),
    ("executor-typed-custom", task(command=None, executor={**EXECUTOR, "type": "CUSTOM"})),
    (
        "default-executor-with-image-only",
        task(
            command=None,
            container=mesos_image(),
            executor={"type": "DEFAULT", "executor_id": {"value": "e"}},
        ),
    ),
    ("docker-argv-entrypoint", task(container=docker(), command={"shell": False})),
    ("limits-infinity", task(limits={"cpus": {"value": "Infinity"}, "mem": {"value": "Infinity"}})),
    ("user-name", task(command={"value": "id", "user": "nobody"})),
    (
        "health-zero-timeout",
        task(health_check={"type": "TCP", "tcp": {"port": 1}, "timeout_seconds": 0}),
    ),
]


@pytest.mark.parametrize("t", [c[1] for c in VALID], ids=[c[0] for c in VALID])
def test_validate_task_accepts(t: Obj) -> None:
    assert tasks.validate_task(t, agent_id=AGENT, offered=OFFER, offered_ports=OFFER_PORTS) is None
    assert _api_server_errors(make_pod(t)) == []


def test_validate_task_against_a_node_table_offer() -> None:
    offered = to_vector(0.5, 64)
    assert tasks.validate_task(task(), agent_id=AGENT, offered=offered, offered_ports=[]) is None
    assert tasks.validate_task(
        task(resources=res(cpus=0.6)), agent_id=AGENT, offered=offered, offered_ports=[]
    ) == (
        "Total resources cpus:0.6; mem:64 required by task and its executor is more than available cpus:0.5; mem:64"
    )


def _pods(value: Any) -> Obj:
    return {"name": "pods", "type": "SCALAR", "scalar": {"value": value}}


@pytest.mark.parametrize(
    ("pods", "offered_pods", "message"),
    [
        (None, 110, None),
        (1, 110, None),
        (110, 110, None),
        (
            111,
            110,
            "Total resources cpus:0.5; mem:64; pods:111 required by task and its executor"
            " is more than available cpus:2; mem:1024; pods:110",
        ),
        (
            1,
            0,
            "Total resources cpus:0.5; mem:64; pods:1 required by task and its executor"
            " is more than available cpus:2; mem:1024",
        ),
        (
            0.5,
            110,
            "Task uses invalid resources: resource 2 ('pods') must be a whole number, not 0.5",
        ),
    ],
    ids=["none", "one", "all-offered", "more-than-offered", "offer-without-pods", "fraction"],
)
def test_validate_task_pods(pods: Any, offered_pods: int, message: str | None) -> None:
    """A task may request the offer's ``pods`` (up to what it carries) or not."""
    t = task(resources=res() + ([] if pods is None else [_pods(pods)]))
    offered = np.array([2000, 1024 * 2**20, 0, offered_pods], dtype=np.int64)
    assert tasks.validate_task(t, agent_id=AGENT, offered=offered, offered_ports=[]) == message


def test_a_task_requesting_pods_is_one_pod() -> None:
    """``pods`` is not a container resource: the pod requests cpu and memory only."""
    pod = make_pod(task(resources=[*res(), _pods(3)]))
    for c in pod["spec"]["containers"]:
        requests = (c.get("resources") or {}).get("requests") or {}
        assert "pods" not in requests
    assert _api_server_errors(pod) == []


# --- status ---------------------------------------------------------------------------------

STARTED = "2024-01-01T00:00:10Z"


def pod_in(
    *,
    node: str | None = AGENT,
    phase: str | None = "Pending",
    waiting: tuple[str, str] | None = None,
    running: bool = False,
    terminated: Obj | None = None,
    deleting: bool = False,
    ready: tuple[str, str] | None = None,
    probe: bool = False,
    reason: str | None = None,
    annotations: Obj | None = None,
    executor: Obj | None = None,
    ip: str | None = None,
) -> Obj:
    """A task pod in a given state (built from the real manifest of a command task)."""
    t = task(health_check={"type": "TCP", "tcp": {"port": 80}}) if probe else task()
    if executor is not None:
        t = task(command=None, executor=executor)
    p = make_pod(t)
    if node:
        p["spec"]["nodeName"] = node
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2024-01-01T00:01:00Z"
    p["metadata"]["annotations"].update(annotations or {})
    status: Obj = {}
    if phase:
        status["phase"] = phase
    if reason:
        status["reason"], status["message"] = reason, f"pod {reason}"
    state: Obj = {}
    if waiting:
        state["waiting"] = {"reason": waiting[0], "message": waiting[1]}
    if running:
        state["running"] = {"startedAt": STARTED}
    if terminated is not None:
        state["terminated"] = terminated
    if state:
        status["containerStatuses"] = [{"name": "task", "state": state, "ready": False}]
    if ready:
        status["conditions"] = [
            {"type": "Ready", "status": ready[0], "lastTransitionTime": ready[1]}
        ]
    if ip:
        status["podIP"], status["podIPs"] = ip, [{"ip": ip}]
    p["status"] = status
    return p


def exited(code: int, reason: str = "Error", **extra: Any) -> Obj:
    return {"exitCode": code, "reason": reason, **extra}


CUSTOM: Obj = EXECUTOR


def sent(state: str, **extra: Any) -> Obj:
    body = {
        "task_id": {"value": TASK_ID},
        "state": state,
        "source": "SOURCE_EXECUTOR",
        "uuid": "AAAA",
        "timestamp": 1.0,
        **extra,
    }
    return {names.EXECUTOR_STATUS: json.dumps(body)}


# (id, pod, task_status keyword overrides, expected subset of the status)
STATUS_CASES: list[tuple[str, Obj | None, Obj, Obj]] = [
    (
        "unbound-staging",
        pod_in(node=None, phase=None),
        {},
        {"state": "TASK_STAGING", "source": "SOURCE_MASTER"},
    ),
    (
        "bound-creating",
        pod_in(waiting=("ContainerCreating", "")),
        {},
        {"state": "TASK_STARTING", "source": "SOURCE_AGENT"},
    ),
    ("bound-no-status", pod_in(), {}, {"state": "TASK_STARTING"}),
    *[
        (
            f"launch-failed-{why}",
            pod_in(waiting=(why, "boom")),
            {},
            {
                "state": "TASK_FAILED",
                "reason": "REASON_CONTAINER_LAUNCH_FAILED",
                "source": "SOURCE_AGENT",
                "message": f"Failed to launch container: {why}: boom",
            },
        )
        for why in (
            "ErrImagePull",
            "ImagePullBackOff",
            "InvalidImageName",
            "ErrImageNeverPull",
            "CreateContainerError",
            "CreateContainerConfigError",
            "RunContainerError",
        )
    ],
    (
        "launch-failed-pod-failed-fetch",
        pod_in(
            phase="Failed", waiting=("CreateContainerError", "failed to fetch the task's URIs: 404")
        ),
        {},
        {"state": "TASK_FAILED", "reason": "REASON_CONTAINER_LAUNCH_FAILED"},
    ),
    (
        "launch-failed-start-error",
        pod_in(phase="Failed", terminated=exited(128, "StartError", message="exec: not found")),
        {},
        {
            "state": "TASK_FAILED",
            "reason": "REASON_CONTAINER_LAUNCH_FAILED",
            "message": "Failed to launch container: StartError: exec: not found",
        },
    ),
    (
        "rejected-by-kubelet",
        pod_in(phase="Failed", reason="OutOfcpu"),
        {},
        {
            "state": "TASK_FAILED",
            "reason": "REASON_CONTAINER_LAUNCH_FAILED",
            "message": "Failed to launch container: pod OutOfcpu",
        },
    ),
    (
        "running",
        pod_in(phase="Running", running=True, ip="10.0.0.5"),
        {},
        {"state": "TASK_RUNNING", "source": "SOURCE_AGENT", "healthy": MISSING, "reason": MISSING},
    ),
    (
        "running-healthy",
        pod_in(phase="Running", running=True, probe=True, ready=("True", "2024-01-01T00:00:30Z")),
        {},
        {
            "state": "TASK_RUNNING",
            "healthy": True,
            "reason": "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED",
        },
    ),
    (
        "running-turned-unhealthy",
        pod_in(phase="Running", running=True, probe=True, ready=("False", "2024-01-01T00:01:30Z")),
        {},
        {
            "state": "TASK_RUNNING",
            "healthy": False,
            "reason": "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED",
        },
    ),
    (
        "running-not-yet-checked",
        pod_in(phase="Running", running=True, probe=True, ready=("False", "2024-01-01T00:00:01Z")),
        {},
        {"state": "TASK_RUNNING", "healthy": MISSING},
    ),
    (
        "running-without-health-check-ignores-ready",
        pod_in(phase="Running", running=True, ready=("True", "2024-01-01T00:00:30Z")),
        {},
        {"state": "TASK_RUNNING", "healthy": MISSING},
    ),
    (
        "deleting-killing",
        pod_in(phase="Running", running=True, deleting=True),
        {"task_killing_state": True},
        {"state": "TASK_KILLING", "source": "SOURCE_AGENT"},
    ),
    (
        "deleting-no-killing-capability",
        pod_in(phase="Running", running=True, deleting=True),
        {},
        {"state": "TASK_RUNNING"},
    ),
    (
        "kill-requested-killing",
        pod_in(phase="Running", running=True),
        {"kill_requested": True, "task_killing_state": True},
        {"state": "TASK_KILLING"},
    ),
    (
        "finished",
        pod_in(phase="Succeeded", terminated=exited(0, "Completed")),
        {},
        {
            "state": "TASK_FINISHED",
            "message": "Command exited with status 0",
            "reason": MISSING,
            "source": "SOURCE_AGENT",
        },
    ),
    (
        "failed-exit",
        pod_in(phase="Failed", terminated=exited(3)),
        {},
        {
            "state": "TASK_FAILED",
            "reason": "REASON_COMMAND_EXECUTOR_FAILED",
            "message": "Command exited with status 3",
        },
    ),
    (
        "failed-signal",
        pod_in(phase="Failed", terminated=exited(139, signal=11)),
        {},
        {"state": "TASK_FAILED", "message": "Command terminated with signal Segmentation fault"},
    ),
    (
        "failed-137-not-killed-by-us",
        pod_in(phase="Failed", terminated=exited(137)),
        {},
        {"state": "TASK_FAILED", "message": "Command exited with status 137"},
    ),
    (
        "killed-sigterm",
        pod_in(phase="Failed", terminated=exited(143), deleting=True),
        {"kill_requested": True},
        {
            "state": "TASK_KILLED",
            "reason": MISSING,
            "message": "Command terminated with signal Terminated",
        },
    ),
    (
        "killed-sigkill-named-signal",
        pod_in(phase="Failed", terminated=exited(137, signal="SIGKILL")),
        {"kill_requested": True},
        {"state": "TASK_KILLED", "message": "Command terminated with signal Killed"},
    ),
    (
        "killed-clean-exit",
        pod_in(phase="Succeeded", terminated=exited(0, "Completed"), deleting=True),
        {},
        {"state": "TASK_KILLED", "message": "Command exited with status 0"},
    ),
    (
        "oom",
        pod_in(phase="Failed", terminated=exited(137, "OOMKilled")),
        {},
        {
            "state": "TASK_FAILED",
            "reason": "REASON_CONTAINER_LIMITATION_MEMORY",
            "message": "Memory limit exceeded: Requested: 64MB",
            "limitation": {
                "resources": [{"name": "mem", "type": "SCALAR", "scalar": {"value": 64.0}}]
            },
        },
    ),
    (
        "deadline",
        pod_in(phase="Failed", reason="DeadlineExceeded", terminated=exited(137)),
        {},
        {
            "state": "TASK_FAILED",
            "reason": "REASON_MAX_COMPLETION_TIME_REACHED",
            "message": "Command terminated with signal Killed",
        },
    ),
    (
        "evicted-partition-aware",
        pod_in(phase="Failed", reason="Evicted"),
        {"partition_aware": True},
        {"state": "TASK_GONE", "reason": "REASON_CONTAINER_PREEMPTED"},
    ),
    (
        "evicted",
        pod_in(phase="Failed", reason="Evicted"),
        {},
        {"state": "TASK_LOST", "reason": "REASON_CONTAINER_PREEMPTED"},
    ),
    (
        "killed-while-pending",
        pod_in(waiting=("ContainerCreating", "")),
        {"kill_requested": True},
        {
            "state": "TASK_KILLED",
            "reason": "REASON_TASK_KILLED_DURING_LAUNCH",
            "message": "Killed before delivery to the executor",
        },
    ),
    (
        "killed-while-unbound",
        pod_in(node=None, phase=None),
        {"kill_requested": True},
        {"state": "TASK_KILLED", "reason": "REASON_TASK_KILLED_DURING_LAUNCH"},
    ),
    (
        "unreachable-partition-aware",
        pod_in(phase="Running", running=True, ip="10.0.0.5"),
        {"node_state": "unreachable", "partition_aware": True},
        {
            "state": "TASK_UNREACHABLE",
            "reason": "REASON_AGENT_REMOVED",
            "source": "SOURCE_MASTER",
            "container_status": MISSING,
        },
    ),
    (
        "unreachable",
        pod_in(phase="Running", running=True),
        {"node_state": "unreachable"},
        {"state": "TASK_LOST", "reason": "REASON_AGENT_REMOVED", "source": "SOURCE_MASTER"},
    ),
    (
        "unreachable-after-finishing",
        pod_in(phase="Succeeded", terminated=exited(0)),
        {"node_state": "unreachable"},
        {"state": "TASK_FINISHED"},
    ),
    (
        "phase-unknown",
        pod_in(phase="Unknown"),
        {"partition_aware": True},
        {"state": "TASK_UNREACHABLE", "source": "SOURCE_MASTER"},
    ),
    (
        "node-gone-partition-aware",
        pod_in(phase="Running", running=True),
        {"node_state": "gone", "partition_aware": True},
        {
            "state": "TASK_GONE_BY_OPERATOR",
            "reason": "REASON_AGENT_REMOVED_BY_OPERATOR",
            "source": "SOURCE_MASTER",
            "message": "Agent has been marked gone",
        },
    ),
    (
        "node-gone",
        pod_in(phase="Running", running=True),
        {"node_state": "gone"},
        {"state": "TASK_LOST", "reason": "REASON_AGENT_REMOVED"},
    ),
    (
        "no-pod-killed",
        None,
        {"kill_requested": True, "node_state": "gone"},
        {"state": "TASK_KILLED", "source": "SOURCE_AGENT"},
    ),
    (
        "no-pod-node-gone",
        None,
        {"node_state": "gone", "partition_aware": True},
        {"state": "TASK_GONE_BY_OPERATOR", "reason": "REASON_AGENT_REMOVED_BY_OPERATOR"},
    ),
    (
        "no-pod-node-unreachable",
        None,
        {"node_state": "unreachable", "partition_aware": True},
        {"state": "TASK_UNREACHABLE", "reason": "REASON_AGENT_REMOVED"},
    ),
    (
        "no-pod-partition-aware",
        None,
        {"partition_aware": True},
        {
            "state": "TASK_GONE",
            "reason": "REASON_RECONCILIATION",
            "source": "SOURCE_MASTER",
            "message": "Reconciliation: Task is unknown to the agent",
        },
    ),
    (
        "no-pod",
        None,
        {},
        {"state": "TASK_LOST", "reason": "REASON_RECONCILIATION", "source": "SOURCE_MASTER"},
    ),
    (
        "executor-starting-is-staging",
        pod_in(executor=CUSTOM, waiting=("ContainerCreating", "")),
        {},
        {"state": "TASK_STAGING", "executor_id": {"value": "ex-1"}},
    ),
    (
        "executor-silent-is-staging",
        pod_in(executor=CUSTOM, phase="Running", running=True),
        {},
        {"state": "TASK_STAGING"},
    ),
    (
        "executor-status-wins",
        pod_in(
            executor=CUSTOM,
            phase="Running",
            running=True,
            ip="10.0.0.7",
            annotations=sent("TASK_RUNNING", message="up", data="aGk=", healthy=True),
        ),
        {},
        {
            "state": "TASK_RUNNING",
            "source": "SOURCE_EXECUTOR",
            "message": "up",
            "data": "aGk=",
            "healthy": True,
            "uuid": MISSING,
            "timestamp": MISSING,
            "executor_id": {"value": "ex-1"},
            "container_status": {"network_infos": [{"ip_addresses": [{"ip_address": "10.0.0.7"}]}]},
        },
    ),
    (
        "executor-status-while-deleting",
        pod_in(
            executor=CUSTOM,
            phase="Running",
            running=True,
            deleting=True,
            annotations=sent("TASK_RUNNING"),
        ),
        {"task_killing_state": True},
        {"state": "TASK_RUNNING", "source": "SOURCE_EXECUTOR"},
    ),
    (
        "executor-terminated",
        pod_in(
            executor=CUSTOM, phase="Failed", terminated=exited(1), annotations=sent("TASK_RUNNING")
        ),
        {},
        {
            "state": "TASK_FAILED",
            "reason": "REASON_EXECUTOR_TERMINATED",
            "source": "SOURCE_AGENT",
            "message": "Executor terminated",
        },
    ),
    (
        "executor-exited-cleanly-without-terminal-update",
        pod_in(
            executor=CUSTOM,
            phase="Succeeded",
            terminated=exited(0, "Completed"),
            annotations=sent("TASK_RUNNING"),
        ),
        {},
        {"state": "TASK_FAILED", "reason": "REASON_EXECUTOR_TERMINATED"},
    ),
    (
        "executor-finished",
        pod_in(
            executor=CUSTOM,
            phase="Succeeded",
            terminated=exited(0, "Completed"),
            annotations=sent("TASK_FINISHED"),
        ),
        {},
        {"state": "TASK_FINISHED", "source": "SOURCE_EXECUTOR"},
    ),
    (
        "executor-terminal-while-node-unreachable",
        pod_in(executor=CUSTOM, phase="Running", running=True, annotations=sent("TASK_FINISHED")),
        {"node_state": "unreachable"},
        {"state": "TASK_FINISHED", "source": "SOURCE_EXECUTOR"},
    ),
    (
        "executor-oom",
        pod_in(
            executor=CUSTOM,
            phase="Failed",
            terminated=exited(137, "OOMKilled"),
            annotations=sent("TASK_RUNNING"),
        ),
        {},
        {
            "state": "TASK_FAILED",
            "reason": "REASON_CONTAINER_LIMITATION_MEMORY",
            "message": "Memory limit exceeded: Requested: 96MB",
        },
    ),
    (
        "executor-killed",
        pod_in(executor=CUSTOM, phase="Failed", terminated=exited(143)),
        {"kill_requested": True},
        {"state": "TASK_KILLED", "source": "SOURCE_AGENT"},
    ),
    (
        "executor-running-node-unreachable",
        pod_in(executor=CUSTOM, phase="Running", running=True, annotations=sent("TASK_RUNNING")),
        {"node_state": "unreachable", "partition_aware": True},
        {"state": "TASK_UNREACHABLE", "source": "SOURCE_MASTER"},
    ),
    (
        "executor-staging-update-ignored",
        pod_in(executor=CUSTOM, phase="Running", running=True, annotations=sent("TASK_STAGING")),
        {},
        {"state": "TASK_STAGING", "source": "SOURCE_AGENT"},
    ),
    (
        "executor-status-garbage",
        pod_in(
            executor=CUSTOM, phase="Running", running=True, annotations={names.EXECUTOR_STATUS: "{"}
        ),
        {},
        {"state": "TASK_STAGING"},
    ),
    (
        "default-executor-runs-like-a-command",
        pod_in(
            executor={"type": "DEFAULT", "executor_id": {"value": "d"}, "resources": res(0.1, 32)},
            phase="Running",
            running=True,
        ),
        {},
        {"state": "TASK_RUNNING", "executor_id": {"value": "d"}},
    ),
]


def _with_default_executor(p: Obj) -> Obj:
    # pod_in builds executor tasks without a command; a DEFAULT executor runs the task's
    info = json.loads(p["metadata"]["annotations"][names.TASK_INFO])
    if (info.get("executor") or {}).get("type") == "DEFAULT":
        info["command"] = {"value": "sleep 10"}
        p["metadata"]["annotations"][names.TASK_INFO] = json.dumps(info)
    return p


@pytest.mark.parametrize(
    ("pod", "kw", "expected"), [c[1:] for c in STATUS_CASES], ids=[c[0] for c in STATUS_CASES]
)
def test_task_status(pod: Obj | None, kw: Obj, expected: Obj) -> None:
    args: Obj = {
        "task_id": TASK_ID,
        "agent_id": AGENT,
        "node_state": "ready",
        "kill_requested": False,
        "partition_aware": False,
        "task_killing_state": False,
    }
    args.update(kw)
    status = tasks.task_status(_with_default_executor(pod) if pod else pod, **args)
    assert {k: status.get(k, MISSING) for k in expected} == expected
    assert status["task_id"] == {"value": TASK_ID}
    assert status["agent_id"] == {"value": AGENT}
    assert status["source"] in ("SOURCE_MASTER", "SOURCE_AGENT", "SOURCE_EXECUTOR")
    assert "uuid" not in status and "timestamp" not in status
    if "healthy" in status:
        assert status["state"] == "TASK_RUNNING"  # Mesos sets healthy on RUNNING only


def test_task_status_container_status_ips() -> None:
    p = pod_in(phase="Running", running=True, ip="10.0.0.5")
    p["status"]["podIPs"] = [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]
    status = tasks.task_status(
        p,
        task_id=TASK_ID,
        agent_id=AGENT,
        node_state="ready",
        kill_requested=False,
        partition_aware=False,
        task_killing_state=False,
    )
    assert status["container_status"] == {
        "network_infos": [
            {
                "ip_addresses": [
                    {"ip_address": "10.0.0.5"},
                    {"ip_address": "fd00::5", "protocol": "IPv6"},
                ]
            }
        ]
    }
    assert "executor_id" not in status


TERMINAL = [
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_LOST",
    "TASK_ERROR",
    "TASK_DROPPED",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
]
NON_TERMINAL = [
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_KILLING",
    "TASK_UNREACHABLE",
    "TASK_UNKNOWN",
]


@pytest.mark.parametrize(
    ("state", "terminal"),
    [(s, True) for s in TERMINAL] + [(s, False) for s in NON_TERMINAL],
    ids=TERMINAL + NON_TERMINAL,
)
def test_is_terminal_state(state: str, terminal: bool) -> None:
    assert tasks.is_terminal_state(state) is terminal
