"""Resource quantities (``resource.Quantity``): exact parsing, canonical printing, rounding.

Called by validation (requests, limits, capacity, quota), the scheduler and the agent
(fit checks in milli-CPU and bytes), and the API server when it writes objects back: a
real server re-encodes every quantity it decoded, so ``"1000m"`` comes back as ``"1"``
and ``"0.5Gi"`` as ``"512Mi"`` (see :func:`canonical_quantity`).

Values are :class:`fractions.Fraction`, exact, with the upstream semantics of
``k8s.io/apimachinery/pkg/api/resource``: suffixes ``n u m "" k M G T P E`` (DecimalSI),
``Ki Mi Gi Ti Pi Ei`` (BinarySI) and ``e<int>``/``E<int>`` (DecimalExponent); anything
finer than 1n is rounded up (away from zero) to 1n; magnitudes above 2^63-1 are capped.
The format (suffix family) belongs to the string, not the number, so printing takes it
as an argument.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"

REGEX_ERROR = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
NUMERIC_ERROR = "unable to parse numeric part of quantity"
SUFFIX_ERROR = "unable to parse quantity's suffix"

MAX_VALUE = 2**63 - 1
_NANO = Fraction(1, 10**9)

_DECIMAL_SUFFIXES = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXP = {e: s for s, e in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_EXP = {e: s for s, e in _BINARY_SUFFIXES.items()}
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")


class _Parsed:
    __slots__ = ("cached", "fmt", "value")

    def __init__(self, value: Fraction, fmt: str, cached: bool) -> None:
        self.value = value
        self.fmt = fmt
        self.cached = cached  # upstream keeps the input string as the canonical form


def _split(s: str) -> tuple[bool, str, str, str]:
    """``parseQuantityString``: (positive, num, denom, suffix); ValueError on bad shape."""
    positive = True
    pos, end = 0, len(s)
    if pos < end and s[0] in "+-":
        positive = s[0] == "+"
        pos += 1
    while pos < end and s[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "", ""
    start = pos
    while pos < end and s[pos].isascii() and s[pos].isdigit():
        pos += 1
    num = s[start:pos] or "0"
    denom = ""
    if pos < end and s[pos] == ".":
        pos += 1
        start = pos
        while pos < end and s[pos].isascii() and s[pos].isdigit():
            pos += 1
        denom = s[start:pos]
    suffix_start = pos
    while pos < end and s[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and s[pos] in "+-":
        pos += 1
    while pos < end and s[pos].isascii() and s[pos].isdigit():
        pos += 1
    if pos < end:
        raise ValueError(REGEX_ERROR)
    return positive, num, denom, s[suffix_start:]


def _interpret(suffix: str) -> tuple[int, int, str] | None:
    """(base, exponent, format) for a suffix, or None."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        digits = suffix[1:]
        body = digits[1:] if digits[:1] in ("+", "-") else digits
        if not body.isdigit() or not body.isascii():
            return None
        exp = int(digits)
        if not -(2**63) <= exp < 2**63:
            return None
        exp = ((exp + 2**31) % 2**32) - 2**31  # Go's int32() conversion wraps
        return 10, exp, DECIMAL_EXPONENT
    return None


def _round_and_cap(v: Fraction) -> Fraction:
    sign = -1 if v < 0 else 1
    mag = abs(v)
    if mag and (mag / _NANO).denominator != 1:
        mag = Fraction(math.ceil(mag / _NANO)) * _NANO
    mag = min(mag, Fraction(MAX_VALUE))
    return sign * mag


@functools.lru_cache(maxsize=8192)
def _parse(raw: str) -> _Parsed:
    if not raw:
        raise ValueError(REGEX_ERROR)
    if raw == "0":
        return _Parsed(Fraction(0), DECIMAL_SI, True)
    positive, num, denom, suffix = _split(raw)
    interpreted = _interpret(suffix)
    if interpreted is None:
        raise ValueError(SUFFIX_ERROR)
    base, exponent, fmt = interpreted
    mantissa = int(num + denom)
    cached = False
    if fmt == BINARY_SI:
        if not denom and exponent >= 0:
            precision = 15 - len(num) - int(exponent * 3 / 10) - 1
            value = int(num)
            if precision >= 0 and value * (1 << exponent) <= MAX_VALUE:
                cached = exponent % 10 == 0 and value & 0x07 != 0
    else:
        scale = exponent - len(denom)
        shifted = num + denom
        if 18 - len(shifted) >= 0 and scale >= -9:
            cached = scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0"
    if mantissa == 0:
        value_f = Fraction(0)
    elif base == 2:
        value_f = Fraction(mantissa, 10 ** len(denom)) * (1 << exponent)
    else:
        e10 = exponent - len(denom)
        digits = len(str(mantissa))
        if digits + e10 > 20:  # far beyond 2^63: the cap applies anyway
            value_f = Fraction(MAX_VALUE + 1)
        elif digits + e10 < -12:  # far below 1n: rounds up to 1n anyway
            value_f = _NANO / 2
        else:
            value_f = mantissa * Fraction(10) ** e10
    if not positive:
        value_f = -value_f
    value_f = _round_and_cap(value_f)
    if fmt == BINARY_SI and 0 < abs(value_f) < 1:
        fmt = DECIMAL_SI
    return _Parsed(value_f, fmt, cached)


