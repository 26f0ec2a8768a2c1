"""A controller's own writes, remembered until its informer shows them.

Used by the PV binder (``persistentvolume.py``), as upstream's PV controller keeps its
``storeObjectUpdate`` caches: an informer lags behind the writes its controller just
made, so a second sync (or a second worker) reading the cache could decide again on an
object it already changed (bind one volume to two claims). :class:`AssumedWrites`
keeps, per key, the object each write returned and answers the newer (by
resourceVersion) of that and the cached one. Every write carries the resourceVersion it
was decided on (a merge-patch precondition): a 409 re-reads the live object, remembers
it and raises :class:`Conflict`, and the caller syncs its key again.
"""

from __future__ import annotations

from typing import Any

from corral.api.errors import StatusError
from corral.client.rest import Client, Resource

Obj = dict[str, Any]


class Conflict(Exception):
    """A write lost against a newer version (409); the live object is now remembered."""


def resource_version(obj: Obj | None) -> int:
    """An object's resourceVersion as a number (0 when absent or not numeric)."""
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class AssumedWrites:
    """The objects one controller wrote, by a key of its choosing (module docstring)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._objects: dict[str, Obj] = {}

    def fresh(self, key: str, cached: Obj | None) -> Obj | None:
        """The newer of the cached object and the last one written under ``key``."""
        mine = self._objects.get(key)
        if mine is None:
            return cached
        if cached is None or resource_version(cached) >= resource_version(mine):
            self._objects.pop(key, None)  # deleted, or the informer caught up
            return cached
        return mine

    def remember(self, key: str, obj: Obj) -> Obj:
        """Keep ``obj`` under ``key`` if it is newer than what is kept; returns it."""
        if resource_version(obj) > resource_version(self._objects.get(key)):
            self._objects[key] = obj
        return obj

    def forget(self, key: str) -> None:
        """The object is gone (its informer saw the deletion)."""
        self._objects.pop(key, None)

    def clear(self) -> None:
        """Forget everything (as a restarted controller would)."""
        self._objects.clear()

    async def patch(
        self, key: str, res: Resource, name: str, body: Obj, namespace: str | None, sub: str = ""
    ) -> Obj:
        """Patch with ``body`` (which carries its resourceVersion precondition) and
        remember the result; on 409 remember the live object and raise ``Conflict``."""
        try:
            kw: Obj = {"sub": sub} if sub else {}
            out: Obj = await self.client.patch(res, name, body, namespace, **kw)
        except StatusError as e:
            if e.code != 409:
                raise
            try:
                self.remember(key, await self.client.get(res, name, namespace))
            except StatusError as e2:
                if e2.code != 404:
                    raise
            raise Conflict(key) from None
        return self.remember(key, out)


__all__ = ["AssumedWrites", "Conflict", "resource_version"]
