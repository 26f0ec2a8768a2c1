"""``corral migrate --from URL --to URL``: move a cluster's state between datastores.

SQLite to etcd (a single server outgrowing its machine) and back, with the same content:
every object under ``/registry/`` and the cluster's bootstrap record
(``/corral/bootstrap``, ``apiserver/bootstrap_data``) are copied through the Storage
protocol (``storage/datastore.open_store``), which is what the API server itself uses,
so both backends' rules apply (keys as they are; values sealed by the encryption
transformer). Both stores are opened with the cluster's encryption configuration
(``--encryption-provider-config``, default ``DATA/pki/encryption.yaml``), so a Secret
encrypted at rest in the source is encrypted at rest in the target under the same keys:
the keys must travel with the data dir, as with ``corral backup``.

``checksum`` is the proof both sides print: SHA-256 over the objects in key order, each
as its key and its canonical JSON (sorted keys, ``metadata.resourceVersion`` left out:
revisions are the store's own, and a new store numbers its writes anew). Equal
checksums: the same objects.

Guards: the source must not be served while it is read (SQLite: the file is open in
another process; etcd: the API servers' lifecycle Lease, ``corral-apiserver-lifecycle``,
is held and live), or a write could be missed; a target that already holds objects is
refused unless ``--force`` (which deletes them first). Revisions restart in the target:
clients of the old store relist (410) when the servers come back on the new one.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from corral.cli.errors import CommandError
from corral.util.paths import absolute_path

if TYPE_CHECKING:
    from corral.storage.base import KV

PREFIX = "/registry/"
BOOTSTRAP_KEY = "/corral/bootstrap"
#: the Lease of the API servers' elected lifecycle loops: held while any server runs
LIFECYCLE_LEASE = "/registry/coordination.k8s.io/leases/kube-system/corral-apiserver-lifecycle"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "migrate", help="copy a cluster's state between datastores (SQLite <-> etcd)"
    )
    p.add_argument("--from", dest="source", required=True, metavar="URL",
                   help="sqlite:///PATH or etcd://HOST:PORT[,HOST:PORT]")  # fmt: skip
    p.add_argument("--to", dest="target", required=True, metavar="URL", help="the same forms")
    add_store_flags(p)
    p.add_argument("--force", action="store_true",
                   help="replace whatever the target holds")  # fmt: skip


def add_store_flags(p: argparse.ArgumentParser, *, data_dir: bool = True) -> None:
    """``--data-dir`` (unless the parser has one), ``--encryption-provider-config`` and
    the etcd TLS flags."""
    if data_dir:
        p.add_argument(
            "--data-dir",
            type=absolute_path,
            default=None,
            help="a server's data dir of this cluster (its pki/encryption.yaml); default: "
            "the SQLite file's directory",
        )
    p.add_argument(
        "--encryption-provider-config",
        type=absolute_path,
        default=None,
        metavar="FILE",
        help="the cluster's EncryptionConfiguration (default DATA_DIR/pki/encryption.yaml)",
    )
    for what in ("cafile", "certfile", "keyfile"):
        p.add_argument(f"--datastore-{what}", type=absolute_path, default=None, metavar="FILE",
                       help=f"TLS to etcd: {what}")  # fmt: skip


# --- opening a store -----------------------------------------------------------------------


def data_dir_of(args: argparse.Namespace, *urls: str) -> Path:
    """``--data-dir``, else the directory of the first SQLite URL's file."""
    if args.data_dir is not None:
        return Path(args.data_dir)
    for url in urls:
        if url.startswith("sqlite://"):
            return Path(url[len("sqlite://") :]).absolute().parent
    raise CommandError("--data-dir is needed (no SQLite file names the cluster's data dir)")


def sqlite_path(url: str) -> Path | None:
    return Path(url[len("sqlite://") :]) if url.startswith("sqlite://") else None


async def open_store(args: argparse.Namespace, url: str, data_dir: Path) -> Any:
    """A started store for ``url`` with the cluster's encryption transformer."""
    from corral.apiserver.encryption import EncryptionTransformer
    from corral.apiserver.encryption_config import EncryptionConfigError, read
    from corral.storage.datastore import EtcdTLS
    from corral.storage.datastore import open_store as open_any

    tls = None
    if args.datastore_cafile or args.datastore_certfile or args.datastore_keyfile:
        tls = EtcdTLS(args.datastore_cafile, args.datastore_certfile, args.datastore_keyfile)
    try:
        store = open_any(url, data_dir, min_history=1, tls=tls)
    except ValueError as e:
        raise CommandError(str(e)) from None
    enc = args.encryption_provider_config or data_dir / "pki" / "encryption.yaml"
    if enc.exists():
        try:
            store.transformer = EncryptionTransformer(read(enc)[0])
        except EncryptionConfigError as e:
            raise CommandError(f"{enc}: {e}") from None
    await store.start()
    return store


# --- the checksum --------------------------------------------------------------------------


