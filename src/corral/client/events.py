"""Writes core/v1 Events as Kubernetes components do, for controllers and node agents.

Repeats of the same (object, reason, message) bump ``count`` and ``lastTimestamp`` on the
first Event instead of creating another, as client-go's event correlator does. Recording
never raises: an event is best effort and must not fail the work that caused it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from corral.client.rest import EVENTS, Client
from corral.util.clock import Clock, SystemClock, rfc3339

log = logging.getLogger("corral.events")

SEEN_MAX = 4096

Obj = dict[str, Any]


class EventRecorder:
    """Writes core/v1 Events as Kubernetes components do (repeats bump ``count``)."""

    def __init__(self, client: Client, component: str, clock: Clock | None = None) -> None:
        self.client = client
        self.component = component
        self.clock = clock or SystemClock()
        # an LRU of recent events, as client-go's correlator keeps (4,096 entries)
        self._seen: OrderedDict[tuple[str, str, str, str], tuple[str, int]] = OrderedDict()

    async def event(
        self, obj: Obj, type_: str, reason: str, message: str, *, field_path: str = ""
    ) -> None:
        """Record an event on ``obj`` (on a part of it: ``field_path``, as the kubelet's
        ``spec.containers{name}``); never raises (an event is best effort)."""
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        now = rfc3339(self.clock.now())
        key = (ns, meta.get("uid", "") + field_path, reason, message)
        try:
            seen = self._seen.get(key)
            if seen is not None:
                name, count = seen
                await self.client.patch(
                    EVENTS, name, {"count": count + 1, "lastTimestamp": now}, ns
                )
                self._seen[key] = (name, count + 1)
                self._seen.move_to_end(key)
                return
            # named as client-go names events: <object>.<unix nanoseconds in hex>
            stamp = int(self.clock.now() * 1e9)
            ev = {
                "metadata": {"name": f"{meta.get('name', 'x')}.{stamp:x}"},
                "involvedObject": {
                    "apiVersion": obj.get("apiVersion", ""),
                    "kind": obj.get("kind", ""),
                    "name": meta.get("name", ""),
                    "namespace": meta.get("namespace", ""),
                    "uid": meta.get("uid", ""),
                    "resourceVersion": meta.get("resourceVersion", ""),
                    **({"fieldPath": field_path} if field_path else {}),
                },
                "reason": reason,
                "message": message,
                "type": type_,
                "source": {"component": self.component},
                "reportingComponent": self.component,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
            }
            made = await self.client.create(EVENTS, ev, ns)
            self._seen[key] = (made["metadata"]["name"], 1)
            while len(self._seen) > SEEN_MAX:
                self._seen.popitem(last=False)
        except Exception as e:  # events are best effort: never fail a sync for one
            log.debug("event %s on %s not recorded: %s", reason, meta.get("name"), e)
