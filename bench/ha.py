"""The HA benchmark (issue 18, Deliver 8): ``python -m bench.ha --out FILE``.

Called by ``make bench`` (``bench/results/ha.json``). Two sections, in one run:

- ``writes``: API writes/s and write latency (p50, p99) of ``--clients`` (64) concurrent
  clients creating ConfigMaps over HTTPS (closed loop, keep-alive, ``--seconds`` per run,
  ``--runs`` runs, the median run reported), first against a server on SQLite, then the
  same client and objects against a server on a three-member etcd (``EtcdCluster``).
  Only the API path is measured: no scheduler, controllers or metrics server.
- ``failover``: a three-server cluster (``corral.testing.ha.HACluster``, three etcd
  members) whose leader of the loops is SIGKILLed ``--kills`` (20) times and restarted;
  for each kill, the time to a new holder of the killed loop's Lease (``takeover_s``) and
  to a pod bound by the new scheduler (``pod_bound_s``): p50 and p99. The lease timers are
  Kubernetes' defaults (15 s, 10 s, 2 s) unless ``--lease`` says otherwise.

Reported, never asserted. Every process is stopped in a ``finally`` block.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench import load
from bench.report import write_report
from bench.run import git_info, machine_info
from bench.server import BenchServer

Obj = dict[str, Any]
CM_PATH = "/api/v1/namespaces/default/configmaps"
API_ONLY = ["--no-scheduler", "--no-controllers", "--no-metrics-server", "--mesos-port", "0"]


def _log(msg: str) -> None:
    print(f"[ha {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def _creates(srv: BenchServer, clients: int, seconds: float, first: int) -> Obj:
    """One closed-loop run of ConfigMap creates: writes/s, latency p50/p99, errors."""
    latencies: list[float] = []
    async with srv.session(clients) as s:

        async def create(i: int) -> None:
            t0 = time.monotonic()
            await load.send(s, "POST", CM_PATH, load.dumps(load.configmap(f"ha-{i}")))
            latencies.append((time.monotonic() - t0) * 1000.0)

        run = await load.closed_loop(create, clients, seconds, srv.pid, first)
    return {
        "writes_per_s": round(run.per_second, 1),
        "p50_ms": round(load.percentile(latencies, 50), 1),
        "p99_ms": round(load.percentile(latencies, 99), 1),
        "errors": run.errors,
        "server_cpu_pct": round(run.server_cpu_pct, 1),
    }


def _writes_on(srv: BenchServer, args: argparse.Namespace) -> Obj:
    runs = [
        asyncio.run(_creates(srv, args.clients, args.seconds, 10**7 * (i + 1)))
        for i in range(args.runs)
    ]
    best = sorted(runs, key=lambda r: r["writes_per_s"])[len(runs) // 2]  # the median run
    return {**best, "runs_per_s": [r["writes_per_s"] for r in runs]}


def writes(work: Path, args: argparse.Namespace) -> Obj:
    """The same creates on SQLite and on a three-member etcd."""
    from corral.util.etcd_process import EtcdCluster

    out: Obj = {"clients": args.clients, "seconds_per_run": args.seconds, "runs": args.runs}
    _log("writes on SQLite ...")
    srv = BenchServer.start(work / "sqlite", extra=API_ONLY)
    try:
        out["sqlite"] = _writes_on(srv, args)
    finally:
        srv.stop()
    _log("writes on a three-member etcd ...")
    with EtcdCluster(work / "etcd", 3) as etcd:
        srv = BenchServer.start(work / "etcd-server", extra=[*API_ONLY, "--datastore", etcd.url])
        try:
            out["etcd3"] = _writes_on(srv, args)
        finally:
            srv.stop()
    sq, et = out["sqlite"]["writes_per_s"], out["etcd3"]["writes_per_s"]
    out["etcd_to_sqlite"] = round(et / sq, 2) if sq else None
    return out


def failover(work: Path, args: argparse.Namespace) -> Obj:
    """Leader kills on a three-server cluster: takeover and first-bind times."""
    from corral.testing.faults.ha_kills import ensure_probe_namespace, kill_leader
    from corral.testing.ha import HACluster

    lease = tuple(float(x) for x in args.lease.split(","))
    assert len(lease) == 3, "--lease DURATION,RENEW,RETRY"
    violations: list[str] = []
    results = []
    with HACluster(work / "cluster", lease=(lease[0], lease[1], lease[2])) as cluster:
        cluster.start_hollow(3)
        ensure_probe_namespace(cluster)
        for n in range(args.kills):
            _log(f"leader kill {n + 1}/{args.kills} ...")
            res = kill_leader(cluster, n, violations, limit=lease[0] + 30.0)
            if res is not None:
                results.append(res)
    takeover = [t for r in results for t in r.takeover_s.values()]
    bound = [r.bound_s for r in results if r.bound_s is not None]

    def pct(xs: list[float]) -> Obj:
        return {"p50": round(load.percentile(xs, 50), 3), "p99": round(load.percentile(xs, 99), 3),
                "max": round(max(xs), 3) if xs else None, "count": len(xs)}  # fmt: skip

    return {
        "lease_duration_s": lease[0],
        "renew_deadline_s": lease[1],
        "retry_period_s": lease[2],
        "kills": len(results),
        "takeover_s": pct(takeover),
        "pod_bound_s": pct(bound),
        "violations": violations,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ha")
    p.add_argument("--out", default="bench/results/ha.json")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seconds", type=float, default=5.0, help="per run")
    p.add_argument("--runs", type=int, default=3, help="runs per backend (median)")
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--lease", default="15,10,2",
                   help="lease duration, renew deadline, retry period (s)")  # fmt: skip
    p.add_argument("--only", choices=["writes", "failover"], help="one section only")
    args = p.parse_args(argv)
    report: Obj = {"_meta": {"machine": machine_info(), "git": git_info(),
                             "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="corral-ha-bench-") as tmp:
        for name, section in (("writes", writes), ("failover", failover)):
            if args.only in (None, name):
                report[name] = section(Path(tmp) / name, args)
                write_report(args.out, report)
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
