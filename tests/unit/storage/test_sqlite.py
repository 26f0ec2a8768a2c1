"""The SQLite store on a real file: revisions, CAS, group commit, compaction, watch, size."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import zlib
from pathlib import Path

import orjson
import pytest

from corral.storage import sqlite as sqlite_module
from corral.storage.base import (
    DELETE,
    PUT,
    Compacted,
    KeyExists,
    KeyNotFound,
    RevisionMismatch,
    StorageCorrupt,
)
from corral.storage.sqlite import SQLiteStorage, _storage_error


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = SQLiteStorage(tmp_path / "s.db", min_history=10)
    await s.start()
    yield s
    await s.close()


def obj(name: str, payload: str = "") -> dict:
    return {"metadata": {"name": name}, "data": {"p": payload}}


def noise(seed: int, n: int = 1000) -> str:
    """Incompressible text, so the size test does not lean on zlib."""
    import hashlib

    out = b""
    while len(out) < n:
        out += hashlib.sha256(f"{seed}-{len(out)}".encode()).hexdigest().encode()
    return out[:n].decode()


async def test_revisions_and_optimistic_concurrency(store: SQLiteStorage) -> None:
    a = await store.create("/registry/x/a", obj("a"))
    b = await store.create("/registry/x/b", obj("b"))
    assert b.mod_revision == a.mod_revision + 1
    assert a.obj["metadata"]["resourceVersion"] == str(a.mod_revision)
    with pytest.raises(KeyExists):
        await store.create("/registry/x/a", obj("a"))
    with pytest.raises(RevisionMismatch):
        await store.update("/registry/x/a", obj("a", "2"), a.mod_revision + 100)
    a2 = await store.update("/registry/x/a", obj("a", "2"), a.mod_revision)
    assert a2.create_revision == a.mod_revision
    d = await store.delete("/registry/x/a", a2.mod_revision)
    assert d.obj["data"]["p"] == "2"  # the DELETE carries the last value
    with pytest.raises(KeyNotFound):
        await store.delete("/registry/x/a", d.mod_revision)
    got = await store.get("/registry/x/b")
    assert got is not None and got.obj["metadata"]["name"] == "b"


async def test_a_value_encoded_at_submission_is_stored_as_written_when_numbered(
    store: SQLiteStorage,
) -> None:
    """A PUT is encoded when submitted (its revision a placeholder) and numbered in the
    batch: the stored bytes, the event's bytes and the object all carry the revision and
    the object's latest content, and a write that fails gives the object back its own
    resourceVersion, or none."""
    seen: list[bytes] = []
    store.listeners.append(lambda ev: seen.append(ev.kv.raw))
    a = obj("a", "one")
    a["metadata"]["resourceVersion"] = "1"  # a client's: replaced
    kv = await store.create("/registry/x/a", a)
    rv = str(kv.mod_revision)
    assert a["metadata"]["resourceVersion"] == rv
    assert orjson.loads(kv.raw) == a == orjson.loads(seen[-1])
    assert kv.raw == orjson.dumps(a)  # no placeholder left, no other change
    got = await store.get("/registry/x/a")
    assert got is not None and got.raw == kv.raw
    # failures: the object is as its caller left it
    dup = obj("a", "dup")
    dup["metadata"]["resourceVersion"] = "7"
    with pytest.raises(KeyExists):
        await store.create("/registry/x/a", dup)
    assert dup["metadata"]["resourceVersion"] == "7"
    stale = obj("a", "stale")
    with pytest.raises(RevisionMismatch):
        await store.update("/registry/x/a", stale, kv.mod_revision + 100)
    assert "resourceVersion" not in stale["metadata"]
    twice = obj("a", "twice")  # one dict sent twice at once, both refused
    both = [store.create("/registry/x/a", twice), store.create("/registry/x/a", twice)]
    refused = await asyncio.gather(*both, return_exceptions=True)
    assert all(isinstance(r, KeyExists) for r in refused)
    assert "resourceVersion" not in twice["metadata"]
    missing = obj("m")
    with pytest.raises(KeyNotFound):
        await store.update("/registry/x/m", missing, -1)
    assert "resourceVersion" not in missing["metadata"]
    # a cancelled write
    gone = obj("g")
    task = asyncio.ensure_future(store.create("/registry/x/g", gone))
    await asyncio.sleep(0)  # submitted, not yet numbered (the writer runs after this)
    assert gone["metadata"]["resourceVersion"] == sqlite_module._PENDING_RV
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await store.create("/registry/x/other", obj("other"))  # the next batch skips it
    assert "resourceVersion" not in gone["metadata"]
    assert await store.get("/registry/x/g") is None
    assert all(sqlite_module._PENDING_RV.encode() not in raw for raw in seen)


async def test_group_commit_shares_one_transaction(store: SQLiteStorage) -> None:
    before = store.commits
    await asyncio.gather(*(store.create(f"/registry/x/g{i}", obj(f"g{i}")) for i in range(200)))
    commits = store.commits - before
    assert commits < 50, commits  # 200 concurrent writes, far fewer fsyncs


async def test_one_batch_over_several_statements_keeps_submission_order(
    tmp_path: Path,
) -> None:
    """A batch bigger than one multi-row INSERT, with a key created, deleted and created
    again and another updated twice (unconditionally) in it: the file ends as the writes
    say, in revision order, and a restart reads the same."""
    path = tmp_path / "b.db"
    s = SQLiteStorage(path)
    await s.start()
    n = 3 * sqlite_module._ROWS_PER_INSERT + 5
    try:
        kept = await s.create("/registry/x/kept", obj("kept", "0"))
        writes = [s.create(f"/registry/x/n{i}", obj(f"n{i}", str(i))) for i in range(n)]
        writes[10:10] = [
            s.create("/registry/x/again", obj("again", "first")),
            s.update("/registry/x/kept", obj("kept", "1"), -1),
        ]
        writes[100:100] = [
            s.delete("/registry/x/again", -1),
            s.update("/registry/x/kept", obj("kept", "2"), -1),
        ]
        writes.append(s.create("/registry/x/again", obj("again", "second")))
        before = s.commits
        done = await asyncio.gather(*writes)  # submitted in one turn: one batch
        assert s.commits - before == 1
        revs = [kv.mod_revision for kv in done]
        assert revs == list(range(kept.mod_revision + 1, kept.mod_revision + 1 + len(writes)))
        top = s.revision
    finally:
        await s.close()
    s = SQLiteStorage(path)
    await s.start()
    try:
        assert s.revision == top
        kvs, _ = await s.list("/registry/x/")
        assert len(kvs) == n + 2
        again = await s.get("/registry/x/again")
        assert again is not None and again.obj["data"]["p"] == "second"
        assert again.create_revision == again.mod_revision == top
        latest = await s.get("/registry/x/kept")
        assert latest is not None and latest.obj["data"]["p"] == "2"
        assert latest.create_revision == kept.mod_revision
        history = await s.history("/registry/x/again", 0)
        assert [(e.type, e.kv.obj["data"]["p"]) for e in history] == [
            (PUT, "first"),
            (DELETE, "first"),
            (PUT, "second"),
        ]
    finally:
        await s.close()


async def test_restart_keeps_revision(tmp_path: Path) -> None:
    s = SQLiteStorage(tmp_path / "r.db")
    await s.start()
    kv = await s.create("/registry/x/a", obj("a"))
    await s.delete("/registry/x/a", kv.mod_revision)
    top = s.revision
    await s.close()
    s = SQLiteStorage(tmp_path / "r.db")
    await s.start()
    try:
        assert s.revision == top
        kv = await s.create("/registry/x/a", obj("a"))
        assert kv.mod_revision == top + 1
    finally:
        await s.close()


async def test_values_are_plain_zlib_whoever_wrote_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file written with the stdlib's zlib (Corral before ISA-L wrote the values)
    opens and reads, deletes included; what is written now the stdlib inflates, so an
    older Corral reads it too."""
    path = tmp_path / "old.db"
    with monkeypatch.context() as m:
        m.setattr(sqlite_module, "_pack", lambda raw: zlib.compress(raw, 1))
        s = SQLiteStorage(path)
        await s.start()
        a = await s.create("/registry/x/a", obj("a", "old"))
        await s.update("/registry/x/a", obj("a", "old2"), a.mod_revision)
        b = await s.create("/registry/x/b", obj("b", "gone"))
        await s.delete("/registry/x/b", b.mod_revision)
        await s.close()
    s = SQLiteStorage(path)
    await s.start()
    try:
        got = await s.get("/registry/x/a")
        assert got is not None and got.obj["data"]["p"] == "old2"
        kvs, _ = await s.list("/registry/x/")
        assert [kv.key for kv in kvs] == ["/registry/x/a"]
        history = await s.history("/registry/x/", 0)
        assert [(e.type, e.kv.obj["data"]["p"]) for e in history] == [
            (PUT, "old"),
            (PUT, "old2"),
            (PUT, "gone"),
            (DELETE, "gone"),
        ]
        await s.create("/registry/x/c", obj("c", "new"))
        gone = await s.delete("/registry/x/a", got.mod_revision)  # reads the old value
        assert gone.obj["data"]["p"] == "old2"
    finally:
        await s.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        values = [v for t in ("current", "log") for (v,) in db.execute(f"SELECT value FROM {t}")]
    assert len(values) == 1 + 6
    assert all(orjson.loads(zlib.decompress(v))["metadata"]["name"] for v in values)


