"""One storage conformance suite, run against both backends: SQLite and a real etcd
(plain, and over TLS with client certificates).

The etcd members are started once for the module (``EtcdCluster``); each test works
under a key prefix of its own, so the tests share them without seeing each other's keys,
and compares revisions relative to what it wrote (etcd's revisions are global).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from corral.apiserver.encryption import EncryptionTransformer
from corral.apiserver.encryption_config import EncryptionConfig, Key, Provider, ResourceEntry
from corral.storage.base import (
    DELETE,
    KV,
    PUT,
    Compacted,
    Event,
    KeyExists,
    KeyNotFound,
    RevisionMismatch,
    StorageUnavailable,
)
from corral.storage.cache import WatchCache, Watcher
from corral.storage.datastore import AnyStorage, EtcdTLS, open_store
from corral.storage.etcd import EtcdStorage
from corral.util.etcd_process import EtcdCluster

_ids = itertools.count()
T = TypeVar("T")


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def etcd_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd-tls"), tls=True)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def client_tls(cluster: EtcdCluster) -> EtcdTLS:
    files = cluster.client_tls
    assert files is not None
    return EtcdTLS(*files)


@dataclass
class Backend:
    """A started store, the prefix this test owns, and what its listener saw."""

    kind: str
    url: str
    data_dir: Path
    prefix: str
    store: AnyStorage
    events: list[Event] = field(default_factory=list)
    extra: list[AnyStorage] = field(default_factory=list)
    tls: EtcdTLS | None = None

    async def open(self) -> AnyStorage:
        """Another store on the same data (a restart, or a second server on etcd)."""
        st = open_store(self.url, self.data_dir, min_history=10, tls=self.tls)
        await st.start()
        _, rev = await st.list(self.prefix)
        st.attach_listener(lambda ev: None, rev)
        self.extra.append(st)
        return st

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def mine(self) -> list[Event]:
        return [e for e in self.events if e.kv.key.startswith(self.prefix)]


@pytest.fixture(params=["sqlite", "etcd", "etcd-tls"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    tls = None
    if request.param == "etcd":
        url = request.getfixturevalue("etcd").url
    elif request.param == "etcd-tls":
        cluster = request.getfixturevalue("etcd_tls")
        url, tls = cluster.url, client_tls(cluster)
    else:
        url = f"sqlite://{tmp_path / 'state.db'}"
    prefix = f"/registry/conformance/t{next(_ids)}/"
    store = open_store(url, tmp_path, min_history=10, tls=tls)
    await store.start()
    kind = "etcd" if tls is not None else request.param
    b = Backend(kind, url, tmp_path, prefix, store, tls=tls)
    _, rev = await store.list(prefix)
    store.attach_listener(b.events.append, rev)
    try:
        yield b
    finally:
        for st in [*b.extra, store]:
            await st.close()


async def test_create_get_update_delete_list(backend: Backend) -> None:
    st, k = backend.store, backend.key("a")
    kv = await st.create(k, {"metadata": {"name": "a"}, "v": 1})
    assert kv.create_revision == kv.mod_revision
    assert kv.obj["metadata"]["resourceVersion"] == str(kv.mod_revision)
    with pytest.raises(KeyExists):
        await st.create(k, {"metadata": {"name": "a"}})
    got = await st.get(k)
    assert got is not None and got.raw == kv.raw and got.mod_revision == kv.mod_revision
    kv2 = await st.update(k, {"metadata": {"name": "a"}, "v": 2}, kv.mod_revision)
    assert kv2.mod_revision > kv.mod_revision and kv2.create_revision == kv.create_revision
    with pytest.raises(RevisionMismatch):
        await st.update(k, {"metadata": {"name": "a"}}, kv.mod_revision)
    with pytest.raises(KeyNotFound):
        await st.update(backend.key("none"), {"metadata": {}}, kv.mod_revision)
    with pytest.raises(RevisionMismatch):
        await st.delete(k, kv.mod_revision)
    await st.create(backend.key("b"), {"metadata": {"name": "b"}})
    kvs, rev = await st.list(backend.prefix)
    assert [x.key for x in kvs] == [k, backend.key("b")] and rev >= kvs[-1].mod_revision
    gone = await st.delete(k, kv2.mod_revision)
    assert gone.obj["v"] == 2 and gone.mod_revision > kv2.mod_revision
    assert await st.get(k) is None
    with pytest.raises(KeyNotFound):
        await st.delete(k, gone.mod_revision)
    assert st.revision >= gone.mod_revision


async def test_listeners_see_every_write_once_in_order(backend: Backend) -> None:
    st = backend.store
    kv = await st.create(backend.key("x"), {"n": 0})
    for i in range(1, 6):  # each write is in the listener's hands when it returns
        kv = await st.update(backend.key("x"), {"n": i}, kv.mod_revision)
        assert backend.mine()[-1].revision == kv.mod_revision
    await st.delete(backend.key("x"), kv.mod_revision)
    evs = backend.mine()
    assert [e.type for e in evs] == [PUT] * 6 + [DELETE]
    assert [e.kv.obj.get("n") for e in evs] == [0, 1, 2, 3, 4, 5, 5]  # DELETE: last value
    revs = [e.revision for e in evs]
    assert revs == sorted(set(revs))


async def test_guaranteed_update_and_concurrent_writers_lose_nothing(backend: Backend) -> None:
    k = backend.key("counter")
    await backend.store.create(k, {"n": 0})
    stores = [backend.store]
    if backend.kind == "etcd":  # a second server on the same etcd
        stores.append(await backend.open())

    def bump(obj: dict[str, int]) -> dict[str, int]:
        obj["n"] += 1
        return obj

    await asyncio.gather(*(stores[i % len(stores)].guaranteed_update(k, bump) for i in range(30)))
    got = await backend.store.get(k)
    assert got is not None and got.obj["n"] == 30
    assert await backend.store.guaranteed_update(k, lambda o: None) is None


async def test_watch_history_then_live_prefix_isolation(backend: Backend) -> None:
    st = backend.store
    first = await st.create(backend.key("w/a"), {"i": 1})
    await st.create(backend.key("other/b"), {"i": 2})  # outside the watched prefix
    upd = await st.update(backend.key("w/a"), {"i": 3}, first.mod_revision)
    seen: list[tuple[int, str, object]] = []

    async def watch() -> None:
        async for ev in st.watch(backend.key("w/"), first.mod_revision - 1):
            seen.append((ev.type, ev.kv.key, ev.kv.obj.get("i")))
            if len(seen) == 4:
                return

    task = asyncio.create_task(watch())
    await asyncio.sleep(0)
    await st.create(backend.key("w/c"), {"i": 4})
    await st.delete(backend.key("w/a"), upd.mod_revision)
    async with asyncio.timeout(10):
        await task
    a, c = backend.key("w/a"), backend.key("w/c")
    assert seen == [(PUT, a, 1), (PUT, a, 3), (PUT, c, 4), (DELETE, a, 3)]
    hist = await st.history(backend.key("w/"), first.mod_revision)
    assert [(e.type, e.kv.key) for e in hist] == [(PUT, a), (PUT, c), (DELETE, a)]


async def test_compaction_then_watch_is_compacted(backend: Backend) -> None:
    st = backend.store
    kv = await st.create(backend.key("c"), {"n": 0})
    for i in range(3):
        kv = await st.update(backend.key("c"), {"n": i + 1}, kv.mod_revision)
    await st.compact(kv.mod_revision)
    assert st.compacted_revision >= kv.mod_revision
    with pytest.raises(Compacted):
        async for _ in st.watch(backend.prefix, kv.mod_revision - 2):
            pass
    got = await st.get(backend.key("c"))  # live values survive compaction
    assert got is not None and got.obj["n"] == 3


async def test_revision_survives_restart(backend: Backend) -> None:
    kv = await backend.store.create(backend.key("r"), {"n": 1})
    await backend.store.close()
    again = await backend.open()
    assert again.revision >= kv.mod_revision
    got = await again.get(backend.key("r"))
    assert got is not None and got.mod_revision == kv.mod_revision
    nxt = await again.create(backend.key("r2"), {})
    assert nxt.mod_revision > kv.mod_revision
    backend.extra.remove(again)  # the fixture closes ``store``: make it this one
    backend.store = again


async def test_encryption_transformer_round_trip(backend: Backend) -> None:
    cfg = EncryptionConfig(
        (ResourceEntry(("secrets",), (Provider("aesgcm", (Key("k1", bytes(range(32))),)),)),)
    )
    backend.store.transformer = EncryptionTransformer(cfg)
    key = f"/registry/core/secrets/{backend.prefix.split('/')[-2]}/s1"
    await backend.store.create(key, {"data": {"password": "hunter2hunter2"}})
    got = await backend.store.get(key)
    assert got is not None and got.obj["data"]["password"] == "hunter2hunter2"
    if backend.kind == "etcd":
        stored = await backend.store.get_meta(key)  # the raw bytes in etcd
    else:
        with sqlite3.connect(backend.data_dir / "state.db") as db:
            stored = db.execute("SELECT value FROM current WHERE key=?", (key,)).fetchone()[0]
    assert stored is not None and stored.startswith(b"k8s:enc:aesgcm:v1:k1:")
    assert b"hunter2" not in stored
    transformer, backend.store.transformer = backend.store.transformer, None
    with pytest.raises(Exception, match="encrypted"):  # without the key it does not read
        await backend.store.get(key)
    backend.store.transformer = transformer
    await backend.store.delete(key, got.mod_revision)


async def test_meta_keys_and_sync(backend: Backend) -> None:
    st = backend.store
    key = f"/corral/test/{backend.prefix.split('/')[-2]}"
    assert await st.get_meta(key) is None
    assert await st.put_meta(key, b"one", create_only=True)
    assert not await st.put_meta(key, b"two", create_only=True)
    assert await st.get_meta(key) == b"one"
    assert await st.put_meta(key, b"three", create_only=False)
    assert await st.get_meta(key) == b"three"
    kv = await st.create(backend.key("s"), {})
    assert await st.sync() >= kv.mod_revision


async def test_write_on_one_server_is_seen_after_sync_on_another(backend: Backend) -> None:
    if backend.kind != "etcd":
        pytest.skip("one process owns a SQLite file: there is no second server")
    other = await backend.open()
    seen: list[Event] = []
    other.listeners.append(seen.append)
    kv = await backend.store.create(backend.key("x"), {"n": 1})
    await other.sync()  # the barrier: once it returns, the other server's cache has it
    assert [e.revision for e in seen if e.kv.key == backend.key("x")] == [kv.mod_revision]
    got = await other.get(backend.key("x"))
    assert got is not None and got.raw == kv.raw  # the same resourceVersion on both


async def test_etcd_outage_fails_writes_clearly_then_the_watch_resumes(
    etcd: EtcdCluster, tmp_path: Path
) -> None:
    prefix = f"/registry/conformance/t{next(_ids)}/"
    a = EtcdStorage(etcd.endpoints, retry_for=0.5, dispatch_wait=5.0)
    b = EtcdStorage(etcd.endpoints, retry_for=10.0)
    seen: list[Event] = []
    try:
        for st in (a, b):
            await st.start()
            _, rev = await st.list(prefix)
            st.attach_listener(seen.append if st is a else (lambda ev: None), rev)
        await a.create(prefix + "before", {})
        etcd.kill(0)
        try:
            with pytest.raises(StorageUnavailable, match="etcd unavailable"):
                await a.create(prefix + "during", {})
        finally:
            etcd.restart(0)
        kv = await b.create(prefix + "after", {})  # written by the other server
        await a.sync()
        assert [e.kv.key for e in seen if e.kv.key.startswith(prefix)] == [
            prefix + "before",
            prefix + "after",
        ]
        assert seen[-1].revision == kv.mod_revision
    finally:
        await a.close()
        await b.close()


class Relay:
    """A TCP relay between one store and etcd, so a test can cut that store off
    (``cut``: connections reset, new ones refused), let it back (``mend``), or swallow
    etcd's answers while the requests still arrive (``mute``: a lost response)."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.port = 0
        self.muted = False
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def mend(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, down: bool) -> None:
            try:
                while data := await src.read(65536):
                    if down and self.muted:
                        continue
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.transport.abort()

        for t in (pipe(reader, up_writer, False), pipe(up_reader, writer, True)):
            task = asyncio.create_task(t)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def reset(self) -> None:
        """Reset every open connection (the listener stays)."""
        for w in self._writers:
            w.transport.abort()
        self._writers.clear()

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        self.reset()
        await self._server.wait_closed()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.reset()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def test_watch_past_compaction_relists_the_cache_and_expires_watchers(
    etcd: EtcdCluster,
) -> None:
    """A server cut off from etcd while another writes, deletes and compacts past it:
    its watch cannot resume, so it lists again (upstream's cacher relist): the cache
    holds exactly etcd's objects, its watchers got 410, and it keeps following."""
    prefix = f"/registry/conformance/t{next(_ids)}/"
    relay = Relay(etcd.endpoints[0])
    await relay.mend()
    a = EtcdStorage([relay.endpoint], retry_for=30.0)
    b = EtcdStorage(etcd.endpoints)
    cache = WatchCache()
    rc = cache.register(prefix, {})
    changes: list[tuple[str, str]] = []
    cache.listeners.append(lambda type_, e, prev, rc: changes.append((type_, e.key)))
    try:
        await a.start()
        kvs, rev = await a.list(prefix)
        cache.load(kvs, rev, [], rev)
        a.attach_listener(cache.apply, rev, relist=cache.replace)
        await b.start()
        _, brev = await b.list(prefix)
        b.attach_listener(lambda ev: None, brev)
        keep = await a.create(prefix + "keep", {"n": 0})
        changed = await a.create(prefix + "changed", {"n": 0})
        gone = await a.create(prefix + "gone", {"n": 0})
        watcher = Watcher(None, None, None)
        rc.add_watcher(watcher, None, cache.revision)
        await relay.cut()  # a partition: a sees nothing of what follows
        await b.update(prefix + "changed", {"n": 1}, changed.mod_revision)
        await b.delete(prefix + "gone", gone.mod_revision)
        new = await b.create(prefix + "new", {"n": 2})
        await b.compact(new.mod_revision)
        changes.clear()
        await relay.mend()
        async with asyncio.timeout(30):
            await a.sync()  # its cache caught up: by a relist, the events are gone
        assert a.relists == 1
        assert sorted(rc.entries) == sorted(prefix + k for k in ("changed", "keep", "new"))
        assert b'"n":1' in rc.entries[prefix + "changed"].raw
        assert rc.entries[prefix + "keep"].revision == keep.mod_revision
        assert ("DELETED", prefix + "gone") in changes  # listeners saw the difference
        assert {("MODIFIED", prefix + "changed"), ("ADDED", prefix + "new")} <= set(changes)
        items = [watcher.queue.get_nowait() for _ in range(watcher.queue.qsize())]
        assert items[-1] is None and items[-2] is not None and items[-2].type == "ERROR"
        assert b'"code":410' in items[-2].entry.raw and b'"reason":"Expired"' in items[-2].entry.raw
        with pytest.raises(Compacted):  # a watch from before the relist: 410 too
            rc.add_watcher(Watcher(None, None, None), keep.mod_revision, cache.revision)
        later = await b.create(prefix + "later", {})  # and it follows etcd again
        await a.sync()
        assert rc.entries[prefix + "later"].revision == later.mod_revision
    finally:
        await a.close()
        await b.close()
        await relay.close()