def canonical(obj: dict[str, Any]) -> bytes:
    """``obj`` as sorted-key JSON without ``metadata.resourceVersion``."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "resourceVersion" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def checksum(kvs: Iterable[KV]) -> tuple[int, str]:
    """(how many objects, SHA-256 hex) over ``kvs`` in key order (module docstring)."""
    h = hashlib.sha256()
    n = 0
    for kv in sorted(kvs, key=lambda kv: kv.key):
        h.update(kv.key.encode() + b"\0" + canonical(kv.obj) + b"\n")
        n += 1
    return n, h.hexdigest()


async def store_checksum(store: Any) -> tuple[int, str, int]:
    """(objects, checksum, revision) of everything under ``/registry/`` at one revision."""
    kvs, rev = await store.list(PREFIX)
    n, digest = checksum(kvs)
    return n, digest, rev


# --- guards --------------------------------------------------------------------------------


def lease_live(obj: dict[str, Any], now: dt.datetime) -> bool:
    """A Lease held by someone whose renewTime + leaseDurationSeconds is after ``now``."""
    spec = obj.get("spec") or {}
    if not spec.get("holderIdentity") or not spec.get("renewTime"):
        return False
    try:
        renewed = dt.datetime.fromisoformat(str(spec["renewTime"]).replace("Z", "+00:00"))
    except ValueError:
        return False
    return renewed + dt.timedelta(seconds=float(spec.get("leaseDurationSeconds") or 15)) > now


async def refuse_if_served(store: Any, url: str) -> None:
    """``CommandError`` when a server runs on ``url`` (module docstring)."""
    from corral.cli.backup import in_use

    path = sqlite_path(url)
    if path is not None:
        if in_use(path):
            raise CommandError(f"{path} is in use (a running corral server?): stop it first")
        return
    kv = await store.get(LIFECYCLE_LEASE)
    if kv is not None and lease_live(kv.obj, dt.datetime.now(dt.UTC)):
        holder = kv.obj["spec"]["holderIdentity"]
        raise CommandError(
            f"{url}: a corral server is running on it (lease held by {holder}): stop them first"
        )


async def clear(store: Any) -> int:
    """Delete every object under ``/registry/`` (``--force``); how many."""
    kvs, _ = await store.list(PREFIX)
    for kv in kvs:
        await store.delete(kv.key, kv.mod_revision)
    return len(kvs)


# --- the command ---------------------------------------------------------------------------


async def copy(source: Any, target: Any, kvs: list[KV] | None = None) -> tuple[int, bool]:
    """Copy the objects (``kvs``: those of one ``list`` of ``source`` already made) and
    the bootstrap record; (objects, whether a record was copied)."""
    if kvs is None:
        kvs, _ = await source.list(PREFIX)
    sem = asyncio.Semaphore(32)

    async def one(kv: KV) -> None:
        async with sem:
            await target.create(kv.key, kv.obj)

    async with asyncio.TaskGroup() as tg:
        for kv in kvs:
            tg.create_task(one(kv))
    record = await source.get_meta(BOOTSTRAP_KEY)
    if record is not None:  # replaced if there (--force)
        await target.put_meta(BOOTSTRAP_KEY, record, create_only=False)
    return len(kvs), record is not None


async def migrate(args: argparse.Namespace) -> int:
    if args.source == args.target:
        raise CommandError("--from and --to name the same datastore")
    data_dir = data_dir_of(args, args.source, args.target)
    t0 = time.monotonic()
    source = await open_store(args, args.source, data_dir)
    try:
        await refuse_if_served(source, args.source)
        target_path = sqlite_path(args.target)
        if target_path is not None:
            from corral.cli.backup import in_use

            if in_use(target_path):
                raise CommandError(f"{target_path} is in use (a running corral server?)")
        target = await open_store(args, args.target, data_dir)
        try:
            if target_path is None:
                await refuse_if_served(target, args.target)
            held, _ = await target.list(PREFIX)
            has_record = await target.get_meta(BOOTSTRAP_KEY) is not None
            if (held or has_record) and not args.force:
                raise CommandError(
                    f"{args.target} already holds {len(held)} objects"
                    + (" and a cluster's bootstrap data" if has_record else "")
                    + ": give --force to replace them (a migrate cut short left a partial "
                    "copy: --force starts it over)"
                )
            if held:
                print(f"  --force: deleted {await clear(target)} objects from {args.target}")
            n_src, sum_src, rev = await store_checksum(source)
            print(f"source {args.source}: {n_src} objects at revision {rev}, sha256 {sum_src}")
            copied, record = await copy(source, target)
            n_dst, sum_dst, rev2 = await store_checksum(target)
            print(f"target {args.target}: {n_dst} objects at revision {rev2}, sha256 {sum_dst}")
        finally:
            await target.close()
    finally:
        await source.close()
    extra = " and the bootstrap data" if record else ""
    took = time.monotonic() - t0
    if (n_src, sum_src) != (n_dst, sum_dst):
        print(f"MISMATCH: the target differs from the source ({took:.1f} s)")
        return 1
    print(f"checksums match: {copied} objects{extra} copied ({took:.1f} s)")
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(migrate(args))
