"""What authorization costs per request: ``python -m bench.authz_perf --out FILE``.

Called by ``make bench``. One ``corral server`` (no scheduler, controllers or metrics
server: only the API path is measured) with a static token file of two users; this
process drives it over loopback HTTPS with ``--clients`` keep-alive connections. For
each of

- ``admin``: the admin token, ``system:masters`` (no authorizer is asked),
- ``rolebinding``: a token-file user whom a RoleBinding allows (of the ClusterRole
  ``system:aggregate-to-view``, the rules of ``view``; RBAC answers from its compiled
  rules, ``apiserver/authz.py``),
- ``denied``: a token-file user nothing allows (every answer a 403 Status),

it measures requests/s of GET one ConfigMap and LIST ``--pods`` pods of the namespace
(median of ``--runs`` closed-loop runs) and the server's CPU. Reported, never asserted;
compare the rows of one report (these machines are noisy).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

from bench import load
from bench.report import write_report
from bench.server import BenchServer

Obj = dict[str, Any]
NS = "bench"
VIEWER_TOKEN = "bench-viewer-token-0123456789"
DENIED_TOKEN = "bench-denied-token-0123456789"
G = "rbac.authorization.k8s.io"
#: the rules ``view`` aggregates (no aggregation controller runs here to fill ``view``)
VIEW_RULES = "system:aggregate-to-view"


async def _expect(s: aiohttp.ClientSession, path: str, token: str | None, status: int) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with s.get(path, headers=headers) as r:
        await r.read()
        if r.status != status:
            raise load.RequestFailed(f"GET {path}: {r.status}, expected {status}")


async def _rates(srv: BenchServer, req: load.Request, args: argparse.Namespace) -> Obj:
    return await load.rates(req, args.clients, args.seconds, srv.pid, args.runs)


async def _seed(s: aiohttp.ClientSession, pods: int) -> None:
    await load.send(s, "POST", "/api/v1/namespaces", orjson.dumps({"metadata": {"name": NS}}))
    binding = {
        "metadata": {"name": "viewer"},
        "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": VIEW_RULES},
        "subjects": [{"apiGroup": G, "kind": "User", "name": "viewer"}],
    }
    await load.send(s, "POST", f"/apis/{G}/v1/namespaces/{NS}/rolebindings", orjson.dumps(binding))
    cm = load.configmap("probe", size=500)
    await load.send(s, "POST", f"/api/v1/namespaces/{NS}/configmaps", orjson.dumps(cm))
    for i in range(pods):
        pod = load.pod(f"p-{i}", "node-0", i)
        await load.send(s, "POST", f"/api/v1/namespaces/{NS}/pods", orjson.dumps(pod))


async def measure(srv: BenchServer, args: argparse.Namespace) -> Obj:
    out: Obj = {
        "clients": args.clients,
        "seconds_per_run": args.seconds,
        "runs": args.runs,
        "pods_listed": args.pods,
    }
    get_path = f"/api/v1/namespaces/{NS}/configmaps/probe"
    list_path = f"/api/v1/namespaces/{NS}/pods"
    async with srv.session(args.clients) as s:
        await _seed(s, args.pods)
        await _expect(s, get_path, VIEWER_TOKEN, 200)
        users = {"admin": (None, 200), "rolebinding": (VIEWER_TOKEN, 200)}
        users["denied"] = (DENIED_TOKEN, 403)
        for who, (token, status) in users.items():

            async def get(i: int, token: str | None = token, status: int = status) -> None:
                await _expect(s, get_path, token, status)

            async def lst(i: int, token: str | None = token, status: int = status) -> None:
                await _expect(s, list_path, token, status)

            out[who] = {
                "get_configmap": await _rates(srv, get, args),
                "list_pods": await _rates(srv, lst, args),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.authz_perf")
    p.add_argument("--out", default="bench/results/authz.json")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=3.0, help="per run")
    p.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    p.add_argument("--pods", type=int, default=100, help="pods in the listed namespace")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="corral-authz-bench-") as tmp:
        tokens = Path(tmp) / "tokens.csv"
        tokens.write_text(f"{VIEWER_TOKEN},viewer,uid-1\n{DENIED_TOKEN},denied,uid-2\n")
        srv = BenchServer.start(
            Path(tmp) / "data",
            extra=["--no-scheduler", "--no-controllers", "--token-auth-file", str(tokens)],
        )
        try:
            report = uvloop.run(measure(srv, args))
        finally:
            srv.stop()
    write_report(args.out, report)
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