@contextlib.asynccontextmanager
async def _relayed(etcd: EtcdCluster) -> AsyncIterator[tuple[Relay, EtcdStorage, EtcdStorage]]:
    """``a`` speaks to etcd through a relay, ``b`` directly; both started and following
    etcd from its current revision, all closed afterwards."""
    relay = Relay(etcd.endpoints[0])
    await relay.mend()
    a = EtcdStorage([relay.endpoint])
    b = EtcdStorage(etcd.endpoints)
    try:
        for st in (a, b):
            await st.start()
            st.attach_listener(lambda ev: None, await st.current_revision())
        yield relay, a, b
    finally:
        await a.close()
        await b.close()
        await relay.close()


async def _answer_lost(
    relay: Relay,
    write: Coroutine[Any, Any, T],
    applied: Callable[[], Awaitable[bool]],
    meanwhile: Callable[[], Awaitable[object]] | None = None,
) -> T:
    """``write`` with etcd's answers swallowed until ``applied()`` (read through the
    other store) shows it took effect; then ``meanwhile()`` (another server's write),
    then the connection reset: the store retries the write, and this is its result."""
    relay.muted = True
    task = asyncio.create_task(write)
    async with asyncio.timeout(10):
        while not await applied():
            await asyncio.sleep(0.01)
    if meanwhile is not None:
        await meanwhile()
    relay.muted = False
    relay.reset()
    async with asyncio.timeout(30):
        return await task


