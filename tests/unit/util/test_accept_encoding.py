"""``Accept-Encoding`` as the API server's response compression and the dashboard's
static files read it: gzip (or ``*``) unless its weight is zero."""

from __future__ import annotations

import pytest

from corral.util.accept_encoding import accepts_gzip


@pytest.mark.parametrize(
    ("header", "gzip"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),  # aiohttp's client, browsers
        ("deflate, GZIP;q=0.5", True),
        ("br;q=1.0, GZIP;q=0.5", True),
        ("*", True),
        ("x-gzip", True),
        ("", False),
        ("identity", False),
        ("deflate, br", False),
        ("gzip;q=0", False),
        ("gzip; q=0.0", False),
        ("gzip;q=nonsense", False),
    ],
)
def test_accept_encoding(header: str, gzip: bool) -> None:
    assert accepts_gzip(header) is gzip
