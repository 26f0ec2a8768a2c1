"""Custom resources against built-in ones: ``python -m bench.crd_perf --out FILE``.

Called by ``make bench``. One ``corral server`` (no scheduler, controllers or metrics
server: only the API path is measured) on a fresh data directory; this process drives it
over loopback HTTPS. Figures:

- how long a CustomResourceDefinition takes from its create to its kind being served
  (a custom object created at once succeeds), median of ``--runs`` CRDs;
- durable creates/s and GETs/s of a custom object whose schema has types, a pattern, a
  default, bounds and a CEL rule, beside the same figures for a ConfigMap of about the
  same size, in the same run (the ratio is the cost of structural validation, defaulting
  and pruning; these machines are noisy, so compare within one report);
- the same creates through a second, non-storage version (``v1beta1``: apiVersion
  rewritten on the way in and out).

Reported, never asserted. The server is stopped in a ``finally`` block.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench import load
from bench.report import write_report
from bench.server import BenchServer

Obj = dict[str, Any]
GROUP = "bench.corral.dev"
CM_PATH = "/api/v1/namespaces/default/configmaps"


def crd(plural: str, kind: str) -> Obj:
    """A namespaced CRD with two served versions (v1 stored) and a schema of each kind of
    check: types, a pattern, bounds, a default, an enum and a CEL rule."""
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["image", "replicas"],
                "x-kubernetes-validations": [
                    {"rule": "self.replicas <= self.maxReplicas", "message": "too many"}
                ],
                "properties": {
                    "image": {"type": "string", "pattern": "^[a-z0-9./:-]+$"},
                    "replicas": {"type": "integer", "minimum": 0, "maximum": 100},
                    "maxReplicas": {"type": "integer", "default": 10},
                    "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            }
        },
    }
    versions = [
        {"name": v, "served": True, "storage": v == "v1", "schema": {"openAPIV3Schema": schema}}
        for v in ("v1", "v1beta1")
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": versions,
        },
    }


def custom_object(kind: str, version: str, name: str) -> Obj:
    return {
        "apiVersion": f"{GROUP}/{version}",
        "kind": kind,
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {
            "image": "registry.local/app:1.0",
            "replicas": 3,
            "labels": {"tier": "web", "team": "a", "x": "y" * 100},
        },
    }


async def _served_after(s: Any, plural: str, kind: str) -> float:
    """Seconds from the CRD's create to the first successful create of an object."""
    path = f"/apis/{GROUP}/v1/namespaces/default/{plural}"
    t0 = time.monotonic()
    await load.send(s, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                    load.dumps(crd(plural, kind)))  # fmt: skip
    while True:
        try:
            await load.send(s, "POST", path, load.dumps(custom_object(kind, "v1", "first")))
            return time.monotonic() - t0
        except load.RequestFailed:
            await asyncio.sleep(0.002)


async def _rates(srv: BenchServer, req: load.Request, args: argparse.Namespace) -> Obj:
    return await load.rates(req, args.clients, args.seconds, srv.pid, args.runs, 10**8)


async def measure(srv: BenchServer, args: argparse.Namespace) -> Obj:
    out: Obj = {"clients": args.clients, "seconds_per_run": args.seconds, "runs": args.runs}
    async with srv.session(args.clients) as s:
        served = [await _served_after(s, f"things{i}", f"Thing{i}") for i in range(args.runs)]
        out["crd_create_to_served_ms"] = {
            "median": round(load.median(served) * 1000, 1),
            "runs": [round(x * 1000, 1) for x in served],
        }
        cr_path = f"/apis/{GROUP}/v1/namespaces/default/things0"
        beta_path = f"/apis/{GROUP}/v1beta1/namespaces/default/things0"
        body = load.dumps(custom_object("Thing0", "v1", "probe"))
        size = len(body)

        async def cm(i: int) -> None:
            obj = load.configmap(f"c-{i}", size=size - 150)
            await load.send(s, "POST", CM_PATH, load.dumps(obj))

        async def cr(i: int) -> None:
            await load.send(s, "POST", cr_path, load.dumps(custom_object("Thing0", "v1", f"t-{i}")))

        async def beta(i: int) -> None:
            obj = custom_object("Thing0", "v1beta1", f"b-{i}")
            await load.send(s, "POST", beta_path, load.dumps(obj))

        out["creates"] = {
            "configmap": await _rates(srv, cm, args),
            "custom_object": await _rates(srv, cr, args),
            "custom_object_v1beta1": await _rates(srv, beta, args),
            "object_bytes": size,
        }
        c, o = out["creates"]["configmap"], out["creates"]["custom_object"]
        out["creates"]["custom_to_configmap"] = round(o["median_per_s"] / c["median_per_s"], 2)
        got = orjson.loads(await load.send(s, "GET", f"{cr_path}/first"))
        assert got["spec"]["mode"] == "safe", got  # defaulted: the schema was applied
        await load.send(s, "POST", CM_PATH, load.dumps(load.configmap("get-cm", size=size - 150)))

        async def get_cm(i: int) -> None:
            await load.send(s, "GET", f"{CM_PATH}/get-cm")

        async def get_cr(i: int) -> None:
            await load.send(s, "GET", f"{cr_path}/first")

        async def get_beta(i: int) -> None:
            await load.send(s, "GET", f"{beta_path}/first")

        out["gets"] = {
            "configmap": await _rates(srv, get_cm, args),
            "custom_object": await _rates(srv, get_cr, args),
            "custom_object_v1beta1": await _rates(srv, get_beta, args),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.crd_perf")
    p.add_argument("--out", default="bench/results/crds.json")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=4.0, help="per run")
    p.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="corral-crd-bench-") as tmp:
        srv = BenchServer.start(Path(tmp) / "data", extra=["--no-scheduler", "--no-controllers"])
        try:
            report = uvloop.run(measure(srv, args))
        finally:
            srv.stop()
    write_report(args.out, report)
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
