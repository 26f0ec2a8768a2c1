"""Mesos resources <-> node-table units, and port range arithmetic."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from corral.offers.resources import (
    MB,
    count_ports,
    format_ranges,
    normalize_ranges,
    parse_resources,
    ports_to_ranges,
    ranges_contain,
    render_resources,
    scalars,
    subtract_ranges,
    to_vector,
)


def scalar(name: str, value: Any, type_: str = "SCALAR") -> dict[str, Any]:
    return {"name": name, "type": type_, "scalar": {"value": value}}


def ports(*ranges: tuple[int, int]) -> dict[str, Any]:
    return {
        "name": "ports",
        "type": "RANGES",
        "ranges": {"range": [{"begin": b, "end": e} for b, e in ranges]},
    }


@pytest.mark.parametrize(
    ("cpus", "mem", "disk", "vec"),
    [
        (0.1, 32, 0, [100, 32 * MB, 0, 0]),
        (1.5, 1024, 2048, [1500, 1024 * MB, 2048 * MB, 0]),
        (0.0004, 0.5, 0, [0, MB // 2, 0, 0]),
        (0.0006, 0, 0, [1, 0, 0, 0]),
    ],
    ids=["small", "whole", "sub-milli-rounds-down", "sub-milli-rounds-up"],
)
def test_to_vector_and_back(cpus: float, mem: float, disk: float, vec: list[int]) -> None:
    v = to_vector(cpus, mem, disk)
    assert v.dtype == np.int64
    assert v.tolist() == vec
    s = scalars(v)
    assert s["cpus"] == pytest.approx(vec[0] / 1000)
    assert s["mem"] == pytest.approx(vec[1] / MB)
    assert s["disk"] == pytest.approx(vec[2] / MB)


@pytest.mark.parametrize(
    ("resources", "vec", "port_ranges"),
    [
        ([scalar("cpus", 0.1), scalar("mem", 32)], [100, 32 * MB, 0, 0], []),
        (
            [scalar("cpus", 0.1), scalar("cpus", 0.2), scalar("mem", 16), scalar("mem", 16)],
            [300, 32 * MB, 0, 0],
            [],
        ),
        ([scalar("disk", 10), scalar("gpus", 0)], [0, 0, 10 * MB, 0], []),
        (
            [ports((31000, 31005)), ports((31006, 31010), (31020, 31020))],
            [0, 0, 0, 0],
            [(31000, 31010), (31020, 31020)],
        ),
        ([{"name": "cpus", "scalar": {"value": 1}, "role": "*"}], [1000, 0, 0, 0], []),
        ([], [0, 0, 0, 0], []),
        ([scalar("cpus", 0.1), scalar("pods", 1)], [100, 0, 0, 1], []),
        ([scalar("pods", 2), scalar("pods", 3.0)], [0, 0, 0, 5], []),
    ],
    ids=[
        "cpus-mem",
        "duplicates-summed",
        "disk-zero-gpus",
        "ports-merged",
        "type-omitted",
        "empty",
        "pods",
        "pods-summed",
    ],
)
def test_parse_resources(
    resources: list[dict[str, Any]], vec: list[int], port_ranges: list[tuple[int, int]]
) -> None:
    v, p = parse_resources(resources)
    assert v.tolist() == vec
    assert p == port_ranges


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ([scalar("bananas", 1)], "unknown resource 'bananas'"),
        ([scalar("cpus", 1, "RANGES")], "must have type SCALAR"),
        ([{"name": "ports", "type": "SCALAR", "scalar": {"value": 1}}], "must have type RANGES"),
        ([scalar("mem", -1)], "invalid value -1"),
        ([scalar("cpus", math.nan)], "invalid value nan"),
        ([scalar("cpus", math.inf)], "invalid value inf"),
        ([scalar("cpus", True)], "numeric scalar.value"),
        ([scalar("cpus", "1")], "numeric scalar.value"),
        ([{"name": "cpus", "type": "SCALAR"}], "numeric scalar.value"),
        ([scalar("gpus", 1)], "gpus"),
        ([scalar("pods", 0.5)], r"'pods'\) must be a whole number, not 0.5"),
        ([scalar("pods", -1)], "invalid value -1"),
        ([{"name": "pods", "type": "RANGES", "ranges": {"range": []}}], "must have type SCALAR"),
        ([ports((31005, 31000))], r"invalid range \[31005-31000\]"),
        ([ports((0, 70000))], "invalid range"),
        ([{"name": "ports", "type": "RANGES", "ranges": {}}], "ranges.range"),
        (["cpus"], "must be an object"),
    ],
    ids=[
        "unknown-name",
        "scalar-wrong-type",
        "ports-wrong-type",
        "negative",
        "nan",
        "infinite",
        "bool",
        "string",
        "no-value",
        "gpus",
        "pods-fraction",
        "pods-negative",
        "pods-wrong-type",
        "reversed-range",
        "port-too-big",
        "no-ranges",
        "not-an-object",
    ],
)
def test_parse_resources_rejects(resources: list[Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_resources(resources)


def test_parse_resources_rejects_non_list() -> None:
    with pytest.raises(ValueError, match="must be a list"):
        parse_resources({"name": "cpus"})  # type: ignore[arg-type]


def test_render_resources_shape() -> None:
    vec = to_vector(2, 1024, 0)
    out = render_resources(vec, [(31000, 31002), (31003, 31010)], "web")
    assert [r["name"] for r in out] == ["cpus", "mem", "ports"]  # no zero disk
    assert out[0]["scalar"] == {"value": 2.0}
    assert out[1]["scalar"] == {"value": 1024.0}
    assert out[2]["ranges"] == {"range": [{"begin": 31000, "end": 31010}]}
    for r in out:
        assert r["role"] == "*"
        assert r["allocation_info"] == {"role": "web"}
    with_disk = render_resources(to_vector(1, 1, 5), [], "*")
    assert [r["name"] for r in with_disk] == ["cpus", "mem", "disk"]


def test_render_resources_pods() -> None:
    """``pods`` when given (an offer's free pod slots), as a SCALAR; parsed back as the
    pods column; the vector's own pods column is not rendered."""
    vec = np.array([1000, 64 * MB, 0, 7], dtype=np.int64)
    assert [r["name"] for r in render_resources(vec, [(31000, 31000)], "*")] == [
        "cpus",
        "mem",
        "ports",
    ]
    out = render_resources(vec, [(31000, 31000)], "web", pods=12)
    assert [r["name"] for r in out] == ["cpus", "mem", "pods", "ports"]
    assert out[2] == {
        "name": "pods",
        "type": "SCALAR",
        "scalar": {"value": 12.0},
        "role": "*",
        "allocation_info": {"role": "web"},
    }
    back, ports_ = parse_resources(out)
    assert back.tolist() == [1000, 64 * MB, 0, 12]
    assert ports_ == [(31000, 31000)]


@pytest.mark.parametrize(
    "mem_bytes",
    [1024 * MB, 1024 * MB + 1, 3 * MB + 777, 16 * 1024**3 - 12345],
    ids=["whole-mb", "one-byte-over", "odd", "large-odd"],
)
def test_render_never_rounds_up(mem_bytes: int) -> None:
    """A framework that launches with exactly the offered mem fits the offer."""
    vec = np.array([1000, mem_bytes, mem_bytes, 0], dtype=np.int64)
    back, _ = parse_resources(render_resources(vec, [], "*"))
    assert back[1] <= mem_bytes
    assert back[2] <= mem_bytes
    assert mem_bytes - back[1] < MB // 1000 + 1


@pytest.mark.parametrize(
    ("ranges", "expected"),
    [
        ([], ()),
        ([(5, 9), (1, 3)], ((1, 3), (5, 9))),
        ([(1, 3), (4, 6)], ((1, 6),)),
        ([(1, 10), (2, 3)], ((1, 10),)),
        ([(1, 5), (3, 8), (10, 10)], ((1, 8), (10, 10))),
    ],
    ids=["empty", "sorted", "adjacent-merged", "contained", "overlap"],
)
def test_normalize_ranges(ranges: list[tuple[int, int]], expected: tuple[Any, ...]) -> None:
    assert normalize_ranges(ranges) == expected


def test_normalize_rejects_reversed() -> None:
    with pytest.raises(ValueError, match="invalid port range"):
        normalize_ranges([(5, 1)])


@pytest.mark.parametrize(
    ("ranges", "remove", "expected"),
    [
        ([(31000, 32000)], [], ((31000, 32000),)),
        ([(31000, 32000)], [(31000, 31000)], ((31001, 32000),)),
        ([(31000, 32000)], [(32000, 32000)], ((31000, 31999),)),
        ([(31000, 32000)], [(31500, 31500)], ((31000, 31499), (31501, 32000))),
        ([(31000, 32000)], [(30000, 40000)], ()),
        ([(1, 5), (10, 15)], [(4, 11)], ((1, 3), (12, 15))),
        ([(1, 5)], [(7, 9)], ((1, 5),)),
    ],
    ids=["nothing", "first", "last", "middle", "all", "spanning", "disjoint"],
)
def test_subtract_ranges(
    ranges: list[tuple[int, int]], remove: list[tuple[int, int]], expected: tuple[Any, ...]
) -> None:
    assert subtract_ranges(ranges, remove) == expected


@pytest.mark.parametrize(
    ("outer", "inner", "contained"),
    [
        ([(1, 10)], [(2, 3), (5, 5)], True),
        ([(1, 10)], [], True),
        ([(1, 5), (7, 10)], [(5, 7)], False),
        ([], [(1, 1)], False),
    ],
    ids=["inside", "empty-inner", "gap", "empty-outer"],
)
def test_ranges_contain(
    outer: list[tuple[int, int]], inner: list[tuple[int, int]], contained: bool
) -> None:
    assert ranges_contain(outer, inner) is contained


def test_count_format_and_single_ports() -> None:
    assert count_ports([(31000, 32000)]) == 1001
    assert count_ports([(1, 2), (2, 3)]) == 3
    assert ports_to_ranges([5, 3, 4, 9]) == ((3, 5), (9, 9))
    assert format_ranges([(31000, 31005), (31010, 31010)]) == "[31000-31005, 31010-31010]"
