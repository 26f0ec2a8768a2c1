"""The job graph: a dependent job's ``parents`` are edges parent -> child.

Pure. ``service.py`` calls ``check`` before it stores a job (a ``JobError`` is the 400
answer: an unknown parent, or an edge that would close a cycle; Chronos' jgrapht
``DirectedAcyclicGraph`` refuses those too, with a 500 and a stack trace), and answers
``GET graph/csv`` and ``graph/dot`` with ``csv`` and ``dot``.

``jobs`` maps a job name to its job (``jobs.normalize``'s dict); a job without
``parents`` is a scheduled job, a root. Nodes come out parents first (a topological
order, ties by name) so that the exports are stable; Chronos writes them in hash order.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from corral.chronos.jobs import JobError

__all__ = ["check", "children", "csv", "dot", "last_state", "order", "parents_of"]

LAST_STATES = ("fresh", "success", "failure")
CURRENT_STATES = ("idle", "queued", "running")


def parents_of(job: Mapping[str, Any] | None) -> list[str]:
    return [str(p) for p in ((job or {}).get("parents") or [])]


def check(jobs: Mapping[str, Mapping[str, Any]], name: str, parents: list[str]) -> None:
    """Whether job ``name`` (new, or replacing the one in ``jobs``) may have ``parents``;
    raises ``JobError`` for a parent that is not a job, or one that depends on ``name``
    already (``... would create a cycle: a -> b -> a``)."""
    for p in parents:
        if p != name and p not in jobs:
            raise JobError(f"Parent {p} of job {name} not found in job graph!")
    for p in parents:
        chain = _chain_down(jobs, name, parents, p)
        if chain is not None:
            cycle = " -> ".join([*chain, name])
            raise JobError(f"Parent {p} of job {name} would create a cycle: {cycle}")


def _chain_down(
    jobs: Mapping[str, Mapping[str, Any]], name: str, new_parents: list[str], target: str
) -> list[str] | None:
    """The shortest chain of parent -> child edges from ``name`` down to ``target``
    (``[name]`` when they are the same), ``name``'s parents being ``new_parents``; None
    when ``target`` does not descend from ``name``. Searched upwards from ``target``."""
    if target == name:
        return [name]

    def up(n: str) -> list[str]:
        return new_parents if n == name else parents_of(jobs.get(n))

    child_of: dict[str, str | None] = {target: None}  # the next node down toward target
    queue = deque([target])
    while queue:
        node = queue.popleft()
        for parent in up(node):
            if parent == name:
                chain: list[str] = [name]
                cur: str | None = node
                while cur is not None:
                    chain.append(cur)
                    cur = child_of[cur]
                return chain
            if parent not in child_of:
                child_of[parent] = node
                queue.append(parent)
    return None


def children(jobs: Mapping[str, Mapping[str, Any]], name: str) -> list[str]:
    """The jobs that have ``name`` among their parents, by name."""
    return sorted(n for n, job in jobs.items() if name in parents_of(job))


def order(jobs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every job, parents before children, ties (and any cycle's rest) by name."""
    pending = {n: {p for p in parents_of(job) if p in jobs and p != n} for n, job in jobs.items()}
    kids: dict[str, list[str]] = {n: [] for n in jobs}
    for n, ps in pending.items():
        for p in ps:
            kids[p].append(n)
    ready = [n for n, ps in pending.items() if not ps]
    heapq.heapify(ready)
    out: list[str] = []
    while ready:
        n = heapq.heappop(ready)
        out.append(n)
        for c in kids[n]:
            pending[c].discard(n)
            if not pending[c]:
                heapq.heappush(ready, c)
    done = set(out)
    return out + sorted(n for n in jobs if n not in done)


def _edges(jobs: Mapping[str, Mapping[str, Any]], nodes: list[str]) -> list[tuple[str, str]]:
    return [(p, c) for c in nodes for p in parents_of(jobs[c]) if p in jobs]


def csv(
    jobs: Mapping[str, Mapping[str, Any]],
    last_state: Mapping[str, str],
    current_state: Mapping[str, str],
) -> str:
    """``GET graph/csv`` as Chronos' ``Exporter`` writes it: ``node,<job>,<lastState>,
    <currentState>`` per job (fresh|success|failure; idle|queued|running; fresh and idle
    when not given), then ``link,<parent>,<child>`` per edge, each line ending in \\n."""
    nodes = order(jobs)
    lines = [
        f"node,{n},{last_state.get(n, 'fresh')},{current_state.get(n, 'idle')}\n" for n in nodes
    ]
    lines += [f"link,{p},{c}\n" for p, c in _edges(jobs, nodes)]
    return "".join(lines)


def dot(jobs: Mapping[str, Mapping[str, Any]]) -> str:
    """``GET graph/dot`` as Chronos' ``JobGraph.makeDotFile`` (jgrapht 1.0 ``DOTExporter``
    with integer ids and the job names as labels) writes it."""
    nodes = order(jobs)
    ids = {n: i for i, n in enumerate(nodes, start=1)}
    lines = ["digraph G {"]
    lines += [f'  {ids[n]} [ label="{n}" ];' for n in nodes]
    lines += [f"  {ids[p]} -> {ids[c]};" for p, c in _edges(jobs, nodes)]
    return "\n".join([*lines, "}"]) + "\n"


def _instant(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return datetime.fromisoformat(str(value)).timestamp()


def last_state(last_success: Any, last_error: Any) -> str:
    """``Exporter.getLastState``: fresh when the job never ended, else success when its
    last success is strictly after its last error. Times are ISO 8601 strings (``""``
    unset) or unix seconds."""
    ok, err = _instant(last_success), _instant(last_error)
    if ok is None and err is None:
        return "fresh"
    if ok is None:
        return "failure"
    if err is None:
        return "success"
    return "success" if ok > err else "failure"
