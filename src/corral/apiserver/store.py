"""The generic registry: create, read, update, patch and delete for every resource.

Written once, parameterised by ``ResourceInfo`` and its strategy (Kubernetes'
``registry/generic/registry.Store``). Reads come from the watch cache; writes go to the
storage with optimistic concurrency (``guaranteed update``: re-read and retry on a race
unless the client sent a ``resourceVersion`` precondition, which then gives 409).

Nothing here knows HTTP: the handlers decode requests into the options below and encode
what these methods return. Hooks for the few kinds that need more than a strategy
(namespaces' lifecycle, pods' graceful deletion, bindings) live here too, small and named.

A *view* row (``ResourceInfo.storage``, e.g. events.k8s.io/v1 Events) shares its storage
row's keys and cache. It is checked, defaulted, validated and field-managed in its own
shape; its converter turns it into the storage shape just before the write and every
object read or returned back into the view's shape (``decode``, ``raw``).
"""

from __future__ import annotations

import functools
import os
import random
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from corral.api import errors
from corral.api.apply import record_update, server_side_apply
from corral.api.patch import clone, json_patch, merge_patch, strategic_merge_patch
from corral.api.schema import (
    BadTime,
    SchemaNode,
    TypeMismatch,
    check_types,
    definitions,
    fill_required,
    for_kind,
)
from corral.apiserver.admission_chain import (
    CREATE,
    DELETE,
    UPDATE,
    AdmissionPlugin,
    AdmissionRequest,
)
from corral.apiserver.authz import Authorizer
from corral.apiserver.identity import UserInfo
from corral.apiserver.registry.base import ResourceInfo
from corral.storage.base import KV, KeyExists, KeyNotFound, RevisionMismatch, Storage
from corral.storage.cache import Entry, ResourceCache, WatchCache
from corral.util.clock import Clock, rfc3339
from corral.util.jsontypes import NESTED

Obj = dict[str, Any]
#: (object about to be written, its key) -> release of what it reserved, or None
WriteHook = Callable[[Obj, str], Callable[[], None] | None]
#: the same for a hook that claims something in the store (``allocation.py``): awaited,
#: and its release awaited once the write is done or failed
AsyncRelease = Callable[[], Awaitable[None]]
AsyncWriteHook = Callable[[Obj, str], Awaitable[AsyncRelease | None]]

#: namespaces the NamespaceLifecycle admission plugin never lets go
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
#: the generator of generated names (seeded from os.urandom when the module loads)
_name_random = random.Random()
_MAX_RETRIES = 16

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_manager: str = ""
    field_validation: str = "Warn"  # Ignore | Warn | Strict
    force: bool = False
    #: keys the request body repeated (found by the HTTP layer), reported like unknown ones
    duplicates: list[str] = field(default_factory=list)
    #: who writes (the authenticated, impersonated user); None: the API server itself
    user: UserInfo | None = None


@dataclass
class DeleteOptions:
    grace_period: int | None = None
    propagation: str | None = None  # Background | Foreground | Orphan
    precondition_uid: str | None = None
    precondition_rv: str | None = None
    dry_run: bool = False
    #: who deletes (the authenticated, impersonated user); None: the API server itself
    user: UserInfo | None = None


@dataclass
class Result:
    """What a write returns: the object (bytes and dict), created or not, warnings."""

    obj: Obj
    raw: bytes
    created: bool = False
    warnings: list[str] = field(default_factory=list)
    deleted: bool = False


_uid_pool: list[bytes] = []


def new_uid() -> str:
    """A random (version 4) UUID; random bytes are drawn 256 UUIDs at a time."""
    if not _uid_pool:
        block = os.urandom(16 * 256)
        _uid_pool.extend(block[i : i + 16] for i in range(0, len(block), 16))
    return str(uuid.UUID(bytes=_uid_pool.pop(), version=4))


def generate_name(prefix: str) -> str:
    """``prefix`` and 5 random characters, as upstream's ``utilrand.String(5)``: a plain
    (non-cryptographic) generator, seeded from the OS, as upstream's math/rand; a name is
    no secret, and a pod create makes one per service-account volume."""
    return prefix + "".join(_name_random.choices(_NAME_CHARS, k=5))


OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


@functools.cache
def _object_meta() -> SchemaNode:
    return SchemaNode(definitions()[OBJECT_META], OBJECT_META)


def _declared_schema(info: ResourceInfo, gvk: tuple[str, str, str]) -> SchemaNode | None:
    """The definition of ``gvk`` among those ``info``'s strategy declares, or None."""
    for name, raw in info.strategy.definitions.items():
        for d in raw.get("x-kubernetes-group-version-kind", ()):
            if (d.get("group", ""), d.get("version"), d.get("kind")) == gvk:
                return SchemaNode(raw, name)
    return None


