"""Marathon's REST API (``corral.marathon.http``) over an in-memory service: apps, tasks,
queue, deployments, info, leader, ping, metrics and the wire rules (errors, flags,
``//``, Content-Type).

Two kinds of client drive it: aiohttp's test client for the exact wire (codes, headers,
bodies), and the real ``marathon`` 0.13.0 client, whose calls are synchronous
(``requests``) and so run in a thread against the app served on a free port; its models
parse every answer (they refuse unknown keys). ``FakeService`` is the ``Service``
protocol in memory, imported by the groups and events tests too.
"""

from __future__ import annotations

import asyncio
import collections
import collections.abc
import itertools
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

# marathon 0.13.0 uses collections.Iterable (gone in Python 3.10) when it encodes models
collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]

from marathon import MarathonClient  # noqa: E402
from marathon.exceptions import (  # noqa: E402
    ConflictError,
    MarathonHttpError,
    NotFoundError,
)
from marathon.models import (  # noqa: E402
    MarathonApp,
    MarathonDeployment,
    MarathonInfo,
    MarathonQueueItem,
    MarathonTask,
)

from corral.marathon import apps, plan  # noqa: E402
from corral.marathon.events import EventBus  # noqa: E402
from corral.marathon.http import make_app  # noqa: E402
from corral.marathon.http_apps import parse_label_selector  # noqa: E402
from corral.marathon.service_api import (  # noqa: E402
    Conflict,
    Deployment,
    Locked,
    NotFound,
)

Obj = dict[str, Any]
T = TypeVar("T")
Client = TestClient[web.Request, web.Application]

pytestmark = [
    # the client logs with Logger.warn() (deprecated) on 3xx answers and some health checks
    pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning"),
]


