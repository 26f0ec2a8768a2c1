"""Chronos with several instances: what a standby answers, and ``/leader``.

Every instance serves the REST API; one is elected (``util.leadership.LEADERSHIP`` on
the app, set by ``cli/chronos.py``; absent: this instance always leads). As Chronos'
``RedirectFilter`` (mesos/chronos ``scheduler/api/RedirectFilter.scala``), a standby
passes every request on to the leader — method, path, query, headers (``Authorization``
too), body — and streams the leader's answer back (status, headers, bytes). A leader that
cannot be reached is Chronos' ``500 Error proxying request to leader (maybe the
leadership just changed?)``; while no one leads, a standby waits up to 2.5 s for a
leader, then answers ``503`` (Chronos fails there with a 500 and a stack trace), both
in Chronos' ``{"message", "status"}`` shape. Unlike Chronos, the proxy marks what it
passes on with ``Via: 1.1 host:port`` (RFC 9110) and refuses a request that comes back
to it (``502 Detected proxying loop.``), as Marathon's does.

Answered by every instance itself: ``/leader`` (and ``/v1/scheduler/leader``,
``/scheduler/leader``): ``{"leader": "host:port"}``, the live Lease holder's advertised
address; and ``/ping`` (this instance is alive).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from corral.util import leadership as lead

PROXY_ERROR = "Error proxying request to leader (maybe the leadership just changed?)"
NO_LEADER = "There is no leader"
LOOP = "Detected proxying loop."
#: paths a standby answers itself (GET)
LOCAL = frozenset({"/leader", "/v1/scheduler/leader", "/scheduler/leader", "/ping"})

PROXY_KEY = web.AppKey("chronos_leader_proxy", lead.LeaderProxy)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Render = Callable[[int, str], web.Response]


def install(app: web.Application) -> None:
    """The proxy (closed with ``app``) that ``middleware`` uses."""
    proxy = lead.LeaderProxy("chronos")
    proxy.attach(app)
    app[PROXY_KEY] = proxy


def middleware(render: Render) -> Middleware:
    """The standby's middleware; ``render(status, message)`` makes Chronos' error body."""

    @web.middleware
    async def standby(request: web.Request, handler: Handler) -> web.StreamResponse:
        if lead.leads(request.app) or (request.method == "GET" and request.path in LOCAL):
            return await handler(request)
        proxy = request.app[PROXY_KEY]
        if proxy.looped(request):
            return render(502, LOOP)
        try:
            leader = await lead.wait_for_leader(request, "chronos")
        except lead.NoLeader:
            return render(503, NO_LEADER)
        if leader is None:  # this instance was elected meanwhile
            return await handler(request)
        try:
            return await proxy.forward(request, leader)
        except lead.ProxyError as e:
            return render(500, f"{PROXY_ERROR}: {e.message}")

    return standby


def leader(request: web.Request, own: str) -> str | None:
    """The leader's ``host:port``: the Lease holder's advertised Chronos address; this
    instance's ``own`` when election is off."""
    if lead.leadership(request.app) is None:
        return own
    where = lead.leader_of(request.app, "chronos")
    if where is None and lead.leads(request.app):
        where = own
    return where
