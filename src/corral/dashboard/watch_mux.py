"""``GET /ui/watch?w=PATH&w=PATH...``: many API watches carried to the page in one
response, so a page that keeps a dozen lists live holds one HTTP/1.1 connection.

Called by ``Dashboard.handle`` (``dashboard/__init__.py``) once the caller is known to
be an authenticated, non-anonymous user (401 otherwise). Why it exists: a browser opens
at most six HTTP/1.1 connections to one origin and every watch holds one for as long as
it runs, so a page watching six lists had nothing left for its other requests
(``static/js/api.js`` multiplexes every live list through this path).

Each ``w`` is an API watch path with its query, as a client would send it
(``/api/v1/pods?watch=1&resourceVersion=123&allowWatchBookmarks=true``): only under
``/api/`` or ``/apis/``, ``watch`` 1 or true, no dot segments, printable ASCII, at most
``MAX_WATCHES``; anything else is a 400 Status before the answer starts. Each watch is
opened against this very API server over loopback (``api_url``, trusting its CA with
``ssl``) with the caller's own ``Authorization`` header, so authentication, RBAC, flow
control and audit apply to each exactly as to a direct watch: a user who may watch pods
but not secrets gets the pods and an ``END 403`` for the secrets.

The answer is chunked ``text/plain``, one line per upstream line (framing below); a
blank line every ``HEARTBEAT`` seconds when nothing else was sent, so the page can tell
a quiet stream from a dead one. The page's line, for watch number ``i`` (0-based, in the
order of the ``w`` parameters)::

    i<TAB><the upstream's line, bytes as received, without its newline>
    i<TAB>END <http status><TAB><the upstream's body, when the status is not 200>

``END`` comes once per watch, when its upstream ends (200: the server closed the watch)
or fails (its status and Status body; a connection failure is ``END 503``, a broken
stream or an over-long line ``END 502``, newlines in a body become spaces); the others
go on. The answer ends after the last ``END``. A client that goes away cancels this
handler (the API server runs aiohttp with ``handler_cancellation``), which closes every
upstream.

Shaped so: one reader task per upstream in a ``TaskGroup``, and one writer (the handler
itself) that takes framed lines from a bounded queue (a slow page slows the readers,
which slows the upstream watches: the API server's slow-watcher budget then applies as
for any watch), batches what is queued into one chunk, and writes the heartbeat when
the queue stays empty. One ``aiohttp.ClientSession`` per ``WatchMux``, made on first use
and closed by ``close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Sequence
from urllib.parse import unquote

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from corral.api import errors

log = logging.getLogger("corral.dashboard.watch_mux")

MAX_WATCHES = 16
HEARTBEAT = 30.0
CONNECT_TIMEOUT = 5.0
#: the longest upstream line passed on (an event of one object: etcd's limit is 1.5 MiB)
MAX_LINE = 16 * 1024 * 1024
#: how much of a refusing upstream's body its END line carries
MAX_ERROR_BODY = 64 * 1024
#: framed lines waiting for the writer (per answer); full, the readers wait
QUEUE_LINES = 256
#: the most bytes the writer joins into one chunk
WRITE_BATCH = 256 * 1024
HEADERS = {
    "Content-Type": "text/plain; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
USER_AGENT = "corral-dashboard/watch-mux"
#: a framed line for the writer, and whether it is its watch's END line
Framed = tuple[bytes, bool]


class LineTooLong(Exception):
    """An upstream line past ``MAX_LINE``: that watch ends with ``END 502``."""


def parse_watches(values: Sequence[str]) -> list[str]:
    """The ``w`` parameters as upstream paths (module docstring), or a 400 Status."""
    if not values:
        raise errors.bad_request("at least one w=<watch path> is required")
    if len(values) > MAX_WATCHES:
        raise errors.bad_request(f"at most {MAX_WATCHES} watches per stream, got {len(values)}")
    for w in values:
        why = _refusal(w)
        if why:
            raise errors.bad_request(f"w={w[:200]!r}: {why}")
    return list(values)


def _refusal(w: str) -> str:
    """Why ``w`` is not a watch path this mux opens; empty when it is."""
    if not w.isascii() or any(c <= " " or c == "\x7f" for c in w):
        return "only printable ASCII without spaces (percent-encode the rest)"
    if "#" in w:
        return "no fragment"
    path, q, query = w.partition("?")
    if not (path in ("/api", "/apis") or path.startswith(("/api/", "/apis/"))):
        return "only paths under /api/ or /apis/"
    if any(seg in (".", "..") for seg in unquote(path).split("/")):
        return "no dot segments"
    watch = URL("/?" + query, encoded=True).query.get("watch") if q else None
    if watch is None or watch.lower() not in ("1", "true"):
        return "not a watch (watch=1 or watch=true is required)"
    return ""


def frame(index: int, line: bytes) -> bytes:
    """One upstream line for the page: ``index<TAB>line<LF>`` (``line`` without its LF)."""
    return b"%d\t%s\n" % (index, line)


def end_line(index: int, status: int, body: bytes = b"") -> bytes:
    """The END line of watch ``index``: its HTTP status and, when not 200, its body on
    one line (newlines as spaces; JSON stays JSON)."""
    text = b"" if status == 200 else body.strip().replace(b"\r", b" ").replace(b"\n", b" ")
    return b"%d\tEND %d\t%s\n" % (index, status, text)


def status_body(code: int, reason: str, message: str) -> bytes:
    return orjson.dumps(errors.StatusError(code, reason, message).status())


class LineSplitter:
    """Bytes in, whole lines out (without their LF; empty lines dropped). What is left
    at the end without an LF is no line: a watch writes whole lines, so a stream cut
    inside one lost it."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines ``chunk`` completes; raises ``LineTooLong`` past ``max_line``."""
        self._buf += chunk
        *lines, rest = self._buf.split(b"\n")
        if len(rest) > self.max_line:
            raise LineTooLong(f"a line of over {self.max_line} bytes")
        self._buf = rest
        out = []
        for line in lines:
            line = line.rstrip(b"\r")
            if len(line) > self.max_line:
                raise LineTooLong(f"a line of over {self.max_line} bytes")
            if line:
                out.append(bytes(line))
        return out


