"""resource.Quantity: exact values, canonical strings, rounding and the upstream errors."""

from __future__ import annotations

from fractions import Fraction

import pytest

from corral.api.quantity import (
    BINARY_SI,
    DECIMAL_EXPONENT,
    DECIMAL_SI,
    REGEX_ERROR,
    SUFFIX_ERROR,
    canonical_quantity,
    format_quantity,
    is_valid_quantity,
    milli_value,
    parse_quantity,
    parse_quantity_format,
    request_amount,
    value,
)

PARSE_CASES: list[tuple[str | int | float, Fraction, str]] = [
    ("0", Fraction(0), DECIMAL_SI),
    ("100m", Fraction(1, 10), DECIMAL_SI),
    ("1.5", Fraction(3, 2), DECIMAL_SI),
    ("1n", Fraction(1, 10**9), DECIMAL_SI),
    ("0.0000000001", Fraction(1, 10**9), DECIMAL_SI),  # rounded up to 1n
    ("2k", Fraction(2000), DECIMAL_SI),
    ("1E", Fraction(10**18), DECIMAL_SI),
    ("1Ki", Fraction(1024), BINARY_SI),
    ("1.5Gi", Fraction(3 * 2**29), BINARY_SI),
    ("0.5Ki", Fraction(512), BINARY_SI),
    ("1e3", Fraction(1000), DECIMAL_EXPONENT),
    ("1E-3", Fraction(1, 1000), DECIMAL_EXPONENT),
    ("-2", Fraction(-2), DECIMAL_SI),
    ("9223372036854775808", Fraction(2**63 - 1), DECIMAL_SI),  # capped
    (3, Fraction(3), DECIMAL_SI),
    (0.25, Fraction(1, 4), DECIMAL_SI),
]


@pytest.mark.parametrize(
    ("text", "expected", "fmt"), PARSE_CASES, ids=[str(c[0]) for c in PARSE_CASES]
)
def test_parse(text: str | int | float, expected: Fraction, fmt: str) -> None:
    assert parse_quantity(text) == expected
    assert parse_quantity_format(text) == (expected, fmt)
    assert is_valid_quantity(text)


ERROR_CASES = [
    ("", REGEX_ERROR),
    ("abc", REGEX_ERROR),
    ("1 ", REGEX_ERROR),
    ("1.2.3", REGEX_ERROR),
    ("1K", SUFFIX_ERROR),
    ("1mi", SUFFIX_ERROR),
    ("1e", SUFFIX_ERROR),
]


@pytest.mark.parametrize(
    ("text", "message"), ERROR_CASES, ids=[c[0] or "empty" for c in ERROR_CASES]
)
def test_invalid(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_quantity(text)
    assert str(info.value) == message
    assert not is_valid_quantity(text)


@pytest.mark.parametrize("value", [None, True, [], {}, float("nan")], ids=repr)
def test_what_is_no_quantity_is_invalid_not_a_type_error(value: object) -> None:
    """Decoded JSON of any type (the compiled module checks a parameter's type): a
    PersistentVolumeClaim's update with no size compares ``None``."""
    with pytest.raises(ValueError) as info:
        parse_quantity(value)
    assert str(info.value) == REGEX_ERROR
    assert not is_valid_quantity(value)


def test_regex_message_is_upstream() -> None:
    assert REGEX_ERROR == (
        "quantities must match the regular expression "
        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )


FORMAT_CASES: list[tuple[Fraction | int, str, str]] = [
    (Fraction(0), DECIMAL_SI, "0"),
    (Fraction(1, 10), DECIMAL_SI, "100m"),
    (Fraction(3, 2), DECIMAL_SI, "1500m"),
    (1000, DECIMAL_SI, "1k"),
    (1500, DECIMAL_SI, "1500"),
    (Fraction(1, 10**9), DECIMAL_SI, "1n"),
    (2**30, BINARY_SI, "1Gi"),
    (1536, BINARY_SI, "1536"),
    (512, BINARY_SI, "512"),
    (Fraction(1, 2), BINARY_SI, "500m"),
    (3 * 2**20, BINARY_SI, "3Mi"),
    (-1024, BINARY_SI, "-1Ki"),
    (1000, DECIMAL_EXPONENT, "1e3"),
    (Fraction(1, 10), DECIMAL_EXPONENT, "100e-3"),
]


@pytest.mark.parametrize(
    ("q", "fmt", "expected"), FORMAT_CASES, ids=[f"{c[0]}-{c[1]}" for c in FORMAT_CASES]
)
def test_format(q: Fraction | int, fmt: str, expected: str) -> None:
    assert format_quantity(q, fmt) == expected


CANONICAL_CASES = [
    ("100m", "100m"),
    ("1000m", "1"),
    ("0.5", "500m"),
    ("1.0", "1"),
    ("0.5Gi", "512Mi"),
    ("1024Ki", "1Mi"),
    ("1.5Ki", "1536"),
    ("1e3", "1e3"),
    ("1000e3", "1e6"),
    ("128974848", "128974848"),
    ("129e6", "129e6"),
    ("123Mi", "123Mi"),
    (" 2 ", "2"),
    (1, "1"),
    (0.5, "500m"),
]


@pytest.mark.parametrize(
    ("text", "expected"), CANONICAL_CASES, ids=[str(c[0]) for c in CANONICAL_CASES]
)
def test_canonical(text: str | int | float, expected: str) -> None:
    assert canonical_quantity(text) == expected


ROUNDING_CASES = [
    ("100m", 100, 1),
    ("1", 1000, 1),
    ("1.5", 1500, 2),
    ("1n", 1, 1),
    ("1Ki", 1024000, 1024),
    ("-1.5", -1500, -2),
]


@pytest.mark.parametrize(
    ("text", "milli", "whole"), ROUNDING_CASES, ids=[c[0] for c in ROUNDING_CASES]
)
def test_rounding(text: str, milli: int, whole: int) -> None:
    assert milli_value(text) == milli
    assert value(text) == whole
    assert milli_value(parse_quantity(text)) == milli


@pytest.mark.parametrize(
    ("resource", "raw", "amount"),
    [
        ("cpu", "100m", 100),
        ("cpu", 2, 2000),
        ("cpu", 0.5, 500),
        ("cpu", "1n", 1),  # rounded up, as MilliValue
        ("memory", "100Mi", 100 * 1024 * 1024),
        ("memory", "1.5k", 1500),
        ("pods", "110", 110),
        ("cpu", True, 0),  # JSON true is no quantity (and not the number 1)
        ("memory", 1, 1),
        ("cpu", "lots", 0),
        ("cpu", {"a": 1}, 0),  # unhashable
        ("memory", None, 0),
    ],
)
def test_request_amount_counts_as_scheduler_and_admission_do(
    resource: str, raw: object, amount: int
) -> None:
    assert request_amount(resource, raw) == amount
    assert request_amount(resource, raw) == amount  # the cached answer is the same
