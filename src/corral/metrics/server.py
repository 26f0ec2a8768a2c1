"""``corral metrics-server``: the resource metrics API, scraped from the agents, as metrics-server.

``MetricsServer.run``:

1. serves HTTPS on ``--bind``:``--port`` with a self-signed certificate made at start
   (metrics-server's default; its APIService says ``insecureSkipTLSVerify: true``);
2. registers itself as metrics-server's manifest does: the Service
   ``kube-system/metrics-server`` (port 443 ``https``, no selector) with Endpoints naming
   ``--advertise-address`` and the port it listens on, and the APIService
   ``v1beta1.metrics.k8s.io`` (groupPriorityMinimum 100, versionPriority 100), each
   created or brought back to that shape; the API server's aggregation layer
   (``apiserver/aggregator.py``) then proxies ``/apis/metrics.k8s.io/v1beta1/...`` here;
3. lists and watches Nodes and Pods, and every ``--metric-resolution`` (15 s by default)
   scrapes each Ready node's agent, ``http://<InternalIP>:<kubeletEndpoint.Port>/metrics/resource``
   (``agent/resource_metrics.py``) with the kubeconfig's token, into a ``MetricsStore``.

API (GET only; ``Authorization: Bearer`` the kubeconfig's token, which is what the
aggregator forwards): ``/apis/metrics.k8s.io/v1beta1`` (APIResourceList),
``.../nodes[/NAME]`` and ``.../pods``, ``.../namespaces/NS/pods[/NAME]`` with
``labelSelector`` and ``fieldSelector`` (``metadata.name``, ``metadata.namespace``),
answered as NodeMetrics/PodMetrics(+List) JSON (``metrics/store.py``); a node or pod
without metrics yet is left out of lists and is a 404 Status when named, as upstream.
``/healthz``, ``/livez``, ``/readyz`` are public.

``main`` is the command (``cli/main.py`` delegates to it); ``serve`` is what ``corral up``
runs in the API server's process (``cli/loops.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import hmac
import ipaddress
import logging
import os
import socket
import ssl
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from corral.api import errors
from corral.api.selectors import (
    SelectorError,
    try_parse_field_selector,
    try_parse_label_selector,
)
from corral.client.informer import Informer
from corral.client.rest import ENDPOINTS, NODES, PODS, SERVICES, Client, Resource
from corral.metrics.store import (
    MetricsStore,
    metrics_list,
    node_metrics,
    parse_scrape,
    pod_metrics,
)
from corral.util.stopping import run_until_stopped

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


def self_signed(hosts: list[str]) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for ``hosts`` (IPs or names)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{NAME}@{int(time.time())}")])
    sans: list[x509.GeneralName] = [
        x509.DNSName(f"{NAME}.{NAMESPACE}.svc"),
        x509.DNSName("localhost"),
    ]
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as d:
        cert_file, key_file = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
        with open(cert_file, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_file, "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        ctx.load_cert_chain(cert_file, key_file)
    return ctx


def primary_address() -> str:
    """This host's address on its default route (127.0.0.1 without one)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))
        return str(s.getsockname()[0])
    return "127.0.0.1"


