"""The scheduler's ``Scheduled`` Events, written beside the bindings without slowing them.

Kubernetes' scheduler records ``Successfully assigned NS/POD to NODE`` (type Normal,
reason ``Scheduled``, action ``Binding``) through the events.k8s.io/v1 API with
``reportingController`` = the scheduler's name and ``reportingInstance`` =
``<name>-<hostname>``; ``kubectl describe pod`` shows it (``From default-scheduler``).

Shape: the binding task only calls ``ScheduledEvents.add`` (no awaiting, never raises):
the event goes into a bounded buffer (``MAX_PENDING``; past it the oldest is dropped and
counted, as client-go's broadcaster drops when its channel is full). ``run`` (one task in
the scheduler's TaskGroup) drains the buffer, writing at most ``MAX_IN_FLIGHT`` events
at a time, and only one while bindings are in flight (``busy``): events never hold a
binding slot, and during a burst they trail the bindings rather than compete with them
for the API server. A write that fails is logged at debug level and dropped: an event is
best effort.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from corral.client.rest import Client, Resource
from corral.util.clock import Clock, SystemClock

log = logging.getLogger("corral.scheduler")

EVENTS_V1 = Resource("events.k8s.io", "v1", "events")
SCHEDULED = "Scheduled"
BINDING = "Binding"
MAX_PENDING = 4096
MAX_IN_FLIGHT = 4

Obj = dict[str, Any]


def micro_time(t: float) -> str:
    """A MicroTime (``eventTime``): RFC 3339 with microseconds, UTC."""
    secs, micros = divmod(round(t * 1_000_000), 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{micros:06d}Z"


def scheduled_event(
    pod: Obj, node: str, controller: str, instance: str, now: float
) -> tuple[str, Obj]:
    """(namespace, events.k8s.io/v1 Event) for ``pod`` bound to ``node``, as
    kube-scheduler writes it."""
    meta = pod.get("metadata") or {}
    ns, name = meta.get("namespace") or "default", meta.get("name", "")
    return ns, {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        # named as client-go names events: <object>.<unix nanoseconds in hex>
        "metadata": {"name": f"{name}.{int(now * 1e9):x}", "namespace": ns},
        "eventTime": micro_time(now),
        "reportingController": controller,
        "reportingInstance": instance,
        "action": BINDING,
        "reason": SCHEDULED,
        "regarding": {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": ns,
            "name": name,
            "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        },
        "note": f"Successfully assigned {ns}/{name} to {node}",
        "type": "Normal",
    }


class ScheduledEvents:
    """A bounded buffer of Events and the one task that writes them (module docstring)."""

    def __init__(
        self,
        client: Client,
        controller: str,
        instance: str,
        clock: Clock | None = None,
        *,
        busy: Callable[[], bool] = lambda: False,
        max_pending: int = MAX_PENDING,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.client = client
        self.controller = controller
        self.instance = instance
        self.clock = clock or SystemClock()
        self._busy = busy
        self._pending: deque[tuple[str, Obj]] = deque()
        self._max_pending = max_pending
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._wake = asyncio.Event()  # something was added
        self._done = asyncio.Event()  # a write finished
        self.written = 0
        self.dropped = 0

    def add(self, pod: Obj, node: str) -> None:
        """Queue the ``Scheduled`` Event of ``pod`` on ``node``; returns at once."""
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append(
            scheduled_event(pod, node, self.controller, self.instance, self.clock.now())
        )
        self._wake.set()

    def limit(self) -> int:
        """Writes allowed in flight now: one while bindings are in flight (``busy``), so
        events trail a burst of bindings instead of competing with it; else the maximum."""
        return 1 if self._busy() else self._max_in_flight

    async def run(self) -> None:
        """Write queued Events until cancelled."""
        async with asyncio.TaskGroup() as tg:
            while True:
                if not self._pending:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if self._in_flight >= self.limit():
                    self._done.clear()
                    await self._done.wait()
                    continue
                ns, ev = self._pending.popleft()
                self._in_flight += 1
                tg.create_task(self._write(ns, ev))

    async def _write(self, ns: str, ev: Obj) -> None:
        try:
            # the written Event is not decoded: nothing reads it back
            await self.client.request("POST", EVENTS_V1.path(ns), body=ev, decode=False)
            self.written += 1
        except asyncio.CancelledError:
            raise
        except Exception as e:  # best effort: a lost event must not disturb scheduling
            who = ev["regarding"]["name"]
            log.debug("event %s of %s/%s not recorded: %s", SCHEDULED, ns, who, e)
        finally:
            self._in_flight -= 1
            self._done.set()
