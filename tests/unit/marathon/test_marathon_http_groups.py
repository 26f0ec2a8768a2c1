"""``/v2/groups`` (``corral.marathon.http_groups``) over the in-memory service of
``test_marathon_http``, with the real ``marathon`` 0.13.0 client where it has a call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from marathon import MarathonClient
from marathon.exceptions import ConflictError, MarathonHttpError, NotFoundError
from marathon.models import MarathonApp, MarathonGroup
from test_marathon_http import (
    Client,
    FakeService,
    app_body,
    call,
    json_of,
    seed,
)

from corral.marathon.events import EventBus
from corral.marathon.http import make_app

Obj = dict[str, Any]

pytestmark = [
    pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning"),
]

PRODUCT: Obj = {
    "id": "/product",
    "groups": [
        {
            "id": "database",
            "apps": [{"id": "db", "cmd": "postgres", "cpus": 0.1, "mem": 32}],
        },
        {
            "id": "service",
            "dependencies": ["../database"],
            "apps": [
                {"id": "web", "cmd": "sleep 1", "cpus": 0.1, "mem": 32, "instances": 2},
                {"id": "api", "cmd": "sleep 1", "cpus": 0.1, "mem": 32, "dependencies": ["web"]},
            ],
        },
    ],
}


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
async def client(service: FakeService) -> AsyncIterator[Client]:
    async with TestClient(TestServer(make_app(service, EventBus()))) as c:
        yield c


@pytest.fixture
def marathon(client: Client) -> MarathonClient:
    return MarathonClient(str(client.make_url("/")).rstrip("/"))


def last_deploy(service: FakeService) -> Obj:
    name, args = service.calls[-1]
    assert name == "deploy"
    return dict(args)


async def test_create_a_nested_group_with_dependencies(
    marathon: MarathonClient, service: FakeService
) -> None:
    result = await call(marathon.create_group, MarathonGroup.from_json(PRODUCT))
    assert set(result) == {"deploymentId", "version"}
    assert [a["id"] for a in service.apps()] == [
        "/product/database/db",
        "/product/service/api",
        "/product/service/web",
    ]
    assert service.app("/product/service/api")["dependencies"] == ["/product/service/web"]  # type: ignore[index]
    assert service.group_dependencies() == {"/product/service": ["/product/database"]}
    groups = last_deploy(service)["groups"]
    assert set(groups) == {"/product", "/product/database", "/product/service"}


async def test_create_answers_201_with_location_and_refuses_an_existing_group(
    client: Client, service: FakeService
) -> None:
    resp = await client.post("/v2/groups", json=PRODUCT)
    assert resp.status == 201
    assert resp.headers["Location"].endswith("/v2/groups/product")
    assert resp.headers["Marathon-Deployment-Id"] == (await json_of(resp))["deploymentId"]
    again = await client.post("/v2/groups", json={"id": "/product"})
    assert (again.status, await json_of(again)) == (
        409,
        {"message": "Group /product is already created. Use PUT to change this group."},
    )
    relative = await client.post("/v2/groups/product", json={"id": "extra"})
    assert relative.status == 201
    assert "/product/extra" in service.group_ids()


async def test_get_groups_with_the_client(marathon: MarathonClient, service: FakeService) -> None:
    await call(marathon.create_group, MarathonGroup.from_json(PRODUCT))
    root_children = await call(marathon.list_groups)
    assert [g.id for g in root_children] == ["/product"]
    product = await call(marathon.get_group, "/product")
    assert isinstance(product, MarathonGroup)
    assert [g.id for g in product.groups] == ["/product/database", "/product/service"]
    service_group = product.groups[1]
    assert service_group.dependencies == ["/product/database"]
    assert [a.id for a in service_group.apps] == ["/product/service/api", "/product/service/web"]
    assert all(isinstance(a, MarathonApp) for a in service_group.apps)
    assert product.version == max(a["version"] for a in service.apps())
    with pytest.raises(NotFoundError):
        await call(marathon.get_group, "/nope")


async def test_group_embeds(client: Client, service: FakeService) -> None:
    await client.post("/v2/groups", json=PRODUCT)
    only_apps = await json_of(
        await client.get("/v2/groups/product/service", params={"embed": "group.apps"})
    )
    assert "groups" not in only_apps and "pods" not in only_apps
    assert [a["id"] for a in only_apps["apps"]] == ["/product/service/api", "/product/service/web"]
    with_counts = await json_of(
        await client.get(
            "/v2/groups/product/service",
            params=[("embed", "group.apps"), ("embed", "group.apps.counts")],
        )
    )
    assert with_counts["apps"][1]["tasksRunning"] == 2
    shallow = await json_of(await client.get("/v2/groups", params={"embed": "group.groups"}))
    assert [g["id"] for g in shallow["groups"]] == ["/product"]
    assert "apps" not in shallow["groups"][0]
    listed = await json_of(await client.get("/v2/groups/product/apps"))
    assert len(listed) == 3


async def test_update_replaces_the_apps_it_gives(
    marathon: MarathonClient, service: FakeService
) -> None:
    await call(marathon.create_group, MarathonGroup.from_json(PRODUCT))
    update = MarathonGroup.from_json(
        {"apps": [{"id": "web", "cmd": "sleep 2", "cpus": 0.1, "mem": 32}]}
    )
    await call(marathon.update_group, "/product/service", update, force=True)
    changes = last_deploy(service)["changes"]
    assert changes["/product/service/api"] is None
    assert changes["/product/service/web"]["cmd"] == "sleep 2"
    assert "/product/database/db" not in changes
    assert last_deploy(service)["force"] is True
    assert service.group_dependencies() == {"/product/service": ["/product/database"]}


async def test_update_creates_and_keeps_what_is_not_given(
    client: Client, service: FakeService
) -> None:
    await client.post("/v2/groups", json=PRODUCT)
    resp = await client.put("/v2/groups/product", json={"dependencies": []})
    assert resp.status == 200
    assert len(service.apps()) == 3
    created = await client.put(
        "/v2/groups/fresh", json={"apps": [{"id": "x", "cmd": "sleep 1", "mem": 32}]}
    )
    assert created.status == 200
    assert service.app("/fresh/x") is not None


async def test_group_ids_must_be_children(client: Client) -> None:
    resp = await client.post(
        "/v2/groups", json={"id": "/a", "apps": [{"id": "/b/x", "cmd": "sleep 1"}]}
    )
    assert resp.status == 422
    details = (await json_of(resp))["details"]
    assert details == [{"path": "/apps(0)/id", "errors": ["Identifier is not child of '/a'"]}]


async def test_scale_group(marathon: MarathonClient, client: Client, service: FakeService) -> None:
    await call(marathon.create_group, MarathonGroup.from_json(PRODUCT))
    await call(marathon.scale_group, "/product/service", 2.5)
    assert service.app("/product/service/web")["instances"] == 5  # type: ignore[index]
    assert service.app("/product/service/api")["instances"] == 3  # type: ignore[index]
    assert service.app("/product/database/db")["instances"] == 1  # type: ignore[index]
    mixed = await client.put("/v2/groups/product", json={"scaleBy": 2, "id": "/product"})
    assert mixed.status == 422
    assert (await client.put("/v2/groups/ghost", json={"scaleBy": 2})).status == 404


async def test_versions_and_rollback(
    marathon: MarathonClient, client: Client, service: FakeService
) -> None:
    await seed(service, app_body("/g/a"))
    before = (await call(marathon.get_group, "/g")).version
    await seed(service, app_body("/g/b"))
    await call(marathon.scale_app, "/g/a", instances=5)
    versions = await json_of(await client.get("/v2/groups/g/versions"))
    assert versions[-1] == before and len(versions) == 3
    then = await json_of(await client.get(f"/v2/groups/g/versions/{before}"))
    assert [a["id"] for a in then["apps"]] == ["/g/a"]
    assert then["apps"][0]["instances"] == 2
    MarathonGroup.from_json(then)
    await call(marathon.rollback_group, "/g", before)  # PUT /v2/groups/g/versions/{v}
    changes = last_deploy(service)["changes"]
    assert changes["/g/b"] is None and changes["/g/a"]["instances"] == 2
    body_rollback = await client.put("/v2/groups/g", json={"version": "1999-01-01T00:00:00.000Z"})
    assert body_rollback.status == 422
    assert (await json_of(body_rollback))["message"].startswith("Group /g not available")
    assert (await client.get("/v2/groups/g/versions/1999-01-01T00:00:00.000Z")).status == 404


async def test_delete_group(marathon: MarathonClient, client: Client, service: FakeService) -> None:
    await call(marathon.create_group, MarathonGroup.from_json(PRODUCT))
    await seed(service, app_body("/other"))
    await call(marathon.delete_group, "/product/service")
    assert [a["id"] for a in service.apps()] == ["/other", "/product/database/db"]
    assert "/product/service" not in service.group_ids()
    with pytest.raises(NotFoundError):
        await call(marathon.delete_group, "/ghost")
    resp = await client.delete("/v2/groups")
    assert resp.status == 200 and service.apps() == []


async def test_locked_group_change_is_409(marathon: MarathonClient, service: FakeService) -> None:
    await call(marathon.create_group, MarathonGroup.from_json(PRODUCT))
    service.hold = True
    await call(marathon.scale_group, "/product", 2)
    with pytest.raises(ConflictError):
        await call(marathon.scale_group, "/product", 3)
    await call(marathon.delete_group, "/product", force=True)
    assert service.apps() == []


async def test_an_invalid_app_in_a_group_is_422(marathon: MarathonClient) -> None:
    bad = MarathonGroup.from_json({"id": "/g", "apps": [{"id": "a", "cmd": "x", "cpus": -1}]})
    with pytest.raises(MarathonHttpError) as err:
        await call(marathon.create_group, bad)
    assert err.value.status_code == 422
