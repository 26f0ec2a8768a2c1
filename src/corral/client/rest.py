"""An async Kubernetes REST client: what Corral's own components use to talk to the API.

Every loop in Corral (scheduler, controllers, agents) is an ordinary API client, so it can
run in the server's process or on another machine. ``Client`` reads a kubeconfig (server
URL, CA, bearer token or client certificate), sends plain requests through lean
keep-alive pools (``corral.client.http1``) and watches through one aiohttp session, and
offers the verbs by resource: ``get``, ``list``, ``watch``, ``create``, ``update``, ``patch``,
``delete`` and subresource calls. Errors come back as ``corral.api.errors.StatusError`` rebuilt from the
server's Status body, so callers handle 404/409 the same way the server raised them.

Several API servers (an HA cluster): ``KubeConfig.servers`` lists them (the cluster's
``server`` first, then the cluster extension ``corral.dev/servers``, which kubectl
ignores); ``Client`` talks to one at a time and moves to the next on a connection
failure, retrying only what is safe to repeat (client-go's rule: reads always, writes
only when they provably never reached a server). See ``Client.request``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import functools
import logging
import re
import ssl
import tempfile
import urllib.parse
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from corral.api.errors import StatusError
from corral.client import http1
from corral.client.failover import UNAVAILABLE, ServerRing, may_resend, server_trouble

Obj = dict[str, Any]

log = logging.getLogger("corral.client")

#: the kubeconfig cluster extension listing every API server of the cluster:
#: ``extensions: [{name: corral.dev/servers, extension: {servers: [URL, ...]}}]``
SERVERS_EXTENSION = "corral.dev/servers"
#: ``Client.patch``'s ``patch_type`` for a strategic merge patch (lists merge by their key)
STRATEGIC_MERGE = "application/strategic-merge-patch+json"


def parse_servers(value: str | Sequence[str]) -> list[str]:
    """``"URL,URL"`` (or a list of them) as a list of URLs without trailing slashes."""
    parts = value.split(",") if isinstance(value, str) else [u for v in value for u in v.split(",")]
    return list(dict.fromkeys(u.strip().rstrip("/") for u in parts if u.strip()))


def add_server_flag(p: argparse.ArgumentParser) -> None:
    """``--server URL[,URL...]`` of a component beside its ``--kubeconfig``."""
    p.add_argument(
        "--server",
        default="",
        metavar="URL[,URL...]",
        help="API server URL(s), tried in order, failing over between them (overrides "
        "the kubeconfig's)",
    )


def servers_extension(servers: Sequence[str]) -> list[Obj]:
    """A kubeconfig cluster's ``extensions`` naming ``servers`` (empty for one server)."""
    urls = parse_servers(servers)
    if len(urls) < 2:
        return []
    return [{"name": SERVERS_EXTENSION, "extension": {"servers": urls}}]


def _extension_servers(cluster: Obj) -> list[str]:
    for ext in cluster.get("extensions") or []:
        if isinstance(ext, dict) and ext.get("name") == SERVERS_EXTENSION:
            value = ext.get("extension")
            urls = value.get("servers") if isinstance(value, dict) else value
            if isinstance(urls, list):
                return parse_servers([str(u) for u in urls])
    return []


@dataclass(frozen=True)
class Resource:
    """Where a kind lives: group, version, plural, namespaced."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    @functools.cached_property
    def _root(self) -> str:
        """The group-version's path (``/api/v1``, ``/apis/apps/v1``), made once."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @functools.cached_property
    def _collection(self) -> str:
        """The cluster-wide collection's path (``/api/v1/pods``), made once."""
        return f"{self._root}/{self.plural}"

    def path(self, namespace: str | None = None, name: str = "", sub: str = "") -> str:
        if self.namespaced and namespace:
            base = f"{self._root}/namespaces/{namespace}/{self.plural}"
        else:
            base = self._collection
        if name:
            base = f"{base}/{name}/{sub}" if sub else f"{base}/{name}"
        elif sub:
            base = f"{base}/{sub}"
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
    #: every API server of the cluster, ``server`` first (one cluster: one CA serves all)
    servers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        object.__setattr__(self, "servers", parse_servers([self.server, *self.servers]))

    def with_servers(self, servers: str | Sequence[str]) -> KubeConfig:
        """This config pointed at ``servers`` (``"URL,URL"`` or a list); itself when empty."""
        urls = parse_servers(servers)
        return dataclasses.replace(self, server=urls[0], servers=urls) if urls else self

    @classmethod
    def load(cls, path: str | Path, *, servers: str | Sequence[str] = "") -> KubeConfig:
        """Read a kubeconfig's current context; ``KubeConfigError`` (one line naming the
        file) when it is missing, unreadable or not a usable kubeconfig. ``servers``
        (a ``--server URL,URL`` flag) replaces the kubeconfig's server list."""
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
                _extension_servers(cluster),
            ).with_servers(servers)
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


#: a path yarl would send as it is: no character it escapes or normalises (``%``, space,
#: non-ASCII, ``?``, ``#``), no dot segment. Resource.path of valid names always is one.
_PLAIN_PATH = re.compile(r"(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+")


