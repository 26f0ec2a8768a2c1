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
    """Whether the condition of ``type_`` is there with status ``"True"``."""
    c = find_condition(obj, type_)
    return c is not None and c.get("status") == "True"


def set_condition(obj: dict[str, Any], cond: dict[str, Any], now: str) -> bool:
    """Put ``cond`` in ``obj``'s ``status.conditions``, replacing the one of its type, as
    upstream's ``SetCondition`` helpers do: nothing changes when status, reason and
    message are the same; ``lastTransitionTime`` is ``now`` when the status changed (or
    the condition is new) and kept otherwise (``cond`` may carry its own). True when
    something changed."""
    status = obj.get("status")
    if not isinstance(status, dict):
        status = obj["status"] = {}
    conds = status.get("conditions")
    if not isinstance(conds, list):
        conds = status["conditions"] = []
    for i, c in enumerate(conds):
        if isinstance(c, dict) and c.get("type") == cond["type"]:
            if all(c.get(k) == cond.get(k) for k in ("status", "reason", "message")):
                return False
            t = c.get("lastTransitionTime") if c.get("status") == cond["status"] else now
            conds[i] = {**cond, "lastTransitionTime": t or now}
            return True
    conds.append({**cond, "lastTransitionTime": cond.get("lastTransitionTime") or now})
    return True
