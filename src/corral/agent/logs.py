"""Reading container logs in the CRI log format, with the kubelet's semantics.

Each container attempt writes one file (``<pod dir>/logs/<container>/<attempt>.log``),
one record a line::

    2026-11-27T16:45:19.123456789Z stdout F hello
    2026-11-27T16:45:19.200000000Z stderr P a long line, contin
    2026-11-27T16:45:19.200000100Z stderr F ued here

``F`` ends a line (the reader appends ``\\n``), ``P`` is a partial line continued by the
next record. The agent's HTTP server (``agent/server.py``, ``GET /containerLogs``) calls
``options_from_query`` and ``stream_log``; nothing else here does I/O beyond reading
the one file.

Semantics follow the kubelet's ``ReadLogs`` (pkg/kubelet/kuberuntime/logs):

- ``tailLines`` counts records (newlines) from the end of the file, then reading goes
  forward from there; ``0`` prints nothing (but ``follow`` still streams new records);
- ``sinceSeconds`` / ``sinceTime`` skip records stamped before the instant;
- ``timestamps`` prefixes every record with its own time in RFC 3339 with nanoseconds
  (trailing zeros trimmed, as Go's ``time.RFC3339Nano``) and a space;
- ``limitBytes`` caps the output, prefixes included; the last record may be cut;
- ``follow`` keeps reading as the file grows, polling every ``poll`` seconds (cheap:
  one ``read`` that returns nothing), until the caller's ``exited`` callback says the
  container is gone *and* everything written before that has been read;
- malformed lines are skipped, as the kubelet does.

Shaped as a synchronous ``LogReader`` (pure apart from reading the file, tested with real
files) under one small async generator, so the only thing that waits is the poll.
"""

from __future__ import annotations

import asyncio
import calendar
import re
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

#: bytes read from the file at a time (also the largest chunk handed out at once)
CHUNK = 64 * 1024
#: how often ``stream_log`` looks for new records when following
POLL_INTERVAL = 0.1

_TIME_RE = re.compile(
    r"(\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
_STREAMS = (b"stdout", b"stderr")


def parse_time(text: str) -> int:
    """An RFC 3339 time (any fraction precision, ``Z`` or an offset) in ns since the epoch.

    Raises ``ValueError`` when ``text`` is not one.
    """
    m = _TIME_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    base, frac, tz = m.groups()
    dt = datetime.fromisoformat(base + ("+00:00" if tz in ("Z", "z") else tz))
    secs = calendar.timegm(dt.utctimetuple())
    nanos = int((frac or ".0")[1:10].ljust(9, "0"))
    return secs * 1_000_000_000 + nanos


def format_time(ns: int) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: nanoseconds with trailing zeros trimmed."""
    secs, nanos = divmod(ns, 1_000_000_000)
    out = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if nanos:
        out += "." + f"{nanos:09d}".rstrip("0")
    return out + "Z"


@dataclass(frozen=True)
class Record:
    """One CRI log record: its time (ns), stream, whether it ends a line, and its text."""

    time_ns: int
    stream: str  # "stdout" | "stderr"
    partial: bool
    text: bytes  # without the line end

    def content(self) -> bytes:
        """The bytes the container wrote: ``text`` plus ``\\n`` unless partial."""
        return self.text if self.partial else self.text + b"\n"


def parse_record(line: bytes) -> Record:
    """Parse one line of a CRI log (without its ``\\n``); ``ValueError`` if malformed."""
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        raise ValueError(f"malformed CRI log line: {line[:80]!r}")
    stamp, stream, tag = parts[0], parts[1], parts[2]
    if stream not in _STREAMS:
        raise ValueError(f"unknown stream {stream!r} in CRI log line")
    # the tag may carry more flags after ':' (``F:x``); only the first one matters
    flag = tag.split(b":", 1)[0]
    if flag not in (b"F", b"P"):
        raise ValueError(f"unknown tag {tag!r} in CRI log line")
    return Record(
        time_ns=parse_time(stamp.decode("ascii", "replace")),
        stream=stream.decode(),
        partial=flag == b"P",
        text=parts[3] if len(parts) == 4 else b"",
    )


@dataclass(frozen=True)
class LogOptions:
    """What to read: the kubelet's ``PodLogOptions`` after parsing."""

    tail_lines: int | None = None  # None: all
    since_ns: int | None = None  # skip records stamped before this instant
    timestamps: bool = False
    limit_bytes: int | None = None  # None: unlimited
    follow: bool = False
    previous: bool = False


def parse_bool(value: str) -> bool:
    """Go's ``strconv.ParseBool``, which is what query booleans go through upstream."""
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False", ""):
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{value}": invalid syntax')


def _int(q: Mapping[str, str], name: str, minimum: int) -> int | None:
    raw = q.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f'{name}: strconv.ParseInt: parsing "{raw}": invalid syntax') from None
    if value < minimum:
        raise ValueError(f"{name}: must be greater than or equal to {minimum}")
    return value


