"""Taints and tolerations: Kubernetes' matching rule, used by the scheduler and the
DaemonSet controller alike (pure, no I/O)."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """``Toleration.ToleratesTaint``: effect, key and value (Equal) or key only (Exists)."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect", ""):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key", ""):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return bool((toleration.get("value") or "") == (taint.get("value") or ""))
    return False
