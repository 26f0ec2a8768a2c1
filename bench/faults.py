"""The fault-injection report: ``python -m bench.faults [--only NAME ...] [--short] --out FILE``.

Called by ``make faults`` (``bench/results/faults.json``). For each scenario module of
``corral.testing.faults`` (crash, agents, partition, failover, flood, disk, ha; imported one
at a time, when its turn comes) it calls ``run(work, long=not --short)`` in a fresh
temporary directory, times it, and writes one JSON report: ``{scenario: figures, ...,
"_meta": {host, cpus, date, git, durations, missing, failed}}``, rewritten after each
scenario so an interrupted run keeps what it measured. A module that is not there is
reported as missing; a scenario that raises is recorded with its error and goes on to
the next.

The exit status is 1 when any scenario raised, listed ``violations``, or has a figure
that must be zero (``MUST_BE_ZERO``, looked for at any depth of its figures) that is not;
0 otherwise. The figures are measured, never asserted here beyond that.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import orjson

from bench.report import write_report
from bench.run import git_info, machine_info

SCENARIOS = ("crash", "agents", "partition", "failover", "flood", "disk", "ha")
#: figures that count something that must never happen (issue 16, item 7)
MUST_BE_ZERO = frozenset(
    {
        # crash
        "acknowledged_writes_lost",
        "half_written",
        "rv_regressions",
        "watch_missed",
        "watch_repeated",
        # agents
        "healthy_pods_restarted",
        # partition
        "ran_twice",
        "stale_pods_left",
        # failover
        "duplicate_pods",
        "framework_tasks_lost_within_timeout",
        "tasks_left_after_timeout",
        # flood
        "heartbeats_missed",
        "nodes_not_ready",
        "pods_not_scheduled",
        # disk
        "writes_500",
        "corrupt_after_full",
        # ha (issue 18)
        "pods_bound_twice",
        "framework_tasks_lost",
        "loops_not_resumed",
        "backup_restore_mismatches",
    }
)


def broken(figures: Any, path: str = "") -> list[str]:
    """``path=value`` of every ``MUST_BE_ZERO`` figure in ``figures`` that is not 0."""
    out: list[str] = []
    if isinstance(figures, dict):
        for key, value in figures.items():
            where = f"{path}.{key}" if path else str(key)
            if key in MUST_BE_ZERO and isinstance(value, int | float) and value != 0:
                out.append(f"{where}={value}")
            else:
                out.extend(broken(value, where))
    return out


def run_one(name: str, long: bool, keep: bool) -> tuple[dict[str, Any] | None, float]:
    """``(figures, seconds)`` of one scenario; ``(None, 0)`` when its module is missing.
    A scenario that raises gives ``{"error": ..., "violations": [...]}``."""
    module_name = f"corral.testing.faults.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        return None, 0.0
    tmp = tempfile.mkdtemp(prefix=f"corral-fault-{name}-")
    t0 = time.monotonic()
    try:
        figures = dict(module.run(Path(tmp), long=long))
    except Exception as e:
        traceback.print_exc()
        figures = {"error": repr(e), "violations": [f"the scenario raised {e!r}"]}
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    if keep:
        figures["work_dir"] = tmp
    return figures, round(time.monotonic() - t0, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.faults")
    p.add_argument("--out", default="bench/results/faults.json")
    p.add_argument("--only", nargs="+", choices=SCENARIOS, metavar="NAME",
                   help=f"run these scenarios only ({', '.join(SCENARIOS)})")  # fmt: skip
    p.add_argument("--short", action="store_true", help="the short forms (as the suite)")
    p.add_argument("--keep", action="store_true", help="keep each scenario's work directory")
    args = p.parse_args(argv)
    names = [n for n in SCENARIOS if not args.only or n in args.only]
    meta: dict[str, Any] = {
        "host": socket.gethostname(),
        "cpus": machine_info()["nproc"],
        "machine": machine_info(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git": git_info(),
        "form": "short" if args.short else "long",
        "durations_s": {},
        "missing": [],
        "failed": {},
    }
    report: dict[str, Any] = {"_meta": meta}
    for name in names:
        print(f"[faults {time.strftime('%H:%M:%S')}] {name} ...", file=sys.stderr, flush=True)
        figures, seconds = run_one(name, not args.short, args.keep)
        if figures is None:
            meta["missing"].append(name)
            print(f"[faults] {name}: no module corral.testing.faults.{name}", file=sys.stderr)
            continue
        report[name] = figures
        meta["durations_s"][name] = seconds
        bad = [str(v) for v in figures.get("violations") or []] + broken(figures)
        if bad:
            meta["failed"][name] = bad
        print(f"[faults] {name}: {seconds} s, {'FAILED: ' + '; '.join(bad) if bad else 'ok'}",
              file=sys.stderr, flush=True)  # fmt: skip
        write_report(args.out, report)
    write_report(args.out, report)
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 1 if meta["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
