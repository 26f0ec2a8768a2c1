"""The fault scenarios' HTTPS connection closes every socket when the server resets it
between the TCP connect and the TLS handshake (a SIGKILLed server)."""

from __future__ import annotations

import gc
import http.client
import select
import socket
import ssl
import struct
import threading
import warnings
from collections.abc import Callable, Iterator

import pytest

from corral.testing.faults.https import connection


@pytest.fixture
def resetting(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A port whose listener resets each connection right after ``create_connection``."""
    listener = socket.create_server(("127.0.0.1", 0))
    made = socket.create_connection
    lock = threading.Lock()

    def then_reset(*args: object, **kwargs: object) -> socket.socket:
        sock = made(*args, **kwargs)  # type: ignore[arg-type]
        with lock:
            peer, _ = listener.accept()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()
        select.select([sock], [], [], 5.0)  # the reset has arrived
        return sock

    monkeypatch.setattr(socket, "create_connection", then_reset)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def _unclosed(make: Callable[[], http.client.HTTPSConnection]) -> list[str]:
    """ResourceWarnings raised while one request fails on a reset connection."""
    caught: list[str] = []
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        conn = make()
        with pytest.raises(OSError):
            conn.request("GET", "/")
        conn.close()
        del conn
        gc.collect()
        caught = [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)]
    return caught


def _ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_a_reset_before_the_handshake_leaves_no_socket_open(resetting: int) -> None:
    assert _unclosed(lambda: connection(resetting, _ctx(), 5.0)) == []


def test_the_plain_stdlib_connection_leaks_there(resetting: int) -> None:
    """The race the helper exists for: CPython 3.11 leaves the half-made SSLSocket open."""
    leaks = _unclosed(
        lambda: http.client.HTTPSConnection("127.0.0.1", resetting, context=_ctx(), timeout=5)
    )
    assert any("SSLSocket" in text for text in leaks), leaks