async def test_a_create_whose_answer_is_lost_is_not_duplicated(etcd: EtcdCluster) -> None:
    """The txn reaches etcd, its answer does not (the connection resets); the store
    retries it: the compare fails, and the store recognises its own value (bytes with
    the object's uid) as the create that did happen, instead of a KeyExists."""
    key = f"/registry/conformance/t{next(_ids)}/x"
    async with _relayed(etcd) as (relay, a, b):
        kv = await _answer_lost(
            relay,
            a.create(key, {"metadata": {"uid": "u-1"}}),
            lambda: _exists(b, key),
        )
        there = await b.get(key)
        assert there is not None
        assert kv.mod_revision == there.mod_revision and kv.create_revision == there.mod_revision
        with pytest.raises(KeyExists):  # a second create of the key still fails
            await a.create(key, {"metadata": {"uid": "u-2"}})


async def test_an_update_whose_answer_is_lost_succeeds_after_a_later_change(
    etcd: EtcdCluster,
) -> None:
    """The update txn reaches etcd, its answer does not, and another server changes the
    key before the retry: the key no longer holds this write's bytes, but its history
    shows them as the first change after the version the update expected, so the
    update did happen (not a Conflict, whose retry would apply it twice)."""
    key = f"/registry/conformance/t{next(_ids)}/x"
    async with _relayed(etcd) as (relay, a, b):
        made = await b.create(key, {"metadata": {"uid": "u-1"}, "n": 1})
        seen: list[KV] = []

        async def updated() -> bool:
            there = await b.get(key)
            if there is not None and there.obj["n"] == 2:
                seen.append(there)
            return bool(seen)

        kv = await _answer_lost(
            relay,
            a.update(key, {"metadata": {"uid": "u-1"}, "n": 2}, made.mod_revision),
            updated,
            lambda: b.update(key, {"metadata": {"uid": "u-1"}, "n": 3}, seen[0].mod_revision),
        )
        assert kv.mod_revision == seen[0].mod_revision and kv.obj["n"] == 2
        assert kv.create_revision == made.mod_revision
        later = await b.get(key)
        assert later is not None and later.obj["n"] == 3 and later.mod_revision > kv.mod_revision
        with pytest.raises(RevisionMismatch):  # a stale update is still a conflict
            await a.update(key, {"n": 4}, made.mod_revision)


