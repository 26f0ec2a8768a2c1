"""Scheduler throughput, the analogue of Kubernetes' scheduler_perf "SchedulingBasic".

``python -m bench.scheduler_perf --out FILE [--mode shape|registered] [--nodes 5000]
[--pods 10000] [--runs N] [--profile DIR]``

``--mode shape`` (the default; issue 19's shape, ``run_shape`` below): ``corral server``
with its scheduler and controller manager as child processes, ONE ``corral agent
--runtime hollow --count N`` process (real Leases renewed every 10 s, node status
posted, bound pods taken to Running), 1,000 pods placed first, then ``--pods`` pods
(``100m``/``100Mi``) created by 64 concurrent clients over HTTPS. Reported: pods/s from
the first create to the last pod seen bound on a watch, the create phase's pods/s and
its per-request p50/p99, CPU seconds (from ``/proc/PID/stat``, over the create+bind
phase) and RSS of every process, the shares of that phase the server's two busiest
threads (its event loop's, then the store writer's) spent running and runnable but
waiting for a CPU (``server_threads``, from ``/proc/PID/task/TID/schedstat``; with
``--pin-server`` the server runs alone on CPU 0 and every other process on the rest, to
measure what their contention costs: an experiment, not how Corral runs), and whether
any node ended over its allocatable (from the final pod list), and the server's own
latency of writes (POST, PUT, PATCH, DELETE, APPLY) over the span: p50/p99 interpolated
as Prometheus' ``histogram_quantile`` does from the difference of two scrapes of its
``apiserver_request_duration_seconds`` (upstream's buckets: 5, 25, 50, 100, 200 ms...),
and its write mix (write requests per resource, ``writes_in_span``) from the same two
scrapes: the bench adds no watch of its own beyond the bound-watch, so what it measures
carries no load of its own making. ``calibration_cpu_ms`` (``bench/calibrate.py``) is
the CPU time of a fixed piece of Python before the idle measurement (so its CPU falls in
neither measured window) and just after the span: these machines' speed drifts by up to ~1.7x from minute to minute, so two runs
compare only at a like speed. ``--profile DIR`` also runs ``py-spy record`` (raw
collapsed stacks) on the server, the scheduler, the controller manager and the hollow
agent for the create+bind phase; ``bench/scheduler_profile.py`` summarises them. The
figures of a profiled run are distorted by the sampler.

``--mode registered`` (the first version): for each node count: a fresh ``corral server --no-scheduler``; the nodes are registered
through the API (hollow: Node objects with 4 cpu, 32 Gi, 110 pods allocatable, nothing
runs them); ``corral scheduler`` starts as its own process; 1,000 pods are created and
placed first; then 10,000 pods are created as fast as the API takes them (64 clients).
A watch records when each pod is bound. Reported, never asserted:

- ``pods_per_s``: 10,000 / (last pod bound - first pod created), end to end, API server
  included (target >= 1,000 at 5,000 nodes; Kubernetes' CI floor is 270);
- ``latency_p50_ms`` / ``latency_p99_ms``: per pod, from just before its create request
  to the watch event that shows it bound;
- ``scheduler_rss_mb`` (VmRSS after the run) and ``scheduler_cpu_s``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop
from yarl import URL

from bench import calibrate
from bench.report import write_report
from bench.server import BenchServer
from corral import native
from corral.client.http1 import Pool
from corral.testing.metrics import write_counts, write_latency

NODE_CPU = "4"
NODE_MEMORY = "32Gi"


def node(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": f"hollow-{i}",
            "labels": {
                "kubernetes.io/hostname": f"hollow-{i}",
                "topology.kubernetes.io/zone": f"z{i % 3}",
            },
        },
        "status": {
            "capacity": {"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": "110"},
            "allocatable": {"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod(name: str, cpu: str = "10m", memory: str = "16Mi") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "perf"}},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "resources": {"requests": {"cpu": cpu, "memory": memory}},
                }
            ]
        },
    }


#: one POST of a JSON body: (status, answer body)
Post = Callable[[str, bytes], Awaitable[tuple[int, bytes]]]


def aiohttp_post(s: aiohttp.ClientSession) -> Post:
    """POSTs through an aiohttp session (the registered modes' client)."""

    async def post(path: str, body: bytes) -> tuple[int, bytes]:
        async with s.post(path, data=body, headers={"Content-Type": "application/json"}) as r:
            return r.status, await r.read()

    return post


def lean_post(pool: Pool) -> Post:
    """POSTs through Corral's lean HTTP/1.1 keep-alive pool (``client/http1.py``): the
    shape's load generator, so the client that shares the server's two cores costs
    about what client-go would, not aiohttp's client (``bench.client_cost``)."""

    async def post(path: str, body: bytes) -> tuple[int, bytes]:
        return await pool.request("POST", path, body, _JSON_HEADERS)

    return post


_JSON_HEADERS = (("Content-Type", "application/json"),)


async def _post_all(
    send: Post,
    path: str,
    bodies: list[dict[str, Any]],
    clients: int,
    sent: dict[str, float] | None = None,
    took: list[float] | None = None,
) -> None:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)

    async def worker() -> None:
        while not queue.empty():
            b = queue.get_nowait()
            start = time.monotonic()
            if sent is not None:
                sent[b["metadata"]["name"]] = start
            status, body = await send(path, orjson.dumps(b))
            if status >= 300:
                raise RuntimeError(f"POST {path}: {status} {body[:200]!r}")
            if took is not None:
                took.append(time.monotonic() - start)

    await asyncio.gather(*(worker() for _ in range(clients)))


