"""``/ui/faces/{mesos|marathon|chronos}/<rest>``: a reverse proxy from the page to the
Mesos master, Marathon and Chronos that this API server started beside itself.

Called by ``Dashboard.handle`` (``dashboard/__init__.py``) once the request's user is
known to be authenticated and not anonymous (401 otherwise); no API-server RBAC is asked:
the faces authorize every call themselves (``client/basic_auth.py``: the forwarded
``Authorization: Bearer T`` is reviewed by TokenReview, the operation by
SubjectAccessReview), so the page can do through the proxy exactly what the user's
token may do with the real clients. The page needs the proxy because the faces listen
on other ports (other origins: the CSP's ``connect-src 'self'`` and CORS would stop a
direct call) and speak plain HTTP.

Shaped so:

- One ``aiohttp.ClientSession`` per ``Faces``, made on first use and closed by
  ``close`` (``Server.stop``); connects time out after ``CONNECT_TIMEOUT``, a silent
  upstream after ``READ_TIMEOUT`` (none for ``text/event-stream``: Marathon's events).
- Forwarded: the method (GET, POST, PUT, DELETE), the raw path and query, the body
  (up to aiohttp's request limit), and only the request headers in ``FORWARDED``:
  no cookies, no ``Host``, no hop-by-hop headers. Answered: the face's status, body and
  headers minus the hop-by-hop ones (RFC 9110 7.6.1, and those ``Connection`` names),
  ``WWW-Authenticate`` (a browser would pop up its own password dialog over the page)
  and ``Set-Cookie``; plus ``ANSWER_HEADERS`` (``nosniff`` and a sandboxing CSP: a
  face's answer opened as a page of this origin runs nothing). Bodies of known length
  are read (up to ``MAX_BODY``, 502 past it), others streamed.
- A standby Mesos master answers ``307`` to its leader: followed here (``MAX_REDIRECTS``,
  307/308 only, with the same credentials: the leader is a server of the same cluster),
  since the browser could not follow it across origins.
- A face not started (port 0) or not listening: 503 Status "the Marathon API is not
  running beside this server"; a timeout: 504 Status. Errors are Kubernetes Status
  bodies; the faces' own error bodies pass through untouched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from corral.api import errors
from corral.util.leadership import HOP_BY_HOP

log = logging.getLogger("corral.dashboard.faces")

#: the faces, in the order the page shows them, and their names in messages
TITLES: dict[str, str] = {"mesos": "Mesos master", "marathon": "Marathon", "chronos": "Chronos"}
#: the open path each face answers without credentials (``/ui/info`` probes it)
PROBES: dict[str, str] = {"mesos": "/version", "marathon": "/ping", "chronos": "/ping"}
METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})
#: the request headers passed on (anything else stays here)
FORWARDED = (
    "Authorization",
    "Accept",
    "Accept-Encoding",
    "Content-Type",
    "If-None-Match",
    "If-Modified-Since",
    "Last-Event-ID",
)
#: the answer's headers not passed back: RFC 9110's hop-by-hop ones (the leader proxy's
#: list; its ``host`` is never in an answer), and what a browser must not see from a face
DROPPED = HOP_BY_HOP | {"content-length", "www-authenticate", "set-cookie", "server", "date"}
ANSWER_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'; frame-ancestors 'none'",
}
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0
PROBE_TIMEOUT = 1.0
#: the largest body read whole (a Mesos master's ``/state`` of thousands of agents fits)
MAX_BODY = 64 * 1024 * 1024
MAX_REDIRECTS = 3
STREAM_CHUNK = 64 * 1024


def not_running(name: str) -> errors.StatusError:
    return errors.StatusError(
        503,
        errors.SERVICE_UNAVAILABLE,
        f"the {TITLES.get(name, name)} API is not running beside this server",
    )


def answer_headers(upstream: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The face's answer headers a browser gets (module docstring)."""
    named = {h.strip().lower() for v in upstream.getall("Connection", ()) for h in v.split(",")}
    out: CIMultiDict[str] = CIMultiDict()
    for k, v in upstream.items():
        low = k.lower()
        if low not in DROPPED and low not in named:
            out.add(k, v)
    out.update(ANSWER_HEADERS)
    return out


def request_headers(incoming: Mapping[str, str]) -> dict[str, str]:
    """The request headers a face gets (``FORWARDED`` only)."""
    return {h: incoming[h] for h in FORWARDED if h in incoming}


