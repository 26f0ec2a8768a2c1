"""``ConmonAttach.resize`` on real FIFOs read the way conmon reads them: each size is a
line of its own read of ``winsz``, in the order asked, the last asked last (conmon 2.1.6
sets only the first of several lines one read returns, and kubectl sends two sizes back
to back)."""

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
    """conmon's side of one of its FIFOs: the FIFO held open to read (and by a dummy
    writer), one ``read`` every ``pause`` seconds, each read's bytes kept."""

    def __init__(self, fifo: Path, pause: float) -> None:
        self.fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.dummy = os.open(fifo, os.O_WRONLY)
        self.pause = pause
        self.reads: list[bytes] = []
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


async def _read_until(reader: SlowReader, size: int) -> None:
    deadline = time.monotonic() + 5
    while sum(len(r) for r in reader.reads) < size:
        assert time.monotonic() < deadline, reader.reads
        await asyncio.sleep(0.01)


async def test_two_sizes_back_to_back_are_read_one_at_a_time_in_order(
    bundle: Path, attach: ConmonAttach
) -> None:
    """kubectl's two sizes: each is its own read of ``winsz``, kubectl's own size last;
    nothing goes through ``ctl`` (whose hop to ``winsz`` could put them together)."""
    ctl, winsz = SlowReader(bundle / "ctl", 0.01), SlowReader(bundle / "winsz", 0.05)
    try:
        await asyncio.gather(attach.resize(101, 31), attach.resize(100, 30))
        await _read_until(winsz, len(b"31 101\n30 100\n"))
    finally:
        ctl.close()
        winsz.close()
    assert winsz.reads == [b"31 101\n", b"30 100\n"]
    assert ctl.reads == []


async def test_of_sizes_asked_while_one_waits_the_last_is_written(
    bundle: Path, attach: ConmonAttach
) -> None:
    """While a size waits for conmon to read what ``winsz`` holds, two more are asked:
    the first of them is replaced by the second, so the pty ends with the last size."""
    winsz = SlowReader(bundle / "winsz", 0.3)  # (its first read comes after all three ask)
    try:
        os.write(winsz.dummy, b"29 99\n")
        await asyncio.gather(attach.resize(101, 31), attach.resize(102, 32), attach.resize(100, 30))
        await _read_until(winsz, len(b"29 99\n31 101\n30 100\n"))
        await asyncio.sleep(0.3)  # (nothing more comes)
    finally:
        winsz.close()
    assert winsz.reads == [b"29 99\n", b"31 101\n", b"30 100\n"]


async def test_a_size_waits_until_conmon_read_what_winsz_held(
    bundle: Path, attach: ConmonAttach
) -> None:
    """A size still unread in ``winsz`` holds the next one back until conmon read it:
    two reads, one line each."""
    winsz = SlowReader(bundle / "winsz", 0.2)
    try:
        os.write(winsz.dummy, b"31 101\n")
        await attach.resize(100, 30)
        await _read_until(winsz, len(b"31 101\n30 100\n"))
    finally:
        winsz.close()
    assert winsz.reads == [b"31 101\n", b"30 100\n"]


async def test_without_conmon_a_resize_is_dropped(bundle: Path, attach: ConmonAttach) -> None:
    """No reader on the FIFO (conmon is gone): nothing to wait for, nothing written,
    no error (the bound only catches a hang)."""
    await asyncio.wait_for(attach.resize(100, 30), 5)
