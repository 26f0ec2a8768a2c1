"""NodeAffinity: ``spec.nodeSelector`` and required node affinity (filter), preferred
node affinity (score).

Registered in the plugin registry; run by ``scheduler.decide``; PodTopologySpread reuses
``required_mask`` to pick the nodes whose pods count. Matching is vectorised through the
table's label index (``rows_with_label``): an ``In`` is the union of the rows of its
values, ``NotIn`` its complement, so no node is visited one by one.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from corral.scheduler.framework import (
    Failure,
    Index,
    Mask,
    NodeTableView,
    Obj,
    PodInfo,
    Scores,
    register,
)

REASON = "node(s) didn't match Pod's node affinity/selector"


def _int(s: str) -> int | None:
    try:
        return int(s, 10)
    except ValueError:
        return None


def _rows_mask(table: NodeTableView, rows: list[Index]) -> Mask:
    mask = np.zeros(len(table), dtype=np.bool_)
    for r in rows:
        mask[r] = True
    return mask


def expression_mask(table: NodeTableView, expr: Obj) -> Mask:
    """Rows whose labels satisfy one NodeSelectorRequirement."""
    key = expr.get("key", "")
    op = expr.get("operator", "")
    values = list(expr.get("values") or [])
    by_value = table.rows_with_label(key)
    if op in ("In", "NotIn"):
        mask = _rows_mask(table, [by_value[v] for v in values if v in by_value])
        return mask if op == "In" else ~mask
    if op in ("Exists", "DoesNotExist"):
        mask = _rows_mask(table, list(by_value.values()))
        return mask if op == "Exists" else ~mask
    if op in ("Gt", "Lt") and len(values) == 1 and (want := _int(values[0])) is not None:
        hits = []
        for v, rows in by_value.items():
            have = _int(v)
            if have is not None and (have > want if op == "Gt" else have < want):
                hits.append(rows)
        return _rows_mask(table, hits)
    return np.zeros(len(table), dtype=np.bool_)


def field_mask(table: NodeTableView, expr: Obj) -> Mask:
    """Rows satisfying a matchFields requirement (only ``metadata.name`` exists)."""
    op = expr.get("operator", "")
    if expr.get("key") != "metadata.name" or op not in ("In", "NotIn"):
        return np.zeros(len(table), dtype=np.bool_)
    rows = [table.row(v) for v in expr.get("values") or []]
    mask = np.zeros(len(table), dtype=np.bool_)
    mask[[r for r in rows if r is not None]] = True
    return mask if op == "In" else ~mask


def term_mask(table: NodeTableView, term: Obj) -> Mask:
    """A NodeSelectorTerm (AND of its requirements); an empty term matches nothing."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    mask = np.full(len(table), bool(exprs or fields), dtype=np.bool_)
    for e in exprs:
        mask &= expression_mask(table, e)
    for f in fields:
        mask &= field_mask(table, f)
    return mask


def required_mask(pod: PodInfo, table: NodeTableView) -> Mask | None:
    """Rows allowed by nodeSelector and required node affinity; None when unrestricted."""
    mask: Mask | None = None
    if pod.node_selector:
        mask = np.ones(len(table), dtype=np.bool_)
        for k, v in pod.node_selector.items():
            mask &= expression_mask(table, {"key": k, "operator": "In", "values": [v]})
    required = (pod.affinity.get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if required is not None:
        any_term = np.zeros(len(table), dtype=np.bool_)
        for term in required.get("nodeSelectorTerms") or []:
            any_term |= term_mask(table, term)
        mask = any_term if mask is None else mask & any_term
    return mask


@register
class NodeAffinity:
    name: ClassVar[str] = "NodeAffinity"
    resolvable: ClassVar[frozenset[str]] = frozenset()

    def filter(self, pod: PodInfo, table: NodeTableView, candidates: Index) -> list[Failure]:
        allowed = required_mask(pod, table)
        if allowed is None:
            return []
        rejected = ~allowed[candidates]
        return [Failure(REASON, rejected)] if rejected.any() else []

    def score(self, pod: PodInfo, table: NodeTableView, feasible: Index) -> Scores:
        preferred = (pod.affinity.get("nodeAffinity") or {}).get(
            "preferredDuringSchedulingIgnoredDuringExecution"
        ) or []
        if not preferred:
            return np.zeros(len(feasible), dtype=np.float64)
        total = np.zeros(len(feasible), dtype=np.int64)
        for p in preferred:
            weight = int(p.get("weight") or 0)
            if weight:
                total += weight * term_mask(table, p.get("preference") or {})[feasible]
        top = int(total.max()) if len(total) else 0
        if top == 0:
            return np.zeros(len(feasible), dtype=np.float64)
        return ((100 * total) // top).astype(np.float64)
