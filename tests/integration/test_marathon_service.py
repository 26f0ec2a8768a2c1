"""The Marathon service driven directly (``MarathonService``, no REST API) against a real
Corral server with its Mesos master and a real ``process`` agent: instances are Mesos
tasks, so pods in namespace ``mesos`` with the app's labels."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from corral.client.rest import CONFIGMAPS, MARATHON_APPS, PODS, Client
from corral.marathon import apps
from corral.marathon.instances import Instance
from corral.marathon.launcher import APP_LABEL, app_label
from corral.marathon.scheduler import config_version
from corral.marathon.service import NAMESPACE, MarathonService, object_name
from corral.marathon.service_api import Conflict, Invalid, Locked, NotFound
from corral.marathon.store import DEPLOYMENT_LABEL, DEPLOYMENT_PREFIX
from corral.testing.mesos import MesosCluster, mesos_cluster

pytestmark = [pytest.mark.timeout(300)]

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MesosCluster]:
    with mesos_cluster(tmp_path_factory.mktemp("marathon"), runtimes=("process",)) as c:
        yield c


class Events:
    """The service's event sink: every event, and a check run on each."""

    def __init__(self) -> None:
        self.events: list[Obj] = []
        self.on_event: Callable[[Obj], None] | None = None

    def publish(self, event: Obj) -> None:
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def of(self, kind: str) -> list[Obj]:
        return [e for e in self.events if e["eventType"] == kind]


@asynccontextmanager
async def service(cluster: MesosCluster) -> AsyncIterator[tuple[MarathonService, Events]]:
    client = Client.from_kubeconfig(cluster.server.kubeconfig)
    events = Events()
    svc = MarathonService(client, cluster.master, events=events)
    task = asyncio.create_task(svc.run())
    try:
        await until(lambda: svc.leader() is not None, "subscribed")
        yield svc, events
    finally:
        task.cancel()
        with pytest.raises((asyncio.CancelledError, Exception)):
            await task
        await svc.close()
        await client.close()


