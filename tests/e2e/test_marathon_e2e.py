"""Marathon end to end on real containers: the ``marathon`` 0.13.0 client (unmodified)
against ``corral server --marathon-port``, a framework on the Mesos master, whose
instances are pods on one real ``oci`` agent (runc, the CNI bridge, ``busybox:1.35``
pulled from a local registry built from busybox-static; ``e2ekit.running_cluster``).

Every app here serves HTTP with busybox ``httpd`` on container port 8080, on BRIDGE
networking with a port mapping (``hostPort: 0``: a host port from the offer), and has an
HTTP health check, which the agent runs as the pod's probes:

- the health check: an instance becomes healthy (``healthCheckResults``,
  ``tasksHealthy``); once its served file is gone it is killed and replaced;
- a rolling restart never has fewer healthy instances than ``minimumHealthCapacity``
  asks for, nor more than ``maximumOverCapacity`` allows, checked on every status and
  health event of ``/v2/events`` as the client's ``event_stream`` yields them;
- a Kubernetes Service selecting an app's instances by label: its endpoints follow them;
- a partial canary: with ``minimumHealthCapacity`` 1, a small ``maximumOverCapacity``
  and a readiness check that passes once a file exists in a host directory (mounted
  read-only, served on a second port), an upgrade holds at one healthy, unready new
  instance until the file appears, then replaces the old ones (the README's example).

Root only (runc, CNI); skips with the reason otherwise. The fixture removes every app and
waits for their tasks to end before ``running_cluster`` tears the cluster down.
"""

from __future__ import annotations

import collections
import collections.abc
import json
import math
import queue
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2ekit import Cluster, require, running_cluster

# marathon 0.13.0 uses collections.Iterable (gone in Python 3.10) when it encodes models
collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]

marathon = pytest.importorskip("marathon", reason="marathon: pip install -e '.[test]'")

from marathon import MarathonClient  # noqa: E402
from marathon.models import MarathonApp  # noqa: E402

from corral.offers.model import AllocatorConfig  # noqa: E402
from corral.testing.mesos import wait  # noqa: E402
from corral.testing.process import free_port  # noqa: E402

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),  # requests' abandoned streams
    pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning"),
]

Obj = dict[str, Any]
APP_LABEL = "marathon.corral.dev/app"
# serves /tmp/index.html (its instance's task id) on 8080
HTTPD = "echo $MESOS_TASK_ID > /tmp/index.html && exec httpd -f -p 8080 -h /tmp"


def web(app_id: str, instances: int, **extra: Any) -> MarathonApp:
    """An app of busybox httpd containers on a bridge, port 8080 mapped to a host port,
    health-checked over HTTP every second."""
    return MarathonApp.from_json(web_json(app_id, instances, **extra))


def web_json(app_id: str, instances: int, **extra: Any) -> Obj:
    body: Obj = {
        "id": app_id,
        "cmd": HTTPD,
        "cpus": 0.05,
        "mem": 32,
        "instances": instances,
        "container": {
            "type": "DOCKER",
            "docker": {
                "image": "busybox:1.35",
                "network": "BRIDGE",
                "portMappings": [
                    {"containerPort": 8080, "hostPort": 0, "protocol": "tcp", "name": "http"}
                ],
            },
        },
        "healthChecks": [
            {
                "protocol": "HTTP",
                "path": "/index.html",
                "portIndex": 0,
                "gracePeriodSeconds": 30,
                "intervalSeconds": 1,
                "timeoutSeconds": 1,
                "maxConsecutiveFailures": 2,
            }
        ],
        **extra,
    }
    return body


#: the master's and Marathon's HTTP authentication off (this tests the protocol itself)
OPEN = ["--no-authenticate-http-frameworks", "--no-authenticate-http-readwrite",
        "--no-authenticate-http-readonly"]  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    require("oci")
    mesos_port, marathon_port = free_port(), free_port()
    base = tmp_path_factory.mktemp("marathon-e2e")
    args = ["--mesos-port", str(mesos_port), "--marathon-port", str(marathon_port), *OPEN]
    with running_cluster(base, "oci", "marathon", controllers=True, server_args=args) as c:
        url = f"http://127.0.0.1:{marathon_port}"
        wait(lambda: _ping(url), "the Marathon API", 30)
        wait(lambda: _leader(MarathonClient(url)), "Marathon subscribed to the master", 60)
        try:
            yield c, url
        finally:  # before the cluster's teardown, or Marathon would replace its pods
            _remove_apps(MarathonClient(url))


def _ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _leader(client: MarathonClient) -> bool:
    try:
        return bool(client.get_leader().get("leader"))
    except Exception:
        return False


