"""A plain-HTTP agent (no serving certificate) and what the API server sends it.

The scheme (``agent.corral.dev/scheme``) and the address of an agent are written by the
node itself, so a node could say ``http`` and read what the API server sends in clear:
the API server must never send its admin token there, only ``node_token`` bound to that
node, which the agent (holding the shared token) accepts and which is worth nothing at
the API server or at another node's agent.
"""

from __future__ import annotations

import ssl
from typing import Any, cast

import aiohttp
from aiohttp.test_utils import make_mocked_request
from yarl import URL

from corral.agent.server import AgentServer
from corral.apiserver.proxy import AgentProxy
from corral.util.bearer import bearer_matches, node_token

ADMIN = "admin-token-0123456789"


class NoContainers:
    def log_files(self, namespace: str, pod: str, container: str) -> None:
        return None

    def is_running(self, namespace: str, pod: str, container: str) -> bool:
        return False

    def exec_target(self, namespace: str, pod: str, container: str) -> None:
        return None


def _proxy(ssl_context: ssl.SSLContext | None) -> AgentProxy:
    return AgentProxy(cast(Any, None), ADMIN, ssl_context)


def test_the_admin_token_never_goes_to_a_plain_http_agent() -> None:
    request = make_mocked_request("GET", "/api/v1/namespaces/d/pods/p/log")
    url = URL("http://10.0.0.9:10250/containerLogs/d/p/c")
    for ctx in (None, ssl.create_default_context()):
        headers = _proxy(ctx)._headers(request, url, "evil")
        assert ADMIN not in headers["Authorization"]
        assert headers == {"Authorization": f"Bearer {node_token(ADMIN, 'evil')}"}
    # bound to the node: another node's agent takes another token
    assert node_token(ADMIN, "evil") != node_token(ADMIN, "n1")
    https = URL("https://10.0.0.9:10250/containerLogs/d/p/c")
    assert _proxy(ssl.create_default_context())._headers(request, https, "n1") == {}


def test_bearer_matches_non_ascii_is_a_mismatch_not_an_error() -> None:
    assert not bearer_matches("Bearer \u00e9t\u00e9", ADMIN)
    assert not bearer_matches("Bearer \udce9", ADMIN)  # surrogateescape'd header bytes
    assert bearer_matches(f"Bearer {ADMIN}", ADMIN)
    assert not bearer_matches("Bearer x", "")


async def test_a_plain_http_agent_takes_its_own_node_token_only() -> None:
    server = AgentServer(NoContainers(), ADMIN, "127.0.0.1", 0, node_name="n1")
    await server.start()
    url = f"http://127.0.0.1:{server.port}/containerLogs/d/p/c"
    try:
        async with aiohttp.ClientSession() as http:

            async def status(token: str) -> int:
                headers = {"Authorization": f"Bearer {token}"}
                async with http.get(url, headers=headers) as r:
                    return r.status

            assert await status(node_token(ADMIN, "n1")) == 404  # through: no such pod here
            assert await status(ADMIN) == 404  # its own token still works
            assert await status(node_token(ADMIN, "n2")) == 401
            assert await status("wrong") == 401
            # a non-ASCII token is a 401, not a 500
            async with http.get(url, headers={"Authorization": "Bearer \u00e9"}) as r:
                assert r.status == 401
    finally:
        await server.stop()


async def test_the_proxy_follows_no_redirect_of_an_agent() -> None:
    """A node's agent that answers with a redirect (to the API server itself, say, which
    the kubelet-client certificate would open as system:masters) is not followed: not by
    a WebSocket handshake (exec, attach, port-forward), not by a log GET."""
    from aiohttp import web

    from corral.apiserver.proxy import _relay_error

    hits: list[str] = []

    async def target(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="secrets")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/target")

    app = web.Application()
    app.router.add_get("/target", target)
    app.router.add_get("/exec/d/p/c", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    url = URL(f"http://127.0.0.1:{port}/exec/d/p/c")
    try:
        async with _proxy(None)._session() as session:
            try:
                await session.ws_connect(url)
            except aiohttp.WSServerHandshakeError as e:
                assert e.status == 302
            else:
                raise AssertionError("the handshake followed a redirect")
            async with session.get(url, allow_redirects=False) as resp:
                try:
                    await _relay_error(resp)
                except Exception as e:
                    assert "redirects forbidden" in str(e)
                    assert getattr(e, "code", 0) == 500
                else:
                    raise AssertionError("a redirect was relayed")
        assert hits == []
    finally:
        await runner.cleanup()


async def test_a_token_with_undecodable_bytes_is_refused_not_a_crash() -> None:
    """aiohttp hands a header's undecodable bytes over as lone surrogates; the review
    cache's key must not choke on them (a 500 from every face that asks TokenReview)."""
    from corral.client.reviews import Reviewer

    class NoOne:
        async def request(self, method: str, path: str, **_: Any) -> Any:
            return {"status": {}}

    assert await Reviewer(cast(Any, NoOne())).authenticate("\udce9\udcff") is None