async def until(pred: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    """Wait (a deadline, not a timing assertion) for ``pred`` to hold."""
    async with asyncio.timeout(timeout):
        while True:
            got = pred()
            if got:
                return got
            await asyncio.sleep(0.1)
    raise AssertionError(what)  # pragma: no cover


async def pods_of(client: Client, app_id: str) -> list[Obj]:
    listed = await client.list(PODS, "mesos", label_selector=f"{APP_LABEL}={app_label(app_id)}")
    return [
        p
        for p in listed.get("items") or []
        if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        and not p["metadata"].get("deletionTimestamp")
    ]


async def pods_eventually(
    client: Client, app_id: str, pred: Callable[[list[Obj]], bool], timeout: float = 90.0
) -> list[Obj]:
    async with asyncio.timeout(timeout):
        while True:
            pods = await pods_of(client, app_id)
            if pred(pods):
                return pods
            await asyncio.sleep(0.2)


def running(svc: MarathonService, app_id: str) -> list[Obj]:
    return [t for t in svc.tasks(app_id) if t["state"] == "TASK_RUNNING"]


def definition(app_id: str, instances: int, **kw: Any) -> Obj:
    body = {
        "id": app_id,
        "cmd": "sleep 3600",
        "cpus": 0.05,
        "mem": 16,
        "instances": instances,
        "labels": {"team": "it"},
        **kw,
    }
    return apps.normalize(body)


async def settled(svc: MarathonService, app_id: str, n: int) -> None:
    await until(
        lambda: not svc.app_deployments(app_id) and len(running(svc, app_id)) == n,
        f"{n} instances of {app_id} running",
    )


async def test_app_lifecycle(cluster: MesosCluster) -> None:
    app_id = "/it/sleeper"
    strategy = {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.0}
    async with service(cluster) as (svc, events):
        client = svc.client
        d = await svc.deploy(
            {app_id: definition(app_id, 3, upgradeStrategy=strategy)}, create_only=True
        )
        assert d.id in [x["id"] for x in svc.deployments()]
        await settled(svc, app_id, 3)
        assert [e["id"] for e in events.of("deployment_success")] == [d.id]

        # the App object, and the pods with the app's labels
        obj = await client.get(MARATHON_APPS, object_name(app_id), NAMESPACE)
        assert obj["spec"]["app"]["id"] == app_id
        async with asyncio.timeout(30):  # the status is written a second after a change
            while (obj.get("status") or {}).get("tasksRunning") != 3:
                await asyncio.sleep(0.2)
                obj = await client.get(MARATHON_APPS, object_name(app_id), NAMESPACE)
        pods = await pods_eventually(client, app_id, lambda ps: len(ps) == 3)
        assert all(p["metadata"]["labels"]["team"] == "it" for p in pods)
        with pytest.raises(Conflict):
            await svc.deploy({app_id: definition(app_id, 1)}, create_only=True)

        # scale up and down
        await svc.deploy({app_id: definition(app_id, 4, upgradeStrategy=strategy)})
        await settled(svc, app_id, 4)
        await svc.deploy({app_id: definition(app_id, 3, upgradeStrategy=strategy)})
        await settled(svc, app_id, 3)
        assert len(svc.app_versions(app_id) or []) == 3

        # a killed task is replaced
        victim = running(svc, app_id)[0]["id"]
        killed = await svc.kill_tasks([victim])
        assert isinstance(killed, list) and killed[0]["id"] == victim
        await until(
            lambda: (
                len(running(svc, app_id)) == 3
                and victim not in {t["id"] for t in svc.tasks(app_id)}
            ),
            "a replacement",
        )

        # a rolling restart never drops below minimumHealthCapacity
        min_healthy = math.ceil(3 * 0.5)
        lowest: list[int] = []

        def check(event: Obj) -> None:
            if event["eventType"] == "status_update_event" and event["appId"] == app_id:
                live = [
                    i
                    for i in svc.scheduler.of_app(app_id)
                    if i.state == "TASK_RUNNING" and not i.terminal
                ]
                lowest.append(len(live))

        events.on_event = check
        old = {t["id"] for t in running(svc, app_id)}
        restart = await svc.restart(app_id)
        with pytest.raises(Locked) as locked:
            await svc.restart(app_id)
        assert locked.value.deployment_ids == [restart.id]
        await until(lambda: restart.id not in svc.app_deployments(app_id), "the restart")
        events.on_event = None
        await settled(svc, app_id, 3)
        assert not old & {t["id"] for t in svc.tasks(app_id)}
        assert lowest and min(lowest) >= min_healthy

        # a kill with scale: that very instance goes, the app keeps the others
        victim = running(svc, app_id)[-1]["id"]
        scaled = await svc.kill_tasks([victim], scale=True)
        assert not isinstance(scaled, list)
        await settled(svc, app_id, 2)
        assert victim not in {t["id"] for t in svc.tasks(app_id)}
        assert (svc.app(app_id) or {})["instances"] == 2

        # delete: every instance stops, the App goes
        d = await svc.deploy({app_id: None})
        await until(lambda: d.id not in [x["id"] for x in svc.deployments()], "the delete")
        assert svc.app(app_id) is None and svc.tasks(app_id) == []
        await pods_eventually(client, app_id, lambda ps: ps == [])
        with pytest.raises(NotFound):
            await svc.deploy({app_id: None})


async def test_unplaceable_app_is_queued_with_reasons(cluster: MesosCluster) -> None:
    app_id = "/it/nowhere"
    async with service(cluster) as (svc, _):
        bad = definition(app_id, 2, constraints=[["hostname", "LIKE", "no-such-host"]])
        d = await svc.deploy({app_id: bad})

        def declined() -> bool:
            for item in svc.queue():
                if item["app"]["id"] == app_id:
                    summary = item["processedOffersSummary"]
                    return any(
                        r["reason"] == "UnfulfilledConstraint" and r["declined"] > 0
                        for r in summary["rejectSummaryLastOffers"]
                    )
            return False

        await until(declined, "an offer declined for the constraint")
        assert any("UnfulfilledConstraint" in line for line in svc.why(app_id))
        with pytest.raises(Invalid):
            await svc.deploy(
                {
                    "/it/a": definition("/it/a", 1, dependencies=["/it/b"]),
                    "/it/b": definition("/it/b", 1, dependencies=["/it/a"]),
                }
            )
        assert svc.app("/it/a") is None
        undo = await svc.cancel_deployment(d.id)
        assert undo is not None
        await until(lambda: svc.app(app_id) is None and not svc.deployments(), "the rollback")


@pytest.mark.slow  # ~10-20 s: `make test-slow` (the suite keeps under 15 min)
async def test_health_and_readiness_checks_gate_the_deployment(cluster: MesosCluster) -> None:
    app_id = "/it/web"
    async with service(cluster) as (svc, events):
        web = definition(
            app_id,
            2,
            cmd="python3 -m http.server $PORT0",
            portDefinitions=[{"port": 0, "name": "http"}],
            healthChecks=[{"protocol": "HTTP", "path": "/", "portIndex": 0, "intervalSeconds": 1}],
            readinessChecks=[
                {"portName": "http", "path": "/", "intervalSeconds": 2, "timeoutSeconds": 1}
            ],
        )
        d = await svc.deploy({app_id: web})
        await until(lambda: d.id not in svc.app_deployments(app_id), "the deployment")
        assert svc.counts(app_id)["healthy"] == 2
        assert [r["ready"] for r in svc.readiness(app_id)] == [True, True]
        tasks = svc.tasks(app_id)
        assert all(t["healthCheckResults"][0]["alive"] for t in tasks)
        assert len({t["ports"][0] for t in tasks}) == 2
        alive = [e for e in events.of("health_status_changed_event") if e["appId"] == app_id]
        assert len({e["taskId"] for e in alive if e["alive"]}) >= 2
        d = await svc.deploy({app_id: None})
        await until(lambda: not svc.deployments(), "the delete")


async def test_dependencies_order_the_steps_and_force_overrides_the_lock(
    cluster: MesosCluster,
) -> None:
    db, web = "/it/deps/db", "/it/deps/web"
    async with service(cluster) as (svc, events):
        d = await svc.deploy(
            {db: definition(db, 1), web: definition(web, 1, dependencies=[db])},
            groups={"/it/deps": {"dependencies": []}, "/it/empty": {"dependencies": []}},
        )
        [plan] = [x for x in svc.deployments() if x["id"] == d.id]
        order = [[a["app"] for a in step["actions"]] for step in plan["steps"]]
        assert order == [[db, web], [db], [web]]
        assert "/it/empty" in svc.group_ids()
        # a change while it runs is locked; force cancels the running deployment
        with pytest.raises(Locked):
            await svc.deploy({web: definition(web, 2, dependencies=[db])})
        forced = await svc.deploy({web: definition(web, 2, dependencies=[db])}, force=True)
        assert d.id in [e["id"] for e in events.of("deployment_failed")]
        await until(lambda: forced.id not in svc.app_deployments(web), "the forced change")
        await settled(svc, web, 2)
        gone = await svc.deploy({web: None, db: None}, groups={"/it/empty": None})
        await until(lambda: gone.id not in [x["id"] for x in svc.deployments()], "the delete")
        assert "/it/empty" not in svc.group_ids() and svc.tasks() == []


async def test_a_restarted_service_keeps_its_apps_and_instances(cluster: MesosCluster) -> None:
    app_id = "/it/durable"
    async with service(cluster) as (svc, _):
        await svc.deploy({app_id: definition(app_id, 2)})
        await settled(svc, app_id, 2)
        before = {t["id"] for t in running(svc, app_id)}
        version = (svc.app(app_id) or {})["version"]
    async with service(cluster) as (svc, _):
        assert (svc.app(app_id) or {})["version"] == version
        assert svc.app_versions(app_id) == [version]
        await until(lambda: {t["id"] for t in running(svc, app_id)} == before, "the adoption")
        assert svc.scheduler.launched == 0
        gone = await svc.deploy({app_id: None})
        await until(lambda: gone.id not in [x["id"] for x in svc.deployments()], "the delete")


async def test_a_restarted_service_carries_on_a_rolling_restart(
    cluster: MesosCluster, tmp_path: Path
) -> None:
    app_id = "/it/resumed"
    gate = tmp_path / "ready"
    gate.write_text("ok")
    strategy = {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.0}
    web = definition(
        app_id,
        2,
        cmd=f"python3 -m http.server $PORT0 --directory {tmp_path}",
        portDefinitions=[{"port": 0, "name": "http"}],
        readinessChecks=[
            {"portName": "http", "path": "/ready", "intervalSeconds": 2, "timeoutSeconds": 1}
        ],
        upgradeStrategy=strategy,
    )

    def fresh(svc: MarathonService) -> list[Instance]:
        config = config_version(svc.app(app_id) or {})
        return [i for i in svc.scheduler.of_app(app_id) if i.config_version == config]

    async with service(cluster) as (svc, _):
        await svc.deploy({app_id: web})
        await settled(svc, app_id, 2)
        old = {t["id"] for t in running(svc, app_id)}
        gate.unlink()  # new instances are not ready until it is back
        restart = await svc.restart(app_id)
        await until(
            lambda: any(i.readiness_result is not None for i in fresh(svc)),
            "a new instance probed, not ready",
        )
        assert restart.id in [d["id"] for d in svc.deployments()]
    async with service(cluster) as (svc, events):
        [resumed] = [d for d in svc.deployments() if d["id"] == restart.id]
        assert resumed["currentStep"] == 1
        assert resumed["currentActions"][0]["action"] == "RestartApplication"
        lowest: list[int] = []

        def check(event: Obj) -> None:
            ready = [
                i
                for i in svc.scheduler.of_app(app_id)
                if i.state == "TASK_RUNNING" and not i.killing and i.ready(False)
            ]
            lowest.append(len(ready))

        events.on_event = check
        await until(
            lambda: any(i.readiness_result is not None for i in fresh(svc)),
            "the new instance probed again",
        )
        assert restart.id in svc.app_deployments(app_id)  # still held by the gate
        gate.write_text("ok")
        await until(lambda: restart.id not in svc.app_deployments(app_id), "the restart")
        events.on_event = None
        assert restart.id in [e["id"] for e in events.of("deployment_success")]
        await settled(svc, app_id, 2)
        assert not old & {t["id"] for t in svc.tasks(app_id)}
        assert len(fresh(svc)) == 2
        assert lowest and min(lowest) >= math.ceil(2 * 0.5)
        async with asyncio.timeout(30):  # the ended deployment's ConfigMap goes
            while restart.id in await stored_deployments(svc.client):
                await asyncio.sleep(0.2)
        gone = await svc.deploy({app_id: None})
        await until(lambda: gone.id not in [x["id"] for x in svc.deployments()], "the delete")


async def stored_deployments(client: Client) -> set[str]:
    listed = await client.list(CONFIGMAPS, NAMESPACE, label_selector=DEPLOYMENT_LABEL)
    return {
        cm["metadata"]["name"].removeprefix(DEPLOYMENT_PREFIX) for cm in listed.get("items") or []
    }
