"""The benchmark scenarios: each one drives a running server and returns its figures.

Called by ``bench.run``, which owns the servers (and kills them) and the report. Every
function takes the ``BenchServer`` and a ``Plan`` (durations and sizes: the full run or
``--quick``) and returns a JSON-ready dict. Nothing is asserted: targets are reported
beside the measured values. Closed-loop throughputs are the median of ``plan.runs`` runs;
latency percentiles are over all the samples of one run (the open-loop figure is again the
median of ``plan.runs`` runs).

Objects live in their own namespaces (``bench`` for pods, ``default`` for ConfigMaps) and
carry sequence numbers in their names so that no run collides with an earlier one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from bench import load
from bench.server import BenchServer

Figures = dict[str, Any]

CM_PATH = "/api/v1/namespaces/default/configmaps"
POD_NS = "bench"
POD_PATH = f"/api/v1/namespaces/{POD_NS}/pods"
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io"


@dataclass(frozen=True)
class Plan:
    """How long and how big: the full run or ``--quick``."""

    quick: bool
    runs: int = 3
    clients: int = 32
    throughput_seconds: float = 5.0
    open_loop_rate: float = 500.0
    open_loop_seconds: float = 10.0
    group_commit_writers: tuple[int, ...] = (1, 8, 64)
    group_commit_seconds: float = 3.0
    list_pods: int = 10_000
    nodes: int = 100
    watchers: int = 1000
    watch_writes: int = 50
    watch_burst: int = 200
    rss_pods: int = 150_000
    fill_clients: int = 64
    churn_objects: int = 1000
    churn_updates: int = 20_000

    @classmethod
    def full(cls) -> Plan:
        return cls(quick=False)

    @classmethod
    def quick_plan(cls) -> Plan:
        return cls(
            quick=True,
            throughput_seconds=2.0,
            open_loop_seconds=4.0,
            group_commit_seconds=1.5,
            watch_writes=20,
            watch_burst=60,
            rss_pods=20_000,
        )


def _r(x: float, nd: int = 1) -> float:
    return round(x, nd)


async def _seq_runs(
    srv: BenchServer, request: load.Request, clients: int, seconds: float, runs: int, seq: int
) -> Figures:
    results = []
    for i in range(runs):
        results.append(await load.closed_loop(request, clients, seconds, srv.pid, seq + i * 10**7))
    rates = [r.per_second for r in results]
    return {
        "median_per_s": _r(load.median(rates)),
        "runs_per_s": [_r(x) for x in rates],
        "clients": clients,
        "seconds_per_run": seconds,
        "errors": sum(r.errors for r in results),
        "server_cpu_pct": [_r(r.server_cpu_pct) for r in results],
        "client_cpu_pct": [_r(r.client_cpu_pct) for r in results],
    }


# --- 1, 2, 7: throughput ------------------------------------------------------------------------
async def creates(srv: BenchServer, s: aiohttp.ClientSession, plan: Plan) -> Figures:
    """Durable ConfigMap creates/s: each answer comes after the fsync'd commit."""

    async def req(i: int) -> None:
        await load.send(s, "POST", CM_PATH, load.dumps(load.configmap(f"c-{i}")))

    out = await _seq_runs(srv, req, plan.clients, plan.throughput_seconds, plan.runs, 10**8)
    out["object"] = "ConfigMap, ~0.3 KB JSON"
    out["target_per_s"] = 2000
    return out


async def gets(srv: BenchServer, s: aiohttp.ClientSession, plan: Plan) -> Figures:
    """GETs/s of one ConfigMap (served from the watch cache)."""
    await load.send(s, "POST", CM_PATH, load.dumps(load.configmap("get-target")))
    body = orjson.loads(await load.send(s, "GET", f"{CM_PATH}/get-target"))
    assert body["metadata"]["name"] == "get-target", body

    async def req(i: int) -> None:
        await load.send(s, "GET", f"{CM_PATH}/get-target")

    out = await _seq_runs(srv, req, plan.clients, plan.throughput_seconds, plan.runs, 0)
    out["target_per_s"] = 5000
    return out


async def group_commit(srv: BenchServer, s: aiohttp.ClientSession, plan: Plan) -> Figures:
    """Durable creates/s against the number of concurrent writers."""

    async def req(i: int) -> None:
        await load.send(s, "POST", CM_PATH, load.dumps(load.configmap(f"g-{i}")))

    out: Figures = {}
    for w in plan.group_commit_writers:
        out[str(w)] = await _seq_runs(srv, req, w, plan.group_commit_seconds, plan.runs, w * 10**8)
    return out


