"""What ``Client.request`` puts on the wire: the URL (built from the server's parsed URL
for a plain path, parsed from the string otherwise: the same either way), the headers,
and no cookies (an API client keeps none, as client-go's)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from yarl import URL

from corral.client.rest import CONFIGMAPS, PODS, Client, KubeConfig

from .test_failover import serve_every_path

SERVERS = [
    "https://127.0.0.1:6443",
    "http://127.0.0.1:8080",
    "https://[::1]:6443",
    "https://API.Example.com",
    "https://api.example.com:443",
    "https://user:pw@api.example.com:6443",
    "https://api.example.com/k8s/clusters/c-1",  # a path of its own: always parsed
]
PATHS = [
    "/api/v1/namespaces/default/pods/web-1/status",
    "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-1.example",
    "/api/v1/nodes/n~1",
    "/api/v1/namespaces/default/pods/a b",
    "/api/v1/namespaces/default/pods/caf\u00e9",
    "/api/v1/namespaces/default/pods/x%2Fy",
    "/api/v1/namespaces/default/pods/../secrets",
    "/api/v1/namespaces/default/pods/./x",
    "/api/v1/namespaces/default/pods/",
    "/api/v1/namespaces/default/pods?limit=1",
    "/api/v1/namespaces/default/pods/x#f",
    "/healthz",
]


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("path", PATHS)
def test_the_url_is_the_one_the_string_makes(server: str, path: str) -> None:
    c = Client(KubeConfig(server, "", None))
    made, parsed = URL(c._url(server, path)), URL(server + path)
    assert made == parsed
    assert made.raw_path_qs == parsed.raw_path_qs  # the request target sent


def test_a_plain_path_is_not_parsed_again() -> None:
    server = "https://127.0.0.1:6443"
    c = Client(KubeConfig(server, "", None))
    assert isinstance(c._url(server, PATHS[0]), URL)
    assert isinstance(c._url(server, PATHS[3]), str)  # left to aiohttp
    prefixed = SERVERS[-1]
    assert isinstance(c._url(prefixed, PATHS[0]), str)


class Recording:
    """An HTTP server that records each request and answers it with a cookie."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, str, str]] = []
        self.runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        h = request.headers
        self.seen.append(
            (
                request.method,
                request.raw_path,
                h.get("Content-Type", ""),
                h.get("Cookie", ""),
                h.get("X-Fence", ""),
            )
        )
        resp = web.json_response({"kind": "ConfigMap", "metadata": {"name": "x"}})
        resp.set_cookie("session", "s1")
        return resp

    async def start(self) -> str:
        self.runner, port = await serve_every_path(self._handle)
        return f"http://localhost:{port}"  # a host name: a cookie jar would keep its cookies


@pytest.fixture
async def recording() -> AsyncIterator[tuple[Recording, str]]:
    srv = Recording()
    url = await srv.start()
    yield srv, url
    assert srv.runner is not None
    await srv.runner.cleanup()


async def test_requests_carry_their_headers_and_no_cookies(
    recording: tuple[Recording, str],
) -> None:
    srv, url = recording
    c = Client(KubeConfig(url, "tok", None))
    try:
        await c.get(CONFIGMAPS, "x", "default")
        await c.patch(PODS, "p 1", {"metadata": {}}, "default", sub="status")
        c.write_headers = {"X-Fence": "7"}
        await c.request("POST", PODS.path("default", "p", "binding"), body={}, decode=False)
        await c.get(CONFIGMAPS, "x", "default")
    finally:
        await c.close()
    assert srv.seen == [
        ("GET", "/api/v1/namespaces/default/configmaps/x", "", "", ""),
        (
            "PATCH",
            "/api/v1/namespaces/default/pods/p%201/status",
            "application/merge-patch+json",
            "",
            "",
        ),
        ("POST", "/api/v1/namespaces/default/pods/p/binding", "application/json", "", "7"),
        ("GET", "/api/v1/namespaces/default/configmaps/x", "", "", ""),  # no fence on a GET
    ]