def _remove_apps(client: MarathonClient) -> None:
    for app in client.list_apps():
        client.delete_app(app.id, force=True)
    wait(lambda: not client.list_tasks(), "every task gone", 120)


@pytest.fixture
def client(cluster: tuple[Cluster, str]) -> Iterator[MarathonClient]:
    c = MarathonClient(cluster[1])
    yield c
    _remove_apps(c)


def healthy(client: MarathonClient, app_id: str) -> list[Any]:
    """The app's running tasks whose health check passes."""
    return [
        t
        for t in client.list_tasks(app_id)
        if t.state == "TASK_RUNNING"
        and t.health_check_results
        and all(r.alive for r in t.health_check_results)
    ]


def settled(client: MarathonClient, app_id: str, n: int) -> bool:
    """``n`` healthy tasks, no others, no deployment running."""
    return (
        len(healthy(client, app_id)) == n
        and len(client.list_tasks(app_id)) == n
        and not client.list_deployments()
    )


def fetch(address: str, port: int, path: str = "/index.html") -> str:
    with urllib.request.urlopen(f"http://{address}:{port}{path}", timeout=5) as r:
        return str(r.read().decode().strip())


def pod_of(c: Cluster, task_id: str) -> Obj:
    """The pod of a Marathon task (namespace ``mesos``)."""
    for pod in c.get("mesos", "pods")["items"]:
        if pod["metadata"].get("annotations", {}).get("mesos.corral.dev/task-id") == task_id:
            return dict(pod)
    raise AssertionError(f"no pod for task {task_id}")


# --- a) an HTTP health check on a container with a port mapping -----------------------------


@pytest.mark.slow  # ~40 s: `make test-slow`
def test_a_health_checked_container_is_replaced_when_its_check_fails(
    cluster: tuple[Cluster, str], client: MarathonClient
) -> None:
    c, _ = cluster
    client.create_app("/hc/web", web("/hc/web", 1))
    wait(lambda: settled(client, "/hc/web", 1), "a healthy instance", 120)

    [task] = client.list_tasks("/hc/web")
    [result] = task.health_check_results
    assert result.alive is True and result.task_id == task.id
    app = client.get_app("/hc/web")
    assert (app.tasks_running, app.tasks_healthy, app.tasks_unhealthy) == (1, 1, 0)
    # the mapping's host port is one of the offer's ports, the pod's hostPort for 8080
    # (not fetched through: another cluster on this host may hold the same port)
    [host_port] = task.ports
    pod = pod_of(c, task.id)
    [mapped] = pod["spec"]["containers"][0]["ports"]
    assert (mapped["hostPort"], mapped["containerPort"]) == (host_port, 8080)
    low, high = AllocatorConfig().port_range
    assert low <= host_port <= high
    assert fetch(pod["status"]["podIP"], 8080) == task.id

    # the served file disappears: the check fails, the agent kills the instance and
    # Marathon launches another
    c.kubectl("exec", "-n", "mesos", pod["metadata"]["name"], "--", "rm", "/tmp/index.html")

    def replaced() -> bool:
        tasks = healthy(client, "/hc/web")
        return len(tasks) == 1 and tasks[0].id != task.id

    wait(replaced, "a healthy replacement", 120)
    assert task.id not in {t.id for t in client.list_tasks("/hc/web")}
    failure = client.get_app("/hc/web").last_task_failure
    assert failure is not None and failure.task_id == task.id


# --- b) a rolling restart kept within the upgrade strategy ----------------------------------


class Stream:
    """The client's ``event_stream()`` read in a thread into a queue (exceptions too)."""

    def __init__(self, url: str) -> None:
        self.events: queue.Queue[Any] = queue.Queue()
        self.stop = threading.Event()
        threading.Thread(target=self._read, args=(url,), daemon=True).start()

    def _read(self, url: str) -> None:
        try:
            for event in MarathonClient(url).event_stream():
                self.events.put(event)
                if self.stop.is_set():
                    return
        except Exception as e:  # a model that refused an event: fail the test with it
            self.events.put(e)

    def next(self, timeout: float = 120) -> Any:
        event = self.events.get(timeout=timeout)
        if isinstance(event, Exception):
            raise event
        return event


