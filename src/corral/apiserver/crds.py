"""Serving custom resources: CRDs turned into registry rows, discovery and OpenAPI.

``CustomResources`` follows the CRDs in the watch cache (kept decoded in an index) and,
for each established CRD, adds one ``ResourceInfo`` per served version, named by its
accepted names, to the running ``Registry``
(the storage version's row owns the cache of ``/registry/<group>/<plural>/``; the other
versions are views converted by ``custom.VersionConverter``), then republishes
Discovery and the OpenAPI documents. It runs synchronously on the commit path, so a
client that created a CRD can use its resource at once, as with a real server whose
CRD is established within milliseconds. A CRD naming a built-in resource is shadowed
by it and never served. A server restart caches the storage prefix of every stored CRD
and serves the established ones (``load``) before the watch cache is seeded, so their
objects are cached (owners the garbage collector can see) before anything is served.

A worker (``run``) then does what apiextensions-apiserver's controllers do, writing the
CRD's status as they word it: the naming controller (``acceptedNames``,
``NamesAccepted`` with ``"x" is already in use`` on a conflict within the group), the
establishing controller (``Established``) and the finalizer controller (a deleted CRD
held by ``customresourcecleanup.apiextensions.k8s.io`` has its instances deleted, then
the finalizer removed; ``Terminating`` says how far it got) and the API approval
controller (``KubernetesAPIApprovalPolicyConformant``). Started by
``apiserver/server.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import orjson

from corral.api import errors
from corral.api.conditions import find_condition as condition
from corral.api.conditions import set_condition
from corral.apiserver.registry.apiextensions import (
    CLEANUP_FINALIZER,
    approval_condition,
    as_dict,
    storage_version,
)
from corral.apiserver.registry.base import ResourceInfo
from corral.apiserver.registry.custom import VersionConverter, scale_access, strategy_for
from corral.apiserver.store import DeleteOptions, Registry
from corral.storage.cache import DELETED, Entry, ResourceCache

if TYPE_CHECKING:
    from corral.apiserver.discovery import Discovery
    from corral.apiserver.openapi import OpenAPIDocs

log = logging.getLogger("corral.crds")

Obj = dict[str, Any]
GROUP = "apiextensions.k8s.io"
CRD_PREFIX = f"/registry/{GROUP}/customresourcedefinitions/"
#: how soon a CRD whose instances are still going is looked at again (seconds)
RECHECK = 0.2

_d = as_dict


def _requested(crd: Obj) -> dict[str, Any]:
    return _d(_d(crd.get("spec")).get("names"))


def _normal_names(names: dict[str, Any]) -> dict[str, Any]:
    """Names as served: empty ``shortNames``/``categories`` are no names at all, and
    ``singular`` defaults to the lower-case kind."""
    out = {k: v for k, v in names.items() if v not in (None, "", [])}
    if not out.get("singular") and out.get("kind"):
        out["singular"] = str(out["kind"]).lower()
    return out


class CustomResources:
    """The served custom resources of one registry, kept in step with its CRDs."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.crd_info = registry.by_gvr[(GROUP, "v1", "customresourcedefinitions")]
        self.discovery: Discovery | None = None
        self.openapi: OpenAPIDocs | None = None
        #: CRD name -> (what its rows were built from, the rows)
        self._served: dict[str, tuple[bytes, list[ResourceInfo]]] = {}
        #: CRD name -> the CRD as last stored (decoded once per change, not per event)
        self._index: dict[str, Obj] = {}
        #: the built-in rows' (group, plural) and storage prefixes: a CRD naming one of
        #: them is shadowed (upstream's built-in handler answers first) and never served
        self._builtin = {(i.group, i.plural) for i in registry.resources}
        self._builtin_prefixes = {registry.prefix(i) for i in registry.resources}
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()

    # --- serving (synchronous) ------------------------------------------------------------
    def load(self, kvs: list[Any]) -> None:
        """At start, before the watch cache is seeded: cache the storage prefix of every
        stored CRD (whatever its names' state, so its objects are loaded and owners
        stay known to the garbage collector), then serve the established ones."""
        for kv in kvs:
            if kv.key.startswith(CRD_PREFIX):
                self._index[kv.obj["metadata"]["name"]] = kv.obj
        for crd in self._index.values():
            self._attach(crd)
        for crd in list(self._index.values()):
            self._serve(crd)
        self.registry.cache.listeners.append(self._on_change)

    def shadowed(self, crd: Obj) -> bool:
        """Whether a built-in resource owns ``crd``'s group and plural or its storage."""
        spec = _d(crd.get("spec"))
        group, plural = str(spec.get("group") or ""), str(_requested(crd).get("plural") or "")
        return (group, plural) in self._builtin or (
            f"/registry/{group or 'core'}/{plural}/" in self._builtin_prefixes
        )

    def _attach(self, crd: Obj) -> None:
        spec = _d(crd.get("spec"))
        group, plural = spec.get("group"), _requested(crd).get("plural")
        if group and plural and not self.shadowed(crd):
            self.registry.attach_storage(str(group), str(plural))

    def attach(self, discovery: Discovery, openapi: OpenAPIDocs) -> None:
        """Publish the served rows in these documents from now on."""
        self.discovery = discovery
        self.openapi = openapi
        self._publish()

    def _crds(self) -> list[Obj]:
        return list(self._index.values())

    def _on_change(self, type_: str, e: Entry, prev: Entry | None, rc: ResourceCache) -> None:
        if rc.prefix != CRD_PREFIX:
            return
        try:
            self._changed(type_, e)
        except Exception:  # on the commit path: never fail the write that got here
            log.exception("custom resource definition %s", e.name)

    def _changed(self, type_: str, e: Entry) -> None:
        changed = False
        if type_ == DELETED:
            self._index.pop(e.name, None)
            changed = self._unserve(e.name)
            # a name it held may now be free for another CRD of its group
            for other in self._index:
                self._enqueue(other)
        else:
            crd = self._index[e.name] = e.obj()
            self._attach(crd)
            changed = self._serve(crd)
            self._enqueue(e.name)
        if changed:
            self._publish()

    def _serve(self, crd: Obj) -> bool:
        """Serve ``crd`` under its accepted names while it is (or is about to be, its
        names being free) established; True when the served rows changed. A CRD a
        built-in shadows, or one not established, is not served."""
        name = crd["metadata"]["name"]
        if self.shadowed(crd):
            return self._unserve(name)
        spec = _d(crd.get("spec"))
        accepted, _, established = self.names(crd, self._crds())
        accepted = _normal_names(accepted)
        if established.get("status") != "True" or not (
            accepted.get("plural") and accepted.get("kind")
        ):
            return self._unserve(name)
        deleting = bool(crd["metadata"].get("deletionTimestamp"))
        fingerprint = orjson.dumps([spec, accepted, deleting], option=orjson.OPT_SORT_KEYS)
        current = self._served.get(name)
        if current is not None and current[0] == fingerprint:
            return False
        try:
            rows = self.rows(crd, accepted)
        except Exception:  # a CRD the strategy let through but that cannot be served
            log.exception("cannot serve %s", name)
            return False
        old_rows = current[1] if current is not None else []
        for info in old_rows:
            if (info.group, info.version, info.plural) not in {
                (r.group, r.version, r.plural) for r in rows
            }:
                self.registry.remove_resource(info)
        self._close_watches(old_rows, rows)
        for info in rows:  # the storage row first: views share its cache
            self.registry.add_resource(info)
        self._served[name] = (fingerprint, rows)
        return True

    def _unserve(self, name: str) -> bool:
        current = self._served.pop(name, None)
        if current is None:
            return False
        for info in current[1]:
            self.registry.remove_resource(info)
        self._close_watches(current[1], [])
        return True

    def _close_watches(self, old: list[ResourceInfo], new: list[ResourceInfo]) -> None:
        """Upstream tears a CRD's storage down when what it serves changes: watches of
        a version no longer served, or of a CRD gone, end."""
        if not old or {(i.group, i.version, i.plural) for i in old} == {
            (i.group, i.version, i.plural) for i in new
        }:
            return
        self.registry.rcache(old[0]).close_watchers()

    def _publish(self) -> None:
        if self.discovery is not None:
            self.discovery.set_resources(self.registry.resources)
        if self.openapi is not None:
            self.openapi.set_resources(self.registry.resources)

    @staticmethod
    def rows(crd: Obj, accepted: dict[str, Any] | None = None) -> list[ResourceInfo]:
        """One row per served version, named by ``accepted`` (the spec's names by
        default); the storage version's (or, when that is not served, the first served
        one's) owns the storage, the others are views. None served: no rows."""
        spec = crd["spec"]
        names = _normal_names(spec["names"] if accepted is None else accepted)
        group = spec["group"]
        stored = storage_version(crd)
        served = [v for v in spec.get("versions") or [] if isinstance(v, dict) and v.get("served")]
        if not served:
            return []
        owner = stored if any(v["name"] == stored for v in served) else served[0]["name"]
        out: list[ResourceInfo] = []
        for version in served:
            strategy = strategy_for(crd, version)
            vname = version["name"]
            info = ResourceInfo(
                group,
                vname,
                names["kind"],
                names["plural"],
                names["singular"],
                spec.get("scope") == "Namespaced",
                strategy,
                tuple(names.get("shortNames") or ()),
                tuple(names.get("categories") or ()),
                scale=scale_access(version),
                storage=None if vname == owner else (group, names["plural"]),
                converter=VersionConverter(f"{group}/{stored}", f"{group}/{vname}", strategy),
            )
            if vname == owner:
                out.insert(0, info)
            else:
                out.append(info)
        return out

    @staticmethod
    def names(crd: Obj, crds: list[Obj]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The naming controller's verdict: accepted names and the NamesAccepted and
        Established conditions (without times)."""
        spec = _d(crd.get("spec"))
        group = spec.get("group")
        me = crd["metadata"]["name"]
        resources: set[str] = set()
        kinds: set[str] = set()
        for other in crds:
            if other["metadata"]["name"] == me or _d(other.get("spec")).get("group") != group:
                continue
            # names held: the accepted ones, and the requested ones of a CRD not yet
            # reconciled (so two CRDs created together cannot both take a name)
            held = [_d(_d(other.get("status")).get("acceptedNames"))]
            if condition(other, "NamesAccepted") is None:
                held.append(_requested(other))
            for names in held:
                resources.update(str(names.get(k) or "") for k in ("plural", "singular"))
                resources.update(str(s) for s in names.get("shortNames") or ())
                kinds.update(str(names.get(k) or "") for k in ("kind", "listKind"))
        resources.discard("")
        kinds.discard("")
        requested = _requested(crd)
        old = _d(_d(crd.get("status")).get("acceptedNames"))
        new: dict[str, Any] = {k: v for k, v in old.items() if k != "categories"}
        cond = {"type": "NamesAccepted", "status": "Unknown"}

        def fresh(want: Any, have: Any, used: set[str]) -> str | None:
            if want == have or want not in used:
                return None
            return f'"{want}" is already in use'

        def refused(reason: str, message: str) -> dict[str, str]:
            return {
                "type": "NamesAccepted",
                "status": "False",
                "reason": reason,
                "message": message,
            }

        for key, used, reason in (
            ("plural", resources, "PluralConflict"),
            ("singular", resources, "SingularConflict"),
        ):
            err = fresh(requested.get(key), old.get(key), used)
            if err:
                cond = refused(reason, err)
            elif requested.get(key) is not None:
                new[key] = requested[key]
        shorts = list(requested.get("shortNames") or [])
        if shorts != list(old.get("shortNames") or []):
            mine = set(old.get("shortNames") or ())
            errs = [
                e
                for s in shorts
                if s not in mine and s not in (old.get("plural"), old.get("singular"))
                for e in [fresh(s, "", resources)]
                if e
            ]
            if errs:
                message = errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"
                cond = refused("ShortNamesConflict", message)
            elif shorts:
                new["shortNames"] = shorts
            else:
                new.pop("shortNames", None)
        for key, reason in (("kind", "KindConflict"), ("listKind", "ListKindConflict")):
            err = fresh(requested.get(key), old.get(key), kinds)
            if err:
                cond = refused(reason, err)
            elif requested.get(key) is not None:
                new[key] = requested[key]
        if requested.get("categories"):
            new["categories"] = list(requested["categories"])
        if cond["status"] == "Unknown":
            cond = {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
            }
        established = condition(crd, "Established") or {
            "type": "Established",
            "status": "False",
            "reason": "NotAccepted",
            "message": "not all names are accepted",
        }
        if established.get("status") != "True" and cond["status"] == "True":
            established = {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
            }
        established = {k: v for k, v in established.items() if k != "lastTransitionTime"}
        return new, cond, established

    # --- the worker: status and cleanup ------------------------------------------------------------
    def _enqueue(self, name: str) -> None:
        if name not in self._queued:
            self._queued.add(name)
            self.queue.put_nowait(name)

    async def run(self) -> None:
        """Reconcile every CRD once, then each one that changes; until cancelled."""
        for e in list(self.registry.rcache(self.crd_info).entries.values()):
            self._enqueue(e.name)
        while True:
            name = await self.queue.get()
            self._queued.discard(name)
            try:
                await self.sync(name)
            except Exception:
                log.exception("custom resource definition %s", name)
                self._later(name, 1.0)

    def _later(self, name: str, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self._enqueue, name)

    async def sync(self, name: str) -> None:
        key = self.registry.key(self.crd_info, "", name)
        entry = self.registry.rcache(self.crd_info).entries.get(key)
        if entry is None:
            return
        crd = entry.obj()
        meta = crd["metadata"]
        if meta.get("deletionTimestamp"):
            if CLEANUP_FINALIZER in (meta.get("finalizers") or ()):
                await self._cleanup(crd, key)
            return
        accepted, names_cond, established = self.names(crd, self._crds())
        approval = approval_condition(crd)
        now = self.registry.now()

        def write(o: Obj) -> bool:
            status = o.setdefault("status", {})
            changed = status.get("acceptedNames") != accepted
            status["acceptedNames"] = accepted
            changed = set_condition(o, names_cond, now) or changed
            if approval is not None:
                changed = set_condition(o, approval, now) or changed
            return set_condition(o, established, now) or changed

        await self.registry.update_obj(self.crd_info, key, write)

    def _storage_row(self, crd: Obj) -> ResourceInfo | None:
        """A row over ``crd``'s storage prefix (its served storage row, else one built
        for the storage version); None when a built-in owns that prefix (the CRD never
        stored anything there)."""
        if self.shadowed(crd):
            return None
        served = self._served.get(crd["metadata"]["name"])
        if served is not None and served[1]:
            return served[1][0]
        stored = storage_version(crd)
        spec = dict(crd["spec"])
        spec["versions"] = [
            {**v, "served": True}
            for v in spec.get("versions") or []
            if isinstance(v, dict) and v.get("name") == stored
        ]
        rows = self.rows({**crd, "spec": spec})
        if not rows:
            return None
        self.registry.attach_storage(rows[0].group, rows[0].plural)
        return rows[0]

    async def _cleanup(self, crd: Obj, key: str) -> None:
        """The finalizer controller: delete every instance, then let the CRD go."""
        name = crd["metadata"]["name"]
        now = self.registry.now()
        await self.registry.update_obj(
            self.crd_info,
            key,
            lambda o: set_condition(
                o,
                {
                    "type": "Terminating",
                    "status": "True",
                    "reason": "InstanceDeletionInProgress",
                    "message": "CustomResource deletion is in progress",
                },
                now,
            ),
        )
        info = self._storage_row(crd)
        remaining = 0
        if info is not None:  # what is stored under its prefix, served or not
            for e in list(self.registry.rcache(info).entries.values()):
                if e.deleting:
                    continue
                with contextlib.suppress(errors.StatusError):
                    await self.registry.delete(
                        info, e.namespace, e.name, DeleteOptions(propagation="Background")
                    )
            remaining = len(self.registry.rcache(info).entries)
        if remaining:
            self._later(name, RECHECK)
            return

        def finish(o: Obj) -> bool:
            set_condition(
                o,
                {
                    "type": "Terminating",
                    "status": "False",
                    "reason": "InstanceDeletionCompleted",
                    "message": "removed all instances",
                },
                now,
            )
            meta = o["metadata"]
            meta["finalizers"] = [f for f in meta.get("finalizers") or () if f != CLEANUP_FINALIZER]
            if not meta["finalizers"]:
                del meta["finalizers"]
            return True

        await self.registry.update_obj(self.crd_info, key, finish)
