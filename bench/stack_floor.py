"""The stack's own floor under issue 19: CPU per pod with no application logic at all.

``python -m bench.stack_floor --out FILE [--shape-report FILE] [--reps 5]``

Issue 19 asks for >= 1,000 pods/s end to end at 5,000 hollow nodes on this machine
(``bench/scheduler_perf.py --mode shape``). This module measures what the pieces Corral
is built from cost by themselves, so the argument "the stack alone caps the shape near
N pods/s" can be rerun instead of believed. CPU is CPU-seconds of the process (or, for
SQLite, the thread) doing the work, from ``getrusage`` / ``thread_time``, never wall time:

a. **request**: an HTTPS POST of a ~2 KB JSON pod, answered with a ~2 KB JSON body, through
   the server's stack (aiohttp's low-level ``web.Server`` behind a ``web.ServerRunner`` on
   uvloop, TLS from the server's own PKI helper, ``apiserver/certs.py``) by the clients'
   stack (an aiohttp ``ClientSession``, keep-alive, 64 concurrent requests, uvloop). The
   handler reads the body and answers a prepared body; the client reads the answer. The
   server and the client are separate processes, as in the shape.
b. **watch event**: the same server streams chunked JSON lines (a ~2 KB pod event each),
   one event per write and 16 per write; the client splits lines and ``orjson``-decodes
   each, as ``client/rest.py`` does.
c. **durable write**: one store write as ``storage/sqlite.py`` commits it (same schema and
   pragmas: WAL, ``synchronous=FULL``, its own PASSIVE checkpoint every 256 pages): an
   upsert into ``current`` and an insert into ``log`` of a ~1.5 KB blob, 16 writes per
   transaction, in one thread. CPU and wall per write.
d. **combination** (``stack_floor``, pure): per-pod counts times per-unit costs, plus the
   idle load, against ``os.cpu_count()`` cores. Counts come from a shape report
   (``counts_from_shape``, each number's origin recorded beside it) or, without one,
   from ``DEFAULT_COUNTS`` (last session's measurement, quoted in the brief of issue 19).

Each figure is the median of ``--reps`` repetitions (all of them are in the report).
``floor`` is the lower bound: requests amortised over 64 in flight, 16 events per write.
``unamortised`` is the bound the other way: requests one at a time (``--low-concurrency``:
each pays a loop iteration, a read and a send alone) and one event per write; the shape
lies between the two. Figures are reported, never asserted; another load on the machine
inflates them (``loadavg`` is recorded).

``--transport tcp`` (plain HTTP on loopback TCP) or ``unix`` (plain HTTP on a Unix
socket) measures a and b without TLS, or without TCP either: what each layer costs a
request and an event, against the default ``tls`` (the shape's own transport).

The module is also its own helper processes: ``--role server`` and ``--role client`` are
what the measuring process starts (``sys.executable -m bench.stack_floor``); both end
when the measurement does, and the temporary directory (PKI, database) is removed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from bench.report import write_report
from corral.apiserver.certs import Pki, ensure_pki
from corral.storage.sqlite import _CHECKPOINT_PAGES, _SCHEMA, _WAL_LIMIT
from corral.util import eventloop

ROOT = Path(__file__).resolve().parents[1]

#: watchers of pods in the shape that see a pod before it is bound: the scheduler, the
#: controller manager (one shared pod informer) and the bench's bound-watch
#: (``bench/scheduler_perf.py``: ``BoundWatch``)
WATCHERS_UNBOUND = 3
#: ... and once it is bound: those three plus the hollow agent (``spec.nodeName!=``)
WATCHERS_BOUND = 4


@dataclass(frozen=True)
class Costs:
    """CPU seconds per unit of stack work (measured by this module)."""

    request_server_s: float
    request_client_s: float
    event_server_s: float
    event_client_s: float
    write_s: float


@dataclass(frozen=True)
class Counts:
    """Stack work per pod in the shape, and the steady load beside it (cores)."""

    requests_per_pod: float
    deliveries_per_pod: float
    writes_per_pod: float
    idle_cores: float


#: last session's figures for the shape (brief of issue 19): ~4.5 HTTPS requests, ~11.5
#: watch deliveries and ~4.5 durable writes per pod; 5,000 Lease renewals every 10 s
#: take ~0.34 of a core. Used when no ``--shape-report`` is given.
DEFAULT_COUNTS = Counts(
    requests_per_pod=4.5, deliveries_per_pod=11.5, writes_per_pod=4.5, idle_cores=0.34
)


def stack_floor(counts: Counts, costs: Costs, cores: float) -> dict[str, Any]:
    """CPU per pod of the stack alone and the pods/s it allows on ``cores`` cores.

    ``ceiling_pods_per_s`` is (cores - idle cores) / CPU per pod: every core busy, no
    validation, admission, managedFields or scheduling. Zero when the idle load alone
    takes every core."""
    parts = {
        "requests": counts.requests_per_pod * (costs.request_server_s + costs.request_client_s),
        "watch_deliveries": counts.deliveries_per_pod
        * (costs.event_server_s + costs.event_client_s),
        "durable_writes": counts.writes_per_pod * costs.write_s,
    }
    per_pod = sum(parts.values())
    spare = max(0.0, cores - counts.idle_cores)
    return {
        "cpu_ms_per_pod": per_pod * 1000,
        "parts_ms_per_pod": {k: v * 1000 for k, v in parts.items()},
        "cores": cores,
        "idle_cores": counts.idle_cores,
        "ceiling_pods_per_s": spare / per_pod if per_pod > 0 else float("inf"),
    }


def shape_run(report: Mapping[str, Any]) -> Mapping[str, Any]:
    """The run to read from a ``scheduler_perf --mode shape`` report (its first), or the
    report itself when it is one run."""
    runs = report.get("runs")
    if isinstance(runs, list) and runs:
        first: Mapping[str, Any] = runs[0]
        return first
    return report


def counts_from_shape(run: Mapping[str, Any]) -> tuple[Counts, dict[str, str]]:
    """Per-pod counts from one shape run, and where each comes from.

    Lease renewals and node status writes in the span are the idle load, which
    ``idle_cpu_s_per_s`` already charges; they are taken out of the per-pod counts."""
    pods = int(run["pods"])
    # the server's write requests per resource (an older report: watch events counted)
    events = run.get("writes_in_span") or run["watch_events_in_span"]
    idle_writes = int(events.get("leases", 0)) + int(events.get("nodes", 0))
    requests = int(run["server_write_latency"]["requests"])
    per_pod_writes = max(0, requests - idle_writes) / pods
    pod_events = int(events["pods"])
    first = min(pod_events, pods)
    deliveries = (first * WATCHERS_UNBOUND + (pod_events - first) * WATCHERS_BOUND) / pods
    idle = sum(float(v) for v in run["idle_cpu_s_per_s"].values())
    counts = Counts(
        requests_per_pod=per_pod_writes,
        deliveries_per_pod=deliveries,
        writes_per_pod=per_pod_writes,
        idle_cores=idle,
    )
    sources = {
        "requests_per_pod": "(server_write_latency.requests - writes_in_span.leases"
        " - .nodes) / pods: write requests only (the metric counts write verbs)",
        "writes_per_pod": "= requests_per_pod: each write request is one store write",
        "deliveries_per_pod": f"writes_in_span.pods / pods events per pod (a pod write is a pod event): the first"
        f" to {WATCHERS_UNBOUND} pod watchers (scheduler, controller manager, bench"
        f" bound-watch), the rest to {WATCHERS_BOUND} (+ hollow agent)",
        "idle_cores": "sum of idle_cpu_s_per_s over every process",
    }
    return counts, sources


# --- shared by the helper processes --------------------------------------------------


def _cpu_s() -> float:
    """User + system CPU seconds of this process (every thread)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _pod(name: str, size: int) -> dict[str, Any]:
    """A realistic pod padded (one annotation) to about ``size`` bytes of JSON."""
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"app": "bench", "tier": "backend", "track": "stable", "zone": "a"},
            "annotations": {"pad": ""},
        },
        "spec": {
            "schedulerName": "default-scheduler",
            "containers": [
                {
                    "name": "c",
                    "image": "registry.k8s.io/pause:3.9",
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "100Mi"},
                        "limits": {"cpu": "100m", "memory": "100Mi"},
                    },
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": f"VAR_{i}", "value": f"value-{i}"} for i in range(5)],
                }
            ],
        },
    }
    pod["metadata"]["annotations"]["pad"] = "x" * max(0, size - len(orjson.dumps(pod)))
    return pod