async def test_a_delete_whose_answer_is_lost_succeeds(etcd: EtcdCluster) -> None:
    """The delete txn reaches etcd, its answer does not; the retry finds the key gone:
    the key's history shows the delete of exactly the version it targeted, so it is the
    delete that did happen (upstream's client answers 5xx here), not a NotFound."""
    key = f"/registry/conformance/t{next(_ids)}/x"
    async with _relayed(etcd) as (relay, a, b):
        made = await b.create(key, {"metadata": {"uid": "u-1"}, "n": 1})

        async def gone() -> bool:
            return not await _exists(b, key)

        kv = await _answer_lost(relay, a.delete(key, made.mod_revision), gone)
        assert kv.obj["n"] == 1 and kv.create_revision == made.mod_revision
        assert kv.mod_revision > made.mod_revision
        with pytest.raises(KeyNotFound):  # a second delete still finds nothing
            await a.delete(key, made.mod_revision)


async def test_a_create_only_meta_put_whose_answer_is_lost_is_its_own(
    etcd: EtcdCluster,
) -> None:
    """``put_meta(create_only=True)`` (the bootstrap record: of two first servers one
    wins): a retry that finds its own bytes is the write that did happen, not a loss."""
    key = f"/corral/conformance/t{next(_ids)}"
    async with _relayed(etcd) as (relay, a, b):

        async def written() -> bool:
            return await b.get_meta(key) is not None

        assert await _answer_lost(relay, a.put_meta(key, b"mine", create_only=True), written)
        assert not await a.put_meta(key, b"other", create_only=True)
        assert await b.get_meta(key) == b"mine"