class FakeService:
    """The ``service_api.Service`` protocol in memory. Versions are a counter of seconds;
    every change is a deployment that stays in ``deployments()`` while ``hold`` is set
    (else it is done at once); instances are tasks created and removed to match."""

    def __init__(self, sink: EventBus | None = None) -> None:
        self.sink = sink
        self.apps_: dict[str, Obj] = {}
        self.history: dict[str, list[Obj]] = {}
        self.tasks_: list[Obj] = []
        self.running: list[Obj] = []
        self.groups_: dict[str, Obj] = {}
        self.queue_: list[Obj] = []
        self.hold = False
        self.leader_: str | None = "127.0.0.1:8080"
        self.calls: list[tuple[str, Any]] = []
        self._ticks = itertools.count(1)
        self._ids = itertools.count(1)

    # --- helpers ---------------------------------------------------------------------
    def now(self) -> str:
        t = next(self._ticks)
        return f"2026-01-01T00:{t // 60:02d}:{t % 60:02d}.000Z"

    def _sync_tasks(self, app_id: str) -> None:
        app = self.apps_.get(app_id)
        mine = [t for t in self.tasks_ if t["appId"] == app_id]
        want = app["instances"] if app else 0
        for t in mine[want:]:
            self.tasks_.remove(t)
        for _ in range(want - len(mine)):
            n = next(self._ids)
            self.tasks_.append(
                {
                    "id": f"{app_id.strip('/').replace('/', '_')}.task-{n}",
                    "appId": app_id,
                    "host": f"agent-{n % 2}",
                    "ports": [31000 + n],
                    "servicePorts": [],
                    "slaveId": f"S{n % 2}",
                    "stagedAt": "2026-01-01T00:00:00.000Z",
                    "startedAt": "2026-01-01T00:00:01.000Z",
                    "version": app["version"] if app else "",
                    "state": "TASK_RUNNING",
                    "ipAddresses": [{"ipAddress": "10.0.0.1", "protocol": "IPv4"}],
                    "agentId": "not for the client",
                }
            )

    def _deployment(self, original: Mapping[str, Obj], target: Mapping[str, Obj]) -> Deployment:
        did = f"dep-{next(self._ids)}"
        version = self.now()
        d = plan.plan(original, target, deployment_id=did, version=version)
        if d["totalSteps"] == 0:
            d = {**d, "affectedApps": sorted(set(original) ^ set(target))}
        if self.hold and d["totalSteps"]:
            self.running.append(plan.at_step(d, 1))
        if self.sink is not None:
            self.sink.publish({"eventType": "deployment_success", "id": did})
        return Deployment(did, version)

    def _lock(self, app_ids: Iterable[str], force: bool) -> None:
        conflicts = plan.lock_conflict(self.running, app_ids)
        if conflicts and not force:
            raise Locked(conflicts)
        self.running = [d for d in self.running if d["id"] not in conflicts]

    # --- apps ------------------------------------------------------------------------
    def apps(self) -> list[Obj]:
        return [self.apps_[k] for k in sorted(self.apps_)]

    def app(self, app_id: str) -> Obj | None:
        return self.apps_.get(app_id)

    def app_versions(self, app_id: str) -> list[str] | None:
        if app_id not in self.apps_:
            return None
        return [a["version"] for a in reversed(self.history[app_id])]

    def app_version(self, app_id: str, version: str) -> Obj | None:
        return next((a for a in self.history.get(app_id, []) if a["version"] == version), None)

    def tasks(self, app_id: str | None = None) -> list[Obj]:
        return [t for t in self.tasks_ if app_id is None or t["appId"] == app_id]

    def counts(self, app_id: str) -> Obj:
        running = sum(t["state"] == "TASK_RUNNING" for t in self.tasks(app_id))
        staged = sum(t["state"] == "TASK_STAGING" for t in self.tasks(app_id))
        return {"staged": staged, "running": running, "healthy": running, "unhealthy": 0}

    def last_task_failure(self, app_id: str) -> Obj | None:
        return {
            "appId": app_id,
            "host": "agent-0",
            "message": "Command exited with status 1",
            "taskId": "old.task",
            "state": "TASK_FAILED",
            "timestamp": "2026-01-01T00:00:00.000Z",
            "version": "2026-01-01T00:00:00.000Z",
            "slaveId": "S0",
            "extra": "dropped",
        }

    def task_stats(self, app_id: str) -> Obj | None:
        counts = {"staged": 0, "running": 1, "healthy": 1, "unhealthy": 0}
        return {"totalSummary": {"stats": {"counts": counts, "lifeTime": {"averageSeconds": 1}}}}

    def readiness(self, app_id: str) -> list[Obj]:
        return []

    def app_deployments(self, app_id: str) -> list[str]:
        return plan.lock_conflict(self.running, [app_id])

    # --- groups ----------------------------------------------------------------------
    def group_dependencies(self) -> dict[str, list[str]]:
        return {g: list(r["dependencies"]) for g, r in self.groups_.items() if r["dependencies"]}

    def group_ids(self) -> list[str]:
        ids = {"/", *self.groups_}
        for app_id in self.apps_:
            parent = apps.parent_id(app_id)
            while parent != "/":
                ids.add(parent)
                parent = apps.parent_id(parent)
        return sorted(ids)

    # --- changes ---------------------------------------------------------------------
    async def deploy(
        self,
        changes: Mapping[str, Obj | None],
        *,
        force: bool = False,
        create_only: bool = False,
        groups: Mapping[str, Obj | None] | None = None,
    ) -> Deployment:
        self.calls.append(("deploy", {"changes": dict(changes), "force": force, "groups": groups}))
        for app_id, new in changes.items():
            assert new is None or "version" not in new, "http.py passes apps without version"
            if create_only and app_id in self.apps_:
                raise Conflict(f"An app with id [{app_id}] already exists.")
        self._lock(changes, force)
        original = dict(self.apps_)
        now = self.now()
        for app_id, new in changes.items():
            if new is None:
                self.apps_.pop(app_id, None)
                self.history.pop(app_id, None)
            else:
                stored = apps.with_version(self.apps_.get(app_id), new, now=now)
                if stored["version"] == now:
                    self.history.setdefault(app_id, []).append(stored)
                self.apps_[app_id] = stored
            self._sync_tasks(app_id)
        for group_id, record in (groups or {}).items():
            if record is None:
                self.groups_.pop(group_id, None)
            else:
                self.groups_[group_id] = {"dependencies": list(record.get("dependencies", []))}
        return self._deployment(original, self.apps_)

    async def restart(self, app_id: str, *, force: bool = False) -> Deployment:
        self.calls.append(("restart", {"app": app_id, "force": force}))
        if app_id not in self.apps_:
            raise NotFound(f"App '{app_id}' does not exist")
        self._lock([app_id], force)
        original = dict(self.apps_)
        old = self.apps_[app_id]
        self.apps_[app_id] = apps.with_version(old, old, now=self.now(), restart=True)
        self.history[app_id].append(self.apps_[app_id])
        return self._deployment(original, self.apps_)

    async def kill_tasks(
        self,
        task_ids: Iterable[str],
        *,
        scale: bool = False,
        wipe: bool = False,
        force: bool = False,
    ) -> Deployment | list[Obj]:
        ids = list(task_ids)
        self.calls.append(("kill", {"ids": ids, "scale": scale, "wipe": wipe, "force": force}))
        killed = [t for t in self.tasks_ if t["id"] in ids]
        if not killed:
            raise NotFound(f"Task '{ids[0] if ids else ''}' does not exist")
        for t in killed:
            self.tasks_.remove(t)
        if scale:
            by_app = collections.Counter(t["appId"] for t in killed)
            self._lock(by_app, force)
            original = dict(self.apps_)
            now = self.now()
            for app_id, n in by_app.items():
                old = self.apps_[app_id]
                new = {k: v for k, v in old.items() if k not in ("version", "versionInfo")}
                new["instances"] = max(0, old["instances"] - n)
                self.apps_[app_id] = apps.with_version(old, new, now=now)
                self.history[app_id].append(self.apps_[app_id])
            return self._deployment(original, self.apps_)
        for app_id in {t["appId"] for t in killed}:
            self._sync_tasks(app_id)
        return killed

    async def cancel_deployment(
        self, deployment_id: str, *, force: bool = False
    ) -> Deployment | None:
        self.calls.append(("cancel", {"id": deployment_id, "force": force}))
        found = [d for d in self.running if d["id"] == deployment_id]
        if not found:
            raise NotFound(f"DeploymentPlan {deployment_id} does not exist")
        self.running.remove(found[0])
        if force:
            return None
        return Deployment(f"dep-{next(self._ids)}", self.now())

    # --- the rest --------------------------------------------------------------------
    def deployments(self) -> list[Obj]:
        return list(self.running)

    def queue(self) -> list[Obj]:
        return list(self.queue_)

    async def reset_delay(self, app_id: str) -> None:
        self.calls.append(("reset_delay", app_id))
        if not any(q["app"]["id"] == app_id for q in self.queue_):
            raise NotFound(f"Application {app_id} not found in tasks queue.")

    def info(self) -> Obj:
        return {
            "name": "marathon",
            "version": "1.10.19-corral",
            "buildref": "corral",
            "elected": True,
            "leader": self.leader_,
            "frameworkId": "F-1",
            "http_config": {"http_port": 8080, "not_a_key": 1},
            "marathon_config": {"master": "corral", "framework_name": "marathon", "bogus": 2},
            "zookeeper_config": {"zk": "zk://none/marathon"},
            "unknown_top_level": True,
        }

    def leader(self) -> str | None:
        return self.leader_

    def metrics(self) -> Obj:
        return {"version": "4.0.0", "gauges": {}, "counters": {}}

    def why(self, app_id: str) -> list[str]:
        return []


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def bus() -> EventBus:
    return EventBus(queue_size=50, heartbeat_seconds=0.05)


