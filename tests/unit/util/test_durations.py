"""The one Go-duration parser (corral.util.durations) and the flag type built on it."""

from __future__ import annotations

import argparse

import pytest

from corral.util.durations import duration, duration_text, parse_go_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15s", 15.0), ("1m30s", 90.0), ("1h0m0.5s", 3600.5), ("250ms", 0.25), ("2us", 2e-6),
     ("3µs", 3e-6), ("7ns", 7e-9), ("1.5h", 5400.0), (".5s", 0.5), ("-1.5s", -1.5), ("+2s", 2.0),
     ("0", 0.0)],
    ids=["seconds", "compound", "hours-fraction", "millis", "micros", "micro-sign", "nanos",
         "fraction", "leading-dot", "negative", "plus", "zero"],
)  # fmt: skip
def test_parse_go_duration(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "s", "5x", "1m 2s", "1s3", "--1s", "0s0"])
def test_parse_go_duration_rejects_with_gos_wording(text: str) -> None:
    with pytest.raises(ValueError, match=r'^time: invalid duration "'):
        parse_go_duration(text)


@pytest.mark.parametrize(
    ("text", "seconds"), [("15s", 15.0), ("1m30s", 90.0), ("2", 2.0), (" 0.5 ", 0.5)]
)
def test_duration_flag(text: str, seconds: float) -> None:
    assert duration(text) == seconds


def test_duration_flag_is_checked_at_parse_time() -> None:
    p = argparse.ArgumentParser(exit_on_error=False)
    p.add_argument("--metric-resolution", type=duration_text)
    assert p.parse_args(["--metric-resolution", "1m30s"]).metric_resolution == "1m30s"
    with pytest.raises(argparse.ArgumentError, match="invalid duration value: '1x'"):
        p.parse_args(["--metric-resolution", "1x"])
    with pytest.raises(ValueError):
        duration("-1s")
