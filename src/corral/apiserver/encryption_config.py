"""``EncryptionConfiguration`` (apiserver.config.k8s.io/v1): read, validate, write.

The file ``--encryption-provider-config`` names (default ``DATA/pki/encryption.yaml``,
made on first start by ``ensure_default``): a list of entries, each a list of resources
(``secrets``, ``deployments.apps``, ``*.`` for the core group, ``*.*``) and an ordered
list of providers; the first provider encrypts, all of them decrypt. Validation follows
upstream's ``validation_encryption.go`` with its messages (field paths, "REDACTED" in
place of key material), and ``load`` wraps them as kube-apiserver does ("error while
parsing file: ..."). Corral implements the ``aesgcm``, ``aescbc`` and ``identity``
providers; ``secretbox`` and ``kms`` are refused.

Pure: no ``cryptography`` import (``apiserver/encryption.py`` makes the ciphers).
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from corral.util.pki import write_atomic

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"
AES_KEY_SIZES = (16, 24, 32)
#: providers Corral implements; upstream's others are refused by name
SUPPORTED = ("aesgcm", "aescbc", "identity")
PROVIDER_NAMES = ("kms", "aesgcm", "aescbc", "secretbox", "identity")

_STAR_RESOURCE = (
    "use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources"
)
_OVERLAP = (
    "using overlapping resources such as 'secrets' and '*.' in the same resource list is "
    "not allowed as they will be masked"
)
_NOT_REST = "resources which do not have REST API/s cannot be encrypted"
_CAPITAL = "resource name should not contain capital letters"
_ACROSS_GROUPS = "encrypting the same resource across groups is not supported"
_DUPLICATE = "the same resource cannot be specified multiple times"
_EVENTS_GROUP = (
    "'*.events.k8s.io' objects are stored using the 'events' API group in etcd. Use "
    "'events' instead in the config file"
)
_EXTENSIONS = "'extensions' group has been removed and cannot be used for encryption"
_NO_PROVIDER = (
    "provider does not contain any of the expected providers: KMS, AESGCM, AESCBC, "
    "Secretbox, Identity"
)
_MORE_THAN_ONE = (
    "more than one provider specified in a single element, should split into different "
    "list elements"
)


class EncryptionConfigError(ValueError):
    """The file is missing, unreadable or invalid; the message is upstream's."""


@dataclass(frozen=True, slots=True)
class Key:
    name: str
    secret: bytes = field(repr=False)  # never printed


@dataclass(frozen=True, slots=True)
class Provider:
    kind: str  # "aesgcm" | "aescbc" | "identity"
    keys: tuple[Key, ...] = ()


@dataclass(frozen=True, slots=True)
class ResourceEntry:
    resources: tuple[str, ...]
    providers: tuple[Provider, ...]


@dataclass(frozen=True, slots=True)
class EncryptionConfig:
    entries: tuple[ResourceEntry, ...]


def parse_group_resource(text: str) -> tuple[str, str]:
    """``secrets`` -> ("", "secrets"); ``deployments.apps`` -> ("apps", "deployments")."""
    resource, _, group = text.partition(".")
    return group, resource