def _base_url(server: str) -> URL | None:
    """``server`` as a URL that ``base.with_path(PATH, encoded=True)`` extends into
    exactly ``URL(server + PATH)`` for a plain path; None when it cannot (a server URL
    with a path, query or fragment of its own)."""
    try:
        base = URL(server)
    except ValueError:
        return None
    probe = "/api/v1/namespaces/default/pods/x-1.a"
    if base.raw_path not in ("", "/") or base.raw_query_string or base.raw_fragment:
        return None
    return base if base.with_path(probe, encoded=True) == URL(server + probe) else None


@functools.cache
def _body_headers(content_type: str) -> CIMultiDictProxy[str]:
    """The headers of a request with a body of ``content_type`` (no write headers),
    made once: aiohttp merges a MultiDict into the session's without converting it."""
    return CIMultiDictProxy(CIMultiDict({"Content-Type": content_type}))


def _raise_for(status: int, body: bytes) -> None:
    try:
        s = orjson.loads(body)
        raise StatusError(status, s.get("reason", ""), s.get("message", ""), s.get("details"))
    except (orjson.JSONDecodeError, AttributeError):
        raise StatusError(status, "", body.decode(errors="replace")[:500]) from None


def _transport(r: aiohttp.ClientResponse) -> asyncio.Transport | None:
    return r.connection.transport if r.connection is not None else None


def _abort(r: aiohttp.ClientResponse, transport: asyncio.Transport | None) -> None:
    """Drop at once the connection of ``r``, left before its body ended (``transport``:
    its transport taken before, as aiohttp may have let go of it already). Closed
    politely, a TLS connection waits (asyncio: up to 30 s) for the server's close_notify,
    and one still waiting when its event loop ends is never closed (``ResourceWarning:
    unclosed transport``, in whatever runs when it is collected). A transport that is not
    closing (back in the pool: the body had ended) is left alone."""
    now = _transport(r)
    if now is not None:
        now.abort()
    elif transport is not None and transport.is_closing():
        transport.abort()


#: a watch that sent nothing for this long is dead (the server sends a BOOKMARK every
#: 30 s on an idle watch that asked for them: apiserver.handlers.BOOKMARK_INTERVAL)
WATCH_IDLE_TIMEOUT = 75.0


