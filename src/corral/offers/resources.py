"""Mesos resources in node-table units, and port ranges.

The allocator keeps every quantity in the units of the scheduler's node table
(``scheduler/snapshot.py``: cpu millicores, memory and ephemeral-storage bytes, a pods
count), so an offer can be held in that table beside Kubernetes pods (columns cpu, memory,
ephemeral-storage, pods = ``framework.RESOURCES``; Mesos cpus, mem, disk map to the first
three, the custom resource ``pods`` to the fourth). Mesos speaks in
``Resource`` JSON (cpus as a float, mem and disk in MB, ports as ranges). This module is
the one place the two meet:

- ``to_vector``/``scalars``: the scalar conversion (cpus x 1000, MB x 2**20).
- ``parse_resources``: a TaskInfo's or ACCEPT's ``resources`` list into a vector and
  port ranges, validated (the master turns ``ValueError`` into TASK_ERROR / an ERROR
  event, so messages are meant for framework authors).
- ``render_resources``: an offer's resources as Mesos ``Resource`` JSON.
- Port range helpers over inclusive ``(begin, end)`` ranges.

``pods`` is a custom scalar resource, as a Mesos agent started with
``--resources='pods:110'`` advertises one: an offer carries the node's free pod slots at
offer time (advisory: the allocator does not hold pod slots for outstanding offers, and
the master still refuses a task past the node's pods limit). A task may request
``pods`` (at most what the offer carries; its pod is one pod all the same) or not. In a
vector it is the pods column, so the ``fits`` check of a launch compares it like the rest.

Called by the allocator and the Mesos master. Pure functions, no state.

Rendering rounds mem and disk *down* to Mesos' three-decimal fixed point, so a framework
that launches a task with exactly the offered amount never asks for more bytes than the
offer held.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.int64]
#: inclusive (begin, end) port ranges, sorted and merged
Ranges = tuple[tuple[int, int], ...]

MB = 2**20
#: a quota limit column that does not limit (``Allocator.set_quota``)
UNLIMITED = int(np.iinfo(np.int64).max)
MAX_PORT = 65535

_SCALARS = {"cpus": 0, "mem": 1, "disk": 2, "pods": 3, "gpus": -1}
_SUPPORTED = "cpus, mem, disk, gpus, pods, ports"


def to_vector(cpus: float, mem_mb: float, disk_mb: float = 0.0, pods: float = 0.0) -> Vector:
    """A node-table vector (cpu millicores, memory bytes, disk bytes, pods)."""
    return np.array(
        [round(cpus * 1000), round(mem_mb * MB), round(disk_mb * MB), round(pods)], dtype=np.int64
    )


def scalars(vec: Sequence[int] | Vector) -> dict[str, float]:
    """``{"cpus", "mem", "disk"}`` of a table vector, in Mesos units (cpus, MB)."""
    return {"cpus": int(vec[0]) / 1000, "mem": int(vec[1]) / MB, "disk": int(vec[2]) / MB}


def _fixed(value: float) -> float:
    """Mesos' three-decimal fixed point, rounded down."""
    return math.floor(value * 1000 + 1e-9) / 1000


def _scalar_value(i: int, name: str, r: dict[str, Any]) -> float:
    rtype = r.get("type", "SCALAR")
    if rtype != "SCALAR":
        raise ValueError(f"resource {i} ({name!r}) must have type SCALAR, not {rtype!r}")
    scalar = r.get("scalar")
    raw = scalar.get("value") if isinstance(scalar, dict) else None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValueError(f"resource {i} ({name!r}) needs a numeric scalar.value")
    value = float(raw)
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise ValueError(f"resource {i} ({name!r}) has invalid value {raw!r}")
    return value


def _range_values(i: int, r: dict[str, Any]) -> list[tuple[int, int]]:
    rtype = r.get("type", "RANGES")
    if rtype != "RANGES":
        raise ValueError(f"resource {i} ('ports') must have type RANGES, not {rtype!r}")
    ranges = r.get("ranges")
    items = ranges.get("range") if isinstance(ranges, dict) else None
    if not isinstance(items, list):
        raise ValueError(f"resource {i} ('ports') needs ranges.range, a list")
    out = []
    for item in items:
        b = item.get("begin") if isinstance(item, dict) else None
        e = item.get("end") if isinstance(item, dict) else None
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (b, e)):
            raise ValueError(f"resource {i} ('ports') has a range without integer begin/end")
        assert isinstance(b, int) and isinstance(e, int)
        if not 0 <= b <= e <= MAX_PORT:
            raise ValueError(f"resource {i} ('ports') has invalid range [{b}-{e}]")
        out.append((b, e))
    return out


