"""Memory of the control plane: RSS and PSS of every process of ``corral up`` (issue 13).

``python -m bench.footprint --out FILE [--pods 100] [--samples 3] [--settle 10]
[--loops in-process|processes|default]``

Starts ``python -m corral up`` on a fresh data directory and free ports (the Mesos
master, Chronos and Marathon on, as by default) with one agent (``oci`` as root with
runc, else ``process``), waits for "Corral is up" and lets it settle, then reads
``/proc/PID/smaps_rollup`` (``Rss``, ``Pss``) of every process in ``corral up``'s
process tree, ``--samples`` times two seconds apart: that tree is the control plane
(the API server with whatever loops run in it, its child processes, the agent). Not
counted: the pods themselves, their shims and pause containers (double-forked, no
one's children), and short-lived tools (iptables, runc) unless caught running. Then a
Deployment of ``--pods`` busybox ``sleep`` pods (the demo image ``corral up`` imports;
``/bin/busybox`` on the host for the process runtime) and, once all run and settle, the
same readings again. A figure is the median over the samples; PSS divides shared pages
(libraries, copy-on-write) among the processes sharing them, so the PSS total is what the
control plane costs the machine, while the RSS total counts shared pages once per process.

Teardown, whatever happened: the Deployment deleted and its pods waited for, ``corral up``
stopped with SIGINT (the time it took is reported), ``corral agent --reset`` on the
agent's data directory, the agent's bridge removed if this run created it; the data
directory is removed. Needs the agent port 10250 free (another ``corral up`` on this host
would share it and the bridge ``corral-n0``): exits 1 with a message otherwise. Figures
are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import write_report
from corral.client.rest import DEPLOYMENTS, PODS, Client
from corral.testing.process import free_port

IMAGE = "corral.local/busybox:1.35"
AGENT_PORT = 10250  # corral up's first agent
BRIDGE = "corral-n0"  # its pod bridge (oci)
NAMESPACE = "default"
DEPLOYMENT = "footprint"


# --- reading /proc ------------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, parents first."""
    out = [pid]
    for child in sorted(_children(pid)):
        out += process_tree(child)
    return out


def role(cmdline: list[str]) -> str:
    """What a process of the tree is: ``up``, ``agent``, ``scheduler``... or the program."""
    for i, arg in enumerate(cmdline):
        if arg == "corral" and i > 0 and cmdline[i - 1] == "-m" and i + 1 < len(cmdline):
            return cmdline[i + 1]
        if arg.endswith("/corral") and i + 1 < len(cmdline):
            return cmdline[i + 1]
    return Path(cmdline[0]).name if cmdline else "?"


def smaps(pid: int) -> dict[str, float]:
    """``Rss`` and ``Pss`` of a process in MB (``/proc/PID/smaps_rollup``)."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        if key in ("Rss", "Pss", "Pss_Anon", "Anonymous"):
            out[key.lower()] = int(value.split()[0]) / 1024
    return out


def sample(root: int) -> dict[str, Any]:
    """One reading of every process in the tree of ``root``."""
    procs = []
    for pid in process_tree(root):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            mem = smaps(pid)
        except OSError:
            continue  # gone meanwhile
        procs.append({"pid": pid, "role": role([c.decode() for c in cmd if c]), **mem})
    return {
        "processes": procs,
        "rss_mb": round(sum(p["rss"] for p in procs), 1),
        "pss_mb": round(sum(p["pss"] for p in procs), 1),
    }


def summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the samples: totals and per role (roles summed within a sample)."""
    roles: dict[str, dict[str, list[float]]] = {}
    for s in samples:
        per: dict[str, dict[str, float]] = {}
        for p in s["processes"]:
            r = per.setdefault(p["role"], {"rss": 0.0, "pss": 0.0})
            r["rss"] += p["rss"]
            r["pss"] += p["pss"]
        for name, r in per.items():
            acc = roles.setdefault(name, {"rss": [], "pss": []})
            acc["rss"].append(r["rss"])
            acc["pss"].append(r["pss"])
    return {
        "rss_mb": round(statistics.median(s["rss_mb"] for s in samples), 1),
        "pss_mb": round(statistics.median(s["pss_mb"] for s in samples), 1),
        "processes": len(samples[-1]["processes"]),
        "by_role": {
            name: {
                "rss_mb": round(statistics.median(v["rss"]), 1),
                "pss_mb": round(statistics.median(v["pss"]), 1),
            }
            for name, v in roles.items()
        },
        "samples": samples,
    }


def measure(root: int, count: int, interval: float = 2.0) -> dict[str, Any]:
    samples = []
    for i in range(count):
        if i:
            time.sleep(interval)
        samples.append(sample(root))
    return summary(samples)


def show(label: str, s: dict[str, Any]) -> None:
    roles = ", ".join(
        f"{name} {v['rss_mb']:.0f}/{v['pss_mb']:.0f}" for name, v in s["by_role"].items()
    )
    print(
        f"{label}: RSS {s['rss_mb']:.1f} MB, PSS {s['pss_mb']:.1f} MB in {s['processes']} "
        f"processes (RSS/PSS MB: {roles})",
        flush=True,
    )


# --- the cluster ---------------------------------------------------------------------------------
def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def bridge_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def deployment(replicas: int, runtime: str) -> dict[str, Any]:
    cmd = ["/bin/busybox", "sleep", "3600"] if runtime == "process" else ["sleep", "3600"]
    labels = {"app": DEPLOYMENT}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "sleep", "image": IMAGE, "command": cmd}],
                    "terminationGracePeriodSeconds": 1,
                },
            },
        },
    }


