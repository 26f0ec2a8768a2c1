"""A ``corral server`` subprocess for the benchmarks, and the client session that drives it.

Called by ``bench.scenarios``: ``BenchServer.start`` runs ``python -m corral server`` on a
fresh data directory and a free port (as the integration tests do), waits until it
accepts connections and has written its kubeconfig, and reads the admin token and CA the
server wrote. ``stop`` always terminates (then kills) the process; callers hold it in
``try/finally`` so no server outlives a benchmark. ``rss_bytes`` reads the process's
``VmRSS`` from ``/proc``; ``db_bytes`` sizes the SQLite file and its WAL.
"""

from __future__ import annotations

import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class BenchServer:
    """One running server: its process, data directory, URL, token and TLS context."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    port: int
    log: Path
    argv: list[str]
    token: str = ""

    @classmethod
    def start(cls, data_dir: Path, extra: list[str] | None = None) -> BenchServer:
        port = free_port()
        data_dir.mkdir(parents=True, exist_ok=True)
        log = data_dir.parent / f"{data_dir.name}-server.log"
        argv = [
            sys.executable,
            "-m",
            "corral",
            "server",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--log-level",
            "WARNING",
            *(extra or []),
        ]
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        srv = cls(proc, data_dir, port, log, argv)
        try:
            srv._wait_ready(60.0)
        except BaseException:
            srv.stop()
            raise
        srv.token = (data_dir / "pki" / "admin.token").read_text().strip()
        return srv

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    if (self.data_dir / "kubeconfig").exists():
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log.read_text()}")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.data_dir / "pki" / "ca.crt"))

    def session(self, limit: int) -> aiohttp.ClientSession:
        """A keep-alive session with at most ``limit`` connections (call inside a loop)."""
        conn = aiohttp.TCPConnector(limit=limit, ssl=self.ssl_context(), force_close=False)
        return aiohttp.ClientSession(
            base_url=self.url,
            connector=conn,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),
        )

    def rss_bytes(self, field: str = "VmRSS") -> int:
        """``VmRSS`` (or ``VmHWM``, the peak) of the server process, in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"{field} not found")

    def db_path(self) -> Path:
        return self.data_dir / "state.db"

    def db_bytes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.db_path()) + suffix)
            out["state.db" + suffix] = p.stat().st_size if p.exists() else 0
        return out

    def db_facts(self) -> dict[str, Any]:
        """Read-only look into the store: live JSON bytes, log rows, compacted revision."""
        uri = f"file:{self.db_path()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=30)
        try:
            live_rows, live_bytes = conn.execute(
                "SELECT count(*), coalesce(sum(length(value)), 0) FROM current"
            ).fetchone()
            log_rows, log_bytes, log_min = conn.execute(
                "SELECT count(*), coalesce(sum(length(value)), 0), min(rev) FROM log"
            ).fetchone()
            row = conn.execute("SELECT v FROM meta WHERE k='compacted'").fetchone()
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            page_count = conn.execute("PRAGMA page_count").fetchone()[0]
            freelist = conn.execute("PRAGMA freelist_count").fetchone()[0]
        finally:
            conn.close()
        return {
            "live_objects": int(live_rows),
            "live_json_bytes": int(live_bytes),
            "log_rows": int(log_rows),
            "log_bytes": int(log_bytes),
            "log_min_revision": int(log_min or 0),
            "compacted_revision": int(row[0]) if row else 0,
            "page_size": int(page_size),
            "page_count": int(page_count),
            "freelist_pages": int(freelist),
        }

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