class Instances:
    """An app's instances as its status and health events tell them."""

    def __init__(self, app_id: str) -> None:
        self.app_id = app_id
        self.state: dict[str, str] = {}
        self.alive: dict[str, bool] = {}
        self.version: dict[str, str] = {}

    def take(self, event: Any) -> bool:
        """Take an event in; True when it was a status or health event of the app."""
        if getattr(event, "app_id", None) != self.app_id:
            return False
        if event.event_type == "status_update_event":
            self.state[event.task_id] = event.task_status
            self.version[event.task_id] = event.version
            return True
        if event.event_type == "health_status_changed_event":
            self.alive[event.task_id] = bool(getattr(event, "alive", False))  # False is unset
            return True
        return False

    def live(self) -> list[str]:
        ended = ("TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR")
        return [t for t, s in self.state.items() if s not in ended]

    def healthy(self) -> list[str]:
        return [
            t for t, s in self.state.items() if s == "TASK_RUNNING" and self.alive.get(t, False)
        ]


@pytest.mark.slow  # ~50 s: `make test-slow`
def test_a_rolling_restart_never_drops_below_minimum_health_capacity(
    cluster: tuple[Cluster, str], client: MarathonClient
) -> None:
    app_id, n = "/roll/web", 4
    strategy = {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.25}
    min_healthy = math.ceil(n * strategy["minimumHealthCapacity"])  # 2
    max_capacity = math.floor(n * (1 + strategy["maximumOverCapacity"]))  # 5
    stream = Stream(cluster[1])
    seen = Instances(app_id)
    try:
        created = client.create_app(app_id, web(app_id, n, upgradeStrategy=strategy))
        [first] = created.deployments
        while True:  # until the app's 4 instances are healthy and its deployment done
            event = stream.next()
            seen.take(event)
            if event.event_type == "deployment_success" and event.id == first.id:
                break
        assert len(seen.healthy()) == n
        old = set(seen.healthy())

        restart = client.restart_app(app_id)
        checked: list[tuple[int, int, bool]] = []
        while True:
            event = stream.next()
            if seen.take(event):
                healthy_now, live_now = len(seen.healthy()), len(seen.live())
                mixed = bool(old & set(seen.live())) and bool(set(seen.live()) - old)
                checked.append((healthy_now, live_now, mixed))
                assert healthy_now >= min_healthy, (event.event_type, seen.state, seen.alive)
                assert live_now <= max_capacity, (event.event_type, seen.state)
            if event.event_type == "deployment_success" and event.id == restart["deploymentId"]:
                break
    finally:
        stream.stop.set()

    new = set(seen.healthy())
    assert len(new) == n and not new & old
    assert set(seen.live()) == new
    assert {t.id for t in client.list_tasks(app_id)} == new
    # it rolled: old and new instances ran side by side on the way
    assert any(mixed for _, _, mixed in checked)


# --- c) a Kubernetes Service selecting Marathon instances by label ---------------------------


def endpoints(c: Cluster, name: str) -> set[str]:
    """The ready addresses of the Service's EndpointSlices."""
    out = c.kubectl(
        "get", "endpointslices", "-n", "mesos", "-l", f"kubernetes.io/service-name={name}",
        "-o", "json",
    ).stdout  # fmt: skip
    return {
        address
        for s in json.loads(out)["items"]
        for e in s.get("endpoints") or []
        if (e.get("conditions") or {}).get("ready")
        for address in e["addresses"]
    }


def pod_ips(c: Cluster, client: MarathonClient, app_id: str) -> set[str]:
    return {pod_of(c, t.id)["status"]["podIP"] for t in healthy(client, app_id)}


@pytest.mark.slow  # ~50 s: `make test-slow`
def test_a_service_selecting_an_apps_instances_follows_them(
    cluster: tuple[Cluster, str], client: MarathonClient
) -> None:
    c, _ = cluster
    client.create_app("/svc/web", web("/svc/web", 2, labels={"tier": "web"}))
    wait(lambda: settled(client, "/svc/web", 2), "2 healthy instances", 120)
    c.apply(
        "mesos",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "marathon-web"},
            "spec": {
                "selector": {"tier": "web", APP_LABEL: "svc_web"},
                "ports": [{"port": 80, "targetPort": 8080}],
            },
        },
    )
    try:
        ips = pod_ips(c, client, "/svc/web")
        assert len(ips) == 2
        wait(lambda: endpoints(c, "marathon-web") == ips, "the endpoints of 2 instances", 60)
        for ip in ips:  # each endpoint is an instance serving its task id
            assert fetch(ip, 8080) in {t.id for t in client.list_tasks("/svc/web")}

        client.scale_app("/svc/web", instances=3)
        wait(lambda: settled(client, "/svc/web", 3), "3 healthy instances", 120)
        wait(
            lambda: endpoints(c, "marathon-web") == pod_ips(c, client, "/svc/web"),
            "the endpoints of 3 instances",
            60,
        )
        assert len(endpoints(c, "marathon-web")) == 3

        victim = client.list_tasks("/svc/web")[0]
        client.kill_task("/svc/web", victim.id, scale=True)
        wait(lambda: settled(client, "/svc/web", 2), "2 healthy instances again", 120)
        wait(
            lambda: endpoints(c, "marathon-web") == pod_ips(c, client, "/svc/web"),
            "the endpoints of the 2 left",
            60,
        )
        assert len(endpoints(c, "marathon-web")) == 2
    finally:
        c.kubectl("delete", "service", "marathon-web", "-n", "mesos", check=False)


