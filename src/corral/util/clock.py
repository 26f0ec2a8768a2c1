"""Injected time: every component that waits, expires or schedules reads a ``Clock``.

Tests pass a ``FakeClock`` (corral.testing) and advance it instead of sleeping.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch."""
        ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


#: the last whole second formatted, and its text: a busy process stamps the same second
#: thousands of times (every write's managedFields time, every Lease renewal), and
#: ``strftime`` costs several microseconds. Replaced whole, so threads may share it.
_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def _second(sec: int) -> str:
    """``2026-11-27T14:03:45`` of the epoch second ``sec``, UTC."""
    global _last_second
    last = _last_second
    if last[0] == sec:
        return last[1]
    text = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    _last_second = (sec, text)
    return text


def rfc3339(ts: float) -> str:
    """``2026-11-27T14:03:45Z``: second precision, UTC, as metav1.Time serialises."""
    return _second(int(ts)) + "Z"


def rfc3339_micro(ts: float) -> str:
    """``2026-11-27T14:03:45.123456Z`` as metav1.MicroTime serialises: the microseconds
    rounded half to even, as ``datetime.fromtimestamp`` rounds them."""
    frac, whole = math.modf(ts)
    us = round(frac * 1e6)
    sec = int(whole)
    if us >= 1_000_000:
        sec, us = sec + 1, us - 1_000_000
    elif us < 0:
        sec, us = sec - 1, us + 1_000_000
    return f"{_second(sec)}.{us:06d}Z"


def parse_rfc3339(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
