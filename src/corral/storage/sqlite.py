"""The embedded SQLite backend of the storage protocol.

Layout: ``current`` holds one row per live key (the latest value and its revisions);
``log`` holds one row per revision (a PUT's new value or a DELETE's last value) so that
watches can resume from a revision after a restart, as etcd's history allows; ``meta``
keeps the compacted revision.

Why it is shaped so (k3s' kine on SQLite is known for "database is locked", runaway file
growth, compaction that never finishes and constant disk writes on an idle cluster):

- **One writer.** Every write goes through one asyncio writer task and one dedicated
  thread that owns the write connection, so SQLite never sees two writers and never says
  "database is locked". Optimistic-concurrency checks run in the writer task against an
  in-memory map of key -> (mod revision, create revision), in submission order.
- **Group commit.** Writes that arrive while a commit is in flight are gathered and
  committed together in one transaction: one fsync (``synchronous=FULL`` in WAL mode)
  acknowledges them all. A write's future resolves only after that commit returns.
- **Compaction in small bites.** History older than a window (as many revisions as there
  are live keys, at least ``min_history``) is deleted in chunks that go through the same
  writer lane, so a compaction never holds the write lock for long and always completes.
  The file therefore stays near twice the live data; SQLite reuses freed pages.
- **Quiet when idle.** Nothing runs on a timer that writes unless there is history to
  compact; WAL checkpoints ride on writes.
- **Few GIL hand-offs per commit.** The writer thread lets go of the GIL in every SQLite
  statement (and in every compression call), and taking it back from a busy event loop
  waits until the loop's thread lets go: up to a switch interval (5 ms) each time. Under
  load (issue 19's shape) a commit of ~30 rows took 7 ms at the median and up to ~90 ms,
  where the same commit of 100 rows takes ~2 ms alone. So values are compressed (and
  sealed) on the loop while the batch is numbered, and a batch is written with a few
  multi-row INSERTs (``_insert_rows``): BEGIN, the upserts, the log rows and COMMIT,
  whatever the batch's size, not two statements and a compression per row. (Most of a
  commit's time under load is still the loop's: the hops to and from the thread wait
  behind everything else ready on it.)
- **Serialised when submitted.** A PUT's value is encoded when the write is submitted,
  while the object its request just built is still in the CPU's caches, with a
  placeholder for its revision (``_PENDING_RV``); the batch splices the revision in
  (``_Op.numbered``). Encoded in the batch, after the dozens of other requests that ran in
  between, the same ``orjson.dumps`` took ~17 µs of CPU instead of ~4-7 (issue 19's
  writes, ``bench/write_cost.py``).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import logging
import secrets
import sqlite3
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from isal import isal_zlib

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
    StorageCorrupt,
    StorageFull,
    read_modify_write,
)
from corral.storage.transform import TransformError, ValueTransformer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS current (
  key TEXT PRIMARY KEY,
  mod_rev INTEGER NOT NULL,
  create_rev INTEGER NOT NULL,
  value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS log (
  rev INTEGER PRIMARY KEY,
  key TEXT NOT NULL,
  type INTEGER NOT NULL,
  create_rev INTEGER NOT NULL,
  value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta_kv (k TEXT PRIMARY KEY, v BLOB NOT NULL);
"""

log = logging.getLogger("corral.storage")

_COMPACT_CHUNK = 200
#: pause between compaction steps (seconds), so that commits get the writer thread
_COMPACT_PAUSE = 0.005
#: commits slower than this (seconds) are logged
_SLOW_COMMIT = 0.05
#: WAL pages after which the checkpointer copies them back into the database
_CHECKPOINT_PAGES = 256
#: bytes the WAL file is cut back to once a checkpoint lets it restart
_WAL_LIMIT = 1024 * 1024
#: smallest number of revisions compaction keeps, whatever the number of live keys
_MIN_WINDOW = 100