@pytest.fixture
def service(bus: EventBus) -> FakeService:
    return FakeService(bus)


@pytest.fixture
async def client(service: FakeService, bus: EventBus) -> AsyncIterator[Client]:
    async with TestClient(TestServer(make_app(service, bus))) as c:
        yield c


@pytest.fixture
def marathon(client: Client) -> MarathonClient:
    return MarathonClient(str(client.make_url("/")).rstrip("/"))


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A synchronous client call, in a thread so that the server keeps serving."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def app_body(app_id: str = "/web", **fields: Any) -> Obj:
    return {"id": app_id, "cmd": "sleep 3600", "cpus": 0.1, "mem": 32, "instances": 2, **fields}


async def seed(service: FakeService, *bodies: Obj) -> None:
    for body in bodies:
        app = apps.normalize(body)
        await service.deploy({app["id"]: app})


async def json_of(resp: Any) -> Any:
    assert resp.content_type == "application/json", await resp.text()
    return json.loads(await resp.text())


# --- apps --------------------------------------------------------------------------------


async def test_create_app_with_the_client_answers_201_and_the_app(
    marathon: MarathonClient, service: FakeService
) -> None:
    app = MarathonApp(cmd="sleep 3600", cpus=0.1, mem=32, instances=5, labels={"team": "a"})
    created = await call(marathon.create_app, "/sleepy", app)
    assert isinstance(created, MarathonApp)
    assert created.id == "/sleepy" and created.instances == 5
    assert created.tasks_running == 0 and created.tasks_staged == 0
    assert len(created.deployments) == 1 and created.deployments[0].id.startswith("dep-")
    assert service.app("/sleepy") is not None


async def test_create_app_wire_location_header_and_duplicate(
    client: Client, service: FakeService
) -> None:
    resp = await client.post("/v2/apps", json=app_body())
    body = await json_of(resp)
    assert resp.status == 201
    assert resp.headers["Location"].endswith("/v2/apps/web")
    assert resp.headers["Marathon-Deployment-Id"] == body["deployments"][0]["id"]
    assert body["version"] == service.app("/web")["version"]  # type: ignore[index]
    MarathonApp.from_json(body)
    again = await client.post("/v2/apps", json=app_body())
    assert again.status == 409
    assert await json_of(again) == {"message": "An app with id [/web] already exists."}


