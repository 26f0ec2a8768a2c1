"""The aggregation layer (apiserver/aggregator.py) against a real registry (SQLite in a
temporary directory, the watch cache) and a tiny HTTPS extension server with a
certificate from a test CA that believes X-Remote-* headers only from the front-proxy
client certificate: the Available reasons in upstream's order and wording, local
APIServices, the discovery check verifying ``caBundle`` and speaking as
``system:kube-aggregator``, the proxy naming the caller (never forwarding its
credentials or smuggled headers) and relaying an answer the backend would gzip, and the
wake-ups indexed by the backing Service. Discovery's merge of an APIService's version
into a local group is checked on ``Discovery`` itself."""

from __future__ import annotations

import base64
import gzip
import json
import ssl
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from corral.apiserver.aggregator import Aggregator, is_watch
from corral.apiserver.certs import ensure_pki, ensure_serving_pair
from corral.apiserver.client_certs import ensure_identity, pair_paths
from corral.apiserver.component_identities import FRONT_PROXY_CLIENT
from corral.apiserver.discovery import Discovery
from corral.apiserver.identity import UserInfo
from corral.apiserver.registry.table import RESOURCES
from corral.apiserver.store import Registry, WriteOptions
from corral.storage.cache import WatchCache
from corral.storage.sqlite import SQLiteStorage
from corral.util.clock import SystemClock

Obj = dict[str, Any]
TOKEN = "admin-token"
FRONT_PROXY_CN = (("commonName", "front-proxy-client"),)
GROUP, VERSION = "example.corral.dev", "v1"
NAME = f"{VERSION}.{GROUP}"
RESOURCE_LIST = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": f"{GROUP}/{VERSION}",
    "resources": [{"name": "things", "singularName": "", "namespaced": True, "kind": "Thing", "verbs": ["get", "list"]}],
}  # fmt: skip
OPTS = WriteOptions(field_manager="test")


@dataclass
class Backend:
    """An extension API server: wants the front proxy's certificate and an X-Remote-User,
    gzips when the client accepts it."""

    port: int = 0
    seen: list[Any] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(request.headers.copy())
        assert request.transport is not None
        cert = request.transport.get_extra_info("peercert") or {}
        if FRONT_PROXY_CN not in cert.get("subject", ()) or "X-Remote-User" not in request.headers:
            return web.json_response({"kind": "Status", "code": 401}, status=401)
        body = orjson.dumps(
            RESOURCE_LIST if request.path == f"/apis/{GROUP}/{VERSION}" else {"kind": "ThingList"}
        )
        if "gzip" in request.headers.get("Accept-Encoding", ""):  # as Go's servers do
            return web.Response(
                body=gzip.compress(body),
                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            )
        return web.Response(body=body, content_type="application/json")


@dataclass
class World:
    registry: Registry
    aggregator: Aggregator
    discovery: Discovery
    backend: Backend
    ca_pem: bytes
    other_ca_pem: bytes

    async def create(self, plural: str, obj: Obj, ns: str = "") -> None:
        group = "apiregistration.k8s.io" if plural == "apiservices" else ""
        info = self.registry.by_gvr[(group, "v1", plural)]
        await self.registry.create(info, ns, obj, OPTS)

    def condition(self) -> tuple[str, str, str]:
        info = self.registry.by_gvr[("apiregistration.k8s.io", "v1", "apiservices")]
        entry = self.registry.entry(info, "", NAME)
        assert entry is not None
        [c] = [c for c in entry.obj()["status"]["conditions"] if c["type"] == "Available"]
        return c["status"], c["reason"], c["message"]

    async def check(self) -> tuple[str, str, str]:
        await self.aggregator.check_all()
        return self.condition()


