"""launcher: offers against app definitions (resources, ports, constraints) and the
TaskInfo of a placed instance."""

from __future__ import annotations

from typing import Any

import pytest

from corral.marathon import apps
from corral.marathon.launcher import (
    APP_LABEL,
    INSUFFICIENT_CPUS,
    INSUFFICIENT_MEMORY,
    INSUFFICIENT_PODS,
    INSUFFICIENT_PORTS,
    UNFULFILLED_CONSTRAINT,
    OfferSpace,
    Placed,
    Placement,
    constraint_ok,
    match,
    task_info,
)

Obj = dict[str, Any]


def offer(
    cpus: float = 4, mem: float = 4096, ports: tuple[int, int] = (31000, 31009), **attrs: str
) -> Obj:
    return {
        "id": {"value": "o1"},
        "agent_id": {"value": "a1"},
        "hostname": attrs.pop("hostname", "node-1"),
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
            {
                "name": "ports",
                "type": "RANGES",
                "ranges": {"range": [{"begin": ports[0], "end": ports[1]}]},
            },
        ],
        "attributes": [{"name": k, "type": "TEXT", "text": {"value": v}} for k, v in attrs.items()],
    }


def app(**kw: Any) -> Obj:
    body = {"id": "/web", "cmd": "sleep 3600", "cpus": 0.5, "mem": 64, **kw}
    return apps.with_version(None, apps.normalize(body), now="2026-12-05T01:00:00.000Z")


@pytest.mark.parametrize(
    ("kw", "space", "want"),
    [
        ({"cpus": 8}, offer(), INSUFFICIENT_CPUS),
        ({"mem": 9000}, offer(), INSUFFICIENT_MEMORY),
        ({"portDefinitions": [{"port": 0}] * 11}, offer(), INSUFFICIENT_PORTS),
        (
            {"requirePorts": True, "portDefinitions": [{"port": 80}]},
            offer(),
            INSUFFICIENT_PORTS,
        ),
        ({"constraints": [["rack", "LIKE", "r1"]]}, offer(rack="r2"), UNFULFILLED_CONSTRAINT),
        ({"constraints": [["rack", "LIKE", "r1"]]}, offer(), UNFULFILLED_CONSTRAINT),
    ],
    ids=["cpus", "mem", "ports", "required-port", "like", "no-attribute"],
)
def test_declines_with_the_reason(kw: Obj, space: Obj, want: str) -> None:
    assert match(app(**kw), OfferSpace.of(space), []) == want


def _with_pods(o: Obj, pods: float) -> Obj:
    o["resources"].append({"name": "pods", "type": "SCALAR", "scalar": {"value": pods}})
    return o


@pytest.mark.parametrize(
    ("pods", "fits"),
    [(None, 400), (0, 0), (1, 1), (3, 3), (110, 110)],
    ids=["no-pods-resource", "none-free", "one", "three", "hollow-node"],
)
def test_an_offer_holds_at_most_its_pods(pods: int | None, fits: int) -> None:
    """Every task is a pod: 0.01 cpu instances fill a 4-cpu offer only up to its pods."""
    a = app(cpus=0.01, mem=1, portDefinitions=[])
    space = OfferSpace.of(offer() if pods is None else _with_pods(offer(), pods))
    assert space.pods == pods
    placed = 0
    while not isinstance(placement := match(a, space, []), str):
        space.take(a, placement.host_ports)
        placed += 1
    assert placed == fits
    assert placement == (INSUFFICIENT_CPUS if pods is None else INSUFFICIENT_PODS)


def test_dynamic_ports_come_from_the_ranges_and_are_used_up() -> None:
    a = app(portDefinitions=[{"port": 0, "name": "http"}, {"port": 0}])
    space = OfferSpace.of(offer(ports=(31000, 31003)))
    first = match(a, space, [])
    assert first == Placement([31000, 31001])
    space.take(a, first.host_ports)
    second = match(a, space, [])
    assert second == Placement([31002, 31003])
    space.take(a, second.host_ports)
    assert match(a, space, []) == INSUFFICIENT_PORTS
    assert space.cpus == pytest.approx(3.0)


H1, H2 = Placed("node-1", {"rack": "r1"}), Placed("node-2", {"rack": "r2"})


