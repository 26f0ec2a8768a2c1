"""``dashboard/watch_mux.py``'s pure parts: which ``w`` parameters are watches it opens,
the line framing the page parses, and the splitting of upstream bytes into lines."""

from __future__ import annotations

import json

import pytest

from corral.api import errors
from corral.dashboard.watch_mux import (
    MAX_WATCHES,
    LineSplitter,
    LineTooLong,
    end_line,
    frame,
    parse_watches,
)

POD_WATCH = "/api/v1/pods?watch=1&resourceVersion=12&allowWatchBookmarks=true"


@pytest.mark.parametrize(
    "w",
    [POD_WATCH, "/apis/apps/v1/namespaces/default/deployments?watch=true",
     "/api/v1/pods?resourceVersion=3&watch=True", "/api/v1/pods?watch=1&fieldSelector=a%3Db",
     "/apis/batch/v1/jobs?labelSelector=app%20in%20(a)&watch=1"],
    ids=["pods", "apis-true", "watch-last", "encoded-selector", "encoded-space"],
)  # fmt: skip
def test_watch_paths_accepted(w: str) -> None:
    assert parse_watches([w]) == [w]


@pytest.mark.parametrize(
    "w",
    ["/api/v1/pods", "/api/v1/pods?watch=0", "/api/v1/pods?watch=", "/api/v1/pods?watch=false&watch=1",
     "/ui/watch?watch=1", "/healthz?watch=1", "/apisx/v1?watch=1", "api/v1/pods?watch=1",
     "//h/api/v1/pods?watch=1", "/api/../ui?watch=1", "/api/v1/%2E%2E/x?watch=1",
     "/api/v1/pods?watch=1#f", "/api/v1/pods?watch=1 x", "/api/v1/pods?watch=1\r\nX: y",
     "/api/v1/pödß?watch=1"],
    ids=["no-watch", "watch-0", "watch-empty", "first-watch-false", "ui", "healthz", "apisx",
         "relative", "other-host", "dots", "encoded-dots", "fragment", "space", "crlf",
         "non-ascii"],
)  # fmt: skip
def test_watch_paths_refused(w: str) -> None:
    with pytest.raises(errors.StatusError) as e:
        parse_watches([POD_WATCH, w])
    assert e.value.code == 400 and e.value.reason == errors.BAD_REQUEST


def test_at_least_one_and_at_most_max_watches() -> None:
    with pytest.raises(errors.StatusError):
        parse_watches([])
    assert len(parse_watches([POD_WATCH] * MAX_WATCHES)) == MAX_WATCHES
    with pytest.raises(errors.StatusError):
        parse_watches([POD_WATCH] * (MAX_WATCHES + 1))


def test_frame_keeps_the_line_as_received() -> None:
    line = b'{"type":"ADDED","object":{"data":{"a":"x\\ty\\n\xc3\xa9"}}}'
    assert frame(3, line) == b"3\t" + line + b"\n"


def test_end_line() -> None:
    assert end_line(0, 200) == b"0\tEND 200\t\n"
    assert end_line(0, 200, b"ignored") == b"0\tEND 200\t\n"
    body = b'{\n  "kind": "Status",\r\n  "code": 403\n}\n'
    out = end_line(12, 403, body)
    index, end, text = out.rstrip(b"\n").split(b"\t")
    assert (index, end) == (b"12", b"END 403")
    assert out.count(b"\n") == 1
    assert json.loads(text) == {"kind": "Status", "code": 403}


def test_lines_split_across_chunks() -> None:
    s = LineSplitter()
    assert s.feed(b'{"a":') == []
    assert s.feed(b'1}\n{"b"') == [b'{"a":1}']
    assert s.feed(b":2}\n\n\r\n{") == [b'{"b":2}']  # blank lines are dropped
    assert s.feed(b"}\r\n") == [b"{}"]
    assert s.feed(b"") == []


def test_a_line_too_long() -> None:
    s = LineSplitter(max_line=8)
    assert s.feed(b"12345678\n") == [b"12345678"]
    with pytest.raises(LineTooLong):
        s.feed(b"123456789")  # no newline yet, and already too long
    with pytest.raises(LineTooLong):
        LineSplitter(max_line=8).feed(b"123456789\n")
