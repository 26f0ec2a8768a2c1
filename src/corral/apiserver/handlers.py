"""The generic REST handlers: one set of verbs for every resource.

``ResourceHandler.dispatch`` maps (method, path) to get / list / watch / create / update /
patch / delete / deletecollection and the ``status``, ``scale``, ``binding``,
``eviction``, ``log``, ``exec``, ``attach`` (``attach.py``), ``ephemeralcontainers``
(``ephemeral.py``) and ``portforward`` (``portforward.py``) subresources,
reads query parameters and bodies,
calls the ``Registry`` and encodes its answer (plain JSON, Table or
PartialObjectMetadata). Lists are assembled from the cached bytes of each object without
decoding them; watch streams send each event's shared bytes. A view resource (another
version of a stored one, ``ResourceInfo.storage``) is the exception: its objects are
decoded and converted one by one, and its field selectors renamed to the stored fields.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import dataclasses
import functools
import re
import ssl
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from corral.api import errors, schema
from corral.api.selectors import (
    FieldSelector,
    LabelSelector,
    parse_field_selector,
    parse_label_selector,
    selector_from_map,
    selector_from_object,
)
from corral.apiserver import attach, ephemeral, portforward, tables, warning
from corral.apiserver.admission_chain import CONNECT, CREATE
from corral.apiserver.proxy import AgentProxy
from corral.apiserver.registry.base import ResourceInfo
from corral.apiserver.request import (
    JSON,
    NOT_ACCEPTABLE_MESSAGE,
    PARTIAL,
    TABLE,
    Accept,
    PathInfo,
    decode_body,
    duplicate_fields,
    negotiate,
)
from corral.apiserver.store import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_PATCH,
    DeleteOptions,
    Registry,
    WriteOptions,
    apply_patch,
)
from corral.storage.base import Compacted
from corral.storage.cache import Entry, Watcher, WatchEvent

if TYPE_CHECKING:
    from corral.apiserver.token_request import TokenRequests

JSON_CT = "application/json"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)
BOOKMARK_INTERVAL = 30.0
#: a watch stream writes at most this much per write (the rest waits in its queue, where
#: the slow-watcher bound of ``storage/cache.py`` sees it)
WATCH_CHUNK_BYTES = 1024 * 1024
#: a watcher expired for falling behind has this long to read its 410 ERROR event, then
#: its connection is dropped (a client that reads nothing holds no stream for ever)
EXPIRED_WATCH_GRACE = 10.0
#: a list decoded for a Table or metadata answer gives the event loop back after each
#: this many objects, so that a Lease renewal is not kept waiting behind the whole list
#: of a flood (API Priority and Fairness orders requests; this lets the loop honour it)
LIST_CHUNK = 100
#: how long a read with a resourceVersion this server's cache has not reached waits for
#: it (upstream's watch cache blockTimeout) before GET/LIST answer 504 (seconds)
FRESH_WAIT = 3.0


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, up to ``limit`` bytes. Not ``content.read(limit)`` alone: that
    returns what has arrived so far, so a large body (a 64 KB ConfigMap from a loaded
    client) was cut short and refused as truncated."""
    parts: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await request.content.read(limit - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def json_response(
    body: bytes,
    status: int = 200,
    headers: dict[str, str] | None = None,
    content_type: str = JSON_CT,
) -> web.Response:
    h = {"Content-Type": content_type}
    if headers:
        h.update(headers)
    return web.Response(body=body, status=status, headers=h)


def status_success(info: ResourceInfo, name: str, uid: str) -> bytes:
    details: dict[str, Any] = {"name": name}
    if info.group:
        details["group"] = info.group
    details["kind"] = info.plural
    details["uid"] = uid
    return orjson.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }
    )


def _warning_headers(warnings: list[str]) -> dict[str, str]:
    warnings = warnings + [w for w in warning.recorded() if w not in warnings]  # admission's
    if not warnings:
        return {}
    return {"Warning": ", ".join(f'299 - "{_quoted_warning(w)}"' for w in warnings)}


_HEADER_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _quoted_warning(text: str) -> str:
    """A warning's text in a header value as upstream quotes it (``"`` and ``\\``
    escaped), control characters as spaces (Go's header writer does so for CR and LF;
    aiohttp refuses them all), so that a field name the client sent cannot break the
    header."""
    return _HEADER_CONTROLS.sub(" ", text.replace("\\", "\\\\").replace('"', '\\"'))


