"""``kubectl port-forward`` latency and throughput into a real ``oci`` pod (issue 14).

``python -m bench.portforward_perf --out FILE [--requests 1000] [--parallel 8]``

A fresh ``corral server`` and one ``oci`` agent on this machine; one busybox pod serving
``httpd -f -p 8080`` (a 1 KB page and a 16 MiB file) in its own network namespace. Then
``kubectl port-forward pod/web :8080`` (kubectl 1.32: SPDY/3.1 tunnelled in a WebSocket
to the API server, relayed to the agent, which connects inside the pod's netns) and:

- ``sequential``: N GETs of the page one after another, each on a new connection (busybox
  httpd closes after each answer, so every request is also a new forwarded stream pair):
  p50 / p99 latency and requests per second;
- ``parallel``: N GETs from ``--parallel`` threads at once: requests per second;
- ``throughput``: the 16 MiB file three times: MB/s (the best run);
- ``direct``: the same sequential GETs straight to the pod IP, for scale.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.report import write_report
from bench.server import BenchServer
from corral.testing.agent import AgentProcess

IMAGE = "corral.local/busybox:1.35"
BIG = 16 * 1024 * 1024
SERVE = (
    "mkdir -p /www && head -c 1024 /dev/zero | tr '\\0' x > /www/index.html && "
    f"head -c {BIG} /dev/zero > /www/big && exec httpd -f -p 8080 -h /www"
)
FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) -> 8080")


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def fetch(host: str, port: int, path: str = "/") -> int:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: {resp.status}")
        return len(body)
    finally:
        conn.close()


def sequential(host: str, port: int, n: int) -> dict[str, float]:
    lat = []
    start = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        fetch(host, port)
        lat.append(time.perf_counter() - t)
    total = time.perf_counter() - start
    return {
        "requests": n,
        "p50_ms": round(percentile(lat, 0.5) * 1000, 2),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
        "requests_per_s": round(n / total, 1),
    }


def parallel(host: str, port: int, n: int, threads: int) -> dict[str, float]:
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: fetch(host, port), range(n)))
    total = time.perf_counter() - start
    return {"requests": n, "threads": threads, "requests_per_s": round(n / total, 1)}


def throughput(host: str, port: int) -> dict[str, float]:
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        size = fetch(host, port, "/big")
        assert size == BIG, size
        best = max(best, size / (time.perf_counter() - t) / 1e6)
    return {"bytes": BIG, "best_MB_per_s": round(best, 1)}


def kubectl(kubeconfig: Path, *args: str) -> str:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


async def bench(work: Path, n: int, threads: int) -> dict[str, Any]:
    from corral.agent.images.demo import build_busybox
    from corral.agent.images.store import ImageStore

    srv = BenchServer.start(work / "server", extra=["--no-controllers"])
    agent_dir = work / "agent"
    layout = build_busybox(work / "layout", "1.35")
    await ImageStore(agent_dir / "images").import_archive(layout, name=IMAGE)
    agent = AgentProcess.start(srv.kubeconfig, "bench-pf", "oci", agent_dir)
    forwarder: subprocess.Popen[str] | None = None
    try:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web"},
            "spec": {
                "containers": [{"name": "c", "image": IMAGE, "command": ["sh", "-c", SERVE]}],
                "terminationGracePeriodSeconds": 1,
            },
        }
        subprocess.run(
            ["kubectl", "--kubeconfig", str(srv.kubeconfig), "apply", "-f", "-"],
            input=json.dumps(pod),
            check=True,
            capture_output=True,
            text=True,
        )
        kubectl(srv.kubeconfig, "wait", "--for=condition=Ready", "pod/web", "--timeout=60s")
        pod_ip = kubectl(srv.kubeconfig, "get", "pod", "web", "-o", "jsonpath={.status.podIP}")
        forwarder = subprocess.Popen(
            ["kubectl", "--kubeconfig", str(srv.kubeconfig), "port-forward", "pod/web", ":8080"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()

        def read() -> None:
            assert forwarder is not None and forwarder.stdout is not None
            for line in forwarder.stdout:
                lines.put(line)

        threading.Thread(target=read, daemon=True).start()
        while not (m := FORWARDING.search(lines.get(timeout=30))):
            pass
        local = int(m.group(1))
        for _ in range(20):  # warm up: file cache, the session, the agent's code paths
            fetch("127.0.0.1", local)
        result: dict[str, Any] = {
            "kubectl": kubectl(srv.kubeconfig, "version", "--client", "-o", "json"),
            "sequential": sequential("127.0.0.1", local, n),
            "parallel": parallel("127.0.0.1", local, n, threads),
            "throughput": throughput("127.0.0.1", local),
            "direct": {
                "sequential": sequential(pod_ip, 8080, n),
                "throughput": throughput(pod_ip, 8080),
            },
        }
        result["kubectl"] = json.loads(result["kubectl"])["clientVersion"]["gitVersion"]
        return result
    finally:
        if forwarder is not None:
            forwarder.terminate()
            forwarder.wait(timeout=10)
            if forwarder.stdout is not None:
                forwarder.stdout.close()
        subprocess.run(
            ["kubectl", "--kubeconfig", str(srv.kubeconfig), "delete", "pod", "web", "--wait"],
            capture_output=True,
            timeout=60,
        )
        agent.stop()
        agent.reset()
        srv.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.portforward_perf")
    p.add_argument("--out", default="bench/results/portforward.json")
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--parallel", type=int, default=8)
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("portforward: skipped (oci pods need root)", flush=True)
        return 0
    with tempfile.TemporaryDirectory(prefix="corral-pf-") as tmp:
        result = asyncio.run(bench(Path(tmp), args.requests, args.parallel))
    report = {"command": sys.argv, "result": result}
    print(json.dumps(result, indent=1), flush=True)
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
