"""A Marathon app definition: defaults, every validation path and message, partial
updates, versions, and the JSON out checked through the real ``marathon`` 0.13.0 models."""

from __future__ import annotations

import collections
import collections.abc
import copy
import datetime as dt
from typing import Any

import pytest

# marathon 0.13.0 uses collections.Iterable (gone in Python 3.10) when it encodes models
collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]

from marathon.models import MarathonApp, MarathonTask  # noqa: E402

from corral.marathon import apps  # noqa: E402
from corral.marathon.apps import AppError  # noqa: E402

# the client logs a Logger.warn() (deprecated) for Marathon's {"value": cmd} health checks
pytestmark = pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")

NOW = "2026-01-01T00:00:00.000Z"
LATER = "2026-01-01T00:05:00.000Z"

#: ``{"id": "web", "cmd": "sleep 1"}`` in canonical form: every Marathon default
BASE: dict[str, Any] = {
    "id": "/web",
    "backoffFactor": 1.15,
    "backoffSeconds": 1,
    "cmd": "sleep 1",
    "constraints": [],
    "cpus": 1.0,
    "dependencies": [],
    "disk": 0.0,
    "env": {},
    "executor": "",
    "fetch": [],
    "gpus": 0,
    "healthChecks": [],
    "instances": 1,
    "labels": {},
    "maxLaunchDelaySeconds": 300,
    "mem": 128.0,
    "networks": [{"mode": "host"}],
    "portDefinitions": [{"port": 0, "protocol": "tcp", "name": "default", "labels": {}}],
    "readinessChecks": [],
    "requirePorts": False,
    "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0},
    "unreachableStrategy": {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0},
    "killSelection": "YOUNGEST_FIRST",
    "role": "*",
}

HTTP_CHECK = {
    "gracePeriodSeconds": 300,
    "ignoreHttp1xx": False,
    "intervalSeconds": 60,
    "maxConsecutiveFailures": 3,
    "portIndex": 0,
    "protocol": "HTTP",
    "ipProtocol": "IPv4",
    "timeoutSeconds": 20,
    "delaySeconds": 15,
}
TCP_CHECK = {k: v for k, v in HTTP_CHECK.items() if k != "ignoreHttp1xx"} | {"protocol": "TCP"}
BRIDGE_MAPPING = {
    "containerPort": 80,
    "hostPort": 0,
    "servicePort": 0,
    "protocol": "tcp",
    "labels": {},
}
DOCKER_OUT = {"forcePullImage": False, "image": "nginx", "parameters": [], "privileged": False}


def app(**fields: Any) -> dict[str, Any]:
    return {"id": "/web", "cmd": "sleep 1", **fields}


def docker(**container: Any) -> dict[str, Any]:
    return {"type": "DOCKER", "docker": {"image": "nginx"}, **container}


# ---------------------------------------------------------------------------------------
# valid definitions and their defaults


def test_defaults_in_full() -> None:
    assert apps.normalize({"id": "web", "cmd": "sleep 1"}) == BASE