class Registry:
    """Generic store over one Storage and one WatchCache for all registered resources."""

    def __init__(
        self,
        storage: Storage,
        cache: WatchCache,
        resources: list[ResourceInfo],
        clock: Clock,
    ) -> None:
        self.storage = storage
        self.cache = cache
        self.clock = clock
        self.resources = list(resources)
        self.by_gvr: dict[tuple[str, str, str], ResourceInfo] = {}
        #: storage prefix -> the row stored there (views excluded), kept current as rows
        #: come and go (``add_resource``); the lifecycle loops look objects up by it
        self.by_prefix: dict[str, ResourceInfo] = {}
        self.by_kind: dict[tuple[str, str], ResourceInfo] = {}
        self._caches: dict[tuple[str, str], ResourceCache] = {}
        self._schemas: dict[tuple[str, str, str], SchemaNode | None] = {}
        #: per-kind hooks run after prepare/validate on create and update (allocations);
        #: each may return a release called once the write is done or failed
        self.write_hooks: dict[tuple[str, str], list[WriteHook]] = {}
        #: the same, awaited after those (``AsyncWriteHook``)
        self.async_write_hooks: dict[tuple[str, str], list[AsyncWriteHook]] = {}
        #: (group, plural) -> admission plugins (``admission_chain.py``), run in order
        #: after defaults and before validation on every write of the resource and its
        #: subresources
        self.admission: defaultdict[tuple[str, str], list[AdmissionPlugin]] = defaultdict(list)
        #: the authorizer chain (``authz.py``), set by server.py; admission plugins and
        #: the escalation checks ask it
        self.authorizer: Authorizer | None = None
        # views after the rows they share a cache with: that row's fields are the cache's
        for info in sorted(resources, key=lambda i: i.storage is not None):
            self.by_gvr[(info.group, info.version, info.plural)] = info
            self.by_kind[(info.group, info.kind)] = info
            if info.storage is not None:
                self._caches[(info.group, info.plural)] = self._caches[info.storage]
                continue
            fields = dict(info.strategy.field_selectors)
            if info.strategy.ordered_lists:
                fields[ResourceCache.ORDER_FIELD] = info.strategy.list_position
            self._caches[(info.group, info.plural)] = cache.register(self.prefix(info), fields)
            self.by_prefix[self.prefix(info)] = info

    # --- rows added and removed while serving (custom resources) ----------------------------
    def add_resource(self, info: ResourceInfo) -> ResourceCache:
        """Serve ``info`` from now on, replacing the row of the same group, version and
        plural (a CRD's version: ``apiserver/crds.py``). A row with ``storage=None`` owns
        the cache of its prefix (created on first use, its field functions replaced); a
        view shares it. Returns that cache."""
        key = (info.group, info.version, info.plural)
        old = self.by_gvr.get(key)
        if old is not None:
            self.resources.remove(old)
        self.resources.append(info)
        self.by_gvr[key] = info
        self.by_kind[(info.group, info.kind)] = info
        self._schemas.pop((info.group, info.version, info.kind), None)
        prefix = self.prefix(info)
        fields = dict(info.strategy.field_selectors)
        rc = self.cache.register(prefix, fields)
        if info.storage is None:
            rc.set_field_funcs(fields)
            self.by_prefix[prefix] = info
        self._caches[(info.group, info.plural)] = rc
        return rc

    def attach_storage(self, group: str, plural: str) -> ResourceCache:
        """Cache the objects stored under ``/registry/<group>/<plural>/`` whether or not
        a row serves them (a CRD whose names are not accepted: its objects are still
        loaded, owners to the garbage collector and deleted with it)."""
        rc = self.cache.register(f"/registry/{group}/{plural}/", {})
        self._caches.setdefault((group, plural), rc)
        return rc

    def remove_resource(self, info: ResourceInfo) -> None:
        """Stop serving ``info`` (its cache stays, for a later ``add_resource``)."""
        key = (info.group, info.version, info.plural)
        cur = self.by_gvr.pop(key, None)
        if cur is None:
            return
        self.resources.remove(cur)
        if self.by_kind.get((cur.group, cur.kind)) is cur:
            del self.by_kind[(cur.group, cur.kind)]
        self._schemas.pop((cur.group, cur.version, cur.kind), None)
        prefix = self.prefix(cur)
        if self.by_prefix.get(prefix) is cur:
            del self.by_prefix[prefix]

    # --- keys and lookups -------------------------------------------------------------
    @staticmethod
    def prefix(info: ResourceInfo) -> str:
        group, plural = info.storage or (info.group, info.plural)
        return f"/registry/{group or 'core'}/{plural}/"

    def key(self, info: ResourceInfo, namespace: str, name: str) -> str:
        if info.namespaced:
            return f"{self.prefix(info)}{namespace}/{name}"
        return f"{self.prefix(info)}{name}"

    def rcache(self, info: ResourceInfo) -> ResourceCache:
        return self._caches[(info.group, info.plural)]

    def object_count(self, group: str, plural: str) -> int:
        """Objects cached of ``group``/``plural`` (0: not served); what a list of it
        scans (API Priority and Fairness sizes its seats by it)."""
        rc = self._caches.get((group, plural))
        return 0 if rc is None else len(rc.entries)

    def schema(self, info: ResourceInfo, kind: str | None = None) -> SchemaNode | None:
        """The type schema of ``kind`` (the row's own by default): Kubernetes 1.32's, or
        the one a Corral kind's strategy declares (``Strategy.definitions``)."""
        k = (info.group, info.version, kind or info.kind)
        if k not in self._schemas:
            self._schemas[k] = for_kind(*k) or _declared_schema(info, k)
        return self._schemas[k]

    def now(self) -> str:
        return rfc3339(self.clock.now())

    def entry(self, info: ResourceInfo, namespace: str, name: str) -> Entry | None:
        return self.rcache(info).entries.get(self.key(info, namespace, name))

    def get(self, info: ResourceInfo, namespace: str, name: str) -> Entry:
        e = self.entry(info, namespace, name)
        if e is None:
            raise errors.not_found(info.plural, info.group, name)
        return e

    # --- views: one stored object, served in another version's shape -------------------
    @staticmethod
    def decode(info: ResourceInfo, entry: Entry) -> Obj:
        """A fresh decoded copy of ``entry`` in ``info``'s shape (converted for a view)."""
        if info.converter is None:
            return entry.obj()
        return info.converter.from_storage(entry.obj())

    @staticmethod
    def raw(info: ResourceInfo, entry: Entry) -> bytes:
        """``entry``'s JSON in ``info``'s shape: the cached bytes unless ``info`` is a view."""
        if info.converter is None:
            return entry.raw
        cached = getattr(info.converter, "raw", None)  # a CRD version's: converted once
        if cached is not None:
            raw: bytes = cached(entry.key, entry.revision, entry.obj)
            return raw
        return orjson.dumps(info.converter.from_storage(entry.obj()))

    @staticmethod
    def _to_storage(info: ResourceInfo, obj: Obj) -> Obj:
        return obj if info.converter is None else info.converter.to_storage(obj)

    @staticmethod
    def _stored(info: ResourceInfo, kv: KV, **kw: Any) -> Result:
        """The Result of a storage write, in ``info``'s shape."""
        if info.converter is None:
            return Result(kv.obj, kv.raw, **kw)
        obj = info.converter.from_storage(kv.obj)
        return Result(obj, orjson.dumps(obj), **kw)

    # --- decoding checks --------------------------------------------------------------
    def check_type(self, info: ResourceInfo, obj: Any, *, kind: str | None = None) -> None:
        """The body must be an object of this resource's kind and group-version."""
        if not isinstance(obj, dict):
            raise errors.bad_request("the object provided is not a JSON or YAML object")
        want_kind = kind or info.kind
        gv = info.group_version if kind is None else obj.get("apiVersion", "")
        api_version = obj.get("apiVersion")
        got_kind = obj.get("kind")
        if api_version and api_version != gv:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version ({gv})"
            )
        if got_kind and got_kind != want_kind:
            raise errors.bad_request(
                f"the kind in the data ({got_kind}) does not match the expected kind ({want_kind})"
            )
        meta = obj.get("metadata")
        if meta is None:
            obj["metadata"] = {}
        elif not isinstance(meta, dict):
            k = kind or info.kind
            raise errors.bad_request(
                f'{k} in version "{info.version}" cannot be handled as a {k}: json: cannot '
                f"unmarshal {type(meta).__name__} into Go struct field {k}.metadata of type v1.ObjectMeta"
            )

    def _decode_typed(
        self,
        info: ResourceInfo,
        obj: Obj,
        kind: str | None = None,
        unknown: list[str] | None = None,
        stored: Obj | None = None,
        stored_null_free: bool = False,
    ) -> None:
        """Check every value's JSON type as Go's typed decoding does (400 if wrong), and
        drop nulls the way a Go struct has no nil fields; with ``unknown``, also drop the
        fields the schema does not know and list their paths. Rewrites ``obj`` in place.
        ``stored``: the fresh decode ``obj`` was merge-patched from, and
        ``stored_null_free`` whether it holds no null (``check_types``)."""
        node = self.schema(info, kind)
        if node is None:
            return
        try:
            typed = check_types(
                obj, node, unknown=unknown, stored=stored, stored_null_free=stored_null_free
            )
        except (TypeMismatch, BadTime) as e:
            k = kind or info.kind
            raise errors.bad_request(
                f'{k} in version "{info.version}" cannot be handled as a {k}: {e}'
            ) from None
        obj.clear()
        obj.update(typed)

    def _decode_metadata(self, info: ResourceInfo, obj: Obj) -> list[str]:
        """An untyped kind's (a custom resource's) metadata decoded as ObjectMeta, as
        upstream decodes it: wrong JSON types are a 400, unknown fields are dropped and
        their paths returned."""
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            return []
        unknown: list[str] = []
        try:
            obj["metadata"] = check_types(meta, _object_meta(), "metadata", "", unknown, "metadata")
        except (TypeMismatch, BadTime) as e:
            k = info.kind
            raise errors.bad_request(
                f'{k} in version "{info.version}" cannot be handled as a {k}: {e}'
            ) from None
        return unknown

    def _validate_fields(
        self,
        info: ResourceInfo,
        obj: Obj,
        opts: WriteOptions,
        stored: Obj | None = None,
        stored_null_free: bool = False,
    ) -> list[str]:
        """Drop unknown fields (Strict refuses them, Warn returns warnings), then
        decode the rest by type. ``stored``, ``stored_null_free``: as for
        ``_decode_typed``."""
        if info.strategy.typed:
            unknown: list[str] = []
            self._decode_typed(
                info, obj, unknown=unknown, stored=stored, stored_null_free=stored_null_free
            )
        else:
            unknown = self._decode_metadata(info, obj) + info.strategy.prune(obj)
        problems = [f'unknown field "{p}"' for p in unknown]
        problems += [f'duplicate field "{p}"' for p in opts.duplicates]
        if not problems or opts.field_validation == "Ignore":
            return []
        if opts.field_validation == "Strict":
            k = info.kind
            raise errors.bad_request(
                f'{k} in version "{info.version}" cannot be handled as a {k}: strict decoding error: '
                + ", ".join(problems)
            )
        return problems

    def _check_namespace(self, info: ResourceInfo, namespace: str, creating: bool) -> None:
        if not info.namespaced:
            return
        ns_info = self.by_gvr[("", "v1", "namespaces")]
        ns = self.entry(ns_info, "", namespace)
        if ns is None:
            raise errors.not_found("namespaces", "", namespace)
        if creating and ns.fields.get("status.phase") == "Terminating":
            raise errors.forbidden_error(
                f'{info.qualified} "{{name}}" is forbidden: unable to create new content in namespace {namespace} because it is being terminated',
            )

    def _fill_status(self, info: ResourceInfo, obj: Obj) -> None:
        status = obj.get("status")
        if not info.strategy.typed:
            return
        node = self.schema(info)
        if isinstance(status, dict) and node is not None:
            fill_required(status, node.field("status"))

    def _invalid(self, info: ResourceInfo, obj: Obj, errs: list[errors.FieldError]) -> None:
        if errs:
            name = (obj.get("metadata") or {}).get("name", "")
            raise errors.invalid_object(info.kind, info.group, name, errs)

    # --- create -------------------------------------------------------------------------
    async def create(
        self,
        info: ResourceInfo,
        namespace: str,
        obj: Obj,
        opts: WriteOptions,
        managed_fields: list[Any] | None = None,
    ) -> Result:
        """Create ``obj``; ``managed_fields`` (from an apply) replaces the Update entry."""
        self.check_type(info, obj)
        warnings = self._validate_fields(info, obj, opts)
        obj["apiVersion"] = info.group_version
        obj["kind"] = info.kind
        meta = obj.setdefault("metadata", {})
        if info.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and body_ns != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        try:
            self._check_namespace(info, namespace, True)
        except errors.StatusError as e:
            if e.code == 403:
                name = meta.get("name") or meta.get("generateName", "")
                e.message = e.message.replace("{name}", name)
                e.details = {"name": name, "kind": info.plural}
                if info.group:
                    e.details = {"name": name, "group": info.group, "kind": info.plural}
            raise
        generated = not meta.get("name") and bool(meta.get("generateName"))
        for attempt in range(8):
            if generated:
                meta["name"] = generate_name(meta["generateName"])
            meta["uid"] = new_uid()
            meta["creationTimestamp"] = self.now()
            for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
                meta.pop(k, None)
            info.strategy.default(obj)
            if managed_fields is None and attempt == 0:
                # As upstream's create handler: the field manager records what the request
                # wrote (decoded and defaulted) before the strategy prepares the object and
                # before mutating admission, so a field only a plugin sets (a service
                # account's token volume, the default tolerations, the priority) is no
                # manager's. A retry with a new generated name keeps this record.
                record_update(
                    obj,
                    None,
                    opts.field_manager or "unknown",
                    info.group_version,
                    self.now(),
                    self.schema(info),
                )
            info.strategy.prepare_for_create(obj)
            self._fill_status(info, obj)
            # no name yet is the validation's to refuse (below), after admission as upstream
            self.admit(CREATE, info, namespace, meta.get("name", ""), "", obj, None, opts)
            errs = info.strategy.validate_metadata(obj, info.namespaced)
            errs += info.strategy.validate(obj)
            self._invalid(info, obj, errs)
            key = self.key(info, namespace, meta["name"])
            releases = self._run_hooks(info, obj, key)
            held: list[AsyncRelease] = []
            try:
                await self._run_async_hooks(info, obj, key, held)
                result = await self._store_created(info, obj, key, opts, managed_fields, warnings)
            except KeyExists:
                if generated and attempt < 7:
                    continue
                raise errors.already_exists(info.plural, info.group, meta["name"]) from None
            finally:
                for release in releases:
                    release()
                for done in held:
                    await done()
            return result
        raise AssertionError("unreachable")

    def _admission_reads_only(self, info: ResourceInfo) -> bool:
        """Whether no admission plugin of ``info``'s resource changes the object it
        admits: each says so with a ``mutating`` attribute of False (NodeRestriction);
        a plain callable may mutate (``admission_chain.py``)."""
        return all(
            getattr(plugin, "mutating", True) is False
            for plugin in self.admission.get((info.group, info.plural), ())
        )

    def admit(
        self,
        operation: str,
        info: ResourceInfo,
        namespace: str,
        name: str,
        subresource: str,
        obj: Obj | None,
        old: Obj | None,
        opts: WriteOptions | DeleteOptions,
    ) -> None:
        """Run ``info``'s admission plugins (``admission_chain.py``) on this write; a
        refusal raises. One dict lookup when none is registered."""
        plugins = self.admission.get((info.group, info.plural))
        if not plugins:
            return
        req = AdmissionRequest(
            operation, info, namespace, name, subresource, obj, old, opts.user, opts.dry_run
        )
        for plugin in plugins:
            plugin(req)

    def _run_hooks(self, info: ResourceInfo, obj: Obj, key: str) -> list[Callable[[], None]]:
        releases = []
        for hook in self.write_hooks.get((info.group, info.plural), ()):
            release = hook(obj, key)
            if release is not None:
                releases.append(release)
        return releases

    async def _run_async_hooks(
        self, info: ResourceInfo, obj: Obj, key: str, held: list[AsyncRelease]
    ) -> None:
        for hook in self.async_write_hooks.get((info.group, info.plural), ()):
            release = await hook(obj, key)
            if release is not None:
                held.append(release)

    async def _store_created(
        self,
        info: ResourceInfo,
        obj: Obj,
        key: str,
        opts: WriteOptions,
        managed_fields: list[Any] | None,
        warnings: list[str],
    ) -> Result:
        meta = obj["metadata"]
        if managed_fields is not None:  # an apply's; an Update's is recorded in ``create``
            meta["managedFields"] = managed_fields
        if opts.dry_run:
            if self.rcache(info).entries.get(key) is not None:
                raise errors.already_exists(info.plural, info.group, meta["name"])
            return Result(obj, orjson.dumps(obj), True, warnings)
        kv = await self.storage.create(key, self._to_storage(info, obj))
        return self._stored(info, kv, created=True, warnings=warnings)

    # --- update (PUT) ----------------------------------------------------------------------
    async def update(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        obj: Obj,
        opts: WriteOptions,
        subresource: str = "",
    ) -> Result:
        self.check_type(info, obj)
        warnings = self._validate_fields(info, obj, opts)
        meta = obj.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        if info.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        precondition = meta.get("resourceVersion") or None
        # The transform ignores the stored object and returns the body, which shares
        # nothing with it: one decode serves (``copying``).
        res = await self._guaranteed_update(
            info, namespace, name, lambda _cur: obj, opts, subresource, precondition, copying=True
        )
        res.warnings = warnings + res.warnings
        return res

    async def _guaranteed_update(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        transform: Callable[[Obj], Obj],
        opts: WriteOptions,
        subresource: str = "",
        precondition: str | None = None,
        manager_op: str = "Update",
        copying: bool = False,
    ) -> Result:
        """Read, ``transform``, prepare, admit, validate, record field ownership and
        write, again from the top when another write came first. ``transform`` gets a
        fresh decode of the stored object and may mutate it.

        With ``copying`` it promises to leave its argument alone and to return a new
        object owning every container the steps below may write into, sharing the rest
        with its argument: then one decode serves as both its argument and the old
        object. Those steps write into the top level and metadata (its own keys, never
        the values under them); on a ``/status`` write into the status too (the strategy's
        status hook, ``_fill_status``), on a ``TRANSFORM_VALIDATED`` one (no strategy hook)
        into the status only through ``_fill_status``; a main-resource write's defaulting
        and admission may write anywhere, except where the strategy's are shallow
        (``Strategy.shallow_update_prepare``) and no admission plugin mutates
        (``_admission_reads_only``). So: a PUT's body (shares nothing), the binding's
        transform (own top level, metadata and status) and a merge patch's of the status,
        or of such a kind's main resource (``_own_written``), do so."""
        key = self.key(info, namespace, name)
        for _ in range(_MAX_RETRIES):
            entry = self.rcache(info).entries.get(key)
            if entry is None:
                raise errors.not_found(info.plural, info.group, name)
            if precondition is not None and precondition != str(entry.revision):
                raise errors.conflict(info.plural, info.group, name)
            old = self.decode(info, entry)
            new = transform(old if copying else self.decode(info, entry))
            self._check_identity(info, new, old, name)
            new = self._prepare_update(info, new, old, subresource)
            self._fill_status(info, new)
            if subresource != "binding":  # the binding handler admits a CREATE of the Binding
                self.admit(UPDATE, info, namespace, name, subresource, new, old, opts)
            errs = info.strategy.validate_metadata(new, info.namespaced)
            if subresource == "status":
                errs += info.strategy.validate_status_update(new, old)
            elif subresource and subresource in info.strategy.update_subresources:
                errs += info.strategy.validate_subresource_update(subresource, new, old)
            elif subresource in TRANSFORM_VALIDATED:
                pass  # the binding handler sets nodeName and a condition, nothing a user wrote;
                # the ephemeralcontainers handler validated its change in its transform
            else:
                errs += info.strategy.validate_update(new, old)
            self._invalid(info, new, errs)
            # A binding is the scheduler's, not a field owner's write: like the real
            # BindingREST it bypasses the field manager.
            if manager_op == "Update" and subresource != "binding":
                record_update(
                    new,
                    old,
                    opts.field_manager or "unknown",
                    info.group_version,
                    self.now(),
                    self.schema(info),
                    subresource,
                )
            if _same(new, old) and not _stale(self.storage, key):
                return Result(old, self.raw(info, entry))
            releases = self._run_hooks(info, new, key) if subresource == "" else []
            held: list[AsyncRelease] = []
            try:
                if subresource == "":
                    await self._run_async_hooks(info, new, key, held)
                result = await self._store_updated(info, key, entry, new, opts, precondition, name)
            finally:
                for release in releases:
                    release()
                for done in held:
                    await done()
            if result is None:
                continue
            return result
        raise errors.conflict(info.plural, info.group, name, "too many concurrent updates")

    async def _store_updated(
        self,
        info: ResourceInfo,
        key: str,
        entry: Entry,
        new: Obj,
        opts: WriteOptions,
        precondition: str | None,
        name: str,
    ) -> Result | None:
        """Write ``new`` over ``entry``; None means "lost a race, read again"."""
        if opts.dry_run:
            return Result(new, orjson.dumps(new))
        if _gone_when_written(info, new):
            # The last finalizer went: the object goes with it.
            try:
                kv = await self.storage.delete(key, entry.revision)
            except RevisionMismatch:
                return None
            except KeyNotFound:
                raise errors.not_found(info.plural, info.group, name) from None
            return self._stored(info, kv, deleted=True)
        try:
            kv = await self.storage.update(key, self._to_storage(info, new), entry.revision)
        except RevisionMismatch:
            if precondition is not None:
                raise errors.conflict(info.plural, info.group, name) from None
            return None
        except KeyNotFound:
            raise errors.not_found(info.plural, info.group, name) from None
        return self._stored(info, kv)

    def _check_identity(self, info: ResourceInfo, new: Obj, old: Obj, name: str) -> None:
        """A write may not rename an object or name another one's uid."""
        meta = new.get("metadata") if isinstance(new.get("metadata"), dict) else {}
        assert isinstance(meta, dict)
        new_name = meta.get("name")
        if new_name and new_name != name:
            raise errors.bad_request(
                f"the name of the object ({new_name}) does not match the name on the URL ({name})"
            )
        uid, old_uid = meta.get("uid"), old["metadata"].get("uid")
        if uid and uid != old_uid:
            raise errors.conflict(
                info.plural,
                info.group,
                name,
                f"StorageError: invalid object, Code: 4, Key: {self.key(info, old['metadata'].get('namespace', ''), name)}, "
                f"ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: {uid}, "
                f"UID in object meta: {old_uid}",
            )

    def _prepare_update(self, info: ResourceInfo, new: Obj, old: Obj, subresource: str) -> Obj:
        new["apiVersion"] = info.group_version
        new["kind"] = info.kind
        meta = new.setdefault("metadata", {})
        om = old["metadata"]
        # Immutable or server-owned metadata always comes from the stored object.
        for k in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            if k in om:
                meta[k] = om[k]
            else:
                meta.pop(k, None)
        meta.pop("selfLink", None)
        if "managedFields" not in meta and "managedFields" in om:
            meta["managedFields"] = om["managedFields"]
        if om.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or ()) - set(om.get("finalizers") or ())
            if added:
                raise errors.invalid_object(
                    info.kind,
                    info.group,
                    om["name"],
                    [
                        errors.forbidden(
                            "metadata.finalizers",
                            f"no new finalizers can be added if the object is being deleted, found new finalizers {sorted(added)!r}".replace(
                                "'", '"'
                            ),
                        )
                    ],
                )
        if subresource == "status":
            info.strategy.prepare_for_status_update(new, old)
        elif subresource and subresource in info.strategy.update_subresources:
            info.strategy.prepare_for_subresource_update(subresource, new, old)
        elif subresource in TRANSFORM_VALIDATED:
            pass
        elif subresource == "finalize":
            # namespaces/finalize changes spec.finalizers and nothing else
            finalizers = (new.get("spec") or {}).get("finalizers") or []
            new.clear()
            new.update(old)
            new["spec"] = {**(old.get("spec") or {}), "finalizers": finalizers}
        else:
            info.strategy.default(new)
            info.strategy.prepare_for_update(new, old)
        return new

    # --- patch -----------------------------------------------------------------------------
    async def patch(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        patch_type: str,
        body: Any,
        opts: WriteOptions,
        subresource: str = "",
    ) -> Result:
        if patch_type in (APPLY_PATCH, APPLY_PATCH_CBOR):
            return await self.apply(info, namespace, name, body, opts, subresource)
        warnings: list[str] = []
        node = self.schema(info)
        merging = patch_type in (MERGE_PATCH, STRATEGIC_PATCH) and info.converter is None
        # A merge patch (JSON or strategic) of a typed kind (decoding it writes nothing in
        # place, unlike a custom resource's pruning) takes the stored object as its base
        # and as the old object both, one decode (``copying``), when what the steps after
        # it write into can be unshared: a status patch's metadata and status; a main
        # resource's too when its strategy prepares an update shallowly and no admission
        # plugin mutates it (a node's Lease renewal). ``_own_written`` unshares them.
        strategy = info.strategy
        copying = (
            merging
            and strategy.typed
            and (
                subresource == "status"
                or (
                    subresource == ""
                    and strategy.shallow_update_prepare
                    and self._admission_reads_only(info)
                )
            )
        )
        rc = self.rcache(info)
        key = self.key(info, namespace, name)

        def transform(cur: Obj) -> Obj:
            # ``cur`` is a fresh decode (``_guaranteed_update``): patched without a copy.
            # The merge patches leave ``cur`` whole and share what they do not touch, which
            # the typed decoding then need not walk again (``check_types``' ``stored``);
            # it need not look for nulls in what they share when the stored JSON has none
            # (``entry``: the one ``cur`` was just decoded from, nothing awaited since).
            cur_rv = (cur.get("metadata") or {}).get("resourceVersion")
            new = apply_patch(patch_type, cur, body, node, owned=True)
            self.check_type(info, new)
            rv = (new.get("metadata") or {}).get("resourceVersion")
            if rv and rv != cur_rv:
                raise errors.conflict(info.plural, info.group, name)
            if merging:
                entry = rc.entries.get(key)
                null_free = entry is not None and b"null" not in entry.raw
                warnings.extend(self._validate_fields(info, new, opts, cur, null_free))
            else:
                warnings.extend(self._validate_fields(info, new, opts))
            if copying:
                _own_written(new, cur, body if patch_type == MERGE_PATCH else None)
            return new

        res = await self._guaranteed_update(
            info, namespace, name, transform, opts, subresource, copying=copying
        )
        res.warnings = warnings + res.warnings
        return res

    async def apply(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        body: Any,
        opts: WriteOptions,
        subresource: str = "",
    ) -> Result:
        if not opts.field_manager:
            raise errors.bad_request(
                "PATCH, application/apply-patch+yaml requests require a fieldManager"
            )
        self.check_type(info, body)
        if not body.get("apiVersion") or not body.get("kind"):
            raise errors.bad_request("apiVersion and kind must be set in an apply configuration")
        warnings = self._validate_fields(info, body, opts)
        meta = body.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        node = self.schema(info)
        if self.entry(info, namespace, name) is None:
            if subresource:
                raise errors.not_found(info.plural, info.group, name)
            meta["name"] = name
            obj = server_side_apply(
                None, body, opts.field_manager, info.group_version, opts.force, self.now(), node
            )
            create_opts = WriteOptions(opts.dry_run, opts.field_manager, "Ignore", user=opts.user)
            managed = obj["metadata"].get("managedFields")
            res = await self.create(info, namespace, obj, create_opts, managed)
            res.warnings = warnings
            return res

        def transform(cur: Obj) -> Obj:
            return server_side_apply(
                cur, body, opts.field_manager, info.group_version, opts.force, self.now(), node
            )

        res = await self._guaranteed_update(
            info,
            namespace,
            name,
            transform,
            opts,
            subresource,
            meta.get("resourceVersion") or None,
            manager_op="Apply",
        )
        res.warnings = warnings + res.warnings
        return res

    # --- delete ------------------------------------------------------------------------------
    async def delete(
        self, info: ResourceInfo, namespace: str, name: str, opts: DeleteOptions
    ) -> Result:
        res = await self._delete(info, namespace, name, opts)
        if info.converter is None:
            return res
        obj = info.converter.from_storage(res.obj)
        return Result(obj, orjson.dumps(obj), deleted=res.deleted)

    async def _delete(
        self, info: ResourceInfo, namespace: str, name: str, opts: DeleteOptions
    ) -> Result:
        """``delete`` on the stored shape (a view's answer is converted by the caller)."""
        key = self.key(info, namespace, name)
        if info.group == "" and info.plural == "namespaces" and name in IMMORTAL_NAMESPACES:
            raise errors.forbidden_error(
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                "namespaces",
                "",
                name,
            )
        for _ in range(_MAX_RETRIES):
            entry = self.rcache(info).entries.get(key)
            if entry is None:
                raise errors.not_found(info.plural, info.group, name)
            if self.admission.get((info.group, info.plural)):
                self.admit(DELETE, info, namespace, name, "", None, entry.obj(), opts)
            obj = entry.obj()
            meta = obj["metadata"]
            if not meta.get("deletionTimestamp"):
                info.strategy.prepare_for_delete(obj, self.now())
            if opts.precondition_uid and opts.precondition_uid != meta.get("uid"):
                raise errors.conflict(
                    info.plural,
                    info.group,
                    name,
                    f"Precondition failed: UID in precondition: {opts.precondition_uid}, UID in object meta: {meta.get('uid')}",
                )
            if opts.precondition_rv and opts.precondition_rv != meta.get("resourceVersion"):
                raise errors.conflict(
                    info.plural,
                    info.group,
                    name,
                    f"Precondition failed: ResourceVersion in precondition: {opts.precondition_rv}, ResourceVersion in object meta: {meta.get('resourceVersion')}",
                )
            policy = opts.propagation or info.strategy.default_gc_policy
            finalizers = list(meta.get("finalizers") or [])
            changed = False
            if (
                policy == "Foreground"
                and "foregroundDeletion" not in finalizers
                and not meta.get("deletionTimestamp")
            ):
                finalizers.append("foregroundDeletion")
                changed = True
            if (
                policy == "Orphan"
                and "orphan" not in finalizers
                and not meta.get("deletionTimestamp")
            ):
                finalizers.append("orphan")
                changed = True
            grace = self._grace(info, obj, opts)
            if grace > 0 and meta.get("deletionTimestamp") is None:
                changed = True
            if (
                info.group == ""
                and info.plural == "namespaces"
                and (obj.get("spec") or {}).get("finalizers")
            ):
                changed = changed or not meta.get("deletionTimestamp")
                held = True
            else:
                held = bool(finalizers)
            if not held and grace == 0:
                if opts.dry_run:
                    return Result(obj, entry.raw, deleted=True)
                try:
                    kv = await self.storage.delete(key, entry.revision)
                except RevisionMismatch:
                    continue
                except KeyNotFound:
                    raise errors.not_found(info.plural, info.group, name) from None
                return Result(kv.obj, kv.raw, deleted=True)
            # a second delete may only shorten the grace period, down to 0 (a kubelet's
            # final delete): then the object goes as soon as its finalizers do
            shorter = (
                meta.get("deletionTimestamp")
                and opts.grace_period is not None
                and opts.grace_period < int(meta.get("deletionGracePeriodSeconds") or 0)
            )
            if shorter:
                # a second delete may only shorten the grace period
                meta["deletionTimestamp"] = rfc3339(self.clock.now() + grace)
                meta["deletionGracePeriodSeconds"] = grace
                changed = True
            if not changed and meta.get("deletionTimestamp"):
                return Result(obj, entry.raw)
            if finalizers:
                meta["finalizers"] = finalizers
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = rfc3339(self.clock.now() + grace)
                meta["deletionGracePeriodSeconds"] = grace
                if "generation" in meta:
                    meta["generation"] += 1
            if info.plural == "namespaces" and info.group == "":
                obj.setdefault("status", {})["phase"] = "Terminating"
            if opts.dry_run:
                return Result(obj, orjson.dumps(obj))
            try:
                kv = await self.storage.update(key, obj, entry.revision)
            except RevisionMismatch:
                continue
            except KeyNotFound:
                raise errors.not_found(info.plural, info.group, name) from None
            return Result(kv.obj, kv.raw)
        raise errors.conflict(info.plural, info.group, name, "too many concurrent updates")

    def _grace(self, info: ResourceInfo, obj: Obj, opts: DeleteOptions) -> int:
        """Seconds of graceful deletion: pods bound to a node and still running only."""
        if not info.strategy.graceful_delete:
            return 0
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        if opts.grace_period is not None:
            return max(0, opts.grace_period)
        meta = obj["metadata"]
        if meta.get("deletionGracePeriodSeconds") is not None:
            return int(meta["deletionGracePeriodSeconds"])
        return int(spec.get("terminationGracePeriodSeconds", 30))

    # --- binding and helpers for the GC -------------------------------------------------------
    async def force_delete(self, info: ResourceInfo, key: str) -> KV | None:
        entry = self.rcache(info).entries.get(key)
        if entry is None:
            return None
        try:
            return await self.storage.delete(key, entry.revision)
        except (RevisionMismatch, KeyNotFound):
            return None

    async def update_obj(self, info: ResourceInfo, key: str, fn: Callable[[Obj], bool]) -> None:
        """Internal read-modify-write (GC, namespace controller): ``fn`` returns False to skip."""
        for _ in range(_MAX_RETRIES):
            entry = self.rcache(info).entries.get(key)
            if entry is None:
                return
            obj = entry.obj()
            if not fn(obj):
                return
            try:
                if _gone_when_written(info, obj):
                    await self.storage.delete(key, entry.revision)
                else:
                    await self.storage.update(key, obj, entry.revision)
                return
            except RevisionMismatch:
                continue
            except KeyNotFound:
                return


