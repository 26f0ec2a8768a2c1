"""Where one pod goes: filters, the share of nodes to score, scores, the pick.

Called by the scheduler loop for each pod it pops from the queue, and by tests; pure
apart from the ``Cursor`` it advances (where the next partial scan starts, the RNG that
breaks ties), which lives in the table unless the caller passes its own. Nothing here
does I/O or mutates the table; the caller binds and then ``table.add_pod``s.

The steps are Kubernetes' scheduling cycle, vectorised:

1. filters run in ``profile.filters`` order over a shrinking set of candidate rows; a
   node is reported under the first plugin that rejects it, once per reason;
2. going round the table from ``cursor.next_start``, filtering stops once
   ``num_nodes_to_score`` nodes are found feasible (``percentageOfNodesToScore``: 50% -
   nodes/125, at least 5%, at least 100 nodes); those, in that rotating order, are
   scored, and the cursor moves past the nodes examined (when fewer are feasible, every
   node is examined, all feasible ones are scored and the cursor stays);
3. each score plugin's [0, 100] score times its weight is summed; the best wins, ties
   broken by ``cursor.rng``;
4. when nothing fits, ``message`` is Kubernetes' FitError text and ``nearest_miss``
   says how close the pod came (``needs 2 cpu; best node n7 has 1500m free``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

import corral.scheduler.plugins  # noqa: F401  (registers the built-in plugins)
from corral.api.quantity import BINARY_SI, format_quantity
from corral.scheduler.framework import (
    CPU,
    PODS,
    REGISTRY,
    RESOURCES,
    Index,
    Mask,
    PodInfo,
    Profile,
)
from corral.scheduler.snapshot import Cursor, NodeTable

if TYPE_CHECKING:
    from corral.scheduler.preemption import Preemption

NO_NODES = "no nodes available to schedule pods"
RESOURCE_PLUGIN = "NodeResourcesFit"
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE = 5
_NONE = np.zeros(0, dtype=np.intp)


@dataclass
class Decision:
    """The outcome for one pod: ``node`` is None when it fits nowhere."""

    node: str | None
    message: str
    reasons: dict[str, int]
    feasible: int
    evaluated: int
    nearest_miss: str = ""
    #: when asked for (``preemption=True``) and nothing fits: the victims to evict
    preemption: Preemption | None = None


@dataclass
class Filtered:
    """What the filters left: feasible rows and, per rejected row, why."""

    feasible: Index
    reasons: dict[str, int]
    #: rows rejected for a reason preemption cannot fix (UnschedulableAndUnresolvable)
    unresolvable: Mask
    #: rows rejected by each plugin, by plugin name
    rejected_by: dict[str, Index] = field(default_factory=dict)
    #: one example row per reason
    example: dict[str, int] = field(default_factory=dict)
    #: a PreFilter rejection: every row failed with this message (``reasons`` is empty)
    pre_filter: str = ""


@functools.lru_cache(maxsize=16)
def _default_plugins(profile: Profile) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, cls in REGISTRY.items():
        make = getattr(cls, "from_profile", None)
        out[name] = make(profile) if make is not None else cls()
    return out


def build_plugins(profile: Profile) -> dict[str, Any]:
    """Plugin instances by name for ``profile`` (cached; plugins are stateless)."""
    return _default_plugins(profile)


def num_nodes_to_score(n: int, percentage: int = 0) -> int:
    """Kubernetes' ``numFeasibleNodesToFind``: how many feasible nodes to look for."""
    if n < MIN_FEASIBLE_NODES_TO_FIND:
        return n
    if percentage <= 0:
        percentage = max(50 - n // 125, MIN_FEASIBLE_NODES_PERCENTAGE)
    if percentage >= 100:
        return n
    return max(n * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


def run_filters(
    pod: PodInfo,
    table: NodeTable,
    profile: Profile,
    plugins: dict[str, Any],
    candidates: Index | None = None,
) -> Filtered:
    """Run every filter of ``profile`` over ``candidates`` (default: all rows)."""
    n = len(table)
    cand = np.arange(n, dtype=np.intp) if candidates is None else candidates
    reasons: dict[str, int] = {}
    example: dict[str, int] = {}
    unresolvable = np.zeros(n, dtype=np.bool_)
    rejected_by: dict[str, Index] = {}
    for name in profile.filters:
        pre = getattr(plugins.get(name), "pre_filter", None)
        if pre is not None and (msg := pre(pod)):
            unresolvable[:] = True
            return Filtered(np.zeros(0, dtype=np.intp), {}, unresolvable, pre_filter=msg)
    for name in profile.filters:
        plugin = plugins.get(name)
        if plugin is None or not hasattr(plugin, "filter") or not len(cand):
            continue
        failures = plugin.filter(pod, table, cand)
        if not failures:
            continue
        resolvable: frozenset[str] = getattr(plugin, "resolvable", frozenset())
        rejected = np.zeros(len(cand), dtype=np.bool_)
        for f in failures:
            count = int(np.count_nonzero(f.mask))
            if not count:
                continue
            reasons[f.reason] = reasons.get(f.reason, 0) + count
            rows = cand[f.mask]
            example.setdefault(f.reason, int(rows[0]))
            if f.reason not in resolvable:
                unresolvable[rows] = True
            rejected |= f.mask
        rejected_by[name] = cand[rejected]
        cand = cand[~rejected]
    return Filtered(cand, reasons, unresolvable, rejected_by, example)


def fit_error(
    num_nodes: int, reasons: dict[str, int], post_filter: str = "", pre_filter: str = ""
) -> str:
    """Kubernetes' FitError text: ``0/N nodes are available: <count reason>, ... .``
    (or ``0/N nodes are available: <pre-filter message>.``), then the post-filter's."""
    msg = f"0/{num_nodes} nodes are available:"
    parts = sorted(f"{count} {reason}" for reason, count in reasons.items())
    if pre_filter:
        msg += f" {pre_filter}."
    elif parts:
        msg += f" {', '.join(parts)}."
    if post_filter:
        msg += f" {post_filter}."
    return msg


def format_amount(resource: str, amount: int) -> str:
    """A request or free amount as Kubernetes prints it (``500m``, ``2``, ``1536Mi``)."""
    if resource == "cpu":
        return format_quantity(Fraction(amount, 1000))
    if resource == "pods":
        return str(amount)
    return format_quantity(amount, BINARY_SI)


def nearest_miss(pod: PodInfo, table: NodeTable, filtered: Filtered) -> str:
    """One line on how close the pod came to fitting (beyond Kubernetes' message)."""
    rows = filtered.rejected_by.get(RESOURCE_PLUGIN)
    if rows is not None and len(rows):
        free = np.maximum(table.allocatable[rows] - table.requested[rows], 0)
        want = pod.requests
        asked = want > 0
        short = np.where(asked, np.maximum(want - free, 0) / np.where(asked, want, 1), 0.0)
        worst = short.max(axis=1)
        best = int(np.lexsort((-free[:, CPU], worst))[0])
        row = int(rows[best])
        binding = [c for c in range(len(RESOURCES)) if short[best, c] > 0]
        name = table.names[row]
        if binding == [PODS]:
            alloc = int(table.allocatable[row, PODS])
            return f"needs a pod slot; best node {name} already runs {alloc} of {alloc} pods"
        binding = [c for c in binding if c != PODS] or binding
        need = ", ".join(
            f"{format_amount(RESOURCES[c], int(want[c]))} {RESOURCES[c]}" for c in binding
        )
        if len(binding) == 1:
            has = format_amount(RESOURCES[binding[0]], int(free[best, binding[0]]))
        else:
            has = ", ".join(
                f"{format_amount(RESOURCES[c], int(free[best, c]))} {RESOURCES[c]}" for c in binding
            )
        return f"needs {need}; best node {name} has {has} free"
    if not filtered.reasons:
        return ""
    reason, count = min(filtered.reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    node = table.names[filtered.example[reason]]
    return f"{count} of {len(table)} nodes: {reason} (e.g. {node})"


def _rotation(first: int, count: int, n: int) -> Index:
    """``count`` rows going round the table from row ``first`` (mod ``n``)."""
    first %= n
    if first + count <= n:
        return np.arange(first, first + count, dtype=np.intp)
    return (first + np.arange(count, dtype=np.intp)) % n


def _whole_table(head: Filtered, rest: Filtered) -> Filtered:
    """One ``Filtered`` for the whole table from two runs over complementary rows going
    round it: ``feasible`` in that rotating order, the rejections in row order as
    ``run_filters`` over every row reports them."""
    rejected_by = {
        name: np.sort(np.concatenate([head.rejected_by.get(name, _NONE), rows]))
        for name, rows in rest.rejected_by.items()
    }
    for name, rows in head.rejected_by.items():
        rejected_by.setdefault(name, np.sort(rows))
    example = dict(head.example)
    for reason, row in rest.example.items():
        example[reason] = min(example.get(reason, row), row)
    reasons = dict(head.reasons)
    for reason, count in rest.reasons.items():
        reasons[reason] = reasons.get(reason, 0) + count
    return Filtered(
        np.concatenate([head.feasible, rest.feasible]),
        reasons,
        head.unresolvable | rest.unresolvable,
        rejected_by,
        example,
    )


def _pick(total: np.ndarray[Any, Any], cursor: Cursor) -> int:
    best = np.flatnonzero(total == total.max())
    return int(best[0]) if len(best) == 1 else int(best[cursor.rng.randrange(len(best))])


def decide(
    pod: PodInfo,
    table: NodeTable,
    profile: Profile,
    plugins: dict[str, Any] | None = None,
    *,
    cursor: Cursor | None = None,
    preemption: bool = False,
) -> Decision:
    """Choose a node for ``pod`` (see the module docstring). With ``preemption=True`` a
    failed decision also looks for victims and carries Kubernetes' ``preemption: ...``
    suffix in ``message``."""
    plugins = build_plugins(profile) if plugins is None else plugins
    cursor = table.cursor if cursor is None else cursor
    n = len(table)
    if n == 0:
        return Decision(None, NO_NODES, {}, 0, 0, NO_NODES)
    want = num_nodes_to_score(n, profile.percentage_of_nodes_to_score)
    start = cursor.next_start % n
    if want < n:
        # Kubernetes stops filtering once it has found ``want`` feasible nodes, going
        # round from the rotating start: filter the next ``want`` rows, then the rest of
        # the table only when they are not enough (same answer, less work)
        filtered = run_filters(pod, table, profile, plugins, _rotation(start, want, n))
        if len(filtered.feasible) < want and not filtered.pre_filter:
            rest = run_filters(pod, table, profile, plugins, _rotation(start + want, n - want, n))
            filtered = _whole_table(filtered, rest)
    else:
        filtered = run_filters(pod, table, profile, plugins)
    feasible = filtered.feasible
    if not len(feasible):
        message = fit_error(n, filtered.reasons, pre_filter=filtered.pre_filter)
        found = None
        if preemption:
            from corral.scheduler.preemption import preempt

            found, post = preempt(pod, table, profile, plugins, filtered)
            if post:
                message = fit_error(n, filtered.reasons, post, filtered.pre_filter)
        miss = nearest_miss(pod, table, filtered)
        return Decision(None, message, filtered.reasons, 0, n, miss, found)
    evaluated = n
    if want < n and len(feasible) >= want:  # (feasible is in rotating order here)
        feasible = feasible[:want]
        evaluated = int((feasible[-1] - start) % n) + 1
    cursor.next_start = (start + evaluated) % n
    if len(feasible) == 1:
        return Decision(table.names[int(feasible[0])], "", filtered.reasons, 1, evaluated)
    total = np.zeros(len(feasible), dtype=np.float64)
    for name, weight in profile.scores:
        plugin = plugins.get(name)
        if plugin is None or not weight or not hasattr(plugin, "score"):
            continue
        scores = plugin.score(pod, table, feasible)
        total += scores if weight == 1 else weight * scores
    row = int(feasible[_pick(total, cursor)])
    return Decision(table.names[row], "", filtered.reasons, len(feasible), evaluated)


__all__ = [
    "NO_NODES",
    "Decision",
    "Filtered",
    "build_plugins",
    "decide",
    "fit_error",
    "format_amount",
    "nearest_miss",
    "num_nodes_to_score",
    "run_filters",
]