# --- 3: open-loop write latency -----------------------------------------------------------------
async def write_latency(srv: BenchServer, s: aiohttp.ClientSession, plan: Plan) -> Figures:
    async def req(i: int) -> None:
        await load.send(s, "POST", CM_PATH, load.dumps(load.configmap(f"l-{i}")))

    runs = []
    for n in range(plan.runs):
        runs.append(
            await load.open_loop(
                req, plan.open_loop_rate, plan.open_loop_seconds, srv.pid, (n + 1) * 10**8
            )
        )
    p50 = [load.percentile(r.latencies_ms, 50) for r in runs]
    p99 = [load.percentile(r.latencies_ms, 99) for r in runs]
    return {
        "rate_per_s": plan.open_loop_rate,
        "seconds_per_run": plan.open_loop_seconds,
        "p50_ms": _r(load.median(p50), 2),
        "p99_ms": _r(load.median(p99), 2),
        "runs_p50_ms": [_r(x, 2) for x in p50],
        "runs_p99_ms": [_r(x, 2) for x in p99],
        "runs_max_ms": [_r(max(r.latencies_ms, default=0.0), 2) for r in runs],
        "achieved_per_s": [_r(r.achieved_per_s) for r in runs],
        "stalls_over_20ms": [load.stalls(r.samples, 20.0) for r in runs],
        "errors": sum(r.errors for r in runs),
        "server_cpu_pct": [_r(r.server_cpu_pct) for r in runs],
        "client_cpu_pct": [_r(r.client_cpu_pct) for r in runs],
        "target_p99_ms": 20,
    }


# --- pods: fill, list -----------------------------------------------------------------------------
async def ensure_namespace(s: aiohttp.ClientSession, name: str) -> None:
    body = load.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        await load.send(s, "POST", "/api/v1/namespaces", body)
    except load.RequestFailed as e:
        if " 409 " not in str(e):
            raise


async def fill_pods(
    srv: BenchServer, s: aiohttp.ClientSession, start: int, stop: int, nodes: int, clients: int
) -> Figures:
    """Create pods ``p-<start>`` .. ``p-<stop-1>`` spread over ``nodes`` node names."""
    it = iter(range(start, stop))
    errors = 0

    async def worker() -> None:
        nonlocal errors
        for i in it:
            body = load.dumps(load.pod(f"p-{i:06d}", f"node-{i % nodes}", i))
            for _attempt in range(3):
                try:
                    await load.send(s, "POST", POD_PATH, body)
                    break
                except (load.RequestFailed, aiohttp.ClientError):
                    errors += 1

    meter = load.CpuMeter(srv.pid)
    meter.start()
    t0 = time.monotonic()
    async with asyncio.TaskGroup() as tg:
        for _ in range(clients):
            tg.create_task(worker())
    dt = time.monotonic() - t0
    return {
        "created": stop - start,
        "seconds": _r(dt, 2),
        "per_s": _r((stop - start) / dt if dt else 0.0),
        "clients": clients,
        "errors": errors,
        "server_cpu_pct": _r(meter.stop()),
        "client_cpu_pct": _r(meter.client_pct),
    }


async def pod_size(s: aiohttp.ClientSession) -> Figures:
    sent = len(load.dumps(load.pod("p-000000", "node-0", 0)))
    stored = await load.send(s, "GET", f"{POD_PATH}/p-000000")
    return {"request_json_bytes": sent, "stored_json_bytes": len(stored)}


async def list_pods(s: aiohttp.ClientSession, plan: Plan, expected: int) -> Figures:
    """LIST every pod (all namespaces) as JSON and as a Table, ``plan.runs`` times each."""
    out: Figures = {"pods": expected}
    for label, headers in (
        ("json", {"Accept": "application/json"}),
        ("table", {"Accept": TABLE_ACCEPT}),
    ):
        times = []
        size = 0
        for _ in range(plan.runs):
            t0 = time.monotonic()
            body = await load.send(s, "GET", "/api/v1/pods", headers=headers)
            times.append(time.monotonic() - t0)
            size = len(body)
        doc = orjson.loads(body)
        n = len(doc["items"] if label == "json" else doc["rows"])
        out[label] = {
            "median_ms": _r(load.median(times) * 1000, 1),
            "runs_ms": [_r(t * 1000, 1) for t in times],
            "bytes": size,
            "items": n,
        }
    return out


