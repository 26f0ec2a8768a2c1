"""The client leaves no socket behind when it drops a stream half-read.

A TLS connection released mid-body is closed politely by asyncio: it sends close_notify
and waits (up to 30 s) for the server's; one still waiting when its event loop ends is
never closed, and the garbage collector later reports ``ResourceWarning: unclosed
transport`` in whatever test runs then (a suite failure that pointed at an innocent
test). The server here answers over TLS, then never reads again, so it never returns
close_notify: a connection the client does not abort is left open, every time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import ssl
import threading
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from corral.apiserver.certs import ensure_pki
from corral.client.rest import CONFIGMAPS, Client, KubeConfig

EVENT = b'{"type":"ADDED","object":{"metadata":{"name":"x","resourceVersion":"7"}}}\n'
WATCH_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    + f"{len(EVENT):x}\r\n".encode()
    + EVENT
    + b"\r\n"
)
#: a body promised 100 bytes long, 6 sent
CUT_ANSWER = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":1'
)


class Stalling:
    """A TLS server on a thread that answers each request's head with ``answer``, then
    neither reads nor writes that connection again until stopped."""

    def __init__(self, ctx: ssl.SSLContext, answer: bytes) -> None:
        self.ctx = ctx
        self.answer = answer
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.done.is_set():
            try:
                raw, _ = self.listener.accept()
            except TimeoutError:
                continue
            raw.settimeout(10)
            self.conns.append(raw)
            with contextlib.suppress(OSError):
                conn = self.ctx.wrap_socket(raw, server_side=True)
                self.conns.append(conn)
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                conn.sendall(self.answer)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
        for conn in self.conns:
            conn.close()
        self.listener.close()


@pytest.fixture
def pki(tmp_path: Path) -> Iterator[tuple[ssl.SSLContext, bytes]]:
    p = ensure_pki(tmp_path, [])
    yield p.ssl_context(), p.ca_pem


def _unclosed(ca_pem: bytes, port: int, use: Callable[[Client], Awaitable[None]]) -> list[str]:
    """The ResourceWarnings of a client that ``use``s the server, is closed, and whose
    event loop ends at once (as a test's does)."""

    async def main() -> None:
        c = Client(KubeConfig(f"https://127.0.0.1:{port}", "tok", ca_pem))
        try:
            await use(c)
        finally:
            await c.close()

    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        asyncio.run(main())
        gc.collect()
    return [str(w.message) for w in got if issubclass(w.category, ResourceWarning)]


@pytest.mark.parametrize("how", ["closed", "cancelled"])
def test_a_watch_left_mid_stream_leaves_no_transport(
    pki: tuple[ssl.SSLContext, bytes], how: str
) -> None:
    server = Stalling(pki[0], WATCH_ANSWER)

    async def watch_then_leave(c: Client) -> None:
        got = asyncio.Event()

        async def consume() -> None:
            events = c.watch(CONFIGMAPS, "default")
            async with contextlib.aclosing(events):
                async for _ in events:
                    got.set()
                    if how == "closed":
                        return

        task = asyncio.create_task(consume())
        await got.wait()
        if how == "cancelled":  # an informer stopped: its task cancelled, then awaited
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    try:
        assert _unclosed(pki[1], server.port, watch_then_leave) == []
    finally:
        server.stop()


def test_a_read_cut_short_by_its_timeout_leaves_no_transport(
    pki: tuple[ssl.SSLContext, bytes],
) -> None:
    server = Stalling(pki[0], CUT_ANSWER)

    async def read_too_long(c: Client) -> None:
        with pytest.raises(TimeoutError):
            await c.request("GET", "/api/v1/namespaces/default/configmaps/x", timeout=0.5)

    try:
        assert _unclosed(pki[1], server.port, read_too_long) == []
    finally:
        server.stop()
