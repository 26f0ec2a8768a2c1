"""Encryption at rest: upstream's ``--encryption-provider-config`` on the SQLite store.

``EncryptionTransformer`` is the store's ``ValueTransformer`` (``storage/transform.py``)
built from an ``EncryptionConfiguration`` (``encryption_config.py``). Stored values of
the configured resources look as upstream's in etcd:

    k8s:enc:aesgcm:v1:<keyname>:<12-byte random nonce><ciphertext + 16-byte GCM tag>
    k8s:enc:aescbc:v1:<keyname>:<16-byte random IV><AES-CBC ciphertext, PKCS#7 padded>

(aesgcm authenticates the value's storage key, so a value copied to another key does
not decrypt); ``identity`` stores the value as is. The first provider's first key
encrypts; every provider and key decrypts, tried in order by prefix, and ``identity``
refuses data that carries the reserved ``k8s:enc:`` prefix. What is encrypted is the
store's zlib-compressed value (compression after encryption gains nothing).

The default (``encryption_config.default_config``) is aesgcm: it authenticates, so a
wrong key or a tampered row fails with a clear error instead of decoding garbage, and
it has no padding oracle. Its limit is the random 96-bit nonce: NIST allows 2^32
encryptions per key, upstream advises rotating every 200,000 writes; Secrets are written
rarely and ``corral secrets rotate`` makes rotating one command.

``EncryptionReloader`` is ``--encryption-provider-config-automatic-reload``, always on:
it reads the file once a second, and when its digest changes validates it, swaps the
transformer (a bad file is logged and the old one kept, as upstream), re-encrypts the
history rows (``SQLiteStorage.reseal_history``), and then records what it loaded in
``DATA/pki/encryption.loaded`` (path, sha256, datastore): ``corral secrets rotate``
waits for that before its next step.

``cryptography`` is imported the first time a value is sealed or unsealed, not at start.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.apiserver.encryption_config import (
    EncryptionConfig,
    EncryptionConfigError,
    Key,
    Provider,
    parse_group_resource,
    read,
)
from corral.storage.transform import TransformError

if TYPE_CHECKING:
    from corral.storage.datastore import AnyStorage

log = logging.getLogger("corral.encryption")

ENC_PREFIX = b"k8s:enc:"
PREFIXES = {"aesgcm": "k8s:enc:aesgcm:v1:", "aescbc": "k8s:enc:aescbc:v1:"}
STATUS_FILE = "encryption.loaded"
_NONCE = 12
_BLOCK = 16


def key_tag(kind: str, name: str) -> str:
    """The stored prefix of values written with key ``name`` of provider ``kind``."""
    return f"{PREFIXES[kind]}{name}:"


class _Cipher:
    """One key of an aes provider; the cipher object is made on first use."""

    def __init__(self, kind: str, key: Key) -> None:
        self.kind = kind
        self.name = key.name
        self._secret = key.secret
        self._aead: Any = None
        self._lock = threading.Lock()

    def _gcm(self) -> Any:
        if self._aead is None:
            with self._lock:
                if self._aead is None:
                    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

                    self._aead = AESGCM(self._secret)
        return self._aead

    def encrypt(self, data: bytes, aad: bytes) -> bytes:
        if self.kind == "aesgcm":
            nonce = os.urandom(_NONCE)
            return nonce + bytes(self._gcm().encrypt(nonce, data, aad))
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        iv = os.urandom(_BLOCK)
        pad = _BLOCK - len(data) % _BLOCK
        enc = Cipher(algorithms.AES(self._secret), modes.CBC(iv)).encryptor()
        return iv + enc.update(data + bytes([pad]) * pad) + enc.finalize()

    def decrypt(self, data: bytes, aad: bytes) -> bytes:
        """Upstream's error texts (``encrypt/aes/aes.go``, Go's crypto/cipher)."""
        if self.kind == "aesgcm":
            if len(data) < _NONCE:
                raise TransformError("the stored data was shorter than the required size")
            from cryptography.exceptions import InvalidTag

            try:
                return bytes(self._gcm().decrypt(data[:_NONCE], data[_NONCE:], aad))
            except InvalidTag:
                raise TransformError("cipher: message authentication failed") from None
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        if len(data) < _BLOCK:
            raise TransformError("the stored data was shorter than the required size")
        iv, body = data[:_BLOCK], data[_BLOCK:]
        if len(body) % _BLOCK:
            raise TransformError("the stored data is not a multiple of the block size")
        dec = Cipher(algorithms.AES(self._secret), modes.CBC(iv)).decryptor()
        out = dec.update(body) + dec.finalize()
        pad = out[-1] if out else 0
        if pad == 0 or pad > len(out):
            raise TransformError("invalid PKCS7 data (empty or not padded)")
        if out[-pad:] != bytes([pad]) * pad:
            raise TransformError("invalid padding on input")
        return out[:-pad]


class _Chain:
    """The providers of one resource, in order (upstream's prefix transformers)."""

    def __init__(self, providers: tuple[Provider, ...]) -> None:
        self.providers = [(p.kind, [_Cipher(p.kind, k) for k in p.keys]) for p in providers]
        kind, ciphers = self.providers[0]
        self.write_tag = "" if kind == "identity" else key_tag(kind, ciphers[0].name)
        self._writer = None if kind == "identity" else ciphers[0]

    def seal(self, key: str, data: bytes) -> bytes:
        if self._writer is None:
            return data
        return self.write_tag.encode() + self._writer.encrypt(data, key.encode())

    def unseal(self, key: str, data: bytes) -> tuple[bytes, str]:
        errs: list[str] = []
        for kind, ciphers in self.providers:
            if kind == "identity":
                if data.startswith(ENC_PREFIX):
                    continue  # "identity transformer tried to read encrypted data": next one
                return data, ""
            prefix = PREFIXES[kind].encode()
            if not data.startswith(prefix):
                continue
            rest = data[len(prefix) :]
            matched = False
            for c in ciphers:
                name = c.name.encode() + b":"
                if rest.startswith(name):
                    matched = True
                    try:
                        return c.decrypt(rest[len(name) :], key.encode()), key_tag(kind, c.name)
                    except TransformError as e:
                        errs.append(str(e))
            if not matched:
                errs.append("no matching key was found for the provided AES transformer")
        if errs:
            unique = list(dict.fromkeys(errs))
            text = unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"
            raise TransformError(f"{key}: {text}")
        raise TransformError(f"{key}: no matching prefix found")


class EncryptionTransformer:
    """The ``ValueTransformer`` of one configuration (see the module docstring)."""

    def __init__(self, config: EncryptionConfig) -> None:
        self.config = config
        self._chains: dict[tuple[str, str], _Chain] = {}
        for entry in config.entries:
            chain = _Chain(entry.providers)
            for res in entry.resources:
                self._chains.setdefault(parse_group_resource(res), chain)
        self._lookup: dict[tuple[str, str], _Chain | None] = {}

    def _chain(self, key: str) -> _Chain | None:
        parts = key.split("/", 4)  # "", "registry", group|core, plural, rest
        if len(parts) < 4:
            return None
        gr = ("" if parts[2] == "core" else parts[2], parts[3])
        if gr in self._lookup:
            return self._lookup[gr]
        chain = (
            self._chains.get(gr) or self._chains.get((gr[0], "*")) or self._chains.get(("*", "*"))
        )
        self._lookup[gr] = chain
        return chain

    def applies(self, key: str) -> bool:
        return self._chain(key) is not None

    def seal(self, key: str, data: bytes) -> bytes:
        chain = self._chain(key)
        return data if chain is None else chain.seal(key, data)

    def unseal(self, key: str, data: bytes) -> tuple[bytes, str]:
        chain = self._chain(key)
        if chain is None:
            return data, ""
        return chain.unseal(key, data)

    def write_tag(self, key: str) -> str:
        chain = self._chain(key)
        return "" if chain is None else chain.write_tag

    def range_prefixes(self) -> list[str]:
        out: list[str] = []
        for group, resource in self._chains:
            if group == "*":
                return ["/registry/"]
            base = f"/registry/{group or 'core'}/"
            out.append(base if resource == "*" else f"{base}{resource}/")
        return sorted(set(out))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_status(data_dir: Path) -> dict[str, Any] | None:
    """What the running server last loaded (``EncryptionReloader``), or None."""
    try:
        out: dict[str, Any] = json.loads((data_dir / "pki" / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return out


class EncryptionReloader:
    """Loads the configuration into the store at start and again whenever the file
    changes (see the module docstring). ``start`` raises on a bad file (the server does
    not start); later a bad file is logged and the loaded configuration stays."""

    def __init__(
        self, path: Path, storage: AnyStorage, data_dir: Path, interval: float = 1.0
    ) -> None:
        self.path = path
        self.storage = storage
        self.data_dir = data_dir
        self.interval = interval
        self.loaded = ""  # sha256 of the loaded file
        self._seen = ""  # sha256 of the file as last read, loaded or not

    def _digest_now(self) -> str:
        try:
            return digest(self.path.read_bytes())
        except OSError:
            return self._seen  # gone for a moment (an editor's rename): no change

    def start(self) -> None:
        """Load the file and set the store's transformer (before the store opens)."""
        config, data = read(self.path)
        self.storage.transformer = EncryptionTransformer(config)
        self.loaded = self._seen = digest(data)

    async def run(self) -> None:
        """Re-encrypt history under the current key, record the status, then poll."""
        await self._settle_logged()
        while True:
            await asyncio.sleep(self.interval)
            now = self._digest_now()  # a small file: read inline
            if now == self._seen:
                continue
            self._seen = now
            try:
                config, data = read(self.path)
            except EncryptionConfigError as e:
                log.error("encryption configuration not reloaded: %s", e)
                continue
            if digest(data) == self.loaded:
                continue
            self.storage.transformer = EncryptionTransformer(config)
            self.loaded = digest(data)
            log.info("encryption configuration reloaded from %s", self.path)
            await self._settle_logged()

    async def _settle_logged(self) -> bool:
        try:
            await self._settle()
        except (TransformError, OSError) as e:  # a value no key reads: say so, go on
            log.error("history not re-encrypted under the current key: %s", e)
            return False
        return True

    async def _settle(self) -> None:
        resealed = await self.storage.reseal_history()
        if resealed:
            log.info("re-encrypted %d history values under the current key", resealed)
        status = {
            "config": str(self.path),
            "sha256": self.loaded,
            "datastore": self.storage.path,
            "pid": os.getpid(),
            "history_resealed": resealed,
        }
        out = self.data_dir / "pki" / STATUS_FILE
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(status))
        os.replace(tmp, out)