# --- 5: watch fan-out -----------------------------------------------------------------------------
class _Deliveries:
    """Counts, per object name, how many watchers have seen it, and when the last one did."""

    def __init__(self) -> None:
        self.expected: dict[str, int] = {}
        self.count: dict[str, int] = {}
        self.first: dict[str, float] = {}
        self.done: dict[str, float] = {}
        self.waiters: dict[str, asyncio.Event] = {}
        self.total = 0
        self.unexpected = 0

    def expect(self, name: str, n: int) -> asyncio.Event:
        self.expected[name] = n
        ev = self.waiters[name] = asyncio.Event()
        return ev

    def seen(self, name: str, now: float) -> None:
        self.total += 1
        want = self.expected.get(name)
        if want is None:
            self.unexpected += 1
            return
        c = self.count.get(name, 0) + 1
        self.count[name] = c
        if c == 1:
            self.first[name] = now
        if c == want:
            self.done[name] = now
            self.waiters[name].set()
        elif c > want:
            self.unexpected += 1


async def _watcher(
    s: aiohttp.ClientSession,
    params: dict[str, str],
    d: _Deliveries,
    opened: list[int],
    all_open: asyncio.Event,
    n: int,
) -> None:
    async with s.get("/api/v1/pods", params=params) as r:
        if r.status != 200:
            raise load.RequestFailed(f"watch: {r.status} {(await r.read())[:200]!r}")
        opened[0] += 1
        if opened[0] == n:
            all_open.set()
        async for line in r.content:
            if not line.strip():
                continue
            ev = orjson.loads(line)
            if ev.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                d.seen(ev["object"]["metadata"]["name"], time.monotonic())


async def watch_fanout(
    srv: BenchServer, writer: aiohttp.ClientSession, plan: Plan, per_node: bool
) -> Figures:
    """``plan.watchers`` watches on pods; writes create pods and we time their delivery.

    ``per_node=False``: every watcher watches all pods, so each write reaches all of them.
    ``per_node=True``: watcher i watches ``spec.nodeName=node-i`` (a node agent's watch)
    and every write goes to one node, so each write reaches exactly one watcher.
    """
    n = plan.watchers
    tag = "wn" if per_node else "wa"
    listing = orjson.loads(await load.send(writer, "GET", "/api/v1/pods?limit=1"))
    rv = listing["metadata"]["resourceVersion"]
    d = _Deliveries()
    opened = [0]
    all_open = asyncio.Event()
    conn = aiohttp.TCPConnector(limit=n + 8, ssl=srv.ssl_context())
    target_node = "node-7"
    per_write = 1 if per_node else n
    t_open = time.monotonic()
    async with (
        aiohttp.ClientSession(
            base_url=srv.url,
            connector=conn,
            headers={"Authorization": f"Bearer {srv.token}"},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=60, sock_read=None),
        ) as ws,
        asyncio.TaskGroup() as tg,
    ):
        tasks = []
        for i in range(n):
            params = {"watch": "true", "resourceVersion": rv}
            if per_node:
                params["fieldSelector"] = f"spec.nodeName=node-{i}"
            tasks.append(tg.create_task(_watcher(ws, params, d, opened, all_open, n)))
        try:
            async with asyncio.timeout(120):
                await all_open.wait()
            open_s = time.monotonic() - t_open

            async def write(name: str) -> tuple[float, float, float]:
                ev = d.expect(name, per_write)
                body = load.dumps(load.pod(name, target_node, 1))
                t0 = time.monotonic()
                await load.send(writer, "POST", POD_PATH, body)
                acked = time.monotonic()
                async with asyncio.timeout(60):
                    await ev.wait()
                return t0, acked, d.done[name]

            await write(f"{tag}-warm")  # every stream is live and past its replay
            meter = load.CpuMeter(srv.pid)
            meter.start()
            lat, ack, first = [], [], []
            for k in range(plan.watch_writes):
                name = f"{tag}-{k}"
                t0, acked, done = await write(name)
                lat.append((done - t0) * 1000)
                ack.append((acked - t0) * 1000)
                first.append((d.first[name] - t0) * 1000)
            # burst: writes as fast as 8 writers go; count deliveries until the last lands
            names = [f"{tag}-b{k}" for k in range(plan.watch_burst)]
            before = d.total
            t0 = time.monotonic()
            it = iter(names)

            async def burst_writer() -> None:
                for name in it:
                    ev = d.expect(name, per_write)
                    body = load.dumps(load.pod(name, target_node, 2))
                    await load.send(writer, "POST", POD_PATH, body)
                    async with asyncio.timeout(120):
                        await ev.wait()

            async with asyncio.TaskGroup() as btg:
                for _ in range(8):
                    btg.create_task(burst_writer())
            burst_s = time.monotonic() - t0
            delivered = d.total - before
            server_cpu = meter.stop()
        finally:
            for t in tasks:
                t.cancel()
    return {
        "watchers": n,
        "selector": "spec.nodeName=node-<i> (one per watcher)" if per_node else "none (all pods)",
        "receivers_per_write": per_write,
        "open_all_watchers_s": _r(open_s, 2),
        "writes_timed": plan.watch_writes,
        "write_to_all_delivered_p50_ms": _r(load.percentile(lat, 50), 2),
        "write_to_all_delivered_p99_ms": _r(load.percentile(lat, 99), 2),
        "write_to_first_delivered_p50_ms": _r(load.percentile(first, 50), 2),
        "write_ack_p50_ms": _r(load.percentile(ack, 50), 2),
        "burst_writes": plan.watch_burst,
        "burst_seconds": _r(burst_s, 3),
        "burst_writes_per_s": _r(plan.watch_burst / burst_s),
        "events_delivered_per_s": _r(delivered / burst_s),
        "unexpected_events": d.unexpected,
        "server_cpu_pct": _r(server_cpu),
        "client_cpu_pct": _r(meter.client_pct),
    }