class Faces:
    """The proxy to the faces at ``urls`` (name -> ``http://host:port``)."""

    def __init__(self, urls: Mapping[str, str]) -> None:
        self.urls = {name: url.rstrip("/") for name, url in urls.items() if name in TITLES}
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                auto_decompress=False,  # bodies pass through as the face encoded them
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT),
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def available(self) -> dict[str, bool]:
        """Whether each face answers (any HTTP answer counts) on its open path."""

        async def probe(name: str) -> bool:
            url = self.urls.get(name)
            if url is None:
                return False
            try:
                async with asyncio.timeout(PROBE_TIMEOUT):
                    async with self.session().get(url + PROBES[name], allow_redirects=False):
                        return True
            except (aiohttp.ClientError, TimeoutError, OSError):
                return False

        results = await asyncio.gather(*(probe(n) for n in TITLES))
        return dict(zip(TITLES, results, strict=True))

    async def proxy(self, request: web.Request, name: str, rest: str) -> web.StreamResponse:
        """Pass ``request`` to face ``name`` at ``rest`` (raw path and query, starting
        with ``/``) and its answer back (module docstring)."""
        if name not in TITLES:
            raise errors.path_not_found()
        base = self.urls.get(name)
        if base is None:
            raise not_running(name)
        if request.method not in METHODS:
            raise errors.method_not_allowed()
        body = await request.read() if request.body_exists else None
        headers = request_headers(request.headers)
        streaming = "text/event-stream" in request.headers.get("Accept", "")
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=CONNECT_TIMEOUT, sock_read=None if streaming else READ_TIMEOUT
        )
        url = URL(base + rest, encoded=True)
        try:
            for _ in range(MAX_REDIRECTS + 1):
                async with self.session().request(
                    request.method,
                    url,
                    data=body,
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                ) as up:
                    location = up.headers.get("Location")
                    if up.status in (307, 308) and location:
                        url = url.join(URL(location))
                        if url.scheme in ("http", "https"):
                            continue
                    return await self._answer(request, up)
            raise errors.StatusError(
                503, errors.SERVICE_UNAVAILABLE, f"the {TITLES[name]} API redirects too often"
            )
        except TimeoutError:  # aiohttp's ServerTimeoutError too
            raise errors.StatusError(
                504, errors.TIMEOUT, f"the {TITLES[name]} API did not answer in time"
            ) from None
        except (aiohttp.ClientConnectorError, ConnectionRefusedError) as e:
            log.debug("face %s at %s: %r", name, base, e)
            raise not_running(name) from None
        except (aiohttp.ClientError, OSError) as e:
            raise errors.StatusError(
                503, errors.SERVICE_UNAVAILABLE, f"error talking to the {TITLES[name]} API: {e}"
            ) from None

    async def _answer(self, request: web.Request, up: aiohttp.ClientResponse) -> web.StreamResponse:
        headers = answer_headers(up.headers)
        length = up.content_length
        if length is not None or request.method == "HEAD" or up.status in (204, 304):
            if length is not None and length > MAX_BODY:
                raise errors.StatusError(
                    502, errors.INTERNAL_ERROR, f"the answer is over {MAX_BODY} bytes"
                )
            body = await up.content.read()
            return web.Response(status=up.status, body=body, headers=headers)
        # no length: chunked or until close (event streams, large lists), passed on
        # as it arrives; past MAX_BODY (but for an event stream) the answer is cut off
        streaming = up.content_type == "text/event-stream"
        resp = web.StreamResponse(status=up.status, headers=headers)
        await resp.prepare(request)
        sent = 0
        try:
            async for chunk in up.content.iter_chunked(STREAM_CHUNK):
                sent += len(chunk)
                if sent > MAX_BODY and not streaming:
                    log.warning("face answer of %s cut off at %d bytes", request.path, MAX_BODY)
                    _abort(request)
                    return resp
                await resp.write(chunk)
        except (aiohttp.ClientError, TimeoutError) as e:  # the headers are sent: only stop
            log.debug("face stream of %s ended: %r", request.path, e)
            _abort(request)
            return resp
        await resp.write_eof()
        return resp


def _abort(request: web.Request) -> None:
    """End a streamed answer without its last chunk: the browser sees a broken answer,
    not a complete short one."""
    if request.transport is not None:
        request.transport.close()
