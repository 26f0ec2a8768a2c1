"""The kubelet's resource metrics endpoint, ``GET /metrics/resource``, for metrics-server.

The agent server (``agent/server.py``) answers that path with ``render(sample)``: the
Prometheus text exposition the kubelet serves, with its metric names, labels and help
(all ``[STABLE]``), each sample stamped with the time it was read (milliseconds):

- ``node_cpu_usage_seconds_total``, ``node_memory_working_set_bytes``: the node's root
  cgroup (cgroup v1 ``cpuacct.usage``, ``memory.usage_in_bytes`` less
  ``total_inactive_file``), or, where that is not readable (cgroup v2, or not root),
  the busy time of ``/proc/stat`` and ``MemTotal - MemAvailable``;
- ``container_cpu_usage_seconds_total``, ``container_memory_working_set_bytes``,
  ``container_start_time_seconds`` ``{container, namespace, pod}``: each running
  container, from its driver's ``stats`` (``Driver.stats``, cgroup counters);
- ``pod_cpu_usage_seconds_total``, ``pod_memory_working_set_bytes`` ``{namespace, pod}``:
  the sums over the pod's running containers;
- ``resource_scrape_error``: 1 when some running container's stats could not be read.

The real agent builds its ``Sample`` from its drivers (``NodeAgent.resource_metrics``);
the hollow agent from its pods' requests instead (``hollow_sample``). Both are cheap, no I/O
beyond a few small cgroup file reads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.api.quantity import parse_quantity
from corral.util.clock import parse_rfc3339

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class ContainerUsage:
    namespace: str
    pod: str
    container: str
    cpu_seconds: float  # cumulative
    memory_bytes: int  # working set
    start_time: float  # unix time


@dataclass
class Sample:
    """One read of the node and its containers, at ``timestamp`` (unix seconds)."""

    timestamp: float
    node_cpu_seconds: float | None = None
    node_memory_bytes: int | None = None
    containers: list[ContainerUsage] = field(default_factory=list)
    scrape_error: bool = False


def _fmt(v: float) -> str:
    """A sample value as Go's ``strconv.FormatFloat(v, 'g', -1, 64)`` writes it (what
    the kubelet's exposition uses): shortest digits, exponent form below 1e-4 or from 1e6.
    Python's ``repr`` gives the same shortest digits; only their layout differs."""
    if v == 0:
        return "0"
    if type(v) is int and -1_000_000 < v < 1_000_000:
        return str(v)
    r = repr(float(v))
    neg = "-" if r[0] == "-" else ""
    r = r.lstrip("-")
    if r in ("inf", "nan"):
        return {"inf": f"{neg}+Inf" if not neg else "-Inf", "nan": "NaN"}[r]
    mant, _, e = r.partition("e")
    whole, _, frac = mant.partition(".")
    if e:  # d[.ddd]e±x
        ds, exp = (whole + frac).rstrip("0") or "0", int(e)
    elif whole != "0":
        ds, exp = (whole + frac).rstrip("0"), len(whole) - 1
    else:
        stripped = frac.lstrip("0")
        ds, exp = stripped.rstrip("0"), -(len(frac) - len(stripped)) - 1
    if exp < -4 or exp >= 6:
        m = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{neg}{m}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{neg}0.{'0' * (-exp - 1)}{ds}"
    head = ds[: exp + 1].ljust(exp + 1, "0")
    tail = ds[exp + 1 :]
    return f"{neg}{head}.{tail}" if tail else f"{neg}{head}"


def _labels(**labels: str) -> str:
    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in labels.items()) + "}"


def _family(name: str, type_: str, help_: str, lines: Iterable[str]) -> list[str]:
    body = list(lines)
    return [f"# HELP {name} [STABLE] {help_}", f"# TYPE {name} {type_}", *body] if body else []


