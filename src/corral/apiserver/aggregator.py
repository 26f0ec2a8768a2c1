"""The aggregation layer: APIServices, their availability, and the proxy to extension servers.

Upstream's kube-aggregator does three things, and so does ``Aggregator``:

- **autoregister**: every group-version this server serves itself has a *local*
  APIService (``spec.service: null``; ``v1.`` for the core group) with ``Available``
  True, reason ``Local``; one deleted by hand comes back on the next pass;
- **availability** (``AvailableConditionController``, Kubernetes 1.32 wording): each
  non-local APIService is checked when it, its Service or its Endpoints change (an index
  of (namespace, name) -> APIService names wakes only the ones concerned) and all of them
  every ``CHECK_INTERVAL`` seconds: ``ServiceNotFound``, ``ServicePortError``,
  ``EndpointsNotFound``, ``MissingEndpoints``, then a ``GET /apis/G/V`` on a backend
  address (``FailedDiscoveryCheck`` ``failing or missing response from URL: ERR``), else
  True ``Passed`` ``all checks passed``. The backend's ``APIResourceList`` is published
  through ``Discovery.set_aggregated`` while it is available; an unavailable APIService
  stays listed with ``freshness: Stale`` (as upstream: kubectl warns that the server is
  unable to handle the request); a deleted one is withdrawn;
- **proxy**: ``APIApp.route`` hands any request under ``/apis/G/V/`` that a non-local
  APIService claims to ``proxy``, which resolves the Service to a ready endpoint address
  and the port of the matching Endpoints port name (as upstream's endpoint resolver), and
  relays the request over HTTPS (verified against ``caBundle`` with server name
  ``<service>.<namespace>.svc``, unless ``insecureSkipTLSVerify``), streaming the answer
  back (``Accept-Encoding: identity``, so no compressed body reaches a client that did
  not ask for one; a 60 s timeout as upstream's request timeout, none for watches).
  No endpoint, or an unavailable APIService: 503 Status ``service unavailable``.

Authentication towards backends, as upstream's: the aggregator presents its front-proxy
client certificate (``pki/front-proxy-client.{crt,key}``, from the front-proxy CA that
``kube-system/extension-apiserver-authentication`` names, ``apiserver/front_proxy.py``)
and names the caller the middleware authenticated in ``X-Remote-User``,
``X-Remote-Group`` and ``X-Remote-Extra-*`` (``api/requestheader.py``); the caller's
``Authorization`` and any ``X-Remote-*`` header it sent never reach a backend. The
discovery check speaks as ``system:kube-aggregator`` in ``system:masters``, as
upstream's availability controller. The certificate is no bearer secret (TLS client
authentication cannot be replayed), so it is presented with ``insecureSkipTLSVerify``
too; a backend that trusts no front proxy answers 401 and the APIService says so
(``FailedDiscoveryCheck``). A proxied request is authorized like any other first: the middleware
(``app.py``) asks the authorizer chain (``get`` on ``metrics.k8s.io`` ``pods``...) before
``route`` hands it here, so a caller RBAC does not allow never reaches a backend.

Started by ``apiserver/server.py`` beside the lifecycle loops; reads the watch cache, and
writes status with ``Registry.update_obj`` (no admission, as a controller in the server).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from corral.api import errors
from corral.api.conditions import condition_true, set_condition
from corral.api.requestheader import auth_proxy_headers
from corral.apiserver.discovery import Discovery
from corral.apiserver.proxy import relay
from corral.apiserver.store import Registry, WriteOptions
from corral.storage.cache import DELETED, Entry, ResourceCache

log = logging.getLogger("corral.aggregator")

Obj = dict[str, Any]

CHECK_INTERVAL = 10.0
MIN_INTERVAL = 0.5
AUTOMANAGED = "kube-aggregator.kubernetes.io/automanaged"
DISCOVERY_TIMEOUT = 5.0
#: upstream's request timeout (kube-apiserver ``--request-timeout``) for non-watch requests
REQUEST_TIMEOUT = 60.0
#: request headers passed to the backend (never ``Authorization``: X-Remote-* instead)
FORWARDED = ("accept", "content-type", "user-agent")
#: who the discovery check speaks as (upstream's availability controller)
CHECKER_USER, CHECKER_GROUPS = "system:kube-aggregator", ("system:masters",)
GROUP = "apiregistration.k8s.io"
LOCAL_MESSAGE = "Local APIServices are always available"
#: (groupPriorityMinimum, versionPriority) of the built-in group-versions, as
#: kube-apiserver's aggregator table; any other local group gets ``DEFAULT_PRIORITY``
PRIORITIES: dict[tuple[str, str], tuple[int, int]] = {
    ("", "v1"): (18000, 1),
    ("apps", "v1"): (17800, 15),
    ("events.k8s.io", "v1"): (17750, 15),
    ("autoscaling", "v1"): (17500, 15),
    ("autoscaling", "v2"): (17500, 30),
    ("batch", "v1"): (17400, 15),
    ("policy", "v1"): (17100, 15),
    ("storage.k8s.io", "v1"): (16800, 15),
    ("apiextensions.k8s.io", "v1"): (16700, 15),
    ("scheduling.k8s.io", "v1"): (16600, 15),
    ("coordination.k8s.io", "v1"): (16500, 15),
    ("apiregistration.k8s.io", "v1"): (16400, 15),
    ("discovery.k8s.io", "v1"): (16200, 15),
}
DEFAULT_PRIORITY = (1000, 15)


def service_unavailable() -> errors.StatusError:
    return errors.StatusError(503, errors.SERVICE_UNAVAILABLE, "service unavailable")


def local_name(group: str, version: str) -> str:
    return f"{version}.{group}"


def condition(status: str, reason: str, message: str) -> Obj:
    return {"type": "Available", "status": status, "reason": reason, "message": message}


def with_condition(obj: Obj, cond: Obj, now: str) -> bool:
    """Set ``cond`` as the Available condition of ``obj`` (keeping lastTransitionTime
    when the status did not change); False when nothing changed."""
    return set_condition(obj, cond, now)


def is_available(obj: Obj) -> bool:
    return condition_true(obj, "Available")


def is_watch(request: web.Request) -> bool:
    return request.query.get("watch") in ("1", "true", "True") or "/watch/" in request.path


def service_port_name(service: Obj, port: int) -> str | None:
    """The name of the Service port numbered ``port`` ("" if unnamed), None if absent."""
    for p in (service.get("spec") or {}).get("ports") or []:
        if p.get("port") == port:
            return str(p.get("name") or "")
    return None


def endpoint_addresses(endpoints: Obj, port_name: str) -> list[tuple[str, int]]:
    """(ip, port) of every ready address offering the port named ``port_name``."""
    out: list[tuple[str, int]] = []
    for subset in endpoints.get("subsets") or []:
        ports = [p for p in subset.get("ports") or [] if (p.get("name") or "") == port_name]
        if not ports:
            continue
        for a in subset.get("addresses") or []:
            if a.get("ip"):
                out.append((str(a["ip"]), int(ports[0].get("port") or 0)))
    return out


def server_name(spec: Obj) -> str:
    """The name a backend's certificate must hold: ``<service>.<namespace>.svc``."""
    svc = spec.get("service") or {}
    return f"{svc.get('name')}.{svc.get('namespace')}.svc"


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