def node_address(node: Obj) -> tuple[str, int] | None:
    """(InternalIP, else Hostname; kubelet port) of a node, None without an agent port."""
    st = node.get("status") or {}
    port = ((st.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 0
    addrs = {a.get("type"): a.get("address") for a in st.get("addresses") or []}
    host = addrs.get("InternalIP") or addrs.get("Hostname")
    if not port or not host:
        return None
    return str(host), int(port)


def node_ready(node: Obj) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


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
    ) -> None:
        self.client = client
        self.token = client.config.token
        self.bind = bind
        self.port = port
        self.advertise = advertise or (
            bind if bind not in ("0.0.0.0", "", "::") else primary_address()
        )
        self.resolution = resolution
        self.store = MetricsStore()
        self.nodes = Informer(client, NODES)
        self.pods = Informer(client, PODS)
        self.ready = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve, register and scrape until cancelled."""
        ctx = await asyncio.to_thread(self_signed, [self.advertise, "127.0.0.1"])
        self._runner = web.AppRunner(self.build(), access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.bind, self.port, ssl_context=ctx)
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])
        log.info(
            "metrics API on https://%s:%d (advertised %s)", self.bind, self.port, self.advertise
        )
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=aiohttp.ClientTimeout(total=max(1.0, min(10.0, self.resolution))),
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
                "insecureSkipTLSVerify": True,
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
        targets: dict[str, tuple[str, int]] = {}
        for node in list(self.nodes.store.values()):
            name = node["metadata"]["name"]
            addr = node_address(node)
            if addr is not None and node_ready(node):
                targets[name] = addr
        for name in list(self.store.nodes):
            if name not in targets:
                self.store.forget(name)

        async def one(name: str, host: str, port: int) -> None:
            async with limit:
                await self.scrape(name, host, port)

        await asyncio.gather(*(one(n, h, p) for n, (h, p) in targets.items()))

    async def scrape(self, node: str, host: str, port: int) -> None:
        h = f"[{host}]" if ":" in host else host
        url = f"http://{h}:{port}/metrics/resource"
        assert self._session is not None
        try:
            async with self._session.get(url) as resp:
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
                auth = request.headers.get("Authorization", "")
                token = auth[7:].strip() if auth.startswith("Bearer ") else ""
                if not token or not hmac.compare_digest(token, self.token):
                    raise errors.unauthorized()
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
        if pod is None or containers is None:
            raise errors.not_found("pods", GROUP, name)
        return _json(pod_metrics(pod, containers, time.time()))


# --- the command --------------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """``15s``, ``1.5s``, ``500ms``, ``1m`` or plain seconds."""
    t = text.strip()
    for unit, mult in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if t.endswith(unit) and t[: -len(unit)].replace(".", "", 1).isdigit():
            return float(t[: -len(unit)]) * mult
    return float(t)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="corral metrics-server",
        description="Serve the resource metrics API (metrics.k8s.io/v1beta1) from the agents.",
    )
    p.add_argument("--kubeconfig", required=True, help="how to reach the API server")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"HTTPS port (default {DEFAULT_PORT}; 0: any)",
    )
    p.add_argument(
        "--advertise-address",
        default="",
        help="the address the API server reaches this one at (default: --bind, or this "
        "host's address when binding every address)",
    )
    p.add_argument(
        "--metric-resolution",
        type=parse_duration,
        default=DEFAULT_RESOLUTION,
        metavar="DURATION",
        help="how often the agents are scraped (default 15s)",
    )
    p.add_argument("--exit-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--log-level", default="info", type=str.lower, choices=["debug", "info", "warning", "error"]
    )
    return p


def _server(args: argparse.Namespace) -> MetricsServer:
    client = Client.from_kubeconfig(args.kubeconfig, user_agent="corral-metrics-server")
    return MetricsServer(
        client,
        bind=args.bind,
        port=args.port,
        advertise=args.advertise_address,
        resolution=args.metric_resolution,
    )


async def _serve(server: MetricsServer, exit_on_stdin_eof: bool) -> None:
    try:
        await run_until_stopped(
            server.run(), name="metrics-server", exit_on_stdin_eof=exit_on_stdin_eof
        )
    finally:
        await server.client.close()


def main(argv: list[str]) -> int:
    """``corral metrics-server --kubeconfig FILE [--port P] [--bind A]``; exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        server = _server(args)
    except (OSError, ValueError) as e:
        print(f"corral metrics-server: {e}", file=sys.stderr)
        return 2
    asyncio.run(_serve(server, args.exit_on_stdin_eof))
    return 0


async def serve(argv: list[str]) -> None:
    """``corral metrics-server ARGS`` inside another process (``corral up``): no signal
    handlers, no logging set-up. Bad arguments raise ``ValueError``."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        raise ValueError(f"corral metrics-server: bad arguments {argv}") from None
    server = _server(args)
    try:
        await server.run()
    finally:
        await server.client.close()
