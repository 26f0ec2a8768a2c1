"""Marathon with several instances: what a standby answers, and ``/v2/leader``.

Every instance serves the REST API; one is elected (``util.leadership.LEADERSHIP`` on
the app, set by ``cli/marathon.py``; absent: this instance always leads). As Marathon's
``LeaderProxyFilter`` (mesosphere/marathon ``api/LeaderProxyFilter.scala``,
``api/forwarder/*``):

- the leader serves every request and marks its answers ``X-Marathon-Leader:
  http://host:port``;
- a standby passes every request on to the leader (method, path, query, headers with
  ``Authorization``, body; the answer streamed back with the leader's headers) adding
  ``X-Marathon-Via: 1.1 host:port`` both ways and ``X-Forwarded-For``; a request that
  already carries its own Via is a loop: ``502 Detected proxying loop.``; ``/v2/events``
  is redirected (``302``) instead, as Marathon does, and ``marathon``'s ``event_stream``
  follows it; a leader that refuses the connection is ``502``, one that does not answer
  ``504``;
- while no one leads, a standby waits up to 2.5 s (Marathon: 10 x 250 ms) for a leader,
  then answers ``502 Could not determine the current leader``.

Answered by every instance itself: ``GET /v2/leader`` (``{"leader": "host:port"}``, the
live Lease holder's advertised address, or ``404 There is no leader``) and ``/ping``
(this instance is alive; Marathon proxies it, which makes a liveness probe fail with the
leader). ``DELETE /v2/leader`` reaches the leader, which gives its Lease up
(``Leadership abdicated``) so another instance takes over.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from corral.marathon.http_common import json_response, message, service
from corral.util import leadership as lead

LEADER_HEADER = "X-Marathon-Leader"
VIA_HEADER = "X-Marathon-Via"
NO_CURRENT_LEADER = "Could not determine the current leader"
LOOP = "Detected proxying loop."
EVENTS_PATH = "/v2/events"
#: (method, path) a standby answers itself
LOCAL = frozenset({("GET", "/v2/leader"), ("HEAD", "/v2/leader"), ("GET", "/ping")})

PROXY_KEY = web.AppKey("marathon_leader_proxy", lead.LeaderProxy)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def install(app: web.Application) -> None:
    """The proxy, the leader header and the ``/v2/leader`` routes on ``app`` (before
    its other middlewares run: ``make_app`` puts ``middleware`` right after ``errors``)."""
    proxy = lead.LeaderProxy("marathon", via=VIA_HEADER)
    proxy.attach(app)
    app[PROXY_KEY] = proxy
    app.on_response_prepare.append(_mark_leader)
    app.router.add_get("/v2/leader", get_leader)
    app.router.add_delete("/v2/leader", abdicate)


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    if lead.leads(app) or (request.method, request.path) in LOCAL:
        return await handler(request)
    proxy = app[PROXY_KEY]
    if proxy.looped(request):
        return message(502, LOOP)
    try:
        leader = await lead.wait_for_leader(request, "marathon")
    except lead.NoLeader:
        return message(502, NO_CURRENT_LEADER)
    if leader is None:  # this instance was elected meanwhile
        return await handler(request)
    if request.path == EVENTS_PATH or request.path.startswith(EVENTS_PATH + "/"):
        return web.Response(status=302, headers={"Location": f"http://{leader}{request.raw_path}"})
    try:
        return await proxy.forward(request, leader)
    except lead.ProxyError as e:
        return message(e.status, e.message)


async def _mark_leader(request: web.Request, response: web.StreamResponse) -> None:
    if VIA_HEADER in response.headers or not lead.leads(request.app):
        return  # a standby's proxied answer carries the leader's own header
    response.headers[LEADER_HEADER] = (
        f"http://{_leader(request) or lead.own_address(request, 'marathon')}"
    )


def _leader(request: web.Request) -> str | None:
    """The leader's ``host:port``: the Lease holder's advertised Marathon address; with
    election off, this instance while its framework is subscribed (``Service.leader``)."""
    if lead.leadership(request.app) is None:
        return service(request).leader()
    where = lead.leader_of(request.app, "marathon")
    if where is None and lead.leads(request.app):
        where = lead.own_address(request, "marathon")
    return where


async def get_leader(request: web.Request) -> web.Response:
    where = _leader(request)
    if where is None:
        return message(404, "There is no leader")
    return json_response({"leader": where})


async def abdicate(request: web.Request) -> web.Response:
    """``DELETE /v2/leader`` (on the leader: a standby passed it on): release the Lease."""
    elector = lead.leadership(request.app)
    if elector is None:
        return message(400, "Leader election is off: there is no other Marathon to abdicate to")
    if not elector.is_leader:
        return message(404, "There is no leader")
    if not isinstance(elector, lead.Abdicable):
        return message(501, "This Marathon cannot abdicate")
    # answer first: stepping down ends this process's term (and, under a supervisor, the
    # process: cli/marathon.py), as Marathon answers before its abdication delay
    resp = message(200, "Leadership abdicated")
    await resp.prepare(request)
    await resp.write_eof()
    await elector.abdicate()
    return resp
