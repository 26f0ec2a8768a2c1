"""``corral backup`` and ``corral restore``: the documented recovery of the SQLite store.

``corral backup --data-dir D FILE`` takes a consistent snapshot of ``D/state.db`` while
the server runs: ``VACUUM INTO`` reads the database in one read transaction (WAL mode:
the server keeps writing meanwhile) and writes a compact copy, which is then checked
(``PRAGMA integrity_check``) and renamed into place, so ``FILE`` is either a whole,
verified snapshot or absent. It is etcd's ``etcdctl snapshot save``.

``corral restore --data-dir D FILE`` puts a backup back (``etcdutl snapshot restore``):
it refuses while a process holds ``D/state.db`` open (a running ``corral server`` or
``corral up``: SQLite's WAL mode keeps a shared lock on the file's lock bytes, which
this command tries to take exclusively), verifies ``FILE`` first, keeps the current
(corrupt) database aside as ``state.db.corrupt-TIMESTAMP`` (with its WAL), and copies
the backup in atomically. Like ``--bump-revision --mark-compacted`` upstream, the
restored store's revision jumps ahead (``--bump-revision``, default 1e9) and history
before it is compacted: resourceVersions never go back, and clients that watched the
lost database relist (410 Gone) instead of missing what the backup lacks.

Encryption at rest: the backup holds ciphertext; the keys live in the encryption
configuration (``D/pki/encryption.yaml`` unless ``--encryption-provider-config``),
which must be kept with it.

On an etcd datastore (``--datastore etcd://...``, ``backup_etcd.py``) the backup is taken
online through the Storage API: one range read of ``/registry/`` (a consistent snapshot
at one etcd revision) and the cluster's bootstrap record, written into a file of the
SQLite store's own format. One format for both backends, so the same ``verify`` checks
it and it restores into a fresh SQLite data dir (as above) or a fresh etcd; etcd's own
``snapshot save`` would tie it to etcd and carry its internals (leases, the compaction
key) that a new cluster must not inherit. Restoring a backup holding bootstrap data
into a fresh data dir also unpacks the cluster's CA and keys into ``D/pki`` when the
cluster token is at hand (``--token``/``--token-file`` or ``D/cluster-token``).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import sqlite3
import time
from pathlib import Path

from corral.cli.errors import CommandError

#: SQLite's lock bytes (file format, "the lock-byte page"): a connection reading or
#: holding the database in WAL mode keeps a shared lock in this range
_SHARED_FIRST = 0x40000000 + 2
_SHARED_SIZE = 510
#: etcd's documented margin for ``etcdutl snapshot restore --bump-revision``
DEFAULT_BUMP = 1_000_000_000
_TABLES = {"current", "log", "meta"}


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for name, text in (
        ("backup", "write a consistent snapshot of the store (the server may run)"),
        ("restore", "replace the store with a backup (the server must be stopped)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--data-dir", type=Path, required=True, help="the server's data dir")
        p.add_argument("--datastore", default=None,
                       help="sqlite:///PATH when not DATA/state.db, or etcd://HOST:PORT,...")  # fmt: skip
        p.add_argument("file", type=Path, metavar="FILE", help="the backup file")
        from corral.cli import backup_etcd

        backup_etcd.add_flags(p, restore=name == "restore")
        if name == "restore":
            p.add_argument(
                "--bump-revision",
                type=int,
                default=DEFAULT_BUMP,
                metavar="N",
                help=f"move the revision this far ahead of the backup's (default {DEFAULT_BUMP})",
            )


def db_path(args: argparse.Namespace) -> Path:
    from corral.apiserver.server import parse_datastore

    try:
        return parse_datastore(args.datastore, args.data_dir)
    except ValueError as e:
        raise CommandError(str(e)) from None


def in_use(db: Path) -> bool:
    """Whether another process has ``db`` open through SQLite (a running server)."""
    try:
        fd = os.open(db, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, _SHARED_SIZE, _SHARED_FIRST, os.SEEK_SET)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the lock
    return False


def verify(path: Path) -> int:
    """``integrity_check`` and the store's tables; returns the file's revision."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            found = [r[0] for r in conn.execute("PRAGMA integrity_check(5)")]
            if found != ["ok"]:
                raise CommandError(f"{path}: integrity_check failed: {'; '.join(found)}")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if not _TABLES.issubset(tables):
                raise CommandError(f"{path}: not a Corral store (tables {sorted(tables)})")
            revs = [
                conn.execute(q).fetchone()[0] or 0
                for q in (
                    "SELECT max(rev) FROM log",
                    "SELECT max(mod_rev) FROM current",
                    "SELECT max(v) FROM meta WHERE k='compacted'",
                )
            ]
            return int(max(revs))
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise CommandError(f"{path}: {e}") from None