def parse_resources(resources: list[dict[str, Any]]) -> tuple[Vector, list[tuple[int, int]]]:
    """Sum a list of Mesos ``Resource`` JSON into a table vector and merged port ranges.

    Accepts cpus, mem, disk, pods (SCALAR; pods a whole number), gpus (must be 0) and
    ports (RANGES); other names, wrong types, negative, infinite or NaN values raise
    ``ValueError``. Fields such as ``role``, ``reservations`` and ``allocation_info`` are
    ignored.
    """
    if not isinstance(resources, list):
        raise ValueError("resources must be a list")
    sums = [0.0, 0.0, 0.0, 0.0]
    gpus = 0.0
    ports: list[tuple[int, int]] = []
    for i, r in enumerate(resources):
        if not isinstance(r, dict):
            raise ValueError(f"resource {i} must be an object")
        name = r.get("name")
        if name == "ports":
            ports.extend(_range_values(i, r))
        elif isinstance(name, str) and name in _SCALARS:
            value = _scalar_value(i, name, r)
            if name == "pods" and value != math.floor(value):
                raise ValueError(f"resource {i} ('pods') must be a whole number, not {value:g}")
            if _SCALARS[name] < 0:
                gpus += value
            else:
                sums[_SCALARS[name]] += value
        else:
            raise ValueError(f"resource {i}: unknown resource {name!r} (supported: {_SUPPORTED})")
    if gpus > 0:
        raise ValueError(f"gpus: {gpus:g} requested, but no agent offers GPUs")
    return to_vector(*sums), list(normalize_ranges(ports))


def _scalar_json(name: str, value: float, role: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "SCALAR",
        "scalar": {"value": value},
        "role": "*",
        "allocation_info": {"role": role},
    }


def render_resources(
    vec: Sequence[int] | Vector,
    ports: Iterable[tuple[int, int]],
    role: str,
    pods: int | None = None,
) -> list[dict[str, Any]]:
    """An offer's resources as Mesos JSON: cpus and mem always, disk when > 0, ``pods``
    when given (an offer's free pod slots, a task's request; ``vec``'s pods column is not
    read), ports when any; each unreserved (``"role": "*"``) and allocated to ``role``."""
    out = [
        _scalar_json("cpus", int(vec[0]) / 1000, role),
        _scalar_json("mem", _fixed(int(vec[1]) / MB), role),
    ]
    if int(vec[2]) > 0:
        out.append(_scalar_json("disk", _fixed(int(vec[2]) / MB), role))
    if pods is not None:
        out.append(_scalar_json("pods", float(pods), role))
    ranges = normalize_ranges(ports)
    if ranges:
        out.append(
            {
                "name": "ports",
                "type": "RANGES",
                "ranges": {"range": [{"begin": b, "end": e} for b, e in ranges]},
                "role": "*",
                "allocation_info": {"role": role},
            }
        )
    return out


# -- port ranges -------------------------------------------------------------------------


def normalize_ranges(ranges: Iterable[tuple[int, int]]) -> Ranges:
    """Sort and merge overlapping or adjacent inclusive ranges; ``ValueError`` if b > e."""
    items = sorted(ranges)
    out: list[tuple[int, int]] = []
    for b, e in items:
        if b > e:
            raise ValueError(f"invalid port range [{b}-{e}]")
        if out and b <= out[-1][1] + 1:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((b, e))
    return tuple(out)


def ports_to_ranges(ports: Iterable[int]) -> Ranges:
    """Single ports as merged ranges."""
    return normalize_ranges((p, p) for p in ports)


def subtract_ranges(ranges: Iterable[tuple[int, int]], remove: Iterable[tuple[int, int]]) -> Ranges:
    """``ranges`` without the ports in ``remove``."""
    out: list[tuple[int, int]] = []
    cuts = normalize_ranges(remove)
    for b, e in normalize_ranges(ranges):
        start = b
        for cb, ce in cuts:
            if ce < start:
                continue
            if cb > e:
                break
            if cb > start:
                out.append((start, cb - 1))
            start = max(start, ce + 1)
            if start > e:
                break
        if start <= e:
            out.append((start, e))
    return tuple(out)


def ranges_contain(outer: Iterable[tuple[int, int]], inner: Iterable[tuple[int, int]]) -> bool:
    """Whether every port of ``inner`` is in ``outer``."""
    return not subtract_ranges(inner, outer)


def count_ports(ranges: Iterable[tuple[int, int]]) -> int:
    """How many ports the (merged) ranges hold."""
    return sum(e - b + 1 for b, e in normalize_ranges(ranges))


def format_ranges(ranges: Iterable[tuple[int, int]]) -> str:
    """``[31000-31005, 31010-31010]``, as Mesos' v0 JSON writes ports."""
    return "[" + ", ".join(f"{b}-{e}" for b, e in normalize_ranges(ranges)) + "]"
