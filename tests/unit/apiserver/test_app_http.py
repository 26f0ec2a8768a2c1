"""``APIApp.build``'s low-level aiohttp server over real HTTP (the real Registry): what
aiohttp's Application, router and ``on_response_prepare`` signal used to add is still
there: the flow-control headers on every response, plain, streamed or an aiohttp error;
``Expect: 100-continue``; the 404 of a target that is no path; the body limit; Status
bodies for the API's own errors."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestClient

from corral.apiserver.app import APIApp
from corral.apiserver.discovery import Discovery
from corral.apiserver.flowcontrol import FLOW_SCHEMA_UID_HEADER, PRIORITY_LEVEL_UID_HEADER
from corral.apiserver.openapi import OpenAPIDocs
from corral.apiserver.store import Registry

NS = "/api/v1/namespaces/default"
PF = (FLOW_SCHEMA_UID_HEADER, PRIORITY_LEVEL_UID_HEADER)

# app.py keeps its request items under string keys (aiohttp recommends RequestKey)
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web.NotAppKeyWarning")


class APITestServer(BaseTestServer):  # type: ignore[type-arg]
    """aiohttp's test server around ``APIApp.build()``, as ``server.py`` runs it."""

    def __init__(self, api: APIApp, **kwargs: Any) -> None:
        self.api = api
        super().__init__(**kwargs)

    async def _make_runner(self, **kwargs: Any) -> web.ServerRunner:
        return web.ServerRunner(self.api.build())


def make_api(registry: Registry) -> APIApp:
    return APIApp(
        registry,
        Discovery(registry.resources, "https://127.0.0.1:6443"),
        OpenAPIDocs(registry.resources),
        tokens=set(),
    )


@pytest.fixture
async def client(registry: Registry) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    async with TestClient(APITestServer(make_api(registry))) as c:
        yield c


async def _raw(client: TestClient, request: bytes) -> bytes:  # type: ignore[type-arg]
    """Send ``request`` as is on a new connection; everything the server answers
    until it has sent a whole response (Content-Length) or closed."""
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        if head.startswith(b"HTTP/1.1 100"):
            head += await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        return head + await asyncio.wait_for(reader.readexactly(length), 5)
    finally:
        writer.close()


async def test_flow_control_headers_on_every_response(client: TestClient) -> None:  # type: ignore[type-arg]
    cm = orjson.dumps({"metadata": {"name": "c"}, "data": {"k": "v"}})
    responses = [
        await client.post(
            f"{NS}/configmaps", data=cm, headers={"Content-Type": "application/json"}
        ),
        await client.get(f"{NS}/configmaps/c"),
        await client.get(f"{NS}/configmaps/missing"),  # a Status
        await client.get("/healthz"),
        await client.get(f"{NS}/configmaps?watch=1&resourceVersion=0&timeoutSeconds=1"),
    ]
    assert [r.status for r in responses] == [201, 200, 404, 200, 200]
    assert responses[-1].headers.get("Transfer-Encoding") == "chunked"
    assert b'"ADDED"' in await responses[-1].read()
    for r in responses:
        assert all(r.headers.get(h) for h in PF), (r.url, r.headers)
    # an aiohttp error raised past the API's error mapping: prepared by aiohttp itself
    star = await _raw(client, b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
    assert star.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert star.endswith(b"\r\n\r\n404: Not Found")
    assert all(f"{h}: ".encode() in star for h in PF)


async def test_expect_continue_as_aiohttps_router(client: TestClient) -> None:  # type: ignore[type-arg]
    body = orjson.dumps({"metadata": {"name": "e"}, "data": {"k": "v"}})
    head = (
        f"POST {NS}/configmaps HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
    ).encode()
    out = await _raw(client, head + b"Expect: 100-continue\r\n\r\n" + body)
    assert out.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n")
    out = await _raw(client, head + b"Expect: bogus\r\n\r\n" + body)
    assert out.startswith(b"HTTP/1.1 417 Expectation Failed\r\n")
    assert out.endswith(b"Unknown Expect: bogus")
    assert FLOW_SCHEMA_UID_HEADER.encode() not in out  # refused before admission
    # an empty Expect header is no expectation
    out = await _raw(client, head + b"Expect:\r\n\r\n" + body.replace(b'"e"', b'"f"'))
    assert out.startswith(b"HTTP/1.1 201 Created\r\n")


async def test_body_limit_is_a_413_status(client: TestClient) -> None:  # type: ignore[type-arg]
    big = b'{"metadata":{"name":"big"},"data":{"k":"' + b"x" * (3 * 1024 * 1024 + 2048) + b'"}}'
    r = await client.post(
        f"{NS}/configmaps", data=io.BytesIO(big), headers={"Content-Type": "application/json"}
    )
    assert r.status == 413
    assert (await r.json())["kind"] == "Status"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),
        ({"IMPERSONATE-USER": "bob"}, 403),  # bob may not list pods
        ({"impersonate-group": "g"}, 500),  # groups without a user, as upstream
        ({"Impersonate-Extra-Scopes": "x"}, 500),
    ],
    ids=["none", "user-any-case", "group-alone", "extra-alone"],
)
async def test_impersonation_headers_in_any_case(
    client: TestClient,  # type: ignore[type-arg]
    headers: dict[str, str],
    status: int,
) -> None:
    assert (await client.get(f"{NS}/pods", headers=headers)).status == status
