"""Where to fetch an image from: registry mirrors per registry host, as containerd does.

Configuration has two forms, merged (flags first):

- a containerd ``certs.d`` directory (``config_path`` in containerd's CRI config): one
  ``certs.d/<registry host>/hosts.toml`` per registry (``_default`` for all others)::

      server = "https://registry-1.docker.io"        # the upstream (optional)

      [host."http://127.0.0.1:5000"]
        capabilities = ["pull", "resolve"]
        skip_verify = true

- flags: ``--registry-mirror docker.io=http://127.0.0.1:5000`` (repeatable; the agent
  and ``corral image`` pass them as ``mirrors={"docker.io": ["http://127.0.0.1:5000"]}``)
  and ``--insecure-registry HOST``.

- one file for all registries (``--registry-config FILE``, which ``corral up`` passes for
  the ``registries.toml`` or ``registries.yaml`` in its data directory): see
  ``registries.py``. Order: flags, that file, then ``certs.d``.

``RegistryHosts.endpoints(registry, by_digest)`` returns the hosts to try, in order:
the mirrors that may serve the request (``resolve`` to turn a tag into a digest, ``pull``
to fetch by digest), then the upstream server. The image store (``images.store``)
rewrites the reference to each endpoint's host and keeps the repository path, as
containerd does. Plain-HTTP hosts, ``skip_verify`` hosts, ``--insecure-registry`` hosts
and loopback hosts (Docker's default ``127.0.0.0/8`` insecure range) are contacted
without TLS verification. Mirror URLs with a path prefix (containerd's
``override_path``) are refused at load time: skopeo cannot address them.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from corral.agent.images.reference import DEFAULT_DOMAIN
from corral.agent.images.registries import DEFAULT_HOST_DIR, load_registries

PULL = "pull"
RESOLVE = "resolve"
PUSH = "push"
DEFAULT_CAPABILITIES = frozenset({PULL, RESOLVE, PUSH})
__all__ = ["DEFAULT_HOST_DIR", "Endpoint", "RegistryHosts"]


@dataclass(frozen=True)
class Endpoint:
    """One registry host to ask: ``host`` as skopeo names it (``127.0.0.1:5000``)."""

    host: str
    insecure: bool  # plain HTTP allowed / certificate not verified
    mirror: bool  # False for the upstream server


@dataclass(frozen=True)
class _Mirror:
    url: str
    capabilities: frozenset[str]
    skip_verify: bool


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _split_url(url: str) -> tuple[str, str]:
    """``http://127.0.0.1:5000`` -> ("http", "127.0.0.1:5000"); a bare host means https."""
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"registry host {url!r}: want http(s)://HOST[:PORT]")
    if parts.path.rstrip("/") not in ("", "/v2"):
        raise ValueError(
            f"registry host {url!r}: a path prefix (containerd's override_path) is not supported"
        )
    return parts.scheme, parts.netloc


