"""``spawn_exec`` with a tty: the pty becomes the command's controlling terminal under both
event loops the agent may run (the stdlib's and uvloop, which calls ``preexec_fn`` at a
different point of the child's set-up)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from corral.agent.drivers.shimctl import spawn_exec

Runner = Callable[[Coroutine[Any, Any, tuple[bytes, int]]], tuple[bytes, int]]


async def _exec_on_a_tty() -> tuple[bytes, int]:
    # /dev/tty opens only for a process that has a controlling terminal
    session = await spawn_exec(
        ["sh", "-c", "exec 3</dev/tty && echo has-ctty; exit 3"], tty=True, stdin=True
    )
    out = bytearray()
    async with asyncio.timeout(10):
        while chunk := await session.read_stdout():
            out += chunk
        return bytes(out), await session.wait()


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_tty_exec_gets_a_controlling_terminal_and_its_exit_code(run: Runner) -> None:
    out, code = run(_exec_on_a_tty())
    assert b"has-ctty" in out
    assert code == 3