class Aggregator:
    """Local APIServices, availability of the others, and the proxy to them."""

    def __init__(
        self,
        registry: Registry,
        discovery: Discovery,
        proxy_client: tuple[Path, Path] | None = None,
    ) -> None:
        self.registry = registry
        #: the front-proxy client certificate and key presented to every backend
        self.proxy_client = proxy_client
        #: caBundle (None: insecureSkipTLSVerify) -> its client context
        self._contexts: dict[str | None, ssl.SSLContext] = {}
        self.discovery = discovery
        by = registry.by_gvr
        self.api_services = by[(GROUP, "v1", "apiservices")]
        self.services = by[("", "v1", "services")]
        self.endpoints = by[("", "v1", "endpoints")]
        self._prefixes = {
            registry.prefix(i) for i in (self.api_services, self.services, self.endpoints)
        }
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        #: APIService name -> group-version whose backend's discovery is published now
        self._published: dict[str, str] = {}
        #: names of the APIServices with a ``spec.service`` (kept by ``_on_change``)
        self._remote: set[str] = set()
        #: (namespace, name) of a Service -> the APIServices it backs; name -> that key
        self._by_service: dict[tuple[str, str], set[str]] = {}
        self._service_of: dict[str, tuple[str, str]] = {}
        #: APIServices to check on the next wake-up (all of them every CHECK_INTERVAL)
        self._dirty: set[str] = set()
        self._api_prefix = registry.prefix(self.api_services)
        for e in registry.rcache(self.api_services).entries.values():
            self._note(e)
        registry.cache.listeners.append(self._on_change)

    # --- what the API server routes here ---------------------------------------------------------
    def claims(self, group: str, version: str) -> Obj | None:
        """The non-local APIService serving ``group/version``, or None."""
        name = local_name(group, version)
        if name not in self._remote:
            return None
        e = self.registry.entry(self.api_services, "", name)
        if e is None:
            return None
        obj = e.obj()
        return obj if (obj.get("spec") or {}).get("service") else None

    async def proxy(self, request: web.Request, api_service: Obj) -> web.StreamResponse:
        """Relay ``request`` to the backend of ``api_service``."""
        if not is_available(api_service):
            raise service_unavailable()
        spec = api_service.get("spec") or {}
        targets = self._resolve(spec)
        if not targets:
            raise service_unavailable()
        ip, port = random.choice(targets)
        url = f"https://{_host(ip)}:{port}{request.raw_path}"
        headers = [(k, v) for k, v in request.headers.items() if k.lower() in FORWARDED]
        headers.append(("Accept-Encoding", "identity"))
        user = request.get("user")
        if user is not None:  # who the middleware authenticated (and impersonated)
            headers += auth_proxy_headers(user.username, user.groups, user.extra)
        try:
            tls = self._ssl(spec)
        except (ValueError, OSError) as e:
            raise errors.StatusError(
                503, errors.SERVICE_UNAVAILABLE, f"error trying to reach service: {e}"
            ) from e
        body = await request.read() if request.can_read_body else None
        timeout = aiohttp.ClientTimeout(
            total=None if is_watch(request) else REQUEST_TIMEOUT, sock_connect=5
        )
        try:
            upstream = await self._client().request(
                request.method,
                url,
                headers=headers,
                data=body,
                ssl=tls,
                server_hostname=server_name(spec),
                allow_redirects=False,
                timeout=timeout,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            log.warning("proxying %s to %s: %s", request.path, url, e)
            raise errors.StatusError(
                503, errors.SERVICE_UNAVAILABLE, f"error trying to reach service: {e}"
            ) from e
        async with upstream:
            out = {
                k: upstream.headers[k]
                for k in ("Content-Type", "Cache-Control", "Content-Encoding")
                if k in upstream.headers
            }
            return await relay(request, upstream, out)

    def _resolve(self, spec: Obj) -> list[tuple[str, int]]:
        svc = spec.get("service") or {}
        ns, name = svc.get("namespace") or "", svc.get("name") or ""
        s = self.registry.entry(self.services, ns, name)
        ep = self.registry.entry(self.endpoints, ns, name)
        if s is None or ep is None:
            return []
        port_name = service_port_name(s.obj(), int(svc.get("port") or 443))
        if port_name is None:
            return []
        return endpoint_addresses(ep.obj(), port_name)

    def reload_proxy_client(self) -> None:
        """Present the renewed front-proxy client certificate (``apiserver/cert_renewal``):
        loaded again into every cached context, which new connections then use."""
        if self.proxy_client is not None:
            for ctx in self._contexts.values():
                ctx.load_cert_chain(*self.proxy_client)

    def _ssl(self, spec: Obj) -> ssl.SSLContext:
        """The client context for ``spec``'s backend (cached per caBundle): verified
        against ``caBundle`` (the system's CAs without one) unless
        ``insecureSkipTLSVerify``; with the front-proxy client certificate either way."""
        ca: str | None = None if spec.get("insecureSkipTLSVerify") else spec.get("caBundle", "")
        ctx = self._contexts.get(ca)
        if ctx is not None:
            return ctx
        ctx = ssl.create_default_context()
        if ca is None:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif ca:
            ctx.load_verify_locations(cadata=base64.b64decode(ca).decode())
        if self.proxy_client is not None:
            ctx.load_cert_chain(*self.proxy_client)
        if len(self._contexts) > 64:  # APIServices come and go: bound the cache
            self._contexts.clear()
        self._contexts[ca] = ctx
        return ctx

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
            self._session = aiohttp.ClientSession(timeout=timeout, auto_decompress=False)
        return self._session

    # --- the loops ----------------------------------------------------------------------------
    def _note(self, e: Entry, deleted: bool = False) -> None:
        name = e.key[len(self._api_prefix) :]
        old = self._service_of.pop(name, None)
        if old is not None:
            self._by_service.get(old, set()).discard(name)
            if not self._by_service.get(old):
                self._by_service.pop(old, None)
        svc = None if deleted else (e.obj().get("spec") or {}).get("service")
        if svc:
            self._remote.add(name)
            key = (str(svc.get("namespace") or ""), str(svc.get("name") or ""))
            self._service_of[name] = key
            self._by_service.setdefault(key, set()).add(name)
        else:
            self._remote.discard(name)

    def _on_change(self, type_: str, e: Entry, prev: Entry | None, rc: ResourceCache) -> None:
        """Wake for a change of an APIService, or of a Service/Endpoints one backs."""
        if rc.prefix == self._api_prefix:
            self._note(e, type_ == DELETED)
            self._dirty.add(e.key[len(self._api_prefix) :])
            self._wake.set()
        elif rc.prefix in self._prefixes:
            ns, _, name = e.key[len(rc.prefix) :].partition("/")
            names = self._by_service.get((ns, name))
            if names:
                self._dirty |= names
                self._wake.set()

    async def run(self) -> None:
        """Run until cancelled."""
        loop = asyncio.get_running_loop()
        full_at = 0.0
        try:
            while True:
                self._wake.clear()
                only = None
                if loop.time() < full_at:
                    only, self._dirty = self._dirty, set()
                else:
                    self._dirty.clear()
                    full_at = loop.time() + CHECK_INTERVAL
                try:
                    await self.ensure_local()
                    await self.check_all(only)
                except errors.StatusError as e:
                    log.warning("aggregator pass failed: %s", e.message)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, full_at - loop.time())):
                        await self._wake.wait()
                await asyncio.sleep(MIN_INTERVAL)  # a burst of changes makes one pass
        finally:
            if self._session is not None:
                await self._session.close()

    def local_group_versions(self) -> list[tuple[str, str]]:
        seen: dict[tuple[str, str], None] = {}
        for info in self.registry.resources:
            seen.setdefault((info.group, info.version), None)
        return list(seen)

    async def ensure_local(self) -> None:
        """Create the missing local APIServices (autoregister) and mark them Available;
        remove the automanaged ones of group-versions no longer served (a CRD's)."""
        opts = WriteOptions(field_manager="corral-apiserver")
        now = self.registry.now()
        local = self.local_group_versions()
        names = {local_name(g, v) for g, v in local}
        for e in list(self.registry.rcache(self.api_services).entries.values()):
            cur = e.obj()
            auto = AUTOMANAGED in (cur["metadata"].get("labels") or {})
            if (
                auto
                and not (cur.get("spec") or {}).get("service")
                and cur["metadata"]["name"] not in names
            ):
                await self.registry.force_delete(self.api_services, e.key)
        for group, version in local:
            name = local_name(group, version)
            entry = self.registry.entry(self.api_services, "", name)
            if entry is None:
                gpm, vp = PRIORITIES.get((group, version), DEFAULT_PRIORITY)
                obj = {
                    "metadata": {
                        "name": name,
                        "labels": {AUTOMANAGED: "onstart"},
                    },
                    "spec": {
                        "service": None,
                        "group": group,
                        "version": version,
                        "groupPriorityMinimum": gpm,
                        "versionPriority": vp,
                    },
                }
                with contextlib.suppress(errors.StatusError):
                    await self.registry.create(self.api_services, "", obj, opts)
                entry = self.registry.entry(self.api_services, "", name)
                if entry is None:
                    continue
            if (entry.obj().get("spec") or {}).get("service"):
                continue  # taken over by an extension server
            await self._set_condition(name, condition("True", "Local", LOCAL_MESSAGE), now)

    async def _set_condition(self, name: str, cond: Obj, now: str) -> None:
        """Write ``cond`` as the Available condition of ``name`` unless it is already so."""
        key = self.registry.key(self.api_services, "", name)
        entry = self.registry.rcache(self.api_services).entries.get(key)
        if entry is not None and with_condition(entry.obj(), cond, now):
            await self.registry.update_obj(
                self.api_services, key, lambda o: with_condition(o, cond, now)
            )

    async def check_all(self, only: set[str] | None = None) -> None:
        """Check every non-local APIService (or those named in ``only``)."""
        checks = []
        for e in list(self.registry.rcache(self.api_services).entries.values()):
            obj = e.obj()
            if only is not None and obj["metadata"]["name"] not in only:
                continue
            if (obj.get("spec") or {}).get("service"):
                checks.append(self.check(obj))
            else:
                self._withdraw(obj["metadata"]["name"])
        for name in list(self._published):
            if self.registry.entry(self.api_services, "", name) is None:
                self._withdraw(name)
        await asyncio.gather(*checks)

    def _withdraw(self, name: str) -> None:
        gv = self._published.pop(name, None)
        if gv is not None:
            self.discovery.set_aggregated(gv, None)

    async def check(self, obj: Obj) -> None:
        """One availability check of a non-local APIService (upstream's ``sync``)."""
        name = obj["metadata"]["name"]
        spec = obj.get("spec") or {}
        svc = spec.get("service") or {}
        ns, sname, port = svc.get("namespace") or "", svc.get("name") or "", svc.get("port") or 443
        now = self.registry.now()
        cond = self._static_check(ns, sname, int(port))
        resources: Obj | None = None
        if cond is None:
            cond, resources = await self._discovery_check(spec)
        gv = f"{spec.get('group')}/{spec.get('version')}"
        if self._published.get(name, gv) != gv:
            self._withdraw(name)  # its group-version changed
        self.discovery.set_aggregated(
            gv,
            resources,
            version_priority=int(spec.get("versionPriority") or 0),
            fresh=resources is not None,
        )
        self._published[name] = gv
        await self._set_condition(name, cond, now)

    def _static_check(self, ns: str, name: str, port: int) -> Obj | None:
        s = self.registry.entry(self.services, ns, name)
        if s is None:
            return condition("False", "ServiceNotFound", f'service/{name} in "{ns}" is not present')
        service = s.obj()
        if ((service.get("spec") or {}).get("type") or "ClusterIP") != "ClusterIP":
            return None
        port_name = service_port_name(service, port)
        if port_name is None:
            return condition(
                "False",
                "ServicePortError",
                f'service/{name} in "{ns}" is not listening on port {port}',
            )
        ep = self.registry.entry(self.endpoints, ns, name)
        if ep is None:
            return condition(
                "False", "EndpointsNotFound", f'cannot find endpoints for service/{name} in "{ns}"'
            )
        if not endpoint_addresses(ep.obj(), port_name):
            return condition(
                "False",
                "MissingEndpoints",
                f'endpoints for service/{name} in "{ns}" have no addresses with port name "{port_name}"',
            )
        return None

    async def _discovery_check(self, spec: Obj) -> tuple[Obj, Obj | None]:
        targets = self._resolve(spec)
        if not targets:
            svc = spec.get("service") or {}
            msg = f'no endpoints available for service "{svc.get("name")}"'
            return condition("False", "FailedDiscoveryCheck", msg), None
        ip, port = random.choice(targets)
        url = f"https://{_host(ip)}:{port}/apis/{spec.get('group')}/{spec.get('version')}"
        try:
            tls = self._ssl(spec)
            headers = [("Accept", "application/json"), ("Accept-Encoding", "identity")]
            headers += auth_proxy_headers(CHECKER_USER, CHECKER_GROUPS)
            async with asyncio.timeout(DISCOVERY_TIMEOUT):
                async with self._client().get(
                    url, ssl=tls, server_hostname=server_name(spec), headers=headers
                ) as resp:
                    body = await resp.read()
                    if not 200 <= resp.status < 300:
                        msg = (
                            f"failing or missing response from {url}: "
                            f"bad status from {url}: {resp.status}"
                        )
                        return condition("False", "FailedDiscoveryCheck", msg), None
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as e:
            msg = f"failing or missing response from {url}: {e or type(e).__name__}"
            return condition("False", "FailedDiscoveryCheck", msg), None
        try:
            resources = orjson.loads(body)
        except orjson.JSONDecodeError:
            resources = None
        if not isinstance(resources, dict):
            resources = None
        return condition("True", "Passed", "all checks passed"), resources