#: subresources whose handler's transform prepares and validates the object itself
#: (``handlers.binding``, ``ephemeral.EphemeralContainers``): no strategy update path
TRANSFORM_VALIDATED = ("binding", "ephemeralcontainers")


def apply_patch(
    patch_type: str, doc: Obj, body: Any, node: SchemaNode | None, *, owned: bool = False
) -> Obj:
    """``doc`` patched by a JSON, merge or strategic merge patch (a new object). With
    ``owned`` (``doc`` is the caller's fresh copy, used no more) ``doc`` is not copied
    first: the result may share its values or be ``doc`` itself."""
    if patch_type == JSON_PATCH:
        return json_patch(doc, body)
    if patch_type == MERGE_PATCH:
        return merge_patch(doc, body, owned=owned)
    if patch_type == STRATEGIC_PATCH:
        return strategic_merge_patch(doc, body, node, owned=owned)
    raise errors.unsupported_media_type(patch_type)


def _own_written(new: Obj, old: Obj, merged: Obj | None) -> None:
    """Make ``new`` (``old`` patched copy-on-write, then decoded) own what the update
    steps write into (``Registry._guaranteed_update``'s ``copying``): its metadata map
    (its keys only: the values under them are never written) and every container of its
    status, which may still be ``old``'s where the patch left them alone (only those are
    copied, ``clone``). ``merged``: the JSON merge patch, which tells them apart; without
    it (a strategic merge patch) they are found by identity."""
    meta = new.get("metadata")
    if isinstance(meta, dict):
        new["metadata"] = dict(meta)
    status = new.get("status")
    if not isinstance(status, NESTED):
        return
    if merged is not None:
        new["status"] = _unshared(status, old.get("status"), merged.get("status"))
    else:
        new["status"] = _unshared_keyed(status, old.get("status"))


