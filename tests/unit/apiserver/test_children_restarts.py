"""Child processes under ``apiserver/children.py``: a SIGKILLed child is started again and
both its end and its new start are logged, naming the agent's node and the signal (what
``corral up`` shows on its terminal)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import pytest

from corral.apiserver import children as children_mod
from corral.apiserver.children import Children

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


async def test_a_killed_agent_is_started_again_and_said_by_node(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(children_mod, "POLL_SECONDS", 0.02)
    monkeypatch.setattr(children_mod, "BACKOFF_FIRST", 0.05)
    caplog.set_level(logging.WARNING, logger="corral.apiserver")
    kids = Children()
    try:
        child = kids.start("agent", [*SLEEPER, "--name", "n1", "--port", "10250"])
        assert child.proc is not None
        first = child.proc.pid
        os.kill(first, signal.SIGKILL)
        async with asyncio.timeout(10):
            while child.proc is None or child.proc.pid == first or child.restarts == 0:
                await asyncio.sleep(0.02)
        assert child.proc.poll() is None
        assert "corral agent n1 was killed by SIGKILL; starting it again in" in caplog.text
        assert "starting corral agent n1 again (restart 1)" in caplog.text
    finally:
        await kids.stop(grace=5)


async def test_an_exit_status_is_said_as_such(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(children_mod, "POLL_SECONDS", 0.02)
    caplog.set_level(logging.WARNING, logger="corral.apiserver")
    kids = Children()
    try:
        child = kids.start("scheduler", [sys.executable, "-c", "raise SystemExit(3)"])
        async with asyncio.timeout(10):
            while child.restarts == 0:
                await asyncio.sleep(0.02)
        assert "corral scheduler exited with status 3; starting it again in 1 s" in caplog.text
    finally:
        await kids.stop(grace=5)