class WatchMux:
    """The watches of ``GET /ui/watch``, opened against the API server at ``api_url``
    (``ssl``: a context trusting its CA, None for plain HTTP). Without ``api_url`` (an
    ``APIApp`` not run by ``Server``) every request is a 503 Status."""

    def __init__(self, api_url: str = "", ssl_context: ssl.SSLContext | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self.ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def target(self, api_url: str, ssl_context: ssl.SSLContext | None) -> None:
        """Where the watches go: the API server's own URL (``Server.start``, once it
        knows its port and CA)."""
        self.api_url = api_url.rstrip("/")
        self.ssl_context = ssl_context

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                # every page holds up to MAX_WATCHES upstreams at once: no pool limit
                connector=aiohttp.TCPConnector(limit=0, ssl=self.ssl_context or True),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT),
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """Answer ``GET /ui/watch`` for an authenticated caller (module docstring)."""
        if request.method != "GET":
            raise errors.method_not_allowed()
        paths = parse_watches(request.query.getall("w", []))
        if not self.api_url:
            raise errors.StatusError(
                503, errors.SERVICE_UNAVAILABLE, "watches through the dashboard are not set up"
            )
        headers = {"Accept": "application/json"}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        resp = web.StreamResponse(status=200, headers=HEADERS)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        out: asyncio.Queue[Framed] = asyncio.Queue(QUEUE_LINES)
        try:
            async with asyncio.TaskGroup() as tg:
                for i, path in enumerate(paths):
                    tg.create_task(self._follow(i, path, headers, out), name=f"watch {i}")
                await self._write(resp, out, len(paths))
        except* ConnectionResetError:  # the page went away: the upstreams are closed
            log.debug("the page of %s went away", request.path)
        else:
            with contextlib.suppress(ConnectionResetError):
                await resp.write_eof()
        return resp

    async def _write(self, resp: web.StreamResponse, out: asyncio.Queue[Framed], n: int) -> None:
        """Send what the readers queue until all ``n`` watches have ended; a blank line
        when nothing came for ``HEARTBEAT`` seconds."""
        ended = 0
        while ended < n:
            try:
                async with asyncio.timeout(HEARTBEAT):
                    first = await out.get()
            except TimeoutError:
                await resp.write(b"\n")
                continue
            batch = [first]
            size = len(first[0])
            while size < WRITE_BATCH and not out.empty():
                batch.append(out.get_nowait())
                size += len(batch[-1][0])
            ended += sum(1 for _, last in batch if last)
            await resp.write(b"".join(line for line, _ in batch))

    async def _follow(
        self, index: int, path: str, headers: dict[str, str], out: asyncio.Queue[Framed]
    ) -> None:
        """Pass watch ``index``'s lines to ``out`` as they arrive, then its END line."""
        url = URL(self.api_url + path, encoded=True)
        try:
            async with self.session().get(url, headers=headers, allow_redirects=False) as up:
                if up.status != 200:
                    body = await _head(up.content, MAX_ERROR_BODY)
                    end = end_line(index, up.status, body)
                else:
                    lines = LineSplitter()
                    async for chunk in up.content.iter_any():
                        for line in lines.feed(chunk):
                            await out.put((frame(index, line), False))
                    end = end_line(index, 200)
        except LineTooLong as e:
            end = end_line(index, 502, status_body(502, errors.INTERNAL_ERROR, str(e)))
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as e:
            message = f"the watch broke off: {e}"
            end = end_line(index, 502, status_body(502, errors.INTERNAL_ERROR, message))
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            log.debug("watch %s through the dashboard: %r", path, e)
            message = f"the API server could not be reached for this watch: {e}"
            end = end_line(index, 503, status_body(503, errors.SERVICE_UNAVAILABLE, message))
        await out.put((end, True))


async def _head(content: aiohttp.StreamReader, limit: int) -> bytes:
    """The first ``limit`` bytes of a body (all of a shorter one)."""
    out = bytearray()
    while len(out) < limit:
        chunk = await content.read(limit - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)
