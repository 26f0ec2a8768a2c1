"""The etcd v3 backend of the storage protocol (``--datastore etcd://h:p,h:p``).

The protocol of ``storage/base.py`` is shaped like etcd already, so each call is one
etcd request: ``create`` is a txn "create_revision == 0 then put", ``update`` and
``delete`` are "mod_revision == expected then put/delete, else get" (the else branch
tells KeyNotFound from RevisionMismatch), ``list`` is a paginated range read at one
revision, ``watch`` an etcd watch, ``compact`` etcd's compaction. Revisions are etcd's:
an object's ``resourceVersion`` is its mod_revision, stamped on read (the bytes in etcd
do not carry it), so the same object has the same resourceVersion on every server.

Values are the object's JSON (without resourceVersion), sealed by the ``transformer``
(encryption at rest) when it applies, as upstream stores them.

**One watch feeds the server.** ``attach_listener(cb, after)`` starts one etcd watch over
the WHOLE keyspace from ``after + 1`` (the revision the watch cache was loaded at); its
events under ``/registry/`` go to ``listeners`` in revision order. Every revision is a
write to some key, so the watch sees each one: the revision it has dispatched tells
exactly how far this server's cache is (no progress notifications needed; etcd 3.4's
could overtake events). A write returns after its revision has been dispatched
(read-your-writes on one server); ``sync()`` reads etcd's current revision (one
linearizable round trip) and waits until the watch has dispatched it: the consistent
read barrier of GET/LIST on several servers (upstream's ConsistentListFromCache). The
watch resumes from the last dispatched revision + 1 after a lost connection, on the
next endpoint; when etcd has compacted past that revision (a long partition), the
store lists /registry/ again and hands the list to ``relist`` (the watch cache replaces
its content and ends its watchers with 410, as upstream's cacher on a relist). Corral's own keys (``/corral/...``: bootstrap data, the compaction
counter) are read and written with ``get_meta``/``put_meta``.
"""

from __future__ import annotations

import asyncio
import builtins
import heapq
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import orjson
from aetcd import rpc

from corral.storage.base import (
    DELETE,
    KV,
    PUT,
    Compacted,
    Event,
    KeyExists,
    KeyNotFound,
    Obj,
    RevisionMismatch,
    StorageUnavailable,
    read_modify_write,
)
from corral.storage.etcd_conn import (
    ATTEMPT_TIMEOUT,
    REQUIRE_LEADER,
    RETRY_FOR,
    Connection,
    EtcdTLS,
)
from corral.storage.sqlite import stamp
from corral.storage.transform import TransformError, ValueTransformer

log = logging.getLogger("corral.storage.etcd")

REGISTRY = "/registry/"
#: upstream's compactor key (``compact_rev_key``): its version counts compactions, its
#: value is the last compacted revision; a txn on its version elects one compactor
COMPACT_KEY = "/corral/compact_rev_key"
#: keys per page of a list
PAGE = 1000
#: how long a write or ``sync`` waits for the watch to dispatch its revision (seconds)
DISPATCH_WAIT = 30.0

_MOD = rpc.Compare.MOD
_CREATE = rpc.Compare.CREATE
_VERSION = rpc.Compare.VERSION
_EQUAL = rpc.Compare.EQUAL
_GREATER = rpc.Compare.GREATER
_DELETE_EVENT = rpc.Event.DELETE


