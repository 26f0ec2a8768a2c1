"""CEL for ``x-kubernetes-validations``: compile a rule once, evaluate it against ``self``.

Used by the structural schema library (:mod:`corral.api.structural_rules` compiles every
rule of a CRD schema, :mod:`corral.api.structural_cel` evaluates them on custom
resources). Expressions run on the maintained ``common-expression-language`` package
(the Rust ``cel`` crate) plus its opt-in standard-library extensions (strings, math,
lists, sets), to which this module adds the parts of Kubernetes' list and regex
libraries that need no types (``isSorted``, ``indexOf`` on lists, ``sum``, ``find``,
``findAll``) and Kubernetes' property-name escaping. The crate has no type checker and
no cost estimator: compile-time checking here is syntax and unknown functions (the
schema-aware "undefined field" check lives in ``structural_rules``); the rest surfaces
at evaluation, worded as cel-go's runtime errors.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from typing import Any

import cel
import cel.stdlib

from corral.api import cel_library

# Functions the crate implements natively (names as ``Program.functions()`` reports them).
_NATIVE = {
    "size",
    "has",
    "matches",
    "startsWith",
    "endsWith",
    "contains",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "timestamp",
    "duration",
    "dyn",
    "type",
    "max",
    "min",
    "getFullYear",
    "getMonth",
    "getDayOfYear",
    "getDayOfMonth",
    "getDate",
    "getDayOfWeek",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
    "exists",
    "all",
    "exists_one",
    "map",
    "filter",
    "in",
    "hasValue",
    "value",
    "orValue",
    "or",
    "of",
    "none",
    "optMap",
    "optFlatMap",
}


def _is_sorted(values: list[Any]) -> bool:
    return all(values[i] <= values[i + 1] for i in range(len(values) - 1))


def _index_of(container: Any, item: Any, *rest: Any) -> int:
    if isinstance(container, str):
        return int(cel.stdlib.index_of(container, item, *rest))
    for i, v in enumerate(container):
        if v == item:
            return i
    return -1


def _last_index_of(container: Any, item: Any, *rest: Any) -> int:
    if isinstance(container, str):
        return int(cel.stdlib.last_index_of(container, item, *rest))
    for i in range(len(container) - 1, -1, -1):
        if container[i] == item:
            return i
    return -1


def _sum(values: list[Any]) -> Any:
    return sum(values, 0.0 if values and isinstance(values[0], float) else 0)


def _find(s: str, pattern: str) -> str:
    m = re.search(pattern, s)
    return m.group(0) if m else ""


def _find_all(s: str, pattern: str, limit: int = -1) -> list[str]:
    found = [m.group(0) for m in re.finditer(pattern, s)]
    return found if limit < 0 else found[:limit]


# Kubernetes' list and regex libraries (k8s.io/apiserver/pkg/cel/library), the parts
# that need no type information.
_KUBE_FUNCTIONS: dict[str, Any] = {
    "isSorted": _is_sorted,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "sum": _sum,
    "find": _find,
    "findAll": _find_all,
}


@functools.cache
def _context_functions() -> dict[str, Any]:
    ctx = cel.Context()
    cel.stdlib.add_stdlib_to_context(ctx)
    funcs = dict(ctx.functions)
    funcs.update(_KUBE_FUNCTIONS)
    funcs.update(cel_library.FUNCTIONS)
    return funcs


def _known_function(name: str) -> bool:
    if name in _NATIVE or name.startswith(("_", "!", "@")):
        return True
    funcs = _context_functions()
    return name in funcs or any(k.rsplit(".", 1)[-1] == name for k in funcs)


_RESERVED = frozenset(
    [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ]
)
_EXPAND = re.compile(r"__|[-./]|[^a-zA-Z0-9_]")
_ESCAPES = {"__": "__underscores__", ".": "__dot__", "-": "__dash__", "/": "__slash__"}


@functools.lru_cache(maxsize=8192)
def escape(ident: str) -> str | None:
    """A property name as CEL rules spell it (``foo-bar`` -> ``foo__dash__bar``), as
    Kubernetes escapes it; None when the property cannot be reached from CEL."""
    if not ident or ident[0].isdigit():
        return None
    if ident in _RESERVED:
        return f"__{ident}__"
    out: list[str] = []
    pos = 0
    for m in _EXPAND.finditer(ident):
        if m.group(0) not in _ESCAPES:
            return None
        out.append(ident[pos : m.start()])
        out.append(_ESCAPES[m.group(0)])
        pos = m.end()
    out.append(ident[pos:])
    return "".join(out)


class CELCompileError(ValueError):
    """A rule that does not compile; ``str()`` is upstream-like compiler output."""


class CELEvalError(Exception):
    """A rule that failed at run time; ``str()`` is worded as cel-go's runtime errors."""