# --- 6: memory and file size ----------------------------------------------------------------------
LIVE_RESOURCES = ("namespaces", "services", "serviceaccounts", "configmaps", "pods")


async def live_json_bytes(s: aiohttp.ClientSession) -> int:
    """The raw size of every live object's JSON, as the API serves it (items of LISTs)."""
    total = 0
    for res in LIVE_RESOURCES:
        doc = orjson.loads(await load.send(s, "GET", f"/api/v1/{res}"))
        total += sum(len(orjson.dumps(item)) for item in doc["items"])
    return total


async def churn(srv: BenchServer, s: aiohttp.ClientSession, plan: Plan) -> Figures:
    """Update the same ``churn_objects`` ConfigMaps ``churn_updates`` times (twice over),
    wait for compaction, and compare the SQLite files with the live JSON."""
    names = [f"churn-{i}" for i in range(plan.churn_objects)]
    payload = "y" * 1200

    def obj(name: str, n: int) -> bytes:
        o = load.configmap(name, 0)
        o["data"] = {"payload": payload, "counter": str(n)}
        return load.dumps(o)

    it = iter(names)

    async def creator() -> None:
        for name in it:
            await load.send(s, "POST", CM_PATH, obj(name, 0))

    async with asyncio.TaskGroup() as tg:
        for _ in range(plan.clients):
            tg.create_task(creator())

    rounds = []
    for rnd in range(2):
        seq = iter(range(rnd * plan.churn_updates, (rnd + 1) * plan.churn_updates))

        async def updater(seq: Iterator[int] = seq) -> None:
            for i in seq:
                name = names[i % len(names)]
                await load.send(s, "PUT", f"{CM_PATH}/{name}", obj(name, i))

        t0 = time.monotonic()
        async with asyncio.TaskGroup() as tg:
            for _ in range(plan.clients):
                tg.create_task(updater())
        dt = time.monotonic() - t0
        # the server compacts every 5 s; wait until history is back to its window
        latest = orjson.loads(await load.send(s, "GET", CM_PATH + "?limit=1"))
        rev = int(latest["metadata"]["resourceVersion"])
        facts = srv.db_facts()
        t_wait = time.monotonic()
        deadline = t_wait + 30
        while time.monotonic() < deadline:
            facts = srv.db_facts()
            if facts["log_rows"] <= facts["live_objects"] + 50:
                break
            await asyncio.sleep(0.5)
        waited = time.monotonic() - t_wait
        sizes = srv.db_bytes()
        files = sizes["state.db"] + sizes["state.db-wal"]
        live = await live_json_bytes(s)
        used = (facts["page_count"] - facts["freelist_pages"]) * facts["page_size"]
        rounds.append(
            {
                "updates": plan.churn_updates,
                "updates_per_s": _r(plan.churn_updates / dt),
                "revision": rev,
                "compaction_ran": facts["compacted_revision"] > 0,
                "compacted_revision": facts["compacted_revision"],
                "waited_for_compaction_s": _r(waited, 1),
                "log_rows_after": facts["log_rows"],
                "live_objects": facts["live_objects"],
                "live_json_bytes": live,
                "stored_value_bytes_current": facts["live_json_bytes"],
                "stored_value_bytes_log": facts["log_bytes"],
                "state_db_bytes": sizes["state.db"],
                "wal_bytes": sizes["state.db-wal"],
                "db_used_bytes": used,
                "freelist_bytes": facts["freelist_pages"] * facts["page_size"],
                "files_over_live": _r(files / live if live else 0.0, 2),
                "used_pages_over_live": _r(used / live if live else 0.0, 2),
            }
        )
    return {
        "objects": plan.churn_objects,
        "object_json_bytes": len(obj(names[0], 0)),
        "rounds": rounds,
        "files_over_live": rounds[-1]["files_over_live"],
        "compaction_ran": rounds[-1]["compaction_ran"],
        "target_files_over_live": 2.0,
    }