VALID: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    # (id, body, normalize() keyword arguments, expected fields)
    ("relative-id", {"id": "a/b", "cmd": "x"}, {}, {"id": "/a/b"}),
    ("double-slashes", {"id": "//a//b/", "cmd": "x"}, {}, {"id": "/a/b"}),
    ("dotdot-segments", {"id": "/a/x/y/../../b", "cmd": "x"}, {}, {"id": "/a/b"}),
    ("dotdot-above-root", {"id": "/../../a", "cmd": "x"}, {}, {"id": "/a"}),
    ("dns-like-segment", {"id": "/my-app.v2", "cmd": "x"}, {}, {"id": "/my-app.v2"}),
    ("url-id-wins", {"id": "/other", "cmd": "x"}, {"app_id": "/a//b"}, {"id": "/a/b"}),
    ("parent-group", {"id": "db", "cmd": "x"}, {"parent": "/prod"}, {"id": "/prod/db"}),
    (
        "dependencies-relative",
        {"id": "web", "cmd": "x", "dependencies": ["db", "../cache", "/abs", "db"]},
        {"parent": "/prod"},
        {"id": "/prod/web", "dependencies": ["/prod/db", "/cache", "/abs"]},
    ),
    ("args-only", {"id": "/a", "args": ["sleep", "1"]}, {}, {"args": ["sleep", "1"]}),
    (
        "resources",
        app(cpus=0.25, mem=64, disk=10, instances=3),
        {},
        {"cpus": 0.25, "mem": 64.0, "disk": 10.0, "instances": 3},
    ),
    ("integral-float", app(instances=2.0), {}, {"instances": 2}),
    ("nulls-are-absent", app(cpus=None, env=None), {}, {"cpus": 1.0, "env": {}}),
    ("unknown-keys-dropped", app(tasks=[1], foo="bar", version="x"), {}, {}),
    ("executor-cmd", app(executor="//cmd"), {}, {"executor": "//cmd"}),
    (
        "env-and-labels",
        app(env={"A": "1"}, labels={"team": "x"}),
        {},
        {"env": {"A": "1"}, "labels": {"team": "x"}},
    ),
    (
        "backoff",
        app(backoffSeconds=2, backoffFactor=2, maxLaunchDelaySeconds=60),
        {},
        {"backoffSeconds": 2, "backoffFactor": 2.0, "maxLaunchDelaySeconds": 60},
    ),
    ("kill-selection", app(killSelection="OLDEST_FIRST"), {}, {"killSelection": "OLDEST_FIRST"}),
    (
        "user-and-grace",
        app(user="nobody", taskKillGracePeriodSeconds=5),
        {},
        {"user": "nobody", "taskKillGracePeriodSeconds": 5},
    ),
    ("tty-kept", app(tty=True), {}, {"tty": True}),
    (
        "upgrade-strategy-partial",
        app(upgradeStrategy={"minimumHealthCapacity": 0.5}),
        {},
        {"upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 1.0}},
    ),
    (
        "unreachable-disabled",
        app(unreachableStrategy="disabled"),
        {},
        {"unreachableStrategy": "disabled"},
    ),
    (
        "unreachable-enabled",
        app(unreachableStrategy={"expungeAfterSeconds": 60}),
        {},
        {"unreachableStrategy": {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 60}},
    ),
    (
        "constraints",
        app(
            constraints=[
                ["hostname", "UNIQUE"],
                ["rack", "group_by", "2"],
                ["rack", "GROUP_BY"],
                ["hostname", "CLUSTER", "a1"],
                ["hostname", "CLUSTER"],
                ["hostname", "LIKE", "a[0-9]"],
                ["hostname", "UNLIKE", "b.*"],
                ["hostname", "MAX_PER", "+2"],
                ["os", "IS", "linux-1.0"],
                ["hostname", "UNIQUE"],
            ]
        ),
        {},
        {
            "constraints": [
                ["hostname", "UNIQUE"],
                ["rack", "GROUP_BY", "2"],
                ["rack", "GROUP_BY"],
                ["hostname", "CLUSTER", "a1"],
                ["hostname", "CLUSTER"],
                ["hostname", "LIKE", "a[0-9]"],
                ["hostname", "UNLIKE", "b.*"],
                ["hostname", "MAX_PER", "+2"],
                ["os", "IS", "linux-1.0"],
            ]
        },
    ),
    (
        "port-definitions",
        app(portDefinitions=[{"port": 8080, "name": "http"}, {"port": 0, "protocol": "udp"}, {}]),
        {},
        {
            "portDefinitions": [
                {"port": 8080, "protocol": "tcp", "name": "http", "labels": {}},
                {"port": 0, "protocol": "udp", "labels": {}},
                {"port": 0, "protocol": "tcp", "labels": {}},
            ]
        },
    ),
    ("no-ports-asked", app(portDefinitions=[]), {}, {"portDefinitions": []}),
    (
        "deprecated-ports",
        app(ports=[0, 0, 9000]),
        {},
        {"portDefinitions": [{"port": p, "protocol": "tcp", "labels": {}} for p in (0, 0, 9000)]},
    ),
    (
        "ports-equal-to-definitions",
        app(ports=[80], portDefinitions=[{"port": 80}]),
        {},
        {"portDefinitions": [{"port": 80, "protocol": "tcp", "labels": {}}]},
    ),
    (
        "require-ports",
        app(requirePorts=True, portDefinitions=[{"port": 80}]),
        {},
        {"requirePorts": True},
    ),
    (
        "fetch",
        app(
            fetch=[
                {"uri": "http://x/a.tgz"},
                {"uri": "http://x/b", "executable": True, "destPath": "b"},
            ]
        ),
        {},
        {
            "fetch": [
                {"uri": "http://x/a.tgz", "extract": True, "executable": False, "cache": False},
                {
                    "uri": "http://x/b",
                    "extract": True,
                    "executable": True,
                    "cache": False,
                    "destPath": "b",
                },
            ]
        },
    ),
    (
        "deprecated-uris",
        app(uris=["http://x/a.tar.gz?x=1", "http://x/run.sh"]),
        {},
        {
            "fetch": [
                {
                    "uri": "http://x/a.tar.gz?x=1",
                    "extract": True,
                    "executable": False,
                    "cache": False,
                },
                {"uri": "http://x/run.sh", "extract": False, "executable": False, "cache": False},
            ]
        },
    ),
    ("accepted-roles", app(acceptedResourceRoles=["*", "*"]), {}, {"acceptedResourceRoles": ["*"]}),
    ("group-role", {"id": "/grp/web", "cmd": "x", "role": "grp"}, {}, {"role": "grp"}),
    ("enforced-role", {"id": "/grp/web", "cmd": "x"}, {"enforce_role": True}, {"role": "grp"}),
    ("base-role", app(role="legacy"), {"base": {**BASE, "role": "legacy"}}, {"role": "legacy"}),
    ("env-secret-shape", app(env={"A": "1"}), {}, {"env": {"A": "1"}}),
    # health checks
    (
        "health-http",
        app(healthChecks=[{"path": "/"}]),
        {},
        {"healthChecks": [dict(HTTP_CHECK, path="/")]},
    ),
    (
        "health-https-options",
        app(
            healthChecks=[
                {
                    "protocol": "HTTPS",
                    "path": "/h",
                    "portIndex": 0,
                    "gracePeriodSeconds": 10,
                    "intervalSeconds": 5,
                    "timeoutSeconds": 2,
                    "maxConsecutiveFailures": 0,
                    "ignoreHttp1xx": True,
                    "delaySeconds": 99,
                }
            ]
        ),
        {},
        {
            "healthChecks": [
                {
                    **HTTP_CHECK,
                    "protocol": "HTTPS",
                    "path": "/h",
                    "gracePeriodSeconds": 10,
                    "intervalSeconds": 5,
                    "timeoutSeconds": 2,
                    "maxConsecutiveFailures": 0,
                    "ignoreHttp1xx": True,
                }
            ]
        },
    ),
    (
        "health-tcp-port",
        app(healthChecks=[{"protocol": "TCP", "port": 8080}]),
        {},
        {
            "healthChecks": [
                {
                    "gracePeriodSeconds": 300,
                    "intervalSeconds": 60,
                    "maxConsecutiveFailures": 3,
                    "port": 8080,
                    "protocol": "TCP",
                    "ipProtocol": "IPv4",
                    "timeoutSeconds": 20,
                    "delaySeconds": 15,
                }
            ]
        },
    ),
    (
        "health-command",
        app(
            healthChecks=[{"protocol": "COMMAND", "command": {"value": "true"}, "delaySeconds": 5}]
        ),
        {},
        {
            "healthChecks": [
                {
                    "gracePeriodSeconds": 300,
                    "command": {"value": "true"},
                    "intervalSeconds": 60,
                    "maxConsecutiveFailures": 3,
                    "protocol": "COMMAND",
                    "ipProtocol": "IPv4",
                    "timeoutSeconds": 20,
                    "delaySeconds": 5,
                }
            ]
        },
    ),
    (
        "health-mesos-http",
        app(healthChecks=[{"protocol": "MESOS_HTTP", "path": "/", "delaySeconds": 1}]),
        {},
        {
            "healthChecks": [
                {
                    "gracePeriodSeconds": 300,
                    "intervalSeconds": 60,
                    "maxConsecutiveFailures": 3,
                    "path": "/",
                    "portIndex": 0,
                    "protocol": "MESOS_HTTP",
                    "ipProtocol": "IPv4",
                    "timeoutSeconds": 20,
                    "delaySeconds": 1,
                }
            ]
        },
    ),
    (
        "health-second-port",
        app(portDefinitions=[{}, {}], healthChecks=[{"protocol": "MESOS_TCP", "portIndex": 1}]),
        {},
        {"healthChecks": [{**TCP_CHECK, "protocol": "MESOS_TCP", "portIndex": 1}]},
    ),
    (
        "health-two-ports-index-defaulted",
        app(portDefinitions=[{}, {}], healthChecks=[{"protocol": "TCP"}, {"protocol": "TCP"}]),
        {},
        {"healthChecks": [TCP_CHECK]},
    ),
    (
        "readiness-defaults",
        app(portDefinitions=[{"name": "http-api"}], readinessChecks=[{}]),
        {},
        {
            "readinessChecks": [
                {
                    "name": "readinessCheck",
                    "protocol": "HTTP",
                    "path": "/",
                    "portName": "http-api",
                    "intervalSeconds": 30,
                    "timeoutSeconds": 10,
                    "httpStatusCodesForReady": [200],
                    "preserveLastResponse": False,
                }
            ]
        },
    ),
    (
        "readiness-given",
        app(
            portDefinitions=[{"name": "web"}],
            readinessChecks=[
                {
                    "name": "ready",
                    "protocol": "HTTPS",
                    "path": "/ready",
                    "portName": "web",
                    "intervalSeconds": 5,
                    "timeoutSeconds": 2,
                    "httpStatusCodesForReady": [200, 204, 200],
                    "preserveLastResponse": True,
                }
            ],
        ),
        {},
        {
            "readinessChecks": [
                {
                    "name": "ready",
                    "protocol": "HTTPS",
                    "path": "/ready",
                    "portName": "web",
                    "intervalSeconds": 5,
                    "timeoutSeconds": 2,
                    "httpStatusCodesForReady": [200, 204],
                    "preserveLastResponse": True,
                }
            ]
        },
    ),
    # containers and networks
    (
        "docker-host",
        app(container=docker()),
        {},
        {
            "container": {"type": "DOCKER", "docker": DOCKER_OUT, "volumes": []},
            "networks": [{"mode": "host"}],
            "portDefinitions": BASE["portDefinitions"],
        },
    ),
    (
        "docker-image-no-cmd",
        {"id": "/web", "container": docker()},
        {},
        {"container": {"type": "DOCKER", "docker": DOCKER_OUT, "volumes": []}},
    ),
    (
        "docker-host-drops-mappings",
        app(container=docker(portMappings=[{"containerPort": 80}])),
        {},
        {"container": {"type": "DOCKER", "docker": DOCKER_OUT, "volumes": []}},
    ),
    (
        "docker-bridge-deprecated",
        app(
            container={
                "type": "DOCKER",
                "docker": {
                    "image": "nginx",
                    "network": "BRIDGE",
                    "portMappings": [{"containerPort": 80, "name": "http"}],
                    "privileged": True,
                    "forcePullImage": True,
                    "parameters": [{"key": "label", "value": "a=b"}],
                },
            }
        ),
        {},
        {
            "container": {
                "type": "DOCKER",
                "docker": {
                    "forcePullImage": True,
                    "image": "nginx",
                    "parameters": [{"key": "label", "value": "a=b"}],
                    "privileged": True,
                },
                "volumes": [],
                "portMappings": [{**BRIDGE_MAPPING, "name": "http"}],
            },
            "networks": [{"mode": "container/bridge"}],
            "requirePorts": False,
        },
    ),
    (
        "docker-host-deprecated",
        app(container={"type": "DOCKER", "docker": {"image": "nginx", "network": "HOST"}}),
        {},
        {"networks": [{"mode": "host"}], "portDefinitions": BASE["portDefinitions"]},
    ),
    (
        "bridge-default-mapping",
        app(networks=[{"mode": "container/bridge"}], container=docker(), requirePorts=True),
        {},
        {
            "container": {
                "type": "DOCKER",
                "docker": DOCKER_OUT,
                "volumes": [],
                "portMappings": [{**BRIDGE_MAPPING, "containerPort": 0, "name": "default"}],
            },
            "requirePorts": False,
        },
    ),
    (
        "bridge-mapping-per-port-definition",
        app(
            networks=[{"mode": "container/bridge"}],
            portDefinitions=[{}, {}],
            container=docker(
                portMappings=[
                    {
                        "containerPort": 80,
                        "hostPort": 8080,
                        "servicePort": 10000,
                        "protocol": "udp,tcp",
                    }
                ]
            ),
        ),
        {},
        {
            "container": {
                "type": "DOCKER",
                "docker": DOCKER_OUT,
                "volumes": [],
                "portMappings": [
                    {
                        **BRIDGE_MAPPING,
                        "hostPort": 8080,
                        "servicePort": 10000,
                        "protocol": "udp,tcp",
                    },
                    {**BRIDGE_MAPPING, "containerPort": 0},
                ],
            },
        },
    ),
    (
        "bridge-no-mappings-asked",
        app(networks=[{"mode": "container/bridge"}], container=docker(portMappings=[])),
        {},
        {"container": {"type": "DOCKER", "docker": DOCKER_OUT, "volumes": [], "portMappings": []}},
    ),
    (
        "bridge-without-container",
        app(networks=[{"mode": "container/bridge"}]),
        {},
        {
            "container": {
                "type": "MESOS",
                "volumes": [],
                "portMappings": [{**BRIDGE_MAPPING, "containerPort": 0, "name": "default"}],
            }
        },
    ),
    (
        "container-network-keeps-no-host-port",
        app(
            networks=[{"mode": "container", "name": "dcos", "labels": {"a": "b"}}],
            container={"type": "MESOS", "portMappings": [{"containerPort": 80}]},
        ),
        {},
        {
            "networks": [{"mode": "container", "name": "dcos", "labels": {"a": "b"}}],
            "container": {
                "type": "MESOS",
                "volumes": [],
                "portMappings": [
                    {"containerPort": 80, "servicePort": 0, "protocol": "tcp", "labels": {}}
                ],
            },
        },
    ),
    (
        "mesos-image",
        app(
            container={
                "type": "MESOS",
                "docker": {"image": "alpine", "forcePullImage": True, "privileged": True},
            }
        ),
        {},
        {
            "container": {
                "type": "MESOS",
                "docker": {"image": "alpine", "forcePullImage": True},
                "volumes": [],
            }
        },
    ),
    (
        "mesos-no-image-no-cmd",
        {"id": "/a", "container": {"type": "MESOS"}},
        {},
        {"container": {"type": "MESOS", "volumes": []}},
    ),
    (
        "volumes",
        app(
            container=docker(volumes=[{"containerPath": "/data", "hostPath": "/srv", "mode": "RO"}])
        ),
        {},
        {
            "container": {
                "type": "DOCKER",
                "docker": DOCKER_OUT,
                "volumes": [{"containerPath": "/data", "hostPath": "/srv", "mode": "RO"}],
            }
        },
    ),
    (
        "ip-address",
        app(ipAddress={"networkName": "dcos", "labels": {"x": "y"}}),
        {},
        {
            "networks": [{"mode": "container", "name": "dcos", "labels": {"x": "y"}}],
            "container": {
                "type": "MESOS",
                "volumes": [],
                "portMappings": [
                    {
                        "containerPort": 0,
                        "servicePort": 0,
                        "protocol": "tcp",
                        "labels": {},
                        "name": "default",
                    }
                ],
            },
        },
    ),
    (
        "ip-address-discovery",
        app(
            ipAddress={
                "networkName": "dcos",
                "discovery": {"ports": [{"number": 80, "name": "http"}]},
            }
        ),
        {},
        {
            "container": {
                "type": "MESOS",
                "volumes": [],
                "portMappings": [
                    {
                        "containerPort": 80,
                        "servicePort": 0,
                        "protocol": "tcp",
                        "name": "http",
                        "labels": {},
                    }
                ],
            }
        },
    ),
    (
        "ip-address-mesos-bridge",
        app(ipAddress={"networkName": "mesos-bridge"}),
        {},
        {"networks": [{"mode": "container/bridge"}]},
    ),
    (
        "user-network-deprecated",
        app(
            ipAddress={"networkName": "dcos"},
            container={"type": "DOCKER", "docker": {"image": "nginx", "network": "USER"}},
        ),
        {},
        {"networks": [{"mode": "container", "name": "dcos"}]},
    ),
]


