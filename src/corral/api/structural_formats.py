"""String formats and patterns of CRD schemas, as kube-openapi's strfmt registry checks them.

Used by :mod:`corral.api.structural_validate` (the ``format`` and ``pattern`` keywords)
and :mod:`corral.api.structural_check` (patterns must compile). Only the formats that
apiextensions-apiserver keeps are checked (``StripUnsupportedFormatsPostProcess``):
others, e.g. ``int32`` or ``double``, are documentation only, as upstream.
Patterns use Go's RE2 syntax, which Python's ``re`` reads the same for the constructs
schemas use.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from corral.util.durations import parse_go_duration as go_duration_seconds

_UUID = {
    "uuid": r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
    "uuid3": r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
    "uuid4": r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
    "uuid5": r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
}
# go-openapi's hostname pattern; \\p{L}\\p{S} approximated by [^\\W_] (letters, digits).
_LABEL_CH = r"[^\W_]"
_HOSTNAME = re.compile(
    rf"^({_LABEL_CH}((-?{_LABEL_CH}{{0,62}})?)|({_LABEL_CH}((({_LABEL_CH}|-){{0,61}}{_LABEL_CH})?)"
    rf"(\.)){{1,}}([^\W\d_]){{2,63}})$"
)
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+$")
_MAC = re.compile(
    r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{2}[:-]){7}[0-9A-Fa-f]{2}$"
    r"|^([0-9A-Fa-f]{2}[:-]){19}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{4}\.){2}[0-9A-Fa-f]{4}$"
)
_DURATION = re.compile(
    r"^(([+-]?\d+(\.\d*)?|[+-]?\.\d+)(ns|us|µs|μs|ms|s|m|h))+$|^0$"
    r"|^[0-9]+\s*(ns|us|ms|s|m|h|d|w|nanos?|nanoseconds?|micros?|microseconds?|millis?"
    r"|milliseconds?|seconds?|minutes?|hours?|days?|weeks?)$"
)
_HEXCOLOR = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_RGBCOLOR = re.compile(
    r"^rgb\(\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])"
    r"\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*\)$"
)
_SSN = re.compile(r"^\d{3}[- ]?\d{2}[- ]?\d{4}$")


_TIME_OF_DAY = re.compile(
    r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$"
)
_BASE64 = re.compile(
    r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$"
)
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _valid_date_time(s: str) -> bool:
    """strfmt.IsDateTime: a full date, ``t``, then hh:mm:ss[.frac] and z or +hh:mm."""
    if len(s) < 4:
        return False
    parts = s.lower().split("t")
    if len(parts) < 2 or not _valid_date(parts[0]):
        return False
    m = _TIME_OF_DAY.match(parts[1])
    return m is not None and m[1] <= "23" and m[2] <= "59" and m[3] <= "59"


def _valid_byte(s: str) -> bool:
    """govalidator.IsBase64 (standard alphabet, padded, not empty)."""
    return _BASE64.match(s) is not None


def _sloppy_ipv4(s: str) -> bool:
    parts = s.split(".")
    return len(parts) == 4 and all(
        p.isascii() and p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts
    )


def _valid_ipv4(s: str) -> bool:
    """ParseIPSloppy (leading zeros allowed) and a dot in the text, as strfmt's isIPv4."""
    if _sloppy_ipv4(s):
        return True
    return "." in s and _valid_ipv6_text(s)


def _valid_ipv6_text(s: str) -> bool:
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return False
    return True


def _valid_ipv6(s: str) -> bool:
    """govalidator.IsIPv6: any IP Go parses, written with a colon."""
    return ":" in s and _valid_ipv6_text(s)


def _valid_cidr(s: str) -> bool:
    """ParseCIDRSloppy: address/prefix, IPv4 octets may have leading zeros."""
    addr, sep, prefix = s.partition("/")
    if not sep or not prefix.isascii() or not prefix.isdigit():
        return False
    if _sloppy_ipv4(addr):
        return int(prefix) <= 32
    return ":" in addr and _valid_ipv6_text(addr) and int(prefix) <= 128


