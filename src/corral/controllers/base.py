"""What every controller shares: informers, a work queue, a sync loop and an event recorder.

A controller (CONVENTIONS.md) is ``async def sync(self, key)``: event handlers only
enqueue keys (``"namespace/name"``; a dependent maps to its owner's key), ``sync`` reads
the informer caches (gone: return), compares desired with observed, writes the difference
through the client, records status with ``observedGeneration``, and raises to be retried
with back-off. It never mutates a cached object (copy first: ``clone``).

``Controller.run`` starts its informers (shared ones come from an ``InformerFactory``),
waits for them to sync, then runs ``workers`` concurrent sync loops.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from typing import Any, ClassVar

from corral.api.errors import StatusError
from corral.client.events import EventRecorder
from corral.client.informer import Informer, Transform, WorkQueue, key_of
from corral.client.rest import Client, Resource
from corral.util.clock import Clock, SystemClock

log = logging.getLogger("corral.controllers")

Obj = dict[str, Any]


def clone(obj: Obj) -> Obj:
    """A deep copy to mutate (cached objects are shared and read-only)."""
    return copy.deepcopy(obj)


def owner_key(obj: Obj, kind: str) -> str | None:
    """``namespace/name`` of the controller owner of ``obj`` if it is of ``kind``."""
    meta = obj.get("metadata") or {}
    for ref in meta.get("ownerReferences") or ():
        if ref.get("controller") and ref.get("kind") == kind:
            ns = meta.get("namespace")
            return f"{ns}/{ref['name']}" if ns else str(ref["name"])
    return None


def controller_ref(owner: Obj, api_version: str, kind: str) -> Obj:
    """The ownerReference a controller puts on what it creates."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


# --- indexes shared by the controllers of a process ---------------------------------------
# Several controllers group the same informer's objects the same way (pods by namespace, by
# node, ...). Registered under one name with one function, such an index is kept once per
# informer and costs each watch event one call, not one per controller: at thousands of
# pod events a second, every index function is paid on every event (old and new object).
# ``add_index`` under a name already registered replaces the index with an equal one.

#: ``metadata.namespace`` ("" when unset)
NAMESPACE_INDEX = "namespace"
#: ``metadata.namespace`` of objects without a controller reference (orphans to adopt)
ORPHAN_NAMESPACE_INDEX = "orphan-namespace"
#: the uid of the controller reference (any kind)
CONTROLLER_UID_INDEX = "controller-uid"
#: ``spec.nodeName`` ("" when unbound)
NODE_NAME_INDEX = "spec.nodeName"


def _ns_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")


def _controller_ref_of(obj: Obj) -> Obj | None:
    refs: list[Obj] = (obj.get("metadata") or {}).get("ownerReferences") or []
    for ref in refs:
        if ref.get("controller"):
            return ref
    return None


def namespace_index(obj: Obj) -> list[str]:
    return [_ns_of(obj)]


def orphan_namespace_index(obj: Obj) -> list[str]:
    return [] if _controller_ref_of(obj) else [_ns_of(obj)]


def controller_uid_index(obj: Obj) -> list[str]:
    ref = _controller_ref_of(obj)
    return [str(ref.get("uid"))] if ref else []


def node_name_index(obj: Obj) -> list[str]:
    return [str((obj.get("spec") or {}).get("nodeName") or "")]


class InformerFactory:
    """One informer per resource, shared by every controller of a process; ``transform``
    (e.g. ``strip_managed_fields``) rewrites every object each of them stores."""

    def __init__(self, client: Client, transform: Transform | None = None) -> None:
        self.client = client
        self.transform = transform
        self._informers: dict[Resource, Informer] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def informer(self, resource: Resource) -> Informer:
        inf = self._informers.get(resource)
        if inf is None:
            inf = self._informers[resource] = Informer(
                self.client, resource, transform=self.transform
            )
        return inf

    def start(self) -> None:
        for inf in self._informers.values():
            if not any(t.get_name() == f"informer-{inf.resource.plural}" for t in self._tasks):
                self._tasks.append(
                    asyncio.create_task(inf.run(), name=f"informer-{inf.resource.plural}")
                )

    async def wait_for_sync(self, timeout: float = 60) -> None:
        await asyncio.gather(*(i.wait_for_sync(timeout) for i in self._informers.values()))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()


class Controller:
    """Base: subclasses set ``name``, register handlers in ``__init__`` and write ``sync``."""

    name: ClassVar[str] = "controller"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 4,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.factory = factory
        self.workers = workers
        self.clock = clock or SystemClock()
        self.queue = WorkQueue()
        self.recorder = EventRecorder(client, self.component, self.clock)

    @property
    def component(self) -> str:
        return f"{self.name}-controller"

    def enqueue(self, obj: Obj) -> None:
        self.queue.add(key_of(obj))

    def enqueue_owner(self, kind: str) -> Callable[[str, Obj, Obj | None], None]:
        """A handler for dependents: enqueue the controller owner (old and new)."""

        def handler(_type: str, obj: Obj, old: Obj | None) -> None:
            for o in (obj, old):
                if o is not None:
                    k = owner_key(o, kind)
                    if k is not None:
                        self.queue.add(k)

        return handler

    async def sync(self, key: str) -> None:
        raise NotImplementedError

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.sync(key)
                self.queue.forget(key)
            except StatusError as e:
                delay = self.queue.retry(key)
                # 409 Conflict is optimistic concurrency at work (another writer was first):
                # routine during every rollout, so a debug line, as upstream logs it at V(4)
                level = logging.DEBUG if e.code == 409 else logging.INFO
                log.log(level, "%s sync %s: %s (retry in %.2fs)", self.name, key, e.message, delay)
            except Exception:
                delay = self.queue.retry(key)
                log.exception("%s sync %s failed (retry in %.2fs)", self.name, key, delay)
            finally:
                self.queue.done(key)

    async def run(self) -> None:
        """Start the shared informers, wait for them, then work until cancelled."""
        self.factory.start()
        await self.factory.wait_for_sync()
        async with asyncio.TaskGroup() as tg:
            for _ in range(self.workers):
                tg.create_task(self._worker())
