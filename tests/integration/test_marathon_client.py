"""Marathon end to end: the ``marathon`` 0.13.0 client (unmodified) against ``corral
up``'s Marathon API, a framework on the Mesos master, its instances as pods on a real
``process`` agent."""

from __future__ import annotations

import collections
import collections.abc
import queue
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

# marathon 0.13.0 uses collections.Iterable (gone in Python 3.10) when it encodes models
collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]

marathon = pytest.importorskip("marathon", reason="marathon: pip install -e '.[test]'")

from marathon import MarathonClient  # noqa: E402
from marathon.exceptions import ConflictError  # noqa: E402
from marathon.models import MarathonApp, MarathonGroup  # noqa: E402

from corral.testing.mesos import MesosCluster, mesos_cluster, wait  # noqa: E402
from corral.testing.process import free_port  # noqa: E402

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),  # requests' abandoned streams
    pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning"),
]

SLEEP = {"cmd": "sleep 3600", "cpus": 0.01, "mem": 16}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MesosCluster, str]]:
    port = free_port()
    base = tmp_path_factory.mktemp("marathon")
    with mesos_cluster(base, runtimes=("process",), extra=["--marathon-port", str(port)]) as c:
        url = f"http://127.0.0.1:{port}"
        wait(lambda: _ping(url), "the Marathon API", 30)
        client = MarathonClient(url)
        wait(lambda: _leader(client), "Marathon subscribed to the master", 60)
        yield c, url


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


@pytest.fixture
def client(cluster: tuple[MesosCluster, str]) -> Iterator[MarathonClient]:
    c = MarathonClient(cluster[1])
    yield c
    for app in c.list_apps():
        c.delete_app(app.id, force=True)
    wait(lambda: not c.list_tasks(), "every task gone", 90)


def running(client: MarathonClient, app_id: str) -> int:
    return sum(t.state == "TASK_RUNNING" for t in client.list_tasks(app_id))


def settled(client: MarathonClient, app_id: str, n: int) -> bool:
    return running(client, app_id) == n and not client.list_deployments()


def test_an_app_of_five_sleeps_scaled_and_a_task_killed_with_scale(client: MarathonClient) -> None:
    created = client.create_app("/sleepy", MarathonApp(instances=5, **SLEEP))
    assert created.id == "/sleepy" and len(created.deployments) == 1
    deployment_id = created.deployments[0].id
    seen: set[str] = set()

    def done() -> bool:
        seen.update(d.id for d in client.list_deployments())
        return settled(client, "/sleepy", 5)

    wait(done, "5 running tasks", 120)
    assert deployment_id in seen  # listed while it ran
    tasks = client.list_tasks("/sleepy")
    assert len(tasks) == 5 and all(t.app_id == "/sleepy" for t in tasks)
    app = client.get_app("/sleepy")
    assert app.tasks_running == 5 and app.instances == 5

    client.scale_app("/sleepy", instances=2)
    wait(lambda: settled(client, "/sleepy", 2), "2 running tasks", 120)

    victim = client.list_tasks("/sleepy")[0].id
    result = client.kill_task("/sleepy", victim, scale=True)
    assert set(result) == {"deploymentId", "version"}
    wait(lambda: settled(client, "/sleepy", 1), "1 running task", 120)
    assert client.get_app("/sleepy").instances == 1
    assert victim not in {t.id for t in client.list_tasks("/sleepy")}


def test_the_event_stream(cluster: tuple[MesosCluster, str], client: MarathonClient) -> None:
    events: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()

    def read() -> None:
        reader = MarathonClient(cluster[1])
        try:
            for event in reader.event_stream():  # every type: the client's models parse each
                events.put(event)
                if stop.is_set():
                    return
        except Exception as e:  # a model that refused an event: fail the test with it
            events.put(e)

    threading.Thread(target=read, daemon=True).start()
    client.create_app("/streamed", MarathonApp(instances=1, **SLEEP))
    kinds: dict[str, Any] = {}
    seen: set[str] = set()
    while not {"api_post_event", "status_update_event", "deployment_success"} <= set(kinds):
        event = events.get(timeout=120)
        if isinstance(event, Exception):
            raise event
        seen.add(event.event_type)
        if getattr(event, "app_id", "/streamed") == "/streamed":
            kinds.setdefault(event.event_type, event)
    stop.set()
    assert {"event_stream_attached", "deployment_info"} <= seen, seen
    assert kinds["api_post_event"].app_definition["id"] == "/streamed"
    assert kinds["status_update_event"].task_status in (
        "TASK_STAGING",
        "TASK_STARTING",
        "TASK_RUNNING",
    )


def test_a_group_with_dependencies(client: MarathonClient) -> None:
    group = MarathonGroup.from_json(
        {
            "id": "/shop",
            "apps": [
                {"id": "db", "instances": 1, **SLEEP},
                {"id": "web", "instances": 1, "dependencies": ["db"], **SLEEP},
            ],
        }
    )
    result = client.create_group(group)
    [plan] = [d for d in client.list_deployments() if d.id == result["deploymentId"]]
    order = [[a.app for a in step.actions] for step in plan.steps]
    assert order == [["/shop/db", "/shop/web"], ["/shop/db"], ["/shop/web"]]
    wait(
        lambda: running(client, "/shop/db") == 1 and settled(client, "/shop/web", 1),
        "the group running",
        120,
    )
    shop = client.get_group("/shop")
    assert [a.id for a in shop.apps] == ["/shop/db", "/shop/web"]
    assert shop.apps[1].dependencies == ["/shop/db"]
    client.delete_group("/shop", force=True)
    wait(lambda: not client.list_apps(), "the group gone", 120)
    wait(lambda: not client.list_deployments(), "the group's removal done", 120)


def test_a_concurrent_change_is_409_until_forced(client: MarathonClient) -> None:
    # an app no agent can place: its deployment runs until something replaces it
    client.create_app("/stuck", MarathonApp(cmd="sleep 3600", cpus=1000, mem=16, instances=1))
    [running_deployment] = [d for d in client.list_deployments() if "/stuck" in d.affected_apps]
    assert running_deployment.affected_apps == ["/stuck"]
    with pytest.raises(ConflictError):
        client.scale_app("/stuck", instances=0)
    [queued] = client.list_queue()
    assert queued.app.id == "/stuck"
    client.scale_app("/stuck", instances=0, force=True)
    wait(lambda: not client.list_deployments(), "the forced deployment done", 60)
    assert client.get_app("/stuck").instances == 0