class ResourceHandler:
    """HTTP verbs over the generic registry."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        #: a store other servers write too (etcd): reads without a resourceVersion first
        #: wait until this server's cache has etcd's current revision (``sync``)
        self.read_barrier = bool(getattr(registry.storage, "shared", False))

    async def _consistent(self) -> None:
        """Upstream's consistent read from the cache (ConsistentListFromCache): read the
        store's current revision, wait until the watch cache has it. Free on SQLite."""
        if self.read_barrier:
            await self.registry.storage.sync()

    async def _fresh(self, want: int) -> int:
        """Upstream's waitUntilFreshAndBlock: a resourceVersion ahead of this server's
        cache (seen on another server) waits, at most ``FRESH_WAIT``, for the cache to
        catch up with the store; the cache's revision after."""
        if want > self.registry.cache.revision and self.read_barrier:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FRESH_WAIT):
                    await self.registry.storage.sync()
        return self.registry.cache.revision

    # --- routing -----------------------------------------------------------------------------
    async def dispatch(
        self, request: web.Request, p: PathInfo, info: ResourceInfo
    ) -> web.StreamResponse:
        method = request.method
        warning.start()
        if not negotiate(request.headers.get("Accept", "")).acceptable:
            raise errors.not_acceptable(NOT_ACCEPTABLE_MESSAGE)
        if info.namespaced and not p.namespaced_path and p.name:
            raise errors.path_not_found()
        if not info.namespaced and p.namespaced_path:
            raise errors.path_not_found()
        ns = p.namespace if info.namespaced else ""
        sub = p.subresource
        if sub:
            return await self.subresource(request, info, ns, p.name, sub)
        if not p.name:
            if method == "GET":
                watch = request.query.get("watch")
                # upstream's bool parameter: all but "0" and "false" (any case) is true;
                # as ``request_info.resolve`` says, so what authorization and flow
                # control admitted as a watch is never served as a (seatless) list
                if watch is not None and watch.lower() not in ("false", "0"):
                    return await self.watch(request, info, ns if p.namespaced_path else None)
                return await self.list(request, info, ns if p.namespaced_path else None)
            if method == "POST":
                if info.namespaced and not p.namespaced_path:
                    raise errors.method_not_allowed()
                return await self.create(request, info, ns)
            if method == "DELETE":
                return await self.delete_collection(
                    request, info, ns if p.namespaced_path else None
                )
            raise errors.method_not_allowed()
        if method == "GET":
            rv = request.query.get("resourceVersion", "")
            if not rv:
                await self._consistent()
            elif rv != "0" and (want := _parse_rv(rv)) > await self._fresh(want):
                raise _too_large(want, self.registry.cache.revision)
            return self.get(request, info, ns, p.name)
        if method == "PUT":
            return await self.update(request, info, ns, p.name, "")
        if method == "PATCH":
            return await self.patch(request, info, ns, p.name, "")
        if method == "DELETE":
            return await self.delete(request, info, ns, p.name)
        raise errors.method_not_allowed()

    # --- reads --------------------------------------------------------------------------------
    def _encode_one(
        self,
        request: web.Request,
        info: ResourceInfo,
        entry_raw: bytes,
        obj: dict[str, Any] | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        acc = negotiate(request.headers.get("Accept", ""))
        if acc.format == JSON:
            return json_response(entry_raw, status, headers)
        o = obj if obj is not None else orjson.loads(entry_raw)
        if acc.format == TABLE:
            body = self._table(request, info, [o], o["metadata"].get("resourceVersion", ""), acc)
            return json_response(orjson.dumps(body), status, headers, _table_ct(acc))
        return json_response(orjson.dumps(_partial(o, acc)), status, headers, _partial_ct(acc))

    def get(self, request: web.Request, info: ResourceInfo, ns: str, name: str) -> web.Response:
        e = self.registry.get(info, ns, name)
        return self._encode_one(request, info, self.registry.raw(info, e))

    def _selectors(
        self, request: web.Request, info: ResourceInfo
    ) -> tuple[LabelSelector | None, FieldSelector | None]:
        q = request.query
        ls = parse_label_selector(q["labelSelector"]) if q.get("labelSelector") else None
        allowed = ["metadata.name", "metadata.namespace", *info.strategy.field_selectors]
        fs = parse_field_selector(q["fieldSelector"], allowed) if q.get("fieldSelector") else None
        if fs is not None and info.converter is not None:
            # a view selects on the stored object's fields: rename to their stored names
            names = info.converter.field_labels
            fs = FieldSelector(
                tuple(
                    dataclasses.replace(r, field=names.get(r.field, r.field))
                    for r in fs.requirements
                )
            )
        return ls, fs

    async def list(self, request: web.Request, info: ResourceInfo, ns: str | None) -> web.Response:
        q = request.query
        acc = negotiate(request.headers.get("Accept", ""))
        ls, fs = self._selectors(request, info)
        rv = q.get("resourceVersion", "")
        match = q.get("resourceVersionMatch", "")
        if not rv and not q.get("continue"):
            await self._consistent()
        elif rv.isdigit():
            await self._fresh(int(rv))  # a version seen on another server: catch up first
        current = self.registry.cache.revision
        if match and not rv:
            raise errors.bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided"
            )
        if match and match not in ("NotOlderThan", "Exact"):
            raise errors.bad_request(
                f'resourceVersionMatch: Unsupported value: "{match}": supported values: "Exact", "NotOlderThan"'
            )
        if rv and rv != "0":
            want = _parse_rv(rv)
            if want > current:
                raise _too_large(want, current)
            if match == "Exact" and want != current:
                raise errors.expired(f"too old resource version: {want} ({current})")
        limit = _int_param(q, "limit", 0)
        start_after = ""
        list_rv = current
        if q.get("continue"):
            if rv and rv != "0":
                raise errors.bad_request(
                    "specifying resource version is not allowed when using continue"
                )
            start_after, list_rv = _decode_continue(q["continue"])
        rc = self.registry.rcache(info)
        items: builtins.list[Entry] = []
        remaining = 0
        more = False
        it = rc.select(ns if info.namespaced else None, ls, fs, start_after)
        for e in it:
            if limit and len(items) >= limit:
                more = True
                remaining = 1 + sum(1 for _ in it)
                break
            items.append(e)
        meta: dict[str, Any] = {"resourceVersion": str(list_rv)}
        if more:
            meta["continue"] = _encode_continue(rc.position(items[-1]), list_rv)
            if ls is None and fs is None:
                meta["remainingItemCount"] = remaining
        if acc.format == JSON:
            head = orjson.dumps(
                {"kind": info.list_kind, "apiVersion": info.group_version, "metadata": meta}
            )
            if info.converter is None:
                raws = [e.raw for e in items]
            else:
                raws = [self.registry.raw(info, e) for e in items]
            body = head[:-1] + b',"items":[' + b",".join(raws) + b"]}"
            return json_response(body)
        objs: builtins.list[dict[str, Any]] = []
        rows: builtins.list[dict[str, Any]] = []
        for i in range(0, len(items), LIST_CHUNK):
            if i:
                await asyncio.sleep(0)  # others' requests run between chunks
            chunk = [self.registry.decode(info, e) for e in items[i : i + LIST_CHUNK]]
            if acc.format == TABLE:
                rows += self._table(request, info, chunk, "", acc)["rows"]
            else:
                objs += chunk
        if acc.format == TABLE:
            table = self._table(request, info, [], str(list_rv), acc)
            table["rows"] = rows
            table["metadata"] = meta
            return json_response(orjson.dumps(table), content_type=_table_ct(acc))
        out = {
            "kind": "PartialObjectMetadataList",
            "apiVersion": f"meta.k8s.io/{acc.version}",
            "metadata": meta,
            "items": [_partial(o, acc) for o in objs],
        }
        return json_response(orjson.dumps(out), content_type=_partial_ct(acc, True))

    def _table(
        self,
        request: web.Request,
        info: ResourceInfo,
        objs: builtins.list[dict[str, Any]],
        rv: str,
        acc: Accept,
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        include = request.query.get("includeObject", "Metadata")
        rows = []
        custom = info.strategy.table_columns()  # a CRD's additionalPrinterColumns
        for o in objs:
            cells = (
                info.strategy.table_row(o, now)
                if custom is not None
                else tables.row(info.plural, info.group, o, now)
            )
            row: dict[str, Any] = {"cells": cells}
            if include == "Object":
                row["object"] = o
            elif include != "None":
                row["object"] = _partial(o, acc)
            rows.append(row)
        return {
            "kind": "Table",
            "apiVersion": f"meta.k8s.io/{acc.version}",
            "metadata": {"resourceVersion": rv},
            "columnDefinitions": custom
            if custom is not None
            else tables.columns(info.plural, info.group),
            "rows": rows,
        }

    # --- watch ---------------------------------------------------------------------------------
    async def watch(
        self, request: web.Request, info: ResourceInfo, ns: str | None
    ) -> web.StreamResponse:
        q = request.query
        acc = negotiate(request.headers.get("Accept", ""))
        ls, fs = self._selectors(request, info)
        rv = q.get("resourceVersion", "")
        timeout = _int_param(q, "timeoutSeconds", 0)
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        initial = q.get("sendInitialEvents") in ("true", "1")
        rc = self.registry.rcache(info)
        w = Watcher(ns if info.namespaced else None, ls, fs)
        from_rev: int | None = None if (rv in ("", "0") or initial) else _parse_rv(rv)
        if rv == "" or (initial and rv != "0"):
            await self._consistent()  # start from the store's current state
        elif from_rev is not None:
            # resumed from a version seen on another server: let this cache catch up
            # (the watcher skips changes up to from_rev anyway: ``Watcher.after``)
            await self._fresh(from_rev)
        resp = web.StreamResponse(status=200, headers={"Content-Type": _watch_ct(acc)})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            rc.add_watcher(w, from_rev, self.registry.cache.revision)
        except Compacted as c:
            err = errors.expired(f"too old resource version: {c.requested} ({c.compacted})")
            await resp.write(orjson.dumps({"type": "ERROR", "object": err.status()}) + b"\n")
            await resp.write_eof()
            return resp
        deadline = time.monotonic() + timeout if timeout > 0 else None
        transport, loop = request.transport, asyncio.get_running_loop()
        grace: list[asyncio.TimerHandle] = []
        if transport is not None:
            w.on_expire = lambda: grace.append(
                loop.call_later(EXPIRED_WATCH_GRACE, transport.abort)
            )
        try:
            if initial and bookmarks:
                w.queue.put_nowait(
                    WatchEvent(
                        "BOOKMARK-INITIAL",
                        Entry("", "", "", b"", self.registry.cache.revision, {}, {}),
                    )
                )
            while True:
                wait = BOOKMARK_INTERVAL
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        break
                try:
                    ev = await w.queue.get_within(wait)
                except TimeoutError:
                    if bookmarks and (deadline is None or deadline > time.monotonic()):
                        await resp.write(self._bookmark(info, self.registry.cache.revision, False))
                    continue
                if ev is None:
                    break
                chunk = [self._event_bytes(request, info, ev, acc)]
                size = len(chunk[0])
                while not w.queue.empty() and len(chunk) < 256 and size < WATCH_CHUNK_BYTES:
                    nxt = w.queue.get_nowait()
                    if nxt is None:
                        w.closed = True
                        break
                    chunk.append(self._event_bytes(request, info, nxt, acc))
                    size += len(chunk[-1])
                await resp.write(b"".join(chunk))
                if w.closed and w.queue.empty():  # else: what is left (a 410 ERROR), then end
                    break
        except ConnectionResetError:  # the client went away: nothing left to end
            return resp
        finally:
            rc.remove_watcher(w)
            while not w.queue.empty():  # what a gone client left unread leaves the budget
                w.queue.get_nowait()
            for h in grace:
                h.cancel()
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
        return resp

    def _bookmark(self, info: ResourceInfo, rev: int, initial_end: bool) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rev)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": info.kind, "apiVersion": info.group_version, "metadata": meta}
        return orjson.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"

    def _event_bytes(
        self, request: web.Request, info: ResourceInfo, ev: WatchEvent, acc: Accept
    ) -> bytes:
        if ev.type == "BOOKMARK-INITIAL":
            return self._bookmark(info, ev.entry.revision, True)
        if ev.type == "ERROR":  # the slow watcher's 410 (storage/cache.py): a Status
            return ev.line()
        if acc.format == JSON:
            if info.converter is None:
                return ev.line()
            raw = self.registry.raw(info, ev.entry)
            return b'{"type":"' + ev.type.encode() + b'","object":' + raw + b"}\n"
        o = self.registry.decode(info, ev.entry)
        if acc.format == TABLE:
            obj: dict[str, Any] = self._table(request, info, [o], str(ev.entry.revision), acc)
        else:
            obj = _partial(o, acc)
        return orjson.dumps({"type": ev.type, "object": obj}) + b"\n"

    # --- writes -----------------------------------------------------------------------------------
    def _write_opts(self, request: web.Request) -> WriteOptions:
        q = request.query
        dry = q.getall("dryRun", [])
        for d in dry:
            if d != "All":
                raise errors.bad_request(
                    f'dryRun: Unsupported value: "{d}": supported values: "All"'
                )
        fv = q.get("fieldValidation", "Warn") or "Warn"
        if fv not in ("Ignore", "Warn", "Strict"):
            raise errors.bad_request(
                f'fieldValidation: Unsupported value: "{fv}": supported values: "Ignore", "Strict", "Warn"'
            )
        fm = q.get("fieldManager", "")
        if len(fm) > 128:
            raise errors.bad_request("fieldManager: Too long: must have at most 128 bytes")
        force = q.get("force", "") in ("true", "1")
        is_apply = request.headers.get("Content-Type", "").startswith("application/apply-patch")
        if is_apply and not fm:
            raise errors.invalid_object(
                "PatchOptions",
                "meta.k8s.io",
                "",
                [errors.required("fieldManager", "is required for apply patch")],
            )
        return WriteOptions(
            bool(dry), fm or _default_manager(request), fv, force, user=request.get("user")
        )

    async def _body(self, request: web.Request, opts: WriteOptions | None = None) -> Any:
        if request.content_length is not None and request.content_length > 3 * 1024 * 1024:
            raise errors.too_large()
        raw = await read_body(request, 3 * 1024 * 1024 + 1)
        ct = request.headers.get("Content-Type", JSON_CT)
        body = decode_body(raw, ct)
        if opts is not None and opts.field_validation != "Ignore" and "json" in ct.lower():
            opts.duplicates = duplicate_fields(raw, body)
        return body

    async def create(self, request: web.Request, info: ResourceInfo, ns: str) -> web.Response:
        opts = self._write_opts(request)
        body = await self._body(request, opts)
        res = await self.registry.create(info, ns, body, opts)
        return self._encode_one(
            request, info, res.raw, res.obj, 201, _warning_headers(res.warnings)
        )

    async def update(
        self, request: web.Request, info: ResourceInfo, ns: str, name: str, sub: str
    ) -> web.Response:
        opts = self._write_opts(request)
        body = await self._body(request, opts)
        res = await self.registry.update(info, ns, name, body, opts, sub)
        return self._encode_one(
            request, info, res.raw, res.obj, 200, _warning_headers(res.warnings)
        )

    async def patch(
        self, request: web.Request, info: ResourceInfo, ns: str, name: str, sub: str
    ) -> web.Response:
        ct = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ct not in PATCH_TYPES:
            raise errors.unsupported_media_type(ct)
        if ct == STRATEGIC_PATCH and not info.strategy.typed:
            # custom resources have no Go struct to carry patch strategies
            raise errors.StatusError(
                415,
                errors.UNSUPPORTED_MEDIA_TYPE,
                "the body of the request was in an unknown format - accepted media types include: "
                f"application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml ({ct})",
            )
        opts = self._write_opts(request)
        if opts.force and ct != APPLY_PATCH:
            raise errors.bad_request(
                "force: Invalid value: true: may not be specified for non-apply patch"
            )
        body = await self._body(request)
        res = await self.registry.patch(info, ns, name, ct, body, opts, sub)
        code = 201 if res.created else 200
        return self._encode_one(
            request, info, res.raw, res.obj, code, _warning_headers(res.warnings)
        )

    async def _delete_opts(self, request: web.Request) -> DeleteOptions:
        q = request.query
        body: dict[str, Any] = {}
        raw = await read_body(request, 3 * 1024 * 1024 + 1)
        if raw.strip():
            b = decode_body(raw, request.headers.get("Content-Type", JSON_CT))
            if not isinstance(b, dict):
                raise errors.bad_request("DeleteOptions must be an object")
            node = schema.for_kind("", "v1", "DeleteOptions")
            try:  # Go's typed decoding: {"preconditions": []} is refused, not a crash
                body = schema.check_types(b, node) if node is not None else b
            except (schema.TypeMismatch, schema.BadTime) as e:
                raise errors.bad_request(str(e)) from None
        policy = q.get("propagationPolicy") or body.get("propagationPolicy")
        orphan = q.get("orphanDependents") or body.get("orphanDependents")
        if policy and orphan is not None:
            raise errors.invalid_object(
                "DeleteOptions",
                "",
                "",
                [
                    errors.forbidden(
                        "propagationPolicy",
                        "orphanDependents and deletionPropagation cannot be both set",
                    )
                ],
            )
        if orphan is not None:
            policy = "Orphan" if str(orphan).lower() == "true" else "Background"
        if policy and policy not in ("Background", "Foreground", "Orphan"):
            raise errors.invalid_object(
                "DeleteOptions",
                "",
                "",
                [
                    errors.not_supported(
                        "propagationPolicy", policy, ["Foreground", "Background", "Orphan", "nil"]
                    )
                ],
            )
        grace = q.get("gracePeriodSeconds")
        try:
            gp = int(grace) if grace not in (None, "") else body.get("gracePeriodSeconds")
        except ValueError:
            raise errors.bad_request(
                f'strconv.ParseInt: parsing "{grace}": invalid syntax'
            ) from None
        pre = body.get("preconditions") or {}
        dry = q.getall("dryRun", []) or body.get("dryRun") or []
        return DeleteOptions(
            gp, policy, pre.get("uid"), pre.get("resourceVersion"), bool(dry), request.get("user")
        )

    async def delete(
        self, request: web.Request, info: ResourceInfo, ns: str, name: str
    ) -> web.Response:
        """The generic store's answer: the object while it still exists (graceful, or held
        by finalizers); once gone, the object where the kind's registry sets
        ``ReturnDeletedObject`` (``Strategy.return_deleted_object``), else a Status
        ``Success`` with the name, group, resource and uid in its details."""
        opts = await self._delete_opts(request)
        res = await self.registry.delete(info, ns, name, opts)
        if res.deleted and not info.strategy.return_deleted_object:
            return json_response(
                status_success(info, name, res.obj.get("metadata", {}).get("uid", ""))
            )
        return self._encode_one(request, info, res.raw, res.obj)

    async def delete_collection(
        self, request: web.Request, info: ResourceInfo, ns: str | None
    ) -> web.Response:
        """Delete every selected object; the answer is the list as it was read before the
        deletes (the generic store's ``DeleteCollection``: its ``List``, then a ``Delete``
        per item, one already gone being no error), whatever each delete answered."""
        opts = await self._delete_opts(request)
        ls, fs = self._selectors(request, info)
        rc = self.registry.rcache(info)
        revision = self.registry.cache.revision
        listed = list(rc.select(ns if info.namespaced else None, ls, fs))
        items = [self.registry.raw(info, e) for e in listed]
        for e in listed:
            try:
                await self.registry.delete(info, e.namespace, e.name, opts)
            except errors.StatusError as err:
                if err.code != 404:
                    raise
        head = orjson.dumps(
            {
                "kind": info.list_kind,
                "apiVersion": info.group_version,
                "metadata": {"resourceVersion": str(revision)},
            }
        )
        return json_response(head[:-1] + b',"items":[' + b",".join(items) + b"]}")

    # --- subresources ------------------------------------------------------------------------------
    #: the bearer token ``pods/log`` and ``pods/exec`` present to node agents (set by
    #: ``APIApp``: the admin token); None forwards the caller's own token
    agent_token: str | None = None
    #: TLS towards agents with serving certificates (``proxy.kubelet_client_context``,
    #: set by server.py); None: the default trust store, no client certificate
    agent_ssl: ssl.SSLContext | None = None
    #: the ``serviceaccounts/token`` subresource (``token_request.py``, set by server.py);
    #: None answers it 404
    token_requests: TokenRequests | None = None

    @functools.cached_property
    def agent_proxy(self) -> AgentProxy:
        return AgentProxy(self.registry, self.agent_token, self.agent_ssl)

    async def subresource(
        self, request: web.Request, info: ResourceInfo, ns: str, name: str, sub: str
    ) -> web.StreamResponse:
        method = request.method
        if sub == "status" and info.strategy.has_status:
            if method == "GET":
                return self.get(request, info, ns, name)
            if method == "PUT":
                return await self.update(request, info, ns, name, "status")
            if method == "PATCH":
                return await self.patch(request, info, ns, name, "status")
            raise errors.method_not_allowed()
        if sub == "scale" and info.scale is not None:
            return await self.scale(request, info, ns, name)
        if sub in info.strategy.update_subresources:  # a CSR's approval
            if method == "GET":
                return self.get(request, info, ns, name)
            if method == "PUT":
                return await self.update(request, info, ns, name, sub)
            if method == "PATCH":
                return await self.patch(request, info, ns, name, sub)
            raise errors.method_not_allowed()
        if info.group == "" and info.plural == "pods":
            if sub == "binding" and method == "POST":
                return await self.binding(request, info, ns, name)
            if sub == "eviction" and method == "POST":
                return await self.eviction(request, info, ns, name)
            if sub == "log":
                if method != "GET":
                    raise errors.method_not_allowed()
                return await self.agent_proxy.log(request, ns, name)
            if sub == "exec":
                if method not in ("GET", "POST"):
                    raise errors.method_not_allowed()
                self._admit_connect(request, info, ns, name, sub)
                return await self.agent_proxy.exec(request, ns, name)
            if sub == "attach":
                if method not in ("GET", "POST"):
                    raise errors.method_not_allowed()
                self._admit_connect(request, info, ns, name, sub)
                return await attach.attach(self.agent_proxy, request, ns, name)
            if sub == ephemeral.SUBRESOURCE:
                opts = self._write_opts(request)
                body = None
                if method in ("PUT", "PATCH"):  # (a patch is not checked as a Pod)
                    body = await self._body(request, opts if method == "PUT" else None)
                code, raw = await ephemeral.ephemeral_containers(
                    self.registry, request, info, ns, name, body, opts
                )
                return json_response(raw, code)
            if sub == "portforward":
                if method not in ("GET", "POST"):
                    raise errors.method_not_allowed()
                self._admit_connect(request, info, ns, name, sub)
                return await portforward.port_forward(self.agent_proxy, request, ns, name)
        if (
            info.group == ""
            and info.plural == "namespaces"
            and sub == "finalize"
            and method == "PUT"
        ):
            return await self.update(request, info, ns, name, "finalize")
        if info.group == "" and info.plural == "serviceaccounts" and sub == "token":
            if self.token_requests is None:
                raise errors.path_not_found()
            if method != "POST":
                raise errors.method_not_allowed()
            return await self.token_requests.create(request, info, ns, name)
        raise errors.path_not_found()

    def _admit_connect(
        self, request: web.Request, info: ResourceInfo, ns: str, name: str, sub: str
    ) -> None:
        """Admission of a CONNECT subresource (exec, attach, portforward): no object."""
        opts = WriteOptions(user=request.get("user"))
        self.registry.admit(CONNECT, info, ns, name, sub, None, None, opts)

    async def binding(
        self, request: web.Request, info: ResourceInfo, ns: str, name: str
    ) -> web.Response:
        body = await self._body(request)
        node_schema = schema.for_kind("", "v1", "Binding")
        if isinstance(body, dict) and node_schema is not None:
            try:  # Go's typed decoding: {"target": {"name": 5}} is refused
                body = schema.check_types(body, node_schema)
            except (schema.TypeMismatch, schema.BadTime) as e:
                msg = f'Binding in version "v1" cannot be handled as a Binding: {e}'
                raise errors.bad_request(msg) from None
        target = body.get("target") if isinstance(body, dict) else None
        target = target if isinstance(target, dict) else {}
        errs = []  # upstream's ValidatePodBinding
        if target.get("kind") and target["kind"] != "Node":
            errs.append(errors.not_supported("target.kind", target["kind"], ["Node", "<empty>"]))
        if not target.get("name"):
            errs.append(errors.required("target.name"))
        if errs:
            raise errors.invalid_object("Binding", "", name, errs)
        opts = self._write_opts(request)
        self.registry.admit(CREATE, info, ns, name, "binding", body, None, opts)
        node = body["target"]["name"]
        uid_pre = (body.get("metadata") or {}).get("uid")
        now = self.registry.now()
        key = self.registry.key(info, ns, name)
        held: builtins.list[Any] = []

        def bind(pod: dict[str, Any]) -> dict[str, Any]:
            # ``pod`` is also the old object (``copying``): changed parts are copies
            meta = pod["metadata"]
            if uid_pre and meta.get("uid") != uid_pre:
                raise errors.conflict(
                    "pods",
                    "",
                    name,
                    f"Precondition failed: UID in precondition: {uid_pre}, UID in object meta: {meta.get('uid')}",
                )
            if meta.get("deletionTimestamp"):
                raise errors.conflict(
                    "pods/binding", "", name, "pod is being deleted, cannot be assigned to a host"
                )
            spec = pod.get("spec") or {}
            if spec.get("nodeName"):
                raise errors.conflict(
                    "pods/binding",
                    "",
                    name,
                    f'pod {name} is already assigned to node "{spec["nodeName"]}"',
                )
            bound = dict(pod)  # the same keys in the same order, as written in place
            bound["metadata"] = dict(meta)
            bound["spec"] = {**spec, "nodeName": node}
            # the status is the registry's to fill (required fields): a deep copy, small
            st = orjson.loads(orjson.dumps(pod.get("status") or {}))
            bound["status"] = st
            self._release_binding(held)
            held.extend(self._admit_binding(bound, key))
            conds = [c for c in st.get("conditions") or [] if c.get("type") != "PodScheduled"]
            conds.append(
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                }
            )
            st["conditions"] = conds
            return bound

        try:
            await self.registry._guaranteed_update(
                info, ns, name, bind, opts, "binding", copying=True
            )
        finally:
            self._release_binding(held)
        return json_response(
            orjson.dumps(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "code": 201,
                }
            ),
            201,
        )

    def _admit_binding(self, pod: dict[str, Any], key: str) -> builtins.list[Any]:
        """Run the ``("", "pods/binding")`` hooks (the API server's overcommit guard,
        admission.NodeUsage.reserve) on the pod as bound; returns their releases."""
        releases = []
        for hook in self.registry.write_hooks.get(("", "pods/binding"), ()):
            release = hook(pod, key)
            if release is not None:
                releases.append(release)
        return releases

    @staticmethod
    def _release_binding(held: builtins.list[Any]) -> None:
        while held:
            held.pop()()

    async def eviction(
        self, request: web.Request, info: ResourceInfo, ns: str, name: str
    ) -> web.Response:
        body = await self._body(request)
        if not isinstance(body, dict):
            raise errors.bad_request("the object provided is not an Eviction")
        node_schema = schema.for_kind("policy", "v1", "Eviction")
        if node_schema is not None:
            try:  # Go's typed decoding: {"deleteOptions": {"preconditions": true}} is refused
                body = schema.check_types(body, node_schema)
            except (schema.TypeMismatch, schema.BadTime) as e:
                msg = f'Eviction in version "v1" cannot be handled as a Eviction: {e}'
                raise errors.bad_request(msg) from None
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request("name in URL does not match name in Eviction object")
        do = body.get("deleteOptions") or {}
        pre = do.get("preconditions") or {}
        dry = bool(do.get("dryRun")) or bool(request.query.getall("dryRun", []))
        opts = DeleteOptions(
            do.get("gracePeriodSeconds"),
            do.get("propagationPolicy"),
            pre.get("uid"),
            pre.get("resourceVersion"),
            dry,
            request.get("user"),
        )
        self.registry.admit(CREATE, info, ns, name, "eviction", body, None, opts)
        # the ("", "pods/eviction") hooks (admission.DisruptionBudgets) may refuse (429)
        # and reserve the pod while its delete is in flight
        pod = self.registry.get(info, ns, name).obj()
        key = self.registry.key(info, ns, name)
        held: builtins.list[Any] = []
        try:
            for hook in self.registry.write_hooks.get(("", "pods/eviction"), ()):
                release = hook(pod, key)
                if release is not None:
                    held.append(release)
            # the store's share of the check (DisruptionBudgets.commit: the budget's
            # status, compare-and-swap, so evictions through other servers count too)
            commits = self.registry.async_write_hooks.get(("", "pods/eviction"), [])
            for commit in [] if dry else commits:
                await commit(pod, key)  # returns no release: the status write stays
            if not dry and not (pod.get("metadata") or {}).get("deletionTimestamp"):
                await self._mark_evicted(info, ns, name, pre.get("uid"))
            # the eviction's own delete is not admitted again (upstream's EvictionREST
            # deletes through the store, past the admission chain)
            await self.registry.delete(info, ns, name, dataclasses.replace(opts, user=None))
        finally:
            self._release_binding(held)
        return json_response(
            orjson.dumps(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "code": 201,
                }
            ),
            201,
        )

    async def _mark_evicted(self, info: ResourceInfo, ns: str, name: str, uid: str | None) -> None:
        """The DisruptionTarget condition an evicted pod carries while it terminates."""
        now = self.registry.now()

        def add(pod: dict[str, Any]) -> dict[str, Any]:
            if uid and pod["metadata"].get("uid") != uid:
                raise errors.conflict(
                    "pods",
                    "",
                    name,
                    f"Precondition failed: UID in precondition: {uid}, "
                    f"UID in object meta: {pod['metadata'].get('uid')}",
                )
            st = pod.setdefault("status", {})
            conds = [c for c in st.get("conditions") or [] if c.get("type") != "DisruptionTarget"]
            conds.append(
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                    "reason": "EvictionByEvictionAPI",
                    "message": "Eviction API: evicting",
                }
            )
            st["conditions"] = conds
            return pod

        await self.registry._guaranteed_update(
            info, ns, name, add, WriteOptions(field_manager="corral-apiserver"), "status"
        )

    async def scale(
        self, request: web.Request, info: ResourceInfo, ns: str, name: str
    ) -> web.Response:
        assert info.scale is not None
        sa = info.scale
        method = request.method
        if method == "GET":
            e = self.registry.get(info, ns, name)
            return json_response(orjson.dumps(self._scale_of(info, e.obj())))
        if method not in ("PUT", "PATCH"):
            raise errors.method_not_allowed()
        opts = self._write_opts(request)
        ct = request.headers.get("Content-Type", JSON_CT).split(";")[0].strip().lower()
        if method == "PATCH" and ct not in PATCH_TYPES:
            raise errors.unsupported_media_type(ct)
        body = await self._body(request)

        def transform(parent: dict[str, Any]) -> dict[str, Any]:
            cur = self._scale_of(info, parent)
            if method == "PUT":
                new = body
                self.registry.check_type(info, new, kind="Scale")
                rv = (new.get("metadata") or {}).get("resourceVersion")
                if rv and rv != parent["metadata"]["resourceVersion"]:
                    raise errors.conflict(info.plural, info.group, name)
            else:
                new = apply_patch(ct, cur, body, self.registry.schema(info, "Scale"))
            replicas = (new.get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise errors.invalid_object(
                    "Scale",
                    "autoscaling",
                    name,
                    [
                        errors.invalid(
                            "spec.replicas", replicas, "must be greater than or equal to 0"
                        )
                    ],
                )
            target = parent
            for k in sa.replicas_path[:-1]:
                target = target.setdefault(k, {})
            target[sa.replicas_path[-1]] = replicas
            return parent

        res = await self.registry._guaranteed_update(info, ns, name, transform, opts, "scale")
        return json_response(orjson.dumps(self._scale_of(info, res.obj)))

    def _scale_of(self, info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
        assert info.scale is not None
        sa = info.scale
        meta = obj["metadata"]
        spec_r = _dig(obj, sa.replicas_path) or 0
        status_r = _dig(obj, sa.status_replicas_path) or 0
        sel = _dig(obj, sa.selector_path)
        if isinstance(sel, str):  # a CRD's labelSelectorPath holds the selector string
            selector = sel
        elif sa.selector_is_map:
            selector = str(selector_from_map(sel)) if sel else ""
        else:
            selector = str(selector_from_object(sel)) if sel is not None else ""
        out_meta = {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        }
        status: dict[str, Any] = {"replicas": status_r}
        if selector:  # omitempty
            status["selector"] = selector
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": out_meta,
            "spec": {"replicas": spec_r},
            "status": status,
        }


def _dig(obj: dict[str, Any], path: tuple[str, ...]) -> Any:
    cur: Any = obj
    for k in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(k)
    return cur


def _default_manager(request: web.Request) -> str:
    """Kubernetes uses the User-Agent's first segment when no fieldManager is sent."""
    ua = request.headers.get("User-Agent", "unknown")
    return ua.split("/")[0][:128] or "unknown"


def _partial(o: dict[str, Any], acc: Accept) -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"meta.k8s.io/{acc.version}",
        "metadata": o.get("metadata", {}),
    }


