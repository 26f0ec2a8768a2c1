"""Liveness, readiness and startup probes: when to probe, what a result means, how to probe.

Two halves, as the conventions ask for decisions:

- **Sans-I/O.** :class:`ProbeTracker` is the kubelet's prober ``worker`` for one
  (container, kind) without its goroutine: ``next_due`` says when to probe next,
  ``record`` takes one outcome and returns the verdict after the thresholds.
  :class:`ContainerProbes` bundles a container's trackers and applies the startup gate.
  Both read the time they are given, never a clock.
- **I/O.** :func:`run_probe` performs one probe (exec, httpGet, tcpSocket; gRPC answers
  "unsupported") and returns ``(ok, output)``; ``output`` is what the kubelet puts after
  ``"Liveness probe failed: "`` in the ``Unhealthy`` event (:func:`unhealthy_message`).

Who calls it: the pod lifecycle (``agent/pods.py``) keeps a tracker per probe of each
running container, sleeps until the earliest ``next_due``, runs the due probes and feeds
``record``. A new container (restart) gets new trackers.

Verdict per tracker (``successThreshold``/``failureThreshold`` consecutive results flip it)::

                 initial: Liveness SUCCESS, Readiness FAILURE, Startup UNKNOWN
                 +---------+   failureThreshold fails    +---------+
      UNKNOWN -->| SUCCESS |---------------------------->| FAILURE |  Liveness/Startup:
                 |         |<----------------------------|         |  on hold (no more
                 +---------+   successThreshold oks      +---------+  probes): restart it

Timing: the first probe is due ``initialDelaySeconds`` after the container started, the
next ``periodSeconds`` after the previous one. (The kubelet ticks from when its worker
began, with jitter; this is the deterministic version of the same schedule.)

Startup gate (:class:`ContainerProbes`): while a startup probe exists and has not
succeeded, only it runs, the container is not ``started`` and not ready; once it
succeeds it stops and liveness/readiness begin (their initial delay still counts from the
container's start). No readiness probe: ready as soon as started.

A probe that cannot even be attempted (unknown named port) raises :class:`ProbeError`:
upstream discards such a result (the verdict stays) and records ``"<Kind> probe errored
..."``.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from corral.agent.env import expand

UNHEALTHY = "Unhealthy"  # event reasons
KILLING = "Killing"
PROBE_WARNING = "ProbeWarning"

USER_AGENT = "kube-probe/1.32"
MAX_OUTPUT = 10 * 1024  # the kubelet keeps this much of a probe's output
MAX_REDIRECTS = 10

ExecFn = Callable[[list[str], float], Awaitable[tuple[int, bytes]]]


class ProbeKind(StrEnum):
    LIVENESS = "Liveness"
    READINESS = "Readiness"
    STARTUP = "Startup"

    @classmethod
    def of(cls, kind: str | ProbeKind) -> ProbeKind:
        """``"liveness"``, ``"livenessProbe"`` or ``ProbeKind.LIVENESS``."""
        return cls(str(kind).removesuffix("Probe").capitalize())

    @property
    def field(self) -> str:
        return f"{self.value.lower()}Probe"


class ProbeResult(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"

    @property
    def success(self) -> bool | None:
        """True, False, or None while unknown."""
        return {"success": True, "failure": False}.get(self.value)


class ProbeError(Exception):
    """The probe could not be attempted; its result is discarded."""


def unhealthy_message(kind: str | ProbeKind, output: str) -> str:
    """``Liveness probe failed: HTTP probe failed with statuscode: 500``."""
    return f"{ProbeKind.of(kind).value} probe failed: {output}"


def errored_message(kind: str | ProbeKind, result: ProbeResult, error: str) -> str:
    return f"{ProbeKind.of(kind).value} probe errored and resulted in {result} state: {error}"


def killing_message(container: str, kind: str | ProbeKind, *, restart: bool = True) -> str:
    """``Container app failed liveness probe, will be restarted``."""
    tail = "will be restarted" if restart else "will not be restarted"
    return f"Container {container} failed {ProbeKind.of(kind).value.lower()} probe, {tail}"


# --- the state machine ----------------------------------------------------------------------


def _num(probe: Mapping[str, Any], key: str, default: int) -> int:
    v = probe.get(key)
    return int(v) if v else default


class ProbeTracker:
    """One probe of one container: schedule and thresholds (see the module docstring).

    ``kind`` only matters for the initial verdict and for going on hold after a liveness
    or startup failure; without it the tracker starts UNKNOWN and never holds.
    """

    def __init__(self, probe: Mapping[str, Any], kind: str | ProbeKind | None = None) -> None:
        self.probe = dict(probe)
        self.kind = ProbeKind.of(kind) if kind is not None else None
        self.initial_delay = _num(probe, "initialDelaySeconds", 0)
        self.period = _num(probe, "periodSeconds", 10)
        self.timeout = _num(probe, "timeoutSeconds", 1)
        self.success_threshold = _num(probe, "successThreshold", 1)
        self.failure_threshold = _num(probe, "failureThreshold", 3)
        self.result = {
            ProbeKind.LIVENESS: ProbeResult.SUCCESS,
            ProbeKind.READINESS: ProbeResult.FAILURE,
        }.get(self.kind or ProbeKind.STARTUP, ProbeResult.UNKNOWN)
        self.last_probe_at: float | None = None
        self.on_hold = False  # failed liveness/startup: no more probes for this container
        self._last: ProbeResult | None = None
        self._run = 0

    def next_due(self, started_at: float) -> float:
        """When the next probe should run (may be in the past: run it now)."""
        first = started_at + self.initial_delay
        if self.last_probe_at is None:
            return first
        return max(first, self.last_probe_at + self.period)

    def record(self, ok: bool, now: float) -> ProbeResult:
        """Take one probe outcome at ``now``; return the verdict after the thresholds."""
        outcome = ProbeResult.SUCCESS if ok else ProbeResult.FAILURE
        self.last_probe_at = now
        if self._last == outcome:
            self._run += 1
        else:
            self._last, self._run = outcome, 1
        threshold = self.success_threshold if ok else self.failure_threshold
        if self._run < threshold:
            return self.result
        self.result = outcome
        if not ok and self.kind in (ProbeKind.LIVENESS, ProbeKind.STARTUP):
            self.on_hold = True
            self._run = 0
        return self.result


class ContainerProbes:
    """The probes of one running container, with the startup gate.

    ``due(now)`` lists the kinds to run; ``record`` feeds an outcome; ``started``,
    ``ready`` and ``restart`` are the container status the lifecycle publishes/acts on.
    """

    def __init__(self, container: Mapping[str, Any], started_at: float) -> None:
        self.started_at = started_at
        self.trackers: dict[ProbeKind, ProbeTracker] = {}
        for kind in ProbeKind:
            probe = container.get(kind.field)
            if probe is not None:
                self.trackers[kind] = ProbeTracker(probe, kind)

    @property
    def started(self) -> bool:
        t = self.trackers.get(ProbeKind.STARTUP)
        return t is None or t.result is ProbeResult.SUCCESS

    @property
    def ready(self) -> bool:
        t = self.trackers.get(ProbeKind.READINESS)
        return self.started and (t is None or t.result is ProbeResult.SUCCESS)

    @property
    def restart(self) -> ProbeKind | None:
        """The probe whose failure means the container must be killed, if any."""
        for kind in (ProbeKind.STARTUP, ProbeKind.LIVENESS):
            t = self.trackers.get(kind)
            if t is not None and t.result is ProbeResult.FAILURE:
                return kind
        return None

    def _active(self) -> list[ProbeKind]:
        if self.restart is not None:
            return []
        if not self.started:
            return [ProbeKind.STARTUP]
        return [k for k in (ProbeKind.LIVENESS, ProbeKind.READINESS) if k in self.trackers]

    def due(self, now: float) -> list[ProbeKind]:
        return [k for k in self._active() if self.trackers[k].next_due(self.started_at) <= now]

    def next_due(self) -> float | None:
        """The earliest time a probe is due, None when none will run again."""
        times = [self.trackers[k].next_due(self.started_at) for k in self._active()]
        return min(times, default=None)

    def record(self, kind: str | ProbeKind, ok: bool, now: float) -> ProbeResult:
        return self.trackers[ProbeKind.of(kind)].record(ok, now)


# --- running one probe ----------------------------------------------------------------------


def _port(value: Any, container_ports: Sequence[Mapping[str, Any]]) -> int:
    """``extractPort``: a number, or the name of a containerPort."""
    if isinstance(value, str):
        for p in container_ports:
            if p.get("name") == value:
                value = p.get("containerPort")
                break
        else:
            try:
                value = int(value)
            except ValueError:
                raise ProbeError(f"port {value} not found") from None
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ProbeError(f"invalid port number: {value}") from None
    if 0 < port < 65536:
        return port
    raise ProbeError(f"invalid port number: {port}")


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _dial_error(addr: str, e: OSError) -> str:
    """Go's ``net.OpError`` text: ``dial tcp 10.0.0.1:80: connect: connection refused``."""
    if e.errno is not None and e.errno in errno.errorcode:
        return f"dial tcp {addr}: connect: {os.strerror(e.errno).lower()}"
    return f"dial tcp {addr}: {e}"


