"""Encryption at rest: providers, prefixes, configuration validation, the store's hook."""

from __future__ import annotations

import base64
import sqlite3
import zlib
from pathlib import Path

import pytest
import yaml

from corral.apiserver.encryption import EncryptionTransformer
from corral.apiserver.encryption_config import (
    EncryptionConfig,
    EncryptionConfigError,
    Key,
    Provider,
    ResourceEntry,
    default_config,
    ensure_default,
    parse,
    read,
)
from corral.storage.sqlite import SQLiteStorage
from corral.storage.transform import TransformError

KEY = "/registry/core/secrets/default/s1"
K1 = Key("key1", bytes(range(32)))
K2 = Key("key2", bytes(range(1, 33)))


def _cfg(*providers: Provider, resources: tuple[str, ...] = ("secrets",)) -> EncryptionTransformer:
    return EncryptionTransformer(EncryptionConfig((ResourceEntry(resources, providers),)))


@pytest.mark.parametrize("kind", ["aesgcm", "aescbc"])
@pytest.mark.parametrize("size", [16, 24, 32])
def test_round_trip_and_prefix(kind: str, size: int) -> None:
    t = _cfg(Provider(kind, (Key("key1", bytes(size)),)))
    for plain in (b"", b"x", b"0123456789abcdef", b"hunter2" * 100):
        stored = t.seal(KEY, plain)
        assert stored.startswith(f"k8s:enc:{kind}:v1:key1:".encode())
        assert len(plain) < 16 or plain not in stored
        assert t.unseal(KEY, stored) == (plain, f"k8s:enc:{kind}:v1:key1:")


def test_layouts_match_upstream() -> None:
    """aesgcm: 12-byte nonce + ciphertext + 16-byte tag; aescbc: 16-byte IV + PKCS#7."""
    body = b"a" * 20
    gcm = _cfg(Provider("aesgcm", (K1,))).seal(KEY, body)
    assert len(gcm) == len(b"k8s:enc:aesgcm:v1:key1:") + 12 + 20 + 16
    cbc = _cfg(Provider("aescbc", (K1,))).seal(KEY, body)
    assert len(cbc) == len(b"k8s:enc:aescbc:v1:key1:") + 16 + 32  # 20 padded to 32
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    raw = cbc[len(b"k8s:enc:aescbc:v1:key1:") :]
    dec = Cipher(algorithms.AES(K1.secret), modes.CBC(raw[:16])).decryptor()
    out = dec.update(raw[16:]) + dec.finalize()
    assert out == body + bytes([12]) * 12


def test_gcm_authenticates_the_storage_key() -> None:
    t = _cfg(Provider("aesgcm", (K1,)))
    stored = t.seal(KEY, b"value")
    with pytest.raises(TransformError, match="cipher: message authentication failed"):
        t.unseal("/registry/core/secrets/default/other", stored)


def test_first_key_encrypts_all_keys_decrypt() -> None:
    old = _cfg(Provider("aesgcm", (K1,)))
    stored = old.seal(KEY, b"v")
    both = _cfg(Provider("aesgcm", (K2, K1)), Provider("identity"))
    assert both.write_tag(KEY) == "k8s:enc:aesgcm:v1:key2:"
    assert both.unseal(KEY, stored) == (b"v", "k8s:enc:aesgcm:v1:key1:")
    assert both.unseal(KEY, b"plain") == (b"plain", "")  # identity reads old plaintext


@pytest.mark.parametrize(
    ("reader", "message"),
    [
        (Provider("aesgcm", (Key("key1", bytes(32)),)), "cipher: message authentication failed"),
        (Provider("aesgcm", (K2,)), "no matching key was found for the provided AES transformer"),
        (Provider("identity"), "no matching prefix found"),
    ],
    ids=["wrong-secret", "unknown-key-name", "identity-only"],
)
def test_wrong_key_is_a_clear_error(reader: Provider, message: str) -> None:
    stored = _cfg(Provider("aesgcm", (K1,))).seal(KEY, b"v")
    with pytest.raises(TransformError, match=message) as err:
        _cfg(reader).unseal(KEY, stored)
    assert KEY in str(err.value)


