"""``corral secrets rotate``: a new encryption key for Secrets at rest, upstream's way.

Upstream's documented rotation ("Encrypting Confidential Data at Rest", rotating a
decryption key), against the running API server (it reloads the file when it changes,
``apiserver/encryption.py``, and records what it loaded in ``DATA/pki/encryption.loaded``):

1. add the new key as the *second* key of the first provider of the entry that covers
   ``secrets``; wait until the server has loaded it (it can now decrypt with it);
2. make it the first key; wait until the server has loaded it (it now encrypts with it,
   and has re-encrypted its history rows);
3. rewrite every object of the entry's resources through the API (``kubectl get
   secrets -A -o json | kubectl replace -f -``: an unchanged object is still written,
   since its stored value is stale);
4. check in the database (read-only) that no value is left under an old key;
5. remove the old keys; wait until the server has loaded the file.

Crash safety: the file is replaced atomically at each step, and a key leaves it only
after step 4 found nothing under it, so no stored value is ever under a key the file
lacks. Run again after a failure: a new key is added and every older one goes once
nothing is stored under it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import re
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from corral.api.errors import StatusError
from corral.apiserver.encryption import digest, key_tag, read_status
from corral.apiserver.encryption_config import (
    EncryptionConfig,
    EncryptionConfigError,
    Key,
    Provider,
    ResourceEntry,
    parse_group_resource,
    read,
    write,
)
from corral.client.rest import Client, KubeConfig, Resource
from corral.util.paths import absolute_path


class RotateError(Exception):
    """A step could not be done; the message says which and what was left."""


def _default_data_dir() -> Path:
    return Path("/var/lib/corral") if os.geteuid() == 0 else Path.home() / ".corral"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``secrets`` with ``rotate``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "secrets", help="manage the encryption of Secrets at rest"
    )
    sub = p.add_subparsers(dest="secrets_command", required=True)
    rotate = sub.add_parser(
        "rotate", help="encrypt every Secret under a new key, then drop the old key"
    )
    rotate.add_argument("--data-dir", type=absolute_path, default=_default_data_dir())
    rotate.add_argument(
        "--kubeconfig", default="", help="admin kubeconfig (default DATA_DIR/kubeconfig)"
    )
    rotate.add_argument(
        "--encryption-provider-config",
        type=absolute_path,
        default=None,
        metavar="FILE",
        help="the server's EncryptionConfiguration (default DATA_DIR/pki/encryption.yaml)",
    )
    rotate.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for each reload"
    )
    return p


def _entry_index(config: EncryptionConfig) -> int:
    """The entry whose providers Secrets use (exact name, ``*.`` or ``*.*``)."""
    for want in (("", "secrets"), ("", "*"), ("*", "*")):
        for i, entry in enumerate(config.entries):
            if want in (parse_group_resource(r) for r in entry.resources):
                return i
    raise RotateError("no entry of the configuration covers secrets: nothing to rotate")


def _new_key_name(keys: tuple[Key, ...]) -> str:
    numbers = [int(m.group(1)) for k in keys if (m := re.fullmatch(r"key(\d+)", k.name))]
    n = max(numbers, default=len(keys)) + 1
    names = {k.name for k in keys}
    while f"key{n}" in names:
        n += 1
    return f"key{n}"


def _with_keys(config: EncryptionConfig, index: int, keys: tuple[Key, ...]) -> EncryptionConfig:
    entry = config.entries[index]
    first = dataclasses.replace(entry.providers[0], keys=keys)
    new_entry = ResourceEntry(entry.resources, (first, *entry.providers[1:]))
    entries = list(config.entries)
    entries[index] = new_entry
    return EncryptionConfig(tuple(entries))


def _resources(entry: ResourceEntry) -> list[Resource]:
    out = []
    for text in entry.resources:
        group, resource = parse_group_resource(text)
        if group or resource == "*":
            raise RotateError(
                f"the entry for secrets also names {text!r}: corral secrets rotate rewrites "
                "core resources named one by one only"
            )
        out.append(Resource("", "v1", resource))
    return out


class Rotation:
    """One run of the rotation (the module docstring's five steps)."""

    def __init__(self, data_dir: Path, config_path: Path, timeout: float) -> None:
        self.data_dir = data_dir
        self.path = config_path
        self.timeout = timeout

    def _wait_loaded(self, data: bytes, what: str) -> dict[str, Any]:
        want = digest(data)
        deadline = time.monotonic() + self.timeout
        while True:
            status = read_status(self.data_dir)
            if status and status.get("sha256") == want and status.get("config") == str(self.path):
                return status
            if time.monotonic() > deadline:
                raise RotateError(
                    f"the API server did not load {self.path} ({what}) within "
                    f"{self.timeout:.0f} s: is it running with --encryption-provider-config "
                    f"{self.path}? The file keeps every key, run again once it is up"
                )
            time.sleep(0.2)

    def _server_has_current(self) -> dict[str, Any]:
        status = read_status(self.data_dir)
        current = digest(self.path.read_bytes())
        if not status or status.get("config") != str(self.path):
            raise RotateError(
                f"no API server has loaded {self.path} (start it, with "
                f"--encryption-provider-config {self.path} if not the default)"
            )
        pid = int(status.get("pid") or 0)
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError, OverflowError, ValueError):
            raise RotateError(
                f"the API server that loaded {self.path} (pid {pid}) is not running"
            ) from None
        if status.get("sha256") != current:
            self._wait_loaded(self.path.read_bytes(), "its current contents")
        return status

    def run(self, kubeconfig: KubeConfig) -> None:
        config, _ = read(self.path)
        index = _entry_index(config)
        entry = config.entries[index]
        provider: Provider = entry.providers[0]
        if provider.kind == "identity":
            raise RotateError(
                "secrets are not encrypted (the first provider is identity): nothing to rotate"
            )
        resources = _resources(entry)
        status = self._server_has_current()
        old = provider.keys
        new = Key(_new_key_name(old), os.urandom(32))

        data = write(self.path, _with_keys(config, index, (*old, new)))
        self._wait_loaded(data, "new key second")
        print(f"added key {new.name} ({provider.kind}) to {self.path}; the server reads with it")

        data = write(self.path, _with_keys(config, index, (new, *old)))
        status = self._wait_loaded(data, "new key first")
        print(
            f"the server now encrypts with {new.name}; it re-encrypted "
            f"{status.get('history_resealed', 0)} history value(s)"
        )

        for res in resources:
            n = asyncio.run(_rewrite_all(kubeconfig, res))
            print(f"rewrote {n} {res.plural}")

        tags = [key_tag(provider.kind, k.name) for k in old]
        left = _count_under(Path(str(status.get("datastore"))), tags)
        if left:
            raise RotateError(
                f"{left} stored value(s) are still under {', '.join(k.name for k in old)}: "
                "the old keys stay in the file; run corral secrets rotate again"
            )
        data = write(self.path, _with_keys(config, index, (new,)))
        self._wait_loaded(data, "old keys removed")
        names = ", ".join(k.name for k in old)
        print(
            f"removed key(s) {names}: every value of {', '.join(entry.resources)} is under {new.name}"
        )


