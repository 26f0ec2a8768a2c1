"""``corral backup`` and ``corral restore`` on an etcd datastore (``cli/backup.py`` calls in).

``backup``: online, while the servers run. One range read of ``/registry/`` through
the Storage API is etcd's consistent snapshot at one revision; the objects and the
cluster's bootstrap record (``/corral/bootstrap``) are written into a new file of the
SQLite store's format (0600, created empty first), which is then verified
(``backup.verify``) and renamed into place: the file is whole and checked, or absent.
The checksum of the objects (``migrate.checksum``) is printed for the source and for
the file. Values are read and written under the cluster's encryption configuration, so
Secrets stay encrypted in the file under the same keys (keep the keys with it).

``restore``: into a fresh etcd (refused while a server runs on it, and when it holds
objects unless ``--force``), with the checksum of the file and of the restored store.
Revisions restart in the new etcd: clients relist when their watches end. Before
anything, a backup that holds bootstrap data is unpacked into ``D/pki`` when the cluster
token is at hand (``unpack_bootstrap``: a fresh host gets the CA, keys and encryption
configuration of the cluster), as it is after a SQLite restore.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from corral.cli import migrate
from corral.cli.errors import CommandError


def add_flags(p: argparse.ArgumentParser, *, restore: bool) -> None:
    migrate.add_store_flags(p, data_dir=False)
    p.add_argument("--token", default="", help="the cluster token (bootstrap data in the backup)")
    p.add_argument("--token-file", type=Path, default=None, metavar="FILE",
                   help="read --token from FILE (default DATA_DIR/cluster-token)")  # fmt: skip
    if restore:
        p.add_argument("--force", action="store_true",
                       help="etcd: replace the objects the target holds")  # fmt: skip


def _publish_private(tmp: Path, out: Path) -> None:
    from corral.cli.backup import _publish

    _publish(tmp, out)


async def _backup(args: argparse.Namespace, tmp: Path) -> tuple[int, str, int, int, str, bool]:
    source = await migrate.open_store(args, args.datastore, args.data_dir)
    try:
        kvs, rev = await source.list(migrate.PREFIX)
        n_src, sum_src = migrate.checksum(kvs)
        target = await migrate.open_store(args, f"sqlite://{tmp}", args.data_dir)
        try:
            _, record = await migrate.copy(source, target, kvs)
        finally:
            await target.close()
    finally:
        await source.close()
    n_dst, sum_dst = await _file_checksum(args, tmp)
    return n_src, sum_src, rev, n_dst, sum_dst, record


async def _file_checksum(args: argparse.Namespace, path: Path) -> tuple[int, str]:
    """The checksum of a backup file's objects, read from a scratch copy (the file
    itself is never opened for writing)."""
    with tempfile.TemporaryDirectory(prefix="corral-backup-") as d:
        copy = Path(d) / "state.db"
        shutil.copyfile(path, copy)
        store = await migrate.open_store(args, f"sqlite://{copy}", args.data_dir)
        try:
            n, digest, _ = await migrate.store_checksum(store)
        finally:
            await store.close()
    return n, digest


def backup(args: argparse.Namespace) -> int:
    from corral.cli.backup import _private, verify

    out: Path = args.file.resolve()
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    started = time.monotonic()
    try:
        _private(tmp)
        n_src, sum_src, rev, n_dst, sum_dst, record = asyncio.run(_backup(args, tmp))
        for suffix in ("-wal", "-shm"):
            Path(f"{tmp}{suffix}").unlink(missing_ok=True)
        verify(tmp)
        if (n_src, sum_src) != (n_dst, sum_dst):
            raise CommandError(f"the backup differs from {args.datastore}: not written")
        _publish_private(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    took = time.monotonic() - started
    print(f"source {args.datastore}: {n_src} objects at revision {rev}, sha256 {sum_src}")
    print(f"backup {out}: {n_dst} objects, sha256 {sum_dst}")
    extra = " and the cluster's bootstrap data" if record else ""
    print(f"backed up {n_dst} objects{extra} at revision {rev} to {out} "
          f"({out.stat().st_size} bytes, {took:.1f} s)")  # fmt: skip
    print(
        "  keep the encryption configuration (the keys of encrypted resources) with it: "
        f"{args.data_dir / 'pki' / 'encryption.yaml'} unless --encryption-provider-config"
    )
    return 0


def unpack_bootstrap(args: argparse.Namespace, src: Path) -> None:
    """A backup's bootstrap record into ``D/pki`` when a token is at hand (a fresh host)."""
    from corral.apiserver import bootstrap_data

    record = _record(src)
    if record is None:
        return
    try:
        token = bootstrap_data.resolve_token(args.data_dir, args.token, args.token_file)
    except bootstrap_data.BootstrapError as e:
        raise CommandError(str(e)) from None
    if not token:
        print("  the backup holds the cluster's bootstrap data (CA, keys): give --token or "
              "--token-file to unpack it into this data dir")  # fmt: skip
        return
    try:
        written = bootstrap_data.unpack(args.data_dir, token, record)
    except bootstrap_data.BootstrapError as e:
        raise CommandError(str(e)) from None
    bootstrap_data.save_token(args.data_dir, token)
    if written:
        print(f"  the cluster's CA and keys unpacked into {args.data_dir / 'pki'}: "
              f"{' '.join(written)}")  # fmt: skip