#: what ``start`` checks: "quick" (``PRAGMA quick_check``: every page and row of every
#: b-tree, no index-content cross-check), "full" (``integrity_check``) or "off"
START_CHECK = "quick"


#: what a corrupt value raises when read
_UNDECODABLE = (zlib.error, orjson.JSONDecodeError)


def _storage_error(exc: Exception, path: str) -> Exception:
    """A typed storage error for a disk-full or corrupt-file SQLite error; else ``exc``."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return exc
    code &= 0xFF  # the primary code of an extended one (SQLITE_CORRUPT_INDEX is 779)
    if code == sqlite3.SQLITE_FULL:
        return StorageFull(path, f"{path}: database or disk is full")
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StorageCorrupt(path, f"{path}: {exc}")
    return exc


def _pack(raw: bytes) -> bytes:
    """Values are stored as zlib streams (RFC 1950; JSON shrinks 2-4x).

    ISA-L's deflate at its fastest level writes them: about 5 us for a 3 KB pod where
    ``zlib.compress(raw, 1)`` took 26 us (much of it setting up 256 KB of state per
    call), for values ~20% larger. The stream is plain zlib, so ``_unpack`` (stdlib
    zlib) reads files written before and after, and an older Corral reads these."""
    return isal_zlib.compress(raw, isal_zlib.ISAL_BEST_SPEED)


def _unpack(value: bytes) -> bytes:
    return zlib.decompress(value)


#: the resourceVersion a PUT's value is encoded with before its revision is known:
#: random per process, so no value a client sends can hold it (``_Op.numbered``)
_PENDING_RV = "corral-pending-" + secrets.token_hex(16)
_PENDING_RV_JSON = orjson.dumps(_PENDING_RV)
#: ``_Op.old_rv`` of an object that had no resourceVersion
_NO_RV = object()


@dataclass(slots=True)
class _Op:
    type: int  # PUT or DELETE
    key: str
    obj: Obj | None
    expected: int  # 0: must not exist (create); -1: any; >0: mod revision
    future: asyncio.Future[KV]
    #: a PUT's value encoded at submission, its resourceVersion ``_PENDING_RV``
    pending: bytes = b""
    #: the resourceVersion ``obj`` had before (put back if the write does not happen)
    old_rv: Any = _NO_RV

    def restore(self) -> None:
        """Give a PUT's object back its resourceVersion: the write did not happen."""
        if self.obj is None:
            return
        meta = self.obj["metadata"]
        if meta.get("resourceVersion") != _PENDING_RV:
            return
        if self.old_rv is _NO_RV or self.old_rv == _PENDING_RV:  # (one dict sent twice)
            del meta["resourceVersion"]
        else:
            meta["resourceVersion"] = self.old_rv

    def numbered(self, revision: int) -> bytes:
        """The value with its revision: ``stamp`` of ``obj``, from ``pending``."""
        assert self.obj is not None
        self.obj["metadata"]["resourceVersion"] = rv = str(revision)
        return self.pending.replace(_PENDING_RV_JSON, orjson.dumps(rv), 1)


class _Row(NamedTuple):
    """One numbered write of a batch, its value packed and sealed (a PUT's) on the loop."""

    op: _Op
    kv: KV
    type: int
    packed: bytes
    tag: str


#: rows per multi-row INSERT (5 columns: 320 bound variables, under the 999 of SQLite
#: before 3.32); a statement per row count up to it, each prepared once
#: (``_STATEMENTS`` caches them)
_ROWS_PER_INSERT = 64
_STATEMENTS = 2 * _ROWS_PER_INSERT + 64
_UPSERT_CURRENT = (
    "INSERT INTO current(key, mod_rev, create_rev, value) VALUES ",
    "(?,?,?,?)",
    " ON CONFLICT(key) DO UPDATE SET mod_rev=excluded.mod_rev, value=excluded.value",
)
_INSERT_LOG = ("INSERT INTO log(rev, key, type, create_rev, value) VALUES ", "(?,?,?,?,?)", "")