def _coerce(v: object) -> str:
    """A quantity's text; ``ValueError`` for what is no quantity at all (``None``, a
    bool, a list...): callers pass decoded JSON, whatever its type (typed, compiled
    code would raise ``TypeError`` on a narrower parameter)."""
    if isinstance(v, bool):
        raise ValueError(REGEX_ERROR)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(REGEX_ERROR)
        return repr(v)
    if not isinstance(v, str):
        raise ValueError(REGEX_ERROR)
    return v


def parse_quantity(v: object) -> Fraction:
    """The exact value of a quantity; ``ValueError`` with the upstream message if invalid.

    JSON numbers (``int``/``float``) are read from their decimal text, as the Go decoder
    does with the raw bytes.
    """
    return _parse(_coerce(v)).value


def parse_quantity_format(v: object) -> tuple[Fraction, str]:
    """The value and the format (``DecimalSI``, ``BinarySI``, ``DecimalExponent``)."""
    p = _parse(_coerce(v))
    return p.value, p.fmt


def is_valid_quantity(s: object) -> bool:
    try:
        _parse(_coerce(s))
    except ValueError:
        return False
    return True


def _remove_factors(value: int, base: int) -> tuple[int, int]:
    negative = value < 0
    result = -value if negative else value
    times = 0
    while result >= base and result % base == 0:
        times += 1
        result //= base
    return (-result if negative else result), times


def format_quantity(q: Fraction | int, fmt: str = DECIMAL_SI) -> str:
    """The canonical string of ``q`` in ``fmt`` (``Quantity.String()`` without caching).

    DecimalSI: ``100m``, ``1500m``, ``1k``; BinarySI: ``1Gi``, ``1536`` (values that are
    not whole, or within ±1024, fall back to DecimalSI); DecimalExponent: ``1e3``.
    """
    q = _round_and_cap(Fraction(q))
    if q == 0:
        return "0"
    if fmt == BINARY_SI:
        if -1024 < q < 1024 or q.denominator != 1:
            fmt = DECIMAL_SI
        else:
            amount, times = _remove_factors(int(q), 1024)
            suffix = _BINARY_BY_EXP.get(times * 10)
            if suffix is not None:
                return f"{amount}{suffix}"
            fmt = DECIMAL_SI
    if fmt not in (DECIMAL_SI, DECIMAL_EXPONENT):
        fmt = DECIMAL_EXPONENT
    # q is a multiple of 1e-9: write it as mantissa * 10^exponent, trailing zeros removed.
    mantissa, exponent = int(q / _NANO), -9
    mantissa, times = _remove_factors(mantissa, 10)
    exponent += times
    while exponent % 3 != 0:
        mantissa *= 10
        exponent -= 1
    if exponent == 0:
        return str(mantissa)
    if fmt == DECIMAL_SI and exponent in _DECIMAL_BY_EXP:
        return f"{mantissa}{_DECIMAL_BY_EXP[exponent]}"
    return f"{mantissa}e{exponent}"


def canonical_quantity(v: str | int | float) -> str:
    """What a real API server writes back for a decoded quantity.

    Upstream keeps the input text when it is already canonical by its fast-path rules
    (``"100m"``, ``"1Ki"``, ``"1e3"``, even ``"+1"``), otherwise prints the canonical form
    (``"1000m"`` -> ``"1"``, ``"0.5"`` -> ``"500m"``, ``"1024Ki"`` -> ``"1Mi"``). JSON
    strings are space-trimmed first, as ``Quantity.UnmarshalJSON`` does.
    """
    raw = v.strip() if isinstance(v, str) else _coerce(v)
    p = _parse(raw)
    if p.cached:
        return raw
    return format_quantity(p.value, p.fmt)


def _scaled(q: Fraction, scale: int) -> int:
    x = q * Fraction(10) ** scale
    mag = math.ceil(abs(x))
    return -mag if x < 0 else mag


def milli_value(q: Fraction | int | str) -> int:
    """``Quantity.MilliValue()``: value * 1000, rounded up (away from zero)."""
    return _scaled(parse_quantity(q) if isinstance(q, str) else Fraction(q), 3)


def value(q: Fraction | int | str) -> int:
    """``Quantity.Value()``: rounded up (away from zero) to a whole number."""
    return _scaled(parse_quantity(q) if isinstance(q, str) else Fraction(q), 0)


def request_amount(resource: str, v: object) -> int:
    """A request, limit or allocatable as the scheduler and admission count it:
    millicores for ``cpu``, whole units (rounded up) for anything else; 0 for a value
    that is no quantity. Pods repeat a handful of values ("100m"), so each is worked out
    once (``_parse`` caches the text; this caches the scaling of its ``Fraction``)."""
    try:
        return _request_amount(resource == "cpu", v)
    except TypeError:  # unhashable: no quantity
        return 0


@functools.lru_cache(maxsize=4096, typed=True)  # typed: True is not 1
def _request_amount(milli: bool, v: object) -> int:
    try:
        return _scaled(parse_quantity(v), 3 if milli else 0)  # type: ignore[arg-type]
    except (ValueError, TypeError, ArithmeticError):
        return 0


__all__ = [
    "BINARY_SI",
    "DECIMAL_EXPONENT",
    "DECIMAL_SI",
    "MAX_VALUE",
    "NUMERIC_ERROR",
    "REGEX_ERROR",
    "SUFFIX_ERROR",
    "canonical_quantity",
    "format_quantity",
    "is_valid_quantity",
    "milli_value",
    "parse_quantity",
    "parse_quantity_format",
    "request_amount",
    "value",
]