async def test_create_app_client_conflict(marathon: MarathonClient, service: FakeService) -> None:
    await seed(service, app_body())
    with pytest.raises(ConflictError):
        await call(marathon.create_app, "/web", MarathonApp(cmd="sleep 1"))


@pytest.mark.parametrize(
    ("body", "status", "message", "path"),
    [
        ({"id": "/web", "cmd": "x", "cpus": -1}, 422, "Invalid JSON", "/cpus"),
        ({"id": "/Web", "cmd": "x"}, 422, None, "/id"),
        ({"id": "/web", "cmd": "x", "instances": "two"}, 422, "Invalid JSON", "/instances"),
        ([1, 2], 422, "Invalid JSON", "/"),
    ],
    ids=["negative-cpus", "uppercase-id", "string-instances", "not-an-object"],
)
async def test_invalid_apps_are_422_with_details(
    client: Client, service: FakeService, body: Any, status: int, message: str | None, path: str
) -> None:
    resp = await client.post("/v2/apps", json=body)
    out = await json_of(resp)
    assert resp.status == status
    if message is not None:
        assert out["message"] == message
    assert any(d["path"].startswith(path) for d in out["details"]), out
    assert service.apps() == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [(b"{not json", "Invalid JSON"), (b"", "Please specify data in JSON format")],
    ids=["malformed", "empty"],
)
async def test_malformed_json_is_400(client: Client, raw: bytes, message: str) -> None:
    resp = await client.post("/v2/apps", data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert (await json_of(resp))["message"] == message


async def test_invalid_app_with_the_client_raises(marathon: MarathonClient) -> None:
    with pytest.raises(MarathonHttpError) as err:
        await call(marathon.create_app, "/web", MarathonApp(cmd="x", cpus=-1.0))
    assert err.value.status_code == 422


async def test_list_apps_filters_and_embeds(marathon: MarathonClient, service: FakeService) -> None:
    await seed(
        service,
        app_body("/prod/web", cmd="python3 -m http.server", labels={"env": "prod", "tier": "web"}),
        app_body("/prod/db", cmd="postgres", labels={"env": "prod"}),
        app_body("/dev/web", cmd="python3 -m HTTP.server", labels={"env": "dev", "tier": "web"}),
    )
    every = await call(marathon.list_apps)
    assert [a.id for a in every] == ["/dev/web", "/prod/db", "/prod/web"]
    assert all(a.tasks_running == 2 and a.deployments == [] for a in every)
    assert all(a.tasks == [] for a in every)  # not embedded
    by_cmd = await call(marathon.list_apps, cmd="http.SERVER")
    assert [a.id for a in by_cmd] == ["/dev/web", "/prod/web"]
    by_id = await call(marathon.list_apps, app_id="PROD/")
    assert [a.id for a in by_id] == ["/prod/db", "/prod/web"]
    cases = {
        "env==prod": ["/prod/db", "/prod/web"],
        "env!=prod": ["/dev/web"],
        "tier": ["/dev/web", "/prod/web"],
        "env in (dev, qa)": ["/dev/web"],
        "env notin (dev),tier": ["/prod/web"],
    }
    for selector, expected in cases.items():
        found = await call(marathon.list_apps, label=selector)
        assert [a.id for a in found] == expected, selector
    with_tasks = await call(marathon.list_apps, app_id="/prod/web", embed_tasks=True)
    assert len(with_tasks[0].tasks) == 2
    assert all(isinstance(t, MarathonTask) for t in with_tasks[0].tasks)
    with_stats = await call(marathon.list_apps, embed_task_stats=True, embed_last_task_failure=True)
    assert with_stats[0].last_task_failure.state == "TASK_FAILED"


async def test_a_bad_label_selector_is_422(client: Client) -> None:
    resp = await client.get("/v2/apps", params={"label": "a==b==c"})
    assert resp.status == 422
    assert (await json_of(resp))["message"].startswith("Can not parse label selector a==b==c")


async def test_get_app_embeds_tasks_counts_deployments_and_failure(
    marathon: MarathonClient, client: Client, service: FakeService
) -> None:
    await seed(service, app_body())
    app = await call(marathon.get_app, "/web")  # the client's path is /v2/apps//web
    assert app.id == "/web" and len(app.tasks) == 2 and app.tasks_running == 2
    assert app.last_task_failure.task_id == "old.task"
    assert app.deployments == []
    raw = await json_of(await client.get("/v2/apps//web", params={"embed": "app.taskStats"}))
    assert raw["app"]["taskStats"]["totalSummary"]["stats"]["counts"]["running"] == 1
    assert "agentId" not in raw["app"]["tasks"][0]
    MarathonApp.from_json(raw["app"])
    with pytest.raises(NotFoundError):
        await call(marathon.get_app, "/nope")
    missing = await client.get("/v2/apps/nope")
    assert (missing.status, await json_of(missing)) == (
        404,
        {"message": "App '/nope' does not exist"},
    )


async def test_apps_of_a_group_with_star(client: Client, service: FakeService) -> None:
    await seed(service, app_body("/g/a"), app_body("/g/b"), app_body("/other"))
    out = await json_of(await client.get("/v2/apps/g/*"))
    assert [a["id"] for a in out["*"]] == ["/g/a", "/g/b"]
    assert (await client.get("/v2/apps/nope/*")).status == 404


async def test_scale_and_update_with_the_client(
    marathon: MarathonClient, service: FakeService
) -> None:
    await seed(service, app_body())
    result = await call(marathon.scale_app, "/web", instances=4)
    assert set(result) == {"deploymentId", "version"}
    assert service.app("/web")["instances"] == 4  # type: ignore[index]
    assert len(service.tasks("/web")) == 4
    await call(marathon.scale_app, "/web", delta=-1)
    assert service.app("/web")["instances"] == 3  # type: ignore[index]
    # a partial update keeps the other fields
    await call(marathon.update_app, "/web", MarathonApp(cmd="sleep 7200"))
    stored = service.app("/web")
    assert stored is not None and stored["cmd"] == "sleep 7200" and stored["instances"] == 3
    assert stored["mem"] == 32.0


async def test_put_full_replacement_patch_and_creation(
    client: Client, service: FakeService
) -> None:
    await seed(service, app_body(labels={"a": "1"}))
    full = await client.put(
        "/v2/apps/web", params={"partialUpdate": "FALSE"}, json={"cmd": "sleep 1"}
    )
    assert full.status == 200 and full.headers["Marathon-Deployment-Id"]
    stored = service.app("/web")
    assert stored is not None and stored["instances"] == 1 and stored["labels"] == {}
    patched = await client.patch("/v2/apps/web", json={"labels": {"b": "2"}})
    assert patched.status == 200
    assert service.app("/web")["labels"] == {"b": "2"}  # type: ignore[index]
    assert (await client.patch("/v2/apps/ghost", json={"cmd": "x"})).status == 404
    created = await client.put("/v2/apps/new/one", json={"cmd": "sleep 1"})
    assert created.status == 201 and created.headers["Location"].endswith("/v2/apps/new/one")
    assert set(await json_of(created)) == {"deploymentId", "version"}
    assert service.app("/new/one") is not None


async def test_update_many_apps_in_one_deployment(
    marathon: MarathonClient, service: FakeService
) -> None:
    await seed(service, app_body("/a"), app_body("/b"))
    result = await call(
        marathon.update_apps,
        [MarathonApp(id="/a", instances=3), MarathonApp(id="/c", cmd="sleep 1")],
    )
    assert set(result) == {"deploymentId", "version"}
    deploys = [c for c in service.calls if c[0] == "deploy"]
    assert set(deploys[-1][1]["changes"]) == {"/a", "/c"}
    assert service.app("/a")["instances"] == 3  # type: ignore[index]


async def test_update_many_apps_needs_ids(client: Client) -> None:
    resp = await client.put("/v2/apps", json=[{"cmd": "x"}])
    assert resp.status == 422


async def test_versions_and_rollback(marathon: MarathonClient, service: FakeService) -> None:
    await seed(service, app_body())
    first = service.app("/web")["version"]  # type: ignore[index]
    await call(marathon.update_app, "/web", MarathonApp(cmd="sleep 99"))
    versions = await call(marathon.list_versions, "/web")
    assert versions[-1] == first and len(versions) == 2
    old = await call(marathon.get_version, "/web", first)
    assert isinstance(old, MarathonApp) and old.cmd == "sleep 3600"
    await call(marathon.rollback_app, "/web", first)
    assert service.app("/web")["cmd"] == "sleep 3600"  # type: ignore[index]
    with pytest.raises(NotFoundError):
        await call(marathon.get_version, "/web", "2001-01-01T00:00:00.000Z")
    with pytest.raises(NotFoundError):
        await call(marathon.list_versions, "/ghost")


async def test_rollback_with_other_fields_is_422(client: Client, service: FakeService) -> None:
    await seed(service, app_body())
    resp = await client.put("/v2/apps/web", json={"version": "x", "cmd": "y"})
    assert resp.status == 422


async def test_locked_apps_answer_409_until_forced(
    marathon: MarathonClient, client: Client, service: FakeService
) -> None:
    await seed(service, app_body())
    service.hold = True
    await call(marathon.scale_app, "/web", instances=3)
    [running] = service.deployments()
    resp = await client.put("/v2/apps/web", params={"force": "False"}, json={"instances": 4})
    assert resp.status == 409
    assert await json_of(resp) == plan.locked_body([running["id"]])
    with pytest.raises(ConflictError):
        await call(marathon.scale_app, "/web", instances=5)
    app = await call(marathon.get_app, "/web")
    assert [d.id for d in app.deployments] == [running["id"]]
    await call(marathon.scale_app, "/web", instances=5, force=True)
    assert service.app("/web")["instances"] == 5  # type: ignore[index]


async def test_delete_app_forces_by_default(
    marathon: MarathonClient, client: Client, service: FakeService
) -> None:
    await seed(service, app_body("/a"), app_body("/b"))
    await call(marathon.delete_app, "/a")  # the client sends force=False
    assert service.calls[-1][1]["force"] is False
    resp = await client.delete("/v2/apps/b")
    assert resp.status == 200 and service.calls[-1][1]["force"] is True
    assert service.apps() == []
    with pytest.raises(NotFoundError):
        await call(marathon.delete_app, "/a")


async def test_restart(marathon: MarathonClient, service: FakeService) -> None:
    await seed(service, app_body())
    result = await call(marathon.restart_app, "/web", force=True)
    assert set(result) == {"deploymentId", "version"}
    assert service.calls[-1] == ("restart", {"app": "/web", "force": True})
    with pytest.raises(NotFoundError):
        await call(marathon.restart_app, "/ghost")


async def test_api_post_event_on_create_and_update(client: Client, bus: EventBus) -> None:
    sub = bus.subscribe()
    await client.post("/v2/apps", json=app_body())
    await client.put("/v2/apps/web", json={"instances": 3})
    batch = await sub.next_batch()
    assert batch is not None
    posts = [e for e in batch if e["eventType"] == "api_post_event"]
    assert [p["uri"] for p in posts] == ["/v2/apps", "/v2/apps/web"]
    assert posts[1]["appDefinition"]["instances"] == 3
    assert posts[1]["appDefinition"]["version"]
    assert all(p["timestamp"].endswith("Z") and "clientIp" in p for p in posts)


# --- tasks -------------------------------------------------------------------------------


async def test_list_tasks(marathon: MarathonClient, client: Client, service: FakeService) -> None:
    await seed(service, app_body("/a"), app_body("/b", instances=1))
    service.tasks_[0]["state"] = "TASK_STAGING"
    every = await call(marathon.list_tasks)
    assert len(every) == 3 and all(isinstance(t, MarathonTask) for t in every)
    of_a = await call(marathon.list_tasks, "/a")
    assert {t.app_id for t in of_a} == {"/a"} and len(of_a) == 2
    running = await json_of(await client.get("/v2/tasks", params={"status": "Running"}))
    assert len(running["tasks"]) == 2
    staging = await json_of(await client.get("/v2/tasks", params={"status[]": "staging"}))
    assert [t["id"] for t in staging["tasks"]] == [service.tasks_[0]["id"]]
    unknown = await json_of(await client.get("/v2/tasks", params={"status": "bogus"}))
    assert len(unknown["tasks"]) == 3
    assert (await client.get("/v2/apps/ghost/tasks")).status == 404
    group = await json_of(await client.get("/v2/apps/*/tasks"))
    assert len(group["tasks"]) == 3


async def test_kill_tasks_of_an_app(
    marathon: MarathonClient, client: Client, service: FakeService
) -> None:
    await seed(service, app_body("/a", instances=4))
    on_host = [t["id"] for t in service.tasks("/a") if t["host"] == "agent-1"]
    killed = await call(marathon.kill_tasks, "/a", host="agent-1")
    assert sorted(t.id for t in killed) == sorted(on_host)
    assert len(service.tasks("/a")) == 4  # replaced
    result = await call(marathon.kill_tasks, "/a", scale=True)
    assert set(result) == {"deploymentId", "version"}
    assert service.app("/a")["instances"] == 0  # type: ignore[index]
    both = await client.delete("/v2/apps/a/tasks", params={"scale": "true", "wipe": "TRUE"})
    assert (both.status, await json_of(both)) == (
        400,
        {"message": "You cannot use scale and wipe at the same time."},
    )
    none = await json_of(await client.delete("/v2/apps/a/tasks"))
    assert none == {"tasks": []}


async def test_kill_one_task(
    marathon: MarathonClient, client: Client, service: FakeService
) -> None:
    await seed(service, app_body("/a", instances=3))
    first, second, _ = (t["id"] for t in service.tasks("/a"))
    killed = await call(marathon.kill_task, "/a", first)
    assert isinstance(killed, MarathonTask) and killed.id == first
    result = await call(marathon.kill_task, "/a", second, scale=True)
    assert set(result) == {"deploymentId", "version"}
    assert service.app("/a")["instances"] == 2  # type: ignore[index]
    missing = await client.delete("/v2/apps/a/tasks/nope")
    assert (missing.status, await json_of(missing)) == (
        404,
        {"message": "Task 'nope' does not exist"},
    )


async def test_kill_given_tasks(
    marathon: MarathonClient, client: Client, service: FakeService
) -> None:
    await seed(service, app_body("/a", instances=2), app_body("/b", instances=2))
    ids = [service.tasks("/a")[0]["id"], service.tasks("/b")[0]["id"]]
    assert await call(marathon.kill_given_tasks, ids, scale=True, force=True) is True
    assert service.calls[-1] == ("kill", {"ids": ids, "scale": True, "wipe": False, "force": True})
    assert service.app("/a")["instances"] == 1  # type: ignore[index]
    resp = await client.post("/v2/tasks/delete", json={"ids": [service.tasks("/b")[0]["id"]]})
    assert resp.status == 200 and len((await json_of(resp))["tasks"]) == 1
    unknown = await client.post("/v2/tasks/delete", json={"ids": ["ghost"]})
    assert (unknown.status, await json_of(unknown)) == (200, {"tasks": []})
    no_ids = await client.post("/v2/tasks/delete", json={})
    assert no_ids.status == 422
    both = await client.post("/v2/tasks/delete?scale=true&wipe=true", json={"ids": []})
    assert both.status == 400


# --- queue, deployments, info, leader, ping, metrics -------------------------------------


async def test_queue_and_delay_reset(
    marathon: MarathonClient, client: Client, service: FakeService
) -> None:
    app = apps.with_version(None, apps.normalize(app_body()), now="2026-01-01T00:00:00.000Z")
    service.queue_.append(
        {
            "app": app,
            "count": 2,
            "delay": {"timeLeftSeconds": 0, "overdue": True, "extra": 1},
            "since": "2026-01-01T00:00:00.000Z",
            "processedOffersSummary": {"processedOffersCount": 3, "unusedOffersCount": 3},
            "lastUnusedOffers": [{"offer": {}}],
            "role": "*",
        }
    )
    [item] = await call(marathon.list_queue)
    assert isinstance(item, MarathonQueueItem) and item.count == 2
    assert item.app.id == "/web" and item.delay.overdue is True
    assert item.last_unused_offers is None
    [embedded] = await call(marathon.list_queue, embed_last_unused_offers=True)
    assert embedded.last_unused_offers == [{"offer": {}}]
    await call(marathon.reset_delay, "/web")
    assert service.calls[-1] == ("reset_delay", "/web")
    reset = await client.delete("/v2/queue//web/delay")
    assert reset.status == 204 and reset.content_type == "application/json"
    missing = await client.delete("/v2/queue/ghost/delay")
    assert (missing.status, await json_of(missing)) == (
        404,
        {"message": "Application /ghost not found in tasks queue."},
    )


async def test_deployments_list_and_cancel(
    marathon: MarathonClient, client: Client, service: FakeService
) -> None:
    service.hold = True
    await seed(service, app_body("/a"), app_body("/b"))
    listed = await call(marathon.list_deployments)
    assert all(isinstance(d, MarathonDeployment) for d in listed)
    assert [d.affected_apps for d in listed] == [["/a"], ["/b"]]
    assert (
        listed[0].current_step == 1 and listed[0].steps[0].actions[0].action == "StartApplication"
    )
    rollback = await call(marathon.delete_deployment, listed[0].id)
    assert set(rollback) == {"deploymentId", "version"}
    assert await call(marathon.delete_deployment, listed[1].id, force=True) == {}
    assert service.calls[-1] == ("cancel", {"id": listed[1].id, "force": True})
    forced = await client.delete("/v2/deployments/ghost", params={"force": "true"})
    assert (forced.status, await json_of(forced)) == (
        404,
        {"message": "DeploymentPlan ghost does not exist"},
    )


async def test_delete_deployment_with_force_is_202_and_empty(
    client: Client, service: FakeService
) -> None:
    service.hold = True
    await seed(service, app_body())
    [d] = service.deployments()
    resp = await client.delete(f"/v2/deployments/{d['id']}", params={"force": "True"})
    assert (resp.status, await resp.read()) == (202, b"")
    assert resp.headers["Content-Type"].startswith("application/json")


async def test_info_leader_ping_metrics(
    marathon: MarathonClient, client: Client, service: FakeService
) -> None:
    info = await call(marathon.get_info)
    assert isinstance(info, MarathonInfo)
    assert info.leader == "127.0.0.1:8080" and info.framework_id == "F-1"
    assert vars(info.marathon_config).get("master") == "corral"
    assert await call(marathon.get_leader) == {"leader": "127.0.0.1:8080"}
    assert await call(marathon.ping) == b'"pong"'  # the client accepts only JSON
    text = await client.get("/ping", headers={"Accept": "*/*"})
    assert (text.content_type, await text.text()) == ("text/plain", "pong")
    assert (await call(marathon.get_metrics))["version"] == "4.0.0"
    service.leader_ = None
    resp = await client.get("/v2/leader")
    assert (resp.status, await json_of(resp)) == (404, {"message": "There is no leader"})


# --- the wire ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v2/nothing", 404),
        ("GET", "/v2/apps/ghost", 404),
        ("POST", "/v2/apps/a/b", 405),
        ("PUT", "/v2/deployments", 405),
        ("GET", "/v2/apps//ghost/versions", 404),
    ],
    ids=["unknown-route", "unknown-app", "post-not-restart", "put-deployments", "versions"],
)
async def test_errors_are_json_with_a_message(
    client: Client, method: str, path: str, status: int
) -> None:
    resp = await client.request(method, path)
    assert resp.status == status
    assert "message" in await json_of(resp)


