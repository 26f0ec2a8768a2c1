"""The processes of the ``flood`` scenario (``flood.py``), apart from the one measuring.

``python -m corral.testing.faults.flood_children agent ...``: hollow nodes (a
``HollowAgent`` under the kubeconfig it is given) whose Lease renewals are each written
down (``node start end ok``, monotonic seconds, which all processes of the host share),
one line at once, so the record survives the process' end.

``python -m corral.testing.faults.flood_children flood ...``: ``--connections`` loops of
``while true; do kubectl get pods -A; done`` for ``--seconds``: kubectl's request
(``GET /api/v1/pods?limit=500`` asking for a Table, every ``continue`` page) from one
token, answered 429s retried as client-go retries them (after ``Retry-After``, at most
10 times; a 429 without it is an error); writes the count of each answer as JSON. Each
answer is decoded (for its ``continue``) with orjson: the standard library's json took
~75% of a core on 50 loops of 560 kB answers, CPU a real flood (kubectl, in Go, on
another machine) does not take from the server's host.

Separate processes so that neither shares an event loop (or a core's time slice) with
the flood or with the loop timing the scheduler.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from corral.agent.hollow import HollowAgent
from corral.agent.node import LeaseRenewer
from corral.client.rest import Client
from corral.util import eventloop

#: what ``kubectl get pods -A`` sends (kubectl 1.32)
KUBECTL_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,"
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)
#: client-go's retries of a 429 (``maxRetries`` of rest.Request), each after Retry-After
CLIENT_GO_MAX_RETRIES = 10


# --- the hollow nodes' process ------------------------------------------------------------
class RecordingRenewer(LeaseRenewer):
    """A ``LeaseRenewer`` that appends ``node start end ok`` (monotonic seconds, which all
    processes of the host share) to ``record`` for each renewal, flushed at once."""

    def __init__(self, *args: Any, record: Path, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.out = open(record, "a", buffering=1)  # noqa: SIM115 (open for the process)

    async def renew(self, node: str) -> None:
        start = time.monotonic()
        ok = False
        try:
            await super().renew(node)
            ok = True
        finally:
            self.out.write(f"{node} {start:.4f} {time.monotonic():.4f} {int(ok)}\n")


async def _agent(args: argparse.Namespace) -> None:
    client = Client.from_kubeconfig(args.kubeconfig, user_agent="corral-agent/hollow")
    names = [f"{args.prefix}-{i}" for i in range(args.count)]
    agent = HollowAgent(client, names, start_delay=0.05, grace_cap=0.2, renew_interval=args.renew,
                        lease_duration=int(4 * args.renew))  # fmt: skip
    agent.leases = RecordingRenewer(
        client, names, uids=agent.uids, interval=args.renew, duration=int(4 * args.renew),
        concurrency=agent.workers, record=Path(args.record),
    )  # fmt: skip
    try:
        await agent.run()
    finally:
        await client.close()


# --- the flood's process -------------------------------------------------------------------
async def _flood(args: argparse.Namespace) -> None:
    ctx = ssl.create_default_context(cafile=args.ca)
    conn = aiohttp.TCPConnector(limit=args.connections, ssl=ctx)
    counts: dict[str, int] = {}
    deadline = time.monotonic() + args.seconds
    headers = {
        "Authorization": f"Bearer {args.token}",
        "Accept": KUBECTL_ACCEPT,
        "User-Agent": "kubectl/v1.32.4 (linux/amd64) kubernetes/flood",
    }

    def count(key: str) -> None:
        counts[key] = counts.get(key, 0) + 1

    async def get(params: dict[str, str]) -> bytes | None:
        """One request as client-go sends it (``rest.Request``: a 429 with Retry-After is
        retried after it, up to 10 times); the body of a 200, else None."""
        for _ in range(CLIENT_GO_MAX_RETRIES + 1):
            async with s.get("/api/v1/pods", params=params) as r:
                body = await r.read()
                if r.status != 429:
                    count(str(r.status))
                    return body if r.status == 200 else None
                after = r.headers.get("Retry-After", "")
                if not after.isdigit():
                    count("429_bare")  # client-go retries only what says when
                    return None
                count("429_retry_after")
                await asyncio.sleep(int(after))
        return None

    async def worker() -> None:
        while time.monotonic() < deadline:  # while true; do kubectl get pods -A; done
            params = {"limit": "500"}
            try:
                while (body := await get(params)) is not None:  # every page, as kubectl
                    token = orjson.loads(body).get("metadata", {}).get("continue")
                    if not token:
                        break
                    params = {"limit": "500", "continue": token}
            except (aiohttp.ClientError, TimeoutError, OSError):
                count("errors")
                await asyncio.sleep(0.05)

    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(args.url, connector=conn, headers=headers, timeout=timeout) as s,
        asyncio.TaskGroup() as tg,
    ):
        for _ in range(args.connections):
            tg.create_task(worker())
    Path(args.out).write_text(json.dumps(counts))


def main(argv: list[str]) -> int:
    """``agent ...`` or ``flood ...`` (see the module's docstring)."""
    p = argparse.ArgumentParser(prog="corral.testing.faults.flood_children")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("agent")
    a.add_argument("--kubeconfig", required=True)
    a.add_argument("--prefix", required=True)
    a.add_argument("--count", type=int, required=True)
    a.add_argument("--renew", type=float, required=True)
    a.add_argument("--record", required=True)
    f = sub.add_parser("flood")
    for name in ("--url", "--token", "--ca", "--out"):
        f.add_argument(name, required=True)
    f.add_argument("--connections", type=int, required=True)
    f.add_argument("--seconds", type=float, required=True)
    args = p.parse_args(argv)
    if args.cmd == "agent":
        eventloop.run(lambda: _agent(args))
    else:
        asyncio.run(_flood(args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
