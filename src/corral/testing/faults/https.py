"""An HTTPS client connection that leaves no socket open when the server dies mid-connect.

The fault scenarios kill API servers while their load threads connect. When the server's
reset arrives between the TCP connect and the TLS wrap, CPython 3.11's
``SSLContext.wrap_socket`` raises (``getpeername`` fails, then ``recv`` gets
ECONNRESET) without closing the ``SSLSocket`` it has already made; the socket is then
collected unclosed and pytest, which turns ResourceWarning into an error, fails whatever
test is running. ``connection`` closes that half-made socket before passing the error on.
"""

from __future__ import annotations

import http.client
import ssl
import traceback


class _Connection(http.client.HTTPSConnection):
    def connect(self) -> None:
        try:
            super().connect()
        except OSError as exc:
            for frame, _ in traceback.walk_tb(exc.__traceback__):
                half = frame.f_locals.get("self")
                if isinstance(half, ssl.SSLSocket):
                    half.close()
            if self.sock is not None:
                self.sock.close()
            raise


def connection(port: int, ctx: ssl.SSLContext, timeout: float) -> http.client.HTTPSConnection:
    """An HTTPS connection to 127.0.0.1:``port`` (connected on first request)."""
    return _Connection("127.0.0.1", port, context=ctx, timeout=timeout)
