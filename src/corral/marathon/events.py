"""Marathon's event bus and its Server-Sent Events stream, ``GET /v2/events``.

``EventBus`` implements ``service_api.EventSink``: the service publishes Marathon's
events to it (``status_update_event``, ``deployment_info`` ...), ``http.py`` publishes
``api_post_event``, and every attached ``/v2/events`` stream gets a copy. It must be
used from the event loop's thread (``publish`` is synchronous and never blocks).

Each subscriber has a bounded buffer (``queue_size`` events): a subscriber that falls
that far behind is dropped (its stream ends) and the bus goes on, as Marathon's
``HttpEventStreamHandleActor`` closes "slow event consumers". A stream that attaches or
detaches is itself an event (``event_stream_attached``/``event_stream_detached`` with
``remoteAddress``), published to every stream, the new one included.

The stream (Marathon's ``HttpEventStreamServlet``, Jetty's ``EventSourceServlet``)::

    GET /v2/events?event_type=a&event_type=b      Accept: text/event-stream
    200 text/event-stream
    event: event_stream_attached
    data: {"remoteAddress":"127.0.0.1","eventType":"event_stream_attached","timestamp":...}

    event: ...

``event_type`` (repeatable) keeps only those types; none means all. A blank line is
sent every ``heartbeat_seconds`` while nothing happens (Jetty sends one every 10 s), so
proxies keep the connection and a closed one is noticed. Without ``text/event-stream``
in ``Accept`` the answer is 406 with a Marathon error body (Jetty answers 405).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Iterable
from typing import Any

import orjson
from aiohttp import web

from corral.marathon.apps import timestamp

__all__ = ["ATTACHED", "DETACHED", "EventBus", "Subscription", "frame", "stream"]

Obj = dict[str, Any]

ATTACHED = "event_stream_attached"
DETACHED = "event_stream_detached"
EVENT_STREAM = "text/event-stream"


def frame(event: Obj) -> bytes:
    """One SSE frame: ``event: <eventType>\\ndata: <one-line JSON>\\n\\n``."""
    return b"event: %s\ndata: %s\n\n" % (
        str(event.get("eventType", "")).encode(),
        orjson.dumps(event),
    )


class Subscription:
    """One attached stream: the events it wants, buffered until its handler sends them.
    ``closed`` once dropped (too slow) or when the bus shuts down."""

    def __init__(self, event_types: Iterable[str], remote: str, limit: int) -> None:
        self.event_types = frozenset(event_types)
        self.remote = remote
        self.limit = limit
        self.closed = False
        self._buffer: collections.deque[Obj] = collections.deque()
        self._ready = asyncio.Event()

    def wants(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types

    def offer(self, event: Obj) -> bool:
        """Buffer ``event``; False (and closed) when the buffer is full."""
        if self.closed:
            return False
        if len(self._buffer) >= self.limit:
            self.close()
            return False
        self._buffer.append(event)
        self._ready.set()
        return True

    def close(self) -> None:
        self.closed = True
        self._buffer.clear()
        self._ready.set()

    async def next_batch(self) -> list[Obj] | None:
        """The events buffered since the last call (waiting for one); None once closed."""
        while not self._buffer and not self.closed:
            self._ready.clear()
            await self._ready.wait()
        if self.closed:
            return None
        batch = list(self._buffer)
        self._buffer.clear()
        return batch


class EventBus:
    """Fan-out of Marathon events to the attached streams (module docstring)."""

    def __init__(self, *, queue_size: int = 1000, heartbeat_seconds: float = 10.0) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.queue_size = queue_size
        self.heartbeat_seconds = heartbeat_seconds
        self._subscribers: list[Subscription] = []
        self.dropped = 0  # subscribers dropped for being too slow

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, event: Obj) -> None:
        """Send ``event`` (with ``eventType``; ``timestamp`` is added when missing) to
        every stream that wants it; drop the ones whose buffer is full."""
        if "timestamp" not in event:
            event = {**event, "timestamp": timestamp(time.time())}
        event_type = str(event.get("eventType", ""))
        for sub in list(self._subscribers):
            if sub.wants(event_type) and not sub.offer(event):
                self.dropped += 1
                self._remove(sub)

    def subscribe(self, event_types: Iterable[str] = (), remote: str = "") -> Subscription:
        """Attach a stream; every stream (this one too) is told with ``event_stream_attached``."""
        sub = Subscription(event_types, remote, self.queue_size)
        self._subscribers.append(sub)
        self.publish({"eventType": ATTACHED, "remoteAddress": remote})
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Detach a stream (idempotent); the others are told with ``event_stream_detached``."""
        sub.close()
        self._remove(sub)

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)
            self.publish({"eventType": DETACHED, "remoteAddress": sub.remote})

    def close_all(self) -> None:
        """End every stream (server shutdown)."""
        for sub in list(self._subscribers):
            sub.close()
        self._subscribers.clear()


def _accepts_event_stream(request: web.Request) -> bool:
    for value in request.headers.getall("Accept", []):
        for media in value.split(","):
            if media.split(";")[0].strip().lower() == EVENT_STREAM:
                return True
    return False


async def stream(request: web.Request, bus: EventBus) -> web.StreamResponse:
    """``GET /v2/events``: stream the bus's events until the client goes away."""
    if not _accepts_event_stream(request):
        return web.json_response(
            {"message": "Not Acceptable: send 'Accept: text/event-stream' for /v2/events"},
            status=406,
        )
    resp = web.StreamResponse(
        status=200,
        headers={"Content-Type": f"{EVENT_STREAM};charset=utf-8", "Cache-Control": "no-cache"},
    )
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    sub = bus.subscribe(request.query.getall("event_type", []), request.remote or "")
    gone = False
    try:
        while True:
            try:
                async with asyncio.timeout(bus.heartbeat_seconds):
                    batch = await sub.next_batch()
            except TimeoutError:
                await resp.write(b"\n")
                continue
            if batch is None:
                break
            await resp.write(b"".join(frame(e) for e in batch))
    except ConnectionError:
        gone = True  # the client went away
    finally:
        bus.unsubscribe(sub)
    if not gone:
        with contextlib.suppress(ConnectionError):
            await resp.write_eof()
    return resp