@pytest.mark.parametrize(
    ("body", "kwargs", "expected"), [v[1:] for v in VALID], ids=[v[0] for v in VALID]
)
def test_valid_definitions(
    body: dict[str, Any], kwargs: dict[str, Any], expected: dict[str, Any]
) -> None:
    got = apps.normalize(copy.deepcopy(body), **kwargs)
    for key, value in expected.items():
        assert got[key] == value, key
    assert {k for k in got if k not in BASE} <= {
        "args",
        "container",
        "acceptedResourceRoles",
        "user",
        "taskKillGracePeriodSeconds",
        "tty",
    }
    if not {"portDefinitions", "ports", "container", "networks", "ipAddress"} & set(body):
        assert got["portDefinitions"] == BASE["portDefinitions"]


@pytest.mark.parametrize(("body", "kwargs"), [v[1:3] for v in VALID], ids=[v[0] for v in VALID])
def test_normalized_form_is_a_fixed_point(body: dict[str, Any], kwargs: dict[str, Any]) -> None:
    once = apps.normalize(copy.deepcopy(body), **kwargs)
    kwargs = {k: v for k, v in kwargs.items() if k != "app_id"}
    assert apps.normalize(copy.deepcopy(once), **{**kwargs, "parent": "/"}) == once


def test_normalize_does_not_touch_its_input() -> None:
    body = app(
        container={
            "type": "DOCKER",
            "docker": {"image": "x", "network": "BRIDGE", "portMappings": [{"containerPort": 1}]},
        }
    )
    before = copy.deepcopy(body)
    apps.normalize(body)
    assert body == before


# ---------------------------------------------------------------------------------------
# the reader's errors: 422 "Invalid JSON" with play-json's codes

JSON_ERRORS: list[tuple[str, Any, dict[str, list[str]]]] = [
    ("not-an-object", [], {"/": ["error.expected.jsobject"]}),
    ("missing-id", {"cmd": "x"}, {"/id": ["error.path.missing"]}),
    ("id-not-string", {"id": 1, "cmd": "x"}, {"/id": ["error.expected.jsstring"]}),
    ("id-empty", {"id": "", "cmd": "x"}, {"/id": ["error.minLength"]}),
    ("id-uppercase", {"id": "/Web", "cmd": "x"}, {"/id": ["error.pattern"]}),
    ("id-underscore", {"id": "/my_app", "cmd": "x"}, {"/id": ["error.pattern"]}),
    ("id-leading-dash", {"id": "/-a", "cmd": "x"}, {"/id": ["error.pattern"]}),
    ("id-single-dot-segment", {"id": "./a", "cmd": "x"}, {"/id": ["error.pattern"]}),
    ("cmd-empty", app(cmd=""), {"/cmd": ["error.minLength"]}),
    ("cpus-zero", app(cpus=0), {"/cpus": ["error.min"]}),
    ("cpus-string", app(cpus="1"), {"/cpus": ["error.expected.jsnumber"]}),
    ("cpus-bool", app(cpus=True), {"/cpus": ["error.expected.jsnumber"]}),
    ("mem-negative", app(mem=-1), {"/mem": ["error.min"]}),
    ("disk-negative", app(disk=-0.5), {"/disk": ["error.min"]}),
    ("gpus-fraction", app(gpus=0.5), {"/gpus": ["error.expected.int"]}),
    ("instances-negative", app(instances=-1), {"/instances": ["error.min"]}),
    ("instances-fraction", app(instances=1.5), {"/instances": ["error.expected.int"]}),
    ("instances-huge", app(instances=2**40), {"/instances": ["error.expected.int"]}),
    ("backoff-factor-below-1", app(backoffFactor=0.5), {"/backoffFactor": ["error.min"]}),
    ("backoff-seconds-negative", app(backoffSeconds=-1), {"/backoffSeconds": ["error.min"]}),
    (
        "max-launch-delay-negative",
        app(maxLaunchDelaySeconds=-1),
        {"/maxLaunchDelaySeconds": ["error.min"]},
    ),
    (
        "require-ports-string",
        app(requirePorts="false"),
        {"/requirePorts": ["error.expected.jsboolean"]},
    ),
    (
        "kill-selection",
        app(killSelection="RANDOM"),
        {"/killSelection": ["error.unknown.enum.literal"]},
    ),
    ("executor-pattern", app(executor="a//b"), {"/executor": ["error.pattern"]}),
    ("args-not-array", app(args="a b"), {"/args": ["error.expected.jsarray"]}),
    ("args-item", {"id": "/a", "args": ["a", 1]}, {"/args(1)": ["error.expected.jsstring"]}),
    ("labels-value", app(labels={"a": 1}), {"/labels/a": ["error.expected.jsstring"]}),
    ("labels-not-object", app(labels=["a"]), {"/labels": ["error.expected.jsobject"]}),
    ("env-value", app(env={"A": 1}), {"/env/A": ["error.expected.jsstring"]}),
    ("constraints-not-array", app(constraints="x"), {"/constraints": ["error.expected.jsarray"]}),
    (
        "constraint-number",
        app(constraints=[["rack", "GROUP_BY", 2]]),
        {"/constraints(0)(2)": ["error.expected.jsstring"]},
    ),
    ("dependency-pattern", app(dependencies=["/DB"]), {"/dependencies(0)": ["error.pattern"]}),
    ("role-empty", app(role=""), {"/role": ["error.minLength"]}),
    (
        "upgrade-above-1",
        app(upgradeStrategy={"minimumHealthCapacity": 1.2}),
        {"/upgradeStrategy/minimumHealthCapacity": ["error.max"]},
    ),
    (
        "upgrade-negative",
        app(upgradeStrategy={"maximumOverCapacity": -0.1}),
        {"/upgradeStrategy/maximumOverCapacity": ["error.min"]},
    ),
    (
        "unreachable-string",
        app(unreachableStrategy="off"),
        {"/unreachableStrategy": ["error.unknown.enum.literal"]},
    ),
    (
        "unreachable-negative",
        app(unreachableStrategy={"expungeAfterSeconds": -1}),
        {"/unreachableStrategy/expungeAfterSeconds": ["error.min"]},
    ),
    (
        "port-definition-range",
        app(portDefinitions=[{"port": 70000}]),
        {"/portDefinitions(0)/port": ["error.max"]},
    ),
    (
        "port-definition-protocol",
        app(portDefinitions=[{"protocol": "sctp"}]),
        {"/portDefinitions(0)/protocol": ["error.unknown.enum.literal"]},
    ),
    (
        "port-definition-name",
        app(portDefinitions=[{"name": "HTTP"}]),
        {"/portDefinitions(0)/name": ["error.pattern"]},
    ),
    ("deprecated-port-range", app(ports=[-1]), {"/ports(0)": ["error.min"]}),
    (
        "container-type",
        app(container={"type": "RKT"}),
        {"/container/type": ["error.unknown.enum.literal"]},
    ),
    (
        "docker-image-missing",
        app(container={"type": "DOCKER", "docker": {}}),
        {"/container/docker/image": ["error.path.missing"]},
    ),
    (
        "docker-image-empty",
        app(container={"type": "DOCKER", "docker": {"image": ""}}),
        {"/container/docker/image": ["error.minLength"]},
    ),
    (
        "docker-network",
        app(container=docker(docker={"image": "x", "network": "OVERLAY"})),
        {"/container/docker/network": ["error.unknown.enum.literal"]},
    ),
    (
        "docker-parameter-key",
        app(container=docker(docker={"image": "x", "parameters": [{"value": "v"}]})),
        {"/container/docker/parameters(0)/key": ["error.path.missing"]},
    ),
    (
        "mapping-protocol",
        app(container=docker(portMappings=[{"protocol": "sctp"}])),
        {"/container/portMappings(0)/protocol": ["error.unknown.enum.literal"]},
    ),
    (
        "mapping-host-port",
        app(container=docker(portMappings=[{"hostPort": 65536}])),
        {"/container/portMappings(0)/hostPort": ["error.max"]},
    ),
    (
        "volume-mode-missing",
        app(container=docker(volumes=[{"containerPath": "/a", "hostPath": "/b"}])),
        {"/container/volumes(0)/mode": ["error.path.missing"]},
    ),
    (
        "volume-mode",
        app(container=docker(volumes=[{"containerPath": "/a", "hostPath": "/b", "mode": "rw"}])),
        {"/container/volumes(0)/mode": ["error.unknown.enum.literal"]},
    ),
    (
        "health-protocol",
        app(healthChecks=[{"protocol": "UDP"}]),
        {"/healthChecks(0)/protocol": ["error.unknown.enum.literal"]},
    ),
    (
        "health-port-index",
        app(healthChecks=[{"portIndex": 70000}]),
        {"/healthChecks(0)/portIndex": ["error.max"]},
    ),
    (
        "health-grace",
        app(healthChecks=[{"gracePeriodSeconds": -1}]),
        {"/healthChecks(0)/gracePeriodSeconds": ["error.min"]},
    ),
    (
        "health-command-value",
        app(healthChecks=[{"protocol": "COMMAND", "command": {}}]),
        {"/healthChecks(0)/command/value": ["error.path.missing"]},
    ),
    (
        "health-command-string",
        app(healthChecks=[{"protocol": "COMMAND", "command": "true"}]),
        {"/healthChecks(0)/command": ["error.expected.jsobject"]},
    ),
    (
        "health-ip-protocol",
        app(healthChecks=[{"ipProtocol": "IPv5"}]),
        {"/healthChecks(0)/ipProtocol": ["error.unknown.enum.literal"]},
    ),
    (
        "readiness-codes-empty",
        app(readinessChecks=[{"httpStatusCodesForReady": []}]),
        {"/readinessChecks(0)/httpStatusCodesForReady": ["error.minLength"]},
    ),
    (
        "readiness-code-range",
        app(readinessChecks=[{"httpStatusCodesForReady": [99]}]),
        {"/readinessChecks(0)/httpStatusCodesForReady(0)": ["error.min"]},
    ),
    (
        "readiness-timeout-zero",
        app(readinessChecks=[{"timeoutSeconds": 0}]),
        {"/readinessChecks(0)/timeoutSeconds": ["error.min"]},
    ),
    (
        "readiness-protocol",
        app(readinessChecks=[{"protocol": "TCP"}]),
        {"/readinessChecks(0)/protocol": ["error.unknown.enum.literal"]},
    ),
    (
        "network-mode",
        app(networks=[{"mode": "bridge"}]),
        {"/networks(0)/mode": ["error.unknown.enum.literal"]},
    ),
    ("network-name", app(networks=[{"name": "Net"}]), {"/networks(0)/name": ["error.pattern"]}),
    (
        "fetch-uri-missing",
        app(fetch=[{"extract": True}]),
        {"/fetch(0)/uri": ["error.path.missing"]},
    ),
    ("uris-item", app(uris=[""]), {"/uris(0)": ["error.minLength"]}),
    ("secrets-not-object", app(secrets=[]), {"/secrets": ["error.expected.jsobject"]}),
    (
        "several-at-once",
        {"id": "/a", "cpus": 0, "mem": "x", "instances": -2},
        {"/cpus": ["error.min"], "/instances": ["error.min"], "/mem": ["error.expected.jsnumber"]},
    ),
]


