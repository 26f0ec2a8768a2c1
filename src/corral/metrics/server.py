"""``corral metrics-server``: the resource metrics API, scraped from the agents, as metrics-server.

``MetricsServer.run``:

1. serves HTTPS on ``--bind``:``--port`` with ``--tls-cert-file`` (``corral server`` passes
   one issued by the cluster CA) or a self-signed certificate made at start
   (``metrics/tls.py``); its APIService carries the matching ``caBundle``;
2. registers itself as metrics-server's manifest does: the Service
   ``kube-system/metrics-server`` (port 443 ``https``, no selector) with Endpoints naming
   ``--advertise-address`` and the port it listens on, and the APIService
   ``v1beta1.metrics.k8s.io`` (groupPriorityMinimum 100, versionPriority 100), each
   created or brought back to that shape; the API server's aggregation layer
   (``apiserver/aggregator.py``) then proxies ``/apis/metrics.k8s.io/v1beta1/...`` here;
3. lists and watches Nodes and Pods, and every ``--metric-resolution`` (15 s by default)
   scrapes each Ready node's agent, ``http://<InternalIP>:<kubeletEndpoint.Port>/metrics/resource``
   (``agent/resource_metrics.py``) with the kubeconfig's token, into a ``MetricsStore``.

API (GET only; every caller authenticated, the aggregator by its front-proxy client
certificate and ``X-Remote-*`` headers, others by a client certificate or a TokenReview
of their bearer token, and authorized by a SubjectAccessReview: ``metrics/auth.py``;
the trusted CAs come from ``kube-system/extension-apiserver-authentication``, read at
start): ``/apis/metrics.k8s.io/v1beta1`` (APIResourceList),
``.../nodes[/NAME]`` and ``.../pods``, ``.../namespaces/NS/pods[/NAME]`` with
``labelSelector`` and ``fieldSelector`` (``metadata.name``, ``metadata.namespace``),
answered as NodeMetrics/PodMetrics(+List) JSON (``metrics/store.py``); a node or pod
without metrics yet is left out of lists and is a 404 Status when named, as upstream
(``pods.metrics.k8s.io "NS/NAME" not found``; ``pods "NAME" not found``, the pod
lister's answer, when there is no such pod).
``/healthz``, ``/livez``, ``/readyz`` are public.

The command's flags and entry points are ``metrics/command.py``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from corral.api import errors
from corral.api.conditions import condition_true
from corral.api.nodes import agent_endpoint, agent_scheme
from corral.api.selectors import (
    SelectorError,
    try_parse_field_selector,
    try_parse_label_selector,
)
from corral.client.informer import Informer
from corral.client.rest import ENDPOINTS, NODES, PODS, SERVICES, Client, Resource
from corral.client.reviews import Reviewer
from corral.metrics.auth import MetricsAuth, load_config
from corral.metrics.store import (
    MetricsStore,
    metrics_list,
    node_metrics,
    parse_scrape,
    pod_metrics,
)
from corral.metrics.tls import serving_context
from corral.util.bearer import node_token

log = logging.getLogger("corral.metrics")

Obj = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
GV = f"{GROUP}/{VERSION}"
PREFIX = f"/apis/{GV}"
NAMESPACE, NAME = "kube-system", "metrics-server"
APISERVICES = Resource("apiregistration.k8s.io", "v1", "apiservices", namespaced=False)
DEFAULT_PORT = 4443
DEFAULT_RESOLUTION = 15.0
SCRAPE_CONCURRENCY = 64
PUBLIC = ("/healthz", "/livez", "/readyz")
LABELS = {"k8s-app": NAME}

RESOURCE_LIST = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": GV,
    "resources": [
        {"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics", "verbs": ["get", "list"]},
        {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics", "verbs": ["get", "list"]},
    ],
}  # fmt: skip
GROUP_DOC = {
    "name": GROUP,
    "versions": [{"groupVersion": GV, "version": VERSION}],
    "preferredVersion": {"groupVersion": GV, "version": VERSION},
}


def primary_address() -> str:
    """This host's address on its default route (127.0.0.1 without one)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))
        return str(s.getsockname()[0])
    return "127.0.0.1"


def node_address(node: Obj) -> tuple[str, int] | None:
    """Where the node's agent answers, None without an agent port or address."""
    try:
        return agent_endpoint(node)
    except errors.StatusError:
        return None


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