def _valid_uri(s: str) -> bool:
    """url.ParseRequestURI: an absolute URI (scheme:...) or an absolute path."""
    if not s:
        return False
    if not s.startswith("/") and _URI_SCHEME.match(s) is None:
        return False
    try:
        parts = urlsplit(s)
    except ValueError:
        return False
    return " " not in parts.netloc


def _valid_date(s: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
        return False
    try:
        date.fromisoformat(s)
    except ValueError:
        return False
    return True


def _matches(rx: re.Pattern[str], s: str) -> bool:
    return rx.match(s) is not None


def _isbn10(s: str) -> bool:
    d = re.sub(r"[\s-]", "", s)
    if not re.fullmatch(r"\d{9}[\dX]", d):
        return False
    total = sum((10 - i) * (10 if c == "X" else int(c)) for i, c in enumerate(d))
    return total % 11 == 0


def _isbn13(s: str) -> bool:
    d = re.sub(r"[\s-]", "", s)
    if not re.fullmatch(r"\d{13}", d):
        return False
    total = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(d))
    return total % 10 == 0


_FORMATS: dict[str, Any] = {
    "bsonobjectid": lambda s: re.fullmatch(r"[0-9a-fA-F]{24}", s) is not None,
    "uri": _valid_uri,
    "email": lambda s: _EMAIL.match(s) is not None,
    "hostname": lambda s: len(s) <= 255 and _HOSTNAME.match(s) is not None,
    "ipv4": _valid_ipv4,
    "ipv6": _valid_ipv6,
    "cidr": _valid_cidr,
    "mac": lambda s: _MAC.match(s) is not None,
    **{k: functools.partial(_matches, re.compile(p)) for k, p in _UUID.items()},
    "isbn": lambda s: _isbn10(s) or _isbn13(s),
    "isbn10": lambda s: _isbn10(s),
    "isbn13": lambda s: _isbn13(s),
    "creditcard": lambda s: (
        re.fullmatch(
            r"(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}"
            r"|3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35\d{3})\d{11})",
            re.sub(r"\D", "", s),
        )
        is not None
    ),
    "ssn": lambda s: _SSN.match(s) is not None,
    "hexcolor": lambda s: _HEXCOLOR.match(s) is not None,
    "rgbcolor": lambda s: _RGBCOLOR.match(s) is not None,
    "byte": _valid_byte,
    "password": lambda s: True,
    "date": _valid_date,
    "duration": lambda s: _DURATION.match(s) is not None,
    "datetime": _valid_date_time,
}


def format_checker(fmt: str) -> Any:
    """The checker of a format CRDs validate (``date-time`` == ``datetime``), else None."""
    return _FORMATS.get(fmt.replace("-", ""))


_PATTERN_CACHE: dict[str, re.Pattern[str] | str] = {}
_POSIX_CLASSES = {
    "[:alnum:]": "0-9A-Za-z", "[:alpha:]": "A-Za-z", "[:ascii:]": "\\x00-\\x7F",
    "[:blank:]": "\\t ", "[:cntrl:]": "\\x00-\\x1F\\x7F", "[:digit:]": "0-9",
    "[:graph:]": "!-~", "[:lower:]": "a-z", "[:print:]": " -~",
    "[:punct:]": "!-/:-@\\[-`{-~", "[:space:]": "\\t\\n\\v\\f\\r ", "[:upper:]": "A-Z",
    "[:word:]": "0-9A-Za-z_", "[:xdigit:]": "0-9A-Fa-f",
}  # fmt: skip
_UNICODE_CLASSES = {"\\pL": "[^\\W\\d_]", "\\p{L}": "[^\\W\\d_]", "\\pN": "\\d", "\\p{N}": "\\d"}
_PERL_ONLY = re.compile(r"\(\?(?:=|!|<=|<!)")


