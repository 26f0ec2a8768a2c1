"""A clock the tests move by hand (``corral.util.clock.Clock``): nothing really sleeps."""

from __future__ import annotations


class FakeClock:
    """``now`` (unix seconds) and ``monotonic`` advance only through ``advance``."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self._now = now
        self._mono = 1000.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds
