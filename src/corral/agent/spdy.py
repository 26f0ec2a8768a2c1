"""SPDY/3.1 framing, the part ``kubectl port-forward`` speaks; sans-I/O.

kubectl 1.31+ tunnels a SPDY/3.1 session through a WebSocket (subprotocol
``SPDY/3.1+portforward.k8s.io``; ``agent/portforward.py`` serves it): every binary
message carries some bytes of the SPDY byte stream (a frame may span messages, a message
may hold several frames). The client is Go's ``moby/spdystream``; what it needs from a
server, and therefore all this module does:

- ``Decoder.feed(bytes) -> [frame]``: SYN_STREAM (with its header block inflated: one
  zlib stream per direction, primed with the SPDY/3 dictionary), DATA, RST_STREAM, PING,
  GOAWAY; SYN_REPLY, HEADERS, SETTINGS and WINDOW_UPDATE are read and returned as
  ``Ignored`` (spdystream implements no flow control, so neither side sends window
  updates it depends on);
- ``Encoder``: SYN_REPLY (an empty header block, deflated with ``Z_SYNC_FLUSH`` so the
  peer's reader ends exactly at the frame's end, as Go's framer checks), DATA (with FIN),
  RST_STREAM, PING, GOAWAY.

Frame layouts (big-endian)::

    control: |1| version(15)=3 | type(16) | flags(8) | length(24) | payload
    data:    |0| stream id(31)             | flags(8) | length(24) | payload
    header block: count(32), then per pair: len(32) name len(32) value (values NUL-joined)

Errors in the byte stream raise ``ProtocolError``; the caller ends the session. So do
a control frame over ``MAX_CONTROL`` bytes and a header block that inflates past
``MAX_HEADERS`` (a small deflated block may expand a thousandfold).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1,
    2,
    3,
    4,
    6,
    7,
    8,
    9,
)
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
#: RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM = 1, 2, 3
CANCEL, INTERNAL_ERROR = 5, 6
MAX_DATA = (1 << 24) - 1
#: the largest control frame read (a SYN_STREAM's compressed headers are far smaller)
MAX_CONTROL = 64 * 1024
#: the largest inflated header block: a peer's few compressed bytes may not become more
MAX_HEADERS = 64 * 1024


def _dictionary() -> bytes:
    """The SPDY/3 header-compression dictionary (draft 3, section 2.6.10.1): length-
    prefixed names, then a run of status lines, dates and media types. 1423 bytes."""
    names = (
        "options head post put delete trace accept accept-charset accept-encoding "
        "accept-language accept-ranges age allow authorization cache-control connection "
        "content-base content-encoding content-language content-length content-location "
        "content-md5 content-range content-type date etag expect expires from host if-match "
        "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
        "max-forwards pragma proxy-authenticate proxy-authorization range referer "
        "retry-after server te trailer transfer-encoding upgrade user-agent vary via warning "
        "www-authenticate method get status"
    )
    words = names.split()
    words += ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive"]
    words += ["origin"]
    out = b"".join(struct.pack(">I", len(w)) + w.encode() for w in words)
    tail = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
        "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
        "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
        "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
        "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
        "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
        "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8"
        "charset=iso-8859-1,utf-,*,enq=0."
    )
    return out + tail.encode()


DICTIONARY = _dictionary()


class ProtocolError(Exception):
    """The byte stream is not SPDY/3 as this module reads it."""


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: dict[str, list[str]]
    fin: bool


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes
    fin: bool


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Ping:
    id: int


@dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int


@dataclass(frozen=True)
class Ignored:
    """A frame this server has no use for (SYN_REPLY, HEADERS, SETTINGS, WINDOW_UPDATE)."""

    type: int


Frame = SynStream | Data | RstStream | Ping | GoAway | Ignored


def parse_header_block(raw: bytes) -> dict[str, list[str]]:
    """A decompressed name/value block as ``{name: [values]}``."""
    try:
        (count,) = struct.unpack_from(">I", raw, 0)
        pos, out = 4, dict[str, list[str]]()
        for _ in range(count):
            (n,) = struct.unpack_from(">I", raw, pos)
            name = raw[pos + 4 : pos + 4 + n].decode("latin-1").lower()
            pos += 4 + n
            (n,) = struct.unpack_from(">I", raw, pos)
            value = raw[pos + 4 : pos + 4 + n].decode("latin-1")
            pos += 4 + n
            out.setdefault(name, []).extend(value.split("\x00"))
    except struct.error as e:
        raise ProtocolError(f"truncated header block: {e}") from None
    return out


def header_block(headers: dict[str, list[str]]) -> bytes:
    parts = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        n, v = name.lower().encode("latin-1"), "\x00".join(values).encode("latin-1")
        parts += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(parts)


class Decoder:
    """Frames out of a byte stream fed in arbitrary pieces."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    def _headers(self, compressed: bytes) -> dict[str, list[str]]:
        try:
            raw = self._inflate.decompress(compressed, MAX_HEADERS)
        except zlib.error as e:
            raise ProtocolError(f"header block: {e}") from None
        if self._inflate.unconsumed_tail:
            raise ProtocolError(f"header block inflates past {MAX_HEADERS} bytes")
        return parse_header_block(raw)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        buf = self._buf
        while len(buf) >= 8:
            first, second = struct.unpack_from(">II", buf, 0)
            length, flags = second & 0xFFFFFF, second >> 24
            if first & 0x80000000 and length > MAX_CONTROL:
                raise ProtocolError(f"control frame of {length} bytes (at most {MAX_CONTROL})")
            if len(buf) < 8 + length:
                break
            payload = bytes(buf[8 : 8 + length])
            del buf[: 8 + length]
            if not first & 0x80000000:
                frames.append(Data(first & 0x7FFFFFFF, payload, bool(flags & FLAG_FIN)))
                continue
            version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
            if version != VERSION:
                raise ProtocolError(f"unsupported SPDY version {version}")
            frames.append(self._control(kind, flags, payload))
        return frames

    def _control(self, kind: int, flags: int, p: bytes) -> Frame:
        try:
            if kind == SYN_STREAM:
                (sid,) = struct.unpack_from(">I", p, 0)
                return SynStream(sid & 0x7FFFFFFF, self._headers(p[10:]), bool(flags & FLAG_FIN))
            if kind in (SYN_REPLY, HEADERS):
                self._headers(p[4:])  # keeps the shared zlib stream in step
                return Ignored(kind)
            if kind == RST_STREAM:
                sid, status = struct.unpack_from(">II", p, 0)
                return RstStream(sid & 0x7FFFFFFF, status)
            if kind == PING:
                return Ping(struct.unpack_from(">I", p, 0)[0])
            if kind == GOAWAY:
                last, status = struct.unpack_from(">II", p, 0)
                return GoAway(last & 0x7FFFFFFF, status)
        except struct.error as e:
            raise ProtocolError(f"control frame {kind}: {e}") from None
        return Ignored(kind)