def options_from_query(q: Mapping[str, str], now: float) -> LogOptions:
    """``LogOptions`` from ``/containerLogs`` query parameters; ``ValueError`` if invalid.

    ``now`` (unix seconds) anchors ``sinceSeconds``.
    """
    since_seconds = _int(q, "sinceSeconds", 1)
    since_time = q.get("sinceTime") or None
    if since_seconds is not None and since_time is not None:
        raise ValueError("at most one of `sinceTime` or `sinceSeconds` may be specified")
    since_ns: int | None = None
    if since_seconds is not None:
        since_ns = int((now - since_seconds) * 1_000_000_000)
    elif since_time is not None:
        since_ns = parse_time(since_time)
    return LogOptions(
        tail_lines=_int(q, "tailLines", 0),
        since_ns=since_ns,
        timestamps=parse_bool(q.get("timestamps", "")),
        limit_bytes=_int(q, "limitBytes", 1),
        follow=parse_bool(q.get("follow", "")),
        previous=parse_bool(q.get("previous", "")),
    )


def tail_offset(f: BinaryIO, lines: int) -> int:
    """The offset where the last ``lines`` lines of ``f`` start (the end for 0).

    Reads the file backwards a block at a time, so a long log costs only its tail.
    """
    end = f.seek(0, 2)
    if lines <= 0:
        return end
    pos, found = end, 0
    while pos > 0:
        step = min(CHUNK, pos)
        pos -= step
        f.seek(pos)
        block = f.read(step)
        i = len(block)
        while (i := block.rfind(b"\n", 0, i)) >= 0:
            if pos + i == end - 1:
                continue  # the newline that ends the last line
            found += 1
            if found == lines:
                return pos + i + 1
    return 0


class LogReader:
    """Formats the records of one open log file, from where it stands, as they appear.

    Owns nothing but its position: the caller opens and closes ``f``. ``done`` turns
    true once ``limit_bytes`` is reached; nothing more is produced then.
    """

    def __init__(self, f: BinaryIO, opts: LogOptions) -> None:
        self.f = f
        self.opts = opts
        self.remaining = opts.limit_bytes
        self.pending = b""  # an incomplete line at the end of what was read so far
        self.done = False

    @classmethod
    def at_tail(cls, f: BinaryIO, opts: LogOptions) -> LogReader:
        """A reader positioned at ``opts.tail_lines`` from the end (or the start)."""
        f.seek(0 if opts.tail_lines is None else tail_offset(f, opts.tail_lines))
        return cls(f, opts)

    def format(self, rec: Record) -> bytes:
        """One record's output (empty if filtered out), counted against the limit."""
        if self.done or (self.opts.since_ns is not None and rec.time_ns < self.opts.since_ns):
            return b""
        out = rec.content()
        if self.opts.timestamps:
            out = format_time(rec.time_ns).encode() + b" " + out
        if self.remaining is not None:
            if len(out) >= self.remaining:
                out, self.done = out[: self.remaining], True
            self.remaining -= len(out)
        return out

    def chunks(self) -> Iterator[bytes]:
        """Output for every complete line now in the file, in chunks of about ``CHUNK``."""
        while not self.done:
            data = self.f.read(CHUNK)
            if not data:
                return
            lines = (self.pending + data).split(b"\n")
            self.pending = lines.pop()
            out = []
            for line in lines:
                try:
                    rec = parse_record(line)
                except ValueError:
                    continue  # the kubelet skips (and logs) malformed lines
                out.append(self.format(rec))
                if self.done:
                    break
            chunk = b"".join(out)
            if chunk:
                yield chunk


def read_log(path: Path, opts: LogOptions) -> bytes:
    """Everything ``opts`` selects from the file as it is now (no following)."""
    with path.open("rb") as f:
        return b"".join(LogReader.at_tail(f, opts).chunks())


async def stream_log(
    path: Path,
    opts: LogOptions,
    exited: Callable[[], bool] = lambda: True,
    poll: float = POLL_INTERVAL,
) -> AsyncGenerator[bytes, None]:
    """Yield the selected output of ``path``; with ``opts.follow``, keep yielding new
    records until ``exited()`` is true and the file is drained.

    ``exited`` is sampled *before* each read to the end of the file, so every record
    written before the container was seen gone is delivered. Cancelling (or closing) the
    generator closes the file.
    """
    with path.open("rb") as f:
        reader = LogReader.at_tail(f, opts)
        while True:
            gone = not opts.follow or exited()
            for chunk in reader.chunks():
                yield chunk
            if reader.done or gone:
                return
            await asyncio.sleep(poll)