async def run_probe(
    probe: Mapping[str, Any],
    *,
    pod_ip: str,
    exec_fn: ExecFn,
    container_ports: list[dict[str, Any]],
    env: Mapping[str, str] | None = None,
) -> tuple[bool, str]:
    """Run ``probe`` once; ``(ok, output)``. Raises ``ProbeError`` if it cannot run.

    ``exec_fn(argv, timeout)`` runs a command in the container and returns (exit code,
    combined output); it may raise ``TimeoutError``. ``env`` expands ``$(VAR)`` in an exec
    command (upstream expands the container's plain ``env`` values only).
    """
    timeout = float(_num(probe, "timeoutSeconds", 1))
    if (spec := probe.get("exec")) is not None:
        argv = [expand(str(a), env or {}) for a in spec.get("command") or []]
        return await _exec_probe(argv, timeout, exec_fn)
    if (spec := probe.get("httpGet")) is not None:
        return await _http_probe(spec, timeout, pod_ip, container_ports)
    if (spec := probe.get("tcpSocket")) is not None:
        host = str(spec.get("host") or pod_ip)
        return await _tcp_probe(host, _port(spec.get("port"), container_ports), timeout)
    if probe.get("grpc") is not None:
        return False, "gRPC probes are not supported on this node"
    raise ProbeError("missing probe handler")


