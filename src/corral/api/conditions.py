"""Reading an object's ``status.conditions``: the one lookup every component repeats."""

from __future__ import annotations

from typing import Any


def find_condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    """The condition of ``type_`` in ``obj``'s status, or None."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == type_:
            return c
    return None


def condition_true(obj: dict[str, Any], type_: str) -> bool:
    c = find_condition(obj, type_)
    return c is not None and c.get("status") == "True"