@pytest.mark.parametrize(
    ("constraint", "placed", "ok"),
    [
        (["hostname", "UNIQUE"], [], True),
        (["hostname", "UNIQUE"], [H1], False),
        (["hostname", "UNIQUE"], [H2], True),
        (["rack", "UNIQUE"], [H1], False),
        (["rack", "CLUSTER", "r1"], [], True),
        (["rack", "CLUSTER", "r2"], [], False),
        (["rack", "CLUSTER"], [H2], False),
        (["rack", "GROUP_BY"], [H1, H2], True),
        (["rack", "GROUP_BY"], [H1, H1, H2], False),
        (["rack", "MAX_PER", "2"], [H1], True),
        (["rack", "MAX_PER", "2"], [H1, H1], False),
        (["hostname", "LIKE", "node-[0-9]"], [], True),
        (["hostname", "UNLIKE", "node-1"], [], False),
        (["zone", "UNLIKE", "z1"], [], True),
        (["rack", "IS", "r1"], [], True),
    ],
    ids=[
        "unique-first",
        "unique-taken",
        "unique-other-host",
        "unique-attr",
        "cluster-value",
        "cluster-other",
        "cluster-follows-others",
        "group-by-balanced",
        "group-by-heavier",
        "max-per-room",
        "max-per-full",
        "like",
        "unlike",
        "unlike-missing",
        "is",
    ],
)
def test_constraints(constraint: list[str], placed: list[Placed], ok: bool) -> None:
    space = OfferSpace.of(offer(hostname="node-1", rack="r1"))
    assert constraint_ok(constraint, space, placed) is ok


def test_task_info_of_a_host_app() -> None:
    a = app(
        portDefinitions=[{"port": 0, "name": "http"}],
        env={"LOG": "info"},
        labels={"team": "x", "bad key!": "v"},
        healthChecks=[{"protocol": "HTTP", "path": "/health", "portIndex": 0}],
    )
    space = OfferSpace.of(offer())
    placement = match(a, space, [])
    assert isinstance(placement, Placement)
    info = task_info(a, "web.1", space, placement)
    env = {v["name"]: v["value"] for v in info["command"]["environment"]["variables"]}
    assert env["PORT0"] == env["PORT_HTTP"] == env["PORTS"] == "31000"
    assert env["HOST"] == "node-1" and env["MARATHON_APP_ID"] == "/web"
    assert env["MESOS_TASK_ID"] == "web.1" and env["LOG"] == "info"
    assert env["MARATHON_APP_VERSION"] == a["version"]
    assert info["command"] == {**info["command"], "shell": True, "value": "sleep 3600"}
    ports = [r for r in info["resources"] if r["name"] == "ports"]
    assert ports[0]["ranges"]["range"] == [{"begin": 31000, "end": 31000}]
    labels = {lab["key"]: lab["value"] for lab in info["labels"]["labels"]}
    assert labels["team"] == "x" and "bad key!" not in labels and labels[APP_LABEL] == "web"
    check = info["health_check"]
    assert check["type"] == "HTTP" and check["http"] == {"port": 31000, "path": "/health"}
    assert check["grace_period_seconds"] == 300 and check["consecutive_failures"] == 3
    assert "container" not in info


def test_task_info_of_a_bridged_docker_app() -> None:
    a = app(
        cmd=None,
        args=["nginx", "-g", "daemon off;"],
        container={
            "type": "DOCKER",
            "docker": {"image": "nginx", "network": "BRIDGE"},
            "portMappings": [{"containerPort": 80, "hostPort": 0, "name": "http"}],
        },
        healthChecks=[{"protocol": "TCP", "portIndex": 0}],
    )
    space = OfferSpace.of(offer())
    placement = match(a, space, [])
    assert placement == Placement([31000])
    info = task_info(a, "web.2", space, placement)
    docker = info["container"]["docker"]
    assert info["container"]["type"] == "DOCKER" and docker["network"] == "BRIDGE"
    assert docker["port_mappings"] == [
        {"host_port": 31000, "container_port": 80, "protocol": "tcp"}
    ]
    assert info["command"]["shell"] is False
    assert info["command"]["arguments"] == ["nginx", "-g", "daemon off;"]
    assert info["health_check"]["tcp"] == {"port": 80}


def test_task_info_of_a_mesos_container_on_the_bridge() -> None:
    a = app(
        container={"type": "MESOS", "docker": {"image": "busybox"}},
        networks=[{"mode": "container/bridge"}],
    )
    space = OfferSpace.of(offer())
    placement = match(a, space, [])
    assert isinstance(placement, Placement)
    info = task_info(a, "web.3", space, placement)
    container = info["container"]
    assert container["mesos"]["image"]["docker"]["name"] == "busybox"
    [net] = container["network_infos"]
    assert net["name"] == "mesos-bridge"
    assert net["port_mappings"] == [
        {"host_port": 31000, "container_port": 31000, "protocol": "tcp"}
    ]


def test_a_command_health_check_becomes_the_tasks_command_check() -> None:
    a = app(
        healthChecks=[
            {
                "protocol": "COMMAND",
                "command": {"value": "test -f /tmp/ok"},
                "intervalSeconds": 5,
                "maxConsecutiveFailures": 2,
                "gracePeriodSeconds": 30,
            }
        ]
    )
    space = OfferSpace.of(offer())
    placement = match(a, space, [])
    assert placement is not None
    check = task_info(a, "web.3", space, placement)["health_check"]
    assert check["type"] == "COMMAND"
    assert check["command"] == {"value": "test -f /tmp/ok"}
    assert (check["interval_seconds"], check["consecutive_failures"]) == (5.0, 2)
    assert check["grace_period_seconds"] == 30.0