async def _exec_probe(argv: list[str], timeout: float, exec_fn: ExecFn) -> tuple[bool, str]:
    try:
        async with asyncio.timeout(timeout):
            code, output = await exec_fn(argv, timeout)
    except TimeoutError:
        return False, f'command "{" ".join(argv)}" timed out'
    except Exception as e:  # the runtime could not exec: an error, not a failure
        raise ProbeError(str(e) or type(e).__name__) from e
    return code == 0, output[:MAX_OUTPUT].decode(errors="replace")


async def _tcp_probe(host: str, port: int, timeout: float) -> tuple[bool, str]:
    addr = _host_port(host, port)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return False, f"dial tcp {addr}: i/o timeout"
    except OSError as e:
        return False, _dial_error(addr, e)
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True, ""


async def _http_probe(
    spec: Mapping[str, Any],
    timeout: float,
    pod_ip: str,
    container_ports: Sequence[Mapping[str, Any]],
) -> tuple[bool, str]:
    scheme = str(spec.get("scheme") or "HTTP").lower()
    host = str(spec.get("host") or pod_ip)
    port = _port(spec.get("port"), container_ports)
    path = str(spec.get("path") or "")
    if path and not path.startswith("/"):
        path = "/" + path
    addr = _host_port(host, port)
    url = f"{scheme}://{addr}{path or '/'}"
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for h in spec.get("httpHeaders") or []:
        headers[str(h.get("name", ""))] = str(h.get("value", ""))
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    try:
        async with aiohttp.ClientSession(
            timeout=client_timeout, connector=aiohttp.TCPConnector(ssl=False, force_close=True)
        ) as session:
            for _ in range(MAX_REDIRECTS + 1):
                async with session.get(url, headers=headers, allow_redirects=False) as resp:
                    body = await resp.content.read(MAX_OUTPUT)
                    status = resp.status
                    location = resp.headers.get("Location")
                if 300 <= status < 400 and location:
                    target = urlsplit(str(resp.url.join(URL(location))))
                    if target.netloc == urlsplit(url).netloc:  # same host: follow it
                        url = target.geturl()
                        continue
                break
    except TimeoutError:
        return False, (
            f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting '
            "headers)"
        )
    except aiohttp.ClientConnectorError as e:
        return False, f'Get "{url}": {_dial_error(addr, e.os_error)}'
    except aiohttp.ClientError as e:
        return False, f'Get "{url}": {e}'
    if 200 <= status < 400:
        if status >= 300:
            text = body.decode(errors="replace")
            return True, f"Probe terminated redirects, Response body: {text}"
        return True, body.decode(errors="replace")
    return False, f"HTTP probe failed with statuscode: {status}"


__all__ = [
    "KILLING",
    "PROBE_WARNING",
    "UNHEALTHY",
    "ContainerProbes",
    "ExecFn",
    "ProbeError",
    "ProbeKind",
    "ProbeResult",
    "ProbeTracker",
    "errored_message",
    "killing_message",
    "run_probe",
    "unhealthy_message",
]
