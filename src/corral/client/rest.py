"""An async Kubernetes REST client: what Corral's own components use to talk to the API.

Every loop in Corral (scheduler, controllers, agents) is an ordinary API client, so it can
run in the server's process or on another machine. ``Client`` reads a kubeconfig (server
URL, CA, bearer token or client certificate), keeps one aiohttp session, and offers the
verbs by resource: ``get``, ``list``, ``watch``, ``create``, ``update``, ``patch``,
``delete`` and subresource calls. Errors come back as ``corral.api.errors.StatusError`` rebuilt from the
server's Status body, so callers handle 404/409 the same way the server raised them.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from corral.api.errors import StatusError

Obj = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    """Where a kind lives: group, version, plural, namespaced."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str = "", sub: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


PODS = Resource("", "v1", "pods")
NODES = Resource("", "v1", "nodes", namespaced=False)
EVENTS = Resource("", "v1", "events")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
CONFIGMAPS = Resource("", "v1", "configmaps")
SECRETS = Resource("", "v1", "secrets")
SERVICES = Resource("", "v1", "services")
ENDPOINTS = Resource("", "v1", "endpoints")
LEASES = Resource("coordination.k8s.io", "v1", "leases")
PRIORITY_CLASSES = Resource("scheduling.k8s.io", "v1", "priorityclasses", namespaced=False)
REPLICATIONCONTROLLERS = Resource("", "v1", "replicationcontrollers")
DEPLOYMENTS = Resource("apps", "v1", "deployments")
REPLICASETS = Resource("apps", "v1", "replicasets")
DAEMONSETS = Resource("apps", "v1", "daemonsets")
STATEFULSETS = Resource("apps", "v1", "statefulsets")
CONTROLLERREVISIONS = Resource("apps", "v1", "controllerrevisions")
JOBS = Resource("batch", "v1", "jobs")
CRONJOBS = Resource("batch", "v1", "cronjobs")
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices")
FRAMEWORKS = Resource("mesos.corral.dev", "v1", "frameworks", namespaced=False)
CHRONOS_JOBS = Resource("chronos.corral.dev", "v1", "chronosjobs")
MARATHON_APPS = Resource("marathon.corral.dev", "v1", "apps")
PERSISTENT_VOLUMES = Resource("", "v1", "persistentvolumes", namespaced=False)
PERSISTENT_VOLUME_CLAIMS = Resource("", "v1", "persistentvolumeclaims")
STORAGE_CLASSES = Resource("storage.k8s.io", "v1", "storageclasses", namespaced=False)


class KubeConfigError(ValueError):
    """A kubeconfig that cannot be used: the message is one line and names the file."""


@dataclass(frozen=True)
class KubeConfig:
    server: str
    token: str
    ca_pem: bytes | None
    #: a client certificate and its key (PEM): the user is the certificate's subject
    cert_pem: bytes | None = None
    key_pem: bytes | None = None

    @classmethod
    def load(cls, path: str | Path) -> KubeConfig:
        """Read a kubeconfig's current context; ``KubeConfigError`` (one line naming the
        file) when it is missing, unreadable or not a usable kubeconfig."""
        try:
            cfg = yaml.safe_load(Path(path).read_text())
            ctx_name = cfg.get("current-context")
            ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
            cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
            user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
            ca = cluster.get("certificate-authority-data")
            ca_pem = base64.b64decode(ca) if ca else None
            if ca_pem is None and cluster.get("certificate-authority"):
                ca_pem = Path(cluster["certificate-authority"]).read_bytes()
            return cls(
                cluster["server"].rstrip("/"),
                user.get("token", ""),
                ca_pem,
                _pem(user, "client-certificate"),
                _pem(user, "client-key"),
            )
        except OSError as e:
            where = f"{path}" if e.filename in (None, str(path)) else f"{path} ({e.filename})"
            raise KubeConfigError(f"cannot read the kubeconfig {where}: {e.strerror or e}") from e
        except (yaml.YAMLError, KeyError, StopIteration, TypeError, AttributeError, ValueError):
            raise KubeConfigError(
                f"{path} is not a usable kubeconfig (want clusters, users, contexts and "
                "current-context)"
            ) from None

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https"):
            return False
        if self.ca_pem is None:
            ctx = ssl.create_default_context()
        else:
            ctx = ssl.create_default_context(cadata=self.ca_pem.decode())
        if self.cert_pem is not None and self.key_pem is not None:
            # load_cert_chain reads files only: a private temporary file (0600), gone after
            with tempfile.NamedTemporaryFile() as f:
                f.write(self.cert_pem + b"\n" + self.key_pem)
                f.flush()
                ctx.load_cert_chain(f.name)
        return ctx

    @property
    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header of a token user (none for a certificate user)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def _pem(user: dict[str, Any], key: str) -> bytes | None:
    """A kubeconfig user's ``KEY-data`` (base64) or the file ``KEY`` names."""
    data = user.get(f"{key}-data")
    if data:
        return base64.b64decode(data)
    if user.get(key):
        return Path(user[key]).read_bytes()
    return None