def render(sample: Sample) -> str:
    """The exposition text of ``sample``, families in the kubelet's (alphabetical) order."""
    ts = f" {int(sample.timestamp * 1000)}"
    cs = sorted(sample.containers, key=lambda c: (c.namespace, c.pod, c.container))
    pods: dict[tuple[str, str], tuple[float, int]] = {}
    for c in cs:
        cpu, mem = pods.get((c.namespace, c.pod), (0.0, 0))
        pods[(c.namespace, c.pod)] = (cpu + c.cpu_seconds, mem + c.memory_bytes)

    def cl(c: ContainerUsage) -> str:
        return _labels(container=c.container, namespace=c.namespace, pod=c.pod)

    out: list[str] = []
    out += _family(
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the container in core-seconds",
        (f"container_cpu_usage_seconds_total{cl(c)} {_fmt(c.cpu_seconds)}{ts}" for c in cs),
    )
    out += _family(
        "container_memory_working_set_bytes",
        "gauge",
        "Current working set of the container in bytes",
        (f"container_memory_working_set_bytes{cl(c)} {_fmt(c.memory_bytes)}{ts}" for c in cs),
    )
    out += _family(
        "container_start_time_seconds",
        "gauge",
        "Start time of the container since unix epoch in seconds",
        (f"container_start_time_seconds{cl(c)} {_fmt(c.start_time)}{ts}" for c in cs),
    )
    if sample.node_cpu_seconds is not None:
        out += _family(
            "node_cpu_usage_seconds_total",
            "counter",
            "Cumulative cpu time consumed by the node in core-seconds",
            [f"node_cpu_usage_seconds_total {_fmt(sample.node_cpu_seconds)}{ts}"],
        )
    if sample.node_memory_bytes is not None:
        out += _family(
            "node_memory_working_set_bytes",
            "gauge",
            "Current working set of the node in bytes",
            [f"node_memory_working_set_bytes {_fmt(sample.node_memory_bytes)}{ts}"],
        )
    out += _family(
        "pod_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the pod in core-seconds",
        (
            f"pod_cpu_usage_seconds_total{_labels(namespace=ns, pod=p)} {_fmt(cpu)}{ts}"
            for (ns, p), (cpu, _) in pods.items()
        ),
    )
    out += _family(
        "pod_memory_working_set_bytes",
        "gauge",
        "Current working set of the pod in bytes",
        (
            f"pod_memory_working_set_bytes{_labels(namespace=ns, pod=p)} {_fmt(mem)}{ts}"
            for (ns, p), (_, mem) in pods.items()
        ),
    )
    out += _family(
        "resource_scrape_error",
        "gauge",
        "1 if there was an error while getting container metrics, 0 otherwise",
        [f"resource_scrape_error {1 if sample.scrape_error else 0}"],
    )
    return "\n".join(out) + "\n"


# --- the node ---------------------------------------------------------------------------------


def _read_int(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().split()[0])
    return None


def _stat_value(path: Path, key: str) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in path.read_text().splitlines():
            k, _, v = line.partition(" ")
            if k == key:
                return int(v)
    return 0


def node_usage(root: Path = CGROUP_ROOT, proc: Path = Path("/proc")) -> tuple[float, int] | None:
    """(cumulative CPU seconds, memory working set bytes) of the whole node."""
    cpu = _read_int(root / "cpuacct" / "cpuacct.usage")
    usage = _read_int(root / "memory" / "memory.usage_in_bytes")
    if cpu is not None and usage is not None:
        inactive = _stat_value(root / "memory" / "memory.stat", "total_inactive_file")
        return cpu / 1e9, max(0, usage - inactive)
    try:
        fields = (proc / "stat").read_text().splitlines()[0].split()[1:]
        ticks = [int(x) for x in fields]
        busy = sum(ticks[:8]) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)
        hz = os.sysconf("SC_CLK_TCK")
        mem: dict[str, int] = {}
        for line in (proc / "meminfo").read_text().splitlines():
            k, _, v = line.partition(":")
            mem[k] = int(v.split()[0]) * 1024
        return busy / hz, mem.get("MemTotal", 0) - mem.get("MemAvailable", 0)
    except (OSError, ValueError, IndexError):
        return None


# --- hollow nodes: plausible numbers from what the pods request ---------------------------------


def _request(container: dict[str, Any], resource: str, default: float) -> float:
    res = container.get("resources")
    req = res.get("requests") if isinstance(res, dict) else None
    value = req.get(resource) if isinstance(req, dict) else None
    if value is None:
        return default
    with contextlib.suppress(ValueError, TypeError):
        return float(parse_quantity(str(value)))
    return default


def hollow_usage(container: dict[str, Any], started: float, now: float) -> tuple[float, int]:
    """A simulated container's (cumulative CPU seconds, working set bytes): half of its
    CPU request used since it started (1m without one), 60 % of its memory request (4 Mi)."""
    cores = _request(container, "cpu", 0.002) / 2
    mem = _request(container, "memory", 4 * 1024 * 1024 / 0.6) * 0.6
    return cores * max(0.0, now - started), int(mem)


#: what a simulated node uses beside its pods: a twentieth of a core, 256 MiB
HOLLOW_NODE_CORES = 0.05
HOLLOW_NODE_MEMORY = 256 * 1024 * 1024


def hollow_sample(pods: Iterable[dict[str, Any]], node_started: float, now: float) -> Sample:
    """The ``Sample`` of one simulated node from its (slimmed) pods: each running
    container per ``hollow_usage`` since the pod's ``startTime``, the node that plus a
    small constant load since ``node_started``."""
    now = int(now * 1000) / 1000  # the exposition's millisecond timestamp: exact rates
    sample = Sample(timestamp=now)
    node_cpu = HOLLOW_NODE_CORES * max(0.0, now - node_started)
    node_mem = HOLLOW_NODE_MEMORY
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") != "Running" or not status.get("startTime"):
            continue
        try:
            started = parse_rfc3339(status["startTime"])
        except ValueError:
            continue
        meta = pod.get("metadata") or {}
        for c in (pod.get("spec") or {}).get("containers") or []:
            cpu, mem = hollow_usage(c, started, now)
            sample.containers.append(
                ContainerUsage(
                    meta.get("namespace", ""),
                    meta.get("name", ""),
                    str(c.get("name")),
                    cpu,
                    mem,
                    started,
                )
            )
            node_cpu += cpu
            node_mem += mem
    sample.node_cpu_seconds, sample.node_memory_bytes = node_cpu, node_mem
    return sample