def _table_ct(acc: Accept) -> str:
    return f"application/json;as=Table;v={acc.version};g=meta.k8s.io"


def _partial_ct(acc: Accept, is_list: bool = False) -> str:
    kind = "PartialObjectMetadataList" if is_list else "PartialObjectMetadata"
    return f"application/json;as={kind};v={acc.version};g=meta.k8s.io"


def _watch_ct(acc: Accept) -> str:
    if acc.format == TABLE:
        return _table_ct(acc)
    if acc.format == PARTIAL:
        return _partial_ct(acc)
    return JSON_CT


def _int_param(q: Any, name: str, default: int) -> int:
    v = q.get(name)
    if v in (None, ""):
        return default
    try:
        n = int(v)
    except ValueError:
        raise errors.bad_request(f'invalid value for {name}: "{v}"') from None
    if n < 0:
        raise errors.bad_request(f"{name}: Invalid value: {n}: must be greater than or equal to 0")
    return n


def _too_large(want: int, current: int) -> errors.StatusError:
    """Upstream's TooLargeResourceVersionError (client-go retries it)."""
    return errors.StatusError(
        504,
        errors.TIMEOUT,
        f"Too large resource version: {want}, current: {current}",
        {
            "causes": [
                {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
            ],
            "retryAfterSeconds": 1,
        },
    )


def _parse_rv(rv: str) -> int:
    try:
        n = int(rv)
    except ValueError:
        raise errors.bad_request(f'invalid resource version "{rv}"') from None
    if n < 0:
        raise errors.bad_request(f'invalid resource version "{rv}"')
    return n


def _encode_continue(position: str, rv: int) -> str:
    token = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": position})
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[str, int]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if data.get("v") != "meta.k8s.io/v1":
            raise ValueError(data.get("v"))
        return str(data["start"]), int(data["rv"])
    except (ValueError, KeyError, TypeError, AttributeError, orjson.JSONDecodeError):
        raise errors.bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        ) from None