def prefix_end(prefix: bytes) -> bytes:
    """The range end covering every key that starts with ``prefix`` (etcd's GetPrefix)."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


def _put(key: bytes, value: bytes, prev_kv: bool = False) -> Any:
    return rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value, prev_kv=prev_kv))


def _get(key: bytes) -> Any:
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key))


class EtcdStorage:
    """Storage protocol on an etcd v3 cluster (see the module docstring)."""

    #: whether other servers write to this store (other API servers write to the same etcd): reads need ``sync``
    shared = True

    def __init__(
        self,
        endpoints: list[str],
        *,
        tls: EtcdTLS | None = None,
        min_history: int = 1000,
        retry_for: float = RETRY_FOR,
        dispatch_wait: float = DISPATCH_WAIT,
        attempt_timeout: float = ATTEMPT_TIMEOUT,
    ) -> None:
        self.conn = Connection(
            endpoints, tls=tls, retry_for=retry_for, attempt_timeout=attempt_timeout
        )
        #: what the server names as its datastore (status files, messages)
        self.path = "etcd://" + ",".join(endpoints)
        self.min_history = min_history
        self.dispatch_wait = dispatch_wait
        self._revision = 0
        self._compacted = 0
        #: called synchronously, in revision order, for every change under /registry/
        #: (by any server), before a write of this server is acknowledged
        self.listeners: list[Callable[[Event], None]] = []
        #: called (synchronously, in place of the events) with a fresh list of
        #: /registry/ and its revision when the watch cannot resume because etcd
        #: compacted past it: the watch cache reloads from it (``WatchCache.replace``)
        self.relist: Callable[[builtins.list[KV], int], None] | None = None
        #: how many times the watch fell behind compaction and the store relisted
        self.relists = 0
        self.transformer: ValueTransformer | None = None
        self._tags: dict[str, str] = {}
        self._dispatcher: asyncio.Task[None] | None = None
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = 0
        self._closing = False
        self.commits = 0

    # --- lifecycle -----------------------------------------------------------------------
    @property
    def revision(self) -> int:
        return self._revision

    @property
    def compacted_revision(self) -> int:
        return self._compacted

    async def start(self) -> None:
        self.conn.open()
        resp = await self.conn.unary("kv", "Range", rpc.RangeRequest(key=COMPACT_KEY.encode()))
        self._revision = int(resp.header.revision)
        if resp.kvs:
            self._compacted = int(resp.kvs[0].value or b"0")

    async def close(self) -> None:
        self._closing = True
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            try:
                await self._dispatcher
            except asyncio.CancelledError:
                pass
            self._dispatcher = None
        for _, _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(StorageUnavailable("", "storage is closed"))
        self._waiters.clear()
        await self.conn.close()

    def fail_fast(self) -> None:
        """Shutdown: calls stop retrying (one attempt each), so an etcd that is down
        does not hold the server's exit for the retry budget (the release of a Lease,
        the removal of this server's endpoint lease: both expire by themselves)."""
        self.conn.retry_for = 0.0

    def attach_listener(
        self,
        listener: Callable[[Event], None],
        after: int,
        *,
        relist: Callable[[builtins.list[KV], int], None] | None = None,
    ) -> None:
        """Add ``listener`` and (first time) start the watch that feeds ``listeners``
        with every change after revision ``after`` (the cache's load revision);
        ``relist`` reloads the cache when that watch falls behind compaction."""
        self.listeners.append(listener)
        if relist is not None:
            self.relist = relist
        if self._dispatcher is None:
            self._revision = after
            self._dispatcher = asyncio.create_task(self._watch_loop(), name="etcd-dispatcher")

    # --- values ------------------------------------------------------------------------
    def _encode(self, key: str, obj: Obj) -> bytes:
        meta = obj.setdefault("metadata", {})
        meta.pop("resourceVersion", None)
        data = orjson.dumps(obj)
        t = self.transformer
        if t is None or not t.applies(key):
            self._tags.pop(key, None)
            return data
        tag = t.write_tag(key)
        if tag:
            self._tags[key] = tag
        else:
            self._tags.pop(key, None)
        return t.seal(key, data)

    def _decode(self, key: str, value: bytes, *, current: bool = False) -> Obj:
        t = self.transformer
        if t is None or not t.applies(key):
            if value.startswith(b"k8s:enc:"):
                raise TransformError(f"{key}: identity transformer tried to read encrypted data")
            data = value
        else:
            data, tag = t.unseal(key, value)
            if current:
                if tag:
                    self._tags[key] = tag
                else:
                    self._tags.pop(key, None)
        obj: Obj = orjson.loads(data)
        return obj

    def _kv(self, pb: Any, *, current: bool = True) -> KV:
        key = pb.key.decode()
        obj = self._decode(key, pb.value, current=current)
        rev = int(pb.mod_revision)
        return KV(key, obj, stamp(obj, rev), rev, int(pb.create_revision))

    def is_stale(self, key: str) -> bool:
        """As ``SQLiteStorage.is_stale``: the current value was sealed otherwise than
        new writes are (a no-op update must still write it)."""
        t = self.transformer
        want = t.write_tag(key) if t is not None and t.applies(key) else ""
        return self._tags.get(key, "") != want

    async def reseal_history(self) -> int:
        """etcd's history cannot be rewritten; old values leave it at compaction."""
        return 0

    # --- writes ------------------------------------------------------------------------
    async def _write_txn(
        self, key: str, compare: Any, success: list[Any], failure: list[Any]
    ) -> tuple[Any, bool]:
        """A write txn and whether it was sent more than once (a retry after an error
        that may have come after etcd applied it: its answer was lost)."""
        req = rpc.TxnRequest(compare=[compare], success=success, failure=failure)
        tries = 0

        async def once() -> Any:
            nonlocal tries
            tries += 1
            return await self.conn.kv.Txn(
                req, timeout=self.conn.rpc_timeout, metadata=REQUIRE_LEADER
            )

        return await self.conn.call(key, once), tries > 1

    @staticmethod
    def _own_write(resp: Any, retried: bool, value: bytes) -> Any:
        """After a retried write whose compare failed: the key's current kv when it
        holds exactly the bytes this write sent (the first attempt did apply: a new
        object's bytes carry its uid and creation time), else None."""
        if not retried or not resp.responses:
            return None
        kvs = resp.responses[0].response_range.kvs
        return kvs[0] if kvs and kvs[0].value == value else None

    async def create(self, key: str, obj: Obj) -> KV:
        kb = key.encode()
        value = self._encode(key, obj)
        cmp = rpc.Compare(key=kb, target=_CREATE, result=_EQUAL, create_revision=0)
        resp, retried = await self._write_txn(key, cmp, [_put(kb, value)], [_get(kb)])
        if resp.succeeded:
            rev = create_rev = int(resp.header.revision)
        elif (own := self._own_write(resp, retried, value)) is not None:
            rev, create_rev = int(own.mod_revision), int(own.create_revision)
        else:
            raise KeyExists(key)
        self.commits += 1
        kv = KV(key, obj, stamp(obj, rev), rev, create_rev)
        await self._wait_dispatched(rev, key)
        return kv

    async def _failed(self, key: str, resp: Any) -> Exception:
        kvs = resp.responses[0].response_range.kvs if resp.responses else []
        return RevisionMismatch(key) if kvs else KeyNotFound(key)

    def _expect(self, kb: bytes, expected: int) -> Any:
        if expected > 0:
            return rpc.Compare(key=kb, target=_MOD, result=_EQUAL, mod_revision=expected)
        return rpc.Compare(key=kb, target=_CREATE, result=_GREATER, create_revision=0)

    async def update(self, key: str, obj: Obj, expected_revision: int) -> KV:
        kb = key.encode()
        value = self._encode(key, obj)
        resp, retried = await self._write_txn(
            key, self._expect(kb, expected_revision), [_put(kb, value, True)], [_get(kb)]
        )
        if resp.succeeded:
            rev = int(resp.header.revision)
            prev = resp.responses[0].response_put.prev_kv
            create_rev = int(prev.create_revision) or rev
        elif (own := self._own_write(resp, retried, value)) is not None:
            rev, create_rev = int(own.mod_revision), int(own.create_revision)
        elif (
            retried
            and expected_revision > 0
            and (change := await self._next_change(kb, expected_revision, resp))
            and change.type != _DELETE_EVENT
            and change.kv.value == value
        ):  # it applied, and someone changed the key again before the retry
            rev, create_rev = int(change.kv.mod_revision), int(change.kv.create_revision)
        else:
            raise await self._failed(key, resp)
        self.commits += 1
        kv = KV(key, obj, stamp(obj, rev), rev, create_rev)
        await self._wait_dispatched(rev, key)
        return kv

    async def delete(self, key: str, expected_revision: int) -> KV:
        kb = key.encode()
        op = rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=kb, prev_kv=True))
        resp, retried = await self._write_txn(
            key, self._expect(kb, expected_revision), [op], [_get(kb)]
        )
        if resp.succeeded:
            prevs = resp.responses[0].response_delete_range.prev_kvs
            if not prevs:  # gone between the compare and the delete: cannot happen in a txn
                raise KeyNotFound(key)
            rev, prev = int(resp.header.revision), prevs[0]
        elif (
            retried
            and expected_revision > 0
            and (change := await self._next_change(kb, expected_revision, resp))
            and change.type == _DELETE_EVENT
            and change.HasField("prev_kv")
            and change.prev_kv.mod_revision == expected_revision
        ):  # it applied: the key's next change deleted exactly that version
            rev, prev = int(change.kv.mod_revision), change.prev_kv
        else:
            raise await self._failed(key, resp)
        last = self._decode(key, prev.value)
        self._tags.pop(key, None)
        self.commits += 1
        kv = KV(key, last, stamp(last, rev), rev, int(prev.create_revision))
        await self._wait_dispatched(rev, key)
        return kv

    async def _next_change(self, kb: bytes, expected: int, failed: Any) -> Any:
        """After a retried write guarded by ``mod_revision == expected`` failed its
        compare: the key's first change after ``expected`` (a watch event with
        ``prev_kv``, read from the key's history up to the failed txn's revision), or
        None. A first attempt that applied, its answer lost, is exactly that change (the
        compare let nothing in before it); None when the history is compacted."""
        upto = int(failed.header.revision)
        generation = self.conn.generation
        call = self.conn.watch.Watch(metadata=REQUIRE_LEADER)
        try:
            create = rpc.WatchCreateRequest(key=kb, start_revision=expected + 1, prev_kv=True)
            await call.write(rpc.WatchRequest(create_request=create))
            async with asyncio.timeout(self.conn.rpc_timeout):
                while True:
                    resp = await call.read()
                    if resp is grpc.aio.EOF or resp.canceled or resp.compact_revision:
                        return None
                    for pb in resp.events:
                        return pb if int(pb.kv.mod_revision) <= upto else None
        except (grpc.aio.AioRpcError, TimeoutError):
            return None
        except asyncio.CancelledError:
            if not self._switched(generation):
                raise
            return None
        finally:
            call.cancel()

    async def guaranteed_update(
        self, key: str, update: Callable[[Obj], Obj | None], current: KV | None = None
    ) -> KV | None:
        """Read-modify-write with optimistic concurrency (etcd3 store's GuaranteedUpdate):
        a stale ``current`` fails the compare, and the loop re-reads from etcd."""
        return await read_modify_write(self, key, update, current)

    # --- reads -------------------------------------------------------------------------
    async def get(self, key: str) -> KV | None:
        resp = await self.conn.unary("kv", "Range", rpc.RangeRequest(key=key.encode()), key)
        return self._kv(resp.kvs[0]) if resp.kvs else None

    async def list(self, prefix: str) -> tuple[builtins.list[KV], int]:
        """Every live key under ``prefix`` at one revision (paginated ranges pinned to
        the first page's revision); the revision is the list's."""
        return await self._list(prefix, tolerant=False)

    async def _list(self, prefix: str, *, tolerant: bool) -> tuple[builtins.list[KV], int]:
        start, end = prefix.encode(), prefix_end(prefix.encode())
        out: builtins.list[KV] = []
        revision = 0
        while True:
            req = rpc.RangeRequest(key=start, range_end=end, limit=PAGE, revision=revision)
            resp = await self.conn.unary("kv", "Range", req, prefix)
            if not revision:
                revision = int(resp.header.revision)
            for pb in resp.kvs:
                try:
                    out.append(self._kv(pb))
                except Exception:
                    if not tolerant:
                        raise
                    log.exception("etcd: cannot decode %s: left out", pb.key.decode())
            if not resp.more or not resp.kvs:
                break
            start = resp.kvs[-1].key + b"\0"
        if self._dispatcher is None:  # not yet fed by the watch: the list is the state
            self._revision = max(self._revision, revision)
        return out, revision

    async def current_revision(self) -> int:
        """etcd's current revision (a linearizable read: one round trip to the leader)."""
        req = rpc.RangeRequest(key=COMPACT_KEY.encode(), count_only=True)
        resp = await self.conn.unary("kv", "Range", req)
        return int(resp.header.revision)

    async def sync(self) -> int:
        """The consistent-read barrier: etcd's current revision, once this server's
        watch has dispatched everything up to it (its cache is then current)."""
        rev = await self.current_revision()
        await self._wait_dispatched(rev, "")
        return rev

    # --- corral's own keys ---------------------------------------------------------------
    async def get_meta(self, key: str) -> bytes | None:
        """The raw value of a key of Corral's own (``/corral/...``), or None."""
        resp = await self.conn.unary("kv", "Range", rpc.RangeRequest(key=key.encode()), key)
        return bytes(resp.kvs[0].value) if resp.kvs else None

    async def put_meta(self, key: str, value: bytes, *, create_only: bool) -> bool:
        """Write a key of Corral's own; with ``create_only`` only if it does not exist
        (False then: someone else made it first; a retry that finds its own bytes there
        is the first attempt's write, whose answer was lost)."""
        kb = key.encode()
        if not create_only:
            await self.conn.unary("kv", "Put", rpc.PutRequest(key=kb, value=value), key)
            return True
        cmp = rpc.Compare(key=kb, target=_CREATE, result=_EQUAL, create_revision=0)
        resp, retried = await self._write_txn(key, cmp, [_put(kb, value)], [_get(kb)])
        return bool(resp.succeeded) or self._own_write(resp, retried, value) is not None

    # --- the dispatcher ---------------------------------------------------------------
    async def _wait_dispatched(self, rev: int, key: str) -> None:
        if self._dispatcher is None or self._revision >= rev:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._waiters, (rev, self._seq, fut))
        try:
            async with asyncio.timeout(self.dispatch_wait):
                await asyncio.shield(fut)
        except TimeoutError:
            raise StorageUnavailable(
                key,
                f"etcd revision {rev} not seen by this server's watch after "
                f"{self.dispatch_wait:.0f} s (etcd unreachable?)",
            ) from None

    def _advance(self, rev: int) -> None:
        self._revision = rev
        while self._waiters and self._waiters[0][0] <= rev:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)

    def _dispatch(self, events: Any) -> None:
        top = self._revision
        for pb in events:
            rev = int(pb.kv.mod_revision)
            if rev <= self._revision:  # seen before a reconnect
                continue
            top = max(top, rev)
            key = pb.kv.key.decode()
            if not key.startswith(REGISTRY):
                continue
            try:
                ev = self._event(pb)
            except Exception:
                log.exception("etcd: cannot decode %s at revision %d", key, rev)
                continue
            for cb in self.listeners:
                try:
                    cb(ev)
                except Exception:
                    log.exception("listener failed on %s at revision %d", key, rev)
        if top > self._revision:
            self._advance(top)

    def _event(self, pb: Any, *, current: bool = True) -> Event:
        rev = int(pb.kv.mod_revision)
        prev = self._kv(pb.prev_kv, current=False) if pb.HasField("prev_kv") else None
        if pb.type == _DELETE_EVENT:
            key = pb.kv.key.decode()
            if current:
                self._tags.pop(key, None)
            last = prev.obj if prev is not None else {}
            obj = orjson.loads(orjson.dumps(last))
            cr = prev.create_revision if prev is not None else 0
            return Event(DELETE, KV(key, obj, stamp(obj, rev), rev, cr), prev, rev)
        return Event(PUT, self._kv(pb.kv, current=current), prev, rev)

    async def _watch_loop(self) -> None:
        """The one watch of this server: never ends until ``close``; a broken stream is
        reopened (next endpoint) from the last dispatched revision + 1."""
        delay = 0.05
        while not self._closing:
            generation = self.conn.generation
            call = None
            try:
                call = self.conn.watch.Watch(metadata=REQUIRE_LEADER)
                create = rpc.WatchCreateRequest(
                    key=b"\0", range_end=b"\0", start_revision=self._revision + 1, prev_kv=True
                )
                await call.write(rpc.WatchRequest(create_request=create))
                while True:
                    resp = await call.read()
                    if resp is grpc.aio.EOF:
                        raise ConnectionError("watch stream closed")
                    if resp.compact_revision:
                        # The events after our revision are gone: relist instead,
                        # then watch again from the list's revision + 1
                        call.cancel()
                        call = None
                        await self._reload(int(resp.compact_revision))
                        delay = 0.05
                        break
                    if resp.canceled:
                        raise ConnectionError(f"watch canceled: {resp.cancel_reason}")
                    if resp.events:
                        self._dispatch(resp.events)
                        delay = 0.05
            except asyncio.CancelledError:
                if call is not None:
                    call.cancel()
                task = asyncio.current_task()
                if self._closing or task is None or task.cancelling():
                    raise
                # not this task: grpc.aio cancels a stream whose channel is closed, as
                # Connection.rotate does when another call moves to the next endpoint
                log.warning("etcd watch: its channel was closed (endpoint switch); resuming")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            except (grpc.aio.AioRpcError, ConnectionError, StorageUnavailable) as e:
                if call is not None:
                    call.cancel()
                if self._closing:
                    return
                log.warning("etcd watch on %s broke: %s; resuming", self.conn.endpoint, e)
                await self.conn.rotate(generation)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _reload(self, compacted: int) -> None:
        """The watch asked for revisions etcd compacted away (this server was cut off
        longer than the history kept): list /registry/ at a fresh revision, hand it to
        ``relist`` (the watch cache replaces its content and expires its watchers),
        and carry on from there. Writes waiting for revisions of the gap are released:
        the list holds them."""
        self._compacted = max(self._compacted, compacted)
        log.warning(
            "etcd: watch from revision %d is past compaction (%d): relisting",
            self._revision + 1,
            compacted,
        )
        kvs, rev = await self._list(REGISTRY, tolerant=True)
        if self.relist is not None:
            try:
                self.relist(kvs, rev)
            except Exception:
                log.exception("etcd: reloading the cache at revision %d failed", rev)
        else:
            log.error("etcd: no cache to reload: listeners missed the changes up to %d", rev)
        self.relists += 1
        self._advance(max(rev, self._revision))

    # --- watch and history -------------------------------------------------------------
    async def watch(self, prefix: str, from_revision: int) -> AsyncIterator[Event]:  # type: ignore[override]
        """Events with revision > ``from_revision`` under ``prefix`` (an etcd watch of
        its own); ``Compacted`` when etcd has compacted that history. A stream whose
        channel another call closed (a switch of endpoint) resumes after the last
        revision it yielded."""
        pfx = prefix.encode()
        after = from_revision
        while True:
            generation = self.conn.generation
            call = self.conn.watch.Watch(metadata=REQUIRE_LEADER)
            try:
                create = rpc.WatchCreateRequest(
                    key=pfx, range_end=prefix_end(pfx), start_revision=after + 1, prev_kv=True
                )
                await call.write(rpc.WatchRequest(create_request=create))
                while True:
                    resp = await call.read()
                    if resp is grpc.aio.EOF:
                        return
                    if resp.compact_revision:
                        self._compacted = max(self._compacted, int(resp.compact_revision))
                        raise Compacted(prefix, after, int(resp.compact_revision))
                    if resp.canceled:
                        raise StorageUnavailable(
                            prefix, f"etcd watch canceled: {resp.cancel_reason}"
                        )
                    for pb in resp.events:
                        after = int(pb.kv.mod_revision)
                        yield self._event(pb, current=False)
            except asyncio.CancelledError:
                if not self._switched(generation):
                    raise
            except grpc.aio.AioRpcError as e:
                raise StorageUnavailable(prefix, f"etcd watch failed: {e.details()}") from None
            finally:
                call.cancel()

    def _switched(self, generation: int) -> bool:
        """Whether a CancelledError came from the stream's channel being closed by a
        switch of endpoint since ``generation`` (grpc.aio cancels the streams of a
        closed channel), not from a cancellation of this task or a ``close``."""
        task = asyncio.current_task()
        return (
            not self._closing
            and generation != self.conn.generation
            and task is not None
            and not task.cancelling()
        )

    async def history(
        self, prefix: str, after: int, upto: int | None = None
    ) -> builtins.list[Event]:
        """Events under ``prefix`` with ``after`` < revision <= ``upto`` (default: the
        revision of the last list, or the dispatched one) to seed a cache. History
        older than etcd's compaction is skipped (``compacted_revision`` moves up)."""
        upto = self._revision if upto is None else upto
        out: builtins.list[Event] = []
        while after < upto:
            generation = self.conn.generation
            call = self.conn.watch.Watch(metadata=REQUIRE_LEADER)
            try:
                create = rpc.WatchCreateRequest(
                    key=b"\0", range_end=b"\0", start_revision=after + 1, prev_kv=True
                )
                await call.write(rpc.WatchRequest(create_request=create))
                while after < upto:
                    resp = await call.read()
                    if resp is grpc.aio.EOF or resp.canceled:
                        raise StorageUnavailable(prefix, "etcd watch ended while reading history")
                    if resp.compact_revision:
                        self._compacted = max(self._compacted, int(resp.compact_revision))
                        after = max(after, int(resp.compact_revision) - 1)
                        out.clear()
                        break
                    for pb in resp.events:
                        rev = int(pb.kv.mod_revision)
                        if rev > upto:
                            after = upto
                            break
                        after = rev
                        if pb.kv.key.decode().startswith(prefix):
                            out.append(self._event(pb, current=False))
            except asyncio.CancelledError:
                if not self._switched(generation):
                    raise
                # its channel was closed by a switch of endpoint: go on from ``after``
            except grpc.aio.AioRpcError as e:
                raise StorageUnavailable(
                    prefix, f"etcd history read failed: {e.details()}"
                ) from None
            finally:
                call.cancel()
        return out

    # --- compaction --------------------------------------------------------------------
    def compaction_target(self) -> int:
        """Keep ``min_history`` revisions of history."""
        return max(0, self._revision - self.min_history)

    async def needs_compaction(self) -> bool:
        return self.compaction_target() > self._compacted

    async def compact(self, revision: int) -> None:
        """Compact etcd at ``revision``, once per cluster: a txn on the version of
        ``COMPACT_KEY`` (upstream's compactor) lets one server do it; the others see
        the new value and only record it."""
        kb = COMPACT_KEY.encode()
        resp = await self.conn.unary("kv", "Range", rpc.RangeRequest(key=kb), COMPACT_KEY)
        version = int(resp.kvs[0].version) if resp.kvs else 0
        done = int(resp.kvs[0].value or b"0") if resp.kvs else 0
        if revision <= done:
            self._compacted = max(self._compacted, done)
            return
        cmp = rpc.Compare(key=kb, target=_VERSION, result=_EQUAL, version=version)
        txn, _ = await self._write_txn(
            COMPACT_KEY, cmp, [_put(kb, str(revision).encode())], [_get(kb)]
        )
        if not txn.succeeded:  # another server compacted in between
            kvs = txn.responses[0].response_range.kvs
            self._compacted = max(self._compacted, int(kvs[0].value or b"0") if kvs else 0)
            return
        try:
            await self.conn.unary(
                "kv", "Compact", rpc.CompactionRequest(revision=revision), COMPACT_KEY
            )
        except Exception as e:  # already compacted past it (etcdctl, --auto-compaction)
            if "compacted" not in str(e):
                raise
        self._compacted = max(self._compacted, revision)