def _go_value(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[]string{" + ", ".join(f'"{v}"' for v in value) + "}"
    return str(value)


def _fields(provider: dict[str, Any]) -> str:
    """A provider element shown by its field names only: it may hold key material."""
    return "{" + ", ".join(map(str, provider)) + "}"


def _required(path: str, detail: str) -> str:
    return f"{path}: Required value: {detail}"


def _invalid(path: str, value: Any, detail: str) -> str:
    return f"{path}: Invalid value: {_go_value(value)}: {detail}"


def _aggregate(errs: list[str]) -> str:
    """``utilerrors.NewAggregate(...).Error()``: one message, or ``[a, b]``."""
    unique = list(dict.fromkeys(errs))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def _validate_resources(resources: list[str], path: str) -> list[str]:
    errs: list[str] = []
    parsed = [parse_group_resource(r) for r in resources]
    duplicate = overlap = False
    for i, a in enumerate(parsed):
        for j, b in enumerate(parsed):
            if i == j:
                continue
            if a == b and not duplicate:
                duplicate = True
                continue
            if overlap:
                continue
            if a == ("*", "*") or (a[0] == b[0] and "*" in (a[1], b[1])):
                overlap = True
    if duplicate:
        errs.append(_invalid(path, resources, _DUPLICATE))
    if overlap:
        errs.append(_invalid(path, resources, _OVERLAP))
    for j, res in enumerate(resources):
        jj = f"{path}[{j}]"
        group, resource = parse_group_resource(res)
        if res.lower() != res:
            errs.append(_invalid(jj, res, _CAPITAL))
        elif res == "*":
            errs.append(_invalid(jj, res, _STAR_RESOURCE))
        elif res in ("apiserveripinfo", "serviceipallocations", "servicenodeportallocations"):
            errs.append(_invalid(jj, res, _NOT_REST))
        elif group == "events.k8s.io":
            errs.append(_invalid(jj, res, _EVENTS_GROUP))
        elif group == "extensions":
            errs.append(_invalid(jj, res, _EXTENSIONS))
        elif group == "*" and resource != "*":
            errs.append(_invalid(jj, res, _ACROSS_GROUPS))
    return errs


def _validate_keys(raw: Any, path: str) -> tuple[list[str], tuple[Key, ...]]:
    if not isinstance(raw, list) or not raw:
        return [_required(path, "at least one keys is required")], ()
    errs: list[str] = []
    keys: list[Key] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        kp = f"{path}[{i}]"
        item = item if isinstance(item, dict) else {}
        name, secret = str(item.get("name") or ""), str(item.get("secret") or "")
        if not name:
            errs.append(_required(f"{kp}.name", "name is a mandatory field for a key"))
        elif name in seen:  # Corral's: the key name is the stored prefix, it must be unique
            errs.append(_invalid(f"{kp}.name", name, "duplicate key name, names must be unique"))
        seen.add(name)
        if not secret:
            errs.append(_required(f"{kp}.secret", "secret is a mandatory field for a key"))
            continue
        try:
            material = base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            errs.append(_invalid(f"{kp}.secret", "REDACTED", "secrets must be base64 encoded"))
            continue
        if len(material) not in AES_KEY_SIZES:
            sizes = "[" + " ".join(map(str, AES_KEY_SIZES)) + "]"
            errs.append(
                _invalid(
                    f"{kp}.secret",
                    "REDACTED",
                    f"secret is not of the expected length, got {len(material)}, "
                    f"expected one of {sizes}",
                )
            )
            continue
        keys.append(Key(name, material))
    return errs, tuple(keys)


def parse(doc: Any) -> EncryptionConfig:
    """Validate a decoded document; raises ``EncryptionConfigError`` with every error."""
    if not isinstance(doc, dict):
        raise EncryptionConfigError("couldn't get version/kind; json parse error")
    gv, kind = doc.get("apiVersion"), doc.get("kind")
    if kind != KIND or gv != API_VERSION:
        raise EncryptionConfigError(
            f'no kind "{kind}" is registered for version "{gv}" in scheme '
            '"k8s.io/apiserver/pkg/server/options/encryptionconfig/config.go"'
        )
    root = "resources"
    items = doc.get("resources")
    if not isinstance(items, list) or not items:
        raise EncryptionConfigError(_required(root, "at least one resources is required"))
    errs: list[str] = []
    entries: list[ResourceEntry] = []
    for i, conf in enumerate(items):
        conf = conf if isinstance(conf, dict) else {}
        r, p = f"{root}[{i}].resources", f"{root}[{i}].providers"
        resources = [str(x) for x in conf.get("resources") or []]
        if not resources:
            errs.append(_required(r, f"at least one {r} is required"))
        errs += _validate_resources(resources, r)
        raw_providers = conf.get("providers") or []
        if not isinstance(raw_providers, list) or not raw_providers:
            errs.append(_required(p, f"at least one {p} is required"))
            raw_providers = []
        providers: list[Provider] = []
        for j, prov in enumerate(raw_providers):
            path = f"{p}[{j}]"
            prov = prov if isinstance(prov, dict) else {}
            found = [k for k in PROVIDER_NAMES if prov.get(k) is not None]
            if not found:
                errs.append(_invalid(path, _fields(prov), _NO_PROVIDER))
                continue
            if len(found) > 1:
                errs.append(_invalid(path, _fields(prov), _MORE_THAN_ONE))
                continue
            kind_ = found[0]
            if kind_ not in SUPPORTED:
                errs.append(
                    _invalid(
                        f"{path}.{kind_}",
                        kind_,
                        "not supported by corral (aesgcm, aescbc and identity are)",
                    )
                )
                continue
            if kind_ == "identity":
                providers.append(Provider("identity"))
                continue
            body = prov[kind_] if isinstance(prov[kind_], dict) else {}
            key_errs, keys = _validate_keys(body.get("keys"), f"{path}.{kind_}.keys")
            errs += key_errs
            providers.append(Provider(kind_, keys))
        entries.append(ResourceEntry(tuple(resources), tuple(providers)))
    if errs:
        raise EncryptionConfigError(_aggregate(errs))
    return EncryptionConfig(tuple(entries))


def _yaml_error(e: yaml.YAMLError) -> str:
    """Go's ``yaml: line N: PROBLEM``: PyYAML's own text quotes the offending line, and
    that line may be a key's ``secret``."""
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        line = f"line {mark.line + 1}: " if mark is not None else ""
        return f"error converting YAML to JSON: yaml: {line}{e.problem or e.context or 'invalid'}"
    return "error converting YAML to JSON: yaml: invalid document"


def read(path: Path) -> tuple[EncryptionConfig, bytes]:
    """The validated configuration and the file's bytes (for its digest); errors are
    kube-apiserver's: ``error while parsing file: ...``."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise EncryptionConfigError(
            f"error while parsing file: error opening encryption provider configuration "
            f'file "{path}": open {path}: {(e.strerror or str(e)).lower()}'
        ) from None
    if not data.strip():
        raise EncryptionConfigError(
            f'error while parsing file: encryption provider configuration file "{path}" is empty'
        )
    try:
        return parse(yaml.safe_load(data)), data
    except yaml.YAMLError as e:
        raise EncryptionConfigError(
            f'error while parsing file: error decoding encryption provider configuration file "{path}": '
            f"{_yaml_error(e)}"
        ) from None
    except EncryptionConfigError as e:
        raise EncryptionConfigError(f"error while parsing file: {e}") from None


def to_document(config: EncryptionConfig) -> dict[str, Any]:
    """The YAML document of ``config`` (what ``write`` stores)."""

    def provider(p: Provider) -> dict[str, Any]:
        if p.kind == "identity":
            return {"identity": {}}
        keys = [{"name": k.name, "secret": base64.b64encode(k.secret).decode()} for k in p.keys]
        return {p.kind: {"keys": keys}}

    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "resources": [
            {"resources": list(e.resources), "providers": [provider(p) for p in e.providers]}
            for e in config.entries
        ],
    }


def write(path: Path, config: EncryptionConfig) -> bytes:
    """Replace ``path`` atomically (temporary file, fsync, rename), mode 0600; returns
    the bytes written. A crash leaves the old file or the new one, never a mix."""
    data = yaml.safe_dump(to_document(config), sort_keys=False).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, 0o600, sync_dir=True)
    return data


def default_config() -> EncryptionConfig:
    """Secrets under aesgcm with a fresh 32-byte ``key1``, then ``identity`` (so values
    written before encryption was on still read)."""
    key = Key("key1", os.urandom(32))
    return EncryptionConfig(
        (ResourceEntry(("secrets",), (Provider("aesgcm", (key,)), Provider("identity"))),)
    )


def ensure_default(path: Path) -> bool:
    """Write the default configuration at ``path`` unless a file is there; True if made."""
    if path.exists():
        return False
    write(path, default_config())
    return True
