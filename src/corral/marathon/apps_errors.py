"""Marathon's 422 answer for an app or a group: ``AppError`` (``message`` and ``details``,
``[{"path", "errors"}]``), ``Errors`` (the violations one pass collects, by path) and the
play-json error codes Marathon's RAML readers report.

Pure. ``apps.normalize`` and ``groups.py`` raise ``AppError`` (``http.py`` answers its
``body()`` with status 422, nothing is stored); ``apps_schema``, ``apps_rules`` and
``apps_translate`` record into an ``Errors`` that ``apps.normalize`` turns into one
``AppError`` per stage. It is a module of its own, at the bottom of the ``apps_*``
modules, because every stage and ``groups.py`` report through it: nothing below
``apps.py`` may import ``apps.py``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "E_ARR",
    "E_BOOL",
    "E_ENUM",
    "E_INT",
    "E_LONG",
    "E_MAX",
    "E_MAX_LEN",
    "E_MIN",
    "E_MIN_LEN",
    "E_MISSING",
    "E_NUM",
    "E_OBJ",
    "E_PATTERN",
    "E_STR",
    "INVALID_JSON",
    "INVALID_OBJECT",
    "AppError",
    "Errors",
    "Obj",
]

Obj = dict[str, Any]

INVALID_OBJECT = "Object is not valid"
INVALID_JSON = "Invalid JSON"

# play-json's error codes, as Marathon's RAML readers report them
E_STR = "error.expected.jsstring"
E_NUM = "error.expected.jsnumber"
E_INT = "error.expected.int"
E_LONG = "error.expected.long"
E_BOOL = "error.expected.jsboolean"
E_ARR = "error.expected.jsarray"
E_OBJ = "error.expected.jsobject"
E_MISSING = "error.path.missing"
E_MIN = "error.min"
E_MAX = "error.max"
E_MIN_LEN = "error.minLength"
E_MAX_LEN = "error.maxLength"
E_PATTERN = "error.pattern"
E_ENUM = "error.unknown.enum.literal"


class AppError(ValueError):
    """Marathon's 422 body: ``message`` and ``details`` (``[{"path", "errors"}]``)."""

    status = 422

    def __init__(self, details: list[Obj], message: str = INVALID_OBJECT) -> None:
        self.message = message
        self.details = details
        text = "; ".join(f"{d['path']}: {', '.join(d['errors'])}" for d in details)
        super().__init__(f"{message}: {text}" if text else message)

    @classmethod
    def at(cls, path: str, *errors: str, message: str = INVALID_OBJECT) -> AppError:
        return cls([{"path": path, "errors": list(errors)}], message)

    def body(self) -> Obj:
        return {
            "message": self.message,
            "details": [{"path": d["path"], "errors": list(d["errors"])} for d in self.details],
        }

    def prefixed(self, prefix: str) -> AppError:
        """The same errors under ``prefix`` (an app inside a group: ``/apps(0)``)."""
        details = [
            {"path": prefix + ("" if d["path"] == "/" else d["path"]), "errors": list(d["errors"])}
            for d in self.details
        ]
        return AppError(details, self.message)


class Errors:
    """Violations by path, in the order found (Marathon groups them by path)."""

    def __init__(self) -> None:
        self.by_path: dict[str, list[str]] = {}

    def add(self, path: str, error: str) -> None:
        errors = self.by_path.setdefault(path or "/", [])
        if error not in errors:
            errors.append(error)

    def __bool__(self) -> bool:
        return bool(self.by_path)

    def check(self, message: str = INVALID_OBJECT) -> None:
        if self.by_path:
            raise AppError([{"path": p, "errors": e} for p, e in self.by_path.items()], message)
