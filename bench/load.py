"""Load generators and object factories for the API server benchmarks.

Called by ``bench.scenarios``. Everything here runs inside one asyncio loop of the
benchmark process and talks to the server through an ``aiohttp.ClientSession`` whose
connector caps the number of keep-alive connections:

- ``closed_loop`` runs N clients that each send their next request as soon as the last one
  answered, for a fixed time, and returns the completed requests per second;
- ``open_loop`` sends requests on a fixed timetable (request i at ``start + i / rate``)
  whatever the server does, and measures each latency from the *scheduled* time, so a
  stalled server shows up as latency instead of a lower offered rate (no coordinated
  omission);
- ``pod`` / ``configmap`` build realistic objects (a pod is about 1.5 KB of JSON).

``CpuMeter`` reads the server's user+system CPU time from ``/proc`` so each figure can say
whether the server (one Python process) or the load generator was the bottleneck.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

Obj = dict[str, Any]
#: one request: given a sequence number, send it and raise if the answer is not 2xx
Request = Callable[[int], Awaitable[None]]

_TICKS = os.sysconf("SC_CLK_TCK")


class RequestFailed(Exception):
    pass


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of ``values`` (``p`` in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))
    return s[k]


def stalls(
    samples: list[tuple[float, float]], over_ms: float, gap_s: float = 0.05
) -> list[dict[str, float]]:
    """Group the requests slower than ``over_ms`` into stalls: runs of slow requests
    scheduled less than ``gap_s`` apart. Periodic stalls point at a timer in the server;
    irregular ones at pauses such as garbage collection."""
    out: list[dict[str, float]] = []
    last = -1.0
    for at, ms in sorted(s for s in samples if s[1] > over_ms):
        if out and at - last <= gap_s:
            cur = out[-1]
            cur["requests"] += 1
            cur["worst_ms"] = max(cur["worst_ms"], round(ms, 1))
        else:
            out.append({"at_s": round(at, 2), "requests": 1, "worst_ms": round(ms, 1)})
        last = at
    return out


def median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    if n == 0:
        return float("nan")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


class CpuMeter:
    """CPU seconds a process used between ``start()`` and ``stop()``, as a % of one core."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu0 = 0.0
        self._own0 = 0.0
        self._t0 = 0.0
        #: this (load-generating) process's CPU over the same span, % of one core
        self.client_pct = 0.0

    def _cpu(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def start(self) -> None:
        self._cpu0 = self._cpu()
        self._own0 = time.process_time()
        self._t0 = time.monotonic()

    def stop(self) -> float:
        """The server's CPU % of one core since ``start`` (sets ``client_pct`` too)."""
        dt = time.monotonic() - self._t0
        if dt <= 0:
            return 0.0
        self.client_pct = 100.0 * (time.process_time() - self._own0) / dt
        return 100.0 * (self._cpu() - self._cpu0) / dt


async def send(
    session: aiohttp.ClientSession,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """One request; returns the body, raises ``RequestFailed`` on a non-2xx answer."""
    h = {"Content-Type": "application/json"} if body is not None else {}
    if headers:
        h.update(headers)
    async with session.request(method, path, data=body, headers=h) as r:
        data = await r.read()
        if r.status >= 300:
            raise RequestFailed(f"{method} {path}: {r.status} {data[:300]!r}")
        return data


@dataclass
class Throughput:
    requests: int
    errors: int
    seconds: float
    server_cpu_pct: float
    client_cpu_pct: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


async def closed_loop(
    request: Request, clients: int, seconds: float, pid: int, first_seq: int = 0
) -> Throughput:
    """``clients`` concurrent clients each sending back-to-back for ``seconds``."""
    seq = first_seq
    done = 0
    errors = 0
    deadline = 0.0

    async def client() -> None:
        nonlocal seq, done, errors
        while time.monotonic() < deadline:
            n = seq
            seq += 1
            try:
                await request(n)
                done += 1
            except (RequestFailed, aiohttp.ClientError):
                errors += 1

    meter = CpuMeter(pid)
    meter.start()
    t0 = time.monotonic()
    deadline = t0 + seconds
    async with asyncio.TaskGroup() as tg:
        for _ in range(clients):
            tg.create_task(client())
    elapsed = time.monotonic() - t0
    server = meter.stop()
    return Throughput(done, errors, elapsed, server, meter.client_pct)


@dataclass
class OpenLoopResult:
    latencies_ms: list[float]
    #: (scheduled offset from the start in s, latency in ms) of every request
    samples: list[tuple[float, float]]
    errors: int
    offered_per_s: float
    achieved_per_s: float
    server_cpu_pct: float
    client_cpu_pct: float


async def rates(
    request: Request, clients: int, seconds: float, pid: int, runs: int, seq_step: int = 0
) -> dict[str, Any]:
    """``runs`` closed-loop runs of ``request``: the median and each run's requests/s, the
    errors and the server's CPU. Run ``i`` numbers its requests from ``seq_step * (i + 1)``
    (a step > 0 keeps the names of created objects apart between runs)."""
    results = [
        await closed_loop(request, clients, seconds, pid, seq_step * (i + 1)) for i in range(runs)
    ]
    per_s = [r.per_second for r in results]
    return {
        "median_per_s": round(median(per_s), 1),
        "runs_per_s": [round(x, 1) for x in per_s],
        "errors": sum(r.errors for r in results),
        "server_cpu_pct": [round(r.server_cpu_pct, 1) for r in results],
    }


async def open_loop(
    request: Request, rate: float, seconds: float, pid: int, first_seq: int = 0
) -> OpenLoopResult:
    """Request i is due at ``t0 + i / rate``; latency counts from that due time."""
    total = int(rate * seconds)
    latencies: list[float] = []
    samples: list[tuple[float, float]] = []
    errors = 0

    async def one(i: int, due: float) -> None:
        nonlocal errors
        try:
            await request(first_seq + i)
            ms = (time.monotonic() - due) * 1000.0
            latencies.append(ms)
            samples.append((due - t0, ms))
        except (RequestFailed, aiohttp.ClientError):
            errors += 1

    meter = CpuMeter(pid)
    meter.start()
    t0 = time.monotonic() + 0.05
    async with asyncio.TaskGroup() as tg:
        for i in range(total):
            due = t0 + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tg.create_task(one(i, due))
    elapsed = time.monotonic() - t0
    server = meter.stop()
    return OpenLoopResult(
        latencies, samples, errors, rate, len(latencies) / elapsed, server, meter.client_pct
    )


# --- objects ------------------------------------------------------------------------------------
def configmap(name: str, size: int = 200) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "bench", "tier": "load"}},
        "data": {"payload": "x" * size},
    }