@dataclass(frozen=True, slots=True)
class CompiledRule:
    source: str
    program: Any  # cel.Program
    uses_old_self: bool
    #: the library functions this rule calls (only those go into its activation)
    functions: dict[str, Any]


@functools.lru_cache(maxsize=4096)
def compile_rule(source: str) -> CompiledRule:
    """Compile ``source`` (cached by text); raise :class:`CELCompileError`."""
    if not source.strip():
        raise CELCompileError("ERROR: <input>:1:1: Syntax error: mismatched input '<EOF>'")
    try:
        program = cel.compile(source)
    except ValueError as e:
        text = str(e)
        text = text.split(": ", 1)[1] if text.startswith("Failed to parse expression") else text
        text = text.replace("\n| ", "\n | ")  # cel-go indents the source excerpt
        raise CELCompileError(text) from None
    for name in program.functions():
        if not _known_function(name):
            raise CELCompileError(
                f"ERROR: <input>:1:1: undeclared reference to '{name}' (in container '')"
            )
    uses_old = "oldSelf" in program.variables()
    return CompiledRule(source, program, uses_old, _needed(program.functions()))


def _needed(names: list[str]) -> dict[str, Any]:
    funcs = _context_functions()
    wanted = set(names)
    return {k: f for k, f in funcs.items() if k in wanted or k.rsplit(".", 1)[-1] in wanted}


def _error_text(e: Exception) -> str:
    if isinstance(e, KeyError):
        return f"no such key: {e.args[0] if e.args else ''}"
    if isinstance(e, IndexError):
        return str(e) or "index out of bounds"
    if isinstance(e, ZeroDivisionError):
        return "division by zero"
    if isinstance(e, OverflowError):
        return "integer overflow"
    text = str(e)
    m = _CALLBACK_ERROR.match(text)
    if m is not None:  # a library function raised: its own message is the CEL error
        text = m.group(1)
    if text.startswith(("No such overload", "Unsupported operation", "no such overload")):
        return "no such overload"
    return text


_CALLBACK_ERROR = re.compile(
    r"^Function '[^']*' error: Python function call failed: \w+: (.*?)"
    r"(?:\. Check function arguments and their types\.)?$",
    re.S,
)


class _QuietCallbackFailures(logging.Filter):
    """The crate logs every failing Python callback; those failures are CEL errors that
    the validator reports as field errors, so they are not log material."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Python function ")


logging.getLogger("cel").addFilter(_QuietCallbackFailures())


def optional(value: Any, present: bool) -> Any:
    """``optional.of(value)`` or ``optional.none()`` (``oldSelf`` of optionalOldSelf rules)."""
    return cel.OptionalValue.of(value) if present else cel.OptionalValue.none()


def evaluate(rule: CompiledRule, variables: dict[str, Any]) -> Any:
    """Run ``rule`` with ``variables`` (``self``, ``oldSelf``); raise :class:`CELEvalError`."""
    activation = {**variables, **rule.functions} if rule.functions else variables
    try:
        return rule.program.execute(activation)
    except Exception as e:  # the crate raises builtin exception types
        raise CELEvalError(_error_text(e)) from None
