"""One subscriber's event stream: a chunked HTTP response of RecordIO-framed JSON events.

The Mesos master (``corral.mesos``) owns one ``EventStream`` per subscribed framework
(and per operator subscriber), the agent one per subscribed executor. Handlers put events
with ``send`` (never awaiting, so the owner's state changes stay atomic); the HTTP
handler runs ``pump``, which writes each event as
one chunk, adds a HEARTBEAT every ``heartbeat`` seconds of silence, and returns when the
stream is closed by the master (``close``) or the peer went away (a failed write). Mesos
requires ``200``, ``Transfer-Encoding: chunked`` and a ``Mesos-Stream-Id`` header; the
first event is SUBSCRIBED.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import orjson
from aiohttp import web

from corral.util.recordio import encode

Obj = dict[str, Any]

_CLOSE = object()


class EventStream:
    """Events queued for one subscriber; ``pump`` writes them out."""

    def __init__(self, heartbeat: float = 15.0) -> None:
        self.id = str(uuid.uuid4())
        self.heartbeat = heartbeat
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self.closed = False
        self.sent = 0

    def send(self, event: Obj) -> None:
        if not self.closed:
            self._queue.put_nowait(event)

    def close(self, last: Obj | None = None) -> None:
        """End the stream, after ``last`` (e.g. an ERROR event) if given."""
        if self.closed:
            return
        if last is not None:
            self._queue.put_nowait(last)
        self.closed = True
        self._queue.put_nowait(_CLOSE)

    async def pump(self, request: web.Request, headers: dict[str, str] | None = None) -> None:
        """Serve the stream on ``request`` until closed or the peer goes away."""
        resp = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "application/json",
                "Mesos-Stream-Id": self.id,
                "Cache-Control": "no-cache",
                **(headers or {}),
            },
        )
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            while True:
                try:
                    async with asyncio.timeout(self.heartbeat):
                        item = await self._queue.get()
                except TimeoutError:
                    item = {"type": "HEARTBEAT"}
                if item is _CLOSE:
                    break
                await resp.write(encode(orjson.dumps(item)))
                self.sent += 1
            with contextlib.suppress(ConnectionError, RuntimeError):
                await resp.write_eof()
        finally:
            self.closed = True
