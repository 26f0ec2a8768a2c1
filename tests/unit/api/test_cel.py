"""Tests for corral.api.cel: compiling and evaluating x-kubernetes-validations rules.

Expressions are the kinds of rules CRD authors write (Kubernetes' CEL docs), evaluated
with ``self`` / ``oldSelf`` as the structural schema library passes them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from corral.api import cel
from corral.api.structural_formats import (
    cel_string,
    compile_pattern,
    format_checker,
    parse_go_duration,
    pattern_error,
)

SELF = {
    "replicas": 3,
    "min": 1,
    "max": 5,
    "name": "web-1",
    "tags": ["a", "b"],
    "labels": {"app": "web"},
    "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}],
}

EVAL_CASES = [
    ("comparison", "self.min <= self.replicas && self.replicas <= self.max", True),
    ("has", "has(self.name) && !has(self.missing)", True),
    ("size", "size(self.tags) == 2 && self.name.size() == 5", True),
    ("all", "self.ports.all(p, p.port > 0)", True),
    ("exists", "self.ports.exists(p, p.name == 'https')", True),
    ("exists-one", "self.tags.exists_one(t, t == 'a')", True),
    ("map", "self.ports.map(p, p.port) == [80, 443]", True),
    ("filter", "self.ports.filter(p, p.port > 100).size() == 1", True),
    (
        "string-functions",
        "self.name.startsWith('web') && self.name.endsWith('1') && self.name.contains('-')",
        True,
    ),
    ("matches", "self.name.matches('^[a-z]+-[0-9]+$')", True),
    ("lower-ascii", "'WEB'.lowerAscii() == 'web'", True),
    ("split-join", "self.name.split('-') == ['web', '1'] && ['a', 'b'].join('/') == 'a/b'", True),
    ("index-of-string", "self.name.indexOf('-') == 3", True),
    ("is-sorted", "self.tags.isSorted() && ![3, 1].isSorted()", True),
    ("list-index-of", "self.tags.indexOf('b') == 1", True),
    ("sum", "[1, 2, 3].sum() == 6", True),
    ("find", "'abc123'.find('[0-9]+') == '123'", True),
    ("in-map", "'app' in self.labels && self.labels['app'] == 'web'", True),
    ("ternary", "self.replicas > 2 ? true : false", True),
    ("math", "math.greatest(self.min, self.max) == 5", True),
    ("old-self", "self == oldSelf", False),
]


@pytest.mark.parametrize(
    ("src", "want"), [c[1:] for c in EVAL_CASES], ids=[c[0] for c in EVAL_CASES]
)
def test_evaluate(src: str, want: bool) -> None:
    rule = cel.compile_rule(src)
    assert cel.evaluate(rule, {"self": SELF, "oldSelf": {**SELF, "replicas": 4}}) is want


def test_compile_is_cached_and_records_old_self() -> None:
    a = cel.compile_rule("self.x == oldSelf.x")
    assert a is cel.compile_rule("self.x == oldSelf.x")
    assert a.uses_old_self
    assert not cel.compile_rule("self.x == 1").uses_old_self


COMPILE_ERRORS = [
    ("syntax", "self.x ==", "Syntax error"),
    ("unknown-function", "self.x.frob()", "undeclared reference to 'frob' (in container '')"),
    ("empty", "  ", "Syntax error"),
]


@pytest.mark.parametrize(
    ("src", "part"), [c[1:] for c in COMPILE_ERRORS], ids=[c[0] for c in COMPILE_ERRORS]
)
def test_compile_errors(src: str, part: str) -> None:
    with pytest.raises(cel.CELCompileError) as e:
        cel.compile_rule(src)
    assert part in str(e.value)


EVAL_ERRORS = [
    ("no-such-key", "self.nope > 1", {}, "no such key: nope"),
    ("index", "self.l[3] == 1", {"l": [1]}, "index out of bounds"),
    ("division", "self.a / 0 == 1", {"a": 1}, "division by zero"),
    ("overload", "self.s + 1 == 2", {"s": "x"}, "no such overload"),
    ("overflow", "self.a + 1 > 0", {"a": 2**63 - 1}, "integer overflow"),
]


@pytest.mark.parametrize(
    ("src", "value", "text"), [c[1:] for c in EVAL_ERRORS], ids=[c[0] for c in EVAL_ERRORS]
)
def test_evaluation_errors(src: str, value: dict[str, Any], text: str) -> None:
    with pytest.raises(cel.CELEvalError) as e:
        cel.evaluate(cel.compile_rule(src), {"self": value})
    assert str(e.value).startswith(text)


def test_optional_old_self() -> None:
    rule = cel.compile_rule("!oldSelf.hasValue() || oldSelf.value() == self")
    assert cel.evaluate(rule, {"self": 1, "oldSelf": cel.optional(None, False)}) is True
    assert cel.evaluate(rule, {"self": 1, "oldSelf": cel.optional(2, True)}) is False


FORMAT_VALUES = [
    ("date-time", "2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("date", "2024-01-02", datetime(2024, 1, 2, tzinfo=UTC)),
    ("duration", "1h30m", timedelta(hours=1, minutes=30)),
    ("byte", "aGk=", b"hi"),
    ("date-time", "not a time", "not a time"),
    ("uuid", "x", "x"),
]


@pytest.mark.parametrize(
    ("fmt", "text", "want"), FORMAT_VALUES, ids=[f"{c[0]}-{c[1]}" for c in FORMAT_VALUES]
)
def test_formatted_strings_become_cel_types(fmt: str, text: str, want: Any) -> None:
    assert cel_string(text, fmt) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("0", timedelta(0)),
        ("1.5s", timedelta(seconds=1.5)),
        ("-2m", timedelta(minutes=-2)),
        ("1h1x", None),
        ("", None),
    ],
)
def test_parse_go_duration(text: str, want: timedelta | None) -> None:
    assert parse_go_duration(text) == want


PATTERNS = [
    ("posix-class", "^[[:alpha:]]+$", "abc", True),
    ("posix-class-miss", "^[[:digit:]]+$", "abc", False),
    ("go-end-of-text", "^a\\z", "a", True),
    ("unicode-letter", "^\\p{L}+$", "héllo", True),
    ("search-semantics", "b", "abc", True),
]


@pytest.mark.parametrize(
    ("pattern", "text", "want"), [c[1:] for c in PATTERNS], ids=[c[0] for c in PATTERNS]
)
def test_patterns_read_as_re2(pattern: str, text: str, want: bool) -> None:
    rx = compile_pattern(pattern)
    assert rx is not None and bool(rx.search(text)) is want


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("(a", "error parsing regexp: missing closing ): `(a`"),
        ("a)", "error parsing regexp: unexpected ): `a)`"),
        ("[a", "error parsing regexp: missing closing ]: `[a`"),
        ("*a", "error parsing regexp: missing argument to repetition operator: `*`"),
        ("a(?=b)", "error parsing regexp: invalid or unsupported Perl syntax: `(?=`"),
    ],
)
def test_pattern_errors_in_go_words(pattern: str, why: str) -> None:
    assert pattern_error(pattern) == why


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("foo", "foo"),
        ("foo-bar", "foo__dash__bar"),
        ("a.b/c", "a__dot__b__slash__c"),
        ("x__y", "x__underscores__y"),
        ("namespace", "__namespace__"),
        ("1abc", None),
        ("has space", None),
        ("", None),
    ],
)
def test_property_names_escape_as_kubernetes(name: str, want: str | None) -> None:
    assert cel.escape(name) == want


FORMATS = [
    ("date-time", "2024-01-02T03:04:05Z", True),
    ("date-time", "2024-01-02t03:04:05.123+01:00", True),
    ("date-time", "2024-01-02T03:04Z", False),
    ("date-time", "2024-01-02 03:04:05Z", False),
    ("date", "2024-02-29", True),
    ("date", "2023-02-29", False),
    ("byte", "aGk=", True),
    ("byte", "aGk", False),
    ("ipv4", "01.2.3.4", True),
    ("ipv4", "1.2.3", False),
    ("ipv6", "fd00::1", True),
    ("ipv6", "1.2.3.4", False),
    ("cidr", "10.0.0.0/8", True),
    ("cidr", "10.0.0.0", False),
    ("uri", "https://example.com/a", True),
    ("uri", "example.com", False),
    ("hostname", "my-host.example.com", True),
    ("hostname", "bad_host", False),
    ("email", "a@b.c", True),
    ("email", "nope", False),
    ("uuid", "123E4567-E89B-12D3-A456-426614174000", True),
    ("uuid4", "123e4567-e89b-12d3-a456-426614174000", False),
    ("mac", "00:1a:2b:3c:4d:5e", True),
    ("duration", "1h30m", True),
    ("duration", "3 days", True),
    ("duration", "soon", False),
    ("bsonobjectid", "507f1f77bcf86cd799439011", True),
    ("hexcolor", "#fff", True),
    ("rgbcolor", "rgb(1,2,3)", True),
    ("isbn10", "0321751043", True),
    ("isbn13", "978-0321751041", True),
    ("ssn", "123-45-6789", True),
    ("creditcard", "4111 1111 1111 1111", True),
]


@pytest.mark.parametrize(("fmt", "text", "valid"), FORMATS, ids=[f"{f}-{t}" for f, t, _ in FORMATS])
def test_formats(fmt: str, text: str, valid: bool) -> None:
    check = format_checker(fmt)
    assert check is not None and check(text) is valid


@pytest.mark.parametrize("fmt", ["int32", "int64", "float", "double", "unknown"])
def test_formats_crds_do_not_check(fmt: str) -> None:
    assert format_checker(fmt) is None


LIBRARY = [
    ("quantity-equal", 'quantity("1000m") == quantity("1")', True),
    (
        "quantity-compare",
        'quantity("1Gi").isGreaterThan(quantity("1Mi")) && quantity("1").isLessThan(quantity("2"))',
        True,
    ),
    ("quantity-compare-to", 'quantity("1").compareTo(quantity("1000m")) == 0', True),
    ("quantity-integer", 'quantity("2k").isInteger() && quantity("2k").asInteger() == 2000', True),
    ("quantity-fraction", 'quantity("1.5").isInteger()', False),
    (
        "quantity-arith",
        'quantity("1").add(2).sub(quantity("500m")).asApproximateFloat() == 2.5',
        True,
    ),
    ("quantity-sign", 'quantity("-2").sign() == -1', True),
    ("is-quantity", 'isQuantity("10Mi") && !isQuantity("ten")', True),
    ("url", 'url("https://example.com:8443/a/b?x=1&x=2").getPort() == "8443"', True),
    (
        "url-parts",
        'url("https://user@example.com/p").getHost() == "example.com" && url("https://example.com/p").getScheme() == "https"',
        True,
    ),
    ("url-query", 'url("/p?x=1&x=2").getQuery()["x"] == ["1", "2"]', True),
    ("url-ipv6-hostname", 'url("https://[::1]:80/").getHostname() == "::1"', True),
    ("is-url", 'isURL("https://example.com") && !isURL("example.com")', True),
    ("ip", 'ip("10.0.0.1").family() == 4 && ip("::1").isLoopback()', True),
    ("is-ip", 'isIP("10.0.0.1") && !isIP("::ffff:1.2.3.4") && !isIP("nope")', True),
    ("ip-global", 'ip("8.8.8.8").isGlobalUnicast() && !ip("127.0.0.1").isGlobalUnicast()', True),
    (
        "cidr-contains",
        'cidr("10.0.0.0/8").containsIP("10.1.2.3") && cidr("10.0.0.0/8").containsCIDR("10.1.0.0/16")',
        True,
    ),
    (
        "cidr-masked",
        'cidr("10.1.0.0/8").masked() == cidr("10.0.0.0/8") && cidr("10.0.0.0/8").prefixLength() == 8',
        True,
    ),
    ("cidr-ip", 'cidr("10.1.0.0/8").ip() == ip("10.1.0.0")', True),
]


@pytest.mark.parametrize(("src", "want"), [c[1:] for c in LIBRARY], ids=[c[0] for c in LIBRARY])
def test_kubernetes_libraries(src: str, want: bool) -> None:
    assert cel.evaluate(cel.compile_rule(src), {}) is want


@pytest.mark.parametrize(
    ("src", "text"),
    [
        ('quantity("ten")', "quantities must match the regular expression"),
        ('ip("x")', 'IP Address "x" parse error during conversion from string'),
        (
            'url("nope")',
            'URL parse error during conversion from string: parse "nope": invalid URI for request',
        ),
    ],
)
def test_library_errors(src: str, text: str) -> None:
    with pytest.raises(cel.CELEvalError) as e:
        cel.evaluate(cel.compile_rule(src), {})
    assert str(e.value).startswith(text)


@pytest.mark.parametrize(
    ("pattern", "text", "want"),
    [
        ("^((?i)january|february)$", "JANUARY", True),
        ("^((?i)january|february)$", "FEBRUARY", True),
        ("^(?i)(abort|warn)?$", "WARN", True),
        ("^a(?i)b$", "aB", True),
        ("^a(?i)b$", "AB", False),
    ],
)
def test_inline_flags_anywhere_as_re2(pattern: str, text: str, want: bool) -> None:
    rx = compile_pattern(pattern)
    assert rx is not None and bool(rx.search(text)) is want