@pytest.mark.parametrize(
    ("body", "details"), [e[1:] for e in JSON_ERRORS], ids=[e[0] for e in JSON_ERRORS]
)
def test_reader_errors(body: Any, details: dict[str, list[str]]) -> None:
    with pytest.raises(AppError) as err:
        apps.normalize(body)
    assert err.value.status == 422
    assert err.value.body() == {
        "message": "Invalid JSON",
        "details": [{"path": p, "errors": e} for p, e in details.items()],
    }


# ---------------------------------------------------------------------------------------
# the rules' errors: 422 "Object is not valid" with Marathon's messages

CMD = "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."
PORT_INDEX = "Health check port indices must address an element of the ports array or container port mappings."
ID_PATTERN = (
    "must fully match regular expression "
    "'^(([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])\\.)*([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])|(\\.|\\.\\.)$'"
)
RESERVED = (
    "must not end with any of the following reserved keywords: restart, tasks, versions, ., .."
)
OPERATOR = (
    "operator must be one of the following UNIQUE, CLUSTER, GROUP_BY, LIKE, MAX_PER, UNLIKE or IS"
)
IS_VALUE = (
    "IS only supports Mesos text and float values "
    "(see http://mesos.apache.org/documentation/latest/attributes-resources/)"
)
NETWORK_MIX = (
    "May specify a single host network, single bridge network, or else 1-to-n container networks"
)
NO_NETWORK_NAME = "Network name must be specified when container network is selected."
IPV6 = "IPv6 can only be used for container type DOCKER and Mesos http/https/tcp health checks"
BRIDGE = {"mode": "container/bridge"}

