"""What an elected HTTP service (the Mesos master, Marathon, Chronos) knows of its
leadership, and the reverse proxy a standby uses to pass a request on to the leader.

Several copies of each service run at once; one holds its Lease and acts, the others are
standbys whose HTTP listeners still answer (``cli/scheduler.py``, ``cli/marathon.py``,
``cli/chronos.py`` start them before leadership). The elector
(``client.leaderelection.LeaderElector``) is put on the service's aiohttp app under
``LEADERSHIP``; no such key means election is off and the service always leads.

What a standby answers is each service's own business (``mesos/http.py`` redirects with
307, as Mesos' ``Master::Http::redirect``; ``marathon/standby.py`` and
``chronos/http.py`` proxy, as Marathon's ``LeaderProxyFilter`` and Chronos'
``RedirectFilter``); ``LeaderProxy`` is the proxying they share: the request (method,
path, raw query, headers but the hop-by-hop ones, body streamed) is sent to the leader
and its answer streamed back unchanged (status, headers, bytes: no decompression).
The request body is read whole first (requests to these APIs are small; the app's
``client_max_size`` bounds it) so that it is the same whether or not a middleware read
it already.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

import aiohttp
import yarl
from aiohttp import web

#: headers a proxy does not pass on (RFC 9110 section 7.6.1), and Host (the leader's own)
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
#: how long a standby waits for a leader to show up (Marathon: 10 x 250 ms)
LEADER_WAIT = 2.5
LEADER_POLL = 0.25


class Leadership(Protocol):
    """What the HTTP layer reads of an elector."""

    @property
    def is_leader(self) -> bool: ...

    def leader_advertise(self) -> dict[str, str] | None:
        """The live holder's advertised listeners (``{"mesos": "host:port", ...}``), this
        process's own while it leads; None when no one holds the Lease."""
        ...


@runtime_checkable
class Advertising(Protocol):
    """An elector that says what it advertises while leading (``LeaderElector``)."""

    advertise: dict[str, str]


@runtime_checkable
class Abdicable(Protocol):
    """An elector that can give its leadership up (Marathon's ``DELETE /v2/leader``)."""

    async def abdicate(self) -> None: ...


#: the app key of the elector (absent: election off, always the leader)
LEADERSHIP: web.AppKey[Leadership] = web.AppKey("corral.leadership")
#: set once the elected service has loaded its state from the store (absent: nothing to
#: wait for). Until then the holder of the Lease does not lead, as Marathon's
#: ``isLeader`` turns true only after its state is loaded: requests to it wait
#: (``wait_for_leader``) or are refused, never answered from an empty state
LOADED: web.AppKey[asyncio.Event] = web.AppKey("corral.leadership.loaded", asyncio.Event)


def leadership(app: web.Application) -> Leadership | None:
    return app.get(LEADERSHIP)


def leads(app: web.Application) -> bool:
    """This process leads (or election is off), with its state loaded (``LOADED``)."""
    lead = app.get(LEADERSHIP)
    if lead is None:
        return True
    loaded = app.get(LOADED)
    return lead.is_leader and (loaded is None or loaded.is_set())


def leader_of(app: web.Application, key: str) -> str | None:
    """The ``host:port`` the live leader advertises for ``key``; None when there is no
    leader or it does not advertise that listener."""
    lead = app.get(LEADERSHIP)
    if lead is None:
        return None
    advertise = lead.leader_advertise() or {}
    return advertise.get(key) or None


def own_address(request: web.Request, key: str) -> str:
    """This listener's ``host:port``: what it advertises for ``key`` on the Lease when
    leading (so it is recognised there), else the socket the request came in on."""
    lead = request.app.get(LEADERSHIP)
    if isinstance(lead, Advertising) and lead.advertise.get(key):
        return lead.advertise[key]
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    if isinstance(sock, tuple) and len(sock) >= 2:
        host = str(sock[0])
        return f"[{host}]:{sock[1]}" if ":" in host else f"{host}:{sock[1]}"
    return request.host


async def wait_for_leader(request: web.Request, key: str) -> str | None:
    """The leader to pass ``request`` on to, or None (this process leads: serve it).
    While the Lease names nobody, or names this very listener though this process does
    not lead (a Lease left by this process's previous run), wait up to ``LEADER_WAIT``
    for a consistent answer, as Marathon's filter does; then raise ``NoLeader`` (the
    caller renders it in its protocol's shape)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LEADER_WAIT
    me = own_address(request, key)
    while True:
        if leads(request.app):
            return None
        target = leader_of(request.app, key)
        if target is not None and target != me:
            return target
        if loop.time() >= deadline:
            raise NoLeader()
        await asyncio.sleep(LEADER_POLL)


class NoLeader(Exception):
    """No leader to pass a request on to."""


class ProxyError(Exception):
    """The leader could not be reached: ``status`` (502 refused, 504 timed out) and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class LeaderProxy:
    """Passes requests on to the leader of ``key`` over one keep-alive session (made on
    first use, closed with the app: ``attach``). ``via`` names the header marking proxied
    requests and answers (``Via``, RFC 9110; Marathon's ``X-Marathon-Via``) with this
    listener's ``1.1 host:port``, so a request that comes back is refused as a loop."""

    def __init__(
        self,
        key: str,
        *,
        via: str = "Via",
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.key = key
        self.via = via
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None

    def attach(self, app: web.Application) -> None:
        """Close the session when ``app`` is cleaned up."""
        app.on_cleanup.append(self._close)

    async def _close(self, _app: web.Application) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    def looped(self, request: web.Request) -> bool:
        """The request was already passed on by this very listener."""
        mine = self.via_value(request)
        return any(
            part.strip() == mine
            for value in request.headers.getall(self.via, [])
            for part in value.split(",")
        )

    def via_value(self, request: web.Request) -> str:
        return f"1.1 {own_address(request, self.key)}"

    async def forward(self, request: web.Request, leader: str) -> web.StreamResponse:
        """Send ``request`` to ``leader`` (``host:port``) and stream its answer back.
        Raises ``ProxyError`` when the leader cannot be reached before it answered."""
        url = yarl.URL(f"http://{leader}{request.raw_path}", encoded=True)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        peer = request.remote or ""
        forwarded = request.headers.get("X-Forwarded-For")
        headers = [(k, v) for k, v in headers if k.lower() != "x-forwarded-for"]
        headers.append(("X-Forwarded-For", f"{forwarded}, {peer}" if forwarded else peer))
        headers.append((self.via, self.via_value(request)))
        # read whole (within the app's client_max_size): a middleware may have read it
        data = await request.read() if request.body_exists else None
        try:
            upstream = await self._get_session().request(
                request.method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        except aiohttp.ClientConnectorError as e:
            raise ProxyError(502, f"Connection to leader refused: {e}") from None
        except TimeoutError:
            raise ProxyError(504, "Connection to leader timed out") from None
        except aiohttp.ClientError as e:
            raise ProxyError(502, f"Failed to reach the leader: {e}") from None
        try:
            out = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for k, v in upstream.headers.items():
                if k.lower() not in HOP_BY_HOP:
                    out.headers.add(k, v)
            out.headers.add(self.via, self.via_value(request))
            await out.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await out.write(chunk)
            except (aiohttp.ClientError, TimeoutError):
                # the answer is under way: all that is left is to cut it short
                if request.transport is not None:
                    request.transport.close()
                return out
            await out.write_eof()
            return out
        finally:
            upstream.release()