def _unshared(value: Any, was: Any, patch: Any) -> Any:
    """``value`` (at some place of a merge-patched object) with no container of ``was``
    (the old object's at that place) left in it; ``patch``: the merge patch's value
    there, if a map. What the patch brought is new all through; the maps on the way to
    it are new and walked; anything else is the old value (copied) or, where the typed
    decoding dropped a null, decoded again from it (walked beside it, place by place)."""
    if value is was:
        return clone(value)
    if isinstance(value, dict):
        old = was if isinstance(was, dict) else {}
        given = patch if isinstance(patch, dict) else {}
        for key, child in value.items():
            if not isinstance(child, NESTED):
                continue
            sub = given.get(key)
            if sub is not None and not isinstance(sub, dict):
                continue  # the patch's value, copied by the patch: new
            new_child = _unshared(child, old.get(key), sub)
            if new_child is not child:
                value[key] = new_child
    elif isinstance(value, list) and isinstance(was, list):
        for i, item in enumerate(value[: len(was)]):
            if isinstance(item, NESTED):
                new_item = _unshared(item, was[i], None)
                if new_item is not item:
                    value[i] = new_item
    return value


def _unshared_keyed(value: Any, was: Any) -> Any:
    """``_unshared`` after a strategic merge patch, whose merged lists may keep the old
    lists' items where the patch does not name them: each item of a list that is, or
    holds, one of the old list's containers is copied whole."""
    if value is was:
        return clone(value)
    if isinstance(value, dict):
        old = was if isinstance(was, dict) else {}
        for key, child in value.items():
            if isinstance(child, NESTED):
                new_child = _unshared_keyed(child, old.get(key))
                if new_child is not child:
                    value[key] = new_child
    elif isinstance(value, list) and isinstance(was, list) and was:
        theirs = _containers(was, set())
        for i, item in enumerate(value):
            if isinstance(item, NESTED) and _holds_any(item, theirs):
                value[i] = clone(item)
    return value


