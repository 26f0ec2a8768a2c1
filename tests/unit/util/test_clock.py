"""The timestamp formatters: the same text as ``datetime.strftime`` gives, at every second
and every rounding edge of the microseconds (they keep the last second's text)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from corral.util.clock import rfc3339, rfc3339_micro

EDGES = [
    0.0,
    0.5,
    1e-7,
    0.9999995,  # rounds up into the next second
    0.9999994999,
    1.0000005,  # half: to even
    1.0000015,
    1.0000025,
    -0.5,
    -1.25,
    -5e-7,
    59.9999996,
    86399.9999995,
    1764962000.0000005,
    1764962000.9999995,
    1764962000.0000025,
    253402300799.999,
]


def _reference(ts: float) -> tuple[str, str]:
    return (
        datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    )


@pytest.mark.parametrize("ts", EDGES, ids=[repr(t) for t in EDGES])
def test_edges_format_as_datetime_does(ts: float) -> None:
    assert (rfc3339(ts), rfc3339_micro(ts)) == _reference(ts)


def test_many_instants_format_as_datetime_does() -> None:
    rng = random.Random(19)
    base = 1764962000
    instants = [rng.uniform(0, 4e9) for _ in range(20_000)]
    # every half microsecond around a few seconds: the rounding edges, in and out of order
    instants += [base + k / 2e6 for k in range(0, 2_000_001, 97)]
    instants += [base + 7 - k / 2e6 for k in range(0, 4_001)]
    rng.shuffle(instants)
    for ts in instants:
        assert (rfc3339(ts), rfc3339_micro(ts)) == _reference(ts), ts