RULE_ERRORS: list[tuple[str, Any, dict[str, Any], dict[str, list[str]]]] = [
    # (id, body, normalize() keyword arguments, details)
    ("no-command", {"id": "/a"}, {}, {"/": [CMD]}),
    ("cmd-and-args", app(args=["x"]), {}, {"/": [CMD]}),
    ("cmd-and-args-with-container", app(args=["x"], container=docker()), {}, {"/": [CMD]}),
    (
        "docker-without-docker",
        app(container={"type": "DOCKER"}),
        {},
        {"/container/docker": ["not defined"]},
    ),
    (
        "id-root",
        {"id": "/", "cmd": "x"},
        {},
        {"/id": ["Path must contain at least one path element"], "/": ["must not be root"]},
    ),
    (
        "id-dotdot-to-root",
        {"id": "/a/..", "cmd": "x"},
        {},
        {"/id": ["Path must contain at least one path element"], "/": ["must not be root"]},
    ),
    ("id-reserved-restart", {"id": "/a/restart", "cmd": "x"}, {}, {"/id": [RESERVED]}),
    ("id-reserved-tasks", {"id": "tasks", "cmd": "x"}, {}, {"/id": [RESERVED]}),
    ("url-id-uppercase", app(), {"app_id": "/Web"}, {}),  # the reader's: see below
    (
        "dependency-reserved",
        app(dependencies=["/db/versions"]),
        {},
        {"/dependencies(0)": [RESERVED]},
    ),
    (
        "ports-clash",
        app(portDefinitions=[{"port": 80}, {"port": 80}]),
        {},
        {"/portDefinitions": ["Ports must be unique."]},
    ),
    (
        "port-names-clash",
        app(portDefinitions=[{"name": "a"}, {"name": "a"}]),
        {},
        {"/portDefinitions": ["Port names must be unique."]},
    ),
    ("deprecated-ports-clash", app(ports=[80, 0, 80]), {}, {"/": ["ports must be unique"]}),
    (
        "ports-and-definitions",
        app(ports=[80], portDefinitions=[{"port": 81}]),
        {},
        {"/": ["cannot specify both ports and port definitions"]},
    ),
    (
        "uris-and-fetch",
        app(uris=["http://a"], fetch=[{"uri": "http://b"}]),
        {},
        {"/uris": ["may not be set in conjunction with fetch"]},
    ),
    (
        "docker-network-and-networks",
        app(networks=[BRIDGE], container=docker(docker={"image": "x", "network": "BRIDGE"})),
        {},
        {"/": ["must not specify both container.docker.network and networks"]},
    ),
    (
        "docker-network-none",
        app(container=docker(docker={"image": "x", "network": "NONE"})),
        {},
        {"/": ["unsupported docker network type NONE"]},
    ),
    (
        "ip-address-and-networks",
        app(ipAddress={}, networks=[BRIDGE]),
        {},
        {"/": ["must not specify both networks and ipAddress"]},
    ),
    (
        "ip-address-and-ports",
        app(ipAddress={}, portDefinitions=[{}]),
        {},
        {"/": ["cannot specify both an IP address and port"]},
    ),
    (
        "ip-discovery-on-docker",
        app(ipAddress={"networkName": "n", "discovery": {"ports": []}}, container=docker()),
        {},
        {"/ipAddress": ["ipAddress/discovery is not allowed for Docker containers"]},
    ),
    (
        "both-port-mapping-places",
        app(
            networks=[BRIDGE],
            container=docker(docker={"image": "x", "portMappings": [{}]}, portMappings=[{}]),
        ),
        {},
        {"/": ["cannot specify both portMappings and docker.portMappings"]},
    ),
    (
        "mesos-docker-parameters",
        app(
            container={
                "type": "MESOS",
                "docker": {
                    "image": "x",
                    "parameters": [{"key": "a", "value": "b"}],
                    "portMappings": [{}],
                },
            }
        ),
        {},
        {
            "/container/docker/parameters": ["must be empty"],
            "/container/docker/portMappings": ["must be empty"],
        },
    ),
    (
        "mesos-docker-network",
        app(container={"type": "MESOS", "docker": {"image": "x", "network": "HOST"}}),
        {},
        {"/container/docker/network": ["must be empty"]},
    ),
    (
        "docker-credential",
        app(container=docker(docker={"image": "x", "credential": {"principal": "p"}})),
        {},
        {"/container/docker/credential": ["must be empty"]},
    ),
    (
        "docker-pull-config",
        app(container=docker(docker={"image": "x", "pullConfig": {"secret": "s"}})),
        {},
        {"/container/docker/pullConfig": ["pullConfig is not supported with Docker containerizer"]},
    ),
    (
        "mesos-pull-config",
        app(container={"type": "MESOS", "docker": {"image": "x", "pullConfig": {"secret": "s"}}}),
        {},
        {
            "/container/docker/pullConfig": [
                "Feature secrets is not enabled. Enable with --enable_features secrets)"
            ]
        },
    ),
    (
        "mapping-names-clash",
        app(networks=[BRIDGE], container=docker(portMappings=[{"name": "a"}, {"name": "a"}])),
        {},
        {"/container/portMappings": ["Port names must be unique."]},
    ),
    (
        "mapping-network-name",
        app(
            networks=[{"mode": "container", "name": "a"}],
            container=docker(portMappings=[{"networkNames": ["b"]}]),
        ),
        {},
        {"/container/portMappings(0)/networkNames(0)": ["is not one of (a)"]},
    ),
    (
        "two-container-networks",
        app(
            networks=[{"mode": "container", "name": "a"}, {"mode": "container", "name": "b"}],
            container=docker(portMappings=[{"hostPort": 0}]),
        ),
        {},
        {
            "/container/portMappings(0)": [
                "networkNames must be a single item list when hostPort is specified "
                "and more than 1 container network is defined"
            ],
            "/": [
                "may only specify a single container network when using the Docker container engine"
            ],
        },
    ),
    (
        "persistent-volume",
        app(container=docker(volumes=[{"containerPath": "d", "persistent": {"size": 1}}])),
        {},
        {
            "/container/volumes(0)": [
                "persistent volumes (resident apps) are not supported by Corral"
            ]
        },
    ),
    (
        "external-volume",
        app(container=docker(volumes=[{"containerPath": "d", "external": {"name": "v"}}])),
        {},
        {
            "/container/volumes(0)": [
                "Feature external_volumes is not enabled. Enable with --enable_features external_volumes)"
            ]
        },
    ),
    (
        "secret-volume",
        app(container=docker(volumes=[{"containerPath": "d", "secret": "s"}])),
        {},
        {
            "/container/volumes(0)": [
                "Feature secrets is not enabled. Enable with --enable_features secrets)"
            ]
        },
    ),
    (
        "container-network-unnamed",
        app(networks=[{"mode": "container"}]),
        {},
        {"/networks": [NO_NETWORK_NAME]},
    ),
    (
        "host-network-named",
        app(networks=[{"mode": "host", "name": "x"}]),
        {},
        {"/networks": ["Host networks may not have names or labels"]},
    ),
    (
        "bridge-named",
        app(networks=[{"mode": "container/bridge", "name": "x"}]),
        {},
        {"/networks": ["Bridge networks may not have names"]},
    ),
    (
        "two-hosts",
        app(networks=[{"mode": "host"}, {"mode": "host"}]),
        {},
        {"/networks": [NETWORK_MIX]},
    ),
    ("host-and-bridge", app(networks=[{"mode": "host"}, BRIDGE]), {}, {"/networks": [NETWORK_MIX]}),
    (
        "duplicate-networks",
        app(networks=[{"mode": "container", "name": "a"}] * 2),
        {},
        {"/networks": ["Duplicate networks are not allowed"]},
    ),
    (
        "constraint-one-field",
        app(constraints=[["hostname"]]),
        {},
        {"/constraints(0)": ["Each constraint must have either 2 or 3 fields"]},
    ),
    (
        "constraint-four-fields",
        app(constraints=[["a", "CLUSTER", "b", "c"]]),
        {},
        {"/constraints(0)": ["Each constraint must have either 2 or 3 fields"]},
    ),
    (
        "constraint-empty-field",
        app(constraints=[["", "UNIQUE"]]),
        {},
        {"/constraints(0)": ["illegal constraint specification"]},
    ),
    (
        "constraint-operator",
        app(constraints=[["hostname", "EQUALS", "a"]]),
        {},
        {"/constraints(0)": [OPERATOR]},
    ),
    (
        "unique-with-value",
        app(constraints=[["hostname", "UNIQUE", "x"]]),
        {},
        {"/constraints(0)": ["UNIQUE does not accept a value"]},
    ),
    (
        "group-by-text",
        app(constraints=[["rack", "GROUP_BY", "two"]]),
        {},
        {"/constraints(0)": ["GROUP BY must define an integer value or else no value at all"]},
    ),
    (
        "max-per-missing",
        app(constraints=[["rack", "MAX_PER"]]),
        {},
        {"/constraints(0)": ["MAX_PER requires an integer value"]},
    ),
    (
        "max-per-text",
        app(constraints=[["rack", "MAX_PER", "1.5"]]),
        {},
        {"/constraints(0)": ["MAX_PER requires an integer value"]},
    ),
    (
        "like-missing",
        app(constraints=[["rack", "LIKE"]]),
        {},
        {"/constraints(0)": ["LIKE and UNLIKE require a non-empty, regular expression value"]},
    ),
    (
        "unlike-bad-regex",
        app(constraints=[["rack", "UNLIKE", "a("]]),
        {},
        {"/constraints(0)": ["is not a valid regular expression"]},
    ),
    ("is-range", app(constraints=[["cpus", "IS", "[1-2]"]]), {}, {"/constraints(0)": [IS_VALUE]}),
    (
        "constraint-paths",
        app(constraints=[["a", "UNIQUE"], ["b", "LIKE"]]),
        {},
        {"/constraints(1)": ["LIKE and UNLIKE require a non-empty, regular expression value"]},
    ),
    (
        "health-index-out-of-range",
        app(healthChecks=[{"portIndex": 1}]),
        {},
        {"/healthChecks(0)": [PORT_INDEX]},
    ),
    (
        "health-no-ports",
        app(portDefinitions=[], healthChecks=[{"protocol": "TCP"}]),
        {},
        {"/healthChecks(0)": [PORT_INDEX]},
    ),
    (
        "health-two-ports-deprecated",
        app(ports=[0, 0], healthChecks=[{"protocol": "TCP"}]),
        {},
        {"/healthChecks(0)": [PORT_INDEX]},
    ),
    (
        "health-command-missing",
        app(healthChecks=[{"protocol": "COMMAND"}]),
        {},
        {"/healthChecks(0)": ["illegal protocol COMMAND for non-command health check"]},
    ),
    (
        "health-command-with-http",
        app(healthChecks=[{"command": {"value": "true"}}]),
        {},
        {"/healthChecks(0)": ["illegal protocol HTTP specified with command"]},
    ),
    (
        "health-ipv6-marathon",
        app(healthChecks=[{"ipProtocol": "IPv6"}]),
        {},
        {"/healthChecks(0)": [IPV6]},
    ),
    (
        "health-ipv6-mesos-no-docker",
        app(healthChecks=[{"protocol": "MESOS_HTTP", "ipProtocol": "IPv6"}]),
        {},
        {"/healthChecks(0)": [IPV6]},
    ),
    (
        "two-mesos-checks",
        app(healthChecks=[{"protocol": "MESOS_HTTP"}, {"protocol": "MESOS_TCP"}]),
        {},
        {"/": ["AppDefinition can contain at most one Mesos health check"]},
    ),
    (
        "readiness-port-name",
        app(readinessChecks=[{"portName": "web"}]),
        {},
        {"/readinessChecks(0)/portName": ["No port definition reference for portName web"]},
    ),
    (
        "readiness-timeout",
        app(portDefinitions=[{"name": "http-api"}], readinessChecks=[{"timeoutSeconds": 30}]),
        {},
        {"/readinessChecks(0)/timeoutSeconds": ["got 30, expected less than 30"]},
    ),
    (
        "two-readiness-checks",
        app(portDefinitions=[{"name": "http-api"}], readinessChecks=[{}, {"name": "b"}]),
        {},
        {"/readinessChecks": ["got 2, expected 1 or less"]},
    ),
    (
        "readiness-on-bridge-uses-mappings",
        app(
            networks=[BRIDGE],
            container=docker(portMappings=[{"name": "web"}]),
            readinessChecks=[{}],
        ),
        {},
        {"/readinessChecks(0)/portName": ["No port definition reference for portName http-api"]},
    ),
    (
        "gpus",
        app(gpus=1),
        {},
        {
            "/": [
                "Feature gpu_resources is not enabled. Enable with --enable_features gpu_resources)"
            ]
        },
    ),
    (
        "gpus-on-docker",
        app(gpus=1, container=docker()),
        {},
        {
            "/": [
                "GPU resources only work with the Mesos containerizer",
                "Feature gpu_resources is not enabled. Enable with --enable_features gpu_resources)",
            ]
        },
    ),
    (
        "secrets",
        app(secrets={"s": {"source": "x"}}),
        {},
        {"/secrets": ["Feature secrets is not enabled. Enable with --enable_features secrets)"]},
    ),
    (
        "env-secret",
        app(env={"A": {"secret": "s"}}),
        {},
        {
            "/env": [
                "use of secret-references in the environment requires the secrets feature to be enabled"
            ]
        },
    ),
    ("env-empty-name", app(env={"": "x"}), {}, {"/env": ["must not be empty"]}),
    ("role-unknown", app(role="other"), {}, {"/role": ["got other, expected one of: [*]"]}),
    (
        "role-in-group",
        {"id": "/grp/web", "cmd": "x", "role": "other"},
        {},
        {"/role": ["got other, expected one of: [*, grp]"]},
    ),
    (
        "role-enforced",
        {"id": "/grp/web", "cmd": "x", "role": "*"},
        {"enforce_role": True},
        {"/role": ["got *, expected one of: [grp]"]},
    ),
    (
        "accepted-roles-empty",
        app(acceptedResourceRoles=[]),
        {},
        {"/acceptedResourceRoles": ["must not be empty"]},
    ),
    (
        "accepted-roles-other",
        app(acceptedResourceRoles=["public"]),
        {},
        {"/acceptedResourceRoles": ["acceptedResourceRoles can only contain *"]},
    ),
    (
        "accepted-roles-names",
        {"id": "/grp/web", "cmd": "x", "role": "grp", "acceptedResourceRoles": ["a b", "-x"]},
        {},
        {
            "/acceptedResourceRoles(0)": [
                "A role name must not include a space (\\x20) character."
            ],
            "/acceptedResourceRoles(1)": ["A role name must not start with a '-'."],
            "/acceptedResourceRoles": ["acceptedResourceRoles can only contain * and grp"],
        },
    ),
    (
        "unreachable-order",
        app(unreachableStrategy={"inactiveAfterSeconds": 60, "expungeAfterSeconds": 30}),
        {},
        {
            "/unreachableStrategy/inactiveAfterSeconds": [
                "inactiveAfterSeconds (60) must be less or equal to expungeAfterSeconds, which is 30"
            ]
        },
    ),
    (
        "single-instance-label",
        app(labels={"MARATHON_SINGLE_INSTANCE_APP": "true"}, instances=2),
        {},
        {
            "/": ["Single instance app may only have one instance"],
            "/upgradeStrategy/minimumHealthCapacity": ["got 1.0, expected 0.0"],
            "/upgradeStrategy/maximumOverCapacity": ["got 1.0, expected 0.0"],
        },
    ),
    (
        "migration-labels",
        app(labels={"DCOS_MIGRATION_API_VERSION": "v1"}),
        {},
        {
            "/": [
                "DCOS_PACKAGE_FRAMEWORK_NAME and DCOS_MIGRATION_API_PATH must be defined when using DCOS_MIGRATION_API_VERSION"
            ]
        },
    ),
    (
        "several-rules",
        {"id": "/a/tasks", "portDefinitions": [{"port": 1}, {"port": 1}]},
        {},
        {"/id": [RESERVED], "/portDefinitions": ["Ports must be unique."], "/": [CMD]},
    ),
]


