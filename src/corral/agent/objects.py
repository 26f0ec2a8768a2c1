"""How the agent reads the ConfigMaps and Secrets a pod refers to, and how that fails.

``env.py`` (environment variables) and ``volumes.py`` (configMap, secret and projected
volumes) both need "the ConfigMap ``ns/name``, or nothing"; they take an
:class:`ObjectLookup` so the pod lifecycle decides where objects come from (the API
through :class:`ClientLookup`, an informer cache, or a dict in tests) and so these
modules stay free of HTTP.

A missing required object or key is a :class:`ConfigError` whose message is the
kubelet's own wording (``configmap "cfg" not found``); the pod lifecycle shows it as the
container's waiting message (reason ``CreateContainerConfigError``) or, for a volume
(:class:`VolumeError`), in a ``FailedMount`` event.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Protocol

from corral.api.errors import StatusError
from corral.client.rest import Client, Resource

Obj = dict[str, Any]

CONFIGMAPS = Resource("", "v1", "configmaps")
SECRETS = Resource("", "v1", "secrets")

# Event reasons the callers record with these errors.
FAILED_MOUNT = "FailedMount"
INVALID_ENV_NAMES = "InvalidEnvironmentVariableNames"


class ConfigError(Exception):
    """A container cannot be configured; ``message`` is what the kubelet would say."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class VolumeError(ConfigError):
    """A pod volume cannot be set up; ``volume`` names it in the ``FailedMount`` event."""

    def __init__(self, volume: str, message: str) -> None:
        super().__init__(message)
        self.volume = volume

    @property
    def event_message(self) -> str:
        """``MountVolume.SetUp failed for volume "cfg" : configmap "x" not found``."""
        return f'MountVolume.SetUp failed for volume "{self.volume}" : {self.message}'


async def get_or_none(
    client: Client, res: Resource, name: str, namespace: str | None
) -> Obj | None:
    """The object, or ``None`` when the API answers 404; any other failure raises. Shared
    by :class:`ClientLookup` and ``claims.ClientClaimLookup``."""
    try:
        return await client.get(res, name, namespace)
    except StatusError as e:
        if e.code == 404:
            return None
        raise


class ObjectLookup(Protocol):
    """Read access to the objects a pod refers to; ``None`` means it does not exist.

    Any other failure (API unreachable...) raises; callers retry the whole step then.
    """

    async def configmap(self, namespace: str, name: str) -> Obj | None: ...
    async def secret(self, namespace: str, name: str) -> Obj | None: ...


class ClientLookup:
    """:class:`ObjectLookup` over the REST client: a GET per call, 404 becomes ``None``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def configmap(self, namespace: str, name: str) -> Obj | None:
        return await get_or_none(self._client, CONFIGMAPS, name, namespace)

    async def secret(self, namespace: str, name: str) -> Obj | None:
        return await get_or_none(self._client, SECRETS, name, namespace)


def configmap_not_found(name: str) -> str:
    return f'configmap "{name}" not found'


def secret_not_found(name: str) -> str:
    return f'secret "{name}" not found'


def configmap_strings(cm: Obj) -> dict[str, str]:
    """``data`` of a ConfigMap (what env vars may use; ``binaryData`` is not)."""
    return {str(k): str(v) for k, v in (cm.get("data") or {}).items()}


def configmap_files(cm: Obj) -> dict[str, bytes]:
    """``data`` and ``binaryData`` of a ConfigMap, as file contents."""
    out = {str(k): str(v).encode() for k, v in (cm.get("data") or {}).items()}
    for k, v in (cm.get("binaryData") or {}).items():
        out[str(k)] = _b64(v)
    return out


def secret_bytes(secret: Obj) -> dict[str, bytes]:
    """A Secret's ``data`` decoded (``stringData`` too, should a cache still hold it)."""
    out = {str(k): _b64(v) for k, v in (secret.get("data") or {}).items()}
    for k, v in (secret.get("stringData") or {}).items():
        out[str(k)] = str(v).encode()
    return out


def _b64(v: Any) -> bytes:
    if isinstance(v, bytes):
        return v
    try:
        return base64.b64decode(str(v), validate=True)
    except (binascii.Error, ValueError):
        return str(v).encode()


__all__ = [
    "CONFIGMAPS",
    "FAILED_MOUNT",
    "INVALID_ENV_NAMES",
    "SECRETS",
    "ClientLookup",
    "ConfigError",
    "ObjectLookup",
    "VolumeError",
    "configmap_files",
    "configmap_not_found",
    "configmap_strings",
    "get_or_none",
    "secret_bytes",
    "secret_not_found",
]
