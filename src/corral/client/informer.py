"""Informers: a list+watch cache of one resource, shared by every loop of a process.

``Informer.run`` lists (``resourceVersion=0``), then watches from the list's revision,
applies each event to its store and calls the registered handlers; when the watch ends
it re-watches from the last revision seen, and when the server answers 410 Expired it
lists again and reports the difference as events (so no handler misses a deletion).
Indexes (``add_index``) keep keys grouped by a function of the object, e.g. pods by
``spec.nodeName`` or by owner uid. ``wait_for_sync`` returns once the first list is in.

Handlers must not mutate the objects they are given: the store shares them.

``transform`` (client-go's ``SetTransform``) rewrites each object before it is stored or
handed to a handler; ``strip_managed_fields`` is client-go's
``TransformStripManagedFields``: a loop that never reads ``metadata.managedFields``
(the scheduler) keeps none of it, so its cache holds about half the containers per pod
and the garbage collector has that much less to traverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Iterable
from typing import Any

from corral.api.errors import StatusError
from corral.client.rest import Client, Resource

log = logging.getLogger("corral.informer")

Obj = dict[str, Any]
#: (type, new object, old object or None); DELETED passes the last state as new
Handler = Callable[[str, Obj, Obj | None], None]
IndexFunc = Callable[[Obj], Iterable[str]]
#: rewrites an object before it is stored (must not mutate its argument)
Transform = Callable[[Obj], Obj]


def strip_managed_fields(obj: Obj) -> Obj:
    """``obj`` without ``metadata.managedFields`` (a shallow copy when it had some)."""
    meta = obj.get("metadata")
    if not meta or "managedFields" not in meta:
        return obj
    meta = dict(meta)
    del meta["managedFields"]
    return {**obj, "metadata": meta}


def key_of(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else str(meta["name"])


class Informer:
    """List+watch cache of one resource (optionally one namespace / selector)."""

    def __init__(
        self,
        client: Client,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        watch_timeout: int = 300,
        transform: Transform | None = None,
    ) -> None:
        self.client = client
        self.transform = transform
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.watch_timeout = watch_timeout
        self.store: dict[str, Obj] = {}
        self.resource_version = ""
        self._handlers: list[Handler] = []
        self._indexes: dict[str, tuple[IndexFunc, dict[str, set[str]]]] = {}
        self._synced = asyncio.Event()

    # --- registration --------------------------------------------------------------------
    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def add_index(self, name: str, fn: IndexFunc) -> None:
        idx: dict[str, set[str]] = {}
        for key, obj in self.store.items():
            for v in fn(obj):
                idx.setdefault(v, set()).add(key)
        self._indexes[name] = (fn, idx)

    def by_index(self, name: str, value: str) -> list[Obj]:
        keys = self._indexes[name][1].get(value, ())
        get = self.store.get
        return [o for k in keys if (o := get(k)) is not None]

    def get(self, key: str) -> Obj | None:
        return self.store.get(key)

    async def wait_for_sync(self, timeout: float = 60) -> None:
        async with asyncio.timeout(timeout):
            await self._synced.wait()

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    # --- store maintenance ----------------------------------------------------------------
    def _index_update(self, key: str, new: Obj | None, old: Obj | None) -> None:
        for fn, idx in self._indexes.values():
            if old is not None:
                for v in fn(old):
                    s = idx.get(v)
                    if s is not None:
                        s.discard(key)
                        if not s:
                            del idx[v]
            if new is not None:
                for v in fn(new):
                    idx.setdefault(v, set()).add(key)

    def _emit(self, type_: str, obj: Obj, old: Obj | None) -> None:
        for h in self._handlers:
            try:
                h(type_, obj, old)
            except Exception:
                log.exception(
                    "%s handler failed on %s %s", self.resource.plural, type_, key_of(obj)
                )

    def apply(self, type_: str, obj: Obj) -> None:
        """Apply one watch event to the store and tell the handlers."""
        if self.transform is not None:
            obj = self.transform(obj)
        key = key_of(obj)
        store = self.store
        old = store.get(key)
        if type_ == "DELETED":
            if old is None:
                return
            del store[key]
            if self._indexes:
                self._index_update(key, None, old)
            self._emit("DELETED", obj, old)
            return
        store[key] = obj
        if self._indexes:
            self._index_update(key, obj, old)
        self._emit("MODIFIED" if old is not None else "ADDED", obj, old)

    def _replace(self, items: list[Obj]) -> None:
        """A fresh list: report what appeared, changed and vanished since the last one."""
        fresh = {key_of(o): o for o in items}
        for key in list(self.store):
            if key not in fresh:
                self.apply("DELETED", self.store[key])
        for key, obj in fresh.items():
            old = self.store.get(key)
            old_rv = (old or {}).get("metadata", {}).get("resourceVersion")
            if old is None or old_rv != obj["metadata"].get("resourceVersion"):
                self.apply("ADDED" if old is None else "MODIFIED", obj)

    # --- the loop ---------------------------------------------------------------------------
    async def _list(self) -> None:
        lst = await self.client.list(
            self.resource,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            resource_version="0",
        )
        self._replace(lst.get("items") or [])
        self.resource_version = (lst.get("metadata") or {}).get("resourceVersion", "")
        self._synced.set()

    async def _consume(self, events: AsyncGenerator[Obj, None]) -> bool:
        """Apply a watch's events until it ends; True when it ended with 410 Expired
        (the caller lists again)."""
        async for ev in events:
            type_ = ev.get("type")
            obj = ev.get("object") or {}
            if type_ == "ERROR":
                if obj.get("code") == 410:
                    return True
                log.warning("watch %s: %s", self.resource.plural, obj.get("message"))
                return False
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                self.resource_version = rv
            if type_ == "BOOKMARK":
                continue
            self.apply(str(type_), obj)
        return False

    async def run(self) -> None:
        """List, then watch forever; re-list on 410, back off on errors."""
        backoff = 0.2
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                # closed on every exit (an ERROR event, cancellation): its connection goes;
                # a broken stream has already moved the client to its next server, where
                # the next round resumes from ``resource_version`` (client.failover)
                events = self.client.watch(
                    self.resource,
                    self.namespace,
                    resource_version=self.resource_version,
                    label_selector=self.label_selector,
                    field_selector=self.field_selector,
                    timeout_seconds=self.watch_timeout,
                )
                async with contextlib.aclosing(events):
                    need_list = await self._consume(events)
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except StatusError as e:
                if e.code == 410:
                    need_list = True
                    continue
                log.warning("informer %s: %s", self.resource.plural, e.message)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
            except Exception as e:  # connection trouble: retry with back-off
                log.info("informer %s: %s; retrying", self.resource.plural, e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)


class WorkQueue:
    """A de-duplicating queue of keys with per-key back-off (client-go's workqueue).

    A key added while queued is not queued twice; a key being processed is re-queued
    once its processing ends if it was added meanwhile. ``retry`` re-adds after
    exponential back-off (5 ms doubling to ``max_backoff``); ``forget`` resets it.
    """

    def __init__(self, max_backoff: float = 60.0) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._failures: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.max_backoff = max_backoff

    def add(self, key: str) -> None:
        if key in self._processing:
            self._dirty.add(key)
            return
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: str, delay: float) -> None:
        """Queue ``key`` in ``delay`` seconds; an earlier request wins over a later one."""
        loop = asyncio.get_running_loop()
        timer = self._timers.get(key)
        if timer is not None:
            if timer.when() <= loop.time() + delay:
                return
            timer.cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            self.add(key)

        self._timers[key] = loop.call_later(delay, fire)

    async def get(self) -> str:
        key = await self._queue.get()
        self._queued.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def retry(self, key: str) -> float:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay: float = min(0.005 * 2.0**n, self.max_backoff)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def __len__(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()
        with contextlib.suppress(Exception):
            while True:
                self._queue.get_nowait()