@pytest.mark.parametrize(
    ("body", "kwargs", "details"),
    [e[1:] for e in RULE_ERRORS if e[3]],
    ids=[e[0] for e in RULE_ERRORS if e[3]],
)
def test_rule_errors(body: Any, kwargs: dict[str, Any], details: dict[str, list[str]]) -> None:
    with pytest.raises(AppError) as err:
        apps.normalize(body, **kwargs)
    assert err.value.body() == {
        "message": "Object is not valid",
        "details": [{"path": p, "errors": e} for p, e in details.items()],
    }


def test_url_id_is_read_like_a_body_id() -> None:
    with pytest.raises(AppError) as err:
        apps.normalize(app(), app_id="/Web")
    assert err.value.body() == {
        "message": "Invalid JSON",
        "details": [{"path": "/id", "errors": ["error.pattern"]}],
    }


def test_id_pattern_message_for_a_stored_id() -> None:
    assert apps.path_errors("/a b") == [ID_PATTERN]
    assert apps.path_errors("/a/versions") == [RESERVED]
    assert apps.path_errors("/a.b/c-d") == []


def test_app_error_prefixed_and_text() -> None:
    err = AppError([{"path": "/", "errors": ["x"]}, {"path": "/cpus", "errors": ["y"]}])
    assert err.prefixed("/apps(0)").details == [
        {"path": "/apps(0)", "errors": ["x"]},
        {"path": "/apps(0)/cpus", "errors": ["y"]},
    ]
    assert str(err) == "Object is not valid: /: x; /cpus: y"
    assert isinstance(err, ValueError)


# ---------------------------------------------------------------------------------------
# ids

IDS = [
    ("a", "/", "/a"),
    ("/a", "/x", "/a"),
    ("a/b", "/x", "/x/a/b"),
    ("../b", "/x/y", "/x/b"),
    ("../../../b", "/x", "/b"),
    ("./a/./b", "/", "/a/b"),
    ("//a///b//", "/", "/a/b"),
    ("", "/x", "/x"),
    ("..", "/", "/"),
]


@pytest.mark.parametrize(
    ("path", "base", "expected"), IDS, ids=[f"{p or 'empty'}@{b}" for p, b, _ in IDS]
)
def test_canonical_id(path: str, base: str, expected: str) -> None:
    assert apps.canonical_id(path, base) == expected


@pytest.mark.parametrize(
    ("path", "parent"),
    [("/a", "/"), ("/a/b", "/a"), ("/a/b/c", "/a/b")],
    ids=["top", "nested", "deep"],
)
def test_parent_id(path: str, parent: str) -> None:
    assert apps.parent_id(path) == parent


# ---------------------------------------------------------------------------------------
# partial updates (PUT, PATCH): the fields given replace the stored ones whole


def stored(**fields: Any) -> dict[str, Any]:
    body = app(env={"A": "1", "B": "2"}, labels={"x": "y"}, instances=2, **fields)
    return apps.with_version(None, apps.normalize(body), now=NOW)


PARTIAL: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    # (id, stored fields, update body, expected fields of the result)
    (
        "scale",
        {},
        {"instances": 5},
        {"instances": 5, "cmd": "sleep 1", "env": {"A": "1", "B": "2"}},
    ),
    ("cmd", {}, {"cmd": "sleep 2"}, {"cmd": "sleep 2", "instances": 2, "labels": {"x": "y"}}),
    ("env-replaced-whole", {}, {"env": {"C": "3"}}, {"env": {"C": "3"}, "labels": {"x": "y"}}),
    ("body-id-ignored", {}, {"id": "/elsewhere", "mem": 64}, {"id": "/web", "mem": 64.0}),
    ("nulls-keep", {}, {"cmd": None, "cpus": 2}, {"cmd": "sleep 1", "cpus": 2.0}),
    (
        "to-bridge",
        {},
        {"container": {"type": "DOCKER", "docker": {"image": "nginx", "network": "BRIDGE"}}},
        {
            "networks": [BRIDGE],
            "container": {
                "type": "DOCKER",
                "docker": DOCKER_OUT,
                "volumes": [],
                "portMappings": [{**BRIDGE_MAPPING, "containerPort": 0, "name": "default"}],
            },
        },
    ),
    (
        "back-to-host",
        {"networks": [BRIDGE], "container": docker(portMappings=[{"containerPort": 80}])},
        {"networks": [{"mode": "host"}]},
        {
            "networks": [{"mode": "host"}],
            "container": {"type": "DOCKER", "docker": DOCKER_OUT, "volumes": []},
        },
    ),
    (
        "uris-replace-fetch",
        {"fetch": [{"uri": "http://a"}]},
        {"uris": ["http://b.zip"]},
        {"fetch": [{"uri": "http://b.zip", "extract": True, "executable": False, "cache": False}]},
    ),
    (
        "ports-replace-definitions",
        {},
        {"ports": [0, 0]},
        {"portDefinitions": [{"port": 0, "protocol": "tcp", "labels": {}}] * 2},
    ),
    (
        "health-check-added",
        {},
        {"healthChecks": [{"protocol": "TCP"}]},
        {"healthChecks": [TCP_CHECK]},
    ),
    ("stored-role-kept", {"role": "*"}, {"labels": {}}, {"role": "*", "labels": {}}),
]


@pytest.mark.parametrize(
    ("fields", "update", "expected"), [p[1:] for p in PARTIAL], ids=[p[0] for p in PARTIAL]
)
def test_partial_update(
    fields: dict[str, Any], update: dict[str, Any], expected: dict[str, Any]
) -> None:
    base = stored(**fields)
    got = apps.normalize(update, app_id="/web", partial=True, base=base)
    for key, value in expected.items():
        assert got[key] == value, key
    untouched = {
        k
        for k in base
        if k not in expected and k not in update and k not in ("version", "versionInfo")
    }
    if "container" not in update and "networks" not in update and "ports" not in update:
        assert {k: got[k] for k in untouched} == {k: base[k] for k in untouched}
    assert "version" not in got and "versionInfo" not in got