class Encoder:
    """Frames to send; one per session (the header compressor is a stream)."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zdict=DICTIONARY)

    @staticmethod
    def _control(kind: int, flags: int, payload: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload

    def syn_reply(self, stream_id: int, headers: dict[str, list[str]] | None = None) -> bytes:
        block = header_block(headers or {})
        compressed = self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        return self._control(SYN_REPLY, 0, struct.pack(">I", stream_id) + compressed)

    @staticmethod
    def data(stream_id: int, payload: bytes, fin: bool = False) -> bytes:
        """One DATA frame, or several when ``payload`` exceeds a frame's 16 MiB."""
        out = []
        view = memoryview(payload)
        while True:
            chunk, view = view[:MAX_DATA], view[MAX_DATA:]
            last = not view
            flags = FLAG_FIN if fin and last else 0
            out.append(struct.pack(">II", stream_id, (flags << 24) | len(chunk)) + chunk)
            if last:
                return b"".join(out)

    def rst_stream(self, stream_id: int, status: int) -> bytes:
        return self._control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, ping_id: int) -> bytes:
        return self._control(PING, 0, struct.pack(">I", ping_id))

    def goaway(self, last_good_stream_id: int, status: int = 0) -> bytes:
        return self._control(GOAWAY, 0, struct.pack(">II", last_good_stream_id, status))
