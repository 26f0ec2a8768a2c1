"""Marathon's event bus and ``/v2/events`` (``corral.marathon.events``): fan-out,
``event_type`` filters, slow subscribers dropped, attach/detach events, the SSE framing,
and the real ``marathon`` 0.13.0 client's ``event_stream`` parsing what it gets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import requests
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from marathon import MarathonClient
from marathon.models.events import (
    MarathonApiPostEvent,
    MarathonDeploymentSuccess,
    MarathonEventStreamAttached,
)
from test_marathon_http import Client, FakeService, app_body

from corral.marathon.events import ATTACHED, DETACHED, EventBus, frame
from corral.marathon.http import make_app

Obj = dict[str, Any]

pytestmark = [
    pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),  # requests' abandoned stream
]

SSE = {"Accept": "text/event-stream"}


# --- the bus -----------------------------------------------------------------------------


def drain(sub: Any) -> list[Obj]:
    out: list[Obj] = list(sub._buffer)
    sub._buffer.clear()
    return out


def types_of(events: list[Obj]) -> list[str]:
    return [e["eventType"] for e in events]


async def test_the_bus_fans_out_and_filters() -> None:
    bus = EventBus()
    every = bus.subscribe(remote="1.1.1.1")
    deployments = bus.subscribe(["deployment_success"], remote="2.2.2.2")
    bus.publish({"eventType": "deployment_success", "id": "d1"})
    bus.publish({"eventType": "status_update_event", "taskId": "t"})
    assert types_of(drain(every)) == [
        ATTACHED,
        ATTACHED,
        "deployment_success",
        "status_update_event",
    ]
    got = drain(deployments)
    assert types_of(got) == ["deployment_success"]
    assert got[0]["timestamp"].endswith("Z")


async def test_a_slow_subscriber_is_dropped_not_the_bus() -> None:
    bus = EventBus(queue_size=3)
    slow = bus.subscribe(remote="slow")
    fast = bus.subscribe(remote="fast")
    seen: list[Obj] = []
    for i in range(3):
        bus.publish({"eventType": "deployment_info", "n": i})
        seen += drain(fast)
    assert slow.closed and bus.subscribers == 1 and bus.dropped == 1
    assert await slow.next_batch() is None
    bus.publish({"eventType": "deployment_success", "id": "after"})
    seen += drain(fast)
    assert types_of(seen) == [
        ATTACHED,
        "deployment_info",
        DETACHED,  # slow: its buffer (both attached events and one more) was full
        "deployment_info",
        "deployment_info",
        "deployment_success",
    ]
    assert seen[2]["remoteAddress"] == "slow"


async def test_next_batch_waits_for_an_event_and_close_all_ends_streams() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    drain(sub)
    waiter = asyncio.ensure_future(sub.next_batch())
    await asyncio.sleep(0)
    assert not waiter.done()
    bus.publish({"eventType": "deployment_success", "id": "x"})
    assert types_of(await waiter or []) == ["deployment_success"]
    bus.close_all()
    assert await sub.next_batch() is None and bus.subscribers == 0


def test_a_frame_is_an_sse_event_with_one_line_of_json() -> None:
    event = {"eventType": "api_post_event", "appDefinition": {"cmd": "a\nb"}}
    raw = frame(event)
    head, data, end = raw.split(b"\n", 2)
    assert head == b"event: api_post_event" and end == b"\n"
    assert data.startswith(b"data: ") and json.loads(data[6:]) == event


# --- the stream --------------------------------------------------------------------------


@pytest.fixture
def bus() -> EventBus:
    return EventBus(heartbeat_seconds=0.05)


@pytest.fixture
async def client(bus: EventBus) -> AsyncIterator[Client]:
    async with TestClient(TestServer(make_app(FakeService(bus), bus))) as c:
        yield c


async def until(check: Callable[[], bool]) -> None:
    """Wait (with a deadline) for the server side to reach a state."""
    async with asyncio.timeout(10):
        while not check():
            await asyncio.sleep(0.01)


async def next_event(resp: ClientResponse) -> Obj:
    """Read up to the next whole frame (skipping heartbeats); its parsed data."""
    kind = None
    while True:
        line = (await resp.content.readline()).decode()
        if line.startswith("event: "):
            kind = line[len("event: ") :].strip()
        elif line.startswith("data: "):
            event: Obj = json.loads(line[len("data: ") :])
            assert event["eventType"] == kind
            return event


async def test_the_stream_sends_marathon_frames(client: Client, bus: EventBus) -> None:
    resp = await client.get("/v2/events", headers=SSE)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    attached = await next_event(resp)
    assert attached["eventType"] == ATTACHED and attached["remoteAddress"] == "127.0.0.1"
    await client.post("/v2/apps", json=app_body())
    by_type = {e["eventType"]: e for e in [await next_event(resp), await next_event(resp)]}
    assert set(by_type) == {"api_post_event", "deployment_success"}
    assert by_type["api_post_event"]["uri"] == "/v2/apps"
    resp.close()


async def test_event_type_filters_and_detach_events(client: Client, bus: EventBus) -> None:
    watcher = await client.get(
        "/v2/events",
        headers=SSE,
        params=[("event_type", DETACHED), ("event_type", "deployment_success")],
    )
    await until(lambda: bus.subscribers == 1)
    other = await client.get("/v2/events", headers=SSE)
    await until(lambda: bus.subscribers == 2)
    other.close()
    detached = await next_event(watcher)
    assert detached["eventType"] == DETACHED
    bus.publish({"eventType": "status_update_event", "taskId": "skipped"})
    bus.publish({"eventType": "deployment_success", "id": "kept"})
    assert (await next_event(watcher))["id"] == "kept"
    watcher.close()


async def test_heartbeats_are_blank_lines(client: Client, bus: EventBus) -> None:
    resp = await client.get("/v2/events", headers=SSE, params={"event_type": "none"})
    assert await resp.content.readline() == b"\n"
    resp.close()


async def test_without_accept_event_stream_it_is_406(client: Client) -> None:
    resp = await client.get("/v2/events", headers={"Accept": "application/json"})
    assert resp.status == 406
    assert "text/event-stream" in (await resp.json())["message"]


async def test_the_marathon_client_reads_the_stream(client: Client, bus: EventBus) -> None:
    session = requests.Session()
    marathon = MarathonClient(str(client.make_url("/")).rstrip("/"), sse_session=session)

    def read(n: int) -> list[Any]:
        stream = marathon.event_stream(
            event_types=[MarathonEventStreamAttached, "api_post_event", "deployment_success"]
        )
        return [next(stream) for _ in range(n)]

    reader = asyncio.ensure_future(asyncio.to_thread(read, 3))
    await until(lambda: bus.subscribers == 1)
    await client.post("/v2/apps", json=app_body())
    attached, *changes = await reader
    session.close()
    assert isinstance(attached, MarathonEventStreamAttached)
    [posted] = [e for e in changes if isinstance(e, MarathonApiPostEvent)]
    [done] = [e for e in changes if not isinstance(e, MarathonApiPostEvent)]
    assert posted.app_definition["id"] == "/web"
    assert isinstance(done, MarathonDeploymentSuccess) and done.id.startswith("dep-")