async def test_double_slashes_and_trailing_slash(client: Client, service: FakeService) -> None:
    await seed(service, app_body("/g/web"))
    for path in ("/v2/apps//g/web", "/v2/apps/g//web/", "/v2/apps/g/web"):
        resp = await client.get(path)
        assert resp.status == 200, path
        assert (await json_of(resp))["app"]["id"] == "/g/web"
    listed = await json_of(await client.get("/v2/apps/"))
    assert [a["id"] for a in listed["apps"]] == ["/g/web"]


async def test_a_crash_in_the_service_is_a_json_500(client: Client, service: FakeService) -> None:
    def boom() -> list[Obj]:
        raise RuntimeError("kaput")

    service.apps = boom  # type: ignore[method-assign]
    resp = await client.get("/v2/apps")
    assert (resp.status, await json_of(resp)) == (500, {"message": "RuntimeError: kaput"})


@pytest.mark.parametrize(
    ("selector", "labels", "holds"),
    [
        ("a", {"a": ""}, True),
        ("a", {"b": "1"}, False),
        ("a==1", {"a": "1"}, True),
        ("a == 1", {"a": "2"}, False),
        ("a!=1", {"a": "2"}, True),
        ("a!=1", {}, False),  # Marathon: the label must exist
        ("a in (1, 2)", {"a": "2"}, True),
        ("a notin (1,2)", {"a": "3"}, True),
        ("a notin (1,2)", {}, False),
        ("a==1,b", {"a": "1", "b": "x"}, True),
        ("a==1,b", {"a": "1"}, False),
        (r"a\ b==c\,d", {"a b": "c,d"}, True),
        ("a in ()", {"a": "1"}, False),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], holds: bool) -> None:
    assert parse_label_selector(selector)(labels) is holds


@pytest.mark.parametrize("selector", ["a==", "==b", "a in (1", "a=b", "a b"])
def test_bad_label_selectors(selector: str) -> None:
    with pytest.raises(ValueError, match="Can not parse label selector"):
        parse_label_selector(selector)


async def test_patch_many_apps_creates_nothing(client: Client, service: FakeService) -> None:
    await seed(service, app_body("/a"))
    ok = await client.patch("/v2/apps", json=[{"id": "/a", "instances": 3}])
    assert ok.status == 200 and service.app("/a")["instances"] == 3  # type: ignore[index]
    missing = await client.patch("/v2/apps", json=[{"id": "/ghost", "cmd": "x"}])
    assert missing.status == 404
    assert service.app("/ghost") is None


async def test_replace_many_apps_reports_the_item(client: Client) -> None:
    resp = await client.put("/v2/apps?partialUpdate=false", json=[{"id": "/a", "cmd": "x"}, 3])
    assert resp.status == 422
    assert (await json_of(resp))["details"][0]["path"].startswith("(1)")
