"""A lean HTTP/1.1 client for the API's plain requests: what ``Client.request`` sends.

Corral's loops talk to the API server mostly in small requests: the scheduler's
bindings, the node agents' Lease renewals and pod status writes, the controllers'
writes. aiohttp's client spends ~150 µs of CPU on each of them on these machines (its
request and response objects, header multidicts, URL handling, tracing hooks and
timers), three times what the same request costs written and parsed directly on the
event loop's own TLS transport (``bench/client_cost.py``). So ``Client.request`` sends
them here; watches, streams and any request this module does not handle stay on
aiohttp.

What it does: keep-alive connections per server (at most ``limit`` at once, the most
recently used first, one request at a time on each), ``Content-Length`` or chunked
answers, gzip answers (it asks for them, as aiohttp and Go's transport do), ``Connection:
close``. A connection is reused only after a whole answer; one left mid-way (a timeout,
a cancellation, a broken answer) is aborted. One idle for ``IDLE_LIMIT`` seconds (15,
as aiohttp's pool) is closed rather than reused, well inside the API server's keep-alive
timeout (aiohttp's 75 s), so a request does not race the server closing it; one idle
for a moment is checked with one ``poll`` first (``_peer_spoke``). A request on a
reused connection that the server closed before answering is sent once more on a new
one when its method is idempotent, as aiohttp does.

Its failures are aiohttp's exception types, so ``corral.client.failover`` and every
caller tell them apart as before: no connection (``ClientConnectorError``, its TLS
subclasses, ``ConnectionTimeoutError``: the request never left), a connection lost
before the answer ended (``ServerDisconnectedError``), a malformed answer
(``ClientPayloadError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
import time
import zlib
from collections.abc import Sequence
from typing import cast

import aiohttp
from aiohttp.client_reqrep import ConnectionKey
from yarl import URL

#: seconds a connection may sit idle and still be reused (aiohttp's keep-alive timeout)
IDLE_LIMIT = 15.0
#: seconds idle after which a connection is checked before reuse (``_peer_spoke``)
CHECK_AFTER = 0.05
#: methods a request may be sent again for on a new connection (RFC 9110 idempotent)
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
#: the longest status line and headers accepted
MAX_HEAD = 64 * 1024
_NO_BODY = frozenset({204, 304})
_HEX = b"0123456789abcdefABCDEF"


class _Answer:
    """What the parser has of one answer."""

    __slots__ = ("body", "chunked", "close", "gzip", "length", "status")

    def __init__(self) -> None:
        self.status = 0
        self.length: int | None = None  # Content-Length; None: chunked or until close
        self.chunked = False
        self.close = False
        self.gzip = False
        self.body = bytearray()


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed as it comes."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = time.monotonic()
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._answer: _Answer | None = None
        self._head = False  # the answer's head has been parsed
        self._chunk_left = -1  # chunked: bytes left of the current chunk (+2 for CRLF)
        self._received = False  # any byte of this request's answer arrived
        self._head_request = False

    # --- asyncio.Protocol ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TLS transport is not an asyncio.Transport subclass, but is one
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # nothing asked: a server speaking out of turn
            self._fail(aiohttp.ClientPayloadError("data from the server between requests"))
            return
        self._received = True
        self._buf += data
        try:
            self._parse()
        except aiohttp.ClientPayloadError as e:
            self._fail(e)

    def eof_received(self) -> bool | None:
        self._end_at_close()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done() or self._end_at_close():
            return
        err = aiohttp.ServerDisconnectedError()
        if exc is not None:
            err.__cause__ = exc
        waiter.set_exception(err)

    def _end_at_close(self) -> bool:
        """An answer with neither a length nor chunks ends where the connection does:
        True when that ended this request's answer."""
        answer = self._answer
        if self._waiter is None or answer is None or not self._head:
            return False
        if answer.length is not None or answer.chunked:
            return False
        answer.body += self._buf
        self._buf.clear()
        self._done(close=True)
        return True

    # --- one request ---------------------------------------------------------------
    def send(self, request: bytes, head_request: bool) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None and self._waiter is None
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._answer = _Answer()
        self._head = False
        self._chunk_left = -1
        self._received = False
        self._head_request = head_request
        self._buf.clear()
        self.transport.write(request)
        return self._waiter

    @property
    def received(self) -> bool:
        return self._received

    def abort(self) -> None:
        self.closed = True
        if self.transport is None:
            return
        try:
            self.transport.abort()
        except RuntimeError:
            # its loop has closed (a Client used again under a new ``asyncio.run``): the
            # server is told at once; the descriptor goes with the transport (collected)
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _fail(self, err: Exception) -> None:
        waiter = self._waiter
        self.abort()
        if waiter is not None and not waiter.done():
            waiter.set_exception(err)

    def _done(self, close: bool = False) -> None:
        answer, waiter = self._answer, self._waiter
        assert answer is not None and waiter is not None
        self._waiter = self._answer = None
        body = bytes(answer.body)
        if answer.gzip and body:
            try:
                body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
            except zlib.error as e:
                self.abort()
                if not waiter.done():
                    waiter.set_exception(aiohttp.ClientPayloadError(f"bad gzip body: {e}"))
                return
        if close or answer.close or self._buf:  # bytes beyond the answer: not reusable
            self.abort()
        self.idle_since = time.monotonic()
        if not waiter.done():
            waiter.set_result((answer.status, body))

    def _parse(self) -> None:
        answer = self._answer
        assert answer is not None
        buf = self._buf
        if not self._head:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise aiohttp.ClientPayloadError("the answer's head is too long")
                return
            self._read_head(answer, bytes(buf[:end]))
            del buf[: end + 4]
            if 100 <= answer.status < 200:  # an interim answer: the real one follows
                self._answer = _Answer()
                self._parse()
                return
            self._head = True
            if self._head_request or answer.status in _NO_BODY:
                answer.length, answer.chunked = 0, False  # no body, whatever the headers say
        if answer.chunked:
            self._parse_chunks(answer)
        elif answer.length is not None and len(buf) >= answer.length:
            answer.body += buf[: answer.length]
            del buf[: answer.length]
            self._done()
        # else: more to come (with no length, until the server closes: _end_at_close)

    @staticmethod
    def _read_head(answer: _Answer, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise aiohttp.ClientPayloadError(f"not an HTTP/1 answer: {lines[0][:80]!r}")
        answer.status = int(parts[1])
        answer.close = parts[0] == b"HTTP/1.0"
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise aiohttp.ClientPayloadError(f"a malformed header: {line[:80]!r}")
            name = name.strip().lower()
            value = value.strip()
            if name == b"content-length":
                if not value.isdigit() or len(value) > 18:
                    raise aiohttp.ClientPayloadError(f"a bad Content-Length: {value[:40]!r}")
                answer.length = int(value)
            elif name == b"transfer-encoding":
                answer.chunked = value.lower().endswith(b"chunked")
            elif name == b"connection":
                tokens = {t.strip() for t in value.lower().split(b",")}
                answer.close = b"close" in tokens or (answer.close and b"keep-alive" not in tokens)
            elif name == b"content-encoding":
                answer.gzip = value.lower() == b"gzip"
        if answer.chunked:
            answer.length = None

    def _parse_chunks(self, answer: _Answer) -> None:
        buf = self._buf
        while True:
            if self._chunk_left == -1:  # at a chunk's size line
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                size_text = bytes(buf[:end]).split(b";", 1)[0].strip()
                if not size_text or size_text.strip(_HEX) or len(size_text) > 16:
                    raise aiohttp.ClientPayloadError(f"a bad chunk size: {size_text[:40]!r}")
                size = int(size_text, 16)
                del buf[: end + 2]
                if size == 0:  # the last chunk: trailers (ignored) up to a blank line
                    self._chunk_left = -2
                else:
                    self._chunk_left = size + 2
            if self._chunk_left == -2:
                if buf[:2] == b"\r\n":
                    del buf[:2]
                    self._done()
                    return
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                del buf[: end + 4]
                self._done()
                return
            if len(buf) < self._chunk_left:
                return
            data_end = self._chunk_left - 2
            if buf[data_end : self._chunk_left] != b"\r\n":
                raise aiohttp.ClientPayloadError("a chunk without its CRLF")
            answer.body += buf[:data_end]
            del buf[: self._chunk_left]
            self._chunk_left = -1


class Pool:
    """Keep-alive connections to one server (``https://host:port`` or ``http://...``)."""

    def __init__(
        self,
        url: URL,
        ssl_context: ssl.SSLContext | bool,
        headers: Sequence[tuple[str, str]],
        *,
        limit: int = 64,
        connect_timeout: float = 10.0,
    ) -> None:
        assert url.host is not None and url.port is not None
        self.host, self.port = url.host, url.port
        is_ssl = url.scheme == "https"
        self._ssl: ssl.SSLContext | None = None
        if is_ssl:  # the kubeconfig's context; the system's CAs when it gave none
            self._ssl = (
                ssl_context
                if isinstance(ssl_context, ssl.SSLContext)
                else ssl.create_default_context()
            )
        self._key = ConnectionKey(self.host, self.port, is_ssl, ssl_context, None, None, None)
        self._connect_timeout = connect_timeout
        host_header = url.raw_host or self.host
        if ":" in host_header:  # an IPv6 literal
            host_header = f"[{host_header}]"
        if not url.is_default_port():  # as aiohttp and Go's transport write it
            host_header = f"{host_header}:{url.port}"
        common = [("Host", host_header), *headers, ("Accept", "*/*"), ("Accept-Encoding", "gzip")]
        self._common = "".join(f"{k}: {v}\r\n" for k, v in common).encode("latin-1")
        self._idle: list[_Connection] = []  # the most recently used last
        self._slots = asyncio.Semaphore(limit)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def usable(self) -> bool:
        """Whether this pool may serve the running loop: its connections live on one,
        the loop of its first call."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        return self._loop is loop

    async def request(
        self,
        method: str,
        target: str,
        body: bytes | None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> tuple[int, bytes]:
        """(status, body) of ``method target``; ``target`` is an encoded path and query."""
        head = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), self._common]
        for k, v in headers:
            head.append(f"{k}: {v}\r\n".encode("latin-1"))
        if body is not None:
            head.append(b"Content-Length: %d\r\n\r\n" % len(body))
            head.append(body)
        elif method in ("POST", "PUT", "PATCH"):
            head.append(b"Content-Length: 0\r\n\r\n")
        else:
            head.append(b"\r\n")
        request = b"".join(head)
        async with self._slots:
            for attempt in (1, 2):
                conn, reused = await self._acquire(fresh=attempt == 2)
                try:
                    answer = await conn.send(request, method == "HEAD")
                except aiohttp.ServerDisconnectedError:
                    conn.abort()
                    if reused and not conn.received and attempt == 1 and method in IDEMPOTENT:
                        continue  # the server had closed it: once more on a new one
                    raise
                except BaseException:  # cancelled, timed out, broken: never reused
                    conn.abort()
                    raise
                if self._closed:  # closed meanwhile: its connections close as they end
                    conn.abort()
                elif not conn.closed:
                    self._idle.append(conn)
                return answer
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def _acquire(self, fresh: bool = False) -> tuple[_Connection, bool]:
        now = time.monotonic()
        # the least recently used, idle past the limit, close now (not when next picked:
        # the most recent is picked first, so they might never be)
        while self._idle and now - self._idle[0].idle_since > IDLE_LIMIT:
            self._idle.pop(0).abort()
        while self._idle and not fresh:
            conn = self._idle.pop()  # the most recently used: its TLS state is warm
            transport = conn.transport
            if conn.closed or transport is None or transport.is_closing():
                conn.abort()
                continue
            idle = now - conn.idle_since
            if idle > IDLE_LIMIT or (idle > CHECK_AFTER and _peer_spoke(transport)):
                conn.abort()
                continue
            return conn, True
        return await self._connect(), False

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, conn = await loop.create_connection(
                    _Connection,
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl is not None else None,
                )
        except TimeoutError:
            raise aiohttp.ConnectionTimeoutError(
                f"Connection timeout to host {self.host}:{self.port}"
            ) from None
        except ssl.SSLCertVerificationError as e:
            raise aiohttp.ClientConnectorCertificateError(self._key, e) from e
        except ssl.SSLError as e:
            raise aiohttp.ClientConnectorSSLError(self._key, e) from e
        except OSError as e:
            raise aiohttp.ClientConnectorError(self._key, e) from e
        return conn

    def close(self) -> None:
        """Close the idle connections (those in use close when their request ends)."""
        self._closed = True
        while self._idle:
            self._idle.pop().abort()


def pool_for(
    server: str,
    ssl_context: ssl.SSLContext | bool,
    headers: Sequence[tuple[str, str]],
    *,
    limit: int,
    connect_timeout: float,
) -> Pool | None:
    """A pool for ``server`` when it is a plain ``http(s)://host[:port]``; else None
    (a URL with a path of its own, say: aiohttp sends those)."""
    with contextlib.suppress(ValueError):
        url = URL(server)
        if (
            url.scheme in ("http", "https")
            and url.host
            and url.port
            and url.raw_path in ("", "/")
            and not url.raw_query_string
            and not url.raw_fragment
            and not url.user
        ):
            return Pool(url, ssl_context, headers, limit=limit, connect_timeout=connect_timeout)
    return None


def _peer_spoke(transport: asyncio.Transport) -> bool:
    """Whether the idle connection's socket has something to read that the event loop
    has not taken yet: with no request in flight, the server closing it (a FIN, a reset:
    it stopped, or crashed a moment ago). Go's transport knows this from the read loop
    each connection has; here one ``poll`` asks the kernel, so a request is not written
    into a connection already gone."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    p = select.poll()
    p.register(sock.fileno(), select.POLLIN | select.POLLRDHUP)
    return bool(p.poll(0))