def _private(path: Path) -> None:
    """Create ``path`` empty and readable by its owner only (etcd writes its snapshots
    0600): a backup holds every object, Secrets included, whatever the umask."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _publish(tmp: Path, dest: Path) -> None:
    """Put the finished ``tmp`` in place of ``dest`` durably: fsync it, rename it over
    ``dest``, fsync the directory (a crash leaves the old file or the new one)."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dest)
    fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup(args: argparse.Namespace) -> int:
    from corral.storage.datastore import is_etcd

    if is_etcd(args.datastore):
        from corral.cli import backup_etcd

        return backup_etcd.backup(args)
    db = db_path(args)
    if not db.exists():
        raise CommandError(f"{db}: no database here")
    out: Path = args.file.resolve()
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    started = time.monotonic()
    try:
        _private(tmp)  # VACUUM INTO fills an empty file, keeping its mode
        conn = sqlite3.connect(db, timeout=60)  # VACUUM INTO only reads it
        try:
            conn.execute("VACUUM INTO ?", (str(tmp),))
        except sqlite3.DatabaseError as e:
            raise CommandError(f"{db}: {e}") from None
        finally:
            conn.close()
        rev = verify(tmp)
        _publish(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    took = time.monotonic() - started
    print(f"backed up {db} at revision {rev} to {out} ({out.stat().st_size} bytes, {took:.1f} s)")
    print(
        "  keep the encryption configuration (the keys of encrypted resources) with it: "
        f"{args.data_dir / 'pki' / 'encryption.yaml'} unless --encryption-provider-config"
    )
    return 0


def _mark(db: Path, revision: int) -> None:
    """Move the restored store's revision to ``revision`` and compact below it."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM log")
        conn.execute(
            "INSERT INTO meta(k, v) VALUES ('compacted', ?) "
            "ON CONFLICT(k) DO UPDATE SET v=excluded.v",
            (revision,),
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def restore(args: argparse.Namespace) -> int:
    from corral.cli import backup_etcd
    from corral.storage.datastore import is_etcd

    if is_etcd(args.datastore):
        return backup_etcd.restore(args)
    db = db_path(args)
    src: Path = args.file
    if not src.is_file():
        raise CommandError(f"{src}: no such backup file")
    if in_use(db):
        raise CommandError(f"{db} is in use (a running corral server?): stop it first")
    rev = verify(src)
    db.parent.mkdir(parents=True, exist_ok=True)
    kept = ""
    tmp = db.with_name(f".{db.name}.restore-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        _private(tmp)
        shutil.copyfile(src, tmp)  # into the file as it is: its mode stays
        new_rev = rev + max(0, args.bump_revision)
        _mark(tmp, new_rev)
        # only now, the copy complete (a full disk fails it above): the old one aside
        if db.exists():
            aside = db.with_name(f"{db.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
            for suffix in ("", "-wal", "-shm"):
                p = Path(f"{db}{suffix}")
                if p.exists():
                    os.replace(p, f"{aside}{suffix}")
            kept = f"; the previous database is kept as {aside}"
        _publish(tmp, db)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"restored {db} from {src} (revision {rev}, now {new_rev}){kept}")
    backup_etcd.unpack_bootstrap(args, src)  # a fresh data dir: the cluster's CA and keys
    return 0


def run(args: argparse.Namespace) -> int:
    if args.command == "backup":
        return backup(args)
    return restore(args)