def _containers(value: Any, into: set[int]) -> set[int]:
    """The ids of every map and list in ``value``, itself included."""
    into.add(id(value))
    for child in value.values() if isinstance(value, dict) else value:
        if isinstance(child, NESTED):
            _containers(child, into)
    return into


def _holds_any(value: Any, ids: set[int]) -> bool:
    if id(value) in ids:
        return True
    return any(
        isinstance(child, NESTED) and _holds_any(child, ids)
        for child in (value.values() if isinstance(value, dict) else value)
    )


def has_finalizers(info: ResourceInfo, obj: Obj) -> bool:
    """Finalizers hold an object being deleted; a namespace also has ``spec.finalizers``."""
    if (obj.get("metadata") or {}).get("finalizers"):
        return True
    if info.group == "" and info.plural == "namespaces":
        return bool((obj.get("spec") or {}).get("finalizers"))
    return False


def _gone_when_written(info: ResourceInfo, obj: Obj) -> bool:
    """A write that leaves a deleting object with nothing holding it deletes it."""
    meta = obj["metadata"]
    if not meta.get("deletionTimestamp") or has_finalizers(info, obj):
        return False
    return not (info.strategy.graceful_delete and meta.get("deletionGracePeriodSeconds"))


def _compared_meta(obj: Obj) -> Obj:
    """``obj``'s metadata as no-op detection sees it: no resourceVersion, no times in
    managedFields."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("resourceVersion", None)
    mf = meta.pop("managedFields", None)
    if mf:
        meta["managedFields"] = [{k: v for k, v in m.items() if k != "time"} for m in mf]
    return meta


def _same(new: Obj, old: Obj) -> bool:
    """No-op detection: an update that changes nothing writes nothing (and keeps the RV).
    The parts besides metadata are compared first, in place (a status write's status
    differs: no copies are made to find that out)."""
    if new.keys() - {"metadata"} != old.keys() - {"metadata"}:
        return False
    for key, value in new.items():
        if key != "metadata" and value != old[key]:
            return False
    return _compared_meta(new) == _compared_meta(old)


def _stale(storage: object, key: str) -> bool:
    """The stored value is under an older encryption key (or plaintext now encrypted):
    a no-op update still writes it, as upstream's etcd3 store (``storage/transform.py``)."""
    is_stale = getattr(storage, "is_stale", None)
    return bool(is_stale(key)) if is_stale is not None else False
