"""``ConmonAttach.resize`` on real FIFOs read the way conmon reads them: each size is a
line of its own read, in the order asked (conmon 2.1.6 sets only the first of several
lines one read returns, and kubectl sends two sizes back to back)."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.agent.drivers.attach import ConmonAttach


class SlowReader:
    """conmon's side of ``BUNDLE/ctl``: the FIFO held open to read (and by a dummy
    writer), one ``read`` every ``pause`` seconds, each read's bytes kept (and, in
    ``order``, which reader read them, for readers sharing one list)."""

    def __init__(self, fifo: Path, pause: float, order: list[str] | None = None) -> None:
        self.name = fifo.name
        self.fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.dummy = os.open(fifo, os.O_WRONLY)
        self.pause = pause
        self.reads: list[bytes] = []
        self.order = order if order is not None else []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(self.pause):
            try:
                data = os.read(self.fd, 199)
            except BlockingIOError:
                continue
            if data:
                self.reads.append(data)
                self.order.append(self.name)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        os.close(self.fd)
        os.close(self.dummy)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "ctl")
    os.mkfifo(tmp_path / "winsz")
    return tmp_path


@pytest.fixture
def attach(bundle: Path) -> Iterator[ConmonAttach]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    a = ConmonAttach(ours, bundle)
    yield a
    a.close()
    theirs.close()


async def test_two_sizes_back_to_back_are_read_one_at_a_time_in_order(
    bundle: Path, attach: ConmonAttach
) -> None:
    ctl, winsz = SlowReader(bundle / "ctl", 0.05), SlowReader(bundle / "winsz", 0.05)
    try:
        await asyncio.gather(attach.resize(101, 31), attach.resize(100, 30))
        deadline = time.monotonic() + 5
        while sum(len(r) for r in ctl.reads) < len(b"1 31 101\n1 30 100\n"):
            assert time.monotonic() < deadline, ctl.reads
            await asyncio.sleep(0.01)
    finally:
        ctl.close()
        winsz.close()
    assert ctl.reads == [b"1 31 101\n", b"1 30 100\n"]


async def test_a_size_waits_for_conmon_s_own_winsz_fifo_too(
    bundle: Path, attach: ConmonAttach
) -> None:
    """A size still unread in ``winsz`` (conmon passed one on and has not applied it)
    holds the next one back until it is read: ``ctl``, read often, gets it only after
    ``winsz``, read seldom, was read."""
    order: list[str] = []
    ctl = SlowReader(bundle / "ctl", 0.01, order)
    winsz = SlowReader(bundle / "winsz", 0.2, order)
    try:
        os.write(winsz.dummy, b"31 101\n")
        await attach.resize(100, 30)
        deadline = time.monotonic() + 5
        while not ctl.reads:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
    finally:
        ctl.close()
        winsz.close()
    assert (winsz.reads, ctl.reads) == ([b"31 101\n"], [b"1 30 100\n"])
    assert order == ["winsz", "ctl"]


async def test_without_conmon_a_resize_is_dropped(bundle: Path, attach: ConmonAttach) -> None:
    """No reader on the FIFOs (conmon is gone): nothing to wait for, nothing written,
    no error (the bound only catches a hang)."""
    await asyncio.wait_for(attach.resize(100, 30), 5)