async def _exists(st: EtcdStorage, key: str) -> bool:
    return await st.get(key) is not None


async def test_watch_and_history_survive_a_switch_of_endpoint(etcd: EtcdCluster) -> None:
    """Another call moving the connection to the next endpoint closes the old channel,
    and grpc.aio cancels the streams on it: a per-request watch and a history read
    resume on the new channel instead of ending as if they had been cancelled."""
    prefix = f"/registry/conformance/t{next(_ids)}/"
    st = EtcdStorage(etcd.endpoints)
    try:
        await st.start()
        _, rev = await st.list(prefix)
        st.attach_listener(lambda ev: None, rev)
        first = await st.create(prefix + "a", {})
        seen: list[str] = []

        async def watch() -> None:
            async for ev in st.watch(prefix, rev):
                seen.append(ev.kv.key)
                if len(seen) == 2:
                    return

        task = asyncio.create_task(watch())
        # a history read up to the next revision: it waits on its stream for it
        reading = asyncio.create_task(st.history(prefix, rev, first.mod_revision + 1))
        async with asyncio.timeout(10):
            while not seen:
                await asyncio.sleep(0.01)
            # one endpoint: a new channel to it; the old one closes after its grace
            await st.conn.rotate(st.conn.generation)
            last = await st.create(prefix + "b", {})
            await task
            hist = await reading
        assert seen == [prefix + "a", prefix + "b"]
        assert [e.kv.key for e in hist] == [prefix + "a", prefix + "b"]
        assert hist[-1].revision == last.mod_revision
    finally:
        await st.close()


