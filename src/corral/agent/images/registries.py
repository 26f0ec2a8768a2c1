"""One file of registry mirrors for a whole cluster: ``registries.toml`` or ``registries.yaml``.

``corral up`` passes the file in its data directory to every agent it starts
(``corral agent --registry-config FILE``); ``RegistryHosts`` (``hosts.py``) merges what
``load_registries`` returns after the flags and before the agent's own ``certs.d``.

Two shapes, chosen by the file's suffix:

- ``registries.toml``: containerd's ``hosts.toml``, one table per registry host (``_default``
  for all others), each holding exactly what ``certs.d/<registry>/hosts.toml`` would::

      ["docker.io"]
      server = "https://registry-1.docker.io"
      ["docker.io".host."http://10.0.0.5:5000"]
        capabilities = ["pull", "resolve"]
        skip_verify = true

- ``registries.yaml``: k3s' shape. ``mirrors.<registry>.endpoint`` lists the mirrors in
  order (``"*"`` is every registry, containerd's ``_default``); ``configs.<host>.tls.
  insecure_skip_verify: true`` contacts that host without verifying its certificate::

      mirrors:
        docker.io:
          endpoint: ["http://10.0.0.5:5000"]
      configs:
        "10.0.0.5:5000":
          tls: {insecure_skip_verify: true}

What Corral cannot honour is refused with the file's name and the key rather than
ignored: k3s' ``rewrite``, ``auth`` (use ``skopeo login``) and certificate files.
Pure: reads one file, returns data, raises ``ValueError`` with a one-line message.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: containerd's directory name for "every other registry", k3s' ``"*"``
DEFAULT_HOST_DIR = "_default"
SUFFIXES = (".toml", ".yaml", ".yml")
#: the names ``corral up`` looks for in its data directory, in this order
CLUSTER_FILES = ("registries.toml", "registries.yaml", "registries.yml")


@dataclass
class RegistriesConfig:
    """What one file says: ``hosts`` maps a registry to its ``hosts.toml`` document
    (``server``, ``host.<url>`` tables), ``insecure`` the hosts to contact without TLS
    verification."""

    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    insecure: set[str] = field(default_factory=set)


def cluster_file(data_dir: Path) -> Path | None:
    """The registries file of a ``corral up`` data directory, if there is one;
    ``ValueError`` when there are several (which one applies would be a guess)."""
    found = [data_dir / name for name in CLUSTER_FILES if (data_dir / name).is_file()]
    if len(found) > 1:
        names = " and ".join(p.name for p in found)
        raise ValueError(f"{data_dir} has {names}: keep one")
    return found[0] if found else None


def load_registries(path: Path) -> RegistriesConfig:
    """Parse ``path`` (``.toml``: containerd's hosts.toml per registry; ``.yaml``/``.yml``:
    k3s' registries.yaml); ``ValueError`` on an unreadable or malformed file."""
    if path.suffix not in SUFFIXES:
        raise ValueError(f"{path}: want a .toml (containerd hosts.toml) or .yaml (k3s) file")
    try:
        text = path.read_text()
    except OSError as e:
        raise ValueError(f"{path}: {e.strerror or e}") from None
    if path.suffix == ".toml":
        return parse_toml(text, str(path))
    return parse_yaml(text, str(path))


def parse_toml(text: str, where: str = "registries.toml") -> RegistriesConfig:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{where}: {e}") from None
    out = RegistriesConfig()
    for registry, body in doc.items():
        if not isinstance(body, dict):
            raise ValueError(
                f'{where}: "{registry}" must be a table of hosts.toml keys, '
                f'e.g. ["docker.io".host."http://mirror:5000"]'
            )
        out.hosts[registry] = body
    return out


def parse_yaml(text: str, where: str = "registries.yaml") -> RegistriesConfig:
    try:
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        line = f"line {e.problem_mark.line + 1}: " if e.problem_mark else ""
        raise ValueError(f"{where}: {line}{e.problem or e.context or 'not YAML'}") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{where}: {' '.join(str(e).split())}") from None
    if doc is None:
        return RegistriesConfig()
    if not isinstance(doc, dict):
        raise ValueError(f"{where}: want a mapping with mirrors: and configs:")
    unknown = sorted(set(doc) - {"mirrors", "configs"})
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (want mirrors, configs)")
    out = RegistriesConfig()
    for registry, body in _mapping(doc.get("mirrors"), f"{where}: mirrors").items():
        at = f"{where}: mirrors.{registry}"
        body = _mapping(body, at)
        if body.get("rewrite"):
            raise ValueError(f"{at}.rewrite is not supported")
        endpoints = body.get("endpoint") or []
        if not isinstance(endpoints, list) or not all(isinstance(u, str) for u in endpoints):
            raise ValueError(f"{at}.endpoint must be a list of URLs")
        name = DEFAULT_HOST_DIR if registry == "*" else str(registry)
        hosts = out.hosts.setdefault(name, {}).setdefault("host", {})
        for url in endpoints:
            hosts[url] = {"capabilities": ["pull", "resolve"]}
    for host, body in _mapping(doc.get("configs"), f"{where}: configs").items():
        at = f"{where}: configs.{host}"
        body = _mapping(body, at)
        if body.get("auth"):
            raise ValueError(f"{at}.auth is not supported (use skopeo login)")
        tls = _mapping(body.get("tls"), f"{at}.tls")
        files = sorted(k for k in ("ca_file", "cert_file", "key_file") if tls.get(k))
        if files:
            raise ValueError(f"{at}.tls.{files[0]} is not supported")
        if tls.get("insecure_skip_verify"):
            out.insecure.add(str(host).split("://", 1)[-1].rstrip("/"))
    return out


def _mapping(value: Any, where: str) -> dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a mapping")
    return value
