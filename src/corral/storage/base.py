"""The storage protocol: a revisioned key-value store shaped like etcd v3.

Every write gets one global, strictly increasing integer revision (it becomes the
object's ``resourceVersion``). Keys look like ``/registry/apps/deployments/ns/name``.
The methods map one to one onto etcd: ``create`` is a transaction "create_revision == 0
then put", ``update`` and ``delete`` are "mod_revision == expected then put/delete",
``list`` is a range read at the current revision, ``watch`` is a watch from a revision.

Values are objects (dicts). The backend stamps ``metadata.resourceVersion`` with the
write's revision and serialises the object once (``Versioner`` below), so that the
stored bytes, the watch event and the HTTP answer are the same bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

Obj = dict[str, Any]

PUT = 0
DELETE = 1


class StorageError(Exception):
    """Base of storage failures; carries the key."""

    def __init__(self, key: str, message: str = "") -> None:
        super().__init__(message or key)
        self.key = key


class KeyExists(StorageError):
    """``create`` of a key that holds a live value."""


class KeyNotFound(StorageError):
    """``update``/``delete`` of a key that holds no live value."""


class RevisionMismatch(StorageError):
    """The key's mod revision is not the expected one (optimistic concurrency)."""


class StorageFull(StorageError):
    """A write failed because the disk (or file system) holding the store is full; the
    write did not happen and the store's revision did not advance (etcd's NOSPACE)."""


class StorageUnavailable(StorageError):
    """The store could not be reached within its retry budget (etcd: no member
    answered); the write may or may not have happened. The API answers 503."""


class StorageCorrupt(StorageError):
    """The store's file failed its integrity check or is not a database at all; ``key``
    is the file's path."""


class Compacted(StorageError):
    """A watch asked for history older than the compacted revision."""

    def __init__(self, key: str, requested: int, compacted: int) -> None:
        super().__init__(key, f"too old resource version: {requested} ({compacted})")
        self.requested = requested
        self.compacted = compacted


@dataclass(slots=True)
class KV:
    """One live value: the object, its serialised bytes and its revisions."""

    key: str
    obj: Obj
    raw: bytes
    mod_revision: int
    create_revision: int


@dataclass(slots=True)
class Event:
    """A change at ``revision``: the new value (PUT) or the last value (DELETE).

    ``prev`` is the value before the change (None for a create), so that watchers with
    selectors can tell an object entering or leaving their selection.
    """

    type: int
    kv: KV
    prev: KV | None
    revision: int


class Storage(Protocol):
    """The async store the API server's generic registry uses."""

    @property
    def revision(self) -> int: ...

    @property
    def compacted_revision(self) -> int: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def create(self, key: str, obj: Obj) -> KV: ...

    async def update(self, key: str, obj: Obj, expected_revision: int) -> KV: ...

    async def delete(self, key: str, expected_revision: int) -> KV: ...

    async def get(self, key: str) -> KV | None: ...

    async def guaranteed_update(
        self, key: str, update: Callable[[Obj], Obj | None], current: KV | None = None
    ) -> KV | None:
        """Read-modify-write until it sticks (etcd's GuaranteedUpdate): ``update`` gets a
        fresh copy of the live object and returns the new one, or None to leave it."""
        ...

    async def list(self, prefix: str) -> tuple[list[KV], int]: ...

    def watch(self, prefix: str, from_revision: int) -> AsyncIterator[Event]: ...

    async def compact(self, revision: int) -> None: ...

    async def sync(self) -> int:
        """The consistent-read barrier: the store's current revision, once this
        server's listeners (its watch cache) have seen every change up to it."""
        ...

    async def get_meta(self, key: str) -> bytes | None:
        """A value of Corral's own (``/corral/...``), outside the objects."""
        ...

    async def put_meta(self, key: str, value: bytes, *, create_only: bool) -> bool:
        """Write such a value; with ``create_only`` only if absent (else False)."""
        ...


async def read_modify_write(
    store: Storage, key: str, update: Callable[[Obj], Obj | None], current: KV | None
) -> KV | None:
    """``guaranteed_update`` for any backend: ``update`` gets a fresh decode of the live
    value (``current`` saves the first read; when it is stale the compare fails and the
    value is read again); None from ``update`` leaves it. ``KeyNotFound`` if it is gone."""
    kv = current
    while True:
        if kv is None:
            kv = await store.get(key)
            if kv is None:
                raise KeyNotFound(key)
        new = update(orjson.loads(kv.raw))
        if new is None:
            return None
        try:
            return await store.update(key, new, kv.mod_revision)
        except RevisionMismatch:
            kv = None
