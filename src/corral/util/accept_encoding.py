"""``Accept-Encoding`` (RFC 9110 §12.5.3): whether a client takes a gzip body. The API
server's response compression and the dashboard's static files both ask it."""

from __future__ import annotations


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip: ``gzip``, ``x-gzip`` or ``*``
    listed, unless its weight is ``q=0`` (or not a number)."""
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        q = params.strip().lower()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False