class MetricsServer:
    """Scrapes the agents and serves metrics.k8s.io/v1beta1."""

    def __init__(
        self,
        client: Client,
        *,
        bind: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        advertise: str = "",
        resolution: float = DEFAULT_RESOLUTION,
        tls_cert_file: str = "",
        tls_key_file: str = "",
        requestheader_client_ca_file: str = "",
        client_ca_file: str = "",
    ) -> None:
        self.client = client
        self.requestheader_client_ca_file = requestheader_client_ca_file
        self.client_ca_file = client_ca_file
        #: TokenReview + SubjectAccessReview of each caller (``metrics/auth.py``)
        self.auth = MetricsAuth(Reviewer(client))
        self.bind = bind
        self.port = port
        self.advertise = advertise or (
            bind if bind not in ("0.0.0.0", "", "::") else primary_address()
        )
        self.resolution = resolution
        self.tls_cert_file, self.tls_key_file = tls_cert_file, tls_key_file
        #: the caBundle of the APIService: what issued the serving certificate
        self.ca_bundle = b""
        self.store = MetricsStore()
        self.nodes = Informer(client, NODES)
        self.pods = Informer(client, PODS)
        self.ready = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve, register and scrape until cancelled."""
        config = await load_config(
            self.client, self.requestheader_client_ca_file, self.client_ca_file
        )
        self.auth = MetricsAuth(self.auth.reviewer, config)
        ctx, self.ca_bundle = await asyncio.to_thread(
            serving_context,
            self.tls_cert_file,
            self.tls_key_file,
            self.client.config.ca_pem,
            [self.advertise, "127.0.0.1"],
            self.auth.trust_anchors(),
        )
        self._runner = web.AppRunner(self.build(), access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.bind, self.port, ssl_context=ctx)
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])
        log.info(
            "metrics API on https://%s:%d (advertised %s)", self.bind, self.port, self.advertise
        )
        # HTTPS agents: verified against the kubeconfig's CA, with its client certificate
        # (or token) as the credential the agent checks (nodes/metrics)
        agent_tls = self.client.config.ssl_context()
        self._session = aiohttp.ClientSession(
            headers=self.client.config.headers,
            timeout=aiohttp.ClientTimeout(total=max(1.0, min(10.0, self.resolution))),
            connector=aiohttp.TCPConnector(ssl=agent_tls if agent_tls else True),
        )
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.nodes.run(), name="metrics-nodes")
                tg.create_task(self.pods.run(), name="metrics-pods")
                await self.nodes.wait_for_sync()
                await self.pods.wait_for_sync()
                await self.register()
                self.ready.set()
                tg.create_task(self._scrape_loop(), name="metrics-scrape")
        finally:
            await self._session.close()
            await self._runner.cleanup()

    async def register(self) -> None:
        """Service, Endpoints and APIService, as metrics-server's manifest declares them."""
        svc = {
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": LABELS},
            "spec": {
                "ports": [
                    {"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.port}
                ]
            },
        }
        eps = {
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": LABELS},
            "subsets": [
                {
                    "addresses": [{"ip": self.advertise}],
                    "ports": [{"name": "https", "port": self.port, "protocol": "TCP"}],
                }
            ],
        }
        api = {
            "metadata": {"name": f"{VERSION}.{GROUP}", "labels": LABELS},
            "spec": {
                "service": {"name": NAME, "namespace": NAMESPACE, "port": 443},
                "group": GROUP,
                "version": VERSION,
                "caBundle": base64.b64encode(self.ca_bundle).decode(),
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        }
        await self._ensure(SERVICES, svc, NAMESPACE, ("spec",))
        await self._ensure(ENDPOINTS, eps, NAMESPACE, ("subsets",))
        await self._ensure(APISERVICES, api, None, ("spec",))

    async def _ensure(
        self, res: Resource, want: Obj, ns: str | None, fields: tuple[str, ...]
    ) -> None:
        for _ in range(5):
            try:
                await self.client.create(res, want, ns)
                return
            except errors.StatusError as e:
                if e.code != 409:
                    raise
            cur = await self.client.get(res, want["metadata"]["name"], ns)
            new = dict(cur)
            for f in fields:
                if f == "spec" and res is SERVICES:  # keep what the API server allocated
                    new["spec"] = {**(cur.get("spec") or {}), **want["spec"]}
                    new["spec"].pop("selector", None)
                else:
                    new[f] = want[f]
            new["metadata"] = {
                **cur["metadata"],
                "labels": {**(cur["metadata"].get("labels") or {}), **LABELS},
            }
            if new == cur:
                return
            try:
                await self.client.update(res, new, ns)
                return
            except errors.StatusError as e:
                if e.code != 409:
                    raise

    # --- scraping -------------------------------------------------------------------------------
    async def _scrape_loop(self) -> None:
        while True:
            started = time.monotonic()
            await self.scrape_all()
            await asyncio.sleep(max(0.0, self.resolution - (time.monotonic() - started)))

    async def scrape_all(self) -> None:
        limit = asyncio.Semaphore(SCRAPE_CONCURRENCY)
        targets: dict[str, tuple[str, str, int]] = {}
        for node in list(self.nodes.store.values()):
            name = node["metadata"]["name"]
            addr = node_address(node)
            if addr is not None and condition_true(node, "Ready"):
                targets[name] = (agent_scheme(node), *addr)
        for name in list(self.store.nodes):
            if name not in targets:
                self.store.forget(name)

        async def one(name: str, scheme: str, host: str, port: int) -> None:
            async with limit:
                await self.scrape(name, host, port, scheme)

        await asyncio.gather(*(one(n, *t) for n, t in targets.items()))

    async def scrape(self, node: str, host: str, port: int, scheme: str = "http") -> None:
        h = f"[{host}]" if ":" in host else host
        url = f"{scheme}://{h}:{port}/metrics/resource"
        assert self._session is not None
        # plain HTTP is the node's own word: never our token there, one bound to the node
        token = self.client.config.token
        plain = {"Authorization": f"Bearer {node_token(token, node)}"} if token else {}
        try:
            async with self._session.get(url, headers=plain if scheme != "https" else None) as resp:
                text = await resp.text()
                if resp.status != 200:
                    raise ValueError(f"request failed, status: {resp.status}")
            scrape = parse_scrape(text, time.time())
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as e:
            log.warning('failed to scrape node "%s": %s', node, e)
            return
        self.store.store(node, scrape)

    # --- the API --------------------------------------------------------------------------------
    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        for path in PUBLIC:
            app.router.add_get(path, self._ok)
        app.router.add_get("/apis", self._apis)
        app.router.add_get(f"/apis/{GROUP}", self._group)
        app.router.add_get(PREFIX, self._resources)
        app.router.add_get(f"{PREFIX}/nodes", self._list_nodes)
        app.router.add_get(PREFIX + "/nodes/{name}", self._get_node)
        app.router.add_get(f"{PREFIX}/pods", self._list_pods)
        app.router.add_get(PREFIX + "/namespaces/{namespace}/pods", self._list_pods)
        app.router.add_get(PREFIX + "/namespaces/{namespace}/pods/{name}", self._get_pod)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.path not in PUBLIC:
                await self.auth.check(
                    request.method,
                    request.path,
                    request.query,
                    request.headers.get("Authorization", ""),
                    peercert=request.transport.get_extra_info("peercert")
                    if request.transport is not None
                    else None,
                    headers=request.headers.items(),
                )
            return await handler(request)
        except errors.StatusError as e:
            return web.Response(body=e.body(), status=e.code, content_type="application/json")
        except web.HTTPNotFound:
            e404 = errors.path_not_found()
            return web.Response(body=e404.body(), status=404, content_type="application/json")

    async def _ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _apis(self, request: web.Request) -> web.Response:
        return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": [GROUP_DOC]})

    async def _group(self, request: web.Request) -> web.Response:
        return _json({"kind": "APIGroup", "apiVersion": "v1", **GROUP_DOC})

    async def _resources(self, request: web.Request) -> web.Response:
        return _json(RESOURCE_LIST)

    def _selectors(self, request: web.Request) -> tuple[Any, Any]:
        try:
            labels = try_parse_label_selector(request.query.get("labelSelector", ""))
            fields = try_parse_field_selector(request.query.get("fieldSelector", ""))
        except SelectorError as e:
            raise errors.bad_request(str(e)) from None
        return labels, fields

    async def _list_nodes(self, request: web.Request) -> web.Response:
        labels, fields = self._selectors(request)
        now = time.time()
        items = []
        for node in sorted(self.nodes.store.values(), key=lambda n: n["metadata"]["name"]):
            meta = node["metadata"]
            if not labels.matches(meta.get("labels") or {}):
                continue
            if not fields.matches({"metadata.name": meta["name"]}):
                continue
            u = self.store.node_usage(meta["name"])
            if u is not None:
                items.append(node_metrics(node, u, now))
        return _json(metrics_list("NodeMetricsList", items))

    async def _get_node(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        node = self.nodes.store.get(name)
        u = self.store.node_usage(name) if node is not None else None
        if node is None or u is None:
            raise errors.not_found("nodes", GROUP, name)
        return _json(node_metrics(node, u, time.time()))

    async def _list_pods(self, request: web.Request) -> web.Response:
        ns = request.match_info.get("namespace")
        labels, fields = self._selectors(request)
        now = time.time()
        items = []
        pods = sorted(
            self.pods.store.values(),
            key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"]),
        )
        for pod in pods:
            meta = pod["metadata"]
            pns = meta.get("namespace", "")
            if ns is not None and pns != ns:
                continue
            if not labels.matches(meta.get("labels") or {}):
                continue
            if not fields.matches({"metadata.name": meta["name"], "metadata.namespace": pns}):
                continue
            containers = self.store.pod_usage(pns, meta["name"])
            if containers is not None:
                items.append(pod_metrics(pod, containers, now))
        return _json(metrics_list("PodMetricsList", items))

    async def _get_pod(self, request: web.Request) -> web.Response:
        ns, name = request.match_info["namespace"], request.match_info["name"]
        pod = self.pods.store.get(f"{ns}/{name}")
        containers = self.store.pod_usage(ns, name) if pod is not None else None
        if pod is None:
            raise errors.not_found("pods", "", name)
        if containers is None:
            raise errors.not_found("pods", GROUP, f"{ns}/{name}")
        return _json(pod_metrics(pod, containers, time.time()))
