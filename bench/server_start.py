"""How long ``corral server`` takes to start: exec to its "serving on" line.

``python -m bench.server_start --out FILE [--runs 7]``

Each run starts ``corral server --no-controllers --no-metrics-server --port 0`` on a
fresh data directory (a first start: CA, serving and client certificates, the built-in
objects), stops it with SIGTERM, then starts it again on the same directory (a restart:
everything found on disk). Reported per kind, median of ``--runs``: ``wall_ms`` to the
"serving on" line, ``cpu_ms`` of the server process by then, and ``cpu_with_children_ms``
adding the children it waited for (the certificate child of a first start; the scheduler
child runs beside it and is not waited for). The data directories are removed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> tuple[float, float]:
    """(own, waited-for children) CPU seconds of ``pid`` from ``/proc/PID/stat``."""
    f = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(f[11]) + int(f[12])) / TICK, (int(f[13]) + int(f[14])) / TICK


def start_once(data_dir: Path) -> dict[str, float]:
    """One start to "serving on", then SIGTERM; its figures in ms."""
    argv = [sys.executable, "-m", "corral", "server", "--data-dir", str(data_dir),
            "--no-controllers", "--no-metrics-server", "--port", "0",
            "--log-level", "WARNING"]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    seen: list[bytes] = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if b"serving on" in line:
                wall = time.monotonic() - t0
                own, children = _cpu_s(proc.pid)
                break
        else:
            raise RuntimeError("corral server exited:\n" + b"".join(seen).decode(errors="replace"))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {
        "wall_ms": wall * 1000,
        "cpu_ms": own * 1000,
        "cpu_with_children_ms": (own + children) * 1000,
    }


def run(runs: int) -> dict[str, Any]:
    kinds: dict[str, list[dict[str, float]]] = {"first_start": [], "restart": []}
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="corral-start-") as tmp:
            data = Path(tmp) / "data"
            kinds["first_start"].append(start_once(data))
            kinds["restart"].append(start_once(data))
    return {
        kind: {k: round(statistics.median(r[k] for r in rows)) for k in rows[0]}
        for kind, rows in kinds.items()
    } | {"runs": runs}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.server_start")
    p.add_argument("--out", type=Path, help="write the JSON report here")
    p.add_argument("--runs", type=int, default=7)
    args = p.parse_args(argv)
    report = run(args.runs)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