async def test_a_request_left_unanswered_is_sent_again_through_another_member(
    etcd: EtcdCluster,
) -> None:
    """A member takes a request and does not answer: a follower that forwarded the
    proposal to a leader that just died (etcd answers after its 7 s request timeout),
    or a half-open connection. The store abandons the attempt after
    ``attempt_timeout``, moves to another endpoint and sends it again (recognising its
    own write that did apply), and its watch follows: the write is acknowledged well
    before the attempt's old deadline (``rpc_timeout``, 10 s) would have ended it."""
    prefix = f"/registry/conformance/t{next(_ids)}/"
    relay = Relay(etcd.endpoints[0])
    await relay.mend()
    st = EtcdStorage([relay.endpoint, etcd.endpoints[0]], attempt_timeout=0.3)
    b = EtcdStorage(etcd.endpoints)
    try:
        for s in (st, b):
            await s.start()
        if st.conn.endpoint != relay.endpoint:
            await st.conn.rotate(st.conn.generation)
        for s in (st, b):
            _, rev = await s.list(prefix)
            s.attach_listener(lambda ev: None, rev)
        first = await st.create(prefix + "a", {"n": 0})
        relay.muted = True  # the requests still reach etcd; no answer comes back
        async with asyncio.timeout(5):  # well under rpc_timeout: the abandoned attempt
            kv = await st.update(prefix + "a", {"n": 1}, first.mod_revision)
            await st.sync()
        assert st.conn.endpoint == etcd.endpoints[0] and st.conn.timeouts >= 1
        there = await b.get(prefix + "a")
        assert there is not None and there.mod_revision == kv.mod_revision
        assert there.obj["n"] == 1
    finally:
        await st.close()
        await b.close()
        await relay.close()


async def test_fail_fast_stops_retrying_an_unreachable_etcd() -> None:
    """Server shutdown (``Server.stop``) calls ``fail_fast``: a call to an etcd that is
    down fails after one attempt instead of retrying for the retry budget (15 s), which
    kept ``corral server`` from exiting on SIGTERM while its etcd was down."""
    from aetcd.rpc import RangeRequest

    from corral.util.ports import free_port

    st = EtcdStorage([f"127.0.0.1:{free_port()}"], retry_for=1.0)  # nothing listens there
    try:
        st.conn.open()
        st.fail_fast()
        attempts = 0

        async def once() -> object:
            nonlocal attempts
            attempts += 1
            return await st.conn.kv.Range(RangeRequest(key=b"/corral/x"), timeout=5.0)

        with pytest.raises(StorageUnavailable, match="etcd unavailable"):
            await st.conn.call("/corral/x", once)
        assert attempts == 1
    finally:
        await st.close()