async def test_watch_history_then_live_and_compaction(store: SQLiteStorage) -> None:
    start = store.revision
    kv = await store.create("/registry/x/w", obj("w"))
    await store.update("/registry/x/w", obj("w", "1"), kv.mod_revision)
    events = []

    async def consume() -> None:
        async for ev in store.watch("/registry/x/", start):
            events.append(ev)
            if len(events) == 3:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    cur = await store.get("/registry/x/w")
    assert cur is not None
    await store.delete("/registry/x/w", cur.mod_revision)
    await asyncio.wait_for(task, 5)
    assert [e.type for e in events] == [PUT, PUT, DELETE]
    await store.compact(store.revision - 1)
    with pytest.raises(Compacted):
        async for _ in store.watch("/registry/x/", start):
            pass


async def test_file_stays_within_twice_live_data_under_churn(store: SQLiteStorage) -> None:
    keys = [f"/registry/x/c{i}" for i in range(200)]
    revs = {}
    for k in keys:
        revs[k] = (await store.create(k, obj(k, noise(hash(k))))).mod_revision
    for round_ in range(30):
        results = await asyncio.gather(
            *(
                store.update(k, obj(k, noise(round_ * 1000 + i)), revs[k])
                for i, k in enumerate(keys)
            )
        )
        revs = {k: r.mod_revision for k, r in zip(keys, results, strict=True)}
        if await store.needs_compaction():
            await store.compact(store.compaction_target())
    await store.compact(store.compaction_target())
    live = 0
    for k in keys:
        kv = await store.get(k)
        assert kv is not None
        live += len(kv.raw)
    await store.close()
    size = os.path.getsize(store.path)
    assert size <= 2 * live + 64 * 1024, (size, live)  # plus SQLite's fixed pages