def api_service(ca_pem: bytes | None = None, **spec: Any) -> Obj:
    s: Obj = {
        "group": GROUP,
        "version": VERSION,
        "groupPriorityMinimum": 100,
        "versionPriority": 100,
        "service": {"namespace": "ns", "name": "backend", "port": 443},
        **spec,
    }
    if ca_pem is not None:
        s["caBundle"] = base64.b64encode(ca_pem).decode()
    return {"metadata": {"name": NAME}, "spec": s}


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    ensure_pki(tmp_path / "ca", [])
    crt, key = ensure_serving_pair(tmp_path / "ca", "backend", ["backend.ns.svc"])
    ensure_pki(tmp_path / "other", [])
    ensure_identity(tmp_path / "ca", FRONT_PROXY_CLIENT)  # and its own CA
    backend = Backend()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", backend.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    ctx.verify_mode = ssl.CERT_OPTIONAL  # client certificates from the front-proxy CA
    ctx.load_verify_locations(tmp_path / "ca" / "pki" / "front-proxy-ca.crt")
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    backend.port = int(runner.addresses[0][1])
    storage = SQLiteStorage(tmp_path / "state.db")
    await storage.start()
    cache = WatchCache()
    registry = Registry(storage, cache, RESOURCES, SystemClock())
    kvs, rev = await storage.list("/registry/")
    cache.load(kvs, rev, [], rev)
    storage.listeners.append(cache.apply)
    ns_info = registry.by_gvr[("", "v1", "namespaces")]
    await registry.create(ns_info, "", {"metadata": {"name": "ns"}}, OPTS)
    discovery = Discovery(registry.resources, "127.0.0.1:6443")
    aggregator = Aggregator(registry, discovery, pair_paths(tmp_path / "ca", FRONT_PROXY_CLIENT))
    try:
        yield World(
            registry,
            aggregator,
            discovery,
            backend,
            (tmp_path / "ca" / "pki" / "ca.crt").read_bytes(),
            (tmp_path / "other" / "pki" / "ca.crt").read_bytes(),
        )
    finally:
        if aggregator._session is not None:
            await aggregator._session.close()
        await storage.close()
        await runner.cleanup()


def service(port: int = 443) -> Obj:
    return {
        "metadata": {"name": "backend", "namespace": "ns"},
        "spec": {"type": "ClusterIP", "clusterIP": "None", "ports": [{"name": "https", "port": port}]},
    }  # fmt: skip


def endpoints(port: int, name: str = "https", ip: str = "127.0.0.1") -> Obj:
    return {
        "metadata": {"name": "backend", "namespace": "ns"},
        "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": name, "port": port}]}],
    }


async def test_availability_reasons_in_upstream_order(world: World) -> None:
    await world.create("apiservices", api_service(world.ca_pem))
    assert await world.check() == (
        "False", "ServiceNotFound", 'service/backend in "ns" is not present',
    )  # fmt: skip
    await world.create("services", service(port=8443), "ns")
    assert await world.check() == (
        "False", "ServicePortError", 'service/backend in "ns" is not listening on port 443',
    )  # fmt: skip
    info = world.registry.by_gvr[("", "v1", "services")]
    await world.registry.update_obj(
        info, world.registry.key(info, "ns", "backend"),
        lambda o: o["spec"].update(ports=[{"name": "https", "port": 443}]) or True,
    )  # fmt: skip
    assert (await world.check())[1:] == (
        "EndpointsNotFound", 'cannot find endpoints for service/backend in "ns"',
    )  # fmt: skip
    await world.create("endpoints", endpoints(world.backend.port, name="other"), "ns")
    assert (await world.check())[1] == "MissingEndpoints"


async def with_backend(world: World, **spec: Any) -> None:
    await world.create("services", service(), "ns")
    await world.create("endpoints", endpoints(world.backend.port), "ns")
    await world.create("apiservices", api_service(**spec))


async def test_verified_backend_passes_and_is_published(world: World) -> None:
    await with_backend(world, ca_pem=world.ca_pem)
    assert await world.check() == ("True", "Passed", "all checks passed")
    seen = world.backend.seen[-1]
    assert seen["X-Remote-User"] == "system:kube-aggregator"
    assert seen.getall("X-Remote-Group") == ["system:masters"]
    assert "Authorization" not in seen
    assert orjson.loads(world.discovery.resource_lists[f"{GROUP}/{VERSION}"]) == RESOURCE_LIST
    assert GROUP in [g["name"] for g in orjson.loads(world.discovery.apis)["groups"]]