def test_partial_update_with_what_the_client_posts_back_changes_nothing() -> None:
    base = stored(
        container=docker(volumes=[{"containerPath": "/d", "hostPath": "/s", "mode": "RW"}]),
        healthChecks=[{"path": "/"}],
        constraints=[["hostname", "UNIQUE"]],
    )
    shown = apps.to_client(base, embed={"counts", "deployments", "tasks"}, deployments=["d1"])
    client_app = MarathonApp.from_json(shown)
    client_app.version = None  # what MarathonClient.update_app does
    import json

    body = json.loads(client_app.to_json(minimal=True))
    got = apps.normalize(body, app_id="/web", partial=True, base=base)
    assert got == {k: v for k, v in base.items() if k not in ("version", "versionInfo")}


PARTIAL_ERRORS: list[tuple[str, dict[str, Any], str, dict[str, list[str]]]] = [
    ("reader", {"cpus": 0}, "Invalid JSON", {"/cpus": ["error.min"]}),
    ("args-beside-cmd", {"args": ["x"]}, "Object is not valid", {"/": [CMD]}),
    (
        "old-api",
        {"uris": ["http://a"], "fetch": [{"uri": "http://b"}]},
        "Object is not valid",
        {"/uris": ["may not be set in conjunction with fetch"]},
    ),
    (
        "version-and-more",
        {"version": NOW, "cmd": "x"},
        "Object is not valid",
        {"/": ["The 'version' field may only be combined with the 'id' field."]},
    ),
]


@pytest.mark.parametrize(
    ("update", "message", "details"),
    [p[1:] for p in PARTIAL_ERRORS],
    ids=[p[0] for p in PARTIAL_ERRORS],
)
def test_partial_update_errors(
    update: dict[str, Any], message: str, details: dict[str, list[str]]
) -> None:
    with pytest.raises(AppError) as err:
        apps.normalize(update, app_id="/web", partial=True, base=stored())
    assert err.value.body() == {
        "message": message,
        "details": [{"path": p, "errors": e} for p, e in details.items()],
    }


def test_partial_without_a_stored_app_is_a_create() -> None:
    assert apps.normalize({"cmd": "sleep 1"}, app_id="web", partial=True) == BASE


def test_full_replacement_resets_to_defaults() -> None:
    got = apps.normalize({"cmd": "sleep 9"}, app_id="/web", base=stored(role="*"))
    assert got == {**BASE, "cmd": "sleep 9"}


def test_a_rollback_body_is_not_an_update() -> None:
    with pytest.raises(ValueError, match="rollback"):
        apps.normalize({"version": NOW}, app_id="/web", partial=True, base=stored())


ROLLBACKS: list[tuple[str, Any, str | None]] = [
    ("version", {"version": NOW}, NOW),
    ("version-and-id", {"id": "/web", "version": NOW}, NOW),
    ("version-and-nulls", {"version": NOW, "cmd": None}, NOW),
    ("no-version", {"cmd": "x"}, None),
    ("not-an-object", [], None),
]


@pytest.mark.parametrize(
    ("body", "expected"), [r[1:] for r in ROLLBACKS], ids=[r[0] for r in ROLLBACKS]
)
def test_rollback_version(body: Any, expected: str | None) -> None:
    assert apps.rollback_version(body) == expected


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {"version": NOW, "instances": 2},
            {
                "message": "Object is not valid",
                "details": [
                    {
                        "path": "/",
                        "errors": ["The 'version' field may only be combined with the 'id' field."],
                    }
                ],
            },
        ),
        (
            {"version": 1},
            {
                "message": "Invalid JSON",
                "details": [{"path": "/version", "errors": ["error.expected.jsstring"]}],
            },
        ),
    ],
    ids=["with-other-fields", "not-a-string"],
)
def test_rollback_version_errors(body: Any, error: dict[str, Any]) -> None:
    with pytest.raises(AppError) as err:
        apps.rollback_version(body)
    assert err.value.body() == error


# ---------------------------------------------------------------------------------------
# versions