async def _rewrite_all(kubeconfig: KubeConfig, res: Resource) -> int:
    """PUT every object back unchanged (upstream's ``kubectl replace``); a conflict
    re-reads and tries again, a deleted object is skipped."""
    client = Client(kubeconfig, user_agent="corral-secrets")
    try:
        listed = await client.list(res)
        kind = str(listed.get("kind") or "").removesuffix("List")
        done = 0
        for obj in listed.get("items") or []:
            obj.setdefault("apiVersion", "v1")
            obj.setdefault("kind", kind)
            meta = obj["metadata"]
            ns, name = meta.get("namespace"), meta["name"]
            for _ in range(10):
                try:
                    await client.update(res, obj, ns)
                    done += 1
                    break
                except StatusError as e:
                    if e.code == 404:
                        break
                    if e.code != 409:
                        raise
                    try:
                        obj = await client.get(res, name, ns)
                    except StatusError as again:
                        if again.code == 404:
                            break
                        raise
            else:
                raise RotateError(f"{res.plural} {ns}/{name}: still conflicting after 10 tries")
        return done
    finally:
        await client.close()


def _count_under(db: Path, tags: list[str]) -> int:
    """Values (live and history) whose stored prefix names one of ``tags``."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        n = 0
        for tag in tags:
            raw = tag.encode()
            for table in ("current", "log"):
                row = conn.execute(
                    f"SELECT count(*) FROM {table} WHERE substr(value, 1, ?) = ?",
                    (len(raw), raw),
                ).fetchone()
                n += int(row[0])
        return n
    finally:
        conn.close()


def run(args: argparse.Namespace) -> int:
    """Run ``corral secrets rotate``; errors are one line on stderr."""
    data_dir: Path = args.data_dir
    path: Path = args.encryption_provider_config or data_dir / "pki" / "encryption.yaml"
    try:
        cfg = KubeConfig.load(args.kubeconfig or data_dir / "kubeconfig")
        Rotation(data_dir, path, args.timeout).run(cfg)
    except (RotateError, EncryptionConfigError, StatusError, OSError, ValueError) as e:
        print(f"corral secrets rotate: {e}", file=sys.stderr)
        return 1
    return 0