# --- d) a partial canary: a small maximumOverCapacity and a readiness check -----------------


def gated(app_id: str, instances: int, gate: Path, version: str) -> MarathonApp:
    """``web`` plus a second httpd on 8081 serving the host directory ``gate`` (read-only)
    and a readiness check of ``/VERSION`` there: an instance of ``version`` is ready once
    the file ``gate/VERSION`` exists."""
    body = web_json(
        app_id,
        instances,
        cmd="echo $VERSION > /tmp/index.html; httpd -p 8081 -h /gate; exec httpd -f -p 8080 -h /tmp",
        env={"VERSION": version},
        readinessChecks=[
            {
                "name": "promoted",
                "protocol": "HTTP",
                "path": f"/{version}",
                "portName": "gate",
                "intervalSeconds": 2,
                "timeoutSeconds": 1,
            }
        ],
        upgradeStrategy={"minimumHealthCapacity": 1, "maximumOverCapacity": 0.5},
    )
    body["container"]["docker"]["portMappings"].append(
        {"containerPort": 8081, "hostPort": 0, "protocol": "tcp", "name": "gate"}
    )
    body["container"]["volumes"] = [{"containerPath": "/gate", "hostPath": str(gate), "mode": "RO"}]
    return MarathonApp.from_json(body)


def readiness(client: MarathonClient) -> dict[str, bool]:
    """The readiness check results of the running deployment's actions, by task id."""
    return {
        str(r["taskId"]): bool(r["ready"])
        for d in client.list_deployments()
        for a in d.current_actions
        for r in a.readiness_check_results or []
    }


def versions(client: MarathonClient, app_id: str) -> list[str]:
    return sorted(fetch(pod_ip, 8080) for pod_ip in healthy_ips(client, app_id))


def healthy_ips(client: MarathonClient, app_id: str) -> list[str]:
    return [t.ip_addresses[0].ip_address for t in healthy(client, app_id)]


@pytest.mark.slow  # ~50 s: `make test-slow`
def test_a_canary_waits_for_its_readiness_check(client: MarathonClient, tmp_path: Path) -> None:
    app_id = "/canary/api"
    (tmp_path / "v1").touch()
    client.create_app(app_id, gated(app_id, 2, tmp_path, "v1"))
    wait(lambda: settled(client, app_id, 2), "2 ready v1 instances", 120)
    old = {t.id for t in client.list_tasks(app_id)}

    # v2: one instance beside the 2 old ones (maxCapacity 3), healthy but not ready, so
    # no old instance may go and the deployment holds
    client.update_app(app_id, gated(app_id, 2, tmp_path, "v2"))

    def canary() -> set[str]:
        ids = {t.id for t in healthy(client, app_id)} - old
        return ids if ids and readiness(client).get(next(iter(ids))) is False else set()

    [canary_id] = wait(canary, "a healthy canary whose readiness check failed", 120)
    assert {t.id for t in client.list_tasks(app_id)} == old | {canary_id}
    assert versions(client, app_id) == ["v1", "v1", "v2"]
    [deployment] = client.list_deployments()
    assert [a.action for a in deployment.current_actions] == ["RestartApplication"]

    # promoted: the new instances become ready and replace the old ones
    (tmp_path / "v2").touch()
    wait(
        lambda: settled(client, app_id, 2) and not old & {t.id for t in client.list_tasks(app_id)},
        "2 ready v2 instances",
        120,
    )
    assert versions(client, app_id) == ["v2", "v2"]


@pytest.mark.slow  # ~20 s with its cluster: `make test-slow`
def test_a_deployments_readiness_results_are_of_its_own_instances(
    client: MarathonClient, tmp_path: Path
) -> None:
    app_id = "/canary/one"
    (tmp_path / "v1").touch()
    client.create_app(app_id, gated(app_id, 1, tmp_path, "v1"))
    wait(lambda: settled(client, app_id, 1), "a ready v1 instance", 120)
    [old] = client.list_tasks(app_id)
    client.update_app(app_id, gated(app_id, 1, tmp_path, "v2"))
    wait(lambda: False in readiness(client).values(), "the new instance probed", 120)
    assert old.id not in readiness(client)