def pod(name: str, node: str, i: int = 0) -> Obj:
    """A pod much like a Deployment's: about 1.5 KB of JSON before server defaults."""
    app = f"svc-{i % 50}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {
                "app": app,
                "tier": ("web", "api", "worker")[i % 3],
                "pod-template-hash": f"{(i * 2654435761) % 16**10:010x}",
                "release": "stable",
            },
            "annotations": {"bench.corral.dev/owner": "team-" + str(i % 7)},
        },
        "spec": {
            "nodeName": node,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "containers": [
                {
                    "name": "main",
                    "image": f"registry.example.com/{app}:1.{i % 9}.0",
                    "args": ["--port=8080", "--log-level=info", "--metrics-port=9090"],
                    "ports": [
                        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
                    ],
                    "env": [
                        {"name": "APP_NAME", "value": app},
                        {"name": "APP_ENV", "value": "production"},
                        {"name": "LOG_FORMAT", "value": "json"},
                        {"name": "CACHE_SIZE_MB", "value": "256"},
                        {
                            "name": "POD_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        },
                    ],
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "128Mi"},
                        "limits": {"cpu": "500m", "memory": "256Mi"},
                    },
                    "readinessProbe": {
                        "httpGet": {"path": "/healthz", "port": 8080},
                        "periodSeconds": 10,
                    },
                }
            ],
        },
    }


def dumps(obj: Obj) -> bytes:
    return orjson.dumps(obj)
