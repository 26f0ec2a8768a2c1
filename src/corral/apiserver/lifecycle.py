"""Object lifecycle loops that live beside the store: garbage collection, namespaces, TTLs.

- **Garbage collector** (ownerReferences): an object whose owners are all gone is
  deleted (Background); a dead owner reference is dropped when other owners live. An
  owner held by the ``foregroundDeletion`` finalizer waits until its dependents are gone
  (those with ``blockOwnerDeletion``) and then goes; one held by ``orphan`` first has its
  reference removed from every dependent.
- **Namespace lifecycle**: a Terminating namespace has its content deleted, then the
  ``kubernetes`` finalizer removed; every namespace gets a ``default`` ServiceAccount
  and, on a TLS server, the ``kube-root-ca.crt`` ConfigMap (``api/rootca.py``).
- **Pod GC**: a terminating pod bound to a node that does not exist is removed.
- **Event TTL**: events go this long after their last write (24 h by default).
- **Compaction**: the store's history is trimmed when it passes its window.

They are driven by the watch cache's change listener (which only enqueues keys) and a
single worker per loop; like any controller they are level-triggered and idempotent.
They run in the API server process because they act on storage directly, the way
Kubernetes' apiserver finalises namespaces' own objects; the Kubernetes-style
controllers of later issues go through the API instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from corral.api import errors, rootca
from corral.apiserver.registry.base import ResourceInfo
from corral.apiserver.store import DeleteOptions, Registry, WriteOptions
from corral.storage.cache import DELETED, Entry, ResourceCache
from corral.util.clock import parse_rfc3339

log = logging.getLogger("corral.lifecycle")

#: how soon a dependent of an owner of an unknown kind is looked at again (seconds)
UNRESOLVED_RETRY = 30.0

Obj = dict[str, Any]


class Lifecycle:
    """All the loops above over one registry; ``run`` supervises them."""

    def __init__(
        self, registry: Registry, event_ttl: float = 24 * 3600, root_ca: str | None = None
    ) -> None:
        self.registry = registry
        #: the cluster CA (PEM) published as each namespace's ``kube-root-ca.crt``
        self.root_ca = root_ca
        self.cache = registry.cache
        self.event_ttl = event_ttl
        self.queue: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
        self._queued: set[tuple[str, str, str]] = set()
        # views (events.k8s.io Events) share their storage row's prefix: that row owns it;
        # the registry keeps this map current as custom resources come and go
        self._info_by_prefix = registry.by_prefix
        self._ns_info = registry.by_gvr[("", "v1", "namespaces")]
        self._event_seen: dict[str, float] = {}
        self._event_prefixes = {
            registry.prefix(i) for i in registry.resources if i.plural == "events"
        }
        #: awaited before each item's writes and each periodic round: raises (a 409
        #: Status) when this server no longer holds the lifecycle Lease (the same fence
        #: check as elected clients' writes get, ``fencing.py``); None: not elected
        self.fence: Callable[[], Awaitable[None]] | None = None
        self.cache.listeners.append(self._on_change)

    # --- triggers (synchronous, on the commit path: enqueue only) ---------------------------
    def _enqueue(self, what: str, prefix: str, key: str) -> None:
        item = (what, prefix, key)
        if item not in self._queued:
            self._queued.add(item)
            self.queue.put_nowait(item)

    def _on_change(self, type_: str, e: Entry, prev: Entry | None, rc: ResourceCache) -> None:
        if rc.prefix in self._event_prefixes:
            if type_ == DELETED:
                self._event_seen.pop(e.key, None)
            else:
                self._event_seen[e.key] = time.monotonic()
        if type_ == DELETED:
            if e.uid:
                for drc, dkey in list(self.cache.dependents.get(e.uid, ())):
                    self._enqueue("owners", drc.prefix, dkey)
            for o in e.owners:
                owner = self.cache.by_uid.get(o)
                if owner is not None:
                    self._enqueue("owner", owner[0].prefix, owner[1])
            return
        if e.owners and any(o not in self.cache.by_uid for o in e.owners):
            self._enqueue("owners", rc.prefix, e.key)
        if e.deleting:
            self._enqueue("owner", rc.prefix, e.key)
            if rc.prefix == self.registry.prefix(self._ns_info):
                self._enqueue("namespace", rc.prefix, e.key)
            if rc.prefix == "/registry/core/pods/":
                self._enqueue("pod", rc.prefix, e.key)
        elif type_ == "ADDED" and rc.prefix == self.registry.prefix(self._ns_info):
            self._enqueue("namespace", rc.prefix, e.key)

    # --- the worker ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Run until cancelled."""
        self._seed()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._worker())
            tg.create_task(self._periodic())

    def _seed(self) -> None:
        """Level-triggered start: look at everything once."""
        for rc in self.cache.resources.values():
            for e in list(rc.entries.values()):
                self._on_change("ADDED", e, None, rc)
                if rc.prefix in self._event_prefixes:
                    self._event_seen[e.key] = time.monotonic() - self._age(e)

    def _age(self, e: Entry) -> float:
        o = e.obj()
        ts = (
            o.get("lastTimestamp")
            or o.get("eventTime")
            or (o.get("metadata") or {}).get("creationTimestamp")
        )
        try:
            return max(0.0, self.registry.clock.now() - parse_rfc3339(ts)) if ts else 0.0
        except ValueError:
            return 0.0

    async def _worker(self) -> None:
        while True:
            item = await self.queue.get()
            self._queued.discard(item)
            what, prefix, key = item
            info = self._info_by_prefix.get(prefix)
            if info is None:
                continue
            try:
                if self.fence is not None:
                    await self.fence()
                if what == "owners":
                    await self._check_owners(info, key)
                elif what == "owner":
                    await self._process_owner(info, key)
                elif what == "namespace":
                    await self._namespace(info, key)
                elif what == "pod":
                    await self._pod(info, key)
            except errors.StatusError as e:
                log.info("lifecycle %s %s: %s", what, key, e.message)
            except Exception:
                log.exception("lifecycle %s %s failed; retrying", what, key)
                await asyncio.sleep(1)
                self._enqueue(what, prefix, key)

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(5)
            try:  # a failed round (disk full) is retried, never ends the loop
                await self._periodic_round()
            except Exception as e:
                log.warning("lifecycle: periodic round failed: %s", e)

    async def _periodic_round(self) -> None:
        if self.fence is not None:
            await self.fence()
        storage = self.registry.storage
        now = time.monotonic()
        for key, seen in list(self._event_seen.items()):
            if now - seen > self.event_ttl:
                for prefix in self._event_prefixes:
                    if key.startswith(prefix):
                        await self.registry.force_delete(self._info_by_prefix[prefix], key)
                self._event_seen.pop(key, None)
        needs = getattr(storage, "needs_compaction", None)
        if needs is not None and await needs():
            target = storage.compaction_target()  # type: ignore[attr-defined]
            await storage.compact(target)

    # --- garbage collection ------------------------------------------------------------------------
    async def _check_owners(self, info: ResourceInfo, key: str) -> None:
        rc = self.registry.rcache(info)
        e = rc.entries.get(key)
        if e is None or not e.owners:
            return
        alive = [o for o in e.owners if o in self.cache.by_uid]
        if len(alive) == len(e.owners):
            return
        unresolved = self._unresolvable(e, set(e.owners) - set(alive))
        if unresolved:
            # upstream's GC leaves the dependents of an owner whose kind it cannot map
            # alone (a CRD not served yet or any more) and looks again later
            asyncio.get_running_loop().call_later(
                UNRESOLVED_RETRY, self._enqueue, "owners", rc.prefix, key
            )
            return
        if not alive:
            obj = e.obj()
            policy = "Background"
            await self._delete(info, obj, policy)
            return
        dead = set(e.owners) - set(alive)

        def drop(o: Obj) -> bool:
            refs = o["metadata"].get("ownerReferences") or []
            keep = [r for r in refs if r.get("uid") not in dead]
            if len(keep) == len(refs):
                return False
            o["metadata"]["ownerReferences"] = keep
            return True

        await self.registry.update_obj(info, key, drop)

    def _unresolvable(self, e: Entry, missing: set[str]) -> bool:
        """Whether an owner among ``missing`` (uids not in the cache) names a kind no
        served resource has: its absence from the cache says nothing."""
        for ref in e.obj()["metadata"].get("ownerReferences") or ():
            if not isinstance(ref, dict) or ref.get("uid") not in missing:
                continue
            api_version = str(ref.get("apiVersion") or "")
            group = api_version.rpartition("/")[0] if "/" in api_version else ""
            if (group, str(ref.get("kind") or "")) not in self.registry.by_kind:
                return True
        return False

    async def _delete(self, info: ResourceInfo, obj: Obj, policy: str) -> None:
        meta = obj["metadata"]
        with contextlib.suppress(errors.StatusError):
            await self.registry.delete(
                info,
                meta.get("namespace", ""),
                meta["name"],
                DeleteOptions(
                    grace_period=None, propagation=policy, precondition_uid=meta.get("uid")
                ),
            )

    def _dependents(self, uid: str) -> list[tuple[ResourceInfo, Entry]]:
        out = []
        for drc, dkey in list(self.cache.dependents.get(uid, ())):
            info = self._info_by_prefix.get(drc.prefix)
            e = drc.entries.get(dkey)
            if info is not None and e is not None:
                out.append((info, e))
        return out

    async def _process_owner(self, info: ResourceInfo, key: str) -> None:
        e = self.registry.rcache(info).entries.get(key)
        if e is None or not e.deleting:
            return
        if "orphan" in e.finalizers:
            for dinfo, d in self._dependents(e.uid):
                uid = e.uid

                def unref(o: Obj, uid: str = uid) -> bool:
                    refs = o["metadata"].get("ownerReferences") or []
                    keep = [r for r in refs if r.get("uid") != uid]
                    if len(keep) == len(refs):
                        return False
                    if keep:
                        o["metadata"]["ownerReferences"] = keep
                    else:
                        o["metadata"].pop("ownerReferences", None)
                    return True

                await self.registry.update_obj(dinfo, d.key, unref)
            await self._remove_finalizer(info, key, "orphan")
        elif "foregroundDeletion" in e.finalizers:
            blocking = False
            for dinfo, d in self._dependents(e.uid):
                obj = d.obj()
                refs = [
                    r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") == e.uid
                ]
                if any(r.get("blockOwnerDeletion") for r in refs):
                    blocking = True
                if not d.deleting:
                    await self._delete(dinfo, obj, "Foreground")
            if not blocking:
                await self._remove_finalizer(info, key, "foregroundDeletion")

    async def _remove_finalizer(self, info: ResourceInfo, key: str, name: str) -> None:
        def remove(o: Obj) -> bool:
            fins = o["metadata"].get("finalizers") or []
            if name not in fins:
                return False
            o["metadata"]["finalizers"] = [f for f in fins if f != name]
            return True

        await self.registry.update_obj(info, key, remove)

    # --- namespaces --------------------------------------------------------------------------------
    async def _namespace(self, info: ResourceInfo, key: str) -> None:
        e = self.registry.rcache(info).entries.get(key)
        if e is None:
            return
        ns = e.name
        if not e.deleting:
            sa_info = self.registry.by_gvr.get(("", "v1", "serviceaccounts"))
            if sa_info is not None and self.registry.entry(sa_info, ns, "default") is None:
                sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
                with contextlib.suppress(errors.StatusError):
                    await self.registry.create(
                        sa_info, ns, sa, WriteOptions(field_manager="corral-apiserver")
                    )
            cm_info = self.registry.by_gvr[("", "v1", "configmaps")]
            if self.root_ca and self.registry.entry(cm_info, ns, rootca.NAME) is None:
                with contextlib.suppress(errors.StatusError):
                    await self.registry.create(
                        cm_info,
                        ns,
                        rootca.configmap(self.root_ca),
                        WriteOptions(field_manager="corral-apiserver"),
                    )
            return
        remaining = 0
        for rinfo in list(self.registry.resources):  # (custom resources come and go)
            if not rinfo.namespaced or rinfo.storage is not None:
                continue
            rc = self.registry.rcache(rinfo)
            for d in list(rc.by_namespace.get(ns, {}).values()):
                remaining += 1
                if not d.deleting:
                    await self._delete(rinfo, d.obj(), "Background")
                elif rinfo.plural == "pods" and rinfo.group == "":
                    await self._pod(rinfo, d.key)  # only if no agent will finish it
        if remaining:
            # Content is still going: look again shortly (finalizers may hold some).
            await asyncio.sleep(0.2)
            self._enqueue("namespace", self.registry.prefix(info), key)
            return

        def finalize(o: Obj) -> bool:
            spec = o.setdefault("spec", {})
            if "kubernetes" not in (spec.get("finalizers") or []):
                return False
            spec["finalizers"] = [f for f in spec["finalizers"] if f != "kubernetes"]
            return True

        await self.registry.update_obj(info, key, finalize)

    # --- pods ------------------------------------------------------------------------------------------
    async def _pod(self, info: ResourceInfo, key: str, force: bool = False) -> None:
        """Remove a terminating pod no node agent will ever finish: its node does not exist."""
        e = self.registry.rcache(info).entries.get(key)
        if e is None or not e.deleting or e.finalizers:
            return
        node = e.fields.get("spec.nodeName", "")
        node_info = self.registry.by_gvr.get(("", "v1", "nodes"))
        if (
            node
            and node_info is not None
            and self.registry.entry(node_info, "", node) is not None
            and not force
        ):
            return
        await self.registry.force_delete(info, key)