CHANGES: list[tuple[str, dict[str, Any], bool]] = [
    ("same", {}, False),
    ("instances", {"instances": 9}, False),
    ("version-only", {"version": LATER, "versionInfo": {}}, False),
    ("cmd", {"cmd": "other"}, True),
    ("env", {"env": {"A": "2"}}, True),
    ("labels", {"labels": {"a": "b"}}, True),
    (
        "upgrade-strategy",
        {"upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 1.0}},
        True,
    ),
    ("constraints-order", {"constraints": [["b", "UNIQUE"], ["a", "UNIQUE"]]}, False),
    ("constraints-changed", {"constraints": [["a", "UNIQUE"]]}, True),
]


@pytest.mark.parametrize(
    ("change", "changed"), [c[1:] for c in CHANGES], ids=[c[0] for c in CHANGES]
)
def test_config_changed(change: dict[str, Any], changed: bool) -> None:
    old = {**BASE, "constraints": [["a", "UNIQUE"], ["b", "UNIQUE"]], "version": NOW}
    assert apps.config_changed(old, {**old, **change}) is changed


def test_version_of_a_new_app() -> None:
    got = apps.with_version(None, BASE, now=NOW)
    assert got == {
        **BASE,
        "version": NOW,
        "versionInfo": {"lastScalingAt": NOW, "lastConfigChangeAt": NOW},
    }
    assert apps.version_of(got) == NOW


VERSIONS: list[tuple[str, dict[str, Any], bool, dict[str, str]]] = [
    # (id, change, restart, expected version/lastScalingAt/lastConfigChangeAt)
    (
        "config-change",
        {"cmd": "x"},
        False,
        {"version": LATER, "lastScalingAt": LATER, "lastConfigChangeAt": LATER},
    ),
    (
        "scale",
        {"instances": 3},
        False,
        {"version": LATER, "lastScalingAt": LATER, "lastConfigChangeAt": NOW},
    ),
    ("restart", {}, True, {"version": LATER, "lastScalingAt": NOW, "lastConfigChangeAt": LATER}),
    (
        "scale-and-restart",
        {"instances": 3},
        True,
        {"version": LATER, "lastScalingAt": LATER, "lastConfigChangeAt": NOW},
    ),
    ("no-change", {}, False, {"version": NOW, "lastScalingAt": NOW, "lastConfigChangeAt": NOW}),
]


@pytest.mark.parametrize(
    ("change", "restart", "expected"), [v[1:] for v in VERSIONS], ids=[v[0] for v in VERSIONS]
)
def test_with_version(change: dict[str, Any], restart: bool, expected: dict[str, str]) -> None:
    old = apps.with_version(None, BASE, now=NOW)
    new = apps.with_version(old, {**BASE, **change}, now=LATER, restart=restart)
    assert new["version"] == expected["version"]
    assert new["versionInfo"] == {
        "lastScalingAt": expected["lastScalingAt"],
        "lastConfigChangeAt": expected["lastConfigChangeAt"],
    }
    assert {k: v for k, v in new.items() if k not in ("version", "versionInfo")} == {
        **BASE,
        **change,
    }


TIMES: list[tuple[str, Any, str]] = [
    (
        "datetime",
        dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC),
        "2026-01-02T03:04:05.678Z",
    ),
    ("naive-is-utc", dt.datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05.000Z"),
    (
        "other-zone",
        dt.datetime(2026, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        "2026-01-02T03:04:05.000Z",
    ),
    ("epoch", 1_767_225_600.25, "2026-01-01T00:00:00.250Z"),
    ("iso-z", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00.000Z"),
    ("iso-micro", "2026-01-01T00:00:00.123456+00:00", "2026-01-01T00:00:00.123Z"),
]


@pytest.mark.parametrize(("when", "expected"), [t[1:] for t in TIMES], ids=[t[0] for t in TIMES])
def test_timestamp(when: Any, expected: str) -> None:
    assert apps.timestamp(when) == expected
    assert dt.datetime.strptime(expected, MarathonTask.DATETIME_FORMAT)


# ---------------------------------------------------------------------------------------
# the client's view, through marathon 0.13.0's own models

TASK = {
    "id": "web.instance-1._app.1",
    "appId": "/web",
    "host": "agent-1",
    "ports": [31000],
    "servicePorts": [10000],
    "slaveId": "S1",
    "agentId": "S1",
    "stagedAt": 1_767_225_600.0,
    "startedAt": "2026-01-01T00:00:01Z",
    "version": NOW,
    "state": "TASK_RUNNING",
    "ipAddresses": [{"ipAddress": "10.0.0.5", "protocol": "IPv4", "extra": 1}],
    "healthCheckResults": [
        {
            "alive": True,
            "consecutiveFailures": 0,
            "firstSuccess": "2026-01-01T00:00:02.5Z",
            "lastSuccess": dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC),
            "lastFailure": None,
            "instanceId": "web.instance-1",
            "checkResult": {},
        }
    ],
    "checkResult": {"http": {"statusCode": 200}},
    "localVolumes": [],
    "role": "*",
}


def test_client_refuses_keys_outside_the_whitelist() -> None:
    """What makes the whitelist necessary: 0.13.0's models take no unknown keys."""
    for bad in (
        {"id": "/a", "tty": True},
        {"id": "/a", "tasksStats": {}},
        {"id": "/a", "check": {}},
    ):
        with pytest.raises(TypeError):
            MarathonApp.from_json(bad)
    with pytest.raises(TypeError):
        MarathonTask.from_json({"id": "t", "agentId": "a"})


@pytest.mark.parametrize(("body", "kwargs"), [v[1:3] for v in VALID], ids=[v[0] for v in VALID])
def test_every_valid_app_is_accepted_by_the_client(
    body: dict[str, Any], kwargs: dict[str, Any]
) -> None:
    stamped = apps.with_version(None, apps.normalize(copy.deepcopy(body), **kwargs), now=NOW)
    shown = apps.to_client(
        stamped,
        embed={
            "apps.counts",
            "app.deployments",
            "tasks",
            "lastTaskFailure",
            "taskStats",
            "readiness",
        },
        tasks=[TASK],
        counts={"running": 1, "healthy": 1},
        deployments=["d1", {"id": "d2", "steps": []}],
        last_failure={
            "appId": "/web",
            "host": "a",
            "message": "x",
            "state": "TASK_FAILED",
            "taskId": "t",
            "timestamp": NOW,
            "version": NOW,
            "agentId": "x",
        },
        task_stats={
            "totalSummary": {
                "stats": {
                    "counts": {"staged": 0, "running": 1, "healthy": 1, "unhealthy": 0},
                    "lifeTime": {"averageSeconds": 1.0, "medianSeconds": 1.0},
                    "other": 1,
                }
            }
        },
        readiness=[{"name": "readinessCheck", "taskId": "t", "ready": True}],
    )
    assert set(shown) <= set(apps.APP_KEYS)
    client_app = MarathonApp.from_json(shown)
    assert client_app.id == stamped["id"]
    assert client_app.tasks_running == 1 and client_app.tasks_staged == 0
    assert [d.id for d in client_app.deployments] == ["d1", "d2"]
    assert client_app.version_info.last_config_change_at == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert client_app.tasks[0].started_at == dt.datetime(2026, 1, 1, 0, 0, 1, tzinfo=dt.UTC)
    assert client_app.last_task_failure.timestamp == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    client_app.to_json(minimal=True)  # the nested models encode too
    client_app.to_json(minimal=False)


def test_to_client_drops_what_the_client_refuses() -> None:
    stored_app = {
        **apps.with_version(None, BASE, now=NOW),
        "tty": True,
        "check": {"http": {}},
        "executorResources": {"cpus": 0.1},
        "resourceLimits": {"cpus": "unlimited"},
        "tasksStats": {},
        "whatever": 1,
        "container": {
            "type": "DOCKER",
            "docker": {"image": "x", "pullConfig": {"secret": "s"}},
            "linuxInfo": {},
            "volumes": [{"containerPath": "/a", "hostPath": "/b", "mode": "RW", "secret": "s"}],
            "portMappings": [{"containerPort": 80, "networkNames": ["a"], "protocol": "tcp"}],
        },
        "portDefinitions": [
            {"port": 0, "protocol": "tcp", "name": "default", "labels": {}, "hostPort": 1}
        ],
        "readinessChecks": [{"name": "r", "dataPreservation": True}],
        "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0, "x": 1},
        "unreachableStrategy": {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0, "x": 1},
    }
    shown = apps.to_client(stored_app)
    for key in ("tty", "check", "executorResources", "resourceLimits", "tasksStats", "whatever"):
        assert key not in shown
    assert shown["container"] == {
        "type": "DOCKER",
        "docker": {"image": "x", "pullConfig": {"secret": "s"}},
        "volumes": [{"containerPath": "/a", "hostPath": "/b", "mode": "RW"}],
        "portMappings": [{"containerPort": 80, "protocol": "tcp"}],
    }
    assert shown["portDefinitions"] == [
        {"port": 0, "protocol": "tcp", "name": "default", "labels": {}}
    ]
    assert shown["readinessChecks"] == [{"name": "r"}]
    assert shown["upgradeStrategy"] == {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0}
    assert shown["unreachableStrategy"] == {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}
    MarathonApp.from_json(shown).to_json()


def test_to_client_leaves_out_empty_omit_empty_fields() -> None:
    shown = apps.to_client(apps.with_version(None, BASE, now=NOW))
    for key in (
        "args",
        "constraints",
        "dependencies",
        "env",
        "fetch",
        "healthChecks",
        "readinessChecks",
    ):
        assert key not in shown
    assert shown["labels"] == {} and shown["portDefinitions"] == BASE["portDefinitions"]
    for key in (
        "tasks",
        "tasksRunning",
        "deployments",
        "lastTaskFailure",
        "taskStats",
        "readinessCheckResults",
    ):
        assert key not in shown


EMBEDS: list[tuple[str, set[str], dict[str, Any], dict[str, Any]]] = [
    # (id, embed, to_client arguments, expected embedded keys)
    ("none", set(), {"tasks": [TASK], "deployments": ["d"]}, {}),
    (
        "counts-default-zero",
        {"counts"},
        {},
        {"tasksStaged": 0, "tasksRunning": 0, "tasksHealthy": 0, "tasksUnhealthy": 0},
    ),
    (
        "counts",
        {"app.counts"},
        {"counts": {"staged": 1, "running": 2, "healthy": 2, "unhealthy": 0}},
        {"tasksStaged": 1, "tasksRunning": 2, "tasksHealthy": 2, "tasksUnhealthy": 0},
    ),
    (
        "deployments",
        {"apps.deployments"},
        {"deployments": ["d1", {"id": "d2"}]},
        {"deployments": [{"id": "d1"}, {"id": "d2"}]},
    ),
    ("tasks-bring-deployments", {"tasks"}, {}, {"tasks": [], "deployments": []}),
    ("failures", {"app.failures"}, {}, {"tasks": [], "deployments": []}),
    ("last-failure-absent", {"lastTaskFailure"}, {}, {}),
    ("readiness-empty", {"readiness"}, {}, {"readinessCheckResults": []}),
    (
        "task-stats-renamed",
        {"taskStats"},
        {"task_stats": {"withLatestConfig": {"stats": {"counts": {"running": 1}}}, "bogus": {}}},
        {"taskStats": {"withLatestConfig": {"stats": {"counts": {"running": 1}}}}},
    ),
]


@pytest.mark.parametrize(
    ("embed", "kwargs", "expected"), [e[1:] for e in EMBEDS], ids=[e[0] for e in EMBEDS]
)
def test_embeds(embed: set[str], kwargs: dict[str, Any], expected: dict[str, Any]) -> None:
    plain = apps.to_client(apps.with_version(None, BASE, now=NOW))
    shown = apps.to_client(apps.with_version(None, BASE, now=NOW), embed=embed, **kwargs)
    assert {k: v for k, v in shown.items() if k not in plain} == expected
    MarathonApp.from_json(shown)


RESOLVE: list[tuple[str, list[str], set[str]]] = [
    ("app-prefix", ["app.tasks", "app.counts"], {"tasks", "deployments", "counts"}),
    ("apps-prefix", ["apps.lastTaskFailure"], {"lastTaskFailure"}),
    ("group-apps-prefix", ["group.apps.taskStats"], {"taskStats"}),
    ("no-prefix", ["readiness", "deployments"], {"readiness", "deployments"}),
    ("failures", ["apps.failures"], {"tasks", "lastTaskFailure", "deployments"}),
    ("unknown", ["app.nope", "group.groups"], set()),
]


@pytest.mark.parametrize(
    ("values", "expected"), [r[1:] for r in RESOLVE], ids=[r[0] for r in RESOLVE]
)
def test_resolve_embed(values: list[str], expected: set[str]) -> None:
    assert apps.resolve_embed(values) == expected


def test_task_to_client() -> None:
    shown = apps.task_to_client(TASK)
    assert set(shown) <= set(apps.TASK_KEYS)
    assert "agentId" not in shown and "checkResult" not in shown
    assert shown["stagedAt"] == "2026-01-01T00:00:00.000Z"
    assert shown["startedAt"] == "2026-01-01T00:00:01.000Z"
    assert shown["ipAddresses"] == [{"ipAddress": "10.0.0.5", "protocol": "IPv4"}]
    assert shown["healthCheckResults"] == [
        {
            "alive": True,
            "consecutiveFailures": 0,
            "firstSuccess": "2026-01-01T00:00:02.500Z",
            "lastSuccess": "2026-01-01T00:01:00.000Z",
            "instanceId": "web.instance-1",
        }
    ]
    task = MarathonTask.from_json(shown)
    assert task.staged_at == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert task.health_check_results[0].first_success == dt.datetime(
        2026, 1, 1, 0, 0, 2, 500000, tzinfo=dt.UTC
    )
    task.to_json()


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ({"id": "t", "stagedAt": "not a time"}, {"id": "t"}),
        (
            {"id": "t", "startedAt": None, "region": "r", "zone": "z"},
            {"id": "t", "region": "r", "zone": "z"},
        ),
        ({"id": "t", "stagedAt": ""}, {"id": "t"}),
    ],
    ids=["bad-time-dropped", "none-dropped", "empty-dropped"],
)
def test_task_to_client_edge_cases(task: dict[str, Any], expected: dict[str, Any]) -> None:
    assert apps.task_to_client(task) == expected
    MarathonTask.from_json(apps.task_to_client(task))
