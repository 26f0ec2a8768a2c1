"""agent/logs.py: reading CRI log files with the kubelet's semantics, on real files."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from corral.agent.logs import (
    LogOptions,
    format_time,
    options_from_query,
    parse_record,
    parse_time,
    read_log,
    stream_log,
    tail_offset,
)

T0 = parse_time("2026-01-02T03:04:05Z")
S = 1_000_000_000

LINES = [
    "2026-01-02T03:04:05.000000001Z stdout F one",
    "2026-01-02T03:04:06.5Z stderr F two",
    "2026-01-02T03:04:07.123456789Z stdout P thr",
    "2026-01-02T03:04:07.123456790Z stdout F ee",
    "not a cri line at all",
    "2026-01-02T03:04:08Z stdout F four",
]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return write(tmp_path / "0.log", LINES)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2026-01-02T03:04:05Z", T0),
        ("2026-01-02T03:04:05.5Z", T0 + S // 2),
        ("2026-01-02T03:04:05.123456789Z", T0 + 123456789),
        ("2026-01-02T05:04:05.000000001+02:00", T0 + 1),
    ],
    ids=["seconds", "fraction", "nanos", "offset"],
)
def test_parse_time(text: str, ns: int) -> None:
    assert parse_time(text) == ns


def test_format_time_trims_like_rfc3339nano() -> None:
    assert format_time(T0) == "2026-01-02T03:04:05Z"
    assert format_time(T0 + 500_000_000) == "2026-01-02T03:04:05.5Z"
    assert format_time(T0 + 123456789) == "2026-01-02T03:04:05.123456789Z"


def test_parse_record() -> None:
    rec = parse_record(b"2026-01-02T03:04:05Z stderr P a b  c")
    assert (rec.time_ns, rec.stream, rec.partial, rec.text) == (T0, "stderr", True, b"a b  c")
    assert parse_record(b"2026-01-02T03:04:05Z stdout F").content() == b"\n"
    for bad in (b"garbage", b"2026-01-02T03:04:05Z stdin F x", b"2026-01-02T03:04:05Z stdout X x"):
        with pytest.raises(ValueError):
            parse_record(bad)


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        (LogOptions(), b"one\ntwo\nthree\nfour\n"),
        (LogOptions(tail_lines=2), b"four\n"),  # the malformed line counts as a line
        (LogOptions(tail_lines=3), b"ee\nfour\n"),  # a partial record's tail
        (LogOptions(tail_lines=0), b""),
        (LogOptions(tail_lines=100), b"one\ntwo\nthree\nfour\n"),
        (LogOptions(since_ns=T0 + S), b"two\nthree\nfour\n"),
        (LogOptions(since_ns=T0 + 3 * S), b"four\n"),
        (LogOptions(limit_bytes=6), b"one\ntw"),
        (LogOptions(limit_bytes=4), b"one\n"),
        (
            LogOptions(timestamps=True, since_ns=T0 + S),
            b"2026-01-02T03:04:06.5Z two\n"
            b"2026-01-02T03:04:07.123456789Z thr"
            b"2026-01-02T03:04:07.12345679Z ee\n"
            b"2026-01-02T03:04:08Z four\n",
        ),
        (LogOptions(timestamps=True, limit_bytes=10), b"2026-01-02"),
    ],
    ids=[
        "all",
        "tail-2",
        "tail-3",
        "tail-0",
        "tail-more-than-file",
        "since",
        "since-late",
        "limit-cuts-record",
        "limit-exact",
        "timestamps",
        "limit-counts-prefix",
    ],
)
def test_read_log(log: Path, opts: LogOptions, expected: bytes) -> None:
    assert read_log(log, opts) == expected


def test_tail_offset_across_blocks(tmp_path: Path) -> None:
    lines = [f"2026-01-02T03:04:05Z stdout F line {i:06d} " + "x" * 100 for i in range(3000)]
    path = write(tmp_path / "big.log", lines)  # ~400 KB: several 64 KiB blocks
    with path.open("rb") as f:
        off = tail_offset(f, 1234)
        f.seek(off)
        assert f.read().decode().splitlines() == lines[-1234:]
        assert tail_offset(f, 0) == path.stat().st_size
        assert tail_offset(f, 5000) == 0
    out = read_log(path, LogOptions(tail_lines=2)).decode().splitlines()
    assert [o.split()[1] for o in out] == ["002998", "002999"]


def test_tail_offset_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.log"
    path.write_bytes(b"")
    with path.open("rb") as f:
        assert tail_offset(f, 3) == 0
    assert read_log(path, LogOptions(tail_lines=3)) == b""


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, LogOptions()),
        (
            {"follow": "true", "previous": "1", "timestamps": "True", "tailLines": "5"},
            LogOptions(tail_lines=5, timestamps=True, follow=True, previous=True),
        ),
        (
            {"sinceSeconds": "10", "limitBytes": "7"},
            LogOptions(since_ns=T0 - 10 * S, limit_bytes=7),
        ),
        ({"sinceTime": "2026-01-02T03:04:05Z"}, LogOptions(since_ns=T0)),
    ],
    ids=["none", "flags", "since-seconds", "since-time"],
)
def test_options_from_query(query: dict[str, str], expected: LogOptions) -> None:
    assert options_from_query(query, T0 / S) == expected


@pytest.mark.parametrize(
    "query",
    [
        {"tailLines": "-1"},
        {"tailLines": "x"},
        {"limitBytes": "0"},
        {"sinceSeconds": "0"},
        {"sinceSeconds": "1", "sinceTime": "2026-01-02T03:04:05Z"},
        {"sinceTime": "yesterday"},
        {"follow": "maybe"},
    ],
    ids=["negative-tail", "tail-nan", "limit-0", "since-0", "both-since", "bad-time", "bad-bool"],
)
def test_options_from_query_rejects(query: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        options_from_query(query, T0 / S)


async def test_stream_log_without_follow_ends_at_eof(log: Path) -> None:
    chunks = [c async for c in stream_log(log, LogOptions(), exited=lambda: False)]
    assert b"".join(chunks) == b"one\ntwo\nthree\nfour\n"


async def test_follow_reads_growth_until_exited_and_drained(tmp_path: Path) -> None:
    path = write(tmp_path / "0.log", LINES[:1])
    gone = False
    got: list[bytes] = []

    async def consume() -> None:
        async for chunk in stream_log(
            path, LogOptions(follow=True, tail_lines=1), exited=lambda: gone, poll=0.01
        ):
            got.append(chunk)

    async def wait_for(data: bytes) -> None:
        async with asyncio.timeout(5):
            while b"".join(got) != data:
                await asyncio.sleep(0.01)

    async with asyncio.timeout(10):
        task = asyncio.create_task(consume())
        await wait_for(b"one\n")
        with path.open("a") as f:  # a record written in two pieces: only whole lines count
            f.write("2026-01-02T03:04:09Z stdout F fi")
            f.flush()
            await asyncio.sleep(0.05)
            assert b"".join(got) == b"one\n"
            f.write("ve\n")
        await wait_for(b"one\nfive\n")
        assert not task.done()
        with path.open("a") as f:  # written just before the exit: still delivered
            f.write("2026-01-02T03:04:10Z stderr F six\n")
        gone = True
        await task
    assert b"".join(got) == b"one\nfive\nsix\n"


async def test_follow_stops_at_the_limit(tmp_path: Path) -> None:
    path = write(tmp_path / "0.log", LINES)
    async with asyncio.timeout(5):
        out = [
            c
            async for c in stream_log(
                path, LogOptions(follow=True, limit_bytes=5), exited=lambda: False, poll=0.01
            )
        ]
    assert b"".join(out) == b"one\nt"
