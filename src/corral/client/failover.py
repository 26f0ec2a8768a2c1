"""Which API server a client talks to, and which failed requests it may send again.

An HA cluster has several API servers on one store; every one of them serves the whole
API, so a client may use any. ``ServerRing`` keeps the one in use (sticky: a client stays
on the server that works, so its watches and keep-alive connections stay put) and moves
to the next one, round the list, when that server fails. ``Client.request`` and
``Client.watch`` (``corral.client.rest``) call it; nothing else needs to.

What may be retried on the next server follows client-go's rule
(``rest/request.go``: GETs are retried on connection resets and EOFs, writes are not,
"as they are not idempotent") sharpened by what aiohttp can tell us:

- a connection that never opened (refused, unreachable, a TLS handshake cut off, the
  connect timeout): the request never reached a server, so ANY method goes to the next
  one; a create is therefore sent once;
- a connection lost after the request went out (reset, EOF, a body cut short), a 503
  answer: a GET (read, list, watch) is repeated on the next server, a write is
  reported to the caller, who re-reads and retries as for any other failed write (its
  usual 409/resourceVersion path), so a write is never applied twice behind its back.

(aiohttp itself resends a PUT or DELETE once on a fresh connection when a reused
keep-alive connection turns out to be closed, as RFC 9112 allows for idempotent
methods; a repeated PUT with a resourceVersion then fails with 409, a repeated DELETE
with 404, both ordinary outcomes for the caller.)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import aiohttp

log = logging.getLogger("corral.client")

#: an answer meaning "this server cannot serve now; another may" (upstream's apiserver
#: answers it while shutting down or when it cannot reach its store)
UNAVAILABLE = 503


def never_sent(exc: BaseException) -> bool:
    """Whether ``exc`` proves the request never reached a server (no connection)."""
    return isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))


def server_trouble(exc: BaseException) -> bool:
    """Whether ``exc`` says the server (or the way to it) failed, not the request."""
    return isinstance(
        exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)
    )


def may_resend(method: str, exc: BaseException) -> bool:
    """Whether a request that failed with ``exc`` may be sent to the next server."""
    return never_sent(exc) or (method == "GET" and server_trouble(exc))


class ServerRing:
    """The server in use among ``servers`` (each call passes the current list, so a
    client whose kubeconfig is reloaded follows the new list)."""

    def __init__(self) -> None:
        self.current = ""

    def pick(self, servers: Sequence[str]) -> str:
        """The server to send the next request to: the one in use while it is listed."""
        if self.current not in servers:
            self.current = servers[0]
        return self.current

    def failed(self, servers: Sequence[str], server: str, why: object) -> None:
        """``server`` failed: move to the one after it, unless another request already
        moved on (many requests in flight fail together; the ring moves once)."""
        if server != self.current or len(servers) < 2:
            return
        i = servers.index(server) if server in servers else -1
        self.current = servers[(i + 1) % len(servers)]
        reason = str(why) or type(why).__name__
        log.warning("API server %s failed (%s); using %s", server, reason, self.current)
