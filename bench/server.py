"""A ``corral server`` subprocess for the benchmarks, and the client session that drives it.

Called by ``bench.scenarios``: ``BenchServer`` is the test kit's ``ServerProcess``
(``python -m corral server`` on a fresh data directory and a free port, as the
integration tests run it) plus a client session; callers hold it in ``try/finally`` so
no server outlives a benchmark. ``rss_bytes`` reads the process's
``VmRSS`` from ``/proc``; ``db_bytes`` sizes the SQLite file and its WAL. The metrics
server is left out (``--no-metrics-server``) unless a benchmark asks for it with
``--metric-resolution``: its scrapes of every hollow node would be measured with the rest.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import aiohttp

from corral.testing.process import ServerProcess


@dataclass
class BenchServer(ServerProcess):
    """A server process plus what the benchmarks read of it."""

    @classmethod
    def start(
        cls,
        data_dir: Path,
        port: int | None = None,
        extra: list[str] | None = None,
        log_level: str = "WARNING",
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> Self:
        args = list(extra or [])
        if "--metric-resolution" not in args and "--no-metrics-server" not in args:
            args.append("--no-metrics-server")
        return super().start(data_dir, port, args, log_level, timeout, env)

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
