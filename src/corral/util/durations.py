"""Go's ``time.ParseDuration``: the one duration parser of every command-line flag and field.

Used by the agents (``--node-status-update-frequency``, hollow pods' exit-after), the
controllers (node lifecycle grace periods, CronJob ``@every``), the CRD schema format
``duration`` and ``corral metrics-server --metric-resolution``.
"""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration (``1h30m``, ``1m30s``, ``-1.5s``, ``250ms``, ``0``);
    ``ValueError`` with Go's wording (``time: invalid duration "x"``) when malformed."""
    sign = -1.0 if text.startswith("-") else 1.0
    body = text[1:] if text[:1] in ("-", "+") else text
    if body == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(body):
        m = _PART.match(body, pos)
        if m is None:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if not body or pos != len(body):
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * total


def duration(text: str) -> float:
    """A command-line duration: a Go duration or a plain number of seconds, not negative
    (``ValueError`` otherwise; as an argparse ``type``, "invalid duration value")."""
    t = text.strip()
    try:
        value = float(t)
    except ValueError:
        value = parse_go_duration(t)
    if value < 0:
        raise ValueError(f'negative duration "{text}"')
    return value


def duration_text(text: str) -> str:
    """``duration`` checked at parse time, the text kept (a flag passed on to a child)."""
    duration(text)
    return text.strip()


duration_text.__name__ = "duration"  # argparse: "invalid duration value: '1x'"