class RegistryHosts:
    """Mirrors and upstream servers per registry host; immutable once built."""

    def __init__(
        self,
        mirrors: Mapping[str, Sequence[str]] | None = None,
        insecure: Iterable[str] = (),
        config_dir: Path | None = None,
        config_file: Path | None = None,
    ) -> None:
        insecure_hosts = set(insecure)
        self._mirrors: dict[str, list[_Mirror]] = {}
        self._servers: dict[str, _Mirror] = {}
        for registry, urls in (mirrors or {}).items():
            for url in urls:
                _split_url(url)
                self._mirrors.setdefault(registry, []).append(
                    _Mirror(url, DEFAULT_CAPABILITIES, skip_verify=False)
                )
        if config_file is not None:
            cluster = load_registries(config_file)
            insecure_hosts |= cluster.insecure
            for registry, doc in cluster.hosts.items():
                self._apply(registry, doc, f"{config_file}: {registry}")
        self._insecure = frozenset(insecure_hosts)
        if config_dir is not None and config_dir.is_dir():
            for d in sorted(config_dir.iterdir()):
                if (d / "hosts.toml").is_file():
                    self._load(d.name, d / "hosts.toml")

    def _load(self, registry: str, path: Path) -> None:
        try:
            doc = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ValueError(f"{path}: {e}") from None
        self._apply(registry, doc, str(path))

    def _apply(self, registry: str, doc: dict[str, object], path: str) -> None:
        """Add one ``hosts.toml`` document's server and mirrors for ``registry``; a
        server set before (flags, then the cluster file, then certs.d) is kept."""
        server = doc.get("server")
        if isinstance(server, str) and registry not in self._servers:
            _split_url(server)
            self._servers[registry] = _Mirror(
                server, DEFAULT_CAPABILITIES, bool(doc.get("skip_verify", False))
            )
        hosts = doc.get("host", {})
        if not isinstance(hosts, dict):
            raise ValueError(f"{path}: [host] must be a table")
        for url, cfg in hosts.items():
            try:
                _split_url(url)
            except ValueError as e:
                raise ValueError(f"{path}: {e}") from None
            if not isinstance(cfg, dict):
                raise ValueError(f"{path}: [host.{url!r}] must be a table")
            if cfg.get("override_path"):
                raise ValueError(f"{path}: override_path is not supported")
            caps = cfg.get("capabilities", sorted(DEFAULT_CAPABILITIES))
            if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
                raise ValueError(f"{path}: capabilities must be a list of strings")
            self._mirrors.setdefault(registry, []).append(
                _Mirror(url, frozenset(caps), bool(cfg.get("skip_verify", False)))
            )

    @classmethod
    def from_flags(
        cls,
        mirror_flags: Sequence[str],
        insecure: Iterable[str] = (),
        config_dir: Path | None = None,
        config_file: Path | None = None,
    ) -> RegistryHosts:
        """From ``REGISTRY=URL[,URL...]`` strings, as ``--registry-mirror`` gives them,
        ``--insecure-registry`` hosts and ``--registry-config FILE``."""
        mirrors: dict[str, list[str]] = {}
        for flag in mirror_flags:
            registry, eq, urls = flag.partition("=")
            if not eq or not registry or not urls:
                raise ValueError(f"--registry-mirror {flag!r}: want REGISTRY=URL[,URL...]")
            mirrors.setdefault(registry, []).extend(u for u in urls.split(",") if u)
        return cls(mirrors, insecure, config_dir, config_file)

    def _insecure_host(self, host: str) -> bool:
        return host in self._insecure or _is_loopback(host)

    def endpoints(self, registry: str, by_digest: bool) -> list[Endpoint]:
        """The hosts to try for an image of ``registry``, mirrors first, upstream last."""
        need = PULL if by_digest else RESOLVE
        key = registry if registry in self._mirrors or registry in self._servers else None
        if key is None and (DEFAULT_HOST_DIR in self._mirrors or DEFAULT_HOST_DIR in self._servers):
            key = DEFAULT_HOST_DIR
        out: list[Endpoint] = []
        for m in self._mirrors.get(key or registry, []):
            if need not in m.capabilities:
                continue
            scheme, host = _split_url(m.url)
            insecure = scheme == "http" or m.skip_verify or self._insecure_host(host)
            out.append(Endpoint(host, insecure, mirror=True))
        server = self._servers.get(registry)
        if server is None:
            upstream = registry
            insecure = self._insecure_host(registry)
        else:
            scheme, upstream = _split_url(server.url)
            if registry == DEFAULT_DOMAIN and upstream in (
                "registry-1.docker.io",
                "index.docker.io",
            ):
                upstream = DEFAULT_DOMAIN
            insecure = scheme == "http" or server.skip_verify or self._insecure_host(upstream)
        out.append(Endpoint(upstream, insecure, mirror=False))
        return out