async def test_idle_store_writes_nothing(store: SQLiteStorage) -> None:
    await store.create("/registry/x/i", obj("i"))
    paths = [store.path, store.path + "-wal"]
    before = [os.stat(p).st_mtime_ns if os.path.exists(p) else 0 for p in paths]
    for _ in range(5):
        assert not await store.needs_compaction() or True
        await asyncio.sleep(0.1)
    after = [os.stat(p).st_mtime_ns if os.path.exists(p) else 0 for p in paths]
    assert before == after


async def test_guaranteed_update_retries_a_race(store: SQLiteStorage) -> None:
    kv = await store.create("/registry/x/gu", {"metadata": {"name": "gu"}, "n": 0})
    stale = kv
    await store.update("/registry/x/gu", {"metadata": {"name": "gu"}, "n": 1}, kv.mod_revision)
    calls = []

    def bump(o: dict) -> dict:
        calls.append(o["n"])
        o["n"] += 1
        return o

    out = await store.guaranteed_update("/registry/x/gu", bump, current=stale)
    assert out is not None and out.obj["n"] == 2
    assert calls == [0, 1]  # the stale copy lost the race, the re-read won
    assert await store.guaranteed_update("/registry/x/gu", lambda o: None) is None


def test_an_extended_corrupt_code_is_a_corrupt_store() -> None:
    """SQLite's extended codes (SQLITE_CORRUPT_INDEX = 779) carry the primary one in their
    low byte: they are a corrupt store too, not a plain DatabaseError."""
    exc = sqlite3.DatabaseError("database disk image is malformed")
    exc.sqlite_errorcode = 779  # type: ignore[attr-defined]
    assert isinstance(_storage_error(exc, "/d/state.db"), StorageCorrupt)
    plain = sqlite3.OperationalError("no such table: x")
    assert _storage_error(plain, "/d/state.db") is plain
