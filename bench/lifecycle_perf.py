"""How long tearing a node's pods down takes (issue 13): ``corral agent --reset`` and
``corral down`` with N running pods.

``python -m bench.lifecycle_perf --out FILE [--pods 20] [--runs 3]``

One ``corral up`` cluster (one ``oci`` agent, runc, the demo image it imports) in a
fresh data dir; N pods of ``sleep 3600`` (busybox ``sleep`` as PID 1 ignores SIGTERM, so
every container needs the SIGKILL after the grace: the worst case). Each reset run:
all N pods running (started after the cluster's last start), Ctrl-C ``corral up`` (the
pods keep running), time ``corral agent --reset`` of the agent's data dir, start
``corral up`` again (the agent makes the pods anew). Each down run: all N running, time
``corral down`` (it also stops ``corral up``), start it again. Reported: each run's
seconds and the median; target <= 5 s for 20 pods on this machine's 2 cores. The data
dir is purged at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import write_report
from corral.testing.process import free_port
from corral.testing.up import UpProcess, wait_clean
from corral.util.clock import parse_rfc3339

IMAGE = "corral.local/busybox:1.35"


def kubectl(up: UpProcess, *args: str, input: str | None = None) -> str:
    res = subprocess.run(
        ["kubectl", "--kubeconfig", str(up.kubeconfig), *args],
        input=input, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return res.stdout


def pods_manifest(n: int) -> str:
    items = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"p{i}", "labels": {"bench": "lifecycle"}},
            "spec": {
                "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}],
                "terminationGracePeriodSeconds": 1,
            },
        }
        for i in range(n)
    ]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def wait_running(up: UpProcess, n: int, since: float, timeout: float = 180.0) -> None:
    """Every one of the ``n`` pods has its container running, started at ``since`` or
    later (a status from before the last restart does not count)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = json.loads(kubectl(up, "get", "pods", "-o", "json"))["items"]
        started = 0
        for p in pods:
            for cs in (p.get("status") or {}).get("containerStatuses") or []:
                at = ((cs.get("state") or {}).get("running") or {}).get("startedAt")
                if at and parse_rfc3339(at) >= int(since):
                    started += 1
        if started == n:
            return
        time.sleep(0.5)
    raise RuntimeError(f"{n} pods not running after {timeout} s:\n{up.output()}")


def timed(argv: list[str]) -> tuple[float, str]:
    t0 = time.monotonic()
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    took = time.monotonic() - t0
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{res.stdout}{res.stderr}")
    return took, res.stdout


def measure(pods: int, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="corral-lifecycle-") as tmp:
        up = UpProcess(Path(tmp) / "corral", free_port())
        since = time.time()
        up.start()
        kubectl(up, "apply", "-f", "-", input=pods_manifest(pods))
        (agent_dir,) = sorted((up.data_dir / "agents").iterdir())
        reset_s: list[float] = []
        down_s: list[float] = []
        try:
            for i in range(runs):
                wait_running(up, pods, since)
                up.signal()  # Ctrl-C: the pods keep running
                took, out = timed(
                    [sys.executable, "-m", "corral", "agent", "--reset", "--runtime", "oci",
                     "--data-dir", str(agent_dir)]
                )  # fmt: skip
                assert f"removed {pods} containers, {pods} pod sandboxes" in out, out
                reset_s.append(took)
                print(f"reset {i + 1}: {took:.2f} s ({out.strip()})", flush=True)
                since = time.time()
                up.start()
            for i in range(runs):
                wait_running(up, pods, since)
                t0 = time.monotonic()
                res = up.down()
                took = time.monotonic() - t0
                if res.returncode != 0:
                    raise RuntimeError(res.stdout + res.stderr)
                assert f"removed {pods} pod sandboxes" in res.stdout, res.stdout
                down_s.append(took)
                print(f"down {i + 1}: {took:.2f} s", flush=True)
                wait_clean(up.data_dir, bridges=("corral-n0",))
                if i < runs - 1:
                    since = time.time()
                    up.start()
        finally:
            up.down("--purge")
    return {
        "pods": pods,
        "runs": runs,
        "cores": os.cpu_count(),
        "reset_seconds": [round(x, 3) for x in reset_s],
        "reset_median_s": round(statistics.median(reset_s), 3),
        "down_seconds": [round(x, 3) for x in down_s],
        "down_median_s": round(statistics.median(down_s), 3),
        "target_s": 5.0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.lifecycle_perf")
    p.add_argument("--out", type=Path, default=Path("bench/results/lifecycle.json"))
    p.add_argument("--pods", type=int, default=20)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("lifecycle_perf: needs root (oci agents)", file=sys.stderr)
        return 2
    result = measure(args.pods, args.runs)
    print(json.dumps(result, indent=1))
    write_report(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
