"""Label and field selectors: parse, match, print, as Kubernetes' apimachinery does.

Called by the API server for ``?labelSelector=`` / ``?fieldSelector=`` on list and watch,
by controllers that turn ``spec.selector`` objects into matchers (Deployments, Services,
ReplicaSets, DaemonSets, Jobs), and by the scale subresource (``status.selector`` is the
canonical string form).

Shaped after ``k8s.io/apimachinery/pkg/labels`` and ``pkg/fields`` so that clients see the
same behaviour and the same error text: the label grammar is the upstream lexer/parser
(``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``, ``!k``, ``k>1``,
``k<1``), requirements are sorted by key, ``in`` values are printed sorted, and parse
failures raise ``bad_request`` worded like ``labels.Parse`` (``unable to parse
requirement: <nil>: Invalid value: "a b": ...``). Selectors are immutable values.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from corral.api.errors import bad_request

# selection.Operator values, spelled as upstream.
EQUALS = "="
DOUBLE_EQUALS = "=="
NOT_EQUALS = "!="
IN = "in"
NOT_IN = "notin"
EXISTS = "exists"
DOES_NOT_EXIST = "!"
GREATER_THAN = "gt"
LESS_THAN = "lt"

_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_VALID_OPERATORS = (*_BINARY_OPERATORS, EXISTS, DOES_NOT_EXIST)

_INT64_RE = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class SelectorError(ValueError):
    """A selector that does not parse or validate; ``str()`` is the upstream message."""


# --- validation (k8s.io/apimachinery/pkg/util/validation) ----------------------------------

_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_RE = re.compile(f"^{_QNAME_FMT}$")
_QNAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character"
)
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_RE = re.compile(f"^{_DNS1123_SUBDOMAIN_FMT}$")
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character"
)
_LABEL_VALUE_FMT = f"({_QNAME_FMT})?"
_LABEL_VALUE_RE = re.compile(f"^{_LABEL_VALUE_FMT}$")
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character"
)


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    msg += " (e.g. "
    msg += " or ".join(f"'{e}', " for e in examples)
    return msg + f"regex used for validation is '{fmt}')"


def _max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


def qualified_name_errors(value: str) -> list[str]:
    """``validation.IsQualifiedName``: label keys, annotation keys, finalizer names."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in dns1123_subdomain_errors(prefix))
    else:
        return [
            "a qualified name "
            + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + _max_len_error(63))
    if not _QNAME_RE.match(name):
        errs.append(
            "name part " + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def dns1123_subdomain_errors(value: str) -> list[str]:
    """``validation.IsDNS1123Subdomain``."""
    errs: list[str] = []
    if len(value) > 253:
        errs.append(_max_len_error(253))
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        errs.append(_regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def label_value_errors(value: str) -> list[str]:
    """``validation.IsValidLabelValue``."""
    errs: list[str] = []
    if len(value) > 63:
        errs.append(_max_len_error(63))
    if not _LABEL_VALUE_RE.match(value):
        errs.append(
            _regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345")
        )
    return errs


def _go_quote(s: str) -> str:
    """Go's ``%q`` for the printable strings that reach these messages."""
    out = ['"']
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _go_string_slice(values: Iterable[str] | None) -> str:
    """Go's ``%#v`` of a ``[]string``."""
    if values is None:
        return "[]string(nil)"
    return "[]string{" + ", ".join(_go_quote(v) for v in values) + "}"


def _invalid(path: str, rendered_value: str, detail: str) -> str:
    return f"{path}: Invalid value: {rendered_value}: {detail}"


def _aggregate(msgs: list[str]) -> str:
    """``utilerrors.Aggregate.Error()``: one message bare, several bracketed, deduplicated."""
    seen: list[str] = []
    for m in msgs:
        if m not in seen:
            seen.append(m)
    if len(seen) == 1:
        return seen[0]
    return "[" + ", ".join(seen) + "]"


def _key_error(key: str, path: str) -> str | None:
    errs = qualified_name_errors(key)
    if errs:
        return _invalid(path, _go_quote(key), "; ".join(errs))
    return None


def _parse_int64(s: str) -> int | None:
    if not _INT64_RE.fullmatch(s):
        return None
    v = int(s)
    return v if _INT64_MIN <= v <= _INT64_MAX else None


# --- label requirements and selectors -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``key op values`` term; build it with :func:`new_requirement` to validate."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        if op in (GREATER_THAN, LESS_THAN):
            if self.key not in labels or len(self.values) != 1:
                return False
            have = _parse_int64(labels[self.key])
            want = _parse_int64(self.values[0])
            if have is None or want is None:
                return False
            return have > want if op == GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        op = self.operator
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        if op == EXISTS:
            return self.key
        symbol = {
            EQUALS: "=",
            DOUBLE_EQUALS: "==",
            NOT_EQUALS: "!=",
            IN: " in ",
            NOT_IN: " notin ",
            GREATER_THAN: ">",
            LESS_THAN: "<",
        }.get(op, "")
        values = self.values[0] if len(self.values) == 1 else ",".join(sorted(self.values))
        if op in (IN, NOT_IN):
            return f"{self.key}{symbol}({values})"
        return f"{self.key}{symbol}{values}"


def new_requirement(key: str, operator: str, values: Iterable[str] = ()) -> Requirement:
    """``labels.NewRequirement``: validate and build; raises :class:`SelectorError`."""
    vals = list(values)
    errs: list[str] = []
    if (e := _key_error(key, "key")) is not None:
        errs.append(e)
    if operator in (IN, NOT_IN):
        if not vals:
            errs.append(
                _invalid(
                    "values",
                    _go_string_slice(vals or None),
                    "for 'in', 'notin' operators, values set can't be empty",
                )
            )
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(vals) != 1:
            errs.append(
                _invalid(
                    "values",
                    _go_string_slice(vals or None),
                    "exact-match compatibility requires one single value",
                )
            )
    elif operator in (EXISTS, DOES_NOT_EXIST):
        if vals:
            errs.append(
                _invalid(
                    "values",
                    _go_string_slice(vals),
                    "values set must be empty for exists and does not exist",
                )
            )
    elif operator in (GREATER_THAN, LESS_THAN):
        if len(vals) != 1:
            errs.append(
                _invalid(
                    "values",
                    _go_string_slice(vals or None),
                    "for 'Gt', 'Lt' operators, exactly one value is required",
                )
            )
        for i, v in enumerate(vals):
            if _parse_int64(v) is None:
                errs.append(
                    _invalid(
                        f"values[{i}]",
                        _go_quote(v),
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    )
                )
    else:
        supported = ", ".join(_go_quote(o) for o in _VALID_OPERATORS)
        errs.append(
            f"operator: Unsupported value: {_go_quote(operator)}: supported values: {supported}"
        )
    for i, v in enumerate(vals):
        verrs = label_value_errors(v)
        if verrs:
            errs.append(_invalid(f"values[{i}][{key}]", _go_quote(v), "; ".join(verrs)))
    if errs:
        raise SelectorError(_aggregate(errs))
    return Requirement(key, operator, tuple(vals))


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """An AND of requirements, sorted by key. ``nothing=True`` is ``labels.Nothing()``.

    ``LabelSelector()`` matches everything (``labels.Everything()``).
    """

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    @classmethod
    def of(cls, requirements: Iterable[Requirement]) -> LabelSelector:
        """Sorted by key (stable), as ``Selector.Add`` does."""
        return cls(tuple(sorted(requirements, key=lambda r: r.key)))

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (matches every object)."""
        return not self.nothing and not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def exact_values(self) -> dict[str, str]:
        """Keys that must equal one value (``=``, ``==``, or ``in`` with one value)."""
        out: dict[str, str] = {}
        for r in self.requirements:
            if r.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(r.values) == 1:
                out.setdefault(r.key, r.values[0])
        return out

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = LabelSelector()
NOTHING = LabelSelector(nothing=True)


# --- label selector string grammar (labels.Parse) ------------------------------------------

_T_ERROR = 0
_T_EOS = 1
_T_CLOSED_PAR = 2
_T_COMMA = 3
_T_DOES_NOT_EXIST = 4
_T_DOUBLE_EQUALS = 5
_T_EQUALS = 6
_T_GREATER = 7
_T_IDENT = 8
_T_IN = 9
_T_LESS = 10
_T_NOT_EQUALS = 11
_T_NOT_IN = 12
_T_OPEN_PAR = 13

_STRING_TO_TOKEN = {
    ")": _T_CLOSED_PAR,
    ",": _T_COMMA,
    "!": _T_DOES_NOT_EXIST,
    "==": _T_DOUBLE_EQUALS,
    "=": _T_EQUALS,
    ">": _T_GREATER,
    "in": _T_IN,
    "<": _T_LESS,
    "!=": _T_NOT_EQUALS,
    "notin": _T_NOT_IN,
    "(": _T_OPEN_PAR,
}
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")


def _lex(s: str) -> list[tuple[int, str]]:
    """The whole token stream, ending with an end-of-string token."""
    items: list[tuple[int, str]] = []
    pos, n = 0, len(s)
    while True:
        while pos < n and s[pos] in _WHITESPACE:
            pos += 1
        if pos >= n:
            items.append((_T_EOS, ""))
            return items
        if s[pos] in _SPECIAL:
            buf = ""
            last: tuple[int, str] | None = None
            while pos < n and s[pos] in _SPECIAL:
                candidate = buf + s[pos]
                if candidate in _STRING_TO_TOKEN:
                    buf = candidate
                    last = (_STRING_TO_TOKEN[candidate], candidate)
                    pos += 1
                elif last is not None:
                    break
                else:
                    buf = candidate
                    pos += 1
            items.append(last or (_T_ERROR, f"error expected: keyword found '{buf}'"))
        else:
            start = pos
            while pos < n and s[pos] not in _SPECIAL and s[pos] not in _WHITESPACE:
                pos += 1
            word = s[start:pos]
            items.append((_STRING_TO_TOKEN.get(word, _T_IDENT), word))


class _Parser:
    """Recursive descent over the token stream, mirroring ``labels.Parser``."""

    def __init__(self, s: str) -> None:
        self.items = _lex(s)
        self.pos = 0

    @staticmethod
    def _as_value(tok: int) -> int:
        return _T_IDENT if tok in (_T_IN, _T_NOT_IN) else tok

    def lookahead(self, values: bool = True) -> tuple[int, str]:
        tok, lit = self.items[self.pos]
        return (self._as_value(tok) if values else tok), lit

    def consume(self, values: bool = True) -> tuple[int, str]:
        tok, lit = self.items[self.pos]
        self.pos += 1
        return (self._as_value(tok) if values else tok), lit

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self.lookahead()
            if tok in (_T_IDENT, _T_DOES_NOT_EXIST):
                try:
                    reqs.append(self.requirement())
                except SelectorError as e:
                    raise SelectorError(f"unable to parse requirement: {e}") from None
                t, lit2 = self.consume()
                if t == _T_EOS:
                    return reqs
                if t == _T_COMMA:
                    t2, lit3 = self.lookahead()
                    if t2 not in (_T_IDENT, _T_DOES_NOT_EXIST):
                        raise SelectorError(f"found '{lit3}', expected: identifier after ','")
                else:
                    raise SelectorError(f"found '{lit2}', expected: ',' or 'end of string'")
            elif tok == _T_EOS:
                return reqs
            else:
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        key, op = self.key_and_operator()
        if op in (EXISTS, DOES_NOT_EXIST):
            return new_requirement(key, op, ())
        op = self.operator()
        values = self.value_set() if op in (IN, NOT_IN) else self.exact_value()
        return new_requirement(key, op, sorted(values))

    def key_and_operator(self) -> tuple[str, str]:
        op = ""
        tok, lit = self.consume()
        if tok == _T_DOES_NOT_EXIST:
            op = DOES_NOT_EXIST
            tok, lit = self.consume()
        if tok != _T_IDENT:
            raise SelectorError(f"found '{lit}', expected: identifier")
        if (e := _key_error(lit, "<nil>")) is not None:
            raise SelectorError(e)
        t, _ = self.lookahead()
        if t in (_T_EOS, _T_COMMA) and op != DOES_NOT_EXIST:
            op = EXISTS
        return lit, op

    def operator(self) -> str:
        tok, lit = self.consume(values=False)
        ops = {
            _T_IN: IN,
            _T_EQUALS: EQUALS,
            _T_DOUBLE_EQUALS: DOUBLE_EQUALS,
            _T_GREATER: GREATER_THAN,
            _T_LESS: LESS_THAN,
            _T_NOT_IN: NOT_IN,
            _T_NOT_EQUALS: NOT_EQUALS,
        }
        if tok not in ops:
            raise SelectorError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        return ops[tok]

    def value_set(self) -> set[str]:
        tok, lit = self.consume()
        if tok != _T_OPEN_PAR:
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead()
        if tok in (_T_IDENT, _T_COMMA):
            values = self.identifiers()
            tok, _ = self.consume()
            if tok != _T_CLOSED_PAR:
                raise SelectorError(f"found '{lit}', expected: ')'")
            return values
        if tok == _T_CLOSED_PAR:
            self.consume()
            return {""}
        raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")

    def identifiers(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self.consume()
            if tok == _T_IDENT:
                values.add(lit)
                tok2, lit2 = self.lookahead()
                if tok2 == _T_COMMA:
                    continue
                if tok2 == _T_CLOSED_PAR:
                    return values
                raise SelectorError(f"found '{lit2}', expected: ',' or ')'")
            if tok == _T_COMMA:
                if not values:
                    values.add("")
                tok2, _ = self.lookahead()
                if tok2 == _T_CLOSED_PAR:
                    values.add("")
                    return values
                if tok2 == _T_COMMA:
                    self.consume()
                    values.add("")
                continue
            raise SelectorError(f"found '{lit}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        tok, _ = self.lookahead()
        if tok in (_T_EOS, _T_COMMA):
            return {""}
        tok, lit = self.consume()
        if tok == _T_IDENT:
            return {lit}
        raise SelectorError(f"found '{lit}', expected: identifier")


def try_parse_label_selector(s: str) -> LabelSelector:
    """Like :func:`parse_label_selector` but raises :class:`SelectorError` (no HTTP shape)."""
    return LabelSelector.of(_Parser(s).parse())


def parse_label_selector(s: str) -> LabelSelector:
    """Parse a ``labelSelector`` query string; bad input raises ``bad_request`` (400)."""
    try:
        return try_parse_label_selector(s)
    except SelectorError as e:
        raise bad_request(str(e)) from None


# --- object and map selectors ----------------------------------------------------------------

_OBJECT_OPERATORS = {
    "In": IN,
    "NotIn": NOT_IN,
    "Exists": EXISTS,
    "DoesNotExist": DOES_NOT_EXIST,
}


def try_selector_from_object(sel: Mapping[str, Any] | None) -> LabelSelector:
    """``metav1.LabelSelectorAsSelector``; raises :class:`SelectorError`.

    ``None`` (a nil selector) matches **nothing**; ``{}`` matches everything.
    """
    if sel is None:
        return NOTHING
    match_labels: Mapping[str, str] = sel.get("matchLabels") or {}
    exprs: list[Mapping[str, Any]] = sel.get("matchExpressions") or []
    if not match_labels and not exprs:
        return EVERYTHING
    reqs = [new_requirement(k, EQUALS, [v]) for k, v in match_labels.items()]
    for expr in exprs:
        op = expr.get("operator", "")
        if op not in _OBJECT_OPERATORS:
            raise SelectorError(f"{_go_quote(str(op))} is not a valid label selector operator")
        reqs.append(
            new_requirement(expr.get("key", ""), _OBJECT_OPERATORS[op], expr.get("values") or ())
        )
    return LabelSelector.of(reqs)


def selector_from_object(sel: Mapping[str, Any] | None) -> LabelSelector:
    """``metav1.LabelSelectorAsSelector`` for ``matchLabels``/``matchExpressions`` objects.

    ``None`` (the field is absent) matches **nothing**, as upstream; ``{}`` matches
    everything. An invalid operator, key or value raises ``bad_request`` (400).
    """
    try:
        return try_selector_from_object(sel)
    except SelectorError as e:
        raise bad_request(str(e)) from None


def format_label_selector(sel: Mapping[str, Any] | None) -> str:
    """``metav1.FormatLabelSelector``: the string, ``<none>`` when empty, ``<error>``."""
    try:
        text = str(try_selector_from_object(sel))
    except SelectorError:
        return "<error>"
    return text or "<none>"


def selector_from_map(d: Mapping[str, str] | None) -> LabelSelector:
    """``labels.SelectorFromSet`` (Service/ReplicationController selectors).

    Unlike object selectors, ``None`` and ``{}`` both match **everything**. No validation.
    """
    if not d:
        return EVERYTHING
    return LabelSelector.of([Requirement(k, EQUALS, (v,)) for k, v in d.items()])


def format_labels(d: Mapping[str, str] | None) -> str:
    """``labels.FormatLabels``: ``k=v`` sorted by key and comma-joined, or ``<none>``."""
    if not d:
        return "<none>"
    return ",".join(f"{k}={d[k]}" for k in sorted(d))


# --- field selectors (fields.ParseSelector) --------------------------------------------------

_DEFAULT_FIELDS = frozenset(("metadata.name", "metadata.namespace"))


def escape_field_value(s: str) -> str:
    """``fields.EscapeValue``: backslash-escape ``\\``, ``,`` and ``=``."""
    return s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(s: str) -> str:
    if not any(c in s for c in "\\,="):
        return s
    out: list[str] = []
    in_slash = False
    for c in s:
        if in_slash:
            if c not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            in_slash = False
            continue
        if c == "\\":
            in_slash = True
        elif c in ",=":
            # Go prints the rune with %v, i.e. as its code point number.
            raise SelectorError(f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if in_slash:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_field_terms(s: str) -> list[str]:
    if not s:
        return []
    terms: list[str] = []
    start = 0
    in_slash = False
    for i, c in enumerate(s):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(s[start:i])
            start = i + 1
    terms.append(s[start:])
    return terms


def _split_field_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    operator: str  # "=" or "!="
    value: str

    def matches(self, fields: Mapping[str, str]) -> bool:
        have = fields.get(self.field, "")
        return have == self.value if self.operator == "=" else have != self.value

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{escape_field_value(self.value)}"


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """An AND of ``field=value`` / ``field!=value`` terms; missing fields read as ``""``."""

    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all(r.matches(fields) for r in self.requirements)

    def exact_values(self) -> dict[str, str]:
        """Fields required to equal one value (the first ``=`` term for each field)."""
        out: dict[str, str] = {}
        for r in self.requirements:
            if r.operator == "=":
                out.setdefault(r.field, r.value)
        return out

    def fields(self) -> frozenset[str]:
        return frozenset(r.field for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def try_parse_field_selector(s: str) -> FieldSelector:
    """``fields.ParseSelector`` without field-name checks; raises :class:`SelectorError`."""
    reqs: list[FieldRequirement] = []
    for part in sorted(_split_field_terms(s)):
        if not part:
            continue
        split = _split_field_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{s}'; can't understand '{part}'")
        lhs, op, rhs = split
        value = _unescape_field_value(rhs)
        reqs.append(FieldRequirement(lhs, "!=" if op == "!=" else "=", value))
    return FieldSelector(tuple(reqs))


def unknown_field_message(field: str, allowed: Collection[str]) -> str:
    """The conversion error a real server gives for a field it cannot select on.

    Kinds with their own field-label conversion (pods, nodes, events, secrets, namespaces,
    services, replicationcontrollers, replicasets, jobs...) answer ``field label not
    supported: X``; kinds left on the default conversion (only ``metadata.name`` and
    ``metadata.namespace``) answer ``"X" is not a known field selector: only
    "metadata.name", "metadata.namespace"``.
    """
    if set(allowed) <= _DEFAULT_FIELDS:
        return (
            f'{_go_quote(field)} is not a known field selector: only "metadata.name", '
            '"metadata.namespace"'
        )
    return f"field label not supported: {field}"


def parse_field_selector(s: str, allowed: Collection[str]) -> FieldSelector:
    """Parse a ``fieldSelector`` query string and check each field against ``allowed``.

    Syntax errors and unknown fields raise ``bad_request`` (400) worded as upstream; the
    unknown-field wording follows :func:`unknown_field_message`.
    """
    try:
        sel = try_parse_field_selector(s)
    except SelectorError as e:
        raise bad_request(str(e)) from None
    allowed_set = set(allowed)
    for r in sel.requirements:
        if r.field not in allowed_set:
            raise bad_request(unknown_field_message(r.field, allowed))
    return sel


# --- node selectors (core/v1 NodeSelectorRequirement / NodeSelectorTerm) --------------------


def node_selector_requirement_matches(req: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether one ``NodeSelectorRequirement`` (``In``, ``NotIn``, ``Exists``,
    ``DoesNotExist``, ``Gt``, ``Lt`` on integers) holds for ``labels``; an unknown
    operator matches nothing. Used for label expressions and, with
    ``{"metadata.name": node}`` as the labels, for ``matchFields``."""
    key = str(req.get("key", ""))
    op = req.get("operator", "")
    values = [str(v) for v in req.get("values") or ()]
    have = labels.get(key)
    if op == "In":
        return have is not None and have in values
    if op == "NotIn":
        return have is None or have not in values
    if op == "Exists":
        return have is not None
    if op == "DoesNotExist":
        return have is None
    if op in ("Gt", "Lt") and have is not None and len(values) == 1:
        try:
            a, b = int(have), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def node_selector_term_matches(
    term: Mapping[str, Any], labels: Mapping[str, str], node: str
) -> bool:
    """Whether a ``NodeSelectorTerm`` (its expressions ANDed) admits the node named
    ``node`` with ``labels``; an empty term matches no node, and ``matchFields`` know only
    ``metadata.name``, as upstream's ``nodeaffinity.NodeSelector``. Called by the
    DaemonSet controller, the scheduler's VolumeBinding and the volume matcher."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    if not all(node_selector_requirement_matches(e, labels) for e in exprs):
        return False
    name_field = {"metadata.name": node}
    return all(
        f.get("key") == "metadata.name" and node_selector_requirement_matches(f, name_field)
        for f in fields
    )


__all__ = [
    "DOES_NOT_EXIST",
    "DOUBLE_EQUALS",
    "EQUALS",
    "EVERYTHING",
    "EXISTS",
    "GREATER_THAN",
    "IN",
    "LESS_THAN",
    "NOTHING",
    "NOT_EQUALS",
    "NOT_IN",
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "SelectorError",
    "dns1123_subdomain_errors",
    "escape_field_value",
    "format_label_selector",
    "format_labels",
    "label_value_errors",
    "new_requirement",
    "node_selector_requirement_matches",
    "node_selector_term_matches",
    "parse_field_selector",
    "parse_label_selector",
    "qualified_name_errors",
    "selector_from_map",
    "selector_from_object",
    "try_parse_field_selector",
    "try_parse_label_selector",
    "try_selector_from_object",
    "unknown_field_message",
]