class BoundWatch:
    """Watches pods and notes when each is first seen with spec.nodeName."""

    def __init__(self) -> None:
        self.bound: dict[str, float] = {}
        self.ready = asyncio.Event()

    async def run(self, s: aiohttp.ClientSession, rv: str) -> None:
        params = {"watch": "true", "resourceVersion": rv, "allowWatchBookmarks": "true"}
        async with s.get("/api/v1/namespaces/default/pods", params=params) as r:
            self.ready.set()
            buf = b""
            async for chunk in r.content.iter_any():
                now = time.monotonic()
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if b'"nodeName"' not in line:
                        continue
                    ev = orjson.loads(line)
                    name = ev["object"]["metadata"]["name"]
                    if ev["type"] != "DELETED" and name not in self.bound:
                        self.bound[name] = now


def _proc_stat(pid: int) -> tuple[float, float]:
    """(RSS in MB, CPU seconds) of a process."""
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    return rss, cpu


async def one_run(nodes: int, pods: int, warm: int, work: Path) -> dict[str, Any]:
    srv = BenchServer.start(work, extra=["--no-scheduler"])
    sched: subprocess.Popen[bytes] | None = None
    try:
        async with srv.session(64) as s:
            await _post_all(aiohttp_post(s), "/api/v1/nodes", [node(i) for i in range(nodes)], 64)
            sched = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "corral",
                    "scheduler",
                    "--kubeconfig",
                    str(srv.kubeconfig),
                    "--log-level",
                    "WARNING",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            async with s.get("/api/v1/namespaces/default/pods", params={"limit": "1"}) as r:
                rv = (await r.json())["metadata"]["resourceVersion"]
            watch = BoundWatch()
            watch_task = asyncio.create_task(watch.run(s, rv))
            await watch.ready.wait()
            post = aiohttp_post(s)
            await _post_all(
                post, "/api/v1/namespaces/default/pods", [pod(f"warm-{i}") for i in range(warm)], 32
            )
            deadline = time.monotonic() + 120
            while len(watch.bound) < warm and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            sent: dict[str, float] = {}
            t0 = time.monotonic()
            await _post_all(
                post,
                "/api/v1/namespaces/default/pods",
                [pod(f"p-{i}") for i in range(pods)],
                64,
                sent,
            )
            created_s = time.monotonic() - t0
            deadline = time.monotonic() + 300
            while sum(1 for n in sent if n in watch.bound) < pods and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            bound_times = [watch.bound[n] for n in sent if n in watch.bound]
            latencies = sorted((watch.bound[n] - sent[n]) * 1000 for n in sent if n in watch.bound)
            watch_task.cancel()
            rss, cpu = _proc_stat(sched.pid)
            span = (max(bound_times) - min(sent.values())) if bound_times else float("nan")
            return {
                "nodes": nodes,
                "pods": pods,
                "bound": len(bound_times),
                "pods_per_s": round(len(bound_times) / span, 1) if bound_times else 0.0,
                "create_per_s": round(pods / created_s, 1),
                "latency_p50_ms": round(latencies[len(latencies) // 2], 1) if latencies else None,
                "latency_p99_ms": round(latencies[int(len(latencies) * 0.99)], 1)
                if latencies
                else None,
                "scheduler_rss_mb": round(rss, 1),
                "scheduler_cpu_s": round(cpu, 2),
                "server_rss_mb": round(srv.rss_bytes() / 2**20, 1),
            }
    finally:
        if sched is not None:
            sched.terminate()
            try:
                sched.wait(10)
            except subprocess.TimeoutExpired:
                sched.kill()
        srv.stop()


# --- the shape: server + children, one hollow agent process -------------------------
SHAPE_CLIENTS = 64


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (its own, not its children's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> dict[str, int]:
    """``corral COMMAND`` children of ``pid`` by command (scheduler, controller-manager)."""
    out: dict[str, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"corral" in argv:
            i = argv.index(b"corral")
            out[argv[i + 1].decode() if i + 1 < len(argv) else "?"] = int(d.name)
    return out


def _cpu_all(pids: dict[str, int]) -> dict[str, float]:
    out = {name: _cpu_s(pid) for name, pid in pids.items()}
    t = os.times()
    out["bench-client"] = t.user + t.system
    return out


def _thread_sched(pid: int) -> dict[str, tuple[float, float]]:
    """Per thread of ``pid``: (seconds on a CPU, seconds runnable but waiting for one),
    from ``/proc/PID/task/TID/schedstat`` (nanoseconds)."""
    out: dict[str, tuple[float, float]] = {}
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            run_ns, wait_ns = t.joinpath("schedstat").read_text().split()[:2]
        except (OSError, ValueError):
            continue
        out[t.name] = (int(run_ns) / 1e9, int(wait_ns) / 1e9)
    return out


def _threads_share(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]], span: float
) -> list[dict[str, float]]:
    """The server's busiest threads over ``span`` (its event loop first, then the store's
    writer): the share of the span each ran and waited runnable for a CPU. A loop thread
    whose two shares add up to ~1 always had work: it is the bottleneck, and its waiting
    share is what the other processes on the same cores took from it."""
    rows = []
    for tid, (run, wait) in after.items():
        run0, wait0 = before.get(tid, (0.0, 0.0))
        rows.append(
            {"running": round((run - run0) / span, 3), "waiting": round((wait - wait0) / span, 3)}
        )
    return sorted(rows, key=lambda r: -r["running"])[:2]


def _set_affinity(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` on ``cpus`` (threads it starts later inherit it)."""
    for t in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.sched_setaffinity(int(t.name), cpus)


def pin(server: int, others: list[int]) -> Callable[[], None]:
    """``server`` alone on CPU 0; ``others`` and this process on the other CPUs. Returns
    what puts this process back (the others end with the run)."""
    mine = os.sched_getaffinity(0)
    rest = mine - {0}
    if 0 not in mine or not rest:
        raise SystemExit("--pin-server needs CPU 0 and at least one more CPU")
    _set_affinity(server, {0})
    for pid in [*others, os.getpid()]:
        _set_affinity(pid, rest)
    return lambda: _set_affinity(os.getpid(), mine)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _pct(sorted_ms: list[float], q: float) -> float | None:
    return (
        round(sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * q))], 1) if sorted_ms else None
    )


async def _metrics(s: aiohttp.ClientSession) -> str:
    async with s.get("/metrics") as r:
        return await r.text() if r.status == 200 else ""


async def _get_json(s: aiohttp.ClientSession, path: str) -> Any:
    async with s.get(path) as r:
        return orjson.loads(await r.read())


async def _overcommitted(s: aiohttp.ClientSession) -> list[str]:
    """Nodes whose running pods request more than their allocatable (final pod list)."""
    from corral.api.quantity import parse_quantity

    nodes = (await _get_json(s, "/api/v1/nodes"))["items"]
    pods = (await _get_json(s, "/api/v1/pods"))["items"]
    used: dict[str, dict[str, Any]] = {}
    for p in pods:
        name = p["spec"].get("nodeName")
        if not name or (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        u = used.setdefault(name, {"cpu": 0, "memory": 0, "pods": 0})
        u["pods"] += 1
        for c in p["spec"]["containers"]:
            req = (c.get("resources") or {}).get("requests") or {}
            for r in ("cpu", "memory"):
                if r in req:
                    u[r] += parse_quantity(req[r])
    bad = []
    for n in nodes:
        alloc = n["status"].get("allocatable") or {}
        got = used.get(n["metadata"]["name"])
        if got and any(
            got[r] > parse_quantity(alloc.get(r, "0")) for r in ("cpu", "memory", "pods")
        ):
            bad.append(n["metadata"]["name"])
    return bad


async def _wait_ready_nodes(s: aiohttp.ClientSession, n: int, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        items = (await _get_json(s, "/api/v1/nodes"))["items"]
        ready = sum(
            1
            for i in items
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (i.get("status") or {}).get("conditions") or []
            )
        )
        if ready >= n:
            return time.monotonic() - start
        await asyncio.sleep(2)
    raise TimeoutError(f"{n} hollow nodes not Ready after {timeout} s")


@contextlib.contextmanager
def _quiet_gc() -> Iterator[None]:
    """This process's garbage collector off for the measured span, what it holds frozen
    first: the load generator shares the cores with what it measures, and its full
    collections (its 10,000 pod bodies, the bound times) took ~0.1 s each, pausing the
    creates. What the span leaves behind is collected after."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def _py_spy(pid: int, out: Path, rate: int) -> subprocess.Popen[bytes]:
    """``py-spy record`` of ``pid`` into ``out``; ``rate`` < 0: |rate| samples/s, pausing
    the process for each (exact stacks, more distortion); else ``--nonblocking``."""
    exe = Path(sys.executable).parent / "py-spy"
    argv = [str(exe), "record", "--pid", str(pid), "--format", "raw", "--output", str(out)]
    argv += ["--rate", str(abs(rate))] + (["--nonblocking"] if rate > 0 else [])
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def run_shape(
    nodes: int,
    pods: int,
    warm: int,
    work: Path,
    loops: str,
    profile: Path | None,
    rate: int,
    idle: float = 10.0,
    pin_server: bool = False,
    client: str = "lean",
) -> dict[str, Any]:
    """One run of the issue's shape (module docstring); ``work`` is a fresh directory.
    ``pin_server``: the server on CPU 0 alone, every other process (this one included)
    on the other CPUs, from before the idle measurement to the end (``pin``)."""
    srv = BenchServer.start(work / "server", extra=["--loops", loops])
    unpin: Callable[[], None] | None = None
    agent: subprocess.Popen[bytes] | None = None
    spies: list[subprocess.Popen[bytes]] = []
    try:
        kc = srv.data_dir / "pki" / "hollow-nodes.kubeconfig"
        kubeconfig = kc if kc.exists() else srv.kubeconfig
        with open(work / "agent.log", "ab") as log:
            agent = subprocess.Popen(
                [sys.executable, "-m", "corral", "agent", "--runtime", "hollow",
                 "--name", "hollow", "--count", str(nodes), "--kubeconfig", str(kubeconfig),
                 "--log-level", "WARNING"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        auth = [("Authorization", f"Bearer {srv.token}")]
        pool = Pool(URL(srv.url), srv.ssl_context(), auth, limit=SHAPE_CLIENTS)
        async with srv.session(SHAPE_CLIENTS + 4) as s, contextlib.AsyncExitStack() as stack:
            stack.callback(pool.close)
            post = lean_post(pool) if client == "lean" else aiohttp_post(s)
            ready_s = await _wait_ready_nodes(s, nodes, 600)
            pods_path = "/api/v1/namespaces/default/pods"
            rv = (await _get_json(s, pods_path + "?limit=1"))["metadata"]["resourceVersion"]
            watch = BoundWatch()
            watch_task = asyncio.create_task(watch.run(s, rv))
            await watch.ready.wait()
            # the warm pods open the load generator's connections (client-go's would
            # be open from creating the nodes): no TLS handshake falls in the span
            await _post_all(
                post,
                pods_path,
                [pod(f"warm-{i}", "100m", "100Mi") for i in range(warm)],
                SHAPE_CLIENTS,
            )
            deadline = time.monotonic() + 300
            while len(watch.bound) < warm and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            pids = {"server": srv.pid, **_children(srv.pid), "hollow-agent": agent.pid}
            if pin_server:
                unpin = pin(srv.pid, [p for k, p in pids.items() if k != "server"])
            # the machine's speed, ahead of both measured windows (its CPU in neither)
            speed0 = calibrate.cpu_ms()
            await asyncio.sleep(3)  # the warm pods' status writes settle first
            idle0 = _cpu_all(pids)  # the steady cost of N nodes: Leases, status, no pods
            await asyncio.sleep(idle)
            idle1 = _cpu_all(pids)
            idle_cpu = {k: round((idle1[k] - idle0[k]) / idle, 3) for k in idle1} if idle else {}
            if profile is not None:
                profile.mkdir(parents=True, exist_ok=True)
                for name in ("server", "scheduler", "controller-manager", "hollow-agent"):
                    if name in pids:
                        out = profile / f"{name}-n{nodes}-p{pods}.txt"
                        spies.append(_py_spy(pids[name], out, rate))
                await asyncio.sleep(1)  # let the samplers attach
            metrics0 = await _metrics(s)
            cpu0 = _cpu_all(pids)
            sched0 = _thread_sched(srv.pid)
            sent: dict[str, float] = {}
            took: list[float] = []
            bodies = [pod(f"p-{i}", "100m", "100Mi") for i in range(pods)]
            target = len(watch.bound) + pods  # no other pod is created meanwhile
            with _quiet_gc():
                t0 = time.monotonic()
                await _post_all(post, pods_path, bodies, SHAPE_CLIENTS, sent, took)
                created_s = time.monotonic() - t0
                deadline = time.monotonic() + 900
                while len(watch.bound) < target and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
            for spy in spies:
                spy.send_signal(signal.SIGINT)
            cpu1 = _cpu_all(pids)
            sched1, sched_span = _thread_sched(srv.pid), time.monotonic() - t0
            speed1 = calibrate.cpu_ms()
            for spy in spies:
                spy.wait(60)
            watch_task.cancel()
            bound_times = [watch.bound[n] for n in sent if n in watch.bound]
            span = (max(bound_times) - t0) if bound_times else float("nan")
            to_bound = sorted((watch.bound[n] - sent[n]) * 1000 for n in sent if n in watch.bound)
            write_ms = sorted(t * 1000 for t in took)
            async with s.get("/metrics") as r:
                metrics_text = await r.text() if r.status == 200 else ""
            over = await _overcommitted(s)
            cpu = {k: round(cpu1[k] - cpu0[k], 2) for k in cpu1}
            return {
                "mode": "shape",
                "loops": loops,
                "nodes": nodes,
                "pods": pods,
                "bound": len(bound_times),
                "pods_per_s": round(len(bound_times) / span, 1) if bound_times else 0.0,
                "span_s": round(span, 2),
                "create_per_s": round(pods / created_s, 1),
                "create_p50_ms": _pct(write_ms, 0.5),
                "create_p99_ms": _pct(write_ms, 0.99),
                "create_to_bound_p50_ms": _pct(to_bound, 0.5),
                "create_to_bound_p99_ms": _pct(to_bound, 0.99),
                "server_write_latency": write_latency(metrics0, metrics_text),
                "cpu_s": cpu,
                "writes_in_span": write_counts(metrics0, metrics_text),
                "cpu_share_of_span": {k: round(v / span, 2) for k, v in cpu.items()},
                "server_threads": _threads_share(sched0, sched1, sched_span),
                "idle_cpu_s_per_s": idle_cpu,
                "cpu_s_total_corral": round(
                    sum(v for k, v in cpu.items() if k != "bench-client"), 2
                ),
                "rss_mb": {k: _rss_mb(p) for k, p in pids.items()},
                "nodes_ready_s": round(ready_s, 1),
                "calibration_cpu_ms": {"before": speed0, "after": speed1},
                "overcommitted_nodes": over,
                "profiled": profile is not None,
                "server_pinned": pin_server,
                "load_client": client,
                # the compiled modules (corral/native.py) ran, by the guard's verdict
                "compiled": not native.disabled,
            }
    finally:
        if unpin is not None:
            unpin()
        for spy in spies:
            if spy.poll() is None:
                spy.kill()
        if agent is not None:
            agent.terminate()
            try:
                agent.wait(20)
            except subprocess.TimeoutExpired:
                agent.kill()
        srv.stop()


async def shape_async(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"command": sys.argv, "mode": "shape", "runs": []}
    profile = Path(args.profile) if args.profile else None
    with tempfile.TemporaryDirectory(prefix="corral-shape-") as tmp:
        for n in [int(x) for x in args.nodes.split(",")]:
            for p in [int(x) for x in args.pods.split(",")]:
                for r in range(args.runs):
                    work = Path(tmp) / f"n{n}-p{p}-{r}"
                    work.mkdir()
                    one = await run_shape(
                        n,
                        p,
                        args.warm,
                        work,
                        args.loops,
                        profile,
                        args.rate,
                        args.idle,
                        args.pin_server,
                        args.client,
                    )
                    report["runs"].append(one)
                    print(orjson.dumps(one).decode(), flush=True)
    return report


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"command": sys.argv, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="corral-sched-") as tmp:
        for n in [int(x) for x in args.nodes.split(",")]:
            runs = [
                await one_run(n, int(args.pods), args.warm, Path(tmp) / f"n{n}-{r}")
                for r in range(args.runs)
            ]
            med = statistics.median(r["pods_per_s"] for r in runs)
            report["runs"][str(n)] = {"median_pods_per_s": med, "runs": runs}
            print(
                f"{n} nodes: {med} pods/s (runs {[r['pods_per_s'] for r in runs]}), "
                f"p50 {runs[0]['latency_p50_ms']} ms p99 {runs[0]['latency_p99_ms']} ms, "
                f"scheduler RSS {runs[0]['scheduler_rss_mb']} MB",
                flush=True,
            )
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scheduler_perf")
    p.add_argument("--mode", choices=["shape", "registered"], default="shape")
    p.add_argument("--out", default=None, help="default bench/results/scheduler[-shape].json")
    p.add_argument("--nodes", default=None, help="comma list (shape: 5000; registered: 1000,5000)")
    p.add_argument("--pods", default="10000", help="comma list with --mode shape")
    p.add_argument("--warm", type=int, default=1_000)
    p.add_argument("--runs", type=int, default=None, help="per point (shape: 1; registered: 3)")
    p.add_argument("--loops", choices=["processes", "in-process"], default="processes")
    p.add_argument("--profile", default="", metavar="DIR", help="shape: py-spy raw stacks here")
    p.add_argument(
        "--rate",
        type=int,
        default=100,
        help="py-spy samples per second (negative: blocking sampling)",
    )
    p.add_argument(
        "--idle", type=float, default=10.0, help="shape: seconds of CPU measured with no pods"
    )
    p.add_argument(
        "--pin-server",
        action="store_true",
        help="shape: the server alone on CPU 0, the other processes on the rest (what "
        "contention for the cores costs; an experiment, not how Corral runs)",
    )
    p.add_argument(
        "--client",
        choices=["lean", "aiohttp"],
        default="lean",
        help="shape: the load generator's HTTP client for the creates (aiohttp: the one "
        "it used until 2026-12-07, ~0.1 ms more of the two cores' CPU a pod)",
    )
    args = p.parse_args(argv)
    shape = args.mode == "shape"
    args.nodes = args.nodes or ("5000" if shape else "1000,5000")
    args.runs = args.runs or (1 if shape else 3)
    args.out = args.out or (
        "bench/results/scheduler-shape.json" if shape else "bench/results/scheduler.json"
    )
    # the load generator on uvloop (as bench.run): on 2 cores, what it spends is taken
    # from what it measures
    report = uvloop.run(shape_async(args) if shape else main_async(args))
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
