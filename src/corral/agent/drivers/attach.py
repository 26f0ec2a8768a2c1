"""Attaching to a container's main process through its conmon (``kubectl attach``).

``OciDriver.attach`` opens an ``AttachSession`` for the agent server's ``/attach``
endpoint (``agent/attach.py``). conmon (``conmon.py``) serves, for every container it
monitors, a ``SOCK_SEQPACKET`` unix socket at ``BUNDLE/attach`` (conmon's
``conn_sock.c``, as CRI-O and Podman attach):

- each packet conmon sends is one read of the container's output, prefixed by a stream
  byte (2 stdout, 3 stderr; a tty container has only the pty, sent as stdout); conmon
  sends what the container writes *from the moment the client connected* (the log file
  holds what came before) and closes the connection when the container has exited and
  its output is drained;
- what the client sends goes to the container's stdin (the pipe or the pty master) when
  it was started with ``--stdin``; a client's ``shutdown(SHUT_WR)`` (or its going away)
  closes that stdin unless conmon was told ``--leave-stdin-open`` (``stdinOnce: false``);
- a terminal is resized through two FIFOs: a client writes ``"1 HEIGHT WIDTH\\n"``
  (``WIN_RESIZE_EVENT``) to ``BUNDLE/ctl``; conmon passes it on as ``"HEIGHT WIDTH\\n"``
  through its own ``BUNDLE/winsz`` FIFO, whose reader sets the pty's size
  (``TIOCSWINSZ``). conmon 2.1.6 (Debian's) parses only the first line of what one read
  of either FIFO returns: two sizes read together set the first one. kubectl sends two
  back to back (its size plus one, then its size, so that a reattached program redraws).
  Through ``ctl`` no wait makes that safe: between conmon's read of ``ctl`` and its write
  to ``winsz`` both FIFOs look empty, and a size written then reaches ``winsz`` behind
  the one before it (under load, the attach test's pty once never got kubectl's size).
  So a size is written as conmon's own line straight to ``winsz``, once conmon has read
  what that FIFO held (``FIONREAD`` is 0): each read holds one line, and a size asked
  while another waits replaces it, so the last size asked is the last one set.

The socket is connected through ``/proc/self/fd/N/attach`` with an ``O_PATH`` descriptor
of the bundle, since the bundle's path may be longer than a unix socket address allows.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import os
import socket
import termios
from pathlib import Path

STDOUT_PIPE, STDERR_PIPE = 2, 3
#: conmon reads one packet of at most CONN_SOCK_BUF_SIZE (32 KiB) bytes; stay below it
MAX_PACKET = 8192
#: conmon sends at most STDIO_BUF_SIZE (8 KiB) + 1 bytes a packet
RECV_SIZE = 65536
#: how long a resize waits for conmon to read the sizes before it, and how often it looks
RESIZE_DRAIN_TIMEOUT = 5.0
RESIZE_POLL = 0.002


class AttachError(Exception):
    """The container cannot be attached to (not under conmon, or already gone)."""


class ConmonAttach:
    """One attach client of a conmon-monitored container: ``read`` output packets,
    ``write_stdin``/``close_stdin``, ``resize``; ``close`` when done (idempotent)."""

    def __init__(self, sock: socket.socket, bundle: Path) -> None:
        self.sock = sock
        self.bundle = bundle
        self._stdin_closed = False
        self._resizing = asyncio.Lock()
        self._wanted: tuple[int, int] | None = None

    @classmethod
    async def open(cls, bundle: Path) -> ConmonAttach:
        """Connect to the container's attach socket; ``AttachError`` when there is none
        (the container is not monitored by conmon, or conmon is gone)."""
        if not (bundle / "attach").exists():
            raise AttachError("the container has no attach socket (it does not run under conmon)")
        dir_fd = os.open(bundle, os.O_PATH | os.O_CLOEXEC)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        try:
            loop = asyncio.get_running_loop()
            await loop.sock_connect(sock, f"/proc/self/fd/{dir_fd}/attach")
        except OSError as e:
            sock.close()
            raise AttachError(f"attach socket: {e.strerror or e}") from None
        finally:
            os.close(dir_fd)
        return cls(sock, bundle)

    async def read(self) -> tuple[int, bytes] | None:
        """The next output packet as (stream, data) with stream 1 (stdout) or 2 (stderr),
        Kubernetes' channel numbers; None once conmon closed the connection."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                packet = await loop.sock_recv(self.sock, RECV_SIZE)
            except OSError:
                return None
            if not packet:
                return None
            if len(packet) < 2:
                continue
            return (2 if packet[0] == STDERR_PIPE else 1), packet[1:]

    async def write_stdin(self, data: bytes) -> None:
        if self._stdin_closed:
            return
        loop = asyncio.get_running_loop()
        for i in range(0, len(data), MAX_PACKET):
            await loop.sock_sendall(self.sock, data[i : i + MAX_PACKET])

    def close_stdin(self) -> None:
        """Tell conmon this client sends no more (closes the container's stdin when it
        was started for ``stdinOnce``); output keeps coming."""
        if not self._stdin_closed:
            self._stdin_closed = True
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)

    async def resize(self, width: int, height: int) -> None:
        """Resize the container's pty (a no-op for a container without one): written once
        conmon has read the size before it (see the module's docstring), or after
        ``RESIZE_DRAIN_TIMEOUT`` anyway. Of sizes asked while one waits, only the last is
        written. Dropped when conmon is gone (no reader of its ``winsz`` FIFO)."""
        self._wanted = (height, width)
        async with self._resizing:
            if self._wanted is None:
                return  # a later call's size, already written by the call before it
            (height, width), self._wanted = self._wanted, None
            winsz = _open_writer(self.bundle / "winsz")
            if winsz is None:
                return
            try:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + RESIZE_DRAIN_TIMEOUT
                while _unread(winsz) and loop.time() < deadline:
                    await asyncio.sleep(RESIZE_POLL)
                with contextlib.suppress(OSError):
                    os.write(winsz, f"{height} {width}\n".encode())
            finally:
                os.close(winsz)

    def close(self) -> None:
        self.sock.close()


def _open_writer(fifo: Path) -> int | None:
    """A non-blocking write end of a FIFO conmon reads; None when there is no such FIFO
    or no reader any more. Opening it never blocks, and writes nothing."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None


def _unread(fd: int) -> int:
    """How many bytes wait in the FIFO of ``fd``, not yet read by conmon."""
    count = array.array("i", [0])
    try:
        fcntl.ioctl(fd, termios.FIONREAD, count)
    except OSError:
        return 0
    return count[0]