POD_BYTES = 2048
#: a packed (compressed) pod as the store keeps it
BLOB_BYTES = 1536
EVENT_LINE = orjson.dumps({"type": "MODIFIED", "object": _pod("p-event", POD_BYTES)}) + b"\n"


def _settle_malloc() -> None:
    """Put glibc's malloc where a long-running process's is: one large block freed.

    TLS reads ask for 256 KiB at a time (the SSL protocol's read size; the bytes are cut
    to what arrived). In a fresh process that is above malloc's initial 128 KiB mmap
    threshold: every read maps, shrinks (``mremap``) and unmaps memory, a fifth of a TLS
    server's CPU in page faults and TLB flushes here. Freeing a mapped block raises the
    threshold past its size, after which such reads come from the heap. Corral's
    processes get there by themselves (a 10 s ``perf stat`` of each process in the shape
    counted 4-16 ``mmap``/``munmap`` calls and no ``mremap``), so the roles do too."""
    block = bytearray(4 << 20)
    del block


def _run_uvloop(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """A role's work on the loop Corral's commands run on (``util/eventloop.py``: uvloop
    when installed; the measurement says which, ``"uvloop"``), its malloc settled first."""
    _settle_malloc()
    eventloop.run(main)


# --- role: server ----------------------------------------------------------------------


def _socket(data_dir: Path) -> Path:
    return data_dir / "stack-floor.sock"


async def _serve(data_dir: Path, transport: str) -> None:
    answer = orjson.dumps(_pod("p-answer", POD_BYTES))

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if request.method == "POST":
            await request.read()
            return web.Response(body=answer, content_type="application/json")
        if request.path == "/cpu":
            return web.Response(body=orjson.dumps({"cpu_s": _cpu_s()}))
        if request.path == "/watch":
            n, per = int(request.query["events"]), int(request.query["per_write"])
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            block = EVENT_LINE * per
            for _ in range(n // per):
                await resp.write(block)
            await resp.write_eof()
            return resp
        return web.Response(status=404)

    runner = web.ServerRunner(web.Server(handle), shutdown_timeout=1.0)
    await runner.setup()
    site: web.BaseSite
    if transport == "unix":
        site = web.UnixSite(runner, str(_socket(data_dir)))
    else:
        tls = Pki.at(data_dir).ssl_context() if transport == "tls" else None
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    stop = asyncio.Event()  # set by SIGTERM from the measuring process
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(f"PORT {0 if transport == 'unix' else runner.addresses[0][1]}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


# --- role: client ----------------------------------------------------------------------


async def _posts(s: aiohttp.ClientSession, n: int, concurrency: int) -> None:
    body = orjson.dumps(_pod("p-post", POD_BYTES))
    headers = {"Content-Type": "application/json"}
    left = [n]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            async with s.post("/api/v1/namespaces/default/pods", data=body, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"POST answered {r.status}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _watch(s: aiohttp.ClientSession, n: int, per_write: int) -> None:
    got = 0
    buf = b""
    async with s.get("/watch", params={"events": str(n), "per_write": str(per_write)}) as r:
        async for chunk in r.content.iter_any():
            *lines, buf = (buf + chunk).split(b"\n")
            for line in lines:
                if line:
                    orjson.loads(line)
                    got += 1
    if got != n:
        raise RuntimeError(f"watch delivered {got} events of {n}")


async def _server_cpu(s: aiohttp.ClientSession) -> float:
    async with s.get("/cpu") as r:
        return float(orjson.loads(await r.read())["cpu_s"])


async def _measure(
    s: aiohttp.ClientSession, n: int, work: Callable[[], Coroutine[Any, Any, None]]
) -> tuple[float, float]:
    """(server, client) CPU seconds per unit of ``work`` (``n`` units)."""
    srv0, cli0 = await _server_cpu(s), _cpu_s()
    await work()
    cli1, srv1 = _cpu_s(), await _server_cpu(s)
    return (srv1 - srv0) / n, (cli1 - cli0) / n


async def _client(args: argparse.Namespace, out: dict[str, Any]) -> None:
    data_dir = Path(args.data_dir)
    conn: aiohttp.BaseConnector
    if args.transport == "unix":
        conn = aiohttp.UnixConnector(path=str(_socket(data_dir)), limit=args.concurrency)
    elif args.transport == "tcp":
        conn = aiohttp.TCPConnector(limit=args.concurrency, ssl=False)
    else:
        ctx = ssl.create_default_context(cafile=str(Pki.at(data_dir).ca_cert))
        conn = aiohttp.TCPConnector(limit=args.concurrency, ssl=ctx)
    scheme = "https" if args.transport == "tls" else "http"
    async with aiohttp.ClientSession(
        base_url=f"{scheme}://127.0.0.1:{args.port or 80}",
        connector=conn,
        cookie_jar=aiohttp.DummyCookieJar(),
    ) as s:
        c = args.concurrency
        await _posts(s, max(c * 8, args.requests // 4), c)  # handshakes, warm caches
        out["request"] = [
            await _measure(s, args.requests, partial(_posts, s, args.requests, c))
            for _ in range(args.reps)
        ]
        if args.low_concurrency > 0:
            n, low = max(1, args.requests // 3), args.low_concurrency
            out["request_low"] = [
                await _measure(s, n, partial(_posts, s, n, low)) for _ in range(args.reps)
            ]
        for per in (1, 16):
            await _watch(s, 16 * 64, per)
            out[f"event_{per}"] = [
                await _measure(s, args.events, partial(_watch, s, args.events, per))
                for _ in range(args.reps)
            ]


def _client_role(args: argparse.Namespace) -> None:
    out: dict[str, Any] = {}

    async def main() -> None:
        await _client(args, out)

    _run_uvloop(main)
    out["uvloop"] = "uvloop" in sys.modules
    print(orjson.dumps(out).decode(), flush=True)


# --- the measuring process ------------------------------------------------------------


def _role(*argv: str) -> list[str]:
    return [sys.executable, "-m", "bench.stack_floor", *argv]


def measure_http(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    """Start the server and the client processes; the client's JSON result."""
    server = subprocess.Popen(
        _role("--role", "server", "--data-dir", str(data_dir), "--transport", args.transport),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"server did not start: {line!r}")
        plan = ["--reps", str(args.reps), "--requests", str(args.requests)]
        plan += ["--transport", args.transport]
        plan += ["--events", str(args.events), "--concurrency", str(args.concurrency)]
        plan += ["--low-concurrency", str(args.low_concurrency)]
        run = subprocess.run(
            _role("--role", "client", "--data-dir", str(data_dir), "--port", line.split()[1])
            + plan,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if run.returncode != 0:
            raise RuntimeError(f"client failed: {run.stderr.strip()[-2000:]}")
        result: dict[str, Any] = orjson.loads(run.stdout.strip().splitlines()[-1])
        return result
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stdout is not None:
            server.stdout.close()


def _sqlite_writes(path: Path, reps: int, writes: int, batch: int) -> list[tuple[float, float]]:
    """(CPU s, wall s) per write for each repetition, measured in the thread that writes."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        for pragma in (
            "auto_vacuum=INCREMENTAL",
            "journal_mode=WAL",
            "synchronous=FULL",
            "busy_timeout=60000",
            "wal_autocheckpoint=0",
            f"journal_size_limit={_WAL_LIMIT}",
        ):
            conn.execute(f"PRAGMA {pragma}")
        conn.executescript(_SCHEMA)
        blob = os.urandom(BLOB_BYTES)  # a packed (compressed) pod: SQLite stores it as is
        rev, pages = 0, 0

        def commit_batch() -> None:
            nonlocal rev, pages
            revs = range(rev + 1, rev + 1 + batch)
            rev += batch
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO current(key, mod_rev, create_rev, value) VALUES (?,?,?,?) "
                "ON CONFLICT(key) DO UPDATE SET mod_rev=excluded.mod_rev, value=excluded.value",
                [(f"/registry/pods/default/p-{r}", r, r, blob) for r in revs],
            )
            conn.executemany(
                "INSERT INTO log(rev, key, type, create_rev, value) VALUES (?,?,?,?,?)",
                [(r, f"/registry/pods/default/p-{r}", 0, r, blob) for r in revs],
            )
            conn.execute("COMMIT")
            pages += batch  # about a page per row, as the store counts
            if pages >= _CHECKPOINT_PAGES:
                pages = 0
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

        for _ in range(max(1, writes // batch // 4)):
            commit_batch()  # warm: the file, the page cache
        out = []
        for _ in range(reps):
            cpu0, wall0 = time.thread_time(), time.perf_counter()
            for _ in range(writes // batch):
                commit_batch()
            done = (writes // batch) * batch
            out.append(((time.thread_time() - cpu0) / done, (time.perf_counter() - wall0) / done))
        return out
    finally:
        conn.close()


def measure_sqlite(args: argparse.Namespace, path: Path) -> list[tuple[float, float]]:
    """``_sqlite_writes`` in its own thread (the store's writer thread), joined."""
    result: list[list[tuple[float, float]]] = []
    failed: list[BaseException] = []

    def body() -> None:
        try:
            result.append(_sqlite_writes(path, args.reps, args.writes, args.batch))
        except BaseException as e:
            failed.append(e)

    t = threading.Thread(target=body, name="stack-floor-sqlite")
    t.start()
    t.join()
    if failed:
        raise failed[0]
    return result[0]


def _split(pairs: list[list[float]]) -> tuple[list[float], list[float]]:
    return [p[0] for p in pairs], [p[1] for p in pairs]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure (a, b, c), combine (d): the report (module docstring)."""
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="corral-stack-floor-") as tmp:
        data_dir = Path(tmp) / "data"
        ensure_pki(data_dir, [])
        http = measure_http(args, data_dir)
        sql = measure_sqlite(args, Path(tmp) / "store.db")
    runs: dict[str, list[float]] = {}
    keys = [("request", "request"), ("event_1", "event_1_per_write")]
    keys += [("event_16", "event_16_per_write"), ("request_low", "request_low_concurrency")]
    for src, name in keys:
        if src in http:
            runs[f"{name}_server"], runs[f"{name}_client"] = _split(http[src])
    runs["sqlite_write_cpu"], runs["sqlite_write_wall"] = _split([list(x) for x in sql])
    med = {k: statistics.median(v) for k, v in runs.items()}
    # the floor: requests amortised over --concurrency, events 16 per write
    costs = Costs(
        request_server_s=med["request_server"],
        request_client_s=med["request_client"],
        event_server_s=med["event_16_per_write_server"],
        event_client_s=med["event_16_per_write_client"],
        write_s=med["sqlite_write_cpu"],
    )
    # the unamortised bound: requests --low-concurrency at a time, one event per write
    low = "request_low_concurrency" if "request_low_concurrency_server" in med else "request"
    unamortised = Costs(
        request_server_s=med[f"{low}_server"],
        request_client_s=med[f"{low}_client"],
        event_server_s=med["event_1_per_write_server"],
        event_client_s=med["event_1_per_write_client"],
        write_s=med["sqlite_write_cpu"],
    )
    shape: dict[str, Any] | None = None
    if args.shape_report:
        one = shape_run(orjson.loads(Path(args.shape_report).read_bytes()))
        counts, sources = counts_from_shape(one)
        cpu_total = sum(float(v) for v in one["cpu_s"].values())
        shape = {
            "file": args.shape_report,
            "run": "the first of runs[]",
            "pods_per_s": one.get("pods_per_s"),
            "cpu_ms_per_pod": round(cpu_total / int(one["pods"]) * 1000, 3),
            "cpu_s": one["cpu_s"],
        }
    else:
        counts = DEFAULT_COUNTS
        sources = dict.fromkeys(asdict(counts), "default: last session's shape (brief, issue 19)")
    cores = float(args.cores or os.cpu_count() or 1)
    return {
        "machine": {
            "cpu_count": os.cpu_count(),
            "loadavg_at_start": load0,
            "loadavg_at_end": os.getloadavg(),
            "uvloop": http.get("uvloop"),
            "note": "other work on the machine inflates every figure: compare loadavg",
        },
        "plan": {
            "reps": args.reps,
            "transport": args.transport,
            "requests_per_rep": args.requests,
            "concurrency": args.concurrency,
            "low_concurrency": args.low_concurrency,
            "events_per_rep": args.events,
            "writes_per_rep": args.writes,
            "writes_per_transaction": args.batch,
            "pod_json_bytes": len(orjson.dumps(_pod("p", POD_BYTES))),
            "event_line_bytes": len(EVENT_LINE),
            "blob_bytes": BLOB_BYTES,
        },
        "measured_us": {k: _us(v) for k, v in med.items()},
        "runs_us": {k: [_us(x) for x in v] for k, v in runs.items()},
        "counts": {**asdict(counts), "source": sources},
        "floor": _rounded(stack_floor(counts, costs, cores)),
        "unamortised": _rounded(stack_floor(counts, unamortised, cores)),
        "shape": shape,
    }


def _us(x: float) -> float:
    return round(x * 1e6, 1)


def _rounded(floor: dict[str, Any]) -> dict[str, Any]:
    return {
        "cpu_ms_per_pod": round(floor["cpu_ms_per_pod"], 3),
        "parts_ms_per_pod": {k: round(v, 3) for k, v in floor["parts_ms_per_pod"].items()},
        "cores": floor["cores"],
        "idle_cores": round(floor["idle_cores"], 3),
        "ceiling_pods_per_s": round(floor["ceiling_pods_per_s"], 1),
    }


def print_table(report: Mapping[str, Any]) -> None:
    m, c, plan = report["measured_us"], report["counts"], report["plan"]
    f, u = report["floor"], report["unamortised"]
    parts = f["parts_ms_per_pod"]
    rows = [
        (f"request, {plan['concurrency']} at a time", "request", "requests", "requests"),
        ("watch event, 16 per write", "event_16_per_write", "deliveries", "watch_deliveries"),
    ]
    print(f"{'CPU us per unit':<28}{'server':>8}{'client':>8}{'per pod':>9}{'ms/pod':>8}")
    for label, key, count, part in rows:
        srv, cli, n = m[f"{key}_server"], m[f"{key}_client"], c[f"{count}_per_pod"]
        print(f"{label:<28}{srv:>8}{cli:>8}{n:>9.2f}{parts[part]:>8.3f}")
    srv, n = m["sqlite_write_cpu"], c["writes_per_pod"]
    print(
        f"{'store write, 16 per txn':<28}{srv:>8}{'-':>8}{n:>9.2f}{parts['durable_writes']:>8.3f}"
    )
    print(
        f"floor {f['cpu_ms_per_pod']:.3f} ms CPU/pod; idle {f['idle_cores']:.2f} of "
        f"{f['cores']:.0f} cores -> ceiling {f['ceiling_pods_per_s']:.0f} pods/s"
    )
    lo = plan["low_concurrency"]
    key = "request_low_concurrency" if lo > 0 else "request"
    print(
        f"unamortised: requests {lo or plan['concurrency']} at a time "
        f"({m[key + '_server']} + {m[key + '_client']} us), one event per write "
        f"({m['event_1_per_write_server']} + {m['event_1_per_write_client']} us): "
        f"{u['cpu_ms_per_pod']:.3f} ms CPU/pod -> ceiling {u['ceiling_pods_per_s']:.0f} pods/s"
    )
    print(f"store write wall {m['sqlite_write_wall']} us (one fsync per transaction)")
    if report["shape"]:
        s = report["shape"]
        print(f"shape measured: {s['pods_per_s']} pods/s, {s['cpu_ms_per_pod']} ms CPU/pod")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.stack_floor")
    p.add_argument("--out", default="bench/results/stack-floor.json")
    p.add_argument("--shape-report", default="", metavar="FILE")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--requests", type=int, default=3000, help="POSTs per repetition")
    p.add_argument("--events", type=int, default=16000, help="watch events per repetition")
    p.add_argument("--writes", type=int, default=1600, help="store writes per repetition")
    p.add_argument("--batch", type=int, default=16, help="store writes per transaction")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument(
        "--low-concurrency",
        type=int,
        default=1,
        help="also measure requests this many at a time (0: not): the unamortised bound",
    )
    p.add_argument("--cores", type=float, default=0.0, help="default: os.cpu_count()")
    p.add_argument(
        "--transport",
        choices=["tls", "tcp", "unix"],
        default="tls",
        help="requests and watches over HTTPS (as in the shape), plain HTTP over TCP, or "
        "plain HTTP over a Unix socket: what TLS and TCP cost per unit",
    )
    p.add_argument("--role", choices=["measure", "server", "client"], default="measure")
    p.add_argument("--data-dir", default="", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.role == "server":
        data_dir = Path(args.data_dir)
        _run_uvloop(lambda: _serve(data_dir, args.transport))
        return 0
    if args.role == "client":
        _client_role(args)
        return 0
    report = run(args)
    print_table(report)
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