def _record(src: Path) -> bytes | None:
    """The bootstrap record in a backup file (the SQLite store's ``meta_kv`` table, read
    only; a backup from before that table has none). Synchronous: ``restore`` on SQLite
    may be called from a running event loop."""
    try:
        conn = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
        try:
            row = conn.execute(
                "SELECT v FROM meta_kv WHERE k=?", (migrate.BOOTSTRAP_KEY,)
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.OperationalError:  # no such table
        return None
    return bytes(row[0]) if row else None


async def _restore(args: argparse.Namespace, copy: Path) -> tuple[int, str, int, str, bool]:
    source = await migrate.open_store(args, f"sqlite://{copy}", args.data_dir)
    try:
        target = await migrate.open_store(args, args.datastore, args.data_dir)
        try:
            await migrate.refuse_if_served(target, args.datastore)
            held, _ = await target.list(migrate.PREFIX)
            if held and not args.force:
                raise CommandError(f"{args.datastore} already holds {len(held)} objects: "
                                   "restore into a fresh etcd, or give --force (also "
                                   "after a restore cut short)")  # fmt: skip
            if held:
                await migrate.clear(target)
            kvs, _ = await source.list(migrate.PREFIX)
            n_src, sum_src = migrate.checksum(kvs)
            _, record = await migrate.copy(source, target, kvs)
            n_dst, sum_dst, _ = await migrate.store_checksum(target)
        finally:
            await target.close()
    finally:
        await source.close()
    return n_src, sum_src, n_dst, sum_dst, record


def restore(args: argparse.Namespace) -> int:
    from corral.cli.backup import verify

    src: Path = args.file
    if not src.is_file():
        raise CommandError(f"{src}: no such backup file")
    verify(src)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    unpack_bootstrap(args, src)  # first: the encryption configuration the copy needs
    with tempfile.TemporaryDirectory(prefix="corral-restore-") as d:
        copy = Path(d) / "state.db"
        shutil.copyfile(src, copy)
        n_src, sum_src, n_dst, sum_dst, record = asyncio.run(_restore(args, copy))
    print(f"backup {src}: {n_src} objects, sha256 {sum_src}")
    print(f"target {args.datastore}: {n_dst} objects, sha256 {sum_dst}")
    if (n_src, sum_src) != (n_dst, sum_dst):
        print("MISMATCH: the restored store differs from the backup")
        return 1
    extra = " and the cluster's bootstrap data" if record else ""
    print(f"restored {n_dst} objects{extra} into {args.datastore}: checksums match")
    return 0
