"""Value transformers: what the store does to a value's bytes on their way to disk.

The SQLite backend calls a ``ValueTransformer`` (when one is set) on every value it
writes (``seal``) and reads (``unseal``), in its writer/reader thread, after zlib
compression and before decompression. The API server's encryption at rest
(``apiserver/encryption.py``, upstream's ``--encryption-provider-config``) is one;
the storage layer knows only this protocol, so it never imports the API server.

Everything above the store (the watch cache, listeners, watch events, HTTP answers)
sees plaintext: only the bytes in the database file are transformed.

A value written under a transformation that is no longer the one new writes get
(an older key, or plaintext read through ``identity``) is *stale*: upstream's etcd3
store rewrites a stale object even when an update changes nothing, which is how
``kubectl replace`` of an unchanged Secret moves it to the new key. ``tag`` names the
transformation a value was written with, so the store can tell.
"""

from __future__ import annotations

from typing import Protocol


class TransformError(Exception):
    """A stored value cannot be read back (wrong or missing key, tampered bytes)."""


class ValueTransformer(Protocol):
    def applies(self, key: str) -> bool:
        """Whether values under ``key`` are transformed at all (cheap: called per row)."""
        ...

    def seal(self, key: str, data: bytes) -> bytes:
        """The bytes to store for ``data`` at ``key`` (the write transformation)."""
        ...

    def unseal(self, key: str, data: bytes) -> tuple[bytes, str]:
        """The original bytes and the tag of the transformation that wrote them;
        raises ``TransformError`` when no configured transformation reads them."""
        ...

    def write_tag(self, key: str) -> str:
        """The tag ``seal`` gives values at ``key`` now ("" for identity)."""
        ...

    def range_prefixes(self) -> list[str]:
        """Key prefixes covering every key this transformer applies to."""
        ...
