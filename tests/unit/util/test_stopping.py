"""run_until_stopped: the work's end, its failure, a signal and stdin's EOF stop it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from corral.util.stopping import run_until_stopped


def test_returns_when_the_work_ends() -> None:
    done: list[str] = []

    async def work() -> None:
        done.append("ran")

    asyncio.run(run_until_stopped(work(), signals=False))
    assert done == ["ran"]


def test_raises_what_the_work_raised() -> None:
    async def work() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        asyncio.run(run_until_stopped(work(), signals=False))


def test_a_signal_cancels_the_work() -> None:
    cancelled: list[bool] = []

    async def work() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main() -> None:
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
        await run_until_stopped(work())

    asyncio.run(main())
    assert cancelled == [True]
    # the handler is gone again: SIGTERM's default disposition is back
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.default_int_handler)


def test_stdin_eof_stops_a_child() -> None:
    code = textwrap.dedent(
        """
        import asyncio
        from corral.util.stopping import run_until_stopped

        async def work():
            await asyncio.sleep(30)

        asyncio.run(run_until_stopped(work(), exit_on_stdin_eof=True))
        print("stopped", flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    assert proc.wait(timeout=20) == 0
    out = proc.stdout.read()
    proc.stdout.close()
    assert out.strip() == "stopped"
