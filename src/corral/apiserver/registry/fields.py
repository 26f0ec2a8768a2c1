"""Field checks shared by the strategies of Corral's own kinds (``mesos.py``,
``chronos.py``, ``marathon.py``): JSON types, non-negative numbers, RFC 3339 times,
each answering ``FieldError``s with Kubernetes' reasons and the field's path."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from corral.api.errors import FieldError, invalid
from corral.api.validation import NEGATIVE_ERROR
from corral.apiserver.registry.base import Obj


def type_invalid(path: str, value: Any, type_: str) -> FieldError:
    return FieldError("FieldValueTypeInvalid", path, value, f"must be of type {type_}")


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    return is_number(value) and (isinstance(value, int) or float(value).is_integer())


def parses(value: str) -> bool:
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def non_negative(obj: Obj, key: str, path: str, integer: bool) -> list[FieldError]:
    """``obj[key]``, when present, a non-negative number (an integer when ``integer``)."""
    value = obj.get(key)
    if value is None:
        return []
    at = f"{path}.{key}"
    if not (is_integer(value) if integer else is_number(value)):
        return [type_invalid(at, value, "integer" if integer else "number")]
    if value < 0:
        return [invalid(at, value, NEGATIVE_ERROR)]
    return []


def typed(obj: Obj, keys: tuple[str, ...], path: str, type_: str) -> list[FieldError]:
    check = {"string": str, "boolean": bool, "array": list, "object": dict}[type_]
    return [
        type_invalid(f"{path}.{key}", obj[key], type_)
        for key in keys
        if obj.get(key) is not None and not isinstance(obj[key], check)
    ]
