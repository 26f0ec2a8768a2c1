"""What a request costs the client that sends it, in CPU microseconds:
``python -m bench.client_cost``.

Corral's loops are API clients, and in issue 19's shape they send ~2.75 requests a pod
(the scheduler's binding, the hollow agent's status write and three quarters of a Lease
renewal). This measures the client side of the hottest of them, a node's Lease renewal
(``corral.agent.node.renewal_patch``, a merge patch), sent over HTTPS from ``--clients``
concurrent tasks to a ``corral server`` three ways, in alternating rounds so the
machine's drift falls on all alike:

- ``client``: ``corral.client.rest.Client.request``, what the components use (its lean
  keep-alive pool, ``corral.client.http1``);
- ``aiohttp``: the same ``Client`` with the pool turned off, every request through its
  aiohttp session (what it did before);
- ``session``: a bare ``aiohttp.ClientSession`` with nothing of Corral's around it.

Reported: this process's CPU per request for each (``time.process_time``: the server
runs in another process), medians of ``--runs`` rounds. Figures are reported, never
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench import calibrate
from bench.report import write_report
from bench.server import BenchServer
from corral.agent.node import LEASE_NAMESPACE, lease_object, renewal_patch
from corral.client.rest import LEASES, Client, KubeConfig

MERGE = "application/merge-patch+json"


async def _spread(n: int, clients: int, one: Callable[[int], Awaitable[None]]) -> None:
    todo = list(range(n - 1, -1, -1))

    async def worker() -> None:
        while todo:
            await one(todo.pop())

    await asyncio.gather(*(worker() for _ in range(clients)))


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    srv = BenchServer.start(work / "server", extra=["--no-scheduler", "--no-controllers"])
    cfg = KubeConfig.load(srv.kubeconfig)
    lean = Client(cfg, connections=args.clients)
    plain = Client(cfg, connections=args.clients, lean=False)  # every request via aiohttp
    session = srv.session(args.clients)
    try:
        now = time.time()
        names = [f"bench-{i}" for i in range(args.leases)]
        await _spread(
            len(names),
            args.clients,
            lambda i: lean.create(LEASES, lease_object(names[i], now), LEASE_NAMESPACE),
        )

        def via(c: Client) -> Callable[[int], Awaitable[None]]:
            async def one(i: int) -> None:
                name = names[i % len(names)]
                await c.request(
                    "PATCH",
                    LEASES.path(LEASE_NAMESPACE, name),
                    body=renewal_patch(name, time.time()),
                    content_type=MERGE,
                    decode=False,
                )

            return one

        async def bare(i: int) -> None:
            name = names[i % len(names)]
            data = orjson.dumps(renewal_patch(name, time.time()))
            path = LEASES.path(LEASE_NAMESPACE, name)
            async with session.patch(path, data=data, headers={"Content-Type": MERGE}) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"PATCH {path}: {r.status}")

        ways: dict[str, Callable[[int], Awaitable[None]]] = {
            "client": via(lean),
            "aiohttp": via(plain),
            "session": bare,
        }
        for one in ways.values():  # warm every connection first
            await _spread(args.clients * 4, args.clients, one)
        speed0 = calibrate.cpu_ms()
        rounds: dict[str, list[float]] = {k: [] for k in ways}
        for n in range(args.runs):
            order = list(ways) if n % 2 == 0 else list(ways)[::-1]
            for name in order:
                t0 = time.process_time()
                await _spread(args.requests, args.clients, ways[name])
                rounds[name].append((time.process_time() - t0) / args.requests * 1e6)
        speed1 = calibrate.cpu_ms()
        med = {k: round(statistics.median(v), 1) for k, v in rounds.items()}
        print(med, file=sys.stderr, flush=True)
        return {
            "requests_per_round": args.requests,
            "clients": args.clients,
            "us_cpu_per_request": med,
            "rounds": {k: [round(x, 1) for x in v] for k, v in rounds.items()},
            "client_over_aiohttp": round(med["client"] / med["aiohttp"], 3),
            "calibration_cpu_ms": {"before": speed0, "after": speed1},
        }
    finally:
        await session.close()
        await lean.close()
        await plain.close()
        srv.stop()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="corral-client-cost-") as tmp:
        return await run(args, Path(tmp))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.client_cost")
    p.add_argument("--out", default="bench/results/client-cost.json")
    p.add_argument("--requests", type=int, default=3000, help="requests per way per round")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--leases", type=int, default=500)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args(argv)
    report = uvloop.run(main_async(args))
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
