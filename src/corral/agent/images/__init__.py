"""Container images for the node agent: references, registry hosts, the image store.

``ImageStore`` (``store.py``) pulls through skopeo into one content-addressed OCI layout
and unpacks with umoci (``archives.py`` reads what an archive to import holds).
``RegistryHosts`` (``hosts.py``) routes pulls to mirrors as containerd's ``hosts.toml``
does; ``parse_reference`` (``reference.py``) normalises names as Docker does;
``PullBackoff`` (``backoff.py``) is the kubelet's ImagePullBackOff; ``errors.py`` holds
the reasons. The agent imports from this package; see docs/images.md.
"""

from corral.agent.images.backoff import PullBackoff
from corral.agent.images.errors import (
    ERR_IMAGE_NEVER_PULL,
    ERR_IMAGE_PULL,
    IMAGE_PULL_BACKOFF,
    INVALID_IMAGE_NAME,
    ImagePullError,
)
from corral.agent.images.hosts import Endpoint, RegistryHosts
from corral.agent.images.reference import (
    Reference,
    ReferenceError_,
    default_pull_policy,
    parse_reference,
)
from corral.agent.images.store import (
    ALWAYS,
    IF_NOT_PRESENT,
    NEVER,
    POLICIES,
    ImageRecord,
    ImageStore,
)

__all__ = [
    "ALWAYS",
    "ERR_IMAGE_NEVER_PULL",
    "ERR_IMAGE_PULL",
    "IF_NOT_PRESENT",
    "IMAGE_PULL_BACKOFF",
    "INVALID_IMAGE_NAME",
    "NEVER",
    "POLICIES",
    "Endpoint",
    "ImagePullError",
    "ImageRecord",
    "ImageStore",
    "PullBackoff",
    "Reference",
    "ReferenceError_",
    "RegistryHosts",
    "default_pull_policy",
    "parse_reference",
]
