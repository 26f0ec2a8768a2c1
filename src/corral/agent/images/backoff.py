"""The kubelet's image pull back-off (``ImagePullBackOff``), sans-I/O.

The pod lifecycle keeps one ``PullBackoff`` per agent, keyed as the kubelet keys it
(``<pod uid>_<image>``), and reads time from the injected ``Clock``.
"""

from __future__ import annotations

from corral.agent.images.errors import IMAGE_PULL_BACKOFF, ImagePullError
from corral.util.clock import Clock


class PullBackoff:
    """The kubelet's image pull back-off: after a failed pull of ``key`` (the kubelet
    uses ``<pod uid>_<image>``) no new attempt for 10 s, doubling to 300 s; a success
    clears it. Sans-I/O: the pod lifecycle calls ``check`` before ``ensure`` (raising
    ``ImagePullBackOff`` meanwhile), then ``failed`` or ``succeeded``."""

    def __init__(self, clock: Clock, initial: float = 10.0, cap: float = 300.0) -> None:
        self._clock = clock
        self._initial = initial
        self._cap = cap
        self._entries: dict[str, tuple[float, float]] = {}  # key -> (until, last delay)

    def check(self, key: str, image: str) -> None:
        entry = self._entries.get(key)
        if entry is not None and self._clock.monotonic() < entry[0]:
            raise ImagePullError(IMAGE_PULL_BACKOFF, f'Back-off pulling image "{image}"')

    def failed(self, key: str) -> float:
        """Record a failed pull; returns the delay before the next attempt."""
        entry = self._entries.get(key)
        delay = self._initial if entry is None else min(entry[1] * 2, self._cap)
        self._entries[key] = (self._clock.monotonic() + delay, delay)
        return delay

    def succeeded(self, key: str) -> None:
        self._entries.pop(key, None)