def test_cbc_padding_errors_are_upstreams() -> None:
    t = _cfg(Provider("aescbc", (K1,)))
    prefix = b"k8s:enc:aescbc:v1:key1:"
    with pytest.raises(TransformError, match="not a multiple of the block size"):
        t.unseal(KEY, prefix + bytes(16) + bytes(5))
    with pytest.raises(TransformError, match="shorter than the required size"):
        t.unseal(KEY, prefix + bytes(3))


def test_only_configured_resources() -> None:
    t = _cfg(Provider("aesgcm", (K1,)))
    assert t.applies(KEY)
    assert not t.applies("/registry/core/configmaps/default/c")
    assert t.range_prefixes() == ["/registry/core/secrets/"]
    everything = _cfg(Provider("aesgcm", (K1,)), resources=("*.*",))
    assert everything.applies("/registry/apps/deployments/default/d")
    core = _cfg(Provider("aesgcm", (K1,)), resources=("*.",))
    assert core.applies("/registry/core/configmaps/a/b")
    assert not core.applies("/registry/apps/deployments/a/b")


def _doc(providers: list[object], resources: list[str] | None = None) -> dict[str, object]:
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{"resources": resources or ["secrets"], "providers": providers}],
    }


def _key(name: str, size: int) -> dict[str, str]:
    return {"name": name, "secret": base64.b64encode(bytes(size)).decode()}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            _doc([{"aesgcm": {"keys": [_key("key1", 8)]}}]),
            'resources[0].providers[0].aesgcm.keys[0].secret: Invalid value: "REDACTED": '
            "secret is not of the expected length, got 8, expected one of [16 24 32]",
        ),
        (
            _doc([{"aescbc": {"keys": [{"name": "key1", "secret": "not base64!"}]}}]),
            'resources[0].providers[0].aescbc.keys[0].secret: Invalid value: "REDACTED": '
            "secrets must be base64 encoded",
        ),
        (
            _doc([{"aesgcm": {"keys": []}}]),
            "resources[0].providers[0].aesgcm.keys: Required value: at least one keys is required",
        ),
        (
            _doc([{"aesgcm": {"keys": [{"secret": _key("x", 32)["secret"]}]}}]),
            "resources[0].providers[0].aesgcm.keys[0].name: Required value: "
            "name is a mandatory field for a key",
        ),
        (
            _doc([{"aesgcm": {"keys": [_key("k", 32), _key("k", 16)]}}]),
            'resources[0].providers[0].aesgcm.keys[1].name: Invalid value: "k": '
            "duplicate key name, names must be unique",
        ),
        (
            _doc([]),
            "resources[0].providers: Required value: at least one resources[0].providers is required",
        ),
        (
            _doc([{"identity": {}}], resources=["Secrets"]),
            'resources[0].resources[0]: Invalid value: "Secrets": '
            "resource name should not contain capital letters",
        ),
        (
            _doc([{"identity": {}}], resources=["secrets", "secrets"]),
            "the same resource cannot be specified multiple times",
        ),
        (
            _doc([{"identity": {}}], resources=["secrets", "*."]),
            "using overlapping resources such as 'secrets' and '*.' in the same resource list",
        ),
        (
            _doc([{"identity": {}}], resources=["*"]),
            "use '*.' to encrypt all the resources from core API group or *.* to encrypt all",
        ),
        (
            _doc([{"aesgcmm": {}}]),
            "provider does not contain any of the expected providers: KMS, AESGCM, AESCBC, "
            "Secretbox, Identity",
        ),
        (
            _doc([{"aesgcm": {"keys": [_key("a", 32)]}, "identity": {}}]),
            "more than one provider specified in a single element",
        ),
        (
            {"apiVersion": "v1", "kind": "EncryptionConfiguration", "resources": []},
            'no kind "EncryptionConfiguration" is registered for version "v1"',
        ),
    ],
    ids=[
        "key-length",
        "base64",
        "no-keys",
        "key-name",
        "duplicate-key-name",
        "no-providers",
        "capital",
        "duplicate-resource",
        "overlap",
        "star",
        "typo",
        "two-in-one",
        "kind",
    ],
)
def test_validation_messages(doc: dict[str, object], message: str) -> None:
    with pytest.raises(EncryptionConfigError) as err:
        parse(doc)
    assert message in str(err.value)
    assert "AAAA" not in str(err.value)  # no key material in a message


def test_several_errors_are_aggregated() -> None:
    doc = _doc([{"aesgcm": {"keys": [_key("a", 8), _key("b", 9)]}}])
    with pytest.raises(EncryptionConfigError) as err:
        parse(doc)
    assert (
        str(err.value).startswith("[") and "got 8" in str(err.value) and "got 9" in str(err.value)
    )


def test_read_wraps_errors_as_kube_apiserver(tmp_path: Path) -> None:
    missing = tmp_path / "none.yaml"
    with pytest.raises(EncryptionConfigError) as err:
        read(missing)
    assert str(err.value) == (
        f'error while parsing file: error opening encryption provider configuration file "{missing}": '
        f"open {missing}: no such file or directory"
    )
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(EncryptionConfigError, match="is empty"):
        read(empty)


def test_a_yaml_error_does_not_quote_key_material(tmp_path: Path) -> None:
    secret = base64.b64encode(bytes(range(32))).decode()
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
        "resources:\n- resources: [secrets]\n  providers:\n  - aesgcm:\n      keys:\n"
        f'      - name: key1\n        secret: "{secret}\n'
    )
    with pytest.raises(EncryptionConfigError) as err:
        read(bad)
    assert secret[:12] not in str(err.value)
    assert str(err.value) == (
        f'error while parsing file: error decoding encryption provider configuration file "{bad}": '
        "error converting YAML to JSON: yaml: line 10: found unexpected end of stream"
    )


def test_default_file(tmp_path: Path) -> None:
    path = tmp_path / "pki" / "encryption.yaml"
    assert ensure_default(path)
    assert path.stat().st_mode & 0o777 == 0o600
    doc = yaml.safe_load(path.read_text())
    providers = doc["resources"][0]["providers"]
    assert doc["resources"][0]["resources"] == ["secrets"]
    assert list(providers[0]) == ["aesgcm"] and providers[1] == {"identity": {}}
    assert providers[0]["aesgcm"]["keys"][0]["name"] == "key1"
    assert len(base64.b64decode(providers[0]["aesgcm"]["keys"][0]["secret"])) == 32
    before = path.read_bytes()
    assert not ensure_default(path)  # never overwritten
    assert path.read_bytes() == before
    assert (
        read(path)[0].entries[0].providers[0].keys[0].secret
        != default_config().entries[0].providers[0].keys[0].secret
    )


async def test_store_encrypts_rows_and_tracks_stale_values(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = SQLiteStorage(db)
    store.transformer = _cfg(Provider("aesgcm", (K1,)), Provider("identity"))
    await store.start()
    try:
        secret = {"metadata": {"name": "s1"}, "data": {"v": "c3VwZXJzZWNyZXQ="}}
        kv = await store.create(KEY, secret)
        await store.create("/registry/core/configmaps/default/c", {"data": {"v": "visible"}})
        assert b"c3VwZXJzZWNyZXQ=" in kv.raw  # what the cache and watchers see: plaintext
        assert not store.is_stale(KEY)
        # a reload: key2 first; the value under key1 is now stale, its history too
        store.transformer = _cfg(Provider("aesgcm", (K2, K1)), Provider("identity"))
        assert store.is_stale(KEY)
        assert await store.reseal_history() == 1
        got = await store.get(KEY)
        assert got is not None and got.obj["data"] == secret["data"]
        await store.delete(KEY, got.mod_revision)
        history = await store.history("/registry/", 0)
        assert history[0].kv.obj.get("data") == secret["data"]
    finally:
        await store.close()
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT key, value FROM log ORDER BY rev").fetchall()
    conn.close()
    tags = {k: bytes(v[:23]) for k, v in rows if k == KEY}
    assert tags == {KEY: b"k8s:enc:aesgcm:v1:key2:"}  # create resealed, delete written with key2
    for key, value in rows:
        if key == KEY:
            assert b"c3VwZXJzZWNyZXQ=" not in value
        else:
            assert b"visible" in zlib.decompress(value)  # not configured: not encrypted