def _params(**given: str) -> dict[str, str]:
    """Query parameters, leaving out the empty ones."""
    return {k: v for k, v in given.items() if v}


def _raise_for(status: int, body: bytes) -> None:
    try:
        s = orjson.loads(body)
        raise StatusError(status, s.get("reason", ""), s.get("message", ""), s.get("details"))
    except (orjson.JSONDecodeError, AttributeError):
        raise StatusError(status, "", body.decode(errors="replace")[:500]) from None


class Client:
    """One session to one API server; safe to share by every task of a process."""

    def __init__(
        self, config: KubeConfig, *, connections: int = 64, user_agent: str = "corral"
    ) -> None:
        self.config = config
        self._connections = connections
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, path: str | Path, **kw: Any) -> Client:
        return cls(KubeConfig.load(path), **kw)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            conn = aiohttp.TCPConnector(limit=self._connections, ssl=self.config.ssl_context())
            self._session = aiohttp.ClientSession(
                base_url=self.config.server,
                connector=conn,
                headers={**self.config.headers, "User-Agent": self._user_agent},
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> Any:
        data = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else {}
        async with asyncio.timeout(timeout):
            async with self.session.request(
                method, path, params=params, data=data, headers=headers
            ) as r:
                raw = await r.read()
                if r.status >= 400:
                    _raise_for(r.status, raw)
                return orjson.loads(raw) if raw else None

    # --- verbs -------------------------------------------------------------------------
    async def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj:
        out: Obj = await self.request("GET", res.path(namespace, name))
        return out

    async def list(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str = "",
        limit: int = 0,
    ) -> Obj:
        """All pages of a list (follows ``continue``); returns a list object."""
        params = _params(
            labelSelector=label_selector,
            fieldSelector=field_selector,
            resourceVersion=resource_version,
            limit=str(limit) if limit else "",
        )
        items: list[Obj] = []
        while True:
            page: Obj = await self.request("GET", res.path(namespace), params=params, timeout=120)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                page["items"] = items
                return page
            params = {**params, "continue": token}
            params.pop("resourceVersion", None)

    async def watch(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
        timeout_seconds: int = 0,
        bookmarks: bool = True,
    ) -> AsyncIterator[Obj]:
        """Events as dicts (``{"type":..., "object":...}``) until the server ends the stream."""
        params = _params(
            watch="true",
            resourceVersion=resource_version,
            labelSelector=label_selector,
            fieldSelector=field_selector,
            timeoutSeconds=str(timeout_seconds) if timeout_seconds else "",
            allowWatchBookmarks="true" if bookmarks else "",
        )
        async with self.session.get(res.path(namespace), params=params) as r:
            if r.status >= 400:
                _raise_for(r.status, await r.read())
            buf = b""
            async for chunk in r.content.iter_any():
                # one split per chunk: a chunk can carry hundreds of events
                *lines, buf = (buf + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        yield orjson.loads(line)

    async def create(self, res: Resource, obj: Obj, namespace: str | None = None) -> Obj:
        out: Obj = await self.request("POST", res.path(namespace), body=obj)
        return out

    async def update(
        self, res: Resource, obj: Obj, namespace: str | None = None, sub: str = ""
    ) -> Obj:
        name = obj["metadata"]["name"]
        out: Obj = await self.request("PUT", res.path(namespace, name, sub), body=obj)
        return out

    async def patch(
        self,
        res: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        sub: str = "",
        patch_type: str = "application/merge-patch+json",
    ) -> Obj:
        out: Obj = await self.request(
            "PATCH", res.path(namespace, name, sub), body=patch, content_type=patch_type
        )
        return out

    async def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        grace_period: int | None = None,
        propagation: str | None = None,
    ) -> Obj:
        body: Obj = {}
        if grace_period is not None:
            body["gracePeriodSeconds"] = grace_period
        if propagation:
            body["propagationPolicy"] = propagation
        out: Obj = await self.request("DELETE", res.path(namespace, name), body=body or None)
        return out

    async def post_sub(
        self, res: Resource, name: str, sub: str, body: Obj, namespace: str | None = None
    ) -> Obj:
        out: Obj = await self.request("POST", res.path(namespace, name, sub), body=body)
        return out