async def _count_running(client: Client) -> tuple[int, int]:
    pods = (await client.list(PODS, NAMESPACE, label_selector=f"app={DEPLOYMENT}"))["items"]
    running = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running")
    return running, len(pods)


async def run_pods(kubeconfig: Path, replicas: int, runtime: str, timeout: float) -> float:
    """Create the Deployment; seconds until all its pods run."""
    client = Client.from_kubeconfig(kubeconfig)
    try:
        t0 = time.monotonic()
        await client.create(DEPLOYMENTS, deployment(replicas, runtime), NAMESPACE)
        while time.monotonic() - t0 < timeout:
            running, _ = await _count_running(client)
            if running >= replicas:
                return time.monotonic() - t0
            await asyncio.sleep(1.0)
        running, total = await _count_running(client)
        raise RuntimeError(f"{running} of {replicas} pods running after {timeout:.0f} s ({total})")
    finally:
        await client.close()


async def delete_pods(kubeconfig: Path, timeout: float) -> None:
    client = Client.from_kubeconfig(kubeconfig)
    try:
        try:
            await client.delete(DEPLOYMENTS, DEPLOYMENT, NAMESPACE)
        except Exception as e:
            print(f"  deleting the deployment: {e}", flush=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (await _count_running(client))[1] == 0:
                return
            await asyncio.sleep(1.0)
        print(f"  pods still there after {timeout:.0f} s; the reset removes them", flush=True)
    finally:
        await client.close()


class Up:
    """``corral up`` as a subprocess on a fresh data directory and free ports."""

    def __init__(self, data: Path, runtime: str, loops: str) -> None:
        self.data, self.runtime = data, runtime
        self.log = data.parent / "up.log"
        self.argv = [sys.executable, "-m", "corral", "up", "--data-dir", str(data)]
        self.argv += ["--port", str(free_port()), "--runtime", runtime, "--log-level", "WARNING"]
        for flag in ("--mesos-port", "--chronos-port", "--marathon-port"):
            self.argv += [flag, str(free_port())]
        if loops != "default":
            self.argv += ["--loops", loops]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> float:
        t0 = time.monotonic()
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT)
        while time.monotonic() - t0 < timeout:
            if "Corral is up" in self.log.read_text(errors="replace"):
                return time.monotonic() - t0
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"corral up did not come up:\n{self.log.read_text(errors='replace')}")

    def stop(self, timeout: float = 30.0) -> float | None:
        """SIGINT (Ctrl-C); seconds until it exited, or None if it had to be killed."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
            return time.monotonic() - t0
        except subprocess.TimeoutExpired:
            for pid in reversed(process_tree(self.proc.pid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait()
            return None

    def reset_agents(self) -> None:
        for agent_dir in sorted((self.data / "agents").glob("*")):
            argv = [sys.executable, "-m", "corral", "agent", "--reset"]
            argv += ["--data-dir", str(agent_dir), "--runtime", self.runtime]
            res = subprocess.run(argv, capture_output=True, text=True, timeout=180)
            print(f"  reset {agent_dir.name}: {res.stdout.strip() or res.stderr.strip()}")


def _machine() -> dict[str, Any]:
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "mem_total_mb": int(mem) // 1024,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_at_start": os.getloadavg(),
        "git_commit": commit,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    runtime = "oci" if os.geteuid() == 0 and shutil.which("runc") else "process"
    report: dict[str, Any] = {"command": sys.argv, "machine": _machine(), "runtime": runtime}
    had_bridge = bridge_exists(BRIDGE)
    with tempfile.TemporaryDirectory(prefix="corral-footprint-") as tmp:
        up = Up(Path(tmp) / "corral", runtime, args.loops)
        report["up_command"] = up.argv
        try:
            report["up_seconds"] = round(up.start(), 2)
            assert up.proc is not None
            time.sleep(args.settle)
            report["idle"] = measure(up.proc.pid, args.samples)
            show("idle", report["idle"])
            if args.pods:
                kubeconfig = up.data / "kubeconfig"
                took = asyncio.run(run_pods(kubeconfig, args.pods, runtime, timeout=600))
                report["pods"] = args.pods
                report["pods_running_after_s"] = round(took, 1)
                time.sleep(args.settle)
                report["with_pods"] = measure(up.proc.pid, args.samples)
                show(f"{args.pods} pods", report["with_pods"])
                asyncio.run(delete_pods(kubeconfig, timeout=300))
        finally:
            report["stop_seconds"] = up.stop()
            print(f"  corral up stopped in {report['stop_seconds']} s (SIGINT)", flush=True)
            up.reset_agents()
            if runtime == "oci" and not had_bridge and bridge_exists(BRIDGE):
                subprocess.run(["ip", "link", "del", BRIDGE], check=False)
            report["up_log_tail"] = up.log.read_text(errors="replace").splitlines()[-20:]
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.footprint")
    p.add_argument("--out", default="bench/results/footprint.json")
    p.add_argument("--pods", type=int, default=100, help="pods of the loaded reading (0: none)")
    p.add_argument("--samples", type=int, default=3, help="readings per state (median)")
    p.add_argument("--settle", type=float, default=10.0, help="seconds before reading")
    p.add_argument(
        "--loops",
        default="default",
        choices=["default", "in-process", "processes"],
        help="corral up --loops (default: do not pass the flag)",
    )
    args = p.parse_args(argv)
    if port_in_use(AGENT_PORT):
        print(
            f"bench.footprint: port {AGENT_PORT} is in use: another corral up (or agent) runs "
            "here; its agent would clash with this one",
            file=sys.stderr,
        )
        return 1
    report = run(args)
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
