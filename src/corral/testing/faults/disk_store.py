"""The store at rest, for scenario ``disk`` (``testing/faults/disk.py``): checking a
database file (integrity, decodable values, no revision holes), corrupting copies of it
three ways and starting ``corral server`` on them in parallel, and what the start-up
check costs on a large store.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import orjson

SERVER_FLAGS = ["--no-scheduler", "--no-controllers", "--no-metrics-server"]
NS = "default"
PREFIX = f"/registry/core/configmaps/{NS}/"
CORRUPTIONS = ("overwritten", "truncated", "random")


def noise(n: int) -> str:
    """``n`` random bytes in base64: a payload zlib cannot shrink much."""
    return base64.b64encode(os.urandom(n)).decode()


def configmap(name: str, payload: str = "x") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"v": payload}}  # fmt: skip


def check_file(db: Path) -> tuple[list[str], set[str]]:
    """``integrity_check``, every plaintext live value decodes (the server's start
    decodes the encrypted ones), and the log's revisions have no hole (a write refused
    after it took a revision would leave one: compaction only cuts the bottom): the
    problems found, and the ConfigMap names in ``NS``."""
    problems: list[str] = []
    names: set[str] = set()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        found = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if found != ["ok"]:
            problems.append(f"integrity_check: {'; '.join(found[:3])}")
        low, high, count = conn.execute("SELECT min(rev), max(rev), count(*) FROM log").fetchone()
        if count and high - low + 1 != count:
            problems.append(f"revision holes: {high - low + 1 - count} in {low}..{high}")
        for key, value in conn.execute("SELECT key, value FROM current"):
            if key.startswith(PREFIX):
                names.add(key[len(PREFIX) :])
            if bytes(value).startswith(b"k8s:enc:"):
                continue
            try:
                orjson.loads(zlib.decompress(value))
            except (zlib.error, orjson.JSONDecodeError) as e:
                problems.append(f"{key} does not decode: {e}")
    finally:
        conn.close()
    return problems, names


def corrupt(db: Path, how: str) -> None:
    if how == "random":
        db.write_bytes(os.urandom(64 * 1024))
        return
    size = db.stat().st_size
    if how == "truncated":
        os.truncate(db, size // 2)
        return
    # "overwritten": 8 bytes at the start of every third page (a b-tree page's header)
    with open(db, "r+b") as f:
        for page in range(2, size // 4096, 3):
            f.seek(page * 4096)
            f.write(b"\x55" * 8)


Starts = dict[str, tuple[Path, "subprocess.Popen[str]"]]


def corrupt_starts(data: Path, work: Path) -> Starts:
    """Phase 3: start a server on three corrupt copies of ``data`` at once (``judge``
    collects them)."""
    procs: Starts = {}
    for how in CORRUPTIONS:
        copy = work / f"corrupt-{how}"
        shutil.copytree(data, copy, ignore=shutil.ignore_patterns("state.db-*"))
        corrupt(copy / "state.db", how)
        argv = [sys.executable, "-m", "corral", "server", "--data-dir", str(copy),
                "--port", "0", *SERVER_FLAGS]  # fmt: skip
        procs[how] = copy, subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    return procs


def judge(procs: Starts) -> list[str]:
    """A violation for each corrupt start that did not fail with one clear line."""
    violations = []
    for how, (copy, proc) in procs.items():
        try:
            _, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
        lines = [ln for ln in stderr.splitlines() if ln.startswith("corral server:")]
        db = str(copy / "state.db")
        if proc.returncode == 0 or proc.returncode < 0:
            violations.append(f"{how}: the server started on a corrupt database")
        elif "Traceback" in stderr or not lines:
            violations.append(f"{how}: no one-line error: {stderr.strip()[-300:]!r}")
        elif db not in lines[-1] or "corral restore" not in lines[-1]:
            violations.append(f"{how}: the line names no file or recovery: {lines[-1]!r}")
        shutil.rmtree(copy, ignore_errors=True)
    return violations


def start_check_cost(work: Path, objects: int) -> dict[str, Any]:
    """What the start-up check costs on a store of ``objects`` ConfigMaps (~1 KB each)."""
    from corral.storage.sqlite import SQLiteStorage

    db = work / "big.db"

    async def build() -> None:
        st = SQLiteStorage(db)
        await st.start()
        value = noise(700)
        for start in range(0, objects, 500):
            await asyncio.gather(*(
                st.create(f"/registry/configmaps/big/cm-{i}", configmap(f"cm-{i}", value))
                for i in range(start, min(objects, start + 500))
            ))  # fmt: skip
        await st.close()

    asyncio.run(build())
    out: dict[str, Any] = {
        "start_check_objects": objects,
        "start_check_db_bytes": db.stat().st_size,
    }
    for pragma, figure in (("quick_check", "start_check_ms"),
                           ("integrity_check", "integrity_check_ms")):  # fmt: skip
        took = []
        for _ in range(2):  # the better of two: the first also pays for cold pages
            conn = sqlite3.connect(db)
            t0 = time.perf_counter()
            conn.execute(f"PRAGMA {pragma}").fetchall()
            took.append(time.perf_counter() - t0)
            conn.close()
        out[figure] = round(min(took) * 1000, 1)
    db.unlink()
    return out
