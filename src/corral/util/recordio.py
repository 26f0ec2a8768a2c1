"""RecordIO, the framing of Mesos' streaming HTTP APIs: ``<decimal length>\\n<bytes>``.

Written by the Mesos master's scheduler and operator streams and the agent's executor
stream (one record per event, sent as one HTTP chunk), and read back by the tests.
"""

from __future__ import annotations


def encode(record: bytes) -> bytes:
    """One framed record."""
    return b"%d\n%s" % (len(record), record)


class Decoder:
    """Feed bytes as they arrive (chunk boundaries need not match records); ``feed``
    returns the records completed so far."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                return out
            head = self._buf[:nl]
            if not head.isdigit():
                raise ValueError(f"bad RecordIO length {head[:20]!r}")
            size = int(head)
            if len(self._buf) - nl - 1 < size:
                return out
            out.append(self._buf[nl + 1 : nl + 1 + size])
            self._buf = self._buf[nl + 1 + size :]
