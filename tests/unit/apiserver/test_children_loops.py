"""In-process loops under ``apiserver/children.py``: a loop that raises is logged with its
traceback and started again with the same arguments; ``stop`` cancels every loop."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from corral.apiserver import children as children_mod
from corral.apiserver.children import Children
from corral.client.leaderelection import EXIT_LEADERSHIP_LOST, LeadershipLost


async def test_a_failed_loop_is_logged_and_started_again_and_stop_cancels_it(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(children_mod, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(children_mod, "BACKOFF_FIRST", 0.01)
    runs: list[list[str]] = []
    running = asyncio.Event()
    cancelled = asyncio.Event()

    async def flaky(argv: list[str]) -> None:
        runs.append(argv)
        if len(runs) == 1:
            raise RuntimeError("boom")
        running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    kids = Children()
    caplog.set_level(logging.WARNING, logger="corral.apiserver")
    kids.start_loop("scheduler", flaky, ["--kubeconfig", "K"])
    async with asyncio.timeout(10):
        await running.wait()
    assert runs == [["--kubeconfig", "K"], ["--kubeconfig", "K"]]
    failed = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failed and failed[0].exc_info is not None  # the traceback is in the log
    assert "RuntimeError: boom" in caplog.text
    assert "starting it again" in caplog.text
    assert kids.loops[0].restarts == 1
    await kids.stop(grace=5)
    assert cancelled.is_set()
    assert kids.loops == []


async def test_a_loop_that_returns_is_started_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(children_mod, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(children_mod, "BACKOFF_FIRST", 0.01)
    runs = 0
    again = asyncio.Event()

    async def quits(argv: list[str]) -> None:
        nonlocal runs
        runs += 1
        if runs > 1:
            again.set()
            await asyncio.Event().wait()

    kids = Children()
    kids.start_loop("chronos", quits, [])
    async with asyncio.timeout(10):
        await again.wait()
    await kids.stop(grace=5)


async def test_a_child_that_cannot_be_started_again_does_not_stop_the_supervision(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child's program gone between two starts (Popen raises): logged, tried again
    later, and the loops beside it are still supervised."""
    monkeypatch.setattr(children_mod, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(children_mod, "BACKOFF_FIRST", 0.01)
    kids = Children()
    child = kids.start("gone", ["true"])
    child.argv = ["/nonexistent/corral-child"]  # its next start fails
    runs = 0
    again = asyncio.Event()

    async def quits(argv: list[str]) -> None:
        nonlocal runs
        runs += 1
        if runs > 2:
            again.set()
            await asyncio.Event().wait()

    caplog.set_level(logging.WARNING, logger="corral.apiserver")
    kids.start_loop("scheduler", quits, [])
    async with asyncio.timeout(10):
        await again.wait()
        while "gone: starting it failed" not in caplog.text:
            await asyncio.sleep(0.01)
    assert kids._task is not None and not kids._task.done()
    await kids.stop(grace=5)


async def test_a_loop_that_lost_its_leadership_is_started_again_at_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lost term is no crash: no traceback, no back-off (the first is an hour here)."""
    monkeypatch.setattr(children_mod, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(children_mod, "BACKOFF_FIRST", 3600.0)
    runs = 0
    again = asyncio.Event()

    async def term(argv: list[str]) -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise LeadershipLost("kube-system/kube-scheduler: leadership lost")
        again.set()
        await asyncio.Event().wait()

    kids = Children()
    caplog.set_level(logging.WARNING, logger="corral.apiserver")
    kids.start_loop("scheduler", term, [])
    try:
        async with asyncio.timeout(10):
            await again.wait()
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert "lost its leadership; starting it again in 0 s" in caplog.text
    finally:
        await kids.stop(grace=5)


async def test_a_child_that_lost_its_leadership_is_started_again_at_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(children_mod, "POLL_SECONDS", 0.02)
    monkeypatch.setattr(children_mod, "BACKOFF_FIRST", 3600.0)
    caplog.set_level(logging.WARNING, logger="corral.apiserver")
    kids = Children()
    try:
        code = f"raise SystemExit({EXIT_LEADERSHIP_LOST})"
        child = kids.start("scheduler", [sys.executable, "-c", code])
        async with asyncio.timeout(10):
            while child.restarts < 2:
                await asyncio.sleep(0.02)
        assert "corral scheduler lost its leadership; starting it again in 0 s" in caplog.text
    finally:
        await kids.stop(grace=5)