async def test_wrong_ca_fails_before_any_request(world: World) -> None:
    await with_backend(world, ca_pem=world.other_ca_pem)
    status, reason, message = await world.check()
    assert (status, reason) == ("False", "FailedDiscoveryCheck")
    assert "certificate verify failed" in message, message
    assert world.backend.seen == []  # no request left


async def test_insecure_skip_verify_still_authenticates_as_the_front_proxy(
    world: World,
) -> None:
    """As upstream: the client certificate is presented either way (it cannot be
    replayed, unlike a token), so an unverified backend still knows the aggregator."""
    await with_backend(world, insecureSkipTLSVerify=True)
    assert await world.check() == ("True", "Passed", "all checks passed")
    assert world.backend.seen[-1]["X-Remote-User"] == "system:kube-aggregator"


async def test_backend_refusing_the_aggregator_is_unavailable_but_listed(
    world: World,
) -> None:
    """Without the front-proxy certificate the backend believes no header: 401."""
    world.aggregator.proxy_client = None
    await with_backend(world, ca_pem=world.ca_pem)
    url = f"https://127.0.0.1:{world.backend.port}/apis/{GROUP}/{VERSION}"
    assert await world.check() == (
        "False", "FailedDiscoveryCheck",
        f"failing or missing response from {url}: bad status from {url}: 401",
    )  # fmt: skip
    # unavailable, it stays listed (upstream: kubectl warns it cannot handle the request)
    agg = orjson.loads(world.discovery.aggregated_apis)
    [item] = [i for i in agg["items"] if i["metadata"]["name"] == GROUP]
    assert [(v["version"], v["freshness"]) for v in item["versions"]] == [(VERSION, "Stale")]
    assert GROUP in [g["name"] for g in orjson.loads(world.discovery.apis)["groups"]]
    assert f"{GROUP}/{VERSION}" not in world.discovery.resource_lists


async def test_deleted_apiservice_is_withdrawn(world: World) -> None:
    await with_backend(world, ca_pem=world.ca_pem)
    await world.check()
    info = world.registry.by_gvr[("apiregistration.k8s.io", "v1", "apiservices")]
    await world.registry.force_delete(info, world.registry.key(info, "", NAME))
    await world.aggregator.check_all()
    assert GROUP not in [g["name"] for g in orjson.loads(world.discovery.apis)["groups"]]


async def test_proxy_relays_what_the_backend_would_gzip(world: World) -> None:
    await with_backend(world, ca_pem=world.ca_pem)
    await world.check()
    claimed = world.aggregator.claims(GROUP, VERSION)
    assert claimed is not None

    async def handler(request: web.Request) -> web.StreamResponse:
        # what app.py's middleware leaves: the authenticated (impersonated) caller
        user = UserInfo(
            "alice", ("dev", "system:authenticated"), extra={"scopes.example/a b": ["x", "y"]}
        )
        with warnings.catch_warnings():  # app.py's string key, as the middleware sets it
            warnings.simplefilter("ignore", web.NotAppKeyWarning)
            request["user"] = user
        return await world.aggregator.proxy(request, claimed)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    try:
        async with aiohttp.ClientSession(auto_decompress=False) as s:
            url = f"http://127.0.0.1:{port}/apis/{GROUP}/{VERSION}/namespaces/ns/things"
            headers = {
                "Authorization": f"Bearer {TOKEN}",
                "X-Remote-User": "root",  # smuggled: never reaches the backend
                "X-Remote-Extra-Scopes": "all",
            }
            async with s.get(url, headers=headers, skip_auto_headers=["Accept-Encoding"]) as r:
                body, encoding = await r.read(), r.headers.get("Content-Encoding")
    finally:
        await runner.cleanup()
    seen = world.backend.seen[-1]
    assert seen["Accept-Encoding"] == "identity"
    assert "Authorization" not in seen
    assert seen.getall("X-Remote-User") == ["alice"]
    assert seen.getall("X-Remote-Group") == ["dev", "system:authenticated"]
    assert seen.getall("X-Remote-Extra-Scopes.example%2Fa%20b") == ["x", "y"]
    assert "X-Remote-Extra-Scopes" not in seen
    # whatever the backend chose, what reaches the client says how it is encoded
    plain = gzip.decompress(body) if encoding == "gzip" else body
    assert json.loads(plain) == {"kind": "ThingList"}
    assert encoding in (None, "gzip")