@functools.cache
def _multi_row(sql: tuple[str, str, str], n: int) -> str:
    head, row, tail = sql
    return head + ",".join([row] * n) + tail


def _insert_rows(
    c: sqlite3.Connection, sql: tuple[str, str, str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """``rows`` in statements of up to ``_ROWS_PER_INSERT`` rows (in order: a later row
    of one key updates the earlier one)."""
    for i in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[i : i + _ROWS_PER_INSERT]
        c.execute(_multi_row(sql, len(chunk)), [v for r in chunk for v in r])


def stamp(obj: Obj, revision: int) -> bytes:
    """Set ``metadata.resourceVersion`` and serialise: the versioner of this store.

    The bytes live on in the watch cache, so they are copied to their exact size:
    orjson hands back a buffer with its growth capacity (a 1 KB object held 4 KB)."""
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return memoryview(orjson.dumps(obj)).tobytes()


class SQLiteStorage:
    """Storage protocol on one SQLite file (see the module docstring)."""

    #: whether other servers write to this store (only this process writes the file): reads need ``sync``
    shared = False

    def __init__(
        self, path: str | Path, *, min_history: int = 1000, start_check: str = START_CHECK
    ) -> None:
        self.path = str(path)
        self.start_check = start_check
        self.min_history = min_history
        self._revision = 0
        self._compacted = 0
        self._revs: dict[str, tuple[int, int]] = {}
        self._pending: list[_Op] = []
        self._writer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="corral-sqlite")
        self._ckpt_running = False
        self._wal_pages = 0
        self._conn: sqlite3.Connection | None = None
        self._watchers: list[tuple[str, asyncio.Queue[Event | None]]] = []
        #: called synchronously, in revision order, after each commit and before the
        #: write is acknowledged (the watch cache hangs here: read-your-writes)
        self.listeners: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()
        self.commits = 0  # number of transactions, for the benchmark's group-commit ratio
        #: encryption at rest (``storage/transform.py``): set before ``start``, swapped
        #: whole on a reload; read once per value (new values are sealed on the loop)
        self.transformer: ValueTransformer | None = None
        #: key -> tag of the transformation its current value was written with (only
        #: for keys read or written under a transformer; absent means plaintext)
        self._tags: dict[str, str] = {}

    # --- lifecycle ------------------------------------------------------------------
    @property
    def revision(self) -> int:
        return self._revision

    @property
    def compacted_revision(self) -> int:
        return self._compacted

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._open)
        self._writer = asyncio.create_task(self._write_loop(), name="sqlite-writer")

    def _open(self) -> None:
        """Open the file, check it (``start_check``) and load the key map; a corrupt
        file raises ``StorageCorrupt`` naming it, before anything writes to it."""
        try:
            self._open_checked()
        except sqlite3.DatabaseError as e:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            raise _storage_error(e, self.path) from None

    def _open_checked(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, cached_statements=_STATEMENTS
        )
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect on a new file
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=60000")
        # Checkpoints are ours (``_checkpoint``): small, frequent, queued after a commit
        # so that no commit pays for copying the WAL back into the database.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        # After a checkpoint lets the WAL restart, shrink the file back to this size.
        conn.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT}")
        self._conn = conn
        if self.start_check != "off":
            pragma = "integrity_check" if self.start_check == "full" else "quick_check"
            found = [r[0] for r in conn.execute(f"PRAGMA {pragma}(5)").fetchall()]
            if found != ["ok"]:
                detail = " ".join("; ".join(found).split())  # one line
                raise StorageCorrupt(self.path, f"{self.path}: {pragma} failed: {detail}")
        conn.executescript(_SCHEMA)
        self._load_state()

    def _load_state(self) -> None:
        assert self._conn is not None
        c = self._conn
        self._revs = {
            k: (m, cr) for k, m, cr in c.execute("SELECT key, mod_rev, create_rev FROM current")
        }
        row = c.execute("SELECT v FROM meta WHERE k='compacted'").fetchone()
        self._compacted = int(row[0]) if row else 0
        top_log = c.execute("SELECT max(rev) FROM log").fetchone()[0] or 0
        top_cur = c.execute("SELECT max(mod_rev) FROM current").fetchone()[0] or 0
        self._revision = max(top_log, top_cur, self._compacted)

    def _checkpoint(self) -> None:
        """Copy the WAL back into the database (PASSIVE) on the writer's own connection.

        Done often (every ``_CHECKPOINT_PAGES`` pages), each one is short; and because
        the writer's next transaction then finds the WAL fully copied, SQLite restarts
        the WAL and cuts the file back to ``_WAL_LIMIT``. (A checkpoint from a second
        connection, tried first, let the WAL grow without bound under steady writes:
        the writer's next transaction always began before the copy was complete.)"""
        assert self._conn is not None
        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _truncate_wal(self) -> None:
        assert self._conn is not None
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def _checkpoint_done(self, fut: Any) -> None:
        self._ckpt_running = False
        exc = fut.exception()
        if exc is not None:
            log.warning("WAL checkpoint failed: %s", exc)

    async def close(self) -> None:
        if self._conn is None and self._closing:
            return
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            await self._writer
        for _, q in self._watchers:
            q.put_nowait(None)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._close_conn)
        self._thread.shutdown(wait=True)

    def _close_conn(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            self._conn = None

    # --- value transformation (encryption at rest) ----------------------------------
    def _seal(self, key: str, packed: bytes) -> tuple[bytes, str]:
        """The stored form of ``packed`` and its tag ("" when untransformed)."""
        t = self.transformer
        if t is None or not t.applies(key):
            return packed, ""
        return t.seal(key, packed), t.write_tag(key)

    def _unseal(self, key: str, value: bytes, current: bool = False) -> bytes:
        """The packed bytes of a stored value; ``current`` rows record their tag."""
        t = self.transformer
        if t is None or not t.applies(key):
            if value.startswith(b"k8s:enc:"):
                raise TransformError(f"{key}: identity transformer tried to read encrypted data")
            return value
        packed, tag = t.unseal(key, value)
        if current:
            if tag:
                self._tags[key] = tag
            else:
                self._tags.pop(key, None)
        return packed

    def is_stale(self, key: str) -> bool:
        """Whether ``key``'s current value was written under another transformation
        than new writes get (an older key, or plaintext now encrypted): an update that
        changes nothing must still be written (upstream's etcd3 ``stale``)."""
        t = self.transformer
        want = t.write_tag(key) if t is not None and t.applies(key) else ""
        return self._tags.get(key, "") != want

    async def reseal_history(self) -> int:
        """Rewrite logged (history) values of transformed keys that were written under
        another transformation than the current one, in small transactions on the writer
        thread; returns how many. Current values are rewritten through the API (a stale
        object is written even unchanged); history cannot be, so the store does it."""
        loop = asyncio.get_running_loop()
        total, after = 0, 0
        while True:
            done, after, n = await loop.run_in_executor(self._thread, self._reseal_chunk, after)
            total += n
            if done:
                return total
            await asyncio.sleep(_COMPACT_PAUSE)

    def _reseal_chunk(self, after: int) -> tuple[bool, int, int]:
        c, t = self._conn, self.transformer
        assert c is not None
        if t is None:
            return True, after, 0
        ranges = " OR ".join("(key >= ? AND key < ?)" for _ in t.range_prefixes())
        if not ranges:
            return True, after, 0
        args: builtins.list[Any] = [after]
        for p in t.range_prefixes():
            args += [p, p + "\uffff"]
        c.execute("BEGIN IMMEDIATE")
        try:
            rows = c.execute(
                f"SELECT rev, key, value FROM log WHERE rev > ? AND ({ranges}) "
                f"ORDER BY rev LIMIT {_COMPACT_CHUNK}",
                args,
            ).fetchall()
            n = 0
            for rev, key, value in rows:
                if not t.applies(key):
                    continue
                packed, tag = t.unseal(key, value)
                if tag != t.write_tag(key):
                    c.execute("UPDATE log SET value=? WHERE rev=?", (t.seal(key, packed), rev))
                    n += 1
            c.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                c.execute("ROLLBACK")
            raise
        last = rows[-1][0] if rows else after
        return len(rows) < _COMPACT_CHUNK, last, n

    # --- writes -----------------------------------------------------------------------
    def _submit(self, type_: int, key: str, obj: Obj | None, expected: int) -> asyncio.Future[KV]:
        if self._closing:
            raise RuntimeError("storage is closed")
        fut: asyncio.Future[KV] = asyncio.get_running_loop().create_future()
        op = _Op(type_, key, obj, expected, fut)
        if obj is not None:  # encoded now, while obj is in the caches (module docstring)
            meta = obj.setdefault("metadata", {})
            op.old_rv = meta.get("resourceVersion", _NO_RV)
            meta["resourceVersion"] = _PENDING_RV
            op.pending = orjson.dumps(obj)
        self._pending.append(op)
        self._wake.set()
        return fut

    async def create(self, key: str, obj: Obj) -> KV:
        return await self._submit(PUT, key, obj, 0)

    async def update(self, key: str, obj: Obj, expected_revision: int) -> KV:
        return await self._submit(PUT, key, obj, expected_revision)

    async def delete(self, key: str, expected_revision: int) -> KV:
        return await self._submit(DELETE, key, None, expected_revision)

    async def _write_loop(self) -> None:
        """Never dies: a failure fails the batch it happened in, not the store."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._pending:
                if self._closing:
                    return
                continue
            batch, self._pending = self._pending, []
            try:
                await self._write_batch(batch)
            except Exception as exc:
                log.exception("storage batch failed")
                for op in batch:
                    if not op.future.done():
                        op.restore()
                        op.future.set_exception(exc)
            if self._pending:
                self._wake.set()

    async def _write_batch(self, batch: builtins.list[_Op]) -> None:
        """Check, number, commit and announce one batch (one transaction, one fsync)."""
        loop = asyncio.get_running_loop()
        rows: builtins.list[_Row] = []
        for op in batch:
            if op.future.done():  # cancelled
                op.restore()
                continue
            cur = self._revs.get(op.key)
            failed: Exception | None = None
            if op.expected == 0 and op.type == PUT and cur is not None:
                failed = KeyExists(op.key)
            elif op.expected != 0 and cur is None:
                failed = KeyNotFound(op.key)
            elif op.expected > 0 and cur is not None and cur[0] != op.expected:
                failed = RevisionMismatch(op.key)
            if failed is not None:
                op.restore()
                op.future.set_exception(failed)
                continue
            self._revision += 1
            rev = self._revision
            create_rev = rev if cur is None else cur[1]
            if op.type == PUT:
                assert op.obj is not None
                raw = op.numbered(rev)
                kv = KV(op.key, op.obj, raw, rev, create_rev)
                self._revs[op.key] = (rev, create_rev)
                # Packed here, not on the writer thread: the compressor lets go of the
                # GIL, and taking it back from a busy loop waits (module docstring).
                packed, tag = self._seal(op.key, _pack(raw))
                rows.append(_Row(op, kv, PUT, packed, tag))
            else:
                kv = KV(op.key, {}, b"", rev, create_rev)
                del self._revs[op.key]
                rows.append(_Row(op, kv, DELETE, b"", ""))
        if not rows:
            return
        started = time.monotonic()
        try:
            await loop.run_in_executor(self._thread, self._commit, rows)
        except Exception as exc:  # disk full, I/O error: fail the batch, resync
            err = _storage_error(exc, self.path)
            log.warning("commit of %d writes failed: %s", len(rows), err)
            await loop.run_in_executor(self._thread, self._load_state)
            for row in rows:
                if not row.op.future.done():
                    row.op.future.set_exception(err)
            return
        took = time.monotonic() - started
        if took > _SLOW_COMMIT:
            log.info("slow commit: %d writes took %.0f ms", len(rows), took * 1000)
        self.commits += 1
        self._wal_pages += len(rows)  # about a page per row
        if self._wal_pages >= _CHECKPOINT_PAGES and not self._ckpt_running:
            # Queued behind this commit on the writer thread: the writes just committed
            # are acknowledged first; only a write arriving during the (small)
            # checkpoint waits for it.
            self._wal_pages = 0
            self._ckpt_running = True
            fut = loop.run_in_executor(self._thread, self._checkpoint)
            fut.add_done_callback(self._checkpoint_done)
        for op, kv, type_, _, _ in rows:
            try:
                self._dispatch(Event(type_, kv, None, kv.mod_revision))
            except Exception:
                log.exception("listener failed on %s at revision %d", kv.key, kv.mod_revision)
            if not op.future.done():
                op.future.set_result(kv)

    def _commit(self, rows: builtins.list[_Row]) -> None:
        """One transaction for the batch, in few statements: each statement lets go of
        the GIL while SQLite runs it, and taking it back from a busy event loop can wait
        a switch interval, so rows go in multi-row INSERTs, not one statement per row."""
        c = self._conn
        assert c is not None
        puts: builtins.list[tuple[str, int, int, bytes]] = []
        log: builtins.list[tuple[int, str, int, int, bytes]] = []
        tags: dict[str, str] = {}

        def flush() -> None:
            _insert_rows(c, _UPSERT_CURRENT, puts)
            puts.clear()

        c.execute("BEGIN IMMEDIATE")
        try:
            for _, kv, type_, packed, tag in rows:
                if type_ == PUT:
                    tags[kv.key] = tag
                    puts.append((kv.key, kv.mod_revision, kv.create_revision, packed))
                else:
                    flush()  # a delete must see the puts before it in this batch
                    row = c.execute("SELECT value FROM current WHERE key=?", (kv.key,)).fetchone()
                    c.execute("DELETE FROM current WHERE key=?", (kv.key,))
                    # The DELETE event carries the last value, stamped with the new revision.
                    last = orjson.loads(_unpack(self._unseal(kv.key, row[0]))) if row else {}
                    kv.obj = last
                    kv.raw = stamp(last, kv.mod_revision)
                    packed, _ = self._seal(kv.key, _pack(kv.raw))
                    tags[kv.key] = ""
                log.append((kv.mod_revision, kv.key, type_, kv.create_revision, packed))
            flush()
            _insert_rows(c, _INSERT_LOG, log)
            c.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                c.execute("ROLLBACK")
            raise
        for key, tag in tags.items():
            if tag:
                self._tags[key] = tag
            else:
                self._tags.pop(key, None)

    async def guaranteed_update(
        self, key: str, update: Callable[[Obj], Obj | None], current: KV | None = None
    ) -> KV | None:
        """Read-modify-write with optimistic concurrency, retried on a race.

        ``current`` (e.g. from the watch cache) saves the first read; if it is stale the
        compare fails and the loop re-reads from the database. Returns the stored value,
        or None when ``update`` returned None (nothing to do)."""
        return await read_modify_write(self, key, update, current)

    # --- reads --------------------------------------------------------------------------
    async def get(self, key: str) -> KV | None:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._get, key)

    def _get(self, key: str) -> KV | None:
        assert self._conn is not None
        row = self._conn.execute(
            "SELECT value, mod_rev, create_rev FROM current WHERE key=?", (key,)
        ).fetchone()
        if row is None:
            return None
        raw = _unpack(self._unseal(key, row[0], current=True))
        return KV(key, orjson.loads(raw), raw, row[1], row[2])

    async def list(self, prefix: str) -> tuple[list[KV], int]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._list, prefix)

    def _list(self, prefix: str) -> tuple[builtins.list[KV], int]:
        assert self._conn is not None
        rows = self._conn.execute(
            "SELECT key, value, mod_rev, create_rev FROM current WHERE key >= ? AND key < ? ORDER BY key",
            (prefix, prefix + "\uffff"),
        ).fetchall()
        out = []
        k = ""
        try:
            for k, v, m, c in rows:
                raw = _unpack(self._unseal(k, v, current=True))
                out.append(KV(k, orjson.loads(raw), raw, m, c))
        except _UNDECODABLE as e:
            raise self._corrupt_value(k, e) from None
        return out, self._revision

    def _corrupt_value(self, key: str, e: Exception) -> StorageCorrupt:
        """A stored value that does not decompress or parse means a corrupt file (SQLite
        checks its b-trees, not the bytes of a value)."""
        return StorageCorrupt(self.path, f"{self.path}: the value of {key}: {e}")

    async def history(
        self, prefix: str, after: int, upto: int | None = None
    ) -> builtins.list[Event]:
        """Logged events under ``prefix`` with ``after`` < revision <= ``upto`` (default:
        the current revision), for seeding a cache."""
        loop = asyncio.get_running_loop()
        upto = self._revision if upto is None else upto
        return await loop.run_in_executor(self._thread, self._history, prefix, after, upto)

    # --- the interface shared with the etcd backend ------------------------------------
    def attach_listener(
        self,
        listener: Callable[[Event], None],
        after: int,
        *,
        relist: Callable[[builtins.list[KV], int], None] | None = None,
    ) -> None:
        """Add a listener of every write after revision ``after`` (here: every write
        from now on; nothing else writes to this file, so ``relist`` is never needed)."""
        self.listeners.append(listener)

    def fail_fast(self) -> None:
        """Shutdown (as ``EtcdStorage.fail_fast``): nothing here retries."""

    async def sync(self) -> int:
        """The consistent-read barrier: one process owns the file, so the cache is
        always current; free."""
        return self._revision

    async def get_meta(self, key: str) -> bytes | None:
        """A value of Corral's own (``/corral/...``: bootstrap data), outside objects."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._get_meta, key)

    def _get_meta(self, key: str) -> bytes | None:
        assert self._conn is not None
        row = self._conn.execute("SELECT v FROM meta_kv WHERE k=?", (key,)).fetchone()
        return bytes(row[0]) if row else None

    async def put_meta(self, key: str, value: bytes, *, create_only: bool) -> bool:
        """Write a value of Corral's own; with ``create_only`` only if absent (False
        then). On the writer thread, so it never races a commit."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._put_meta, key, value, create_only)

    def _put_meta(self, key: str, value: bytes, create_only: bool) -> bool:
        assert self._conn is not None
        verb = "INSERT OR IGNORE" if create_only else "INSERT OR REPLACE"
        try:
            cur = self._conn.execute(f"{verb} INTO meta_kv(k, v) VALUES (?, ?)", (key, value))
        except sqlite3.DatabaseError as e:
            raise _storage_error(e, self.path) from None
        return bool(cur.rowcount)

    def _history(self, prefix: str, after: int, upto: int) -> builtins.list[Event]:
        assert self._conn is not None
        rows = self._conn.execute(
            "SELECT rev, key, type, create_rev, value FROM log WHERE rev > ? AND rev <= ? "
            "AND key >= ? AND key < ? ORDER BY rev",
            (after, upto, prefix, prefix + "\uffff"),
        ).fetchall()
        out = []
        k = ""
        try:
            for rev, k, t, cr, v in rows:
                raw = _unpack(self._unseal(k, v))
                out.append(Event(t, KV(k, orjson.loads(raw), raw, rev, cr), None, rev))
        except _UNDECODABLE as e:
            raise self._corrupt_value(k, e) from None
        return out

    # --- watch ----------------------------------------------------------------------------
    def _dispatch(self, ev: Event) -> None:
        for cb in self.listeners:
            cb(ev)
        for prefix, q in self._watchers:
            if ev.kv.key.startswith(prefix):
                q.put_nowait(ev)

    async def watch(self, prefix: str, from_revision: int) -> AsyncIterator[Event]:  # type: ignore[override]
        """Events with revision > ``from_revision`` under ``prefix``, history first."""
        if from_revision < self._compacted:
            raise Compacted(prefix, from_revision, self._compacted)
        q: asyncio.Queue[Event | None] = asyncio.Queue()
        entry = (prefix, q)
        self._watchers.append(entry)
        try:
            upto = self._revision
            loop = asyncio.get_running_loop()
            history = await loop.run_in_executor(
                self._thread, self._history, prefix, from_revision, upto
            )
            for past in history:
                yield past
            while True:
                ev = await q.get()
                if ev is None:
                    return
                if ev.revision <= upto:
                    continue
                yield ev
        finally:
            self._watchers.remove(entry)

    # --- compaction ------------------------------------------------------------------------
    def compaction_target(self) -> int:
        """Keep ``min_history`` revisions, but never more than half as many as live keys
        (at least ``_MIN_WINDOW``): the log then stays smaller than the live data."""
        window = min(self.min_history, max(_MIN_WINDOW, len(self._revs) // 2))
        return max(0, self._revision - window)

    async def compact(self, revision: int) -> None:
        """Drop history at or below ``revision`` in small transactions."""
        loop = asyncio.get_running_loop()
        while True:
            done = await loop.run_in_executor(self._thread, self._compact_chunk, revision)
            if done:
                break
            await asyncio.sleep(_COMPACT_PAUSE)  # let queued writes through between chunks
        self._compacted = max(self._compacted, revision)
        while await loop.run_in_executor(self._thread, self._release_free_pages):
            await asyncio.sleep(_COMPACT_PAUSE)
        # Let the freed pages leave the file now, not at the next burst of writes, and
        # cut the WAL back to nothing: compaction runs when writes have left history
        # behind, a good moment to pay for one full checkpoint.
        await loop.run_in_executor(self._thread, self._truncate_wal)

    def _release_free_pages(self) -> bool:
        """Give pages freed by compaction back to the file system, a few at a time;
        True while some are left."""
        assert self._conn is not None
        # Through execute() the pragma frees one page per step; executescript() runs
        # it to completion (we are in autocommit mode, so its implicit COMMIT is moot).
        self._conn.executescript("PRAGMA incremental_vacuum(64);")
        free = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
        return bool(free)

    def _compact_chunk(self, revision: int) -> bool:
        c = self._conn
        assert c is not None
        c.execute("BEGIN IMMEDIATE")
        try:
            cur = c.execute(
                "DELETE FROM log WHERE rev IN (SELECT rev FROM log WHERE rev <= ? ORDER BY rev LIMIT ?)",
                (revision, _COMPACT_CHUNK),
            )
            n = cur.rowcount
            c.execute(
                "INSERT INTO meta(k, v) VALUES ('compacted', ?) "
                "ON CONFLICT(k) DO UPDATE SET v=max(v, excluded.v)",
                (revision,),
            )
            c.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                c.execute("ROLLBACK")
            raise
        return bool(n < _COMPACT_CHUNK)

    async def needs_compaction(self) -> bool:
        target = self.compaction_target()
        if target <= self._compacted:
            return False
        loop = asyncio.get_running_loop()
        oldest = await loop.run_in_executor(self._thread, self._oldest_log)
        return oldest is not None and oldest <= target

    def _oldest_log(self) -> int | None:
        assert self._conn is not None
        row = self._conn.execute("SELECT min(rev) FROM log").fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def file_sizes(self) -> dict[str, Any]:
        """Sizes of the database and its WAL, for the benchmark and metrics."""
        out: dict[str, Any] = {}
        for suffix in ("", "-wal"):
            p = Path(self.path + suffix)
            out["db" + suffix.replace("-", "_")] = p.stat().st_size if p.exists() else 0
        return out