def _go_error(pattern: str, err: re.error) -> str:
    """Go regexp's wording for the common syntax errors (``error parsing regexp: ...``)."""
    msg = str(err.msg)
    if msg.startswith("missing ), unterminated subpattern"):
        detail = f"missing closing ): `{pattern}`"
    elif msg.startswith("unbalanced parenthesis"):
        detail = f"unexpected ): `{pattern}`"
    elif msg.startswith("unterminated character set"):
        detail = f"missing closing ]: `{pattern[err.pos or 0 :]}`"
    elif msg.startswith(("nothing to repeat", "multiple repeat")):
        detail = f"missing argument to repetition operator: `{pattern[err.pos or 0 :][:1]}`"
    elif msg.startswith("bad escape"):
        detail = f"invalid escape sequence: `{pattern[err.pos or 0 :][:2]}`"
    else:
        detail = f"{msg}: `{pattern}`"
    return f"error parsing regexp: {detail}"


def _translate(pattern: str) -> str:
    """RE2 spellings Python's ``re`` lacks: POSIX classes, ``\\z``, ``\\pL``."""
    for posix, chars in _POSIX_CLASSES.items():
        pattern = pattern.replace(posix, chars)
    for uni, cls in _UNICODE_CLASSES.items():
        pattern = pattern.replace(uni, cls)
    pattern = re.sub(r"(?<!\\)((?:\\\\)*)\\z", r"\1\\Z", pattern)
    return _scope_inline_flags(pattern)


_INLINE_FLAGS = re.compile(r"\(\?([imsU]+)\)")


def _scope_inline_flags(pattern: str) -> str:
    """RE2 lets ``(?i)`` appear anywhere, applying to the rest of its group; Python
    only at the start, so a later one becomes a scoped group ``(?i:...)``."""
    if "(?" not in pattern:
        return pattern
    out: list[str] = []
    closers: list[int] = [0]  # per open group: how many scoped groups to close at its end
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "]":  # a literal ] first in the class
                out.append("[]")
                i += 2
                continue
        elif c == "(":
            m = _INLINE_FLAGS.match(pattern, i)
            if m is not None and i > 0:
                out.append(f"(?{m.group(1)}:")
                closers[-1] += 1
                i = m.end()
                continue
            closers.append(0)
        elif c == ")" and len(closers) > 1:
            out.append(")" * closers.pop())
        out.append(c)
        i += 1
    out.append(")" * closers[0])
    return "".join(out)


def pattern_error(pattern: str) -> str | None:
    """Why Go's regexp would refuse ``pattern`` (its wording), or None when it compiles."""
    compiled = _compile(pattern)
    return compiled if isinstance(compiled, str) else None


def compile_pattern(pattern: str) -> re.Pattern[str] | None:
    """Compile an OpenAPI ``pattern`` (Go RE2 syntax), None when it is invalid."""
    compiled = _compile(pattern)
    return None if isinstance(compiled, str) else compiled


def _compile(pattern: str) -> re.Pattern[str] | str:
    if pattern in _PATTERN_CACHE:
        return _PATTERN_CACHE[pattern]
    out: re.Pattern[str] | str
    m = _PERL_ONLY.search(pattern)
    backref = re.search(r"(?<!\\)\\[1-9]", pattern)
    if m is not None:
        out = f"error parsing regexp: invalid or unsupported Perl syntax: `{m.group(0)}`"
    elif backref is not None:
        out = f"error parsing regexp: invalid escape sequence: `{backref.group(0)}`"
    else:
        try:
            out = re.compile(_translate(pattern))
        except re.error as e:
            out = _go_error(pattern, e)
    _PATTERN_CACHE[pattern] = out
    return out


def parse_go_duration(text: str) -> timedelta | None:
    """Go's ``time.ParseDuration`` (``1h30m``, ``-1.5s``, ``0``), None when malformed."""
    try:
        return timedelta(seconds=go_duration_seconds(text))
    except ValueError:
        return None


def cel_string(value: str, fmt: str) -> Any:
    """A string as CEL sees it under its format: timestamp, duration or bytes (if valid)."""
    fmt = fmt.replace("-", "")
    try:
        if fmt == "datetime" and _valid_date_time(value):
            parsed = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        if fmt == "date" and _valid_date(value):
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        if fmt == "duration":
            d = parse_go_duration(value)
            return value if d is None else d
        if fmt == "byte" and _valid_byte(value):
            return base64.b64decode(value)
    except ValueError:
        pass
    return value
