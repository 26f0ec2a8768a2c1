"""``make fuzz``: schemathesis against Corral's own OpenAPI (core and apps groups).

Starts ``corral server`` on a fresh data directory without the scheduler, controllers or
metrics server (so the load stays on the API), then:

1. warm-up: ``--warmup`` generated requests in namespaces ``fuzz-warm-*``, everything
   they made deleted, a settle pause; the server's RSS then is the baseline;
2. the run: ``--requests`` generated requests (default 10,000) in ``fuzz-*`` namespaces
   through :func:`corral.testing.apifuzz.fuzz` (checks: no 5xx, success bodies conform
   to the schema, error bodies are Status objects, no hang past ``--timeout``, no
   dropped connection);
3. cleanup (every object, namespace, Node and PersistentVolume the fuzzer made), a
   settle pause, the RSS again; the server must still be alive and ``/healthz`` ok.

Writes ``--out`` (bench/results/fuzz.json) through ``bench.report``: requests sent,
per-status counts, failures (grouped, with a curl to reproduce each), duration, RSS
before and after. Exit status 1 when a check failed, the server died or its RSS after
the run exceeds the baseline by more than ``--rss-margin`` (a fraction, default 0.15:
allocator pools and the watch cache's history ring grow a little with any traffic).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.report import write_report
from corral.testing.apifuzz import Target, cleanup, fuzz
from corral.testing.process import ServerProcess

KEEP = ("default", "kube-system", "kube-public", "kube-node-lease")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def healthz(srv: ServerProcess) -> bool:
    req = urllib.request.Request(srv.url + "/healthz")
    try:
        with urllib.request.urlopen(req, timeout=10, context=srv.ssl_context()) as resp:
            return bool(resp.status == 200 and resp.read() == b"ok")
    except OSError:
        return False


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="corral-fuzz-") as tmp:
        srv = ServerProcess.start(
            Path(tmp) / "data",
            extra=["--no-controllers", "--no-scheduler", "--no-metrics-server"],
        )
        try:
            target = Target(srv.url, srv.token, str(srv.ca_file))
            warm_ns = ["fuzz-warm-a", "fuzz-warm-b"]
            warm = fuzz(target, requests=args.warmup, namespaces=warm_ns, seed=args.seed + 1)
            cleanup(target, warm_ns, KEEP)
            time.sleep(args.settle)
            rss_before = rss_kib(srv.pid)
            namespaces = ["fuzz-a", "fuzz-b", "fuzz-c"]

            def progress(r: Any) -> None:
                print(
                    f"  {r.sent} requests, {sum(f['count'] for f in r.failures.values())} failures",
                    flush=True,
                )

            result = fuzz(
                target,
                requests=args.requests,
                namespaces=namespaces,
                seed=args.seed,
                timeout=args.timeout,
                progress=progress,
            )
            cleanup(target, namespaces, KEEP)
            time.sleep(args.settle)
            alive = srv.proc.poll() is None
            healthy = alive and healthz(srv)
            rss_after = rss_kib(srv.pid) if alive else 0
        finally:
            srv.stop()
    report = result.report()
    limit = int(rss_before * (1 + args.rss_margin))
    memory_ok = 0 < rss_after <= limit
    report.update(
        {
            "documents": ["/openapi/v3/api/v1", "/openapi/v3/apis/apps/v1"],
            "seed": args.seed,
            "per_request_timeout_s": args.timeout,
            "warmup_requests": warm.sent,
            "warmup_failures": warm.report()["failures"],
            "server_alive": alive,
            "healthz_ok": healthy,
            "rss_kib_before": rss_before,
            "rss_kib_after": rss_after,
            "rss_margin": args.rss_margin,
            "rss_limit_kib": limit,
            "memory_back_to_baseline": memory_ok,
            "passed": report["failures"] == 0
            and warm.report()["failures"] == 0
            and healthy
            and memory_ok,
        }
    )
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/results/fuzz.json")
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--warmup", type=int, default=1_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    ap.add_argument("--settle", type=float, default=5.0, help="pause before an RSS reading")
    ap.add_argument("--rss-margin", type=float, default=0.15)
    args = ap.parse_args()
    report = run(args)
    write_report(args.out, report)
    summary = {k: v for k, v in report.items() if k != "distinct_failures"}
    print(json.dumps(summary, indent=1))
    for f in report["distinct_failures"]:
        print(f"FAIL {f['operation']} [{f['check']}] x{f['count']}: {f['message'][:200]}")
    raise SystemExit(0 if report["passed"] else 1)


if __name__ == "__main__":
    main()
