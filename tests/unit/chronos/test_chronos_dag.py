"""The job graph: unknown parents and cycles refused, children, the CSV and DOT exports."""

from __future__ import annotations

from typing import Any

import pytest

from corral.chronos import dag
from corral.chronos.jobs import JobError


def graph(**parents: list[str]) -> dict[str, dict[str, Any]]:
    """Jobs by name: a name with [] is scheduled, else dependent on the listed parents."""
    out: dict[str, dict[str, Any]] = {}
    for name, ps in parents.items():
        job: dict[str, Any] = {"name": name, "command": "true"}
        if ps:
            job["parents"] = ps
        else:
            job["schedule"] = "R/2026-01-01T00:00:00Z/PT1H"
        out[name] = job
    return out


CHAIN = graph(a=[], b=["a"], c=["b"])
DIAMOND = graph(a=[], b=["a"], c=["a"], d=["b", "c"])


@pytest.mark.parametrize(
    ("jobs", "name", "parents", "message"),
    [
        (CHAIN, "x", ["ghost"], "Parent ghost of job x not found in job graph!"),
        (CHAIN, "x", ["a", "ghost"], "Parent ghost of job x not found in job graph!"),
        (CHAIN, "x", ["x"], "Parent x of job x would create a cycle: x -> x"),
        (CHAIN, "a", ["c"], "Parent c of job a would create a cycle: a -> b -> c -> a"),
        (CHAIN, "b", ["c"], "Parent c of job b would create a cycle: b -> c -> b"),
        (DIAMOND, "a", ["d"], "Parent d of job a would create a cycle: a -> b -> d -> a"),
        (DIAMOND, "b", ["a", "d"], "Parent d of job b would create a cycle: b -> d -> b"),
    ],
    ids=[
        "unknown",
        "one-unknown",
        "self",
        "closing-a-chain",
        "replacing-a-parent-with-a-child",
        "diamond-root-under-its-sink",
        "diamond-branch-under-its-sink",
    ],
)
def test_check_refuses(
    jobs: dict[str, dict[str, Any]], name: str, parents: list[str], message: str
) -> None:
    with pytest.raises(JobError) as e:
        dag.check(jobs, name, parents)
    assert str(e.value) == message


@pytest.mark.parametrize(
    ("jobs", "name", "parents"),
    [
        (CHAIN, "d", ["c"]),
        (CHAIN, "c", ["a"]),
        (CHAIN, "c", ["a", "b"]),
        (DIAMOND, "e", ["d", "a"]),
        (DIAMOND, "d", ["b", "c"]),
        (DIAMOND, "a", []),
    ],
    ids=["extend", "replace-parents", "shortcut", "below-the-diamond", "same-again", "scheduled"],
)
def test_check_accepts(jobs: dict[str, dict[str, Any]], name: str, parents: list[str]) -> None:
    dag.check(jobs, name, parents)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a", ["b", "c"]), ("b", ["d"]), ("c", ["d"]), ("d", []), ("ghost", [])],
    ids=["root", "left", "right", "sink", "unknown"],
)
def test_children(name: str, expected: list[str]) -> None:
    assert dag.children(DIAMOND, name) == expected


def test_order_puts_parents_first() -> None:
    jobs = graph(z=[], y=["z"], b=["y", "a"], a=[])
    assert dag.order(jobs) == ["a", "z", "y", "b"]


def test_csv_as_chronos_exporter() -> None:
    text = dag.csv(DIAMOND, {"a": "success", "b": "failure"}, {"b": "running", "c": "queued"})
    assert text == (
        "node,a,success,idle\n"
        "node,b,failure,running\n"
        "node,c,fresh,queued\n"
        "node,d,fresh,idle\n"
        "link,a,b\n"
        "link,a,c\n"
        "link,b,d\n"
        "link,c,d\n"
    )


def test_dot_as_chronos_jgrapht_export() -> None:
    assert dag.dot(DIAMOND) == (
        "digraph G {\n"
        '  1 [ label="a" ];\n'
        '  2 [ label="b" ];\n'
        '  3 [ label="c" ];\n'
        '  4 [ label="d" ];\n'
        "  1 -> 2;\n"
        "  1 -> 3;\n"
        "  2 -> 4;\n"
        "  3 -> 4;\n"
        "}\n"
    )


def test_exports_of_an_empty_graph() -> None:
    assert dag.csv({}, {}, {}) == ""
    assert dag.dot({}) == "digraph G {\n}\n"


def test_exports_skip_edges_to_missing_parents() -> None:
    jobs = graph(b=["gone"])
    assert dag.csv(jobs, {}, {}) == "node,b,fresh,idle\n"


T = "2026-01-01T00:00:00.000Z"
LATER = "2026-01-01T00:00:01.000Z"


@pytest.mark.parametrize(
    ("ok", "err", "expected"),
    [
        ("", "", "fresh"),
        (None, None, "fresh"),
        (T, "", "success"),
        ("", T, "failure"),
        (LATER, T, "success"),
        (T, LATER, "failure"),
        (T, T, "failure"),
        (1_767_225_601.0, 1_767_225_600.0, "success"),
    ],
    ids=[
        "never",
        "none",
        "only-success",
        "only-error",
        "success-later",
        "error-later",
        "same",
        "floats",
    ],
)
def test_last_state_as_chronos(ok: Any, err: Any, expected: str) -> None:
    assert dag.last_state(ok, err) == expected
