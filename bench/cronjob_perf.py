"""100 CronJobs firing every minute of a simulated hour (issue 5's benchmark, second part).

``python -m bench.cronjob_perf [--cronjobs 100] [--minutes 60] [--out FILE]``

A real ``corral server --no-scheduler --no-controllers``; the CronJob controller runs in
this process against it with an injected clock that the benchmark moves one minute at a
time (no real minute passes). Each simulated minute every CronJob (``* * * * *``,
concurrencyPolicy Allow; no Job controller runs, so every Job stays active) must start its Job; the figure is
the wall time from the clock tick until all the minute's Jobs exist (p50 / p99 / max over
the hour) and the Jobs/s the API took.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import write_report
from bench.server import BenchServer
from corral.client.rest import CRONJOBS, JOBS, Client
from corral.controllers.base import InformerFactory
from corral.controllers.cronjob import CronJobController


class StepClock:
    """A wall clock the benchmark moves by hand."""

    def __init__(self, start: float) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return time.monotonic()


def cronjob(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": "* * * * *",
            "successfulJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "c", "image": "busybox"}],
                        }
                    }
                }
            },
        },
    }


async def run(cronjobs: int, minutes: int, work: Path) -> dict[str, Any]:
    srv = BenchServer.start(work, extra=["--no-scheduler", "--no-controllers"])
    client = Client.from_kubeconfig(srv.kubeconfig)
    try:
        for i in range(cronjobs):
            await client.create(CRONJOBS, cronjob(f"cj{i}"), "default")
        # start just after a minute boundary, after the CronJobs were created
        clock = StepClock((time.time() // 60 + 1) * 60 + 1)
        factory = InformerFactory(client)
        ctrl = CronJobController(client, factory, clock=clock, workers=8)
        task = asyncio.create_task(ctrl.run())
        await factory.wait_for_sync()
        jobs_inf = factory.informer(JOBS)
        seen: set[str] = set()
        lag: list[float] = []
        t_all = time.monotonic()
        for _ in range(minutes):
            clock.t += 60
            expected = {f"cj{i}-{int(clock.t // 60)}" for i in range(cronjobs)}
            t0 = time.monotonic()
            ctrl.resync()
            deadline = t0 + 60
            while time.monotonic() < deadline:
                names = {j["metadata"]["name"] for j in jobs_inf.store.values()}
                seen |= names
                if expected <= seen:
                    break
                await asyncio.sleep(0.01)
            lag.append(time.monotonic() - t0)
        total = time.monotonic() - t_all
        task.cancel()
        lag.sort()
        return {
            "cronjobs": cronjobs,
            "minutes": minutes,
            "jobs_started": cronjobs * minutes,
            "jobs_seen": len(seen),
            "tick_to_all_jobs_p50_s": round(lag[len(lag) // 2], 3),
            "tick_to_all_jobs_p99_s": round(lag[int(len(lag) * 0.99)], 3),
            "tick_to_all_jobs_max_s": round(lag[-1], 3),
            "wall_s": round(total, 1),
            "jobs_per_s": round(cronjobs * minutes / total, 1),
            "jobs_left": len(jobs_inf.store),
        }
    finally:
        await client.close()
        srv.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cronjob_perf")
    p.add_argument("--cronjobs", type=int, default=100)
    p.add_argument("--minutes", type=int, default=60)
    p.add_argument("--out", default="bench/results/cronjobs.json")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="corral-cron-") as tmp:
        report = asyncio.run(run(args.cronjobs, args.minutes, Path(tmp) / "d"))
    print(json.dumps(report), flush=True)
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