class Client:
    """One session to the cluster's API servers (one at a time, failing over between
    them: ``corral.client.failover``); safe to share by every task of a process."""

    def __init__(
        self,
        config: KubeConfig,
        *,
        connections: int = 64,
        user_agent: str = "corral",
        connect_timeout: float = 10,
        lean: bool = True,
    ) -> None:
        """``lean``: plain requests go through the lean keep-alive pool
        (``corral.client.http1``); False sends everything through aiohttp."""
        self.config = config
        self._lean = lean
        self._connections = connections
        self._user_agent = user_agent
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None
        self._ring = ServerRing()
        self._bases: dict[str, URL | None] = {}  # server -> its URL, for plain paths
        #: server -> its lean keep-alive pool (``http1``; None: aiohttp sends there)
        self._pools: dict[str, http1.Pool | None] = {}
        self._ssl: ssl.SSLContext | bool | None = None
        #: headers added to every mutating request (a leader election fence: see
        #: corral.client.leaderelection)
        self.write_headers: dict[str, str] = {}

    @classmethod
    def from_kubeconfig(
        cls, path: str | Path, *, servers: str | Sequence[str] = "", **kw: Any
    ) -> Client:
        """A client of the kubeconfig at ``path``; ``servers`` (``--server URL,URL``)
        replaces its server list."""
        return cls(KubeConfig.load(path, servers=servers), **kw)

    @property
    def server(self) -> str:
        """The API server in use (the next request goes there)."""
        return self._ring.pick(self._servers())

    def _servers(self) -> list[str]:
        return self.config.servers or [self.config.server]

    def _ssl_context(self) -> ssl.SSLContext | bool:
        """The kubeconfig's TLS settings, made once for aiohttp and the lean pools."""
        if self._ssl is None:
            self._ssl = self.config.ssl_context()
        return self._ssl

    def _pool(self, server: str) -> http1.Pool | None:
        """The lean pool of ``server`` for the running loop; None when aiohttp sends."""
        try:
            pool = self._pools[server]
        except KeyError:
            pool = None
        else:
            if pool is None or pool.usable():
                return pool
            pool.close()  # made on another event loop: start over on this one
        headers = [*self.config.headers.items(), ("User-Agent", self._user_agent)]
        pool = http1.pool_for(
            server,
            self._ssl_context(),
            headers,
            limit=self._connections,
            connect_timeout=self._connect_timeout,
        )
        if pool is not None:
            pool.usable()  # binds it to this loop
        self._pools[server] = pool
        return pool

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            conn = aiohttp.TCPConnector(limit=self._connections, ssl=self._ssl_context())
            self._session = aiohttp.ClientSession(
                connector=conn,
                headers={**self.config.headers, "User-Agent": self._user_agent},
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout),
                # an API client keeps no cookies (client-go's http.Client has no jar)
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    def _url(self, server: str, path: str) -> URL | str:
        """``server + path`` for aiohttp: a plain path (``_PLAIN_PATH``, all that
        ``Resource.path`` makes of valid names) joins the server's URL, parsed once,
        without being parsed and quoted again (the same URL, several µs cheaper); any
        other is left to aiohttp to parse as before."""
        try:
            base = self._bases[server]
        except KeyError:
            base = self._bases[server] = _base_url(server)
        if base is not None and _PLAIN_PATH.fullmatch(path):
            return base.with_path(path, encoded=True)
        return server + path

    async def close(self) -> None:
        for pool in self._pools.values():
            if pool is not None:
                pool.close()
        self._pools.clear()
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
        decode: bool = True,
    ) -> Any:
        """The decoded answer; None with ``decode=False`` (the caller has no use for it,
        e.g. a status write whose result arrives on its watch anyway)."""
        data = orjson.dumps(body) if body is not None else None
        headers: CIMultiDictProxy[str] | dict[str, str] | None = None
        if self.write_headers and method != "GET":
            headers = {"Content-Type": content_type} if data is not None else {}
            headers.update(self.write_headers)
        elif data is not None:
            headers = _body_headers(content_type)
        # a plain path goes through the lean pool as sent (module ``http1``); any other
        # is left to aiohttp, which quotes and normalises it
        target = path if _PLAIN_PATH.fullmatch(path) else ""
        if target and params:
            target += "?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
        servers = self._servers()
        server = ""
        try:
            async with asyncio.timeout(timeout):
                for attempt in range(1, len(servers) + 1):
                    server = self._ring.pick(servers)
                    try:
                        pool = self._pool(server) if target and self._lean else None
                        if pool is not None:
                            status, raw = await pool.request(
                                method, target, data, list(headers.items()) if headers else ()
                            )
                        else:
                            status, raw = await self._send(
                                method, server, path, params, data, headers
                            )
                    except Exception as e:
                        if not server_trouble(e):
                            raise
                        self._ring.failed(servers, server, e)
                        if attempt == len(servers) or not may_resend(method, e):
                            raise
                        continue
                    if status == UNAVAILABLE:  # this server cannot serve now: next time, another
                        self._ring.failed(servers, server, "503 Service Unavailable")
                        if method == "GET" and attempt < len(servers):
                            continue
                    if status >= 400:
                        _raise_for(status, raw)
                    return orjson.loads(raw) if raw and decode else None
        except TimeoutError as e:  # no answer in time: the next request tries another
            if server and not isinstance(e, aiohttp.ServerTimeoutError):
                self._ring.failed(servers, server, "no answer within the timeout")
            raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _send(
        self,
        method: str,
        server: str,
        path: str,
        params: dict[str, str] | None,
        data: bytes | None,
        headers: CIMultiDictProxy[str] | dict[str, str] | None,
    ) -> tuple[int, bytes]:
        """One request through aiohttp: (status, body)."""
        async with self.session.request(
            method, self._url(server, path), params=params, data=data, headers=headers
        ) as r:
            transport = _transport(r)
            try:
                return r.status, await r.read()
            except BaseException:  # cut short (timeout, cancelled, broken)
                _abort(r, transport)
                raise

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
    ) -> AsyncGenerator[Obj, None]:
        """Events as dicts (``{"type":..., "object":...}``) until the server ends the stream.

        Opening fails over like a GET; a stream that breaks (or, with ``bookmarks``, stays
        silent past ``WATCH_IDLE_TIMEOUT``) raises after moving the client to the next
        server, where the caller resumes from the last resourceVersion it saw."""
        params = _params(
            watch="true",
            resourceVersion=resource_version,
            labelSelector=label_selector,
            fieldSelector=field_selector,
            timeoutSeconds=str(timeout_seconds) if timeout_seconds else "",
            allowWatchBookmarks="true" if bookmarks else "",
        )
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self._connect_timeout,
            sock_read=WATCH_IDLE_TIMEOUT if bookmarks else None,
        )
        servers = self._servers()
        for attempt in range(1, len(servers) + 1):
            server = self._ring.pick(servers)
            try:
                r = await self.session.get(
                    server + res.path(namespace), params=params, timeout=timeout
                )
            except Exception as e:
                if not server_trouble(e):
                    raise
                self._ring.failed(servers, server, e)
                if attempt == len(servers):
                    raise
                continue
            if r.status == UNAVAILABLE and attempt < len(servers):
                r.release()
                self._ring.failed(servers, server, "503 Service Unavailable")
                continue
            break
        async with r:
            if r.status >= 400:
                _raise_for(r.status, await r.read())
            buf = b""
            ended, transport = False, _transport(r)
            try:
                async for chunk in r.content.iter_any():
                    # one split per chunk: a chunk can carry hundreds of events
                    *lines, buf = (buf + chunk).split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield orjson.loads(line)
                ended = True
            except Exception as e:
                if server_trouble(e):
                    self._ring.failed(servers, server, e)
                raise
            finally:
                if not ended:  # left mid-stream (closed, cancelled, broken)
                    _abort(r, transport)

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