async def test_local_apiservices_are_registered_and_available(world: World) -> None:
    await world.aggregator.ensure_local()
    info = world.registry.by_gvr[("apiregistration.k8s.io", "v1", "apiservices")]
    entry = world.registry.entry(info, "", "v1.apps")
    assert entry is not None
    obj = entry.obj()
    assert obj["spec"].get("service") is None and obj["spec"]["versionPriority"] == 15
    [c] = obj["status"]["conditions"]
    assert (c["status"], c["reason"]) == ("True", "Local")


async def test_only_the_backing_service_wakes_the_aggregator(world: World) -> None:
    await with_backend(world, ca_pem=world.ca_pem)
    world.aggregator._wake.clear()
    world.aggregator._dirty.clear()
    await world.create("services", {"metadata": {"name": "unrelated", "namespace": "ns"},
                                    "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}, "ns")  # fmt: skip
    assert not world.aggregator._wake.is_set()
    info = world.registry.by_gvr[("", "v1", "endpoints")]
    await world.registry.update_obj(
        info,
        world.registry.key(info, "ns", "backend"),
        lambda o: bool(o.update(subsets=[])) or True,
    )
    assert world.aggregator._wake.is_set() and world.aggregator._dirty == {NAME}


@pytest.mark.parametrize(
    ("query", "path", "want"),
    [({"watch": "true"}, "/apis/g/v/things", True), ({}, "/apis/g/v/watch/things", True),
     ({"watch": "false"}, "/apis/g/v/things", False), ({}, "/apis/g/v/things", False)],
    ids=["watch-param", "watch-path", "watch-false", "plain"],
)  # fmt: skip
def test_is_watch(query: dict[str, str], path: str, want: bool) -> None:
    from aiohttp.test_utils import make_mocked_request
    from yarl import URL

    request = make_mocked_request("GET", str(URL(path).with_query(query)))
    assert is_watch(request) is want


# --- discovery: an APIService's version in a local group ---------------------------------


def test_remote_version_merges_into_a_local_group_and_goes_away() -> None:
    d = Discovery(RESOURCES, "127.0.0.1:6443")
    before = (d.apis, d.aggregated_apis, d.group_docs["apps"], d.resource_lists["apps/v1"])
    extra = {"kind": "APIResourceList", "groupVersion": "apps/v2alpha1", "resources": []}
    d.set_aggregated("apps/v2alpha1", extra, version_priority=10)
    apps = json.loads(d.group_docs["apps"])
    assert [v["version"] for v in apps["versions"]] == ["v1", "v2alpha1"]
    assert apps["preferredVersion"]["version"] == "v1"
    agg = orjson.loads(d.aggregated_apis)
    [item] = [i for i in agg["items"] if i["metadata"]["name"] == "apps"]
    assert [v["version"] for v in item["versions"]] == ["v1", "v2alpha1"]
    assert any(r["resource"] == "deployments" for r in item["versions"][0]["resources"])
    assert "apps/v1" in d.resource_lists and "apps/v2alpha1" in d.resource_lists
    d.set_aggregated("apps/v2alpha1", extra, version_priority=20)  # preferred by priority
    assert json.loads(d.group_docs["apps"])["preferredVersion"]["version"] == "v2alpha1"
    d.set_aggregated("apps/v2alpha1", None)
    assert (d.apis, d.aggregated_apis, d.group_docs["apps"], d.resource_lists["apps/v1"]) == before
    assert "apps/v2alpha1" not in d.resource_lists


def test_remote_version_taking_over_a_local_one_is_restored_when_withdrawn() -> None:
    d = Discovery(RESOURCES, "127.0.0.1:6443")
    local = d.resource_lists["apps/v1"]
    remote = {"kind": "APIResourceList", "groupVersion": "apps/v1", "resources": []}
    d.set_aggregated("apps/v1", remote, version_priority=15)
    assert orjson.loads(d.resource_lists["apps/v1"]) == remote
    d.set_aggregated("apps/v1", None)
    assert d.resource_lists["apps/v1"] == local
