"""Waiting in tests: poll a condition until it holds or a deadline passes.

For integration tests, where the system under test runs in another process (or task)
and a state is reached "soon"; unit tests use a fake clock instead and never wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def until(pred: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    """Return once ``await pred()`` is true; ``TimeoutError`` after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not await pred():
            await asyncio.sleep(0.05)


def eventually(
    pred: Callable[[], T], timeout: float = 30, interval: float = 0.05, what: str = ""
) -> T:
    """Blocking ``until`` for tests that drive subprocesses (kubectl) synchronously:
    return ``pred()``'s first truthy value; ``AssertionError`` after ``timeout`` seconds
    (naming ``what`` was waited for, when given)."""
    deadline = time.monotonic() + timeout
    while not (value := pred()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or 'condition'} not met within {timeout} s")
        time.sleep(interval)
    return value


def wait_for(pred: Callable[[], object], limit: float, interval: float = 0.05) -> bool:
    """Poll ``pred()`` until it is truthy (True) or ``limit`` seconds pass (False): for
    scenarios that record a missed deadline as a figure rather than fail at once."""
    deadline = time.monotonic() + limit
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True
