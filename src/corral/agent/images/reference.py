"""Image references, normalised as Docker and containerd do.

``parse_reference("busybox")`` is ``docker.io/library/busybox:latest``;
``nginx:1.2``, ``reg:5000/a/b@sha256:...`` and ``localhost/x`` parse as the Docker CLI
parses them (``distribution/reference.ParseNormalizedNamed`` plus the default tag). The
image store (``images.store``) keys its records by ``str(Reference)`` and rewrites the
registry host to a mirror with ``with_domain``; the pod lifecycle may call
``default_pull_policy`` when a pod's ``imagePullPolicy`` was left empty.

A small function rather than a library: the grammar is short and stable, and the
candidate packages on PyPI are unmaintained. Invalid input raises ``ReferenceError_``
(a ``ValueError``) whose message is the kubelet's ``InvalidImageName`` text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
MAX_NAME_LENGTH = 255

# distribution/reference's grammar (regexp.go)
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = re.compile(rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}")
_SHA256 = re.compile(r"sha256:[a-f0-9]{64}")


class ReferenceError_(ValueError):  # the name ReferenceError is a builtin's
    """The text is not an image reference; ``str(e)`` is the kubelet's message."""


@dataclass(frozen=True)
class Reference:
    """A normalised image reference: ``domain/path[:tag][@digest]``."""

    domain: str  # "docker.io", "127.0.0.1:5000"
    path: str  # "library/busybox"
    tag: str | None  # None only when a digest is given without a tag
    digest: str | None  # "sha256:..."

    @property
    def name(self) -> str:
        """``docker.io/library/busybox``: the repository, without tag or digest."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        s = self.name
        if self.tag is not None:
            s += f":{self.tag}"
        if self.digest is not None:
            s += f"@{self.digest}"
        return s

    def with_domain(self, domain: str) -> Reference:
        """The same repository and tag/digest on another registry host (a mirror)."""
        return replace(self, domain=domain)

    def remote(self) -> str:
        """What the registry is asked for: ``path@digest`` when pinned, else ``path:tag``."""
        if self.digest is not None:
            return f"{self.path}@{self.digest}"
        return f"{self.path}:{self.tag or DEFAULT_TAG}"


def _invalid(text: str, why: str = "invalid reference format") -> ReferenceError_:
    return ReferenceError_(
        f'Failed to apply default image tag "{text}": couldn\'t parse image name "{text}": {why}'
    )


def parse_reference(text: str) -> Reference:
    """Parse and normalise ``text``; raise ``ReferenceError_`` when it is not a reference."""
    rest = text
    digest: str | None = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise _invalid(text)
        if digest.startswith("sha256:") and not _SHA256.fullmatch(digest):
            raise _invalid(text)
    tag: str | None = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise _invalid(text)
    if not rest:
        raise _invalid(text)
    first, sep, remainder = rest.partition("/")
    if sep and (any(c in first for c in ".:") or first == "localhost" or first != first.lower()):
        domain, path = first, remainder
        if not _DOMAIN.fullmatch(domain):
            raise _invalid(text)
    else:
        domain, path = DEFAULT_DOMAIN, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    if path != path.lower():
        raise _invalid(text, "repository name must be lowercase")
    if not all(_PATH_COMPONENT.fullmatch(c) for c in path.split("/")):
        raise _invalid(text)
    if len(domain) + 1 + len(path) > MAX_NAME_LENGTH:
        raise _invalid(text, "repository name must not be more than 255 characters")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def default_pull_policy(image: str) -> str:
    """Kubernetes' default ``imagePullPolicy``: ``Always`` for ``:latest`` or no tag
    (and no digest), else ``IfNotPresent``."""
    if "@" in image:
        return "IfNotPresent"
    slash, colon = image.rfind("/"), image.rfind(":")
    tag = image[colon + 1 :] if colon > slash else ""
    return "Always" if tag in ("", DEFAULT_TAG) else "IfNotPresent"
